// QEMU's pc-testdev (hw/misc/pc-testdev.c), the device QEMU's and KVM's x86 test kernels
// use to exercise I/O and MMIO emulation: a 32-bit data register at ports 0xe0-0xe3 and
// again at 0xe8-0xeb (byte by byte), a page-flush port at 0xe4, ISA interrupt lines
// 0-23 at ports 0x2000-0x2017, and a 64 KiB window at 0xff000000 that behaves like RAM.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>

#include "vmm/bus.h"

namespace softkvm::vmm {

class PcTestdev {
  public:
    static constexpr uint16_t kDataPort = 0xE0, kFlushPort = 0xE4, kBytePort = 0xE8;
    static constexpr uint16_t kIrqPort = 0x2000, kIrqLines = 24, kIsaIrqs = 16;
    static constexpr uint64_t kWindow = 0xFF000000, kWindowSize = 0x10000;

    // `irq(gsi, level)` asserts or deasserts one of the machine's interrupt lines. A byte
    // written to port 0x2000 + n sets ISA IRQ n (GSI acpi::isa_irq_to_gsi(n): IRQ 0 is
    // GSI 2, as in QEMU's IOAPIC) to (byte != 0); n = 16-23 are GSIs 16-23 (QEMU 7.2
    // stops on an assertion there: it has only 16 ISA IRQs).
    using IrqLine = std::function<void(uint32_t gsi, bool level)>;
    explicit PcTestdev(IrqLine irq);
    // Registers its ports and window (EEXIST if something holds them already).
    Status attach(Bus& pio, Bus& mmio);

    uint32_t data() const { return data_; }
    const uint8_t* window() const { return window_.data(); }

  private:
    class Ports;
    class Flush;
    class Irq;
    class Window;
    uint32_t data_ = 0;
    std::array<uint8_t, kWindowSize> window_{};
    IrqLine irq_;
    std::shared_ptr<Device> ports_, byte_ports_, flush_, irqs_, window_dev_;
};

}  // namespace softkvm::vmm
