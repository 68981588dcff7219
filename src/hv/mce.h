// Machine-check registers of one vCPU, kept by the hv layer as KVM keeps them for its
// guests (arch/x86/kvm/x86.c: set_msr_mce, get_msr_mce): IA32_MCG_CAP (read-only),
// IA32_MCG_STATUS, IA32_MCG_CTL and each bank's CTL, STATUS, ADDR and MISC. Nothing here
// raises a machine check: a guest sees the architecture (CPUID MCE and MCA) with banks
// that never report an error, which is what Linux needs to set up its MCE handling.
#pragma once
#include <array>
#include <cstdint>

#include "cpu/msr_index.h"
#include "cpu/owner.h"

namespace softkvm::hv {

class Mce {
  public:
    explicit Mce(uint64_t mcg_cap = cpu::msr::kMcgCapDefault);

    // NotMine for an index outside the machine-check MSRs; Fault where KVM answers #GP.
    cpu::MsrResult read(uint32_t index, uint64_t& value) const;
    cpu::MsrResult write(uint32_t index, uint64_t value);

    uint64_t mcg_cap() const { return mcg_cap_; }

  private:
    unsigned banks() const { return static_cast<unsigned>(mcg_cap_ & cpu::msr::MCG_CAP_COUNT); }

    uint64_t mcg_cap_;
    uint64_t mcg_status_ = 0;
    uint64_t mcg_ctl_ = 0;
    std::array<uint64_t, cpu::msr::kMcMaxBanks * cpu::msr::kMcBankMsrs> banks_{};
};

}  // namespace softkvm::hv
