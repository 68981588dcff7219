#include "accel/kvm_probe.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cstring>

namespace softkvm::accel {
namespace {

// Guest physical layout of the probe VM (one 64 KiB slot at 0).
constexpr uint64_t kMemSize = 0x10000;
constexpr uint64_t kGdt = 0x500, kCode = 0x1000, kPml4 = 0x2000, kPdpt = 0x3000, kPd = 0x4000;
constexpr uint16_t kDonePort = 0x80;
constexpr uint8_t kDoneValue = 0x64;
constexpr uint64_t kEferLma = 1ull << 10;  // SDM Vol. 3A 2.2.1 (IA32_EFER)

// 32-bit code at kCode (GNU as, then objcopy -O binary):
//   mov %cr4,%eax; or $0x20,%eax; mov %eax,%cr4        CR4.PAE
//   mov $0x2000,%eax; mov %eax,%cr3                    PML4 at kPml4
//   mov $0xc0000080,%ecx; rdmsr; or $0x100,%eax; wrmsr EFER.LME
//   mov %cr0,%eax; or $0x80000000,%eax; mov %eax,%cr0  CR0.PG: long mode is active
//   ljmp $0x18,$0x1031                                 64-bit code segment
// 64-bit code at 0x1031:
//   mov $0x64,%al; out %al,$0x80; hlt
constexpr uint8_t kProbeCode[] = {0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb8, 0x00,
                                  0x20, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0xb9, 0x80, 0x00, 0x00, 0xc0,
                                  0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30, 0x0f, 0x20,
                                  0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0xea, 0x31,
                                  0x10, 0x00, 0x00, 0x18, 0x00, 0xb0, 0x64, 0xe6, 0x80, 0xf4};
constexpr uint64_t kWrmsrOffset = 0x1d;

// GDT: null, flat 32-bit code (0x08), flat data (0x10), 64-bit code (0x18).
constexpr uint64_t kGdtEntries[] = {0, 0x00CF9A000000FFFFull, 0x00CF92000000FFFFull,
                                    0x00AF9A000000FFFFull};

struct Mapping {
    void* p = MAP_FAILED;
    ~Mapping() {
        if (p != MAP_FAILED) munmap(p, kMemSize);
    }
};

void fill_memory(uint8_t* m) {
    std::memcpy(m + kGdt, kGdtEntries, sizeof kGdtEntries);
    std::memcpy(m + kCode, kProbeCode, sizeof kProbeCode);
    const uint64_t pml4e = kPdpt | 3, pdpte = kPd | 3, pde = 0x83;  // P | RW (| PS: 2 MiB)
    std::memcpy(m + kPml4, &pml4e, 8);
    std::memcpy(m + kPdpt, &pdpte, 8);
    std::memcpy(m + kPd, &pde, 8);
}

// What happened, or an empty string if the guest reached 64-bit mode.
std::string run_probe(Accelerator& kvm) {
    Mapping mem;  // outlives the VM below (declared first, destroyed last)
    mem.p = mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem.p == MAP_FAILED) return "cannot allocate the probe VM's memory";
    fill_memory(static_cast<uint8_t*>(mem.p));
    auto vm = kvm.create_vm();
    if (!vm) return vm.error().message;
    if (auto st = vm.value()->set_memory_region(0, 0, kMemSize, mem.p); !st)
        return st.error().message;
    auto vcpu = vm.value()->create_vcpu(0);
    if (!vcpu) return vcpu.error().message;
    Vcpu& v = *vcpu.value();
    auto sregs = v.get_sregs();
    if (!sregs) return sregs.error().message;
    SpecialRegs s = sregs.value();
    auto flat = [](uint16_t sel, uint8_t type) {
        Segment seg;
        seg.limit = 0xFFFFFFFF, seg.selector = sel, seg.type = type;
        seg.present = 1, seg.db = 1, seg.s = 1, seg.g = 1;
        return seg;
    };
    s.cs = flat(0x08, 0xB);
    s.ds = s.es = s.fs = s.gs = s.ss = flat(0x10, 0x3);
    s.gdt = {kGdt, sizeof kGdtEntries - 1};
    s.cr0 = 0x11, s.cr3 = 0, s.cr4 = 0, s.efer = 0;  // PE | ET, as at multiboot entry
    if (auto st = v.set_sregs(s); !st) return st.error().message;
    Regs r;
    r.rip = kCode;
    if (auto st = v.set_regs(r); !st) return st.error().message;

    if (auto st = v.run(); !st) return st.error().message;
    const RunState& rs = v.run_state();
    if (rs.exit_reason == abi::KVM_EXIT_IO && rs.io.port == kDonePort &&
        rs.io.data[0] == kDoneValue) {
        auto after = v.get_sregs();
        if (!after) return after.error().message;
        if (!(after->efer & kEferLma) || !after->cs.l)
            return fmt::format("the probe guest ran its 64-bit code with EFER={:#x} CS.L={}",
                               after->efer, after->cs.l);
        return "";
    }
    auto regs = v.get_regs();
    const uint64_t rip = regs ? regs->rip : 0;
    if (rs.exit_reason == abi::KVM_EXIT_SHUTDOWN)
        return rip == kCode + kWrmsrOffset
                   ? "the probe guest's WRMSR of EFER.LME faulted (triple fault)"
                   : fmt::format("the probe guest triple-faulted at rip={:#x}", rip);
    return fmt::format("the probe guest stopped with exit reason {} at rip={:#x}", rs.exit_reason,
                       rip);
}

}  // namespace

Capability kvm_probe_long_mode(Accelerator& kvm, const std::string& cpuid_detail) {
    const std::string failure = run_probe(kvm);
    if (failure.empty())
        return {"long-mode", true, "a probe guest entered 64-bit mode; " + cpuid_detail};
    return {"long-mode", false, failure + "; " + cpuid_detail};
}

}  // namespace softkvm::accel
