// The performance-monitoring unit of the software CPU (SDM vol. 3 ch. 18, architectural
// PMU): 4 general-purpose and 3 fixed 48-bit counters, GLOBAL_CTRL/STATUS/OVF_CTRL. Events
// are counted exactly in virtual time: one core (and reference) cycle per retired
// instruction, branches and branch misses from the CPU's predictor model.
#pragma once
#include <array>
#include <cstdint>

#include "cpu/cpu_model.h"
#include "cpu/msr_index.h"
#include "cpu/owner.h"

namespace softkvm::cpu {

class Translator;

class Pmu {
  public:
    static constexpr uint64_t kCounterMask = (1ull << kPmuCounterBits) - 1;
    static constexpr uint64_t kNever = ~0ull;

    // Reset state (SDM vol. 3 §18.2.2: GLOBAL_CTRL enables the general counters). The
    // version stays.
    void reset();
    // The architectural PMU version (CPUID.0AH:EAX[7:0]); from 4 on, GLOBAL_STATUS_SET,
    // GLOBAL_INUSE and the streamlined LBR freeze exist (msr_index.h). Resets the PMU.
    void set_version(uint8_t v);
    uint8_t version() const { return version_; }
    // FREEZE_LBRS_ON_PMI freezes through GLOBAL_STATUS.LBR_Frz (version 4 and later).
    bool streamlined_freeze() const { return version_ >= msr::kPmuStreamlinedFreezeVersion; }
    // GLOBAL_STATUS.LBR_Frz: the LBR stack is frozen.
    bool lbr_frozen() const { return global_status_ & msr::GLOBAL_STATUS_LBR_FRZ; }
    // A PMI with FREEZE_LBRS_ON_PMI on a version-4 PMU sets LBR_Frz.
    void freeze_lbr() { global_status_ |= msr::GLOBAL_STATUS_LBR_FRZ; }

    // PMU MSRs: NotMine if `index` is not one, Fault for #GP.
    MsrResult read(uint32_t index, uint64_t& value) const;
    MsrResult write(uint32_t index, uint64_t value);
    static bool owns(uint32_t index);

    // Some counter is enabled for an event the model counts.
    bool active() const { return active_; }
    // Some active counter counts branch misses (the predictor must run).
    bool counts_misses() const { return counts_misses_; }
    // Retired instructions at `cpl` before an instruction-driven counter overflows
    // (kNever if none would): the CPU stops its block there so the PMI is exact.
    uint64_t instructions_to_overflow(uint8_t cpl) const;
    // `n` instructions retired at `cpl`, of which the last was a branch (`branch`),
    // mispredicted or not. Returns true if a counter with PMI enabled overflowed.
    bool retire(uint64_t n, uint8_t cpl, bool branch, bool mispredicted);

    // RDPMC: ECX bits 31:16 the type (0 general, bit 30 fixed), bits 15:0 the index.
    // False (#GP) for another type, ECX bit 31 included, or an index past the counters.
    bool rdpmc(uint32_t ecx, uint64_t& value) const;

  private:
    friend class Translator;  // translated code reads active_ where blocks chain
    enum class Event : uint8_t { None, Instructions, Cycles, Branches, BranchMisses };
    struct Counter {
        uint64_t value = 0;
        Event event = Event::None;  // what it counts while enabled
        bool usr = false, os = false, pmi = false;
    };
    void refresh();
    static Event decode_event(uint64_t evtsel);
    uint64_t inuse() const;  // IA32_PERF_GLOBAL_INUSE

    std::array<uint64_t, kPmuGpCounters> evtsel_{};
    uint64_t fixed_ctrl_ = 0, global_ctrl_ = 0, global_status_ = 0;
    uint8_t version_ = msr::kPmuStreamlinedFreezeVersion;
    // General counters 0-3 then fixed counters 0-2, in GLOBAL_STATUS order.
    std::array<Counter, kPmuGpCounters + kPmuFixedCounters> ctr_{};
    bool active_ = false, counts_misses_ = false;
};

}  // namespace softkvm::cpu
