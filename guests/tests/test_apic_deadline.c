/* Conformance: the local APIC timer in TSC-deadline mode (IA32_TSC_DEADLINE, MSR 0x6E0).
 * QEMU 7.2 TCG does not offer this mode (CPUID.1:ECX[24] is clear there), so this guest
 * runs on emu only; the differential test is skipped with that reason. */
#include "sdk.h"

#define APIC 0xFEE00000ull
#define REG(off) (*(volatile uint32_t *)(APIC + (off)))

static volatile int fired;
static void on_timer(struct sdk_frame *f) {
    (void)f;
    ++fired;
    REG(0xB0) = 0; /* EOI */
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report(c & (1u << 24), "CPUID reports the TSC-deadline timer");
    if (!(c & (1u << 24))) report_summary();
    REG(0xF0) = 0x1FF;
    sdk_on_vector(0x42, on_timer, 0);
    REG(0x320) = 0x42 | (2u << 17); /* LVT timer: TSC-deadline mode */
    wrmsr(0x6E0, rdtsc() + 200000);
    report(rdmsr(0x6E0) != 0, "deadline armed");
    while (!fired) __asm__ volatile("sti; hlt; cli");
    report(fired == 1, "timer fires at the deadline");
    report(rdmsr(0x6E0) == 0, "the deadline MSR reads 0 after it fired");
    /* A deadline already in the past fires at once. */
    wrmsr(0x6E0, 1);
    /* It is due at once; on a nested KVM host its injection can take longer than a
       couple of instructions (softkvm's kvm accelerator and QEMU's alike), so wait for
       it, bounded, with interrupts open. On emu it comes after STI's shadow. */
    __asm__ volatile("sti");
    for (int k = 0; k < 100000 && fired != 2; ++k) __asm__ volatile("pause");
    __asm__ volatile("cli");
    report(fired == 2, "a past deadline fires immediately");
    /* Writing 0 disarms. */
    wrmsr(0x6E0, rdtsc() + 100000);
    wrmsr(0x6E0, 0);
    for (volatile int k = 0; k < 200000; ++k) {
    }
    __asm__ volatile("sti; nop; cli");
    report(fired == 2, "writing 0 disarms the timer");
    report_summary();
}
