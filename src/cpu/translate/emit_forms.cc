// Native register forms: MOV, ALU, INC/DEC, shifts, IMUL (emitter.h).
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/translate/emitter.h"

#include "cpu/exec/flags.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

void BlockEmitter::emit_mov(const DecodedInsn& in, Native f) {
    const Operand& a = in.op[0];
    const Operand& b = in.op[1];
    if (f == Native::MovRR) {
        if (in.opsize == 4)
            mov(edx, dword[rbx + off_.gpr + 8 * b.reg]);
        else
            mov(rdx, gpr(b.reg));
    } else if (in.opsize == 4) {
        mov(edx, static_cast<uint32_t>(b.value));
    } else {
        mov(rdx, static_cast<uint64_t>(b.value));
    }
    mov(gpr(a.reg), rdx);
}

void BlockEmitter::emit_incdec(const DecodedInsn& in, bool up, bool flags_live) {
    const bool q = in.opsize == 8;
    load(rdx, in.op[0].reg, q);
    const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rdx) : edx;
    if (up)
        inc(d);
    else
        dec(d);
    if (flags_live) {
        lahf();
        seto(cl);
    }
    mov(gpr(in.op[0].reg), rdx);
    if (!flags_live) return;
    movzx(eax, ah);
    and_(eax, static_cast<uint32_t>(FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF));
    movzx(ecx, cl);
    shl(ecx, 11);
    or_(eax, ecx);
    merge_flags(FLAGS_ARITH & ~FLAG_CF);
}

void BlockEmitter::emit_shift(const DecodedInsn& in, Native f, bool flags_live) {
    const bool q = in.opsize == 8;
    const uint8_t bits = q ? 64 : 32;
    const int64_t raw = in.nops == 1 ? 1 : in.op[1].value;
    const uint8_t n = static_cast<uint8_t>(raw & (q ? 0x3F : 0x1F));
    load(rdx, in.op[0].reg, q);
    if (n == 0) {  // no flags; a 32-bit register is still written (zero_count)
        if (!q) mov(gpr(in.op[0].reg), rdx);
        return;
    }
    const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rdx) : edx;
    if (f == Native::Shr && flags_live) mov(r8, rdx);  // OF = the source's MSB
    switch (f) {
        case Native::Shl:
            shl(d, n);
            break;
        case Native::Shr:
            shr(d, n);
            break;
        case Native::Sar:
            sar(d, n);
            break;
        case Native::Rol:
            rol(d, n);
            break;
        default:
            ror(d, n);
            break;
    }
    if (flags_live && f != Native::Rol && f != Native::Ror) lahf();
    mov(gpr(in.op[0].reg), rdx);
    if (!flags_live) return;
    if (f == Native::Rol || f == Native::Ror) {
        // CF and OF from the result: ROL CF = bit 0, OF = MSB ^ CF; ROR CF = MSB,
        // OF = MSB ^ the bit below it.
        mov(rcx, rdx);
        shr(rcx, bits - 1);  // MSB
        if (f == Native::Rol) {
            mov(eax, edx);
            and_(eax, 1);  // CF
            xor_(ecx, eax);
        } else {
            mov(rax, rdx);
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
    const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rdx) : edx;
    const uint8_t src = in.op[1].reg;
    const Xbyak::Address s = q ? qword[rbx + off_.gpr + 8 * src] : dword[rbx + off_.gpr + 8 * src];
    if (f == Native::ImulRR) {
        load(rdx, in.op[0].reg, q);
        imul(d, s);
    } else {
        imul(d, s, static_cast<int>(in.op[2].value));
    }
    if (flags_live) seto(cl);
    mov(gpr(in.op[0].reg), rdx);
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

void BlockEmitter::emit_alu_value(const DecodedInsn& in, Alu k, const Xbyak::Address& src,
                                  bool flags_live) {
    const bool q = in.opsize == 8;
    load(rax, in.op[0].reg, q);
    const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rax) : eax;
    alu_op(k, d, src);
    mov(rdx, rax);
    alu_flags(in, k, flags_live);
}

void BlockEmitter::emit_alu(const DecodedInsn& in, Native f, Alu k, bool flags_live) {
    const bool q = in.opsize == 8;
    const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rdx) : edx;
    const Operand& a = in.op[0];
    const Operand& b = in.op[1];
    if (q)
        mov(rdx, gpr(a.reg));
    else
        mov(edx, dword[rbx + off_.gpr + 8 * a.reg]);
    if (f == Native::AluRR) {
        const Xbyak::Address src =
            q ? qword[rbx + off_.gpr + 8 * b.reg] : dword[rbx + off_.gpr + 8 * b.reg];
        alu_op(k, d, src);
    } else {
        alu_imm(k, d, static_cast<uint32_t>(b.value));
    }
    alu_flags(in, k, flags_live);
}

void BlockEmitter::alu_flags(const DecodedInsn& in, Alu k, bool flags_live) {
    const bool logic = k == Alu::And || k == Alu::Or || k == Alu::Xor || k == Alu::Test;
    if (flags_live) {
        lahf();  // AH = SF ZF - AF - PF - CF
        if (!logic) seto(cl);
    }
    if (k != Alu::Cmp && k != Alu::Test) mov(gpr(in.op[0].reg), rdx);
    if (!flags_live) return;
    movzx(eax, ah);
    and_(eax, static_cast<uint32_t>(logic ? (FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_CF)
                                          : (FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF | FLAG_CF)));
    if (!logic) {
        movzx(ecx, cl);
        shl(ecx, 11);  // OF is RFLAGS bit 11
        or_(eax, ecx);
    }
    merge_flags(FLAGS_ARITH);
}

void BlockEmitter::alu_op(Alu k, const Xbyak::Reg& d, const Xbyak::Address& s) {
    switch (k) {
        case Alu::Add:
            return add(d, s);
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
