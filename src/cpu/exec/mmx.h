// MMX technology state (SDM vol. 1 ch. 9, vol. 3 ch. 12 "Intel MMX Technology System
// Programming"): MM0-MM7 are the significands (bits 63-0) of the x87 physical registers
// R0-R7, not of ST(i). Shared by mmx.cc and the MMX forms of the SSE conversions
// (sse_fp.cc).
#pragma once
#include "cpu/exec/sse_util.h"
#include "cpu/exec/x87.h"

namespace softkvm::cpu::mmx {

// The checks of every MMX instruction, in the SDM's order (vol. 3 §12.5, vol. 2 table
// 22-8): CR0.EM: #UD; CR0.TS: #NM; a pending unmasked x87 exception: #MF (with CR0.NE;
// like the waiting x87 instructions, see x87::begin). Memory faults come after.
inline void begin(Cpu& c) {
    const CpuState& s = c.state();
    if (s.cr0 & CR0_EM) c.undefined();
    if (s.cr0 & CR0_TS) c.fault(VEC_NM);
    if ((s.fsw & x87::kES) && (s.cr0 & CR0_NE)) c.fault(VEC_MF);
}
// The forms with an XMM operand (MOVQ2DQ, MOVDQ2Q, the CVT*PI* conversions) also need
// CR4.OSFXSR (#UD), as SSE does (SDM vol. 2 tables 22-5 and 22-6).
inline void begin_sse(Cpu& c) {
    sse::check_sse(c);
    begin(c);
}

inline uint64_t get(const CpuState& s, uint8_t r) {
    return s.st[r & 7].mant;
}
// The x87 side effect of every MMX instruction but EMMS once it completes (SDM vol. 1
// table 9-3): TOP = 0 and every tag valid; FCW, the rest of FSW and the pointers stay.
inline void enter(CpuState& s) {
    x87::set_top(s, 0);
    s.ftw = 0xFF;
}
// A write to MMi also sets bits 79-64 (sign and exponent) of Ri to all ones.
inline void put(CpuState& s, uint8_t r, uint64_t v) {
    enter(s);
    s.st[r & 7] = {v, 0xFFFF};
}

// Operand n as a quadword: an MMX register, the low quadword of an XMM register, a GPR
// (zero-extended) or the operand's size of memory (8, or 4 for PUNPCKL* m32).
inline uint64_t read(Cpu& c, const DecodedInsn& i, int n) {
    const Operand& o = i.op[n];
    switch (o.kind) {
        case OpKind::Mm:
            return get(c.state(), o.reg);
        case OpKind::Xmm:
            return c.state().xmm[o.reg].lo;
        case OpKind::Gpr:
            return c.read_gpr(o.reg, o.size);
        default:
            return c.read_mem(c.linear(o), o.size > 8 ? 8 : o.size);
    }
}

}  // namespace softkvm::cpu::mmx
