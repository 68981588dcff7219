// The IOAPIC of an emu VM, kept in the hv layer as KVM keeps its in-kernel one
// (arch/x86/kvm/ioapic.c's role). Register set of the Intel 82093AA I/O APIC datasheet:
// IOREGSEL at offset 0x00 and IOWIN at 0x10 of a 256-byte window at 0xFEC00000; through
// them the ID (index 0), the version (1), the arbitration ID (2) and 24 64-bit redirection
// entries (indexes 0x10 + 2n, low half, and 0x11 + 2n, high half).
//
// Inputs are the VM's interrupt lines, GSI n = pin n (no GSI routing table: KVM's default
// routing for its in-kernel IOAPIC). set_irq(pin, level) gives a line's level, "asserted"
// or not: as in KVM and QEMU, the entry's polarity bit is stored but not applied (the
// device model passes the asserted state). An edge-triggered pin delivers when its line
// goes from deasserted to asserted while unmasked (an edge on a masked pin is lost, as the
// datasheet says); a level-triggered pin delivers while asserted, unmasked and without
// remote IRR, sets remote IRR, and delivers again after the local APIC's EOI of its
// vector if the line is still asserted.
//
// Not thread-safe: the emu VM runs its vCPUs and the VMM's devices on one thread.
#pragma once
#include <array>
#include <cstdint>
#include <functional>

#include "common/kvm_abi.h"

namespace softkvm::hv {

namespace ioapic {
// The window and its registers (82093AA datasheet §3.0, §3.2).
inline constexpr uint64_t kBase = 0xFEC00000;
inline constexpr uint64_t kSize = 0x100;  // KVM's IOAPIC_MEM_LENGTH: beyond it, MMIO exits
inline constexpr uint64_t IOREGSEL = 0x00, IOWIN = 0x10;
inline constexpr uint32_t REG_ID = 0x00, REG_VERSION = 0x01, REG_ARB = 0x02, REG_REDTBL = 0x10;
inline constexpr uint32_t kPins = abi::KVM_IOAPIC_NUM_PINS;
// Version register: version 0x11 (KVM's in-kernel IOAPIC) and the highest redirection
// entry (kPins - 1) in bits 23:16.
inline constexpr uint32_t kVersion = 0x11;
inline constexpr uint32_t kVersionValue = ((kPins - 1) << 16) | kVersion;
inline constexpr uint32_t ID_SHIFT = 24, ID_MASK = 0xF;
// Redirection entry fields (datasheet §3.2.4).
inline constexpr uint64_t RTE_VECTOR = 0xFF;
inline constexpr uint32_t RTE_DELIVERY_SHIFT = 8;            // 3 bits
inline constexpr uint64_t RTE_DEST_LOGICAL = 1ull << 11;     // destination mode
inline constexpr uint64_t RTE_DELIVERY_STATUS = 1ull << 12;  // read-only
inline constexpr uint64_t RTE_POLARITY_LOW = 1ull << 13;
inline constexpr uint64_t RTE_REMOTE_IRR = 1ull << 14;  // read-only
inline constexpr uint64_t RTE_LEVEL = 1ull << 15;       // trigger mode
inline constexpr uint64_t RTE_MASKED = 1ull << 16;
inline constexpr uint32_t RTE_DEST_SHIFT = 56;  // 8-bit destination field
inline constexpr uint64_t RTE_READ_ONLY = RTE_DELIVERY_STATUS | RTE_REMOTE_IRR;
// Delivery modes (datasheet §3.2.4; the ICR's encoding, SDM vol. 3 §11.6.1).
inline constexpr uint32_t DM_FIXED = 0, DM_LOWEST = 1, DM_SMI = 2, DM_NMI = 4, DM_INIT = 5,
                          DM_EXTINT = 7;
}  // namespace ioapic

class Ioapic {
  public:
    // An interrupt message for the local APICs (what the 82093AA sends on the APIC bus).
    struct Message {
        uint8_t vector = 0;
        uint8_t delivery_mode = 0;  // ioapic::DM_*
        bool logical = false;       // destination mode
        bool level = false;         // trigger mode
        uint8_t dest = 0;           // APIC ID (physical) or logical destination
    };
    // The VM hands `m` to the local APICs it names.
    using Deliver = std::function<void(const Message& m)>;

    explicit Ioapic(Deliver deliver);
    // Back to the reset state: ID 0, every entry masked, lines deasserted.
    void reset();

    // A guest access at `offset` into the window (offset < ioapic::kSize), as KVM does it:
    // IOREGSEL and IOWIN at any width (a write uses the low `size` bytes), reads of any
    // other offset give 0 and writes there are dropped.
    uint64_t mmio_read(uint64_t offset, uint8_t size) const;
    void mmio_write(uint64_t offset, uint8_t size, uint64_t value);
    // The register IOWIN shows for IOREGSEL = `index`: ID, version, arbitration and the
    // redirection entries; 0 for the other indexes below 0x10, all ones above the table.
    uint32_t read_register(uint32_t index) const;
    void write_register(uint32_t index, uint32_t value);

    // Interrupt line `pin` (= GSI) asserted or not; lines beyond the 24 pins are ignored.
    void set_irq(uint32_t pin, bool level);
    // A local APIC's EOI of level-triggered `vector`: every level-triggered entry with
    // that vector loses its remote IRR, and fires again if its line is still asserted.
    void eoi(uint8_t vector);

    uint64_t entry(uint32_t pin) const { return table_[pin]; }
    uint32_t lines() const { return irr_; }  // bit n: pin n asserted
    uint32_t id() const { return id_; }

  private:
    void service(uint32_t pin);

    Deliver deliver_;
    uint32_t ioregsel_ = 0;
    uint32_t id_ = 0;
    uint32_t irr_ = 0;  // line levels
    std::array<uint64_t, ioapic::kPins> table_{};
};

}  // namespace softkvm::hv
