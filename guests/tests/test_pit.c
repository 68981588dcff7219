/* Conformance: the legacy timers and controllers Linux probes, on facts that hold whatever
 * the host's speed: the 8254 PIT (control words, counter latch, read-back status, mode 0
 * terminal count on channel 2 seen through port 0x61 as Linux's TSC calibration polls
 * it, mode 2 reload), the refresh toggle of port 0x61, the CMOS RTC's format registers
 * and a BCD date, the i8042's self test, and channel 0 in mode 2 waking HLT through IRQ 0
 * on the IOAPIC's pin 2 (Intel 82C54, MC146818A and IBM PS/2 data; 82093AA). */
#include "sdk.h"

#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PORT_B 0x61
#define PORT_B_GATE2 0x01
#define PORT_B_SPEAKER 0x02
#define PORT_B_REFRESH 0x10
#define PORT_B_OUT2 0x20

static uint16_t latch_ch2(void) {
    outb(PIT_CMD, 0x80); /* counter latch, channel 2 */
    uint8_t lo = inb(PIT_CH2);
    return (uint16_t)(lo | inb(PIT_CH2) << 8);
}

#define IOAPIC 0xFEC00000ull
#define IOREGSEL (*(volatile uint32_t *)(IOAPIC + 0x00))
#define IOWIN (*(volatile uint32_t *)(IOAPIC + 0x10))
#define LAPIC(off) (*(volatile uint32_t *)(0xFEE00000ull + (off)))
#define V_TICK 0x60

static volatile int ticks;

static void on_tick(struct sdk_frame *f) {
    (void)f;
    ++ticks;
    LAPIC(0xB0) = 0; /* EOI */
}

/* IOAPIC pin 2 (ISA IRQ 0, the MADT's override): `low` (vector, mask), to APIC 0. */
static void pin2(uint32_t low) {
    IOREGSEL = 0x14;
    IOWIN = 1u << 16;
    IOREGSEL = 0x15;
    IOWIN = 0;
    IOREGSEL = 0x14;
    IOWIN = low;
}

/* Channel 0 counts on its own: in mode 2 its OUT drops for one clock every period, and
 * each rise is IRQ 0, which wakes a halted CPU (under softkvm in virtual time). */
static void check_irq0_wakes_hlt(void) {
    outb(0x21, 0xFF); /* both 8259s masked: IRQ 0 reaches only the IOAPIC */
    outb(0xA1, 0xFF);
    LAPIC(0xF0) = 0x1FF;     /* SVR: APIC on */
    LAPIC(0x350) = 1u << 16; /* LINT0 masked: no ExtINT */
    sdk_on_vector(V_TICK, on_tick, 0);
    pin2(V_TICK);
    outb(PIT_CMD, 0x34); /* channel 0, LSB/MSB, mode 2 */
    outb(0x40, 1193 & 0xFF);
    outb(0x40, 1193 >> 8); /* 1 ms */
    int wakes = 0;
    for (; wakes < 5; ++wakes) __asm__ volatile("sti; hlt; cli" ::: "memory");
    report(ticks >= wakes, "PIT channel 0 in mode 2 wakes HLT through IRQ 0, five times");
    outb(PIT_CMD, 0x30); /* mode 0: OUT low; the first byte of a count stops it */
    outb(0x40, 0);
    pin2(1u << 16 | V_TICK);
}

static int bcd_ok(uint8_t v, int max) {
    return (v & 0xF) <= 9 && (v >> 4) <= 9 && ((v >> 4) * 10 + (v & 0xF)) <= max;
}

static uint8_t cmos(uint8_t reg) {
    outb(0x70, reg);
    return inb(0x71);
}

int main(void) {
    /* Channel 2, gate on and speaker off, mode 0 with LSB then MSB. */
    outb(PORT_B, (inb(PORT_B) & ~PORT_B_SPEAKER) | PORT_B_GATE2);
    report((inb(PORT_B) & (PORT_B_GATE2 | PORT_B_SPEAKER)) == PORT_B_GATE2,
           "port 0x61 reads back the gate and speaker bits");
    outb(PIT_CMD, 0xB0);
    outb(PIT_CH2, 0x00);
    outb(PIT_CH2, 0x10); /* 4096 ticks, about 3.4 ms */
    outb(PIT_CMD, 0xE8); /* read-back: status of channel 2 */
    uint8_t status = inb(PIT_CH2);
    report((status & 0xBF) == 0x30, "read-back status: OUT low, LSB/MSB, mode 0, binary");
    report((inb(PORT_B) & PORT_B_OUT2) == 0, "OUT2 is low while mode 0 counts");
    uint16_t a = latch_ch2();
    uint16_t b = latch_ch2();
    report(a <= 4096 && b <= a, "channel 2 counts down from its count");
    /* A latched count stays put until read. */
    outb(PIT_CMD, 0x80);
    for (volatile int i = 0; i < 2000; ++i) {
    }
    uint8_t lo = inb(PIT_CH2);
    uint16_t held = (uint16_t)(lo | inb(PIT_CH2) << 8);
    report(held <= b, "the counter latch holds a count");
    /* Terminal count: OUT2 rises and stays high (Linux's pit_calibrate_tsc polls this). */
    uint64_t spins = 0;
    while (!(inb(PORT_B) & PORT_B_OUT2) && spins < 100000000ull) ++spins;
    report(spins < 100000000ull, "OUT2 rises at the terminal count");
    report((inb(PORT_B) & PORT_B_OUT2) != 0, "OUT2 stays high after it");
    /* Mode 2 reloads: the count never exceeds the reload value. */
    outb(PIT_CMD, 0xB4);
    outb(PIT_CH2, 100);
    outb(PIT_CH2, 0);
    int within = 1;
    for (int i = 0; i < 200; ++i) {
        uint16_t c = latch_ch2();
        if (c == 0 || c > 100) within = 0;
    }
    report(within, "mode 2 counts within 1..100 for a reload value of 100");
    outb(PIT_CMD, 0xE8);
    report((inb(PIT_CH2) & 0x3F) == 0x34, "read-back status: LSB/MSB, mode 2");

    /* The refresh request bit of port 0x61 toggles (about every 15 us). */
    uint8_t r0 = inb(PORT_B) & PORT_B_REFRESH;
    spins = 0;
    while ((inb(PORT_B) & PORT_B_REFRESH) == r0 && spins < 100000000ull) ++spins;
    report(spins < 100000000ull, "port 0x61 refresh bit toggles");
    outb(PORT_B, inb(PORT_B) & ~(PORT_B_GATE2 | PORT_B_SPEAKER));

    /* CMOS RTC: the power-on formats and a BCD date. */
    report((cmos(0x0A) & 0x7F) == 0x26, "RTC register A: 32.768 kHz divider, 1024 Hz rate");
    report(cmos(0x0B) == 0x02, "RTC register B: 24-hour BCD, no interrupts");
    report(cmos(0x0D) == 0x80, "RTC register D: valid RAM and time");
    while (cmos(0x0A) & 0x80) {
    }
    report(bcd_ok(cmos(0x00), 59) && bcd_ok(cmos(0x02), 59) && bcd_ok(cmos(0x04), 23),
           "RTC time of day is BCD");
    uint8_t day = cmos(0x07), month = cmos(0x08);
    report(bcd_ok(day, 31) && day != 0 && bcd_ok(month, 12) && month != 0 &&
               bcd_ok(cmos(0x09), 99) && cmos(0x32) == 0x20,
           "RTC date is BCD in the 21st century");
    outb(0x70, 0x0B);
    outb(0x71, 0x06); /* binary */
    uint8_t min_bin = cmos(0x02);
    report(min_bin <= 59, "RTC binary mode");
    outb(0x70, 0x0B);
    outb(0x71, 0x02);

    /* i8042: controller self test. */
    while (inb(0x64) & 0x01) (void)inb(0x60);
    outb(0x64, 0xAA);
    spins = 0;
    while (!(inb(0x64) & 0x01) && spins < 1000000) ++spins;
    report(inb(0x60) == 0x55, "i8042 self test answers 0x55");
    check_irq0_wakes_hlt();
    report_summary();
}
