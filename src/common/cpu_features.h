// CPU features a user can hide from the guest with `softkvm run --cpu-feature -NAME`: each
// is one CPUID bit, named once here. Both accelerators clear the bit from the CPUID the
// guest sees, and the emu CPU model then refuses what depends on it (as KVM does from
// the guest's CPUID). New features are one more line in kCpuFeatures.
#pragma once
#include <cstdint>
#include <string_view>

namespace softkvm::features {

enum class CpuidReg : uint8_t { Eax, Ebx, Ecx, Edx };

struct CpuidBit {
    uint32_t leaf = 0, subleaf = 0;
    CpuidReg reg = CpuidReg::Eax;
    uint8_t bit = 0;
};

// CPUID.(EAX=7,ECX=0):ECX[24] BUS_LOCK_DETECT (spec §3; Intel SDM vol. 2, CPUID).
inline constexpr CpuidBit kBusLockDetect{7, 0, CpuidReg::Ecx, 24};

struct CpuFeature {
    std::string_view name;
    CpuidBit where;
    std::string_view what;
};

inline constexpr CpuFeature kCpuFeatures[] = {
    {"bus-lock-detect", kBusLockDetect, "bus-lock #DB (DEBUGCTL bit 2, DR6.BLD)"},
};

inline const CpuFeature* find_cpu_feature(std::string_view name) {
    for (const CpuFeature& f : kCpuFeatures)
        if (f.name == name) return &f;
    return nullptr;
}

// Clears `b` from the registers CPUID returned for (leaf, subleaf).
template <typename Regs>
void clear_cpuid_bit(const CpuidBit& b, uint32_t leaf, uint32_t subleaf, Regs& r) {
    if (leaf != b.leaf || subleaf != b.subleaf) return;
    const uint32_t mask = ~(1u << b.bit);
    switch (b.reg) {
        case CpuidReg::Eax:
            r.eax &= mask;
            break;
        case CpuidReg::Ebx:
            r.ebx &= mask;
            break;
        case CpuidReg::Ecx:
            r.ecx &= mask;
            break;
        case CpuidReg::Edx:
            r.edx &= mask;
            break;
    }
}

}  // namespace softkvm::features
