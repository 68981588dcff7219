// The deterministic branch predictor whose misses the PMU counts and whose mispredict
// flags the LBR records carry (spec §2.1 leaves the model to the implementation;
// docs/lbr.md "The branch predictor"): 2-bit counters per conditional branch, a
// last-target table for indirect jumps and calls, and a 16-entry return stack. Direct
// jumps, direct calls and far branches are always predicted.
//
// Its state is a function of the branches retired in the current epoch only: every
// table starts afresh at the first prediction whose cycle count (the branch's retirement
// count, the LBR record's stamp) lies in a later epoch of kEpochInsns instructions than
// the one before. So the LBR unit can rebuild the mispredict flags of its newest records
// from a bounded stretch of branch history (lbr.h: the trace) instead of stepping the
// predictor at every branch as it retires, and both give the same flags.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

#include "cpu/decoded_insn.h"

namespace softkvm::cpu {

class BranchPredictor {
  public:
    static constexpr unsigned kEpochShift = 14;
    static constexpr uint64_t kEpochInsns = uint64_t{1} << kEpochShift;

    // A conditional branch at `from`, taken or not, retired at cycle count `now`: true if
    // mispredicted. Every counter starts an epoch weakly not taken.
    bool jcc(uint64_t from, bool taken, uint64_t now) {
        at(now);
        uint8_t& c = counter_[slot(from, kCounters)];
        const bool miss = (c >= 2) != taken;
        c = taken ? (c == 3 ? 3 : c + 1) : (c == 0 ? 0 : c - 1);
        return miss;
    }
    // A call pushes its return address `next`.
    void call(uint64_t next, uint64_t now) {
        at(now);
        ras_[ras_top_++ % kReturns] = next;
    }
    // An indirect jump or call: mispredicted unless it went where it went last time.
    bool indirect(uint64_t from, uint64_t target, uint64_t now) {
        at(now);
        uint64_t& t = target_[slot(from, kTargets)];
        const bool miss = t != target;
        t = target;
        return miss;
    }
    // A return: mispredicted unless it went to the address the last call pushed.
    bool ret(uint64_t target, uint64_t now) {
        at(now);
        return ras_[--ras_top_ % kReturns] != target;
    }
    // Any class, as the run loop sees a branch retire: `taken`, where it went (`target`),
    // `next` the instruction after it.
    bool resolve(BranchKind kind, uint64_t from, bool taken, uint64_t target, uint64_t next,
                 uint64_t now) {
        switch (kind) {
            case BranchKind::Jcc:
                return jcc(from, taken, now);
            case BranchKind::NearRelCall:
                call(next, now);
                return false;
            case BranchKind::NearIndCall:
                call(next, now);
                return indirect(from, target, now);
            case BranchKind::NearIndJmp:
                return indirect(from, target, now);
            case BranchKind::NearRet:
                return ret(target, now);
            default:
                return false;
        }
    }
    // The state is not known (a walk of the LBR trace starts part-way): the next
    // prediction starts an epoch whatever its count.
    void forget() { epoch_ = kNoEpoch; }

  private:
    static constexpr size_t kCounters = 4096, kTargets = 512, kReturns = 16;
    static constexpr uint64_t kNoEpoch = ~0ull;
    // A branch's entry in a table of n: its address's low bits, as a simple hardware
    // predictor indexes its tables.
    static size_t slot(uint64_t from, size_t n) { return from & (n - 1); }
    void at(uint64_t now) {
        if ((now >> kEpochShift) != epoch_) restart(now >> kEpochShift);
    }
    void restart(uint64_t epoch) {
        epoch_ = epoch;
        counter_.fill(1);
        target_.fill(0);
        ras_.fill(0);
        ras_top_ = 0;
    }

    uint64_t epoch_ = kNoEpoch;
    std::array<uint8_t, kCounters> counter_{};  // 0-3: 2 and 3 predict taken
    std::array<uint64_t, kTargets> target_{};
    std::array<uint64_t, kReturns> ras_{};
    uint32_t ras_top_ = 0;
};

}  // namespace softkvm::cpu
