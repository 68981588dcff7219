// x87 FPU: the stack, exceptions and their delivery, data transfer (FLD/FST/FILD/FIST/
// FISTTP, constants, FXCH, FCMOVcc), control (FLDCW/FNSTCW/FNSTSW/FNCLEX/FNINIT/FWAIT,
// FFREE, FINCSTP/FDECSTP, EMMS) and the FNSTENV/FLDENV/FNSAVE/FRSTOR and FXSAVE images
// (SDM vol. 1 ch. 8, vol. 2). Arithmetic is in x87_arith.cc; see x87.h for the approach.
#include "cpu/exec/x87.h"

#include "cpu/exec/handlers.h"
#include "cpu/exec/mmx.h"

namespace softkvm::cpu::x87 {

void begin(Cpu& c, const DecodedInsn& i, bool control, bool waiting) {
    CpuState& s = c.state();
    if (s.cr0 & (CR0_EM | CR0_TS)) c.fault(VEC_NM);
    if (waiting && (s.fsw & kES) && (s.cr0 & CR0_NE)) c.fault(VEC_MF);
    if (control) return;
    s.fop = i.fop & 0x7FF;
    s.fip = s.rip;
    s.fcs = s.seg[CS].selector;
    for (int k = 0; k < i.nops; ++k)
        if (i.op[k].kind == OpKind::Mem) {
            s.fdp = c.effective_address(i.op[k]);
            s.fds = s.seg[i.op[k].seg].selector;
        }
}

uint16_t raise(CpuState& s, uint16_t flags) {
    s.fsw |= flags & (kFlags | kSF);
    const uint16_t unmasked = flags & ~s.fcw & kFlags;
    if (unmasked) s.fsw |= kES | kB;
    return unmasked;
}

bool underflow(CpuState& s) {
    set_cc(s, kC1, 0);
    return !raise(s, kIE | kSF);
}

void push(CpuState& s, const F80& v) {
    const int t = (top(s) - 1) & 7;
    if ((s.ftw >> t) & 1) {  // overflow: the register below the top is in use
        set_cc(s, kC1, kC1);
        if (raise(s, kIE | kSF)) return;
        set_top(s, t);
        s.st[t] = kIndefinite;
        return;
    }
    set_top(s, t);
    s.st[t] = v;
    s.ftw |= 1 << t;
}

void pop(CpuState& s) {
    s.ftw &= ~(1 << top(s));
    set_top(s, top(s) + 1);
}

HostResult host_load_real(uint64_t bits, uint8_t size, uint16_t cw) {
    HostResult h;
    uint16_t saved;
    const uint16_t hcw = cw | kFlags;  // a load's only flags are IE (SNaN) and DE
    const uint32_t b32 = static_cast<uint32_t>(bits);
    if (size == 4)
        __asm__ volatile(
            "fnstcw %[sv]\n\tfldcw %[cw]\n\tfnclex\n\tflds %[m]\n\tfnstsw %[sw]\n\t"
            "fnclex\n\tfldcw %[sv]\n\tfstpt %[r]"
            : [r] "=m"(h.r0), [sw] "=m"(h.sw), [sv] "=m"(saved)
            : [m] "m"(b32), [cw] "m"(hcw)
            : "st");
    else
        __asm__ volatile(
            "fnstcw %[sv]\n\tfldcw %[cw]\n\tfnclex\n\tfldl %[m]\n\tfnstsw %[sw]\n\t"
            "fnclex\n\tfldcw %[sv]\n\tfstpt %[r]"
            : [r] "=m"(h.r0), [sw] "=m"(h.sw), [sv] "=m"(saved)
            : [m] "m"(bits), [cw] "m"(hcw)
            : "st");
    return h;
}

F80 int_to_f80(int64_t v) {
    if (v == 0) return F80{0, 0};
    const uint16_t sign = v < 0 ? 0x8000 : 0;
    uint64_t m = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
    const int lz = __builtin_clzll(m);
    m <<= lz;
    return F80{m, static_cast<uint16_t>(sign | (16383 + 63 - lz))};
}

namespace {

// Host stores of an 80-bit value to m32/m64 real or m16/m32/m64 integer under the guest's
// precision, rounding and overflow/underflow/precision masks (invalid, denormal and
// divide-by-zero masked: the model handles those). With an unmasked exception the host
// may neither store nor pop, so its whole FPU state is saved and restored around it.
enum class StoreKind { Real, Int, IntTrunc };
uint16_t host_store(const F80& v, StoreKind k, uint8_t size, uint16_t cw, uint64_t& out) {
    const Raw r = raw(v);
    const uint16_t hcw = cw | kIE | kDE | kZE;
    uint16_t sw;
    uint64_t o = 0;
    alignas(16) uint8_t env[108];
#define SKVM_X87_STORE(insn)                                              \
    __asm__ volatile("fnsave %[env]\n\tfldcw %[cw]\n\tfldt %[v]\n\t" insn \
                     " %[o]\n\tfnstsw %[sw]\n\tfnclex\n\tfrstor %[env]"   \
                     : [o] "=m"(o), [sw] "=m"(sw), [env] "=m"(env)        \
                     : [v] "m"(r), [cw] "m"(hcw)                          \
                     : "st")
    if (k == StoreKind::Real) {
        if (size == 4)
            SKVM_X87_STORE("fstps");
        else
            SKVM_X87_STORE("fstpl");
    } else if (k == StoreKind::Int) {
        if (size == 2)
            SKVM_X87_STORE("fistps");
        else if (size == 4)
            SKVM_X87_STORE("fistpl");
        else
            SKVM_X87_STORE("fistpll");
    } else {
        if (size == 2)
            SKVM_X87_STORE("fisttps");
        else if (size == 4)
            SKVM_X87_STORE("fisttpl");
        else
            SKVM_X87_STORE("fisttpll");
    }
#undef SKVM_X87_STORE
    out = o & size_mask(size);
    return sw;
}

void write_f80(Cpu& c, uint64_t lin, const F80& v) {
    c.check_access(lin + 9, Access::Write);
    c.write_mem(lin, 8, v.mant);
    c.write_mem(lin + 8, 2, v.se);
}
F80 read_f80(Cpu& c, uint64_t lin) {
    F80 v;
    v.mant = c.read_mem(lin, 8);
    v.se = static_cast<uint16_t>(c.read_mem(lin + 8, 2));
    return v;
}

// FLD m32/m64/m80 or ST(i).
void op_fld(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const Operand& o = i.op[0];
    F80 v;
    if (o.kind == OpKind::St) {
        if (is_empty(s, o.reg)) {
            if (!underflow(s)) return;
            v = kIndefinite;
        } else {
            v = reg(s, o.reg);
        }
    } else if (o.size == 10) {
        v = read_f80(c, c.linear(o));
    } else {
        const HostResult h = host_load_real(c.read_mem(c.linear(o), o.size), o.size, s.fcw);
        // An unmasked IE (SNaN) stops the load; the silicon loads a denormal with DE
        // unmasked all the same.
        if (raise(s, h.sw & kFlags) & kIE) return;
        v = val(h.r0);
    }
    set_cc(s, kC1, 0);
    push(s, v);
}

// FST/FSTP m32/m64/m80 or ST(i).
template <bool Pop>
void op_fst(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const Operand& o = i.op[0];
    F80 v = reg(s, 0);
    bool indefinite = false;
    set_cc(s, kC1, 0);
    if (is_empty(s, 0)) {
        if (!underflow(s)) return;
        v = kIndefinite, indefinite = true;
    }
    if (o.kind == OpKind::St) {
        reg(s, o.reg) = v;
        s.ftw |= 1 << phys(s, o.reg);
    } else if (o.size == 10) {
        write_f80(c, c.linear(o), v);
    } else {
        const uint64_t lin = c.linear(o);
        uint64_t bits;
        const uint16_t sw = host_store(v, StoreKind::Real, o.size, s.fcw, bits);
        if (!indefinite) {
            c.check_access(lin + o.size - 1, Access::Write);
            if (raise(s, sw & kFlags) & ~kPE) return;  // PE alone: stored
            set_cc(s, kC1, sw);
        }
        c.write_mem(lin, o.size, bits);
    }
    if (Pop) pop(s);
}

// FILD m16/m32/m64.
void op_fild(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const Operand& o = i.op[0];
    const int64_t v = sign_extend(c.read_mem(c.linear(o), o.size), o.size);
    set_cc(s, kC1, 0);
    push(s, int_to_f80(v));
}

// FIST/FISTP/FISTTP m16/m32/m64 (invalid: the integer indefinite, the most negative value).
template <bool Pop, StoreKind K>
void op_fist(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const Operand& o = i.op[0];
    const uint64_t lin = c.linear(o);
    uint64_t bits = sign_bit(o.size);
    set_cc(s, kC1, 0);
    if (is_empty(s, 0)) {
        if (!underflow(s)) return;
    } else {
        const uint16_t sw = host_store(reg(s, 0), K, o.size, s.fcw, bits);
        c.check_access(lin + o.size - 1, Access::Write);
        if (raise(s, sw & kFlags) & ~kPE) return;  // PE alone: stored
        set_cc(s, kC1, sw);
    }
    c.write_mem(lin, o.size, bits);
    if (Pop) pop(s);
}

// FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ: rounded per FCW.RC on the host.
template <int K>
void op_fconst(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const uint16_t hcw = s.fcw | kFlags;
    uint16_t saved;
    Raw r{};
#define SKVM_X87_CONST(insn)                                                                \
    __asm__ volatile("fnstcw %[sv]\n\tfldcw %[cw]\n\t" insn "\n\tfstpt %[r]\n\tfldcw %[sv]" \
                     : [r] "=m"(r), [sv] "=m"(saved)                                        \
                     : [cw] "m"(hcw)                                                        \
                     : "st")
    switch (K) {
        case 0:
            SKVM_X87_CONST("fld1");
            break;
        case 1:
            SKVM_X87_CONST("fldl2t");
            break;
        case 2:
            SKVM_X87_CONST("fldl2e");
            break;
        case 3:
            SKVM_X87_CONST("fldpi");
            break;
        case 4:
            SKVM_X87_CONST("fldlg2");
            break;
        case 5:
            SKVM_X87_CONST("fldln2");
            break;
        default:
            SKVM_X87_CONST("fldz");
            break;
    }
#undef SKVM_X87_CONST
    set_cc(s, kC1, 0);
    push(s, val(r));
}

// FXCH ST(i): empty registers become the indefinite first when IE is masked.
void op_fxch(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const int k = i.nops ? i.op[0].reg : 1;
    set_cc(s, kC1, 0);
    if (is_empty(s, 0) || is_empty(s, k)) {
        if (!underflow(s)) return;
        for (int r : {0, k})
            if (is_empty(s, r)) reg(s, r) = kIndefinite, s.ftw |= 1 << phys(s, r);
    }
    std::swap(reg(s, 0), reg(s, k));
}

// FCMOVcc ST(0), ST(i) (SDM vol. 2 FCMOVcc): B E BE U and their negations.
template <int Cond, bool Negate>
void op_fcmov(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    const int k = i.op[1].reg;
    set_cc(s, kC1, 0);
    if (is_empty(s, 0) || is_empty(s, k)) {
        if (!underflow(s)) return;
        reg(s, 0) = kIndefinite, s.ftw |= 1 << phys(s, 0);
        return;
    }
    const uint64_t f = c.flags();
    bool t = false;
    switch (Cond) {
        case 0:
            t = f & FLAG_CF;
            break;
        case 1:
            t = f & FLAG_ZF;
            break;
        case 2:
            t = f & (FLAG_CF | FLAG_ZF);
            break;
        default:
            t = f & FLAG_PF;
            break;
    }
    if (t != Negate) reg(s, 0) = reg(s, k);
}

// FCHS, FABS: sign changes only (no exceptions besides stack underflow).
template <bool Abs>
void op_fsign(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    set_cc(s, kC1, 0);
    if (is_empty(s, 0)) {
        if (!underflow(s)) return;
        reg(s, 0) = kIndefinite, s.ftw |= 1 << phys(s, 0);
    }
    F80& v = reg(s, 0);
    v.se = Abs ? (v.se & 0x7FFF) : (v.se ^ 0x8000);
}

void op_ffree(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
    CpuState& s = c.state();
    s.ftw &= ~(1 << phys(s, i.op[0].reg));
}
void op_ffreep(Cpu& c, const DecodedInsn& i) {
    op_ffree(c, i);
    pop(c.state());
}
template <int Delta>
void op_fstp_move(Cpu& c, const DecodedInsn& i) {  // FINCSTP / FDECSTP
    begin(c, i);
    CpuState& s = c.state();
    set_cc(s, kC1, 0);
    set_top(s, top(s) + Delta);
}
void op_fnop(Cpu& c, const DecodedInsn& i) {
    begin(c, i);
}

// Control instructions: no FIP/FDP/FOP update; the FN* forms do not check for a pending
// exception.
void op_fldcw(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true);
    CpuState& s = c.state();
    s.fcw = static_cast<uint16_t>((c.read_mem(c.linear(i.op[0]), 2) & kFcwWritable) | 0x40);
    // An exception flag the new word unmasks is now pending (SDM vol. 1 §8.5).
    if (s.fsw & ~s.fcw & kFlags)
        s.fsw |= kES | kB;
    else
        s.fsw &= ~(kES | kB);
}
void op_fnstcw(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true, false);
    c.write_mem(c.linear(i.op[0]), 2, c.state().fcw);
}
void op_fnstsw(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true, false);
    const Operand& o = i.op[0];
    if (o.kind == OpKind::Gpr)
        c.write_gpr(RAX, 2, c.state().fsw);
    else
        c.write_mem(c.linear(o), 2, c.state().fsw);
}
void op_fnclex(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true, false);
    c.state().fsw &= ~(kFlags | kSF | kES | kB);
}
void op_fninit(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true, false);
    init_state(c.state());
}
// FWAIT: #NM only with CR0.MP and CR0.TS both set (SDM vol. 3 §2.5), then #MF if pending.
void op_fwait(Cpu& c, const DecodedInsn&) {
    CpuState& s = c.state();
    if ((s.cr0 & CR0_MP) && (s.cr0 & CR0_TS)) c.fault(VEC_NM);
    if ((s.fsw & kES) && (s.cr0 & CR0_NE)) c.fault(VEC_MF);
}
// EMMS: every tag empty and TOP = 0 (SDM vol. 1 table 9-3; the EMMS page of vol. 2 names
// only the tag word, and the silicon clears TOP as the table says), after the checks of an
// MMX instruction (mmx.h).
void op_emms(Cpu& c, const DecodedInsn&) {
    mmx::begin(c);
    CpuState& s = c.state();
    s.ftw = 0;
    set_top(s, 0);
}

// FNSTENV / FLDENV / FNSAVE / FRSTOR.
void op_fnstenv(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true, false);
    store_env(c, c.linear(i.op[0]), i.opsize == 2, false);
    c.state().fcw |= kFlags;  // FNSTENV then masks every exception
}
void op_fldenv(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true);
    load_env(c, c.linear(i.op[0]), i.opsize == 2, false);
}
void op_fnsave(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true, false);
    store_env(c, c.linear(i.op[0]), i.opsize == 2, true);
    init_state(c.state());
}
void op_frstor(Cpu& c, const DecodedInsn& i) {
    begin(c, i, true);
    load_env(c, c.linear(i.op[0]), i.opsize == 2, true);
}

}  // namespace

void init_state(CpuState& s) {
    s.fcw = kFcwInit;
    s.fsw = 0;
    s.ftw = 0;
    s.fop = 0;
    s.fip = s.fdp = 0;
    s.fcs = s.fds = 0;
}

uint16_t full_tag_word(const CpuState& s) {
    uint16_t w = 0;
    for (int r = 0; r < 8; ++r)
        w |= static_cast<uint16_t>((((s.ftw >> r) & 1) ? tag_of(s.st[r]) : 3u) << (2 * r));
    return w;
}

// The protected-mode environment image: 28 bytes (32-bit operand size) or 14 (16-bit)
// (SDM vol. 1 §8.1.10, figures 8-9 and 8-10), then with `regs` ST(0)-ST(7), 10 bytes each.
void store_env(Cpu& c, uint64_t lin, bool small, bool regs) {
    CpuState& s = c.state();
    const uint64_t size = (small ? 14 : 28) + (regs ? 80 : 0);
    c.check_access(lin + size - 1, Access::Write);
    const uint8_t w = small ? 2 : 4;
    // The 32-bit layout's reserved upper halves read as ones, as the silicon stores them.
    const uint32_t hi = small ? 0 : 0xFFFF0000u;
    c.write_mem(lin + 0 * w, w, hi | s.fcw);
    c.write_mem(lin + 1 * w, w, hi | s.fsw);
    c.write_mem(lin + 2 * w, w, hi | full_tag_word(s));
    c.write_mem(lin + 3 * w, w, s.fip & size_mask(w));
    c.write_mem(lin + 4 * w, w, small ? s.fcs : (s.fcs | static_cast<uint32_t>(s.fop) << 16));
    c.write_mem(lin + 5 * w, w, s.fdp & size_mask(w));
    c.write_mem(lin + 6 * w, w, hi | s.fds);
    if (regs)
        for (int k = 0; k < 8; ++k) {
            const F80& v = s.st[phys(s, k)];
            c.write_mem(lin + 7 * w + 10 * k, 8, v.mant);
            c.write_mem(lin + 7 * w + 10 * k + 8, 2, v.se);
        }
}

void load_env(Cpu& c, uint64_t lin, bool small, bool regs) {
    CpuState& s = c.state();
    const uint8_t w = small ? 2 : 4;
    const uint16_t fcw = static_cast<uint16_t>(c.read_mem(lin, 2));
    const uint16_t fsw = static_cast<uint16_t>(c.read_mem(lin + w, 2));
    const uint16_t tw = static_cast<uint16_t>(c.read_mem(lin + 2 * w, 2));
    const uint64_t fip = c.read_mem(lin + 3 * w, w);
    const uint32_t cs = static_cast<uint32_t>(c.read_mem(lin + 4 * w, w));
    const uint64_t fdp = c.read_mem(lin + 5 * w, w);
    const uint16_t fds = static_cast<uint16_t>(c.read_mem(lin + 6 * w, 2));
    std::array<F80, 8> st = s.st;
    const int t = (fsw >> 11) & 7;
    if (regs)
        for (int k = 0; k < 8; ++k) st[(t + k) & 7] = read_f80(c, lin + 7 * w + 10 * k);
    s.fcw = static_cast<uint16_t>((fcw & kFcwWritable) | 0x40);
    s.fsw = fsw;
    s.ftw = 0;
    for (int r = 0; r < 8; ++r)
        if (((tw >> (2 * r)) & 3) != 3) s.ftw |= 1 << r;
    s.fip = fip;
    s.fcs = static_cast<uint16_t>(cs);
    s.fop = small ? s.fop : static_cast<uint16_t>((cs >> 16) & 0x7FF);
    s.fdp = fdp;
    s.fds = fds;
    s.st = st;
    // An unmasked flag in the loaded status word is pending (SDM vol. 1 §8.5).
    if (s.fsw & ~s.fcw & kFlags)
        s.fsw |= kES | kB;
    else
        s.fsw &= ~(kES | kB);
}

// FXSAVE image, bytes 0-23 and 32-159 (SDM vol. 2 FXSAVE, tables 3-53 and 3-56): the
// 64-bit form (REX.W) has 64-bit FIP and FDP, the 32-bit form FIP/FCS and FDP/FDS.
void save_fx(Cpu& c, uint64_t lin, bool wide) {
    const CpuState& s = c.state();
    c.write_mem(lin + 0, 2, s.fcw);
    c.write_mem(lin + 2, 2, s.fsw);
    c.write_mem(lin + 4, 1, s.ftw);
    c.write_mem(lin + 6, 2, s.fop);
    if (wide) {
        c.write_mem(lin + 8, 8, s.fip);
        c.write_mem(lin + 16, 8, s.fdp);
    } else {
        c.write_mem(lin + 8, 4, s.fip & 0xFFFFFFFF);
        c.write_mem(lin + 12, 2, s.fcs);
        c.write_mem(lin + 16, 4, s.fdp & 0xFFFFFFFF);
        c.write_mem(lin + 20, 2, s.fds);
    }
    for (int k = 0; k < 8; ++k) {
        const F80& v = s.st[phys(s, k)];
        c.write_mem(lin + 32 + 16 * k, 8, v.mant);
        c.write_mem(lin + 40 + 16 * k, 8, v.se);  // the 6 reserved bytes read as zero
    }
}

FxImage read_fx(Cpu& c, uint64_t lin, bool wide) {
    FxImage f;
    f.fcw = static_cast<uint16_t>(c.read_mem(lin + 0, 2));
    f.fsw = static_cast<uint16_t>(c.read_mem(lin + 2, 2));
    f.ftw = static_cast<uint8_t>(c.read_mem(lin + 4, 1));
    f.fop = static_cast<uint16_t>(c.read_mem(lin + 6, 2) & 0x7FF);
    if (wide) {
        f.fip = c.read_mem(lin + 8, 8);
        f.fdp = c.read_mem(lin + 16, 8);
    } else {
        f.fip = c.read_mem(lin + 8, 4);
        f.fcs = static_cast<uint16_t>(c.read_mem(lin + 12, 2));
        f.fdp = c.read_mem(lin + 16, 4);
        f.fds = static_cast<uint16_t>(c.read_mem(lin + 20, 2));
    }
    for (int k = 0; k < 8; ++k) f.st[k] = read_f80(c, lin + 32 + 16 * k);
    return f;
}

void apply_fx(CpuState& s, const FxImage& f) {
    s.fcw = static_cast<uint16_t>((f.fcw & kFcwWritable) | 0x40);
    s.fsw = f.fsw;
    s.ftw = f.ftw;
    s.fop = f.fop;
    s.fip = f.fip;
    s.fdp = f.fdp;
    s.fcs = f.fcs;
    s.fds = f.fds;
    for (int k = 0; k < 8; ++k) s.st[phys(s, k)] = f.st[k];
    if (s.fsw & ~s.fcw & kFlags)
        s.fsw |= kES | kB;
    else
        s.fsw &= ~(kES | kB);
}

}  // namespace softkvm::cpu::x87

namespace softkvm::cpu {

void register_x87(HandlerTable& t) {
    using namespace x87;  // NOLINT
    t[ZYDIS_MNEMONIC_FLD].fn = op_fld;
    t[ZYDIS_MNEMONIC_FST].fn = op_fst<false>;
    t[ZYDIS_MNEMONIC_FSTP].fn = op_fst<true>;
    t[ZYDIS_MNEMONIC_FSTPNCE].fn = op_fst<true>;  // D9 D8+i: an alias of FSTP ST(i)
    t[ZYDIS_MNEMONIC_FILD].fn = op_fild;
    t[ZYDIS_MNEMONIC_FIST].fn = op_fist<false, StoreKind::Int>;
    t[ZYDIS_MNEMONIC_FISTP].fn = op_fist<true, StoreKind::Int>;
    t[ZYDIS_MNEMONIC_FISTTP].fn = op_fist<true, StoreKind::IntTrunc>;
    t[ZYDIS_MNEMONIC_FLD1].fn = op_fconst<0>;
    t[ZYDIS_MNEMONIC_FLDL2T].fn = op_fconst<1>;
    t[ZYDIS_MNEMONIC_FLDL2E].fn = op_fconst<2>;
    t[ZYDIS_MNEMONIC_FLDPI].fn = op_fconst<3>;
    t[ZYDIS_MNEMONIC_FLDLG2].fn = op_fconst<4>;
    t[ZYDIS_MNEMONIC_FLDLN2].fn = op_fconst<5>;
    t[ZYDIS_MNEMONIC_FLDZ].fn = op_fconst<6>;
    t[ZYDIS_MNEMONIC_FXCH].fn = op_fxch;
    t[ZYDIS_MNEMONIC_FCMOVB].fn = op_fcmov<0, false>;
    t[ZYDIS_MNEMONIC_FCMOVE].fn = op_fcmov<1, false>;
    t[ZYDIS_MNEMONIC_FCMOVBE].fn = op_fcmov<2, false>;
    t[ZYDIS_MNEMONIC_FCMOVU].fn = op_fcmov<3, false>;
    t[ZYDIS_MNEMONIC_FCMOVNB].fn = op_fcmov<0, true>;
    t[ZYDIS_MNEMONIC_FCMOVNE].fn = op_fcmov<1, true>;
    t[ZYDIS_MNEMONIC_FCMOVNBE].fn = op_fcmov<2, true>;
    t[ZYDIS_MNEMONIC_FCMOVNU].fn = op_fcmov<3, true>;
    t[ZYDIS_MNEMONIC_FCHS].fn = op_fsign<false>;
    t[ZYDIS_MNEMONIC_FABS].fn = op_fsign<true>;
    t[ZYDIS_MNEMONIC_FFREE].fn = op_ffree;
    t[ZYDIS_MNEMONIC_FFREEP].fn = op_ffreep;
    t[ZYDIS_MNEMONIC_FINCSTP].fn = op_fstp_move<1>;
    t[ZYDIS_MNEMONIC_FDECSTP].fn = op_fstp_move<-1>;
    t[ZYDIS_MNEMONIC_FNOP].fn = op_fnop;
    t[ZYDIS_MNEMONIC_FLDCW].fn = op_fldcw;
    t[ZYDIS_MNEMONIC_FNSTCW].fn = op_fnstcw;
    t[ZYDIS_MNEMONIC_FNSTSW].fn = op_fnstsw;
    t[ZYDIS_MNEMONIC_FNCLEX].fn = op_fnclex;
    t[ZYDIS_MNEMONIC_FNINIT].fn = op_fninit;
    t[ZYDIS_MNEMONIC_FWAIT].fn = op_fwait;
    t[ZYDIS_MNEMONIC_EMMS].fn = op_emms;
    t[ZYDIS_MNEMONIC_FNSTENV].fn = op_fnstenv;
    t[ZYDIS_MNEMONIC_FLDENV].fn = op_fldenv;
    t[ZYDIS_MNEMONIC_FNSAVE].fn = op_fnsave;
    t[ZYDIS_MNEMONIC_FRSTOR].fn = op_frstor;
    register_x87_arith(t);
}

}  // namespace softkvm::cpu
