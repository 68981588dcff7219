// The CPU models softkvm's emu accelerator can present (`softkvm run --cpu-model`): one
// table of the facts that differ between them (signature, architectural PMU, LBR format
// and depth) and the CPUID answers built from it.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>

#include "cpu/owner.h"

namespace softkvm::cpu {

// XCR0 bits the model supports: x87 (0) and SSE (1) (CPUID.(EAX=0DH,ECX=0):EAX).
inline constexpr uint64_t kXcr0Supported = 0x3;

struct CpuModel {
    const char* name;         // --cpu-model NAME
    const char* description;  // for --help and caps
    uint32_t signature;       // CPUID.1:EAX (family, model, stepping)
    uint8_t pmu_version;      // CPUID.0AH:EAX[7:0]
    uint8_t lbr_format;       // IA32_PERF_CAPABILITIES[5:0] (spec §2.1)
    uint8_t lbr_depth;        // LBR stack entries
    bool lbr_info;            // LBR_INFO_n MSRs (format 5)
};

// Architectural PMU of every model (SDM vol. 3 §18.2): counters and their width.
inline constexpr int kPmuGpCounters = 4;
inline constexpr int kPmuFixedCounters = 3;
inline constexpr int kPmuCounterBits = 48;

std::span<const CpuModel> cpu_models();
const CpuModel& default_cpu_model();
// nullptr if no model has that name.
const CpuModel* find_cpu_model(std::string_view name);

// The IA32_PERF_CAPABILITIES value of a model: its LBR format and full-width counter
// writes (bit 13); PEBS is not in the model.
uint64_t model_perf_capabilities(const CpuModel& m);

// CPUID as the model answers it, before the owner (hv) adjusts it.
void model_cpuid(const CpuModel& m, uint32_t leaf, uint32_t subleaf, CpuidRegs& r);

}  // namespace softkvm::cpu
