// The CMOS real-time clock (MC146818A) at ports 0x70 (index; bit 7 masks NMI) and 0x71
// (data). Time comes from a fixed epoch plus the machine's clock (virtual time on emu),
// so a run reads the same dates every time. Registers A-D, BCD or binary and 12- or
// 24-hour formats (register B), the update-in-progress flag (register A bit 7) for the
// last 244 us before each second, time writes (kept as an offset), and the rest of the
// 128 bytes as CMOS RAM. Not modelled: the periodic, alarm and update interrupts
// (IRQ 8); register C reads 0. Motorola MC146818A data sheet; register numbers as in
// Linux include/linux/mc146818rtc.h.
#pragma once
#include <array>
#include <cstdint>
#include <functional>

#include "vmm/bus.h"

namespace softkvm::vmm {

class Rtc final : public Device {
  public:
    static constexpr uint16_t kPort = 0x70;
    static constexpr uint64_t kPorts = 2;
    // 2026-01-01 00:00:00 UTC: the date a run starts at.
    static constexpr int64_t kDefaultEpoch = 1767225600;

    enum Reg : uint8_t {
        kSeconds = 0x00,
        kMinutes = 0x02,
        kHours = 0x04,
        kDayOfWeek = 0x06,
        kDayOfMonth = 0x07,
        kMonth = 0x08,
        kYear = 0x09,
        kRegA = 0x0A,
        kRegB = 0x0B,
        kRegC = 0x0C,
        kRegD = 0x0D,
        kCentury = 0x32,  // the ACPI FADT's default CENTURY index
    };
    static constexpr uint8_t kRegAUip = 0x80;
    static constexpr uint8_t kRegADefault = 0x26;  // 32.768 kHz divider, 1024 Hz rate
    static constexpr uint8_t kRegBSet = 0x80, kRegBBinary = 0x04, kRegB24h = 0x02;
    static constexpr uint8_t kRegDValid = 0x80;       // VRT: the battery is good
    static constexpr uint64_t kUipWindowNs = 244000;  // UIP before each update
    static constexpr uint8_t kHourPm = 0x80;

    using Clock = std::function<uint64_t()>;  // nanoseconds
    explicit Rtc(Clock clock, int64_t epoch = kDefaultEpoch);

    std::string name() const override { return "cmos-rtc"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override;
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override;

    // Seconds since 1970 the guest sees now.
    int64_t now() const;
    uint8_t index() const { return index_; }
    bool nmi_masked() const { return nmi_masked_; }

  private:
    uint8_t read_reg(uint8_t reg) const;
    void write_reg(uint8_t reg, uint8_t v);
    uint8_t encode(unsigned v) const;
    unsigned decode(uint8_t v) const;

    Clock clock_;
    int64_t epoch_;
    int64_t offset_ = 0;  // seconds the guest moved its clock by
    std::array<uint8_t, 128> ram_{};
    uint8_t index_ = 0;
    bool nmi_masked_ = false;
};

// Civil date of a day count since 1970-01-01 and back (proleptic Gregorian).
struct CivilDate {
    int64_t year;
    unsigned month, day;  // 1-12, 1-31
};
CivilDate civil_from_days(int64_t days);
int64_t days_from_civil(int64_t year, unsigned month, unsigned day);

}  // namespace softkvm::vmm
