// Registration of instruction handlers by Zydis mnemonic. Each family file (alu.cc,
// shift.cc, ...) fills in its mnemonics; anything left empty decodes to #UD.
#pragma once
#include <Zydis/Zydis.h>

#include <array>

#include "cpu/cpu.h"

namespace softkvm::cpu {

struct HandlerInfo {
    Handler fn = nullptr;
    bool ends_block = false;  // the handler may change mode, paging, CS or stop the CPU
};

using HandlerTable = std::array<HandlerInfo, ZYDIS_MNEMONIC_MAX_VALUE + 1>;

// The table for instructions without XMM or MMX operands, the one for those with an XMM
// operand (the same mnemonic, e.g. MOVSD, names a string and an SSE instruction), and the
// one for those with an MMX register operand (PADDB mm and PADDB xmm share a mnemonic).
// Built on first use.
const HandlerTable& handler_table();
const HandlerTable& sse_handler_table();
const HandlerTable& mmx_handler_table();

void register_alu(HandlerTable& t);
void register_shift(HandlerTable& t);
void register_muldiv(HandlerTable& t);
void register_move(HandlerTable& t);
void register_bits(HandlerTable& t);
void register_string(HandlerTable& t);
void register_branch(HandlerTable& t);
void register_system(HandlerTable& t);
void register_atomic(HandlerTable& t);
void register_legacy(HandlerTable& t);
void register_sse(HandlerTable& t);
void register_sse_fp(HandlerTable& t);
void register_sse_int(HandlerTable& t);
void register_sse_fp_gpr(HandlerTable& t);
void register_mmx(HandlerTable& t);
void register_mmx_cvt(HandlerTable& t);
void register_x87(HandlerTable& t);
void register_x87_arith(HandlerTable& t);
void register_fxsave(HandlerTable& t);
void register_xsave(HandlerTable& t);

// MOV to or from a control or debug register (chosen by the decoder).
void op_mov_cr(Cpu& c, const DecodedInsn& i);
void op_mov_dr(Cpu& c, const DecodedInsn& i);

void op_ud(Cpu& c, const DecodedInsn& i);

// A far pointer in memory (m16:16, m16:32 or m16:64: the offset of `size` bytes, then the
// selector), as far JMP/CALL and LDS/LES/LSS/LFS/LGS read it; operand `op` of `i`.
struct FarPointer {
    uint64_t offset;
    uint16_t selector;
};
FarPointer read_far_pointer(Cpu& c, const DecodedInsn& i, int op, uint8_t size);

// A specialised handler for a hot operand form of `mnemonic` (exec/fast.cc), or null.
Handler fast_handler(uint16_t mnemonic, const DecodedInsn& in);

}  // namespace softkvm::cpu
