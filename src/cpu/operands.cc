// Operand access for instruction handlers: registers with x86 partial-write rules,
// effective addresses, the stack, and condition codes.
#include "cpu/cpu.h"

namespace softkvm::cpu {

uint64_t Cpu::effective_address(const Operand& o) const {
    uint64_t ea = static_cast<uint64_t>(o.value);
    if (o.reg == kRegRip)
        ea += next_rip_;
    else if (o.reg != kNoReg)
        ea += s_.gpr[o.reg];
    if (o.index != kNoReg) ea += s_.gpr[o.index] << o.scale_shift;
    return o.addrsize >= 8 ? ea : ea & size_mask(o.addrsize);
}

uint64_t Cpu::read_op_slow(const Operand& o) {
    switch (o.kind) {
        case OpKind::Gpr:
            return read_gpr(o.reg, o.size, o.hi8);
        case OpKind::Imm:
            return static_cast<uint64_t>(o.value);
        case OpKind::Mem:
            return read_mem(linear(o), o.size);
        case OpKind::Seg:
            return s_.seg[o.reg].selector;
        default:
            unsupported("operand kind not readable by this instruction");
    }
}

void Cpu::write_op_slow(const Operand& o, uint64_t v) {
    switch (o.kind) {
        case OpKind::Gpr:
            write_gpr(o.reg, o.size, v, o.hi8);
            return;
        case OpKind::Mem:
            write_mem(linear(o), o.size, v & size_mask(o.size));
            return;
        case OpKind::Seg:
            load_segment(static_cast<SegReg>(o.reg), static_cast<uint16_t>(v));
            // MOV SS blocks interrupts and debug traps until after the next instruction.
            if (o.reg == SS) stop_flags_ |= kStopShadow | kStopMovSs;
            return;
        default:
            unsupported("operand kind not writable by this instruction");
    }
}

uint64_t Cpu::stack_mask() const {
    uint8_t sz = stack_size();
    return sz == 8 ? ~0ull : sz == 4 ? 0xFFFFFFFFull : 0xFFFFull;
}

void Cpu::push(uint64_t v, uint8_t size) {
    last_seg_ = SS;
    uint64_t mask = stack_mask();
    uint64_t rsp = (s_.gpr[RSP] - size) & mask;
    write_mem(seg_base_[SS] + rsp, size, v & size_mask(size));
    s_.gpr[RSP] = (s_.gpr[RSP] & ~mask) | rsp;
}

uint64_t Cpu::pop(uint8_t size) {
    last_seg_ = SS;
    uint64_t mask = stack_mask();
    uint64_t rsp = s_.gpr[RSP] & mask;
    uint64_t v = read_mem(seg_base_[SS] + rsp, size);
    s_.gpr[RSP] = (s_.gpr[RSP] & ~mask) | ((rsp + size) & mask);
    return v;
}

bool Cpu::cond(uint8_t cc) const {
    const uint64_t f = s_.rflags;
    bool r;
    switch (cc >> 1) {
        case 0:
            r = f & FLAG_OF;
            break;  // O
        case 1:
            r = f & FLAG_CF;
            break;  // B
        case 2:
            r = f & FLAG_ZF;
            break;  // Z
        case 3:
            r = f & (FLAG_CF | FLAG_ZF);
            break;  // BE
        case 4:
            r = f & FLAG_SF;
            break;  // S
        case 5:
            r = f & FLAG_PF;
            break;  // P
        case 6:
            r = !(f & FLAG_SF) != !(f & FLAG_OF);
            break;  // L
        default:
            r = (f & FLAG_ZF) || (!(f & FLAG_SF) != !(f & FLAG_OF));
            break;  // LE
    }
    return (cc & 1) ? !r : r;
}

}  // namespace softkvm::cpu
