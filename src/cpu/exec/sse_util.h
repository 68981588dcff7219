// Helpers shared by the SSE instruction files (sse.cc, sse_fp.cc): the CR0/CR4 checks, XMM
// or memory operand access, and the MXCSR layout (SDM vol. 1 §10.2.3).
#pragma once
#include "cpu/cpu.h"

namespace softkvm::cpu::sse {

using Xmm = CpuState::Xmm;

// MXCSR fields (SDM vol. 1 §10.2.3, figure 10-3).
inline constexpr uint32_t kMxcsrFlags = 0x3F;        // IE DE ZE OE UE PE (bits 0-5)
inline constexpr uint32_t kMxcsrDaz = 1u << 6;       // denormals are zeros
inline constexpr uint32_t kMxcsrMasks = 0x3Fu << 7;  // IM DM ZM OM UM PM (bits 7-12)
inline constexpr uint32_t kMxcsrUm = 1u << 11;
inline constexpr uint32_t kMxcsrRc = 3u << 13;   // rounding control
inline constexpr uint32_t kMxcsrFtz = 1u << 15;  // flush to zero
// MXCSR bits software may set: all of 0-15, DAZ included (the model advertises it through
// MXCSR_MASK in the FXSAVE image, SDM vol. 1 §11.6.6).
inline constexpr uint32_t kMxcsrMask = 0xFFFF;

// SSE instructions need CR4.OSFXSR and CR0.EM clear (#UD), and CR0.TS clear (#NM).
inline void check_sse(Cpu& c) {
    const CpuState& s = c.state();
    if ((s.cr0 & CR0_EM) || !(s.cr4 & CR4_OSFXSR)) c.undefined();
    if (s.cr0 & CR0_TS) c.fault(VEC_NM);
}

// Operand n as an XMM value: a register, a GPR (low quadword) or `size` bytes of memory
// (16 with `aligned`: #GP(0) unless 16-byte aligned).
inline Xmm load(Cpu& c, const DecodedInsn& i, int n, uint8_t size, bool aligned) {
    const Operand& o = i.op[n];
    if (o.kind == OpKind::Xmm) return c.state().xmm[o.reg];
    Xmm v;
    if (o.kind == OpKind::Gpr) {
        v.lo = c.read_gpr(o.reg, o.size);
        return v;
    }
    const uint64_t lin = c.linear(o);
    if (aligned && (lin & 15)) c.fault(VEC_GP, 0);
    if (size == 16) {
        v.lo = c.read_mem(lin, 8);
        v.hi = c.read_mem(lin + 8, 8);
    } else {
        v.lo = c.read_mem(lin, size);
    }
    return v;
}

inline void store(Cpu& c, const DecodedInsn& i, int n, uint8_t size, bool aligned, const Xmm& v) {
    const Operand& o = i.op[n];
    if (o.kind == OpKind::Xmm) {
        c.state().xmm[o.reg] = v;
        return;
    }
    if (o.kind == OpKind::Gpr) {
        c.write_gpr(o.reg, o.size, v.lo);
        return;
    }
    const uint64_t lin = c.linear(o);
    if (aligned && (lin & 15)) c.fault(VEC_GP, 0);
    if (size == 16) {
        c.check_access(lin + 8, Access::Write);  // all or nothing across a page boundary
        c.write_mem(lin, 8, v.lo);
        c.write_mem(lin + 8, 8, v.hi);
    } else {
        c.write_mem(lin, size, v.lo & size_mask(size));
    }
}

}  // namespace softkvm::cpu::sse
