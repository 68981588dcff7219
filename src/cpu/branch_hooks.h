// The CPU's per-block branch bookkeeping for the LBR unit, the branch predictor and the
// PMU (spec §2.1; SDM vol. 3 §17.11, §18.2), inline in the run loop (cpu.cc): while
// DEBUGCTL.LBR is set it runs after every block, so it costs one predictor update and one
// stack write per taken branch and nothing per instruction. The PMU's part and the rest
// of the bookkeeping are in branch_hooks.cc.
#pragma once
#include "cpu/cpu.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {

// `done` instructions of the block starting at `in` retired; the block began at RIP
// `rip_before` with CS base `cs_base` at CPL `cpl`. A block ends at its first branch, so
// only its last retired instruction can be one.
[[gnu::always_inline]] inline void Cpu::after_block(const DecodedInsn* in, size_t done,
                                                    uint64_t rip_before, uint64_t cs_base,
                                                    uint8_t cpl) {
    const DecodedInsn& last = in[done - 1];
    // The common case while the guest records: a branch, with the PMU off. The rest (and
    // the PMU's counting) out of line.
    if (last.branch != BranchKind::None && (s_.debugctl & msr::DEBUGCTL_LBR) && !pmu_.active())
        [[likely]]
        record_branch(last, rip_before + cs_base - in[0].block_off + last.block_off);
    else
        after_block_cold(in, done, rip_before, cs_base, cpl);
    soft_delivered_ = false;
}

// The block's last instruction, a branch at linear `from`, retired with DEBUGCTL.LBR set
// and the PMU off: the predictor's step for its class and its record.
[[gnu::always_inline]] inline void Cpu::record_branch(const DecodedInsn& last, uint64_t from) {
    const uint64_t to = s_.rip + seg_base_[CS];
    const uint64_t next = from + last.len;
    BranchPredictor& bp = lbr_.predictor();
    const BranchKind kind = last.branch;
    if (kind == BranchKind::Jcc) [[likely]] {
        // Only a Jcc can fall through. Taken or not is computed, never tested: the host
        // cannot predict the guest's outcomes any better than the guest's own predictor.
        // A Jcc to the next instruction (rel 0) leaves RIP there either way; taken, it is
        // a taken branch all the same, and the LBR stack records every taken branch (SDM
        // vol. 3, "Last Branch Record Stack"): its condition decides.
        unsigned taken = to != next;
        if (last.op[0].value == 0) [[unlikely]]
            taken = jump_to_next_taken(last);
        const unsigned miss = bp.jcc(from, taken);
        return lbr_.record_unpopped(from, to, kind, taken, s_.cpl, miss, icount_);
    }
    switch (kind) {
        case BranchKind::NearRelCall:
            bp.call(next);
            return lbr_.record_unpopped(from, to, kind, 1, s_.cpl, 0, icount_);
        case BranchKind::NearIndCall:
            bp.call(next);
            [[fallthrough]];
        case BranchKind::NearIndJmp:
            return lbr_.record_unpopped(from, to, kind, 1, s_.cpl, bp.indirect(from, to), icount_);
        case BranchKind::NearRet:
            return lbr_.record(from, to, kind, s_.cpl, bp.ret(to), icount_);
        case BranchKind::NearRelJmp:
            return lbr_.record_unpopped(from, to, kind, 1, s_.cpl, 0, icount_);
        default:
            // A far branch; INT n recorded itself when it was delivered (note_delivery).
            return lbr_.record_unpopped(from, to, kind, !soft_delivered_, s_.cpl, 0, icount_);
    }
}

}  // namespace softkvm::cpu
