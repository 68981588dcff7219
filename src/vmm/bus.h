// The I/O buses (style.md, Firecracker/Cloud Hypervisor): devices implement read/write at
// an offset and are registered on the PIO or MMIO bus by range; the run loop dispatches
// exits through a bus and knows no device by name.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"

namespace softkvm::vmm {

class Device {
  public:
    virtual ~Device() = default;
    virtual std::string name() const = 0;
    // `data` holds `size` bytes (1, 2, 4 or 8), little-endian.
    virtual void read(uint64_t offset, uint8_t* data, uint8_t size) = 0;
    virtual void write(uint64_t offset, const uint8_t* data, uint8_t size) = 0;
};

class Bus {
  public:
    // Registers `dev` for [base, base+len). Ranges may not overlap (EEXIST).
    Status add(uint64_t base, uint64_t len, std::shared_ptr<Device> dev);
    // Dispatches an access; false if no device claims the address.
    bool read(uint64_t addr, uint8_t* data, uint8_t size);
    bool write(uint64_t addr, const uint8_t* data, uint8_t size);

  private:
    struct Range {
        uint64_t len;
        std::shared_ptr<Device> dev;
    };
    const std::pair<const uint64_t, Range>* find(uint64_t addr) const;
    std::map<uint64_t, Range> ranges_;  // by base
};

}  // namespace softkvm::vmm
