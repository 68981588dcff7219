// Bit operations: BT BTS BTR BTC BSF BSR TZCNT LZCNT POPCNT.
#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

enum class Bt { Test, Set, Reset, Complement };

// A register bit offset addresses a bit string in memory relative to the operand
// (SDM vol. 2A "BT": bit base and signed bit offset); an immediate is taken modulo size.
template <Bt K>
void op_bt(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size, bits = size * 8;
    uint64_t off = c.read_op(i, 1);
    uint64_t value;
    uint64_t lin = 0;
    const bool mem = i.op[0].kind == OpKind::Mem;
    if (mem && i.op[1].kind != OpKind::Imm) {
        int64_t soff = sign_extend(off & size_mask(i.op[1].size), i.op[1].size);
        int64_t unit = soff >> (bits == 64 ? 6 : bits == 32 ? 5 : 4);
        lin = c.linear(i.op[0]) + static_cast<uint64_t>(unit * size);
        off = static_cast<uint64_t>(soff) & (bits - 1);
        value = c.read_mem(lin, size);
    } else {
        off &= bits - 1;
        value = c.read_op(i, 0);
        if (mem) lin = c.linear(i.op[0]);
    }
    const uint64_t bit = 1ull << off;
    const bool old = value & bit;
    if constexpr (K != Bt::Test) {
        uint64_t nv = K == Bt::Set ? value | bit : K == Bt::Reset ? value & ~bit : value ^ bit;
        if (mem)
            c.write_mem(lin, size, nv);
        else
            c.write_op(i, 0, nv);
    }
    CpuState& s = c.state();
    s.rflags = (s.rflags & ~FLAG_CF) | (old ? FLAG_CF : 0);
}

// BSF/BSR: ZF=1 and the destination unchanged when the source is zero.
template <bool Forward>
void op_bsf_bsr(Cpu& c, const DecodedInsn& i) {
    const uint64_t v = c.read_op(i, 1);
    CpuState& s = c.state();
    if (v == 0) {
        s.rflags |= FLAG_ZF;
        return;
    }
    s.rflags &= ~FLAG_ZF;
    c.write_op(i, 0, Forward ? __builtin_ctzll(v) : 63 - __builtin_clzll(v));
}

// TZCNT/LZCNT: CF when the source is zero, ZF when the result is zero.
template <bool Trailing>
void op_count_zeros(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size, bits = size * 8;
    const uint64_t v = c.read_op(i, 1);
    uint64_t r;
    if (v == 0)
        r = bits;
    else
        r = Trailing ? __builtin_ctzll(v) : __builtin_clzll(v) - (64 - bits);
    c.write_op(i, 0, r);
    CpuState& s = c.state();
    s.rflags = (s.rflags & ~(FLAG_CF | FLAG_ZF)) | (v == 0 ? FLAG_CF : 0) | (r == 0 ? FLAG_ZF : 0);
}

void op_popcnt(Cpu& c, const DecodedInsn& i) {
    const uint64_t v = c.read_op(i, 1);
    c.write_op(i, 0, __builtin_popcountll(v));
    c.set_arith_flags(v == 0 ? FLAG_ZF : 0);
}

}  // namespace

void register_bits(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_BT].fn = op_bt<Bt::Test>;
    t[ZYDIS_MNEMONIC_BTS].fn = op_bt<Bt::Set>;
    t[ZYDIS_MNEMONIC_BTR].fn = op_bt<Bt::Reset>;
    t[ZYDIS_MNEMONIC_BTC].fn = op_bt<Bt::Complement>;
    t[ZYDIS_MNEMONIC_BSF].fn = op_bsf_bsr<true>;
    t[ZYDIS_MNEMONIC_BSR].fn = op_bsf_bsr<false>;
    // The CPU model has no BMI1 (cpu_model.cc), so F3 0F BC executes as BSF, as on
    // processors without BMI1 (SDM vol. 2, TZCNT: "executes as BSF").
    t[ZYDIS_MNEMONIC_TZCNT].fn = op_bsf_bsr<true>;
    t[ZYDIS_MNEMONIC_LZCNT].fn = op_count_zeros<false>;
    t[ZYDIS_MNEMONIC_POPCNT].fn = op_popcnt;
}

}  // namespace softkvm::cpu
