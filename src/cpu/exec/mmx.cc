// MMX technology (SDM vol. 1 ch. 9, vol. 2): the moves, packed-integer arithmetic, logic,
// shifts, packs and unpacks on MM0-MM7, and the SSE-era forms on MMX registers (PAVG*,
// PMIN/PMAX, PSADBW, PSHUFW, PINSRW/PEXTRW, PMOVMSKB, PMULHUW, PMULUDQ, PADDQ/PSUBQ,
// MOVNTQ, MASKMOVQ, MOVQ2DQ/MOVDQ2Q). The lane arithmetic is the SSE forms' own
// (sse_util.h) at 8 bytes; mmx.h has the x87 aliasing. EMMS is in x87.cc, the CVT*PI*
// conversions in sse_fp.cc.
#include "cpu/exec/mmx.h"

#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

using sse::Xmm;
namespace lane = sse::lane;

constexpr unsigned kW = 8;  // an MMX register's bytes

// mm, mm/m64 (m32 for PUNPCKL*): d = K(d, s).
template <lane::Kernel K>
void op_lanes(Cpu& c, const DecodedInsn& i) {
    mmx::begin(c);
    const Xmm s{mmx::read(c, i, 1), 0};
    Xmm d{mmx::get(c.state(), i.op[0].reg), 0};
    K(d, s, kW);
    mmx::put(c.state(), i.op[0].reg, d.lo);
}

// PSLL/PSRL/PSRA mm, mm/m64 or imm8.
template <typename T, lane::Shift K>
void op_shift(Cpu& c, const DecodedInsn& i) {
    mmx::begin(c);
    const uint64_t count = i.op[1].kind == OpKind::Imm ? static_cast<uint64_t>(i.op[1].value) & 0xFF
                                                       : mmx::read(c, i, 1);
    Xmm d{mmx::get(c.state(), i.op[0].reg), 0};
    lane::shift<T, K>(d, count, kW);
    mmx::put(c.state(), i.op[0].reg, d.lo);
}

// MOVD/MOVQ mm, r/m32 or r/m64 (zero-extended), MOVQ mm, mm/m64, and the stores
// MOVD/MOVQ r/m, mm and MOVNTQ m64, mm (its non-temporal hint changes nothing here).
void op_mov(Cpu& c, const DecodedInsn& i) {
    mmx::begin(c);
    const Operand& d = i.op[0];
    if (d.kind == OpKind::Mm) {
        mmx::put(c.state(), d.reg, mmx::read(c, i, 1));
        return;
    }
    const uint64_t v = mmx::get(c.state(), i.op[1].reg);
    if (d.kind == OpKind::Gpr)
        c.write_gpr(d.reg, d.size, v);
    else
        c.write_mem(c.linear(d), d.size, v & size_mask(d.size));
    mmx::enter(c.state());
}

// MOVQ2DQ xmm, mm (the upper quadword cleared) and MOVDQ2Q mm, xmm.
void op_movq2dq(Cpu& c, const DecodedInsn& i) {
    mmx::begin_sse(c);
    CpuState& s = c.state();
    s.xmm[i.op[0].reg] = {mmx::get(s, i.op[1].reg), 0};
    mmx::enter(s);
}
void op_movdq2q(Cpu& c, const DecodedInsn& i) {
    mmx::begin_sse(c);
    CpuState& s = c.state();
    mmx::put(s, i.op[0].reg, s.xmm[i.op[1].reg].lo);
}

// PSHUFW mm, mm/m64, imm8.
void op_pshufw(Cpu& c, const DecodedInsn& i) {
    mmx::begin(c);
    const Xmm s{mmx::read(c, i, 1), 0};
    const unsigned imm = static_cast<unsigned>(i.op[2].value);
    mmx::put(c.state(), i.op[0].reg, lane::shufw<false>(s, imm).lo);
}

// PINSRW mm, r32/m16, imm8 and PEXTRW r32, mm, imm8 (word index imm8 & 3).
void op_pinsrw(Cpu& c, const DecodedInsn& i) {
    mmx::begin(c);
    const Operand& src = i.op[1];
    const uint64_t v =
        src.kind == OpKind::Gpr ? c.read_gpr(src.reg, 4) : c.read_mem(c.linear(src), 2);
    Xmm d{mmx::get(c.state(), i.op[0].reg), 0};
    lane::insert_word(d, static_cast<uint16_t>(v), static_cast<unsigned>(i.op[2].value), kW);
    mmx::put(c.state(), i.op[0].reg, d.lo);
}
void op_pextrw(Cpu& c, const DecodedInsn& i) {
    mmx::begin(c);
    const Operand& d = i.op[0];
    const Xmm s{mmx::get(c.state(), i.op[1].reg), 0};
    c.write_gpr(d.reg, d.size == 8 ? 8 : 4,
                lane::extract_word(s, static_cast<unsigned>(i.op[2].value), kW));
    mmx::enter(c.state());
}

// PMOVMSKB r32/r64, mm.
void op_pmovmskb(Cpu& c, const DecodedInsn& i) {
    mmx::begin(c);
    const Xmm s{mmx::get(c.state(), i.op[1].reg), 0};
    c.write_gpr(i.op[0].reg, i.op[0].size, lane::movmskb(s, kW));
    mmx::enter(c.state());
}

// MASKMOVQ mm1, mm2: the bytes of mm1 selected by mm2 to DS:[RDI].
void op_maskmovq(Cpu& c, const DecodedInsn& i) {
    mmx::begin(c);
    CpuState& s = c.state();
    lane::maskmov(c, i, Xmm{mmx::get(s, i.op[0].reg), 0}, Xmm{mmx::get(s, i.op[1].reg), 0}, kW);
    mmx::enter(s);
}

}  // namespace

void register_mmx(HandlerTable& t) {
    for (auto m : {ZYDIS_MNEMONIC_MOVD, ZYDIS_MNEMONIC_MOVQ, ZYDIS_MNEMONIC_MOVNTQ})
        t[m].fn = op_mov;
    t[ZYDIS_MNEMONIC_MOVQ2DQ].fn = op_movq2dq;
    t[ZYDIS_MNEMONIC_MOVDQ2Q].fn = op_movdq2q;
    t[ZYDIS_MNEMONIC_PADDB].fn = op_lanes<lane::add<uint8_t>>;
    t[ZYDIS_MNEMONIC_PADDW].fn = op_lanes<lane::add<uint16_t>>;
    t[ZYDIS_MNEMONIC_PADDD].fn = op_lanes<lane::add<uint32_t>>;
    t[ZYDIS_MNEMONIC_PADDQ].fn = op_lanes<lane::add<uint64_t>>;
    t[ZYDIS_MNEMONIC_PSUBB].fn = op_lanes<lane::sub<uint8_t>>;
    t[ZYDIS_MNEMONIC_PSUBW].fn = op_lanes<lane::sub<uint16_t>>;
    t[ZYDIS_MNEMONIC_PSUBD].fn = op_lanes<lane::sub<uint32_t>>;
    t[ZYDIS_MNEMONIC_PSUBQ].fn = op_lanes<lane::sub<uint64_t>>;
    t[ZYDIS_MNEMONIC_PADDSB].fn = op_lanes<lane::adds<int8_t, false>>;
    t[ZYDIS_MNEMONIC_PADDSW].fn = op_lanes<lane::adds<int16_t, false>>;
    t[ZYDIS_MNEMONIC_PSUBSB].fn = op_lanes<lane::adds<int8_t, true>>;
    t[ZYDIS_MNEMONIC_PSUBSW].fn = op_lanes<lane::adds<int16_t, true>>;
    t[ZYDIS_MNEMONIC_PADDUSB].fn = op_lanes<lane::adds<uint8_t, false>>;
    t[ZYDIS_MNEMONIC_PADDUSW].fn = op_lanes<lane::adds<uint16_t, false>>;
    t[ZYDIS_MNEMONIC_PSUBUSB].fn = op_lanes<lane::adds<uint8_t, true>>;
    t[ZYDIS_MNEMONIC_PSUBUSW].fn = op_lanes<lane::adds<uint16_t, true>>;
    t[ZYDIS_MNEMONIC_PCMPEQB].fn = op_lanes<lane::cmpeq<uint8_t>>;
    t[ZYDIS_MNEMONIC_PCMPEQW].fn = op_lanes<lane::cmpeq<uint16_t>>;
    t[ZYDIS_MNEMONIC_PCMPEQD].fn = op_lanes<lane::cmpeq<uint32_t>>;
    t[ZYDIS_MNEMONIC_PCMPGTB].fn = op_lanes<lane::cmpgt<int8_t>>;
    t[ZYDIS_MNEMONIC_PCMPGTW].fn = op_lanes<lane::cmpgt<int16_t>>;
    t[ZYDIS_MNEMONIC_PCMPGTD].fn = op_lanes<lane::cmpgt<int32_t>>;
    t[ZYDIS_MNEMONIC_PAND].fn = op_lanes<lane::logic<lane::Logic::And>>;
    t[ZYDIS_MNEMONIC_PANDN].fn = op_lanes<lane::logic<lane::Logic::AndNot>>;
    t[ZYDIS_MNEMONIC_POR].fn = op_lanes<lane::logic<lane::Logic::Or>>;
    t[ZYDIS_MNEMONIC_PXOR].fn = op_lanes<lane::logic<lane::Logic::Xor>>;
    t[ZYDIS_MNEMONIC_PSLLW].fn = op_shift<uint16_t, lane::Shift::Left>;
    t[ZYDIS_MNEMONIC_PSLLD].fn = op_shift<uint32_t, lane::Shift::Left>;
    t[ZYDIS_MNEMONIC_PSLLQ].fn = op_shift<uint64_t, lane::Shift::Left>;
    t[ZYDIS_MNEMONIC_PSRLW].fn = op_shift<uint16_t, lane::Shift::Right>;
    t[ZYDIS_MNEMONIC_PSRLD].fn = op_shift<uint32_t, lane::Shift::Right>;
    t[ZYDIS_MNEMONIC_PSRLQ].fn = op_shift<uint64_t, lane::Shift::Right>;
    t[ZYDIS_MNEMONIC_PSRAW].fn = op_shift<uint16_t, lane::Shift::Arith>;
    t[ZYDIS_MNEMONIC_PSRAD].fn = op_shift<uint32_t, lane::Shift::Arith>;
    t[ZYDIS_MNEMONIC_PACKSSWB].fn = op_lanes<lane::pack<int16_t, int8_t>>;
    t[ZYDIS_MNEMONIC_PACKSSDW].fn = op_lanes<lane::pack<int32_t, int16_t>>;
    t[ZYDIS_MNEMONIC_PACKUSWB].fn = op_lanes<lane::pack<int16_t, uint8_t>>;
    t[ZYDIS_MNEMONIC_PUNPCKLBW].fn = op_lanes<lane::unpck<uint8_t, false>>;
    t[ZYDIS_MNEMONIC_PUNPCKLWD].fn = op_lanes<lane::unpck<uint16_t, false>>;
    t[ZYDIS_MNEMONIC_PUNPCKLDQ].fn = op_lanes<lane::unpck<uint32_t, false>>;
    t[ZYDIS_MNEMONIC_PUNPCKHBW].fn = op_lanes<lane::unpck<uint8_t, true>>;
    t[ZYDIS_MNEMONIC_PUNPCKHWD].fn = op_lanes<lane::unpck<uint16_t, true>>;
    t[ZYDIS_MNEMONIC_PUNPCKHDQ].fn = op_lanes<lane::unpck<uint32_t, true>>;
    t[ZYDIS_MNEMONIC_PMULLW].fn = op_lanes<lane::mullw>;
    t[ZYDIS_MNEMONIC_PMULHW].fn = op_lanes<lane::mulh<true>>;
    t[ZYDIS_MNEMONIC_PMADDWD].fn = op_lanes<lane::maddwd>;
    // The SSE and SSE2 additions on MMX registers.
    t[ZYDIS_MNEMONIC_PMULHUW].fn = op_lanes<lane::mulh<false>>;
    t[ZYDIS_MNEMONIC_PMULUDQ].fn = op_lanes<lane::muludq>;
    t[ZYDIS_MNEMONIC_PAVGB].fn = op_lanes<lane::avg<uint8_t>>;
    t[ZYDIS_MNEMONIC_PAVGW].fn = op_lanes<lane::avg<uint16_t>>;
    t[ZYDIS_MNEMONIC_PMINUB].fn = op_lanes<lane::min<uint8_t>>;
    t[ZYDIS_MNEMONIC_PMAXUB].fn = op_lanes<lane::max<uint8_t>>;
    t[ZYDIS_MNEMONIC_PMINSW].fn = op_lanes<lane::min<int16_t>>;
    t[ZYDIS_MNEMONIC_PMAXSW].fn = op_lanes<lane::max<int16_t>>;
    t[ZYDIS_MNEMONIC_PSADBW].fn = op_lanes<lane::sadbw>;
    t[ZYDIS_MNEMONIC_PSHUFW].fn = op_pshufw;
    t[ZYDIS_MNEMONIC_PINSRW].fn = op_pinsrw;
    t[ZYDIS_MNEMONIC_PEXTRW].fn = op_pextrw;
    t[ZYDIS_MNEMONIC_PMOVMSKB].fn = op_pmovmskb;
    t[ZYDIS_MNEMONIC_MASKMOVQ].fn = op_maskmovq;
}

}  // namespace softkvm::cpu
