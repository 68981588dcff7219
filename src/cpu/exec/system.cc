// System instructions: CLI STI HLT IN OUT, descriptor tables, MOV CR/DR, RDMSR WRMSR,
// CPUID, RDTSC RDTSCP, INVLPG, cache control, SWAPGS, CLTS, STAC CLAC, VERR VERW, LAR LSL.
#include <optional>

#include "cpu/exec/handlers.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

uint8_t iopl(const Cpu& c) {
    return (c.flags() >> 12) & 3;
}

void op_cli(Cpu& c, const DecodedInsn&) {
    if (c.state().cpl > iopl(c)) c.fault(VEC_GP, 0);
    c.state().rflags &= ~FLAG_IF;
}

void op_sti(Cpu& c, const DecodedInsn&) {
    if (c.state().cpl > iopl(c)) c.fault(VEC_GP, 0);
    if (!(c.flags() & FLAG_IF)) c.sti_shadow();  // no interrupt before the next instruction
    c.state().rflags |= FLAG_IF;
}

void op_hlt(Cpu& c, const DecodedInsn&) {
    c.halt();
}

// IN AL/AX/EAX, imm8 or DX.
void op_in(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[0].size;
    const uint16_t port = static_cast<uint16_t>(c.read_op(i, 1) & 0xFFFF);
    uint32_t v = 0;
    c.port_in(port, size, v);
    c.write_gpr(RAX, size, v);
}

// OUT imm8 or DX, AL/AX/EAX.
void op_out(Cpu& c, const DecodedInsn& i) {
    const uint8_t size = i.op[1].size;
    const uint16_t port = static_cast<uint16_t>(c.read_op(i, 0) & 0xFFFF);
    c.port_out(port, size, static_cast<uint32_t>(c.read_gpr(RAX, size)));
}

// Pseudo-descriptor (limit, base) of LGDT/LIDT/SGDT/SIDT (SDM vol. 2, LGDT).
uint8_t base_bytes(const Cpu& c) {
    return c.state().mode == Mode::Long64 ? 8 : 4;
}

template <bool Idt>
void op_lxdt(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    const uint64_t lin = c.linear(i.op[0]);
    const uint16_t limit = static_cast<uint16_t>(c.read_mem(lin, 2));
    uint64_t base = c.read_mem(lin + 2, base_bytes(c));
    if (c.state().mode != Mode::Long64 && i.opsize == 2) base &= 0xFFFFFF;
    if (c.state().mode == Mode::Long64 &&
        static_cast<uint64_t>(static_cast<int64_t>(base << 16) >> 16) != base)
        c.fault(VEC_GP, 0);
    DescriptorTable& t = Idt ? c.state().idtr : c.state().gdtr;
    t.base = base;
    t.limit = limit;
}

// SGDT, SIDT, SLDT, SMSW and STR at CPL > 0 with CR4.UMIP (SDM vol. 3 §2.5).
void check_umip(Cpu& c) {
    if ((c.state().cr4 & CR4_UMIP) && c.state().cpl > 0) c.fault(VEC_GP, 0);
}

template <bool Idt>
void op_sxdt(Cpu& c, const DecodedInsn& i) {
    check_umip(c);
    const uint64_t lin = c.linear(i.op[0]);
    const DescriptorTable& t = Idt ? c.state().idtr : c.state().gdtr;
    c.check_access(lin + 2 + base_bytes(c) - 1, Access::Write);
    c.write_mem(lin, 2, t.limit);
    c.write_mem(lin + 2, base_bytes(c), t.base);
}

// Loads a system descriptor (16 bytes in long mode) for LTR and LLDT.
void load_system_segment(Cpu& c, uint16_t sel, Segment& dst, uint8_t want_type) {
    CpuState& s = c.state();
    if (sel & 4) c.fault(VEC_GP, sel & ~3u);
    const bool long_mode = s.efer & msr::EFER_LMA;
    if ((sel | 7u) + (long_mode ? 8 : 0) > s.gdtr.limit) c.fault(VEC_GP, sel & ~3u);
    const uint64_t addr = s.gdtr.base + (sel & ~7u);
    const uint64_t lo = c.read_sys(addr, 8);
    const uint64_t hi = long_mode ? c.read_sys(addr + 8, 8) : 0;
    const uint8_t type = (lo >> 40) & 0xF;
    if (((lo >> 44) & 1) || type != want_type) c.fault(VEC_GP, sel & ~3u);
    if (!((lo >> 47) & 1)) c.fault(VEC_NP, sel & ~3u);
    Segment n;
    n.selector = sel;
    n.type = type;
    n.present = true;
    n.dpl = (lo >> 45) & 3;
    n.g = (lo >> 55) & 1;
    n.limit = static_cast<uint32_t>((lo & 0xFFFF) | ((lo >> 32) & 0xF0000));
    if (n.g) n.limit = (n.limit << 12) | 0xFFF;
    n.base = ((lo >> 16) & 0xFFFFFF) | (((lo >> 56) & 0xFF) << 24) | ((hi & 0xFFFFFFFF) << 32);
    // Long mode (SDM vol. 2, LLDT/LTR; vol. 3 §7.2.3): the upper half's type field must be
    // 0 and the base canonical (4-level paging), else #GP(selector).
    if (long_mode && (((hi >> 40) & 0x1F) != 0 ||
                      static_cast<uint64_t>(static_cast<int64_t>(n.base << 16) >> 16) != n.base))
        c.fault(VEC_GP, sel & ~3u);
    if (want_type == DESC_TSS64_AVAIL) {
        c.write_sys(addr, 8, lo | (2ull << 40));  // mark busy
        n.type = DESC_TSS64_BUSY;
    }
    dst = n;
}

void op_ltr(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    const uint16_t sel = static_cast<uint16_t>(c.read_op(i, 0));
    if ((sel & ~3u) == 0) c.fault(VEC_GP, 0);
    load_system_segment(c, sel, c.state().tr, DESC_TSS64_AVAIL);
}

void op_lldt(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    const uint16_t sel = static_cast<uint16_t>(c.read_op(i, 0));
    if ((sel & ~3u) == 0) {
        c.state().ldtr = Segment{};
        c.state().ldtr.unusable = true;
        return;
    }
    load_system_segment(c, sel, c.state().ldtr, DESC_LDT);
}

// STR / SLDT: a register destination gets the selector zero-extended to the operand size.
template <bool Ldt>
void op_store_sel(Cpu& c, const DecodedInsn& i) {
    check_umip(c);
    const uint16_t sel = Ldt ? c.state().ldtr.selector : c.state().tr.selector;
    c.write_op(i, 0, sel);
}

// The selector operand `op` of VERR/VERW/LAR/LSL (read once) and the descriptor it names,
// read without a fault: none for a null selector, an unusable LDT or a selector beyond its
// table's limit. Real and virtual-8086 mode: #UD (the four are protected-mode only).
struct PeekedDescriptor {
    uint16_t sel;
    std::optional<uint64_t> desc;
};
PeekedDescriptor peek_descriptor(Cpu& c, const DecodedInsn& i, int op) {
    const CpuState& s = c.state();
    if (s.mode == Mode::Real16 || (s.rflags & FLAG_VM)) c.undefined();
    const uint16_t sel = static_cast<uint16_t>(c.read_op(i, op));
    const bool ldt = sel & 4;
    const uint64_t base = ldt ? s.ldtr.base : s.gdtr.base;
    const uint64_t limit = ldt ? s.ldtr.limit : s.gdtr.limit;
    if ((sel & ~3u) == 0 || (ldt && s.ldtr.unusable) || (sel | 7u) > limit)
        return {sel, std::nullopt};
    return {sel, c.read_sys(base + (sel & ~7u), 8)};
}

// VERR / VERW r/m16 (SDM vol. 2, VERR/VERW): ZF = 1 when the selector names a code or
// data segment that the current privilege level (and the selector's RPL) may read or
// write, else ZF = 0; no other flag changes and no fault for a bad selector. Real and
// virtual-8086 mode: #UD. Linux's MDS mitigation runs VERW on every return to user mode.
template <bool Write>
void op_verx(Cpu& c, const DecodedInsn& i) {
    CpuState& s = c.state();
    const auto [sel, desc] = peek_descriptor(c, i, 0);
    bool ok = false;
    if (desc) {
        const uint64_t d = *desc;
        const uint8_t type = (d >> 40) & 0xF, dpl = (d >> 45) & 3;
        const bool code = type & 8, conforming = code && (type & 4);
        ok = ((d >> 44) & 1) &&                                      // a code or data segment
             (Write ? !code && (type & 2) : !code || (type & 2)) &&  // writable / readable
             (conforming || (dpl >= s.cpl && dpl >= (sel & 3)));
    }
    if (ok)
        s.rflags |= FLAG_ZF;
    else
        s.rflags &= ~FLAG_ZF;
}

// LAR / LSL r, r/m16 (SDM vol. 2): when the selector names a descriptor of a type valid
// for the instruction that the CPL and the selector's RPL may see (conforming code: any),
// ZF = 1 and the destination gets LAR's access rights (the descriptor's second dword
// masked with 00F0FF00H; FF00H for 16 bits) or LSL's limit in bytes (scaled by G); else
// ZF = 0 and the destination stays. No fault for a bad selector; real and virtual-8086
// mode: #UD. Valid system types: in IA-32e mode the LDT and the 64-bit TSS (and, for LAR,
// the 64-bit call gate); otherwise also the 16-bit TSS (and for LAR the 16-bit call gate
// and the task gate). Linux reads its CPU number as the limit of a GDT data segment with
// LSL in its NMI entry and in the vDSO's getcpu().
bool valid_system_type(uint8_t type, bool lar, bool ia32e) {
    switch (type) {
        case 0x2:
        case 0x9:
        case 0xB:
            return true;
        case 0xC:
            return lar;
        case 0x1:
        case 0x3:
            return !ia32e;
        case 0x4:
        case 0x5:
            return lar && !ia32e;
        default:
            return false;
    }
}
template <bool Lsl>
void op_lar_lsl(Cpu& c, const DecodedInsn& i) {
    CpuState& s = c.state();
    const auto [sel, desc] = peek_descriptor(c, i, 1);
    const uint64_t d = desc.value_or(0);
    bool ok = false;
    if (desc) {
        const uint8_t type = (d >> 40) & 0xF, dpl = (d >> 45) & 3;
        const bool segment = (d >> 44) & 1;
        const bool conforming = segment && (type & 0xC) == 0xC;
        ok = (segment || valid_system_type(type, !Lsl, s.efer & msr::EFER_LMA)) &&
             (conforming || (dpl >= s.cpl && dpl >= (sel & 3)));
    }
    if (!ok) {
        s.rflags &= ~FLAG_ZF;
        return;
    }
    uint64_t v = (d >> 32) & 0x00F0FF00;
    if (Lsl) {
        v = (d & 0xFFFF) | ((d >> 32) & 0xF0000);
        if ((d >> 55) & 1) v = (v << 12) | 0xFFF;
    }
    c.write_op(i, 0, v);
    s.rflags |= FLAG_ZF;
}

// SMSW (SDM vol. 2): a memory destination gets CR0[15:0]; a register one CR0 truncated to
// the operand size (bits 63:16 of RAX with REX.W, bits 31:16 undefined otherwise: CR0's).
void op_smsw(Cpu& c, const DecodedInsn& i) {
    check_umip(c);
    c.write_op(i, 0, c.state().cr0 & size_mask(i.op[0].size));
}

}  // namespace

void op_mov_cr(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    CpuState& s = c.state();
    if (i.op[0].kind == OpKind::Cr) {
        const uint8_t n = i.op[0].reg;
        uint64_t v = c.read_gpr(i.op[1].reg, 8);
        if (s.mode != Mode::Long64) v &= 0xFFFFFFFF;
        c.write_cr(n, v);
    } else {
        const uint8_t n = i.op[1].reg;
        uint64_t v;
        switch (n) {
            case 0:
                v = s.cr0;
                break;
            case 2:
                v = s.cr2;
                break;
            case 3:
                v = s.cr3;
                break;
            case 4:
                v = s.cr4;
                break;
            case 8:
                v = c.read_cr8();
                break;
            default:
                c.undefined();
        }
        c.write_gpr(i.op[0].reg, s.mode == Mode::Long64 ? 8 : 4, v);
    }
}

// MOV to/from DR0-DR7 (SDM vol. 3 §17.2). DR4/DR5 alias DR6/DR7 unless CR4.DE.
void op_mov_dr(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    CpuState& s = c.state();
    const bool to_dr = i.op[0].kind == OpKind::Dr;
    uint8_t n = to_dr ? i.op[0].reg : i.op[1].reg;
    if (n == 4 || n == 5) {
        if (s.cr4 & (1ull << 3)) c.undefined();
        n += 2;
    }
    // DR7.GD: any debug-register access is a #DB fault with DR6.BD; GD is cleared so the
    // handler can use the registers (SDM vol. 3 §17.2.4).
    if (s.dr[7] & msr::DR7_GD) {
        s.dr[6] |= msr::DR6_BD;
        s.dr[7] &= ~msr::DR7_GD;
        c.fault(VEC_DB);
    }
    if (!to_dr) {
        c.write_gpr(i.op[0].reg, s.mode == Mode::Long64 ? 8 : 4, s.dr[n]);
        return;
    }
    uint64_t v = c.read_gpr(i.op[1].reg, 8);
    if (s.mode != Mode::Long64) v &= 0xFFFFFFFF;
    if (n >= 6 && (v >> 32)) c.fault(VEC_GP, 0);
    if (n == 6) v = c.dr6_value(v);
    if (n == 7) return c.write_dr7(v);
    s.dr[n] = v;
}

void op_ud(Cpu& c, const DecodedInsn&) {
    c.undefined();
}

namespace {

void op_rdmsr(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    if (Pmu::owns(static_cast<uint32_t>(c.gpr(RCX)))) c.pmu_catch_up(i);
    const uint64_t v = c.read_msr(static_cast<uint32_t>(c.gpr(RCX)));
    c.write_gpr(RAX, 4, v & 0xFFFFFFFF);
    c.write_gpr(RDX, 4, v >> 32);
}

void op_wrmsr(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    if (Pmu::owns(static_cast<uint32_t>(c.gpr(RCX)))) c.pmu_catch_up(i, true);
    const uint64_t v = (c.gpr(RDX) << 32) | (c.gpr(RAX) & 0xFFFFFFFF);
    c.write_msr(static_cast<uint32_t>(c.gpr(RCX)), v);
}

void op_cpuid(Cpu& c, const DecodedInsn&) {
    CpuidRegs r;
    c.cpuid(static_cast<uint32_t>(c.gpr(RAX)), static_cast<uint32_t>(c.gpr(RCX)), r);
    c.write_gpr(RAX, 4, r.eax);
    c.write_gpr(RBX, 4, r.ebx);
    c.write_gpr(RCX, 4, r.ecx);
    c.write_gpr(RDX, 4, r.edx);
}

void check_tsd(Cpu& c) {
    if ((c.state().cr4 & (1ull << 2)) && c.state().cpl != 0) c.fault(VEC_GP, 0);
}

void op_rdtsc(Cpu& c, const DecodedInsn&) {
    check_tsd(c);
    const uint64_t t = c.tsc();
    c.write_gpr(RAX, 4, t & 0xFFFFFFFF);
    c.write_gpr(RDX, 4, t >> 32);
}

// RDPMC: ECX selects a general (or, with bit 30, fixed) counter; CR4.PCE allows CPL > 0.
void op_rdpmc(Cpu& c, const DecodedInsn& i) {
    const uint64_t v = c.rdpmc(i, static_cast<uint32_t>(c.gpr(RCX)));
    c.write_gpr(RAX, 4, v & 0xFFFFFFFF);
    c.write_gpr(RDX, 4, v >> 32);
}

void op_rdtscp(Cpu& c, const DecodedInsn& i) {
    op_rdtsc(c, i);
    c.write_gpr(RCX, 4, c.state().tsc_aux & 0xFFFFFFFF);
}

void op_invlpg(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    c.invlpg(c.linear(i.op[0]));
}

void op_privileged_nop(Cpu& c, const DecodedInsn&) {
    c.require_cpl0();
}  // WBINVD, INVD

void op_clflush(Cpu& c, const DecodedInsn& i) {
    c.check_access(c.linear(i.op[0]), Access::Read);
}

void op_syscall(Cpu& c, const DecodedInsn&) {
    c.syscall();
}
void op_sysret(Cpu& c, const DecodedInsn& i) {
    c.sysret(i.opsize);
}
template <CpuOwner::HypercallInsn Insn>
void op_hypercall(Cpu& c, const DecodedInsn&) {
    c.hypercall(Insn);
}
void op_sysenter(Cpu& c, const DecodedInsn&) {
    c.sysenter();
}
void op_sysexit(Cpu& c, const DecodedInsn& i) {
    c.sysexit(i.opsize);
}

// RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE: 64-bit mode with CR4.FSGSBASE, else #UD.
template <SegReg Seg, bool Write>
void op_fsgsbase(Cpu& c, const DecodedInsn& i) {
    CpuState& s = c.state();
    if (s.mode != Mode::Long64 || !(s.cr4 & CR4_FSGSBASE)) c.undefined();
    if (!Write) return c.write_op(i, 0, s.seg[Seg].base & size_mask(i.op[0].size));
    uint64_t v = c.read_op(i, 0);
    if (i.op[0].size == 4) v &= 0xFFFFFFFF;
    if (static_cast<uint64_t>(static_cast<int64_t>(v << 16) >> 16) != v) c.fault(VEC_GP, 0);
    c.write_msr(Seg == FS ? msr::IA32_FS_BASE : msr::IA32_GS_BASE, v);
}

void op_rdpid(Cpu& c, const DecodedInsn& i) {
    c.write_op(i, 0, c.state().tsc_aux);
}

void op_swapgs(Cpu& c, const DecodedInsn&) {
    c.swapgs();
}

// LMSW (SDM vol. 2): CR0[3:0] (PE, MP, EM, TS) from the source's low four bits; PE can be
// set this way but not cleared. CPL 0 only; not affected by UMIP.
void op_lmsw(Cpu& c, const DecodedInsn& i) {
    c.require_cpl0();
    const uint64_t src = c.read_op(i, 0) & 0xF;
    const uint64_t cr0 = c.state().cr0;
    c.write_cr(0, (cr0 & ~0xFull) | (src & 0xE) | ((cr0 | src) & CR0_PE));
}

void op_clts(Cpu& c, const DecodedInsn&) {
    c.require_cpl0();
    c.state().cr0 &= ~CR0_TS;
}

template <bool Set>
void op_stac_clac(Cpu& c, const DecodedInsn&) {
    c.require_cpl0();
    if (Set)
        c.state().rflags |= FLAG_AC;
    else
        c.state().rflags &= ~FLAG_AC;
}

}  // namespace

void register_system(HandlerTable& t) {
    t[ZYDIS_MNEMONIC_CLI].fn = op_cli;
    t[ZYDIS_MNEMONIC_STI] = {op_sti, true};
    t[ZYDIS_MNEMONIC_HLT] = {op_hlt, true};
    t[ZYDIS_MNEMONIC_IN] = {op_in, true};
    t[ZYDIS_MNEMONIC_OUT] = {op_out, true};
    t[ZYDIS_MNEMONIC_LGDT].fn = op_lxdt<false>;
    t[ZYDIS_MNEMONIC_LIDT].fn = op_lxdt<true>;
    t[ZYDIS_MNEMONIC_SGDT].fn = op_sxdt<false>;
    t[ZYDIS_MNEMONIC_SIDT].fn = op_sxdt<true>;
    t[ZYDIS_MNEMONIC_LTR].fn = op_ltr;
    t[ZYDIS_MNEMONIC_LLDT].fn = op_lldt;
    t[ZYDIS_MNEMONIC_STR].fn = op_store_sel<false>;
    t[ZYDIS_MNEMONIC_SLDT].fn = op_store_sel<true>;
    t[ZYDIS_MNEMONIC_SMSW].fn = op_smsw;
    t[ZYDIS_MNEMONIC_VERR].fn = op_verx<false>;
    t[ZYDIS_MNEMONIC_VERW].fn = op_verx<true>;
    t[ZYDIS_MNEMONIC_LAR].fn = op_lar_lsl<false>;
    t[ZYDIS_MNEMONIC_LSL].fn = op_lar_lsl<true>;
    t[ZYDIS_MNEMONIC_LMSW] = {op_lmsw, true};  // may set CR0.PE: a new mode
    t[ZYDIS_MNEMONIC_RDMSR].fn = op_rdmsr;
    t[ZYDIS_MNEMONIC_WRMSR] = {op_wrmsr, true};
    t[ZYDIS_MNEMONIC_CPUID].fn = op_cpuid;
    t[ZYDIS_MNEMONIC_RDTSC].fn = op_rdtsc;
    t[ZYDIS_MNEMONIC_RDTSCP].fn = op_rdtscp;
    t[ZYDIS_MNEMONIC_RDPMC].fn = op_rdpmc;
    t[ZYDIS_MNEMONIC_INVLPG] = {op_invlpg, true};
    t[ZYDIS_MNEMONIC_WBINVD].fn = op_privileged_nop;
    t[ZYDIS_MNEMONIC_INVD].fn = op_privileged_nop;
    t[ZYDIS_MNEMONIC_CLFLUSH].fn = op_clflush;
    t[ZYDIS_MNEMONIC_SWAPGS].fn = op_swapgs;
    t[ZYDIS_MNEMONIC_RDFSBASE].fn = op_fsgsbase<FS, false>;
    t[ZYDIS_MNEMONIC_RDGSBASE].fn = op_fsgsbase<GS, false>;
    t[ZYDIS_MNEMONIC_WRFSBASE].fn = op_fsgsbase<FS, true>;
    t[ZYDIS_MNEMONIC_WRGSBASE].fn = op_fsgsbase<GS, true>;
    t[ZYDIS_MNEMONIC_RDPID].fn = op_rdpid;
    t[ZYDIS_MNEMONIC_SYSCALL] = {op_syscall, true};
    t[ZYDIS_MNEMONIC_SYSRET] = {op_sysret, true};
    t[ZYDIS_MNEMONIC_SYSENTER] = {op_sysenter, true};
    t[ZYDIS_MNEMONIC_VMCALL] = {op_hypercall<CpuOwner::HypercallInsn::Vmcall>, true};
    t[ZYDIS_MNEMONIC_VMMCALL] = {op_hypercall<CpuOwner::HypercallInsn::Vmmcall>, true};
    t[ZYDIS_MNEMONIC_SYSEXIT] = {op_sysexit, true};
    t[ZYDIS_MNEMONIC_CLTS].fn = op_clts;
    t[ZYDIS_MNEMONIC_STAC].fn = op_stac_clac<true>;
    t[ZYDIS_MNEMONIC_CLAC].fn = op_stac_clac<false>;
}

}  // namespace softkvm::cpu
