// The ACPI tables, read back by a small parser as a guest reads them: from the RSDP
// through the RSDT and XSDT to each table, with every checksum, length and field.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vmm/acpi/acpi.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/image_bytes.h"

namespace softkvm::vmm {
namespace {

struct Parsed {
    const acpi::Tables& t;
    const uint8_t* at(uint64_t gpa) const {
        EXPECT_GE(gpa, t.base);
        EXPECT_LT(gpa - t.base, t.bytes.size());
        return &t.bytes[gpa - t.base];
    }
    // A table at `gpa`: checks its checksum and that it lies inside the blob.
    const uint8_t* table(uint64_t gpa, const char* sig) const {
        const uint8_t* p = at(gpa);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(p), 4), sig);
        const uint32_t len = image::le32(p + 4);
        EXPECT_LE(gpa - t.base + len, t.bytes.size()) << sig;
        EXPECT_EQ(acpi::sum(p, len), 0) << sig << " checksum";
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(p + 10), 6), "SFTKVM") << sig;
        return p;
    }
};

TEST(Acpi, EveryTableIsReachableAndChecksummed) {
    const acpi::Tables t = acpi::build({3, true});
    Parsed ps{t};
    EXPECT_EQ(t.base, 0xF0000u);
    EXPECT_EQ(t.base % 16, 0u);
    EXPECT_LE(t.base + t.bytes.size(), acpi::kLimit);
    const uint8_t* rsdp = ps.at(t.base);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(rsdp), 8), "RSD PTR ");
    EXPECT_EQ(acpi::sum(rsdp, 20), 0);
    EXPECT_EQ(acpi::sum(rsdp, 36), 0);
    EXPECT_EQ(rsdp[15], 2);
    EXPECT_EQ(image::le32(rsdp + 20), 36u);

    const uint8_t* rsdt = ps.table(image::le32(rsdp + 16), "RSDT");
    const uint8_t* xsdt = ps.table(image::le64(rsdp + 24), "XSDT");
    ASSERT_EQ(image::le32(rsdt + 4), 36u + 8);
    ASSERT_EQ(image::le32(xsdt + 4), 36u + 16);
    std::map<std::string, const uint8_t*> by_sig;
    for (int k = 0; k < 2; ++k) {
        const uint32_t r = image::le32(rsdt + 36 + 4 * k);
        EXPECT_EQ(image::le64(xsdt + 36 + 8 * k), r) << "RSDT and XSDT agree";
        const uint8_t* p = ps.at(r);
        by_sig[std::string(reinterpret_cast<const char*>(p), 4)] = ps.table(r, k ? "APIC" : "FACP");
    }

    const uint8_t* fadt = by_sig["FACP"];
    ASSERT_NE(fadt, nullptr);
    EXPECT_EQ(image::le32(fadt + 4), acpi::kFadtSize);
    EXPECT_EQ(fadt[8], acpi::kFadtRevision);
    const uint32_t facs = image::le32(fadt + acpi::kFadtFirmwareCtrl);
    EXPECT_EQ(facs % 64, 0u);
    EXPECT_EQ(image::le64(fadt + acpi::kFadtXFirmwareCtrl), facs);
    const uint8_t* f = ps.at(facs);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f), 4), "FACS");
    EXPECT_EQ(image::le32(f + 4), 64u);
    const uint32_t dsdt = image::le32(fadt + acpi::kFadtDsdt);
    EXPECT_EQ(image::le64(fadt + acpi::kFadtXDsdt), dsdt);
    // The DSDT holds one object: Name (\_S5, Package () {7, 7, 0, 0}) in AML.
    const uint8_t* d = ps.table(dsdt, "DSDT");
    const uint8_t s5[] = {0x08, '\\', '_',  'S',  '5',  '_',  0x12, 0x08,
                          0x04, 0x0A, 0x07, 0x0A, 0x07, 0x00, 0x00};
    ASSERT_EQ(image::le32(d + 4), 36u + sizeof s5);
    EXPECT_EQ(std::memcmp(d + 36, s5, sizeof s5), 0);
    EXPECT_EQ(fadt[acpi::kFadtSciInt], 9);
    EXPECT_EQ(image::le32(fadt + acpi::kFadtSmiCmd), 0u);
    EXPECT_EQ(image::le32(fadt + acpi::kFadtPm1aEvtBlk), 0x600u);
    EXPECT_EQ(image::le32(fadt + acpi::kFadtPm1aCntBlk), 0x604u);
    EXPECT_EQ(image::le32(fadt + acpi::kFadtPmTmrBlk), 0x608u);
    EXPECT_EQ(fadt[acpi::kFadtPm1EvtLen], 4);
    EXPECT_EQ(fadt[acpi::kFadtPm1CntLen], 2);
    EXPECT_EQ(fadt[acpi::kFadtPmTmrLen], 4);
    EXPECT_EQ(fadt[109] | (fadt[110] << 8), 0x3);  // IAPC_BOOT_ARCH: legacy devices, 8042
    EXPECT_EQ(image::le32(fadt + acpi::kFadtFlags) & (1u << 8), 0u);  // 24-bit timer
    const uint8_t* gas = fadt + acpi::kFadtXPmTmrBlk;
    EXPECT_EQ(gas[0], 1);   // system I/O
    EXPECT_EQ(gas[1], 32);  // bit width
    EXPECT_EQ(image::le64(gas + 4), 0x608u);

    const uint8_t* madt = by_sig["APIC"];
    ASSERT_NE(madt, nullptr);
    EXPECT_EQ(image::le32(madt + 36), 0xFEE00000u);
    EXPECT_EQ(image::le32(madt + 40), 1u);
    const uint32_t len = image::le32(madt + 4);
    int lapics = 0, ioapics = 0, nmis = 0;
    std::vector<std::pair<int, uint32_t>> overrides;  // (source IRQ, GSI)
    std::vector<uint16_t> override_flags;
    for (uint32_t off = 44; off < len;) {
        const uint8_t* e = madt + off;
        ASSERT_GE(e[1], 2);
        if (e[0] == 0) {
            EXPECT_EQ(e[1], 8);
            EXPECT_EQ(e[2], lapics);
            EXPECT_EQ(e[3], lapics);
            EXPECT_EQ(image::le32(e + 4), 1u);
            ++lapics;
        } else if (e[0] == 1) {
            EXPECT_EQ(e[1], 12);
            EXPECT_EQ(e[2], 0);  // QEMU's IOAPIC ID, the register's reset value
            EXPECT_EQ(e[3], 0);  // reserved
            EXPECT_EQ(image::le32(e + 4), 0xFEC00000u);
            EXPECT_EQ(image::le32(e + 8), 0u);
            ++ioapics;
        } else if (e[0] == 2) {
            EXPECT_EQ(e[1], 10);
            EXPECT_EQ(e[2], 0);  // ISA
            overrides.push_back({e[3], image::le32(e + 4)});
            uint16_t flags;
            std::memcpy(&flags, e + 8, 2);
            override_flags.push_back(flags);
        } else if (e[0] == 4) {
            EXPECT_EQ(e[1], 6);
            EXPECT_EQ(e[2], 0xFF);  // every processor
            EXPECT_EQ(e[3] | (e[4] << 8), 0);
            EXPECT_EQ(e[5], 1);  // LINT1
            ++nmis;
        } else {
            ADD_FAILURE() << "MADT entry type " << int(e[0]);
        }
        off += e[1];
        EXPECT_LE(off, len);
        if (off == len) break;
    }
    EXPECT_EQ(lapics, 3);
    EXPECT_EQ(ioapics, 1);
    EXPECT_EQ(nmis, 1);
    // IRQ 0 -> GSI 2, conforming (edge, active high); the SCI (FADT SCI_INT 9) level,
    // active high; as QEMU's MADT.
    ASSERT_EQ(overrides.size(), 2u);
    EXPECT_EQ(overrides[0], std::make_pair(0, 2u));
    EXPECT_EQ(override_flags[0], 0u);
    EXPECT_EQ(overrides[1], std::make_pair(9, 9u));
    EXPECT_EQ(override_flags[1], 0xDu);
    uint16_t sci;
    std::memcpy(&sci, by_sig["FACP"] + acpi::kFadtSciInt, 2);
    EXPECT_EQ(sci, 9u);
    EXPECT_EQ(len, 36u + 8 + 3 * 8 + 12 + 2 * 10 + 6);
}

TEST(Acpi, IsaIrqToGsiFollowsTheOverride) {
    EXPECT_EQ(acpi::isa_irq_to_gsi(0), 2u);
    for (uint32_t irq = 1; irq < 16; ++irq) EXPECT_EQ(acpi::isa_irq_to_gsi(irq), irq);
}

TEST(Acpi, WithoutAnIoApicTheMadtListsOnlyLocalApics) {
    const acpi::Tables t = acpi::build({1, false});
    Parsed ps{t};
    const uint8_t* rsdt = ps.table(image::le32(ps.at(t.base) + 16), "RSDT");
    const uint8_t* madt = ps.table(image::le32(rsdt + 40), "APIC");
    EXPECT_EQ(image::le32(madt + 4), 36u + 8 + 8);
}

TEST(AcpiPmTimer, CountsAt3579545HzIn24Bits) {
    uint64_t ns = 0;
    AcpiPm pm([&ns] { return ns; });
    auto rd = [&pm](uint16_t port, uint8_t size) {
        uint32_t v = 0;
        pm.read(port - AcpiPm::kPort, reinterpret_cast<uint8_t*>(&v), size);
        return v;
    };
    EXPECT_EQ(rd(0x608, 4), 0u);
    ns = 1000000000;  // one second
    EXPECT_EQ(rd(0x608, 4), 3579545u);
    ns = 5000000000ull;  // 17897725 ticks: wraps at 2^24
    EXPECT_EQ(rd(0x608, 4), 17897725u & 0xFFFFFFu);
    EXPECT_EQ(rd(0x604, 2) & 1u, 1u);  // SCI_EN: always in ACPI mode
    const uint16_t zero = 0, en = 0x0120;
    pm.write(4, reinterpret_cast<const uint8_t*>(&zero), 2);
    EXPECT_EQ(rd(0x604, 2) & 1u, 1u);
    pm.write(2, reinterpret_cast<const uint8_t*>(&en), 2);
    EXPECT_EQ(rd(0x602, 2), 0x0120u);
    EXPECT_EQ(rd(0x600, 2), 0u);
}

TEST(AcpiPm, SlpEnWithTheS5SleepTypeRequestsPowerOff) {
    AcpiPm pm([] { return uint64_t{0}; });
    const auto wr = [&pm](uint64_t off, const std::vector<uint8_t>& bytes) {
        pm.write(off, bytes.data(), static_cast<uint8_t>(bytes.size()));
    };
    const auto control = [&pm] {
        uint16_t v = 0;
        pm.read(4, reinterpret_cast<uint8_t*>(&v), 2);
        return v;
    };
    // SLP_TYP = 7 without SLP_EN: only the type is kept.
    wr(4, {0x00, 0x1C});
    EXPECT_FALSE(pm.power_off_requested());
    EXPECT_EQ(control(), 0x1C01u);  // SLP_TYP 7, SCI_EN
    // SLP_EN with another sleep type (S1 = 1): not entered, SLP_EN reads back 0.
    wr(4, {0x00, 0x24});
    EXPECT_FALSE(pm.power_off_requested());
    EXPECT_EQ(control(), 0x0401u);
    // SLP_EN with SLP_TYP 7 as Linux writes it (a 16-bit write): soft-off.
    wr(4, {0x01, 0x3C});
    EXPECT_TRUE(pm.power_off_requested());
    EXPECT_EQ(control() & AcpiPm::kSlpEn, 0u);
}

TEST(AcpiPm, SlpEnThroughTheHighByteAlone) {
    AcpiPm pm([] { return uint64_t{0}; });
    const uint8_t hi = (acpi::kSlpTypS5 << 2) | 0x20;  // SLP_TYP in bits 4:2, SLP_EN bit 5
    pm.write(5, &hi, 1);
    EXPECT_TRUE(pm.power_off_requested());
}

}  // namespace
}  // namespace softkvm::vmm
