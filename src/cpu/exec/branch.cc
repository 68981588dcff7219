// Control transfer: JMP Jcc JrCXZ LOOPcc CALL RET (near and far) ENTER LEAVE INT n INT3
// INT1 IRET.
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {

FarPointer read_far_pointer(Cpu& c, const DecodedInsn& i, int op, uint8_t size) {
    const uint64_t lin = c.linear(i.op[op]);
    const uint64_t offset = c.read_mem(lin, size);
    return {offset, static_cast<uint16_t>(c.read_mem(lin + size, 2))};
}

namespace {

// Target of a relative branch, truncated to the operand size outside 64-bit mode.
uint64_t rel_target(Cpu& c, const DecodedInsn& i) {
    uint64_t t = c.next_rip() + static_cast<uint64_t>(i.op[0].value);
    return i.opsize == 2 ? t & 0xFFFF : i.opsize == 4 ? t & 0xFFFFFFFF : t;
}

void op_jcc(Cpu& c, const DecodedInsn& i) {
    if (c.cond(i.cond)) c.jump(rel_target(c, i));
}

void op_jrcxz(Cpu& c, const DecodedInsn& i) {
    if (c.read_gpr(RCX, i.addrsize) == 0) c.jump(rel_target(c, i));
}

// LOOP / LOOPE / LOOPNE: decrement rCX (address-size wide), then test.
template <int Kind>  // 0 LOOP, 1 LOOPE, 2 LOOPNE
void op_loop(Cpu& c, const DecodedInsn& i) {
    uint64_t cx = (c.read_gpr(RCX, i.addrsize) - 1) & size_mask(i.addrsize);
    c.write_gpr(RCX, i.addrsize == 4 ? 4 : i.addrsize, cx);
    bool zf = c.flags() & FLAG_ZF;
    bool take = cx != 0 && (Kind == 0 || (Kind == 1 && zf) || (Kind == 2 && !zf));
    if (take) c.jump(rel_target(c, i));
}

// Far jump/call operands: ptr16:32 (immediate) or m16:16/32/64.
void far_pointer(Cpu& c, const DecodedInsn& i, uint64_t& offset, uint16_t& sel) {
    if (i.op[0].kind == OpKind::Far) {
        offset = static_cast<uint64_t>(i.op[0].value);
        sel = i.op[0].far_selector;
        return;
    }
    const FarPointer p = read_far_pointer(c, i, 0, i.opsize);
    offset = p.offset;
    sel = p.selector;
}

void op_jmp(Cpu& c, const DecodedInsn& i) {
    if (i.far) {
        uint64_t offset;
        uint16_t sel;
        far_pointer(c, i, offset, sel);
        offset &= size_mask(i.opsize);
        const uint64_t d = c.check_far_target(sel, offset);
        c.load_cs(sel, c.state().cpl, d);
        c.jump(offset);
        return;
    }
    if (i.op[0].kind == OpKind::Imm)
        c.jump(rel_target(c, i));
    else
        c.jump(c.read_op(i, 0));
}

// Far CALL to a code segment at the current privilege level: CS (zero-extended to the
// operand size) and the return offset are pushed once the target passed its checks.
void far_call(Cpu& c, const DecodedInsn& i) {
    uint64_t offset;
    uint16_t sel;
    far_pointer(c, i, offset, sel);
    offset &= size_mask(i.opsize);
    const uint64_t d = c.check_far_target(sel, offset);
    const uint64_t saved_rsp = c.gpr(RSP);
    try {
        c.push(c.state().seg[CS].selector, i.opsize);
        c.push(c.next_rip(), i.opsize);
        c.load_cs(sel, c.state().cpl, d);
    } catch (...) {
        c.gpr(RSP) = saved_rsp;
        throw;
    }
    c.jump(offset);
}

void op_call(Cpu& c, const DecodedInsn& i) {
    if (i.far) {
        far_call(c, i);
        return;
    }
    uint64_t target = i.op[0].kind == OpKind::Imm ? rel_target(c, i) : c.read_op(i, 0);
    c.push(c.next_rip(), i.opsize);
    c.jump(target);
}

void op_ret(Cpu& c, const DecodedInsn& i) {
    const uint64_t extra = i.nops > 0 ? static_cast<uint64_t>(i.op[0].value) & 0xFFFF : 0;
    if (i.far) {
        // Far return to the same privilege level (outer-level returns come with ring 3).
        uint64_t saved = c.gpr(RSP);
        uint64_t rip = c.pop(i.opsize);
        uint16_t sel = static_cast<uint16_t>(c.pop(i.opsize));
        if ((sel & 3) != c.state().cpl) {
            c.gpr(RSP) = saved;
            c.unsupported("far RET to another privilege level is not implemented");
        }
        c.load_cs(sel, c.state().cpl);
        c.gpr(RSP) += extra;
        c.jump(rip);
        return;
    }
    uint64_t rip = c.pop(i.opsize);
    c.gpr(RSP) = (c.gpr(RSP) & ~c.stack_mask()) | ((c.gpr(RSP) + extra) & c.stack_mask());
    c.jump(rip);
}

void op_enter(Cpu& c, const DecodedInsn& i) {
    const uint64_t alloc = static_cast<uint64_t>(i.op[0].value) & 0xFFFF;
    const uint8_t level = static_cast<uint8_t>(i.op[1].value) & 31;
    const uint8_t sz = i.opsize;
    c.push(c.read_gpr(RBP, sz), sz);
    const uint64_t frame = c.gpr(RSP) & c.stack_mask();
    uint64_t rbp = c.gpr(RBP);
    for (uint8_t k = 1; k < level; ++k) {
        rbp -= sz;
        c.push(c.read_mem(c.seg_base(SS) + (rbp & c.stack_mask()), sz), sz);
    }
    if (level > 0) c.push(frame, sz);
    c.write_gpr(RBP, sz, frame);
    c.gpr(RSP) = (c.gpr(RSP) & ~c.stack_mask()) | ((c.gpr(RSP) - alloc) & c.stack_mask());
}

void op_leave(Cpu& c, const DecodedInsn& i) {
    const uint64_t mask = c.stack_mask();
    c.gpr(RSP) = (c.gpr(RSP) & ~mask) | (c.gpr(RBP) & mask);
    c.write_gpr(RBP, i.opsize, c.pop(i.opsize));
}

void op_int(Cpu& c, const DecodedInsn& i) {
    c.deliver_software_interrupt(static_cast<uint8_t>(i.op[0].value));
}
void op_int3(Cpu& c, const DecodedInsn&) {
    c.deliver_software_interrupt(VEC_BP);
}
// ICEBP: a trap-like #DB that ignores the gate's DPL (SDM vol. 3 §6.12.1.1).
void op_int1(Cpu& c, const DecodedInsn&) {
    c.icebp();
}

void op_iret(Cpu& c, const DecodedInsn& i) {
    c.iret(i.opsize);
}

}  // namespace

void register_branch(HandlerTable& t) {
    for (auto m : {ZYDIS_MNEMONIC_JO, ZYDIS_MNEMONIC_JNO, ZYDIS_MNEMONIC_JB, ZYDIS_MNEMONIC_JNB,
                   ZYDIS_MNEMONIC_JZ, ZYDIS_MNEMONIC_JNZ, ZYDIS_MNEMONIC_JBE, ZYDIS_MNEMONIC_JNBE,
                   ZYDIS_MNEMONIC_JS, ZYDIS_MNEMONIC_JNS, ZYDIS_MNEMONIC_JP, ZYDIS_MNEMONIC_JNP,
                   ZYDIS_MNEMONIC_JL, ZYDIS_MNEMONIC_JNL, ZYDIS_MNEMONIC_JLE, ZYDIS_MNEMONIC_JNLE})
        t[m] = {op_jcc, true};
    for (auto m : {ZYDIS_MNEMONIC_JCXZ, ZYDIS_MNEMONIC_JECXZ, ZYDIS_MNEMONIC_JRCXZ})
        t[m] = {op_jrcxz, true};
    t[ZYDIS_MNEMONIC_LOOP] = {op_loop<0>, true};
    t[ZYDIS_MNEMONIC_LOOPE] = {op_loop<1>, true};
    t[ZYDIS_MNEMONIC_LOOPNE] = {op_loop<2>, true};
    t[ZYDIS_MNEMONIC_JMP] = {op_jmp, true};
    t[ZYDIS_MNEMONIC_CALL] = {op_call, true};
    t[ZYDIS_MNEMONIC_RET] = {op_ret, true};
    t[ZYDIS_MNEMONIC_ENTER].fn = op_enter;
    t[ZYDIS_MNEMONIC_LEAVE].fn = op_leave;
    t[ZYDIS_MNEMONIC_INT] = {op_int, true};
    t[ZYDIS_MNEMONIC_INT3] = {op_int3, true};
    t[ZYDIS_MNEMONIC_INT1] = {op_int1, true};
    for (auto m : {ZYDIS_MNEMONIC_IRET, ZYDIS_MNEMONIC_IRETD, ZYDIS_MNEMONIC_IRETQ})
        t[m] = {op_iret, true};
}

}  // namespace softkvm::cpu
