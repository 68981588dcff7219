/* Conformance: the local APIC (xAPIC registers at 0xFEE00000) — timer interrupts in
 * one-shot and periodic modes (TSC-deadline: test_apic_deadline.c), EOI and the in-service register, the task
 * priority holding back a self-IPI. Only event counts are printed: timer rates differ
 * between accelerators. */
#include "sdk.h"

#define APIC 0xFEE00000ull
#define REG(off) (*(volatile uint32_t *)(APIC + (off)))
#define TPR 0x80
#define EOI 0xB0
#define SVR 0xF0
#define ISR 0x100
#define ICR_LOW 0x300
#define LVT_TIMER 0x320
#define TIMER_INIT 0x380
#define TIMER_CUR 0x390
#define TIMER_DIV 0x3E0

static volatile int fired[256];
static volatile uint32_t isr_in_handler;

static void on_timer(struct sdk_frame *f) {
    ++fired[f->vector];
    isr_in_handler = REG(ISR + 0x20); /* ISR bits 64..95: vectors 0x40-0x5F */
    REG(EOI) = 0;
}

/* Waits (halting) until vector v has fired `n` times. */
static void wait_for(int v, int n) {
    while (fired[v] < n) __asm__ volatile("sti; hlt; cli");
}

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report(d & (1u << 9), "CPUID reports a local APIC");
    const uint64_t base = rdmsr(0x1B);
    report((base & ~0xFFFull) == APIC && (base & (1u << 11)) && (base & (1u << 8)),
           "IA32_APIC_BASE: 0xFEE00000, enabled, BSP");
    REG(SVR) = 0x1FF; /* software enable, spurious vector 0xFF */
    report((REG(SVR) & 0x1FF) == 0x1FF, "SVR enables the APIC");
    for (int v = 0x40; v <= 0x45; ++v) sdk_on_vector(v, on_timer, 0);

    /* One-shot. */
    REG(TIMER_DIV) = 0xB; /* divide by 1 */
    /* A masked count long enough that no host delay can let it expire while we look. */
    REG(LVT_TIMER) = 0x40 | (1u << 16);
    REG(TIMER_INIT) = 0xFFFFFFFF;
    const uint32_t c1 = REG(TIMER_CUR);
    for (volatile int k = 0; k < 1000; ++k) {
    }
    const uint32_t c2 = REG(TIMER_CUR);
    report(c1 > 0 && c2 < c1, "current count runs down");
    REG(LVT_TIMER) = 0x40;
    REG(TIMER_INIT) = 200000;
    wait_for(0x40, 1);
    report(fired[0x40] == 1, "one-shot timer fires");
    report(isr_in_handler & 1, "in service while the handler runs");
    report(REG(TIMER_CUR) == 0, "one-shot: current count ends at 0");
    report((REG(ISR + 0x20) & 1) == 0, "EOI clears the in-service bit");

    /* Periodic: three interrupts, then mask. */
    REG(LVT_TIMER) = 0x41 | (1u << 17);
    REG(TIMER_INIT) = 100000;
    wait_for(0x41, 3);
    REG(LVT_TIMER) = 0x41 | (1u << 16) | (1u << 17); /* masked */
    report(fired[0x41] >= 3, "periodic timer fires repeatedly");
    report(REG(TIMER_CUR) != 0, "periodic: the count reloads");
    REG(TIMER_INIT) = 0;

    /* Task priority: a self-IPI of class 4 waits while TPR is 0x50. */
    REG(TPR) = 0x50;
    REG(ICR_LOW) = 0x45 | (1u << 18); /* fixed, shorthand self */
    __asm__ volatile("sti; nop; nop; nop; cli");
    report(fired[0x45] == 0, "TPR 0x50 holds back vector 0x45");
    REG(TPR) = 0;
    __asm__ volatile("sti; nop; nop; nop; cli");
    report(fired[0x45] == 1, "lowering TPR delivers it");
    report_summary();
}
