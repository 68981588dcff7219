// LBR recording with the translating engine (docs/lbr.md, cpu/lbr.h): translated blocks
// that chain while recording is on leave their branches in the LBR unit's trace, which is
// recorded later. The records, mispredict bits and LBR_INFO must be those the interpreter
// writes at every block end, whenever the guest or the host looks: after every run() step
// of several sizes (a step's end refuses a chaining entry), with RDMSR and WRMSR of the LBR
// MSRs between chained blocks, in call-stack mode, and with an exception at the end.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bare_machine.h"
#include "cpu/translate/translator.h"

namespace softkvm::cpu::test {
namespace {

using namespace msr;

// 700 rounds of a 16-bit LFSR choosing conditional branches, a CALL to a function with
// two RETs, and an indirect JMP; then UD2 (#UD: its stub reports vector 6). Every
// instruction has a native form, so every block chains.
constexpr uint8_t kLoop[] = {
    0x41, 0xb8, 0xbc, 0x02, 0x00, 0x00, 0xb8, 0xe1, 0xac, 0x00, 0x00, 0x31, 0xd2, 0x89, 0xc3,
    0xd1, 0xe8, 0xf6, 0xc3, 0x01, 0x74, 0x05, 0x35, 0x00, 0xb4, 0x00, 0x00, 0xa8, 0x02, 0x75,
    0x03, 0x83, 0xc2, 0x01, 0xe8, 0x17, 0x00, 0x00, 0x00, 0xa8, 0x04, 0x74, 0x09, 0x48, 0x8d,
    0x35, 0x05, 0x00, 0x00, 0x00, 0xff, 0xe6, 0x83, 0xc2, 0x03, 0x41, 0xff, 0xc8, 0x75, 0xd1,
    0x0f, 0x0b, 0x01, 0xc2, 0xa8, 0x08, 0x74, 0x01, 0xc3, 0x83, 0xc2, 0x05, 0xc3};
constexpr uint64_t kLoopUd2 = 0x3C;

// The same loop that, each round, adds LBR_TOS (RDMSR) to R12D and writes LBR_SELECT
// (WRMSR): 4 (conditional branches not recorded) in odd rounds, 0 in even ones.
constexpr uint8_t kMsrLoop[] = {
    0x41, 0xb8, 0xbc, 0x02, 0x00, 0x00, 0xb8, 0xe1, 0xac, 0x00, 0x00, 0x31, 0xd2, 0x89, 0xc3,
    0xd1, 0xe8, 0xf6, 0xc3, 0x01, 0x74, 0x05, 0x35, 0x00, 0xb4, 0x00, 0x00, 0xa8, 0x02, 0x75,
    0x03, 0x83, 0xc2, 0x01, 0xe8, 0x3f, 0x00, 0x00, 0x00, 0xa8, 0x04, 0x74, 0x09, 0x48, 0x8d,
    0x35, 0x05, 0x00, 0x00, 0x00, 0xff, 0xe6, 0x83, 0xc2, 0x03, 0x41, 0x89, 0xc1, 0x41, 0x89,
    0xd2, 0xb9, 0xc9, 0x01, 0x00, 0x00, 0x0f, 0x32, 0x41, 0x01, 0xc4, 0x44, 0x89, 0xc0, 0x83,
    0xe0, 0x01, 0xc1, 0xe0, 0x02, 0x31, 0xd2, 0xb9, 0xc8, 0x01, 0x00, 0x00, 0x0f, 0x30, 0x44,
    0x89, 0xc8, 0x44, 0x89, 0xd2, 0x41, 0xff, 0xc8, 0x75, 0xa9, 0x0f, 0x0b, 0x01, 0xc2, 0xa8,
    0x08, 0x74, 0x01, 0xc3, 0x83, 0xc2, 0x05, 0xc3};
constexpr uint64_t kMsrLoopUd2 = 0x64;

// The LBR MSRs as the guest reads them, in order: LBR_SELECT, TOS, then FROM, TO and
// INFO of each entry.
std::vector<uint64_t> lbr_msrs(const Cpu& cpu) {
    const Lbr& l = cpu.lbr();
    std::vector<uint64_t> v;
    auto read = [&](uint32_t index) {
        uint64_t x = 0;
        EXPECT_EQ(l.read(index, x), MsrResult::Handled) << std::hex << index;
        v.push_back(x);
    };
    read(MSR_LBR_SELECT);
    read(MSR_LBR_TOS);
    for (uint32_t k = 0; k < l.depth(); ++k) {
        read(MSR_LBR_FROM0 + k);
        read(MSR_LBR_TO0 + k);
        read(MSR_LBR_INFO0 + k);
    }
    return v;
}

struct Engines {
    BareMachine interp, xlate;
    bool ok = false;
    Engines() {
        ok = xlate.cpu_.set_engine(Engine::Translate);
        if (ok) xlate.cpu_.translator()->set_translate_after(1);
    }
    template <size_t N>
    void start(const uint8_t (&code)[N], uint64_t select) {
        for (BareMachine* m : {&interp, &xlate}) {
            m->load(code);
            ASSERT_EQ(m->cpu_.lbr().write(MSR_LBR_SELECT, select), MsrResult::Handled);
            m->cpu_.state().debugctl = DEBUGCTL_LBR;
        }
    }
    // Runs both to the end in steps of `step` instructions (0: one run), comparing the
    // LBR MSRs, the registers and the instruction count after every step.
    void run_compare(uint64_t step, const std::string& what) {
        for (int k = 1; k < 100000; ++k) {
            const uint64_t limit = step ? step * k : 0;
            const StopReason a = interp.cpu_.run(limit), b = xlate.cpu_.run(limit);
            ASSERT_EQ(a, b) << what << " step " << k;
            ASSERT_EQ(interp.cpu_.instructions_retired(), xlate.cpu_.instructions_retired())
                << what << " step " << k;
            for (int r = 0; r < 16; ++r)
                ASSERT_EQ(interp.cpu_.state().gpr[r], xlate.cpu_.state().gpr[r])
                    << what << " step " << k << " gpr " << r;
            ASSERT_EQ(lbr_msrs(interp.cpu_), lbr_msrs(xlate.cpu_)) << what << " step " << k;
            if (a != StopReason::InsnLimit) return;
        }
        FAIL() << what << ": did not finish";
    }
};

void check(uint64_t ud2, uint64_t select, uint64_t step, Engines& e, const std::string& what) {
    e.run_compare(step, what);
    if (::testing::Test::HasFatalFailure()) return;
    EXPECT_EQ(e.interp.vector_taken(), VEC_UD) << what;
    EXPECT_EQ(e.xlate.vector_taken(), VEC_UD) << what;
    // The #UD is the newest record (a far branch from UD2 to its stub) unless the filter
    // drops CPL 0; blocks chained, so the trace did the recording before it.
    if (!(select & LBR_SELECT_CPL_EQ_0)) {
        EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).from, BareMachine::kCode + ud2) << what;
        EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).to, BareMachine::kStubs + VEC_UD * 0x10) << what;
    }
    EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, step ? 0u : 1000u) << what;
}

TEST(LbrTrace, ChainedBlocksRecordAsTheInterpreterDoes) {
    for (uint64_t select :
         {uint64_t{0}, LBR_SELECT_CALLSTACK, LBR_SELECT_JCC, LBR_SELECT_CPL_EQ_0}) {
        for (uint64_t step : {0, 1000, 37, 5}) {
            Engines e;
            if (!e.ok) GTEST_SKIP() << "built without the translator";
            e.start(kLoop, select);
            const std::string what =
                "select " + std::to_string(select) + " step " + std::to_string(step);
            check(kLoopUd2, select, step, e, what);
            if (select == LBR_SELECT_CPL_EQ_0) {
                // Nothing at CPL 0 is recorded: the stack stays empty.
                EXPECT_EQ(e.xlate.cpu_.lbr().tos(), 0u);
                EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).from, 0u);
            }
        }
    }
}

TEST(LbrTrace, LbrMsrAccessesBetweenChainedBlocks) {
    for (uint64_t step : {0, 1000, 37}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(kMsrLoop, 0);
        check(kMsrLoopUd2, 0, step, e, "msr loop step " + std::to_string(step));
        // The guest's sum of what RDMSR of TOS returned is the same in both engines (the
        // registers were compared) and the TOS did move between reads.
        EXPECT_NE(e.xlate.cpu_.state().gpr[R12], 0u);
    }
}

TEST(LbrTrace, ChainingStopsBeingTracedWhenRecordingIsOff) {
    // With DEBUGCTL.LBR clear nothing is recorded, chained or not.
    Engines e;
    if (!e.ok) GTEST_SKIP() << "built without the translator";
    e.start(kLoop, 0);
    e.interp.cpu_.state().debugctl = e.xlate.cpu_.state().debugctl = 0;
    e.run_compare(0, "lbr off");
    EXPECT_EQ(e.xlate.cpu_.lbr().tos(), 0u);
    EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).to, 0u);
}

}  // namespace
}  // namespace softkvm::cpu::test
