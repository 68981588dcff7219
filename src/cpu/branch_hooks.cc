// LBR and PMU bookkeeping of the software CPU outside the per-block fast path
// (branch_hooks.h): interrupts and exceptions as far branches, the PMU's per-block and
// mid-block counting, RDPMC, and the PMI with FREEZE_LBRS_ON_PMI.
#include "cpu/branch_hooks.h"

#include <Zydis/Zydis.h>

#include "cpu/block.h"

namespace softkvm::cpu {

void Cpu::note_delivery(uint64_t from, uint64_t to, bool soft) {
    if (!(s_.debugctl & msr::DEBUGCTL_LBR)) return;
    // Interrupts and exceptions are recorded as far branches. INT n records here, with
    // its own address as FROM; the block-end bookkeeping then skips it. Its cycle count
    // includes it and the instructions of its block before it, as a branch at a block's
    // end counts itself (a fault's instruction did not retire, and a fault or an
    // interrupt is delivered between blocks).
    lbr_.record(from, to, BranchKind::Far, s_.cpl, false, retired_now() + (soft ? 1 : 0));
    if (soft) soft_delivered_ = true;
}

bool Cpu::jump_to_next_taken(const DecodedInsn& in) const {
    // Jcc and JrCXZ change nothing they test; LOOPcc tested the count it left in rCX.
    const uint64_t cx = read_gpr(RCX, in.addrsize);
    const bool zf = s_.rflags & FLAG_ZF;
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_JCXZ:
        case ZYDIS_MNEMONIC_JECXZ:
        case ZYDIS_MNEMONIC_JRCXZ:
            return cx == 0;
        case ZYDIS_MNEMONIC_LOOP:
            return cx != 0;
        case ZYDIS_MNEMONIC_LOOPE:
            return cx != 0 && zf;
        case ZYDIS_MNEMONIC_LOOPNE:
            return cx != 0 && !zf;
        default:
            return cond(in.cond);
    }
}

void Cpu::after_block_cold(const DecodedInsn* in, size_t done, uint64_t rip_before,
                           uint64_t cs_base, uint8_t cpl) {
    const DecodedInsn& last = in[done - 1];
    const BranchKind kind = last.branch;
    bool mispredicted = false;
    if (kind != BranchKind::None) {
        const bool lbr_on = s_.debugctl & msr::DEBUGCTL_LBR;
        if (lbr_on && !pmu_.active() && last.record != BranchKind::None) {
            record_branch(last, rip_before + cs_base + (last.block_off - in[0].block_off), cs_base);
        } else if (lbr_on || pmu_.counts_misses()) {
            // As record_branch does, with the PMU's branch-misses event.
            const uint64_t from = rip_before + (last.block_off - in[0].block_off);
            const uint64_t next = from + last.len;
            unsigned taken = (kind != BranchKind::Jcc) | (s_.rip != next);
            if (last.op[0].value == 0 && kind == BranchKind::Jcc) taken = jump_to_next_taken(last);
            const uint64_t to = s_.rip + seg_base_[CS];
            if (lbr_on) {
                // Only taken branches are recorded, and INT n recorded itself when it was
                // delivered (note_delivery).
                const bool keep = taken && !(kind == BranchKind::Far && soft_delivered_);
                mispredicted = lbr_.branch_now(kind, from + cs_base, to, next + cs_base, keep,
                                               s_.cpl, icount_);
            } else {
                mispredicted = lbr_.predictor().resolve(kind, from + cs_base, taken, to,
                                                        next + cs_base, icount_);
            }
        }
    }
    soft_delivered_ = false;
    if (pmu_.active()) pmu_after_block(done, cpl, kind != BranchKind::None, mispredicted);
    pmu_synced_ = done;
}

bool Cpu::trace_step(uint64_t rip, uint8_t cpl, Lbr::TraceStep& st) {
    // 64-bit code: linear = RIP. The translation it ran as was built for recording.
    uint64_t phys = 0;
    try {
        phys = fetch_phys(rip, cpl == 3);
    } catch (const GuestFault&) {
        return false;
    }
    const uint64_t key = (phys << 3) | Block::kRecordingKey | static_cast<uint64_t>(Mode::Long64);
    const Block* b = nullptr;
    if (const BlockSlot& slot = block_slots_[block_slot(key)]; slot.key == key) {
        b = slot.block;
    } else if (auto it = blocks_.find(key); it != blocks_.end()) {
        b = it->second.get();
    }
    if (!b || b->insns.empty()) return false;
    const DecodedInsn& last = b->insns.back();
    st.insns = static_cast<uint32_t>(b->insns.size());
    st.from = rip + (last.block_off - b->insns[0].block_off);
    st.next = st.from + last.len;
    st.kind = last.branch;
    st.target = st.next + static_cast<uint64_t>(last.op[0].value);
    return true;
}

void Cpu::pmu_after_block(size_t done, uint8_t cpl, bool branch, bool mispredicted) {
    if (pmu_.retire(done - pmu_synced_, cpl, branch, mispredicted)) raise_pmi();
}

void Cpu::pmu_catch_up(const DecodedInsn& at, bool inclusive) {
    if (!block_insns_) return;
    const size_t upto = static_cast<size_t>(&at - block_insns_) + (inclusive ? 1 : 0);
    if (upto > pmu_synced_) {
        if (pmu_.active() && pmu_.retire(upto - pmu_synced_, block_cpl_, false, false)) raise_pmi();
        pmu_synced_ = upto;
    }
}

uint64_t Cpu::rdpmc(const DecodedInsn& at, uint32_t ecx) {
    if (s_.cpl != 0 && (s_.cr0 & CR0_PE) && !(s_.cr4 & CR4_PCE)) fault(VEC_GP, 0);
    pmu_catch_up(at);
    uint64_t v = 0;
    if (!pmu_.rdpmc(ecx, v)) fault(VEC_GP, 0);
    return v;
}

// A counter with PMI enabled overflowed. With FREEZE_LBRS_ON_PMI the LBR unit stops, so
// the stack holds the branches that led to the overflow: on a version-4 PMU by setting
// GLOBAL_STATUS.LBR_Frz with DEBUGCTL.LBR left at 1 (the streamlined freeze, SDM vol. 3
// §17.4.7; Linux's driver then unfreezes by acknowledging the status), before it by
// clearing DEBUGCTL.LBR (the legacy freeze of spec §2.1).
void Cpu::raise_pmi() {
    if (s_.debugctl & msr::DEBUGCTL_FREEZE_LBRS_ON_PMI) {
        if (pmu_.streamlined_freeze()) {
            pmu_.freeze_lbr();
            sync_lbr_freeze();
        } else {
            s_.debugctl &= ~msr::DEBUGCTL_LBR;
        }
    }
    owner_.pmi();
}

void Cpu::sync_lbr_freeze() {
    if (pmu_.lbr_frozen() && !lbr_host_owned_) {
        if (s_.debugctl & msr::DEBUGCTL_LBR) {
            lbr_.drain_trace();  // records before the freeze are kept
            s_.debugctl &= ~msr::DEBUGCTL_LBR;
            lbr_held_ = true;
        }
    } else if (lbr_held_) {
        lbr_held_ = false;
        s_.debugctl |= msr::DEBUGCTL_LBR;
        lbr_.started(retired_now());
    }
}

void Cpu::set_debugctl(uint64_t v) {
    // Mid-block (WRMSR), the instructions the block retired before count too, as in
    // clock(): elapsed cycles must not depend on where the engines start blocks.
    if ((v & ~debugctl()) & msr::DEBUGCTL_LBR) lbr_.started(retired_now());
    lbr_held_ = false;
    s_.debugctl = v;
    sync_lbr_freeze();
    debugctl_written();
}

void Cpu::set_lbr_host_owned(bool on) {
    lbr_host_owned_ = on;
    sync_lbr_freeze();
}

}  // namespace softkvm::cpu
