// String instructions: MOVS STOS LODS CMPS SCAS with REP/REPE/REPNE (SDM vol. 2B). RSI,
// RDI and RCX advance per element, so a fault part-way leaves a restartable state.
#include <algorithm>
#include <cstring>

#include "cpu/exec/flags.h"
#include "cpu/exec/handlers.h"

namespace softkvm::cpu {
namespace {

enum class Str { Movs, Stos, Lods, Cmps, Scas };

// At most this many iterations of a REP string instruction per step of the run loop, so a
// kick or another vCPU's interrupt is noticed inside a long REP. Each iteration counts as
// one retired instruction (as under QEMU's -icount): --max-insns and the virtual clock
// bound the work of a run whatever RCX holds.
constexpr uint64_t kRepChunk = 4096;

struct StrCtx {
    Cpu& c;
    uint64_t amask;  // address-size mask for RSI/RDI/RCX
    int64_t step;
    uint64_t src_base, dst_base;

    uint64_t reg(Gpr r) const { return c.gpr(r) & amask; }
    void set(Gpr r, uint64_t v) { c.gpr(r) = (c.gpr(r) & ~amask) | (v & amask); }
    void advance(Gpr r) { set(r, reg(r) + static_cast<uint64_t>(step)); }

    // The elements of `size` bytes from register `r` on (segment base `base`) that lie in
    // its page, in the string's direction, before the register wraps at the address size,
    // with the host address of the first one when the software TLB maps that page for
    // `acc` (Cpu::tlb_host). 0 when it does not, or when the first element crosses the
    // page's end or the address size: the element-by-element path takes it.
    uint64_t span(Gpr r, uint64_t base, uint8_t size, Access acc, uint8_t*& host) const {
        const uint64_t at = reg(r);
        const uint64_t lin = base + at;
        const uint64_t off = lin & 0xFFF;
        if (off + size > 0x1000 || at > amask - (size - 1)) return 0;
        host = c.tlb_host(lin, acc);
        if (!host) return 0;
        if (step < 0) return std::min(off, at) / size + 1;
        const uint64_t to_wrap = amask - at + 1;  // 0: 2^64 (64-bit addresses)
        return std::min<uint64_t>(0x1000 - off, to_wrap ? to_wrap : ~uint64_t{0}) / size;
    }
};

// REP MOVS and REP STOS a page at a time: up to `room` iterations that stay in the pages
// the software TLB already maps for the access (so none of them can fault or reach MMIO
// or decoded code: the element-by-element path takes every first access to a page), done
// on host memory, in the order the elements would be. Returns the iterations done, with
// RSI, RDI and RCX advanced; 0 when the next element must take the ordinary path.
template <Str K, uint8_t Size>
uint64_t rep_bulk(StrCtx& x, uint64_t room) {
    uint64_t n = std::min(x.reg(RCX), room);
    uint8_t* dst = nullptr;
    n = std::min(n, x.span(RDI, x.dst_base, Size, Access::Write, dst));
    if (n == 0) return 0;
    const bool down = x.step < 0;
    const uint64_t bytes = n * Size;
    uint8_t* dst_lo = down ? dst - (bytes - Size) : dst;  // lowest byte written
    if constexpr (K == Str::Stos) {
        const uint64_t v = x.c.read_gpr(RAX, Size);
        if constexpr (Size == 1) {
            std::memset(dst_lo, static_cast<int>(v), bytes);
        } else {
            for (uint64_t k = 0; k < n; ++k) store_le(dst_lo + k * Size, Size, v);
        }
    } else {
        uint8_t* src = nullptr;
        const uint64_t m = x.span(RSI, x.src_base, Size, Access::Read, src);
        if (m == 0) return 0;
        if (m < n) return rep_bulk<K, Size>(x, m);  // the source's page ends first
        const uint8_t* src_lo = down ? src - (bytes - Size) : src;
        if (dst_lo + bytes <= src_lo || src_lo + bytes <= dst_lo) {
            std::memcpy(dst_lo, src_lo, bytes);
        } else {
            // Overlapping: element by element in the string's order, each read before it
            // is written, so a copy onto itself shifted repeats its pattern as the
            // processor's does.
            const int64_t step = x.step;
            for (uint64_t k = 0; k < n; ++k) {
                const int64_t d = static_cast<int64_t>(k) * step;
                store_le(dst + d, Size, load_le(src + d, Size));
            }
        }
        x.set(RSI, x.reg(RSI) + static_cast<uint64_t>(static_cast<int64_t>(n) * x.step));
    }
    x.set(RDI, x.reg(RDI) + static_cast<uint64_t>(static_cast<int64_t>(n) * x.step));
    x.set(RCX, x.reg(RCX) - n);
    return n;
}

template <Str K, uint8_t Size>
void op_string(Cpu& c, const DecodedInsn& i) {
    CpuState& s = c.state();
    const uint64_t amask = size_mask(i.addrsize);
    const int64_t step = (s.rflags & FLAG_DF) ? -static_cast<int64_t>(Size) : Size;
    // The source segment may be overridden (DS default); the destination is always ES.
    uint8_t src_seg = DS;
    for (int k = 0; k < i.nops; ++k)
        if (i.op[k].kind == OpKind::Mem && i.op[k].reg == RSI) src_seg = i.op[k].seg;
    StrCtx x{c, amask, step, c.seg_base(src_seg), c.seg_base(ES)};
    c.note_segment(src_seg);
    const bool rep = i.prefixes & (PFX_REP | PFX_REPNE);
    // Iterations this step may run: the run loop's budget (instruction limit, next timer
    // deadline) and the chunk.
    const uint64_t room = std::min(kRepChunk, std::max<uint64_t>(c.rep_room(), 1));
    // Iterations after the first count as retired instructions, also when one faults.
    struct Counter {
        Cpu& c;
        uint64_t n = 0;
        ~Counter() {
            if (n > 1) c.count_iterations(n - 1);
        }
    } iterations{c};
    for (;;) {
        if (rep && x.reg(RCX) == 0) return;
        if constexpr (K == Str::Movs || K == Str::Stos) {
            if (rep) {
                if (const uint64_t n = rep_bulk<K, Size>(x, room - iterations.n)) {
                    iterations.n += n;
                    if (x.reg(RCX) != 0 && iterations.n == room) return c.restart_instruction();
                    continue;
                }
            }
        }
        bool stop = false;
        if constexpr (K == Str::Movs) {
            uint64_t v = c.read_mem(x.src_base + x.reg(RSI), Size);
            c.write_mem(x.dst_base + x.reg(RDI), Size, v);
            x.advance(RSI);
            x.advance(RDI);
        } else if constexpr (K == Str::Stos) {
            c.write_mem(x.dst_base + x.reg(RDI), Size, c.read_gpr(RAX, Size));
            x.advance(RDI);
        } else if constexpr (K == Str::Lods) {
            c.write_gpr(RAX, Size, c.read_mem(x.src_base + x.reg(RSI), Size));
            x.advance(RSI);
        } else {
            uint64_t a, b;
            if constexpr (K == Str::Cmps) {
                a = c.read_mem(x.src_base + x.reg(RSI), Size);
                b = c.read_mem(x.dst_base + x.reg(RDI), Size);
                x.advance(RSI);
            } else {
                a = c.read_gpr(RAX, Size);
                b = c.read_mem(x.dst_base + x.reg(RDI), Size);
            }
            x.advance(RDI);
            const uint64_t r = (a - b) & size_mask(Size);
            c.set_arith_flags(flags_sub(a, b, r, Size, false));
            const bool zf = r == 0;
            if ((i.prefixes & PFX_REP) && !zf) stop = true;
            if ((i.prefixes & PFX_REPNE) && zf) stop = true;
        }
        if (!rep) return;
        ++iterations.n;
        x.set(RCX, x.reg(RCX) - 1);
        if (stop) return;
        // The REP yields after `room` iterations, or after one that touched MMIO (its
        // device accesses complete before the next iteration): the instruction restarts
        // with the registers it has advanced, so interrupts, deadlines, kicks and the
        // instruction limit get their window (as on hardware, which may take interrupts
        // between iterations).
        if (x.reg(RCX) != 0 && (iterations.n == room || c.touched_mmio()))
            return c.restart_instruction();
    }
}

}  // namespace

void register_string(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_MOVSB].fn = op_string<Str::Movs, 1>;
    t[ZYDIS_MNEMONIC_MOVSW].fn = op_string<Str::Movs, 2>;
    t[ZYDIS_MNEMONIC_MOVSD].fn = op_string<Str::Movs, 4>;
    t[ZYDIS_MNEMONIC_MOVSQ].fn = op_string<Str::Movs, 8>;
    t[ZYDIS_MNEMONIC_STOSB].fn = op_string<Str::Stos, 1>;
    t[ZYDIS_MNEMONIC_STOSW].fn = op_string<Str::Stos, 2>;
    t[ZYDIS_MNEMONIC_STOSD].fn = op_string<Str::Stos, 4>;
    t[ZYDIS_MNEMONIC_STOSQ].fn = op_string<Str::Stos, 8>;
    t[ZYDIS_MNEMONIC_LODSB].fn = op_string<Str::Lods, 1>;
    t[ZYDIS_MNEMONIC_LODSW].fn = op_string<Str::Lods, 2>;
    t[ZYDIS_MNEMONIC_LODSD].fn = op_string<Str::Lods, 4>;
    t[ZYDIS_MNEMONIC_LODSQ].fn = op_string<Str::Lods, 8>;
    t[ZYDIS_MNEMONIC_CMPSB].fn = op_string<Str::Cmps, 1>;
    t[ZYDIS_MNEMONIC_CMPSW].fn = op_string<Str::Cmps, 2>;
    t[ZYDIS_MNEMONIC_CMPSD].fn = op_string<Str::Cmps, 4>;
    t[ZYDIS_MNEMONIC_CMPSQ].fn = op_string<Str::Cmps, 8>;
    t[ZYDIS_MNEMONIC_SCASB].fn = op_string<Str::Scas, 1>;
    t[ZYDIS_MNEMONIC_SCASW].fn = op_string<Str::Scas, 2>;
    t[ZYDIS_MNEMONIC_SCASD].fn = op_string<Str::Scas, 4>;
    t[ZYDIS_MNEMONIC_SCASQ].fn = op_string<Str::Scas, 8>;
    // A string instruction may restart itself (kRepChunk): it ends its block.
    for (auto m :
         {ZYDIS_MNEMONIC_MOVSB, ZYDIS_MNEMONIC_MOVSW, ZYDIS_MNEMONIC_MOVSD, ZYDIS_MNEMONIC_MOVSQ,
          ZYDIS_MNEMONIC_STOSB, ZYDIS_MNEMONIC_STOSW, ZYDIS_MNEMONIC_STOSD, ZYDIS_MNEMONIC_STOSQ,
          ZYDIS_MNEMONIC_LODSB, ZYDIS_MNEMONIC_LODSW, ZYDIS_MNEMONIC_LODSD, ZYDIS_MNEMONIC_LODSQ,
          ZYDIS_MNEMONIC_CMPSB, ZYDIS_MNEMONIC_CMPSW, ZYDIS_MNEMONIC_CMPSD, ZYDIS_MNEMONIC_CMPSQ,
          ZYDIS_MNEMONIC_SCASB, ZYDIS_MNEMONIC_SCASW, ZYDIS_MNEMONIC_SCASD, ZYDIS_MNEMONIC_SCASQ})
        t[m].ends_block = true;
}

}  // namespace softkvm::cpu
