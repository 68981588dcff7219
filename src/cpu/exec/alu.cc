// Integer arithmetic and logic: ADD ADC SUB SBB CMP AND OR XOR TEST NEG NOT INC DEC.
#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

template <Alu K>
void op_binary(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const uint64_t a = c.read_op(i, 0);
    const uint64_t b = c.read_op(i, 1) & size_mask(size);
    uint64_t f;
    const uint64_t r = alu_op<K>(a, b, size, c.flags(), f);
    if constexpr (alu_writes<K>) c.write_op(i, 0, r);
    c.set_arith_flags(f);
}

void op_neg(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const uint64_t a = c.read_op(i, 0);
    const uint64_t r = (0 - a) & size_mask(size);
    c.write_op(i, 0, r);
    c.set_arith_flags(flags_sub(0, a, r, size, false));
}

void op_not(Cpu& c, const DecodedInsn& i) {
    c.write_op(i, 0, ~c.read_op(i, 0) & size_mask(i.op[0].size));
}

// INC and DEC leave CF unchanged.
template <bool Inc>
void op_incdec(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const uint64_t a = c.read_op(i, 0);
    const uint64_t r = (Inc ? a + 1 : a - 1) & size_mask(size);
    c.write_op(i, 0, r);
    uint64_t f = Inc ? flags_add(a, 1, r, size, false) : flags_sub(a, 1, r, size, false);
    c.set_arith_flags((f & ~FLAG_CF) | (c.flags() & FLAG_CF));
}

}  // namespace

void register_alu(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_ADD].fn = op_binary<Alu::Add>;
    t[ZYDIS_MNEMONIC_ADC].fn = op_binary<Alu::Adc>;
    t[ZYDIS_MNEMONIC_SUB].fn = op_binary<Alu::Sub>;
    t[ZYDIS_MNEMONIC_SBB].fn = op_binary<Alu::Sbb>;
    t[ZYDIS_MNEMONIC_CMP].fn = op_binary<Alu::Cmp>;
    t[ZYDIS_MNEMONIC_AND].fn = op_binary<Alu::And>;
    t[ZYDIS_MNEMONIC_OR].fn = op_binary<Alu::Or>;
    t[ZYDIS_MNEMONIC_XOR].fn = op_binary<Alu::Xor>;
    t[ZYDIS_MNEMONIC_TEST].fn = op_binary<Alu::Test>;
    t[ZYDIS_MNEMONIC_NEG].fn = op_neg;
    t[ZYDIS_MNEMONIC_NOT].fn = op_not;
    t[ZYDIS_MNEMONIC_INC].fn = op_incdec<true>;
    t[ZYDIS_MNEMONIC_DEC].fn = op_incdec<false>;
}

}  // namespace softkvm::cpu
