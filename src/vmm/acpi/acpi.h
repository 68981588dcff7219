// ACPI tables for the machine (ACPI 6.5 §5.2): the RSDP in the BIOS area where a guest
// searches for it, the RSDT and XSDT, the FADT (with the PM timer and the FACS), a
// DSDT whose only object is the \_S5 (soft-off) package, and the MADT with a local APIC per vCPU
// (and the IOAPIC, its interrupt source overrides and the local APIC NMI entry, when the machine
// has an IOAPIC). Every table is checksummed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace softkvm::vmm::acpi {

// Where the tables go: the RSDP at the start of the BIOS read-only area (§5.2.5.1: a
// 16-byte boundary in 0xE0000-0xFFFFF), the others after it in the same reserved area.
inline constexpr uint64_t kBase = 0xF0000;
inline constexpr uint64_t kLimit = 0x100000;

// The PM register blocks (ports), where QEMU's PIIX4 puts them (PM base 0x600).
inline constexpr uint16_t kPm1aEvtBlk = 0x600, kPm1aCntBlk = 0x604, kPmTmrBlk = 0x608;
inline constexpr uint8_t kPm1EvtLen = 4, kPm1CntLen = 2, kPmTmrLen = 4;
inline constexpr uint16_t kSciIrq = 9;
// The sleep type the DSDT's \_S5 package gives for PM1a_CNT.SLP_TYP: 111b, soft-off on
// Intel's ICH chipsets (ICH9 datasheet, PM1_CNT). (QEMU's PIIX4 and ICH9 models use 0.)
inline constexpr uint8_t kSlpTypS5 = 7;
inline constexpr uint32_t kLocalApicBase = 0xFEE00000;
inline constexpr uint32_t kIoApicBase = 0xFEC00000;

// Offsets and values from the specification (ACPI 6.5 §5.2.5-§5.2.12).
inline constexpr uint32_t kHeaderSize = 36;
inline constexpr uint32_t kRsdpSize = 36, kRsdpV1Size = 20;
inline constexpr uint32_t kFadtSize = 244;  // through X_GPE1_BLK (FADT revision 3)
inline constexpr uint8_t kFadtRevision = 3;
inline constexpr uint32_t kFacsSize = 64;
inline constexpr uint32_t kFadtFirmwareCtrl = 36, kFadtDsdt = 40, kFadtSciInt = 46,
                          kFadtSmiCmd = 48, kFadtPm1aEvtBlk = 56, kFadtPm1aCntBlk = 64,
                          kFadtPmTmrBlk = 76, kFadtPm1EvtLen = 88, kFadtPm1CntLen = 89,
                          kFadtPmTmrLen = 91, kFadtFlags = 112, kFadtXFirmwareCtrl = 132,
                          kFadtXDsdt = 140, kFadtXPm1aEvtBlk = 148, kFadtXPm1aCntBlk = 172,
                          kFadtXPmTmrBlk = 208;
inline constexpr uint32_t kFadtWbinvd = 1u << 0, kFadtProcC1 = 1u << 2;
// FADT IAPC_BOOT_ARCH (offset 109, §5.2.9.3): LEGACY_DEVICES (ISA devices such as the
// RTC and COM1) and 8042 (a keyboard controller at ports 0x60/0x64), as QEMU's q35 says.
// Without the 8042 flag Linux takes the i8042 as absent when no PNP0303 device exists.
inline constexpr uint32_t kFadtIapcBootArch = 109;
inline constexpr uint16_t kBootArchLegacyDevices = 1u << 0, kBootArch8042 = 1u << 1;
inline constexpr uint8_t kMadtLocalApic = 0, kMadtIoApic = 1, kMadtIntSrcOverride = 2,
                         kMadtLocalApicNmi = 4;
inline constexpr uint8_t kMadtLocalApicLen = 8, kMadtIoApicLen = 12, kMadtIntSrcOverrideLen = 10,
                         kMadtLocalApicNmiLen = 6;
// MPS INTI flags of an interrupt source override (§5.2.12.5, table 5.49): polarity in
// bits 1:0 (01 active high), trigger mode in bits 3:2 (11 level); 0 = as the bus says.
inline constexpr uint16_t kMpsIntiConforms = 0x0, kMpsIntiActiveHighLevel = 0xD;
inline constexpr uint8_t kMadtAllProcessors = 0xFF;  // Local APIC NMI: every processor
inline constexpr uint8_t kLint1 = 1;
inline constexpr uint32_t kMadtPcatCompat = 1u << 0;
inline constexpr uint32_t kMadtLocalApicEnabled = 1u << 0;

// The IOAPIC's ID in the MADT: 0, its reset value, as QEMU lists it.
inline constexpr uint8_t kIoApicId = 0;

// ISA IRQ -> GSI: identity, except the timer's IRQ 0, which is GSI 2 (IOAPIC pin 2) as on
// every PC with an IOAPIC (the MADT's interrupt source override says so; QEMU's IOAPIC
// does the same). Devices on ISA IRQ n raise line isa_irq_to_gsi(n).
inline constexpr uint32_t isa_irq_to_gsi(uint32_t irq) {
    return irq == 0 ? 2 : irq;
}

struct Config {
    uint32_t cpus = 1;
    // List the IOAPIC (ID 0, GSI base 0) with QEMU's interrupt source overrides (IRQ 0 ->
    // GSI 2, edge; the SCI's IRQ 9, level and active high) and the LINT1 NMI entry.
    bool ioapic = false;
};

struct Tables {
    uint64_t base = kBase;  // guest-physical address of bytes[0] (the RSDP)
    std::vector<uint8_t> bytes;
};

Tables build(const Config& c);

// The 8-bit sum of `len` bytes (a table is valid when the sum over it is 0).
uint8_t sum(const uint8_t* p, size_t len);

}  // namespace softkvm::vmm::acpi
