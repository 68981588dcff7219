// The IOAPIC (hv/ioapic.h) against the 82093AA datasheet and KVM's in-kernel IOAPIC:
// every register, both trigger modes, remote IRR and the EOI broadcast, masking, and
// (through hv::Vm with real vCPUs) physical, logical and lowest-priority destinations.
#include "hv/ioapic.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "hv/vm.h"

namespace softkvm::hv {
namespace {

using namespace ioapic;

class IoapicTest : public ::testing::Test {
  protected:
    std::vector<Ioapic::Message> sent_;
    Ioapic io_{[this](const Ioapic::Message& m) { sent_.push_back(m); }};

    uint32_t rd(uint32_t index) {
        io_.mmio_write(IOREGSEL, 4, index);
        return static_cast<uint32_t>(io_.mmio_read(IOWIN, 4));
    }
    void wr(uint32_t index, uint32_t v) {
        io_.mmio_write(IOREGSEL, 4, index);
        io_.mmio_write(IOWIN, 4, v);
    }
    void set_entry(uint32_t pin, uint64_t e) {
        wr(REG_REDTBL + 2 * pin + 1, static_cast<uint32_t>(e >> 32));
        wr(REG_REDTBL + 2 * pin, static_cast<uint32_t>(e));
    }
    uint64_t get_entry(uint32_t pin) {
        return rd(REG_REDTBL + 2 * pin) |
               (static_cast<uint64_t>(rd(REG_REDTBL + 2 * pin + 1)) << 32);
    }
};

TEST_F(IoapicTest, ResetStateIdVersionArbitration) {
    EXPECT_EQ(rd(REG_ID), 0u);
    EXPECT_EQ(rd(REG_VERSION), 0x00170011u);  // 24 entries (max index 23), version 0x11
    EXPECT_EQ(rd(REG_ARB), 0u);
    for (uint32_t pin = 0; pin < kPins; ++pin) EXPECT_EQ(get_entry(pin), RTE_MASKED) << pin;
    EXPECT_EQ(io_.lines(), 0u);
}

TEST_F(IoapicTest, IdIsFourBitsAndArbitrationFollowsIt) {
    wr(REG_ID, 0xFFFFFFFF);
    EXPECT_EQ(rd(REG_ID), 0x0F000000u);
    EXPECT_EQ(rd(REG_ARB), 0x0F000000u);
    wr(REG_ID, 0x05000000);
    EXPECT_EQ(rd(REG_ID), 0x05000000u);
    EXPECT_EQ(io_.id(), 5u);
    // Version and arbitration are read-only.
    wr(REG_VERSION, 0);
    wr(REG_ARB, 0x0A000000);
    EXPECT_EQ(rd(REG_VERSION), kVersionValue);
    EXPECT_EQ(rd(REG_ARB), 0x05000000u);
}

TEST_F(IoapicTest, IoregselIsEightBitsAndOtherOffsetsReadZero) {
    io_.mmio_write(IOREGSEL, 4, 0x12345601);
    EXPECT_EQ(io_.mmio_read(IOREGSEL, 4), 0x01u);
    EXPECT_EQ(io_.mmio_read(IOWIN, 4), kVersionValue);
    EXPECT_EQ(io_.mmio_read(IOWIN, 2), kVersionValue & 0xFFFF);
    EXPECT_EQ(io_.mmio_read(IOWIN, 1), kVersionValue & 0xFF);
    io_.mmio_write(IOREGSEL, 1, 0x10);  // a byte write selects too
    EXPECT_EQ(io_.mmio_read(IOREGSEL, 4), 0x10u);
    EXPECT_EQ(io_.mmio_read(0x20, 4), 0u);
    EXPECT_EQ(io_.mmio_read(0x40, 4), 0u);  // no EOI register in version 0x11
    io_.mmio_write(0x40, 4, 0x30);
    EXPECT_EQ(io_.mmio_read(IOREGSEL, 4), 0x10u);
}

TEST_F(IoapicTest, UnknownIndexesReadZeroAndPastTheTableAllOnes) {
    for (uint32_t idx = 3; idx < REG_REDTBL; ++idx) EXPECT_EQ(rd(idx), 0u) << idx;
    EXPECT_EQ(rd(REG_REDTBL + 2 * kPins), 0xFFFFFFFFu);
    EXPECT_EQ(rd(0xFF), 0xFFFFFFFFu);
    wr(0xFF, 0);  // dropped
    wr(REG_REDTBL + 2 * kPins, 0);
    EXPECT_EQ(rd(0xFF), 0xFFFFFFFFu);
}

TEST_F(IoapicTest, EveryEntryKeepsWhatIsWrittenExceptTheReadOnlyBits) {
    for (uint32_t pin = 0; pin < kPins; ++pin) {
        const uint64_t v = (static_cast<uint64_t>(pin + 1) << 56) | RTE_MASKED | RTE_LEVEL |
                           RTE_POLARITY_LOW | RTE_DEST_LOGICAL | (1u << RTE_DELIVERY_SHIFT) |
                           (0x20 + pin);
        set_entry(pin, v | RTE_REMOTE_IRR | RTE_DELIVERY_STATUS);
        EXPECT_EQ(get_entry(pin), v) << pin;
        EXPECT_EQ(io_.entry(pin), v);
    }
    // The halves are independent registers.
    wr(REG_REDTBL + 1, 0xAB000000);
    EXPECT_EQ(get_entry(0), (0xABull << 56) | (get_entry(0) & 0xFFFFFFFF));
    EXPECT_TRUE(sent_.empty());  // all masked
}

TEST_F(IoapicTest, EdgeTriggeredDeliversOnEachRisingEdgeOnly) {
    set_entry(5, (3ull << RTE_DEST_SHIFT) | 0x41);
    io_.set_irq(5, true);
    ASSERT_EQ(sent_.size(), 1u);
    EXPECT_EQ(sent_[0].vector, 0x41);
    EXPECT_EQ(sent_[0].dest, 3);
    EXPECT_FALSE(sent_[0].level);
    EXPECT_FALSE(sent_[0].logical);
    EXPECT_EQ(sent_[0].delivery_mode, DM_FIXED);
    io_.set_irq(5, true);  // still asserted: no new edge
    EXPECT_EQ(sent_.size(), 1u);
    EXPECT_EQ(io_.lines(), 1u << 5);
    io_.set_irq(5, false);
    EXPECT_EQ(io_.lines(), 0u);
    io_.set_irq(5, true);
    EXPECT_EQ(sent_.size(), 2u);
    // Edge entries never hold remote IRR; an EOI of their vector changes nothing.
    EXPECT_EQ(get_entry(5) & RTE_REMOTE_IRR, 0u);
    io_.eoi(0x41);
    EXPECT_EQ(sent_.size(), 2u);
}

TEST_F(IoapicTest, EdgeOnAMaskedPinIsLost) {
    set_entry(7, RTE_MASKED | 0x50);
    io_.set_irq(7, true);
    EXPECT_TRUE(sent_.empty());
    set_entry(7, 0x50);  // unmasking does not deliver the old edge
    EXPECT_TRUE(sent_.empty());
    io_.set_irq(7, false);
    io_.set_irq(7, true);
    EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(IoapicTest, LevelTriggeredHoldsRemoteIrrUntilEoiAndFiresAgainIfStillAsserted) {
    set_entry(10, RTE_LEVEL | 0x60);
    io_.set_irq(10, true);
    ASSERT_EQ(sent_.size(), 1u);
    EXPECT_TRUE(sent_[0].level);
    EXPECT_NE(get_entry(10) & RTE_REMOTE_IRR, 0u);
    // While remote IRR is set, the asserted line does not deliver again.
    io_.set_irq(10, true);
    EXPECT_EQ(sent_.size(), 1u);
    io_.eoi(0x61);  // another vector: nothing
    EXPECT_NE(get_entry(10) & RTE_REMOTE_IRR, 0u);
    io_.eoi(0x60);  // line still asserted: remote IRR cleared, then set by the new message
    EXPECT_EQ(sent_.size(), 2u);
    EXPECT_NE(get_entry(10) & RTE_REMOTE_IRR, 0u);
    io_.set_irq(10, false);
    io_.eoi(0x60);  // line deasserted: no new message
    EXPECT_EQ(sent_.size(), 2u);
    EXPECT_EQ(get_entry(10) & RTE_REMOTE_IRR, 0u);
}

TEST_F(IoapicTest, EoiReachesEveryLevelEntryWithThatVector) {
    set_entry(1, RTE_LEVEL | 0x70);
    set_entry(2, RTE_LEVEL | 0x70);
    set_entry(3, 0x70);  // edge: not concerned
    io_.set_irq(1, true);
    io_.set_irq(2, true);
    io_.set_irq(2, false);
    EXPECT_EQ(sent_.size(), 2u);
    io_.eoi(0x70);
    EXPECT_EQ(sent_.size(), 3u);  // pin 1 again; pin 2's line is down
    EXPECT_EQ(get_entry(2) & RTE_REMOTE_IRR, 0u);
    EXPECT_NE(get_entry(1) & RTE_REMOTE_IRR, 0u);
}

TEST_F(IoapicTest, MaskedLevelLineFiresWhenUnmasked) {
    set_entry(4, RTE_MASKED | RTE_LEVEL | 0x80);
    io_.set_irq(4, true);
    EXPECT_TRUE(sent_.empty());
    EXPECT_EQ(get_entry(4) & RTE_REMOTE_IRR, 0u);
    set_entry(4, RTE_LEVEL | 0x80);
    ASSERT_EQ(sent_.size(), 1u);
    EXPECT_EQ(sent_[0].vector, 0x80);
    // Masking while remote IRR stands keeps it; the EOI then clears it without a message.
    set_entry(4, RTE_MASKED | RTE_LEVEL | 0x80);
    EXPECT_NE(get_entry(4) & RTE_REMOTE_IRR, 0u);
    io_.eoi(0x80);
    EXPECT_EQ(get_entry(4) & RTE_REMOTE_IRR, 0u);
    EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(IoapicTest, SwitchingToEdgeClearsRemoteIrr) {
    set_entry(6, RTE_LEVEL | 0x90);
    io_.set_irq(6, true);
    EXPECT_NE(get_entry(6) & RTE_REMOTE_IRR, 0u);
    set_entry(6, RTE_MASKED | 0x90);
    EXPECT_EQ(get_entry(6) & RTE_REMOTE_IRR, 0u);
}

TEST_F(IoapicTest, MessageFieldsFollowTheEntry) {
    set_entry(
        9, (0xC3ull << RTE_DEST_SHIFT) | RTE_DEST_LOGICAL | (DM_NMI << RTE_DELIVERY_SHIFT) | 0x02);
    io_.set_irq(9, true);
    ASSERT_EQ(sent_.size(), 1u);
    EXPECT_EQ(sent_[0].dest, 0xC3);
    EXPECT_TRUE(sent_[0].logical);
    EXPECT_EQ(sent_[0].delivery_mode, DM_NMI);
    EXPECT_EQ(sent_[0].vector, 0x02);
}

TEST_F(IoapicTest, LinesPastThePinsAreIgnored) {
    io_.set_irq(kPins, true);
    io_.set_irq(31, true);
    EXPECT_EQ(io_.lines(), 0u);
}

// ---- Through the VM: the IOAPIC's messages reach the local APICs of real vCPUs ----

class IoapicVmTest : public ::testing::Test {
  protected:
    static constexpr uint64_t kRam = 1 << 20;
    static constexpr uint64_t kApic = 0xFEE00000;
    IoapicVmTest() : ram_(static_cast<uint8_t*>(std::aligned_alloc(4096, kRam))) {
        EXPECT_TRUE(vm_.set_memory_region(0, 0, kRam, ram_).ok());
        for (uint32_t id = 0; id < 4; ++id) {
            auto v = vm_.create_vcpu(id);
            EXPECT_TRUE(v.ok());
            cpus_.push_back(std::move(v).value());
            apic_write(id, 0xF0, 0x1FF);  // SVR: software-enabled
        }
    }
    ~IoapicVmTest() override {
        cpus_.clear();
        std::free(ram_);
    }
    void apic_write(uint32_t cpu, uint32_t off, uint32_t v) {
        cpus_[cpu]->mmio_write(kApic + off, 4, v);
    }
    void entry(uint32_t pin, uint64_t e) {
        Vcpu& v = *cpus_[0];  // any vCPU reaches the one IOAPIC
        v.mmio_write(kBase + IOREGSEL, 4, REG_REDTBL + 2 * pin + 1);
        v.mmio_write(kBase + IOWIN, 4, static_cast<uint32_t>(e >> 32));
        v.mmio_write(kBase + IOREGSEL, 4, REG_REDTBL + 2 * pin);
        v.mmio_write(kBase + IOWIN, 4, static_cast<uint32_t>(e));
    }
    void line(uint32_t gsi, bool level) { EXPECT_TRUE(vm_.set_irq(gsi, level).ok()); }
    // Which vCPUs have `vector` requested.
    std::vector<uint32_t> requested(uint8_t vector) {
        std::vector<uint32_t> out;
        for (uint32_t k = 0; k < cpus_.size(); ++k)
            if (cpus_[k]->apic_irr(vector)) out.push_back(k);
        return out;
    }

    uint8_t* ram_;
    Vm vm_;
    std::vector<std::unique_ptr<Vcpu>> cpus_;
};

using Ids = std::vector<uint32_t>;

TEST_F(IoapicVmTest, GuestReadsTheRegistersThroughMmio) {
    Vcpu& v = *cpus_[1];
    v.mmio_write(kBase + IOREGSEL, 4, REG_VERSION);
    uint64_t value = 0;
    EXPECT_EQ(v.mmio_read(kBase + IOWIN, 4, value), cpu::Action::Done);
    EXPECT_EQ(value, kVersionValue);
    // Past the 256-byte window the access is the VMM's (an MMIO exit).
    EXPECT_EQ(v.mmio_read(kBase + kSize, 4, value), cpu::Action::Exit);
    EXPECT_EQ(v.run_state().exit_reason, abi::KVM_EXIT_MMIO);
}

TEST_F(IoapicVmTest, SetIrqChecksTheLine) {
    EXPECT_TRUE(vm_.set_irq(23, true).ok());
    const Status st = vm_.set_irq(24, true);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, EINVAL);
}

TEST_F(IoapicVmTest, PhysicalDestinationAndBroadcast) {
    entry(3, (2ull << RTE_DEST_SHIFT) | 0x51);
    line(3, true);
    EXPECT_EQ(requested(0x51), Ids{2});
    entry(4, (0xFFull << RTE_DEST_SHIFT) | 0x52);
    line(4, true);
    EXPECT_EQ(requested(0x52), (Ids{0, 1, 2, 3}));
    entry(5, (9ull << RTE_DEST_SHIFT) | 0x53);  // no such APIC
    line(5, true);
    EXPECT_TRUE(requested(0x53).empty());
}

TEST_F(IoapicVmTest, LogicalFlatAndClusterDestinations) {
    // Flat model (DFR reset value): logical IDs 1, 2, 4, 8.
    for (uint32_t k = 0; k < 4; ++k) apic_write(k, 0xD0, (1u << k) << 24);
    entry(6, (0x0Aull << RTE_DEST_SHIFT) | RTE_DEST_LOGICAL | 0x61);
    line(6, true);
    EXPECT_EQ(requested(0x61), (Ids{1, 3}));
    // Cluster model: vCPUs 0, 1 in cluster 1 (members 1, 2), vCPUs 2, 3 in cluster 2.
    const uint32_t ldr[] = {0x11, 0x12, 0x21, 0x22};
    for (uint32_t k = 0; k < 4; ++k) {
        apic_write(k, 0xE0, 0x0FFFFFFF);
        apic_write(k, 0xD0, ldr[k] << 24);
    }
    entry(7, (0x23ull << RTE_DEST_SHIFT) | RTE_DEST_LOGICAL | 0x62);
    line(7, true);
    EXPECT_EQ(requested(0x62), (Ids{2, 3}));
    entry(8, (0x12ull << RTE_DEST_SHIFT) | RTE_DEST_LOGICAL | 0x63);
    line(8, true);
    EXPECT_EQ(requested(0x63), Ids{1});
}

TEST_F(IoapicVmTest, LowestPriorityPicksOneDestinationByVector) {
    for (uint32_t k = 0; k < 4; ++k) apic_write(k, 0xD0, 0x01000000);  // all logical ID 1
    entry(9,
          (1ull << RTE_DEST_SHIFT) | RTE_DEST_LOGICAL | (DM_LOWEST << RTE_DELIVERY_SHIFT) | 0x66);
    line(9, true);
    EXPECT_EQ(requested(0x66), Ids{0x66 % 4});
    entry(9,
          (1ull << RTE_DEST_SHIFT) | RTE_DEST_LOGICAL | (DM_LOWEST << RTE_DELIVERY_SHIFT) | 0x67);
    line(9, false);
    line(9, true);
    EXPECT_EQ(requested(0x67), Ids{0x67 % 4});
}

TEST_F(IoapicVmTest, SoftwareDisabledApicDropsFixedInterrupts) {
    apic_write(1, 0xF0, 0xFF);  // SVR without the enable bit
    entry(11, (0xFFull << RTE_DEST_SHIFT) | 0x71);
    line(11, true);
    EXPECT_EQ(requested(0x71), (Ids{0, 2, 3}));
}

TEST_F(IoapicVmTest, LevelInterruptEoiFromTheLocalApicRearmsThePin) {
    entry(12, (1ull << RTE_DEST_SHIFT) | RTE_LEVEL | 0x81);
    line(12, true);
    Vcpu& v = *cpus_[1];
    ASSERT_EQ(requested(0x81), Ids{1});
    EXPECT_NE(vm_.ioapic().entry(12) & RTE_REMOTE_IRR, 0u);
    uint64_t tmr = 0;
    v.mmio_read(kApic + 0x180 + (0x81 >> 5) * 0x10, 4, tmr);  // TMR: level-triggered
    EXPECT_NE(tmr & (1u << (0x81 & 31)), 0u);
    ASSERT_EQ(v.acknowledge_interrupt(), 0x81);  // IRR -> ISR
    EXPECT_TRUE(requested(0x81).empty());
    apic_write(1, 0xB0, 0);  // EOI, line still asserted: delivered again
    EXPECT_EQ(requested(0x81), Ids{1});
    ASSERT_EQ(v.acknowledge_interrupt(), 0x81);
    line(12, false);
    apic_write(1, 0xB0, 0);
    EXPECT_TRUE(requested(0x81).empty());
    EXPECT_EQ(vm_.ioapic().entry(12) & RTE_REMOTE_IRR, 0u);
}

TEST_F(IoapicVmTest, EdgeInterruptEoiIsNotBroadcast) {
    entry(13, (0ull << RTE_DEST_SHIFT) | RTE_LEVEL | 0x90);
    entry(14, (0ull << RTE_DEST_SHIFT) | 0x91);
    line(13, true);
    line(14, true);
    Vcpu& v = *cpus_[0];
    ASSERT_EQ(v.acknowledge_interrupt(), 0x91);  // the higher vector first
    apic_write(0, 0xB0, 0);                      // EOI of an edge vector
    EXPECT_NE(vm_.ioapic().entry(13) & RTE_REMOTE_IRR, 0u);
}

TEST_F(IoapicVmTest, InitMessageResetsTheDestination) {
    // A vCPU that runs (the BSP) goes back to waiting for a start-up IPI.
    entry(15, (0ull << RTE_DEST_SHIFT) | (DM_INIT << RTE_DELIVERY_SHIFT));
    ASSERT_FALSE(cpus_[0]->waiting_for_sipi());
    line(15, true);
    EXPECT_TRUE(cpus_[0]->waiting_for_sipi());
}

TEST_F(IoapicVmTest, ExtIntAndSmiMessagesRequestNoVector) {
    entry(16, (0xFFull << RTE_DEST_SHIFT) | (DM_EXTINT << RTE_DELIVERY_SHIFT) | 0xA0);
    entry(17, (0xFFull << RTE_DEST_SHIFT) | (DM_SMI << RTE_DELIVERY_SHIFT) | 0xA1);
    line(16, true);
    line(17, true);
    EXPECT_TRUE(requested(0xA0).empty());
    EXPECT_TRUE(requested(0xA1).empty());
}

}  // namespace
}  // namespace softkvm::hv
