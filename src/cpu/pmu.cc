// The architectural PMU (SDM vol. 3 §18.2). MSR layouts and the bits that #GP follow
// KVM's Intel vPMU (arch/x86/kvm/vmx/pmu_intel.c), spec §2.2.
#include "cpu/pmu.h"

#include <algorithm>

#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

constexpr int kGp = kPmuGpCounters;
constexpr int kFixed = kPmuFixedCounters;
constexpr uint64_t kGlobalBits =
    ((1ull << kGp) - 1) | (((1ull << kFixed) - 1) << msr::GLOBAL_FIXED_SHIFT);
// FIXED_CTR_CTRL: OS, USR and PMI of each fixed counter are writable.
constexpr uint64_t kFixedCtrlWritable = 0xBBB;

// Version 4: what GLOBAL_STATUS_RESET clears and GLOBAL_STATUS_SET sets (msr_index.h).
constexpr uint64_t kStatusResetBits = kGlobalBits | msr::GLOBAL_STATUS_LBR_FRZ |
                                      msr::GLOBAL_STATUS_OVF_BUF | msr::GLOBAL_STATUS_COND_CHGD;
constexpr uint64_t kStatusSetBits = kGlobalBits | msr::GLOBAL_STATUS_LBR_FRZ;
constexpr uint64_t kEvtselEvent = 0xFF;

}  // namespace

void Pmu::reset() {
    const uint8_t version = version_;
    *this = Pmu{};
    version_ = version;
    global_ctrl_ = (1ull << kGp) - 1;
}

void Pmu::set_version(uint8_t v) {
    version_ = v;
    reset();
}

uint64_t Pmu::inuse() const {
    uint64_t v = 0;
    for (int k = 0; k < kGp; ++k) {
        if (evtsel_[k] & kEvtselEvent) v |= 1ull << k;
        if (evtsel_[k] & msr::EVTSEL_INT) v |= msr::GLOBAL_INUSE_PMI;
    }
    for (int f = 0; f < kFixed; ++f) {
        const uint64_t ctl = fixed_ctrl_ >> (4 * f);
        if (ctl & (msr::FIXED_CTRL_OS | msr::FIXED_CTRL_USR))
            v |= 1ull << (msr::GLOBAL_FIXED_SHIFT + f);
        if (ctl & msr::FIXED_CTRL_PMI) v |= msr::GLOBAL_INUSE_PMI;
    }
    return v;
}

bool Pmu::owns(uint32_t i) {
    return (i >= msr::IA32_PMC0 && i < msr::IA32_PMC0 + kGp) ||
           (i >= msr::IA32_A_PMC0 && i < msr::IA32_A_PMC0 + kGp) ||
           (i >= msr::IA32_PERFEVTSEL0 && i < msr::IA32_PERFEVTSEL0 + kGp) ||
           (i >= msr::IA32_FIXED_CTR0 && i < msr::IA32_FIXED_CTR0 + kFixed) ||
           i == msr::IA32_FIXED_CTR_CTRL || i == msr::IA32_PERF_GLOBAL_STATUS ||
           i == msr::IA32_PERF_GLOBAL_CTRL || i == msr::IA32_PERF_GLOBAL_OVF_CTRL ||
           i == msr::IA32_PERF_GLOBAL_STATUS_SET || i == msr::IA32_PERF_GLOBAL_INUSE;
}

MsrResult Pmu::read(uint32_t i, uint64_t& v) const {
    if (i >= msr::IA32_PMC0 && i < msr::IA32_PMC0 + kGp)
        v = ctr_[i - msr::IA32_PMC0].value;
    else if (i >= msr::IA32_A_PMC0 && i < msr::IA32_A_PMC0 + kGp)
        v = ctr_[i - msr::IA32_A_PMC0].value;
    else if (i >= msr::IA32_PERFEVTSEL0 && i < msr::IA32_PERFEVTSEL0 + kGp)
        v = evtsel_[i - msr::IA32_PERFEVTSEL0];
    else if (i >= msr::IA32_FIXED_CTR0 && i < msr::IA32_FIXED_CTR0 + kFixed)
        v = ctr_[kGp + i - msr::IA32_FIXED_CTR0].value;
    else if (i == msr::IA32_FIXED_CTR_CTRL)
        v = fixed_ctrl_;
    else if (i == msr::IA32_PERF_GLOBAL_STATUS)
        v = global_status_;
    else if (i == msr::IA32_PERF_GLOBAL_CTRL)
        v = global_ctrl_;
    else if (i == msr::IA32_PERF_GLOBAL_OVF_CTRL)
        v = 0;  // write-only in effect: KVM reads it as 0 (and GLOBAL_STATUS_RESET too)
    else if (i == msr::IA32_PERF_GLOBAL_STATUS_SET)
        return streamlined_freeze() ? (v = 0, MsrResult::Handled) : MsrResult::Fault;
    else if (i == msr::IA32_PERF_GLOBAL_INUSE)
        return streamlined_freeze() ? (v = inuse(), MsrResult::Handled) : MsrResult::Fault;
    else
        return MsrResult::NotMine;
    return MsrResult::Handled;
}

MsrResult Pmu::write(uint32_t i, uint64_t v) {
    if (i >= msr::IA32_PMC0 && i < msr::IA32_PMC0 + kGp) {
        // The legacy alias writes bits 31:0 and sign-extends bit 31 (SDM §18.2.6).
        ctr_[i - msr::IA32_PMC0].value =
            static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v))) & kCounterMask;
    } else if (i >= msr::IA32_A_PMC0 && i < msr::IA32_A_PMC0 + kGp) {
        if (v & ~kCounterMask) return MsrResult::Fault;  // full width: bits above 47 #GP
        ctr_[i - msr::IA32_A_PMC0].value = v;
    } else if (i >= msr::IA32_PERFEVTSEL0 && i < msr::IA32_PERFEVTSEL0 + kGp) {
        if (v & msr::EVTSEL_RESERVED) return MsrResult::Fault;
        evtsel_[i - msr::IA32_PERFEVTSEL0] = v;
    } else if (i >= msr::IA32_FIXED_CTR0 && i < msr::IA32_FIXED_CTR0 + kFixed) {
        if (v & ~kCounterMask) return MsrResult::Fault;
        ctr_[kGp + i - msr::IA32_FIXED_CTR0].value = v;
    } else if (i == msr::IA32_FIXED_CTR_CTRL) {
        if (v & ~kFixedCtrlWritable) return MsrResult::Fault;
        fixed_ctrl_ = v;
    } else if (i == msr::IA32_PERF_GLOBAL_STATUS) {
        return MsrResult::Fault;  // read-only
    } else if (i == msr::IA32_PERF_GLOBAL_CTRL) {
        if (v & ~kGlobalBits) return MsrResult::Fault;
        global_ctrl_ = v;
    } else if (i == msr::IA32_PERF_GLOBAL_OVF_CTRL) {
        // GLOBAL_OVF_CTRL (versions 2-3) clears overflow bits; version 4's
        // GLOBAL_STATUS_RESET also clears LBR_Frz, which unfreezes the LBR stack.
        if (v & ~(streamlined_freeze() ? kStatusResetBits : kGlobalBits)) return MsrResult::Fault;
        global_status_ &= ~v;
    } else if (i == msr::IA32_PERF_GLOBAL_STATUS_SET) {
        // Sets status bits (a VMM restoring a guest's state); no PMI is raised.
        if (!streamlined_freeze() || (v & ~kStatusSetBits)) return MsrResult::Fault;
        global_status_ |= v;
    } else if (i == msr::IA32_PERF_GLOBAL_INUSE) {
        return MsrResult::Fault;  // read-only (or absent before version 4)
    } else {
        return MsrResult::NotMine;
    }
    refresh();
    return MsrResult::Handled;
}

Pmu::Event Pmu::decode_event(uint64_t evtsel) {
    switch (evtsel & 0xFFFF) {
        case msr::EVENT_INSTRUCTIONS:
            return Event::Instructions;
        case msr::EVENT_CORE_CYCLES:
        case msr::EVENT_REF_CYCLES:
            return Event::Cycles;  // one cycle per instruction: both are the clock
        case msr::EVENT_BRANCHES:
            return Event::Branches;
        case msr::EVENT_BRANCH_MISSES:
            return Event::BranchMisses;
        default:
            return Event::None;  // events the model does not have count nothing
    }
}

// Recomputes what each counter counts from the control MSRs.
void Pmu::refresh() {
    active_ = counts_misses_ = false;
    for (int k = 0; k < kGp + kFixed; ++k) {
        Counter& c = ctr_[k];
        const int bit = k < kGp ? k : msr::GLOBAL_FIXED_SHIFT + (k - kGp);
        const bool global = (global_ctrl_ >> bit) & 1;
        if (k < kGp) {
            const uint64_t e = evtsel_[k];
            c.event = (global && (e & msr::EVTSEL_EN)) ? decode_event(e) : Event::None;
            c.usr = e & msr::EVTSEL_USR, c.os = e & msr::EVTSEL_OS, c.pmi = e & msr::EVTSEL_INT;
        } else {
            const int f = k - kGp;
            const uint64_t ctl = (fixed_ctrl_ >> (4 * f)) & 0xF;
            // Fixed counters: instructions retired, core cycles, reference cycles.
            static constexpr Event kFixedEvent[] = {Event::Instructions, Event::Cycles,
                                                    Event::Cycles};
            c.event = global && (ctl & 3) ? kFixedEvent[f] : Event::None;
            c.usr = ctl & msr::FIXED_CTRL_USR, c.os = ctl & msr::FIXED_CTRL_OS;
            c.pmi = ctl & msr::FIXED_CTRL_PMI;
        }
        if (!c.usr && !c.os) c.event = Event::None;
        if (c.event != Event::None) active_ = true;
        if (c.event == Event::BranchMisses) counts_misses_ = true;
    }
}

uint64_t Pmu::instructions_to_overflow(uint8_t cpl) const {
    uint64_t n = kNever;
    for (const Counter& c : ctr_) {
        if (c.event != Event::Instructions && c.event != Event::Cycles) continue;
        if (!(cpl == 0 ? c.os : c.usr)) continue;
        n = std::min(n, kCounterMask + 1 - c.value);
    }
    return n;
}

bool Pmu::retire(uint64_t n, uint8_t cpl, bool branch, bool mispredicted) {
    bool pmi = false;
    for (int k = 0; k < kGp + kFixed; ++k) {
        Counter& c = ctr_[k];
        if (c.event == Event::None || !(cpl == 0 ? c.os : c.usr)) continue;
        uint64_t d = 0;
        switch (c.event) {
            case Event::Instructions:
            case Event::Cycles:
                d = n;
                break;
            case Event::Branches:
                d = branch;
                break;
            case Event::BranchMisses:
                d = mispredicted;
                break;
            case Event::None:
                break;
        }
        const uint64_t sum = c.value + d;
        c.value = sum & kCounterMask;
        if (sum > kCounterMask) {
            global_status_ |= 1ull << (k < kGp ? k : msr::GLOBAL_FIXED_SHIFT + (k - kGp));
            pmi |= c.pmi;
        }
    }
    return pmi;
}

bool Pmu::rdpmc(uint32_t ecx, uint64_t& v) const {
    const uint32_t idx = ecx & msr::RDPMC_INDEX_MASK;
    switch (ecx & msr::RDPMC_TYPE_MASK) {
        case msr::RDPMC_TYPE_GP:
            if (idx >= kGp) return false;
            v = ctr_[idx].value;
            return true;
        case msr::RDPMC_TYPE_FIXED:
            if (idx >= kFixed) return false;
            v = ctr_[kGp + idx].value;
            return true;
        default:
            return false;  // bit 31 or another type: #GP for general and fixed alike
    }
}

}  // namespace softkvm::cpu
