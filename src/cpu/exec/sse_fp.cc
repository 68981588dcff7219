// SSE/SSE2 floating point (SDM vol. 1 ch. 10-11, vol. 2): arithmetic, MIN/MAX, SQRT,
// compares, conversions, shuffles and sign masks on packed and scalar single and double
// precision values.
//
// Exactness: every IEEE operation runs on the host's own SSE unit (softkvm is x86-64
// only) with the guest's rounding control, DAZ and FTZ loaded into the host MXCSR and all
// host exceptions masked; the host's exception flags after the operation are the guest's.
// The guest's masks then decide: flags are ORed into the guest MXCSR and an unmasked one
// raises #XM (CR4.OSXMMEXCPT set) or #UD, leaving the destination unchanged (SDM vol. 1
// §11.5.1). RCPPS/RSQRTPS, whose precision the SDM leaves to the implementation, are
// computed exactly (correctly rounded) so that results do not depend on the host part.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "cpu/exec/handlers.h"
#include "cpu/exec/mmx.h"
#include "cpu/exec/sse_util.h"

namespace softkvm::cpu {
namespace {

using namespace sse;  // NOLINT: the shared SSE helpers

// A host SSE operation: a = a OP b under the host MXCSR `csr`; returns the MXCSR after.
using HostOp = uint32_t (*)(__m128i& a, __m128i b, uint32_t csr);

#define SKVM_HOST_OP(name, text)                                       \
    uint32_t name(__m128i& a, __m128i b, uint32_t csr) {               \
        uint32_t saved, out;                                           \
        __asm__ volatile("stmxcsr %[s]\n\tldmxcsr %[c]\n\t" text       \
                         " %[b], %[a]\n\tstmxcsr %[o]\n\tldmxcsr %[s]" \
                         : [a] "+x"(a), [o] "=m"(out), [s] "=m"(saved) \
                         : [b] "x"(b), [c] "m"(csr));                  \
        return out;                                                    \
    }
#define SKVM_HOST_OP4(base)                \
    SKVM_HOST_OP(h_##base##ps, #base "ps") \
    SKVM_HOST_OP(h_##base##pd, #base "pd") \
    SKVM_HOST_OP(h_##base##ss, #base "ss") SKVM_HOST_OP(h_##base##sd, #base "sd")

SKVM_HOST_OP4(add)
SKVM_HOST_OP4(sub)
SKVM_HOST_OP4(mul)
SKVM_HOST_OP4(div)
SKVM_HOST_OP4(min)
SKVM_HOST_OP4(max)
SKVM_HOST_OP4(sqrt)
SKVM_HOST_OP(h_cvtss2sd, "cvtss2sd")
SKVM_HOST_OP(h_cvtsd2ss, "cvtsd2ss")
SKVM_HOST_OP(h_cvtps2pd, "cvtps2pd")
SKVM_HOST_OP(h_cvtpd2ps, "cvtpd2ps")
SKVM_HOST_OP(h_cvtdq2ps, "cvtdq2ps")
SKVM_HOST_OP(h_cvtps2dq, "cvtps2dq")
SKVM_HOST_OP(h_cvttps2dq, "cvttps2dq")
SKVM_HOST_OP(h_cvtdq2pd, "cvtdq2pd")
SKVM_HOST_OP(h_cvtpd2dq, "cvtpd2dq")
SKVM_HOST_OP(h_cvttpd2dq, "cvttpd2dq")

// CMPccPS/PD/SS/SD with predicate P (0-7: EQ LT LE UNORD NEQ NLT NLE ORD).
#define SKVM_HOST_CMP(name, text)                                            \
    template <int P>                                                         \
    uint32_t name(__m128i& a, __m128i b, uint32_t csr) {                     \
        uint32_t saved, out;                                                 \
        __asm__ volatile("stmxcsr %[s]\n\tldmxcsr %[c]\n\t" text             \
                         " %[p], %[b], %[a]\n\tstmxcsr %[o]\n\tldmxcsr %[s]" \
                         : [a] "+x"(a), [o] "=m"(out), [s] "=m"(saved)       \
                         : [b] "x"(b), [c] "m"(csr), [p] "i"(P));            \
        return out;                                                          \
    }
SKVM_HOST_CMP(h_cmpps, "cmpps")
SKVM_HOST_CMP(h_cmppd, "cmppd")
SKVM_HOST_CMP(h_cmpss, "cmpss")
SKVM_HOST_CMP(h_cmpsd, "cmpsd")

// The host MXCSR for a guest one: its rounding, DAZ and FTZ, every exception masked and
// no flags. FTZ acts only while underflow is masked (SDM vol. 1 §10.2.3.3).
uint32_t host_csr(uint32_t guest) {
    uint32_t h = (guest & (kMxcsrRc | kMxcsrDaz | kMxcsrFtz)) | kMxcsrMasks;
    if (!(guest & kMxcsrUm)) h &= ~kMxcsrFtz;
    return h;
}

// Records the exception flags of an operation and raises the exception for an unmasked
// one: #XM with CR4.OSXMMEXCPT, else #UD (SDM vol. 1 §11.5.1); returns if none.
void take_flags(Cpu& c, uint32_t flags) {
    CpuState& s = c.state();
    flags &= kMxcsrFlags;
    s.mxcsr |= flags;
    if (flags & ~(s.mxcsr >> 7) & kMxcsrFlags) c.fault((s.cr4 & CR4_OSXMMEXCPT) ? VEC_XM : VEC_UD);
}

// What an operation produces, for the underflow rule below.
enum class Out : uint8_t { F32, F64, Other };

// With underflow unmasked, a tiny result raises UE even when exact (SDM vol. 1 §4.9.1.5);
// the host ran masked, where an exact tiny result raises nothing: such a result is a
// denormal in one of the `lanes` written lanes.
uint32_t exact_tiny(Out o, const __m128i& r, int lanes) {
    uint32_t w[4];
    uint64_t q[2];
    std::memcpy(w, &r, 16);
    std::memcpy(q, &r, 16);
    for (int k = 0; k < lanes; ++k) {
        if (o == Out::F32 && (w[k] & 0x7F800000u) == 0 && (w[k] & 0x7FFFFFu)) return 1u << 4;
        if (o == Out::F64 && (q[k] >> 52 & 0x7FF) == 0 && (q[k] & ((1ull << 52) - 1)))
            return 1u << 4;
    }
    return 0;
}

// Runs `op` on destination and source values, takes its flags; true when the result may
// be written (no unmasked exception).
Xmm run(Cpu& c, HostOp op, Xmm d, const Xmm& s, Out o, int lanes) {
    const uint32_t guest = c.state().mxcsr;
    __m128i a, b;
    std::memcpy(&a, &d, 16);
    std::memcpy(&b, &s, 16);
    uint32_t flags = op(a, b, host_csr(guest)) & kMxcsrFlags;
    if (!(guest & kMxcsrUm) && o != Out::Other) flags |= exact_tiny(o, a, lanes);
    take_flags(c, flags);
    std::memcpy(static_cast<void*>(&d), &a, 16);
    return d;
}

// A two-operand instruction xmm, xmm/mem of `Size` bytes (16: packed, aligned).
template <HostOp Op, uint8_t Size, Out O, int Lanes>
void op_fp(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, Size, Size == 16);
    Xmm& d = c.state().xmm[i.op[0].reg];
    d = run(c, Op, d, s, O, Lanes);
}

// CMPPS and friends: the predicate is the immediate (only 0-7 exist without AVX).
template <HostOp E, HostOp L, HostOp LE, HostOp U, HostOp NE, HostOp NL, HostOp NLE, HostOp ORD,
          uint8_t Size>
void op_cmp(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    static constexpr HostOp ops[8] = {E, L, LE, U, NE, NL, NLE, ORD};
    const Xmm s = load(c, i, 1, Size, Size == 16);
    Xmm& d = c.state().xmm[i.op[0].reg];
    d = run(c, ops[i.op[2].value & 7], d, s, Out::Other, 0);
}
#define SKVM_CMP(fn, size) op_cmp<fn<0>, fn<1>, fn<2>, fn<3>, fn<4>, fn<5>, fn<6>, fn<7>, size>

// COMISS/COMISD (signal on any NaN) and UCOMISS/UCOMISD (on SNaN only): ZF, PF, CF as
// the compare gives them, OF, SF, AF cleared.
#define SKVM_HOST_COMI(name, text)                                                                 \
    uint32_t name(__m128i a, __m128i b, uint32_t csr, uint64_t& fl) {                              \
        uint32_t saved, out;                                                                       \
        uint8_t z, p, cy;                                                                          \
        __asm__ volatile("stmxcsr %[s]\n\tldmxcsr %[c]\n\t" text                                   \
                         " %[b], %[a]\n\tsetz %[z]\n\tsetp %[p]\n\tsetc %[cy]\n\t"                 \
                         "stmxcsr %[o]\n\tldmxcsr %[s]"                                            \
                         : [o] "=m"(out), [s] "=m"(saved), [z] "=q"(z), [p] "=q"(p), [cy] "=q"(cy) \
                         : [a] "x"(a), [b] "x"(b), [c] "m"(csr)                                    \
                         : "cc");                                                                  \
        fl = (z ? FLAG_ZF : 0) | (p ? FLAG_PF : 0) | (cy ? FLAG_CF : 0);                           \
        return out;                                                                                \
    }
SKVM_HOST_COMI(h_comiss, "comiss")
SKVM_HOST_COMI(h_comisd, "comisd")
SKVM_HOST_COMI(h_ucomiss, "ucomiss")
SKVM_HOST_COMI(h_ucomisd, "ucomisd")
using HostComi = uint32_t (*)(__m128i, __m128i, uint32_t, uint64_t&);

template <HostComi Op, uint8_t Size>
void op_comi(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, Size, false);
    const Xmm d = c.state().xmm[i.op[0].reg];
    __m128i a, b;
    std::memcpy(&a, &d, 16);
    std::memcpy(&b, &s, 16);
    uint64_t fl = 0;
    take_flags(c, Op(a, b, host_csr(c.state().mxcsr), fl));
    c.set_arith_flags(fl);
}

// CVT(T)SS2SI / CVT(T)SD2SI: to a 32- or 64-bit GPR (invalid: the integer indefinite).
#define SKVM_HOST_TOINT(name, text, T)                                 \
    uint32_t name(__m128i b, uint32_t csr, T& r) {                     \
        uint32_t saved, out;                                           \
        __asm__ volatile("stmxcsr %[s]\n\tldmxcsr %[c]\n\t" text       \
                         " %[b], %[r]\n\tstmxcsr %[o]\n\tldmxcsr %[s]" \
                         : [r] "=r"(r), [o] "=m"(out), [s] "=m"(saved) \
                         : [b] "x"(b), [c] "m"(csr));                  \
        return out;                                                    \
    }
SKVM_HOST_TOINT(h_cvtss2si32, "cvtss2si", int32_t)
SKVM_HOST_TOINT(h_cvtss2si64, "cvtss2si", int64_t)
SKVM_HOST_TOINT(h_cvttss2si32, "cvttss2si", int32_t)
SKVM_HOST_TOINT(h_cvttss2si64, "cvttss2si", int64_t)
SKVM_HOST_TOINT(h_cvtsd2si32, "cvtsd2si", int32_t)
SKVM_HOST_TOINT(h_cvtsd2si64, "cvtsd2si", int64_t)
SKVM_HOST_TOINT(h_cvttsd2si32, "cvttsd2si", int32_t)
SKVM_HOST_TOINT(h_cvttsd2si64, "cvttsd2si", int64_t)

template <uint32_t (*Op32)(__m128i, uint32_t, int32_t&),
          uint32_t (*Op64)(__m128i, uint32_t, int64_t&), uint8_t Size>
void op_to_int(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, Size, false);
    __m128i b;
    std::memcpy(&b, &s, 16);
    const uint32_t csr = host_csr(c.state().mxcsr);
    const Operand& d = i.op[0];
    if (d.size == 8) {
        int64_t r;
        take_flags(c, Op64(b, csr, r));
        c.write_gpr(d.reg, 8, static_cast<uint64_t>(r));
    } else {
        int32_t r;
        take_flags(c, Op32(b, csr, r));
        c.write_gpr(d.reg, 4, static_cast<uint32_t>(r));
    }
}

// CVTSI2SS / CVTSI2SD from a 32- or 64-bit GPR or memory operand (rounds per MXCSR.RC).
#define SKVM_HOST_FROMINT(name, text, T)                               \
    uint32_t name(__m128i& a, T v, uint32_t csr) {                     \
        uint32_t saved, out;                                           \
        __asm__ volatile("stmxcsr %[s]\n\tldmxcsr %[c]\n\t" text       \
                         " %[v], %[a]\n\tstmxcsr %[o]\n\tldmxcsr %[s]" \
                         : [a] "+x"(a), [o] "=m"(out), [s] "=m"(saved) \
                         : [v] "r"(v), [c] "m"(csr));                  \
        return out;                                                    \
    }
SKVM_HOST_FROMINT(h_cvtsi2ss32, "cvtsi2ss", int32_t)
SKVM_HOST_FROMINT(h_cvtsi2ss64, "cvtsi2ss", int64_t)
SKVM_HOST_FROMINT(h_cvtsi2sd32, "cvtsi2sd", int32_t)
SKVM_HOST_FROMINT(h_cvtsi2sd64, "cvtsi2sd", int64_t)

template <uint32_t (*Op32)(__m128i&, int32_t, uint32_t),
          uint32_t (*Op64)(__m128i&, int64_t, uint32_t)>
void op_from_int(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Operand& src = i.op[1];
    const uint8_t size = src.size == 8 ? 8 : 4;
    const uint64_t v =
        src.kind == OpKind::Gpr ? c.read_gpr(src.reg, size) : c.read_mem(c.linear(src), size);
    Xmm& d = c.state().xmm[i.op[0].reg];
    __m128i a;
    std::memcpy(&a, &d, 16);
    const uint32_t csr = host_csr(c.state().mxcsr);
    const uint32_t out =
        size == 8 ? Op64(a, static_cast<int64_t>(v), csr) : Op32(a, static_cast<int32_t>(v), csr);
    take_flags(c, out);
    std::memcpy(static_cast<void*>(&d), &a, 16);
}

// SHUFPS / SHUFPD: the low half of the result from the destination, the high from the
// source, each element picked by the immediate.
void op_shufps(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    Xmm& d = c.state().xmm[i.op[0].reg];
    const unsigned imm = static_cast<unsigned>(i.op[2].value);
    uint32_t a[4], b[4], r[4];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    r[0] = a[imm & 3], r[1] = a[(imm >> 2) & 3];
    r[2] = b[(imm >> 4) & 3], r[3] = b[(imm >> 6) & 3];
    std::memcpy(&d, r, 16);
}
void op_shufpd(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    Xmm& d = c.state().xmm[i.op[0].reg];
    const unsigned imm = static_cast<unsigned>(i.op[2].value);
    d = {(imm & 1) ? d.hi : d.lo, (imm & 2) ? s.hi : s.lo};
}

// UNPCKLPS/UNPCKHPS/UNPCKLPD/UNPCKHPD: interleave the low (High: high) elements.
template <typename T, bool High>
void op_unpck(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    Xmm& d = c.state().xmm[i.op[0].reg];
    constexpr size_t n = 16 / sizeof(T);
    T a[n], b[n], r[n];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    const size_t base = High ? n / 2 : 0;
    for (size_t k = 0; k < n / 2; ++k) r[2 * k] = a[base + k], r[2 * k + 1] = b[base + k];
    std::memcpy(&d, r, 16);
}

// MOVMSKPS / MOVMSKPD: the sign bits into a GPR, zero-extended.
template <typename T>
void op_movmsk(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm& s = c.state().xmm[i.op[1].reg];
    constexpr size_t n = 16 / sizeof(T);
    T a[n];
    std::memcpy(a, &s, 16);
    uint64_t m = 0;
    for (size_t k = 0; k < n; ++k) m |= static_cast<uint64_t>(a[k] >> (8 * sizeof(T) - 1)) << k;
    c.write_gpr(i.op[0].reg, i.op[0].size == 8 ? 8 : 4, m);
}

// RCPPS/RCPSS/RSQRTPS/RSQRTSS: 1/x and 1/sqrt(x), correctly rounded to nearest (within
// the SDM's 1.5 * 2^-12 relative error). No flags, no exceptions; a denormal source acts as
// a zero of its sign and a tiny result becomes a zero (SDM vol. 2, RCPPS, RSQRTPS).
uint32_t approx(uint32_t x, bool rsqrt) {
    const uint32_t sign = x & 0x80000000u, mag = x & 0x7FFFFFFFu;
    if (mag > 0x7F800000u) return x | 0x00400000u;  // NaN: quieted
    if (mag < 0x00800000u) {                        // zero or denormal
        return sign | 0x7F800000u;                  // 1/0 and 1/sqrt(0): infinity
    }
    if (rsqrt && sign) return 0xFFC00000u;  // negative: the default NaN
    if (mag == 0x7F800000u) return sign;    // 1/inf = 0, 1/sqrt(inf) = 0
    float f;
    std::memcpy(&f, &x, 4);
    const double r = rsqrt ? 1.0 / std::sqrt(static_cast<double>(f)) : 1.0 / static_cast<double>(f);
    float rf = static_cast<float>(r);  // host default: round to nearest
    uint32_t out;
    std::memcpy(&out, &rf, 4);
    if ((out & 0x7F800000u) == 0) out &= 0x80000000u;  // tiny: flushed
    return out;
}
template <bool Rsqrt, bool Packed>
void op_approx(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, Packed ? 16 : 4, Packed);
    Xmm& d = c.state().xmm[i.op[0].reg];
    uint32_t a[4], r[4];
    std::memcpy(a, &s, 16);
    std::memcpy(r, &d, 16);
    for (int k = 0; k < (Packed ? 4 : 1); ++k) r[k] = approx(a[k], Rsqrt);
    std::memcpy(&d, r, 16);
}

// The conversions between packed dwords in an MMX register and floating point (SDM vol. 2
// CVTPI2PS, CVTPI2PD, CVT(T)PS2PI, CVT(T)PD2PI): the XMM conversion on the operand's low
// lanes (the other lanes hold zeros, which convert exactly). With an MMX register operand
// the instruction is also an MMX one (#MF if pending, TOP = 0, tags valid); with memory
// it is pure SSE.
template <HostOp Op, bool Low>
void op_cvtpi2p(Cpu& c, const DecodedInsn& i) {
    const bool mm = i.op[1].kind == OpKind::Mm;
    mm ? mmx::begin_sse(c) : check_sse(c);
    const Xmm s{mmx::read(c, i, 1), 0};
    Xmm& d = c.state().xmm[i.op[0].reg];
    const Xmm r = run(c, Op, d, s, Out::Other, 0);
    d = Low ? Xmm{r.lo, d.hi} : r;  // CVTPI2PS writes the low two singles only
    if (mm) mmx::enter(c.state());
}
template <HostOp Op, uint8_t Size>
void op_cvtp2pi(Cpu& c, const DecodedInsn& i) {
    mmx::begin_sse(c);
    Xmm s = load(c, i, 1, Size, Size == 16);
    if (Size == 8) s.hi = 0;
    const Xmm r = run(c, Op, Xmm{}, s, Out::Other, 0);
    mmx::put(c.state(), i.op[0].reg, r.lo);
}

}  // namespace

void register_sse_fp(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_ADDPS].fn = op_fp<h_addps, 16, Out::F32, 4>;
    t[ZYDIS_MNEMONIC_ADDPD].fn = op_fp<h_addpd, 16, Out::F64, 2>;
    t[ZYDIS_MNEMONIC_ADDSS].fn = op_fp<h_addss, 4, Out::F32, 1>;
    t[ZYDIS_MNEMONIC_ADDSD].fn = op_fp<h_addsd, 8, Out::F64, 1>;
    t[ZYDIS_MNEMONIC_SUBPS].fn = op_fp<h_subps, 16, Out::F32, 4>;
    t[ZYDIS_MNEMONIC_SUBPD].fn = op_fp<h_subpd, 16, Out::F64, 2>;
    t[ZYDIS_MNEMONIC_SUBSS].fn = op_fp<h_subss, 4, Out::F32, 1>;
    t[ZYDIS_MNEMONIC_SUBSD].fn = op_fp<h_subsd, 8, Out::F64, 1>;
    t[ZYDIS_MNEMONIC_MULPS].fn = op_fp<h_mulps, 16, Out::F32, 4>;
    t[ZYDIS_MNEMONIC_MULPD].fn = op_fp<h_mulpd, 16, Out::F64, 2>;
    t[ZYDIS_MNEMONIC_MULSS].fn = op_fp<h_mulss, 4, Out::F32, 1>;
    t[ZYDIS_MNEMONIC_MULSD].fn = op_fp<h_mulsd, 8, Out::F64, 1>;
    t[ZYDIS_MNEMONIC_DIVPS].fn = op_fp<h_divps, 16, Out::F32, 4>;
    t[ZYDIS_MNEMONIC_DIVPD].fn = op_fp<h_divpd, 16, Out::F64, 2>;
    t[ZYDIS_MNEMONIC_DIVSS].fn = op_fp<h_divss, 4, Out::F32, 1>;
    t[ZYDIS_MNEMONIC_DIVSD].fn = op_fp<h_divsd, 8, Out::F64, 1>;
    t[ZYDIS_MNEMONIC_SQRTPS].fn = op_fp<h_sqrtps, 16, Out::F32, 4>;
    t[ZYDIS_MNEMONIC_SQRTPD].fn = op_fp<h_sqrtpd, 16, Out::F64, 2>;
    t[ZYDIS_MNEMONIC_SQRTSS].fn = op_fp<h_sqrtss, 4, Out::F32, 1>;
    t[ZYDIS_MNEMONIC_SQRTSD].fn = op_fp<h_sqrtsd, 8, Out::F64, 1>;
    // MIN/MAX return an operand: no rounding, so no underflow of their own.
    t[ZYDIS_MNEMONIC_MINPS].fn = op_fp<h_minps, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_MINPD].fn = op_fp<h_minpd, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_MINSS].fn = op_fp<h_minss, 4, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_MINSD].fn = op_fp<h_minsd, 8, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_MAXPS].fn = op_fp<h_maxps, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_MAXPD].fn = op_fp<h_maxpd, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_MAXSS].fn = op_fp<h_maxss, 4, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_MAXSD].fn = op_fp<h_maxsd, 8, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CMPPS].fn = SKVM_CMP(h_cmpps, 16);
    t[ZYDIS_MNEMONIC_CMPPD].fn = SKVM_CMP(h_cmppd, 16);
    t[ZYDIS_MNEMONIC_CMPSS].fn = SKVM_CMP(h_cmpss, 4);
    t[ZYDIS_MNEMONIC_CMPSD].fn = SKVM_CMP(h_cmpsd, 8);
    t[ZYDIS_MNEMONIC_COMISS].fn = op_comi<h_comiss, 4>;
    t[ZYDIS_MNEMONIC_COMISD].fn = op_comi<h_comisd, 8>;
    t[ZYDIS_MNEMONIC_UCOMISS].fn = op_comi<h_ucomiss, 4>;
    t[ZYDIS_MNEMONIC_UCOMISD].fn = op_comi<h_ucomisd, 8>;
    t[ZYDIS_MNEMONIC_CVTSS2SD].fn = op_fp<h_cvtss2sd, 4, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CVTSD2SS].fn = op_fp<h_cvtsd2ss, 8, Out::F32, 1>;
    t[ZYDIS_MNEMONIC_CVTPS2PD].fn = op_fp<h_cvtps2pd, 8, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CVTPD2PS].fn = op_fp<h_cvtpd2ps, 16, Out::F32, 2>;
    t[ZYDIS_MNEMONIC_CVTDQ2PS].fn = op_fp<h_cvtdq2ps, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CVTPS2DQ].fn = op_fp<h_cvtps2dq, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CVTTPS2DQ].fn = op_fp<h_cvttps2dq, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CVTDQ2PD].fn = op_fp<h_cvtdq2pd, 8, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CVTPD2DQ].fn = op_fp<h_cvtpd2dq, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CVTTPD2DQ].fn = op_fp<h_cvttpd2dq, 16, Out::Other, 0>;
    t[ZYDIS_MNEMONIC_CVTSI2SS].fn = op_from_int<h_cvtsi2ss32, h_cvtsi2ss64>;
    t[ZYDIS_MNEMONIC_CVTSI2SD].fn = op_from_int<h_cvtsi2sd32, h_cvtsi2sd64>;
    t[ZYDIS_MNEMONIC_SHUFPS].fn = op_shufps;
    t[ZYDIS_MNEMONIC_SHUFPD].fn = op_shufpd;
    t[ZYDIS_MNEMONIC_UNPCKLPS].fn = op_unpck<uint32_t, false>;
    t[ZYDIS_MNEMONIC_UNPCKHPS].fn = op_unpck<uint32_t, true>;
    t[ZYDIS_MNEMONIC_UNPCKLPD].fn = op_unpck<uint64_t, false>;
    t[ZYDIS_MNEMONIC_UNPCKHPD].fn = op_unpck<uint64_t, true>;
    t[ZYDIS_MNEMONIC_MOVMSKPS].fn = op_movmsk<uint32_t>;
    t[ZYDIS_MNEMONIC_MOVMSKPD].fn = op_movmsk<uint64_t>;
    t[ZYDIS_MNEMONIC_RCPPS].fn = op_approx<false, true>;
    t[ZYDIS_MNEMONIC_RCPSS].fn = op_approx<false, false>;
    t[ZYDIS_MNEMONIC_RSQRTPS].fn = op_approx<true, true>;
    t[ZYDIS_MNEMONIC_RSQRTSS].fn = op_approx<true, false>;
    t[ZYDIS_MNEMONIC_CVTPI2PS].fn = op_cvtpi2p<h_cvtdq2ps, true>;  // from memory
    t[ZYDIS_MNEMONIC_CVTPI2PD].fn = op_cvtpi2p<h_cvtdq2pd, false>;
    register_sse_fp_gpr(t);
}

// The forms with an MMX register operand (the MMX table).
void register_mmx_cvt(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_CVTPI2PS].fn = op_cvtpi2p<h_cvtdq2ps, true>;
    t[ZYDIS_MNEMONIC_CVTPI2PD].fn = op_cvtpi2p<h_cvtdq2pd, false>;
    t[ZYDIS_MNEMONIC_CVTPS2PI].fn = op_cvtp2pi<h_cvtps2dq, 8>;
    t[ZYDIS_MNEMONIC_CVTTPS2PI].fn = op_cvtp2pi<h_cvttps2dq, 8>;
    t[ZYDIS_MNEMONIC_CVTPD2PI].fn = op_cvtp2pi<h_cvtpd2dq, 16>;
    t[ZYDIS_MNEMONIC_CVTTPD2PI].fn = op_cvtp2pi<h_cvttpd2dq, 16>;
}

// Conversions to a GPR: with a memory source they have no XMM operand, so they are also
// in the main table.
void register_sse_fp_gpr(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_CVTSS2SI].fn = op_to_int<h_cvtss2si32, h_cvtss2si64, 4>;
    t[ZYDIS_MNEMONIC_CVTTSS2SI].fn = op_to_int<h_cvttss2si32, h_cvttss2si64, 4>;
    t[ZYDIS_MNEMONIC_CVTSD2SI].fn = op_to_int<h_cvtsd2si32, h_cvtsd2si64, 8>;
    t[ZYDIS_MNEMONIC_CVTTSD2SI].fn = op_to_int<h_cvttsd2si32, h_cvttsd2si64, 8>;
}

}  // namespace softkvm::cpu
