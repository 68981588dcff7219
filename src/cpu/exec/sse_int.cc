// The rest of SSE2's integer instructions (SDM vol. 2): saturating and averaging
// arithmetic, high and multiply-add products, sum of absolute differences, packs, word
// shuffles and inserts, and MASKMOVDQU (the model has no caches: its non-temporal hint
// changes nothing).
#include <algorithm>
#include <cstring>
#include <limits>

#include "cpu/exec/handlers.h"
#include "cpu/exec/sse_util.h"

namespace softkvm::cpu {
namespace {

using namespace sse;  // NOLINT: the shared SSE helpers

// Packed lanes of T: d[k] = f(d[k], s[k]).
template <typename T, typename F>
void lanes(Cpu& c, const DecodedInsn& i, F f) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    Xmm& d = c.state().xmm[i.op[0].reg];
    constexpr size_t n = 16 / sizeof(T);
    T a[n], b[n];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    for (size_t k = 0; k < n; ++k) a[k] = f(a[k], b[k]);
    std::memcpy(static_cast<void*>(&d), a, 16);
}

template <typename T>
T saturate(int64_t v) {
    return static_cast<T>(
        std::clamp<int64_t>(v, std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
}

// PADDSB/W PSUBSB/W (signed) and PADDUSB/W PSUBUSB/W (unsigned): saturating.
template <typename T, bool Sub>
void op_padds(Cpu& c, const DecodedInsn& i) {
    lanes<T>(c, i, [](T a, T b) {
        return saturate<T>(Sub ? int64_t{a} - int64_t{b} : int64_t{a} + int64_t{b});
    });
}

// PAVGB/PAVGW: (a + b + 1) >> 1, unsigned.
template <typename T>
void op_pavg(Cpu& c, const DecodedInsn& i) {
    lanes<T>(c, i, [](T a, T b) { return static_cast<T>((uint32_t{a} + uint32_t{b} + 1) >> 1); });
}

// PMULHW (signed) / PMULHUW (unsigned): the high 16 bits of each product.
template <bool Signed>
void op_pmulh(Cpu& c, const DecodedInsn& i) {
    lanes<uint16_t>(c, i, [](uint16_t a, uint16_t b) {
        const int32_t p = Signed ? int32_t{static_cast<int16_t>(a)} * static_cast<int16_t>(b)
                                 : static_cast<int32_t>(uint32_t{a} * uint32_t{b});
        return static_cast<uint16_t>(static_cast<uint32_t>(p) >> 16);
    });
}

// PMADDWD: pairs of signed word products summed into dwords.
void op_pmaddwd(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    Xmm& d = c.state().xmm[i.op[0].reg];
    int16_t a[8], b[8];
    uint32_t r[4];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    for (int k = 0; k < 4; ++k)
        r[k] = static_cast<uint32_t>(int32_t{a[2 * k]} * b[2 * k]) +
               static_cast<uint32_t>(int32_t{a[2 * k + 1]} * b[2 * k + 1]);
    std::memcpy(static_cast<void*>(&d), r, 16);
}

// PSADBW: per quadword, the sum of the absolute byte differences.
void op_psadbw(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    Xmm& d = c.state().xmm[i.op[0].reg];
    uint8_t a[16], b[16];
    std::memcpy(a, &d, 16);
    std::memcpy(b, &s, 16);
    uint64_t sum[2] = {0, 0};
    for (int k = 0; k < 16; ++k) sum[k / 8] += a[k] > b[k] ? a[k] - b[k] : b[k] - a[k];
    d = {sum[0], sum[1]};
}

// PACKSSWB, PACKSSDW (signed saturation), PACKUSWB (unsigned saturation of signed words):
// the destination's elements, then the source's.
template <typename From, typename To>
void op_pack(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    Xmm& d = c.state().xmm[i.op[0].reg];
    constexpr size_t n = 16 / sizeof(From);
    From a[2 * n];
    std::memcpy(a, &d, 16);
    std::memcpy(a + n, &s, 16);
    To r[2 * n];
    for (size_t k = 0; k < 2 * n; ++k) r[k] = saturate<To>(a[k]);
    std::memcpy(static_cast<void*>(&d), r, 16);
}

// PSHUFLW / PSHUFHW: shuffle the words of one half, copy the other.
template <bool High>
void op_pshufw(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    const unsigned imm = static_cast<unsigned>(i.op[2].value);
    uint16_t a[8], r[8];
    std::memcpy(a, &s, 16);
    std::memcpy(r, &s, 16);
    const int base = High ? 4 : 0;
    for (int k = 0; k < 4; ++k) r[base + k] = a[base + ((imm >> (2 * k)) & 3)];
    std::memcpy(static_cast<void*>(&c.state().xmm[i.op[0].reg]), r, 16);
}

// PINSRW xmm, r32/m16, imm8 and PEXTRW r32, xmm, imm8 (word index imm8 & 7).
void op_pinsrw(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Operand& src = i.op[1];
    const uint64_t v =
        src.kind == OpKind::Gpr ? c.read_gpr(src.reg, 4) : c.read_mem(c.linear(src), 2);
    uint16_t w[8];
    Xmm& d = c.state().xmm[i.op[0].reg];
    std::memcpy(w, &d, 16);
    w[i.op[2].value & 7] = static_cast<uint16_t>(v);
    std::memcpy(static_cast<void*>(&d), w, 16);
}
void op_pextrw(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    uint16_t w[8];
    std::memcpy(w, &c.state().xmm[i.op[1].reg], 16);
    const Operand& d = i.op[0];
    c.write_gpr(d.reg, d.size == 8 ? 8 : 4, w[i.op[2].value & 7]);
}

// MASKMOVDQU xmm1, xmm2: the bytes of xmm1 whose mask byte in xmm2 has its top bit set go
// to DS:[RDI] (the address size's RDI/EDI).
void op_maskmovdqu(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    uint8_t v[16], m[16];
    std::memcpy(v, &c.state().xmm[i.op[0].reg], 16);
    std::memcpy(m, &c.state().xmm[i.op[1].reg], 16);
    const uint64_t ea = c.read_gpr(RDI, i.addrsize);
    const uint64_t lin = c.seg_base(DS) + ea;
    for (int k = 0; k < 16; ++k)
        if (m[k] & 0x80) c.check_access(lin + k, Access::Write);
    for (int k = 0; k < 16; ++k)
        if (m[k] & 0x80) c.write_mem(lin + k, 1, v[k]);
}

}  // namespace

void register_sse_int(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_PADDSB].fn = op_padds<int8_t, false>;
    t[ZYDIS_MNEMONIC_PADDSW].fn = op_padds<int16_t, false>;
    t[ZYDIS_MNEMONIC_PSUBSB].fn = op_padds<int8_t, true>;
    t[ZYDIS_MNEMONIC_PSUBSW].fn = op_padds<int16_t, true>;
    t[ZYDIS_MNEMONIC_PADDUSB].fn = op_padds<uint8_t, false>;
    t[ZYDIS_MNEMONIC_PADDUSW].fn = op_padds<uint16_t, false>;
    t[ZYDIS_MNEMONIC_PSUBUSB].fn = op_padds<uint8_t, true>;
    t[ZYDIS_MNEMONIC_PSUBUSW].fn = op_padds<uint16_t, true>;
    t[ZYDIS_MNEMONIC_PAVGB].fn = op_pavg<uint8_t>;
    t[ZYDIS_MNEMONIC_PAVGW].fn = op_pavg<uint16_t>;
    t[ZYDIS_MNEMONIC_PMULHW].fn = op_pmulh<true>;
    t[ZYDIS_MNEMONIC_PMULHUW].fn = op_pmulh<false>;
    t[ZYDIS_MNEMONIC_PMADDWD].fn = op_pmaddwd;
    t[ZYDIS_MNEMONIC_PSADBW].fn = op_psadbw;
    t[ZYDIS_MNEMONIC_PACKSSWB].fn = op_pack<int16_t, int8_t>;
    t[ZYDIS_MNEMONIC_PACKSSDW].fn = op_pack<int32_t, int16_t>;
    t[ZYDIS_MNEMONIC_PACKUSWB].fn = op_pack<int16_t, uint8_t>;
    t[ZYDIS_MNEMONIC_PSHUFLW].fn = op_pshufw<false>;
    t[ZYDIS_MNEMONIC_PSHUFHW].fn = op_pshufw<true>;
    t[ZYDIS_MNEMONIC_PINSRW].fn = op_pinsrw;
    t[ZYDIS_MNEMONIC_PEXTRW].fn = op_pextrw;
    t[ZYDIS_MNEMONIC_MASKMOVDQU].fn = op_maskmovdqu;
}

}  // namespace softkvm::cpu
