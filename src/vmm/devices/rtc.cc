#include "vmm/devices/rtc.h"

namespace softkvm::vmm {

// Day arithmetic on 400-year eras of 146097 days, with years starting in March so that
// the leap day is the last day of a year.
CivilDate civil_from_days(int64_t days) {
    days += 719468;  // 0000-03-01 to 1970-01-01
    const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const int64_t doe = days - era * 146097;                                    // [0, 146096]
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
    const int64_t mp = (5 * doy + 2) / 153;                                     // March = 0
    const unsigned day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
    const unsigned month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
    return {yoe + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
    year -= month <= 2 ? 1 : 0;
    const int64_t era = (year >= 0 ? year : year - 399) / 400;
    const int64_t yoe = year - era * 400;
    const int64_t mp = month > 2 ? month - 3 : month + 9;
    const int64_t doy = (153 * mp + 2) / 5 + day - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

Rtc::Rtc(Clock clock, int64_t epoch) : clock_(std::move(clock)), epoch_(epoch) {
    ram_[kRegA] = kRegADefault;
    ram_[kRegB] = kRegB24h;
    ram_[kRegD] = kRegDValid;
}

int64_t Rtc::now() const {
    return epoch_ + offset_ + static_cast<int64_t>(clock_() / 1000000000u);
}

uint8_t Rtc::encode(unsigned v) const {
    if (ram_[kRegB] & kRegBBinary) return static_cast<uint8_t>(v);
    return static_cast<uint8_t>(((v / 10) << 4) | (v % 10));
}

unsigned Rtc::decode(uint8_t v) const {
    if (ram_[kRegB] & kRegBBinary) return v;
    return (v >> 4) * 10u + (v & 0xF);
}

uint8_t Rtc::read_reg(uint8_t reg) const {
    const int64_t t = now();
    const int64_t days = (t >= 0 ? t : t - 86399) / 86400;
    const int64_t secs = t - days * 86400;
    const CivilDate d = civil_from_days(days);
    switch (reg) {
        case kSeconds:
            return encode(static_cast<unsigned>(secs % 60));
        case kMinutes:
            return encode(static_cast<unsigned>(secs / 60 % 60));
        case kHours: {
            const unsigned h = static_cast<unsigned>(secs / 3600);
            if (ram_[kRegB] & kRegB24h) return encode(h);
            const unsigned h12 = h % 12 == 0 ? 12 : h % 12;
            return static_cast<uint8_t>(encode(h12) | (h >= 12 ? kHourPm : 0));
        }
        case kDayOfWeek:  // 1 = Sunday; 1970-01-01 was a Thursday
            return encode(static_cast<unsigned>(((days % 7 + 7) % 7 + 4) % 7 + 1));
        case kDayOfMonth:
            return encode(d.day);
        case kMonth:
            return encode(d.month);
        case kYear:
            return encode(static_cast<unsigned>(((d.year % 100) + 100) % 100));
        case kCentury:
            return encode(static_cast<unsigned>(d.year / 100));
        case kRegA: {
            const bool uip =
                clock_() % 1000000000u >= 1000000000u - kUipWindowNs && !(ram_[kRegB] & kRegBSet);
            return static_cast<uint8_t>((ram_[kRegA] & 0x7F) | (uip ? kRegAUip : 0));
        }
        case kRegC:
            return 0;  // no interrupt flags: IRQ 8 is not modelled
        default:
            return ram_[reg];
    }
}

void Rtc::write_reg(uint8_t reg, uint8_t v) {
    switch (reg) {
        case kSeconds:
        case kMinutes:
        case kHours:
        case kDayOfMonth:
        case kMonth:
        case kYear:
        case kCentury: {
            // Read the clock's fields, change one, and keep the difference as an offset.
            unsigned f[7];
            const uint8_t regs[7] = {kSeconds, kMinutes, kHours,  kDayOfMonth,
                                     kMonth,   kYear,    kCentury};
            for (int k = 0; k < 7; ++k) {
                uint8_t raw = regs[k] == reg ? v : read_reg(regs[k]);
                if (regs[k] == kHours && !(ram_[kRegB] & kRegB24h)) {
                    const bool pm = raw & kHourPm;
                    unsigned h = decode(raw & 0x7F) % 12;
                    f[k] = h + (pm ? 12 : 0);
                    continue;
                }
                f[k] = decode(raw);
            }
            if (f[0] > 59 || f[1] > 59 || f[2] > 23 || f[3] < 1 || f[3] > 31 || f[4] < 1 ||
                f[4] > 12)
                return;  // an impossible date: ignored
            const int64_t year = f[6] * 100 + f[5];
            const int64_t wanted =
                days_from_civil(year, f[4], f[3]) * 86400 + f[2] * 3600 + f[1] * 60 + f[0];
            offset_ += wanted - now();
            return;
        }
        case kDayOfWeek:
            return;  // derived from the date
        case kRegA:
            ram_[kRegA] = v & 0x7F;  // UIP is read-only
            return;
        case kRegC:
        case kRegD:
            return;  // read-only
        default:
            ram_[reg] = v;
            return;
    }
}

void Rtc::read(uint64_t offset, uint8_t* data, uint8_t size) {
    data[0] = offset == 0 ? 0xFF : read_reg(index_);  // the index port is write-only
    for (uint8_t k = 1; k < size; ++k) data[k] = 0xFF;
}

void Rtc::write(uint64_t offset, const uint8_t* data, uint8_t) {
    if (offset == 0) {
        index_ = data[0] & 0x7F;
        nmi_masked_ = data[0] & 0x80;
    } else {
        write_reg(index_, data[0]);
    }
}

}  // namespace softkvm::vmm
