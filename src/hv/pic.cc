#include "hv/pic.h"

namespace softkvm::hv {
namespace {

// The priority of the highest-priority bit in `mask` (0 = highest) after rotation by
// `add`, or 8 when no bit is set.
int priority(uint8_t mask, uint8_t add) {
    if (!mask) return 8;
    int p = 0;
    while (!(mask & (1u << ((p + add) & 7)))) ++p;
    return p;
}

}  // namespace

Pic::Pic() {
    // Lines that can never be level-triggered on a PC: 0, 1, 2 (master) and 8, 13.
    chips_[0].elcr_mask = 0xF8;
    chips_[1].elcr_mask = 0xDE;
}

int Pic::chip_irq(int k) const {
    const Chip& c = chips_[k];
    const int p = priority(c.irr & ~c.imr, c.priority_add);
    if (p == 8) return -1;
    // The requests in service block equal or lower priorities; in special fully nested
    // mode the master lets the slave's line through again; special mask ignores ISR.
    uint8_t isr = c.special_mask ? 0 : c.isr;
    if (k == 0 && c.special_fully_nested) isr &= static_cast<uint8_t>(~(1u << kCascadeIrq));
    if (p < priority(isr, c.priority_add)) return (p + c.priority_add) & 7;
    return -1;
}

void Pic::update_cascade() {
    const bool slave = chip_irq(1) >= 0;
    Chip& m = chips_[0];
    const uint8_t bit = 1u << kCascadeIrq;
    // The slave's INT is a level on the master's IRQ 2.
    if (slave)
        m.irr |= bit;
    else
        m.irr &= static_cast<uint8_t>(~bit);
}

void Pic::set_irq(int irq, bool level) {
    if (irq < 0 || irq > 15) return;
    Chip& c = chips_[irq >> 3];
    const uint8_t bit = 1u << (irq & 7);
    if (c.elcr & bit) {
        if (level)
            c.irr |= bit;
        else
            c.irr &= static_cast<uint8_t>(~bit);
    } else if (level && !(c.last_level & bit)) {
        c.irr |= bit;
    }
    if (level)
        c.last_level |= bit;
    else
        c.last_level &= static_cast<uint8_t>(~bit);
    update_cascade();
}

bool Pic::output() const {
    return chip_irq(0) >= 0;
}

void Pic::ack(int k, int line) {
    Chip& c = chips_[k];
    const uint8_t bit = 1u << line;
    if (c.auto_eoi) {
        if (c.rotate_on_auto_eoi) c.priority_add = (line + 1) & 7;
    } else {
        c.isr |= bit;
    }
    if (!(c.elcr & bit)) c.irr &= static_cast<uint8_t>(~bit);  // edge: the request is taken
}

uint8_t Pic::acknowledge() {
    int irq = chip_irq(0);
    uint8_t vector;
    if (irq < 0) {
        vector = chips_[0].irq_base + 7;  // spurious
    } else if (irq == kCascadeIrq) {
        ack(0, irq);
        const int irq2 = chip_irq(1);
        if (irq2 >= 0) {
            ack(1, irq2);
            vector = static_cast<uint8_t>(chips_[1].irq_base + irq2);
        } else {
            vector = chips_[1].irq_base + 7;  // spurious on the slave
        }
    } else {
        ack(0, irq);
        vector = static_cast<uint8_t>(chips_[0].irq_base + irq);
    }
    update_cascade();
    return vector;
}

bool Pic::claims(uint16_t port) {
    return port == kMasterPort || port == kMasterPort + 1 || port == kSlavePort ||
           port == kSlavePort + 1 || port == kElcrPort || port == kElcrPort + 1;
}

void Pic::write_command(int k, uint8_t v) {
    Chip& c = chips_[k];
    if (v & 0x10) {  // ICW1
        c.init4 = v & 1;
        c.last_level = 0;
        c.irr &= c.elcr;
        c.imr = 0;
        c.isr = 0;
        c.priority_add = 0;
        c.special_mask = false;
        c.read_isr = false;
        c.poll = false;
        if (!c.init4) {
            c.special_fully_nested = false;
            c.auto_eoi = false;
        }
        c.init_state = 1;
    } else if (v & 0x08) {  // OCW3
        if (v & 0x04) c.poll = true;
        if (v & 0x02) c.read_isr = v & 0x01;
        if (v & 0x40) c.special_mask = (v >> 5) & 1;
    } else {  // OCW2
        const int cmd = v >> 5;
        switch (cmd) {
            case 0:
            case 4:
                c.rotate_on_auto_eoi = cmd == 4;
                break;
            case 1:    // non-specific EOI
            case 5: {  // rotate on non-specific EOI
                const int p = priority(c.isr, c.priority_add);
                if (p != 8) {
                    const int line = (p + c.priority_add) & 7;
                    c.isr &= static_cast<uint8_t>(~(1u << line));
                    if (cmd == 5) c.priority_add = (line + 1) & 7;
                }
                break;
            }
            case 3:  // specific EOI
                c.isr &= static_cast<uint8_t>(~(1u << (v & 7)));
                break;
            case 6:  // set priority
                c.priority_add = (v + 1) & 7;
                break;
            case 7:  // rotate on specific EOI
                c.isr &= static_cast<uint8_t>(~(1u << (v & 7)));
                c.priority_add = (v + 1) & 7;
                break;
            default:  // 2: no operation
                break;
        }
    }
    update_cascade();
}

void Pic::write_data(int k, uint8_t v) {
    Chip& c = chips_[k];
    switch (c.init_state) {
        case 0:  // OCW1
            c.imr = v;
            break;
        case 1:  // ICW2
            c.irq_base = v & 0xF8;
            c.init_state = 2;
            break;
        case 2:  // ICW3 (the cascade wiring is fixed)
            c.init_state = c.init4 ? 3 : 0;
            break;
        default:  // ICW4
            c.special_fully_nested = (v >> 4) & 1;
            c.auto_eoi = (v >> 1) & 1;
            c.init_state = 0;
            break;
    }
    update_cascade();
}

uint8_t Pic::poll(int k) {
    Chip& c = chips_[k];
    c.poll = false;
    const int line = chip_irq(k);
    if (line < 0) return 0;
    ack(k, line);
    update_cascade();
    return static_cast<uint8_t>(0x80 | line);
}

uint8_t Pic::read(uint16_t port) {
    if (port == kElcrPort || port == kElcrPort + 1) return chips_[port - kElcrPort].elcr;
    const int k = (port & 0xF0) == kSlavePort ? 1 : 0;
    Chip& c = chips_[k];
    if (c.poll) return poll(k);
    if (port & 1) return c.imr;
    return c.read_isr ? c.isr : c.irr;
}

void Pic::write(uint16_t port, uint8_t value) {
    if (port == kElcrPort || port == kElcrPort + 1) {
        Chip& c = chips_[port - kElcrPort];
        c.elcr = value & c.elcr_mask;
        update_cascade();
        return;
    }
    const int k = (port & 0xF0) == kSlavePort ? 1 : 0;
    if (port & 1)
        write_data(k, value);
    else
        write_command(k, value);
}

}  // namespace softkvm::hv
