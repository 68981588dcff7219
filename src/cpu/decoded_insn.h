// softkvm's compact decoded instruction (docs/architecture.md "The software CPU"): the handler, the
// pre-resolved operands and the facts the features need (branch kind for LBR filtering,
// lock semantics for the bus-lock detector). Built from Zydis output in decoder.cc.
#pragma once
#include <cstdint>

namespace softkvm::cpu {

class Cpu;
struct DecodedInsn;
using Handler = void (*)(Cpu&, const DecodedInsn&);

enum class OpKind : uint8_t { None, Gpr, Seg, Cr, Dr, Mem, Imm, Far, Xmm, St, Mm };

inline constexpr uint8_t kNoReg = 0xFF;
inline constexpr uint8_t kRegRip = 16;  // Mem::base for RIP-relative addressing

struct Operand {
    OpKind kind = OpKind::None;
    uint8_t size = 0;      // bytes
    uint8_t reg = kNoReg;  // Gpr/Seg/Cr/Dr/Xmm/Mm number, St: i of ST(i); Mem: base
    bool hi8 = false;      // Gpr: AH/CH/DH/BH
    uint8_t index = kNoReg;
    uint8_t scale_shift = 0;
    uint8_t seg = 0;       // Mem: SegReg
    uint8_t addrsize = 8;  // Mem: address size in bytes (the effective address wraps)
    bool agen = false;     // Mem: address only (LEA)
    int64_t value = 0;     // Mem: displacement; Imm: value (sign-extended to size); Far: offset
    uint16_t far_selector = 0;  // Far: ptr16:32 selector
};

// Branch classes in the order of LBR_SELECT's filter bits (spec §2.1).
enum class BranchKind : uint8_t {
    None,
    Jcc,          // conditional (JCC)
    NearRelCall,  // NEAR_REL_CALL
    NearIndCall,  // NEAR_IND_CALL
    NearRet,      // NEAR_RET
    NearIndJmp,   // NEAR_IND_JMP
    NearRelJmp,   // NEAR_REL_JMP
    Far,          // FAR_BRANCH (far jmp/call/ret, int, iret, syscall, sysret)
};

enum Prefix : uint8_t {
    PFX_LOCK = 1 << 0,
    PFX_REP = 1 << 1,    // REP / REPE / REPZ
    PFX_REPNE = 1 << 2,  // REPNE / REPNZ
};

struct DecodedInsn {
    Handler fn = nullptr;
    uint8_t len = 0;
    uint8_t opsize = 0;    // effective operand size in bytes
    uint8_t addrsize = 0;  // effective address size in bytes
    uint8_t prefixes = 0;  // Prefix bits
    uint8_t nops = 0;      // visible operands
    uint8_t cond = 0;      // condition code (Jcc/SETcc/CMOVcc), low 4 bits of the opcode
    BranchKind branch = BranchKind::None;
    bool ends_block = false;
    bool far = false;           // far branch (jmp/call/ret with a selector)
    bool lockable_mem = false;  // locked read-modify-write of memory (LOCK or implicit)
    uint16_t mnemonic = 0;      // ZydisMnemonic, for diagnostics
    uint16_t fop = 0;           // x87: the last-opcode value FOP (SDM vol. 1 §8.1.9.1)
    // Bytes from the first byte of its block (set by the block builder): a branch's own
    // address for the LBR unit and the predictor without summing the lengths before it.
    uint16_t block_off = 0;
    Operand op[3];
    // The run loop's LBR recording path (branch_hooks.h): `branch`, except None for a
    // conditional branch to the next instruction (Jcc, JrCXZ or LOOPcc with displacement
    // 0), whose outcome RIP cannot tell: the general path asks its condition.
    BranchKind record = BranchKind::None;
};

}  // namespace softkvm::cpu
