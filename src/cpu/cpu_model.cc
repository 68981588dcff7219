// CPUID of the software CPU: Intel family-6 parts (the spec's LBR and bus-lock features are
// Intel's), advertising only what the interpreter implements. Feature bit positions from
// the Intel SDM vol. 2, CPUID; leaf 0AH from SDM vol. 3 §18.2.
#include "cpu/cpu_model.h"

#include <cstring>

#include "cpu/msr_index.h"

namespace softkvm::cpu {
namespace {

constexpr uint32_t bit(int n) {
    return 1u << n;
}

// The model table. Skylake client (family 6, model 0x5E) has LBR format 5 with 32 entries
// and LBR_INFO; Broadwell client (model 0x3D) format 4 with 16 entries (spec §2.1).
// Both are legacy-LBR parts: KVM refuses guest LBR on parts with Architectural LBR.
constexpr CpuModel kModels[] = {
    {"skylake", "Intel Skylake-class (family 6 model 0x5E): PMU v4, LBR format 5, 32 entries",
     0x000506E3, 4, 5, 32, true},
    {"broadwell", "Intel Broadwell-class (family 6 model 0x3D): PMU v3, LBR format 4, 16 entries",
     0x000306D4, 3, 4, 16, false},
};

// IA32_PERF_CAPABILITIES bit 13: full-width writes to IA32_A_PMCx (spec §2.1).
constexpr uint64_t kPerfCapFullWidthWrite = 1ull << 13;

// Leaf 1. PDCM (bit 15): IA32_PERF_CAPABILITIES exists.
constexpr uint32_t kLeaf1Ecx =
    bit(13) /*CMPXCHG16B*/ | bit(15) /*PDCM*/ | bit(23) /*POPCNT*/ | bit(26) /*XSAVE*/;
constexpr uint32_t kLeaf1Edx = bit(0) /*FPU*/ | bit(3) /*PSE*/ | bit(4) /*TSC*/ | bit(5) /*MSR*/ |
                               bit(6) /*PAE*/ | bit(8) /*CX8*/ | bit(11) /*SEP*/ |
                               bit(12) /*MTRR: msr_index.h*/ | bit(13) /*PGE*/ | bit(15) /*CMOV*/ |
                               bit(16) /*PAT*/ | bit(19) /*CLFSH*/ | bit(23) /*MMX*/ |
                               bit(24) /*FXSR*/ | bit(25) /*SSE*/ | bit(26) /*SSE2*/;
// Leaf 7 subleaf 0.
constexpr uint32_t kLeaf7Ebx =
    bit(0) /*FSGSBASE*/ | bit(7) /*SMEP*/ | bit(9) /*ERMS*/ | bit(20) /*SMAP*/;
constexpr uint32_t kLeaf7Ecx =
    bit(2) /*UMIP*/ | bit(22) /*RDPID*/ | bit(24) /*BUS_LOCK_DETECT, spec §3*/;
// Leaf 6: the APIC timer keeps running in deep C-states (ARAT).
constexpr uint32_t kLeaf6Eax = bit(2);
// Leaf 0x80000001.
constexpr uint32_t kExt1Ecx = bit(0) /*LAHF-SAHF*/ | bit(5) /*LZCNT*/;
constexpr uint32_t kExt1Edx = bit(11) /*SYSCALL*/ | bit(20) /*NX*/ | bit(26) /*1 GiB pages*/ |
                              bit(27) /*RDTSCP*/ | bit(29) /*LM*/;

// Leaves 0x15 and 0x16: the TSC and the local APIC timer both count the virtual clock,
// one tick per nanosecond (design.md "Time"), so the "crystal" is that clock: TSC =
// ECX * EBX / EAX = 1 GHz, and Linux takes it as a known frequency without calibrating
// against the PIT or the PM timer (SDM vol. 2, CPUID leaves 15H and 16H).
constexpr uint32_t kVirtualClockHz = 1000000000;
constexpr uint32_t kVirtualClockMhz = kVirtualClockHz / 1000000;

constexpr uint32_t kMaxBasicLeaf = 0x16;
constexpr uint32_t kXsaveSize = 512 + 64;
constexpr uint32_t kMaxExtLeaf = 0x80000008;

void put_string(const char* s, uint32_t* regs, int n) {
    std::memcpy(regs, s, 4 * n);
}

}  // namespace

std::span<const CpuModel> cpu_models() {
    return kModels;
}

const CpuModel& default_cpu_model() {
    return kModels[0];
}

const CpuModel* find_cpu_model(std::string_view name) {
    for (const CpuModel& m : kModels)
        if (name == m.name) return &m;
    return nullptr;
}

uint64_t model_perf_capabilities(const CpuModel& m) {
    return m.lbr_format | kPerfCapFullWidthWrite;
}

void model_cpuid(const CpuModel& m, uint32_t leaf, uint32_t subleaf, CpuidRegs& r) {
    r = {};
    // Leaves above the maximum return the highest basic leaf's data (SDM: CPUID).
    if (leaf > kMaxBasicLeaf && leaf < 0x80000000) leaf = kMaxBasicLeaf, subleaf = 0;
    if (leaf > kMaxExtLeaf) leaf = kMaxBasicLeaf, subleaf = 0;
    switch (leaf) {
        case 0: {
            r.eax = kMaxBasicLeaf;
            uint32_t v[3];
            put_string("GenuineIntel", v, 3);
            r.ebx = v[0], r.edx = v[1], r.ecx = v[2];
            break;
        }
        case 1:
            r.eax = m.signature;
            r.ebx = (8u << 8) /*CLFLUSH line: 8 qwords*/ | (1u << 16) /*logical CPUs*/;
            r.ecx = kLeaf1Ecx;
            r.edx = kLeaf1Edx;
            break;
        case 6:
            r.eax = kLeaf6Eax;
            break;
        case 7:
            if (subleaf == 0) r.ebx = kLeaf7Ebx, r.ecx = kLeaf7Ecx;
            break;
        case 0xA:
            // Architectural PMU: version, GP counters, their width, and the length of the
            // event vector in EBX (7 events; a set EBX bit marks one as unavailable: the
            // model has no caches, so LLC references (3) and misses (4) are not counted).
            r.eax = m.pmu_version | (kPmuGpCounters << 8) | (kPmuCounterBits << 16) | (7u << 24);
            r.ebx = bit(3) | bit(4);
            r.edx = kPmuFixedCounters | (kPmuCounterBits << 5);
            break;
        case 0xD:
            // XSAVE: x87 and SSE state only (XCR0 bits 0-1); both live in the 512-byte
            // legacy area, so every size is that plus the 64-byte header.
            if (subleaf == 0) r.eax = kXcr0Supported, r.ebx = kXsaveSize, r.ecx = kXsaveSize;
            break;
        case 0xB:
            // x2APIC topology: one thread per core, one core per package. EDX (the
            // x2APIC ID) is filled in by the owner, which knows the vCPU.
            if (subleaf == 0)
                r.ebx = 1, r.ecx = (1u << 8) | 0;  // SMT level
            else if (subleaf == 1)
                r.ebx = 1, r.ecx = (2u << 8) | 1;  // core level
            else
                r.ecx = subleaf & 0xFF;  // invalid level
            break;
        case 0x15:
            r.eax = 1, r.ebx = 1, r.ecx = kVirtualClockHz;
            break;
        case 0x16:  // base, maximum and bus (reference) frequencies in MHz
            r.eax = r.ebx = r.ecx = kVirtualClockMhz;
            break;
        case 0x80000000:
            r.eax = kMaxExtLeaf;
            break;
        case 0x80000001:
            r.ecx = kExt1Ecx;
            r.edx = kExt1Edx;
            break;
        case 0x80000002:
        case 0x80000003:
        case 0x80000004: {
            static const char brand[48] = "softkvm emu x86-64 CPU";  // NUL-padded
            uint32_t v[4];
            put_string(brand + 16 * (leaf - 0x80000002), v, 4);
            r.eax = v[0], r.ebx = v[1], r.ecx = v[2], r.edx = v[3];
            break;
        }
        case 0x80000008:
            r.eax = (48u << 8) | msr::kMaxPhysAddrBits;
            break;
        default:
            break;
    }
}

}  // namespace softkvm::cpu
