// Privileged state of the CPU: control registers, MSRs, segment loads, IRET, CPUID,
// virtual time and the owner-facing events (port I/O, HLT).
#include <fmt/format.h>

#include "cpu/cpu.h"
#include "cpu/cpu_model.h"
#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

bool canonical(uint64_t v) {
    return static_cast<uint64_t>(static_cast<int64_t>(v << 16) >> 16) == v;
}

constexpr uint64_t kCr0Reserved = 0xFFFFFFFF1FFAFFC0ull;  // bits other than the defined ones
constexpr uint64_t kCr4Supported = CR4_PSE | CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT |
                                   CR4_SMEP | CR4_SMAP | CR4_FSGSBASE | CR4_OSXSAVE | CR4_UMIP |
                                   (1ull << 1) /*PVI*/ | (1ull << 2) /*TSD*/ | (1ull << 3) /*DE*/ |
                                   (1ull << 6) /*MCE*/ | (1ull << 8) /*PCE*/;
constexpr uint64_t kCr3Reserved = ~((1ull << msr::kMaxPhysAddrBits) - 1);
constexpr uint64_t kEferWritable = msr::EFER_SCE | msr::EFER_LME | msr::EFER_NXE;
// DEBUGCTL bits the model implements (spec §2.1): LBR, BTF, FREEZE_LBRS_ON_PMI.
constexpr uint64_t kDebugctlWritable =
    msr::DEBUGCTL_LBR | msr::DEBUGCTL_BTF | msr::DEBUGCTL_FREEZE_LBRS_ON_PMI;

// Decodes an 8-byte segment descriptor into the hidden cache.
Segment unpack_descriptor(uint64_t d, uint16_t sel) {
    Segment s;
    s.selector = sel;
    s.limit = static_cast<uint32_t>((d & 0xFFFF) | ((d >> 32) & 0xF0000));
    s.base = ((d >> 16) & 0xFFFFFF) | (((d >> 56) & 0xFF) << 24);
    s.type = (d >> 40) & 0xF;
    s.s = (d >> 44) & 1;
    s.dpl = (d >> 45) & 3;
    s.present = (d >> 47) & 1;
    s.avl = (d >> 52) & 1;
    s.l = (d >> 53) & 1;
    s.db = (d >> 54) & 1;
    s.g = (d >> 55) & 1;
    if (s.g) s.limit = (s.limit << 12) | 0xFFF;
    return s;
}

}  // namespace

// ---- Control registers (SDM vol. 3 §2.5, §4.1) ----

void Cpu::write_cr(uint8_t n, uint64_t v) {
    const bool long_active = s_.efer & msr::EFER_LMA;
    // The LBR trace's walk resolves RIPs with the paging state it ran under.
    if (n == 0 || n == 3 || n == 4) lbr_.drain_trace();
    switch (n) {
        case 0: {
            if (v & kCr0Reserved) fault(VEC_GP, 0);
            v |= CR0_ET;
            if ((v & CR0_PG) && !(v & CR0_PE)) fault(VEC_GP, 0);
            if ((v & CR0_NW) && !(v & CR0_CD)) fault(VEC_GP, 0);
            const bool pg_on = (v & CR0_PG) && !(s_.cr0 & CR0_PG);
            const bool pg_off = !(v & CR0_PG) && (s_.cr0 & CR0_PG);
            if (pg_on && (s_.efer & msr::EFER_LME)) {
                if (!(s_.cr4 & CR4_PAE)) fault(VEC_GP, 0);
                s_.efer |= msr::EFER_LMA;
            }
            if (pg_off && long_active) {
                if (s_.mode == Mode::Long64) fault(VEC_GP, 0);
                s_.efer &= ~msr::EFER_LMA;
            }
            s_.cr0 = v;
            break;
        }
        case 2:
            s_.cr2 = v;
            return;
        case 3:
            if (v & kCr3Reserved) fault(VEC_GP, 0);
            s_.cr3 = v;
            flush_tlb_nonglobal();
            return;
        case 4:
            if (v & ~kCr4Supported) fault(VEC_GP, 0);
            if (long_active && !(v & CR4_PAE)) fault(VEC_GP, 0);
            s_.cr4 = v;
            break;
        case 8:
            if (v & ~0xFull) fault(VEC_GP, 0);
            s_.cr8 = v;
            owner_.cr8_written(v);
            return;
        default:
            undefined();
    }
    update_mode();
    flush_tlb();
}

// ---- MSRs: the owner sees every access first (owner.h), then the CPU's own table ----

bool Cpu::debugctl_writable(uint64_t v) {
    return !(v & ~(kDebugctlWritable | debugctl_bus_lock_bits()));
}

uint64_t Cpu::read_msr(uint32_t index) {
    uint64_t v = 0;
    if (!lbr_intercept_ && Lbr::owns(index)) {  // pass-through: the owner does not see it
        lbr_touched_ = true;
        if (lbr_.read(index, v) != MsrResult::Handled) fault(VEC_GP, 0);
        return v;
    }
    switch (owner_.rdmsr(index, v)) {
        case MsrResult::Handled:
            return v;
        case MsrResult::Fault:
            fault(VEC_GP, 0);
        case MsrResult::NotMine:
            break;
    }
    if (Pmu::owns(index)) {
        if (pmu_.read(index, v) != MsrResult::Handled) fault(VEC_GP, 0);
        return v;
    }
    if (Lbr::owns(index)) {
        if (lbr_.read(index, v) != MsrResult::Handled) fault(VEC_GP, 0);
        return v;
    }
    switch (mtrr_read(index, v)) {
        case MsrResult::Handled:
            return v;
        case MsrResult::Fault:
            fault(VEC_GP, 0);
        case MsrResult::NotMine:
            break;
    }
    switch (index) {
        case msr::IA32_TSC:
            return tsc();
        case msr::IA32_PERF_CAPABILITIES:
            return perf_caps_;
        case msr::IA32_PLATFORM_ID:
            return 0;
        case msr::IA32_APIC_BASE:
            return s_.apic_base;
        case msr::IA32_FEATURE_CONTROL:
            return 1;  // locked, VMX off
        case msr::IA32_BIOS_SIGN_ID:
            return 0;
        case msr::IA32_SYSENTER_CS:
            return s_.sysenter_cs;
        case msr::IA32_SYSENTER_ESP:
            return s_.sysenter_esp;
        case msr::IA32_SYSENTER_EIP:
            return s_.sysenter_eip;
        case msr::IA32_MISC_ENABLE:
            return s_.misc_enable;
        case msr::IA32_DEBUGCTL:
            return debugctl();
        case msr::IA32_PAT:
            return s_.pat;
        case msr::IA32_EFER:
            return s_.efer;
        case msr::IA32_STAR:
            return s_.star;
        case msr::IA32_LSTAR:
            return s_.lstar;
        case msr::IA32_CSTAR:
            return s_.cstar;
        case msr::IA32_FMASK:
            return s_.fmask;
        case msr::IA32_FS_BASE:
            return s_.seg[FS].base;
        case msr::IA32_GS_BASE:
            return s_.seg[GS].base;
        case msr::IA32_KERNEL_GS_BASE:
            return s_.kernel_gs_base;
        case msr::IA32_TSC_AUX:
            return s_.tsc_aux;
        default:
            fault(VEC_GP, 0);
    }
}

void Cpu::write_msr(uint32_t index, uint64_t v) {
    if (!lbr_intercept_ && Lbr::owns(index)) {
        lbr_touched_ = true;
        if (lbr_.write(index, v) != MsrResult::Handled) fault(VEC_GP, 0);
        return;
    }
    switch (owner_.wrmsr(index, v)) {
        case MsrResult::Handled:
            return;
        case MsrResult::Fault:
            fault(VEC_GP, 0);
        case MsrResult::NotMine:
            break;
    }
    if (Pmu::owns(index)) {
        if (pmu_.write(index, v) != MsrResult::Handled) fault(VEC_GP, 0);
        sync_lbr_freeze();  // GLOBAL_STATUS_RESET/SET may change LBR_Frz
        return;
    }
    if (Lbr::owns(index)) {
        if (lbr_.write(index, v) != MsrResult::Handled) fault(VEC_GP, 0);
        return;
    }
    switch (mtrr_write(index, v)) {
        case MsrResult::Handled:
            flush_tlb();  // cached memory types (the bus-lock detector's) change
            return;
        case MsrResult::Fault:
            fault(VEC_GP, 0);
        case MsrResult::NotMine:
            break;
    }
    switch (index) {
        case msr::IA32_TSC:
            s_.tsc_offset = v - clock();  // the TSC reads v now (clock() counts halted time too)
            return;
        case msr::IA32_PERF_CAPABILITIES:
            fault(VEC_GP, 0);  // read-only to the guest
        case msr::IA32_APIC_BASE: {
            const uint64_t writable = msr::APIC_BASE_BSP | msr::APIC_BASE_EN |
                                      (((1ull << msr::kMaxPhysAddrBits) - 1) & ~0xFFFull);
            if (v & ~writable) fault(VEC_GP, 0);  // x2APIC is not in the CPU model yet
            s_.apic_base = v;
            return;
        }
        case msr::IA32_BIOS_SIGN_ID:
            return;  // microcode update trigger: ignored
        case msr::IA32_MISC_ENABLE:
            s_.misc_enable = v;
            return;
        case msr::IA32_SYSENTER_CS:
            s_.sysenter_cs = v & 0xFFFFFFFF;  // a 32-bit field (as in the VMCS)
            return;
        case msr::IA32_SYSENTER_ESP:
        case msr::IA32_SYSENTER_EIP:
            // Addresses: canonical or #GP (SDM vol. 2, WRMSR; KVM checks the same).
            if (!canonical(v)) fault(VEC_GP, 0);
            (index == msr::IA32_SYSENTER_ESP ? s_.sysenter_esp : s_.sysenter_eip) = v;
            return;
        case msr::IA32_DEBUGCTL:
            if (!debugctl_writable(v)) fault(VEC_GP, 0);
            set_debugctl(v);
            return;
        case msr::IA32_PAT:
            for (int k = 0; k < 8; ++k) {
                uint8_t t = (v >> (8 * k)) & 0xFF;
                if (t == 2 || t == 3 || t > 7) fault(VEC_GP, 0);
            }
            s_.pat = v;
            flush_tlb();  // cached memory types (the bus-lock detector's) change
            return;
        case msr::IA32_EFER: {
            if (v & ~(kEferWritable | msr::EFER_LMA)) fault(VEC_GP, 0);
            // LME cannot change while paging is on; LMA is read-only.
            if ((s_.cr0 & CR0_PG) && ((v ^ s_.efer) & msr::EFER_LME)) fault(VEC_GP, 0);
            s_.efer = (v & kEferWritable) | (s_.efer & msr::EFER_LMA);
            update_mode();
            flush_tlb();
            return;
        }
        case msr::IA32_STAR:
            s_.star = v;
            return;
        case msr::IA32_LSTAR:
        case msr::IA32_CSTAR:
        case msr::IA32_FS_BASE:
        case msr::IA32_GS_BASE:
        case msr::IA32_KERNEL_GS_BASE:
            if (!canonical(v)) fault(VEC_GP, 0);
            if (index == msr::IA32_LSTAR) s_.lstar = v;
            if (index == msr::IA32_CSTAR) s_.cstar = v;
            if (index == msr::IA32_KERNEL_GS_BASE) s_.kernel_gs_base = v;
            if (index == msr::IA32_FS_BASE) s_.seg[FS].base = v;
            if (index == msr::IA32_GS_BASE) s_.seg[GS].base = v;
            update_mode();
            return;
        case msr::IA32_FMASK:
            s_.fmask = v & 0xFFFFFFFFull;
            return;
        case msr::IA32_TSC_AUX:
            if (v >> 32) fault(VEC_GP, 0);
            s_.tsc_aux = v;
            return;
        default:
            fault(VEC_GP, 0);
    }
}

void Cpu::swapgs() {
    if (s_.mode != Mode::Long64) undefined();
    require_cpl0();
    std::swap(s_.seg[GS].base, s_.kernel_gs_base);
    update_mode();
}

// ---- Segments (SDM vol. 3 §3.4, §5.5; the forms a 64-bit kernel uses) ----

// Where the descriptor `sel` names lives: the GDT, or the LDT when TI (bit 2) is set.
// #GP(selector) if it lies beyond the table's limit or the LDT is unusable.
uint64_t Cpu::descriptor_address(uint16_t sel) {
    const bool ldt = sel & 4;
    if (ldt && (s_.ldtr.unusable || !s_.ldtr.present)) fault(VEC_GP, sel & ~3u);
    const uint64_t base = ldt ? s_.ldtr.base : s_.gdtr.base;
    const uint64_t limit = ldt ? s_.ldtr.limit : s_.gdtr.limit;
    if ((sel | 7u) > limit) fault(VEC_GP, sel & ~3u);
    return base + (sel & ~7u);
}

void Cpu::load_segment(SegReg sr, uint16_t sel) {
    if (sr == CS) undefined();  // MOV CS is #UD
    Segment& seg = s_.seg[sr];
    if (!(s_.cr0 & CR0_PE)) {
        seg.selector = sel;
        seg.base = static_cast<uint64_t>(sel) << 4;
        update_mode();
        return;
    }
    const uint8_t rpl = sel & 3;
    if ((sel & ~3) == 0) {
        // Null selector: allowed for data segments; for SS only in 64-bit mode below CPL3.
        if (sr == SS && !(s_.mode == Mode::Long64 && s_.cpl != 3 && rpl == s_.cpl))
            fault(VEC_GP, 0);
        seg = Segment{};
        seg.selector = sel;
        seg.unusable = true;
        if (sr == SS) seg.dpl = s_.cpl;
        update_mode();
        return;
    }
    const uint64_t addr = descriptor_address(sel);
    uint64_t d = read_sys(addr, 8);
    Segment n = unpack_descriptor(d, sel);
    const bool code = n.type & 8;
    if (!n.s) fault(VEC_GP, sel & ~3u);
    if (sr == SS) {
        if (code || !(n.type & 2) || rpl != s_.cpl || n.dpl != s_.cpl) fault(VEC_GP, sel & ~3u);
        if (!n.present) fault(VEC_SS, sel & ~3u);
    } else {
        if (code && !(n.type & 2)) fault(VEC_GP, sel & ~3u);  // execute-only code
        const bool conforming = code && (n.type & 4);
        if (!conforming && (rpl > n.dpl || s_.cpl > n.dpl)) fault(VEC_GP, sel & ~3u);
        if (!n.present) fault(VEC_NP, sel & ~3u);
    }
    if (!(d & (1ull << 40))) {  // the accessed bit, set with a locked update (SDM §9.1.2.1)
        check_implicit_lock(addr, 8);
        write_sys(addr, 8, d | (1ull << 40));
    }
    n.type |= 1;
    seg = n;
    update_mode();
}

void Cpu::load_cs(uint16_t sel, uint8_t new_cpl) {
    if ((s_.cr0 & CR0_PE) && (sel & ~3) == 0) fault(VEC_GP, 0);
    load_cs(sel, new_cpl, (s_.cr0 & CR0_PE) ? read_sys(descriptor_address(sel), 8) : 0);
}

void Cpu::load_cs(uint16_t sel, uint8_t new_cpl, uint64_t d) {
    if (!(s_.cr0 & CR0_PE)) {
        s_.seg[CS].selector = sel;
        s_.seg[CS].base = static_cast<uint64_t>(sel) << 4;
        update_mode();
        return;
    }
    if ((sel & ~3) == 0) fault(VEC_GP, 0);
    const uint64_t addr = descriptor_address(sel);
    Segment n = unpack_descriptor(d, static_cast<uint16_t>((sel & ~3u) | new_cpl));
    if (!n.s || !(n.type & 8)) fault(VEC_GP, sel & ~3u);
    if (!n.present) fault(VEC_NP, sel & ~3u);
    if ((s_.efer & msr::EFER_LMA) && n.l && n.db) fault(VEC_GP, sel & ~3u);
    if (!(d & (1ull << 40))) {
        check_implicit_lock(addr, 8);
        write_sys(addr, 8, d | (1ull << 40));
    }
    n.type |= 1;
    s_.seg[CS] = n;
    s_.cpl = new_cpl;
    update_mode();
}

// Far JMP / far CALL in protected mode (SDM vol. 2, JMP and CALL): the target must be a
// present code segment the current privilege level may use directly: conforming with
// DPL <= CPL, or non-conforming with RPL <= CPL and DPL == CPL; not L and D together in
// IA-32e mode; outside 64-bit code the offset within its limit. Call gates, task gates and
// TSSs are not implemented (the run stops saying so); other system descriptors #GP.
uint64_t Cpu::check_far_target(uint16_t sel, uint64_t offset) {
    if (!(s_.cr0 & CR0_PE) || (s_.rflags & FLAG_VM)) return 0;
    if ((sel & ~3) == 0) fault(VEC_GP, 0);
    const uint64_t d = read_sys(descriptor_address(sel), 8);
    const Segment n = unpack_descriptor(d, sel);
    const bool lma = s_.efer & msr::EFER_LMA;
    if (!n.s) {
        const bool gate_or_tss =
            lma ? n.type == 0xC
                : (n.type == 0x1 || n.type == 0x3 || n.type == 0x4 || n.type == 0x5 ||
                   n.type == 0x9 || n.type == 0xB || n.type == 0xC);
        if (gate_or_tss)
            unsupported("far JMP/CALL through a call gate, task gate or TSS is not implemented");
        fault(VEC_GP, sel & ~3u);
    }
    if (!(n.type & 8)) fault(VEC_GP, sel & ~3u);
    if (lma && n.l && n.db) fault(VEC_GP, sel & ~3u);
    if (n.type & 4) {
        if (n.dpl > s_.cpl) fault(VEC_GP, sel & ~3u);
    } else if ((sel & 3) > s_.cpl || n.dpl != s_.cpl) {
        fault(VEC_GP, sel & ~3u);
    }
    if (!n.present) fault(VEC_NP, sel & ~3u);
    if (!(lma && n.l) && offset > n.limit) fault(VEC_GP, 0);
    return d;
}

// IRET (SDM vol. 2, IRET): 64-bit IRETQ to the same or an outer privilege level, and
// protected-mode IRET to the same privilege level.
void Cpu::iret(uint8_t opsize) {
    if (!(s_.cr0 & CR0_PE)) unsupported("real-mode IRET is not implemented");
    if (s_.rflags & FLAG_NT) unsupported("IRET with NT set (task return) is not implemented");
    const uint64_t saved_rsp = s_.gpr[RSP];
    const uint64_t rip = pop(opsize);
    const uint16_t cs = static_cast<uint16_t>(pop(opsize));
    const uint64_t fl = pop(opsize);
    const uint8_t rpl = cs & 3;
    if (rpl < s_.cpl) {
        s_.gpr[RSP] = saved_rsp;
        fault(VEC_GP, cs & ~3u);
    }
    uint64_t new_rsp = 0, ss = 0;
    const bool long64 = s_.mode == Mode::Long64;
    const bool pop_stack = long64 || rpl > s_.cpl;  // IRETQ always pops SS:RSP
    if (pop_stack) {
        new_rsp = pop(opsize);
        ss = pop(opsize);
    }
    uint64_t writable = FLAGS_WRITABLE | FLAG_VIF | FLAG_VIP;
    const uint8_t iopl = (s_.rflags >> 12) & 3;
    if (s_.cpl > 0) writable &= ~FLAG_IOPL;
    if (s_.cpl > iopl) writable &= ~FLAG_IF;
    if (opsize == 2) writable &= 0xFFFF;
    const CpuState before = s_;
    try {
        load_cs(cs, rpl);
        if (pop_stack) {
            s_.gpr[RSP] = new_rsp;
            load_segment(SS, static_cast<uint16_t>(ss));
        }
    } catch (...) {
        s_ = before;
        s_.gpr[RSP] = saved_rsp;
        update_mode();
        throw;
    }
    s_.rflags = (s_.rflags & ~writable) | (fl & writable) | FLAG_FIXED1;
    nmi_blocked_ = false;  // IRET ends NMI blocking (SDM vol. 3 §6.7.1)
    flags_changed();
    jump(rip);
}

// ---- SYSCALL / SYSRET, SYSENTER / SYSEXIT (SDM vol. 2; Intel's forms) ----

namespace {
// The fixed flat segment SYSCALL/SYSRET/SYSENTER/SYSEXIT load: `code64` sets L (64-bit
// code), otherwise a code segment is 32-bit (D) and a data segment has B set.
Segment flat_segment(uint16_t sel, bool code, uint8_t dpl, bool code64 = true) {
    Segment s;
    s.selector = sel;
    s.base = 0;
    s.limit = 0xFFFFFFFF;
    s.g = true;
    s.s = true;
    s.present = true;
    s.dpl = dpl;
    s.type = code ? 0xB : 0x3;
    s.l = code && code64;
    s.db = !(code && code64);
    return s;
}
}  // namespace

void Cpu::syscall() {
    // Intel: #UD outside 64-bit mode (compatibility mode included; AMD's CSTAR path is
    // not in this model).
    if (!(s_.efer & msr::EFER_SCE) || s_.mode != Mode::Long64) undefined();
    const uint16_t sel = static_cast<uint16_t>(s_.star >> 32) & 0xFFFC;
    s_.gpr[RCX] = next_rip_;
    s_.gpr[R11] = s_.rflags & ~FLAG_RF;
    s_.rflags = (s_.rflags & ~(s_.fmask | FLAG_RF)) | FLAG_FIXED1;
    s_.seg[CS] = flat_segment(sel, true, 0);
    s_.seg[SS] = flat_segment(static_cast<uint16_t>(sel + 8), false, 0);
    s_.cpl = 0;
    update_mode();
    next_rip_ = s_.lstar;
}

// SYSRET: REX.W returns to 64-bit code at STAR[63:48]+16, without it to compatibility
// mode at STAR[63:48] (RIP = ECX); SS is STAR[63:48]+8 either way.
void Cpu::sysret(uint8_t opsize) {
    if (!(s_.efer & msr::EFER_SCE) || s_.mode != Mode::Long64) undefined();
    require_cpl0();
    const bool to64 = opsize == 8;
    if (to64 && !canonical(s_.gpr[RCX])) fault(VEC_GP, 0);
    const uint16_t base = static_cast<uint16_t>(s_.star >> 48);
    const uint16_t cs = static_cast<uint16_t>((to64 ? base + 16 : base) | 3);
    s_.seg[CS] = flat_segment(cs, true, 3, to64);
    // SS keeps the selector's RPL 3 and a flat writable data cache (SDM: SYSRET).
    s_.seg[SS] = flat_segment(static_cast<uint16_t>((base + 8) | 3), false, 3);
    s_.rflags = (s_.gpr[R11] & FLAGS_WRITABLE & ~(FLAG_RF | FLAG_VM)) | FLAG_FIXED1;
    s_.cpl = 3;
    update_mode();
    next_rip_ = to64 ? s_.gpr[RCX] : s_.gpr[RCX] & 0xFFFFFFFF;
}

// SYSENTER: to CPL 0 at IA32_SYSENTER_CS/EIP/ESP; in IA-32e mode the target is 64-bit
// code (Intel; AMD raises #UD there). Real mode or a null IA32_SYSENTER_CS: #GP(0).
void Cpu::sysenter() {
    if (!(s_.cr0 & CR0_PE) || (s_.sysenter_cs & 0xFFFC) == 0) fault(VEC_GP, 0);
    const bool ia32e = s_.efer & msr::EFER_LMA;
    const uint16_t sel = static_cast<uint16_t>(s_.sysenter_cs & 0xFFFC);
    s_.rflags &= ~(FLAG_VM | FLAG_IF | FLAG_RF);
    s_.seg[CS] = flat_segment(sel, true, 0, ia32e);
    s_.seg[SS] = flat_segment(static_cast<uint16_t>(sel + 8), false, 0);
    s_.cpl = 0;
    update_mode();
    s_.gpr[RSP] = ia32e ? s_.sysenter_esp : s_.sysenter_esp & 0xFFFFFFFF;
    next_rip_ = ia32e ? s_.sysenter_eip : s_.sysenter_eip & 0xFFFFFFFF;
}

// SYSEXIT: to CPL 3 at RDX/RCX. REX.W: 64-bit code at IA32_SYSENTER_CS+32 (SS +40);
// otherwise 32-bit code at +16 (SS +24). #GP(0) at CPL > 0, in real mode, with a null
// IA32_SYSENTER_CS, or (REX.W) a non-canonical RCX or RDX.
void Cpu::sysexit(uint8_t opsize) {
    if (!(s_.cr0 & CR0_PE) || (s_.sysenter_cs & 0xFFFC) == 0) fault(VEC_GP, 0);
    require_cpl0();
    const bool to64 = opsize == 8;
    if (to64 && (!canonical(s_.gpr[RCX]) || !canonical(s_.gpr[RDX]))) fault(VEC_GP, 0);
    const uint16_t base = static_cast<uint16_t>(s_.sysenter_cs);
    s_.seg[CS] = flat_segment(static_cast<uint16_t>((base + (to64 ? 32 : 16)) | 3), true, 3, to64);
    s_.seg[SS] = flat_segment(static_cast<uint16_t>((base + (to64 ? 40 : 24)) | 3), false, 3);
    s_.cpl = 3;
    update_mode();
    s_.gpr[RSP] = to64 ? s_.gpr[RCX] : s_.gpr[RCX] & 0xFFFFFFFF;
    next_rip_ = to64 ? s_.gpr[RDX] : s_.gpr[RDX] & 0xFFFFFFFF;
}

// ---- CPUID, time, I/O, HLT ----

void Cpu::cpuid(uint32_t leaf, uint32_t subleaf, CpuidRegs& r) {
    model_cpuid(*model_, leaf, subleaf, r);
    // CPUID.1:ECX.OSXSAVE[27] mirrors CR4.OSXSAVE.
    if (leaf == 1 && (s_.cr4 & CR4_OSXSAVE)) r.ecx |= 1u << 27;
    owner_.cpuid(leaf, subleaf, r);
}

uint64_t Cpu::read_cr8() {
    uint64_t v = s_.cr8;
    owner_.cr8_read(v);
    return v;
}

uint64_t Cpu::tsc() const {
    return clock() + s_.tsc_offset;
}

// I/O permission (SDM vol. 1 §19.5): above IOPL, every port's bit in the TSS I/O
// permission bitmap must be clear, and the bitmap bytes must lie within the TSS limit.
void Cpu::check_io(uint16_t port, uint8_t size) {
    if (!(s_.cr0 & CR0_PE) || s_.cpl <= ((s_.rflags >> 12) & 3)) return;
    if (s_.tr.unusable || s_.tr.limit < 0x67) fault(VEC_GP, 0);
    const uint64_t map = read_sys(s_.tr.base + 0x66, 2);
    const uint64_t byte = map + port / 8;
    if (byte + 1 > s_.tr.limit) fault(VEC_GP, 0);
    const uint64_t bits = read_sys(s_.tr.base + byte, 2);
    if ((bits >> (port & 7)) & ((1u << size) - 1)) fault(VEC_GP, 0);
}

void Cpu::port_in(uint16_t port, uint8_t size, uint32_t& value) {
    check_io(port, size);
    value = 0;
    if (owner_.port_in(port, size, value) == Action::Exit) {
        read_exit_ = true;
        throw StopBeforeRetire{};
    }
    value &= static_cast<uint32_t>(size_mask(size));
}

void Cpu::port_out(uint16_t port, uint8_t size, uint32_t value) {
    check_io(port, size);
    if (owner_.port_out(port, size, value) == Action::Exit) stop_flags_ |= kStopOwner;
}

void Cpu::halt() {
    require_cpl0();
    // Done: the CPU waits for an interrupt (or the owner's next deadline); Exit: the
    // owner handles HLT itself (a userspace HLT exit).
    if (owner_.hlt() == Action::Exit)
        stop_flags_ |= kStopOwner;
    else
        halted_ = true;
}

}  // namespace softkvm::cpu
