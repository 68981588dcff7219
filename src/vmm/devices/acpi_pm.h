// The ACPI power-management registers the FADT points to (vmm/acpi/acpi.h): PM1a event
// (status, enable), PM1a control (SCI_EN always set: no SMI mode) and the PM timer, a
// 24-bit counter at 3.579545 MHz derived from the machine's clock (virtual time on emu).
// Writing PM1a control with SLP_EN set and SLP_TYP equal to the DSDT's \_S5 value (7,
// as on Intel's ICH chipsets) requests soft-off: power_off_requested() turns true and the
// run ends (vmm::End::PowerOff). Other sleep types are not entered: the write is kept,
// the machine keeps running, as a chipset without that state would.
#pragma once
#include <cstdint>
#include <functional>

#include "vmm/acpi/acpi.h"
#include "vmm/bus.h"

namespace softkvm::vmm {

class AcpiPm final : public Device {
  public:
    static constexpr uint16_t kPort = 0x600, kPorts = 12;  // 0x600-0x60b
    static constexpr uint64_t kTimerHz = 3579545;          // ACPI 6.5 §4.8.3.3
    static constexpr uint32_t kTimerMask = 0xFFFFFF;       // 24 bits (TMR_VAL_EXT 0)
    static constexpr uint16_t kSciEn = 1u << 0;            // PM1_CNT.SCI_EN
    // PM1_CNT.SLP_TYP (bits 12:10) and SLP_EN (bit 13, write-only: reads 0), ACPI 6.5
    // §4.8.3.2.1; the soft-off type is the DSDT's \_S5 (acpi::kSlpTypS5).
    static constexpr uint16_t kSlpTypShift = 10, kSlpTypMask = 7u << kSlpTypShift;
    static constexpr uint16_t kSlpEn = 1u << 13;

    using Clock = std::function<uint64_t()>;  // nanoseconds
    explicit AcpiPm(Clock clock) : clock_(std::move(clock)) {}
    std::string name() const override { return "acpi-pm"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override;
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override;
    uint32_t timer() const;
    bool power_off_requested() const { return power_off_; }

  private:
    Clock clock_;
    uint16_t enable_ = 0, control_ = kSciEn;
    bool power_off_ = false;
};

}  // namespace softkvm::vmm
