/* Guest SDK: the architectural PMU and the LBR stack (Intel SDM vol. 3 ch. 18; the MSR
 * numbers and bits of softkvm's spec §2.1). Header-only helpers for tests and demos. */
#ifndef SOFTKVM_GUEST_PMU_H
#define SOFTKVM_GUEST_PMU_H
#include "sdk.h"

#define MSR_PMC0 0xC1
#define MSR_PERFEVTSEL0 0x186
#define MSR_LBR_SELECT 0x1C8
#define MSR_LBR_TOS 0x1C9
#define MSR_DEBUGCTL 0x1D9
#define MSR_FIXED_CTR0 0x309
#define MSR_PERF_CAPABILITIES 0x345
#define MSR_FIXED_CTR_CTRL 0x38D
#define MSR_GLOBAL_STATUS 0x38E
#define MSR_GLOBAL_CTRL 0x38F
#define MSR_GLOBAL_OVF_CTRL 0x390
/* PMU version 4 (SDM vol. 3 §18.2.4): 0x390 is GLOBAL_STATUS_RESET, and two more MSRs. */
#define MSR_GLOBAL_STATUS_RESET 0x390
#define MSR_GLOBAL_STATUS_SET 0x391
#define MSR_GLOBAL_INUSE 0x392
#define GLOBAL_STATUS_LBR_FRZ (1ull << 58)
#define GLOBAL_INUSE_PMI (1ull << 63)
#define MSR_A_PMC0 0x4C1
#define MSR_LBR_FROM0 0x680
#define MSR_LBR_TO0 0x6C0
#define MSR_LBR_INFO0 0xDC0

#define DEBUGCTL_LBR (1ull << 0)
#define DEBUGCTL_BTF (1ull << 1)
#define DEBUGCTL_FREEZE_LBRS_ON_PMI (1ull << 11)

#define EVTSEL_USR (1ull << 16)
#define EVTSEL_OS (1ull << 17)
#define EVTSEL_INT (1ull << 20)
#define EVTSEL_EN (1ull << 22)
#define EVENT_INSTRUCTIONS 0xC0
#define EVENT_CORE_CYCLES 0x3C
#define EVENT_BRANCHES 0xC4
#define EVENT_BRANCH_MISSES 0xC5

/* LBR_SELECT: a set bit suppresses that class. */
#define LBR_CPL_EQ_0 (1u << 0)
#define LBR_CPL_NEQ_0 (1u << 1)
#define LBR_JCC (1u << 2)
#define LBR_REL_CALL (1u << 3)
#define LBR_IND_CALL (1u << 4)
#define LBR_RETURN (1u << 5)
#define LBR_IND_JMP (1u << 6)
#define LBR_REL_JMP (1u << 7)
#define LBR_FAR (1u << 8)
#define LBR_CALLSTACK (1u << 9)
#define LBR_ALL_CLASSES 0x1FCu

#define LBR_MISPRED (1ull << 63)

/* The local APIC's performance-counter LVT entry (xAPIC MMIO). */
#define APIC_LVT_PMC (*(volatile uint32_t *)0xFEE00340ull)
#define APIC_EOI (*(volatile uint32_t *)0xFEE000B0ull)
#define APIC_SVR (*(volatile uint32_t *)0xFEE000F0ull)
#define APIC_LVT_MASKED (1u << 16)
#define APIC_LVT_NMI (4u << 8)

static inline uint64_t rdpmc(uint32_t idx) {
    uint32_t lo, hi;
    __asm__ volatile("rdpmc" : "=a"(lo), "=d"(hi) : "c"(idx));
    return ((uint64_t)hi << 32) | lo;
}

/* CPUID leaf 0AH. */
struct pmu_caps {
    int version, gp, gp_width, fixed, fixed_width;
};
static inline struct pmu_caps pmu_caps(void) {
    uint32_t a, b, c, d;
    cpuid(0xA, 0, &a, &b, &c, &d);
    struct pmu_caps p = {(int)(a & 0xFF), (int)((a >> 8) & 0xFF), (int)((a >> 16) & 0xFF),
                         (int)(d & 0x1F), (int)((d >> 5) & 0xFF)};
    return p;
}

/* LBR depth by CPU model, as Linux's perf driver decides it: Skylake client (model 0x5E)
 * has 32 entries, Broadwell client (0x3D) 16; 0 for models this SDK does not know. */
static inline int lbr_depth(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    const uint32_t model = ((a >> 4) & 0xF) | ((a >> 12) & 0xF0);
    if (((a >> 8) & 0xF) != 6) return 0;
    return model == 0x5E ? 32 : model == 0x3D ? 16 : 0;
}

/* PERF_CAPABILITIES' LBR format (0 without PDCM). */
static inline int lbr_format(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    return (c & (1u << 15)) ? (int)(rdmsr(MSR_PERF_CAPABILITIES) & 0x3F) : 0;
}

/* The address in a FROM value of formats 3-5: flags in bits 63:61, sign-extended below. */
static inline uint64_t lbr_from_ip(uint64_t from) { return (uint64_t)((int64_t)(from << 3) >> 3); }

/* Entry k back from the top of the stack (0 = newest). */
struct lbr_entry {
    uint64_t from, to, info;
};
static inline struct lbr_entry lbr_read(int k, int depth, int with_info) {
    const int i = (int)((rdmsr(MSR_LBR_TOS) + (uint64_t)(depth - k)) % (uint64_t)depth);
    struct lbr_entry e = {rdmsr(MSR_LBR_FROM0 + i), rdmsr(MSR_LBR_TO0 + i),
                          with_info ? rdmsr(MSR_LBR_INFO0 + i) : 0};
    return e;
}

/* Clears every entry and TOS. */
static inline void lbr_clear(int depth, int with_info) {
    for (int i = 0; i < depth; ++i) {
        wrmsr(MSR_LBR_FROM0 + i, 0);
        wrmsr(MSR_LBR_TO0 + i, 0);
        if (with_info) wrmsr(MSR_LBR_INFO0 + i, 0);
    }
    wrmsr(MSR_LBR_TOS, 0);
}

/* Runs fn(arg) and returns the vector of the exception it raised, or -1 (sdk_catch). */
struct msr_access {
    uint32_t msr;
    uint64_t value;
};
static inline void rdmsr_fn(void *p) { ((struct msr_access *)p)->value = rdmsr(((struct msr_access *)p)->msr); }
static inline void wrmsr_fn(void *p) { wrmsr(((struct msr_access *)p)->msr, ((struct msr_access *)p)->value); }
static inline int rdmsr_faults(uint32_t msr) {
    struct msr_access a = {msr, 0};
    return sdk_catch(rdmsr_fn, &a) == 13;
}
static inline int wrmsr_faults(uint32_t msr, uint64_t v) {
    struct msr_access a = {msr, v};
    return sdk_catch(wrmsr_fn, &a) == 13;
}

#endif
