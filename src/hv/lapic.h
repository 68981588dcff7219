// The local APIC of an emu vCPU, kept in the hv layer as KVM keeps it in the kernel
// (Intel SDM vol. 3 ch. 11). Registers are addressed by their xAPIC MMIO offset; x2APIC
// MSR 0x800+n maps to offset n << 4. Time is the vCPU's virtual clock (cpu::Cpu::clock):
// the timer counts one tick per clock tick divided by the divide configuration.
#pragma once
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace softkvm::hv {

namespace apic {
// Register offsets (SDM vol. 3 table 11-1).
inline constexpr uint32_t ID = 0x20, VERSION = 0x30, TPR = 0x80, PPR = 0xA0, EOI = 0xB0, LDR = 0xD0,
                          DFR = 0xE0, SVR = 0xF0, ISR = 0x100, TMR = 0x180, IRR = 0x200,
                          ESR = 0x280, ICR_LOW = 0x300, ICR_HIGH = 0x310, LVT_TIMER = 0x320,
                          LVT_THERMAL = 0x330, LVT_PMC = 0x340, LVT_LINT0 = 0x350,
                          LVT_LINT1 = 0x360, LVT_ERROR = 0x370, TIMER_INITIAL = 0x380,
                          TIMER_CURRENT = 0x390, TIMER_DIVIDE = 0x3E0, SELF_IPI = 0x3F0;
inline constexpr uint32_t kVersionValue = 0x00050014;  // version 0x14, 6 LVT entries
inline constexpr uint32_t LVT_MASKED = 1u << 16;
inline constexpr uint32_t LVT_TIMER_MODE_SHIFT = 17;  // 0 one-shot, 1 periodic, 2 TSC deadline
inline constexpr uint32_t SVR_ENABLE = 1u << 8;
inline constexpr uint64_t kMmioBase = 0xFEE00000;
inline constexpr uint32_t kMsrBase = 0x800;  // x2APIC MSRs 0x800-0x8FF
inline constexpr uint32_t IA32_TSC_DEADLINE = 0x6E0;
}  // namespace apic

class Lapic {
  public:
    static constexpr uint64_t kNever = ~0ull;

    explicit Lapic(uint32_t id);

    // Register access at `now` (virtual clock). Returns false for a reserved or
    // write-only (read) / read-only (write) register.
    bool read(uint32_t offset, uint32_t& value, uint64_t now, bool x2apic) const;
    bool write(uint32_t offset, uint32_t value, uint64_t now, bool x2apic);
    // An ICR write (xAPIC: high << 32 | low; x2APIC: MSR 0x830). Deliveries to this APIC
    // happen at once; those for other APICs wait in the outbox for the VM to route.
    void write_icr(uint64_t value, uint64_t now, bool x2apic = false);

    struct Ipi {
        uint32_t mode;       // ICR delivery mode: 0 fixed, 4 NMI, 5 INIT, 6 start-up
        uint32_t shorthand;  // 0 destination field, 2 all including self, 3 all but self
        uint32_t dest;       // APIC ID (shorthand 0)
        uint8_t vector;
        bool level = false;  // level-triggered (from the IOAPIC): sets the vector's TMR bit
    };
    std::vector<Ipi> take_outbox() { return std::exchange(outbox_, {}); }

    // IA32_TSC_DEADLINE, in TSC units; `tsc_offset` maps TSC to the clock.
    uint64_t tsc_deadline() const { return tsc_deadline_; }
    void set_tsc_deadline(uint64_t tsc, int64_t tsc_offset);

    // The clock value of the next timer event, or kNever.
    uint64_t next_deadline() const { return timer_due_; }
    // Fires the timer if it is due at `now`.
    void advance(uint64_t now);

    // Raises a fixed interrupt (self-IPI, LVT entries, the PMU's PMI: edge-triggered; the
    // IOAPIC's level-triggered entries: `level`, which sets the vector's TMR bit).
    void raise(uint8_t vector, bool level = false);
    // Whether an interrupt message for `dest` (8 bits, from the IOAPIC) names this APIC:
    // physical mode compares the APIC ID, logical mode the LDR (flat or cluster model as
    // DFR says; x2APIC: cluster 0 of the x2APIC LDR); 0xFF is a broadcast in both modes.
    bool matches(uint32_t dest, bool logical, bool x2apic) const;
    // Software-enabled (SVR bit 8): a disabled APIC drops fixed interrupts (KVM's rule).
    bool sw_enabled() const { return svr_ & apic::SVR_ENABLE; }
    // The vector of an EOI whose ISR vector was level-triggered (TMR set), which the VM
    // broadcasts to the IOAPIC; -1 when there is none.
    int take_level_eoi() { return std::exchange(level_eoi_, -1); }
    // Highest-priority requested vector that the processor priority lets through, or -1.
    int deliverable() const;
    // The CPU took `vector`: IRR -> ISR.
    void accept(uint8_t vector);
    void raise_lvt(uint32_t lvt_offset);
    // A performance-counter overflow: delivered through LVT PMC as its fixed vector or
    // as an NMI (delivery mode 100b), after which the entry's mask bit is set (SDM vol. 3
    // §11.5.1; KVM does the same for Intel guests). Returns false if it was masked.
    bool deliver_pmi();
    // An NMI was sent to this APIC (ICR delivery mode NMI); reading clears it.
    bool take_nmi() {
        const bool n = nmi_;
        nmi_ = false;
        return n;
    }

  private:
    uint32_t divisor() const;
    uint32_t ppr() const;
    static int highest(const std::array<uint32_t, 8>& bits);
    void start_timer(uint64_t now);
    uint32_t current_count(uint64_t now) const;

    uint32_t id_;
    uint32_t tpr_ = 0, ldr_ = 0, dfr_ = 0xFFFFFFFF, svr_ = 0xFF, esr_ = 0;
    uint32_t icr_low_ = 0, icr_high_ = 0;
    std::array<uint32_t, 8> isr_{}, irr_{}, tmr_{};
    // LVT timer, thermal, PMC, LINT0, LINT1, error (offsets 0x320..0x370).
    std::array<uint32_t, 6> lvt_{};
    uint32_t timer_initial_ = 0, timer_divide_ = 0;
    uint64_t timer_start_ = 0;     // clock value when the count was loaded
    uint64_t timer_due_ = kNever;  // clock value of the next expiry
    uint64_t tsc_deadline_ = 0;
    bool nmi_ = false;
    int level_eoi_ = -1;
    std::vector<Ipi> outbox_;
    static constexpr uint32_t kIcrNmi = 4;  // ICR delivery mode 100b
};

}  // namespace softkvm::hv
