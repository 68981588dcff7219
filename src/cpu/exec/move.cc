// Data movement: MOV MOVZX MOVSX MOVSXD LEA XCHG PUSH POP PUSHF POPF CBW-family CWD-family
// CMOVcc SETcc BSWAP LAHF SAHF, flag instructions and no-ops.
#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

void op_mov(Cpu& c, const DecodedInsn& i) {
    c.write_op(i, 0, c.read_op(i, 1));
}

void op_movzx(Cpu& c, const DecodedInsn& i) {
    c.write_op(i, 0, c.read_op(i, 1));
}

void op_movsx(Cpu& c, const DecodedInsn& i) {
    uint64_t v = static_cast<uint64_t>(sign_extend(c.read_op(i, 1), i.op[1].size));
    c.write_op(i, 0, v & size_mask(i.op[0].size));
}

void op_lea(Cpu& c, const DecodedInsn& i) {
    c.write_op(i, 0, c.effective_address(i.op[1]) & size_mask(i.op[0].size));
}

void op_xchg(Cpu& c, const DecodedInsn& i) {
    uint64_t a = c.read_op(i, 0), b = c.read_op(i, 1);
    // Write the memory operand (if any) first so a fault leaves registers untouched.
    if (i.op[1].kind == OpKind::Mem) {
        c.write_op(i, 1, a);
        c.write_op(i, 0, b);
    } else {
        c.write_op(i, 0, b);
        c.write_op(i, 1, a);
    }
}

void op_push(Cpu& c, const DecodedInsn& i) {
    uint64_t v = c.read_op(i, 0);
    c.push(v, i.opsize);
}

void op_pop(Cpu& c, const DecodedInsn& i) {
    uint64_t saved = c.gpr(RSP);
    uint64_t v = c.pop(i.opsize);
    try {
        c.write_op(i, 0, v);  // a memory destination's address uses the incremented RSP
    } catch (...) {
        c.gpr(RSP) = saved;
        throw;
    }
}

void op_pushf(Cpu& c, const DecodedInsn& i) {
    c.push(c.flags() & ~(FLAG_VM | FLAG_RF), i.opsize);
}

void op_popf(Cpu& c, const DecodedInsn& i) {
    CpuState& s = c.state();
    uint64_t v = c.pop(i.opsize);
    uint64_t writable = FLAGS_WRITABLE & ~FLAG_RF;  // POPF clears RF
    uint8_t iopl = (s.rflags >> 12) & 3;
    if (s.cpl > 0) writable &= ~FLAG_IOPL;
    if (s.cpl > iopl) writable &= ~FLAG_IF;
    if (i.opsize == 2) writable &= 0xFFFF;
    s.rflags = (s.rflags & ~writable) | (v & writable) | FLAG_FIXED1;
    s.rflags &= ~FLAG_RF;
    c.flags_changed();
}

// CBW / CWDE / CDQE: sign-extend the lower half of the accumulator.
void op_extend_acc(Cpu& c, const DecodedInsn& i) {
    uint8_t size = i.opsize;
    uint64_t half = c.read_gpr(RAX, size / 2);
    c.write_gpr(RAX, size, static_cast<uint64_t>(sign_extend(half, size / 2)) & size_mask(size));
}

// CWD / CDQ / CQO: fill the data register with the accumulator's sign.
void op_sign_to_rdx(Cpu& c, const DecodedInsn& i) {
    uint8_t size = i.opsize;
    bool neg = c.read_gpr(RAX, size) & sign_bit(size);
    c.write_gpr(RDX, size, neg ? size_mask(size) : 0);
}

void op_setcc(Cpu& c, const DecodedInsn& i) {
    c.write_op(i, 0, c.cond(i.cond) ? 1 : 0);
}

void op_cmovcc(Cpu& c, const DecodedInsn& i) {
    uint64_t v = c.read_op(i, 1);  // the source is read (and may fault) either way
    if (c.cond(i.cond))
        c.write_op(i, 0, v);
    else if (i.op[0].size == 4)
        c.write_op(i, 0, c.read_op(i, 0));  // a 32-bit destination is zero-extended anyway
}

void op_bswap(Cpu& c, const DecodedInsn& i) {
    uint64_t v = c.read_op(i, 0);
    if (i.op[0].size == 8)
        v = __builtin_bswap64(v);
    else if (i.op[0].size == 4)
        v = __builtin_bswap32(static_cast<uint32_t>(v));
    else
        v = 0;  // BSWAP r16 is undefined; QEMU and recent Intel parts give 0
    c.write_op(i, 0, v);
}

void op_lahf(Cpu& c, const DecodedInsn&) {
    uint64_t f = c.flags() & (FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF | FLAG_CF);
    c.write_gpr(RAX, 1, f | FLAG_FIXED1, true);
}

void op_sahf(Cpu& c, const DecodedInsn&) {
    uint64_t mask = FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF | FLAG_CF;
    uint64_t ah = c.read_gpr(RAX, 1, true);
    CpuState& s = c.state();
    s.rflags = (s.rflags & ~mask) | (ah & mask);
}

template <uint64_t Flag, int How>  // How: 0 clear, 1 set, 2 complement
void op_flag(Cpu& c, const DecodedInsn&) {
    CpuState& s = c.state();
    if (How == 0) s.rflags &= ~Flag;
    if (How == 1) s.rflags |= Flag;
    if (How == 2) s.rflags ^= Flag;
}

void op_nop(Cpu&, const DecodedInsn&) {}

}  // namespace

void register_move(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_MOV].fn = op_mov;
    t[ZYDIS_MNEMONIC_MOVNTI].fn = op_mov;  // the non-temporal hint changes no result
    t[ZYDIS_MNEMONIC_MOVZX].fn = op_movzx;
    t[ZYDIS_MNEMONIC_MOVSX].fn = op_movsx;
    t[ZYDIS_MNEMONIC_MOVSXD].fn = op_movsx;
    t[ZYDIS_MNEMONIC_LEA].fn = op_lea;
    t[ZYDIS_MNEMONIC_XCHG].fn = op_xchg;
    t[ZYDIS_MNEMONIC_PUSH].fn = op_push;
    t[ZYDIS_MNEMONIC_POP].fn = op_pop;
    t[ZYDIS_MNEMONIC_PUSHF].fn = op_pushf;
    t[ZYDIS_MNEMONIC_PUSHFD].fn = op_pushf;
    t[ZYDIS_MNEMONIC_PUSHFQ].fn = op_pushf;
    for (auto m : {ZYDIS_MNEMONIC_POPF, ZYDIS_MNEMONIC_POPFD, ZYDIS_MNEMONIC_POPFQ})
        t[m] = {op_popf, true};  // may set TF or IF
    t[ZYDIS_MNEMONIC_CBW].fn = op_extend_acc;
    t[ZYDIS_MNEMONIC_CWDE].fn = op_extend_acc;
    t[ZYDIS_MNEMONIC_CDQE].fn = op_extend_acc;
    t[ZYDIS_MNEMONIC_CWD].fn = op_sign_to_rdx;
    t[ZYDIS_MNEMONIC_CDQ].fn = op_sign_to_rdx;
    t[ZYDIS_MNEMONIC_CQO].fn = op_sign_to_rdx;
    for (auto m :
         {ZYDIS_MNEMONIC_SETO, ZYDIS_MNEMONIC_SETNO, ZYDIS_MNEMONIC_SETB, ZYDIS_MNEMONIC_SETNB,
          ZYDIS_MNEMONIC_SETZ, ZYDIS_MNEMONIC_SETNZ, ZYDIS_MNEMONIC_SETBE, ZYDIS_MNEMONIC_SETNBE,
          ZYDIS_MNEMONIC_SETS, ZYDIS_MNEMONIC_SETNS, ZYDIS_MNEMONIC_SETP, ZYDIS_MNEMONIC_SETNP,
          ZYDIS_MNEMONIC_SETL, ZYDIS_MNEMONIC_SETNL, ZYDIS_MNEMONIC_SETLE, ZYDIS_MNEMONIC_SETNLE})
        t[m].fn = op_setcc;
    for (auto m :
         {ZYDIS_MNEMONIC_CMOVO, ZYDIS_MNEMONIC_CMOVNO, ZYDIS_MNEMONIC_CMOVB, ZYDIS_MNEMONIC_CMOVNB,
          ZYDIS_MNEMONIC_CMOVZ, ZYDIS_MNEMONIC_CMOVNZ, ZYDIS_MNEMONIC_CMOVBE,
          ZYDIS_MNEMONIC_CMOVNBE, ZYDIS_MNEMONIC_CMOVS, ZYDIS_MNEMONIC_CMOVNS, ZYDIS_MNEMONIC_CMOVP,
          ZYDIS_MNEMONIC_CMOVNP, ZYDIS_MNEMONIC_CMOVL, ZYDIS_MNEMONIC_CMOVNL, ZYDIS_MNEMONIC_CMOVLE,
          ZYDIS_MNEMONIC_CMOVNLE})
        t[m].fn = op_cmovcc;
    t[ZYDIS_MNEMONIC_BSWAP].fn = op_bswap;
    t[ZYDIS_MNEMONIC_LAHF].fn = op_lahf;
    t[ZYDIS_MNEMONIC_SAHF].fn = op_sahf;
    t[ZYDIS_MNEMONIC_CLC].fn = op_flag<FLAG_CF, 0>;
    t[ZYDIS_MNEMONIC_STC].fn = op_flag<FLAG_CF, 1>;
    t[ZYDIS_MNEMONIC_CMC].fn = op_flag<FLAG_CF, 2>;
    t[ZYDIS_MNEMONIC_CLD].fn = op_flag<FLAG_DF, 0>;
    t[ZYDIS_MNEMONIC_STD].fn = op_flag<FLAG_DF, 1>;
    for (auto m : {ZYDIS_MNEMONIC_NOP, ZYDIS_MNEMONIC_PAUSE, ZYDIS_MNEMONIC_ENDBR64,
                   ZYDIS_MNEMONIC_ENDBR32, ZYDIS_MNEMONIC_LFENCE, ZYDIS_MNEMONIC_MFENCE,
                   ZYDIS_MNEMONIC_SFENCE, ZYDIS_MNEMONIC_PREFETCHT0, ZYDIS_MNEMONIC_PREFETCHT1,
                   ZYDIS_MNEMONIC_PREFETCHT2, ZYDIS_MNEMONIC_PREFETCHNTA, ZYDIS_MNEMONIC_PREFETCHW})
        t[m].fn = op_nop;
}

}  // namespace softkvm::cpu
