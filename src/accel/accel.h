// The accelerator interface (design.md "Layers"): what the VMM sees of a CPU back end.
// Shaped like the KVM API so that `emu` (softkvm's CPU + hv layer) and `kvm` (/dev/kvm)
// share one run loop: a VM owns memory slots and vCPUs; Vcpu::run() fills a
// kvm_run-shaped record (RunState) and returns.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/kvm_abi.h"
#include "common/result.h"

namespace softkvm::accel {

// General-purpose registers, as struct kvm_regs.
struct Regs {
    uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rsp = 0, rbp = 0;
    uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
    uint64_t rip = 0, rflags = 0x2;
};

// A segment register, as struct kvm_segment.
struct Segment {
    uint64_t base = 0;
    uint32_t limit = 0;
    uint16_t selector = 0;
    uint8_t type = 0, present = 0, dpl = 0, db = 0, s = 0, l = 0, g = 0, avl = 0;
    uint8_t unusable = 0;
};

struct DescriptorTable {
    uint64_t base = 0;
    uint16_t limit = 0;
};

// System registers, as struct kvm_sregs.
struct SpecialRegs {
    Segment cs, ds, es, fs, gs, ss, tr, ldt;
    DescriptorTable gdt, idt;
    uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0, efer = 0, apic_base = 0;
};

// The exit record, as the parts of struct kvm_run that softkvm uses. The VMM may write
// to it between runs exactly as it would to the mmap'ed kvm_run: for an IO IN exit it
// stores the value read into io.data, and the next run() completes the instruction.
struct RunState {
    // Input: if non-zero, run() returns at once with KVM_EXIT_INTR (kvm_run.immediate_exit).
    uint8_t immediate_exit = 0;

    // Output.
    uint32_t exit_reason = abi::KVM_EXIT_UNKNOWN;
    uint16_t flags = 0;  // abi::KVM_RUN_X86_*; reset at the start of every run()

    struct Io {
        uint8_t direction = 0;  // abi::KVM_EXIT_IO_IN / KVM_EXIT_IO_OUT
        uint8_t size = 0;       // 1, 2 or 4 bytes
        uint16_t port = 0;
        uint32_t count = 0;  // softkvm always reports 1 element per exit
        uint8_t data[8] = {};
    } io;

    struct Mmio {
        uint64_t phys_addr = 0;
        uint8_t data[8] = {};
        uint32_t len = 0;
        uint8_t is_write = 0;
    } mmio;

    struct Internal {
        uint32_t suberror = 0;
    } internal;

    // softkvm addition: a human-readable account of SHUTDOWN / INTERNAL_ERROR exits
    // (the exception chain that led to a triple fault, the instruction that could not
    // be emulated). Empty for ordinary exits.
    std::string detail;
};

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

    // Multi-line register and state dump for error reports.
    virtual std::string dump_state() = 0;
};

class Vm {
public:
    virtual ~Vm() = default;

    // KVM_SET_USER_MEMORY_REGION: guest physical [gpa, gpa+size) is backed by host memory
    // at `host` (page aligned, owned by the caller, which keeps it alive for the VM's life).
    virtual Status set_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) = 0;

    virtual Result<std::unique_ptr<Vcpu>> create_vcpu(uint32_t id) = 0;
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
};

// Back-end factory: "emu" or "kvm". Returns an error (one line) if the accelerator is
// unknown or unusable on this host (no /dev/kvm, cannot create a VM).
Result<std::unique_ptr<Accelerator>> create_accelerator(const std::string& name);

// Names of all accelerators softkvm knows, whether or not the host can use them.
std::vector<std::string> accelerator_names();

}  // namespace softkvm::accel
