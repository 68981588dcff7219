// The narrow interface through which the software CPU raises events to its owner (the hv
// layer): port I/O, MMIO, MSRs the owner claims, CPUID adjustment, HLT. docs/architecture.md: cpu/
// knows nothing of VMs or devices; the owner decides.
#pragma once
#include <cstdint>

namespace softkvm::cpu {

// What the owner wants the CPU to do after an event.
enum class Action : uint8_t {
    Done,  // handled; the instruction continues (and retires)
    Exit,  // stop: for reads the instruction is abandoned and re-executed on the next run;
           // for writes and HLT it retires first
};

enum class MsrResult : uint8_t { Handled, NotMine, Fault };

struct CpuidRegs {
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// The bus-lock detector's report (docs/architecture.md "The software CPU"; spec §3, §4): a retired
// instruction took a bus lock, because its locked access crossed a 64-byte line (Split)
// or because the memory's effective type was not write-back (NotWriteBack).
enum class BusLockKind : uint8_t { Split, NotWriteBack };
struct BusLock {
    uint64_t rip = 0;  // the instruction that took it (the trap RIP is the next one)
    BusLockKind kind = BusLockKind::Split;
    uint8_t cpl = 0;
};

class CpuOwner {
  public:
    virtual ~CpuOwner() = default;
    virtual Action port_in(uint16_t port, uint8_t size, uint32_t& value) = 0;
    virtual Action port_out(uint16_t port, uint8_t size, uint32_t value) = 0;
    // Physical accesses outside guest RAM.
    virtual Action mmio_read(uint64_t gpa, uint8_t size, uint64_t& value) = 0;
    virtual Action mmio_write(uint64_t gpa, uint8_t size, uint64_t value) = 0;
    // MSRs: the owner sees every access first and may claim it.
    virtual MsrResult rdmsr(uint32_t index, uint64_t& value) = 0;
    virtual MsrResult wrmsr(uint32_t index, uint64_t value) = 0;
    // Called with the CPU model's answer; the owner may adjust it.
    virtual void cpuid(uint32_t leaf, uint32_t subleaf, CpuidRegs& regs) = 0;
    // HLT retired. Done: the CPU waits (for acknowledge_interrupt() or the deadline);
    // Exit: stop and let the owner handle it.
    virtual Action hlt() = 0;
    // CR8 is the local APIC's task priority (SDM vol. 3 §10.8.6.1): the owner that
    // keeps the APIC sees writes and supplies reads.
    virtual void cr8_written(uint64_t value) { (void)value; }
    virtual void cr8_read(uint64_t& value) { (void)value; }
    // Other CPUs of the VM (multi-vCPU): a page now holds decoded code (drop fast write
    // paths to it), or a page holding code was written (drop its decoded blocks).
    virtual void code_page_marked(uint64_t page) { (void)page; }
    virtual void code_page_written(uint64_t page) { (void)page; }
    // VMCALL (Intel) or VMMCALL (AMD) at any CPL. Outside VMX/SVM the instruction raises
    // #UD (SDM vol. 2, VMCALL); an owner that implements a hypercall ABI returns true
    // after changing the registers, and the instruction retires.
    enum class HypercallInsn : uint8_t { Vmcall, Vmmcall };
    virtual bool hypercall(HypercallInsn insn) {
        (void)insn;
        return false;
    }
    // Virtual time reached the deadline set with Cpu::set_deadline(). Returning true ends
    // the run at this instruction boundary with StopReason::Deadline, after the boundary's
    // NMI and interrupt deliveries and before a halted CPU skips time to its next deadline
    // (the owner has work outside the CPU: a device whose output changes then).
    virtual bool deadline() { return false; }
    // The CPU can take an external interrupt now: return its vector (and consider it
    // delivered), or -1 if none is pending after all.
    virtual int acknowledge_interrupt() { return -1; }
    // An instruction that took a bus lock retired (only while Cpu::set_bus_lock_reports()
    // is on; any CPL). Exit: run() returns after that instruction, before anything else
    // happens; a bus-lock #DB the same instruction raised is delivered by the next run().
    virtual Action bus_lock(const BusLock& b) {
        (void)b;
        return Action::Done;
    }
    // A performance counter with its PMI bit overflowed (SDM vol. 3 §18.2): the owner
    // delivers it through the local APIC's LVT performance-counter entry.
    virtual void pmi() {}
};

}  // namespace softkvm::cpu
