// System-level behaviour of the software CPU: SYSCALL/SYSRET, single-step, interrupts
// with virtual-time deadlines, the STI shadow.
#include <gtest/gtest.h>

#include "machine.h"

namespace softkvm::cpu::test {
namespace {

using SystemTest = Machine;

TEST_F(SystemTest, SyscallAndSysretRoundTripThroughRing3) {
    // Make the first 2 MiB user-accessible (the kernel runs there too; no SMEP).
    put64(0x1000, get64(0x1000) | PTE_US);
    put64(0x2000, get64(0x2000) | PTE_US);
    put64(0x3000, get64(0x3000) | PTE_US);
    // Kernel: EFER.SCE; STAR = 0x0013'0008'0000'0000; LSTAR = 0x10100; FMASK = IF;
    // rcx = 0x11000; r11 = 0x202; sysretq
    const uint8_t kernel[] = {
        0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x83, 0xc8, 0x01, 0x0f, 0x30, 0xb9, 0x81,
        0x00, 0x00, 0xc0, 0x31, 0xc0, 0xba, 0x08, 0x00, 0x13, 0x00, 0x0f, 0x30, 0xb9, 0x82,
        0x00, 0x00, 0xc0, 0xb8, 0x00, 0x01, 0x01, 0x00, 0x31, 0xd2, 0x0f, 0x30, 0xb9, 0x84,
        0x00, 0x00, 0xc0, 0xb8, 0x00, 0x02, 0x00, 0x00, 0x31, 0xd2, 0x0f, 0x30, 0xb9, 0x00,
        0x10, 0x01, 0x00, 0x41, 0xbb, 0x02, 0x02, 0x00, 0x00, 0x48, 0x0f, 0x07};
    const uint8_t user[] = {0xbb, 0x77, 0x00, 0x00, 0x00, 0x0f, 0x05};   // mov $0x77,%ebx; syscall
    const uint8_t entry[] = {0x48, 0x89, 0xce, 0x4c, 0x89, 0xdf, 0xf4};  // rsi=rcx; rdi=r11; hlt
    load(kernel);
    load(user, 0x11000);
    load(entry, 0x10100);
    // Stop right after SYSRET: ring 3 with the selectors STAR names.
    const uint64_t kernel_insns = 19;
    EXPECT_EQ(cpu_.run(kernel_insns), StopReason::InsnLimit);
    EXPECT_EQ(cpu_.state().cpl, 3);
    EXPECT_EQ(cpu_.state().seg[CS].selector, 0x23);
    EXPECT_EQ(cpu_.state().seg[SS].selector, 0x1b);
    EXPECT_EQ(cpu_.state().rip, 0x11000u);
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    const CpuState& s = cpu_.state();
    EXPECT_EQ(s.gpr[RBX], 0x77u);
    EXPECT_EQ(s.cpl, 0);
    EXPECT_EQ(s.seg[CS].selector, 0x08);
    EXPECT_EQ(s.seg[SS].selector, 0x10);
    EXPECT_EQ(s.gpr[RSI], 0x11007u);   // RCX: return address
    EXPECT_EQ(s.gpr[RDI], 0x202u);     // R11: user RFLAGS
    EXPECT_FALSE(s.rflags & FLAG_IF);  // masked by FMASK
}

TEST_F(SystemTest, SysretFromRing3IsGp) {
    enter_ring3();
    cpu_.state().efer |= msr::EFER_SCE;
    const uint8_t code[] = {0x48, 0x0f, 0x07};  // sysretq
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(1), kCode);
    EXPECT_EQ(frame(2), 0x23u);                             // CS of the faulting ring-3 code
    EXPECT_EQ(cpu_.state().gpr[RSP] & ~0xFFull, 0x6FF00u);  // on the RSP0 stack
}

TEST_F(SystemTest, TrapFlagStepsOneInstructionThenRaisesDb) {
    // pushfq; orq $0x100,(%rsp); popfq; nop; inc %eax
    const uint8_t code[] = {0x9c, 0x48, 0x81, 0x0c, 0x24, 0x00, 0x01,
                            0x00, 0x00, 0x9d, 0x90, 0xff, 0xc0};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 11);               // trap: after the NOP that followed POPF
    EXPECT_TRUE(frame(2) & FLAG_TF);               // pushed RFLAGS still has TF
    EXPECT_TRUE(cpu_.state().dr[6] & (1u << 14));  // DR6.BS
}

TEST_F(SystemTest, DeadlineWakesHaltedCpuWithInterrupt) {
    owner_.hlt_waits = true;
    owner_.irq_vector = 0x40;
    const uint8_t code[] = {0xfb, 0xf4, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4};  // sti; hlt; ...
    load(code);
    cpu_.set_deadline(1000);
    cpu_.run(0);
    EXPECT_EQ(owner_.deadlines, 1);
    EXPECT_EQ(vector_taken(), 0x40);
    EXPECT_EQ(frame(0), kCode + 2);                   // the interrupt returns after the HLT
    EXPECT_EQ(cpu_.instructions_retired(), 2u + 3u);  // sti, hlt, then the stub's three
    EXPECT_EQ(cpu_.clock(), 1000u + 3u);              // virtual time skipped to the deadline
}

TEST_F(SystemTest, StiShadowDefersAPendingInterruptPastTheNextInstruction) {
    owner_.hlt_waits = true;
    owner_.irq_vector = 0x41;
    cpu_.request_interrupt_check();
    const uint8_t code[] = {0xfb, 0xf4, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4};  // sti; hlt; ...
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), 0x41);
    EXPECT_EQ(frame(0), kCode + 2);  // HLT ran first: not taken between STI and HLT
}

TEST_F(SystemTest, HaltWithNothingToWakeItStops) {
    owner_.hlt_waits = true;
    const uint8_t code[] = {0xf4};  // hlt with IF=0
    load(code);
    EXPECT_EQ(cpu_.run(0), StopReason::Halted);
    EXPECT_TRUE(cpu_.halted());
    EXPECT_EQ(cpu_.run(0), StopReason::Halted);  // stays halted
}

TEST_F(SystemTest, MaskedInterruptWaitsForIf) {
    owner_.irq_vector = 0x42;
    cpu_.request_interrupt_check();
    // nop; nop; sti; nop; hlt
    const uint8_t code[] = {0x90, 0x90, 0xfb, 0x90, 0xf4};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), 0x42);
    EXPECT_EQ(frame(0), kCode + 4);  // after the NOP in the STI shadow
}

TEST_F(SystemTest, InstructionBreakpointFaultsBeforeTheInstruction) {
    cpu_.state().dr[0] = kCode + 1;
    cpu_.write_dr7(0x1);                        // L0, execute, length 1
    const uint8_t code[] = {0x90, 0x90, 0xf4};  // nop; nop; hlt
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 1);  // fault: RIP of the breakpointed instruction
    EXPECT_FALSE(frame(2) & FLAG_RF);
    EXPECT_EQ(cpu_.state().dr[6] & 0xF, 0x1u);        // B0
    EXPECT_EQ(cpu_.instructions_retired(), 1u + 3u);  // one nop, then the stub
}

TEST_F(SystemTest, ResumeFlagSuppressesTheBreakpointForOneInstruction) {
    cpu_.state().dr[0] = kCode;
    cpu_.write_dr7(0x2);  // G0
    cpu_.state().rflags |= FLAG_RF;
    const uint8_t code[] = {0x90, 0xf4};  // nop; hlt
    load(code);
    cpu_.run(0);
    EXPECT_EQ(owner_.hlts, 1);
    EXPECT_EQ(vector_taken(), -1);
    EXPECT_FALSE(cpu_.state().rflags & FLAG_RF);  // cleared after the instruction
}

TEST_F(SystemTest, DataWriteBreakpointTrapsAfterTheWriteOnly) {
    cpu_.state().dr[1] = 0x30004;
    cpu_.write_dr7((1u << 2) | (1u << 20) | (3u << 22));  // L1, write, 4 bytes
    // mov $0x30006,%edi; mov (%rdi),%eax; movl $1,(%rdi); nop
    const uint8_t code[] = {0xbf, 0x06, 0x00, 0x03, 0x00, 0x8b, 0x07,
                            0xc7, 0x07, 0x01, 0x00, 0x00, 0x00, 0x90};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 13);             // trap: after the store (the read did not trigger)
    EXPECT_EQ(cpu_.state().dr[6] & 0xF, 0x2u);   // B1
    EXPECT_EQ(get64(0x30006) & 0xFFFFFFFF, 1u);  // the store happened
}

TEST_F(SystemTest, FaultsPushRflagsWithResumeFlag) {
    // mov $0x40000000,%rsi; mov (%rsi),%eax  -> #PF
    const uint8_t code[] = {0x48, 0xc7, 0xc6, 0x00, 0x00, 0x00, 0x40, 0x8b, 0x06};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_PF);
    EXPECT_TRUE(frame(3) & FLAG_RF);  // error code, RIP, CS, RFLAGS
}

TEST_F(SystemTest, IoBitmapGatesPortsAboveIopl) {
    enter_ring3();
    CpuState& s = cpu_.state();
    s.tr.limit = 0x68 + 8192, s.tr.type = DESC_TSS64_BUSY, s.tr.present = true;
    ram_[0x6066] = 0x68;                                          // I/O map base
    std::memset(ram_ + 0x6068, 0xFF, 8192 / 8 * 8);               // deny all...
    ram_[0x6068 + 0x80 / 8] = 0xFE;                               // ...but port 0x80
    const uint8_t code[] = {0xb0, 0x12, 0xe6, 0x80, 0xe6, 0x81};  // out to 0x80, then 0x81
    load(code);
    cpu_.run(0);
    ASSERT_GE(owner_.outs.size(), 1u);
    EXPECT_EQ(owner_.outs[0].port, 0x80);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(1), kCode + 4);  // the OUT to 0x81
}

TEST_F(SystemTest, FsGsBaseInstructionsNeedCr4Bit) {
    // mov $0x123456789000,%rax; wrfsbase %rax; rdfsbase %rbx; hlt
    const uint8_t code[] = {0x48, 0xb8, 0x00, 0x90, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0xf3,
                            0x48, 0x0f, 0xae, 0xd0, 0xf3, 0x48, 0x0f, 0xae, 0xc3, 0xf4};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_UD);  // CR4.FSGSBASE clear
    owner_.outs.clear();
    cpu_.state().rip = kCode;
    cpu_.state().gpr[RSP] = kStack;
    cpu_.state().cr4 |= CR4_FSGSBASE;
    cpu_.run(0);
    EXPECT_EQ(owner_.hlts, 1);
    EXPECT_EQ(cpu_.state().gpr[RBX], 0x123456789000u);
    EXPECT_EQ(cpu_.state().seg[FS].base, 0x123456789000u);
}

TEST_F(SystemTest, MemoryTypeCombinesPatEntryWithMtrrDefault) {
    CpuState& s = cpu_.state();
    s.mtrr_def_type = 0;  // MTRRs disabled: everything is UC
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::UC);
    s.mtrr_def_type = msr::MTRR_DEF_ENABLE | static_cast<uint8_t>(MemType::WB);
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::WB);  // PAT entry 0 (WB at reset)
    put64(0x3000, get64(0x3000) | PTE_PWT);             // PAT entry 1: WT
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::WT);
    put64(0x3000, get64(0x3000) | PTE_PCD);  // PAT entry 3: UC
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::UC);
    put64(0x3000, get64(0x3000) & ~PTE_PWT);  // PAT entry 2: UC-, which WB MTRRs make UC
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::UC);
    s.pat = 0x0007040600010406ull;  // entry 2 := WC
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::WC);
    s.cr0 |= CR0_CD;  // caching disabled
    EXPECT_EQ(cpu_.memory_type(0x10000), MemType::UC);
}

TEST_F(SystemTest, IntFromRing3ThroughDpl0GateIsGpNamingTheIdtEntry) {
    enter_ring3();
    const uint8_t code[] = {0xcd, 0x82};  // int $0x82
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    // SDM vol. 3 §6.13: IDT index in bits 15:3, IDT flag (bit 1). (QEMU 7.2 TCG reports
    // vector * 16 + 2 in 64-bit mode, a bug fixed upstream.)
    EXPECT_EQ(frame(0), 0x82u * 8 + 2);
    EXPECT_EQ(frame(1), kCode);  // INT n faults before it completes
}

TEST_F(SystemTest, IcebpRaisesDbAsATrapIgnoringGateDpl) {
    enter_ring3();
    const uint8_t code[] = {0x90, 0xf1};  // nop; icebp (gate DPL 0, CPL 3)
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 2);  // trap: after ICEBP
}

TEST_F(SystemTest, NonCanonicalStackReferenceIsSsAndOtherwiseGp) {
    // SDM vol. 3 §6.15 (#SS): a non-canonical address in an SS-relative reference.
    // The #SS handler runs on IST 1 so that its own frame has a good stack.
    put64(kIdt + VEC_SS * 16, get64(kIdt + VEC_SS * 16) | (1ull << 32));  // IST 1
    cpu_.state().tr.base = 0x6000;
    put64(0x6000 + 0x24, 0x70000);  // IST1
    // mov %rsp,%rbx; movabs $0x800000000010,%rsp; push %rax
    const uint8_t code[] = {0x48, 0x89, 0xe3, 0x48, 0xbc, 0x10, 0x00,
                            0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x50};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_SS);
    EXPECT_EQ(cpu_.state().gpr[RBX] & ~0xFFull, 0x6FF00u);  // the stub ran on IST 1
}

TEST_F(SystemTest, NonCanonicalDataReferenceIsGp) {
    // movabs $0x800000000000,%rsi; mov (%rsi),%eax
    const uint8_t code[] = {0x48, 0xbe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x8b, 0x06};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(0), 0u);
}

TEST_F(SystemTest, ReservedEferAndCr4BitsAreGp) {
    // mov $0xc0000080,%ecx; rdmsr; or $0x20,%eax; wrmsr   (EFER bit 5 is reserved)
    const uint8_t code[] = {0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x83, 0xc8, 0x20, 0x0f, 0x30};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(1), kCode + 10);
    owner_.outs.clear();
    cpu_.state().rip = kCode + 0x100;
    cpu_.state().gpr[RSP] = kStack;
    // mov %cr4,%rax; bts $15,%rax; mov %rax,%cr4   (CR4 bit 15 is reserved)
    const uint8_t cr4[] = {0x0f, 0x20, 0xe0, 0x48, 0x0f, 0xba, 0xe8, 0x0f, 0x0f, 0x22, 0xe0};
    load(cr4, kCode + 0x100);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(1), kCode + 0x100 + 8);
}

TEST_F(SystemTest, SseNeedsOsfxsrAndLdmxcsrChecksReservedBits) {
    // pxor %xmm0,%xmm0 without CR4.OSFXSR: #UD
    const uint8_t pxor[] = {0x66, 0x0f, 0xef, 0xc0, 0xf4};
    load(pxor);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_UD);
    owner_.outs.clear();
    cpu_.state().cr4 |= CR4_OSFXSR;
    cpu_.state().rip = kCode;
    cpu_.state().gpr[RSP] = kStack;
    cpu_.state().xmm[0] = {1, 2};
    cpu_.run(0);
    EXPECT_EQ(owner_.hlts, 1);
    EXPECT_EQ(cpu_.state().xmm[0].lo, 0u);
    EXPECT_EQ(cpu_.state().xmm[0].hi, 0u);
    // movl $0x11f80,0x30000; ldmxcsr 0x30000   (bit 16 of MXCSR is reserved)
    const uint8_t ld[] = {0xc7, 0x04, 0x25, 0x00, 0x00, 0x03, 0x00, 0x80, 0x1f, 0x01,
                          0x00, 0x0f, 0xae, 0x14, 0x25, 0x00, 0x00, 0x03, 0x00};
    load(ld, kCode + 0x100);
    cpu_.state().rip = kCode + 0x100;
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(cpu_.state().mxcsr, 0x1F80u);
}

TEST_F(SystemTest, AlignmentCheckAtCpl3WithAmAndAc) {
    cpu_.state().cr0 |= CR0_AM;
    enter_ring3();
    // pushfq; orl $0x40000,(%rsp); popfq; mov $0x30001,%esi; mov (%rsi),%eax
    const uint8_t code[] = {0x9c, 0x81, 0x0c, 0x24, 0x00, 0x00, 0x04, 0x00,
                            0x9d, 0xbe, 0x01, 0x00, 0x03, 0x00, 0x8b, 0x06};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_AC);
    EXPECT_EQ(frame(0), 0u);          // error code 0
    EXPECT_EQ(frame(1), kCode + 14);  // the misaligned load
}

TEST_F(SystemTest, NoAlignmentCheckAtCpl0OrWithoutAm) {
    // Same program at CPL 0: AC set but no #AC; then halts.
    const uint8_t code[] = {0x9c, 0x81, 0x0c, 0x24, 0x00, 0x00, 0x04, 0x00, 0x9d,
                            0xbe, 0x01, 0x00, 0x03, 0x00, 0x8b, 0x06, 0xf4};
    cpu_.state().cr0 |= CR0_AM;
    cpu_.state_changed();
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), -1);
    EXPECT_EQ(owner_.hlts, 1);
}

TEST_F(SystemTest, BtfSingleStepsOnTakenBranchesOnly) {
    cpu_.state().debugctl = 2;  // BTF
    // pushfq; orq $0x100,(%rsp); popfq; nop; xor %eax,%eax; jnz 1f (not taken); jmp 1f;
    // nop; 1: nop
    const uint8_t code[] = {0x9c, 0x48, 0x81, 0x0c, 0x24, 0x00, 0x01, 0x00, 0x00, 0x9d,
                            0x90, 0x31, 0xc0, 0x75, 0x03, 0xeb, 0x01, 0x90, 0x90};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 18);  // after the taken JMP: not after NOP, XOR or JNZ
    EXPECT_TRUE(cpu_.state().dr[6] & (1u << 14));
}

TEST_F(SystemTest, MovSsHoldsBackAPendingInterruptForOneInstruction) {
    owner_.irq_vector = 0x43;
    cpu_.state().rflags |= FLAG_IF;
    cpu_.state_changed();
    // mov $0x10,%eax; mov %eax,%ss; nop; nop. The deadline right after MOV SS makes the
    // interrupt pending at that boundary.
    const uint8_t code[] = {0xb8, 0x10, 0x00, 0x00, 0x00, 0x8e, 0xd0, 0x90, 0x90, 0xf4};
    load(code);
    cpu_.set_deadline(2);
    cpu_.run(0);
    EXPECT_EQ(vector_taken(), 0x43);
    EXPECT_EQ(frame(0), kCode + 8);  // after the NOP that follows MOV SS
}

TEST_F(SystemTest, SegmentLoadsThroughTheLdt) {
    // GDT entry 3 (0x18): LDT at 0x7000, limit 0xF (16-byte system descriptor).
    put64(0x518, (0xFull) | (0x7000ull << 16) | (0x82ull << 40));
    put64(0x520, 0);
    cpu_.state().gdtr.limit = 0x27;
    put64(0x7008, 0x00CF92000000FFFFull);  // LDT entry 1: flat data
    // mov $0x18,%ax; lldt %ax; mov $0xc,%ax; mov %eax,%ds; mov %ds,%ecx;
    // mov $0x14,%ax; mov %eax,%ds   (LDT entry 2 is beyond the LDT's limit)
    const uint8_t code[] = {0x66, 0xb8, 0x18, 0x00, 0x0f, 0x00, 0xd0, 0x66, 0xb8, 0x0c, 0x00,
                            0x8e, 0xd8, 0x8c, 0xd9, 0x66, 0xb8, 0x14, 0x00, 0x8e, 0xd8};
    load(code);
    cpu_.run(0);
    EXPECT_EQ(cpu_.state().ldtr.base, 0x7000u);
    EXPECT_EQ(cpu_.state().gpr[RCX] & 0xFFFF, 0x0Cu);  // DS loaded from the LDT
    EXPECT_EQ(vector_taken(), VEC_GP);
    EXPECT_EQ(frame(0), 0x14u);  // error code: the selector
    EXPECT_EQ(frame(1), kCode + 19);
}

// VERR / VERW (SDM vol. 2): ZF says whether the segment may be read / written at the
// current CPL and the selector's RPL; a bad selector clears ZF without a fault, other
// flags stay. Linux runs VERW (its MDS buffer clearing) on every return to user mode.
TEST_F(SystemTest, VerrAndVerwReportAccessInZfWithoutFaulting) {
    put64(0x518, 0x00CFF2000000FFFFull);  // 0x18: writable data, DPL 3
    put64(0x520, 0x00CF90000000FFFFull);  // 0x20: read-only data, DPL 0
    put64(0x528, 0x00AF98000000FFFFull);  // 0x28: execute-only code
    put64(0x530, 0x000082000000000Full);  // 0x30: an LDT (a system descriptor)
    put64(0x538, 0x00AF9E000000FFFFull);  // 0x38: conforming readable code, DPL 0
    cpu_.state().gdtr.limit = 0x3F;
    put64(0x9000, 0x10);
    uint64_t at = kCode;
    // mov $sel,%ax; verr/verw %ax; then ZF must be `want`, CF untouched.
    const auto check = [&](uint16_t sel, bool write, bool want) {
        const uint8_t code[] = {0x66,
                                0xb8,
                                static_cast<uint8_t>(sel),
                                static_cast<uint8_t>(sel >> 8),
                                0x0f,
                                0x00,
                                static_cast<uint8_t>(write ? 0xe8 : 0xe0),
                                0xf4};
        load(code, at);
        CpuState& s = cpu_.state();
        s.rip = at;
        s.rflags = 0x2 | FLAG_CF | (want ? 0 : FLAG_ZF);
        cpu_.state_changed();
        at += 0x20;
        EXPECT_EQ(cpu_.run(cpu_.instructions_retired() + 2), StopReason::InsnLimit);
        EXPECT_EQ((s.rflags & FLAG_ZF) != 0, want)
            << (write ? "verw " : "verr ") << std::hex << sel << " at CPL " << int(s.cpl);
        EXPECT_TRUE(s.rflags & FLAG_CF);
    };
    check(0x10, true, true);
    check(0x10, false, true);
    check(0x13, true, false);  // RPL 3 above DPL 0
    check(0x18, true, true);
    check(0x20, true, false);  // read-only
    check(0x20, false, true);
    check(0x08, false, true);   // readable code
    check(0x08, true, false);   // code is never writable
    check(0x28, false, false);  // execute-only
    check(0x30, false, false);  // system descriptor
    check(0x40, true, false);   // past the GDT limit
    check(0x00, true, false);   // null selector
    check(0x0C, true, false);   // the LDT, which is empty
    check(0x3B, false, true);   // conforming code: no privilege check
    // verw 0x9000 (a memory operand holding selector 0x10)
    const uint8_t mem[] = {0x0f, 0x00, 0x2c, 0x25, 0x00, 0x90, 0x00, 0x00, 0xf4};
    load(mem, at);
    cpu_.state().rip = at;
    cpu_.state().rflags = 0x2;
    cpu_.state_changed();
    at += 0x20;
    EXPECT_EQ(cpu_.run(cpu_.instructions_retired() + 1), StopReason::InsnLimit);
    EXPECT_TRUE(cpu_.state().rflags & FLAG_ZF);
    enter_ring3();
    check(0x10, true, false);  // DPL 0 data from CPL 3
    check(0x1B, true, true);
    check(0x3B, false, true);
    EXPECT_EQ(vector_taken(), -1);
}

// LAR / LSL (SDM vol. 2): ZF and the access rights or the byte-granular limit of a
// descriptor the CPL and RPL may see; a bad selector or type clears ZF and leaves the
// destination. Linux's NMI entry reads its CPU number with LSL (a DPL 3 data segment).
TEST_F(SystemTest, LarAndLslReadAccessRightsAndLimits) {
    put64(0x518, 0x0040F50000000001ull);  // 0x18: expand-down data, DPL 3, limit 1 (G=0)
    put64(0x520, 0x00CF9A000000FFFFull);  // 0x20: code, DPL 0, limit 0xFFFFF pages
    put64(0x528, 0x0000820000001234ull);  // 0x28: an LDT, limit 0x1234
    put64(0x530, 0x0000810000000067ull);  // 0x30: a 16-bit TSS (invalid in IA-32e mode)
    put64(0x538, 0x00008C0000000000ull);  // 0x38: a call gate (LAR only)
    put64(0x540, 0x00CFD2000000FFFFull);  // 0x40: data, DPL 2
    cpu_.state().gdtr.limit = 0x47;
    uint64_t at = kCode;
    // mov $sel,%cx; mov $-1,%rax; lar/lsl %cx,%eax (or %ax with 66); then RAX and ZF.
    const auto check = [&](uint16_t sel, bool lsl, bool word, bool want, uint64_t rax) {
        const uint8_t lo = static_cast<uint8_t>(sel), hi = static_cast<uint8_t>(sel >> 8);
        uint8_t code[16] = {0x66, 0xb9, lo, hi, 0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff};
        size_t n = 11;
        if (word) code[n++] = 0x66;
        code[n++] = 0x0f;
        code[n++] = lsl ? 0x03 : 0x02;
        code[n++] = 0xc1;
        code[n++] = 0xf4;
        std::memcpy(ram_ + at, code, n);
        CpuState& s = cpu_.state();
        s.rip = at;
        s.rflags = 0x2 | (want ? 0 : FLAG_ZF);
        cpu_.state_changed();
        at += 0x20;
        EXPECT_EQ(cpu_.run(cpu_.instructions_retired() + 3), StopReason::InsnLimit);
        const std::string what = std::string(lsl ? "lsl " : "lar ") + std::to_string(sel);
        EXPECT_EQ((s.rflags & FLAG_ZF) != 0, want) << what;
        EXPECT_EQ(s.gpr[RAX], rax) << what;
    };
    check(0x18, true, false, true, 1);  // LSL 32-bit: zero-extended into RAX
    check(0x1B, false, false, true, 0x0040F500);
    check(0x20, true, false, true, 0xFFFFFFFF);              // 4 KiB granular
    check(0x20, false, true, true, 0xFFFFFFFFFFFF9A00ull);   // 16 bits: FF00H of the rights
    check(0x23, true, false, false, 0xFFFFFFFFFFFFFFFFull);  // RPL 3 above DPL 0
    check(0x28, true, false, true, 0x1234);
    check(0x30, true, false, false, 0xFFFFFFFFFFFFFFFFull);  // 16-bit TSS in IA-32e mode
    check(0x38, true, false, false, 0xFFFFFFFFFFFFFFFFull);  // a gate has no limit
    check(0x38, false, false, true, 0x00008C00);
    check(0x48, true, false, false, 0xFFFFFFFFFFFFFFFFull);   // past the GDT limit
    check(0x00, false, false, false, 0xFFFFFFFFFFFFFFFFull);  // null selector
    enter_ring3();
    check(0x43, true, false, false, 0xFFFFFFFFFFFFFFFFull);  // DPL 2 from CPL 3
    check(0x1B, true, false, true, 1);
    EXPECT_EQ(vector_taken(), -1);
}

TEST(SystemTestEngines, InvlpgOfARemappedCodePageDropsTheLinksIntoIt) {
    // A loop calls a function at linear 0x300000 three times (the run loop links the call
    // block to it and caches it by linear address), then the PD entry of that 2 MiB page
    // is pointed at physical 0 and INVLPG drops the page: the second loop's calls reach
    // the function now mapped there (EAX 2, not 1). ESI sums the results: 3 * 1 + 3 * 2.
    //   mov $0x300000,%ebx; mov $3,%ecx; 1: call *%rbx; add %eax,%esi; dec %ecx; jnz 1b
    //   mov $0x83,%eax; mov %rax,0x3008; invlpg (%rbx); mov $3,%ecx
    //   2: call *%rbx; add %eax,%esi; dec %ecx; jnz 2b; mov %esi,%eax; out %eax,$0x10; hlt
    const uint8_t code[] = {0xbb, 0x00, 0x00, 0x30, 0x00, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xff,
                            0xd3, 0x01, 0xc6, 0xff, 0xc9, 0x75, 0xf8, 0xb8, 0x83, 0x00, 0x00,
                            0x00, 0x48, 0x89, 0x04, 0x25, 0x08, 0x30, 0x00, 0x00, 0x0f, 0x01,
                            0x3b, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xff, 0xd3, 0x01, 0xc6, 0xff,
                            0xc9, 0x75, 0xf8, 0x89, 0xf0, 0xe7, 0x10, 0xf4};
    expect_calls_reach_remapped_page(code);
}

}  // namespace
}  // namespace softkvm::cpu::test
