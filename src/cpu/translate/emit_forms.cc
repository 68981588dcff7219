// Native register forms: MOV, MOVZX/MOVSX, SETcc, CMOVcc, ALU (ADC and SBB too), INC/DEC,
// NOT/NEG, shifts, IMUL (emitter.h).
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/translate/emitter.h"

#include <Zydis/Zydis.h>

#include "cpu/exec/flags.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

void BlockEmitter::emit_mov(const DecodedInsn& in, Native f) {
    const Operand& a = in.op[0];
    const Operand& b = in.op[1];
    const uint8_t size = in.opsize;
    if (is_cached(a.reg)) {  // straight into its host register
        const Xbyak::Reg d = sized(host_of(a.reg), size);
        if (f == Native::MovRR)
            mov(d, gpr_at(b.reg, size));
        else if (size == 8)
            mov(d, static_cast<uint64_t>(b.value));
        else
            mov(d, static_cast<uint32_t>(b.value) & static_cast<uint32_t>(size_mask(size)));
        written(a.reg);
        return;
    }
    if (f == Native::MovRR) {
        load_rdx(b.reg, size);
    } else if (size == 8) {
        mov(rdx, static_cast<uint64_t>(b.value));
    } else {
        mov(edx, static_cast<uint32_t>(b.value) & static_cast<uint32_t>(size_mask(size)));
    }
    store_gpr(a.reg, size, rdx);
    if (size >= 4) rdx_gpr_ = a.reg;
}

void BlockEmitter::emit_extend(const DecodedInsn& in, const Xbyak::Operand& src) {
    const bool sx = in.mnemonic != ZYDIS_MNEMONIC_MOVZX;
    const uint8_t from = in.op[1].size;
    const uint8_t g = in.op[0].reg;
    const Xbyak::Reg64 r = is_cached(g) ? host_of(g) : rdx;
    // The result zero-extended to 64 bits whatever the destination size (op_movzx,
    // op_movsx: the value masked to the destination, a 32-bit write zero-extends).
    if (!sx)
        movzx(r.cvt32(), src);
    else if (from == 4)
        movsxd(r, src);
    else if (in.opsize == 8)
        movsx(r, src);
    else
        movsx(r.cvt32(), src);
    if (is_cached(g)) return written(g);
    mov(wgpr(g), rdx);
    rdx_gpr_ = g;
}

void BlockEmitter::emit_setcc(const DecodedInsn& in) {
    Xbyak::Label no;
    xor_(edx, edx);
    jump_unless(in.cond, no);
    mov(edx, 1);
    L(no);
    mov(wgpr_at(in.op[0].reg, 1), dl);
}

void BlockEmitter::emit_cmovcc(const DecodedInsn& in) {
    // Not moved, a 32-bit destination is still written (zero-extended).
    Xbyak::Label no;
    const uint8_t size = in.opsize;
    mov(sized(rdx, size), gpr_at(in.op[0].reg, size));
    jump_unless(in.cond, no);
    mov(sized(rdx, size), gpr_at(in.op[1].reg, size));
    L(no);
    mov(wgpr(in.op[0].reg), rdx);
    rdx_gpr_ = in.op[0].reg;
}

void BlockEmitter::emit_unary(const DecodedInsn& in, Native f, bool flags_live) {
    // INC and DEC keep CF; NOT changes no flag; NEG sets them as SUB 0, r (op_neg): CF is
    // r != 0.
    const bool q = in.opsize == 8;
    const uint8_t g = in.op[0].reg;
    const bool cached = is_cached(g);
    const Xbyak::Reg64 r = cached ? host_of(g) : rdx;
    if (!cached) load(rdx, g, q);
    const Xbyak::Reg d = q ? static_cast<const Xbyak::Reg&>(r) : r.cvt32();
    switch (f) {
        case Native::Inc:
            inc(d);
            break;
        case Native::Dec:
            dec(d);
            break;
        case Native::Neg:
            neg(d);
            break;
        default:
            not_(d);
    }
    const bool flags = flags_live && f != Native::Not;
    if (flags) capture_flags(true);
    if (cached) {
        written(g);
    } else {
        mov(wgpr(g), rdx);
        rdx_gpr_ = g;
    }
    if (!flags) return;
    const uint64_t changed = f == Native::Neg ? FLAGS_ARITH : FLAGS_ARITH & ~FLAG_CF;
    merge_host_flags(changed, changed);
}

void BlockEmitter::emit_shift(const DecodedInsn& in, Native f, bool flags_live) {
    const bool q = in.opsize == 8;
    // 16 bits (SHL/SHR/SAR by 1-15, forms.cc): the register's other bits stay.
    const bool w = in.opsize == 2;
    const uint8_t bits = q ? 64 : w ? 16 : 32;
    // SHL/SHR/SAR r32/r64, CL: the count is known only when it runs.
    const bool by_cl = in.nops == 2 && in.op[1].kind == OpKind::Gpr;
    const int64_t raw = in.nops == 1 ? 1 : by_cl ? 1 : in.op[1].value;
    const uint8_t n = static_cast<uint8_t>(raw & (q ? 0x3F : 0x1F));
    const uint8_t g = in.op[0].reg;
    const bool cached = is_cached(g);
    // The register shifted in place (cached) or in RDX, 32-bit values zero-extended.
    const Xbyak::Reg64 r = cached ? host_of(g) : rdx;
    if (!cached) {
        load(rdx, g, q || w);
        rdx_gpr_ = g;  // written back below (or unchanged)
    }
    // A masked count of 0 (op_shift's zero_count): no flag changes, and a 32-bit
    // register is still written (zero-extended).
    auto zero_count = [&] {
        if (!q && cached) {
            mov(r.cvt32(), r.cvt32());
            written(g);
        } else if (!q) {
            mov(wgpr(g), rdx);
        }
    };
    if (n == 0) return zero_count();
    Xbyak::Label zero, done;
    if (by_cl) {
        movzx(ecx, gpr_at(RCX, 1));
        and_(ecx, q ? 0x3F : 0x1F);
        jz(zero, T_NEAR);
    }
    const Xbyak::Reg d = q ? static_cast<const Xbyak::Reg&>(r) : sized(r, w ? 2 : 4);
    if (f == Native::Shr && flags_live) {  // OF = the source's MSB
        if (q)
            mov(r8, r);
        else if (w)
            movzx(r8d, r.cvt16());
        else
            mov(r8d, r.cvt32());
    }
    switch (f) {
        case Native::Shl:
            by_cl ? shl(d, cl) : shl(d, n);
            break;
        case Native::Shr:
            by_cl ? shr(d, cl) : shr(d, n);
            break;
        case Native::Sar:
            by_cl ? sar(d, cl) : sar(d, n);
            break;
        case Native::Rol:
            rol(d, n);
            break;
        default:
            ror(d, n);
            break;
    }
    if (flags_live && f != Native::Rol && f != Native::Ror) lahf();
    if (cached)
        written(g);
    else
        mov(wgpr(g), rdx);
    // Flags only handlers' paths may see (emit_flags.cc: pending_flags_): LAHF's byte and
    // SHR's OF into the frame, merged there alone.
    if (flags_live && pending_ok_ && flags_cached_ && !by_cl && f != Native::Rol &&
        f != Native::Ror) {
        mov(byte[rsp + kFlagsRawAt + 1], ah);
        if (f == Native::Shr) {
            shr(r8, bits - 1);
            mov(byte[rsp + kFlagsRawAt], r8b);
        }
        pending_flags_ = f == Native::Shr   ? PendingShr
                         : f == Native::Shl ? PendingShl
                                            : PendingLogic;
        pending_end_ = false;
        return;
    }
    if (flags_live) shift_flags(f, r, bits);
    if (by_cl) {
        jmp(done, T_NEAR);
        L(zero);
        zero_count();
        L(done);
    }
}

void BlockEmitter::shift_flags(Native f, const Xbyak::Reg64& r, uint8_t bits) {
    if (f == Native::Rol || f == Native::Ror) {
        // CF and OF from the result: ROL CF = bit 0, OF = MSB ^ CF; ROR CF = MSB,
        // OF = MSB ^ the bit below it.
        mov(rcx, r);         // a 32-bit result is zero-extended
        shr(rcx, bits - 1);  // MSB
        if (f == Native::Rol) {
            mov(eax, r.cvt32());
            and_(eax, 1);  // CF
            xor_(ecx, eax);
        } else {
            mov(rax, r);
            shr(rax, bits - 2);
            and_(eax, 1);
            xor_(eax, ecx);  // OF in bit 0
            xchg(eax, ecx);  // EAX = MSB = CF, ECX = OF
        }
        shl(ecx, 11);
        or_(eax, ecx);
        merge_flags(FLAG_CF | FLAG_OF);
        return;
    }
    movzx(eax, ah);
    and_(eax, static_cast<uint32_t>(FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_CF));
    if (f == Native::Shl) {  // OF = MSB(result) ^ CF = SF ^ CF
        mov(ecx, eax);
        shr(ecx, 7);
        xor_(ecx, eax);
        and_(ecx, 1);
        shl(ecx, 11);
        or_(eax, ecx);
    } else if (f == Native::Shr) {
        shr(r8, bits - 1);
        shl(r8d, 11);
        or_(eax, r8d);
    }
    merge_flags(FLAGS_ARITH);
}

void BlockEmitter::emit_imul(const DecodedInsn& in, Native f, bool flags_live) {
    const bool q = in.opsize == 8;
    const uint8_t src = in.op[1].reg;
    const uint8_t g = in.op[0].reg;
    const bool cached = is_cached(g);
    const Xbyak::Reg64 r = cached ? host_of(g) : rdx;
    const Xbyak::Reg d = q ? static_cast<const Xbyak::Reg&>(r) : r.cvt32();
    const Xbyak::Operand& s = gpr_at(src, q ? 8 : 4);
    if (f == Native::ImulRR) {
        if (!cached) load(rdx, g, q);
        imul(d, s);
    } else {
        imul(d, s, static_cast<int>(in.op[2].value));
    }
    if (flags_live) seto(cl);
    if (cached) {
        written(g);
    } else {
        mov(wgpr(g), rdx);
        rdx_gpr_ = g;
    }
    if (!flags_live) return;
    test(d, d);
    lahf();
    movzx(eax, ah);
    and_(eax, static_cast<uint32_t>(FLAG_SF | FLAG_ZF | FLAG_PF));
    movzx(ecx, cl);
    imul(ecx, ecx, static_cast<int>(FLAG_CF | FLAG_OF));
    or_(eax, ecx);
    merge_flags(FLAGS_ARITH);
}

void BlockEmitter::emit_alu_value(const DecodedInsn& in, Alu k, const Xbyak::Operand& src,
                                  bool flags_live) {
    const uint8_t size = in.opsize;
    if (is_cached(in.op[0].reg)) return emit_alu_cached(in, k, src, flags_live);
    if (size == 1)
        movzx(eax, gpr_at(in.op[0].reg, 1));
    else
        mov(sized(rax, size), gpr_at(in.op[0].reg, size));
    alu_op(k, sized(rax, size), src);
    mov(rdx, rax);
    alu_flags(in, k, flags_live);
}

void BlockEmitter::emit_alu(const DecodedInsn& in, Native f, Alu k, bool flags_live) {
    const uint8_t size = in.opsize;
    const Xbyak::Reg d = sized(rdx, size);
    const Operand& a = in.op[0];
    const Operand& b = in.op[1];
    if (is_cached(a.reg)) {
        if (f == Native::AluRR) return emit_alu_cached(in, k, gpr_at(b.reg, size), flags_live);
        const Xbyak::Reg dc = sized(host_of(a.reg), size);
        alu_imm(k, dc, static_cast<uint32_t>(b.value) & static_cast<uint32_t>(size_mask(size)));
        return alu_cached_flags(in, k, flags_live);
    }
    load_rdx(a.reg, size);
    if (f == Native::AluRR)
        alu_op(k, d, gpr_at(b.reg, size));
    else
        alu_imm(k, d, static_cast<uint32_t>(b.value) & static_cast<uint32_t>(size_mask(size)));
    alu_flags(in, k, flags_live);
    // RDX holds the register as written back (as loaded for a 64-bit CMP/TEST).
    if (size == 8 || (size == 4 && k != Alu::Cmp && k != Alu::Test)) rdx_gpr_ = a.reg;
}

void BlockEmitter::emit_alu_cached(const DecodedInsn& in, Alu k, const Xbyak::Operand& src,
                                   bool flags_live) {
    alu_op(k, sized(host_of(in.op[0].reg), in.opsize), src);
    alu_cached_flags(in, k, flags_live);
}

void BlockEmitter::alu_cached_flags(const DecodedInsn& in, Alu k, bool flags_live) {
    alu_tail(in, k, flags_live, true);
}

void BlockEmitter::alu_flags(const DecodedInsn& in, Alu k, bool flags_live) {
    alu_tail(in, k, flags_live, false);
}

void BlockEmitter::capture_flags(bool of) {
    // LAHF: AH = RFLAGS bits 0-7 (SF ZF AF PF CF); SETO: OF. Packed as RFLAGS has them:
    // OF moved to bit 3 of AL, then the two bytes swapped (bit 11 = OF). Clobbers the
    // host's flags.
    lahf();
    if (!of) {
        movzx(eax, ah);
        return;
    }
    seto(al);
    shl(al, 3);
    ror(ax, 8);
}

void BlockEmitter::merge_alu_flags(bool logic) {
    if (!logic && flags_cached_) {
        // AX holds the six flags as RFLAGS has them (capture_flags with OF) and bit 1 (from
        // LAHF), which RFLAGS always has (FLAG_FIXED1), nothing else: ORed into RFLAGS
        // without masking EAX first (its upper half is not flags; jump_unless tests bits).
        and_(r13, static_cast<uint32_t>(~FLAGS_ARITH));  // sign-extended: keeps bits 12 and up
        or_(r13w, ax);
        merged_ = FLAGS_ARITH;
        dirty_ |= kFlagsBit;
        return;
    }
    // After AND/OR/XOR/TEST the host's CF and OF are 0 as the interpreter's; AF, which the
    // SDM leaves undefined there, is 0 in the interpreter.
    merge_host_flags(logic ? FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_CF | FLAG_OF : FLAGS_ARITH,
                     FLAGS_ARITH);
}

void BlockEmitter::merge_host_flags(uint64_t take, uint64_t replace) {
    // One load and one store of RFLAGS: consecutive flag updates wait on each other
    // through it.
    and_(eax, static_cast<uint32_t>(take));
    merged_ = take;
    merge_flags(replace);
}

void BlockEmitter::carry_in() {
    // The guest's CF into the host's (bit 0 of RFLAGS): BT leaves every other status flag
    // the host instruction after it writes.
    if (flags_cached_)
        bt(r13d, 0);
    else
        bt(dword[rbx + off_.rflags], 0);
}

void BlockEmitter::alu_op(Alu k, const Xbyak::Reg& d, const Xbyak::Operand& s) {
    switch (k) {
        case Alu::Add:
            return add(d, s);
        case Alu::Adc:
            carry_in();
            return adc(d, s);
        case Alu::Sbb:
            carry_in();
            return sbb(d, s);
        case Alu::Sub:
            return sub(d, s);
        case Alu::Cmp:
            return cmp(d, s);
        case Alu::And:
            return and_(d, s);
        case Alu::Or:
            return or_(d, s);
        case Alu::Xor:
            return xor_(d, s);
        default:
            return test(s, d);
    }
}

void BlockEmitter::alu_imm(Alu k, const Xbyak::Reg& d, uint32_t v) {
    switch (k) {
        case Alu::Add:
            return add(d, v);
        case Alu::Adc:
            carry_in();
            return adc(d, v);
        case Alu::Sbb:
            carry_in();
            return sbb(d, v);
        case Alu::Sub:
            return sub(d, v);
        case Alu::Cmp:
            return cmp(d, v);
        case Alu::And:
            return and_(d, v);
        case Alu::Or:
            return or_(d, v);
        case Alu::Xor:
            return xor_(d, v);
        default:
            return test(d, v);
    }
}

}  // namespace softkvm::cpu
#endif
