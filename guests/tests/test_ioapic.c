/* Conformance: the IOAPIC at 0xFEC00000 (Intel 82093AA) as the MADT describes it,
 * driven by pc-testdev's interrupt lines (ports 0x2000 + ISA IRQ; run with
 * --device pc-testdev, QEMU -device pc-testdev). Registers, edge and level triggering,
 * remote IRR and the local APIC's EOI, masking, physical/logical/lowest-priority
 * destinations, NMI delivery, and ISA IRQ 0 arriving on pin 2. Only what QEMU's IOAPIC
 * (version 0x20) and KVM's (0x11) share is printed. With "edge-only" on the command line
 * (--append, QEMU -append) the level-triggered checks are left out. */
#include "sdk.h"

#define IOAPIC 0xFEC00000ull
#define IOREGSEL (*(volatile uint32_t *)(IOAPIC + 0x00))
#define IOWIN (*(volatile uint32_t *)(IOAPIC + 0x10))
#define APIC 0xFEE00000ull
#define LAPIC(off) (*(volatile uint32_t *)(APIC + (off)))
#define APIC_EOI 0xB0
#define APIC_LDR 0xD0
#define APIC_DFR 0xE0
#define APIC_SVR 0xF0
#define APIC_TMR 0x180
#define APIC_LVT_LINT0 0x350

#define TESTDEV_IRQ 0x2000 /* + ISA IRQ: a byte sets the line */
#define PM_TIMER 0x608     /* ACPI PM timer, 3.579545 MHz (softkvm and QEMU's PIIX4) */

#define RTE_MASKED (1u << 16)
#define RTE_LEVEL (1u << 15)
#define RTE_REMOTE_IRR (1u << 14)
#define RTE_LOGICAL (1u << 11)
#define DM_LOWEST (1u << 8)
#define DM_NMI (4u << 8)

#define EDGE_IRQ 10
#define LEVEL_IRQ 11
#define V_EDGE 0x50
#define V_LEVEL 0x51
#define V_IRQ0 0x52
#define V_PIT 0x53
#define PIT_5MS 5966 /* 1.193182 MHz */

static inline uint32_t inl(uint16_t port) {
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static uint32_t reg_read(uint32_t index) {
    IOREGSEL = index;
    return IOWIN;
}
static void reg_write(uint32_t index, uint32_t v) {
    IOREGSEL = index;
    IOWIN = v;
}
static void set_entry(int pin, uint32_t low, uint8_t dest) {
    reg_write(0x10 + 2 * pin, RTE_MASKED);
    reg_write(0x11 + 2 * pin, (uint32_t)dest << 24);
    reg_write(0x10 + 2 * pin, low);
}
static uint32_t entry_low(int pin) { return reg_read(0x10 + 2 * pin); }
static void line(int irq, int level) { outb(TESTDEV_IRQ + irq, level); }

static volatile int count[256];
static volatile int level_target; /* the level handler deasserts the line at this count */
static volatile uint32_t irr_in_handler, tmr_in_handler;

static void on_edge(struct sdk_frame *f) {
    ++count[f->vector];
    LAPIC(APIC_EOI) = 0;
}

static void on_level(struct sdk_frame *f) {
    const int n = ++count[f->vector];
    if (n == 1) {
        irr_in_handler = entry_low(LEVEL_IRQ) & RTE_REMOTE_IRR;
        tmr_in_handler = LAPIC(APIC_TMR + (V_LEVEL >> 5) * 0x10) & (1u << (V_LEVEL & 31));
    }
    if (n >= level_target) line(LEVEL_IRQ, 0);
    LAPIC(APIC_EOI) = 0; /* still asserted: the IOAPIC sends it again */
}

static void on_nmi(struct sdk_frame *f) { ++count[f->vector]; }

/* Waits about `us` microseconds on the ACPI PM timer (24 bits). */
static void delay_us(uint32_t us) {
    const uint32_t ticks = us * 3580 / 1000, start = inl(PM_TIMER);
    while (((inl(PM_TIMER) - start) & 0xFFFFFF) < ticks) {
    }
}

/* Lets interrupts in: waits until count[v] reaches `n` (at most 5 ms), then 0.2 ms more
 * so that a delivery too many would show. QEMU TCG takes an interrupt at the next block
 * boundary, and a nested /dev/kvm can take a while. */
static void settle_for(int v, int n) {
    const uint32_t start = inl(PM_TIMER);
    while (count[v] < n && ((inl(PM_TIMER) - start) & 0xFFFFFF) < 5 * 3580) {
    }
    delay_us(200);
}
#define settle() settle_for(0, 0)

/* ---- The MADT, found as a guest finds it: RSDP in the BIOS area, then the RSDT ---- */

static const uint8_t *find_rsdp(void) {
    for (uintptr_t p = 0xE0000; p < 0x100000; p += 16) {
        const uint8_t *r = (const uint8_t *)p;
        if (memcmp(r, "RSD PTR ", 8)) continue;
        uint8_t sum = 0;
        for (int k = 0; k < 20; ++k) sum += r[k];
        if (!sum) return r;
    }
    return 0;
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static void check_madt(void) {
    const uint8_t *rsdp = find_rsdp();
    report(rsdp != 0, "RSDP found in the BIOS area");
    if (!rsdp) return;
    const uint8_t *rsdt = (const uint8_t *)(uintptr_t)le32(rsdp + 16);
    const uint8_t *madt = 0;
    for (uint32_t off = 36; off < le32(rsdt + 4); off += 4) {
        const uint8_t *t = (const uint8_t *)(uintptr_t)le32(rsdt + off);
        if (!memcmp(t, "APIC", 4)) madt = t;
    }
    report(madt != 0, "the RSDT lists a MADT");
    if (!madt) return;
    uint8_t sum = 0;
    for (uint32_t k = 0; k < le32(madt + 4); ++k) sum += madt[k];
    report(sum == 0, "MADT checksum");
    int ioapics = 0, irq0 = -1, irq0_flags = -1, lint1_nmi = 0;
    for (uint32_t off = 44; off + 2 <= le32(madt + 4) && madt[off + 1]; off += madt[off + 1]) {
        const uint8_t *e = madt + off;
        if (e[0] == 1) {
            ++ioapics;
            printf("MADT IOAPIC: id %u, address %x, GSI base %u\n", e[2], le32(e + 4), le32(e + 8));
        } else if (e[0] == 2 && e[2] == 0 && e[3] == 0) {
            irq0 = (int)le32(e + 4);
            irq0_flags = e[8] | e[9] << 8;
        } else if (e[0] == 2 && e[3] == 9) {
            printf("MADT override: IRQ 9 -> GSI %u, flags %x\n", le32(e + 4), e[8] | e[9] << 8);
        } else if (e[0] == 4 && e[2] == 0xFF && e[5] == 1) {
            lint1_nmi = 1;
        }
    }
    report(ioapics == 1, "MADT lists one IOAPIC");
    printf("MADT override: IRQ 0 -> GSI %d, flags %x\n", irq0, irq0_flags);
    report(irq0 == 2, "ISA IRQ 0 is GSI 2");
    report(lint1_nmi, "MADT: LINT1 is every processor's NMI input");
}

/* ---- Registers ---- */

static void check_registers(void) {
    const uint32_t ver = reg_read(1);
    printf("IOAPIC max redirection entry: %u\n", (ver >> 16) & 0xFF);
    /* QEMU's userspace IOAPIC is version 0x20, KVM's in-kernel one (and softkvm's) 0x11. */
    report((ver & 0xFF) == 0x11 || (ver & 0xFF) == 0x20, "IOAPIC version 0x11 or 0x20");
    report((reg_read(0) & 0x0F000000) == 0, "ID 0 after reset");
    reg_write(0, 0xFFFFFFFF);
    printf("ID after writing all ones: %x, arbitration %x\n", reg_read(0), reg_read(2));
    reg_write(2, 0);
    reg_write(1, 0);
    report(reg_read(2) == 0x0F000000, "arbitration ID is read-only and follows the ID");
    report(reg_read(1) == ver, "version is read-only");
    reg_write(0, 0);
    report(reg_read(0) == 0, "ID written back to 0");
    report(IOREGSEL == 0, "IOREGSEL reads back");

    int all_masked = 1;
    for (int pin = 0; pin < 24; ++pin)
        if (!(entry_low(pin) & RTE_MASKED)) all_masked = 0;
    report(all_masked, "every redirection entry masked at start");
    reg_write(0x10 + 2 * 20, 0xFFFFFFFF);
    reg_write(0x11 + 2 * 20, 0xFFFFFFFF);
    printf("entry 20 after all ones: %x %x (remote IRR, delivery status read-only)\n",
           reg_read(0x11 + 2 * 20), reg_read(0x10 + 2 * 20));
    reg_write(0x10 + 2 * 20, RTE_MASKED);
    reg_write(0x11 + 2 * 20, 0);
    printf("entry 20 back: %x %x\n", reg_read(0x11 + 2 * 20), reg_read(0x10 + 2 * 20));
}

/* ---- Interrupts from pc-testdev's lines ---- */

static void check_edge(void) {
    set_entry(EDGE_IRQ, V_EDGE, 0); /* fixed, physical, APIC ID 0 */
    line(EDGE_IRQ, 1);
    settle_for(V_EDGE, 1);
    report(count[V_EDGE] == 1, "edge: a rising line delivers once");
    line(EDGE_IRQ, 0);
    settle();
    report(count[V_EDGE] == 1, "edge: the falling line delivers nothing");
    line(EDGE_IRQ, 1);
    line(EDGE_IRQ, 0);
    settle_for(V_EDGE, 2);
    report(count[V_EDGE] == 2, "edge: the next rising edge delivers again");
    report(!(entry_low(EDGE_IRQ) & RTE_REMOTE_IRR), "edge: no remote IRR");
    report(!(LAPIC(APIC_TMR + (V_EDGE >> 5) * 0x10) & (1u << (V_EDGE & 31))),
           "edge: TMR bit clear");

    set_entry(EDGE_IRQ, RTE_MASKED | V_EDGE, 0);
    line(EDGE_IRQ, 1);
    line(EDGE_IRQ, 0);
    settle();
    report(count[V_EDGE] == 2, "edge: a masked pin delivers nothing");
    set_entry(EDGE_IRQ, V_EDGE, 0);
    settle();
    report(count[V_EDGE] == 2, "edge: unmasking does not deliver the lost edge");
    set_entry(EDGE_IRQ, RTE_MASKED | V_EDGE, 0);
}

static void check_level(void) {
    level_target = 3;
    set_entry(LEVEL_IRQ, RTE_LEVEL | V_LEVEL, 0);
    line(LEVEL_IRQ, 1);
    settle_for(V_LEVEL, 3);
    report(count[V_LEVEL] == 3, "level: each EOI of an asserted line delivers it again");
    report(irr_in_handler != 0, "level: remote IRR set while in service");
    report(tmr_in_handler != 0, "level: the local APIC's TMR bit is set");
    report(!(entry_low(LEVEL_IRQ) & RTE_REMOTE_IRR), "level: EOI clears remote IRR");

    /* A masked, asserted line fires once unmasked. */
    count[V_LEVEL] = 0;
    level_target = 1;
    set_entry(LEVEL_IRQ, RTE_MASKED | RTE_LEVEL | V_LEVEL, 0);
    line(LEVEL_IRQ, 1);
    settle();
    report(count[V_LEVEL] == 0, "level: masked, nothing delivered");
    reg_write(0x10 + 2 * LEVEL_IRQ, RTE_LEVEL | V_LEVEL);
    settle_for(V_LEVEL, 1);
    report(count[V_LEVEL] == 1, "level: unmasking an asserted line delivers it");

    /* Remote IRR is set when the message goes out, before the processor takes it. */
    count[V_LEVEL] = 0;
    level_target = 1;
    __asm__ volatile("cli");
    line(LEVEL_IRQ, 1);
    report((entry_low(LEVEL_IRQ) & RTE_REMOTE_IRR) != 0, "level: remote IRR set on delivery");
    report(count[V_LEVEL] == 0, "level: not taken with interrupts off");
    __asm__ volatile("sti");
    settle_for(V_LEVEL, 1);
    report(count[V_LEVEL] == 1, "level: taken after sti");
    report(!(entry_low(LEVEL_IRQ) & RTE_REMOTE_IRR), "level: remote IRR clear after the EOI");
    set_entry(LEVEL_IRQ, RTE_MASKED | RTE_LEVEL | V_LEVEL, 0);
}

static void check_destinations(void) {
    LAPIC(APIC_DFR) = 0xFFFFFFFF; /* flat model */
    LAPIC(APIC_LDR) = 0x01000000; /* logical ID 1 */
    const struct {
        uint32_t low;
        uint8_t dest;
        int want;
        const char *name;
    } cases[] = {
        {V_EDGE, 0xFF, 1, "physical broadcast 0xFF"},
        {V_EDGE, 1, 0, "physical APIC ID 1: no such processor"},
        {RTE_LOGICAL | V_EDGE, 0x01, 1, "logical 0x01 matches LDR 1"},
        {RTE_LOGICAL | V_EDGE, 0x03, 1, "logical 0x03 matches LDR 1"},
        {RTE_LOGICAL | V_EDGE, 0x02, 0, "logical 0x02 does not match LDR 1"},
        {RTE_LOGICAL | DM_LOWEST | V_EDGE, 0x01, 1, "lowest priority, logical 0x01"},
    };
    for (unsigned k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        const int before = count[V_EDGE];
        set_entry(EDGE_IRQ, cases[k].low, cases[k].dest);
        line(EDGE_IRQ, 1);
        line(EDGE_IRQ, 0);
        settle_for(V_EDGE, before + cases[k].want);
        report(count[V_EDGE] - before == cases[k].want, cases[k].name);
    }
    /* NMI delivery mode: vector 2 whatever the entry's vector field says. */
    set_entry(EDGE_IRQ, DM_NMI | 0x77, 0);
    line(EDGE_IRQ, 1);
    line(EDGE_IRQ, 0);
    settle_for(2, 1);
    report(count[2] == 1 && count[0x77] == 0, "NMI delivery mode raises the NMI");
    set_entry(EDGE_IRQ, RTE_MASKED | V_EDGE, 0);
}

/* Pin 2 level-triggered while the PIT's one-shot ends: masks the pin at the first delivery,
 * which proves the PIT's OUT has reached the line. */
static void on_pit(struct sdk_frame *f) {
    ++count[f->vector];
    set_entry(2, RTE_MASKED | RTE_LEVEL | V_PIT, 0);
    LAPIC(APIC_EOI) = 0;
}

/* Channel 0's read-back status (bit 7: OUT). */
static uint8_t pit0_status(void) {
    outb(0x43, 0xE2); /* read-back: status only, counter 0 */
    return inb(0x40);
}

/* ISA IRQ 0 (pc-testdev port 0x2000) arrives on pin 2, as the MADT's override says.
 *
 * The PIT drives IRQ 0 too (under QEMU, SeaBIOS starts it periodic), so it is quietened
 * first, in a way that holds on every machine compared:
 * 1. Pin 2 level-triggered and masked, a one-shot count of 5 ms in mode 0 (its load lowers
 *    OUT), then the pin unmasked: the delivery shows that the PIT's OUT has reached the
 *    line. QEMU TCG raises it from a timer of its main loop, which under load can run well
 *    after the count has ended; KVM's in-kernel PIT (QEMU's kvm peer) only pulses the line,
 *    so the count outlasts the unmasking. After its terminal count a mode-0 PIT makes no
 *    further transition.
 * 2. A mode-0 control word drives OUT low and the first byte of a new count stops the
 *    counter (8254 data sheet): a softkvm PIT whose OUT stayed high would hold the line
 *    high and swallow pc-testdev's edge (QEMU leaves its line as it is).
 * 3. pc-testdev lowers the line while the pin is still level-triggered, which clears the
 *    IOAPIC's IRR for the pin, so the edge entry starts clean. */
static void check_irq0(void) {
    set_entry(2, RTE_MASKED | RTE_LEVEL | V_PIT, 0);
    outb(0x43, 0x30);
    outb(0x40, PIT_5MS & 0xFF);
    outb(0x40, PIT_5MS >> 8);
    set_entry(2, RTE_LEVEL | V_PIT, 0);
    const uint32_t start = inl(PM_TIMER);
    uint8_t status = 0;
    while (count[V_PIT] == 0 && ((inl(PM_TIMER) - start) & 0xFFFFFF) < 50 * 3580) {
        status |= pit0_status();
        for (int k = 0; k < 1000; ++k) __asm__ volatile("pause");
    }
    status |= pit0_status();
    report(count[V_PIT] >= 1 && (status & 0x80), "the PIT's one-shot OUT reaches pin 2");
    outb(0x43, 0x30);
    outb(0x40, 0);
    line(0, 0);
    set_entry(2, V_IRQ0, 0);
    line(0, 1);
    line(0, 0);
    settle_for(V_IRQ0, 1);
    set_entry(2, RTE_MASKED | V_IRQ0, 0);
    report(count[V_IRQ0] == 1, "ISA IRQ 0 is delivered through pin 2");
}

/* Whether the multiboot command line has `word` in it. */
static int cmdline_has(const char *word) {
    const uint32_t *mbi = (const uint32_t *)(uintptr_t)sdk_mb_info;
    if (!(mbi[0] & (1u << 2))) return 0;
    const char *c = (const char *)(uintptr_t)mbi[4];
    for (; *c; ++c) {
        int k = 0;
        while (word[k] && c[k] == word[k]) ++k;
        if (!word[k]) return 1;
    }
    return 0;
}

int main(void) {
    outb(0x21, 0xFF); /* both 8259s fully masked: ISA lines reach only the IOAPIC */
    outb(0xA1, 0xFF);
    LAPIC(APIC_SVR) = 0x1FF;
    LAPIC(APIC_LVT_LINT0) = 1u << 16; /* no ExtINT from the 8259 */
    sdk_on_vector(V_EDGE, on_edge, 0);
    sdk_on_vector(V_LEVEL, on_level, 0);
    sdk_on_vector(V_IRQ0, on_edge, 0);
    sdk_on_vector(V_PIT, on_pit, 0);
    sdk_on_vector(0x77, on_edge, 0);
    sdk_on_vector(2, on_nmi, 0);

    check_madt();
    check_registers();
    __asm__ volatile("sti");
    check_edge();
    if (!cmdline_has("edge-only")) check_level();
    check_destinations();
    check_irq0();
    __asm__ volatile("cli");
    report_summary();
}
