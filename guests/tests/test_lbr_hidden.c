/* Conformance: guest LBR hidden (softkvm run --lbr-fmt 0, as QEMU's lbr-fmt=0 under KVM,
 * spec §2.2): PERF_CAPABILITIES reports format 0, and DEBUGCTL.LBR, FREEZE_LBRS_ON_PMI
 * and every LBR MSR #GP; BTF stays writable and the PMU counters still work. */
#include "pmu.h"

int main(void) {
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    report((c & (1u << 15)) != 0, "PDCM is still set");
    report((rdmsr(MSR_PERF_CAPABILITIES) & 0x3F) == 0, "PERF_CAPABILITIES: LBR format 0");
    report(wrmsr_faults(MSR_DEBUGCTL, DEBUGCTL_LBR), "#GP: DEBUGCTL.LBR without guest LBR");
    report(wrmsr_faults(MSR_DEBUGCTL, DEBUGCTL_FREEZE_LBRS_ON_PMI),
           "#GP: FREEZE_LBRS_ON_PMI without guest LBR");
    report(!wrmsr_faults(MSR_DEBUGCTL, DEBUGCTL_BTF) && rdmsr(MSR_DEBUGCTL) == DEBUGCTL_BTF,
           "BTF is writable");
    wrmsr(MSR_DEBUGCTL, 0);
    report(rdmsr_faults(MSR_LBR_SELECT) && rdmsr_faults(MSR_LBR_TOS), "#GP: LBR_SELECT, LBR_TOS");
    report(rdmsr_faults(MSR_LBR_FROM0) && wrmsr_faults(MSR_LBR_TO0, 0), "#GP: FROM_0, TO_0");
    wrmsr(MSR_A_PMC0, 0);
    wrmsr(MSR_PERFEVTSEL0, EVENT_INSTRUCTIONS | EVTSEL_OS | EVTSEL_EN);
    for (volatile int k = 0; k < 100; ++k) {
    }
    wrmsr(MSR_PERFEVTSEL0, 0);
    report(rdmsr(MSR_PMC0) > 300, "the PMU counts without guest LBR");
    report_summary();
}
