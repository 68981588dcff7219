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

}  // namespace softkvm::cpu
