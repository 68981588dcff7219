// x87 arithmetic, compares, classification and transcendental instructions (SDM vol. 1
// §8.3, vol. 2): each numeric operation runs on the host x87 (see x87.h); the stack,
// stack faults, flags, masks and the condition codes are applied here.
#include "cpu/exec/handlers.h"
#include "cpu/exec/x87.h"

namespace softkvm::cpu::x87 {
namespace {

// Host operation shapes. `a` is the guest's ST(0) operand, `b` the other one; the host
// stack holds b below a, so ST(0) = a and ST(1) = b when `text` runs. The host starts from
// an environment of its own (FLDENV, see HostEnv): the guest's control word with invalid,
// denormal and divide-by-zero masked (those are pre-computation exceptions, handled by
// the model before anything is written; overflow and underflow stay as the guest has
// them, so that an unmasked one gives the SDM's exponent-adjusted result), no exception
// flag set, and the guest's condition codes. The pending host exception is cleared
// (FNCLEX) before the next waiting host instruction.
//
// The condition codes are the guest's because an operation may leave some of them as
// they were: FPREM and FPREM1 with a NaN or an invalid operand clear C1 and C2 and keep
// C0 and C3, as the silicon shows (fp_test.cc); a host left with the codes of its last
// operation, whatever guest or CPU ran it, would hand those to the guest instead.
#define SKVM_X87_PRE(cwv)                                         \
    HostResult h;                                                 \
    uint16_t saved;                                               \
    const HostEnv env = host_env(static_cast<uint16_t>(cwv), sw); \
    const Raw ra = raw(a);
#define SKVM_X87_IN [a] "m"(ra), [env] "m"(env)
#define SKVM_X87_OUT [r0] "=m"(h.r0), [r1] "=m"(h.r1), [sw] "=m"(h.sw), [sv] "=m"(saved)
#define SKVM_X87_ENTER "fnstcw %[sv]\n\tfnclex\n\tfldenv %[env]\n\t"
#define SKVM_X87_LEAVE "\n\tfnstsw %[sw]\n\tfnclex\n\tfldcw %[sv]\n\t"

// a OP b, leaving the result in ST(0) and b in ST(1).
#define SKVM_X87_BIN2(name, text, cwx)                                                   \
    HostResult name(const F80& a, const F80& b, uint16_t cw, uint16_t sw) {              \
        SKVM_X87_PRE(cw | (cwx))                                                         \
        const Raw rb = raw(b);                                                           \
        __asm__ volatile(SKVM_X87_ENTER "fldt %[b]\n\tfldt %[a]\n\t" text SKVM_X87_LEAVE \
                                        "fstpt %[r0]\n\tfstp %%st(0)"                    \
                         : SKVM_X87_OUT                                                  \
                         : SKVM_X87_IN, [b] "m"(rb)                                      \
                         : "st", "st(1)");                                               \
        return h;                                                                        \
    }
// An operation that pops: one result.
#define SKVM_X87_BIN1(name, text)                                                        \
    HostResult name(const F80& a, const F80& b, uint16_t cw, uint16_t sw) {              \
        SKVM_X87_PRE(cw | 7)                                                             \
        const Raw rb = raw(b);                                                           \
        __asm__ volatile(SKVM_X87_ENTER "fldt %[b]\n\tfldt %[a]\n\t" text SKVM_X87_LEAVE \
                                        "fstpt %[r0]"                                    \
                         : SKVM_X87_OUT                                                  \
                         : SKVM_X87_IN, [b] "m"(rb)                                      \
                         : "st", "st(1)");                                               \
        return h;                                                                        \
    }
// One operand, one result.
#define SKVM_X87_UN1(name, text)                                                          \
    HostResult name(const F80& a, uint16_t cw, uint16_t sw) {                             \
        SKVM_X87_PRE(cw | 7)                                                              \
        __asm__ volatile(SKVM_X87_ENTER "fldt %[a]\n\t" text SKVM_X87_LEAVE "fstpt %[r0]" \
                         : SKVM_X87_OUT:SKVM_X87_IN                                       \
                         : "st");                                                         \
        return h;                                                                         \
    }
// One operand, two results (r0 the new ST(0), r1 the one below).
#define SKVM_X87_UN2(name, text)                                            \
    HostResult name(const F80& a, uint16_t cw, uint16_t sw) {               \
        SKVM_X87_PRE(cw | 7)                                                \
        __asm__ volatile(SKVM_X87_ENTER "fldt %[a]\n\t" text SKVM_X87_LEAVE \
                                        "fstpt %[r0]\n\tfstpt %[r1]"        \
                         : SKVM_X87_OUT:SKVM_X87_IN                         \
                         : "st", "st(1)");                                  \
        return h;                                                           \
    }

// ST(0) op a memory operand in its own format (m32/m64 real, m16/m32 integer), as the
// silicon converts and flags it.
#define SKVM_X87_MEM(name, text, cwx)                                                             \
    HostResult name(const F80& a, uint64_t mv, uint16_t cw, uint16_t sw) {                        \
        SKVM_X87_PRE(cw | (cwx))                                                                  \
        __asm__ volatile(SKVM_X87_ENTER "fldt %[a]\n\t" text " %[m]" SKVM_X87_LEAVE "fstpt %[r0]" \
                         : SKVM_X87_OUT                                                           \
                         : SKVM_X87_IN, [m] "m"(mv)                                               \
                         : "st");                                                                 \
        return h;                                                                                 \
    }
SKVM_X87_MEM(h_fadds, "fadds", 7)
SKVM_X87_MEM(h_faddl, "faddl", 7)
SKVM_X87_MEM(h_fiadds, "fiadds", 7)
SKVM_X87_MEM(h_fiaddl, "fiaddl", 7)
SKVM_X87_MEM(h_fsubs, "fsubs", 7)
SKVM_X87_MEM(h_fsubl, "fsubl", 7)
SKVM_X87_MEM(h_fisubs, "fisubs", 7)
SKVM_X87_MEM(h_fisubl, "fisubl", 7)
SKVM_X87_MEM(h_fsubrs, "fsubrs", 7)
SKVM_X87_MEM(h_fsubrl, "fsubrl", 7)
SKVM_X87_MEM(h_fisubrs, "fisubrs", 7)
SKVM_X87_MEM(h_fisubrl, "fisubrl", 7)
SKVM_X87_MEM(h_fmuls, "fmuls", 7)
SKVM_X87_MEM(h_fmull, "fmull", 7)
SKVM_X87_MEM(h_fimuls, "fimuls", 7)
SKVM_X87_MEM(h_fimull, "fimull", 7)
SKVM_X87_MEM(h_fdivs, "fdivs", 7)
SKVM_X87_MEM(h_fdivl, "fdivl", 7)
SKVM_X87_MEM(h_fidivs, "fidivs", 7)
SKVM_X87_MEM(h_fidivl, "fidivl", 7)
SKVM_X87_MEM(h_fdivrs, "fdivrs", 7)
SKVM_X87_MEM(h_fdivrl, "fdivrl", 7)
SKVM_X87_MEM(h_fidivrs, "fidivrs", 7)
SKVM_X87_MEM(h_fidivrl, "fidivrl", 7)
SKVM_X87_MEM(h_fcoms, "fcoms", kFlags)
SKVM_X87_MEM(h_fcoml, "fcoml", kFlags)
SKVM_X87_MEM(h_ficoms, "ficoms", kFlags)
SKVM_X87_MEM(h_ficoml, "ficoml", kFlags)

SKVM_X87_BIN2(h_add, "fadd %%st(1), %%st", 7)
SKVM_X87_BIN2(h_sub, "fsub %%st(1), %%st", 7)
SKVM_X87_BIN2(h_mul, "fmul %%st(1), %%st", 7)
SKVM_X87_BIN2(h_div, "fdiv %%st(1), %%st", 7)
SKVM_X87_BIN2(h_fscale, "fscale", 7)
SKVM_X87_BIN2(h_fprem, "fprem", 7)
SKVM_X87_BIN2(h_fprem1, "fprem1", 7)
SKVM_X87_BIN2(h_fcom, "fcom %%st(1)", kFlags)
SKVM_X87_BIN2(h_fucom, "fucom %%st(1)", kFlags)
SKVM_X87_BIN1(h_fpatan, "fpatan")
SKVM_X87_BIN1(h_fyl2x, "fyl2x")
SKVM_X87_BIN1(h_fyl2xp1, "fyl2xp1")
SKVM_X87_UN1(h_fsqrt, "fsqrt")
SKVM_X87_UN1(h_frndint, "frndint")
SKVM_X87_UN1(h_fsin, "fsin")
SKVM_X87_UN1(h_fcos, "fcos")
SKVM_X87_UN1(h_f2xm1, "f2xm1")
SKVM_X87_UN2(h_fsincos, "fsincos")
SKVM_X87_UN2(h_fptan, "fptan")
SKVM_X87_UN2(h_fxtract, "fxtract")

using Bin = HostResult (*)(const F80&, const F80&, uint16_t, uint16_t);
using Un = HostResult (*)(const F80&, uint16_t, uint16_t);

// Takes a host operation's flags: false (nothing written, no pop) when an unmasked
// pre-computation exception (IE, DE, ZE) ends the instruction (SDM vol. 1 §8.5).
bool take(CpuState& s, uint16_t sw) {
    const uint16_t f = sw & kFlags;
    if (f & ~s.fcw & (kIE | kDE | kZE)) {
        raise(s, f & (kIE | kDE | kZE));
        return false;
    }
    raise(s, f);
    set_cc(s, kC1, sw);
    return true;
}

using Mem = HostResult (*)(const F80&, uint64_t, uint16_t, uint16_t);
// The host operation of a memory form: row add sub subr mul div divr com, column m32 real,
// m64 real, m16 integer, m32 integer.
constexpr Mem kMemOps[7][4] = {
    {h_fadds, h_faddl, h_fiadds, h_fiaddl},     {h_fsubs, h_fsubl, h_fisubs, h_fisubl},
    {h_fsubrs, h_fsubrl, h_fisubrs, h_fisubrl}, {h_fmuls, h_fmull, h_fimuls, h_fimull},
    {h_fdivs, h_fdivl, h_fidivs, h_fidivl},     {h_fdivrs, h_fdivrl, h_fidivrs, h_fidivrl},
    {h_fcoms, h_fcoml, h_ficoms, h_ficoml},
};
Mem mem_op(int row, bool integer, uint8_t size) {
    return kMemOps[row][integer ? (size == 2 ? 2 : 3) : (size == 4 ? 0 : 1)];
}

// Register pair of a two-operand form: the destination and source ST indexes.
void operands(const DecodedInsn& i, int& d, int& src) {
    if (i.nops >= 2) {
        d = i.op[0].reg, src = i.op[1].reg;
    } else if (i.nops == 1) {  // a lone ST(i): ST(0) op ST(i)
        d = 0, src = i.op[0].reg;
    } else {
        d = 1, src = 0;  // FADDP with no operands: ST(1) = ST(1) op ST(0)
    }
}

enum class A { Add, Sub, SubR, Mul, Div, DivR };

// FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR in all forms (+P: pop; FI*: integer memory source).
template <A K, bool Pop, bool Integer>
void op_arith(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const Operand& o = i.op[0];
    int d = 0, src = -1;
    uint64_t bits = 0;
    if (o.kind == OpKind::Mem)
        bits = c.read_mem(c.linear(o), o.size);
    else
        operands(i, d, src);
    if (is_empty(s, d) || (src >= 0 && is_empty(s, src))) {
        if (!underflow(s)) return;
        reg(s, d) = kIndefinite, s.ftw |= 1 << phys(s, d);
        if (Pop) pop(s);
        return;
    }
    HostResult h;
    if (src < 0) {
        h = mem_op(static_cast<int>(K), Integer, o.size)(reg(s, 0), bits, s.fcw, s.fsw);
    } else {
        const bool rev = K == A::SubR || K == A::DivR;
        const F80& a = rev ? reg(s, src) : reg(s, d);
        const F80& b = rev ? reg(s, d) : reg(s, src);
        const Bin op = K == A::Add                     ? h_add
                       : (K == A::Sub || K == A::SubR) ? h_sub
                       : K == A::Mul                   ? h_mul
                                                       : h_div;
        h = op(a, b, s.fcw, s.fsw);
    }
    if (!take(s, h.sw)) return;
    reg(s, d) = val(h.r0);
    if (Pop) pop(s);
}

// FCOM/FCOMP/FCOMPP/FUCOM*/FICOM*/FTST: C3 C2 C0 = 000 (>), 001 (<), 100 (=), 111
// (unordered); FCOMI/FUCOMI(P): ZF PF CF likewise, OF SF AF cleared.
template <bool Unordered, int Pops, bool Eflags, bool Integer>
void op_fcom(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    int other = 1;
    F80 b{};
    uint64_t bits = 0;
    const bool mem = i.nops && i.op[0].kind == OpKind::Mem;
    if (mem)
        bits = c.read_mem(c.linear(i.op[0]), i.op[0].size), other = -1;
    else if (i.nops == 2)
        other = i.op[1].reg;
    else if (i.nops == 1)
        other = i.op[0].reg;
    if (i.mnemonic == ZYDIS_MNEMONIC_FTST) other = -1;  // against +0.0
    uint16_t cc = kC3 | kC2 | kC0;
    bool stop = false;
    set_cc(s, kC1, 0);
    if (is_empty(s, 0) || (other >= 0 && is_empty(s, other))) {
        if (!underflow(s)) return;
    } else {
        if (other >= 0) b = reg(s, other);
        const HostResult h = mem ? mem_op(6, Integer, i.op[0].size)(reg(s, 0), bits, s.fcw, s.fsw)
                                 : (Unordered ? h_fucom : h_fcom)(reg(s, 0), b, s.fcw, s.fsw);
        const uint16_t f = h.sw & kFlags;
        // An unmasked IE or DE stops the pops; the silicon sets the codes all the same.
        stop = raise(s, f) & (kIE | kDE);
        cc = h.sw & (kC3 | kC2 | kC0);
    }
    if (Eflags)
        c.set_arith_flags(((cc & kC3) ? FLAG_ZF : 0) | ((cc & kC2) ? FLAG_PF : 0) |
                          ((cc & kC0) ? FLAG_CF : 0));
    else
        set_cc(s, kC3 | kC2 | kC0, cc);
    if (!stop)
        for (int k = 0; k < Pops; ++k) pop(s);
}

// FXAM: the class of ST(0) in C3 C2 C0 and its sign in C1 (SDM vol. 2 FXAM).
void op_fxam(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const F80& v = reg(s, 0);
    const unsigned e = v.se & 0x7FFF;
    const bool j = v.mant >> 63;
    uint16_t cc;
    if (is_empty(s, 0))
        cc = kC3 | kC0;
    else if (e == 0x7FFF)
        cc = !j ? 0 : (v.mant << 1) ? kC0 : kC2 | kC0;  // unsupported, NaN, infinity
    else if (e == 0)
        cc = v.mant == 0 ? kC3 : kC3 | kC2;  // zero, denormal (pseudo-denormal too)
    else
        cc = j ? kC2 : 0;  // normal, or an unnormal (unsupported)
    set_cc(s, kC3 | kC2 | kC1 | kC0, cc | ((v.se & 0x8000) ? kC1 : 0));
}

// One-operand operations on ST(0): FSQRT FRNDINT FSIN FCOS F2XM1. FSIN/FCOS leave an
// operand outside +-2^63 in place and set C2 (the host does the same).
template <Un Op, bool Trig>
void op_unary(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    if (is_empty(s, 0)) {
        if (!underflow(s)) return;
        reg(s, 0) = kIndefinite, s.ftw |= 1 << phys(s, 0);
        return;
    }
    const HostResult h = Op(reg(s, 0), s.fcw, s.fsw);
    if (!take(s, h.sw)) return;
    if (Trig) set_cc(s, kC2, h.sw);
    reg(s, 0) = val(h.r0);
}

// FSINCOS, FPTAN, FXTRACT: ST(0) becomes the second result and the first is pushed.
template <Un Op, bool Trig>
void op_unary2(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const bool full = (s.ftw >> ((top(s) - 1) & 7)) & 1;
    if (is_empty(s, 0) || full) {
        if (full) set_cc(s, kC1, kC1);
        if (raise(s, kIE | kSF)) return;
        if (!full) set_cc(s, kC1, 0);
        reg(s, 0) = kIndefinite, s.ftw |= 1 << phys(s, 0);
        push(s, kIndefinite);
        return;
    }
    const F80 v = reg(s, 0);
    if (Trig && (v.se & 0x7FFF) != 0x7FFF && (v.se & 0x7FFF) >= 16383 + 63) {
        set_cc(s, kC2 | kC1, kC2);  // out of range: operand unchanged
        return;
    }
    const HostResult h = Op(v, s.fcw, s.fsw);
    if (!take(s, h.sw)) return;
    if (Trig) set_cc(s, kC2, 0);
    reg(s, 0) = val(h.r1);
    push(s, val(h.r0));
}

// FSCALE, FPREM, FPREM1: ST(0) = ST(0) op ST(1); FPREM's C0 C3 C1 (quotient bits) and C2
// (incomplete) come from the host.
template <Bin Op, bool Rem>
void op_st0_st1(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    if (is_empty(s, 0) || is_empty(s, 1)) {
        if (!underflow(s)) return;
        reg(s, 0) = kIndefinite, s.ftw |= 1 << phys(s, 0);
        return;
    }
    const HostResult h = Op(reg(s, 0), reg(s, 1), s.fcw, s.fsw);
    if (!take(s, h.sw)) return;
    if (Rem) set_cc(s, kC0 | kC1 | kC2 | kC3, h.sw);
    reg(s, 0) = val(h.r0);
}

// FPATAN, FYL2X, FYL2XP1: ST(1) = f(ST(1), ST(0)), then pop.
template <Bin Op>
void op_st1_pop(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    if (is_empty(s, 0) || is_empty(s, 1)) {
        if (!underflow(s)) return;
        reg(s, 1) = kIndefinite, s.ftw |= 1 << phys(s, 1);
        pop(s);
        return;
    }
    const HostResult h = Op(reg(s, 0), reg(s, 1), s.fcw, s.fsw);
    if (!take(s, h.sw)) return;
    reg(s, 1) = val(h.r0);
    pop(s);
}

}  // namespace
}  // namespace softkvm::cpu::x87

namespace softkvm::cpu {

void register_x87_arith(HandlerTable& t) {
    using namespace x87;  // NOLINT
    t[ZYDIS_MNEMONIC_FADD].fn = op_arith<A::Add, false, false>;
    t[ZYDIS_MNEMONIC_FADDP].fn = op_arith<A::Add, true, false>;
    t[ZYDIS_MNEMONIC_FIADD].fn = op_arith<A::Add, false, true>;
    t[ZYDIS_MNEMONIC_FSUB].fn = op_arith<A::Sub, false, false>;
    t[ZYDIS_MNEMONIC_FSUBP].fn = op_arith<A::Sub, true, false>;
    t[ZYDIS_MNEMONIC_FISUB].fn = op_arith<A::Sub, false, true>;
    t[ZYDIS_MNEMONIC_FSUBR].fn = op_arith<A::SubR, false, false>;
    t[ZYDIS_MNEMONIC_FSUBRP].fn = op_arith<A::SubR, true, false>;
    t[ZYDIS_MNEMONIC_FISUBR].fn = op_arith<A::SubR, false, true>;
    t[ZYDIS_MNEMONIC_FMUL].fn = op_arith<A::Mul, false, false>;
    t[ZYDIS_MNEMONIC_FMULP].fn = op_arith<A::Mul, true, false>;
    t[ZYDIS_MNEMONIC_FIMUL].fn = op_arith<A::Mul, false, true>;
    t[ZYDIS_MNEMONIC_FDIV].fn = op_arith<A::Div, false, false>;
    t[ZYDIS_MNEMONIC_FDIVP].fn = op_arith<A::Div, true, false>;
    t[ZYDIS_MNEMONIC_FIDIV].fn = op_arith<A::Div, false, true>;
    t[ZYDIS_MNEMONIC_FDIVR].fn = op_arith<A::DivR, false, false>;
    t[ZYDIS_MNEMONIC_FDIVRP].fn = op_arith<A::DivR, true, false>;
    t[ZYDIS_MNEMONIC_FIDIVR].fn = op_arith<A::DivR, false, true>;
    t[ZYDIS_MNEMONIC_FCOM].fn = op_fcom<false, 0, false, false>;
    t[ZYDIS_MNEMONIC_FCOMP].fn = op_fcom<false, 1, false, false>;
    t[ZYDIS_MNEMONIC_FCOMPP].fn = op_fcom<false, 2, false, false>;
    t[ZYDIS_MNEMONIC_FUCOM].fn = op_fcom<true, 0, false, false>;
    t[ZYDIS_MNEMONIC_FUCOMP].fn = op_fcom<true, 1, false, false>;
    t[ZYDIS_MNEMONIC_FUCOMPP].fn = op_fcom<true, 2, false, false>;
    t[ZYDIS_MNEMONIC_FICOM].fn = op_fcom<false, 0, false, true>;
    t[ZYDIS_MNEMONIC_FICOMP].fn = op_fcom<false, 1, false, true>;
    t[ZYDIS_MNEMONIC_FTST].fn = op_fcom<false, 0, false, false>;
    t[ZYDIS_MNEMONIC_FCOMI].fn = op_fcom<false, 0, true, false>;
    t[ZYDIS_MNEMONIC_FCOMIP].fn = op_fcom<false, 1, true, false>;
    t[ZYDIS_MNEMONIC_FUCOMI].fn = op_fcom<true, 0, true, false>;
    t[ZYDIS_MNEMONIC_FUCOMIP].fn = op_fcom<true, 1, true, false>;
    t[ZYDIS_MNEMONIC_FXAM].fn = op_fxam;
    t[ZYDIS_MNEMONIC_FSQRT].fn = op_unary<h_fsqrt, false>;
    t[ZYDIS_MNEMONIC_FRNDINT].fn = op_unary<h_frndint, false>;
    t[ZYDIS_MNEMONIC_FSIN].fn = op_unary<h_fsin, true>;
    t[ZYDIS_MNEMONIC_FCOS].fn = op_unary<h_fcos, true>;
    t[ZYDIS_MNEMONIC_F2XM1].fn = op_unary<h_f2xm1, false>;
    t[ZYDIS_MNEMONIC_FSINCOS].fn = op_unary2<h_fsincos, true>;
    t[ZYDIS_MNEMONIC_FPTAN].fn = op_unary2<h_fptan, true>;
    t[ZYDIS_MNEMONIC_FXTRACT].fn = op_unary2<h_fxtract, false>;
    t[ZYDIS_MNEMONIC_FSCALE].fn = op_st0_st1<h_fscale, false>;
    t[ZYDIS_MNEMONIC_FPREM].fn = op_st0_st1<h_fprem, true>;
    t[ZYDIS_MNEMONIC_FPREM1].fn = op_st0_st1<h_fprem1, true>;
    t[ZYDIS_MNEMONIC_FPATAN].fn = op_st1_pop<h_fpatan>;
    t[ZYDIS_MNEMONIC_FYL2X].fn = op_st1_pop<h_fyl2x>;
    t[ZYDIS_MNEMONIC_FYL2XP1].fn = op_st1_pop<h_fyl2xp1>;
}

}  // namespace softkvm::cpu
