/* Conformance: the architectural PMU (Intel SDM vol. 3 §18.2; spec §2.1, §2.2) — CPUID
 * leaf 0AH and PERF_CAPABILITIES, exact instruction and branch counts (softkvm counts in
 * virtual time), USR/OS
 * filtering, the legacy and full-width counter aliases, reserved bits, counter overflow
 * setting GLOBAL_STATUS and raising a PMI through LVT PMC (vector or NMI, mask bit set on
 * delivery), GLOBAL_OVF_CTRL, version 4's GLOBAL_STATUS_SET/RESET and GLOBAL_INUSE, RDPMC
 * with CR4.PCE. QEMU 7.2 TCG has no PMU (leaf 0AH reads
 * 0): this guest runs on emu only. */
#include "pmu.h"

#define PMI_VECTOR 0xF0

/* Counts one run of a 2-instruction loop of n iterations with the counters GLOBAL_CTRL
 * `enable` turns on: mov + 2n + the disabling WRMSR and its 3 set-up instructions = 2n + 5
 * instructions (a WRMSR retires under the configuration it replaces), n branches. */
__attribute__((noinline)) static void run_loop(uint64_t enable, uint32_t n) {
    __asm__ volatile(
        "mov $0x38F, %%ecx\n\t"
        "mov %k0, %%eax\n\t"
        "mov %k1, %%edx\n\t"
        "wrmsr\n\t"
        "mov %2, %%ebx\n"
        "1:\n\t"
        "dec %%ebx\n\t"
        "jnz 1b\n\t"
        "mov $0x38F, %%ecx\n\t"
        "xor %%eax, %%eax\n\t"
        "xor %%edx, %%edx\n\t"
        "wrmsr\n\t"
        :
        : "r"((uint32_t)enable), "r"((uint32_t)(enable >> 32)), "r"(n)
        : "rax", "rbx", "rcx", "rdx", "memory", "cc");
}

static void reset_counters(void) {
    wrmsr(MSR_GLOBAL_CTRL, 0);
    for (int i = 0; i < 4; ++i) wrmsr(MSR_PERFEVTSEL0 + i, 0), wrmsr(MSR_A_PMC0 + i, 0);
    for (int i = 0; i < 3; ++i) wrmsr(MSR_FIXED_CTR0 + i, 0);
    wrmsr(MSR_FIXED_CTR_CTRL, 0);
    wrmsr(MSR_GLOBAL_OVF_CTRL, 0xF | (7ull << 32));
}

static volatile int pmis, nmis;
static volatile uint64_t status_in_pmi;
static volatile uint32_t lvt_in_pmi;

static void on_pmi(struct sdk_frame *f) {
    (void)f;
    ++pmis;
    status_in_pmi = rdmsr(MSR_GLOBAL_STATUS);
    lvt_in_pmi = APIC_LVT_PMC;
    APIC_EOI = 0;
}

static void on_nmi(struct sdk_frame *f) {
    (void)f;
    ++nmis;
    status_in_pmi = rdmsr(MSR_GLOBAL_STATUS);
    lvt_in_pmi = APIC_LVT_PMC;
}

static volatile uint64_t user_count;
static void user_rdpmc(void) {
    user_count = rdpmc(0);
    sdk_user_exit(0);
}
/* A #GP in ring 3 ends the user run with code 13. */
static void on_user_gp(struct sdk_frame *f) {
    f->rip = (uint64_t)sdk_user_exit;
    f->rdi = 13;
}
static void rdpmc_fn(void *p) { *(uint64_t *)p = rdpmc(*(uint32_t *)p); }
static int rdpmc_faults(uint32_t idx) {
    uint64_t v = idx;
    return sdk_catch(rdpmc_fn, &v) == 13;
}
static void user_loop(void) {
    for (volatile int k = 0; k < 1000; ++k) {
    }
    sdk_user_exit(0);
}

int main(void) {
    uint32_t a, b, c, d;
    const struct pmu_caps p = pmu_caps();
    report(p.version >= 3, "CPUID.0AH: architectural PMU version 3 or later");
    report(p.gp == 4 && p.gp_width == 48, "CPUID.0AH: 4 general counters, 48 bits wide");
    report(p.fixed == 3 && p.fixed_width == 48, "CPUID.0AH: 3 fixed counters, 48 bits wide");
    cpuid(0xA, 0, &a, &b, &c, &d);
    report(((a >> 24) & 0xFF) == 7 && !(b & 0x63), "CPUID.0AH: cycles, instructions, branches, misses available");
    cpuid(1, 0, &a, &b, &c, &d);
    report((c & (1u << 15)) != 0, "CPUID.1:ECX.PDCM");
    const uint64_t caps = rdmsr(MSR_PERF_CAPABILITIES);
    report((caps & 0x3F) == (uint64_t)lbr_format() && (caps & (1u << 13)),
           "PERF_CAPABILITIES: LBR format and full-width writes (bit 13)");
    report(rdmsr(MSR_GLOBAL_CTRL) == 0xF, "GLOBAL_CTRL resets with the general counters enabled");

    /* Exact counts. */
    reset_counters();
    wrmsr(MSR_FIXED_CTR_CTRL, 0x1);                                    /* fixed 0: OS */
    wrmsr(MSR_PERFEVTSEL0, EVENT_BRANCHES | EVTSEL_OS | EVTSEL_EN);   /* PMC0: branches */
    wrmsr(MSR_PERFEVTSEL0 + 1, EVENT_CORE_CYCLES | EVTSEL_OS | EVTSEL_EN);
    run_loop(0x3 | (1ull << 32), 1000);
    report(rdmsr(MSR_FIXED_CTR0) == 2005, "fixed counter 0 counts exactly 2n+5 instructions");
    report(rdmsr(MSR_PMC0) == 1000, "PMC0 counts the n branches of the loop");
    report(rdmsr(MSR_PMC0 + 1) == 2005, "unhalted core cycles: one per instruction");
    report(rdpmc(0) == 1000 && rdpmc((1u << 30) | 0) == 2005, "RDPMC reads general and fixed counters");

    reset_counters();
    wrmsr(MSR_PERFEVTSEL0, EVENT_BRANCH_MISSES | EVTSEL_OS | EVTSEL_EN);
    run_loop(0x1, 1000);
    const uint64_t misses = rdmsr(MSR_PMC0);
    report(misses == 2, "a fresh loop branch mispredicts twice: first taken, last not taken");

    reset_counters();
    wrmsr(MSR_FIXED_CTR_CTRL, 0x2); /* USR only */
    run_loop(1ull << 32, 1000);
    report(rdmsr(MSR_FIXED_CTR0) == 0, "a USR-only counter ignores ring 0");

    /* Ring 3 and the USR/OS split. */
    sdk_enable_user();
    reset_counters();
    wrmsr(MSR_FIXED_CTR_CTRL, 0x2);  /* fixed 0: USR */
    wrmsr(MSR_FIXED_CTR_CTRL, 0x12); /* fixed 1: OS */
    wrmsr(MSR_GLOBAL_CTRL, 3ull << 32);
    sdk_run_user(user_loop, sdk_user_stack());
    wrmsr(MSR_GLOBAL_CTRL, 0);
    const uint64_t usr = rdmsr(MSR_FIXED_CTR0), os = rdmsr(MSR_FIXED_CTR0 + 1);
    report(usr >= 4000 && usr < 20000, "USR counts the ring-3 loop");
    report(os > 0 && os < 400, "OS counts only the ring-0 entry and exit paths");

    /* Counter aliases and reserved bits. */
    wrmsr(MSR_PMC0, 0x80000000);
    report(rdmsr(MSR_PMC0) == 0xFFFF80000000ull, "IA32_PMC0 writes sign-extend bit 31 to 48 bits");
    wrmsr(MSR_A_PMC0, 0x123456789ABull);
    report(rdmsr(MSR_PMC0) == 0x123456789ABull, "IA32_A_PMC0 writes all 48 bits");
    report(wrmsr_faults(MSR_A_PMC0, 1ull << 48), "#GP: IA32_A_PMC0 beyond 48 bits");
    report(wrmsr_faults(MSR_PERFEVTSEL0, 1ull << 32), "#GP: PERFEVTSEL0 reserved bit 32");
    report(wrmsr_faults(MSR_FIXED_CTR_CTRL, 1u << 2), "#GP: FIXED_CTR_CTRL AnyThread");
    report(wrmsr_faults(MSR_GLOBAL_CTRL, 1u << 4), "#GP: GLOBAL_CTRL bit of a counter that does not exist");
    report(wrmsr_faults(MSR_GLOBAL_STATUS, 1), "#GP: GLOBAL_STATUS is read-only");
    report(rdmsr_faults(MSR_PMC0 + 4) && rdmsr_faults(MSR_FIXED_CTR0 + 3), "#GP: counters that do not exist");
    report(wrmsr_faults(MSR_PERF_CAPABILITIES, caps), "#GP: PERF_CAPABILITIES is read-only");

    /* RDPMC. */
    report(rdpmc_faults(4), "#GP: RDPMC of general counter 4");
    report(rdpmc_faults((1u << 30) | 3), "#GP: RDPMC of fixed counter 3");
    /* SDM vol. 2, RDPMC: any index past the counters CPUID leaf 0AH lists is #GP(0). */
    report(rdpmc_faults(0x3FFFFFFF) && rdpmc_faults((1u << 30) | 0x3FFFFFFF),
           "#GP: RDPMC of counter 0x3fffffff (general and fixed)");
    /* ECX bits 31:16 are the counter type (0 general, 0x4000 fixed); bit 31, the old "fast
     * read" flag, is no type on an architectural PMU: #GP for both kinds, as under KVM. */
    report(rdpmc_faults((1u << 31) | 0) && rdpmc_faults((1u << 31) | (1u << 30) | 0),
           "#GP: RDPMC with ECX bit 31 (general and fixed)");
    report(rdpmc_faults(0x20000000u) && rdpmc_faults(0x10000u),
           "#GP: RDPMC of another counter type (0x2000, 0x0001)");
    report(rdpmc_faults(1u << 29) && rdpmc_faults((1u << 30) | (1u << 29)),
           "#GP: RDPMC of counter 1 << 29 (general and fixed)");
    wrmsr(MSR_A_PMC0, 77);
    sdk_on_vector(13, on_user_gp, 0);
    user_count = 1;
    report(sdk_run_user(user_rdpmc, sdk_user_stack()) == 13 && user_count == 1,
           "#GP: RDPMC at CPL 3 with CR4.PCE clear");
    sdk_on_vector(13, 0, 0);
    const uint64_t cr4 = read_cr4();
    write_cr4(cr4 | (1u << 8));
    user_count = 0;
    sdk_run_user(user_rdpmc, sdk_user_stack());
    report(user_count == 77, "RDPMC at CPL 3 with CR4.PCE set");
    write_cr4(cr4);

    /* Overflow: GLOBAL_STATUS and a PMI through LVT PMC. */
    APIC_SVR = 0x1FF;
    sdk_on_vector(PMI_VECTOR, on_pmi, 0);
    APIC_LVT_PMC = PMI_VECTOR;
    reset_counters();
    wrmsr(MSR_A_PMC0, (1ull << 48) - 50);
    wrmsr(MSR_PERFEVTSEL0, EVENT_INSTRUCTIONS | EVTSEL_OS | EVTSEL_EN | EVTSEL_INT);
    __asm__ volatile("sti");
    run_loop(0x1, 1000);
    __asm__ volatile("cli");
    report(pmis == 1, "counter overflow raises one PMI (fixed vector)");
    report((status_in_pmi & 1) != 0, "GLOBAL_STATUS bit 0 is set in the PMI handler");
    report(lvt_in_pmi == (PMI_VECTOR | APIC_LVT_MASKED), "LVT PMC is masked on delivery");
    const uint64_t after = rdmsr(MSR_PMC0);
    report(after >= 2005 - 50 && after < 10000, "the counter wrapped and kept counting");
    wrmsr(MSR_GLOBAL_OVF_CTRL, 1);
    report(rdmsr(MSR_GLOBAL_STATUS) == 0, "GLOBAL_OVF_CTRL clears the overflow bit");
    report(wrmsr_faults(MSR_GLOBAL_OVF_CTRL, 1u << 4), "#GP: GLOBAL_OVF_CTRL reserved bit");

    /* Version 4: GLOBAL_STATUS_SET and GLOBAL_INUSE; before it, neither exists and
     * GLOBAL_OVF_CTRL has no LBR_Frz bit. */
    if (pmu_caps().version >= 4) {
        wrmsr(MSR_GLOBAL_STATUS_SET, 0x2 | (1ull << 33) | GLOBAL_STATUS_LBR_FRZ);
        report(rdmsr(MSR_GLOBAL_STATUS) == (0x2 | (1ull << 33) | GLOBAL_STATUS_LBR_FRZ),
               "v4: GLOBAL_STATUS_SET sets overflow bits and LBR_Frz");
        report(pmis == 1, "v4: ... without raising a PMI");
        report(rdmsr(MSR_GLOBAL_STATUS_SET) == 0, "v4: GLOBAL_STATUS_SET reads 0");
        wrmsr(MSR_GLOBAL_STATUS_RESET, 0x2 | (1ull << 33) | GLOBAL_STATUS_LBR_FRZ);
        report(rdmsr(MSR_GLOBAL_STATUS) == 0, "v4: GLOBAL_STATUS_RESET clears them");
        report(wrmsr_faults(MSR_GLOBAL_STATUS_SET, 1ull << 59) &&
                   wrmsr_faults(MSR_GLOBAL_STATUS_RESET, 1ull << 59),
               "#GP: CTR_Frz (bit 59) in SET and RESET: FREEZE_PERFMON_ON_PMI is not in the model");
        report(wrmsr_faults(MSR_GLOBAL_STATUS_SET, 1ull << 63) &&
                   !wrmsr_faults(MSR_GLOBAL_STATUS_RESET, 3ull << 62),
               "v4: CondChgd is RESET's only: #GP in SET; OvfBuf and CondChgd reset without #GP");
        reset_counters();
        wrmsr(MSR_PERFEVTSEL0 + 2, EVENT_BRANCHES | EVTSEL_USR);
        wrmsr(MSR_FIXED_CTR_CTRL, 0x9 << 4); /* fixed 1: OS, PMI */
        report(rdmsr(MSR_GLOBAL_INUSE) == ((1ull << 2) | (1ull << 33) | GLOBAL_INUSE_PMI),
               "v4: GLOBAL_INUSE: PERFEVTSEL2's event, fixed counter 1, a PMI enable");
        report(wrmsr_faults(MSR_GLOBAL_INUSE, 0), "#GP: GLOBAL_INUSE is read-only");
        reset_counters();
        report(rdmsr(MSR_GLOBAL_INUSE) == 0, "v4: GLOBAL_INUSE is 0 with nothing programmed");
    } else {
        report(rdmsr_faults(MSR_GLOBAL_STATUS_SET) && rdmsr_faults(MSR_GLOBAL_INUSE),
               "v3: #GP: GLOBAL_STATUS_SET and GLOBAL_INUSE do not exist");
        report(wrmsr_faults(MSR_GLOBAL_OVF_CTRL, GLOBAL_STATUS_LBR_FRZ),
               "v3: #GP: GLOBAL_OVF_CTRL has no LBR_Frz");
    }

    /* Masked LVT: the status bit is set, no interrupt. */
    reset_counters();
    pmis = 0;
    wrmsr(MSR_A_PMC0, (1ull << 48) - 50);
    wrmsr(MSR_PERFEVTSEL0, EVENT_INSTRUCTIONS | EVTSEL_OS | EVTSEL_EN | EVTSEL_INT);
    __asm__ volatile("sti");
    run_loop(0x1, 1000);
    __asm__ volatile("cli");
    report(pmis == 0 && (rdmsr(MSR_GLOBAL_STATUS) & 1), "masked LVT PMC: status set, no PMI");

    /* NMI delivery mode, from a fixed counter. */
    sdk_on_vector(2, on_nmi, 0);
    APIC_LVT_PMC = APIC_LVT_NMI;
    reset_counters();
    wrmsr(MSR_FIXED_CTR0, (1ull << 48) - 10);
    wrmsr(MSR_FIXED_CTR_CTRL, 0x9); /* OS, PMI */
    run_loop(1ull << 32, 100);
    report(nmis == 1, "a fixed counter's overflow PMI as an NMI (IF clear)");
    report((status_in_pmi & (1ull << 32)) != 0, "GLOBAL_STATUS bit 32 for fixed counter 0");
    report(lvt_in_pmi == (APIC_LVT_NMI | APIC_LVT_MASKED), "LVT PMC masked after the NMI");
    reset_counters();
    report_summary();
}
