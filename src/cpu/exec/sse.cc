// SSE/SSE2: the moves, logic and packed-integer instructions gcc emits for integer code
// and memory copies, LDMXCSR/STMXCSR and FXSAVE/FXRSTOR (SDM vol. 1 ch. 10-11, vol. 2).
// Floating-point arithmetic is in sse_fp.cc.
#include <cstring>

#include "cpu/cpu_model.h"
#include "cpu/exec/handlers.h"
#include "cpu/exec/sse_util.h"
#include "cpu/exec/x87.h"

namespace softkvm::cpu {
namespace {

using namespace sse;  // NOLINT: the helpers shared with sse_fp.cc

// MOVAPS MOVAPD MOVDQA (Aligned) and MOVUPS MOVUPD MOVDQU.
template <bool Aligned>
void op_mov128(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    store(c, i, 0, 16, Aligned, load(c, i, 1, 16, Aligned));
}

// MOVD / MOVQ between XMM and a GPR or memory: to XMM zero-extends to 128 bits.
void op_movdq(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const uint8_t size = i.op[0].kind == OpKind::Xmm ? i.op[1].size : i.op[0].size;
    const uint8_t n = size == 16 ? 8 : size;  // MOVQ xmm, xmm reads the low quadword
    Xmm v = load(c, i, 1, n, false);
    v.lo &= size_mask(n);
    if (i.op[0].kind == OpKind::Xmm) v.hi = 0;
    store(c, i, 0, n, false, v);
}

// MOVSS / MOVSD (scalar moves): from memory zero the rest; register to register merge.
template <uint8_t Size>
void op_movs_scalar(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    if (i.op[0].kind == OpKind::Xmm) {
        Xmm& d = c.state().xmm[i.op[0].reg];
        const Xmm s = load(c, i, 1, Size, false);
        const uint64_t m = size_mask(Size);
        if (i.op[1].kind == OpKind::Xmm)
            d.lo = (d.lo & ~m) | (s.lo & m);
        else
            d = {s.lo & m, 0};
    } else {
        store(c, i, 0, Size, false, c.state().xmm[i.op[1].reg]);
    }
}

// MOVLPS/MOVLPD/MOVHPS/MOVHPD (memory forms), MOVHLPS, MOVLHPS.
template <bool High>
void op_mov_half(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    if (i.op[0].kind == OpKind::Xmm) {
        Xmm& d = c.state().xmm[i.op[0].reg];
        const Xmm s = load(c, i, 1, 8, false);
        (High ? d.hi : d.lo) = s.lo;
    } else {
        const Xmm& s = c.state().xmm[i.op[1].reg];
        store(c, i, 0, 8, false, Xmm{High ? s.hi : s.lo, 0});
    }
}
void op_movhlps(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    c.state().xmm[i.op[0].reg].lo = c.state().xmm[i.op[1].reg].hi;
}
void op_movlhps(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    c.state().xmm[i.op[0].reg].hi = c.state().xmm[i.op[1].reg].lo;
}

void op_pmovmskb(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    c.write_gpr(i.op[0].reg, i.op[0].size, lane::movmskb(c.state().xmm[i.op[1].reg], 16));
}

void op_pshufd(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    const uint8_t imm = static_cast<uint8_t>(i.op[2].value);
    uint32_t a[4], r[4];
    std::memcpy(a, &s, 16);
    for (int k = 0; k < 4; ++k) r[k] = a[(imm >> (2 * k)) & 3];
    std::memcpy(&c.state().xmm[i.op[0].reg], r, 16);
}

// PSLL/PSRL/PSRA by an immediate or by the low quadword of an XMM/m128 operand.
template <typename T, lane::Shift K>
void op_pshift(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const uint64_t count = i.op[1].kind == OpKind::Imm ? static_cast<uint64_t>(i.op[1].value) & 0xFF
                                                       : load(c, i, 1, 16, true).lo;
    lane::shift<T, K>(c.state().xmm[i.op[0].reg], count, 16);
}

// PSLLDQ / PSRLDQ: whole-register byte shifts.
template <bool Left>
void op_pshift_bytes(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const unsigned n = static_cast<unsigned>(i.op[1].value) & 0xFF;
    Xmm& d = c.state().xmm[i.op[0].reg];
    uint8_t a[16], r[16] = {};
    std::memcpy(a, &d, 16);
    for (unsigned k = 0; k < 16; ++k) {
        if (Left && k >= n) r[k] = a[k - n];
        if (!Left && k + n < 16) r[k] = a[k + n];
    }
    std::memcpy(&d, r, 16);
}

void op_ldmxcsr(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const uint32_t v = static_cast<uint32_t>(c.read_mem(c.linear(i.op[0]), 4));
    if (v & ~kMxcsrMask) c.fault(VEC_GP, 0);
    c.state().mxcsr = v;
}
void op_stmxcsr(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    c.write_mem(c.linear(i.op[0]), 4, c.state().mxcsr);
}

// FXSAVE / FXRSTOR: the 512-byte image (SDM vol. 2, FXSAVE tables 3-53 and 3-56); the
// REX.W forms (FXSAVE64) store 64-bit FPU instruction and data pointers.
void op_fxsave(Cpu& c, const DecodedInsn& i) {
    const CpuState& s = c.state();
    if (s.cr0 & (CR0_EM | CR0_TS)) c.fault(s.cr0 & CR0_EM ? VEC_UD : VEC_NM);
    const uint64_t lin = c.linear(i.op[0]);
    if (lin & 15) c.fault(VEC_GP, 0);
    c.check_access(lin + 511, Access::Write);
    for (uint64_t off = 0; off < 512; off += 8) c.write_mem(lin + off, 8, 0);
    x87::save_fx(c, lin, i.mnemonic == ZYDIS_MNEMONIC_FXSAVE64);
    c.write_mem(lin + 24, 4, s.mxcsr);
    c.write_mem(lin + 28, 4, kMxcsrMask);
    // XMM registers are saved only with CR4.OSFXSR (SDM: FXSAVE).
    if (s.cr4 & CR4_OSFXSR)
        for (int r = 0; r < 16; ++r) {
            c.write_mem(lin + 160 + 16 * r, 8, s.xmm[r].lo);
            c.write_mem(lin + 168 + 16 * r, 8, s.xmm[r].hi);
        }
}

void op_fxrstor(Cpu& c, const DecodedInsn& i) {
    CpuState& s = c.state();
    if (s.cr0 & (CR0_EM | CR0_TS)) c.fault(s.cr0 & CR0_EM ? VEC_UD : VEC_NM);
    const uint64_t lin = c.linear(i.op[0]);
    if (lin & 15) c.fault(VEC_GP, 0);
    const uint32_t mxcsr = static_cast<uint32_t>(c.read_mem(lin + 24, 4));
    if (mxcsr & ~kMxcsrMask) c.fault(VEC_GP, 0);
    std::array<Xmm, 16> x = s.xmm;
    if (s.cr4 & CR4_OSFXSR)
        for (int r = 0; r < 16; ++r)
            x[r] = {c.read_mem(lin + 160 + 16 * r, 8), c.read_mem(lin + 168 + 16 * r, 8)};
    const x87::FxImage f = x87::read_fx(c, lin, i.mnemonic == ZYDIS_MNEMONIC_FXRSTOR64);
    x87::apply_fx(s, f);
    s.mxcsr = mxcsr;
    s.xmm = x;
}

}  // namespace

void register_sse(HandlerTable& t) {
    // The non-temporal stores are aligned stores whose hint changes no result.
    for (auto m : {ZYDIS_MNEMONIC_MOVAPS, ZYDIS_MNEMONIC_MOVAPD, ZYDIS_MNEMONIC_MOVDQA,
                   ZYDIS_MNEMONIC_MOVNTPS, ZYDIS_MNEMONIC_MOVNTPD, ZYDIS_MNEMONIC_MOVNTDQ})
        t[m].fn = op_mov128<true>;
    for (auto m : {ZYDIS_MNEMONIC_MOVUPS, ZYDIS_MNEMONIC_MOVUPD, ZYDIS_MNEMONIC_MOVDQU})
        t[m].fn = op_mov128<false>;
    t[ZYDIS_MNEMONIC_MOVD].fn = op_movdq;
    t[ZYDIS_MNEMONIC_MOVQ].fn = op_movdq;
    t[ZYDIS_MNEMONIC_MOVSS].fn = op_movs_scalar<4>;
    t[ZYDIS_MNEMONIC_MOVSD].fn = op_movs_scalar<8>;
    for (auto m : {ZYDIS_MNEMONIC_MOVLPS, ZYDIS_MNEMONIC_MOVLPD}) t[m].fn = op_mov_half<false>;
    for (auto m : {ZYDIS_MNEMONIC_MOVHPS, ZYDIS_MNEMONIC_MOVHPD}) t[m].fn = op_mov_half<true>;
    t[ZYDIS_MNEMONIC_MOVHLPS].fn = op_movhlps;
    t[ZYDIS_MNEMONIC_MOVLHPS].fn = op_movlhps;
    for (auto m : {ZYDIS_MNEMONIC_PAND, ZYDIS_MNEMONIC_ANDPS, ZYDIS_MNEMONIC_ANDPD})
        t[m].fn = op_lanes<lane::logic<lane::Logic::And>>;
    for (auto m : {ZYDIS_MNEMONIC_PANDN, ZYDIS_MNEMONIC_ANDNPS, ZYDIS_MNEMONIC_ANDNPD})
        t[m].fn = op_lanes<lane::logic<lane::Logic::AndNot>>;
    for (auto m : {ZYDIS_MNEMONIC_POR, ZYDIS_MNEMONIC_ORPS, ZYDIS_MNEMONIC_ORPD})
        t[m].fn = op_lanes<lane::logic<lane::Logic::Or>>;
    for (auto m : {ZYDIS_MNEMONIC_PXOR, ZYDIS_MNEMONIC_XORPS, ZYDIS_MNEMONIC_XORPD})
        t[m].fn = op_lanes<lane::logic<lane::Logic::Xor>>;
    t[ZYDIS_MNEMONIC_PADDB].fn = op_lanes<lane::add<uint8_t>>;
    t[ZYDIS_MNEMONIC_PADDW].fn = op_lanes<lane::add<uint16_t>>;
    t[ZYDIS_MNEMONIC_PADDD].fn = op_lanes<lane::add<uint32_t>>;
    t[ZYDIS_MNEMONIC_PADDQ].fn = op_lanes<lane::add<uint64_t>>;
    t[ZYDIS_MNEMONIC_PSUBB].fn = op_lanes<lane::sub<uint8_t>>;
    t[ZYDIS_MNEMONIC_PSUBW].fn = op_lanes<lane::sub<uint16_t>>;
    t[ZYDIS_MNEMONIC_PSUBD].fn = op_lanes<lane::sub<uint32_t>>;
    t[ZYDIS_MNEMONIC_PSUBQ].fn = op_lanes<lane::sub<uint64_t>>;
    t[ZYDIS_MNEMONIC_PCMPEQB].fn = op_lanes<lane::cmpeq<uint8_t>>;
    t[ZYDIS_MNEMONIC_PCMPEQW].fn = op_lanes<lane::cmpeq<uint16_t>>;
    t[ZYDIS_MNEMONIC_PCMPEQD].fn = op_lanes<lane::cmpeq<uint32_t>>;
    t[ZYDIS_MNEMONIC_PCMPGTB].fn = op_lanes<lane::cmpgt<int8_t>>;
    t[ZYDIS_MNEMONIC_PCMPGTW].fn = op_lanes<lane::cmpgt<int16_t>>;
    t[ZYDIS_MNEMONIC_PCMPGTD].fn = op_lanes<lane::cmpgt<int32_t>>;
    t[ZYDIS_MNEMONIC_PMINUB].fn = op_lanes<lane::min<uint8_t>>;
    t[ZYDIS_MNEMONIC_PMAXUB].fn = op_lanes<lane::max<uint8_t>>;
    t[ZYDIS_MNEMONIC_PMINSW].fn = op_lanes<lane::min<int16_t>>;
    t[ZYDIS_MNEMONIC_PMAXSW].fn = op_lanes<lane::max<int16_t>>;
    t[ZYDIS_MNEMONIC_PMULLW].fn = op_lanes<lane::mullw>;
    t[ZYDIS_MNEMONIC_PMULUDQ].fn = op_lanes<lane::muludq>;
    t[ZYDIS_MNEMONIC_PMOVMSKB].fn = op_pmovmskb;
    t[ZYDIS_MNEMONIC_PSHUFD].fn = op_pshufd;
    t[ZYDIS_MNEMONIC_PUNPCKLBW].fn = op_lanes<lane::unpck<uint8_t, false>>;
    t[ZYDIS_MNEMONIC_PUNPCKLWD].fn = op_lanes<lane::unpck<uint16_t, false>>;
    t[ZYDIS_MNEMONIC_PUNPCKLDQ].fn = op_lanes<lane::unpck<uint32_t, false>>;
    t[ZYDIS_MNEMONIC_PUNPCKLQDQ].fn = op_lanes<lane::unpck<uint64_t, false>>;
    t[ZYDIS_MNEMONIC_PUNPCKHBW].fn = op_lanes<lane::unpck<uint8_t, true>>;
    t[ZYDIS_MNEMONIC_PUNPCKHWD].fn = op_lanes<lane::unpck<uint16_t, true>>;
    t[ZYDIS_MNEMONIC_PUNPCKHDQ].fn = op_lanes<lane::unpck<uint32_t, true>>;
    t[ZYDIS_MNEMONIC_PUNPCKHQDQ].fn = op_lanes<lane::unpck<uint64_t, true>>;
    t[ZYDIS_MNEMONIC_PSLLW].fn = op_pshift<uint16_t, lane::Shift::Left>;
    t[ZYDIS_MNEMONIC_PSLLD].fn = op_pshift<uint32_t, lane::Shift::Left>;
    t[ZYDIS_MNEMONIC_PSLLQ].fn = op_pshift<uint64_t, lane::Shift::Left>;
    t[ZYDIS_MNEMONIC_PSRLW].fn = op_pshift<uint16_t, lane::Shift::Right>;
    t[ZYDIS_MNEMONIC_PSRLD].fn = op_pshift<uint32_t, lane::Shift::Right>;
    t[ZYDIS_MNEMONIC_PSRLQ].fn = op_pshift<uint64_t, lane::Shift::Right>;
    t[ZYDIS_MNEMONIC_PSRAW].fn = op_pshift<uint16_t, lane::Shift::Arith>;
    t[ZYDIS_MNEMONIC_PSRAD].fn = op_pshift<uint32_t, lane::Shift::Arith>;
    t[ZYDIS_MNEMONIC_PSLLDQ].fn = op_pshift_bytes<true>;
    t[ZYDIS_MNEMONIC_PSRLDQ].fn = op_pshift_bytes<false>;
}

// Instructions of the SSE state without an XMM operand go in the main table.
void register_fxsave(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_LDMXCSR].fn = op_ldmxcsr;
    t[ZYDIS_MNEMONIC_STMXCSR].fn = op_stmxcsr;
    for (auto m : {ZYDIS_MNEMONIC_FXSAVE, ZYDIS_MNEMONIC_FXSAVE64}) t[m].fn = op_fxsave;
    for (auto m : {ZYDIS_MNEMONIC_FXRSTOR, ZYDIS_MNEMONIC_FXRSTOR64}) t[m].fn = op_fxrstor;
}

}  // namespace softkvm::cpu

// ---- XSAVE family: x87 and SSE components, standard (non-compacted) format ----
namespace softkvm::cpu {
namespace {

void check_xsave(Cpu& c) {
    if (!(c.state().cr4 & CR4_OSXSAVE)) c.undefined();
}

void op_xgetbv(Cpu& c, const DecodedInsn&) {
    check_xsave(c);
    if (static_cast<uint32_t>(c.gpr(RCX)) != 0) c.fault(VEC_GP, 0);
    c.write_gpr(RAX, 4, c.state().xcr0 & 0xFFFFFFFF);
    c.write_gpr(RDX, 4, c.state().xcr0 >> 32);
}

// XSETBV (SDM vol. 2): XCR0 must keep x87 and may only name supported components.
void op_xsetbv(Cpu& c, const DecodedInsn&) {
    check_xsave(c);
    c.require_cpl0();
    const uint64_t v = (c.gpr(RDX) << 32) | (c.gpr(RAX) & 0xFFFFFFFF);
    if (static_cast<uint32_t>(c.gpr(RCX)) != 0 || !(v & 1) || (v & ~kXcr0Supported))
        c.fault(VEC_GP, 0);
    c.state().xcr0 = v;
}

constexpr uint64_t kHeader = 512;  // XSAVE header offset: XSTATE_BV, XCOMP_BV, reserved

uint64_t xsave_prologue(Cpu& c, const DecodedInsn& i, uint64_t& rfbm) {
    check_xsave(c);
    if (c.state().cr0 & CR0_TS) c.fault(VEC_NM);
    const uint64_t lin = c.linear(i.op[0]);
    if (lin & 63) c.fault(VEC_GP, 0);
    rfbm = c.state().xcr0 & ((c.gpr(RDX) << 32) | (c.gpr(RAX) & 0xFFFFFFFF));
    return lin;
}

void op_xsave(Cpu& c, const DecodedInsn& i) {
    uint64_t rfbm;
    const uint64_t lin = xsave_prologue(c, i, rfbm);
    const CpuState& s = c.state();
    c.check_access(lin + kHeader + 63, Access::Write);
    const bool wide = i.mnemonic == ZYDIS_MNEMONIC_XSAVE64;
    if (rfbm & 1) {
        for (uint64_t off = 0; off < 160; off += 8)
            if (off != 24) c.write_mem(lin + off, 8, 0);  // MXCSR belongs to the SSE part
        x87::save_fx(c, lin, wide);
    }
    if (rfbm & 2) {
        c.write_mem(lin + 24, 4, s.mxcsr);
        c.write_mem(lin + 28, 4, kMxcsrMask);
        for (int r = 0; r < 16; ++r) {
            c.write_mem(lin + 160 + 16 * r, 8, s.xmm[r].lo);
            c.write_mem(lin + 168 + 16 * r, 8, s.xmm[r].hi);
        }
    }
    const uint64_t bv = c.read_mem(lin + kHeader, 8);
    c.write_mem(lin + kHeader, 8, (bv & ~rfbm) | rfbm);
}

void op_xrstor(Cpu& c, const DecodedInsn& i) {
    uint64_t rfbm;
    const uint64_t lin = xsave_prologue(c, i, rfbm);
    CpuState& s = c.state();
    const uint64_t bv = c.read_mem(lin + kHeader, 8);
    const uint64_t comp = c.read_mem(lin + kHeader + 8, 8);
    // The standard form: XCOMP_BV 0, no bits outside XCR0, reserved header bytes zero.
    if (comp != 0 || (bv & ~s.xcr0)) c.fault(VEC_GP, 0);
    for (uint64_t off = 16; off < 64; off += 8)
        if (c.read_mem(lin + kHeader + off, 8)) c.fault(VEC_GP, 0);
    uint32_t mxcsr = s.mxcsr;
    if (rfbm & 2) {
        mxcsr = static_cast<uint32_t>(c.read_mem(lin + 24, 4));
        if (mxcsr & ~kMxcsrMask) c.fault(VEC_GP, 0);
    }
    std::array<Xmm, 16> x = s.xmm;
    x87::FxImage f;
    const bool x87_from_image = (rfbm & 1) && (bv & 1);
    if (x87_from_image) f = x87::read_fx(c, lin, i.mnemonic == ZYDIS_MNEMONIC_XRSTOR64);
    if (rfbm & 2)
        for (int r = 0; r < 16; ++r)
            x[r] = (bv & 2)
                       ? Xmm{c.read_mem(lin + 160 + 16 * r, 8), c.read_mem(lin + 168 + 16 * r, 8)}
                       : Xmm{};  // the SSE component's initial state
    if (x87_from_image)
        x87::apply_fx(s, f);
    else if (rfbm & 1)
        x87::init_state(s), s.st = {};  // the x87 component's initial state
    s.mxcsr = mxcsr;
    s.xmm = x;
}

}  // namespace

void register_xsave(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_XGETBV].fn = op_xgetbv;
    t[ZYDIS_MNEMONIC_XSETBV].fn = op_xsetbv;
    for (auto m : {ZYDIS_MNEMONIC_XSAVE, ZYDIS_MNEMONIC_XSAVE64}) t[m].fn = op_xsave;
    for (auto m : {ZYDIS_MNEMONIC_XRSTOR, ZYDIS_MNEMONIC_XRSTOR64}) t[m].fn = op_xrstor;
}

}  // namespace softkvm::cpu
