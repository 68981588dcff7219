// Fuzz target: the software CPU on arbitrary instruction bytes in a small machine whose
// registers, mode, paging and MMIO behaviour come from the input too (fuzz/cpu_machine.h).
//
// Oracle: no crash and no sanitizer report; no hang (run() calls are bounded and a run of
// calls that retire nothing and change nothing is reported as a livelock); the
// instruction budget is respected exactly (never more instructions retired than the
// limit given to run()); the interpreter and the translator, where this build has it,
// end in the same state (registers, system state, instruction count, RAM) after the same
// requests to the VMM (port, MMIO, MSR, CPUID, HLT, in order, so the same exceptions and
// exits); and the machines, which are reset between inputs, give the same result as a
// machine made new for the input (checked for one input in 32).
//
// What an input leaves outside the machines must not change the next one either: the
// interpreter's machine runs from the host floating-point status `HostFpu::Set`, the
// translator's and the new machine from `Clear` (cpu_machine.h), so an input whose result
// depends on the host's x87 condition codes or sticky flags (which a new machine in the
// same process shares) fails on its own, every time it runs. A new machine alone did not
// see that: it started from the status the reused machines had just left.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "fuzz/cpu_machine.h"

namespace {

using softkvm::cpu::Engine;
using softkvm::fuzz::CpuFuzzHeader;
using softkvm::fuzz::CpuFuzzMachine;
using softkvm::fuzz::CpuFuzzResult;
using softkvm::fuzz::HostFpu;

// `same_ram`: whether the machines' RAM agrees (the engines': only the pages either may
// have written; a new machine against a reused one: all of it, which also checks that the
// reused machine put back every page an earlier input changed).
void compare(const char* what, const CpuFuzzResult& a, const CpuFuzzResult& b, bool same_ram) {
    const bool same_state = std::memcmp(&a, &b, sizeof a) == 0;
    if (same_state && same_ram) return;
    std::fprintf(
        stderr,
        "fuzz: %s differ: rip %#llx/%#llx icount %llu/%llu events %#llx/%#llx "
        "state %#llx/%#llx%s\n",
        what, static_cast<unsigned long long>(a.rip), static_cast<unsigned long long>(b.rip),
        static_cast<unsigned long long>(a.icount), static_cast<unsigned long long>(b.icount),
        static_cast<unsigned long long>(a.events), static_cast<unsigned long long>(b.events),
        static_cast<unsigned long long>(a.state), static_cast<unsigned long long>(b.state),
        same_state ? " (RAM only)" : "");
    std::abort();
}

}  // namespace

// The machines' allocations are reused, but each input still decodes blocks: a small
// quarantine lets AddressSanitizer reuse their memory instead of faulting in fresh pages.
extern "C" const char* __asan_default_options() {
    return "quarantine_size_mb=1";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < sizeof(CpuFuzzHeader)) return 0;
    static CpuFuzzMachine interp(Engine::Interp, HostFpu::Set);
    static std::unique_ptr<CpuFuzzMachine> xlate =
        CpuFuzzMachine::available(Engine::Translate)
            ? std::make_unique<CpuFuzzMachine>(Engine::Translate)
            : nullptr;
    const CpuFuzzResult a = interp.run(data, size);
    if (xlate) {
        const CpuFuzzResult b = xlate->run(data, size);
        compare("interpreter (host FPU status set) and translator (clear)", a, b,
                CpuFuzzMachine::same_ram(interp, *xlate));
    }
    // Reset exactness: one input in 32 (by its bytes, so a reproduction checks it again)
    // also runs on a machine made for it alone.
    if (((data[0] ^ data[1]) & 31) == 0) {
        CpuFuzzMachine fresh(Engine::Interp);
        const CpuFuzzResult c = fresh.run(data, size);
        compare("a reset machine (host FPU status set) and a new one (clear)", a, c,
                std::memcmp(interp.ram(), fresh.ram(), CpuFuzzMachine::kRam) == 0);
    }
    return 0;
}
