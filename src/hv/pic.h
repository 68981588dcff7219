// The pair of 8259A programmable interrupt controllers (master at ports 0x20-0x21, slave
// at 0xA0-0xA1 cascaded on the master's IRQ 2) with the edge/level control registers at
// 0x4D0-0x4D1, as KVM's in-kernel irqchip models them: ICW1-ICW4, OCW1 (mask), OCW2
// (EOI, specific EOI, rotation, priority), OCW3 (IRR/ISR read, poll, special mask),
// auto-EOI and special fully nested mode. The master's INT output goes to LINT0 of the
// boot vCPU (ExtINT); acknowledge() is the INTA cycle. Not modelled: single (uncascaded)
// mode and ICW1's LTIM (level mode for all lines; the ELCR sets it per line). Intel
// 8259A data sheet; the ELCR is the PIIX's (Intel 82371AB, §4.1.x ELCR1/ELCR2).
#pragma once
#include <array>
#include <cstdint>

namespace softkvm::hv {

class Pic {
  public:
    static constexpr uint16_t kMasterPort = 0x20, kSlavePort = 0xA0, kElcrPort = 0x4D0;
    static constexpr int kCascadeIrq = 2;

    // Drives ISA IRQ `irq` (0-15) to `level`. Edge-triggered lines latch a rising edge;
    // level-triggered ones (ELCR) follow the level.
    void set_irq(int irq, bool level);
    // Whether the master's INT output is asserted (an unmasked request outranks the
    // requests in service).
    bool output() const;
    // The INTA cycle: the vector of the highest-priority request, moved from IRR to ISR
    // (unless auto-EOI); a spurious IRQ 7 (or 15) when nothing is pending.
    uint8_t acknowledge();

    // Port access: true when `port` is one of the PIC's (0x20-0x21, 0xA0-0xA1, 0x4D0-0x4D1).
    static bool claims(uint16_t port);
    uint8_t read(uint16_t port);
    void write(uint16_t port, uint8_t value);

    struct Chip {
        uint8_t irr = 0, imr = 0, isr = 0, elcr = 0, elcr_mask = 0;
        uint8_t last_level = 0;    // line levels, for edge detection
        uint8_t priority_add = 0;  // the lowest-priority line is priority_add - 1
        uint8_t irq_base = 0;
        uint8_t init_state = 0;  // 0: ready; 1-3: expecting ICW2, ICW3, ICW4
        bool init4 = false, auto_eoi = false, rotate_on_auto_eoi = false;
        bool special_fully_nested = false, special_mask = false, poll = false;
        bool read_isr = false;
    };
    const Chip& chip(int k) const { return chips_[k]; }

    Pic();

  private:
    int chip_irq(int k) const;  // highest-priority request that may interrupt, or -1
    void ack(int k, int line);
    void update_cascade();
    void write_command(int k, uint8_t v);
    void write_data(int k, uint8_t v);
    uint8_t poll(int k);

    std::array<Chip, 2> chips_{};
};

}  // namespace softkvm::hv
