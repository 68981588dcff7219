// Read-modify-write exchanges: CMPXCHG CMPXCHG8B CMPXCHG16B XADD. The interpreter runs
// one vCPU per thread on private state, so each handler is atomic with respect to the
// guest; LOCK only matters to the bus-lock detector (decoded_insn.h: lockable_mem).
#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

void op_cmpxchg(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const uint64_t dest = c.read_op(i, 0);
    const uint64_t acc = c.read_gpr(RAX, size);
    const uint64_t r = (acc - dest) & size_mask(size);
    if (acc == dest) {
        c.write_op(i, 0, c.read_op(i, 1));
    } else {
        // The destination is written back unchanged (a locked cycle always writes).
        if (i.op[0].kind == OpKind::Mem) c.write_op(i, 0, dest);
        c.write_gpr(RAX, size, dest);
    }
    c.set_arith_flags(flags_sub(acc, dest, r, size, false));
}

void op_xadd(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const uint64_t dest = c.read_op(i, 0), src = c.read_op(i, 1);
    const uint64_t sum = (dest + src) & size_mask(size);
    if (i.op[0].kind == OpKind::Mem) {
        c.write_op(i, 0, sum);
        c.write_op(i, 1, dest);
    } else {
        c.write_op(i, 1, dest);
        c.write_op(i, 0, sum);
    }
    c.set_arith_flags(flags_add(dest, src, sum, size, false));
}

// CMPXCHG8B m64 / CMPXCHG16B m128: compare rDX:rAX with memory; ZF reports the outcome.
void op_cmpxchg_wide(Cpu& c, const DecodedInsn& i) {
    const bool wide = i.op[0].size == 16;
    const uint8_t half = wide ? 8 : 4;
    const uint64_t lin = c.linear(i.op[0]);
    if (wide && (lin & 15)) c.fault(VEC_GP, 0);
    const uint64_t lo = c.read_mem(lin, half), hi = c.read_mem(lin + half, half);
    CpuState& s = c.state();
    if (lo == c.read_gpr(RAX, half) && hi == c.read_gpr(RDX, half)) {
        c.write_mem(lin, half, c.read_gpr(RBX, half));
        c.write_mem(lin + half, half, c.read_gpr(RCX, half));
        s.rflags |= FLAG_ZF;
    } else {
        c.write_mem(lin, half, lo);
        c.write_mem(lin + half, half, hi);
        c.write_gpr(RAX, half, lo);
        c.write_gpr(RDX, half, hi);
        s.rflags &= ~FLAG_ZF;
    }
}

}  // namespace

void register_atomic(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_CMPXCHG].fn = op_cmpxchg;
    t[ZYDIS_MNEMONIC_XADD].fn = op_xadd;
    t[ZYDIS_MNEMONIC_CMPXCHG8B].fn = op_cmpxchg_wide;
    t[ZYDIS_MNEMONIC_CMPXCHG16B].fn = op_cmpxchg_wide;
}

}  // namespace softkvm::cpu
