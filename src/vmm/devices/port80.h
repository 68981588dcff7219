// Port 0x80, the POST-code port: Linux writes it as an I/O delay (outb_p, io_delay=0x80).
// A cheap sink: writes are counted and the last value kept; reads float (0xFF), as on
// QEMU's PC.
#pragma once
#include <cstdint>

#include "vmm/bus.h"

namespace softkvm::vmm {

class Port80 final : public Device {
  public:
    static constexpr uint16_t kPort = 0x80;
    static constexpr uint64_t kPorts = 1;

    std::string name() const override { return "port80"; }
    void read(uint64_t, uint8_t* data, uint8_t size) override {
        for (uint8_t k = 0; k < size; ++k) data[k] = 0xFF;
    }
    void write(uint64_t, const uint8_t* data, uint8_t) override {
        last_ = data[0];
        ++writes_;
    }
    uint8_t last() const { return last_; }
    uint64_t writes() const { return writes_; }

  private:
    uint8_t last_ = 0;
    uint64_t writes_ = 0;
};

}  // namespace softkvm::vmm
