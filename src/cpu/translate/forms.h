// Instruction forms the translator runs as host instructions (translator.cc emits them);
// every other instruction calls its interpreter handler.
#pragma once
#include <cstdint>

#include "cpu/decoded_insn.h"
#include "cpu/exec/flags.h"
#include "cpu/state.h"

namespace softkvm::cpu {

// 8-, 32- and 64-bit MOV and ALU forms (register, immediate or memory source; CMP, TEST
// and the ALU with a memory destination and an immediate; MOV m, imm; ADC and SBB with a
// 32- or 64-bit register destination), 32- and 64-bit NOT and NEG of a register, 16-bit MOV to
// memory (from a register or an immediate), 32- and 64-bit INC/DEC, shifts and rotates
// by an immediate count (16-bit SHL/SHR/SAR by 1-15 too), 32- and 64-bit SHL/SHR/SAR by
// CL, two- and three-operand IMUL,
// LEA, MOVZX/MOVSX/MOVSXD, SETcc, CMOVcc between registers, NOP; in 64-bit mode PUSH/POP
// of a register, CALL rel32, RET, JMP through a register or memory, near JMP and Jcc.
// Memory forms probe the software TLB inline and run their handler on a miss; a branch
// whose target is not canonical runs its handler too (#GP). Nothing else can fault or stop
// the block.
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
    MovMI,  // MOV m, imm
    AluRM,
    AluMI,   // CMP/TEST m, imm (a load) and ADD/SUB/AND/OR/XOR m, imm (read-modify-write)
    Nop,     // NOP, NOP r/m (multi-byte): nothing but RIP
    ExtRR,   // MOVZX/MOVSX/MOVSXD r, r
    ExtRM,   // MOVZX/MOVSX/MOVSXD r, m
    Setcc,   // SETcc r8
    Cmovcc,  // CMOVcc r, r
    Push,    // PUSH r64 (64-bit mode)
    Pop,     // POP r64 other than RSP (64-bit mode)
    Call,    // CALL rel32 (64-bit mode)
    Ret,     // RET without an immediate (64-bit mode)
    JmpR,    // JMP r64 (64-bit mode)
    JmpM,    // JMP m64 (64-bit mode)
    CallR,   // CALL r64 (64-bit mode)
    CallM,   // CALL m64 (64-bit mode)
    // Read-modify-writes of memory, LOCK-prefixed or not (emit_atomic.cc); a locked one
    // uses the host's locked instruction on the host page when it is a TLB hit and does
    // not split a cache line (blocks holding one run in the interpreter while bus-lock
    // detection is on). AluMI above takes LOCK too.
    AluMR,     // ADD/SUB/AND/OR/XOR m, r (CMP/TEST m, r read only)
    IncM,      // INC m
    DecM,      // DEC m
    XchgM,     // XCHG m, r (implicitly locked)
    XaddM,     // XADD m, r
    CmpxchgM,  // CMPXCHG m, r
    Not,       // NOT r (32, 64 bits)
    Neg,       // NEG r (32, 64 bits)
};

// The native form of `in` (None: call the handler); for the ALU forms, its kind in `k`.
Native native_form(const DecodedInsn& in, Alu& k);
// Near JMP/Jcc forms, and the stack and indirect-branch forms, in `mode` (None for the
// rest).
Native native_branch(const DecodedInsn& in, Mode mode);
// Whether form `f` is one of the read-modify-writes a LOCK prefix may precede.
bool is_lockable_form(Native f);
// Whether form `f` touches guest memory (and so may take its handler's path and fault).
bool is_memory_form(Native f);
// Whether form `f` is a MOV, MOVZX or MOVSX with a memory operand (emit_mem): it reads
// and writes no status flag, and only its handler's path can fault.
bool is_plain_memory_form(Native f);
// Whether form `f` is a stack or indirect-branch form (emit_stack_branch: PUSH, POP, CALL,
// RET, JMP/CALL r/m), which stores RIP and the done count itself.
bool is_stack_branch_form(Native f);
// Whether form `f` neither reads nor writes the status flags nor can fault.
bool is_flagless_register_form(Native f);
// Whether form `f` of `in` writes all six status flags without reading any.
bool writes_all_flags(Native f, const DecodedInsn& in);
// The status flags register form `f` of `in` writes without reading any (0 for the rest,
// and for forms that leave the flags as they were: a shift or rotate by 0).
uint64_t flags_written(Native f, const DecodedInsn& in);

}  // namespace softkvm::cpu
