// The accelerator interface (docs/architecture.md "Layers"): what the VMM sees of a CPU back end.
// Shaped like the KVM API so that `emu` (softkvm's CPU + hv layer) and `kvm` (/dev/kvm)
// share one run loop: a VM owns memory slots and vCPUs; Vcpu::run() fills a
// kvm_run-shaped record (RunState) and returns.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/cpu_features.h"
#include "common/kvm_abi.h"
#include "common/kvm_types.h"
#include "common/result.h"

namespace softkvm::accel {

// The register and exit-record shapes are KVM's (common/kvm_types.h); the hv layer below
// fills the same structures, so emu and kvm hand the VMM identical records.
using abi::DescriptorTable;
using abi::Regs;
using abi::RunState;
using abi::Segment;
using abi::SpecialRegs;

class Vcpu {
  public:
    virtual ~Vcpu() = default;

    // Runs the vCPU until the next exit (KVM_RUN). Errors are failures of the back end
    // itself (an ioctl failing), not guest events: those are exits.
    virtual Status run() = 0;
    virtual RunState& run_state() = 0;

    virtual Result<Regs> get_regs() = 0;
    virtual Status set_regs(const Regs& regs) = 0;
    virtual Result<SpecialRegs> get_sregs() = 0;
    virtual Status set_sregs(const SpecialRegs& sregs) = 0;

    // Instructions retired so far. Exact on emu; kvm returns 0 (not counted).
    virtual uint64_t instructions_retired() const = 0;

    // emu: stop with KVM_EXIT_INTR once `limit` instructions have retired in total
    // (0 = no limit). kvm: unsupported (returns an error).
    virtual Status set_instruction_limit(uint64_t limit) = 0;

    // emu: `fn` sees the RIP and disassembly of each of the next `count` instructions
    // before it runs. kvm: unsupported (returns an error).
    using TraceFn = std::function<void(uint64_t rip, const std::string& text)>;
    virtual Status set_trace(TraceFn fn, uint64_t count) = 0;

    // emu: the vCPU's virtual clock (one tick per nanosecond of virtual time, the TSC
    // rate) and advance_clock(), which moves it forward as if the vCPU had been stalled
    // that long. kvm: time is the host's; virtual_clock_ns() returns an error.
    virtual Result<uint64_t> virtual_clock_ns() = 0;
    virtual Status advance_clock(uint64_t ns) = 0;
    // A device timer (the VMM's PIT): run() returns KVM_EXIT_INTR once the clock reaches
    // `ns` (UINT64_MAX: none): emu's virtual clock, where a vCPU halted with interrupts on
    // skips ahead to it; kvm's CLOCK_MONOTONIC (std::chrono::steady_clock), a host timer.
    virtual Status set_clock_deadline(uint64_t ns) = 0;

    // Asks a run() in progress to return soon with KVM_EXIT_INTR. Async-signal-safe:
    // the VMM calls it from its SIGINT/SIGTERM handler, and from any thread.
    virtual void kick() = 0;

    // Multi-line register and state dump for error reports.
    virtual std::string dump_state() = 0;

    // Back-end counters for --stats (name, value); emu reports its decoded-block cache.
    using Counters = std::vector<std::pair<std::string, uint64_t>>;
    virtual Counters counters() const { return {}; }
    // The guest CPU model ("" = the back end's default) and its LBR format (-1 = the
    // model's; 0 hides guest LBR; otherwise it must equal the host's/model's, as KVM
    // requires of a PERF_CAPABILITIES write). Errors: EINVAL for an unknown model or a
    // format mismatch, ENODEV where the host cannot offer guest LBR at all.
    virtual Status set_cpu_model(const std::string& model, int lbr_fmt) = 0;
    // The software CPU's execution engine, "interp" or "translate" (emu only; ENOTSUP on
    // other back ends, ENODEV where the engine is not available on this host).
    virtual Status set_engine(const std::string& engine) {
        (void)engine;
        return make_error("--engine selects the software CPU's engine: --accel emu only", ENOTSUP);
    }

    // The host-side LBR user (softkvm profile --lbr, emu): take the unit from the guest
    // with this LBR_SELECT, read its records newest first, give it back.
    struct BranchRecord {
        uint64_t from = 0, to = 0;
    };
    virtual Status host_lbr_acquire(uint64_t lbr_select) {
        (void)lbr_select;
        return make_error("host-side LBR sampling needs --accel emu", ENOTSUP);
    }
    virtual std::vector<BranchRecord> host_lbr_read() { return {}; }
    virtual void host_lbr_release() {}
};

class Vm {
  public:
    virtual ~Vm() = default;

    // KVM_SET_USER_MEMORY_REGION: guest physical [gpa, gpa+size) is backed by host memory
    // at `host` (page aligned, owned by the caller, which keeps it alive for the VM's life).
    virtual Status set_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) = 0;

    virtual Result<std::unique_ptr<Vcpu>> create_vcpu(uint32_t id) = 0;

    // KVM_CHECK_EXTENSION on the VM: the capability's value (0: not offered).
    virtual uint64_t check_extension(uint32_t cap) = 0;
    // KVM_ENABLE_CAP on the VM with args[0] = `arg0` (the error carries the errno).
    virtual Status enable_cap(uint32_t cap, uint64_t arg0) = 0;
    // vCPUs created afterwards do not see CPUID bit `b` (--cpu-feature -NAME).
    virtual Status hide_cpuid_bit(const features::CpuidBit& b) = 0;

    // KVM_IRQ_LINE: the VM's interrupt line `gsi` is now asserted (`level` true) or not.
    // GSI n is pin n of the IOAPIC at 0xFEC00000 (n = 0-23; others are EINVAL): emu's
    // in the hv layer, kvm's in the kernel (KVM_CREATE_IRQCHIP; KVM's default routing also
    // gives GSI 0-15 to its 8259 pair). Devices call it on every change of their line: an
    // edge-triggered device asserts and then deasserts it; a level-triggered one keeps it
    // asserted until the guest has served it. ENODEV where the VM has no IOAPIC.
    virtual Status set_irq(uint32_t gsi, bool level) = 0;
};

// Facts about the host for `softkvm caps`.
struct Capability {
    std::string name;
    bool available = false;
    std::string detail;
};

class Accelerator {
  public:
    virtual ~Accelerator() = default;
    virtual std::string name() const = 0;
    virtual Result<std::unique_ptr<Vm>> create_vm() = 0;
    virtual std::vector<Capability> capabilities() = 0;
    // Whether each vCPU runs on a thread of its own (kvm: the host schedules them in
    // parallel). Otherwise the VMM runs all vCPUs on one thread in turns (emu: runs stay
    // deterministic).
    virtual bool vcpu_threads() const { return false; }
};

// The CPU models the emu back end offers (--cpu-model), default first.
struct CpuModelInfo {
    std::string name, description;
    int lbr_format = 0, lbr_depth = 0;
};
std::vector<CpuModelInfo> emu_cpu_models();
// The emu back end's engines (--engine) and whether this build on this host has each.
struct EngineInfo {
    std::string name;
    bool available = false;
};
std::vector<EngineInfo> emu_engines();
// The engine `softkvm run` uses without --engine: translate where this build and host
// have it, interp elsewhere.
std::string emu_default_engine();

// Back-end factory: "emu" or "kvm". Returns an error (one line) if the accelerator is
// unknown or unusable on this host (no /dev/kvm, cannot create a VM).
Result<std::unique_ptr<Accelerator>> create_accelerator(const std::string& name);

// Names of all accelerators softkvm knows, whether or not the host can use them.
std::vector<std::string> accelerator_names();

}  // namespace softkvm::accel
