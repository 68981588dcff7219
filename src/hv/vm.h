// The hv layer: softkvm's stand-in for the KVM kernel module on the emu accelerator
// (docs/architecture.md "Layers"). A Vm owns memory slots and vCPUs; Vcpu::run() drives the
// software CPU and returns a struct kvm_run-shaped exit record (common/kvm_types.h).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common/cpu_features.h"
#include "common/kvm_types.h"
#include "common/result.h"
#include "cpu/cpu.h"
#include "hv/ioapic.h"
#include "hv/lapic.h"
#include "hv/mce.h"
#include "hv/pic.h"

namespace softkvm::hv {

struct MemorySlot {
    uint32_t slot;
    uint64_t gpa, size;
    uint8_t* host;
};

class Vcpu;

class Vm {
  public:
    Vm();
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    // KVM_SET_USER_MEMORY_REGION. Slots may not overlap; size 0 deletes the slot. Slots
    // must be set before vCPUs are created (softkvm's VMM never changes them later).
    Status set_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host);
    // KVM_CREATE_VCPU.
    Result<std::unique_ptr<Vcpu>> create_vcpu(uint32_t id);

    // KVM_CHECK_EXTENSION on the VM: for KVM_CAP_X86_BUS_LOCK_EXIT the supported mode bits
    // (spec §4); 0 for capabilities the hv layer does not have.
    uint64_t check_extension(uint32_t cap) const;
    // KVM_ENABLE_CAP on the VM. KVM_CAP_X86_BUS_LOCK_EXIT: args[0] with bits outside
    // the two modes, or with both, is EINVAL; EXIT turns bus-lock exits on; OFF and 0 are
    // accepted and change nothing (Linux's x86.c; the default is off). Other caps: EINVAL.
    Status enable_cap(uint32_t cap, uint64_t arg0);
    bool bus_lock_exits() const { return bus_lock_exits_; }

    // CPUID bits the guest must not see (KVM_SET_CPUID2 without them): the VMM's
    // --cpu-feature -NAME. The CPU then refuses what depends on them.
    void hide_cpuid_bit(const features::CpuidBit& b) { hidden_.push_back(b); }
    const std::vector<features::CpuidBit>& hidden_cpuid_bits() const { return hidden_; }

    const std::vector<MemorySlot>& slots() const { return slots_; }

    // Multi-vCPU plumbing for the vCPUs themselves.
    const std::vector<Vcpu*>& vcpus() const { return vcpu_list_; }
    std::shared_ptr<std::vector<uint8_t>> code_pages() { return code_pages_; }
    // Routes an IPI from `from`'s local APIC to the other vCPUs it names.
    void deliver_ipi(const Lapic::Ipi& ipi, Vcpu* from);

    // ---- The in-kernel IOAPIC (hv/ioapic.h) ----
    // KVM_IRQ_LINE: interrupt line `gsi` of the VM is asserted (`level` true) or not.
    // GSI n is IOAPIC pin n (0-23; others: EINVAL). Devices call it on every change of
    // their line; an edge-triggered device raises and then lowers it.
    Status set_irq(uint32_t gsi, bool level);
    Ioapic& ioapic() { return ioapic_; }
    // A local APIC's EOI of a level-triggered vector (the EOI broadcast).
    void level_eoi(uint8_t vector) { ioapic_.eoi(vector); }

    // ---- The in-kernel 8259 pair (hv/pic.h), as KVM_CREATE_IRQCHIP's ----
    // GSIs 0-15 also drive the PIC's ISA lines (KVM's default routing), except that
    // GSI 2, the timer's on this machine (IRQ 0's interrupt source override), drives IRQ
    // 0: the PIC's IRQ 2 is the cascade. The master's output reaches the boot vCPU's
    // LINT0 (ExtINT).
    Pic& pic() { return pic_; }
    // The PIC's output may have changed: the boot vCPU looks for an interrupt.
    void pic_changed();

  private:
    friend class Vcpu;
    // Hands an IOAPIC message to the local APICs it names.
    void route_ioapic(const Ioapic::Message& m);

    std::vector<MemorySlot> slots_;
    std::vector<features::CpuidBit> hidden_;
    bool bus_lock_exits_ = false;
    uint32_t vcpus_ = 0;
    std::vector<Vcpu*> vcpu_list_;
    std::shared_ptr<std::vector<uint8_t>> code_pages_ = std::make_shared<std::vector<uint8_t>>();
    Ioapic ioapic_;
    Pic pic_;
};

class Vcpu final : public cpu::CpuOwner {
  public:
    Vcpu(Vm& vm, uint32_t id);
    ~Vcpu() override;
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;

    // INIT and start-up IPIs (SDM vol. 3 §8.4): an AP waits for SIPI after INIT (and
    // from creation); SIPI starts it in real mode at vector << 12.
    void init();
    void sipi(uint8_t vector);
    bool waiting_for_sipi() const { return wait_sipi_; }
    void receive_ipi(const Lapic::Ipi& ipi);
    // The PIC asserts its output: look for an interrupt (ExtINT through LINT0).
    void extint_pending() { cpu_.request_interrupt_check(); }
    // Whether an IOAPIC message for `dest` names this vCPU's local APIC (hardware-enabled).
    bool apic_matches(uint32_t dest, bool logical) const;
    // Whether the local APIC is software-enabled (fixed interrupts need it).
    bool apic_sw_enabled() const { return lapic_.sw_enabled(); }
    // Interrupts the local APIC requested and did not deliver yet (IRR), for tests.
    bool apic_irr(uint8_t vector) const;

    // KVM_RUN: runs until the next exit and fills run_state().
    void run();
    abi::RunState& run_state() { return run_; }

    abi::Regs get_regs() const;
    void set_regs(const abi::Regs& r);
    abi::SpecialRegs get_sregs() const;
    Status set_sregs(const abi::SpecialRegs& s);

    uint64_t instructions_retired() const { return cpu_.instructions_retired(); }
    cpu::Cpu::CacheStats cache_stats() const { return cpu_.cache_stats(); }
    // The software CPU's engine (docs/translator.md); false if not available here.
    // The translating engine translates a block on its eighth run (cold code stays
    // interpreted: docs/translator.md).
    bool set_engine(cpu::Engine e) {
        if (!cpu_.set_engine(e)) return false;
        if (cpu::Translator* t = cpu_.translator())
            t->set_translate_after(cpu::Translator::kHotRuns);
        return true;
    }
    cpu::Engine engine() const { return cpu_.engine(); }
    cpu::Translator::Stats translator_stats() const { return cpu_.translator_stats(); }
    // Virtual time (ticks = ns): read it, or let it jump as if the vCPU had stalled.
    uint64_t clock() const { return cpu_.clock(); }
    void skip_time(uint64_t ticks) { cpu_.skip_time(ticks); }

    // ---- The vPMU and the guest LBR life cycle (spec §2.2, §2.3; vpmu.cc) ----
    // The CPU model (KVM_SET_CPUID2's role); the guest's PERF_CAPABILITIES becomes the
    // model's. Call before the first run().
    void set_cpu_model(const cpu::CpuModel& m);
    // A host-initiated IA32_PERF_CAPABILITIES write (KVM's rule): refused (EINVAL) unless
    // the guest has PDCM and LBR_FMT is 0 or the model's ("host's") format.
    Status set_perf_capabilities(uint64_t value);
    // Hides or shows CPUID.1:ECX.PDCM (default shown).
    void set_pdcm(bool on) { pdcm_ = on; }
    // Guest LBR is enabled: PDCM and a non-zero LBR_FMT.
    bool guest_lbr_enabled() const;
    enum class LbrEvent : uint8_t { None, Active, HostOwned };
    LbrEvent lbr_event() const { return lbr_event_; }
    // A host-side LBR user (softkvm profile --lbr) takes the unit: the guest's accesses
    // become meaningless (reads 0, writes dropped) until host_lbr_release().
    void host_lbr_acquire(uint64_t lbr_select);
    void host_lbr_release();
    // The unit's records, newest first (for the host-side user).
    std::vector<cpu::Lbr::Entry> host_lbr_read() const;
    // Virtual-time scheduling slice: lazy release is decided at its end.
    static constexpr uint64_t kSliceInsns = 1'000'000;
    struct LbrStats {
        uint64_t intercepted = 0;  // LBR MSR accesses the hv layer saw
        uint64_t created = 0;      // guest LBR events created
        uint64_t released = 0;     // lazily released
        uint64_t takeovers = 0;    // the guest event lost the unit to a host user
        uint64_t dropped = 0;      // guest accesses made meaningless while the host owned it
        uint64_t pmis = 0;         // PMIs delivered (vector or NMI)
    };
    const LbrStats& lbr_stats() const { return lbr_stats_; }
    // For tests: whether LBR MSRs currently reach the CPU without the hv layer.
    bool lbr_passthrough() const { return !cpu_.lbr_intercepted(); }
    // Stop with KVM_EXIT_INTR once `limit` instructions have retired (0 = none).
    void set_instruction_limit(uint64_t limit) { insn_limit_ = limit; }
    // Makes a run() in progress return KVM_EXIT_INTR soon (as a signal does to KVM_RUN).
    void kick() { cpu_.kick(); }
    // A userspace device's timer event (accel::Vcpu::set_clock_deadline): run() returns
    // KVM_EXIT_INTR once clock() reaches `at` (cpu::Cpu::kNever: none); a halt before
    // then waits for it, as for the local APIC's timer.
    void set_clock_deadline(uint64_t at);
    void set_trace(cpu::Cpu::TraceFn fn, uint64_t count) { cpu_.set_trace(std::move(fn), count); }
    std::string dump_state() const { return cpu_.dump_state(); }
    uint32_t id() const { return id_; }

    // cpu::CpuOwner: events from the software CPU.
    cpu::Action port_in(uint16_t port, uint8_t size, uint32_t& value) override;
    cpu::Action port_out(uint16_t port, uint8_t size, uint32_t value) override;
    cpu::Action mmio_read(uint64_t gpa, uint8_t size, uint64_t& value) override;
    cpu::Action mmio_write(uint64_t gpa, uint8_t size, uint64_t value) override;
    cpu::MsrResult rdmsr(uint32_t index, uint64_t& value) override;
    cpu::MsrResult wrmsr(uint32_t index, uint64_t value) override;
    void cpuid(uint32_t leaf, uint32_t subleaf, cpu::CpuidRegs& regs) override;
    cpu::Action hlt() override;
    bool deadline() override;
    void code_page_marked(uint64_t page) override;
    void code_page_written(uint64_t page) override;
    void cr8_written(uint64_t value) override;
    void cr8_read(uint64_t& value) override;
    int acknowledge_interrupt() override;
    cpu::Action bus_lock(const cpu::BusLock& b) override;
    void pmi() override;
    bool hypercall(HypercallInsn insn) override;  // hypercall.cc

  private:
    // An IN or MMIO read that exited to userspace: when the CPU re-executes the
    // instruction on the next run(), the value comes from run_.io.data / run_.mmio.data.
    enum class Pending : uint8_t { None, PortIn, MmioRead };

    void io_exit(uint8_t direction, uint16_t port, uint8_t size);
    void mmio_exit(uint64_t gpa, uint8_t size, bool is_write);
    bool apic_mmio(uint64_t gpa) const;
    static bool ioapic_mmio(uint64_t gpa);
    bool x2apic() const;
    bool accepts_extint() const;
    static constexpr uint32_t kLvtExtInt = 7;  // LVT delivery mode 111b
    cpu::MsrResult apic_rdmsr(uint32_t index, uint64_t& value);
    cpu::MsrResult apic_wrmsr(uint32_t index, uint64_t value);
    // Tells the CPU the APIC's next timer deadline and whether an interrupt waits.
    void sync_apic();
    // The CPU's deadline: the local APIC timer's or the userspace device's, the earlier.
    void rearm_deadline();
    // Guest LBR life cycle (vpmu.cc).
    cpu::MsrResult pmu_rdmsr(uint32_t index, uint64_t& value);
    cpu::MsrResult pmu_wrmsr(uint32_t index, uint64_t value);
    void lbr_create_event();
    void lbr_slice_end();
    bool lbr_host_denied(uint32_t index);
    // The KVM CPUID leaves (0x40000000, 0x40000001) and KVM_HC_SEND_IPI (hypercall.cc).
    void kvm_cpuid(uint32_t leaf, cpu::CpuidRegs& regs) const;
    int64_t send_ipi(uint64_t low, uint64_t high, uint64_t min, uint64_t icr, int cluster);

    Vm& vm_;
    uint32_t id_;
    cpu::Cpu cpu_;
    Lapic lapic_;
    Mce mce_;  // the machine-check MSRs, as KVM keeps them
    bool wait_sipi_ = false;
    abi::RunState run_;
    Pending pending_ = Pending::None;
    uint64_t insn_limit_ = 0;
    uint64_t device_deadline_ = cpu::Cpu::kNever;  // set_clock_deadline()
    bool pdcm_ = true;
    LbrEvent lbr_event_ = LbrEvent::None;
    bool lbr_used_in_slice_ = false;  // an intercepted LBR access during this slice
    bool lbr_warned_ = false;
    bool lbr_denied_in_period_ = false;
    uint64_t guest_debugctl_ = 0;  // the guest's DEBUGCTL while the host owns the unit
    uint64_t slice_end_ = kSliceInsns;
    LbrStats lbr_stats_;
};

}  // namespace softkvm::hv
