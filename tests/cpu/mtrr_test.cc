// The MTRRs of the CPU model (SDM vol. 3A §11.11): CPUID.1:EDX.MTRR, IA32_MTRRCAP as KVM
// reports it, the fixed and variable range MSRs and IA32_MTRR_DEF_TYPE through RDMSR and
// WRMSR with #GP on reserved bits and types, and the memory type they give an address.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "cpu/cpu_model.h"
#include "machine.h"

namespace softkvm::cpu::test {
namespace {

class MtrrTest : public Machine {
  protected:
    // Runs `mov $index,%ecx; mov $lo,%eax; mov $hi,%edx; wrmsr; hlt`: true if no #GP.
    bool wrmsr(uint32_t index, uint64_t v) {
        uint8_t code[] = {0xb9, 0, 0, 0, 0, 0xb8, 0, 0, 0, 0, 0xba, 0, 0, 0, 0, 0x0f, 0x30, 0xf4};
        const auto lo = static_cast<uint32_t>(v), hi = static_cast<uint32_t>(v >> 32);
        std::memcpy(code + 1, &index, 4);
        std::memcpy(code + 6, &lo, 4);
        std::memcpy(code + 11, &hi, 4);
        return run(code);
    }
    // Runs `mov $index,%ecx; rdmsr; hlt`: the value, or nullopt on #GP.
    std::optional<uint64_t> rdmsr(uint32_t index) {
        uint8_t code[] = {0xb9, 0, 0, 0, 0, 0x0f, 0x32, 0xf4};
        std::memcpy(code + 1, &index, 4);
        if (!run(code)) return std::nullopt;
        const CpuState& s = cpu_.state();
        return (s.gpr[RDX] << 32) | (s.gpr[RAX] & 0xFFFFFFFF);
    }

  private:
    template <size_t N>
    bool run(const uint8_t (&code)[N]) {
        owner_.outs.clear();
        load(code);
        cpu_.host_wrote(kCode, N);  // new code at the same place: drop the decoded block
        cpu_.state().rip = kCode;
        cpu_.state().gpr[RSP] = kStack;
        cpu_.run(0);
        const int v = vector_taken();
        EXPECT_TRUE(v == -1 || v == VEC_GP) << "vector " << v;
        return v == -1;
    }
};

TEST_F(MtrrTest, CpuidListsMtrrsAndMtrrcapIsKvms) {
    CpuidRegs r;
    model_cpuid(default_cpu_model(), 1, 0, r);
    EXPECT_TRUE(r.edx & (1u << 12));                // CPUID.1:EDX.MTRR
    EXPECT_EQ(rdmsr(msr::IA32_MTRRCAP), 0x508u);    // WC | FIX | VCNT 8, no SMRR
    EXPECT_FALSE(wrmsr(msr::IA32_MTRRCAP, 0x508));  // read-only
}

TEST_F(MtrrTest, RangeRegistersReadBackWhatWasWritten) {
    const uint32_t fixed[] = {0x250, 0x258, 0x259, 0x268, 0x269, 0x26a,
                              0x26b, 0x26c, 0x26d, 0x26e, 0x26f};
    uint64_t v = 0x0001040506000106ull;  // UC WC WT WP WB in some order
    for (uint32_t i : fixed) {
        EXPECT_EQ(rdmsr(i), 0u) << std::hex << i;  // all zero at power-up
        ASSERT_TRUE(wrmsr(i, v)) << std::hex << i;
        EXPECT_EQ(rdmsr(i), v) << std::hex << i;
        v = (v << 8) | (v >> 56);
    }
    for (uint32_t i = 0x200; i < 0x210; i += 2) {
        ASSERT_TRUE(wrmsr(i, 0x3FFF'0000'0000ull | 6)) << std::hex << i;  // base, WB
        ASSERT_TRUE(wrmsr(i + 1, 0x3FFF'F000'0000ull | (1u << 11))) << std::hex << i;
        EXPECT_EQ(rdmsr(i), 0x3FFF'0000'0000ull | 6);
        EXPECT_EQ(rdmsr(i + 1), 0x3FFF'F000'0000ull | (1u << 11));
    }
    EXPECT_FALSE(rdmsr(0x210));  // VCNT is 8: a ninth pair does not exist
    EXPECT_FALSE(rdmsr(0x251));  // between the fixed-range registers
    EXPECT_FALSE(rdmsr(0x25a));
    EXPECT_FALSE(rdmsr(0x267));
    EXPECT_FALSE(rdmsr(0x270));
}

TEST_F(MtrrTest, ReservedBitsAndTypesAreGp) {
    // IA32_MTRR_DEF_TYPE: only E (11), FE (10) and the type (7:0); the type must be valid.
    EXPECT_TRUE(wrmsr(msr::IA32_MTRR_DEF_TYPE, 0xC06));
    EXPECT_EQ(rdmsr(msr::IA32_MTRR_DEF_TYPE), 0xC06u);
    EXPECT_FALSE(wrmsr(msr::IA32_MTRR_DEF_TYPE, 0x1806));  // bit 12
    EXPECT_FALSE(wrmsr(msr::IA32_MTRR_DEF_TYPE, 0x100));   // bit 8
    for (uint64_t t : {2, 3, 7, 8, 0xFF}) EXPECT_FALSE(wrmsr(msr::IA32_MTRR_DEF_TYPE, 0x800 | t));
    EXPECT_EQ(rdmsr(msr::IA32_MTRR_DEF_TYPE), 0xC06u);  // unchanged by the faults
    // Fixed ranges: each of the eight bytes a valid type.
    EXPECT_FALSE(wrmsr(0x250, 0x0606060606060602ull));
    EXPECT_FALSE(wrmsr(0x26f, 0x0706060606060606ull));
    // PHYSBASE: bits 11:8 and bits at or above MAXPHYADDR (46) reserved, valid type.
    EXPECT_FALSE(wrmsr(0x200, 0x100 | 6));
    EXPECT_FALSE(wrmsr(0x200, (1ull << 46) | 6));
    EXPECT_FALSE(wrmsr(0x200, 0x1000 | 3));
    EXPECT_TRUE(wrmsr(0x200, ((1ull << 46) - 0x1000) | 5));
    // PHYSMASK: bits 10:0 and bits at or above MAXPHYADDR reserved; V is bit 11.
    EXPECT_FALSE(wrmsr(0x201, 0x800 | 1));
    EXPECT_FALSE(wrmsr(0x201, (1ull << 46) | 0x800));
    EXPECT_TRUE(wrmsr(0x201, ((1ull << 46) - 0x1000) | 0x800));
}

TEST_F(MtrrTest, MemoryTypeFollowsFixedThenVariableThenDefaultRanges) {
    // The bare machine maps its first 4 MiB 1:1 with 2 MiB pages, PAT entry 0 (WB).
    ASSERT_TRUE(wrmsr(msr::IA32_MTRR_DEF_TYPE, 0x800 | 6));  // enabled, WB, no fixed
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::WB);
    // Variable range 0: [0x200000, 0x400000) UC.
    ASSERT_TRUE(wrmsr(0x200, 0x200000 | 0));
    ASSERT_TRUE(wrmsr(0x201, ((1ull << 46) - 0x200000) | 0x800));
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::WB);
    EXPECT_EQ(cpu_.memory_type(0x234000), MemType::UC);
    // Range 1 covers [0, 0x400000) WT: WT alone below 2 MiB, UC wins where both match.
    ASSERT_TRUE(wrmsr(0x202, 0 | 4));
    ASSERT_TRUE(wrmsr(0x203, ((1ull << 46) - 0x400000) | 0x800));
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::WT);
    EXPECT_EQ(cpu_.memory_type(0x234000), MemType::UC);
    // Range 0 := WB: WB and WT overlapping give WT.
    ASSERT_TRUE(wrmsr(0x200, 0x200000 | 6));
    EXPECT_EQ(cpu_.memory_type(0x234000), MemType::WT);
    // Range 1 invalid again (V clear): the default type below 2 MiB.
    ASSERT_TRUE(wrmsr(0x203, ((1ull << 46) - 0x400000)));
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::WB);
    // Fixed ranges, once FE is set: 0x10000 is byte 1 of FIX64K_00000, 0xA8000 byte 2
    // of FIX16K_A0000, 0xC1000 byte 1 of FIX4K_C0000.
    ASSERT_TRUE(wrmsr(0x250, 0x0606060606060006ull));
    ASSERT_TRUE(wrmsr(0x259, 0x0000000000010000ull));
    ASSERT_TRUE(wrmsr(0x268, 0x0606060606060506ull));
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::WB);  // FE still clear
    ASSERT_TRUE(wrmsr(msr::IA32_MTRR_DEF_TYPE, 0xC00 | 6));
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::UC);
    EXPECT_EQ(cpu_.memory_type(0x20000), MemType::WB);
    EXPECT_EQ(cpu_.memory_type(0xA8000), MemType::WC);
    EXPECT_EQ(cpu_.memory_type(0xA4000), MemType::UC);
    EXPECT_EQ(cpu_.memory_type(0xC1000), MemType::WP);
    EXPECT_EQ(cpu_.memory_type(0x100000), MemType::WB);  // 1 MiB: past the fixed ranges
    // MTRRs disabled (E clear): everything UC.
    ASSERT_TRUE(wrmsr(msr::IA32_MTRR_DEF_TYPE, 6));
    EXPECT_EQ(cpu_.memory_type(0x100000), MemType::UC);
}

}  // namespace
}  // namespace softkvm::cpu::test
