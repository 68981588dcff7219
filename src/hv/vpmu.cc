// The vPMU side of emu's hv layer: PERF_CAPABILITIES exposure, the guest LBR event life
// cycle and the PMI through the local APIC (spec §2.2 and its softkvm mapping §2.3,
// following KVM's arch/x86/kvm/vmx/pmu_intel.c). The CPU's LBR unit plays the hardware;
// this file decides when the guest may use it.
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>

#include "cpu/msr_index.h"
#include "hv/vm.h"

namespace softkvm::hv {

namespace msr = cpu::msr;

void Vcpu::set_cpu_model(const cpu::CpuModel& m) {
    cpu_.set_model(m);
    cpu_.set_lbr_intercept(true);  // all LBR MSRs start intercepted
    lbr_event_ = LbrEvent::None;
}

Status Vcpu::set_perf_capabilities(uint64_t value) {
    if (!pdcm_) return make_error("PERF_CAPABILITIES: the guest CPUID has no PDCM", EINVAL);
    const uint64_t host = cpu::model_perf_capabilities(cpu_.model());
    const uint64_t fmt = value & msr::PERF_CAP_LBR_FMT;
    if (fmt && fmt != (host & msr::PERF_CAP_LBR_FMT))
        return make_error(fmt::format("LBR format {} does not match the {} model's format {}", fmt,
                                      cpu_.model().name, host & msr::PERF_CAP_LBR_FMT),
                          EINVAL);
    if (value & ~host)
        return make_error(fmt::format("PERF_CAPABILITIES {:#x}: bits the model lacks", value),
                          EINVAL);
    cpu_.set_perf_capabilities(value);
    return {};
}

bool Vcpu::guest_lbr_enabled() const {
    return pdcm_ && (cpu_.perf_capabilities() & msr::PERF_CAP_LBR_FMT) != 0;
}

// The first LBR access (or DEBUGCTL.LBR=1) creates the guest LBR event; while it is
// active the LBR MSRs pass through to the CPU's unit.
void Vcpu::lbr_create_event() {
    if (lbr_event_ != LbrEvent::None) return;
    lbr_event_ = LbrEvent::Active;
    ++lbr_stats_.created;
    cpu_.set_lbr_intercept(false);
    lbr_used_in_slice_ = true;
}

// End of a scheduling slice: an event the guest did not use, with DEBUGCTL.LBR clear, is
// released and the MSRs are intercepted again (KVM's lazy release of unused vPMCs).
void Vcpu::lbr_slice_end() {
    if (lbr_event_ != LbrEvent::Active) return;
    const bool used = cpu_.take_lbr_touched() || lbr_used_in_slice_;
    lbr_used_in_slice_ = false;
    if (used || (cpu_.debugctl() & msr::DEBUGCTL_LBR)) return;
    lbr_event_ = LbrEvent::None;
    ++lbr_stats_.released;
    cpu_.set_lbr_intercept(true);
}

void Vcpu::host_lbr_acquire(uint64_t lbr_select) {
    cpu::CpuState& s = cpu_.state();
    if (lbr_event_ == LbrEvent::Active) ++lbr_stats_.takeovers;
    lbr_denied_in_period_ = lbr_event_ == LbrEvent::Active;
    if (lbr_event_ != LbrEvent::HostOwned) guest_debugctl_ = cpu_.debugctl();
    lbr_event_ = LbrEvent::HostOwned;
    cpu_.set_lbr_intercept(true);
    cpu_.set_lbr_host_owned(true);  // the guest's LBR_Frz does not stop the host's records
    cpu_.lbr().clear();
    cpu_.lbr().write(msr::MSR_LBR_SELECT, lbr_select);
    cpu_.lbr().started(cpu_.instructions_retired());
    s.debugctl = (guest_debugctl_ & ~(msr::DEBUGCTL_LBR | msr::DEBUGCTL_FREEZE_LBRS_ON_PMI)) |
                 msr::DEBUGCTL_LBR;
}

void Vcpu::host_lbr_release() {
    if (lbr_event_ != LbrEvent::HostOwned) return;
    cpu_.lbr().clear();  // the host's records are not the guest's
    cpu_.set_lbr_host_owned(false);
    cpu_.set_debugctl(guest_debugctl_);
    lbr_event_ = LbrEvent::None;  // the next guest access creates the event again
}

std::vector<cpu::Lbr::Entry> Vcpu::host_lbr_read() const {
    std::vector<cpu::Lbr::Entry> out;
    const cpu::Lbr& l = cpu_.lbr();
    for (uint32_t k = 0; k < l.depth(); ++k) {
        const cpu::Lbr::Entry e = l.recent(k);
        if (!e.from && !e.to) break;
        out.push_back(e);
    }
    return out;
}

// A guest LBR access while the host owns the unit: "meaningless" (reads 0, writes
// dropped, no fault; one warning). An MSR beyond the depth still #GPs (returns false).
// The first such access of an ownership period is the guest event failing: a takeover.
bool Vcpu::lbr_host_denied(uint32_t index) {
    uint64_t ignored;
    if (cpu_.lbr().read(index, ignored) == cpu::MsrResult::Fault) return false;
    if (!lbr_warned_) {
        lbr_warned_ = true;
        std::fprintf(stderr,
                     "softkvm: vCPU %u: the host owns the LBR unit; the guest's LBR accesses "
                     "read 0 and its writes are dropped\n",
                     id_);
    }
    if (!lbr_denied_in_period_) {
        lbr_denied_in_period_ = true;
        ++lbr_stats_.takeovers;
    }
    ++lbr_stats_.dropped;
    return true;
}

cpu::MsrResult Vcpu::pmu_rdmsr(uint32_t index, uint64_t& value) {
    if (index == msr::IA32_PERF_CAPABILITIES)
        return pdcm_ ? cpu::MsrResult::NotMine : cpu::MsrResult::Fault;
    if (index == msr::IA32_DEBUGCTL) {
        if (lbr_event_ != LbrEvent::HostOwned) return cpu::MsrResult::NotMine;
        value = guest_debugctl_;
        return cpu::MsrResult::Handled;
    }
    if (!cpu::Lbr::owns(index)) return cpu::MsrResult::NotMine;
    ++lbr_stats_.intercepted;
    if (!guest_lbr_enabled()) return cpu::MsrResult::Fault;
    if (lbr_event_ == LbrEvent::HostOwned) {
        if (!lbr_host_denied(index)) return cpu::MsrResult::Fault;
        value = 0;
        return cpu::MsrResult::Handled;
    }
    lbr_create_event();
    return cpu::MsrResult::NotMine;
}

cpu::MsrResult Vcpu::pmu_wrmsr(uint32_t index, uint64_t value) {
    if (index == msr::IA32_PERF_CAPABILITIES) return cpu::MsrResult::Fault;  // read-only
    if (index == msr::IA32_DEBUGCTL) {
        const uint64_t lbr_bits = msr::DEBUGCTL_LBR | msr::DEBUGCTL_FREEZE_LBRS_ON_PMI;
        if ((value & lbr_bits) && !guest_lbr_enabled()) return cpu::MsrResult::Fault;
        if (lbr_event_ == LbrEvent::HostOwned) {
            // The guest's value is kept for it; the unit stays recording for the host, and
            // the guest's other bits (BTF, bus-lock detection) take effect as the CPU
            // allows them. (Linux sets bus-lock detection at boot: taking the whole value
            // would stop the host's recording.)
            const uint64_t others = value & ~lbr_bits;
            if (!cpu_.debugctl_writable(others)) return cpu::MsrResult::Fault;
            guest_debugctl_ = value;
            cpu_.set_debugctl(others | msr::DEBUGCTL_LBR);
            return cpu::MsrResult::Handled;
        }
        if (value & msr::DEBUGCTL_LBR) lbr_create_event();
        return cpu::MsrResult::NotMine;
    }
    if (!cpu::Lbr::owns(index)) return cpu::MsrResult::NotMine;
    ++lbr_stats_.intercepted;
    if (!guest_lbr_enabled()) return cpu::MsrResult::Fault;
    if (lbr_event_ == LbrEvent::HostOwned)
        return lbr_host_denied(index) ? cpu::MsrResult::Handled : cpu::MsrResult::Fault;
    lbr_create_event();
    return cpu::MsrResult::NotMine;
}

// A counter overflow with PMI enabled: through LVT PMC (vector or NMI). KVM's legacy
// freeze (PMU versions 2-3) clears the guest's DEBUGCTL.LBR with FREEZE_LBRS_ON_PMI; the
// CPU did that for its own DEBUGCTL, and the guest's copy is frozen here while the host
// owns the unit. On version 4 the CPU froze through GLOBAL_STATUS.LBR_Frz instead, which
// leaves DEBUGCTL.LBR at 1 (and, while the host owns the unit, stops nothing).
void Vcpu::pmi() {
    if (lbr_event_ == LbrEvent::HostOwned && !cpu_.pmu().streamlined_freeze() &&
        (guest_debugctl_ & msr::DEBUGCTL_FREEZE_LBRS_ON_PMI))
        guest_debugctl_ &= ~msr::DEBUGCTL_LBR;
    if (lapic_.deliver_pmi()) ++lbr_stats_.pmis;
    sync_apic();
}

}  // namespace softkvm::hv
