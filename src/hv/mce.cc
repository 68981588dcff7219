// Machine-check MSRs as KVM emulates them (mce.h). Each rule below is KVM's, and KVM's
// follow the SDM (vol. 3B §15.3) where the SDM defines the behaviour.
#include "hv/mce.h"

namespace softkvm::hv {

namespace msr = cpu::msr;
using cpu::MsrResult;

Mce::Mce(uint64_t mcg_cap) : mcg_cap_(mcg_cap) {
    // As after KVM_X86_SETUP_MCE: every error type enabled in IA32_MCG_CTL (when it
    // exists) and in each bank's IA32_MCi_CTL.
    if (mcg_cap_ & msr::MCG_CTL_P) mcg_ctl_ = ~0ull;
    for (unsigned b = 0; b < banks(); ++b) banks_[b * msr::kMcBankMsrs] = ~0ull;
}

MsrResult Mce::read(uint32_t index, uint64_t& value) const {
    switch (index) {
        case msr::IA32_P5_MC_ADDR:
        case msr::IA32_P5_MC_TYPE:
            value = 0;
            return MsrResult::Handled;
        case msr::IA32_MCG_CAP:
            value = mcg_cap_;
            return MsrResult::Handled;
        case msr::IA32_MCG_STATUS:
            value = mcg_status_;
            return MsrResult::Handled;
        case msr::IA32_MCG_CTL:
            if (!(mcg_cap_ & msr::MCG_CTL_P)) return MsrResult::Fault;
            value = mcg_ctl_;
            return MsrResult::Handled;
        default:
            break;
    }
    if (index >= msr::IA32_MC0_CTL2 && index < msr::IA32_MC0_CTL2 + msr::kMcMaxBanks)
        return MsrResult::Fault;  // no CMCI (MCG_CMCI_P clear): every CTL2 is #GP
    if (index >= msr::IA32_MC0_CTL &&
        index < msr::IA32_MC0_CTL + msr::kMcMaxBanks * msr::kMcBankMsrs) {
        const uint32_t off = index - msr::IA32_MC0_CTL;
        if (off >= banks() * msr::kMcBankMsrs) return MsrResult::Fault;  // a bank not there
        value = banks_[off];
        return MsrResult::Handled;
    }
    return MsrResult::NotMine;
}

MsrResult Mce::write(uint32_t index, uint64_t value) {
    switch (index) {
        case msr::IA32_P5_MC_ADDR:
        case msr::IA32_P5_MC_TYPE:
        case msr::IA32_MCG_CAP:
            return MsrResult::Fault;  // read-only
        case msr::IA32_MCG_STATUS:
            mcg_status_ = value;  // KVM takes any value
            return MsrResult::Handled;
        case msr::IA32_MCG_CTL:
            // Only all zeros or all ones (SDM vol. 3B §15.3.1.3), and only if it exists.
            if (!(mcg_cap_ & msr::MCG_CTL_P)) return MsrResult::Fault;
            if (value != 0 && value != ~0ull) return MsrResult::Fault;
            mcg_ctl_ = value;
            return MsrResult::Handled;
        default:
            break;
    }
    if (index >= msr::IA32_MC0_CTL2 && index < msr::IA32_MC0_CTL2 + msr::kMcMaxBanks)
        return MsrResult::Fault;
    if (index >= msr::IA32_MC0_CTL &&
        index < msr::IA32_MC0_CTL + msr::kMcMaxBanks * msr::kMcBankMsrs) {
        const uint32_t off = index - msr::IA32_MC0_CTL;
        if (off >= banks() * msr::kMcBankMsrs) return MsrResult::Fault;
        switch (off % msr::kMcBankMsrs) {
            case 0:
                // IA32_MCi_CTL: 0 or all ones; KVM also lets bit 10 (an AMD K8 GART
                // workaround in old Linux kernels) and bit 0 (UnixWare) be clear.
                if (value != 0 && (value | (1ull << 10) | 1) != ~0ull) return MsrResult::Fault;
                break;
            case 1:
                // IA32_MCi_STATUS: software may only clear it on Intel parts (non-zero
                // writes are AMD's McStatusWrEn feature).
                if (value != 0) return MsrResult::Fault;
                break;
            default:
                break;  // ADDR, MISC: KVM stores any value
        }
        banks_[off] = value;
        return MsrResult::Handled;
    }
    return MsrResult::NotMine;
}

}  // namespace softkvm::hv
