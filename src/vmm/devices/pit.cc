#include "vmm/devices/pit.h"

#include <memory>

namespace softkvm::vmm {
namespace {

constexpr uint64_t kNsPerSecond = 1000000000u;

// Port 0x61 on the bus.
class PortB final : public Device {
  public:
    explicit PortB(Pit& pit) : pit_(pit) {}
    std::string name() const override { return "port61"; }
    void read(uint64_t, uint8_t* data, uint8_t size) override {
        data[0] = pit_.read_port_b();
        for (uint8_t k = 1; k < size; ++k) data[k] = 0xFF;
    }
    void write(uint64_t, const uint8_t* data, uint8_t) override { pit_.write_port_b(data[0]); }

  private:
    Pit& pit_;
};

}  // namespace

Status Pit::attach(Bus& pio) {
    // The caller keeps the Pit alive as long as the bus: it registers the Pit itself.
    if (auto st = pio.add(kPortB, 1, std::make_shared<PortB>(*this)); !st) return st;
    return {};
}

uint64_t Pit::ticks() const {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(clock_()) * kHz / kNsPerSecond);
}

// Ticks counted since the count was loaded (or the gate triggered it).
uint64_t Pit::elapsed(const Channel& c, uint64_t now) const {
    if (!c.gate && (c.mode == 0 || c.mode == 4)) return c.frozen;
    return now >= c.start ? now - c.start : 0;
}

uint16_t Pit::count_at(const Channel& c, uint64_t now) const {
    if (!c.counting) return static_cast<uint16_t>(c.reload);
    const uint64_t n = c.reload, d = elapsed(c, now);
    switch (c.mode) {
        case 2:
            if (!c.gate) return static_cast<uint16_t>(n);
            return static_cast<uint16_t>(n - d % n);
        case 3:
            if (!c.gate) return static_cast<uint16_t>(n);
            return static_cast<uint16_t>(n - (2 * d) % n);
        default:  // 0, 1, 4, 5: down from N, then on through 0xFFFF
            return static_cast<uint16_t>((n - d % 0x10000) & 0xFFFF);
    }
}

bool Pit::out_at(const Channel& c, uint64_t now) const {
    if (!c.counting) return c.mode != 0;  // mode 0 drives OUT low from the control word
    const uint64_t n = c.reload, d = elapsed(c, now);
    switch (c.mode) {
        case 0:
        case 1:
            return d >= n;
        case 2:
            return !c.gate || d % n != n - 1;
        case 3:
            return !c.gate || d % n < (n + 1) / 2;
        default:  // 4, 5: a one-tick low strobe at the terminal count
            return d != n;
    }
}

bool Pit::out(int ch) const {
    return out_at(ch_[ch], ticks());
}

uint16_t Pit::count(int ch) const {
    return count_at(ch_[ch], ticks());
}

// How many times OUT has fallen since the count began, `d` ticks ago (modes 2-5).
uint64_t Pit::falls(const Channel& c, uint64_t d) const {
    const uint64_t n = c.reload;
    switch (c.mode) {
        case 2:  // low at N-1 (mod N)
            return (d + 1) / n;
        case 3:  // low from (N+1)/2 (mod N)
            return (d + n - (n + 1) / 2) / n;
        case 4:
        case 5:  // the strobe at N
            return d >= n ? 1 : 0;
        default:
            return 0;
    }
}

void Pit::update() {
    const Channel& c = ch_[0];
    const uint64_t now = ticks();
    const bool level = out_at(c, now);
    // Host time (kvm) may pass over a short low phase of OUT between two updates (mode
    // 2's is one tick): its rising edge still reaches IRQ 0, as the line falls and rises.
    if (level && irq_level_ && c.counting && c.gate && irq0_ &&
        falls(c, elapsed(c, now)) != falls(c, elapsed(c, last_update_))) {
        irq0_(false);
        irq0_(true);
    }
    last_update_ = now;
    if (level != irq_level_) {
        irq_level_ = level;
        if (irq0_) irq0_(level);
    }
}

uint64_t Pit::next_irq0_change() const {
    const Channel& c = ch_[0];
    if (!c.counting) return kNever;
    const uint64_t now = ticks(), n = c.reload, d = elapsed(c, now);
    uint64_t next = 0;  // elapsed tick count of the next change
    switch (c.mode) {
        case 0:
        case 1:
            if (d >= n) return kNever;
            next = n;
            break;
        case 2:  // low at N-1 (mod N), high again at 0
            next = d % n < n - 1 ? d - d % n + n - 1 : d - d % n + n;
            break;
        case 3: {
            const uint64_t high = (n + 1) / 2;
            next = d % n < high ? d - d % n + high : d - d % n + n;
            break;
        }
        default:
            if (d > n) return kNever;
            next = d < n ? n : n + 1;
            break;
    }
    const uint64_t tick = c.start + next;
    return static_cast<uint64_t>((static_cast<unsigned __int128>(tick) * kNsPerSecond + kHz - 1) /
                                 kHz);
}

void Pit::load(Channel& c, uint16_t value) {
    c.reload = value ? value : 0x10000;
    c.loaded = true;
    c.null_count = false;
    c.start = ticks();
    c.frozen = 0;
    // Modes 1 and 5 wait for a gate trigger; the others count at once.
    c.counting = !(c.mode == 1 || c.mode == 5) || c.counting;
}

void Pit::set_gate(Channel& c, bool level) {
    if (level == c.gate) return;
    const uint64_t now = ticks();
    if (!level) {
        c.frozen = elapsed(c, now);
        c.gate = false;
        return;
    }
    c.gate = true;
    if (c.mode == 0 || c.mode == 4) {
        c.start = now - c.frozen;  // counting resumes where it stopped
    } else if (c.loaded) {
        c.start = now;  // modes 1, 2, 3, 5: a rising edge (re)starts the count
        c.counting = true;
    }
}

void Pit::control(uint8_t v) {
    const uint8_t sel = v >> 6;
    if (sel == 3) {  // read-back: bit 5 clear latches counts, bit 4 clear latches status
        const uint64_t now = ticks();
        for (int k = 0; k < 3; ++k) {
            if (!(v & (2u << k))) continue;
            Channel& c = ch_[k];
            if (!(v & 0x20) && !c.count_latched) {
                c.latched = count_at(c, now);
                c.count_latched = true;
                c.latched_msb_next = false;
            }
            if (!(v & 0x10) && !c.status_latched) {
                c.status = static_cast<uint8_t>(
                    (out_at(c, now) ? 0x80 : 0) | (c.null_count ? 0x40 : 0) |
                    (static_cast<uint8_t>(c.access) << 4) | (c.mode << 1) | (c.bcd ? 1 : 0));
                c.status_latched = true;
            }
        }
        return;
    }
    Channel& c = ch_[sel];
    const Access access = static_cast<Access>((v >> 4) & 3);
    if (access == Access::Latch) {
        if (!c.count_latched) {
            c.latched = count_at(c, ticks());
            c.count_latched = true;
            c.latched_msb_next = false;
        }
        return;
    }
    c.access = access;
    c.mode = (v >> 1) & 7;
    if (c.mode > 5) c.mode -= 4;  // 6 and 7 are 2 and 3
    c.bcd = v & 1;
    c.counting = false;
    c.loaded = false;
    c.null_count = true;
    c.write_msb_next = c.read_msb_next = false;
    c.count_latched = c.status_latched = false;
}

void Pit::read(uint64_t offset, uint8_t* data, uint8_t size) {
    for (uint8_t k = 1; k < size; ++k) data[k] = 0xFF;
    if (offset == 3) {  // the control word register is write-only
        data[0] = 0xFF;
        return;
    }
    Channel& c = ch_[offset];
    if (c.status_latched) {
        c.status_latched = false;
        data[0] = c.status;
        return;
    }
    uint16_t v;
    bool msb;
    if (c.count_latched) {
        v = c.latched;
        if (c.access == Access::Both) {
            msb = c.latched_msb_next;
            c.latched_msb_next = !msb;
            if (msb) c.count_latched = false;
        } else {
            msb = c.access == Access::Msb;
            c.count_latched = false;
        }
    } else {
        v = count_at(c, ticks());
        msb = c.access == Access::Msb || (c.access == Access::Both && c.read_msb_next);
        if (c.access == Access::Both) c.read_msb_next = !c.read_msb_next;
    }
    data[0] = static_cast<uint8_t>(msb ? v >> 8 : v);
    update();
}

void Pit::write(uint64_t offset, const uint8_t* data, uint8_t) {
    const uint8_t v = data[0];
    if (offset == 3) {
        control(v);
    } else {
        Channel& c = ch_[offset];
        switch (c.access) {
            case Access::Lsb:
                load(c, v);
                break;
            case Access::Msb:
                load(c, static_cast<uint16_t>(v << 8));
                break;
            default:
                if (!c.write_msb_next) {
                    c.write_lsb = v;
                    c.write_msb_next = true;
                    if (c.mode == 0) c.counting = false;  // the first byte stops the count
                } else {
                    c.write_msb_next = false;
                    load(c, static_cast<uint16_t>(c.write_lsb | (v << 8)));
                }
                break;
        }
    }
    update();
}

uint8_t Pit::read_port_b() {
    const uint64_t ns = clock_();
    return static_cast<uint8_t>((ch_[2].gate ? kPortBGate2 : 0) | (speaker_ ? kPortBSpeaker : 0) |
                                ((ns / kRefreshNs) & 1 ? kPortBRefresh : 0) |
                                (out(2) ? kPortBOut2 : 0));
}

void Pit::write_port_b(uint8_t v) {
    speaker_ = v & kPortBSpeaker;
    set_gate(ch_[2], v & kPortBGate2);
}

}  // namespace softkvm::vmm
