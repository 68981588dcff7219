// Instruction forms the translator runs as host instructions (translator.cc emits them);
// every other instruction calls its interpreter handler.
#pragma once
#include <cstdint>

#include "cpu/decoded_insn.h"
#include "cpu/exec/flags.h"
#include "cpu/state.h"

namespace softkvm::cpu {

// 32- and 64-bit forms: MOV, the two-operand ALU group (register, immediate or memory
// source), INC/DEC, shifts and rotates by an immediate count, two- and three-operand
// IMUL, LEA, MOV to and from memory; near JMP and Jcc in 64-bit mode. Memory forms probe
// the software TLB inline and run their handler on a miss; a branch whose target is not
// canonical runs its handler too (#GP). Nothing else can fault or stop the block.
enum class Native : uint8_t {
    None,
    MovRR,
    MovRI,
    AluRR,
    AluRI,
    Inc,
    Dec,
    Shl,
    Shr,
    Sar,
    Rol,
    Ror,
    ImulRR,
    ImulRRI,
    Jcc,
    Jmp,
    Lea,
    MovRM,
    MovMR,
    AluRM
};

// The native form of `in` (None: call the handler); for the ALU forms, its kind in `k`.
Native native_form(const DecodedInsn& in, Alu& k);
// Near JMP/Jcc forms in `mode` (None for the rest).
Native native_branch(const DecodedInsn& in, Mode mode);
// Whether form `f` of `in` writes all six status flags without reading any.
bool writes_all_flags(Native f, const DecodedInsn& in);

}  // namespace softkvm::cpu
