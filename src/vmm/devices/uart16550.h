// A 16550A UART: THR output to a sink, a receive FIFO fed by the VMM (the terminal's
// standard input), and the interrupt logic Linux's 8250 driver relies on (IRQ 4 on COM1):
// IER enables, IIR reports the highest-priority pending source (receiver line status,
// received data, transmitter empty, modem status), and the line is driven when a source
// is pending and MCR.OUT2 gates it through, as on a PC. The transmitter drains at once,
// so THR is always empty: its interrupt is raised when IER.ETBEI goes 0 -> 1 and after
// every THR write, and cleared by reading IIR (when it is the reported source) or by
// writing THR. The divisor latch and the other registers are stored and read back;
// loopback (MCR bit 4) echoes THR into the receiver. Register offsets and bits: 16550A
// data sheet (National Semiconductor PC16550D).
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "vmm/bus.h"
#include "vmm/devices/irq_line.h"

namespace softkvm::vmm {

class Uart16550 final : public Device {
  public:
    static constexpr uint16_t kCom1 = 0x3F8;
    static constexpr uint64_t kPorts = 8;
    static constexpr int kCom1Irq = 4;
    static constexpr size_t kFifoSize = 16;

    using Sink = std::function<void(char)>;
    explicit Uart16550(Sink sink) : sink_(std::move(sink)) {}

    std::string name() const override { return "uart16550"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override;
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override;

    // The interrupt request line (unconnected until set).
    void set_irq(IrqLine line);
    // Input from the host: bytes that do not fit in the receive FIFO are refused (the
    // count accepted is returned), so the caller can hold them back until there is room.
    size_t receive(const char* bytes, size_t n);
    bool irq_level() const { return irq_level_; }
    uint64_t bytes_sent() const { return sent_; }

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
    static constexpr uint8_t kIerRx = 0x01, kIerThre = 0x02, kIerRls = 0x04, kIerMsr = 0x08;
    static constexpr uint8_t kIirNoInterrupt = 0x01, kIirMsr = 0x00, kIirThre = 0x02, kIirRx = 0x04,
                             kIirRls = 0x06, kIirFifo = 0xC0;
    static constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;
    static constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
    static constexpr uint8_t kMcrOut2 = 0x08, kMcrLoop = 0x10;

  private:
    uint8_t iir() const;
    void update_irq();

    Sink sink_;
    IrqLine irq_;
    std::mutex rx_mu_;  // receive() runs on the input thread
    std::deque<uint8_t> rx_;
    uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, dll_ = 0x0C, dlm_ = 0, fcr_ = 0;
    bool thre_pending_ = false;  // the transmitter-empty interrupt is pending
    bool overrun_ = false;
    bool irq_level_ = false;
    uint64_t sent_ = 0;
};

}  // namespace softkvm::vmm
