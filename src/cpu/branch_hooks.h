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
    // The common case while the guest records: a branch (DecodedInsn::record), with the
    // PMU off. The rest (and the PMU's counting) out of line. The run loop calls this
    // when DEBUGCTL.LBR or the PMU was on as the block began; neither changes before the
    // last instruction of a block that a branch ends (WRMSR ends its block; a PMI, an
    // event or the hv layer comes between blocks), so with the PMU off, LBR is on.
    if (last.record != BranchKind::None && !pmu_.active()) [[likely]]
        record_branch(last, rip_before + cs_base - in[0].block_off + last.block_off, cs_base);
    else
        after_block_cold(in, done, rip_before, cs_base, cpl);
}

// The block's last instruction, a branch at linear `from` (DecodedInsn::record not None),
// retired with DEBUGCTL.LBR set and the PMU off: handed to the LBR unit, which runs the
// predictor's step for its class and records it if taken. `cs_base`: the CS base the
// block ran with, which only a far branch changes.
[[gnu::always_inline]] inline void Cpu::record_branch(const DecodedInsn& last, uint64_t from,
                                                      uint64_t cs_base) {
    const uint64_t to = s_.rip + cs_base;
    const uint64_t next = from + last.len;
    const BranchKind kind = last.record;
    if (kind == BranchKind::Jcc) [[likely]] {
        // Only a Jcc can fall through, and RIP tells which way it went (record is None
        // for one to the next instruction).
        return lbr_.branch(kind, from, to, next, to != next, s_.cpl, icount_);
    }
    if (kind != BranchKind::Far) return lbr_.branch(kind, from, to, next, true, s_.cpl, icount_);
    // A far branch, to the new CS base; INT n recorded itself when it was delivered
    // (note_delivery), which only a far branch's record asks.
    const bool again = soft_delivered_;
    soft_delivered_ = false;
    lbr_.record(from, s_.rip + seg_base_[CS], again ? BranchKind::None : kind, s_.cpl, false,
                icount_);
}

}  // namespace softkvm::cpu
