// The CPU model softkvm's emu accelerator presents: one table of CPUID leaves.
#pragma once
#include <cstdint>

#include "cpu/owner.h"

namespace softkvm::cpu {

// CPUID as the model answers it, before the owner (hv) adjusts it.
void model_cpuid(uint32_t leaf, uint32_t subleaf, CpuidRegs& r);

}  // namespace softkvm::cpu
