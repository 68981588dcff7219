// Which decoded instructions have a native form (forms.h).
#include "cpu/translate/forms.h"

#include <Zydis/Zydis.h>

namespace softkvm::cpu {
namespace {

bool is_gpr(const Operand& o, uint8_t size) {
    return o.kind == OpKind::Gpr && o.size == size && !o.hi8;
}
bool fits_imm32(int64_t v) {
    return v >= INT32_MIN && v <= INT32_MAX;
}
// An immediate of an operation of `size` bytes that the host instruction of that size can
// take: any below 64 bits (the decoder keeps them masked to their size, so a 32-bit one
// with bit 31 set is above INT32_MAX); a 64-bit one is a sign-extended imm32 (SDM vol. 2
// §2.2.1.5).
bool fits_host_imm(int64_t v, uint8_t size) {
    return size < 8 || fits_imm32(v);
}

// A memory operand the generated code can address: base and index registers (or RIP),
// a 32-bit displacement.
bool simple_mem(const Operand& o, uint8_t size) {
    return o.kind == OpKind::Mem && o.size == size && !o.agen && fits_imm32(o.value) &&
           (o.addrsize == 8 || o.addrsize == 4);
}

bool is_setcc(uint16_t m) {
    switch (m) {
        case ZYDIS_MNEMONIC_SETO:
        case ZYDIS_MNEMONIC_SETNO:
        case ZYDIS_MNEMONIC_SETB:
        case ZYDIS_MNEMONIC_SETNB:
        case ZYDIS_MNEMONIC_SETZ:
        case ZYDIS_MNEMONIC_SETNZ:
        case ZYDIS_MNEMONIC_SETBE:
        case ZYDIS_MNEMONIC_SETNBE:
        case ZYDIS_MNEMONIC_SETS:
        case ZYDIS_MNEMONIC_SETNS:
        case ZYDIS_MNEMONIC_SETP:
        case ZYDIS_MNEMONIC_SETNP:
        case ZYDIS_MNEMONIC_SETL:
        case ZYDIS_MNEMONIC_SETNL:
        case ZYDIS_MNEMONIC_SETLE:
        case ZYDIS_MNEMONIC_SETNLE:
            return true;
        default:
            return false;
    }
}

bool is_cmovcc(uint16_t m) {
    switch (m) {
        case ZYDIS_MNEMONIC_CMOVO:
        case ZYDIS_MNEMONIC_CMOVNO:
        case ZYDIS_MNEMONIC_CMOVB:
        case ZYDIS_MNEMONIC_CMOVNB:
        case ZYDIS_MNEMONIC_CMOVZ:
        case ZYDIS_MNEMONIC_CMOVNZ:
        case ZYDIS_MNEMONIC_CMOVBE:
        case ZYDIS_MNEMONIC_CMOVNBE:
        case ZYDIS_MNEMONIC_CMOVS:
        case ZYDIS_MNEMONIC_CMOVNS:
        case ZYDIS_MNEMONIC_CMOVP:
        case ZYDIS_MNEMONIC_CMOVNP:
        case ZYDIS_MNEMONIC_CMOVL:
        case ZYDIS_MNEMONIC_CMOVNL:
        case ZYDIS_MNEMONIC_CMOVLE:
        case ZYDIS_MNEMONIC_CMOVNLE:
            return true;
        default:
            return false;
    }
}

// MOVZX/MOVSX r32/r64, r/m8 or r/m16; MOVSXD r64, r/m32.
Native extension_form(const DecodedInsn& in) {
    const Operand& a = in.op[0];
    const Operand& b = in.op[1];
    if (in.nops != 2 || (in.opsize != 4 && in.opsize != 8) || !is_gpr(a, in.opsize))
        return Native::None;
    const bool sxd = in.mnemonic == ZYDIS_MNEMONIC_MOVSXD;
    if (sxd ? (in.opsize != 8 || b.size != 4) : (b.size != 1 && b.size != 2)) return Native::None;
    if (is_gpr(b, b.size)) return Native::ExtRR;
    return simple_mem(b, b.size) ? Native::ExtRM : Native::None;
}

// Read-modify-writes of memory with a register or no source (forms.h, AluMR ... CmpxchgM),
// 8, 32 and 64 bits.
Native rmw_form(const DecodedInsn& in, Alu& k) {
    const uint8_t size = in.opsize;
    if (size != 1 && size != 4 && size != 8) return Native::None;
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_INC:
        case ZYDIS_MNEMONIC_DEC:
            if (in.nops != 1 || !simple_mem(in.op[0], size)) return Native::None;
            return in.mnemonic == ZYDIS_MNEMONIC_INC ? Native::IncM : Native::DecM;
        case ZYDIS_MNEMONIC_XCHG:
            // Either operand order names the same exchange.
            if (in.nops == 2 && ((simple_mem(in.op[0], size) && is_gpr(in.op[1], size)) ||
                                 (is_gpr(in.op[0], size) && simple_mem(in.op[1], size))))
                return Native::XchgM;
            return Native::None;
        default:
            break;
    }
    if (in.nops != 2 || !simple_mem(in.op[0], size) || !is_gpr(in.op[1], size)) return Native::None;
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_XADD:
            return Native::XaddM;
        case ZYDIS_MNEMONIC_CMPXCHG:
            return Native::CmpxchgM;
        case ZYDIS_MNEMONIC_ADD:
            k = Alu::Add;
            return Native::AluMR;
        case ZYDIS_MNEMONIC_SUB:
            k = Alu::Sub;
            return Native::AluMR;
        case ZYDIS_MNEMONIC_AND:
            k = Alu::And;
            return Native::AluMR;
        case ZYDIS_MNEMONIC_OR:
            k = Alu::Or;
            return Native::AluMR;
        case ZYDIS_MNEMONIC_XOR:
            k = Alu::Xor;
            return Native::AluMR;
        case ZYDIS_MNEMONIC_CMP:
            k = Alu::Cmp;
            return Native::AluMR;
        case ZYDIS_MNEMONIC_TEST:
            k = Alu::Test;
            return Native::AluMR;
        default:
            return Native::None;
    }
}

// The native form of a shift or rotate by a constant count, None for another mnemonic.
Native shift_form(uint16_t m) {
    switch (m) {
        case ZYDIS_MNEMONIC_SHL:
            return Native::Shl;
        case ZYDIS_MNEMONIC_SHR:
            return Native::Shr;
        case ZYDIS_MNEMONIC_SAR:
            return Native::Sar;
        case ZYDIS_MNEMONIC_ROL:
            return Native::Rol;
        case ZYDIS_MNEMONIC_ROR:
            return Native::Ror;
        default:
            return Native::None;
    }
}

// 16-bit forms: MOV m16, r16 and MOV m16, imm16; SHL/SHR/SAR r16 by an immediate count of
// 1 to 15 (a larger one leaves CF undefined, SDM vol. 2B "SAL/SAR/SHL/SHR").
Native word_form(const DecodedInsn& in) {
    if (in.nops != 2 && in.nops != 1) return Native::None;
    if (in.mnemonic == ZYDIS_MNEMONIC_MOV && in.nops == 2 && simple_mem(in.op[0], 2)) {
        if (is_gpr(in.op[1], 2)) return Native::MovMR;
        if (in.op[1].kind == OpKind::Imm) return Native::MovMI;
        return Native::None;
    }
    if (!is_gpr(in.op[0], 2)) return Native::None;
    if (in.nops == 2 && in.op[1].kind != OpKind::Imm) return Native::None;  // CL
    const uint64_t count = in.nops == 1 ? 1 : static_cast<uint64_t>(in.op[1].value) & 0x1F;
    if (count == 0 || count > 15) return Native::None;
    const Native f = shift_form(in.mnemonic);
    return f == Native::Rol || f == Native::Ror ? Native::None : f;
}

// The forms without a LOCK prefix other than rmw_form's.
Native native_form_unlocked(const DecodedInsn& in, Alu& k) {
    if (in.mnemonic == ZYDIS_MNEMONIC_NOP) return Native::Nop;
    if (in.nops < 1) return Native::None;
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_MOVZX:
        case ZYDIS_MNEMONIC_MOVSX:
        case ZYDIS_MNEMONIC_MOVSXD:
            return extension_form(in);
        default:
            break;
    }
    if (is_setcc(in.mnemonic)) return is_gpr(in.op[0], 1) ? Native::Setcc : Native::None;
    if (is_cmovcc(in.mnemonic)) {
        const bool ok = (in.opsize == 4 || in.opsize == 8) && in.nops == 2 &&
                        is_gpr(in.op[0], in.opsize) && is_gpr(in.op[1], in.opsize);
        return ok ? Native::Cmovcc : Native::None;
    }
    // MOV and the ALU group also in 8 bits, a MOV to memory and SHL/SHR/SAR of a register
    // also in 16; the rest in 32 and 64 only.
    const uint8_t size = in.op[0].size;
    if (in.opsize == 2) return word_form(in);
    const bool byte_ok = in.mnemonic == ZYDIS_MNEMONIC_MOV || in.mnemonic == ZYDIS_MNEMONIC_ADD ||
                         in.mnemonic == ZYDIS_MNEMONIC_SUB || in.mnemonic == ZYDIS_MNEMONIC_CMP ||
                         in.mnemonic == ZYDIS_MNEMONIC_AND || in.mnemonic == ZYDIS_MNEMONIC_OR ||
                         in.mnemonic == ZYDIS_MNEMONIC_XOR || in.mnemonic == ZYDIS_MNEMONIC_TEST;
    if (!(in.opsize == 4 || in.opsize == 8 || (byte_ok && in.opsize == 1 && size == 1)))
        return Native::None;
    const Operand& b = in.op[1];
    const bool ri = in.nops == 2 && b.kind == OpKind::Imm;
    if (in.mnemonic == ZYDIS_MNEMONIC_MOV && in.nops == 2 && simple_mem(in.op[0], in.opsize)) {
        if (is_gpr(b, in.opsize)) return Native::MovMR;
        if (ri && fits_host_imm(b.value, in.opsize)) return Native::MovMI;
    }
    if (in.op[0].kind == OpKind::Mem) {
        // ALU m, imm: CMP and TEST read, the others read and write.
        if (!byte_ok || in.mnemonic == ZYDIS_MNEMONIC_MOV || !ri ||
            !fits_host_imm(b.value, in.opsize) || !simple_mem(in.op[0], in.opsize))
            return Native::None;
    } else if (!is_gpr(in.op[0], in.opsize)) {
        return Native::None;
    }
    const bool rr = in.nops == 2 && is_gpr(b, in.opsize);
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_INC:
            return in.nops == 1 ? Native::Inc : Native::None;
        case ZYDIS_MNEMONIC_DEC:
            return in.nops == 1 ? Native::Dec : Native::None;
        case ZYDIS_MNEMONIC_SHL:
        case ZYDIS_MNEMONIC_SHR:
        case ZYDIS_MNEMONIC_SAR:
        case ZYDIS_MNEMONIC_ROL:
        case ZYDIS_MNEMONIC_ROR:
            // A count in CL: SHL/SHR/SAR only (the handler rotates).
            if (in.nops != 1 && !ri &&
                !(is_gpr(b, 1) && b.reg == RCX && in.mnemonic != ZYDIS_MNEMONIC_ROL &&
                  in.mnemonic != ZYDIS_MNEMONIC_ROR))
                return Native::None;
            return shift_form(in.mnemonic);
        case ZYDIS_MNEMONIC_IMUL:
            if (rr) return Native::ImulRR;
            if (in.nops == 3 && is_gpr(b, in.opsize) && in.op[2].kind == OpKind::Imm &&
                fits_host_imm(in.op[2].value, in.opsize))
                return Native::ImulRRI;
            return Native::None;
        case ZYDIS_MNEMONIC_MOV:
            if (in.nops == 2 && simple_mem(b, in.opsize)) return Native::MovRM;
            return rr ? Native::MovRR : ri ? Native::MovRI : Native::None;
        case ZYDIS_MNEMONIC_LEA:
            if (in.nops == 2 && b.kind == OpKind::Mem && b.agen && fits_imm32(b.value) &&
                (b.addrsize == 8 || b.addrsize == 4))
                return Native::Lea;
            return Native::None;
        case ZYDIS_MNEMONIC_ADD:
            k = Alu::Add;
            break;
        case ZYDIS_MNEMONIC_SUB:
            k = Alu::Sub;
            break;
        case ZYDIS_MNEMONIC_CMP:
            k = Alu::Cmp;
            break;
        case ZYDIS_MNEMONIC_AND:
            k = Alu::And;
            break;
        case ZYDIS_MNEMONIC_OR:
            k = Alu::Or;
            break;
        case ZYDIS_MNEMONIC_XOR:
            k = Alu::Xor;
            break;
        case ZYDIS_MNEMONIC_TEST:
            k = Alu::Test;
            break;
        case ZYDIS_MNEMONIC_ADC:  // register destination only (byte_ok excludes memory)
            k = Alu::Adc;
            break;
        case ZYDIS_MNEMONIC_SBB:
            k = Alu::Sbb;
            break;
        case ZYDIS_MNEMONIC_NOT:
            return in.nops == 1 ? Native::Not : Native::None;
        case ZYDIS_MNEMONIC_NEG:
            return in.nops == 1 ? Native::Neg : Native::None;
        default:
            return Native::None;
    }
    if (ri && !fits_host_imm(b.value, in.opsize)) return Native::None;
    if (in.op[0].kind == OpKind::Mem) return Native::AluMI;
    if (in.nops == 2 && simple_mem(b, in.opsize)) return Native::AluRM;
    return rr ? Native::AluRR : ri ? Native::AluRI : Native::None;
}

}  // namespace

Native native_form(const DecodedInsn& in, Alu& k) {
    if (in.prefixes & PFX_LOCK) {
        // LOCK is valid only on a read-modify-write of memory (the decoder raises #UD on
        // the rest, SDM vol. 2 "LOCK"); with any other prefix: the handler.
        if (in.prefixes != PFX_LOCK) return Native::None;
        Native f = rmw_form(in, k);
        if (f == Native::None) {
            f = native_form_unlocked(in, k);
            if (f != Native::AluMI || k == Alu::Cmp || k == Alu::Test) return Native::None;
        }
        return f == Native::AluMR && (k == Alu::Cmp || k == Alu::Test) ? Native::None : f;
    }
    if (in.prefixes) return Native::None;
    const Native f = rmw_form(in, k);
    return f != Native::None ? f : native_form_unlocked(in, k);
}

// Forms that write all six status flags without reading any: flags an earlier native
// instruction computed are dead if one of these comes before anything that reads them.
// (A shift by a masked count of 0 changes no flag: not counted.)
uint64_t flags_written(Native f, const DecodedInsn& in) {
    if (is_memory_form(f)) return 0;
    if (writes_all_flags(f, in)) return FLAGS_ARITH;
    switch (f) {
        case Native::Inc:
        case Native::Dec:
            return FLAGS_ARITH & ~FLAG_CF;  // CF kept
        case Native::Rol:
        case Native::Ror:  // CF and OF, unless the masked count is 0
            return in.nops == 1 || (in.op[1].value & (in.opsize == 8 ? 0x3F : 0x1F)) != 0
                       ? FLAG_CF | FLAG_OF
                       : 0;
        default:
            return 0;
    }
}

bool writes_all_flags(Native f, const DecodedInsn& in) {
    switch (f) {
        case Native::AluRR:
        case Native::AluRI:
        case Native::AluRM:
            // ADC and SBB read CF: the flags before them are live.
            return in.mnemonic != ZYDIS_MNEMONIC_ADC && in.mnemonic != ZYDIS_MNEMONIC_SBB;
        case Native::Neg:
        case Native::AluMI:
        case Native::ImulRR:
        case Native::ImulRRI:
            return true;
        case Native::Shl:
        case Native::Shr:
        case Native::Sar:  // (by CL: maybe a count of 0, which keeps them)
            return in.nops == 1 || (in.op[1].kind == OpKind::Imm &&
                                    (in.op[1].value & (in.opsize == 8 ? 0x3F : 0x1F)) != 0);
        default:
            return false;
    }
}

// In 64-bit mode with the 64-bit operand size: near JMP rel and Jcc rel (the target is
// RIP-relative and only its canonical check can fault: then the handler runs and raises
// #GP), CALL rel32, RET, JMP and CALL through a register or memory, PUSH and POP of a
// register.
Native native_branch(const DecodedInsn& in, Mode mode) {
    if (mode != Mode::Long64 || in.opsize != 8 || in.far || in.prefixes) return Native::None;
    const Operand& a = in.op[0];
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_PUSH:
            return in.nops == 1 && is_gpr(a, 8) ? Native::Push : Native::None;
        case ZYDIS_MNEMONIC_POP:
            return in.nops == 1 && is_gpr(a, 8) && a.reg != RSP ? Native::Pop : Native::None;
        case ZYDIS_MNEMONIC_RET:
            return in.nops == 0 ? Native::Ret : Native::None;
        case ZYDIS_MNEMONIC_CALL:
            if (in.nops != 1) return Native::None;
            if (a.kind == OpKind::Imm) return fits_imm32(a.value) ? Native::Call : Native::None;
            if (is_gpr(a, 8)) return Native::CallR;
            return simple_mem(a, 8) ? Native::CallM : Native::None;
        case ZYDIS_MNEMONIC_JMP:
            if (in.nops != 1) return Native::None;
            if (is_gpr(a, 8)) return Native::JmpR;
            if (simple_mem(a, 8)) return Native::JmpM;
            break;
        default:
            break;
    }
    if (in.nops != 1 || a.kind != OpKind::Imm || !fits_imm32(a.value)) return Native::None;
    if (in.mnemonic == ZYDIS_MNEMONIC_JMP) return Native::Jmp;
    switch (in.mnemonic) {
        case ZYDIS_MNEMONIC_JCXZ:
        case ZYDIS_MNEMONIC_JECXZ:
        case ZYDIS_MNEMONIC_JRCXZ:
        case ZYDIS_MNEMONIC_LOOP:
        case ZYDIS_MNEMONIC_LOOPE:
        case ZYDIS_MNEMONIC_LOOPNE:
            return Native::None;
        default:
            return in.branch == BranchKind::Jcc ? Native::Jcc : Native::None;
    }
}

bool is_plain_memory_form(Native f) {
    return f == Native::MovRM || f == Native::MovMR || f == Native::MovMI || f == Native::ExtRM;
}

bool is_stack_branch_form(Native f) {
    switch (f) {
        case Native::Push:
        case Native::Pop:
        case Native::Call:
        case Native::Ret:
        case Native::JmpR:
        case Native::JmpM:
        case Native::CallR:
        case Native::CallM:
            return true;
        default:
            return false;
    }
}

bool is_memory_form(Native f) {
    switch (f) {
        case Native::MovRM:
        case Native::MovMR:
        case Native::MovMI:
        case Native::AluRM:
        case Native::AluMI:
        case Native::ExtRM:
        case Native::Push:
        case Native::Pop:
        case Native::Call:
        case Native::Ret:
        case Native::JmpM:
        case Native::CallR:
        case Native::CallM:
        case Native::AluMR:
        case Native::IncM:
        case Native::DecM:
        case Native::XchgM:
        case Native::XaddM:
        case Native::CmpxchgM:
            return true;
        default:
            return false;
    }
}

bool is_lockable_form(Native f) {
    switch (f) {
        case Native::AluMI:
        case Native::AluMR:
        case Native::IncM:
        case Native::DecM:
        case Native::XchgM:
        case Native::XaddM:
        case Native::CmpxchgM:
            return true;
        default:
            return false;
    }
}

bool is_flagless_register_form(Native f) {
    switch (f) {
        case Native::MovRR:
        case Native::MovRI:
        case Native::Lea:
        case Native::Nop:
        case Native::ExtRR:
        case Native::Not:
            return true;
        default:
            return false;
    }
}

}  // namespace softkvm::cpu
