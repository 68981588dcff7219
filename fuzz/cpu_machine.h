// The small machine of the CPU fuzz target (fuzz/cpu_fuzz.cc) and its replay tool
// (fuzz/cpu_replay.cc): one software CPU on 256 KiB of RAM, made once and reset between
// inputs.
//
// Input: a 72-byte header (see CpuFuzzHeader) then the code, copied to kCode.
// Machine: 4 KiB page tables identity-map the first 2 MiB, so everything above the RAM is
// MMIO; a GDT with ring-0 and ring-3 segments, 64-bit and 32-bit IDTs whose every vector
// halts, a TSS; the RAM outside them and the stack's two pages is HLT instructions (the
// input's code is copied over them). The header flips page-table bits, picks long mode (CPL 0 or 3,
// CR0.WP, CR4.SMEP/SMAP, EFER.NXE) or flat 32-bit protected mode, and decides whether MMIO and port
// reads exit first (as a VMM behind KVM_EXIT_MMIO) or are answered at once.
//
// After each input the CPU is reset (Cpu::reset(): a new CPU's state, its translator's
// code cache emptied, the input's blocks freed), and before the next one the RAM pages
// that differ from the machine's initial image are copied back, so an input gives the
// same result whatever ran before it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "cpu/cpu.h"

namespace softkvm::fuzz {

struct CpuFuzzHeader {
    uint64_t gpr[8];      // RAX..RDI (RSP is set from it, kept inside the stack page)
    uint8_t mode;         // bit 0: 32-bit protected mode; bit 1: CPL 3; bits 2-5: CR0.WP,
                          // CR4.SMEP, CR4.SMAP, EFER.NXE; bit 6: RFLAGS.DF; bit 7: RFLAGS.AC
    uint8_t mmio;         // bit 0: MMIO reads exit first; bit 1: port reads exit first;
                          // bit 2: MMIO writes exit; RFLAGS.TF when bits 3-7 are 00001
    uint8_t pte_flip[6];  // XOR masks for the low byte of PTEs of six data pages
};
static_assert(sizeof(CpuFuzzHeader) == 72);

// What an input did, as far as the guest and its VMM can tell: the final registers and
// system state, and a digest of every event the owner saw (port and MMIO accesses with
// their values, MSR and CPUID requests, HLT) and of every run() return (reason and
// instruction count), in order. Only 64-bit fields: compared with memcmp.
struct CpuFuzzResult {
    uint64_t gpr[16];
    uint64_t rip, rflags, icount;
    uint64_t cr0, cr2, cr3, cr4, efer, cpl;
    uint64_t state;   // digest of the rest of CpuState (segments, tables, DRs, FPU/SSE, MSRs)
    uint64_t events;  // digest of the owner's events and the run() returns
    uint64_t runs;    // run() calls made
    uint64_t stop;    // StopReason of the last run()
};

class CpuFuzzOwner;

// The host's floating-point status an input starts from. A host x87 or SSE operation
// leaves condition codes (x87 C0-C3) and sticky exception flags (x87 FSW and MXCSR bits
// 0-5) behind; they belong to the thread, so every machine in the process shares them,
// and a new machine made in the process starts from what the last input left. The CPU
// must not let them through to a guest. run() sets them first: `Clear` none of them,
// `Set` all of them (the x87 flags only where the host's control word masks them). The
// target runs the interpreter's machine from `Set` and the translator's and new machines
// from `Clear`, so a result that depends on them makes two machines disagree on the
// input itself, whatever ran before it.
enum class HostFpu { Clear, Set };
void set_host_fpu(HostFpu status);

class CpuFuzzMachine {
  public:
    static constexpr uint64_t kRam = 256 << 10;
    static constexpr uint64_t kBudget = 500;  // instructions per run() call
    static constexpr uint64_t kTotal = 2000;  // instructions per input
    static constexpr int kMaxRuns = 400;      // run() calls per input (MMIO exits need many)
    static constexpr int kLivelock = 200;     // consecutive run() calls without progress
    // Events delivered without an instruction retiring before run() returns Stalled,
    // which ends the input (Cpu::set_stall_limit; the CPU's default is larger). A handler
    // that faults again, with its frames pushed to MMIO, returns from run() once per frame
    // write (an exit for each, no instruction retired, RIP unchanged): such a loop must end
    // as Stalled, which is what the VMM reports, before the livelock check takes it for
    // run() calls that do nothing. A frame is at most 6 pushes (SS, RSP, RFLAGS, CS, RIP,
    // error code), each split in two where it crosses a page.
    static constexpr uint64_t kStall = 16;
    static constexpr uint64_t kMaxFrameWrites = 12;
    static_assert(kStall * kMaxFrameWrites < kLivelock);

    // False when `engine` is not available in this build or on this host.
    static bool available(cpu::Engine engine);
    explicit CpuFuzzMachine(cpu::Engine engine, HostFpu host = HostFpu::Clear);
    ~CpuFuzzMachine();
    CpuFuzzMachine(const CpuFuzzMachine&) = delete;
    CpuFuzzMachine& operator=(const CpuFuzzMachine&) = delete;

    // Runs one input (at least a header) from the machine's initial state and the host
    // floating-point status given to the constructor. Aborts the
    // process with a one-line message when the CPU breaks the oracle's rules: more
    // instructions retired than run() allowed, or a livelock.
    CpuFuzzResult run(const uint8_t* data, size_t size);
    // The RAM as the last input left it.
    const uint8_t* ram() const { return ram_; }
    // Whether two machines' RAM is the same after their last inputs: only the pages either
    // may have changed are compared (the others hold the initial image in both).
    static bool same_ram(const CpuFuzzMachine& a, const CpuFuzzMachine& b);

  private:
    void restore_ram();
    // Bit (page number) for each of the 64 RAM pages the last input may have changed: the
    // CPU's written_pages() and the pages run() set up (tables, code).
    uint64_t dirty_ = ~0ull;
    HostFpu host_;
    std::unique_ptr<CpuFuzzOwner> owner_;
    std::unique_ptr<cpu::Cpu> cpu_;
    uint8_t* ram_;
    uint8_t* image_;  // the initial RAM (tables, IDTs, stubs) every input starts from
};

// Digest of a result and the RAM (the replay tool's per-input line).
uint64_t cpu_fuzz_digest(const CpuFuzzResult& r, const uint8_t* ram);

}  // namespace softkvm::fuzz
