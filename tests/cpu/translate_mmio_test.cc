// MMIO under the translating engine (docs/translator.md): a native MOV r, m whose read
// the owner must answer first (as a VMM behind KVM_EXIT_MMIO does) abandons the
// instruction without unwinding and completes on the next run() by replaying the read;
// after an exit in a translated block, the rest runs as a block of its own. Both engines
// must make the same requests to the device in the same order and end in the same state.
#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "bare_machine.h"
#include "cpu/translate/translator.h"

namespace softkvm::cpu::test {
namespace {

constexpr uint64_t kMmio = BareMachine::kDevice;  // the device page above RAM

// Answers a read only on the run() after the one that asked for it; every answer differs
// (a read counter mixed in), so a read made twice or replayed wrongly changes the result.
class CountingDevice : public RecordingOwner {
  public:
    std::array<uint8_t, 0x1000> regs{};
    struct Event {
        char kind;  // 'x' read exit, 'r' read answered, 'w' write
        uint64_t gpa, value;
        bool operator==(const Event&) const = default;
    };
    std::vector<Event> events;
    uint64_t pending_gpa = ~0ull;
    uint8_t pending_size = 0;
    uint64_t answered = 0;

    Action mmio_read(uint64_t gpa, uint8_t size, uint64_t& value) override {
        if (pending_gpa != gpa || pending_size != size) {
            pending_gpa = gpa, pending_size = size;
            events.push_back({'x', gpa, size});
            return Action::Exit;
        }
        pending_gpa = ~0ull;
        value = 0;
        std::memcpy(&value, &regs[gpa - kMmio], size);
        value ^= ++answered * 0x0101010101010101ull;
        events.push_back({'r', gpa, value});
        return Action::Done;
    }
    Action mmio_write(uint64_t gpa, uint8_t size, uint64_t value) override {
        events.push_back({'w', gpa, value});
        std::memcpy(&regs[gpa - kMmio], &value, size);
        return Action::Exit;
    }
};

// One machine: the bare machine's RAM and state with a device page above RAM.
struct MmioMachine {
    explicit MmioMachine(bool translate) : cpu(dev) {
        m.share_with_device_page(cpu);
        dev.cpu = &cpu;
        if (translate) {
            ok = cpu.set_engine(Engine::Translate);
            if (ok) cpu.translator()->set_translate_after(Translator::kHotRuns);
        }
    }
    // run() until HLT (at most `max_runs` calls, each with `limit` instructions).
    bool run_to_hlt(uint64_t limit, int max_runs) {
        for (int k = 0; k < max_runs; ++k) {
            cpu.run(limit);
            if (dev.hlts) return true;
        }
        return false;
    }
    BareMachine m;
    CountingDevice dev;
    Cpu cpu;
    bool ok = true;
};

void expect_same(MmioMachine& a, MmioMachine& b) {
    for (int r = 0; r < 16; ++r) EXPECT_EQ(a.cpu.state().gpr[r], b.cpu.state().gpr[r]) << r;
    EXPECT_EQ(a.cpu.state().rip, b.cpu.state().rip);
    EXPECT_EQ(a.cpu.state().rflags, b.cpu.state().rflags);
    EXPECT_EQ(a.cpu.instructions_retired(), b.cpu.instructions_retired());
    EXPECT_TRUE(a.dev.events == b.dev.events)
        << a.dev.events.size() << " events against " << b.dev.events.size();
    EXPECT_EQ(0, std::memcmp(a.m.ram_ + BareMachine::kStack - 4096,
                             b.m.ram_ + BareMachine::kStack - 4096, 4096));
}

// mov $0x400000,%esi; mov $ITER,%edi; xor %edx,%edx; xor %eax,%eax
// 1: mov %eax,4(%rsi); mov (%rsi),%ecx (size per test); add %rcx,%rdx; inc %eax;
//    mov 8(%rsi),%rbx; xor %rbx,%rdx; dec %edi; jnz 1b
// hlt
std::vector<uint8_t> polling_loop(uint8_t load_size, uint32_t iterations) {
    std::vector<uint8_t> c = {0xbe, 0x00, 0x00, 0x40, 0x00, 0xbf};
    for (int k = 0; k < 4; ++k) c.push_back(static_cast<uint8_t>(iterations >> (8 * k)));
    c.insert(c.end(), {0x31, 0xd2, 0x31, 0xc0});
    const size_t loop = c.size();
    c.insert(c.end(), {0x89, 0x46, 0x04});  // mov %eax,4(%rsi)
    if (load_size == 1) {
        c.insert(c.end(), {0x48, 0x31, 0xc9, 0x8a, 0x0e});  // xor %rcx,%rcx; mov (%rsi),%cl
    } else if (load_size == 4) {
        c.insert(c.end(), {0x8b, 0x0e});  // mov (%rsi),%ecx
    } else {
        c.insert(c.end(), {0x48, 0x8b, 0x0e});  // mov (%rsi),%rcx
    }
    c.insert(c.end(),
             {0x48, 0x01, 0xca, 0xff, 0xc0, 0x48, 0x8b, 0x5e, 0x08, 0x48, 0x31, 0xda, 0xff, 0xcf});
    c.push_back(0x75);  // jnz rel8
    c.push_back(static_cast<uint8_t>(loop - (c.size() + 1)));
    c.push_back(0xf4);
    return c;
}

class TranslateMmioTest : public ::testing::TestWithParam<uint8_t> {};

TEST_P(TranslateMmioTest, PollingLoopMakesTheSameDeviceRequestsAsTheInterpreter) {
    MmioMachine interp(false), xlate(true);
    if (!xlate.ok) GTEST_SKIP() << "no translating engine in this build";
    const std::vector<uint8_t> code = polling_loop(GetParam(), 50);
    for (MmioMachine* m : {&interp, &xlate})
        std::memcpy(m->m.ram_ + BareMachine::kCode, code.data(), code.size());
    ASSERT_TRUE(interp.run_to_hlt(0, 1000));
    ASSERT_TRUE(xlate.run_to_hlt(0, 1000));
    expect_same(interp, xlate);
    // Each iteration: a write, then a read exit and its answer, and a read of 8(%rsi).
    EXPECT_EQ(interp.dev.events.size(), 50u * 5);
    // The loop ran translated, loads included (blocks of its own after the exits).
    EXPECT_GT(xlate.cpu.translator_stats().blocks_translated, 1u);
}

TEST_P(TranslateMmioTest, ExitsMatchTheInterpreterAtEveryInstructionLimit) {
    const std::vector<uint8_t> code = polling_loop(GetParam(), 40);
    for (uint64_t limit : {1u, 3u, 7u, 11u, 29u, 64u, 1000u}) {
        MmioMachine interp(false), xlate(true);
        if (!xlate.ok) GTEST_SKIP() << "no translating engine in this build";
        for (MmioMachine* m : {&interp, &xlate})
            std::memcpy(m->m.ram_ + BareMachine::kCode, code.data(), code.size());
        for (int k = 0; k < 2000 && !interp.dev.hlts; ++k) {
            const uint64_t until = interp.cpu.instructions_retired() + limit;  // absolute
            const StopReason a = interp.cpu.run(until);
            const StopReason b = xlate.cpu.run(until);
            ASSERT_EQ(a, b) << "limit " << limit << " step " << k;
            expect_same(interp, xlate);
            if (::testing::Test::HasFailure()) return;
        }
        EXPECT_EQ(interp.dev.hlts, 1) << "limit " << limit;
        EXPECT_EQ(xlate.dev.hlts, 1) << "limit " << limit;
    }
}

// mov $0x400000,%esi; xor %edx,%edx; then `loads` times: mov (%rsi),%ecx; add %rcx,%rdx;
// then hlt: straight-line device code in one block, every load a read exit.
std::vector<uint8_t> straight_line_loads(int loads) {
    std::vector<uint8_t> c = {0xbe, 0x00, 0x00, 0x40, 0x00, 0x31, 0xd2};
    for (int k = 0; k < loads; ++k) c.insert(c.end(), {0x8b, 0x0e, 0x48, 0x01, 0xca});
    c.push_back(0xf4);
    return c;
}

// Blocks translated at their first run (as the fuzz target and the differential tests
// translate them): an exit inside a block that never stopped there before resumes the
// block in its middle, as the interpreter does, so straight-line code is decoded (and
// translated) once, not once more from every instruction that exits.
TEST(TranslateMmio, StraightLineExitsResumeTheStoppedBlock) {
    MmioMachine interp(false), xlate(true);
    if (!xlate.ok) GTEST_SKIP() << "no translating engine in this build";
    xlate.cpu.translator()->set_translate_after(1);
    const std::vector<uint8_t> code = straight_line_loads(20);
    for (MmioMachine* m : {&interp, &xlate})
        std::memcpy(m->m.ram_ + BareMachine::kCode, code.data(), code.size());
    ASSERT_TRUE(interp.run_to_hlt(0, 100));
    ASSERT_TRUE(xlate.run_to_hlt(0, 100));
    expect_same(interp, xlate);
    EXPECT_EQ(interp.dev.events.size(), 20u * 2);  // each load: an exit, then its answer
    EXPECT_EQ(xlate.cpu.cache_stats().insns_decoded, interp.cpu.cache_stats().insns_decoded);
    EXPECT_EQ(xlate.cpu.cache_stats().blocks_built, interp.cpu.cache_stats().blocks_built);
    EXPECT_EQ(xlate.cpu.translator_stats().blocks_translated, 1u);
}

// ... while a loop that exits at the same instruction again goes on in a block that starts
// after it, translated once and entered from then on.
TEST(TranslateMmio, RepeatedExitsContinueInABlockOfTheirOwn) {
    MmioMachine interp(false), xlate(true);
    if (!xlate.ok) GTEST_SKIP() << "no translating engine in this build";
    xlate.cpu.translator()->set_translate_after(1);
    const std::vector<uint8_t> code = polling_loop(4, 50);
    for (MmioMachine* m : {&interp, &xlate})
        std::memcpy(m->m.ram_ + BareMachine::kCode, code.data(), code.size());
    ASSERT_TRUE(interp.run_to_hlt(0, 1000));
    ASSERT_TRUE(xlate.run_to_hlt(0, 1000));
    expect_same(interp, xlate);
    const uint64_t built = xlate.cpu.cache_stats().blocks_built;
    EXPECT_GT(built, interp.cpu.cache_stats().blocks_built);  // the continuation
    EXPECT_LE(built, 6u);                                     // not a block per iteration
    EXPECT_EQ(xlate.cpu.translator_stats().blocks_translated, built);
}

INSTANTIATE_TEST_SUITE_P(LoadSizes, TranslateMmioTest, ::testing::Values(1, 4, 8));

}  // namespace
}  // namespace softkvm::cpu::test
