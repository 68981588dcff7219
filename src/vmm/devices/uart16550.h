// A 16550A UART, transmit side (enough for a polling console driver): THR output to a
// sink, LSR always reporting an empty transmitter, the divisor latch and the other
// registers stored and read back. Register offsets and bits: 16550A data sheet.
#pragma once
#include <functional>
#include <string>

#include "vmm/bus.h"

namespace softkvm::vmm {

class Uart16550 final : public Device {
  public:
    static constexpr uint16_t kCom1 = 0x3F8;
    static constexpr uint64_t kPorts = 8;

    using Sink = std::function<void(char)>;
    explicit Uart16550(Sink sink) : sink_(std::move(sink)) {}

    std::string name() const override { return "uart16550"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override;
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override;

    uint64_t bytes_sent() const { return sent_; }

  private:
    // Offsets; DLAB (LCR bit 7) maps 0/1 to the divisor latch.
    enum : uint8_t {
        RBR_THR = 0,
        IER = 1,
        IIR_FCR = 2,
        LCR = 3,
        MCR = 4,
        LSR = 5,
        MSR = 6,
        SCR = 7
    };
    static constexpr uint8_t kLcrDlab = 0x80;
    static constexpr uint8_t kLsrThre = 0x20, kLsrTemt = 0x40;
    static constexpr uint8_t kIirNoInterrupt = 0x01;
    static constexpr uint8_t kMcrLoop = 0x10;

    Sink sink_;
    uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, dll_ = 0x0C, dlm_ = 0, fcr_ = 0;
    uint64_t sent_ = 0;
};

}  // namespace softkvm::vmm
