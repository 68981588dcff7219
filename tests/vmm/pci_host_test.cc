// The PCI host bridge's configuration mechanism #1 (src/vmm/devices/pci_host.h), through
// the PIO bus as a guest reaches it, including the probe Linux runs before it trusts
// type 1 (arch/x86/pci/direct.c: CONFIG_ADDRESS reads back what was written, and some
// function on bus 0 is a host bridge).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "vmm/bus.h"
#include "vmm/devices/pci_host.h"

namespace softkvm::vmm {
namespace {

class PciHostTest : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_TRUE(pio_.add(PciHost::kPort, PciHost::kPorts, host_).ok()); }
    uint32_t in(uint16_t port, uint8_t size) {
        uint8_t d[4] = {};
        EXPECT_TRUE(pio_.read(port, d, size));
        uint32_t v = 0;
        std::memcpy(&v, d, size);
        return v;
    }
    void out(uint16_t port, uint8_t size, uint32_t v) {
        uint8_t d[4];
        std::memcpy(d, &v, 4);
        EXPECT_TRUE(pio_.write(port, d, size));
    }
    // Reads `size` bytes of register `reg` of bus 0 device `dev` function `fn`.
    uint32_t config(uint8_t dev, uint8_t fn, uint8_t reg, uint8_t size) {
        out(0xCF8, 4, 0x80000000u | (dev << 11) | (fn << 8) | (reg & 0xFC));
        return in(static_cast<uint16_t>(0xCFC + (reg & 3)), size);
    }

    Bus pio_;
    std::shared_ptr<PciHost> host_ = std::make_shared<PciHost>();
};

TEST_F(PciHostTest, ConfigAddressReadsBackWithReservedBitsClear) {
    EXPECT_EQ(in(0xCF8, 4), 0u);
    out(0xCF8, 4, 0x80000000);
    EXPECT_EQ(in(0xCF8, 4), 0x80000000u);  // Linux's pci_check_type1
    out(0xCF8, 4, 0xFFFFFFFF);
    EXPECT_EQ(in(0xCF8, 4), 0x80FFFFFCu);  // bits 30:24 and 1:0 reserved
    // Narrower accesses do not reach CONFIG_ADDRESS (type 2's probe writes bytes).
    out(0xCF8, 1, 0x00);
    out(0xCFB, 1, 0x01);
    EXPECT_EQ(in(0xCF8, 4), 0x80FFFFFCu);
    EXPECT_EQ(in(0xCF8, 1), 0xFFu);
    EXPECT_EQ(in(0xCFA, 2), 0xFFFFu);
}

TEST_F(PciHostTest, HostBridgeAtZeroAndNothingElse) {
    EXPECT_EQ(config(0, 0, 0x00, 4), 0x0D578086u);  // device, vendor
    EXPECT_EQ(config(0, 0, 0x00, 2), 0x8086u);
    EXPECT_EQ(config(0, 0, 0x02, 2), 0x0D57u);
    EXPECT_EQ(config(0, 0, 0x0A, 2), 0x0600u);      // class: bridge, host bridge
    EXPECT_EQ(config(0, 0, 0x08, 4), 0x06000000u);  // class code, revision 0
    EXPECT_EQ(config(0, 0, 0x0E, 1), 0x00u);        // header type 0, one function
    EXPECT_EQ(config(0, 0, 0x10, 4), 0u);           // no BARs
    EXPECT_EQ(config(0, 1, 0x00, 4), 0xFFFFFFFFu);  // function 1: absent
    EXPECT_EQ(config(1, 0, 0x00, 4), 0xFFFFFFFFu);  // device 1: absent
    EXPECT_EQ(config(31, 7, 0x00, 2), 0xFFFFu);
    out(0xCF8, 4, 0x80010000);  // bus 1
    EXPECT_EQ(in(0xCFC, 4), 0xFFFFFFFFu);
    out(0xCF8, 4, 0x00000000);  // enable clear: no configuration cycle
    EXPECT_EQ(in(0xCFC, 4), 0xFFFFFFFFu);
}

TEST_F(PciHostTest, OnlyTheCommandEnablesAreWritable) {
    out(0xCF8, 4, 0x80000004);
    out(0xCFC, 2, 0xFFFF);
    EXPECT_EQ(config(0, 0, 0x04, 2), 0x0007u);  // I/O, memory, bus master
    out(0xCF8, 4, 0x80000000);
    out(0xCFC, 4, 0x12345678);  // the IDs are read-only
    EXPECT_EQ(config(0, 0, 0x00, 4), 0x0D578086u);
    out(0xCF8, 4, 0x80000804);  // device 1: writes go nowhere
    out(0xCFC, 2, 0x0000);
    EXPECT_EQ(config(0, 0, 0x04, 2), 0x0007u);
}

}  // namespace
}  // namespace softkvm::vmm
