// LBR recording in translated code (emitter.h: emit_lbr_record; docs/lbr.md).
//
// While the guest records branches (ChainMode kChainTrace, kChainTraceKept), a block whose
// instructions all run natively records its own end as it chains on, as Cpu::after_block would. Its
// branches are native in 64-bit mode only (CS base 0, linear = RIP), where the branch's
// address and the next instruction's are constants of the translation, given the RIP the
// block starts at: while recording, a block only runs at the RIP it was built at
// (Block::host_rip: the run loop checks it for the first block of a chain; a successor
// link holds it as trace_rip, the jump cache's way checks it). Its code runs the predictor step of
// BranchPredictor::resolve for the branch's class with those constants (a last Jcc's
// direction is the exit's own: emit_branch gives each way its exit), and writes the
// record to the LBR unit's log as Lbr::log() does. Only the guest's own outcome (an
// indirect target) is read at run time. Where a block that recorded its end stops
// chaining, it notes so for the run loop (Lbr::trace_done_, emitter.h: refused_).
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/lbr.h"
#include "cpu/translate/emitter.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

namespace {

bool fits_imm32(uint64_t v) {
    return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v))) == v;
}

// BranchPredictor::slot, for the tables' sizes.
constexpr size_t kCounters = 4096, kTargets = 512;
size_t slot(uint64_t from, size_t n) {
    return from & (n - 1);
}

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

void BlockEmitter::emit_recording_ways(const Block& b, JccWay way, Xbyak::Label& out,
                                       const std::function<void(bool kept)>& body) {
    // kick_ and no_chain_ in one 16-bit compare (as emit_chain_exit's).
    const auto mode = [](ChainMode m) { return static_cast<uint32_t>(m) << 8; };
    const BranchKind kind = b.insns.back().branch;
    const bool counts = lbr_native(b, way) && kind != BranchKind::None &&
                        !(kind == BranchKind::Jcc && way == JccWay::NotTaken);
    if (!counts) {
        // Nothing counted (a Jcc not taken, a block without a branch, a branch the run
        // loop records): one way for both modes.
        Xbyak::Label go;
        cmp(word[rbx + off_.kick], mode(kChainTraceKept));
        je(go, T_NEAR);
        cmp(word[rbx + off_.kick], mode(kChainTrace));
        jne(out, T_NEAR);
        L(go);
        body(true);
        return;
    }
    Xbyak::Label filtered;
    cmp(word[rbx + off_.kick], mode(kChainTraceKept));
    jne(filtered, T_NEAR);
    body(true);
    L(filtered);
    cmp(word[rbx + off_.kick], mode(kChainTrace));
    jne(out, T_NEAR);
    body(false);
}

void BlockEmitter::emit_log_write(const Lbr::Site& site, BranchKind kind, const Xbyak::Reg64& to,
                                  bool flags_in_dh, bool kept) {
    // EDI: the log's slot (the low byte of the count, RBP while recording translations
    // run: emitter.cc). The stamp: the count before the block (Cpu::after_block's
    // icount_ less the block's instructions, which the site adds).
    mov(rsi, qword[rbx + off_.icount]);
    mov(qword[rbx + rdi * 8 + off_.lbr_log_stamp], rsi);
    mov(dword[rbx + rdi * 4 + off_.lbr_log_site], lbr_sites_(site));
    if (!site.to_known) mov(qword[rbx + rdi * 8 + off_.lbr_log_to], to);
    if (flags_in_dh) mov(byte[rbx + rdi + off_.lbr_log_flags], dh);
    // Lbr::log: the slot is counted if the filter keeps the class at the chain's CPL.
    if (kept) {
        add(rbp, 1);
    } else {
        movzx(ecx, byte[rbx + off_.lbr_trace_keep + static_cast<int32_t>(kind)]);
        add(rbp, rcx);
    }
}

bool BlockEmitter::emit_lbr_record(const Block& b, JccWay way, bool rip_in_r10, bool kept) {
    const size_t n = b.insns.size();
    const DecodedInsn& last = b.insns.back();
    const BranchKind kind = last.branch;
    if (!lbr_native(b, way)) {  // the run loop records it
        jmp(exit_, T_NEAR);
        return false;
    }
    // The block began at start_rip_ (64-bit mode: linear = RIP): the run loop entered it
    // there, or the previous block's successor lookup checked it (Block::host_rip).
    const uint64_t from = start_rip_ + (last.block_off - b.insns[0].block_off);
    const uint64_t next = from + last.len;
    if (kind == BranchKind::NearRet) {
        // A return that call-stack mode pops: the run loop records it (Lbr::pop).
        cmp(byte[rbx + off_.lbr_trace_pop_ret], 0);
        jne(exit_, T_NEAR);
    }
    // RAX (R10 where the caller has it there): where the block went (the record's TO;
    // the successor lookup's key).
    const Xbyak::Reg64& to = rip_in_r10 ? r10 : rax;
    if (!rip_in_r10) mov(rax, qword[rbx + off_.rip]);
    if (kind == BranchKind::None) return true;  // ended without a branch (its size limit)

    // The predictor step (BranchPredictor::resolve) and the log's flags byte (Lbr::log;
    // the mispredict flag, Lbr::kLogMispred), then the record: the slot's site (Lbr::Site:
    // FROM, the block's size, a direct branch's TO, and that a direct jump or call is
    // always predicted), the count before the block, and what the site does not know (an
    // indirect branch's TO, the flags byte where the step leaves one). EDI: the log's next
    // slot (256 slots: the low byte of the record count), loaded on every way that records.
    Xbyak::Label done;
    const int32_t ras_top = off_.bp_ras_top;
    Lbr::Site site{from, 0, static_cast<uint32_t>(n), false, false};
    bool flags_in_dh = false;
    auto push_return = [&] {  // ras_[ras_top_++ % kReturns] = next
        mov(ecx, dword[rbx + ras_top]);
        add(dword[rbx + ras_top], 1);
        and_(ecx, 15);
        store_imm(qword[rbx + rcx * 8 + off_.bp_ras], next);
    };
    // A direct branch's target (64-bit mode: RIP-relative, sign-extended rel8/rel32),
    // where the block went when it was taken.
    const auto direct = [&] {
        site.to_known = true;
        site.to = next + static_cast<uint64_t>(static_cast<int64_t>(
                             static_cast<int32_t>(static_cast<uint32_t>(last.op[0].value))));
    };
    const Xbyak::Address log_flags = byte[rbx + rdi + off_.lbr_log_flags];
    if (kind != BranchKind::Jcc) movzx(edi, bpl);
    switch (kind) {
        case BranchKind::Jcc: {
            // The exit knows the way (emit_branch gives the taken one its own exit), or
            // RIP tells it.
            const int32_t counter = off_.bp_counter + static_cast<int32_t>(slot(from, kCounters));
            Xbyak::Label taken, stepped;
            if (way == JccWay::Unknown) {
                cmp_imm(to, next);
                jne(taken, T_NEAR);
            }
            if (way != JccWay::Taken) {
                // Not taken: the counter steps down; nothing is recorded.
                shr(byte[rbx + counter], 1);
                if (way == JccWay::NotTaken) return true;
                jmp(done, T_NEAR);
            }
            L(taken);
            direct();
            movzx(edi, bpl);
            // Taken with the counter saturated at "strongly taken" (byte 7): it stays, and
            // the branch was predicted (a loop's back edge): the record names a predicted
            // site and nothing is stored for the predictor.
            cmp(byte[rbx + counter], 7);
            jne(stepped, T_NEAR);
            site.predicted = true;
            emit_log_write(site, kind, to, false, kept);
            jmp(done, T_NEAR);
            L(stepped);
            site.predicted = false;
            // DL: the counter after the step; DH: the flags byte
            // (BranchPredictor::jcc_taken_).
            movzx(edx, byte[rbx + counter]);
            movzx(edx, word[rbx + rdx * 2 + off_.bp_jcc_taken]);
            mov(byte[rbx + counter], dl);
            flags_in_dh = true;
            break;
        }
        case BranchKind::NearRelCall:
            push_return();
            direct();
            site.predicted = true;
            break;
        case BranchKind::NearIndCall:
        case BranchKind::NearIndJmp: {
            if (kind == BranchKind::NearIndCall) push_return();
            const int32_t target = off_.bp_target + static_cast<int32_t>(8 * slot(from, kTargets));
            cmp(qword[rbx + target], to);
            setne(log_flags);
            mov(qword[rbx + target], to);
            break;
        }
        case BranchKind::NearRet:  // ras_[--ras_top_ % kReturns] predicted it
            sub(dword[rbx + ras_top], 1);
            mov(ecx, dword[rbx + ras_top]);
            and_(ecx, 15);
            cmp(to, qword[rbx + rcx * 8 + off_.bp_ras]);
            setne(log_flags);
            break;
        default:  // NearRelJmp: always predicted
            direct();
            site.predicted = true;
            break;
    }
    emit_log_write(site, kind, to, flags_in_dh, kept);
    L(done);
    return true;
}

}  // namespace softkvm::cpu
#endif
