// The machine-check MSRs of emu's hv layer against KVM's rules (arch/x86/kvm/x86.c
// set_msr_mce/get_msr_mce) and the guest's view of them: CPUID MCE/MCA and RDMSR.
#include <gtest/gtest.h>

#include "cpu/msr_index.h"
#include "hv/mce.h"
#include "hv/vm.h"
#include "hv_fixture.h"

namespace softkvm::hv {
namespace {

namespace msr = cpu::msr;
using cpu::MsrResult;

uint64_t read(const Mce& m, uint32_t index) {
    uint64_t v = 0xDEAD;
    EXPECT_EQ(m.read(index, v), MsrResult::Handled) << std::hex << index;
    return v;
}

TEST(MceTest, CapabilitiesAreQemusDefaultTenBanksWithMcgCtlAndSer) {
    Mce m;
    EXPECT_EQ(read(m, msr::IA32_MCG_CAP), 0x100010Au);  // SER_P | CTL_P | 10 banks
    EXPECT_EQ(read(m, msr::IA32_MCG_CTL), ~0ull);       // all error types enabled
    EXPECT_EQ(read(m, msr::IA32_MCG_STATUS), 0u);
    EXPECT_EQ(read(m, msr::IA32_P5_MC_ADDR), 0u);
    EXPECT_EQ(read(m, msr::IA32_P5_MC_TYPE), 0u);
    for (uint32_t b = 0; b < 10; ++b) {
        EXPECT_EQ(read(m, msr::IA32_MC0_CTL + 4 * b), ~0ull) << b;
        EXPECT_EQ(read(m, msr::IA32_MC0_CTL + 4 * b + 1), 0u) << b;  // no error logged
        EXPECT_EQ(read(m, msr::IA32_MC0_CTL + 4 * b + 2), 0u) << b;
        EXPECT_EQ(read(m, msr::IA32_MC0_CTL + 4 * b + 3), 0u) << b;
    }
    uint64_t v;
    EXPECT_EQ(m.read(msr::IA32_MC0_CTL + 4 * 10, v), MsrResult::Fault);  // bank 10: none
    EXPECT_EQ(m.read(msr::IA32_MC0_CTL + 4 * 32 - 1, v), MsrResult::Fault);
    EXPECT_EQ(m.read(msr::IA32_MC0_CTL + 4 * 32, v), MsrResult::NotMine);  // past the range
    EXPECT_EQ(m.read(msr::IA32_MC0_CTL2, v), MsrResult::Fault);            // no CMCI
    EXPECT_EQ(m.read(msr::IA32_MC0_CTL - 1, v), MsrResult::NotMine);
}

TEST(MceTest, WritesFollowKvmsRules) {
    Mce m;
    EXPECT_EQ(m.write(msr::IA32_MCG_CAP, 0), MsrResult::Fault);  // read-only
    EXPECT_EQ(m.write(msr::IA32_P5_MC_ADDR, 0), MsrResult::Fault);
    EXPECT_EQ(m.write(msr::IA32_MCG_STATUS, 0x5), MsrResult::Handled);
    EXPECT_EQ(read(m, msr::IA32_MCG_STATUS), 0x5u);
    EXPECT_EQ(m.write(msr::IA32_MCG_CTL, 1), MsrResult::Fault);  // only 0 or all ones
    EXPECT_EQ(m.write(msr::IA32_MCG_CTL, 0), MsrResult::Handled);
    EXPECT_EQ(read(m, msr::IA32_MCG_CTL), 0u);
    const uint32_t ctl3 = msr::IA32_MC0_CTL + 4 * 3;
    EXPECT_EQ(m.write(ctl3, 0x00FF), MsrResult::Fault);
    EXPECT_EQ(m.write(ctl3, ~0ull & ~(1ull << 10)), MsrResult::Handled);  // bit 10 may be clear
    EXPECT_EQ(m.write(ctl3, ~0ull & ~1ull), MsrResult::Handled);          // and bit 0
    EXPECT_EQ(m.write(ctl3, ~0ull & ~2ull), MsrResult::Fault);            // no other bit
    EXPECT_EQ(m.write(ctl3, 0), MsrResult::Handled);
    EXPECT_EQ(read(m, ctl3), 0u);
    EXPECT_EQ(m.write(ctl3 + 1, 0), MsrResult::Handled);         // STATUS: clearing is allowed
    EXPECT_EQ(m.write(ctl3 + 1, 1ull << 63), MsrResult::Fault);  // setting is not (Intel)
    EXPECT_EQ(m.write(ctl3 + 2, 0x1234), MsrResult::Handled);    // ADDR, MISC: any value
    EXPECT_EQ(read(m, ctl3 + 2), 0x1234u);
    EXPECT_EQ(m.write(ctl3 + 3, 0x5678), MsrResult::Handled);
    EXPECT_EQ(read(m, ctl3 + 3), 0x5678u);
    EXPECT_EQ(m.write(msr::IA32_MC0_CTL + 4 * 10, 0), MsrResult::Fault);
    EXPECT_EQ(m.write(msr::IA32_MC0_CTL2 + 1, 0), MsrResult::Fault);
}

TEST(MceTest, WithoutMcgCtlPItsRegisterIsGp) {
    Mce m(4);  // KVM's mcg_cap before KVM_X86_SETUP_MCE names MCG_CTL_P: banks only
    uint64_t v;
    EXPECT_EQ(m.read(msr::IA32_MCG_CTL, v), MsrResult::Fault);
    EXPECT_EQ(m.write(msr::IA32_MCG_CTL, 0), MsrResult::Fault);
    EXPECT_EQ(read(m, msr::IA32_MC0_CTL + 4 * 3), ~0ull);
    EXPECT_EQ(m.read(msr::IA32_MC0_CTL + 4 * 4, v), MsrResult::Fault);
}

using hvtest::HvFixture;
using MceVcpuTest = HvFixture;

TEST_F(MceVcpuTest, GuestSeesMceAndMcaInCpuidAndReadsMcgCap) {
    // mov $1,%eax; cpuid; mov %edx,%esi; mov $0x179,%ecx; rdmsr; hlt
    const uint8_t code[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0x89, 0xd6,
                            0xb9, 0x79, 0x01, 0x00, 0x00, 0x0f, 0x32, 0xf4};
    load(code);
    auto v = vcpu32();
    v->run();
    ASSERT_EQ(v->run_state().exit_reason, abi::KVM_EXIT_HLT);
    const uint64_t edx1 = v->get_regs().rsi;
    EXPECT_TRUE(edx1 & (1u << 7)) << "CPUID.1:EDX.MCE";
    EXPECT_TRUE(edx1 & (1u << 14)) << "CPUID.1:EDX.MCA";
    EXPECT_TRUE(edx1 & (1u << 12)) << "CPUID.1:EDX.MTRR";
    EXPECT_EQ(v->get_regs().rax, 0x0100010Au);  // EDX:EAX = IA32_MCG_CAP
    EXPECT_EQ(v->get_regs().rdx, 0u);
}

}  // namespace
}  // namespace softkvm::hv
