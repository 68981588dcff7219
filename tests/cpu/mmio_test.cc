// Instructions that touch MMIO several times (issue: multi-read MMIO instructions were
// re-executed forever): each MMIO read the owner cannot answer at once abandons the
// instruction, which completes on a later run() by replaying the reads it had made. The
// device here behaves like a VMM behind KVM_EXIT_MMIO: it answers a read only on the
// run() after the one that asked for it, and every read and write has an effect it counts.
#include <gtest/gtest.h>

#include <array>

#include "machine.h"

namespace softkvm::cpu::test {
namespace {

constexpr uint64_t kMmio = BareMachine::kDevice;  // the device page above RAM

class ExitingDevice : public RecordingOwner {
  public:
    std::array<uint8_t, 0x2000> regs{};                 // [kMmio, kMmio + 0x2000): plain registers
    int reads = 0;                                      // reads answered (each counts once)
    std::vector<std::pair<uint64_t, uint64_t>> writes;  // (gpa, value) in order
    uint64_t pending_gpa = ~0ull;
    uint8_t pending_size = 0;
    int exits = 0;

    Action mmio_read(uint64_t gpa, uint8_t size, uint64_t& value) override {
        if (pending_gpa != gpa || pending_size != size) {
            pending_gpa = gpa, pending_size = size;
            ++exits;
            return Action::Exit;
        }
        pending_gpa = ~0ull;
        ++reads;
        value = 0;
        std::memcpy(&value, &regs[gpa - kMmio], size);
        return Action::Done;
    }
    Action mmio_write(uint64_t gpa, uint8_t size, uint64_t value) override {
        writes.emplace_back(gpa, value);
        std::memcpy(&regs[gpa - kMmio], &value, size);
        ++exits;
        return Action::Exit;
    }
};

class MmioTest : public ::testing::Test {
  protected:
    // The bare machine provides RAM, page tables, GDT and IDT; the CPU under test is ours.
    MmioTest() : cpu_(dev_) {}
    void SetUp() override {
        m_.share_with_device_page(cpu_);  // our own CPU over the same RAM and state
        dev_.cpu = &cpu_;
    }
    template <size_t N>
    void load(const uint8_t (&code)[N]) {
        m_.load(code);
    }
    // Runs until HLT; false if that takes more than `max_runs` run() calls.
    bool run_to_hlt(int max_runs = 64) {
        for (int k = 0; k < max_runs; ++k) {
            cpu_.run(100000);
            if (dev_.hlts) return true;
        }
        return false;
    }
    void put_reg(uint64_t off, uint64_t v, size_t n = 8) { std::memcpy(&dev_.regs[off], &v, n); }

    BareMachine m_;
    ExitingDevice dev_;
    Cpu cpu_;
};

TEST_F(MmioTest, ReadCrossingFromRamIntoMmioCompletes) {
    // mov $0x3ffffe,%esi; mov (%rsi),%eax; hlt: two bytes of RAM, two of MMIO.
    const uint8_t code[] = {0xbe, 0xfe, 0xff, 0x3f, 0x00, 0x8b, 0x06, 0xf4};
    load(code);
    m_.ram_[0x3ffffe] = 0x11, m_.ram_[0x3fffff] = 0x22;
    dev_.regs[0] = 0x33, dev_.regs[1] = 0x44;
    ASSERT_TRUE(run_to_hlt());
    EXPECT_EQ(cpu_.state().gpr[RAX], 0x44332211u);
    EXPECT_EQ(dev_.reads, 2);  // each MMIO byte read once
    EXPECT_EQ(cpu_.instructions_retired(), 3u);
}

TEST_F(MmioTest, CmpsBetweenTwoMmioAddressesCompletes) {
    // mov $0x400000,%esi; mov $0x400100,%edi; cmpsl; hlt
    const uint8_t code[] = {0xbe, 0x00, 0x00, 0x40, 0x00, 0xbf, 0x00, 0x01, 0x40, 0x00, 0xa7, 0xf4};
    load(code);
    put_reg(0, 5, 4);
    put_reg(0x100, 7, 4);
    ASSERT_TRUE(run_to_hlt());
    EXPECT_EQ(dev_.reads, 2);
    EXPECT_TRUE(cpu_.state().rflags & FLAG_CF);  // 5 - 7 borrows
    EXPECT_EQ(cpu_.state().gpr[RSI], kMmio + 4);
    EXPECT_EQ(cpu_.state().gpr[RDI], kMmio + 0x104);
}

TEST_F(MmioTest, RepMovsFromMmioReadsEachElementOnce) {
    // mov $0x400000,%esi; mov $0x30000,%edi; mov $8,%ecx; rep movsb; hlt
    const uint8_t code[] = {0xbe, 0x00, 0x00, 0x40, 0x00, 0xbf, 0x00, 0x00, 0x03,
                            0x00, 0xb9, 0x08, 0x00, 0x00, 0x00, 0xf3, 0xa4, 0xf4};
    load(code);
    for (int k = 0; k < 8; ++k) dev_.regs[k] = static_cast<uint8_t>(0xA0 + k);
    ASSERT_TRUE(run_to_hlt());
    EXPECT_EQ(dev_.reads, 8);
    for (int k = 0; k < 8; ++k) EXPECT_EQ(m_.ram_[0x30000 + k], 0xA0 + k) << k;
    EXPECT_EQ(cpu_.state().gpr[RCX], 0u);
}

TEST_F(MmioTest, EnterWithNestingReadsFramePointersThroughMmio) {
    // mov $0x400100,%ebp; enter $0x10,$3; hlt (the old frame pointers are at RBP-8, -16)
    const uint8_t code[] = {0xbd, 0x00, 0x01, 0x40, 0x00, 0xc8, 0x10, 0x00, 0x03, 0xf4};
    load(code);
    put_reg(0xF8, 0x1111);
    put_reg(0xF0, 0x2222);
    const uint64_t rsp = cpu_.state().gpr[RSP];
    ASSERT_TRUE(run_to_hlt());
    EXPECT_EQ(dev_.reads, 2);
    const uint64_t frame = rsp - 8;
    EXPECT_EQ(cpu_.state().gpr[RBP], frame);
    EXPECT_EQ(cpu_.state().gpr[RSP], frame - 3 * 8 - 0x10);
    EXPECT_EQ(m_.get64(frame), kMmio + 0x100);  // the old RBP
    EXPECT_EQ(m_.get64(frame - 8), 0x1111u);
    EXPECT_EQ(m_.get64(frame - 16), 0x2222u);
    EXPECT_EQ(m_.get64(frame - 24), frame);
}

TEST_F(MmioTest, FarJumpThroughAnMmioPointerAndGdtCompletes) {
    // GDT in MMIO: null, 64-bit code at 0x08. mov $0x400200,%esi; ljmp *(%rsi); then at
    // the target: hlt.
    const uint8_t code[] = {0xbe, 0x00, 0x02, 0x40, 0x00, 0xff, 0x2e, 0xf4, 0x90, 0xf4};
    load(code);
    put_reg(0x508, 0x00AF9A000000FFFFull);
    put_reg(0x200, BareMachine::kCode + 9, 4);  // offset (m16:32): the second hlt
    put_reg(0x204, 0x08, 2);                    // selector
    cpu_.state().gdtr = {kMmio + 0x500, 0x17};
    ASSERT_TRUE(run_to_hlt());
    EXPECT_EQ(cpu_.state().rip, BareMachine::kCode + 10);  // the second HLT retired
    EXPECT_EQ(dev_.reads, 3);                              // offset, selector, descriptor
    // The CPU set the descriptor's accessed bit: one write, after the reads.
    ASSERT_EQ(dev_.writes.size(), 1u);
    EXPECT_EQ(dev_.writes[0].first, kMmio + 0x508);
}

TEST_F(MmioTest, WriteCrossingIntoMmioSendsEveryByteInOrder) {
    // mov $0x3ffffe,%esi; movl $0xddccbbaa,(%rsi); hlt
    const uint8_t code[] = {0xbe, 0xfe, 0xff, 0x3f, 0x00, 0xc7, 0x06, 0xaa, 0xbb, 0xcc, 0xdd, 0xf4};
    load(code);
    ASSERT_TRUE(run_to_hlt());
    EXPECT_EQ(m_.ram_[0x3ffffe], 0xAA);
    EXPECT_EQ(m_.ram_[0x3fffff], 0xBB);
    ASSERT_EQ(dev_.writes.size(), 2u);
    EXPECT_EQ(dev_.writes[0], std::make_pair(kMmio, uint64_t{0xCC}));
    EXPECT_EQ(dev_.writes[1], std::make_pair(kMmio + 1, uint64_t{0xDD}));
    EXPECT_EQ(cpu_.instructions_retired(), 3u);
}

TEST_F(MmioTest, FaultingInstructionSendsNoMmioWriteAndKeepsRsp) {
    // Stack in MMIO, RBP in an unmapped page: ENTER pushes RBP (an MMIO write), then its
    // frame-pointer read faults. The #PF frame shows the RSP from before ENTER, and the
    // device sees only the frame's writes, never ENTER's push.
    // mov $0x401000,%esp; mov $0x600100,%ebp; enter $0,$2
    const uint8_t code[] = {0xbc, 0x00, 0x10, 0x40, 0x00, 0xbd, 0x00,
                            0x01, 0x60, 0x00, 0xc8, 0x00, 0x00, 0x02};
    load(code);
    ASSERT_TRUE(run_to_hlt());
    ASSERT_FALSE(dev_.outs.empty());
    EXPECT_EQ(dev_.outs.back().value, VEC_PF);
    for (const auto& [gpa, value] : dev_.writes) EXPECT_NE(value, 0x600100u) << gpa;
    // The frame: error code, RIP, CS, RFLAGS, RSP, SS below the 16-byte aligned old RSP.
    uint64_t saved_rsp;
    std::memcpy(&saved_rsp, &dev_.regs[0x1000 - 48 + 32], 8);
    EXPECT_EQ(saved_rsp, kMmio + 0x1000);
    uint64_t saved_rip;
    std::memcpy(&saved_rip, &dev_.regs[0x1000 - 48 + 8], 8);
    EXPECT_EQ(saved_rip, BareMachine::kCode + 10);  // the ENTER
}

TEST_F(MmioTest, ExitsInsideABlockDoNotDecodeNewBlocks) {
    // mov $0x400000,%esi; then eight times mov (%rsi),%eax; hlt. Each read exits; the
    // vCPU goes on inside the one block it was decoded into (each exit used to decode a
    // new block from the next RIP: the cost of slow MMIO).
    const uint8_t code[] = {0xbe, 0x00, 0x00, 0x40, 0x00, 0x8b, 0x06, 0x8b, 0x06, 0x8b, 0x06,
                            0x8b, 0x06, 0x8b, 0x06, 0x8b, 0x06, 0x8b, 0x06, 0x8b, 0x06, 0xf4};
    load(code);
    ASSERT_TRUE(run_to_hlt());
    EXPECT_EQ(dev_.reads, 8);
    EXPECT_EQ(dev_.exits, 8);
    EXPECT_EQ(cpu_.cache_stats().blocks_built, 1u);
    EXPECT_EQ(cpu_.instructions_retired(), 10u);
}

}  // namespace
}  // namespace softkvm::cpu::test
