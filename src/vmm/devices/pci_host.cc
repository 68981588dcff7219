// The PCI host bridge's configuration mechanism #1 (pci_host.h).
#include "vmm/devices/pci_host.h"

#include <cstring>

namespace softkvm::vmm {

PciHost::PciHost() {
    auto put16 = [this](uint8_t off, uint16_t v) {
        config_[off] = static_cast<uint8_t>(v), config_[off + 1] = static_cast<uint8_t>(v >> 8);
    };
    put16(0x00, kVendor);
    put16(0x02, kDevice);
    config_[0x0A] = 0x00;  // subclass: host bridge
    config_[0x0B] = 0x06;  // base class: bridge device
    config_[0x0E] = 0x00;  // header type 0, single function
}

int PciHost::target(uint64_t port_off) const {
    if (!(address_ & kAddrEnable)) return -1;
    if ((address_ & 0x00FFFF00) != 0) return -1;  // bus 0, device 0, function 0 only
    return static_cast<int>((address_ & 0xFC) | (port_off - 4));
}

void PciHost::read(uint64_t offset, uint8_t* data, uint8_t size) {
    std::memset(data, 0xFF, size);
    if (offset < 4) {
        // CONFIG_ADDRESS answers 32-bit accesses at 0xCF8 only; narrower ones reach the
        // I/O space behind it, where nothing is.
        if (offset == 0 && size == 4) std::memcpy(data, &address_, 4);
        return;
    }
    const int reg = target(offset);
    if (reg < 0) return;
    for (uint8_t k = 0; k < size && reg + k < 256; ++k) data[k] = config_[reg + k];
}

void PciHost::write(uint64_t offset, const uint8_t* data, uint8_t size) {
    if (offset < 4) {
        if (offset == 0 && size == 4) {
            uint32_t v;
            std::memcpy(&v, data, 4);
            address_ = v & kAddrWritable;
        }
        return;
    }
    const int reg = target(offset);
    if (reg < 0) return;
    // Only the command register's enables are writable; the rest of the header is
    // read-only (a host bridge has no BARs to size) and writes to it are dropped.
    for (uint8_t k = 0; k < size && reg + k < 256; ++k) {
        const int at = reg + k;
        if (at == kCommand) config_[at] = data[k] & (kCommandWritable & 0xFF);
        if (at == kCommand + 1) config_[at] = data[k] & (kCommandWritable >> 8);
    }
}

}  // namespace softkvm::vmm
