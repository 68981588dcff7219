// The rest of SSE2's integer instructions (SDM vol. 2): saturating and averaging
// arithmetic, high and multiply-add products, sum of absolute differences, packs, word
// shuffles and inserts, and MASKMOVDQU (the model has no caches: its non-temporal hint
// changes nothing). The lane arithmetic is shared with MMX (sse_util.h).
#include "cpu/exec/handlers.h"
#include "cpu/exec/sse_util.h"

namespace softkvm::cpu {
namespace {

using namespace sse;  // NOLINT: the shared SSE helpers

// PSHUFLW / PSHUFHW: shuffle the words of one half, copy the other.
template <bool High>
void op_pshufw(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Xmm s = load(c, i, 1, 16, true);
    c.state().xmm[i.op[0].reg] = lane::shufw<High>(s, static_cast<unsigned>(i.op[2].value));
}

// PINSRW xmm, r32/m16, imm8 and PEXTRW r32, xmm, imm8 (word index imm8 & 7).
void op_pinsrw(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Operand& src = i.op[1];
    const uint64_t v =
        src.kind == OpKind::Gpr ? c.read_gpr(src.reg, 4) : c.read_mem(c.linear(src), 2);
    lane::insert_word(c.state().xmm[i.op[0].reg], static_cast<uint16_t>(v),
                      static_cast<unsigned>(i.op[2].value), 16);
}
void op_pextrw(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const Operand& d = i.op[0];
    c.write_gpr(
        d.reg, d.size == 8 ? 8 : 4,
        lane::extract_word(c.state().xmm[i.op[1].reg], static_cast<unsigned>(i.op[2].value), 16));
}

void op_maskmovdqu(Cpu& c, const DecodedInsn& i) {
    check_sse(c);
    const CpuState& s = c.state();
    lane::maskmov(c, i, s.xmm[i.op[0].reg], s.xmm[i.op[1].reg], 16);
}

}  // namespace

void register_sse_int(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_PADDSB].fn = op_lanes<lane::adds<int8_t, false>>;
    t[ZYDIS_MNEMONIC_PADDSW].fn = op_lanes<lane::adds<int16_t, false>>;
    t[ZYDIS_MNEMONIC_PSUBSB].fn = op_lanes<lane::adds<int8_t, true>>;
    t[ZYDIS_MNEMONIC_PSUBSW].fn = op_lanes<lane::adds<int16_t, true>>;
    t[ZYDIS_MNEMONIC_PADDUSB].fn = op_lanes<lane::adds<uint8_t, false>>;
    t[ZYDIS_MNEMONIC_PADDUSW].fn = op_lanes<lane::adds<uint16_t, false>>;
    t[ZYDIS_MNEMONIC_PSUBUSB].fn = op_lanes<lane::adds<uint8_t, true>>;
    t[ZYDIS_MNEMONIC_PSUBUSW].fn = op_lanes<lane::adds<uint16_t, true>>;
    t[ZYDIS_MNEMONIC_PAVGB].fn = op_lanes<lane::avg<uint8_t>>;
    t[ZYDIS_MNEMONIC_PAVGW].fn = op_lanes<lane::avg<uint16_t>>;
    t[ZYDIS_MNEMONIC_PMULHW].fn = op_lanes<lane::mulh<true>>;
    t[ZYDIS_MNEMONIC_PMULHUW].fn = op_lanes<lane::mulh<false>>;
    t[ZYDIS_MNEMONIC_PMADDWD].fn = op_lanes<lane::maddwd>;
    t[ZYDIS_MNEMONIC_PSADBW].fn = op_lanes<lane::sadbw>;
    t[ZYDIS_MNEMONIC_PACKSSWB].fn = op_lanes<lane::pack<int16_t, int8_t>>;
    t[ZYDIS_MNEMONIC_PACKSSDW].fn = op_lanes<lane::pack<int32_t, int16_t>>;
    t[ZYDIS_MNEMONIC_PACKUSWB].fn = op_lanes<lane::pack<int16_t, uint8_t>>;
    t[ZYDIS_MNEMONIC_PSHUFLW].fn = op_pshufw<false>;
    t[ZYDIS_MNEMONIC_PSHUFHW].fn = op_pshufw<true>;
    t[ZYDIS_MNEMONIC_PINSRW].fn = op_pinsrw;
    t[ZYDIS_MNEMONIC_PEXTRW].fn = op_pextrw;
    t[ZYDIS_MNEMONIC_MASKMOVDQU].fn = op_maskmovdqu;
}

}  // namespace softkvm::cpu
