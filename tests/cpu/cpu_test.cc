// Unit tests of the software CPU on a bare 64-bit machine (machine.h). Each program is
// given as the GNU assembler source in a comment and its encoding.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cpu/cpu_model.h"
#include "machine.h"

namespace softkvm::cpu::test {
namespace {

using CpuTest = Machine;

TEST_F(CpuTest, AddSetsOverflowSignAdjustAndParity) {
    // mov $0x7fffffffffffffff,%rax; add $1,%rax; pushfq; pop %rbx; mov $0x10,%dx;
    // out %eax,%dx; hlt
    const uint8_t code[] = {0x48, 0xb8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x48,
                            0x83, 0xc0, 0x01, 0x9c, 0x5b, 0x66, 0xba, 0x10, 0x00, 0xef, 0xf4};
    load(code);
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    EXPECT_EQ(owner_.hlts, 1);
    EXPECT_EQ(cpu_.state().gpr[RAX], 0x8000000000000000ull);
    EXPECT_EQ(cpu_.state().gpr[RBX], FLAG_FIXED1 | FLAG_PF | FLAG_AF | FLAG_SF | FLAG_OF);
    ASSERT_EQ(owner_.outs.size(), 1u);
    EXPECT_EQ(owner_.outs[0].port, 0x10);
    EXPECT_EQ(owner_.outs[0].size, 4);
    EXPECT_EQ(cpu_.instructions_retired(), 7u);
    EXPECT_EQ(cpu_.state().rip, kCode + sizeof code);  // HLT retired
}

TEST_F(CpuTest, UndefinedOpcodeRaisesUdWithFaultingRip) {
    const uint8_t code[] = {0x90, 0x0f, 0x0b};  // nop; ud2
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_UD);
    EXPECT_EQ(frame(0), kCode + 1);  // RIP of UD2, no error code
    EXPECT_EQ(frame(1), 0x08u);      // CS
    EXPECT_EQ(frame(3), kStack);     // old RSP
}

TEST_F(CpuTest, DivideByZeroRaisesDe) {
    // xor %ecx,%ecx; mov $5,%eax; div %ecx
    const uint8_t code[] = {0x31, 0xc9, 0xb8, 0x05, 0x00, 0x00, 0x00, 0xf7, 0xf1};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DE);
    EXPECT_EQ(frame(0), kCode + 7);
    EXPECT_EQ(cpu_.state().gpr[RCX], 0u);
}

TEST_F(CpuTest, PageFaultReportsErrorCodeAndCr2) {
    // mov $0x40000000,%rsi; mov (%rsi),%eax   (above the 4 MiB mapped)
    const uint8_t code[] = {0x48, 0xc7, 0xc6, 0x00, 0x00, 0x00, 0x40, 0x8b, 0x06};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_PF);
    EXPECT_EQ(frame(0), 0u);  // not present, read, supervisor
    EXPECT_EQ(frame(1), kCode + 7);
    EXPECT_EQ(cpu_.state().cr2, 0x40000000u);
}

TEST_F(CpuTest, WriteToReadOnlyPageWithWpFaults) {
    put64(0x3008, 0x200000 | PTE_P | PTE_PS);  // second 2 MiB read-only
    cpu_.flush_tlb();
    // mov $0x200010,%edi; movl $1,(%rdi)
    const uint8_t code[] = {0xbf, 0x10, 0x00, 0x20, 0x00, 0xc7, 0x07, 0x01, 0x00, 0x00, 0x00};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_PF);
    EXPECT_EQ(frame(0), PFERR_P | PFERR_W);
    EXPECT_EQ(cpu_.state().cr2, 0x200010u);
    EXPECT_FALSE(get64(0x3008) & PTE_D);
}

TEST_F(CpuTest, ReservedBitFaultSetsRsvdAndPresent) {
    // Bits 20:13 of a 2 MiB entry are reserved. SDM vol. 3 §4.7: RSVD is reported with P
    // (reserved bits are only checked in present entries): error code 9 for a read.
    put64(0x3008, 0x200000 | PTE_P | PTE_RW | PTE_PS | (1ull << 13));
    cpu_.flush_tlb();
    // mov $0x200010,%edi; mov (%rdi),%eax
    const uint8_t code[] = {0xbf, 0x10, 0x00, 0x20, 0x00, 0x8b, 0x07};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_PF);
    EXPECT_EQ(frame(0), PFERR_P | PFERR_RSVD);
    EXPECT_EQ(cpu_.state().cr2, 0x200010u);
}

TEST_F(CpuTest, WriteSetsAccessedAndDirty) {
    // mov $0x200010,%edi; movl $1,(%rdi); hlt
    const uint8_t code[] = {0xbf, 0x10, 0x00, 0x20, 0x00, 0xc7, 0x07, 0x01, 0x00, 0x00, 0x00, 0xf4};
    load(code);
    EXPECT_FALSE(get64(0x3008) & PTE_A);
    cpu_.run(0);
    EXPECT_EQ(owner_.hlts, 1);
    EXPECT_EQ(get64(0x200010) & 0xFFFFFFFF, 1u);
    EXPECT_TRUE(get64(0x3008) & PTE_A);
    EXPECT_TRUE(get64(0x3008) & PTE_D);
    EXPECT_TRUE(get64(0x1000) & PTE_A);
}

TEST_F(CpuTest, MissingIdtEntryEndsInTripleFault) {
    cpu_.state().idtr.limit = 0;
    const uint8_t code[] = {0x90, 0x0f, 0x0b};
    load(code);
    EXPECT_EQ(cpu_.run(0), StopReason::Shutdown);
    EXPECT_NE(cpu_.stop_detail().find("triple fault"), std::string::npos);
    EXPECT_NE(cpu_.stop_detail().find("#6"), std::string::npos);
    EXPECT_NE(cpu_.stop_detail().find("#8"), std::string::npos);
}

TEST_F(CpuTest, InstructionLimitStopsExactly) {
    const uint8_t code[] = {0xeb, 0xfe};  // 1: jmp 1b
    load(code);
    EXPECT_EQ(cpu_.run(1000), StopReason::InsnLimit);
    EXPECT_EQ(cpu_.instructions_retired(), 1000u);
    EXPECT_EQ(cpu_.run(1500), StopReason::InsnLimit);
    EXPECT_EQ(cpu_.instructions_retired(), 1500u);
}

TEST_F(CpuTest, SelfModifyingCodeInTheSameBlockTakesEffect) {
    // lea target(%rip),%rdi; movb $0x42,1(%rdi); target: mov $0x11,%al; out %al,$0x10; hlt
    const uint8_t code[] = {0x48, 0x8d, 0x3d, 0x04, 0x00, 0x00, 0x00, 0xc6,
                            0x47, 0x01, 0x42, 0xb0, 0x11, 0xe6, 0x10, 0xf4};
    load(code);
    cpu_.run(0);
    ASSERT_EQ(owner_.outs.size(), 1u);
    EXPECT_EQ(owner_.outs[0].value, 0x42u);
    // Second run of the same code (reset RIP): still the modified byte.
    cpu_.state().rip = kCode;
    cpu_.run(0);
    EXPECT_EQ(owner_.outs.back().value, 0x42u);
}

TEST_F(CpuTest, RepMovsbAndBackwardRepStosb) {
    for (int k = 0; k < 100; ++k) ram_[0x30000 + k] = static_cast<uint8_t>(k + 1);
    // mov $0x30000,%rsi; mov $0x31000,%rdi; mov $100,%ecx; cld; rep movsb; mov %ecx,%eax;
    // out %eax,$0x10; std; mov $0x31063,%rdi; mov $0xab,%al; mov $4,%ecx; rep stosb; cld; hlt
    const uint8_t code[] = {0x48, 0xc7, 0xc6, 0x00, 0x00, 0x03, 0x00, 0x48, 0xc7, 0xc7, 0x00, 0x10,
                            0x03, 0x00, 0xb9, 0x64, 0x00, 0x00, 0x00, 0xfc, 0xf3, 0xa4, 0x89, 0xc8,
                            0xe7, 0x10, 0xfd, 0x48, 0xc7, 0xc7, 0x63, 0x10, 0x03, 0x00, 0xb0, 0xab,
                            0xb9, 0x04, 0x00, 0x00, 0x00, 0xf3, 0xaa, 0xfc, 0xf4};
    load(code);
    cpu_.run(0);
    ASSERT_EQ(owner_.outs.size(), 1u);
    EXPECT_EQ(owner_.outs[0].value, 0u);  // RCX counted down to zero
    EXPECT_EQ(std::memcmp(ram_ + 0x30000, ram_ + 0x31000, 96), 0);
    for (int k = 96; k < 100; ++k) EXPECT_EQ(ram_[0x31000 + k], 0xAB) << k;
    EXPECT_EQ(cpu_.state().gpr[RDI], 0x3105Fu);  // DF=1 moved RDI down by 4
}

TEST_F(CpuTest, LongRepYieldsToThePendingInterrupt) {
    owner_.irq_vector = 0x44;
    cpu_.state().rflags |= FLAG_IF;
    // mov $0x31000,%edi; mov $20000,%ecx; rep stosb; hlt
    const uint8_t code[] = {0xbf, 0x00, 0x10, 0x03, 0x00, 0xb9, 0x20,
                            0x4e, 0x00, 0x00, 0xf3, 0xaa, 0xf4};
    load(code);
    cpu_.set_deadline(3);  // due once the REP has started
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), 0x44);
    EXPECT_EQ(frame(0), kCode + 10);  // interrupted inside the REP: it will resume
    // Each iteration is a tick of the virtual clock: the deadline came after the first.
    EXPECT_EQ(cpu_.state().gpr[RCX], 20000u - 1u);
}

TEST_F(CpuTest, RepIterationsCountAgainstTheInstructionLimit) {
    // mov $0x31000,%edi; mov $1000000,%ecx; rep stosb; hlt: the limit stops the REP after
    // exactly the iterations it allows (each counts as an instruction), resumable.
    const uint8_t code[] = {0xbf, 0x00, 0x10, 0x03, 0x00, 0xb9, 0x40,
                            0x42, 0x0f, 0x00, 0xf3, 0xaa, 0xf4};
    load(code);
    EXPECT_EQ(cpu_.run(10000), StopReason::InsnLimit);
    EXPECT_EQ(cpu_.instructions_retired(), 10000u);
    EXPECT_EQ(cpu_.state().gpr[RCX], 1000000u - (10000u - 2u));
    EXPECT_EQ(cpu_.state().rip, kCode + 10);  // still at the REP
    cpu_.run(0);
    EXPECT_EQ(owner_.hlts, 1);
    EXPECT_EQ(cpu_.state().gpr[RCX], 0u);
    EXPECT_EQ(cpu_.instructions_retired(), 2u + 1000000u + 1u);
}

TEST_F(CpuTest, BlockCacheFlushesAtItsLimit) {
    // A 4 KiB sled of NOPs with a RET ending every 64-byte line, called at each of its
    // 4096 byte addresses: every call decodes a new block; the cache stays at its limit.
    cpu_.set_block_cache_limit(4096);
    std::memset(ram_ + 0x40000, 0x90, 4096);
    for (int k = 0; k < 64; ++k) ram_[0x40000 + k * 64 + 63] = 0xC3;  // ret every 64 bytes
    // mov $0x40000,%ebx; 1: call *%rbx; inc %ebx; cmp $0x41000,%ebx; jb 1b; hlt
    const uint8_t code[] = {0xbb, 0x00, 0x00, 0x04, 0x00, 0xff, 0xd3, 0xff, 0xc3,
                            0x81, 0xfb, 0x00, 0x10, 0x04, 0x00, 0x72, 0xf4, 0xf4};
    load(code);
    cpu_.run(0);
    ASSERT_EQ(owner_.hlts, 1);
    const Cpu::CacheStats st = cpu_.cache_stats();
    EXPECT_GE(st.blocks_built, 4096u);  // one per start address at least
    EXPECT_GE(st.flushes, 10u);         // ~4096 * 32 decoded instructions over a 4096 limit
    EXPECT_LE(st.insns, 4096u);
}

TEST_F(CpuTest, CodeThatRewritesItsPageIsNotDecodedABlockPerInstruction) {
    // 20 stores into their own code page (mov %al,0x800(%rip)), then dec %ecx; jnz to
    // the first, 20 times; hlt. Every store drops the page's blocks. Once the page is known
    // to be rewritten, blocks there hold one instruction, so each executed instruction is
    // decoded once, not with up to 63 more that never run before the next store.
    std::vector<uint8_t> code;
    code.insert(code.end(), {0xb9, 0x14, 0x00, 0x00, 0x00});  // mov $20,%ecx
    for (int k = 0; k < 20; ++k) code.insert(code.end(), {0x88, 0x05, 0x00, 0x08, 0x00, 0x00});
    code.insert(code.end(), {0xff, 0xc9, 0x75, 0x00, 0xf4});  // dec %ecx; jnz; hlt
    code[code.size() - 2] = static_cast<uint8_t>(5 - static_cast<int>(code.size() - 1));
    std::memcpy(ram_ + kCode, code.data(), code.size());
    cpu_.run(0);
    ASSERT_EQ(owner_.hlts, 1);
    EXPECT_EQ(cpu_.instructions_retired(), 1u + 20u * 22u + 1u);
    // About one decode per executed instruction (442), far below a block per store
    // (about 20 * 11 per pass, 4400 in all).
    EXPECT_LT(cpu_.cache_stats().insns_decoded, 1000u);
}

TEST_F(CpuTest, CpuidReportsTheModel) {
    const uint8_t code[] = {0x31, 0xc0, 0x0f, 0xa2, 0xf4};  // xor %eax,%eax; cpuid; hlt
    load(code);
    cpu_.run(0);
    const CpuState& s = cpu_.state();
    char vendor[13] = {};
    std::memcpy(vendor, &s.gpr[RBX], 4);
    std::memcpy(vendor + 4, &s.gpr[RDX], 4);
    std::memcpy(vendor + 8, &s.gpr[RCX], 4);
    EXPECT_STREQ(vendor, "GenuineIntel");
    CpuidRegs r;
    model_cpuid(default_cpu_model(), 0x80000001, 0, r);
    EXPECT_TRUE(r.edx & (1u << 29));  // long mode
}

TEST_F(CpuTest, PortReadThatExitsIsReexecutedWithoutSideEffects) {
    owner_.in_exits = true;
    owner_.in_value = 0x5A;
    // in $0x60,%al; mov %al,%bl; in (%dx),%eax; hlt
    const uint8_t code[] = {0xe4, 0x60, 0x88, 0xc3, 0xed, 0xf4};
    load(code);
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    EXPECT_EQ(cpu_.state().rip, kCode);  // not retired
    EXPECT_EQ(cpu_.instructions_retired(), 0u);
    cpu_.run(0);  // completes the IN, exits on the second IN
    EXPECT_EQ(cpu_.state().gpr[RBX] & 0xFF, 0x5Au);
    EXPECT_EQ(cpu_.state().rip, kCode + 4);
    cpu_.run(0);
    EXPECT_EQ(owner_.hlts, 1);
    EXPECT_EQ(cpu_.instructions_retired(), 4u);
}

TEST_F(CpuTest, PrivilegedMsrIndexUnknownRaisesGp) {
    // mov $0x12345,%ecx; rdmsr
    const uint8_t code[] = {0xb9, 0x45, 0x23, 0x01, 0x00, 0x0f, 0x32};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(0), 0u);
    EXPECT_EQ(frame(1), kCode + 5);
}

}  // namespace
}  // namespace softkvm::cpu::test
