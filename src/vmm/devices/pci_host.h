// A PCI host bridge with nothing behind it: configuration mechanism #1 at ports 0xCF8
// (CONFIG_ADDRESS, 32-bit accesses only) and 0xCFC-0xCFF (CONFIG_DATA), answering for one
// function, the host bridge itself at bus 0 device 0 function 0 (class 06h, subclass 00h);
// every other function reads as absent (all ones). PCI Local Bus Specification 3.0
// §3.2.2.3.2 for the mechanism, §6.1 for the configuration header. Linux needs it to find
// a configuration access method at all ("PCI: Using configuration type 1 for base
// access"); without one it logs "PCI: Fatal: No config space access function found". The
// identity is Cloud Hypervisor's virtual host bridge (8086:0D57): no real chipset, so
// Linux applies no chipset quirks to it.
#pragma once
#include <array>
#include <cstdint>

#include "vmm/bus.h"

namespace softkvm::vmm {

class PciHost final : public Device {
  public:
    static constexpr uint16_t kPort = 0xCF8;  // CONFIG_ADDRESS; CONFIG_DATA at 0xCFC
    static constexpr uint64_t kPorts = 8;
    static constexpr uint16_t kVendor = 0x8086, kDevice = 0x0D57;
    // CONFIG_ADDRESS: enable (31), bus (23:16), device (15:11), function (10:8),
    // register (7:2); bits 30:24 and 1:0 are reserved and read as 0.
    static constexpr uint32_t kAddrEnable = 1u << 31;
    static constexpr uint32_t kAddrWritable = 0x80FFFFFC;
    // Header fields (offsets in the configuration space).
    static constexpr uint8_t kCommand = 0x04;
    static constexpr uint16_t kCommandWritable = 0x0007;  // I/O, memory, bus master

    PciHost();
    std::string name() const override { return "pci-host"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override;
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override;

    uint32_t config_address() const { return address_; }

  private:
    // The configuration-space offset CONFIG_DATA + `port_off` reaches, or -1 when no
    // function answers (enable clear, or not the host bridge).
    int target(uint64_t port_off) const;

    uint32_t address_ = 0;
    std::array<uint8_t, 256> config_{};
};

}  // namespace softkvm::vmm
