// Arithmetic flag computation (SDM vol. 1 §3.4.3, appendix A). Results are the six status
// flags only; callers merge them into RFLAGS.
#pragma once
#include <cstdint>

#include "cpu/arch.h"
#include "cpu/cpu.h"

namespace softkvm::cpu {

inline uint64_t flag_pf(uint64_t r) {
    return __builtin_parity(r & 0xFF) ? 0 : FLAG_PF;
}

// ZF, SF, PF of a result of `size` bytes (already masked).
inline uint64_t flags_zsp(uint64_t r, uint8_t size) {
    return (r == 0 ? FLAG_ZF : 0) | ((r & sign_bit(size)) ? FLAG_SF : 0) | flag_pf(r);
}

inline uint64_t flags_logic(uint64_t r, uint8_t size) {
    return flags_zsp(r, size);
}

inline uint64_t flags_add(uint64_t a, uint64_t b, uint64_t r, uint8_t size, bool cin) {
    uint64_t f = flags_zsp(r, size);
    if (r < a || (cin && r == a)) f |= FLAG_CF;
    if ((a ^ r) & (b ^ r) & sign_bit(size)) f |= FLAG_OF;
    if ((a ^ b ^ r) & 0x10) f |= FLAG_AF;
    return f;
}

inline uint64_t flags_sub(uint64_t a, uint64_t b, uint64_t r, uint8_t size, bool bin) {
    uint64_t f = flags_zsp(r, size);
    if (a < b || (bin && a == b)) f |= FLAG_CF;
    if ((a ^ b) & (a ^ r) & sign_bit(size)) f |= FLAG_OF;
    if ((a ^ b ^ r) & 0x10) f |= FLAG_AF;
    return f;
}

// The two-operand ALU family: the result of `a op b` at `size` and, in `f`, its flags.
enum class Alu { Add, Adc, Sub, Sbb, Cmp, And, Or, Xor, Test };

template <Alu K>
inline uint64_t alu_op(uint64_t a, uint64_t b, uint8_t size, uint64_t rflags, uint64_t& f) {
    const uint64_t m = size_mask(size);
    uint64_t r;
    if constexpr (K == Alu::Add || K == Alu::Adc) {
        const bool cin = K == Alu::Adc && (rflags & FLAG_CF);
        r = (a + b + cin) & m;
        f = flags_add(a, b, r, size, cin);
    } else if constexpr (K == Alu::Sub || K == Alu::Sbb || K == Alu::Cmp) {
        const bool bin = K == Alu::Sbb && (rflags & FLAG_CF);
        r = (a - b - bin) & m;
        f = flags_sub(a, b, r, size, bin);
    } else if constexpr (K == Alu::And || K == Alu::Test) {
        r = a & b;
        f = flags_logic(r, size);
    } else if constexpr (K == Alu::Or) {
        r = a | b;
        f = flags_logic(r, size);
    } else {
        r = a ^ b;
        f = flags_logic(r, size);
    }
    return r;
}

// CMP and TEST only set flags.
template <Alu K>
inline constexpr bool alu_writes = K != Alu::Cmp&& K != Alu::Test;

}  // namespace softkvm::cpu
