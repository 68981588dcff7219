// The LBR unit and RDPMC of the software CPU (docs/lbr.md): LBR_SELECT's class and CPL
// filters and call-stack mode as the unit applies them, TOS wrap and LBR_INFO, the
// records the run loop writes at block ends (also when a block resumes part-way), the
// legacy freeze on PMI (PMU version 3) and the streamlined one (version 4: LBR_Frz,
// GLOBAL_STATUS_RESET/SET and GLOBAL_INUSE), and RDPMC's ECX encoding.
#include <gtest/gtest.h>

#include "cpu/cpu_model.h"
#include "cpu/lbr.h"
#include "cpu/pmu.h"
#include "machine.h"

namespace softkvm::cpu::test {
namespace {

using namespace msr;

constexpr BranchKind kKinds[] = {
    BranchKind::Jcc,        BranchKind::NearRelCall, BranchKind::NearIndCall, BranchKind::NearRet,
    BranchKind::NearIndJmp, BranchKind::NearRelJmp,  BranchKind::Far};

Lbr make_lbr(const char* model, uint64_t select) {
    Lbr l;
    l.configure(*find_cpu_model(model));
    EXPECT_EQ(l.write(MSR_LBR_SELECT, select), MsrResult::Handled);
    return l;
}

TEST(LbrUnit, EachClassBitDropsOnlyItsClass) {
    for (int k = 0; k < 7; ++k) {
        Lbr l = make_lbr("skylake", LBR_SELECT_JCC << k);
        for (int j = 0; j < 7; ++j) {
            const uint32_t tos = l.tos();
            l.record(0x1000 + j, 0x2000 + j, kKinds[j], 0, false, 0);
            EXPECT_EQ(l.tos() != tos, j != k) << "select bit " << k + 2 << ", class " << j + 1;
        }
        EXPECT_EQ(l.tos(), 6u);
    }
}

TEST(LbrUnit, CplBitsDropRingZeroOrTheOthers) {
    Lbr kernel_off = make_lbr("skylake", LBR_SELECT_CPL_EQ_0);
    kernel_off.record(0x1000, 0x2000, BranchKind::NearRelJmp, 0, false, 0);
    EXPECT_EQ(kernel_off.tos(), 0u);
    kernel_off.record(0x1000, 0x2000, BranchKind::NearRelJmp, 3, false, 0);
    EXPECT_EQ(kernel_off.tos(), 1u);

    Lbr user_off = make_lbr("skylake", LBR_SELECT_CPL_NEQ_0);
    user_off.record(0x1000, 0x2000, BranchKind::NearRelJmp, 3, false, 0);
    user_off.record(0x1000, 0x2000, BranchKind::NearRelJmp, 1, false, 0);
    EXPECT_EQ(user_off.tos(), 0u);
    user_off.record(0x1000, 0x2000, BranchKind::NearRelJmp, 0, false, 0);
    EXPECT_EQ(user_off.tos(), 1u);
    EXPECT_EQ(user_off.recent(0).to, 0x2000u);
}

TEST(LbrUnit, CallStackModeReturnsPopTheirCall) {
    Lbr l = make_lbr("skylake", LBR_SELECT_CALLSTACK);
    l.record(0x1000, 0x5000, BranchKind::NearRelCall, 0, false, 0);
    l.record(0x5010, 0x6000, BranchKind::NearIndCall, 0, false, 0);
    EXPECT_EQ(l.tos(), 2u);
    l.record(0x6010, 0x5015, BranchKind::NearRet, 0, false, 0);  // pops the inner call
    EXPECT_EQ(l.tos(), 1u);
    EXPECT_EQ(l.recent(0).from, 0x1000u);
    l.record(0x5020, 0x7000, BranchKind::NearRelCall, 0, false, 0);  // reuses the slot
    EXPECT_EQ(l.tos(), 2u);
    EXPECT_EQ(l.recent(0).to, 0x7000u);
    EXPECT_EQ(l.recent(1).to, 0x5000u);
    // A pop below entry 0 wraps to the top of the stack, as TOS does.
    Lbr w = make_lbr("skylake", LBR_SELECT_CALLSTACK);
    w.record(0x6010, 0x5015, BranchKind::NearRet, 0, false, 0);
    EXPECT_EQ(w.tos(), 31u);
}

TEST(LbrUnit, FilteredReturnsNeitherPopNorRecordInCallStackMode) {
    // NEAR_RET's class bit (5) set: returns are dropped before call-stack mode sees them.
    Lbr by_class = make_lbr("skylake", LBR_SELECT_CALLSTACK | (LBR_SELECT_JCC << 3));
    by_class.record(0x1000, 0x5000, BranchKind::NearRelCall, 0, false, 0);
    by_class.record(0x5010, 0x1005, BranchKind::NearRet, 0, false, 0);
    EXPECT_EQ(by_class.tos(), 1u);
    // A return at a filtered CPL does not pop either.
    Lbr by_cpl = make_lbr("skylake", LBR_SELECT_CALLSTACK | LBR_SELECT_CPL_NEQ_0);
    by_cpl.record(0x1000, 0x5000, BranchKind::NearRelCall, 0, false, 0);
    by_cpl.record(0x5010, 0x1005, BranchKind::NearRet, 3, false, 0);
    EXPECT_EQ(by_cpl.tos(), 1u);
    by_cpl.record(0x5010, 0x1005, BranchKind::NearRet, 0, false, 0);
    EXPECT_EQ(by_cpl.tos(), 0u);
}

TEST(LbrUnit, TraceWaitsOnlyWhereTheFilterKeepsEveryNearClassOrNone) {
    // A chain's trace words wait for a look at the stack (their records count as their
    // taken branches, or none) only where the filter keeps every near class at the
    // chain's CPL or none of them, without call-stack mode; a FAR_BRANCH filter does not
    // matter (far branches return to the run loop).
    struct Case {
        uint64_t select;
        bool cpl0, cpl3;
    };
    const Case cases[] = {
        {0, true, true},
        {LBR_SELECT_CPL_EQ_0, true, true},  // none kept at CPL 0
        {LBR_SELECT_CPL_NEQ_0, true, true},
        {LBR_SELECT_JCC << 6, true, true},  // FAR_BRANCH (bit 8) dropped
        {LBR_SELECT_CALLSTACK, false, false},
        {LBR_SELECT_CALLSTACK | LBR_SELECT_CPL_EQ_0, true, false},
        {LBR_SELECT_CALLSTACK | (LBR_SELECT_JCC << 3), false, false},  // returns dropped
        {LBR_SELECT_JCC * 0x3F, true, true},                           // every near class dropped
    };
    for (const Case& c : cases) {
        const Lbr l = make_lbr("skylake", c.select);
        EXPECT_EQ(l.trace_lazy(0), c.cpl0) << "select " << std::hex << c.select;
        EXPECT_EQ(l.trace_lazy(3), c.cpl3) << "select " << std::hex << c.select;
    }
    for (int k = 0; k < 6; ++k) {  // each near class dropped alone
        const Lbr l = make_lbr("skylake", LBR_SELECT_JCC << k);
        EXPECT_FALSE(l.trace_lazy(0)) << "class bit " << k + 2;
        EXPECT_FALSE(l.trace_lazy(3)) << "class bit " << k + 2;
    }
}

TEST(LbrUnit, TosWrapsAndInfoCountsCyclesSinceTheLastRecord) {
    Lbr l = make_lbr("skylake", 0);
    l.started(100);
    l.record(0x1000, 0x2000, BranchKind::Jcc, 0, true, 107);
    uint64_t v = 0;
    ASSERT_EQ(l.read(MSR_LBR_INFO0 + 1, v), MsrResult::Handled);
    EXPECT_EQ(v, LBR_MISPRED | 7);
    ASSERT_EQ(l.read(MSR_LBR_FROM0 + 1, v), MsrResult::Handled);
    EXPECT_EQ(v, 0x1000u);  // format 5: the flag is in LBR_INFO only, FROM is the address
    l.record(0x1000, 0x2000, BranchKind::Jcc, 0, false, 107 + 0x12345);
    ASSERT_EQ(l.read(MSR_LBR_INFO0 + 2, v), MsrResult::Handled);
    EXPECT_EQ(v, LBR_INFO_CYCLES);  // saturates
    for (int k = 0; k < 31; ++k) l.record(0x3000 + k, 0x4000, BranchKind::Jcc, 0, false, 0);
    EXPECT_EQ(l.tos(), 1u);  // 33 records in 32 entries
    EXPECT_EQ(l.recent(0).from, 0x3000u + 30);
    EXPECT_EQ(l.recent(31).from, 0x1000u);  // the second record, the oldest left
}

TEST(LbrUnit, FormatFiveFromIsTheWholeSignExtendedAddress) {
    Lbr l = make_lbr("skylake", 0);
    l.record(0xFFFFFFFF81001000ull, 0x401000, BranchKind::Far, 0, true, 5);
    uint64_t v = 0;
    ASSERT_EQ(l.read(MSR_LBR_FROM0 + 1, v), MsrResult::Handled);
    EXPECT_EQ(v, 0xFFFFFFFF81001000ull);
    EXPECT_EQ(l.recent(0).from, 0xFFFFFFFF81001000ull);
    ASSERT_EQ(l.read(MSR_LBR_INFO0 + 1, v), MsrResult::Handled);
    EXPECT_EQ(v, LBR_MISPRED | 5);
    // Writes: any canonical address (a kernel one has bits 62:61 set), nothing else.
    EXPECT_EQ(l.write(MSR_LBR_FROM0 + 2, 0xFFFF800000000000ull), MsrResult::Handled);
    EXPECT_EQ(l.write(MSR_LBR_FROM0 + 2, LBR_MISPRED | 0x1000), MsrResult::Fault);
    EXPECT_EQ(l.write(MSR_LBR_FROM0 + 2, 0x0000800000000000ull), MsrResult::Fault);
}

TEST(LbrUnit, FormatFourHasTheFlagInFromAndNoInfo) {
    Lbr l = make_lbr("broadwell", 0);
    l.record(0xFFFFFFFF80001000ull, 0x2000, BranchKind::Jcc, 0, true, 5);
    uint64_t v = 0;
    ASSERT_EQ(l.read(MSR_LBR_FROM0 + 1, v), MsrResult::Handled);
    EXPECT_EQ(v, LBR_MISPRED | (0xFFFFFFFF80001000ull & ((1ull << 61) - 1)));
    EXPECT_EQ(l.recent(0).from, 0xFFFFFFFF80001000ull);  // sign-extended from bit 60
    EXPECT_EQ(l.read(MSR_LBR_INFO0 + 1, v), MsrResult::Fault);
    for (int k = 0; k < 16; ++k) l.record(0x3000, 0x4000, BranchKind::Jcc, 0, false, 0);
    EXPECT_EQ(l.tos(), 1u);  // 17 records in 16 entries
}

// Every MSR of two units: the same after the same records whether or not anything looked
// in between (looking applies the record log to the stack).
void expect_same_msrs(const Lbr& a, const Lbr& b, const char* what) {
    for (uint32_t i : {MSR_LBR_TOS, MSR_LBR_SELECT}) {
        uint64_t va = 0, vb = 0;
        ASSERT_EQ(a.read(i, va), b.read(i, vb));
        EXPECT_EQ(va, vb) << what << ": MSR " << std::hex << i;
    }
    for (uint32_t k = 0; k < kLbrMaxDepth; ++k) {
        for (uint32_t base : {MSR_LBR_FROM0, MSR_LBR_TO0, MSR_LBR_INFO0}) {
            uint64_t va = 0, vb = 0;
            ASSERT_EQ(a.read(base + k, va), b.read(base + k, vb));
            EXPECT_EQ(va, vb) << what << ": MSR " << std::hex << base + k;
        }
    }
}

TEST(LbrUnit, RecordsReadTheSameWhetherOrNotTheStackWasLookedAt) {
    // A pseudo-random stream of branches of every class, taken or not (None), at CPL 0
    // and 3, mispredicted or not, at growing cycle counts; runs of up to 100 records
    // between looks, so the log (64) overflows and the stack (32) wraps.
    for (const char* model : {"skylake", "broadwell"}) {
        for (uint64_t select :
             {uint64_t{0}, LBR_SELECT_CALLSTACK, LBR_SELECT_CPL_NEQ_0 | (LBR_SELECT_JCC << 1)}) {
            Lbr eager = make_lbr(model, select), lazy = make_lbr(model, select);
            eager.started(3), lazy.started(3);
            uint32_t x = 12345;
            uint64_t now = 3;
            for (int run = 0; run < 60; ++run) {
                x = x * 1103515245u + 12345u;
                const int n = static_cast<int>(x >> 16) % 100;
                for (int k = 0; k < n; ++k) {
                    x = x * 1103515245u + 12345u;
                    const auto kind = static_cast<BranchKind>((x >> 8) % 8);
                    const uint8_t cpl = (x >> 12) & 1 ? 3 : 0;
                    const bool mispredicted = (x >> 13) & 1;
                    now += (x >> 14) % 5000;
                    const uint64_t from = 0xFFFFFFFF80000000ull + (x >> 4), to = x >> 6;
                    eager.record(from, to, kind, cpl, mispredicted, now);
                    lazy.record(from, to, kind, cpl, mispredicted, now);
                    (void)eager.tos();  // looks after every record
                }
                expect_same_msrs(eager, lazy, model);
                if (run % 7 == 3) {
                    // A guest's own write of TOS lands between records in both.
                    eager.write(MSR_LBR_TOS, run % eager.depth());
                    lazy.write(MSR_LBR_TOS, run % lazy.depth());
                }
            }
        }
    }
}

TEST(BranchPredictorTest, ConditionalBranchesUseTwoBitSaturatingCounters) {
    // From weakly not taken: each outcome moves the counter one step,
    // saturating at strongly taken and strongly not taken; 2 and 3 predict taken.
    BranchPredictor p;
    const struct {
        bool taken, miss;
    } steps[] = {{true, true},  {true, false},  {true, false},  {true, false}, {false, true},
                 {false, true}, {false, false}, {false, false}, {true, true},  {true, true},
                 {true, false}, {false, true},  {true, false}};
    int k = 0;
    for (const auto& s : steps) {
        EXPECT_EQ(p.resolve(BranchKind::Jcc, 0x1000, s.taken, 0x2000, 0x1002, 100 + k), s.miss)
            << k;
        ++k;
    }
    // Another branch has its own counter (weakly not taken).
    EXPECT_TRUE(p.resolve(BranchKind::Jcc, 0x1004, true, 0x2000, 0x1006, 200));
    EXPECT_FALSE(p.resolve(BranchKind::Jcc, 0x1008, false, 0x2000, 0x100A, 201));
}

TEST(BranchPredictorTest, EveryTableStartsAfreshInEachEpoch) {
    BranchPredictor p;
    constexpr uint64_t e = BranchPredictor::kEpochInsns;
    // A branch trained taken, then the next epoch: weakly not taken again.
    for (int k = 0; k < 4; ++k) p.resolve(BranchKind::Jcc, 0x1000, true, 0x2000, 0x1002, 10 + k);
    EXPECT_FALSE(p.resolve(BranchKind::Jcc, 0x1000, true, 0x2000, 0x1002, e - 1));
    EXPECT_TRUE(p.resolve(BranchKind::Jcc, 0x1000, true, 0x2000, 0x1002, e));
    // A call's return address and an indirect branch's target do not outlive it either.
    p.resolve(BranchKind::NearRelCall, 0x3000, true, 0x5000, 0x3005, e + 1);
    p.resolve(BranchKind::NearIndJmp, 0x4000, true, 0x6000, 0x4002, e + 2);
    EXPECT_FALSE(p.resolve(BranchKind::NearIndJmp, 0x4000, true, 0x6000, 0x4002, 2 * e - 1));
    EXPECT_TRUE(p.resolve(BranchKind::NearRet, 0x5010, true, 0x3005, 0x5011, 2 * e));
    EXPECT_TRUE(p.resolve(BranchKind::NearIndJmp, 0x4000, true, 0x6000, 0x4002, 2 * e + 1));
}

using LbrCpuTest = Machine;

// mov $1,%rax; add $2,%rax; nop; jmp +2; hlt; hlt; out %eax,$0x20: one block ending in a
// taken JMP at kCode + 0xC, then the exit.
constexpr uint8_t kJmpBlock[] = {0x48, 0xc7, 0xc0, 0x01, 0x00, 0x00, 0x00, 0x48, 0x83,
                                 0xc0, 0x02, 0x90, 0xeb, 0x02, 0xf4, 0xf4, 0xe7, 0x20};

TEST_F(LbrCpuTest, BlockEndBranchIsRecordedFromItsOwnAddress) {
    load(kJmpBlock);
    cpu_.state().debugctl = DEBUGCTL_LBR;
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    EXPECT_EQ(cpu_.lbr().tos(), 1u);
    EXPECT_EQ(cpu_.lbr().recent(0).from, kCode + 0xC);
    EXPECT_EQ(cpu_.lbr().recent(0).to, kCode + 0x10);
    EXPECT_EQ(cpu_.lbr().recent(0).info, 4u);  // four instructions since recording began
}

TEST_F(LbrCpuTest, BlockResumedPartWayRecordsTheSameBranch) {
    load(kJmpBlock);
    cpu_.state().debugctl = DEBUGCTL_LBR;
    EXPECT_EQ(cpu_.run(2), StopReason::InsnLimit);  // stops inside the block
    EXPECT_EQ(cpu_.lbr().tos(), 0u);
    const uint64_t built = cpu_.cache_stats().blocks_built;
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);              // goes on from its third instruction
    EXPECT_EQ(cpu_.cache_stats().blocks_built, built + 1);  // only the exit's block is new
    EXPECT_EQ(cpu_.lbr().tos(), 1u);
    EXPECT_EQ(cpu_.lbr().recent(0).from, kCode + 0xC);
    EXPECT_EQ(cpu_.lbr().recent(0).to, kCode + 0x10);
}

TEST_F(LbrCpuTest, NotTakenJccIsNotRecordedButTakenOneIs) {
    // xor %eax,%eax (ZF=1); jnz +2 (not taken); jz +2 (taken); hlt; hlt; out %eax,$0x20
    const uint8_t code[] = {0x31, 0xc0, 0x75, 0x02, 0x74, 0x02, 0xf4, 0xf4, 0xe7, 0x20};
    load(code);
    cpu_.state().debugctl = DEBUGCTL_LBR;
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    EXPECT_EQ(cpu_.lbr().tos(), 1u);
    EXPECT_EQ(cpu_.lbr().recent(0).from, kCode + 4);
    EXPECT_EQ(cpu_.lbr().recent(0).to, kCode + 8);
}

TEST_F(LbrCpuTest, TakenBranchesToTheNextInstructionAreRecorded) {
    // Conditional branches with rel 0 land on the next instruction taken or not; the
    // taken ones are recorded. xor %eax,%eax (ZF=1); jz +0 (taken); jnz +0; xor %ecx,%ecx;
    // jrcxz +0 (taken); loop +0 (RCX -1: taken); mov $1,%ecx; loop +0 (RCX 0: not
    // taken); mov $2,%ecx; loope +0 (RCX 1, ZF=1: taken); loopne +0 (RCX 0: not taken);
    // out %eax,$0x20.
    const uint8_t code[] = {0x31, 0xc0, 0x74, 0x00, 0x75, 0x00, 0x31, 0xc9, 0xe3, 0x00,
                            0xe2, 0x00, 0xb9, 0x01, 0x00, 0x00, 0x00, 0xe2, 0x00, 0xb9,
                            0x02, 0x00, 0x00, 0x00, 0xe1, 0x00, 0xe0, 0x00, 0xe7, 0x20};
    load(code);
    cpu_.state().debugctl = DEBUGCTL_LBR;
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    ASSERT_EQ(cpu_.lbr().tos(), 4u);
    const uint64_t taken[] = {0x18, 0xA, 0x8, 0x2};  // newest first
    for (uint32_t k = 0; k < 4; ++k) {
        EXPECT_EQ(cpu_.lbr().recent(k).from, kCode + taken[k]) << k;
        EXPECT_EQ(cpu_.lbr().recent(k).to, kCode + taken[k] + 2) << k;
    }
}

TEST_F(LbrCpuTest, BranchTrapFlagStepsOverATakenJumpToTheNextInstruction) {
    // DEBUGCTL.BTF with TF: the single-step trap comes after the next taken branch, and
    // jz +0 with ZF set is one (jnz +0 before it is not). xor %eax,%eax; jnz +0; jz +0;
    // nop: the #DB's RIP is the NOP's.
    const uint8_t code[] = {0x31, 0xc0, 0x75, 0x00, 0x74, 0x00, 0x90, 0x90};
    load(code);
    cpu_.set_debugctl(DEBUGCTL_BTF);
    cpu_.state().rflags |= FLAG_TF;
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    EXPECT_EQ(vector_taken(), VEC_DB);
    EXPECT_EQ(frame(0), kCode + 6);
}

TEST_F(LbrCpuTest, RecordingStartedMidBlockCountsTheBlocksInstructionsBefore) {
    // nop x3; mov $0x1d9,%ecx; mov $1,%eax; xor %edx,%edx; wrmsr (DEBUGCTL.LBR: ends the
    // block, the seventh instruction); nop; jmp +0; out %eax,$0x20. Recording starts after
    // six instructions: the JMP's cycle count is WRMSR, NOP and itself.
    const uint8_t code[] = {0x90, 0x90, 0x90, 0xb9, 0xd9, 0x01, 0x00, 0x00, 0xb8, 0x01, 0x00,
                            0x00, 0x00, 0x31, 0xd2, 0x0f, 0x30, 0x90, 0xeb, 0x00, 0xe7, 0x20};
    load(code);
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    ASSERT_EQ(cpu_.debugctl(), DEBUGCTL_LBR);
    ASSERT_EQ(cpu_.lbr().tos(), 1u);
    EXPECT_EQ(cpu_.lbr().recent(0).from, kCode + 0x12);
    EXPECT_EQ(cpu_.lbr().recent(0).info, 3u);
}

TEST_F(LbrCpuTest, SoftwareInterruptCountsItsBlocksInstructions) {
    // nop; nop; int $0x40 (a block of three): the stub's records come after a far branch
    // whose cycle count is the three instructions since recording began.
    const uint8_t code[] = {0x90, 0x90, 0xcd, 0x40};
    load(code);
    cpu_.state().debugctl = DEBUGCTL_LBR;
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    ASSERT_EQ(cpu_.lbr().tos(), 1u);
    EXPECT_EQ(cpu_.lbr().recent(0).from, kCode + 2);
    EXPECT_EQ(cpu_.lbr().recent(0).to, kStubs + 0x40 * 0x10);
    EXPECT_EQ(cpu_.lbr().recent(0).info, 3u);
}

// Four JMPs to the next instruction, then the exit; PMC0 overflows at the second JMP.
constexpr uint8_t kFourJumps[] = {0xeb, 0x00, 0xeb, 0x00, 0xeb, 0x00, 0xeb, 0x00, 0xe7, 0x20};

void arm_pmc0_two_to_go(Pmu& pmu) {
    ASSERT_EQ(pmu.write(IA32_PERFEVTSEL0, EVENT_INSTRUCTIONS | EVTSEL_OS | EVTSEL_INT | EVTSEL_EN),
              MsrResult::Handled);
    ASSERT_EQ(pmu.write(IA32_A_PMC0, Pmu::kCounterMask - 1), MsrResult::Handled);
}

TEST_F(LbrCpuTest, LegacyFreezeOnPmiClearsDebugctlLbr) {
    cpu_.set_model(*find_cpu_model("broadwell"));  // PMU version 3
    load(kFourJumps);
    Pmu& pmu = cpu_.pmu();
    arm_pmc0_two_to_go(pmu);
    cpu_.set_debugctl(DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI);
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    EXPECT_EQ(cpu_.debugctl(), DEBUGCTL_FREEZE_LBRS_ON_PMI);  // LBR cleared by the PMI
    EXPECT_EQ(cpu_.lbr().tos(), 2u);
    EXPECT_EQ(cpu_.lbr().recent(0).from, kCode + 2);  // the second JMP overflowed PMC0
    EXPECT_EQ(cpu_.lbr().recent(1).from, kCode);
    uint64_t status = 0;
    ASSERT_EQ(pmu.read(IA32_PERF_GLOBAL_STATUS, status), MsrResult::Handled);
    EXPECT_EQ(status, 1u);
}

TEST_F(LbrCpuTest, StreamlinedFreezeOnPmiSetsLbrFrzAndKeepsDebugctlLbr) {
    ASSERT_EQ(cpu_.model().pmu_version, 4);  // skylake, the default
    load(kFourJumps);
    Pmu& pmu = cpu_.pmu();
    arm_pmc0_two_to_go(pmu);
    cpu_.set_debugctl(DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI);
    EXPECT_EQ(cpu_.run(0), StopReason::Owner);
    EXPECT_EQ(cpu_.debugctl(), DEBUGCTL_LBR | DEBUGCTL_FREEZE_LBRS_ON_PMI);
    EXPECT_EQ(cpu_.lbr().tos(), 2u);  // the two later JMPs are not recorded
    EXPECT_EQ(cpu_.lbr().recent(0).from, kCode + 2);
    uint64_t status = 0;
    ASSERT_EQ(pmu.read(IA32_PERF_GLOBAL_STATUS, status), MsrResult::Handled);
    EXPECT_EQ(status, 1u | GLOBAL_STATUS_LBR_FRZ);
}

TEST(PmuVersion4, StatusResetSetAndInuse) {
    Pmu p;
    p.set_version(4);
    uint64_t v = 0;
    // GLOBAL_STATUS_SET sets overflow bits and LBR_Frz; everything else is reserved.
    ASSERT_EQ(p.write(IA32_PERF_GLOBAL_STATUS_SET, 0x5 | (1ull << 33) | GLOBAL_STATUS_LBR_FRZ),
              MsrResult::Handled);
    ASSERT_EQ(p.read(IA32_PERF_GLOBAL_STATUS, v), MsrResult::Handled);
    EXPECT_EQ(v, 0x5 | (1ull << 33) | GLOBAL_STATUS_LBR_FRZ);
    EXPECT_TRUE(p.lbr_frozen());
    EXPECT_EQ(p.read(IA32_PERF_GLOBAL_STATUS_SET, v), MsrResult::Handled);
    EXPECT_EQ(v, 0u);
    for (int bit : {4, 35, 55, 59, 60, 61, 62, 63})
        EXPECT_EQ(p.write(IA32_PERF_GLOBAL_STATUS_SET, 1ull << bit), MsrResult::Fault) << bit;
    // GLOBAL_STATUS_RESET clears them; OvfBuf and CondChgd are accepted, CTR_Frz is not.
    for (int bit : {4, 35, 55, 59, 60, 61})
        EXPECT_EQ(p.write(IA32_PERF_GLOBAL_STATUS_RESET, 1ull << bit), MsrResult::Fault) << bit;
    ASSERT_EQ(p.write(IA32_PERF_GLOBAL_STATUS_RESET,
                      GLOBAL_STATUS_LBR_FRZ | 1 | GLOBAL_STATUS_OVF_BUF | GLOBAL_STATUS_COND_CHGD),
              MsrResult::Handled);
    EXPECT_FALSE(p.lbr_frozen());
    ASSERT_EQ(p.read(IA32_PERF_GLOBAL_STATUS, v), MsrResult::Handled);
    EXPECT_EQ(v, 0x4 | (1ull << 33));
    // GLOBAL_INUSE: an event in PERFEVTSEL1 (not enabled), fixed counter 2 enabled with
    // its PMI; read-only.
    ASSERT_EQ(p.read(IA32_PERF_GLOBAL_INUSE, v), MsrResult::Handled);
    EXPECT_EQ(v, 0u);
    ASSERT_EQ(p.write(IA32_PERFEVTSEL0 + 1, EVENT_BRANCHES | EVTSEL_USR), MsrResult::Handled);
    ASSERT_EQ(p.read(IA32_PERF_GLOBAL_INUSE, v), MsrResult::Handled);
    EXPECT_EQ(v, 2u);
    ASSERT_EQ(p.write(IA32_FIXED_CTR_CTRL, (FIXED_CTRL_OS | FIXED_CTRL_PMI) << 8),
              MsrResult::Handled);
    ASSERT_EQ(p.read(IA32_PERF_GLOBAL_INUSE, v), MsrResult::Handled);
    EXPECT_EQ(v, 2u | (1ull << 34) | GLOBAL_INUSE_PMI);
    EXPECT_EQ(p.write(IA32_PERF_GLOBAL_INUSE, 0), MsrResult::Fault);
    // The version survives a reset.
    p.reset();
    EXPECT_EQ(p.version(), 4);
}

TEST(PmuVersion3, HasNoStatusSetInuseOrLbrFrz) {
    Pmu p;
    p.set_version(3);
    uint64_t v = 0;
    EXPECT_EQ(p.read(IA32_PERF_GLOBAL_STATUS_SET, v), MsrResult::Fault);
    EXPECT_EQ(p.write(IA32_PERF_GLOBAL_STATUS_SET, 1), MsrResult::Fault);
    EXPECT_EQ(p.read(IA32_PERF_GLOBAL_INUSE, v), MsrResult::Fault);
    EXPECT_EQ(p.write(IA32_PERF_GLOBAL_OVF_CTRL, GLOBAL_STATUS_LBR_FRZ), MsrResult::Fault);
    EXPECT_EQ(p.write(IA32_PERF_GLOBAL_OVF_CTRL, 0xF | (7ull << 32)), MsrResult::Handled);
    EXPECT_FALSE(p.streamlined_freeze());
}

TEST(PmuRdpmc, TypeInBits31To16IndexInBits15To0) {
    Pmu p;
    p.reset();
    ASSERT_EQ(p.write(IA32_A_PMC0 + 3, 0x123456789ull), MsrResult::Handled);
    ASSERT_EQ(p.write(IA32_FIXED_CTR0 + 2, 0xABCDEF012ull), MsrResult::Handled);
    uint64_t v = 0;
    EXPECT_TRUE(p.rdpmc(3, v));
    EXPECT_EQ(v, 0x123456789ull);
    EXPECT_TRUE(p.rdpmc(RDPMC_TYPE_FIXED | 2, v));
    EXPECT_EQ(v, 0xABCDEF012ull);
    EXPECT_FALSE(p.rdpmc(4, v));
    EXPECT_FALSE(p.rdpmc(RDPMC_TYPE_FIXED | 3, v));
    // Bit 31 (no "fast read" on an architectural PMU) faults for both kinds, as in KVM.
    EXPECT_FALSE(p.rdpmc((1u << 31) | 0, v));
    EXPECT_FALSE(p.rdpmc((1u << 31) | RDPMC_TYPE_FIXED | 0, v));
    // Other types (0x2000 is PERF_METRICS, which the model lacks) fault too.
    EXPECT_FALSE(p.rdpmc(0x20000000u, v));
    EXPECT_FALSE(p.rdpmc(0x10000u, v));
}

}  // namespace
}  // namespace softkvm::cpu::test
