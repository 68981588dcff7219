// VMM pieces without a vCPU: sizes, the bus, the UART, and the exit dispatcher driven by
// synthetic exit records (style.md: Firecracker's dispatcher tests).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "vmm/machine.h"

namespace softkvm::vmm {
namespace {

TEST(ParseSize, AcceptsUnits) {
    EXPECT_EQ(parse_size("128M").value(), 128ull << 20);
    EXPECT_EQ(parse_size("1G").value(), 1ull << 30);
    EXPECT_EQ(parse_size("65536K").value(), 64ull << 20);
    EXPECT_EQ(parse_size("4194304").value(), 4ull << 20);
}

TEST(ParseSize, RejectsMalformedSizes) {
    for (const char* bad :
         {"12Q", "", "M", "-5M", "1.5G", "99999999999999999999", "20000000000G"}) {
        auto r = parse_size(bad);
        EXPECT_FALSE(r.ok()) << bad;
        if (!r.ok()) {
            EXPECT_EQ(r.error().code, EINVAL) << bad;
        }
    }
}

TEST(GuestMemoryTest, EnforcesBounds) {
    EXPECT_EQ(GuestMemory::create(1 << 20).error().code, ERANGE);
    auto m = GuestMemory::create(2 << 20);
    ASSERT_TRUE(m.ok());
    EXPECT_TRUE(m->contains(0, 2 << 20));
    EXPECT_FALSE(m->contains(1, 2 << 20));
    EXPECT_FALSE(m->contains(~0ull, 2));
}

abi::RunState io_exit(uint8_t dir, uint16_t port, uint8_t size, uint32_t data) {
    abi::RunState rs;
    rs.exit_reason = abi::KVM_EXIT_IO;
    rs.io.direction = dir;
    rs.io.port = port;
    rs.io.size = size;
    rs.io.count = 1;
    std::memcpy(rs.io.data, &data, 4);
    return rs;
}

class DispatchTest : public ::testing::Test {
  protected:
    std::string console_;
    Platform p_{[this](char c) { console_.push_back(c); }};
};

TEST_F(DispatchTest, UartOutputReachesTheConsole) {
    for (char c : std::string("hi\n")) {
        auto rs = io_exit(abi::KVM_EXIT_IO_OUT, 0x3F8, 1, static_cast<uint8_t>(c));
        EXPECT_FALSE(dispatch_exit(rs, p_).stop);
    }
    EXPECT_EQ(console_, "hi\n");
    EXPECT_EQ(p_.stats.exits["io"], 3u);
}

TEST_F(DispatchTest, UartLineStatusReportsAnEmptyTransmitter) {
    auto rs = io_exit(abi::KVM_EXIT_IO_IN, 0x3FD, 1, 0);
    EXPECT_FALSE(dispatch_exit(rs, p_).stop);
    EXPECT_EQ(rs.io.data[0] & 0x60, 0x60);
}

TEST_F(DispatchTest, DivisorLatchIsNotOutput) {
    auto lcr = io_exit(abi::KVM_EXIT_IO_OUT, 0x3FB, 1, 0x80);
    dispatch_exit(lcr, p_);
    auto dll = io_exit(abi::KVM_EXIT_IO_OUT, 0x3F8, 1, 0x01);
    dispatch_exit(dll, p_);
    EXPECT_EQ(console_, "");
    auto rd = io_exit(abi::KVM_EXIT_IO_IN, 0x3F8, 1, 0);
    dispatch_exit(rd, p_);
    EXPECT_EQ(rd.io.data[0], 0x01);
}

TEST_F(DispatchTest, DebugExitStopsWithTheGuestCode) {
    auto rs = io_exit(abi::KVM_EXIT_IO_OUT, 0xF4, 4, 7);
    Dispatch d = dispatch_exit(rs, p_);
    EXPECT_TRUE(d.stop);
    EXPECT_EQ(d.end, End::GuestExit);
    EXPECT_EQ(p_.debug_exit->code().value(), 7u);
}

TEST_F(DispatchTest, UnclaimedPortsReadAllOnesAndAreCounted) {
    auto rs = io_exit(abi::KVM_EXIT_IO_IN, 0x80, 2, 0);
    EXPECT_FALSE(dispatch_exit(rs, p_).stop);
    EXPECT_EQ(rs.io.data[0], 0xFF);
    EXPECT_EQ(rs.io.data[1], 0xFF);
    auto out = io_exit(abi::KVM_EXIT_IO_OUT, 0x80, 1, 1);
    EXPECT_FALSE(dispatch_exit(out, p_).stop);
    EXPECT_EQ(p_.stats.unclaimed_ports[0x80], 2u);
}

TEST_F(DispatchTest, UnclaimedMmioReadsAllOnesAndIsCountedByPage) {
    abi::RunState rs;
    rs.exit_reason = abi::KVM_EXIT_MMIO;
    rs.mmio.phys_addr = 0xFED00004;
    rs.mmio.len = 4;
    rs.mmio.is_write = 0;
    EXPECT_FALSE(dispatch_exit(rs, p_).stop);
    uint32_t v;
    std::memcpy(&v, rs.mmio.data, 4);
    EXPECT_EQ(v, 0xFFFFFFFFu);
    abi::RunState wr = rs;
    wr.mmio.phys_addr = 0xFED00FF8;
    wr.mmio.is_write = 1;
    EXPECT_FALSE(dispatch_exit(wr, p_).stop);
    EXPECT_EQ(p_.stats.unclaimed_mmio.size(), 1u);
    EXPECT_EQ(p_.stats.unclaimed_mmio[0xFED00000], 2u);
}

TEST_F(DispatchTest, TerminalExitsMapToEndings) {
    struct Case {
        uint32_t reason;
        End end;
    } cases[] = {{abi::KVM_EXIT_HLT, End::Halted},
                 {abi::KVM_EXIT_INTR, End::InsnLimit},
                 {abi::KVM_EXIT_SHUTDOWN, End::Shutdown},
                 {abi::KVM_EXIT_NOTIFY, End::Stalled},
                 {abi::KVM_EXIT_INTERNAL_ERROR, End::InternalError},
                 {abi::KVM_EXIT_FAIL_ENTRY, End::Failure},
                 {12345, End::Failure}};
    for (const Case& c : cases) {
        abi::RunState rs;
        rs.exit_reason = c.reason;
        rs.detail = "why";
        Dispatch d = dispatch_exit(rs, p_);
        EXPECT_TRUE(d.stop) << c.reason;
        EXPECT_EQ(d.end, c.end) << c.reason;
    }
}

TEST_F(DispatchTest, BadIoSizeIsAFailure) {
    auto rs = io_exit(abi::KVM_EXIT_IO_OUT, 0x3F8, 3, 0);
    Dispatch d = dispatch_exit(rs, p_);
    EXPECT_TRUE(d.stop);
    EXPECT_EQ(d.end, End::Failure);
}

TEST(BusTest, RejectsOverlaps) {
    Bus b;
    auto dev = std::make_shared<DebugExit>();
    EXPECT_TRUE(b.add(0x10, 4, dev).ok());
    EXPECT_EQ(b.add(0x12, 4, dev).error().code, EEXIST);
    EXPECT_TRUE(b.add(0x14, 4, dev).ok());
    uint8_t d[1];
    EXPECT_TRUE(b.read(0x17, d, 1));
    EXPECT_FALSE(b.read(0x18, d, 1));
}

// A VM that records its interrupt lines (KVM_IRQ_LINE) and refuses GSIs past 23.
class LineRecorder final : public accel::Vm {
  public:
    std::vector<std::pair<uint32_t, bool>> lines;
    Status set_memory_region(uint32_t, uint64_t, uint64_t, void*) override { return {}; }
    Result<std::unique_ptr<accel::Vcpu>> create_vcpu(uint32_t) override {
        return make_error("no vCPUs here", ENODEV);
    }
    uint64_t check_extension(uint32_t) override { return 0; }
    Status enable_cap(uint32_t, uint64_t) override { return {}; }
    Status hide_cpuid_bit(const features::CpuidBit&) override { return {}; }
    Status set_irq(uint32_t gsi, bool level) override {
        if (gsi >= 24) return make_error("no such line", EINVAL);
        lines.push_back({gsi, level});
        return {};
    }
};

TEST_F(DispatchTest, TestdevIrqPortsDriveTheVmsLines) {
    LineRecorder vm;
    p_.vm = &vm;
    p_.testdev =
        std::make_unique<PcTestdev>([this](uint32_t gsi, bool level) { p_.set_irq(gsi, level); });
    ASSERT_TRUE(p_.testdev->attach(p_.pio, p_.mmio).ok());
    for (auto [port, v] : {std::pair<uint16_t, uint8_t>{0x200B, 1}, {0x200B, 0}, {0x2000, 7}}) {
        auto rs = io_exit(abi::KVM_EXIT_IO_OUT, port, 1, v);
        EXPECT_FALSE(dispatch_exit(rs, p_).stop);
    }
    const std::vector<std::pair<uint32_t, bool>> want = {{11, true}, {11, false}, {2, true}};
    EXPECT_EQ(vm.lines, want);  // ISA IRQ 0 is GSI 2
    EXPECT_EQ(p_.stats.refused_irqs, 0u);
    EXPECT_FALSE(p_.set_irq(24, true));
    EXPECT_EQ(p_.stats.refused_irqs, 1u);
}

}  // namespace
}  // namespace softkvm::vmm
