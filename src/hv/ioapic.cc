#include "hv/ioapic.h"

#include <utility>

namespace softkvm::hv {

using namespace ioapic;

Ioapic::Ioapic(Deliver deliver) : deliver_(std::move(deliver)) {
    reset();
}

void Ioapic::reset() {
    ioregsel_ = 0;
    id_ = 0;
    irr_ = 0;
    table_.fill(RTE_MASKED);
}

uint64_t Ioapic::mmio_read(uint64_t offset, uint8_t size) const {
    uint32_t v = 0;
    if (offset == IOREGSEL)
        v = ioregsel_;
    else if (offset == IOWIN)
        v = read_register(ioregsel_);
    if (size >= 4) return v;
    return v & ((1u << (8 * size)) - 1);
}

void Ioapic::mmio_write(uint64_t offset, uint8_t size, uint64_t value) {
    uint32_t v = static_cast<uint32_t>(value);
    if (size < 4) v &= (1u << (8 * size)) - 1;
    if (offset == IOREGSEL)
        ioregsel_ = v & 0xFF;  // an 8-bit register
    else if (offset == IOWIN)
        write_register(ioregsel_, v);
}

uint32_t Ioapic::read_register(uint32_t index) const {
    switch (index) {
        case REG_ID:
        case REG_ARB:  // the arbitration ID is loaded from the ID (datasheet §3.2.3)
            return id_ << ID_SHIFT;
        case REG_VERSION:
            return kVersionValue;
        default:
            break;
    }
    if (index < REG_REDTBL) return 0;
    const uint32_t pin = (index - REG_REDTBL) >> 1;
    if (pin >= kPins) return 0xFFFFFFFF;  // KVM's value past the table
    return static_cast<uint32_t>(index & 1 ? table_[pin] >> 32 : table_[pin]);
}

void Ioapic::write_register(uint32_t index, uint32_t value) {
    if (index == REG_ID) {
        id_ = (value >> ID_SHIFT) & ID_MASK;
        return;
    }
    if (index < REG_REDTBL) return;  // version, arbitration: read-only
    const uint32_t pin = (index - REG_REDTBL) >> 1;
    if (pin >= kPins) return;
    uint64_t& e = table_[pin];
    const uint64_t kept = e & RTE_READ_ONLY;
    if (index & 1)
        e = (e & 0xFFFFFFFFull) | (static_cast<uint64_t>(value) << 32);
    else
        e = (e & ~0xFFFFFFFFull) | value;
    e = (e & ~RTE_READ_ONLY) | kept;
    // An entry switched to edge triggering loses its remote IRR: Linux relies on it to
    // clear a stuck remote IRR on IOAPICs without an EOI register (KVM and QEMU do it).
    if (!(e & RTE_LEVEL)) e &= ~RTE_REMOTE_IRR;
    // A level-triggered line that is asserted fires once the entry lets it (unmasked,
    // no remote IRR); an edge that came while the pin was masked is gone.
    if ((e & RTE_LEVEL) && (irr_ & (1u << pin))) service(pin);
}

void Ioapic::set_irq(uint32_t pin, bool level) {
    if (pin >= kPins) return;
    const uint32_t bit = 1u << pin;
    if (!level) {
        irr_ &= ~bit;
        return;
    }
    const bool was = irr_ & bit;
    irr_ |= bit;
    if (!(table_[pin] & RTE_LEVEL) && was) return;  // no edge: the line stayed asserted
    service(pin);
}

void Ioapic::service(uint32_t pin) {
    uint64_t& e = table_[pin];
    if (e & RTE_MASKED) return;
    const bool level = e & RTE_LEVEL;
    if (level && (e & RTE_REMOTE_IRR)) return;
    Message m;
    m.vector = static_cast<uint8_t>(e & RTE_VECTOR);
    m.delivery_mode = static_cast<uint8_t>((e >> RTE_DELIVERY_SHIFT) & 7);
    m.logical = e & RTE_DEST_LOGICAL;
    m.level = level;
    m.dest = static_cast<uint8_t>(e >> RTE_DEST_SHIFT);
    // Remote IRR stands from the message's acceptance until the EOI; the message goes out
    // whether or not an APIC takes it (KVM sets it even when no destination matched).
    if (level) e |= RTE_REMOTE_IRR;
    deliver_(m);
}

void Ioapic::eoi(uint8_t vector) {
    for (uint32_t pin = 0; pin < kPins; ++pin) {
        uint64_t& e = table_[pin];
        if ((e & RTE_VECTOR) != vector || !(e & RTE_LEVEL)) continue;
        e &= ~RTE_REMOTE_IRR;
        if (irr_ & (1u << pin)) service(pin);
    }
}

}  // namespace softkvm::hv
