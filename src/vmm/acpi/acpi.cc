#include "vmm/acpi/acpi.h"

#include <cstring>
#include <string>

namespace softkvm::vmm::acpi {
namespace {

class Blob {
  public:
    size_t align(size_t a) {
        bytes.resize((bytes.size() + a - 1) / a * a, 0);
        return bytes.size();
    }
    size_t put(size_t n) {
        const size_t at = bytes.size();
        bytes.resize(at + n, 0);
        return at;
    }
    void u8(size_t at, uint8_t v) { bytes[at] = v; }
    void u16(size_t at, uint16_t v) { std::memcpy(&bytes[at], &v, 2); }
    void u32(size_t at, uint32_t v) { std::memcpy(&bytes[at], &v, 4); }
    void u64(size_t at, uint64_t v) { std::memcpy(&bytes[at], &v, 8); }
    void text(size_t at, const char* s, size_t n) { std::memcpy(&bytes[at], s, n); }
    std::vector<uint8_t> bytes;
};

// A system description table header (§5.2.6) at `at`, `len` bytes long; the checksum is
// filled in by finish().
void header(Blob& b, size_t at, const char sig[5], uint32_t len, uint8_t rev) {
    b.text(at, sig, 4);
    b.u32(at + 4, len);
    b.u8(at + 8, rev);
    b.text(at + 10, "SFTKVM", 6);    // OEMID
    b.text(at + 16, "SOFTKVM ", 8);  // OEM table ID
    b.u32(at + 24, 1);               // OEM revision
    b.text(at + 28, "SKVM", 4);      // creator ID
    b.u32(at + 32, 1);               // creator revision
}

void finish(Blob& b, size_t at, size_t len, size_t checksum_at) {
    b.u8(checksum_at, 0);
    b.u8(checksum_at, static_cast<uint8_t>(-sum(&b.bytes[at], len)));
}

// A Generic Address Structure (§5.2.3.2) for a system I/O port block.
void gas_io(Blob& b, size_t at, uint16_t port, uint8_t len) {
    b.u8(at, 1);  // system I/O space
    b.u8(at + 1, static_cast<uint8_t>(len * 8));
    b.u8(at + 2, 0);
    b.u8(at + 3, len == 2 ? 2 : 3);  // word or dword access
    b.u64(at + 4, port);
}

}  // namespace

uint8_t sum(const uint8_t* p, size_t len) {
    uint8_t s = 0;
    for (size_t k = 0; k < len; ++k) s = static_cast<uint8_t>(s + p[k]);
    return s;
}

Tables build(const Config& c) {
    Blob b;
    const auto gpa = [](size_t off) { return static_cast<uint32_t>(kBase + off); };
    const size_t rsdp = b.put(kRsdpSize);

    b.align(64);  // §5.2.10: the FACS is 64-byte aligned
    const size_t facs = b.put(kFacsSize);
    b.text(facs, "FACS", 4);
    b.u32(facs + 4, kFacsSize);
    b.u8(facs + 32, 2);  // version

    b.align(16);
    // The DSDT's AML (§20.2): Name (\_S5, Package () {7, 7, 0, 0}), the SLP_TYP values for
    // PM1a and PM1b control when the OS powers off (§7.4.2). No devices are described.
    const uint8_t aml[] = {
        0x08, '\\',      '_',  'S',       '5', '_',  // NameOp, \_S5_
        0x12, 0x08,      0x04,                       // PackageOp, PkgLength 8, NumElements 4
        0x0A, kSlpTypS5, 0x0A, kSlpTypS5,            // BytePrefix 7 (PM1a), BytePrefix 7 (PM1b)
        0x00, 0x00,                                  // Zero, Zero (reserved)
    };
    const uint32_t dsdt_len = kHeaderSize + sizeof aml;
    const size_t dsdt = b.put(dsdt_len);
    header(b, dsdt, "DSDT", dsdt_len, 2);
    std::memcpy(&b.bytes[dsdt + kHeaderSize], aml, sizeof aml);
    finish(b, dsdt, dsdt_len, dsdt + 9);

    b.align(16);
    const size_t fadt = b.put(kFadtSize);
    header(b, fadt, "FACP", kFadtSize, kFadtRevision);
    b.u32(fadt + kFadtFirmwareCtrl, gpa(facs));
    b.u32(fadt + kFadtDsdt, gpa(dsdt));
    b.u16(fadt + kFadtSciInt, kSciIrq);
    b.u32(fadt + kFadtSmiCmd, 0);  // no SMI command port: the machine is always in ACPI mode
    b.u32(fadt + kFadtPm1aEvtBlk, kPm1aEvtBlk);
    b.u32(fadt + kFadtPm1aCntBlk, kPm1aCntBlk);
    b.u32(fadt + kFadtPmTmrBlk, kPmTmrBlk);
    b.u8(fadt + kFadtPm1EvtLen, kPm1EvtLen);
    b.u8(fadt + kFadtPm1CntLen, kPm1CntLen);
    b.u8(fadt + kFadtPmTmrLen, kPmTmrLen);
    b.u16(fadt + kFadtIapcBootArch, kBootArchLegacyDevices | kBootArch8042);
    b.u32(fadt + kFadtFlags, kFadtWbinvd | kFadtProcC1);  // 24-bit PM timer (TMR_VAL_EXT 0)
    b.u64(fadt + kFadtXFirmwareCtrl, gpa(facs));
    b.u64(fadt + kFadtXDsdt, gpa(dsdt));
    gas_io(b, fadt + kFadtXPm1aEvtBlk, kPm1aEvtBlk, kPm1EvtLen);
    gas_io(b, fadt + kFadtXPm1aCntBlk, kPm1aCntBlk, kPm1CntLen);
    gas_io(b, fadt + kFadtXPmTmrBlk, kPmTmrBlk, kPmTmrLen);
    finish(b, fadt, kFadtSize, fadt + 9);

    b.align(16);
    // As QEMU's MADT (hw/i386/acpi-common.c): the local APICs, the IOAPIC, the overrides
    // for IRQ 0 and the SCI, and LINT1 as the NMI input of every processor. QEMU's other
    // overrides (IRQs 5, 10, 11) are for its PCI interrupt links: softkvm has no PCI.
    const uint32_t madt_len =
        kHeaderSize + 8 + kMadtLocalApicLen * c.cpus +
        (c.ioapic ? kMadtIoApicLen + 2 * kMadtIntSrcOverrideLen + kMadtLocalApicNmiLen : 0);
    const size_t madt = b.put(madt_len);
    header(b, madt, "APIC", madt_len, 4);
    b.u32(madt + 36, kLocalApicBase);
    b.u32(madt + 40, kMadtPcatCompat);
    size_t e = madt + 44;
    for (uint32_t k = 0; k < c.cpus; ++k, e += kMadtLocalApicLen) {
        b.u8(e, kMadtLocalApic);
        b.u8(e + 1, kMadtLocalApicLen);
        b.u8(e + 2, static_cast<uint8_t>(k));  // ACPI processor UID
        b.u8(e + 3, static_cast<uint8_t>(k));  // APIC ID
        b.u32(e + 4, kMadtLocalApicEnabled);
    }
    if (c.ioapic) {
        b.u8(e, kMadtIoApic);
        b.u8(e + 1, kMadtIoApicLen);
        b.u8(e + 2, kIoApicId);
        b.u32(e + 4, kIoApicBase);
        b.u32(e + 8, 0);  // GSI base
        e += kMadtIoApicLen;
        const auto override_entry = [&](uint8_t irq, uint16_t flags) {
            b.u8(e, kMadtIntSrcOverride);
            b.u8(e + 1, kMadtIntSrcOverrideLen);
            b.u8(e + 2, 0);  // ISA bus
            b.u8(e + 3, irq);
            b.u32(e + 4, isa_irq_to_gsi(irq));
            b.u16(e + 8, flags);
            e += kMadtIntSrcOverrideLen;
        };
        override_entry(0, kMpsIntiConforms);  // the PIT: edge, active high as on ISA
        override_entry(static_cast<uint8_t>(kSciIrq), kMpsIntiActiveHighLevel);
        b.u8(e, kMadtLocalApicNmi);
        b.u8(e + 1, kMadtLocalApicNmiLen);
        b.u8(e + 2, kMadtAllProcessors);
        b.u16(e + 3, 0);  // flags: as the bus says
        b.u8(e + 5, kLint1);
        e += kMadtLocalApicNmiLen;
    }
    finish(b, madt, madt_len, madt + 9);

    b.align(16);
    const size_t rsdt = b.put(kHeaderSize + 4 * 2);
    header(b, rsdt, "RSDT", kHeaderSize + 8, 1);
    b.u32(rsdt + 36, gpa(fadt));
    b.u32(rsdt + 40, gpa(madt));
    finish(b, rsdt, kHeaderSize + 8, rsdt + 9);

    b.align(16);
    const size_t xsdt = b.put(kHeaderSize + 8 * 2);
    header(b, xsdt, "XSDT", kHeaderSize + 16, 1);
    b.u64(xsdt + 36, gpa(fadt));
    b.u64(xsdt + 44, gpa(madt));
    finish(b, xsdt, kHeaderSize + 16, xsdt + 9);

    // The RSDP (§5.2.5.3), revision 2: the first 20 bytes and all 36 sum to zero.
    b.text(rsdp, "RSD PTR ", 8);
    b.text(rsdp + 9, "SFTKVM", 6);
    b.u8(rsdp + 15, 2);
    b.u32(rsdp + 16, gpa(rsdt));
    b.u32(rsdp + 20, kRsdpSize);
    b.u64(rsdp + 24, gpa(xsdt));
    finish(b, rsdp, kRsdpV1Size, rsdp + 8);
    finish(b, rsdp, kRsdpSize, rsdp + 32);
    return {kBase, std::move(b.bytes)};
}

}  // namespace softkvm::vmm::acpi
