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

// A memory operand the generated code can address: base and index registers (or RIP),
// a 32-bit displacement.
bool simple_mem(const Operand& o, uint8_t size) {
    return o.kind == OpKind::Mem && o.size == size && !o.agen && fits_imm32(o.value) &&
           (o.addrsize == 8 || o.addrsize == 4);
}

}  // namespace

Native native_form(const DecodedInsn& in, Alu& k) {
    if (in.opsize != 4 && in.opsize != 8) return Native::None;
    if (in.prefixes || in.nops < 1) return Native::None;
    if (in.mnemonic == ZYDIS_MNEMONIC_MOV && in.nops == 2 && simple_mem(in.op[0], in.opsize) &&
        is_gpr(in.op[1], in.opsize))
        return Native::MovMR;
    if (!is_gpr(in.op[0], in.opsize)) return Native::None;
    const Operand& b = in.op[1];
    const bool rr = in.nops == 2 && is_gpr(b, in.opsize);
    const bool ri = in.nops == 2 && b.kind == OpKind::Imm;
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
            if (in.nops != 1 && !ri) return Native::None;  // a count in CL: handler
            switch (in.mnemonic) {
                case ZYDIS_MNEMONIC_SHL:
                    return Native::Shl;
                case ZYDIS_MNEMONIC_SHR:
                    return Native::Shr;
                case ZYDIS_MNEMONIC_SAR:
                    return Native::Sar;
                case ZYDIS_MNEMONIC_ROL:
                    return Native::Rol;
                default:
                    return Native::Ror;
            }
        case ZYDIS_MNEMONIC_IMUL:
            if (rr) return Native::ImulRR;
            if (in.nops == 3 && is_gpr(b, in.opsize) && in.op[2].kind == OpKind::Imm &&
                fits_imm32(in.op[2].value))
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
        default:
            return Native::None;
    }
    // A 64-bit ALU immediate is a sign-extended imm32 (SDM vol. 2 §2.2.1.5).
    if (ri && !fits_imm32(b.value)) return Native::None;
    if (in.nops == 2 && simple_mem(b, in.opsize)) return Native::AluRM;
    return rr ? Native::AluRR : ri ? Native::AluRI : Native::None;
}

// Forms that write all six status flags without reading any: flags an earlier native
// instruction computed are dead if one of these comes before anything that reads them.
// (A shift by a masked count of 0 changes no flag: not counted.)
bool writes_all_flags(Native f, const DecodedInsn& in) {
    switch (f) {
        case Native::AluRR:
        case Native::AluRI:
        case Native::AluRM:
        case Native::ImulRR:
        case Native::ImulRRI:
            return true;
        case Native::Shl:
        case Native::Shr:
        case Native::Sar:
            return in.nops == 1 || (in.op[1].value & (in.opsize == 8 ? 0x3F : 0x1F)) != 0;
        default:
            return false;
    }
}

// Near JMP rel and Jcc rel in 64-bit mode with the 64-bit operand size: the target is
// RIP-relative and only its canonical check can fault (then the handler runs and raises
// #GP).
Native native_branch(const DecodedInsn& in, Mode mode) {
    if (mode != Mode::Long64 || in.opsize != 8 || in.far || in.prefixes) return Native::None;
    if (in.nops != 1 || in.op[0].kind != OpKind::Imm || !fits_imm32(in.op[0].value))
        return Native::None;
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

}  // namespace softkvm::cpu
