// The ACPI power-management registers the FADT points to (vmm/acpi/acpi.h): PM1a event
// (status, enable), PM1a control (SCI_EN always set: no SMI mode) and the PM timer, a
// 24-bit counter at 3.579545 MHz derived from the machine's clock (virtual time on emu).
#pragma once
#include <cstdint>
#include <functional>

#include "vmm/bus.h"

namespace softkvm::vmm {

class AcpiPm final : public Device {
  public:
    static constexpr uint16_t kPort = 0x600, kPorts = 12;  // 0x600-0x60b
    static constexpr uint64_t kTimerHz = 3579545;          // ACPI 6.5 §4.8.3.3
    static constexpr uint32_t kTimerMask = 0xFFFFFF;       // 24 bits (TMR_VAL_EXT 0)
    static constexpr uint16_t kSciEn = 1u << 0;            // PM1_CNT.SCI_EN

    using Clock = std::function<uint64_t()>;  // nanoseconds
    explicit AcpiPm(Clock clock) : clock_(std::move(clock)) {}
    std::string name() const override { return "acpi-pm"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override;
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override;
    uint32_t timer() const;

  private:
    Clock clock_;
    uint16_t enable_ = 0, control_ = kSciEn;
};

}  // namespace softkvm::vmm
