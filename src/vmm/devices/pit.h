// The 8254 programmable interval timer at ports 0x40-0x43, and port 0x61 (system control
// port B: channel 2's gate in bit 0, the speaker enable in bit 1, a refresh toggle in bit
// 4 and channel 2's OUT in bit 5, which Linux's TSC calibration polls). Counters run at
// 1.193182 MHz of the machine's clock (virtual time on emu). Modes 0-5, counter latch and
// read-back commands, LSB/MSB/both access, gates (channel 2's from port 0x61; channels 0
// and 1 always high), and channel 0's OUT as IRQ 0. Counting is binary: a BCD control
// word is kept in the status byte but counts as binary. Intel 82C54 data sheet.
#pragma once
#include <array>
#include <cstdint>
#include <functional>

#include "common/result.h"
#include "vmm/bus.h"
#include "vmm/devices/irq_line.h"

namespace softkvm::vmm {

class Pit final : public Device {
  public:
    static constexpr uint16_t kPort = 0x40;
    static constexpr uint64_t kPorts = 4;
    static constexpr uint16_t kPortB = 0x61;
    static constexpr uint64_t kHz = 1193182;  // 14.31818 MHz / 12
    // Port 0x61 bits.
    static constexpr uint8_t kPortBGate2 = 1u << 0, kPortBSpeaker = 1u << 1,
                             kPortBRefresh = 1u << 4, kPortBOut2 = 1u << 5;
    static constexpr uint64_t kRefreshNs = 15085;  // the refresh request toggles at ~66 kHz
    static constexpr uint64_t kNever = UINT64_MAX;

    using Clock = std::function<uint64_t()>;  // nanoseconds
    Pit(Clock clock, IrqLine irq0) : clock_(std::move(clock)), irq0_(std::move(irq0)) {
        ch_[2].gate = false;  // port 0x61 bit 0 is clear at reset
    }

    // Registers 0x40-0x43 and 0x61 on `pio`.
    Status attach(Bus& pio);
    std::string name() const override { return "i8254-pit"; }
    void read(uint64_t offset, uint8_t* data, uint8_t size) override;
    void write(uint64_t offset, const uint8_t* data, uint8_t size) override;
    uint8_t read_port_b();
    void write_port_b(uint8_t v);

    // Channel `ch`'s OUT and count now.
    bool out(int ch) const;
    uint16_t count(int ch) const;
    // Drives IRQ 0 from channel 0's OUT as it is now.
    void update();
    // The clock value (ns) of channel 0's next OUT change after now, or kNever.
    uint64_t next_irq0_change() const;

  private:
    enum class Access : uint8_t { Latch = 0, Lsb = 1, Msb = 2, Both = 3 };
    struct Channel {
        uint8_t mode = 0;
        Access access = Access::Both;
        bool bcd = false;
        uint32_t reload = 0x10000;  // the count written (0 means 65536)
        bool counting = false;      // a count has been loaded (and, modes 1/5, triggered)
        bool loaded = false;        // a count has been written since the control word
        uint64_t start = 0;         // PIT tick at which the count was (re)loaded
        uint64_t frozen = 0;        // modes 0/4 with the gate low: ticks counted so far
        bool gate = true;
        bool null_count = true;
        uint8_t write_lsb = 0;
        bool write_msb_next = false, read_msb_next = false;
        bool count_latched = false, latched_msb_next = false;
        uint16_t latched = 0;
        bool status_latched = false;
        uint8_t status = 0;
    };

    uint64_t ticks() const;
    uint64_t falls(const Channel& c, uint64_t d) const;
    uint64_t elapsed(const Channel& c, uint64_t now) const;
    uint16_t count_at(const Channel& c, uint64_t now) const;
    bool out_at(const Channel& c, uint64_t now) const;
    void control(uint8_t v);
    void load(Channel& c, uint16_t value);
    void set_gate(Channel& c, bool level);

    Clock clock_;
    IrqLine irq0_;
    std::array<Channel, 3> ch_{};
    bool speaker_ = false;
    bool irq_level_ = false;
    uint64_t last_update_ = 0;  // PIT tick of the last update()
};

}  // namespace softkvm::vmm
