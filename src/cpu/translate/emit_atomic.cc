// Read-modify-writes of memory, locked or not: ALU m, r; (LOCK) ALU m, imm; INC/DEC m;
// XCHG m, r; XADD m, r; CMPXCHG m, r (emitter.h).
#ifdef SOFTKVM_HAVE_TRANSLATOR
#include <Zydis/Zydis.h>

#include "cpu/exec/flags.h"
#include "cpu/translate/emitter.h"

namespace softkvm::cpu {

using namespace Xbyak::util;

namespace {

// A locked access that crosses a 64-byte line is a split lock (docs/buslock.md); the
// host would take one too (and may trap it), so the handler runs those.
constexpr uint32_t kLineSize = 64;

}  // namespace

void BlockEmitter::emit_rmw(const DecodedInsn& in, Native f, Alu k, size_t idx, bool flags_live) {
    const uint8_t size = in.opsize;
    const bool locked = (in.prefixes & PFX_LOCK) || f == Native::XchgM;
    const bool mem_first = in.op[0].kind == OpKind::Mem;
    const Operand& m = mem_first ? in.op[0] : in.op[1];
    const uint8_t src = mem_first ? in.op[1].reg : in.op[0].reg;  // the register operand
    const bool reads_only = f == Native::AluMR && (k == Alu::Cmp || k == Alu::Test);
    Xbyak::Label& slow = block_label();
    Xbyak::Label& done = block_label();
    defer_handler(in, idx, slow, done, false, flags_live && f != Native::XchgM, true);
    emit_lin(in, m);
    // The handler's read_op and write_op: the read entry and the write entry must both
    // hit, and lead to one host address (RAM) for the host's single read-modify-write.
    emit_probe(size, off_.tlb_read, slow);
    if (!reads_only) {
        cmp(r9, qword[rbx + r8 + off_.tlb_write]);
        jne(slow, T_NEAR);
        mov(r11, qword[rbx + r8 + off_.tlb_write + 8]);
        add(r11, rax);
        cmp(r11, rdx);
        jne(slow, T_NEAR);
    }
    if (locked && size > 1) {
        mov(ecx, eax);  // (the host page is page-aligned: the same line offset)
        and_(ecx, kLineSize - 1);
        cmp(ecx, kLineSize - size);
        ja(slow, T_NEAR);
    }
    const Xbyak::Address host = frame(size)[rdx];
    // The register operand in R10 (RAX takes the captured flags), CMPXCHG's accumulator in
    // RAX. The host instruction's flags are captured right after it (capture_flags).
    const Xbyak::Reg v = sized(r10, size);
    bool logic = false, incdec = false, no_flags = false;
    switch (f) {
        case Native::AluMR:
            logic = k == Alu::And || k == Alu::Or || k == Alu::Xor || k == Alu::Test;
            mov(v, gpr_at(src, size));
            if (locked) lock();
            switch (k) {
                case Alu::Add:
                    add(host, v);
                    break;
                case Alu::Sub:
                    sub(host, v);
                    break;
                case Alu::And:
                    and_(host, v);
                    break;
                case Alu::Or:
                    or_(host, v);
                    break;
                case Alu::Xor:
                    xor_(host, v);
                    break;
                case Alu::Cmp:
                    cmp(host, v);
                    break;
                default:
                    test(host, v);
                    break;
            }
            break;
        case Native::AluMI: {  // locked only (unlocked: emit_mem)
            logic = k == Alu::And || k == Alu::Or || k == Alu::Xor;
            const uint32_t imm = static_cast<uint32_t>(in.op[1].value) &
                                 static_cast<uint32_t>(size_mask(size == 8 ? 4 : size));
            lock();
            switch (k) {
                case Alu::Add:
                    add(host, imm);
                    break;
                case Alu::Sub:
                    sub(host, imm);
                    break;
                case Alu::And:
                    and_(host, imm);
                    break;
                case Alu::Or:
                    or_(host, imm);
                    break;
                default:
                    xor_(host, imm);
                    break;
            }
            break;
        }
        case Native::IncM:
        case Native::DecM:
            incdec = true;
            if (locked) lock();
            if (f == Native::IncM)
                inc(host);
            else
                dec(host);
            break;
        case Native::XchgM:  // no flags; the register gets the old memory value
            no_flags = true;
            mov(v, gpr_at(src, size));
            xchg(host, v);
            store_gpr(src, size, r10);
            break;
        case Native::XaddM:  // memory := sum, the register := the old memory value
            mov(v, gpr_at(src, size));
            if (locked) lock();
            xadd(host, v);
            break;
        default: {  // CmpxchgM: the flags of CMP rAX, m; rAX := m when they differ
            mov(sized(rax, size), gpr_at(RAX, size));
            mov(v, gpr_at(src, size));
            if (locked) lock();
            cmpxchg(host, v);
            mov(r10, rax);  // the old memory value when they differ (MOV keeps the flags)
            break;
        }
    }
    const bool capture = !no_flags && flags_live;
    if (capture) capture_flags(!logic);
    if (f == Native::XaddM) store_gpr(src, size, r10);
    if (f == Native::CmpxchgM) {
        // ZF from CMPXCHG: in the host's flags, or in the captured ones.
        Xbyak::Label same;
        if (capture) test(eax, static_cast<uint32_t>(FLAG_ZF));
        if (capture)
            jnz(same);
        else
            je(same);
        store_gpr(RAX, size, r10);  // a 32-bit CMPXCHG zero-extended RAX
        L(same);
    }
    if (!no_flags && flags_live) {
        if (incdec)
            merge_host_flags(FLAGS_ARITH & ~FLAG_CF, FLAGS_ARITH & ~FLAG_CF);  // CF stays
        else
            merge_alu_flags(logic);
    }
    join_handler_path(in, done);
}

}  // namespace softkvm::cpu
#endif
