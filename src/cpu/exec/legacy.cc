// Legacy instructions (SDM vol. 2): the decimal adjustments AAA AAS AAM AAD DAA DAS,
// PUSHA/PUSHAD POPA/POPAD, BOUND, INTO, ARPL and the far-pointer loads LDS LES, which the
// decoder refuses in 64-bit mode (#UD there, as on hardware); XLAT and the far-pointer
// loads LSS LFS LGS, valid in every mode.
//
// Status flags the SDM leaves undefined are, in softkvm, those of a logical operation on
// the 8-bit result in AL: SF, ZF and PF from AL, OF (and for AAM/AAD also AF and CF)
// clear. docs/architecture.md "Legacy instructions".
#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {

namespace {

void set_status(Cpu& c, uint64_t f) {
    CpuState& s = c.state();
    s.rflags = (s.rflags & ~FLAGS_ARITH) | f;
}

// AAA (Sub false) and AAS: an unpacked-BCD adjustment of AX after an addition or a
// subtraction of two digits: AX +/- 0x106 (the carry or borrow of AL reaches AH) when
// AL's low nibble is above 9 or AF is set; AL keeps its low nibble.
template <bool Sub>
void op_aaa(Cpu& c, const DecodedInsn&) {
    uint64_t ax = c.read_gpr(RAX, 2);
    const bool adjust = (ax & 0xF) > 9 || (c.flags() & FLAG_AF);
    if (adjust) ax = (Sub ? ax - 0x106 : ax + 0x106) & 0xFFFF;
    ax &= 0xFF0F;
    c.write_gpr(RAX, 2, ax);
    set_status(c, flags_zsp(ax & 0xFF, 1) | (adjust ? FLAG_AF | FLAG_CF : 0));
}

// DAA (Sub false) and DAS: a packed-BCD adjustment of AL after an addition or a
// subtraction.
template <bool Sub>
void op_daa(Cpu& c, const DecodedInsn&) {
    const uint64_t old_al = c.read_gpr(RAX, 1);
    const bool old_cf = c.flags() & FLAG_CF;
    uint64_t al = old_al;
    const bool af = (al & 0xF) > 9 || (c.flags() & FLAG_AF);
    if (af) al = (Sub ? al - 6 : al + 6) & 0xFF;
    // CF: the carry or borrow of the low digit's step (for DAA only possible when AL is
    // above 0x99 anyway), then set when AL was above 0x99 or CF was set. (DAA's second
    // step clears CF otherwise, DAS's keeps the borrow: SDM vol. 2 "DAA", "DAS".)
    const bool low_carry = af && (Sub ? old_al < 6 : old_al > 0xF9);
    const bool high = old_al > 0x99 || old_cf;
    const bool cf = high || low_carry;
    if (high) al = (Sub ? al - 0x60 : al + 0x60) & 0xFF;
    c.write_gpr(RAX, 1, al);
    set_status(c, flags_zsp(al, 1) | (af ? FLAG_AF : 0) | (cf ? FLAG_CF : 0));
}

// The base of AAM/AAD: the immediate byte (10 in the plain D4 0A / D5 0A forms).
uint64_t bcd_base(const DecodedInsn& i) {
    return i.nops >= 1 && i.op[0].kind == OpKind::Imm ? static_cast<uint64_t>(i.op[0].value) & 0xFF
                                                      : 10;
}

// AAM: AH = AL / base, AL = AL mod base; #DE for base 0.
void op_aam(Cpu& c, const DecodedInsn& i) {
    const uint64_t base = bcd_base(i);
    if (base == 0) c.fault(VEC_DE);
    const uint64_t al = c.read_gpr(RAX, 1);
    const uint64_t r = al % base;
    c.write_gpr(RAX, 2, (al / base) << 8 | r);
    set_status(c, flags_zsp(r, 1));
}

// AAD: AL = AL + AH * base (8 bits), AH = 0.
void op_aad(Cpu& c, const DecodedInsn& i) {
    const uint64_t ax = c.read_gpr(RAX, 2);
    const uint64_t al = ((ax & 0xFF) + (ax >> 8) * bcd_base(i)) & 0xFF;
    c.write_gpr(RAX, 2, al);
    set_status(c, flags_zsp(al, 1));
}

// PUSHA/PUSHAD: AX/EAX, CX, DX, BX, the stack pointer before the instruction, BP, SI,
// DI. All or nothing: a fault on a later slot leaves the stack pointer as it was.
void op_pusha(Cpu& c, const DecodedInsn& i) {
    const uint64_t saved = c.gpr(RSP);
    try {
        for (uint8_t r : {RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI})
            c.push(r == RSP ? saved : c.gpr(r), i.opsize);
    } catch (...) {
        c.gpr(RSP) = saved;
        throw;
    }
}

// POPA/POPAD: the reverse, skipping the stack pointer's slot. The registers change only
// when every slot could be read.
void op_popa(Cpu& c, const DecodedInsn& i) {
    const uint64_t saved = c.gpr(RSP);
    uint64_t v[8];
    try {
        for (uint64_t& x : v) x = c.pop(i.opsize);
    } catch (...) {
        c.gpr(RSP) = saved;
        throw;
    }
    const uint8_t order[8] = {RDI, RSI, RBP, RSP, RBX, RDX, RCX, RAX};
    for (int k = 0; k < 8; ++k)
        if (order[k] != RSP) c.write_gpr(order[k], i.opsize, v[k]);
}

// BOUND r, m: #BR (a fault) unless lower <= r <= upper, signed, the two bounds at m and
// m + the operand size.
void op_bound(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.opsize;
    const int64_t index = sign_extend(c.read_gpr(i.op[0].reg, size), size);
    const uint64_t lin = c.linear(i.op[1]);
    const int64_t lower = sign_extend(c.read_mem(lin, size), size);
    const int64_t upper = sign_extend(c.read_mem(lin + size, size), size);
    if (index < lower || index > upper) c.fault(VEC_BR);
}

// INTO: #OF as a trap (INT 4) when OF is set.
void op_into(Cpu& c, const DecodedInsn&) {
    if (c.flags() & FLAG_OF) c.deliver_software_interrupt(VEC_OF);
}

// ARPL r/m16, r16: raises the destination selector's RPL to the source's (ZF set), or
// leaves it (ZF clear).
void op_arpl(Cpu& c, const DecodedInsn& i) {
    const uint64_t dest = c.read_op(i, 0);
    const uint64_t src = c.read_op(i, 1);
    CpuState& s = c.state();
    if ((dest & 3) < (src & 3)) {
        c.write_op(i, 0, (dest & ~3ull) | (src & 3));
        s.rflags |= FLAG_ZF;
    } else {
        s.rflags &= ~FLAG_ZF;
    }
}

// XLAT: AL = the byte at [rBX + AL] (address size wraps; DS unless overridden).
void op_xlat(Cpu& c, const DecodedInsn& i) {
    uint8_t seg = DS;
    for (uint8_t k = 0; k < i.nops; ++k)
        if (i.op[k].kind == OpKind::Mem) seg = i.op[k].seg;
    const uint64_t off = (c.read_gpr(RBX, i.addrsize) + c.read_gpr(RAX, 1)) & size_mask(i.addrsize);
    c.note_segment(seg);
    c.write_gpr(RAX, 1, c.read_mem(c.seg_base(seg) + off, 1));
}

// LDS LES LSS LFS LGS r, m16:16/32/64: the offset at m, the selector after it; the
// segment register is loaded (and may fault) before the general register changes.
template <SegReg Seg>
void op_load_far(Cpu& c, const DecodedInsn& i) {
    const FarPointer p = read_far_pointer(c, i, 1, i.opsize);
    c.load_segment(Seg, p.selector);
    c.write_gpr(i.op[0].reg, i.opsize, p.offset);
}

}  // namespace

void register_legacy(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_AAA].fn = op_aaa<false>;
    t[ZYDIS_MNEMONIC_AAS].fn = op_aaa<true>;
    t[ZYDIS_MNEMONIC_DAA].fn = op_daa<false>;
    t[ZYDIS_MNEMONIC_DAS].fn = op_daa<true>;
    t[ZYDIS_MNEMONIC_AAM].fn = op_aam;
    t[ZYDIS_MNEMONIC_AAD].fn = op_aad;
    for (auto m : {ZYDIS_MNEMONIC_PUSHA, ZYDIS_MNEMONIC_PUSHAD}) t[m].fn = op_pusha;
    for (auto m : {ZYDIS_MNEMONIC_POPA, ZYDIS_MNEMONIC_POPAD}) t[m].fn = op_popa;
    t[ZYDIS_MNEMONIC_BOUND].fn = op_bound;
    t[ZYDIS_MNEMONIC_INTO] = {op_into, true};
    t[ZYDIS_MNEMONIC_ARPL].fn = op_arpl;
    t[ZYDIS_MNEMONIC_XLAT].fn = op_xlat;
    // A new segment base or stack size: the block ends after it.
    t[ZYDIS_MNEMONIC_LDS] = {op_load_far<DS>, true};
    t[ZYDIS_MNEMONIC_LES] = {op_load_far<ES>, true};
    t[ZYDIS_MNEMONIC_LSS] = {op_load_far<SS>, true};
    t[ZYDIS_MNEMONIC_LFS] = {op_load_far<FS>, true};
    t[ZYDIS_MNEMONIC_LGS] = {op_load_far<GS>, true};
}

}  // namespace softkvm::cpu
