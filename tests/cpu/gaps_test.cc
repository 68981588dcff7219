// The SDM's exact behaviour where QEMU 7.2 TCG (the guests' differential peer) departs
// from it or cannot show it: DR7.GD, a data breakpoint on MOV SS reported after the next
// instruction, canonical checks of IA32_SYSENTER_ESP and of a TSS base, the 32-bit forms
// of SYSEXIT and SYSRET, and VMCALL with an owner that has no hypercalls.
#include <gtest/gtest.h>

#include "machine.h"

namespace softkvm::cpu::test {
namespace {

using GapsTest = Machine;

TEST_F(GapsTest, Dr7GdMakesDebugRegisterAccessAFaultWithBd) {
    cpu_.state().dr[7] = msr::DR7_FIXED1 | msr::DR7_GD;
    cpu_.state_changed();
    const uint8_t code[] = {0x0f, 0x21, 0xf0};  // mov %dr6,%rax
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode);  // a fault: the MOV runs again after the handler
    EXPECT_TRUE(cpu_.state().dr[6] & msr::DR6_BD);
    EXPECT_FALSE(cpu_.state().dr[7] & msr::DR7_GD);  // cleared for the handler
}

TEST_F(GapsTest, DataBreakpointOnMovSsIsReportedAfterTheNextInstruction) {
    put64(0x9000, 0x10);  // the SS selector MOV SS reads
    CpuState& s = cpu_.state();
    s.dr[0] = 0x9000;
    s.dr[7] = msr::DR7_FIXED1 | 0x1 | (3u << 16) | (1u << 18);  // L0, read/write, 2 bytes
    cpu_.state_changed();
    const uint8_t code[] = {0x8e, 0x14, 0x25, 0x00, 0x90, 0x00, 0x00,  // mov 0x9000,%ss
                            0x90, 0x90};                               // nop; nop
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 8);  // after the NOP that followed MOV SS
    EXPECT_TRUE(cpu_.state().dr[6] & 1);
}

// ICEBP right after MOV SS (QEMU 7.2 TCG raises #UD for ICEBP): the data breakpoint MOV SS
// held back and ICEBP's #DB are one delivery, with the ICEBP's next RIP and DR6.B0. Were
// they two, the held trap would hit the handler's first instruction.
TEST_F(GapsTest, IcebpAfterMovSsTakesItsHeldDataBreakpointInOneDebugException) {
    put64(0x9000, 0x10);
    CpuState& s = cpu_.state();
    s.dr[0] = 0x9000;
    s.dr[7] = msr::DR7_FIXED1 | 0x1 | (3u << 16) | (1u << 18);
    cpu_.state_changed();
    const uint8_t code[] = {0x8e, 0x14, 0x25, 0x00, 0x90, 0x00, 0x00,  // mov 0x9000,%ss
                            0xf1, 0x90};                               // icebp; nop
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 8);  // after the ICEBP, not inside the handler
    EXPECT_EQ(cpu_.state().dr[6] & 0x400F, 1u);
}

TEST_F(GapsTest, IcebpAfterMovSsUnderSingleStepIsOneDebugExceptionWithBs) {
    CpuState& s = cpu_.state();
    s.gpr[RAX] = 0x10;
    s.rflags |= FLAG_TF;
    cpu_.state_changed();
    const uint8_t code[] = {0x8e, 0xd0, 0xf1, 0x90};  // mov %eax,%ss; icebp; nop
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 3);
    EXPECT_EQ(cpu_.state().dr[6] & 0x400F, 0x4000u);
}

TEST_F(GapsTest, NonCanonicalSysenterEspIsGp) {
    // mov $0x175,%ecx; mov $0,%eax; mov $0x8000,%edx; wrmsr  (0x0000800000000000)
    const uint8_t code[] = {0xb9, 0x75, 0x01, 0x00, 0x00, 0xb8, 0x00, 0x00, 0x00,
                            0x00, 0xba, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x30};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(0), 0u);
    EXPECT_EQ(cpu_.state().sysenter_esp, 0u);
}

TEST_F(GapsTest, LtrOfATssWithANonCanonicalBaseIsGp) {
    CpuState& s = cpu_.state();
    s.gdtr.limit = 0x27;
    put64(0x518, 0x0000890000000067ull);  // available 64-bit TSS, limit 0x67, base 0
    put64(0x520, 0x0000000000008000ull);  // base[63:32] = 0x8000: 0x0000800000000000
    cpu_.state_changed();
    const uint8_t code[] = {0x66, 0xb8, 0x18, 0x00, 0x0f, 0x00, 0xd8};  // mov $0x18,%ax; ltr %ax
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(0), 0x18u);
    EXPECT_EQ(get64(0x518) >> 40 & 0xF, 0x9u);  // not marked busy
}

TEST_F(GapsTest, SysexitWithoutRexWEntersCompatibilityModeAtCpl3) {
    CpuState& s = cpu_.state();
    s.sysenter_cs = 0x08;
    s.gpr[RCX] = 0xFFFF000000001234ull;  // ECX and EDX only
    s.gpr[RDX] = 0x7777000000011000ull;
    const uint8_t code[] = {0x0f, 0x35};  // sysexit
    load(code);
    EXPECT_EQ(cpu_.run(1), StopReason::InsnLimit);
    EXPECT_EQ(s.cpl, 3);
    EXPECT_EQ(s.seg[CS].selector, 0x1B);  // SYSENTER_CS + 16, RPL 3
    EXPECT_EQ(s.seg[SS].selector, 0x23);  // SYSENTER_CS + 24, RPL 3
    EXPECT_EQ(s.mode, Mode::Prot32);
    EXPECT_EQ(s.gpr[RSP], 0x1234u);
    EXPECT_EQ(s.rip, 0x11000u);
}

TEST_F(GapsTest, SysretWithoutRexWEntersCompatibilityMode) {
    CpuState& s = cpu_.state();
    s.efer |= msr::EFER_SCE;
    s.star = 0x0018000800000000ull;
    s.gpr[RCX] = 0xFFFFFFFF00011000ull;  // only ECX counts: no canonical check
    s.gpr[R11] = 0x2;
    cpu_.state_changed();
    const uint8_t code[] = {0x0f, 0x07};  // sysretl
    load(code);
    EXPECT_EQ(cpu_.run(1), StopReason::InsnLimit);
    EXPECT_EQ(s.cpl, 3);
    EXPECT_EQ(s.seg[CS].selector, 0x1B);  // STAR[63:48] | 3
    EXPECT_EQ(s.seg[SS].selector, 0x23);  // STAR[63:48] + 8 | 3
    EXPECT_EQ(s.mode, Mode::Prot32);
    EXPECT_EQ(s.rip, 0x11000u);
}

TEST_F(GapsTest, VmcallWithoutAHypercallOwnerIsUd) {
    const uint8_t code[] = {0x0f, 0x01, 0xc1};  // vmcall
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_UD);
    EXPECT_EQ(frame(0), kCode);
}

}  // namespace
}  // namespace softkvm::cpu::test
