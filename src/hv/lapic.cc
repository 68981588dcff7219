#include "hv/lapic.h"
#include <cstddef>

namespace softkvm::hv {
namespace {

constexpr int kLvtCount = 6;
constexpr uint32_t kLvtMaskBits[kLvtCount] = {
    0x000710FF,  // timer: vector, status, mask, mode (bits 17-18)
    0x000117FF,  // thermal
    0x000117FF,  // PMC
    0x0001F7FF,  // LINT0
    0x0001F7FF,  // LINT1
    0x000110FF,  // error
};

bool set_bit(std::array<uint32_t, 8>& a, uint8_t v) {
    const bool was = a[v >> 5] & (1u << (v & 31));
    a[v >> 5] |= 1u << (v & 31);
    return was;
}
void clear_bit(std::array<uint32_t, 8>& a, uint8_t v) {
    a[v >> 5] &= ~(1u << (v & 31));
}

uint32_t timer_mode(uint32_t lvt) {
    return (lvt >> apic::LVT_TIMER_MODE_SHIFT) & 3;
}

}  // namespace

Lapic::Lapic(uint32_t id) : id_(id) {
    lvt_.fill(apic::LVT_MASKED);
}

int Lapic::highest(const std::array<uint32_t, 8>& bits) {
    for (int k = 7; k >= 0; --k)
        if (bits[k]) return k * 32 + 31 - __builtin_clz(bits[k]);
    return -1;
}

uint32_t Lapic::ppr() const {
    const int isrv = highest(isr_);
    const uint32_t isr_class = isrv < 0 ? 0 : static_cast<uint32_t>(isrv) & 0xF0;
    return (tpr_ & 0xF0) >= isr_class ? tpr_ & 0xFF : isr_class;
}

uint32_t Lapic::divisor() const {
    const uint32_t v = ((timer_divide_ & 8) >> 1) | (timer_divide_ & 3);
    return v == 7 ? 1 : 2u << v;
}

uint32_t Lapic::current_count(uint64_t now) const {
    if (timer_initial_ == 0 || timer_due_ == kNever || timer_mode(lvt_[0]) == 2) return 0;
    const uint64_t ticks = (now - timer_start_) / divisor();
    return ticks >= timer_initial_ ? 0 : timer_initial_ - static_cast<uint32_t>(ticks);
}

void Lapic::start_timer(uint64_t now) {
    timer_start_ = now;
    timer_due_ =
        timer_initial_ == 0 ? kNever : now + static_cast<uint64_t>(timer_initial_) * divisor();
}

bool Lapic::read(uint32_t off, uint32_t& v, uint64_t now, bool x2apic) const {
    v = 0;
    if (off >= apic::ISR && off < apic::ISR + 0x80) return v = isr_[(off - apic::ISR) >> 4], true;
    if (off >= apic::TMR && off < apic::TMR + 0x80) return v = tmr_[(off - apic::TMR) >> 4], true;
    if (off >= apic::IRR && off < apic::IRR + 0x80) return v = irr_[(off - apic::IRR) >> 4], true;
    if (off >= apic::LVT_TIMER && off <= apic::LVT_ERROR && (off & 0xF) == 0)
        return v = lvt_[(off - apic::LVT_TIMER) >> 4], true;
    switch (off) {
        case apic::ID:
            v = x2apic ? id_ : id_ << 24;
            return true;
        case apic::VERSION:
            v = apic::kVersionValue;
            return true;
        case apic::TPR:
            v = tpr_;
            return true;
        case apic::PPR:
            v = ppr();
            return true;
        case apic::EOI:
            return !x2apic;  // write-only; xAPIC reads 0
        case apic::LDR:
            v = x2apic ? ((id_ >> 4) << 16) | (1u << (id_ & 15)) : ldr_;
            return true;
        case apic::DFR:
            if (x2apic) return false;
            v = dfr_;
            return true;
        case apic::SVR:
            v = svr_;
            return true;
        case apic::ESR:
            v = esr_;
            return true;
        case apic::ICR_LOW:
            v = icr_low_;
            return true;
        case apic::ICR_HIGH:
            if (x2apic) return false;
            v = icr_high_;
            return true;
        case apic::TIMER_INITIAL:
            v = timer_initial_;
            return true;
        case apic::TIMER_CURRENT:
            v = current_count(now);
            return true;
        case apic::TIMER_DIVIDE:
            v = timer_divide_;
            return true;
        default:
            return false;
    }
}

bool Lapic::write(uint32_t off, uint32_t v, uint64_t now, bool x2apic) {
    if (off >= apic::LVT_TIMER && off <= apic::LVT_ERROR && (off & 0xF) == 0) {
        const size_t k = (off - apic::LVT_TIMER) >> 4;
        uint32_t nv = v & kLvtMaskBits[k];
        if (!(svr_ & apic::SVR_ENABLE)) nv |= apic::LVT_MASKED;
        if (k == 0 && timer_mode(nv) == 3) nv &= ~(3u << apic::LVT_TIMER_MODE_SHIFT);
        const uint32_t old_mode = timer_mode(lvt_[k]);
        lvt_[k] = nv;
        if (k == 0 && timer_mode(nv) != old_mode) {
            // A mode change disarms the timer (SDM vol. 3 §11.5.4.1).
            timer_due_ = kNever;
            timer_initial_ = 0;
            tsc_deadline_ = 0;
        }
        return true;
    }
    switch (off) {
        case apic::TPR:
            tpr_ = v & 0xFF;
            return true;
        case apic::EOI: {
            if (x2apic && v != 0) return false;
            const int top = highest(isr_);
            if (top >= 0) {
                const uint8_t vec = static_cast<uint8_t>(top);
                clear_bit(isr_, vec);
                if (tmr_[vec >> 5] & (1u << (vec & 31))) level_eoi_ = top;
            }
            return true;
        }
        case apic::LDR:
            if (x2apic) return false;
            ldr_ = v & 0xFF000000;
            return true;
        case apic::DFR:
            if (x2apic) return false;
            dfr_ = v | 0x0FFFFFFF;
            return true;
        case apic::SVR:
            svr_ = v & 0x13FF;
            if (!(svr_ & apic::SVR_ENABLE))
                for (uint32_t& l : lvt_) l |= apic::LVT_MASKED;
            return true;
        case apic::ESR:
            esr_ = 0;
            return true;
        case apic::ICR_LOW:
            if (x2apic) return false;  // 64-bit write_icr() in x2APIC mode
            write_icr((static_cast<uint64_t>(icr_high_) << 32) | v, now);
            return true;
        case apic::ICR_HIGH:
            if (x2apic) return false;
            icr_high_ = v & 0xFF000000;
            return true;
        case apic::TIMER_INITIAL:
            if (timer_mode(lvt_[0]) == 2) return true;  // ignored in TSC-deadline mode
            timer_initial_ = v;
            start_timer(now);
            return true;
        case apic::TIMER_DIVIDE: {
            const uint32_t current = current_count(now);
            timer_divide_ = v & 0xB;
            // Keep the remaining count: restart from it with the new divisor.
            if (timer_due_ != kNever && timer_mode(lvt_[0]) != 2) {
                timer_start_ = now;
                timer_due_ = now + static_cast<uint64_t>(current) * divisor();
            }
            return true;
        }
        case apic::SELF_IPI:
            if (!x2apic) return false;
            raise(static_cast<uint8_t>(v));
            return true;
        default:
            return false;
    }
}

// Only fixed delivery to this vCPU exists in a one-vCPU machine: the "self" shorthand,
// "all including self", or a physical destination equal to our ID.
void Lapic::write_icr(uint64_t value, uint64_t, bool x2apic) {
    icr_low_ = static_cast<uint32_t>(value) & ~(1u << 12);  // delivery status: idle
    icr_high_ = static_cast<uint32_t>(value >> 32);
    const uint32_t mode = (value >> 8) & 7;
    const uint32_t shorthand = (value >> 18) & 3;
    const uint8_t vector = value & 0xFF;
    const uint32_t dest =
        x2apic ? static_cast<uint32_t>(value >> 32) : static_cast<uint32_t>(value >> 56);
    const bool to_us = shorthand == 1 || shorthand == 2 || (shorthand == 0 && dest == id_);
    const bool to_others = shorthand == 2 || shorthand == 3 || (shorthand == 0 && dest != id_);
    if (to_others) outbox_.push_back({mode, shorthand, dest, vector});
    if (!to_us) return;
    if (mode == kIcrNmi) {
        // The self shorthand is defined for fixed delivery only (SDM vol. 3 table 11-4).
        if (shorthand != 1) nmi_ = true;
        return;
    }
    if (mode == 0) raise(vector);  // INIT/start-up to ourselves: ignored
}

void Lapic::set_tsc_deadline(uint64_t tsc, int64_t tsc_offset) {
    if (timer_mode(lvt_[0]) != 2) return;  // writes are ignored outside TSC-deadline mode
    tsc_deadline_ = tsc;
    if (tsc == 0) {
        timer_due_ = kNever;
        return;
    }
    const uint64_t clock = tsc - static_cast<uint64_t>(tsc_offset);
    timer_due_ = static_cast<int64_t>(clock) < 0 ? 0 : clock;
}

void Lapic::advance(uint64_t now) {
    while (timer_due_ != kNever && timer_due_ <= now) {
        if (!(lvt_[0] & apic::LVT_MASKED)) raise(lvt_[0] & 0xFF);
        const uint32_t mode = timer_mode(lvt_[0]);
        if (mode == 1 && timer_initial_ != 0) {
            timer_start_ = timer_due_;
            timer_due_ += static_cast<uint64_t>(timer_initial_) * divisor();
        } else {
            timer_due_ = kNever;
            if (mode == 2) tsc_deadline_ = 0;
        }
    }
}

void Lapic::raise(uint8_t vector, bool level) {
    if (vector < 16) {
        esr_ |= 1u << 6;  // "received illegal vector"
        return;
    }
    set_bit(irr_, vector);
    if (level)
        set_bit(tmr_, vector);
    else
        clear_bit(tmr_, vector);
}

bool Lapic::matches(uint32_t dest, bool logical, bool x2apic) const {
    if (dest == 0xFF) return true;  // broadcast (KVM: also for x2APIC targets)
    if (!logical) return dest == id_;
    if (x2apic) {
        const uint32_t ldr = ((id_ >> 4) << 16) | (1u << (id_ & 15));
        return (ldr >> 16) == (dest >> 16) && (ldr & dest & 0xFFFF) != 0;
    }
    const uint32_t logical_id = ldr_ >> 24;
    if ((dfr_ >> 28) == 0xF) return (logical_id & dest) != 0;  // flat model
    // Cluster model: the high nibble names the cluster, the low one its members.
    return (logical_id >> 4) == (dest >> 4) && (logical_id & dest & 0xF) != 0;
}

void Lapic::raise_lvt(uint32_t lvt_offset) {
    const uint32_t l = lvt_[(lvt_offset - apic::LVT_TIMER) >> 4];
    if (!(l & apic::LVT_MASKED)) raise(l & 0xFF);
}

bool Lapic::deliver_pmi() {
    uint32_t& l = lvt_[(apic::LVT_PMC - apic::LVT_TIMER) >> 4];
    if (l & apic::LVT_MASKED) return false;
    if (((l >> 8) & 7) == kIcrNmi)
        nmi_ = true;
    else
        raise(l & 0xFF);
    l |= apic::LVT_MASKED;
    return true;
}

int Lapic::deliverable() const {
    if (!(svr_ & apic::SVR_ENABLE)) return -1;
    const int v = highest(irr_);
    if (v < 0) return -1;
    return (static_cast<uint32_t>(v) & 0xF0) > (ppr() & 0xF0) ? v : -1;
}

void Lapic::accept(uint8_t vector) {
    clear_bit(irr_, vector);
    set_bit(isr_, vector);
}

}  // namespace softkvm::hv
