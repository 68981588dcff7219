// Shifts and rotates: SHL/SAL SHR SAR ROL ROR RCL RCR SHLD SHRD (SDM vol. 2B). Flags that
// the SDM leaves undefined (OF for counts > 1, AF) follow the simple formulas below.
#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

uint8_t masked_count(Cpu& c, const DecodedInsn& i, int n) {
    uint64_t raw = i.nops > n ? c.read_op(i, n) : 1;
    return static_cast<uint8_t>(raw & (i.op[0].size == 8 ? 0x3F : 0x1F));
}

// A count of 0 changes nothing, except that a 32-bit register destination is still
// written, which clears its upper half in 64-bit mode (as on hardware).
void zero_count(Cpu& c, const DecodedInsn& i) {
    if (i.op[0].kind == OpKind::Gpr && i.op[0].size == 4) c.write_op(i, 0, c.read_op(i, 0));
}

enum class Sh { Shl, Shr, Sar };

template <Sh K>
void op_shift(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size, bits = size * 8;
    const uint8_t n = masked_count(c, i, 1);
    if (n == 0) return zero_count(c, i);  // no flags change
    const uint64_t m = size_mask(size);
    const uint64_t a = c.read_op(i, 0);
    uint64_t r;
    bool cf, of;
    if constexpr (K == Sh::Shl) {
        r = n >= 64 ? 0 : (a << n) & m;
        cf = n <= bits ? (a >> (bits - n)) & 1 : 0;
        of = ((r & sign_bit(size)) != 0) != cf;
    } else if constexpr (K == Sh::Shr) {
        r = n >= 64 ? 0 : a >> n;
        cf = (a >> (n - 1)) & 1;
        of = (a & sign_bit(size)) != 0;
    } else {
        const int64_t sa = sign_extend(a, size);
        r = static_cast<uint64_t>(sa >> (n > 63 ? 63 : n)) & m;
        cf = (sa >> (n - 1 > 63 ? 63 : n - 1)) & 1;
        of = false;
    }
    c.write_op(i, 0, r);
    c.set_arith_flags(flags_zsp(r, size) | (cf ? FLAG_CF : 0) | (of ? FLAG_OF : 0));
}

// Rotates change only CF and OF.
void set_cf_of(Cpu& c, bool cf, bool of) {
    CpuState& s = c.state();
    s.rflags = (s.rflags & ~(FLAG_CF | FLAG_OF)) | (cf ? FLAG_CF : 0) | (of ? FLAG_OF : 0);
}

template <bool Left>
void op_rotate(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size, bits = size * 8;
    const uint8_t n = masked_count(c, i, 1);
    if (n == 0) return zero_count(c, i);
    const uint64_t m = size_mask(size);
    const uint64_t a = c.read_op(i, 0);
    const uint8_t k = n % bits;
    uint64_t r = k == 0 ? a
                 : Left ? ((a << k) | (a >> (bits - k))) & m
                        : ((a >> k) | (a << (bits - k))) & m;
    c.write_op(i, 0, r);
    const bool msb = r & sign_bit(size);
    if (Left) {
        const bool cf = r & 1;
        set_cf_of(c, cf, msb != cf);
    } else {
        const bool msb1 = (r >> (bits - 2)) & 1;
        set_cf_of(c, msb, msb != msb1);
    }
}

// RCL/RCR rotate through CF: a (bits+1)-bit rotation.
template <bool Left>
void op_rotate_carry(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size, bits = size * 8;
    uint8_t n = masked_count(c, i, 1);
    if (size == 1) n %= 9;
    if (size == 2) n %= 17;
    const uint64_t a = c.read_op(i, 0);
    bool cf = c.flags() & FLAG_CF;
    if (n == 0) return zero_count(c, i);
    uint64_t r = a;
    const bool of_before = ((a & sign_bit(size)) != 0) != cf;  // RCR's OF uses the inputs
    for (uint8_t k = 0; k < n; ++k) {
        if (Left) {
            bool out = r & sign_bit(size);
            r = ((r << 1) | (cf ? 1 : 0)) & size_mask(size);
            cf = out;
        } else {
            bool out = r & 1;
            r = (r >> 1) | (cf ? sign_bit(size) : 0);
            cf = out;
        }
    }
    c.write_op(i, 0, r);
    const bool of = Left ? (((r & sign_bit(size)) != 0) != cf) : of_before;
    (void)bits;
    set_cf_of(c, cf, of);
}

template <bool Left>
void op_double_shift(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size, bits = size * 8;
    const uint8_t n = masked_count(c, i, 2);
    if (n == 0) return zero_count(c, i);
    const uint64_t m = size_mask(size);
    const uint64_t a = c.read_op(i, 0);
    const uint64_t b = c.read_op(i, 1);
    uint64_t r;
    bool cf;
    if (n > bits) {  // only possible for 16-bit operands; the SDM leaves it undefined
        r = Left ? (b << (n - bits)) & m : (b >> (n - bits)) & m;
        cf = Left ? (b >> (2 * bits - n)) & 1 : (b >> (n - bits - 1)) & 1;
    } else if (Left) {
        r = ((a << n) | (b >> (bits - n))) & m;
        cf = (a >> (bits - n)) & 1;
    } else {
        r = ((a >> n) | (b << (bits - n))) & m;
        cf = (a >> (n - 1)) & 1;
    }
    c.write_op(i, 0, r);
    const bool of = ((r ^ a) & sign_bit(size)) != 0;
    c.set_arith_flags(flags_zsp(r, size) | (cf ? FLAG_CF : 0) | (of ? FLAG_OF : 0));
}

}  // namespace

void register_shift(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_SHL].fn = op_shift<Sh::Shl>;
    t[ZYDIS_MNEMONIC_SHR].fn = op_shift<Sh::Shr>;
    t[ZYDIS_MNEMONIC_SAR].fn = op_shift<Sh::Sar>;
    t[ZYDIS_MNEMONIC_ROL].fn = op_rotate<true>;
    t[ZYDIS_MNEMONIC_ROR].fn = op_rotate<false>;
    t[ZYDIS_MNEMONIC_RCL].fn = op_rotate_carry<true>;
    t[ZYDIS_MNEMONIC_RCR].fn = op_rotate_carry<false>;
    t[ZYDIS_MNEMONIC_SHLD].fn = op_double_shift<true>;
    t[ZYDIS_MNEMONIC_SHRD].fn = op_double_shift<false>;
}

}  // namespace softkvm::cpu
