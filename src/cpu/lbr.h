// The last-branch-record unit of the software CPU (spec §2.1; SDM vol. 3 §18.4, §17.11):
// a stack of (FROM, TO, INFO) records in the model's format, LBR_SELECT filtering by CPL
// and branch class, call-stack mode, and TOS. The CPU calls record() for each taken
// branch, interrupt and exception while IA32_DEBUGCTL.LBR is set.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "cpu/decoded_insn.h"
#include "cpu/msr_index.h"
#include "cpu/owner.h"

namespace softkvm::cpu {

struct CpuModel;

class Lbr {
  public:
    struct Entry {
        uint64_t from = 0, to = 0, info = 0;
    };

    // Takes the format and depth of `m` and clears the stack (reset: zeros, spec §2.1).
    void configure(const CpuModel& m);
    void clear();

    // The LBR MSRs (select, TOS, and the FROM/TO/INFO ranges up to 32 entries, whether or
    // not the model has them): the hv layer intercepts exactly these.
    static bool owns(uint32_t index);
    // NotMine if not an LBR MSR; Fault for an entry beyond the depth, INFO without
    // format 5, or a reserved bit.
    MsrResult read(uint32_t index, uint64_t& value) const;
    MsrResult write(uint32_t index, uint64_t value);

    // A taken branch of class `kind` from linear `from` to linear `to`, landing at CPL
    // `cpl`; `now` is the core cycle count (LBR_INFO's elapsed cycles).
    void record(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool mispredicted,
                uint64_t now);
    // Recording starts (DEBUGCTL.LBR set): elapsed cycles count from here.
    void started(uint64_t now) { last_record_ = now; }

    uint32_t depth() const { return depth_; }
    uint32_t tos() const { return tos_; }
    uint64_t select() const { return select_; }
    // Entry `k` (0 = the most recent), decoded: plain linear addresses in from/to.
    Entry recent(uint32_t k) const;
    uint64_t records() const { return records_; }  // records written since reset

  private:
    // Formats 3-5 keep flags in FROM bits 63:61 and the address in bits 60:0.
    static constexpr uint64_t kFromAddr = (1ull << 61) - 1;
    uint64_t encode_from(uint64_t from, bool mispredicted) const {
        if (format_ < 3) return from;
        return (from & kFromAddr) | (mispredicted ? msr::LBR_MISPRED : 0);
    }
    static uint64_t decode_from(uint64_t v);

    uint8_t format_ = 0;
    uint32_t depth_ = 0;
    bool info_ = false;
    uint64_t select_ = 0;
    uint32_t tos_ = 0;
    uint64_t last_record_ = 0;
    uint64_t records_ = 0;
    std::array<Entry, msr::kLbrMaxDepth> e_{};
};

// The deterministic branch predictor whose misses the PMU counts and the LBR reports:
// 2-bit counters per conditional branch, a last-target table for indirect jumps and
// calls, and a 16-entry return stack. Direct jumps, direct calls and far branches are
// always predicted.
class BranchPredictor {
  public:
    // Returns true if the branch at `from` (not taken: `taken` false) was mispredicted.
    bool resolve(BranchKind kind, uint64_t from, bool taken, uint64_t target, uint64_t next);

  private:
    static constexpr size_t kCounters = 4096, kTargets = 512, kReturns = 16;
    static size_t slot(uint64_t from, size_t n) { return (from ^ (from >> 12)) & (n - 1); }
    std::array<uint8_t, kCounters> counter_ = [] {
        std::array<uint8_t, kCounters> a{};
        a.fill(1);  // weakly not taken
        return a;
    }();
    std::array<uint64_t, kTargets> target_{};
    std::array<uint64_t, kReturns> ras_{};
    uint32_t ras_top_ = 0;
};

// Inline: the CPU calls it for every taken branch while DEBUGCTL.LBR is set.
inline void Lbr::record(uint64_t from, uint64_t to, BranchKind kind, uint8_t cpl, bool mispredicted,
                        uint64_t now) {
    using namespace msr;
    if (!depth_) return;
    if (select_ & (cpl == 0 ? LBR_SELECT_CPL_EQ_0 : LBR_SELECT_CPL_NEQ_0)) return;
    // Class bits 2-8 follow BranchKind's order (Jcc = 1 ... Far = 7).
    if (select_ & (1ull << (static_cast<int>(kind) + 1))) return;
    if ((select_ & LBR_SELECT_CALLSTACK) && kind == BranchKind::NearRet) {
        // Call-stack mode: a return pops the call it returns from instead of recording.
        tos_ = (tos_ == 0 ? depth_ : tos_) - 1;
        return;
    }
    // No division on this path: it runs for every recorded branch.
    tos_ = tos_ + 1 == depth_ ? 0 : tos_ + 1;
    Entry& e = e_[tos_];
    e.from = encode_from(from, mispredicted);
    e.to = to;
    e.info =
        info_ ? ((mispredicted ? LBR_MISPRED : 0) | std::min(now - last_record_, LBR_INFO_CYCLES))
              : 0;
    last_record_ = now;
    ++records_;
}

}  // namespace softkvm::cpu
