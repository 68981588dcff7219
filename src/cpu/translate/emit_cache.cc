// Guest registers kept in host registers within a block (emitter.h: the register cache):
// which ones, their loads and write-backs, and the operands naming them.
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/translate/emitter.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

namespace {
// The host registers that hold cached guest registers: RSI and RDI (caller-saved: the
// emitter's scratch use of them is only at handler calls and at the block's end, where
// the cache is flushed) and R14, R15, RBP (callee-saved, pushed by the block's frame).
// A recording translation keeps its LBR trace word in RBP and the trace's target index in
// R15 (emit_lbr.cc): three then.
const Xbyak::Reg64& cache_reg(int slot) {
    static const Xbyak::Reg64 regs[] = {Xbyak::util::rsi, Xbyak::util::rdi, Xbyak::util::r14,
                                        Xbyak::util::r15, Xbyak::util::rbp};
    return regs[slot];
}
}  // namespace

void BlockEmitter::choose_cache(const Block& b, const std::vector<Native>& forms) {
    // Uses of each guest register by the block's native instructions (operands, address
    // registers, the stack forms' RSP, CMPXCHG's RAX); a register used once gains nothing.
    int uses[16] = {};
    for (size_t k = 0; k < forms.size(); ++k) {
        if (forms[k] == Native::None) continue;
        const DecodedInsn& in = b.insns[k];
        for (size_t j = 0; j < in.nops && j < 3; ++j) {
            const Operand& o = in.op[j];
            if (o.kind == OpKind::Gpr && o.reg < 16) {
                ++uses[o.reg];
            } else if (o.kind == OpKind::Mem) {
                if (o.reg < 16) ++uses[o.reg];
                if (o.index < 16) ++uses[o.index];
            }
        }
        switch (forms[k]) {
            case Native::Push:
            case Native::Pop:
            case Native::Call:
            case Native::CallR:
            case Native::CallM:
            case Native::Ret:
                uses[RSP] += 2;
                break;
            case Native::CmpxchgM:
                uses[RAX] += 2;
                break;
            default:
                break;
        }
    }
    for (Native f : forms) flags_cached_ |= f != Native::None;
    static_assert(kCacheRegs == 5);  // RBP last: cache_reg(4)
    for (int slot = 0; slot < kCacheRegs - (recording_ ? 2 : 0); ++slot) {
        int best = -1;
        for (int g = 0; g < 16; ++g)
            if (slot_of_[g] < 0 && uses[g] >= 2 && (best < 0 || uses[g] > uses[best])) best = g;
        if (best < 0) break;
        slot_of_[best] = static_cast<int8_t>(slot);
        cached_[slot] = static_cast<uint8_t>(best);
    }
}

void BlockEmitter::flush_cache() {
    for (int slot = 0; slot < kCacheRegs; ++slot) {
        const uint8_t g = cached_[slot];
        if (g != kNoGpr && (dirty_ >> g & 1)) mov(mem_gpr(g, 8), cache_reg(slot));
    }
    if (flags_cached_ && (dirty_ & kFlagsBit)) mov(qword[rbx + off_.rflags], r13);
    dirty_ = 0;
}

uint32_t BlockEmitter::written_first(const Block& b, const std::vector<Native>& forms) {
    // The block's leading register moves, LEAs and extensions (no memory access, no
    // handler's path): a destination of 32 or 64 bits that none of them read before is
    // written whole (a 32-bit write zero-extends) before anything can read it.
    uint32_t read = 0, whole = 0;
    for (size_t k = 0; k < forms.size(); ++k) {
        const Native f = forms[k];
        if (f != Native::MovRR && f != Native::MovRI && f != Native::Lea && f != Native::ExtRR)
            break;
        const DecodedInsn& in = b.insns[k];
        for (size_t j = 1; j < in.nops && j < 3; ++j) {
            const Operand& o = in.op[j];
            if ((o.kind == OpKind::Gpr || o.kind == OpKind::Mem) && o.reg < 16) read |= 1u << o.reg;
            if (o.kind == OpKind::Mem && o.index < 16) read |= 1u << o.index;
        }
        const Operand& d = in.op[0];
        if (d.kind != OpKind::Gpr || d.reg >= 16) break;
        if (!d.hi8 && d.size >= 4 && !(read >> d.reg & 1)) whole |= 1u << d.reg;
        read |= 1u << d.reg;
    }
    return whole;
}

void BlockEmitter::reload_cache(uint32_t skip) {
    for (int slot = 0; slot < kCacheRegs; ++slot) {
        const uint8_t g = cached_[slot];
        if (g != kNoGpr && !(skip >> g & 1)) mov(cache_reg(slot), mem_gpr(g, 8));
    }
    if (flags_cached_) mov(r13, qword[rbx + off_.rflags]);
    dirty_ = 0;
}

Xbyak::Reg64 BlockEmitter::host_of(uint8_t g) const {
    return cache_reg(slot_of_[g]);
}

const Xbyak::Operand& BlockEmitter::gpr_at(uint8_t g, uint8_t size) {
    const size_t at = op_next_++ % kOperandRing;
    if (g < 16 && slot_of_[g] >= 0) return op_regs_[at] = sized(cache_reg(slot_of_[g]), size);
    return op_addrs_[at].emplace(mem_gpr(g, size));
}

const Xbyak::Operand& BlockEmitter::wgpr_at(uint8_t g, uint8_t size) {
    if (g < 16 && slot_of_[g] >= 0) dirty_ |= 1u << g;
    return gpr_at(g, size);
}

}  // namespace softkvm::cpu
#endif
