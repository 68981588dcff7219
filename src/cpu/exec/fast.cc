// Specialised handlers for the hottest instruction forms, chosen at decode time so the
// handler never asks what kind its operands are (style.md, "choose the register/memory
// form at decode time"). Only 32- and 64-bit forms: they have no high-byte registers.
// Behaviour is identical to the generic handlers, which cover every other form.
#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

template <uint8_t Size>
inline void set_reg(Cpu& c, uint8_t r, uint64_t v) {
    c.gpr(r) = Size == 4 ? v & 0xFFFFFFFFull : v;
}
template <uint8_t Size>
inline uint64_t get_reg(Cpu& c, uint8_t r) {
    return Size == 4 ? c.gpr(r) & 0xFFFFFFFFull : c.gpr(r);
}

template <Alu K, uint8_t Size>
void alu_rr(Cpu& c, const DecodedInsn& i) {
    uint64_t f;
    const uint64_t r =
        alu_op<K>(get_reg<Size>(c, i.op[0].reg), get_reg<Size>(c, i.op[1].reg), Size, c.flags(), f);
    if constexpr (alu_writes<K>) set_reg<Size>(c, i.op[0].reg, r);
    c.set_arith_flags(f);
}

template <Alu K, uint8_t Size>
void alu_ri(Cpu& c, const DecodedInsn& i) {
    uint64_t f;
    const uint64_t b = static_cast<uint64_t>(i.op[1].value) & size_mask(Size);
    const uint64_t r = alu_op<K>(get_reg<Size>(c, i.op[0].reg), b, Size, c.flags(), f);
    if constexpr (alu_writes<K>) set_reg<Size>(c, i.op[0].reg, r);
    c.set_arith_flags(f);
}

template <Alu K, uint8_t Size>
void alu_rm(Cpu& c, const DecodedInsn& i) {
    uint64_t f;
    const uint64_t b = c.read_mem(c.linear(i.op[1]), Size);
    const uint64_t r = alu_op<K>(get_reg<Size>(c, i.op[0].reg), b, Size, c.flags(), f);
    if constexpr (alu_writes<K>) set_reg<Size>(c, i.op[0].reg, r);
    c.set_arith_flags(f);
}

template <uint8_t Size>
void mov_rr(Cpu& c, const DecodedInsn& i) {
    set_reg<Size>(c, i.op[0].reg, c.gpr(i.op[1].reg));
}
template <uint8_t Size>
void mov_ri(Cpu& c, const DecodedInsn& i) {
    set_reg<Size>(c, i.op[0].reg, static_cast<uint64_t>(i.op[1].value));
}
template <uint8_t Size>
void mov_rm(Cpu& c, const DecodedInsn& i) {
    set_reg<Size>(c, i.op[0].reg, c.read_mem(c.linear(i.op[1]), Size));
}
template <uint8_t Size>
void mov_mr(Cpu& c, const DecodedInsn& i) {
    c.write_mem(c.linear(i.op[0]), Size, get_reg<Size>(c, i.op[1].reg));
}
template <uint8_t Size>
void lea_r(Cpu& c, const DecodedInsn& i) {
    set_reg<Size>(c, i.op[0].reg, c.effective_address(i.op[1]));
}

enum class Form { RR, RI, RM, MR, Other };

Form form_of(const DecodedInsn& in) {
    if (in.nops != 2 || in.op[0].size != in.opsize) return Form::Other;
    const OpKind a = in.op[0].kind, b = in.op[1].kind;
    if (a == OpKind::Gpr && b == OpKind::Gpr && in.op[1].size == in.opsize) return Form::RR;
    if (a == OpKind::Gpr && b == OpKind::Imm) return Form::RI;
    if (a == OpKind::Gpr && b == OpKind::Mem && !in.op[1].agen && in.op[1].size == in.opsize)
        return Form::RM;
    if (a == OpKind::Mem && b == OpKind::Gpr && in.op[1].size == in.opsize) return Form::MR;
    return Form::Other;
}

template <Alu K, uint8_t Size>
Handler alu_form(Form f) {
    switch (f) {
        case Form::RR:
            return alu_rr<K, Size>;
        case Form::RI:
            return alu_ri<K, Size>;
        case Form::RM:
            return alu_rm<K, Size>;
        default:
            return nullptr;
    }
}

template <Alu K>
Handler alu_sized(const DecodedInsn& in, Form f) {
    return in.opsize == 8 ? alu_form<K, 8>(f) : alu_form<K, 4>(f);
}

}  // namespace

Handler fast_handler(uint16_t mnemonic, const DecodedInsn& in) {
    if (in.opsize != 4 && in.opsize != 8) return nullptr;
    if (in.prefixes & PFX_LOCK) return nullptr;
    const Form f = form_of(in);
    const bool q = in.opsize == 8;
    switch (mnemonic) {
        case ZYDIS_MNEMONIC_ADD:
            return alu_sized<Alu::Add>(in, f);
        case ZYDIS_MNEMONIC_SUB:
            return alu_sized<Alu::Sub>(in, f);
        case ZYDIS_MNEMONIC_CMP:
            return alu_sized<Alu::Cmp>(in, f);
        case ZYDIS_MNEMONIC_AND:
            return alu_sized<Alu::And>(in, f);
        case ZYDIS_MNEMONIC_OR:
            return alu_sized<Alu::Or>(in, f);
        case ZYDIS_MNEMONIC_XOR:
            return alu_sized<Alu::Xor>(in, f);
        case ZYDIS_MNEMONIC_TEST:
            return alu_sized<Alu::Test>(in, f);
        case ZYDIS_MNEMONIC_MOV:
            switch (f) {
                case Form::RR:
                    return q ? mov_rr<8> : mov_rr<4>;
                case Form::RI:
                    return q ? mov_ri<8> : mov_ri<4>;
                case Form::RM:
                    return q ? mov_rm<8> : mov_rm<4>;
                case Form::MR:
                    return q ? mov_mr<8> : mov_mr<4>;
                default:
                    return nullptr;
            }
        case ZYDIS_MNEMONIC_LEA:
            if (in.op[0].kind == OpKind::Gpr && in.op[0].size == in.opsize)
                return q ? lea_r<8> : lea_r<4>;
            return nullptr;
        default:
            return nullptr;
    }
}

}  // namespace softkvm::cpu
