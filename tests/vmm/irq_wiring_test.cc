// The legacy devices' interrupt lines reach the VM as GSIs (KVM_IRQ_LINE): the 16550 on
// IRQ 4, the i8042's keyboard on IRQ 1 and the PIT's channel 0 on IRQ 0 (GSI 2).
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "vmm/machine.h"

namespace softkvm::vmm {
namespace {

// A VM that records its interrupt lines.
class LineVm final : public accel::Vm {
  public:
    std::vector<std::pair<uint32_t, bool>> lines;
    Status set_memory_region(uint32_t, uint64_t, uint64_t, void*) override { return {}; }
    Result<std::unique_ptr<accel::Vcpu>> create_vcpu(uint32_t) override {
        return make_error("no vCPUs here", ENOSYS);
    }
    uint64_t check_extension(uint32_t) override { return 0; }
    Status enable_cap(uint32_t, uint64_t) override { return {}; }
    Status hide_cpuid_bit(const features::CpuidBit&) override { return {}; }
    Status set_irq(uint32_t gsi, bool level) override {
        lines.emplace_back(gsi, level);
        return {};
    }
};

abi::RunState io(uint16_t port, bool out, uint8_t value = 0) {
    abi::RunState rs;
    rs.exit_reason = abi::KVM_EXIT_IO;
    rs.io.direction = out ? abi::KVM_EXIT_IO_OUT : abi::KVM_EXIT_IO_IN;
    rs.io.size = 1;
    rs.io.port = port;
    rs.io.count = 1;
    rs.io.data[0] = value;
    return rs;
}

struct WiringTest : ::testing::Test {
    uint64_t now = 0;
    LineVm vm;
    Platform p{[](char) {}};
    void SetUp() override {
        p.vm = &vm;
        ASSERT_TRUE(p.add_pc_devices([this] { return now; }).ok());
    }
    uint8_t in(uint16_t port) {
        abi::RunState rs = io(port, false);
        dispatch_exit(rs, p);
        return rs.io.data[0];
    }
    void out(uint16_t port, uint8_t v) {
        abi::RunState rs = io(port, true, v);
        dispatch_exit(rs, p);
    }
};

TEST_F(WiringTest, SerialThreInterruptOnIrq4) {
    out(0x3FC, Uart16550::kMcrOut2);
    out(0x3F9, Uart16550::kIerThre);
    ASSERT_EQ(vm.lines.size(), 1u);
    EXPECT_EQ(vm.lines[0], std::make_pair(4u, true));
    EXPECT_EQ(in(0x3FA), Uart16550::kIirThre);
    ASSERT_EQ(vm.lines.size(), 2u);
    EXPECT_EQ(vm.lines[1], std::make_pair(4u, false));
}

TEST_F(WiringTest, KeyboardOnIrq1) {
    out(0x60, 0xF4);  // enable scanning: ACK
    ASSERT_FALSE(vm.lines.empty());
    EXPECT_EQ(vm.lines.back(), std::make_pair(1u, true));
    EXPECT_EQ(in(0x60), I8042::kKbdAck);
    EXPECT_EQ(vm.lines.back(), std::make_pair(1u, false));
}

TEST_F(WiringTest, PitChannel0OnGsi2) {
    out(0x43, 0x30);  // mode 0: OUT low
    out(0x40, 10);
    out(0x40, 0);
    now = 20000;  // 23 ticks: past the terminal count
    (void)in(0x40);
    ASSERT_FALSE(vm.lines.empty());
    EXPECT_EQ(vm.lines.back(), std::make_pair(2u, true));
}

}  // namespace
}  // namespace softkvm::vmm
