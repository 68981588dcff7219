// The emu vCPU: KVM_RUN semantics over the software CPU. Exits follow struct kvm_run
// (<linux/kvm.h>): port I/O and MMIO without an in-kernel device exit to userspace; an IN
// or MMIO read completes on the next run() with the data the VMM stored in the record.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "cpu/msr_index.h"
#include "hv/vm.h"

namespace softkvm::hv {
namespace {

abi::Segment to_abi(const cpu::Segment& s) {
    return abi::convert_segment<abi::Segment>(s);
}
cpu::Segment from_abi(const abi::Segment& s) {
    return abi::convert_segment<cpu::Segment>(s);
}

// CPUID.1:ECX bit 31: "running under a hypervisor", set by KVM for its guests.
constexpr uint32_t kCpuid1EcxHypervisor = 1u << 31;
// The in-kernel local APIC's CPUID bits (SDM vol. 2, CPUID leaf 1).
constexpr uint32_t kCpuid1EcxX2apic = 1u << 21;
constexpr uint32_t kCpuid1EcxTscDeadline = 1u << 24;
constexpr uint32_t kCpuid1EdxApic = 1u << 9;
// Machine-check exception and architecture: the hv layer's Mce keeps the MSRs.
constexpr uint32_t kCpuid1EdxMce = 1u << 7;
constexpr uint32_t kCpuid1EdxMca = 1u << 14;
constexpr uint32_t kCpuid1EcxPdcm = 1u << 15;  // IA32_PERF_CAPABILITIES exists

}  // namespace

Vcpu::Vcpu(Vm& vm, uint32_t id) : vm_(vm), id_(id), cpu_(*this), lapic_(id) {
    cpu_.share_code_pages(vm.code_pages());
    for (const MemorySlot& s : vm.slots()) cpu_.add_ram(s.gpa, s.size, s.host);
    vm.vcpu_list_.push_back(this);
    // Application processors start waiting for a start-up IPI, and only the BSP has
    // IA32_APIC_BASE.BSP set.
    if (id != 0) {
        wait_sipi_ = true;
        cpu_.state().apic_base &= ~cpu::msr::APIC_BASE_BSP;
    }
    // softkvm boots guests without firmware; start with the MTRR state Firecracker's vCPU
    // set-up gives its guests: MTRRs enabled, default type write-back, no fixed or
    // variable ranges in use.
    cpu_.state().mtrr_def_type = cpu::msr::MTRR_DEF_ENABLE | static_cast<uint8_t>(cpu::MemType::WB);
    set_cpu_model(cpu::default_cpu_model());
}

Vcpu::~Vcpu() {
    std::erase(vm_.vcpu_list_, this);
}

void Vcpu::code_page_marked(uint64_t page) {
    for (Vcpu* v : vm_.vcpus())
        if (v != this) v->cpu_.drop_write_tlb(page);
}

void Vcpu::code_page_written(uint64_t page) {
    for (Vcpu* v : vm_.vcpus())
        if (v != this) v->cpu_.forget_code_page(page);
}

void Vcpu::receive_ipi(const Lapic::Ipi& ipi) {
    switch (ipi.mode) {
        case 0:  // fixed
            lapic_.raise(ipi.vector, ipi.level);
            cpu_.request_interrupt_check();
            break;
        case 4:
            cpu_.request_nmi();
            break;
        case 5:
            init();
            break;
        case 6:
            sipi(ipi.vector);
            break;
        default:
            break;  // SMI, lowest priority...: not in the model
    }
}

bool Vcpu::apic_matches(uint32_t dest, bool logical) const {
    if (!(cpu_.state().apic_base & cpu::msr::APIC_BASE_EN)) return false;
    return lapic_.matches(dest, logical, x2apic());
}

bool Vcpu::apic_irr(uint8_t vector) const {
    uint32_t v = 0;
    lapic_.read(apic::IRR + ((vector >> 5) << 4), v, cpu_.clock(), false);
    return v & (1u << (vector & 31));
}

void Vcpu::init() {
    wait_sipi_ = true;
    lapic_ = Lapic(id_);
}

void Vcpu::sipi(uint8_t vector) {
    if (!wait_sipi_) return;  // a start-up IPI only counts after INIT (SDM §8.4.4)
    wait_sipi_ = false;
    cpu::CpuState& s = cpu_.state();
    auto real = [](uint16_t sel, uint8_t type) {
        cpu::Segment g;
        g.selector = sel, g.base = static_cast<uint64_t>(sel) << 4, g.limit = 0xFFFF;
        g.type = type, g.s = true, g.present = true;
        return g;
    };
    s.seg = {real(0, 3), real(static_cast<uint16_t>(vector << 8), 0xB),
             real(0, 3), real(0, 3),
             real(0, 3), real(0, 3)};
    s.rip = 0;
    s.rflags = 0x2;
    s.cr0 = cpu::CR0_ET, s.cr3 = 0, s.cr4 = 0, s.efer = 0;
    s.gdtr = {0, 0xFFFF}, s.idtr = {0, 0xFFFF};
    cpu_.wake();
    cpu_.state_changed();
}

void Vcpu::run() {
    run_.flags = 0;
    if (wait_sipi_) {  // an AP before its start-up IPI does not run
        run_.exit_reason = abi::KVM_EXIT_HLT;
        return;
    }
    run_.detail.clear();
    if (run_.immediate_exit) {
        run_.exit_reason = abi::KVM_EXIT_INTR;
        return;
    }
    run_.exit_reason = abi::KVM_EXIT_UNKNOWN;
    run_.bus_lock = {};
    cpu_.set_bus_lock_reports(vm_.bus_lock_exits());
    // The CPU runs in virtual-time scheduling slices; at each slice's end the hv layer
    // may release an unused guest LBR event (vpmu.cc).
    cpu::StopReason stop;
    for (;;) {
        const bool slice_first = !insn_limit_ || slice_end_ < insn_limit_;
        stop = cpu_.run(slice_first ? slice_end_ : insn_limit_);
        if (stop != cpu::StopReason::InsnLimit || !slice_first ||
            cpu_.instructions_retired() < slice_end_)
            break;
        slice_end_ += kSliceInsns;
        lbr_slice_end();
    }
    switch (stop) {
        case cpu::StopReason::Owner:
            break;  // the callback filled the record
        case cpu::StopReason::InsnLimit:
            run_.exit_reason = abi::KVM_EXIT_INTR;
            break;
        case cpu::StopReason::Halted:
            run_.exit_reason = abi::KVM_EXIT_HLT;
            break;
        case cpu::StopReason::Kicked:
        case cpu::StopReason::Deadline:  // a userspace device's clock deadline
            run_.exit_reason = abi::KVM_EXIT_INTR;
            break;
        case cpu::StopReason::Shutdown:
            run_.exit_reason = abi::KVM_EXIT_SHUTDOWN;
            run_.detail = cpu_.stop_detail();
            break;
        case cpu::StopReason::Stalled:
            run_.exit_reason = abi::KVM_EXIT_NOTIFY;
            run_.notify.flags = 0;  // the guest can go on (the next run() continues it)
            run_.detail = cpu_.stop_detail();
            break;
        case cpu::StopReason::Emulation:
            run_.exit_reason = abi::KVM_EXIT_INTERNAL_ERROR;
            run_.internal.suberror = abi::KVM_INTERNAL_ERROR_EMULATION;
            run_.detail = cpu_.stop_detail();
            break;
    }
}

void Vcpu::io_exit(uint8_t direction, uint16_t port, uint8_t size) {
    run_.exit_reason = abi::KVM_EXIT_IO;
    run_.io = {};
    run_.io.direction = direction;
    run_.io.size = size;
    run_.io.port = port;
    run_.io.count = 1;  // one element per exit: string I/O is not in the CPU model yet
}

void Vcpu::mmio_exit(uint64_t gpa, uint8_t size, bool is_write) {
    run_.exit_reason = abi::KVM_EXIT_MMIO;
    run_.mmio = {};
    run_.mmio.phys_addr = gpa;
    run_.mmio.len = size;
    run_.mmio.is_write = is_write;
}

cpu::Action Vcpu::port_in(uint16_t port, uint8_t size, uint32_t& value) {
    if (size == 1 && Pic::claims(port)) {  // the in-kernel PIC, as KVM's
        value = vm_.pic().read(port);
        vm_.pic_changed();
        return cpu::Action::Done;
    }
    if (pending_ == Pending::PortIn && run_.io.port == port && run_.io.size == size) {
        pending_ = Pending::None;
        value = 0;
        std::memcpy(&value, run_.io.data, size);
        return cpu::Action::Done;
    }
    pending_ = Pending::PortIn;
    io_exit(abi::KVM_EXIT_IO_IN, port, size);
    return cpu::Action::Exit;
}

cpu::Action Vcpu::port_out(uint16_t port, uint8_t size, uint32_t value) {
    if (size == 1 && Pic::claims(port)) {
        vm_.pic().write(port, static_cast<uint8_t>(value));
        vm_.pic_changed();
        return cpu::Action::Done;
    }
    io_exit(abi::KVM_EXIT_IO_OUT, port, size);
    std::memcpy(run_.io.data, &value, size);
    return cpu::Action::Exit;
}

cpu::Action Vcpu::mmio_read(uint64_t gpa, uint8_t size, uint64_t& value) {
    if (apic_mmio(gpa)) {
        uint32_t v = 0;
        // Misaligned or reserved accesses read 0 (KVM's behaviour for the APIC page).
        if ((gpa & 3) == 0 && size == 4) lapic_.read(gpa & 0xFF0, v, cpu_.clock(), false);
        value = (gpa & 0xF) == 0 ? v : 0;
        return cpu::Action::Done;
    }
    if (ioapic_mmio(gpa)) {
        value = vm_.ioapic().mmio_read(gpa - ioapic::kBase, size);
        return cpu::Action::Done;
    }
    if (pending_ == Pending::MmioRead && run_.mmio.phys_addr == gpa && run_.mmio.len == size) {
        pending_ = Pending::None;
        value = 0;
        std::memcpy(&value, run_.mmio.data, size);
        return cpu::Action::Done;
    }
    pending_ = Pending::MmioRead;
    mmio_exit(gpa, size, false);
    return cpu::Action::Exit;
}

cpu::Action Vcpu::mmio_write(uint64_t gpa, uint8_t size, uint64_t value) {
    if (apic_mmio(gpa)) {
        if ((gpa & 0xF) == 0 && size == 4)
            lapic_.write(gpa & 0xFF0, static_cast<uint32_t>(value), cpu_.clock(), false);
        sync_apic();
        return cpu::Action::Done;
    }
    if (ioapic_mmio(gpa)) {
        vm_.ioapic().mmio_write(gpa - ioapic::kBase, size, value);
        return cpu::Action::Done;
    }
    mmio_exit(gpa, size, true);
    std::memcpy(run_.mmio.data, &value, size);
    return cpu::Action::Exit;
}

cpu::MsrResult Vcpu::rdmsr(uint32_t index, uint64_t& value) {
    if (index == cpu::msr::IA32_APIC_BASE || index == apic::IA32_TSC_DEADLINE ||
        (index >= apic::kMsrBase && index < apic::kMsrBase + 0x100))
        return apic_rdmsr(index, value);
    if (const cpu::MsrResult r = mce_.read(index, value); r != cpu::MsrResult::NotMine) return r;
    return pmu_rdmsr(index, value);
}

cpu::MsrResult Vcpu::wrmsr(uint32_t index, uint64_t value) {
    if (index == cpu::msr::IA32_APIC_BASE || index == apic::IA32_TSC_DEADLINE ||
        (index >= apic::kMsrBase && index < apic::kMsrBase + 0x100))
        return apic_wrmsr(index, value);
    if (const cpu::MsrResult r = mce_.write(index, value); r != cpu::MsrResult::NotMine) return r;
    return pmu_wrmsr(index, value);
}

// ---- Local APIC plumbing ----

// The IOAPIC's window, an in-kernel device as in KVM (accesses that span its end are
// the VMM's).
bool Vcpu::ioapic_mmio(uint64_t gpa) {
    return gpa >= ioapic::kBase && gpa < ioapic::kBase + ioapic::kSize;
}

bool Vcpu::x2apic() const {
    return cpu_.state().apic_base & cpu::msr::APIC_BASE_EXTD;
}

bool Vcpu::apic_mmio(uint64_t gpa) const {
    const uint64_t base = cpu_.state().apic_base;
    if (!(base & cpu::msr::APIC_BASE_EN) || x2apic()) return false;
    return (gpa & ~0xFFFull) == (base & ~0xFFFull);
}

cpu::MsrResult Vcpu::apic_rdmsr(uint32_t index, uint64_t& value) {
    const cpu::CpuState& s = cpu_.state();
    if (index == cpu::msr::IA32_APIC_BASE) {
        value = s.apic_base;
        return cpu::MsrResult::Handled;
    }
    if (index == apic::IA32_TSC_DEADLINE) {
        value = lapic_.tsc_deadline();
        return cpu::MsrResult::Handled;
    }
    if (!x2apic()) return cpu::MsrResult::Fault;
    const uint32_t off = (index - apic::kMsrBase) << 4;
    uint32_t v = 0;
    if (!lapic_.read(off, v, cpu_.clock(), true)) return cpu::MsrResult::Fault;
    value = v;
    if (off == apic::ICR_LOW) {
        uint32_t high = 0;
        lapic_.read(apic::ICR_HIGH, high, cpu_.clock(), false);
        value |= static_cast<uint64_t>(high) << 32;
    }
    return cpu::MsrResult::Handled;
}

cpu::MsrResult Vcpu::apic_wrmsr(uint32_t index, uint64_t value) {
    cpu::CpuState& s = cpu_.state();
    if (index == cpu::msr::IA32_APIC_BASE) {
        using namespace cpu::msr;
        const uint64_t addr_mask = ((1ull << kMaxPhysAddrBits) - 1) & ~0xFFFull;
        if (value & ~(addr_mask | APIC_BASE_BSP | APIC_BASE_EN | APIC_BASE_EXTD))
            return cpu::MsrResult::Fault;
        // Invalid transitions (SDM vol. 3 §11.12.5): EXTD without EN, x2APIC -> xAPIC.
        if ((value & APIC_BASE_EXTD) && !(value & APIC_BASE_EN)) return cpu::MsrResult::Fault;
        if (x2apic() && (value & APIC_BASE_EN) && !(value & APIC_BASE_EXTD))
            return cpu::MsrResult::Fault;
        s.apic_base = value;
        return cpu::MsrResult::Handled;
    }
    if (index == apic::IA32_TSC_DEADLINE) {
        lapic_.set_tsc_deadline(value, static_cast<int64_t>(s.tsc_offset));
        sync_apic();
        return cpu::MsrResult::Handled;
    }
    if (!x2apic()) return cpu::MsrResult::Fault;
    const uint32_t off = (index - apic::kMsrBase) << 4;
    if (off == apic::ICR_LOW) {
        lapic_.write_icr(value, cpu_.clock(), true);
    } else if ((value >> 32) ||
               !lapic_.write(off, static_cast<uint32_t>(value), cpu_.clock(), true)) {
        return cpu::MsrResult::Fault;
    }
    sync_apic();
    return cpu::MsrResult::Handled;
}

void Vcpu::sync_apic() {
    if (lapic_.take_nmi()) cpu_.request_nmi();
    // The EOI of a level-triggered vector goes to the IOAPIC, which may fire again.
    if (const int v = lapic_.take_level_eoi(); v >= 0) vm_.level_eoi(static_cast<uint8_t>(v));
    for (const Lapic::Ipi& ipi : lapic_.take_outbox()) vm_.deliver_ipi(ipi, this);
    rearm_deadline();
    if (lapic_.deliverable() >= 0) cpu_.request_interrupt_check();
}

void Vcpu::set_clock_deadline(uint64_t at) {
    device_deadline_ = at;
    rearm_deadline();
}

void Vcpu::rearm_deadline() {
    cpu_.set_deadline(std::min(lapic_.next_deadline(), device_deadline_));
}

void Vcpu::cr8_written(uint64_t value) {
    lapic_.write(apic::TPR, static_cast<uint32_t>(value << 4), cpu_.clock(), x2apic());
    sync_apic();
}

void Vcpu::cr8_read(uint64_t& value) {
    uint32_t tpr = 0;
    lapic_.read(apic::TPR, tpr, cpu_.clock(), x2apic());
    value = tpr >> 4;
}

bool Vcpu::deadline() {
    lapic_.advance(cpu_.clock());
    const bool device = cpu_.clock() >= device_deadline_;  // the run ends for userspace's
    if (device) device_deadline_ = cpu::Cpu::kNever;
    sync_apic();
    return device;
}

// LINT0 as the 8259's virtual wire (KVM's kvm_apic_accept_pic_intr): on the boot vCPU,
// when its local APIC is disabled in IA32_APIC_BASE or LVT LINT0 is unmasked in ExtINT
// mode (SDM vol. 3 §10.5.1).
bool Vcpu::accepts_extint() const {
    if (id_ != 0) return false;
    if (!(cpu_.state().apic_base & cpu::msr::APIC_BASE_EN)) return true;
    uint32_t lvt0 = 0;
    lapic_.read(apic::LVT_LINT0, lvt0, cpu_.clock(), x2apic());
    return !(lvt0 & apic::LVT_MASKED) && ((lvt0 >> 8) & 7) == kLvtExtInt;
}

int Vcpu::acknowledge_interrupt() {
    // An ExtINT comes before the local APIC's vectors (it bypasses TPR and ISR).
    if (accepts_extint() && vm_.pic().output()) return vm_.pic().acknowledge();
    const int v = lapic_.deliverable();
    if (v >= 0) lapic_.accept(static_cast<uint8_t>(v));
    return v;
}

// With KVM_BUS_LOCK_DETECTION_EXIT (spec §4): the instruction has retired; the run ends
// with KVM_EXIT_X86_BUS_LOCK, or, when the same instruction already ended it with an exit
// that goes to userspace (MMIO, I/O), that exit carries KVM_RUN_X86_BUS_LOCK in `flags`.
cpu::Action Vcpu::bus_lock(const cpu::BusLock& b) {
    run_.flags |= abi::KVM_RUN_X86_BUS_LOCK;
    run_.bus_lock = {1, static_cast<uint8_t>(b.kind == cpu::BusLockKind::Split), b.rip};
    if (run_.exit_reason == abi::KVM_EXIT_UNKNOWN) run_.exit_reason = abi::KVM_EXIT_X86_BUS_LOCK;
    return cpu::Action::Exit;
}

void Vcpu::cpuid(uint32_t leaf, uint32_t subleaf, cpu::CpuidRegs& regs) {
    if (leaf == 0xB) regs.edx = id_;  // x2APIC ID
    kvm_cpuid(leaf, regs);
    if (leaf == 1) {
        regs.ecx |= kCpuid1EcxHypervisor | kCpuid1EcxX2apic | kCpuid1EcxTscDeadline;
        if (cpu_.state().apic_base & cpu::msr::APIC_BASE_EN) regs.edx |= kCpuid1EdxApic;
        regs.edx |= kCpuid1EdxMce | kCpuid1EdxMca;
        regs.ebx = (regs.ebx & 0x00FFFFFF) | (id_ << 24);  // initial APIC ID
        if (!pdcm_) regs.ecx &= ~kCpuid1EcxPdcm;
    }
    for (const features::CpuidBit& b : vm_.hidden_cpuid_bits())
        features::clear_cpuid_bit(b, leaf, subleaf, regs);
}

// The vCPU halts in the hv layer, as KVM's with an in-kernel local APIC does: it wakes
// for an interrupt or a timer deadline, and only a halt nothing can end reaches
// userspace as KVM_EXIT_HLT.
cpu::Action Vcpu::hlt() {
    return cpu::Action::Done;
}

abi::Regs Vcpu::get_regs() const {
    const cpu::CpuState& s = cpu_.state();
    abi::Regs r;
    r.rax = s.gpr[cpu::RAX], r.rbx = s.gpr[cpu::RBX], r.rcx = s.gpr[cpu::RCX];
    r.rdx = s.gpr[cpu::RDX], r.rsi = s.gpr[cpu::RSI], r.rdi = s.gpr[cpu::RDI];
    r.rsp = s.gpr[cpu::RSP], r.rbp = s.gpr[cpu::RBP];
    r.r8 = s.gpr[cpu::R8], r.r9 = s.gpr[cpu::R9], r.r10 = s.gpr[cpu::R10];
    r.r11 = s.gpr[cpu::R11], r.r12 = s.gpr[cpu::R12], r.r13 = s.gpr[cpu::R13];
    r.r14 = s.gpr[cpu::R14], r.r15 = s.gpr[cpu::R15];
    r.rip = s.rip;
    r.rflags = s.rflags;
    return r;
}

void Vcpu::set_regs(const abi::Regs& r) {
    cpu::CpuState& s = cpu_.state();
    s.gpr[cpu::RAX] = r.rax, s.gpr[cpu::RBX] = r.rbx, s.gpr[cpu::RCX] = r.rcx;
    s.gpr[cpu::RDX] = r.rdx, s.gpr[cpu::RSI] = r.rsi, s.gpr[cpu::RDI] = r.rdi;
    s.gpr[cpu::RSP] = r.rsp, s.gpr[cpu::RBP] = r.rbp;
    s.gpr[cpu::R8] = r.r8, s.gpr[cpu::R9] = r.r9, s.gpr[cpu::R10] = r.r10;
    s.gpr[cpu::R11] = r.r11, s.gpr[cpu::R12] = r.r12, s.gpr[cpu::R13] = r.r13;
    s.gpr[cpu::R14] = r.r14, s.gpr[cpu::R15] = r.r15;
    s.rip = r.rip;
    s.rflags = (r.rflags & ~0x8028ull) | cpu::FLAG_FIXED1;  // reserved bits 3, 5, 15 are 0
    pending_ = Pending::None;
    cpu_.abandon_pending_read();
}

abi::SpecialRegs Vcpu::get_sregs() const {
    const cpu::CpuState& s = cpu_.state();
    abi::SpecialRegs o;
    o.es = to_abi(s.seg[cpu::ES]), o.cs = to_abi(s.seg[cpu::CS]);
    o.ss = to_abi(s.seg[cpu::SS]), o.ds = to_abi(s.seg[cpu::DS]);
    o.fs = to_abi(s.seg[cpu::FS]), o.gs = to_abi(s.seg[cpu::GS]);
    o.tr = to_abi(s.tr), o.ldt = to_abi(s.ldtr);
    o.gdt = {s.gdtr.base, s.gdtr.limit};
    o.idt = {s.idtr.base, s.idtr.limit};
    o.cr0 = s.cr0, o.cr2 = s.cr2, o.cr3 = s.cr3, o.cr4 = s.cr4, o.cr8 = s.cr8;
    o.efer = s.efer;
    o.apic_base = s.apic_base;
    return o;
}

Status Vcpu::set_sregs(const abi::SpecialRegs& in) {
    if ((in.cr0 & cpu::CR0_PG) && !(in.cr0 & cpu::CR0_PE))
        return make_error("set_sregs: CR0.PG without CR0.PE", EINVAL);
    if ((in.efer & cpu::msr::EFER_LMA) && !(in.cr0 & cpu::CR0_PG))
        return make_error("set_sregs: EFER.LMA without paging", EINVAL);
    cpu::CpuState& s = cpu_.state();
    s.seg[cpu::ES] = from_abi(in.es), s.seg[cpu::CS] = from_abi(in.cs);
    s.seg[cpu::SS] = from_abi(in.ss), s.seg[cpu::DS] = from_abi(in.ds);
    s.seg[cpu::FS] = from_abi(in.fs), s.seg[cpu::GS] = from_abi(in.gs);
    s.tr = from_abi(in.tr), s.ldtr = from_abi(in.ldt);
    s.gdtr = {in.gdt.base, in.gdt.limit};
    s.idtr = {in.idt.base, in.idt.limit};
    s.cr0 = in.cr0 | cpu::CR0_ET, s.cr2 = in.cr2, s.cr3 = in.cr3, s.cr4 = in.cr4;
    s.cr8 = in.cr8, s.efer = in.efer;
    s.apic_base = in.apic_base;
    cpu_.state_changed();
    pending_ = Pending::None;
    cpu_.abandon_pending_read();
    return {};
}

}  // namespace softkvm::hv
