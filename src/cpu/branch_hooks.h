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
    const BranchKind kind = last.branch;
    bool mispredicted = false;
    bool traced = false;
    if (tracing_) [[unlikely]] {
        // Translated code ran blocks before this one and recorded them (kChainTrace): this
        // block began at the RIP of its translation (trace_rip_), and it may have recorded
        // its own end (its successor lookup failed or the successor's chaining entry sent
        // it back here).
        tracing_ = false;
        traced = lbr_.trace_done();
        rip_before = trace_rip_;
    }
    if (kind != BranchKind::None && !traced) {
        const bool lbr_on = s_.debugctl & msr::DEBUGCTL_LBR;
        if (lbr_on || pmu_.counts_misses()) {
            // The branch's own RIP from the offsets the block builder stored.
            const uint64_t from = rip_before + (last.block_off - in[0].block_off);
            const uint64_t next = from + last.len;
            // Only a Jcc can fall through. Taken or not is computed, never tested: the host
            // cannot predict the guest's outcomes any better than the guest's own predictor.
            // A Jcc to the next instruction (rel 0) leaves RIP there either way; taken, it
            // is a taken branch all the same, and the LBR stack records every taken branch
            // (SDM vol. 3, "Last Branch Record Stack"): its condition decides.
            unsigned taken = (kind != BranchKind::Jcc) | (s_.rip != next);
            if (last.op[0].value == 0 && kind == BranchKind::Jcc) [[unlikely]]
                taken = jump_to_next_taken(last);
            const uint64_t to = s_.rip + seg_base_[CS];
            mispredicted =
                lbr_.predictor().resolve(kind, from + cs_base, taken, to, next + cs_base);
            if (lbr_on) {
                // Only taken branches are recorded, and INT n recorded itself when it was
                // delivered (note_delivery): the others go in as None, which nothing keeps.
                const unsigned keep = taken & !soft_delivered_;
                const auto as = static_cast<BranchKind>(static_cast<unsigned>(kind) * keep);
                lbr_.record(from + cs_base, to, as, s_.cpl, mispredicted, icount_);
            }
        }
    }
    soft_delivered_ = false;
    if (pmu_.active()) pmu_after_block(done, cpl, kind != BranchKind::None, mispredicted);
    pmu_synced_ = done;
}

}  // namespace softkvm::cpu
