#include "vmm/devices/pc_testdev.h"

#include <cstring>

#include "vmm/acpi/acpi.h"

namespace softkvm::vmm {

// The data register: an access of `size` bytes at byte `offset & 3` of the 32-bit value.
class PcTestdev::Ports final : public Device {
  public:
    Ports(PcTestdev& d, const char* name) : d_(d), name_(name) {}
    std::string name() const override { return name_; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override {
        uint64_t v = 0;
        for (uint8_t k = 0; k < size; ++k) {
            const uint64_t byte = (offset & 3) + k;
            v |= static_cast<uint64_t>(byte < 4 ? (d_.data_ >> (8 * byte)) & 0xFF : 0) << (8 * k);
        }
        std::memcpy(data, &v, size);
    }
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override {
        for (uint8_t k = 0; k < size; ++k) {
            const uint64_t byte = (offset & 3) + k;
            if (byte >= 4) break;  // bits past the register are dropped
            d_.data_ = (d_.data_ & ~(0xFFu << (8 * byte))) |
                       (static_cast<uint32_t>(data[k]) << (8 * byte));
        }
    }

  private:
    PcTestdev& d_;
    const char* name_;
};

// Under QEMU a 32-bit write here makes the host unmap and remap a guest page (to test
// KVM's page-fault paths); the guest sees no change, and softkvm's RAM needs none. Reads
// give 0, as QEMU's.
class PcTestdev::Flush final : public Device {
  public:
    std::string name() const override { return "pc-testdev-flush-page"; }
    void read(uint64_t, uint8_t* data, uint8_t size) override { std::memset(data, 0, size); }
    void write(uint64_t, const uint8_t*, uint8_t) override {}
};

// A byte written to port 0x2000 + n sets ISA interrupt line n to (byte != 0); reads
// give 0, as QEMU's.
class PcTestdev::Irq final : public Device {
  public:
    explicit Irq(PcTestdev& d) : d_(d) {}
    std::string name() const override { return "pc-testdev-irq-line"; }
    void read(uint64_t, uint8_t* data, uint8_t size) override { std::memset(data, 0, size); }
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override {
        if (size != 1 || !d_.irq_) return;  // QEMU accepts byte writes only
        const auto line = static_cast<uint32_t>(offset);
        d_.irq_(line < kIsaIrqs ? acpi::isa_irq_to_gsi(line) : line, data[0] != 0);
    }

  private:
    PcTestdev& d_;
};

// 64 KiB that read back what was written, at any width; bytes past the end of the
// window read as 0xff and are not stored.
class PcTestdev::Window final : public Device {
  public:
    explicit Window(PcTestdev& d) : d_(d) {}
    std::string name() const override { return "pc-testdev-iomem"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override {
        for (uint8_t k = 0; k < size; ++k)
            data[k] = offset + k < kWindowSize ? d_.window_[offset + k] : 0xFF;
    }
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override {
        for (uint8_t k = 0; k < size; ++k)
            if (offset + k < kWindowSize) d_.window_[offset + k] = data[k];
    }

  private:
    PcTestdev& d_;
};

PcTestdev::PcTestdev(IrqLine irq)
    : irq_(std::move(irq)),
      ports_(std::make_shared<Ports>(*this, "pc-testdev-ioport")),
      byte_ports_(std::make_shared<Ports>(*this, "pc-testdev-ioport-byte")),
      flush_(std::make_shared<Flush>()),
      irqs_(std::make_shared<Irq>(*this)),
      window_dev_(std::make_shared<Window>(*this)) {}

Status PcTestdev::attach(Bus& pio, Bus& mmio) {
    if (auto st = pio.add(kDataPort, 4, ports_); !st) return st;
    if (auto st = pio.add(kFlushPort, 4, flush_); !st) return st;
    if (auto st = pio.add(kBytePort, 4, byte_ports_); !st) return st;
    if (auto st = pio.add(kIrqPort, kIrqLines, irqs_); !st) return st;
    return mmio.add(kWindow, kWindowSize, window_dev_);
}

}  // namespace softkvm::vmm
