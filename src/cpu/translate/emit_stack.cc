// Native stack and indirect-branch forms in 64-bit mode: PUSH/POP r64, CALL rel32, r64
// and m64, RET, JMP r64, JMP m64 (emitter.h). The stack is flat there (SS base 0, 64-bit RSP).
// Their probes leave the entry's addend in RDX, the access is [RDX + RAX] (emit_probe).
// Their fast paths do not note SS as the segment of the access (Cpu::last_seg_): only a
// fault reads it, and every fault is on the handler's path, whose Cpu::push and Cpu::pop
// note it.
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include "cpu/translate/emitter.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

void BlockEmitter::next_rip_to_r11(const DecodedInsn& in) {
    mov(r11, qword[rbx + off_.rip]);
    add(r11, in.len);
}

void BlockEmitter::emit_call_push(Xbyak::Label& slow) {
    // A non-canonical target or a TLB miss leaves it all to the handler, which pushes and
    // then raises #GP, or raises the fault: nothing is written before both checks.
    canonical_or(r10, slow);
    mov(rax, gpr(RSP));
    sub(rax, 8);
    emit_probe(8, off_.tlb_write, slow, false);
    mov(qword[rdx + rax], r11);
    mov(wgpr(RSP), rax);
    mov(qword[rbx + off_.rip], r10);
}

void BlockEmitter::emit_stack_branch(const DecodedInsn& in, Native f, size_t idx) {
    sync(idx);
    Xbyak::Label& slow = block_label();
    Xbyak::Label& done = block_label();
    defer_handler(in, idx, slow, done);
    switch (f) {
        case Native::Push:  // Cpu::push: the value read first (PUSH RSP: the old RSP)
            mov(rax, gpr(RSP));
            sub(rax, 8);
            emit_probe(8, off_.tlb_write, slow, false);
            mov(rcx, gpr(in.op[0].reg));
            mov(qword[rdx + rax], rcx);
            mov(wgpr(RSP), rax);
            add(qword[rbx + off_.rip], in.len);
            break;
        case Native::Pop:  // Cpu::pop, then the register (never RSP here)
            mov(rax, gpr(RSP));
            emit_probe(8, off_.tlb_read, slow, false);
            mov(rcx, qword[rdx + rax]);
            add(wgpr(RSP), 8);
            mov(wgpr(in.op[0].reg), rcx);
            add(qword[rbx + off_.rip], in.len);
            break;
        case Native::Call:  // op_call: push the next RIP, then jump (#GP if not canonical)
            next_rip_to_r11(in);
            lea(r10, ptr[r11 + static_cast<int32_t>(in.op[0].value)]);
            emit_call_push(slow);
            break;
        case Native::CallR:  // the target read first (CALL RSP: the old RSP)
            mov(r10, gpr(in.op[0].reg));
            next_rip_to_r11(in);
            emit_call_push(slow);
            break;
        case Native::CallM:
            emit_lin(in, in.op[0]);
            emit_probe(8, off_.tlb_read, slow, false);
            mov(r10, qword[rdx + rax]);
            next_rip_to_r11(in);
            emit_call_push(slow);
            break;
        case Native::Ret:  // op_ret: pop the target, then jump
            mov(rax, gpr(RSP));
            emit_probe(8, off_.tlb_read, slow, false);
            mov(r10, qword[rdx + rax]);
            canonical_or(r10, slow);
            add(wgpr(RSP), 8);
            mov(qword[rbx + off_.rip], r10);
            break;
        case Native::JmpR:
            mov(r10, gpr(in.op[0].reg));
            canonical_or(r10, slow);
            mov(qword[rbx + off_.rip], r10);
            break;
        default:  // JmpM
            emit_lin(in, in.op[0]);
            emit_probe(8, off_.tlb_read, slow, false);
            mov(r10, qword[rdx + rax]);
            canonical_or(r10, slow);
            mov(qword[rbx + off_.rip], r10);
            break;
    }
    join_synced(idx, done);
}

}  // namespace softkvm::cpu
#endif
