// Multiplication and division: MUL IMUL (1, 2 and 3 operands) DIV IDIV, with #DE on a
// zero divisor or a quotient that does not fit (SDM vol. 2A/2B).
#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

using u128 = unsigned __int128;
using i128 = __int128;

// Writes the double-width result of a one-operand MUL/IMUL to AX, DX:AX, EDX:EAX or RDX:RAX.
void write_wide(Cpu& c, uint8_t size, u128 v) {
    if (size == 1) {
        c.write_gpr(RAX, 2, static_cast<uint64_t>(v) & 0xFFFF);
        return;
    }
    c.write_gpr(RAX, size, static_cast<uint64_t>(v) & size_mask(size));
    c.write_gpr(RDX, size, static_cast<uint64_t>(v >> (size * 8)) & size_mask(size));
}

void set_mul_flags(Cpu& c, uint64_t low, uint8_t size, bool overflow) {
    // CF and OF report overflow; SF, ZF, PF follow the low half (undefined in the SDM).
    uint64_t f = flags_zsp(low & size_mask(size), size);
    if (overflow) f |= FLAG_CF | FLAG_OF;
    c.set_arith_flags(f);
}

void op_mul(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const u128 a = c.read_gpr(RAX, size);
    const u128 b = c.read_op(i, 0);
    const u128 r = a * b;
    write_wide(c, size, r);
    set_mul_flags(c, static_cast<uint64_t>(r), size, (r >> (size * 8)) != 0);
}

void op_imul(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    if (i.nops == 1) {
        const i128 a = sign_extend(c.read_gpr(RAX, size), size);
        const i128 b = sign_extend(c.read_op(i, 0), size);
        const i128 r = a * b;
        write_wide(c, size, static_cast<u128>(r));
        const uint64_t low = static_cast<uint64_t>(r) & size_mask(size);
        set_mul_flags(c, low, size, static_cast<i128>(sign_extend(low, size)) != r);
        return;
    }
    const int src = i.nops == 3 ? 1 : 0;
    const i128 a = sign_extend(c.read_op(i, src), size);
    const i128 b = sign_extend(c.read_op(i, i.nops == 3 ? 2 : 1) & size_mask(size), size);
    const i128 r = a * b;
    const uint64_t low = static_cast<uint64_t>(r) & size_mask(size);
    c.write_op(i, 0, low);
    set_mul_flags(c, low, size, static_cast<i128>(sign_extend(low, size)) != r);
}

void op_div(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const uint64_t d = c.read_op(i, 0);
    if (d == 0) c.fault(VEC_DE);
    u128 n;
    if (size == 1)
        n = c.read_gpr(RAX, 2);
    else
        n = (static_cast<u128>(c.read_gpr(RDX, size)) << (size * 8)) | c.read_gpr(RAX, size);
    const u128 q = n / d, r = n % d;
    if (q > size_mask(size)) c.fault(VEC_DE);
    if (size == 1) {
        c.write_gpr(RAX, 2, (static_cast<uint64_t>(r) << 8) | static_cast<uint64_t>(q));
    } else {
        c.write_gpr(RAX, size, static_cast<uint64_t>(q));
        c.write_gpr(RDX, size, static_cast<uint64_t>(r));
    }
}

void op_idiv(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const int64_t d = sign_extend(c.read_op(i, 0), size);
    if (d == 0) c.fault(VEC_DE);
    i128 n;
    if (size == 1) {
        n = sign_extend(c.read_gpr(RAX, 2), 2);
    } else {
        u128 un = (static_cast<u128>(c.read_gpr(RDX, size)) << (size * 8)) | c.read_gpr(RAX, size);
        const int shift = 128 - 2 * size * 8;
        n = static_cast<i128>(un << shift) >> shift;
    }
    // -2^127 / -1 would overflow the host division; its quotient does not fit anyway.
    if (size == 8 && n == static_cast<i128>(static_cast<u128>(1) << 127) && d == -1)
        c.fault(VEC_DE);
    const i128 q = n / d, r = n % d;
    const i128 qmax = (static_cast<i128>(1) << (size * 8 - 1)) - 1;
    if (q > qmax || q < -qmax - 1) c.fault(VEC_DE);
    const uint64_t uq = static_cast<uint64_t>(q) & size_mask(size);
    const uint64_t ur = static_cast<uint64_t>(r) & size_mask(size);
    if (size == 1) {
        c.write_gpr(RAX, 2, (ur << 8) | uq);
    } else {
        c.write_gpr(RAX, size, uq);
        c.write_gpr(RDX, size, ur);
    }
}

}  // namespace

void register_muldiv(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_MUL].fn = op_mul;
    t[ZYDIS_MNEMONIC_IMUL].fn = op_imul;
    t[ZYDIS_MNEMONIC_DIV].fn = op_div;
    t[ZYDIS_MNEMONIC_IDIV].fn = op_idiv;
}

}  // namespace softkvm::cpu
