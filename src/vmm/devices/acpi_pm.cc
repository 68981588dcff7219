#include "vmm/devices/acpi_pm.h"

#include <cstring>

namespace softkvm::vmm {

uint32_t AcpiPm::timer() const {
    const unsigned __int128 ticks = static_cast<unsigned __int128>(clock_()) * kTimerHz;
    return static_cast<uint32_t>(ticks / 1000000000u) & kTimerMask;
}

void AcpiPm::read(uint64_t offset, uint8_t* data, uint8_t size) {
    // The 12 bytes as one little-endian image: status 0-1, enable 2-3, control 4-5,
    // 6-7 unused, timer 8-11.
    uint8_t regs[12] = {};
    std::memcpy(&regs[2], &enable_, 2);
    std::memcpy(&regs[4], &control_, 2);
    const uint32_t t = timer();
    std::memcpy(&regs[8], &t, 4);
    for (uint8_t k = 0; k < size; ++k) data[k] = offset + k < 12 ? regs[offset + k] : 0xFF;
}

void AcpiPm::write(uint64_t offset, const uint8_t* data, uint8_t size) {
    for (uint8_t k = 0; k < size; ++k) {
        const uint64_t at = offset + k;
        if (at == 2 || at == 3)
            enable_ = static_cast<uint16_t>((enable_ & ~(0xFF << (8 * (at - 2)))) |
                                            (data[k] << (8 * (at - 2))));
        else if (at == 4 || at == 5)
            control_ = static_cast<uint16_t>((control_ & ~(0xFF << (8 * (at - 4)))) |
                                             (data[k] << (8 * (at - 4))) | kSciEn);
        // status (write 1 to clear: nothing is ever set) and the timer are read-only
    }
    if (control_ & kSlpEn) {
        if (((control_ & kSlpTypMask) >> kSlpTypShift) == acpi::kSlpTypS5) power_off_ = true;
        control_ &= static_cast<uint16_t>(~kSlpEn);  // SLP_EN is write-only
    }
}

}  // namespace softkvm::vmm
