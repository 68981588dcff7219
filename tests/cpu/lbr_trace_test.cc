// LBR recording with the translating engine (docs/lbr.md, cpu/lbr.h): translated blocks
// that chain while recording is on record their own branches (translate/emit_lbr.cc). The
// records, mispredict bits and LBR_INFO must be those the interpreter writes at every
// block end, whenever the guest or the host looks: after every run() step of several sizes
// (a step's end refuses a chaining entry), with RDMSR and WRMSR of the LBR MSRs between
// chained blocks, in call-stack mode, at CPL 3, with the code at a second linear address
// (its translations assume the first; also reached through a direct exit), at addresses
// beyond 32-bit immediates, in compatibility mode, with an exception at the end, and with
// recording switched on and off by the guest and by the host over translated chains.
#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <random>
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
    // `cache_bytes`: the translator's code cache (small: it is flushed while recording).
    explicit Engines(size_t cache_bytes = Translator::kDefaultCacheBytes) {
        ok = xlate.cpu_.set_engine(Engine::Translate, cache_bytes);
        if (ok) xlate.cpu_.translator()->set_translate_after(1);
    }
    template <size_t N>
    void start(const uint8_t (&code)[N], uint64_t select) {
        start(std::vector<uint8_t>(code, code + N), select);
    }
    void start(const std::vector<uint8_t>& code, uint64_t select) {
        for (BareMachine* m : {&interp, &xlate}) {
            std::memcpy(m->ram_ + BareMachine::kCode, code.data(), code.size());
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

// The trace keeps only outcomes and indirect targets; its walk reads the rest from the
// blocks. A code cache too small for the loop's blocks is emptied again and again while
// the trace holds words that ran in the translations it drops (Translator::forget_chains):
// those records read as before, whether the stack is looked at after every few
// instructions or only at the end.
TEST(LbrTrace, RecordsOutliveTheCodeCacheFlushesOfTheirBlocks) {
    for (uint64_t step : {0, 1000, 37}) {
        Engines e(10 << 10);
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(kLoop, 0);
        e.run_compare(step, "step " + std::to_string(step));
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD) << step;
        const Translator::Stats st = e.xlate.cpu_.translator_stats();
        EXPECT_GT(st.cache_flushes, 100u) << step;
        EXPECT_GT(st.chained_blocks, 100u) << step;
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

// kMsrLoop writing DEBUGCTL instead of LBR_SELECT (ECX 0x1D9, the value R8D & 1 not
// shifted): the guest turns recording on in odd rounds and off in even ones, between
// blocks that chain. Translated blocks are built for one recording state (the recording
// bit of Block::key and of the link key): each switch must end the chain and lead to the
// other state's translations, which record (or not) as the interpreter does.
std::vector<uint8_t> debugctl_loop() {
    std::vector<uint8_t> code(std::begin(kMsrLoop), std::end(kMsrLoop));
    EXPECT_EQ(code[79], 0x02);  // SHL EAX, 2
    EXPECT_EQ(code[83], 0xc8);  // MOV ECX, 0x1C8
    code[79] = 0x00;
    code[83] = 0xd9;
    return code;
}

TEST(LbrTrace, RecordingSwitchedByTheGuestBetweenChainedBlocks) {
    for (uint64_t step : {0, 1000, 37}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(debugctl_loop(), 0);
        check(kMsrLoopUd2, 0, step, e, "debugctl loop step " + std::to_string(step));
        EXPECT_NE(e.xlate.cpu_.state().gpr[R12], 0u);
    }
}

TEST(LbrTrace, RecordingSwitchedBetweenRunsOverTranslatedChains) {
    // The host switches DEBUGCTL.LBR between run() steps: blocks translated while not
    // recording then run while recording, and the reverse, the same RIPs in both states.
    for (uint64_t step : {uint64_t{500}, uint64_t{1777}}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(kLoop, 0);
        for (int k = 1; k < 100000; ++k) {
            const uint64_t lbr = (k / 2) % 2 ? DEBUGCTL_LBR : 0;  // off, off, on, on, ...
            e.interp.cpu_.state().debugctl = e.xlate.cpu_.state().debugctl = lbr;
            const StopReason a = e.interp.cpu_.run(step * k), b = e.xlate.cpu_.run(step * k);
            ASSERT_EQ(a, b) << "step " << k;
            ASSERT_EQ(e.interp.cpu_.instructions_retired(), e.xlate.cpu_.instructions_retired());
            for (int r = 0; r < 16; ++r)
                ASSERT_EQ(e.interp.cpu_.state().gpr[r], e.xlate.cpu_.state().gpr[r]) << k;
            ASSERT_EQ(lbr_msrs(e.interp.cpu_), lbr_msrs(e.xlate.cpu_)) << "step " << k;
            if (a != StopReason::InsnLimit) break;
        }
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD);
        EXPECT_NE(e.xlate.cpu_.lbr().tos() + e.xlate.cpu_.lbr().recent(0).to, 0u);
        EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, 1000u);
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

TEST(LbrTrace, AtCpl3) {
    // The filter at CPL 3 (LBR_SELECT bit 1 drops it; bit 0 keeps it) and the records of
    // user code; the #UD is delivered to CPL 0.
    for (uint64_t select : {uint64_t{0}, LBR_SELECT_CPL_EQ_0, LBR_SELECT_CPL_NEQ_0,
                            LBR_SELECT_CALLSTACK | LBR_SELECT_CPL_EQ_0}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(kLoop, select);
        e.interp.enter_ring3();
        e.xlate.enter_ring3();
        e.run_compare(0, "cpl 3 select " + std::to_string(select));
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD);
        EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, 1000u);
    }
}

TEST(LbrTrace, CodeRunAtAnotherLinearAddress) {
    // The second 2 MiB page maps the first too: the loop runs 2000 instructions at
    // kCode, then goes on at kCode + 2 MiB. The same blocks (found by physical address)
    // run with the translations made at the first address, whose branch addresses do not
    // hold there: those blocks return to the run loop, which records them.
    constexpr uint64_t kAlias = 0x200000;
    for (uint64_t step : {0, 37}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(kLoop, 0);
        for (BareMachine* m : {&e.interp, &e.xlate}) {
            m->put64(0x3008, 0x000000 | PTE_P | PTE_RW | PTE_PS);
            m->cpu_.state_changed();
            ASSERT_EQ(m->cpu_.run(2000), StopReason::InsnLimit);
            m->cpu_.state().rip += kAlias;
        }
        ASSERT_EQ(lbr_msrs(e.interp.cpu_), lbr_msrs(e.xlate.cpu_));
        // The rest in steps, the instruction limits counting on from 2000.
        for (int k = 1; k < 100000; ++k) {
            const uint64_t limit = step ? 2000 + step * k : 0;
            const StopReason a = e.interp.cpu_.run(limit), b = e.xlate.cpu_.run(limit);
            ASSERT_EQ(a, b) << "step " << k;
            ASSERT_EQ(e.interp.cpu_.instructions_retired(), e.xlate.cpu_.instructions_retired());
            ASSERT_EQ(lbr_msrs(e.interp.cpu_), lbr_msrs(e.xlate.cpu_)) << "step " << k;
            if (a != StopReason::InsnLimit) break;
        }
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD);
        // Recorded at the second address (the #UD's FROM is the alias's UD2).
        EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).from, kAlias + BareMachine::kCode + kLoopUd2);
    }
}

TEST(LbrTrace, DirectExitIntoABlockBuiltAtAnotherAddress) {
    // A direct JMP (block B2) to S, whose block was built at S's alias 2 MiB higher: with
    // recording off, B2's direct exit remembers S's translation (Block::direct); with
    // recording on, that translation's records would name the alias, so the traced exit
    // must not take it there (Block::DirectExit::trace_rip): the run loop runs S.
    //   0: dec ecx; jz 12; jmp 7; nop; 7: inc edx; jmp r13 (= kCode); 12: ud2
    constexpr uint8_t kCode[] = {0xff, 0xc9, 0x74, 0x08, 0xeb, 0x01, 0x90,
                                 0xff, 0xc2, 0x41, 0xff, 0xe5, 0x0f, 0x0b};
    constexpr uint64_t kAlias = 0x200000, kS = 7, kUd2 = 12;
    for (uint64_t step : {0, 7}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(kCode, 0);
        for (BareMachine* m : {&e.interp, &e.xlate}) {
            m->put64(0x3008, 0x000000 | PTE_P | PTE_RW | PTE_PS);
            CpuState& s = m->cpu_.state();
            s.debugctl = 0;
            s.gpr[RCX] = 400;
            s.gpr[R13] = BareMachine::kCode;
            s.rip = kAlias + BareMachine::kCode + kS;  // S's block is built there
            m->cpu_.state_changed();
            // 100 rounds unrecorded: B2's exit finds S's translation and remembers it.
            ASSERT_EQ(m->cpu_.run(500), StopReason::InsnLimit);
            s.debugctl = DEBUGCTL_LBR;
        }
        const std::string what = "alias direct exit step " + std::to_string(step);
        for (int k = 1; k < 100000; ++k) {
            const uint64_t limit = step ? 500 + step * k : 0;
            const StopReason a = e.interp.cpu_.run(limit), b = e.xlate.cpu_.run(limit);
            ASSERT_EQ(a, b) << what << " " << k;
            ASSERT_EQ(e.interp.cpu_.instructions_retired(), e.xlate.cpu_.instructions_retired());
            ASSERT_EQ(lbr_msrs(e.interp.cpu_), lbr_msrs(e.xlate.cpu_)) << what << " " << k;
            if (a != StopReason::InsnLimit) break;
        }
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD) << what;
        // the last round's JMP R13 (before its JZ) was recorded at its own address, not the
        // alias's.
        EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).from, BareMachine::kCode + kUd2) << what;
        EXPECT_EQ(e.xlate.cpu_.lbr().recent(2).from, BareMachine::kCode + kS + 2) << what;
        EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, 100u) << what;
    }
}

TEST(LbrTrace, CodeAtAnAddressBeyondImm32) {
    // The loop at 0x7F00'0000'0000 + kCode (a 2 MiB page there maps the first): its
    // translations hold RIPs that no sign-extended 32-bit immediate holds.
    constexpr uint64_t kHigh = 0x7F0000000000;
    for (uint64_t select : {uint64_t{0}, LBR_SELECT_CALLSTACK}) {
        for (uint64_t step : {0, 37}) {
            Engines e;
            if (!e.ok) GTEST_SKIP() << "built without the translator";
            e.start(kLoop, select);
            for (BareMachine* m : {&e.interp, &e.xlate}) {
                m->put64(0x1000 + 8 * (kHigh >> 39), 0x8000 | PTE_P | PTE_RW);  // PML4
                m->put64(0x8000, 0x9000 | PTE_P | PTE_RW);                      // PDPT
                m->put64(0x9000, 0x000000 | PTE_P | PTE_RW | PTE_PS);           // PD
                m->cpu_.state().rip = kHigh + BareMachine::kCode;
                m->cpu_.state_changed();
            }
            const std::string what =
                "high select " + std::to_string(select) + " step " + std::to_string(step);
            e.run_compare(step, what);
            EXPECT_EQ(e.xlate.vector_taken(), VEC_UD) << what;
            EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).from, kHigh + BareMachine::kCode + kLoopUd2)
                << what;
            if (!step) {
                EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, 1000u) << what;
            }
        }
    }
}

TEST(LbrTrace, CodeAtAKernelAddress) {
    // The loop at 0xFFFF'FFFF'8000'0000 + kCode, where a 64-bit kernel's text lies (a 2 MiB
    // page there maps the first): its RIPs are sign-extended 32-bit immediates with bit 31
    // set. Its blocks are translated and chain (none is left to the interpreter).
    constexpr uint64_t kKernel = 0xFFFFFFFF80000000ull;
    for (uint64_t select : {uint64_t{0}, LBR_SELECT_CALLSTACK}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(kLoop, select);
        for (BareMachine* m : {&e.interp, &e.xlate}) {
            m->put64(0x1000 + 8 * 511, 0x8000 | PTE_P | PTE_RW);   // PML4
            m->put64(0x8000 + 8 * 510, 0x9000 | PTE_P | PTE_RW);   // PDPT
            m->put64(0x9000, 0x000000 | PTE_P | PTE_RW | PTE_PS);  // PD
            m->cpu_.state().rip = kKernel + BareMachine::kCode;
            m->cpu_.state_changed();
        }
        const std::string what = "kernel select " + std::to_string(select);
        e.run_compare(0, what);
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD) << what;
        EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).from, kKernel + BareMachine::kCode + kLoopUd2)
            << what;
        EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, 1000u) << what;
    }
}

TEST(LbrTrace, DirectBranchToANonCanonicalAddress) {
    // Code at the top of the lower canonical half (0x7FFF'FFE0'0000 + kCode, a 2 MiB page
    // there maps the first): 50 rounds of dec %r8d; a branch whose target lies past
    // 0x7FFF'FFFF'FFFF when taken; jmp (the loop). The last round takes it: #GP at the
    // branch, not recorded (the #GP is, as a far branch from it). While recording, a
    // chained block's direct exit knows its target when translated (emit_direct_exit):
    // a non-canonical one must still take the handler's way. Two forms: JZ rel32 taken
    // in the last round (the block's taken way); JNZ over a JMP rel32 (a block of its own,
    // translated when it first runs).
    constexpr uint64_t kTop = 0x7FFFFFE00000;
    const std::vector<uint8_t> jz = {0x41, 0xb8, 0x32, 0x00, 0x00, 0x00, 0x41, 0xff, 0xc8,
                                     0x0f, 0x84, 0xf0, 0xff, 0xff, 0x7f, 0xeb, 0xf5};
    const std::vector<uint8_t> jmp = {0x41, 0xb8, 0x32, 0x00, 0x00, 0x00, 0x41, 0xff, 0xc8,
                                      0x75, 0x05, 0xe9, 0xf0, 0xff, 0xff, 0x7f, 0xeb, 0xf4};
    for (const auto& [code, branch] : {std::pair{jz, uint64_t{9}}, std::pair{jmp, uint64_t{11}}}) {
        for (uint64_t step : {0, 7}) {
            Engines e;
            if (!e.ok) GTEST_SKIP() << "built without the translator";
            e.start(code, 0);
            for (BareMachine* m : {&e.interp, &e.xlate}) {
                m->put64(0x1000 + 8 * (kTop >> 39), 0x8000 | PTE_P | PTE_RW);    // PML4
                m->put64(0x8000 + 8 * 511, 0x9000 | PTE_P | PTE_RW);             // PDPT
                m->put64(0x9000 + 8 * 511, 0x000000 | PTE_P | PTE_RW | PTE_PS);  // PD
                m->cpu_.state().rip = kTop + BareMachine::kCode;
                m->cpu_.state_changed();
            }
            const std::string what = "non-canonical branch at " + std::to_string(branch) +
                                     " step " + std::to_string(step);
            e.run_compare(step, what);
            if (::testing::Test::HasFatalFailure()) return;
            EXPECT_EQ(e.xlate.vector_taken(), VEC_GP) << what;
            EXPECT_EQ(e.xlate.frame(1), kTop + BareMachine::kCode + branch) << what;  // RIP
            const Lbr& l = e.xlate.cpu_.lbr();
            EXPECT_EQ(l.recent(0).from, kTop + BareMachine::kCode + branch) << what;
            EXPECT_EQ(l.recent(0).to, BareMachine::kStubs + VEC_GP * 0x10) << what;
            EXPECT_EQ(l.recent(1).to, kTop + BareMachine::kCode + 6) << what;  // the loop's JMP
            if (!step) {
                EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, 50u) << what;
            }
        }
    }
}

TEST(LbrTrace, TakenJumpsToTheNextInstruction) {
    // 50 rounds of: xor %eax,%eax; jz +0 (taken); jnz +0; xor %ecx,%ecx; jrcxz +0 (taken);
    // loop +0 (RCX -1: taken); dec %r8d; jnz (the loop); then UD2. A conditional branch
    // to the next instruction leaves RIP there either way: taken, it is recorded.
    const uint8_t code[] = {0x41, 0xb8, 0x32, 0x00, 0x00, 0x00, 0x31, 0xc0, 0x74,
                            0x00, 0x75, 0x00, 0x31, 0xc9, 0xe3, 0x00, 0xe2, 0x00,
                            0x41, 0xff, 0xc8, 0x75, 0xef, 0x0f, 0x0b};
    for (uint64_t step : {0, 5, 7}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(code, 0);
        const std::string what = "jump to next step " + std::to_string(step);
        e.run_compare(step, what);
        if (::testing::Test::HasFatalFailure()) return;
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD) << what;
        const Lbr& l = e.xlate.cpu_.lbr();
        // Newest first: the #UD, LOOP, JRCXZ, JZ, the loop's JNZ of the round before.
        const uint64_t from[] = {0x17, 0x10, 0xE, 0x8, 0x15};
        const uint64_t to[] = {BareMachine::kStubs + VEC_UD * 0x10 - BareMachine::kCode, 0x12, 0x10,
                               0xA, 0x6};
        for (uint32_t k = 0; k < 5; ++k) {
            EXPECT_EQ(l.recent(k).from, BareMachine::kCode + from[k]) << what << " " << k;
            EXPECT_EQ(l.recent(k).to, BareMachine::kCode + to[k]) << what << " " << k;
        }
        if (!step) {
            EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, 50u) << what;
        }
    }
}

TEST(LbrTrace, RecordingStartedMidBlockCountsItsInstructionsBefore) {
    // 10 rounds of: WRMSR DEBUGCTL 0 (recording off); nop; nop; mov $1,%eax; WRMSR
    // DEBUGCTL.LBR (the fourth instruction of its block: recording starts after three);
    // nop; jmp +0; dec %r8d; jnz (the loop); then UD2. The JMP's cycle count is WRMSR,
    // NOP and itself.
    const uint8_t code[] = {0x41, 0xb8, 0x0a, 0x00, 0x00, 0x00, 0xb9, 0xd9, 0x01, 0x00, 0x00, 0x31,
                            0xc0, 0x31, 0xd2, 0x0f, 0x30, 0x90, 0x90, 0xb8, 0x01, 0x00, 0x00, 0x00,
                            0x0f, 0x30, 0x90, 0xeb, 0x00, 0x41, 0xff, 0xc8, 0x75, 0xe4, 0x0f, 0x0b};
    for (uint64_t step : {0, 3, 7}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(code, 0);
        const std::string what = "wrmsr step " + std::to_string(step);
        e.run_compare(step, what);
        if (::testing::Test::HasFatalFailure()) return;
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD) << what;
        const Lbr& l = e.xlate.cpu_.lbr();
        EXPECT_EQ(l.recent(0).from, BareMachine::kCode + 0x22) << what;  // UD2
        EXPECT_EQ(l.recent(0).info, 2u) << what;                         // DEC, JNZ (not taken)
        EXPECT_EQ(l.recent(1).from, BareMachine::kCode + 0x1B) << what;  // JMP +0
        EXPECT_EQ(l.recent(1).info, 3u) << what;
        EXPECT_EQ(l.recent(2).from, BareMachine::kCode + 0x20) << what;  // JNZ, round before
        EXPECT_EQ(l.recent(2).info, 2u) << what;
    }
}

// A random branchy program: ROUNDS rounds of cells that step EAX as a linear congruential
// generator and then branch on it: a Jcc over one instruction (any condition), a CALL to
// one of four functions that return early or late on a bit of EAX, an indirect JMP
// through a register or through memory to the next cell, a JMP or Jcc to the next
// instruction, or a run of 70 ALU instructions (a block ending without a branch). Then UD2.
struct BranchyProgram {
    std::vector<uint8_t> code;
    uint64_t ud2 = 0;
    explicit BranchyProgram(uint64_t seed) {
        std::mt19937_64 rng(seed);
        auto pick = [&](uint64_t n) { return static_cast<uint32_t>(rng() % n); };
        auto put = [&](std::initializer_list<uint8_t> b) { code.insert(code.end(), b); };
        auto put32 = [&](uint32_t v) {
            for (int k = 0; k < 4; ++k) code.push_back(static_cast<uint8_t>(v >> (8 * k)));
        };
        put({0x41, 0xBF});  // mov r15d, 40
        put32(40);
        const size_t top = code.size();
        std::vector<std::pair<size_t, int>> calls;  // rel32 offset, function
        for (int cell = 0; cell < 24; ++cell) {
            put({0x69, 0xC0});  // imul eax, eax, 0x41C64E6D
            put32(0x41C64E6D);
            put({0x05});  // add eax, 0x3039
            put32(0x3039);
            const uint8_t bit = static_cast<uint8_t>(1u << (8 + pick(8)) >> 8);
            switch (pick(7)) {
                case 0:  // test eax, bit << 8 (the LCG's better bits); jcc +3; add ebx, 1
                    put({0xA9, 0x00, bit, 0x00, 0x00});
                    put({static_cast<uint8_t>(0x70 + pick(16)), 0x03, 0x83, 0xC3, 0x01});
                    break;
                case 1:  // call function k
                    put({0xE8});
                    calls.push_back({code.size(), static_cast<int>(pick(4))});
                    put32(0);
                    break;
                case 2:  // lea rsi, [rip + 2]; jmp rsi
                    put({0x48, 0x8D, 0x35, 0x02, 0x00, 0x00, 0x00, 0xFF, 0xE6});
                    break;
                case 3: {  // jmp qword [rip + 0]; dq next
                    put({0xFF, 0x25, 0x00, 0x00, 0x00, 0x00});
                    const uint64_t next = BareMachine::kCode + code.size() + 8;
                    for (int k = 0; k < 8; ++k)
                        code.push_back(static_cast<uint8_t>(next >> (8 * k)));
                    break;
                }
                case 4:  // jmp +0, or jcc +0
                    put({pick(2) ? uint8_t{0xEB} : static_cast<uint8_t>(0x70 + pick(16)), 0x00});
                    break;
                case 5:  // 70 x add edx, eax
                    for (int k = 0; k < 70; ++k) put({0x01, 0xC2});
                    break;
                default:  // test al, bit; jnz +5; call function 0
                    put({0xA8, bit, 0x75, 0x05, 0xE8});
                    calls.push_back({code.size(), 0});
                    put32(0);
                    break;
            }
        }
        put({0x41, 0xFF, 0xCF, 0x0F, 0x85});  // dec r15d; jnz top
        put32(static_cast<uint32_t>(static_cast<int32_t>(top) -
                                    static_cast<int32_t>(code.size() + 4)));
        ud2 = code.size();
        put({0x0F, 0x0B});
        size_t fn[4];
        for (size_t& f : fn) {  // test eax, bit; jz +1; ret; add ecx, 1; ret
            f = code.size();
            put({0xA9, 0x00, static_cast<uint8_t>(1u << pick(8)), 0x00, 0x00, 0x74, 0x01, 0xC3,
                 0x83, 0xC1, 0x01, 0xC3});
        }
        for (const auto& [at, k] : calls) {
            const auto rel =
                static_cast<uint32_t>(static_cast<int32_t>(fn[k]) - static_cast<int32_t>(at + 4));
            for (int b = 0; b < 4; ++b) code[at + b] = static_cast<uint8_t>(rel >> (8 * b));
        }
    }
};

TEST(LbrTrace, RandomBranchyProgramsRecordAsTheInterpreterDoes) {
    uint64_t chained = 0;
    for (uint64_t seed = 1; seed <= 12; ++seed) {
        const BranchyProgram prog(seed);
        std::mt19937_64 rng(seed * 31);
        // LBR_SELECT: every class, call-stack mode, or random class and CPL bits.
        const uint64_t select = seed % 3 == 0   ? 0
                                : seed % 3 == 1 ? LBR_SELECT_CALLSTACK
                                                : (rng() & LBR_SELECT_VALID & ~LBR_SELECT_CPL_EQ_0);
        for (uint64_t step : {0, 7, 64}) {
            Engines e;
            if (!e.ok) GTEST_SKIP() << "built without the translator";
            e.start(prog.code, select);
            const std::string what = "seed " + std::to_string(seed) + " select " +
                                     std::to_string(select) + " step " + std::to_string(step);
            e.run_compare(step, what);
            if (::testing::Test::HasFatalFailure()) return;
            EXPECT_EQ(e.xlate.vector_taken(), VEC_UD) << what;
            EXPECT_EQ(e.xlate.frame(0), BareMachine::kCode + prog.ud2) << what;
            chained += e.xlate.cpu_.translator()->stats().chained_blocks;
        }
    }
    EXPECT_GT(chained, 10000u);
}

TEST(LbrTrace, CompatibilityModeBlocksWithoutBranches) {
    // 32-bit code (CS.L clear): 300 rounds of 70 ADD EDX, 1 (a 64-instruction block that
    // ends without a branch, which chains, and the rest with SUB ECX, 1 and JNZ, whose
    // branch has no native form outside 64-bit mode), then UD2.
    uint8_t code[5 + 70 * 3 + 3 + 6 + 2];
    size_t at = 0;
    for (uint8_t b : {0xB9, 0x2C, 0x01, 0x00, 0x00}) code[at++] = b;  // mov ecx, 300
    for (int k = 0; k < 70; ++k)
        for (uint8_t b : {0x83, 0xC2, 0x01}) code[at++] = b;  // add edx, 1
    for (uint8_t b : {0x83, 0xE9, 0x01}) code[at++] = b;      // sub ecx, 1
    const int32_t back = 5 - static_cast<int32_t>(at + 6);
    code[at++] = 0x0F, code[at++] = 0x85;  // jnz rel32
    for (int k = 0; k < 4; ++k)
        code[at++] = static_cast<uint8_t>(static_cast<uint32_t>(back) >> (8 * k));
    code[at++] = 0x0F, code[at++] = 0x0B;  // ud2
    ASSERT_EQ(at, sizeof code);
    for (uint64_t step : {0, 1000, 37}) {
        Engines e;
        if (!e.ok) GTEST_SKIP() << "built without the translator";
        e.start(code, 0);
        for (BareMachine* m : {&e.interp, &e.xlate}) {
            m->cpu_.state().seg[CS].l = false;
            m->cpu_.state().seg[CS].db = true;
            m->cpu_.state_changed();
        }
        e.run_compare(step, "compat step " + std::to_string(step));
        EXPECT_EQ(e.xlate.vector_taken(), VEC_UD);
        EXPECT_EQ(e.xlate.cpu_.state().gpr[RDX], 300u * 70);
        EXPECT_EQ(e.xlate.cpu_.lbr().recent(0).from, BareMachine::kCode + sizeof code - 2);
        if (!step) {
            EXPECT_GT(e.xlate.cpu_.translator()->stats().chained_blocks, 200u);
        }
    }
}

}  // namespace
}  // namespace softkvm::cpu::test
