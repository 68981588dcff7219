// LBR recording in translated code (emitter.h: emit_lbr_record; docs/lbr.md, "How
// recording works").
//
// While the guest records branches (ChainMode kChainTrace), a block whose instructions
// all run natively records its own end as it chains on, in the LBR unit's trace: a
// conditional branch's outcome as one bit shifted into RBP (the open trace word,
// Lbr::Shared::bits, under a sentinel bit), a 0 for a block that ends without a branch (a
// size limit), the target of an indirect branch or a return in the trace's target ring
// (its index in R15); a direct jump or call writes nothing. When the sentinel leaves bit
// 63 the word holds 64 outcomes: out of line, it is stored in the trace's next slot, and
// the slot after it gets where the next word's walk starts (the RIP the block went to,
// the count after the block, the target index, the CPL, the chain's block count).
// Everything else a record holds (FROM, a direct branch's TO, the class, the block's
// instruction count, the predictor's verdict) the unit finds from the blocks themselves
// when it walks the trace (lbr_trace.cc). Its branches are native in 64-bit mode only (CS
// base 0, linear = RIP); while recording, a block only runs at the RIP it was built at
// (Block::host_rip: the run loop checks it for the first block of a chain; a successor
// link holds it as trace_rip, the jump cache's way checks it), so the walk finds the
// block a RIP names. Where a block that recorded its end stops chaining, it notes so for
// the run loop (Lbr::trace_done_, emitter.h: refused_).
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/lbr.h"
#include "cpu/translate/emitter.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

namespace {

bool fits_imm32(uint64_t v) {
    return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v))) == v;
}

constexpr uint32_t kSlots = TraceRing::kSlots, kTargets = TraceRing::kTargets;

}  // namespace

void BlockEmitter::cmp_imm(const Xbyak::Reg64& r, uint64_t v) {
    if (fits_imm32(v)) {
        cmp(r, static_cast<uint32_t>(v));
    } else {
        mov(r8, v);
        cmp(r, r8);
    }
}

void BlockEmitter::store_imm(const Xbyak::Address& a, uint64_t v) {
    if (fits_imm32(v)) {
        mov(a, v);  // the sign-extended imm32 form (xbyak refuses uint32 values above 2^31)
    } else {
        mov(r8, v);
        mov(a, r8);
    }
}

bool BlockEmitter::lbr_native(const Block& b, JccWay way) const {
    const DecodedInsn& last = b.insns.back();
    const BranchKind kind = last.branch;
    bool native = kind == BranchKind::None;
    switch (kind) {
        case BranchKind::Jcc:
        case BranchKind::NearRelCall:
        case BranchKind::NearIndCall:
        case BranchKind::NearRet:
        case BranchKind::NearIndJmp:
        case BranchKind::NearRelJmp:
            native = mode_ == Mode::Long64;  // the modes with native branches (forms.h)
            break;
        default:  // far branches have no native form
            break;
    }
    // A Jcc to the next instruction where the exit does not know the way: RIP cannot
    // tell, the run loop asks its condition (Cpu::jump_to_next_taken).
    if (kind == BranchKind::Jcc && way == JccWay::Unknown && last.op[0].value == 0) native = false;
    return native;
}

void BlockEmitter::emit_recording_ways(Xbyak::Label& out, const std::function<void()>& body) {
    // kick_ and no_chain_ in one 16-bit compare (as emit_chain_exit's).
    const auto mode = [](ChainMode m) { return static_cast<uint32_t>(m) << 8; };
    cmp(word[rbx + off_.kick], mode(kChainTrace));
    jne(out, T_NEAR);
    body();
}

void BlockEmitter::emit_trace_bit(bool taken, const Xbyak::Reg64& to, size_t n) {
    // RBP = RBP * 2 + taken. The sentinel leaves bit 63 with the 64th bit: the carry.
    Xbyak::Label& full = block_label();
    Xbyak::Label& back = block_label();
    add(rbp, rbp);
    jc(full, T_NEAR);
    if (taken) or_(rbp, 1);
    L(back);
    cold_.push_back([this, &full, &back, &to, n, taken] {
        L(full);
        if (taken) or_(rbp, 1);
        // The word (64 outcomes, no sentinel) ends with this block: into slot widx, and
        // the next word starts after it, in slot widx + 1 (TraceSlot: 64 bytes).
        mov(rdx, qword[rbx + off_.lbr_ring]);
        mov(ecx, dword[rbx + off_.lbr_widx]);
        and_(ecx, kSlots - 1);
        shl(ecx, 6);
        lea(r8, ptr[rdx + rcx]);
        mov(esi, dword[rbx + off_.chained_blocks]);  // this block included
        mov(qword[r8 + off_.ring_bits], rbp);
        mov(byte[r8 + off_.ring_kind], TraceSlot::kFullWord);
        mov(dword[r8 + off_.ring_bend], esi);
        mov(ecx, dword[rbx + off_.lbr_widx]);  // (the ring wraps)
        add(ecx, 1);
        and_(ecx, kSlots - 1);
        shl(ecx, 6);
        add(rdx, rcx);
        mov(dword[rdx + off_.ring_bstart], esi);
        mov(qword[rdx + off_.ring_rip], to);
        mov(rsi, qword[rbx + off_.icount]);  // the count before this block
        add(rsi, static_cast<uint32_t>(n));
        mov(qword[rdx + off_.ring_stamp], rsi);
        mov(dword[rdx + off_.ring_tidx], r15d);
        movzx(esi, byte[rbx + off_.cpl]);
        mov(byte[rdx + off_.ring_cpl], sil);
        add(dword[rbx + off_.lbr_widx], 1);
        mov(ebp, 1);
        jmp(back, T_NEAR);
    });
}

bool BlockEmitter::emit_lbr_record(const Block& b, JccWay way, bool rip_in_r10) {
    const size_t n = b.insns.size();
    const DecodedInsn& last = b.insns.back();
    const BranchKind kind = last.branch;
    if (!lbr_native(b, way)) {  // the run loop records it
        jmp(exit_, T_NEAR);
        return false;
    }
    // RAX (R10 where the caller has it there): where the block went (a target the trace
    // keeps; the successor lookup's key).
    const Xbyak::Reg64& to = rip_in_r10 ? r10 : rax;
    if (!rip_in_r10) mov(rax, qword[rbx + off_.rip]);
    switch (kind) {
        case BranchKind::None:  // ended without a branch (its size limit): a 0
            // (Outside 64-bit mode a chain has no branch the trace holds: nothing.)
            if (mode_ == Mode::Long64) emit_trace_bit(false, to, n);
            return true;
        case BranchKind::Jcc: {
            if (way != JccWay::Unknown) {
                emit_trace_bit(way == JccWay::Taken, to, n);
                return true;
            }
            // RIP tells the way: the instruction after the branch, or its target.
            const uint64_t from = start_rip_ + (last.block_off - b.insns[0].block_off);
            Xbyak::Label taken, done;
            cmp_imm(to, from + last.len);
            jne(taken, T_NEAR);
            emit_trace_bit(false, to, n);
            jmp(done, T_NEAR);
            L(taken);
            emit_trace_bit(true, to, n);
            L(done);
            return true;
        }
        case BranchKind::NearIndCall:
        case BranchKind::NearIndJmp:
        case BranchKind::NearRet:
            // The target into the ring.
            mov(rdx, qword[rbx + off_.lbr_ring]);
            mov(ecx, r15d);
            and_(ecx, kTargets - 1);
            mov(qword[rdx + rcx * 8 + off_.ring_targets], to);
            add(r15d, 1);
            return true;
        default:  // direct calls and jumps: the block says where they went
            return true;
    }
}

}  // namespace softkvm::cpu
#endif
