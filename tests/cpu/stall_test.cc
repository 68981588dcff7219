// Event loops that retire nothing (Cpu::set_stall_limit): an exception handler whose first
// instruction raises the same exception again. A real CPU loops there for good, and here
// the virtual clock (retired instructions) would stand still too, so neither a timer nor
// run()'s instruction limit could end it; run() returns Stalled after the limit of
// deliveries, at an exact instruction boundary, and goes on from there when called again.
#include <gtest/gtest.h>

#include "bare_machine.h"

namespace softkvm::cpu::test {
namespace {

constexpr uint8_t kUd2[] = {0x0F, 0x0B};
constexpr uint64_t kUdHandler = BareMachine::kStubs + VEC_UD * 0x10;

// RSP after `n` deliveries of #UD from RSP 0x80000 in 64-bit mode: each aligns RSP down to
// 16 bytes and pushes five quadwords (SDM vol. 3 §6.14.2), 48 bytes apart after the first.
uint64_t rsp_after(uint64_t n) {
    return BareMachine::kStack - 40 - 48 * (n - 1);
}

class StallTest : public ::testing::TestWithParam<Engine>, public BareMachine {
  protected:
    void SetUp() override {
        if (!cpu_.set_engine(GetParam())) GTEST_SKIP() << "engine not available";
    }
};

TEST_P(StallTest, HandlerThatFaultsAgainStopsAfterTheLimit) {
    load(kUd2);              // ud2
    load(kUd2, kUdHandler);  // the #UD handler: ud2
    cpu_.set_stall_limit(100);
    // Before the limit existed this run went on until the frames left the mapped 4 MiB
    // (about 10,900 deliveries, then #PF, #DF: a triple fault): no limit of 1000
    // instructions could end it, as none retires.
    EXPECT_EQ(cpu_.run(1000), StopReason::Stalled);
    EXPECT_EQ(cpu_.instructions_retired(), 0u);
    EXPECT_EQ(cpu_.state().rip, kUdHandler);
    EXPECT_EQ(cpu_.state().gpr[RSP], rsp_after(100));
    EXPECT_NE(cpu_.stop_detail().find("100 events delivered without an instruction retiring"),
              std::string::npos)
        << cpu_.stop_detail();
    EXPECT_NE(cpu_.stop_detail().find("vector 6 at rip 0x20060"), std::string::npos)
        << cpu_.stop_detail();
    // The next call goes on where the CPU was, with a new count of 100.
    EXPECT_EQ(cpu_.run(1000), StopReason::Stalled);
    EXPECT_EQ(cpu_.instructions_retired(), 0u);
    EXPECT_EQ(cpu_.state().gpr[RSP], rsp_after(200));
    EXPECT_EQ(get64(rsp_after(200)), kUdHandler);  // the last frame: #UD at the handler
    EXPECT_EQ(vector_taken(), -1);
}

TEST_P(StallTest, DefaultLimitEndsTheLoopBeforeItsStackRunsOut) {
    load(kUd2);
    load(kUd2, kUdHandler);
    ASSERT_EQ(cpu_.stall_limit(), Cpu::kDefaultStallLimit);
    // 65,536 frames of 48 bytes take 3 MiB of the 4 MiB of RAM below this stack.
    cpu_.state().gpr[RSP] = 0x380000;
    EXPECT_EQ(cpu_.run(1000), StopReason::Stalled);
    EXPECT_EQ(cpu_.instructions_retired(), 0u);
    EXPECT_EQ(cpu_.state().gpr[RSP], 0x380000 - 40 - 48 * (Cpu::kDefaultStallLimit - 1));
}

TEST_P(StallTest, ARetiredInstructionBetweenDeliveriesStartsTheCountAgain) {
    load(kUd2);
    // The #UD handler: inc %ecx; ud2. One instruction retires before each next #UD.
    const uint8_t handler[] = {0xFF, 0xC1, 0x0F, 0x0B};
    load(handler, kUdHandler);
    cpu_.set_stall_limit(2);
    EXPECT_EQ(cpu_.run(1000), StopReason::InsnLimit);
    EXPECT_EQ(cpu_.instructions_retired(), 1000u);
    EXPECT_EQ(cpu_.state().gpr[RCX], 1000u);
}

// An owner that takes every MMIO write as an exit (as KVM_EXIT_MMIO).
class WriteExitOwner : public RecordingOwner {
  public:
    int writes = 0;
    Action mmio_write(uint64_t, uint8_t, uint64_t) override {
        ++writes;
        return Action::Exit;
    }
};

TEST_P(StallTest, TheCountGoesOnAcrossExits) {
    // With the stack in MMIO, every frame's writes go to the owner one exit at a time, so
    // each run() call ends inside the loop; the deliveries still count until the limit.
    load(kUd2);
    load(kUd2, kUdHandler);
    WriteExitOwner owner;
    Cpu cpu(owner);
    ASSERT_TRUE(cpu.set_engine(GetParam()));
    share_with_device_page(cpu);
    cpu.state().gpr[RSP] = kDevice + 0x1000;
    cpu.set_stall_limit(10);
    StopReason why = StopReason::Owner;
    int runs = 0;
    while (why == StopReason::Owner && runs < 1000) why = cpu.run(1000), ++runs;
    EXPECT_EQ(why, StopReason::Stalled);
    EXPECT_EQ(owner.writes, 10 * 5);  // RIP, CS, RFLAGS, RSP, SS of each frame
    EXPECT_EQ(runs, 10 * 5 + 1);
    EXPECT_EQ(cpu.instructions_retired(), 0u);
    EXPECT_EQ(cpu.state().gpr[RSP], kDevice + 0x1000 - 40 - 48 * 9);
}

INSTANTIATE_TEST_SUITE_P(Engines, StallTest, ::testing::Values(Engine::Interp, Engine::Translate),
                         [](const ::testing::TestParamInfo<Engine>& i) {
                             return std::string(engine_name(i.param));
                         });

}  // namespace
}  // namespace softkvm::cpu::test
