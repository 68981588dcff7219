// The x87 FPU of the software CPU (SDM vol. 1 ch. 8), shared by x87.cc (data transfer,
// control, state images) and x87_arith.cc (arithmetic, compares, transcendentals).
//
// Exactness: the register stack, tags, stack faults, exception flags, masks and #MF
// delivery are the model's own; each numeric operation runs on the host's x87 unit
// (softkvm is x86-64 only) with the guest's control word loaded, on the guest's 80-bit
// values, so precision control, rounding control, denormal, NaN and unsupported-format
// handling are the silicon's. The host's status word after the operation gives the flags
// and C0-C3; the pending exception is cleared before any waiting host instruction runs.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/cpu.h"

namespace softkvm::cpu::x87 {

using F80 = CpuState::F80;

// FSW bits (SDM vol. 1 §8.1.3, figure 8-4).
inline constexpr uint16_t kIE = 1 << 0, kDE = 1 << 1, kZE = 1 << 2, kOE = 1 << 3, kUE = 1 << 4,
                          kPE = 1 << 5, kSF = 1 << 6, kES = 1 << 7, kC0 = 1 << 8, kC1 = 1 << 9,
                          kC2 = 1 << 10, kC3 = 1 << 14, kB = 1 << 15;
inline constexpr uint16_t kFlags = 0x3F;  // IE DE ZE OE UE PE (and the masks in FCW)
inline constexpr uint16_t kCc = kC0 | kC1 | kC2 | kC3;
inline constexpr uint16_t kTopMask = 7 << 11;
// FCW: the masks (bits 0-5), precision control (8-9), rounding control (10-11); bit 6
// reads as 1 in FNSTCW/FNSAVE images (SDM vol. 1 §8.1.5), bits 13-15 are reserved.
inline constexpr uint16_t kFcwInit = 0x037F;
inline constexpr uint16_t kFcwWritable = 0x1F7F;
// The QNaN floating-point indefinite (SDM vol. 1 §4.8.3.7).
inline constexpr F80 kIndefinite{0xC000000000000000ull, 0xFFFF};

inline int top(const CpuState& s) {
    return (s.fsw >> 11) & 7;
}
inline void set_top(CpuState& s, int t) {
    s.fsw = static_cast<uint16_t>((s.fsw & ~kTopMask) | ((t & 7) << 11));
}
inline int phys(const CpuState& s, int i) {
    return (top(s) + i) & 7;
}
inline bool is_empty(const CpuState& s, int i) {
    return !((s.ftw >> phys(s, i)) & 1);
}
inline F80& reg(CpuState& s, int i) {
    return s.st[phys(s, i)];
}

// Full two-bit tag of a register value: 0 valid, 1 zero, 2 special (SDM vol. 1 §8.1.7).
inline unsigned tag_of(const F80& v) {
    const unsigned e = v.se & 0x7FFF;
    if (e == 0 && v.mant == 0) return 1;
    if (e == 0 || e == 0x7FFF || !(v.mant >> 63)) return 2;
    return 0;
}

// Host x87 operations. The operand layout is the host's own: 10 bytes, little-endian.
struct Raw {
    uint64_t mant;
    uint16_t se;
    uint8_t pad[6];
};
inline Raw raw(const F80& v) {
    Raw r{};
    r.mant = v.mant, r.se = v.se;
    return r;
}
inline F80 val(const Raw& r) {
    return F80{r.mant, r.se};
}

// The result of a host operation: up to two values (r0 = the new ST(0)) and the status.
struct HostResult {
    Raw r0{}, r1{};
    uint16_t sw = 0;
};

// The x87 environment a host operation starts from, as FLDENV loads it in the 32-bit
// protected-mode layout (SDM vol. 1 §8.1.10, figure 8-9): control word `cw`, a status
// word holding only the guest's condition codes (`sw` & C0-C3: no exception flag, TOP 0)
// and every register empty (the host stack is empty between operations, as the x86-64
// ABI has it). The instruction and data pointers are not used.
struct HostEnv {
    uint16_t fcw, pad0, fsw, pad1, ftw, pad2;
    uint32_t fip, fcs_fop, fdp, fds;
};
static_assert(sizeof(HostEnv) == 28);
inline constexpr uint16_t kFtwAllEmpty = 0xFFFF;  // tag 11 in every register (§8.1.7)
inline HostEnv host_env(uint16_t cw, uint16_t sw) {
    HostEnv e{};
    e.fcw = cw, e.fsw = sw & kCc, e.ftw = kFtwAllEmpty;
    return e;
}

// ---- Instruction-level helpers (x87.cc) ----
// The checks every x87 instruction makes first (SDM vol. 1 §8.1.4, vol. 3 §2.5): CR0.EM or
// CR0.TS: #NM; a waiting instruction with a pending unmasked exception: #MF (CR0.NE set;
// with NE clear the legacy FERR#/IRQ 13 path is not modelled and the exception stays
// pending). A non-control instruction then records FOP, FIP/FCS and FDP/FDS.
void begin(Cpu& c, const DecodedInsn& i, bool control = false, bool waiting = true);
// Sets exception flags; an unmasked one sets ES and B. Returns the unmasked flags.
uint16_t raise(CpuState& s, uint16_t flags);
// Stack underflow on reading an empty register: IE|SF, C1 = 0. True if masked (the
// instruction goes on with the indefinite as its result).
bool underflow(CpuState& s);
// Pushes `v` (or handles stack overflow: IE|SF, C1 = 1, the indefinite when masked).
void push(CpuState& s, const F80& v);
void pop(CpuState& s);
// Sets the condition codes in `mask` from `bits`.
inline void set_cc(CpuState& s, uint16_t mask, uint16_t bits) {
    s.fsw = static_cast<uint16_t>((s.fsw & ~mask) | (bits & mask));
}

// Memory operand conversions on the host (x87.cc): m32/m64 real to extended (flags IE for
// an SNaN, DE for a denormal), m16/m32/m64 integer to extended (exact).
HostResult host_load_real(uint64_t bits, uint8_t size, uint16_t cw);
F80 int_to_f80(int64_t v);

// State images (x87.cc).
void init_state(CpuState& s);  // FNINIT, and XRSTOR of the x87 component's init state
uint16_t full_tag_word(const CpuState& s);
// FNSTENV/FLDENV (`regs`: FNSAVE/FRSTOR) in the protected-mode layout, 16-bit (`small`)
// or 32-bit; the real-mode layouts are not modelled.
void store_env(Cpu& c, uint64_t lin, bool small, bool regs);
void load_env(Cpu& c, uint64_t lin, bool small, bool regs);
// The x87 part of the FXSAVE/XSAVE legacy area (`wide`: the REX.W form).
struct FxImage {
    uint16_t fcw = 0, fsw = 0, fop = 0, fcs = 0, fds = 0;
    uint8_t ftw = 0;
    uint64_t fip = 0, fdp = 0;
    F80 st[8];
};
void save_fx(Cpu& c, uint64_t lin, bool wide);
FxImage read_fx(Cpu& c, uint64_t lin, bool wide);  // reads only: FXRSTOR applies it last
void apply_fx(CpuState& s, const FxImage& f);

}  // namespace softkvm::cpu::x87
