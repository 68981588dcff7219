/* Conformance: the 8259 pair as Linux probes and uses it, and its ExtINT path to the
 * boot CPU's LINT0: the mask registers read back, ICW1-ICW4 set the vector bases, the
 * PIT's IRQ 0 arrives through the master as vector base + 0 while LVT LINT0 is in ExtINT
 * mode, the in-service register holds it until EOI, and a masked request waits in the
 * IRR until unmasked (Intel 8259A and 82C54 data sheets; SDM vol. 3 §10.5.1). The PIT is
 * polled, never waited on with HLT, so the test does not depend on timer rates. */
#include "sdk.h"

#define APIC 0xFEE00000ull
#define REG(off) (*(volatile uint32_t *)(APIC + (off)))
#define SVR 0xF0
#define LVT_LINT0 0x350
#define BASE_M 0x20
#define BASE_S 0x28

static volatile int fired[256];
static volatile uint8_t isr_in_handler;

static void on_irq(struct sdk_frame *f) {
    ++fired[f->vector];
    outb(0x20, 0x0B); /* OCW3: read ISR */
    isr_in_handler = inb(0x20);
    outb(0x20, 0x0A); /* back to IRR */
    outb(0x20, 0x20); /* non-specific EOI */
}

/* Channel 0, mode 0, `count`, then polls the counter until OUT rises or `irq_seen` says
 * the interrupt came; returns the polls left of a bound. */
/* Lets a peer whose PIT raises IRQ 0 from a host timer (QEMU) catch up with the OUT it
 * already reports. */
static void settle(int vector, int want) {
    for (volatile long k = 0; k < 3000000 && (vector < 0 || fired[vector] < want); ++k) {
    }
}

static long pit_mode0_poll(uint16_t count, int vector, int before) {
    outb(0x43, 0x30);
    outb(0x40, count & 0xFF);
    outb(0x40, count >> 8);
    long left = 10000000;
    for (; left > 0; --left) {
        outb(0x43, 0xE2); /* read-back: status of channel 0 */
        if (inb(0x40) & 0x80) break; /* OUT high: terminal count */
        if (vector >= 0 && fired[vector] > before) break;
    }
    return left;
}

int main(void) {
    /* Linux's probe (init_8259A's probe in arch/x86/kernel/i8259.c). */
    outb(0xA1, 0xFF);
    outb(0x21, 0xFB);
    report(inb(0x21) == 0xFB && inb(0xA1) == 0xFF, "PIC mask registers read back (Linux's probe)");

    outb(0x20, 0x11);
    outb(0x21, BASE_M);
    outb(0x21, 0x04);
    outb(0x21, 0x01);
    outb(0xA0, 0x11);
    outb(0xA1, BASE_S);
    outb(0xA1, 0x02);
    outb(0xA1, 0x01);
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    report(inb(0x21) == 0xFF, "ICW1 clears the mask, OCW1 sets it");

    for (int v = BASE_M; v < BASE_M + 16; ++v) sdk_on_vector(v, on_irq, 0);
    REG(SVR) = 0x1FF;
    REG(LVT_LINT0) = 0x700; /* ExtINT, unmasked */

    /* A masked IRQ 0 waits in the IRR. */
    report(pit_mode0_poll(200, -1, 0) > 0, "PIT channel 0 reaches its terminal count");
    settle(-1, 0);
    outb(0x20, 0x0A);
    report((inb(0x20) & 0x01) != 0, "a masked IRQ 0 waits in the IRR");
    report(fired[BASE_M] == 0, "a masked IRQ 0 is not delivered");
    outb(0x21, 0xFE); /* unmask IRQ 0 */
    __asm__ volatile("sti; nop; nop; cli");
    report(fired[BASE_M] == 1, "unmasking delivers it as vector base + 0 through LINT0 (ExtINT)");
    report(isr_in_handler == 0x01, "ISR holds IRQ 0 while its handler runs");
    outb(0x20, 0x0B);
    report(inb(0x20) == 0x00, "EOI clears the ISR");
    outb(0x20, 0x0A);

    /* Unmasked from the start: the edge at the terminal count interrupts the poll. */
    __asm__ volatile("sti");
    long left = pit_mode0_poll(300, BASE_M, 1);
    settle(BASE_M, 2);
    __asm__ volatile("cli");
    report(left > 0 && fired[BASE_M] == 2, "IRQ 0 interrupts as the PIT's OUT rises");

    /* LINT0 masked: the 8259's request no longer reaches the CPU. */
    REG(LVT_LINT0) = 0x10700;
    outb(0x43, 0x30); /* OUT low: the line falls */
    __asm__ volatile("sti");
    pit_mode0_poll(200, -1, 0);
    settle(-1, 0);
    __asm__ volatile("nop; nop; cli");
    report(fired[BASE_M] == 2, "a masked LINT0 holds ExtINT back");
    outb(0x21, 0xFF);
    report_summary();
}
