// Chaining between translated blocks and a kick (Cpu::kick, from another thread or from a
// device): the block's exit tests it (chain.cc), and the run loop returns Kicked.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "translate_harness.h"

namespace softkvm::cpu::test {
namespace {

// Two blocks of native register forms that jump to each other for ever: every way from
// one to the other is a direct exit that remembers its successor (emit_direct_exit).
const std::vector<uint8_t> kPingPong = {
    0xFF, 0xC1,  // a: inc %ecx
    0xEB, 0x00,  //    jmp b
    0xFF, 0xC2,  // b: inc %edx
    0xEB, 0xF8,  //    jmp a
};

// Another thread's kick stops a run of chained blocks whose every instruction is native,
// which would otherwise go on to the instruction limit without returning to the run loop.
TEST(TranslateChainTest, KickStopsChainedNativeBlocks) {
    BareMachine m;
    if (!m.cpu_.set_engine(Engine::Translate)) GTEST_SKIP() << "built without the translator";
    m.cpu_.translator()->set_translate_after(1);
    std::memcpy(m.ram_ + BareMachine::kCode, kPingPong.data(), kPingPong.size());
    // Chained and remembered before the kick: the first run ends at its limit.
    ASSERT_EQ(m.cpu_.run(1000), StopReason::InsnLimit);
    std::atomic<bool> stopped{false};
    std::thread kicker([&] {
        while (!stopped.load()) {
            m.cpu_.kick();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    // Without the kick seen, 2 * 10^9 instructions (seconds), then InsnLimit.
    const StopReason r = m.cpu_.run(2'000'000'000ull);
    stopped = true;
    kicker.join();
    EXPECT_EQ(r, StopReason::Kicked);
    const uint64_t n = m.cpu_.instructions_retired();
    EXPECT_LT(n, 2'000'000'000ull);
    // Both halves ran as often, to within one iteration.
    const CpuState& s = m.cpu_.state();
    EXPECT_LE(s.gpr[RCX] - s.gpr[RDX], 1u);
    EXPECT_GT(m.cpu_.translator_stats().chained_blocks, 100u);
}

// A loop of three blocks: the first ends with a write to a port (its handler kicks the CPU
// at the k-th write), the other two are native.
const std::vector<uint8_t> kOutChain = {
    0xB9, 0xC8, 0x00, 0x00, 0x00,  //       mov $200,%ecx
    0x01, 0xC8,                    // top:  add %ecx,%eax
    0xE6, 0x21,                    //       out %al,$0x21
    0xEB, 0x00,                    //       jmp next
    0xFF, 0xC2,                    // next: inc %edx
    0xD1, 0xC0,                    //       rol %eax
    0xFF, 0xC9,                    //       dec %ecx
    0x75, 0xF2,                    //       jnz top
    0xF4,                          //       hlt
};

// A kick from inside an instruction (a device's port write) of a chained block: both
// engines return Kicked after that block, with the same state, and run on alike.
TEST(TranslateChainTest, KickFromADeviceStopsAfterTheSameBlock) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    for (size_t k = 1; k <= 60; k += 7) {
        Pair p;
        ASSERT_TRUE(p.ok());
        p.load(kOutChain);
        p.both([&](BareMachine& m) {
            m.owner_.on_out = [&m, k] {
                if (m.owner_.outs.size() == k) m.cpu_.kick();
            };
        });
        const std::string what = "kick at out " + std::to_string(k);
        EXPECT_EQ(p.translating_cpu().run(0), StopReason::Kicked) << what;
        EXPECT_EQ(p.interpreting_cpu().run(0), StopReason::Kicked) << what;
        p.expect_same(what);
        EXPECT_EQ(p.translating_cpu().instructions_retired(), 7 * k - 4) << what;
        p.run_compare({0}, what + ", then to the end");
        if (::testing::Test::HasFailure()) return;
        EXPECT_EQ(p.translating().owner_.outs.size(), 200u) << what;
        EXPECT_GE(p.translating_cpu().translator_stats().chained_blocks, 2 * k - 2) << what;
    }
}

// Every chain exit calls the successor search written once at the code cache's front
// (chain.cc: emit_lookup_stub), which flushes keep. A loop over 100 blocks of `add
// $1,%eax; jmp next` (ten times), then 600 other such blocks (once), the whole three
// times, in a cache that holds about 350 of them: the loop's blocks are translated again
// after each flush and chain from their second round on, through the search (emptied
// with the rest, it would crash them). The results stay the interpreter's, and a block's
// code stays small: its exit holds the remembered successor's check and a call, not the
// search (inline, it made blocks like these about 1,170 bytes; now about 720).
TEST(TranslateChainTest, ExitsCallTheSearchKeptThroughFlushes) {
    if (!translator_available()) GTEST_SKIP() << "built without the translator";
    Pair p(256 * 1024);
    ASSERT_TRUE(p.ok());
    std::vector<uint8_t> code = {0xBA, 0x03, 0x00, 0x00, 0x00};  // mov $3,%edx
    const size_t outer = code.size();
    code.insert(code.end(), {0xB9, 0x0A, 0x00, 0x00, 0x00});  // mov $10,%ecx
    const size_t inner = code.size();
    auto blocks = [&](int n) {
        for (int k = 0; k < n; ++k) code.insert(code.end(), {0x83, 0xC0, 0x01, 0xEB, 0x00});
    };
    auto jnz_to = [&](size_t to) {  // jnz to (rel32)
        code.insert(code.end(), {0x0F, 0x85});
        const int32_t rel = static_cast<int32_t>(to) - static_cast<int32_t>(code.size() + 4);
        for (int k = 0; k < 4; ++k) code.push_back(static_cast<uint8_t>(rel >> (8 * k)));
    };
    blocks(100);
    code.insert(code.end(), {0xFF, 0xC9});  // dec %ecx
    jnz_to(inner);
    blocks(600);
    code.insert(code.end(), {0xFF, 0xCA});  // dec %edx
    jnz_to(outer);
    code.push_back(0xF4);
    p.load(code);
    p.both([](BareMachine& m) { m.cpu_.state().gpr[RAX] = 0; });
    p.run_compare({1'000'000}, "the loop and the other blocks, three times");
    EXPECT_EQ(p.translating_cpu().state().gpr[RAX], (100u * 10 + 600) * 3);
    const Translator::Stats st = p.translating_cpu().translator_stats();
    EXPECT_GE(st.cache_flushes, 3u);
    EXPECT_GT(st.chained_blocks, 100u * 8 * 3);
    ASSERT_GT(st.blocks_translated, 700u * 3);
    EXPECT_LT(st.code_bytes / st.blocks_translated, 900u);
}

}  // namespace
}  // namespace softkvm::cpu::test
