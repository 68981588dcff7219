/* Conformance (run with 2 processors): INIT/SIPI start-up of the application processor
 * through a real-mode trampoline, its own APIC ID, locked increments from both
 * processors, and a fixed IPI from the BSP waking the AP out of HLT. */
#include "sdk.h"

#define APIC 0xFEE00000ull
#define REG(off) (*(volatile uint32_t *)(APIC + (off)))
#define ROUNDS 50000

static volatile uint32_t counter;
static volatile int ap_done, ap_cpu, ipis;
static volatile uint32_t ap_apic_id = 0xFF;

static void on_ipi(struct sdk_frame *f) {
    (void)f;
    ++ipis;
    REG(0xB0) = 0; /* EOI */
}

static void ap(int cpu) {
    ap_cpu = cpu;
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    ap_apic_id = b >> 24;
    REG(0xF0) = 0x1FF; /* enable this processor's APIC */
    for (int k = 0; k < ROUNDS; ++k) __asm__ volatile("lock incl %0" : "+m"(counter));
    ap_done = 1;
    for (;;) __asm__ volatile("sti; hlt; cli");
}

int main(void) {
    REG(0xF0) = 0x1FF;
    sdk_on_vector(0x50, on_ipi, 0);
    const int started = sdk_start_aps(1, ap);
    report(started == 1, "one application processor started");
    if (started != 1) report_summary(); /* the rest needs it */
    report(ap_cpu == 1, "it runs the SDK's AP entry as CPU 1");
    for (int k = 0; k < ROUNDS; ++k) __asm__ volatile("lock incl %0" : "+m"(counter));
    while (!ap_done) __asm__ volatile("pause");
    report(counter == 2 * ROUNDS, "locked increments from both processors all count");
    report(ap_apic_id == 1, "the AP reports APIC ID 1");
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report((b >> 24) == 0, "the BSP reports APIC ID 0");
    report((rdmsr(0x1B) & (1u << 8)) != 0, "IA32_APIC_BASE.BSP is set on the BSP");
    REG(0x310) = 1u << 24;  /* destination: APIC ID 1 */
    REG(0x300) = 0x50;      /* fixed IPI, vector 0x50 */
    for (long spin = 0; spin < 10000000 && !ipis; ++spin) __asm__ volatile("pause");
    report(ipis == 1, "a fixed IPI wakes the AP out of HLT");
    report_summary();
}
