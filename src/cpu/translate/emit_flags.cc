// The guest's status flags in translated code (emitter.h): where they are needed
// (flags_use_from), flags left pending in the frame for handlers' paths, consumers fused
// with the ALU instruction that computes their flags (Fused), conditions (jump_unless)
// and merges into RFLAGS.
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/translate/emitter.h"

#include "cpu/exec/flags.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

bool BlockEmitter::fusable(Native pf, Native cf, const DecodedInsn& c) {
    // The host's ADD ADC SUB SBB CMP AND OR XOR TEST set CF ZF SF OF PF as the
    // interpreter does (AF, which no condition reads, aside).
    if (pf != Native::AluRR && pf != Native::AluRI && pf != Native::AluRM) return false;
    switch (cf) {
        case Native::Setcc:
        case Native::Cmovcc:
            return true;
        case Native::Jcc:
            // L, GE, LE, G: SF != OF (and ZF) out of RFLAGS take six instructions; the
            // rest test one mask in EAX (eax_flags_) as cheaply as CL.
            return (c.cond & 0xF) >> 1 >= 6;
        default:
            return false;
    }
}

BlockEmitter::FlagUse BlockEmitter::flags_use_from(const std::vector<Native>& f, const Block& b,
                                                   size_t from) {
    // Dead once later register forms have written every status flag (together: INC
    // then ROL, say) before anything reads one. A memory form may take its handler's
    // path and fault there: the flags must be in RFLAGS by then (the ALU memory forms
    // write them only after the access). FaultOnly where that is all that may see them
    // before one instruction overwrites all six (not several in turn: a handler's path
    // between them would need the older flags merged under the newer).
    uint64_t written = 0;
    bool fault = false;
    for (size_t j = from; j < f.size(); ++j) {
        if (is_flagless_register_form(f[j])) continue;
        if (is_plain_memory_form(f[j])) {
            if (written) return FlagUse::Live;
            fault = true;
            continue;
        }
        if (f[j] == Native::AluRM || f[j] == Native::AluMI)
            return !written && writes_all_flags(f[j], b.insns[j]) ? FlagUse::FaultOnly
                                                                  : FlagUse::Live;
        const uint64_t w = flags_written(f[j], b.insns[j]);
        if (w == 0) return FlagUse::Live;  // reads them, keeps them, or a handler
        if (fault && w != FLAGS_ARITH) return FlagUse::Live;
        written |= w;
        if ((written & FLAGS_ARITH) == FLAGS_ARITH)
            return fault ? FlagUse::FaultOnly : FlagUse::Dead;
    }
    return FlagUse::Live;
}

uint8_t BlockEmitter::tight_flags_kind(const Block& b, const std::vector<Native>& forms,
                                       const std::vector<Alu>& alus) const {
    const size_t n = forms.size();
    // (loops_to_start_: the block's last branch targets its start, emit_block)
    if (!loops_to_start_ || n < 2 || forms[n - 1] != Native::Jcc) return 0;
    if (forms[n - 2] != Native::AluRR && forms[n - 2] != Native::AluRI) return 0;
    // (A quiet block has no None; the stack and branch forms sync RIP and the done count:
    // the last branch would not loop tightly, emit_branch.)
    for (const Native f : forms)
        if (f == Native::None || is_stack_branch_form(f)) return 0;
    if (flags_use_from(forms, b, 0) == FlagUse::Live) return 0;
    const Alu k = alus[n - 2];
    return k == Alu::And || k == Alu::Or || k == Alu::Xor || k == Alu::Test ? PendingLogic
                                                                            : PendingArith;
}

void BlockEmitter::host_jcc(uint8_t cc, Xbyak::Label& to) {
    switch (cc & 0xF) {
        case 0x0:
            return jo(to, T_NEAR);
        case 0x1:
            return jno(to, T_NEAR);
        case 0x2:
            return jb(to, T_NEAR);
        case 0x3:
            return jae(to, T_NEAR);
        case 0x4:
            return je(to, T_NEAR);
        case 0x5:
            return jne(to, T_NEAR);
        case 0x6:
            return jbe(to, T_NEAR);
        case 0x7:
            return ja(to, T_NEAR);
        case 0x8:
            return js(to, T_NEAR);
        case 0x9:
            return jns(to, T_NEAR);
        case 0xA:
            return jp(to, T_NEAR);
        case 0xB:
            return jnp(to, T_NEAR);
        case 0xC:
            return jl(to, T_NEAR);
        case 0xD:
            return jge(to, T_NEAR);
        case 0xE:
            return jle(to, T_NEAR);
        default:
            return jg(to, T_NEAR);
    }
}

uint8_t BlockEmitter::alu_pending_kind(Alu k) const {
    const bool logic = k == Alu::And || k == Alu::Or || k == Alu::Xor || k == Alu::Test;
    const FlagUse use = fuse_.in ? fuse_.use : pending_ok_ ? FlagUse::FaultOnly : FlagUse::Live;
    if (use != FlagUse::FaultOnly || !flags_cached_) return 0;
    return logic ? PendingLogic : PendingArith;
}

void BlockEmitter::merge_pending(uint8_t kind) {
    // (RAX holds the linear address on a handler's path: RCX and R11 here.)
    constexpr uint32_t kNoAf = FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_CF;
    if (kind == PendingArith) {
        movzx(ecx, word[rsp + kFlagsRawAt]);  // high byte: LAHF, low byte: SETO
        shl(cl, 3);
        ror(cx, 8);
        and_(r13, static_cast<uint32_t>(~FLAGS_ARITH));
        or_(r13w, cx);
        return;
    }
    if (kind == PendingShr) {  // as PendingArith, AF 0 (shift.cc)
        movzx(ecx, word[rsp + kFlagsRawAt]);
        shl(cl, 3);
        ror(cx, 8);
        and_(ecx, static_cast<uint32_t>(kNoAf | FLAG_OF));
    } else {  // PendingLogic (OF 0, AF 0), PendingShl (OF = SF ^ CF, AF 0)
        movzx(ecx, byte[rsp + kFlagsRawAt + 1]);
        and_(ecx, kNoAf);
        if (kind == PendingShl) {
            mov(r11d, ecx);
            shr(r11d, 7);
            xor_(r11d, ecx);
            and_(r11d, 1);
            shl(r11d, 11);
            or_(ecx, r11d);
        }
    }
    and_(r13, static_cast<uint32_t>(~FLAGS_ARITH));
    or_(r13, rcx);
}

void BlockEmitter::pending_from_rflags(uint8_t kind) {
    // RFLAGS bits 0-7 as LAHF has them, and OF as SETO (PendingArith).
    mov(byte[rsp + kFlagsRawAt + 1], r13b);
    if (kind == PendingArith) {
        bt(r13d, 11);
        setc(byte[rsp + kFlagsRawAt]);
    }
}

void BlockEmitter::alu_tail(const DecodedInsn& in, Alu k, bool flags_live, bool cached) {
    const bool logic = k == Alu::And || k == Alu::Or || k == Alu::Xor || k == Alu::Test;
    const bool fused = fuse_.in != nullptr;
    if (tight_alu_) {  // the last ALU form of a tight loop (tight_flags_kind)
        lahf();
        if (!logic) seto(al);
        if (k != Alu::Cmp && k != Alu::Test) {
            if (cached)
                written(in.op[0].reg);
            else
                store_gpr(in.op[0].reg, in.opsize, rdx);
        }
        if (logic)
            mov(byte[rsp + kFlagsRawAt + 1], ah);
        else
            mov(word[rsp + kFlagsRawAt], ax);
        pending_flags_ = tight_kind_;
        pending_end_ = false;
        cond_in_host_ = true;  // the Jcc next
        return;
    }
    const uint8_t pend = alu_pending_kind(k);
    // Fused: the flags are needed after the consumer only if they are used there.
    const bool live = fused ? fuse_.use != FlagUse::Dead : flags_live;
    if (fused && fuse_.f == Native::Jcc) {
        host_setcc(fuse_.in->cond, cl);
        cond_in_cl_ = true;
    }
    // LAHF and SETO leave the host's flags for the consumer; the packing after it does not.
    if (live) {
        lahf();
        if (!logic) seto(al);
    }
    if (k != Alu::Cmp && k != Alu::Test) {
        if (cached)
            written(in.op[0].reg);
        else
            store_gpr(in.op[0].reg, in.opsize, rdx);
    }
    if (fused && fuse_.f != Native::Jcc) emit_fused_consumer();
    if (!live) return;
    if (pend) {  // for the handlers' paths only (merge_pending)
        if (logic)
            mov(byte[rsp + kFlagsRawAt + 1], ah);
        else
            mov(word[rsp + kFlagsRawAt], ax);
        pending_flags_ = pend;
        pending_end_ = false;
        return;
    }
    if (logic) {
        movzx(eax, ah);
    } else {  // as capture_flags: OF to bit 3 of AL, the two bytes swapped (bit 11 = OF)
        shl(al, 3);
        ror(ax, 8);
    }
    merge_alu_flags(logic);
}

void BlockEmitter::emit_fused_consumer() {
    const DecodedInsn& c = *fuse_.in;
    fused_rdx_ = kNoGpr;
    if (fuse_.f == Native::Setcc) return host_setcc(c.cond, wgpr_at(c.op[0].reg, 1));
    // CMOVcc r32/r64: the host's zero-extends a 32-bit destination moved or not, as the
    // guest's (emit_cmovcc).
    const uint8_t size = c.opsize;
    const uint8_t d = c.op[0].reg;
    if (is_cached(d)) {
        host_cmovcc(c.cond, sized(host_of(d), size), gpr_at(c.op[1].reg, size));
        return written(d);
    }
    mov(sized(rdx, size), gpr_at(d, size));
    host_cmovcc(c.cond, sized(rdx, size), gpr_at(c.op[1].reg, size));
    mov(wgpr(d), rdx);
    fused_rdx_ = d;
}

void BlockEmitter::emit_consumer_from_rflags(const Fused& c) {
    cond_in_cl_ = false;  // (set by the fast path, already used there)
    if (c.f == Native::Setcc) return emit_setcc(*c.in);
    if (c.f == Native::Cmovcc) return emit_cmovcc(*c.in);
    Xbyak::Label no, out;
    jump_unless(c.in->cond, no);
    mov(ecx, 1);
    jmp(out);
    L(no);
    xor_(ecx, ecx);
    L(out);
}

void BlockEmitter::host_setcc(uint8_t cc, const Xbyak::Operand& op) {
    switch (cc & 0xF) {
        case 0x0:
            return seto(op);
        case 0x1:
            return setno(op);
        case 0x2:
            return setb(op);
        case 0x3:
            return setae(op);
        case 0x4:
            return sete(op);
        case 0x5:
            return setne(op);
        case 0x6:
            return setbe(op);
        case 0x7:
            return seta(op);
        case 0x8:
            return sets(op);
        case 0x9:
            return setns(op);
        case 0xA:
            return setp(op);
        case 0xB:
            return setnp(op);
        case 0xC:
            return setl(op);
        case 0xD:
            return setge(op);
        case 0xE:
            return setle(op);
        default:
            return setg(op);
    }
}

void BlockEmitter::host_cmovcc(uint8_t cc, const Xbyak::Reg& r, const Xbyak::Operand& op) {
    switch (cc & 0xF) {
        case 0x0:
            return cmovo(r, op);
        case 0x1:
            return cmovno(r, op);
        case 0x2:
            return cmovb(r, op);
        case 0x3:
            return cmovae(r, op);
        case 0x4:
            return cmove(r, op);
        case 0x5:
            return cmovne(r, op);
        case 0x6:
            return cmovbe(r, op);
        case 0x7:
            return cmova(r, op);
        case 0x8:
            return cmovs(r, op);
        case 0x9:
            return cmovns(r, op);
        case 0xA:
            return cmovp(r, op);
        case 0xB:
            return cmovnp(r, op);
        case 0xC:
            return cmovl(r, op);
        case 0xD:
            return cmovge(r, op);
        case 0xE:
            return cmovle(r, op);
        default:
            return cmovg(r, op);
    }
}

void BlockEmitter::jump_unless(uint8_t cc, Xbyak::Label& to, uint64_t in_eax) {
    if (cond_in_host_) {  // the host's flags after the ALU instruction before (tight_kind_)
        cond_in_host_ = false;
        return host_jcc(cc ^ 1, to);
    }
    if (cond_in_cl_) {  // the condition itself, from the ALU instruction before
        cond_in_cl_ = false;
        test(cl, cl);
        jz(to, T_NEAR);
        return;
    }
    const int32_t fl = off_.rflags;
    cc &= 0xF;
    const uint32_t bits[6] = {
        static_cast<uint32_t>(FLAG_OF), static_cast<uint32_t>(FLAG_CF),
        static_cast<uint32_t>(FLAG_ZF), static_cast<uint32_t>(FLAG_CF | FLAG_ZF),
        static_cast<uint32_t>(FLAG_SF), static_cast<uint32_t>(FLAG_PF)};
    // The flags the instruction before left in EAX when they hold what is tested (no
    // wait for RFLAGS's store).
    const uint64_t need = cc >> 1 < 6 ? bits[cc >> 1] : FLAG_SF | FLAG_OF | FLAG_ZF;
    const bool eax_ok = (need & ~in_eax) == 0;
    if (cc >> 1 < 6) {
        if (eax_ok)
            test(eax, bits[cc >> 1]);
        else if (flags_cached_)
            test(r13d, bits[cc >> 1]);
        else
            test(dword[rbx + fl], bits[cc >> 1]);
    } else {
        // L: SF != OF; LE: ZF or SF != OF. OF (bit 11) shifted onto SF (bit 7).
        if (eax_ok)
            mov(ecx, eax);
        else if (flags_cached_)
            mov(ecx, r13d);
        else
            mov(ecx, dword[rbx + fl]);
        mov(r8d, ecx);
        shr(r8d, 4);
        xor_(r8d, ecx);
        and_(r8d, static_cast<uint32_t>(FLAG_SF));
        if (cc >> 1 == 7) {
            and_(ecx, static_cast<uint32_t>(FLAG_ZF));
            or_(r8d, ecx);
        } else {
            test(r8d, r8d);
        }
    }
    // Odd condition codes are the negations (SDM vol. 2 appendix B.1.4.7).
    if (cc & 1)
        jnz(to, T_NEAR);
    else
        jz(to, T_NEAR);
}

void BlockEmitter::merge_flags(uint64_t mask) {
    if (flags_cached_) {
        and_(r13, static_cast<uint32_t>(~mask));  // sign-extended: keeps bits 12 and up
        or_(r13, rax);
        dirty_ |= kFlagsBit;
        return;
    }
    mov(r11, qword[rbx + off_.rflags]);
    and_(r11, static_cast<uint32_t>(~mask));  // sign-extended: keeps bits 12 and up
    or_(r11, rax);
    mov(qword[rbx + off_.rflags], r11);
}

}  // namespace softkvm::cpu
#endif
