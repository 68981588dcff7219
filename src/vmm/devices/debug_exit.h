// The debug-exit port (QEMU's isa-debug-exit at iobase 0xf4, iosize 4): a write of value v
// ends the run with guest exit code v. softkvm reports v itself; QEMU exits (v << 1) | 1.
#pragma once
#include <optional>

#include "vmm/bus.h"

namespace softkvm::vmm {

class DebugExit final : public Device {
  public:
    static constexpr uint16_t kPort = 0xF4;
    static constexpr uint64_t kPorts = 4;

    std::string name() const override { return "debug-exit"; }
    void read(uint64_t, uint8_t* data, uint8_t size) override {
        for (uint8_t k = 0; k < size; ++k) data[k] = 0xFF;
    }
    void write(uint64_t, const uint8_t* data, uint8_t size) override {
        uint32_t v = 0;
        for (uint8_t k = 0; k < size && k < 4; ++k) v |= static_cast<uint32_t>(data[k]) << (8 * k);
        code_ = v;
    }
    // The code the guest wrote, once it has.
    std::optional<uint32_t> code() const { return code_; }

  private:
    std::optional<uint32_t> code_;
};

}  // namespace softkvm::vmm
