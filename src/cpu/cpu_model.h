// The CPU model softkvm's emu accelerator presents: one table of CPUID leaves.
#pragma once
#include <cstdint>

#include "cpu/owner.h"

namespace softkvm::cpu {

// XCR0 bits the model supports: x87 (0) and SSE (1) (CPUID.(EAX=0DH,ECX=0):EAX).
inline constexpr uint64_t kXcr0Supported = 0x3;

// CPUID as the model answers it, before the owner (hv) adjusts it.
void model_cpuid(uint32_t leaf, uint32_t subleaf, CpuidRegs& r);

}  // namespace softkvm::cpu
