// Helpers shared by the SSE instruction files (sse.cc, sse_int.cc, sse_fp.cc) and MMX
// (mmx.cc): the CR0/CR4 checks, XMM or memory operand access, the MXCSR layout (SDM vol. 1
// §10.2.3), and the packed-integer lane arithmetic both register files use.
#pragma once
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cpu/cpu.h"

namespace softkvm::cpu::sse {

using Xmm = CpuState::Xmm;

// MXCSR fields (SDM vol. 1 §10.2.3, figure 10-3).
inline constexpr uint32_t kMxcsrFlags = 0x3F;        // IE DE ZE OE UE PE (bits 0-5)
inline constexpr uint32_t kMxcsrDaz = 1u << 6;       // denormals are zeros
inline constexpr uint32_t kMxcsrMasks = 0x3Fu << 7;  // IM DM ZM OM UM PM (bits 7-12)
inline constexpr uint32_t kMxcsrUm = 1u << 11;
inline constexpr uint32_t kMxcsrRc = 3u << 13;   // rounding control
inline constexpr uint32_t kMxcsrFtz = 1u << 15;  // flush to zero
// MXCSR bits software may set: all of 0-15, DAZ included (the model advertises it through
// MXCSR_MASK in the FXSAVE image, SDM vol. 1 §11.6.6).
inline constexpr uint32_t kMxcsrMask = 0xFFFF;

// SSE instructions need CR4.OSFXSR and CR0.EM clear (#UD), and CR0.TS clear (#NM).
inline void check_sse(Cpu& c) {
    const CpuState& s = c.state();
    if ((s.cr0 & CR0_EM) || !(s.cr4 & CR4_OSFXSR)) c.undefined();
    if (s.cr0 & CR0_TS) c.fault(VEC_NM);
}

// Operand n as an XMM value: a register, a GPR (low quadword) or `size` bytes of memory
// (16 with `aligned`: #GP(0) unless 16-byte aligned).
inline Xmm load(Cpu& c, const DecodedInsn& i, int n, uint8_t size, bool aligned) {
    const Operand& o = i.op[n];
    if (o.kind == OpKind::Xmm) return c.state().xmm[o.reg];
    Xmm v;
    if (o.kind == OpKind::Gpr) {
        v.lo = c.read_gpr(o.reg, o.size);
        return v;
    }
    const uint64_t lin = c.linear(o);
    if (aligned && (lin & 15)) c.fault(VEC_GP, 0);
    if (size == 16) {
        v.lo = c.read_mem(lin, 8);
        v.hi = c.read_mem(lin + 8, 8);
    } else {
        v.lo = c.read_mem(lin, size);
    }
    return v;
}

inline void store(Cpu& c, const DecodedInsn& i, int n, uint8_t size, bool aligned, const Xmm& v) {
    const Operand& o = i.op[n];
    if (o.kind == OpKind::Xmm) {
        c.state().xmm[o.reg] = v;
        return;
    }
    if (o.kind == OpKind::Gpr) {
        c.write_gpr(o.reg, o.size, v.lo);
        return;
    }
    const uint64_t lin = c.linear(o);
    if (aligned && (lin & 15)) c.fault(VEC_GP, 0);
    if (size == 16) {
        c.check_access(lin + 8, Access::Write);  // all or nothing across a page boundary
        c.write_mem(lin, 8, v.lo);
        c.write_mem(lin + 8, 8, v.hi);
    } else {
        c.write_mem(lin, size, v.lo & size_mask(size));
    }
}

// ---- Packed-integer lane arithmetic (SDM vol. 2, the P* instructions) ----
// One implementation for both widths: a kernel works on the low `w` bytes of its Xmm
// operands, w = 16 for an XMM register and 8 for an MMX register (the low quadword; the
// high one is then neither read nor meaningful).
namespace lane {

using Kernel = void (*)(Xmm& d, const Xmm& s, unsigned w);

// d[k] = f(d[k], s[k]) for each element of T in the low w bytes.
template <typename T, typename F>
inline void map(Xmm& d, const Xmm& s, unsigned w, F f) {
    constexpr size_t n = 16 / sizeof(T);
    T a[n], b[n];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    for (size_t k = 0; k < w / sizeof(T); ++k) a[k] = f(a[k], b[k]);
    std::memcpy(static_cast<void*>(&d), a, 16);
}

template <typename T>
inline T saturate(int64_t v) {
    return static_cast<T>(
        std::clamp<int64_t>(v, std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
}

// PADD*/PSUB* (wrapping), PCMPEQ*, PCMPGT* (T signed), PMIN*/PMAX*.
template <typename T>
void add(Xmm& d, const Xmm& s, unsigned w) {
    map<T>(d, s, w, [](T a, T b) { return static_cast<T>(a + b); });
}
template <typename T>
void sub(Xmm& d, const Xmm& s, unsigned w) {
    map<T>(d, s, w, [](T a, T b) { return static_cast<T>(a - b); });
}
template <typename T>
void cmpeq(Xmm& d, const Xmm& s, unsigned w) {
    map<T>(d, s, w, [](T a, T b) { return static_cast<T>(a == b ? ~T{0} : 0); });
}
template <typename T>
void cmpgt(Xmm& d, const Xmm& s, unsigned w) {
    map<T>(d, s, w, [](T a, T b) { return static_cast<T>(a > b ? -1 : 0); });
}
template <typename T>
void min(Xmm& d, const Xmm& s, unsigned w) {
    map<T>(d, s, w, [](T a, T b) { return a < b ? a : b; });
}
template <typename T>
void max(Xmm& d, const Xmm& s, unsigned w) {
    map<T>(d, s, w, [](T a, T b) { return a > b ? a : b; });
}

// PAND PANDN POR PXOR (and the PS/PD logic forms).
enum class Logic { And, AndNot, Or, Xor };
template <Logic K>
void logic(Xmm& d, const Xmm& s, unsigned w) {
    map<uint64_t>(d, s, w, [](uint64_t a, uint64_t b) {
        switch (K) {
            case Logic::And:
                return a & b;
            case Logic::AndNot:
                return ~a & b;
            case Logic::Or:
                return a | b;
            case Logic::Xor:
                break;
        }
        return a ^ b;
    });
}

// PADDS*/PSUBS* (T signed) and PADDUS*/PSUBUS* (T unsigned): saturating.
template <typename T, bool Sub>
void adds(Xmm& d, const Xmm& s, unsigned w) {
    map<T>(d, s, w, [](T a, T b) {
        return saturate<T>(Sub ? int64_t{a} - int64_t{b} : int64_t{a} + int64_t{b});
    });
}

// PAVGB/PAVGW: (a + b + 1) >> 1, unsigned.
template <typename T>
void avg(Xmm& d, const Xmm& s, unsigned w) {
    map<T>(d, s, w, [](T a, T b) { return static_cast<T>((uint32_t{a} + uint32_t{b} + 1) >> 1); });
}

// PMULLW: the low 16 bits of each product; PMULHW (signed) / PMULHUW: the high 16.
inline void mullw(Xmm& d, const Xmm& s, unsigned w) {
    map<uint16_t>(d, s, w, [](uint16_t a, uint16_t b) {
        return static_cast<uint16_t>(static_cast<int16_t>(a) * static_cast<int16_t>(b));
    });
}
template <bool Signed>
void mulh(Xmm& d, const Xmm& s, unsigned w) {
    map<uint16_t>(d, s, w, [](uint16_t a, uint16_t b) {
        const int32_t p = Signed ? int32_t{static_cast<int16_t>(a)} * static_cast<int16_t>(b)
                                 : static_cast<int32_t>(uint32_t{a} * uint32_t{b});
        return static_cast<uint16_t>(static_cast<uint32_t>(p) >> 16);
    });
}

// PMULUDQ: the low dword of each quadword, multiplied into the full quadword.
inline void muludq(Xmm& d, const Xmm& s, unsigned w) {
    map<uint64_t>(d, s, w,
                  [](uint64_t a, uint64_t b) { return (a & 0xFFFFFFFF) * (b & 0xFFFFFFFF); });
}

// PMADDWD: pairs of signed word products summed into dwords (0x8000 * 0x8000 twice wraps
// to 0x80000000).
inline void maddwd(Xmm& d, const Xmm& s, unsigned w) {
    int16_t a[8], b[8];
    uint32_t r[4];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    std::memcpy(r, &d, 16);
    for (unsigned k = 0; k < w / 4; ++k)
        r[k] = static_cast<uint32_t>(int32_t{a[2 * k]} * b[2 * k]) +
               static_cast<uint32_t>(int32_t{a[2 * k + 1]} * b[2 * k + 1]);
    std::memcpy(static_cast<void*>(&d), r, 16);
}

// PSADBW: per quadword, the sum of the absolute byte differences (bits 16-63 zero).
inline void sadbw(Xmm& d, const Xmm& s, unsigned w) {
    uint8_t a[16], b[16];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    uint64_t sum[2] = {0, 0};
    for (unsigned k = 0; k < w; ++k) sum[k / 8] += a[k] > b[k] ? a[k] - b[k] : b[k] - a[k];
    d = {sum[0], sum[1]};
}

// PACKSSWB, PACKSSDW (signed saturation), PACKUSWB (unsigned saturation of signed words):
// the destination's elements, then the source's.
template <typename From, typename To>
void pack(Xmm& d, const Xmm& s, unsigned w) {
    const unsigned n = w / sizeof(From);
    From a[2 * 16 / sizeof(From)];
    std::memcpy(a, &d, w);
    std::memcpy(a + n, &s, w);
    To r[16 / sizeof(To)] = {};
    for (unsigned k = 0; k < 2 * n; ++k) r[k] = saturate<To>(a[k]);
    std::memcpy(static_cast<void*>(&d), r, 16);
}

// PUNPCKL* / PUNPCKH*: interleave the elements of the low (or high) halves.
template <typename T, bool High>
void unpck(Xmm& d, const Xmm& s, unsigned w) {
    constexpr size_t m = 16 / sizeof(T);
    const size_t n = w / sizeof(T);
    T a[m], b[m], r[m];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    std::memcpy(r, &d, 16);
    const size_t base = High ? n / 2 : 0;
    for (size_t k = 0; k < n / 2; ++k) {
        r[2 * k] = a[base + k];
        r[2 * k + 1] = b[base + k];
    }
    std::memcpy(static_cast<void*>(&d), r, 16);
}

// PSLL/PSRL/PSRA by `count` (an immediate or a register's low quadword): a logical count
// of the element width or more clears, an arithmetic one fills with the sign.
enum class Shift { Left, Right, Arith };
template <typename T, Shift K>
void shift(Xmm& d, uint64_t count, unsigned w) {
    constexpr unsigned bits = sizeof(T) * 8;
    T a[16 / sizeof(T)];
    std::memcpy(a, &d, 16);
    for (unsigned k = 0; k < w / sizeof(T); ++k) {
        T& e = a[k];
        if (K == Shift::Arith) {
            using S = std::make_signed_t<T>;
            const unsigned n = count >= bits ? bits - 1 : static_cast<unsigned>(count);
            e = static_cast<T>(static_cast<S>(e) >> n);
        } else if (count >= bits) {
            e = 0;
        } else {
            e = K == Shift::Left ? static_cast<T>(e << count) : static_cast<T>(e >> count);
        }
    }
    std::memcpy(static_cast<void*>(&d), a, 16);
}

// PSHUFW (MMX), PSHUFLW, PSHUFHW: the four words of one half of `s` chosen by `imm`; the
// rest of `s` is copied.
template <bool High>
Xmm shufw(const Xmm& s, unsigned imm) {
    uint16_t a[8], r[8];
    std::memcpy(a, &s, 16);
    std::memcpy(r, &s, 16);
    const int base = High ? 4 : 0;
    for (int k = 0; k < 4; ++k) r[base + k] = a[base + ((imm >> (2 * k)) & 3)];
    Xmm v;
    std::memcpy(static_cast<void*>(&v), r, 16);
    return v;
}

// PINSRW / PEXTRW: word `imm` modulo the element count.
inline void insert_word(Xmm& d, uint16_t v, unsigned imm, unsigned w) {
    uint16_t a[8];
    std::memcpy(a, &d, 16);
    a[imm & (w / 2 - 1)] = v;
    std::memcpy(static_cast<void*>(&d), a, 16);
}
inline uint16_t extract_word(const Xmm& s, unsigned imm, unsigned w) {
    uint16_t a[8];
    std::memcpy(a, &s, 16);
    return a[imm & (w / 2 - 1)];
}

// PMOVMSKB: the top bit of each byte.
inline uint32_t movmskb(const Xmm& s, unsigned w) {
    uint8_t b[16];
    std::memcpy(b, &s, 16);
    uint32_t m = 0;
    for (unsigned k = 0; k < w; ++k) m |= static_cast<uint32_t>(b[k] >> 7) << k;
    return m;
}

// MASKMOVDQU / MASKMOVQ: the bytes of `v` whose mask byte has its top bit set go to
// DS:[RDI] (the address size's RDI/EDI), all or nothing (the model has no caches: the
// non-temporal hint changes nothing).
inline void maskmov(Cpu& c, const DecodedInsn& i, const Xmm& v, const Xmm& m, unsigned w) {
    uint8_t a[16], b[16];
    std::memcpy(a, &v, 16);
    std::memcpy(b, &m, 16);
    const uint64_t lin = c.seg_base(DS) + c.read_gpr(RDI, i.addrsize);
    for (unsigned k = 0; k < w; ++k)
        if (b[k] & 0x80) c.check_access(lin + k, Access::Write);
    for (unsigned k = 0; k < w; ++k)
        if (b[k] & 0x80) c.write_mem(lin + k, 1, a[k]);
}

}  // namespace lane

// The SSE form of a lane kernel: xmm, xmm/m128 (aligned).
template <lane::Kernel K>
void op_lanes(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    K(c.state().xmm[i.op[0].reg], s, 16);
}

}  // namespace softkvm::cpu::sse
