// The local APIC model (hv/lapic.h) against the SDM vol. 3 ch. 11 rules.
#include "hv/lapic.h"

#include <gtest/gtest.h>

namespace softkvm::hv {
namespace {

using namespace apic;

Lapic enabled_apic() {
    Lapic a(0);
    EXPECT_TRUE(a.write(SVR, SVR_ENABLE | 0xFF, 0, false));
    return a;
}

TEST(Lapic, ResetMasksEveryLvtAndReportsVersion) {
    Lapic a(3);
    uint32_t v;
    ASSERT_TRUE(a.read(LVT_TIMER, v, 0, false));
    EXPECT_EQ(v, LVT_MASKED);
    ASSERT_TRUE(a.read(VERSION, v, 0, false));
    EXPECT_EQ(v, kVersionValue);
    ASSERT_TRUE(a.read(ID, v, 0, false));
    EXPECT_EQ(v, 3u << 24);
    ASSERT_TRUE(a.read(ID, v, 0, true));
    EXPECT_EQ(v, 3u);
}

TEST(Lapic, OneShotTimerCountsDownWithTheDivisorAndFiresOnce) {
    Lapic a = enabled_apic();
    a.write(TIMER_DIVIDE, 0x1, 0, false);  // divide by 4
    a.write(LVT_TIMER, 0x40, 0, false);
    a.write(TIMER_INITIAL, 100, 1000, false);
    EXPECT_EQ(a.next_deadline(), 1000u + 400u);
    uint32_t v;
    a.read(TIMER_CURRENT, v, 1000 + 40, false);
    EXPECT_EQ(v, 90u);
    a.advance(1399);
    EXPECT_EQ(a.deliverable(), -1);
    a.advance(1400);
    EXPECT_EQ(a.deliverable(), 0x40);
    EXPECT_EQ(a.next_deadline(), Lapic::kNever);
    a.read(TIMER_CURRENT, v, 2000, false);
    EXPECT_EQ(v, 0u);
}

TEST(Lapic, PeriodicTimerRearmsFromTheLastExpiry) {
    Lapic a = enabled_apic();
    a.write(TIMER_DIVIDE, 0xB, 0, false);  // divide by 1
    a.write(LVT_TIMER, 0x41 | (1u << LVT_TIMER_MODE_SHIFT), 0, false);
    a.write(TIMER_INITIAL, 50, 0, false);
    a.advance(120);  // two expiries (50, 100); the next is at 150
    EXPECT_EQ(a.next_deadline(), 150u);
    EXPECT_EQ(a.deliverable(), 0x41);
}

TEST(Lapic, TscDeadlineFiresAtTheTscValueAndClearsTheMsr) {
    Lapic a = enabled_apic();
    a.set_tsc_deadline(5000, 0);  // ignored: not in TSC-deadline mode
    EXPECT_EQ(a.tsc_deadline(), 0u);
    a.write(LVT_TIMER, 0x42 | (2u << LVT_TIMER_MODE_SHIFT), 0, false);
    a.set_tsc_deadline(5000, 1000);  // TSC = clock + 1000
    EXPECT_EQ(a.next_deadline(), 4000u);
    a.advance(4000);
    EXPECT_EQ(a.deliverable(), 0x42);
    EXPECT_EQ(a.tsc_deadline(), 0u);
}

TEST(Lapic, ModeChangeDisarmsTheTimer) {
    Lapic a = enabled_apic();
    a.write(LVT_TIMER, 0x40, 0, false);
    a.write(TIMER_INITIAL, 10, 0, false);
    a.write(LVT_TIMER, 0x40 | (1u << LVT_TIMER_MODE_SHIFT), 5, false);
    EXPECT_EQ(a.next_deadline(), Lapic::kNever);
}

TEST(Lapic, TaskPriorityHoldsBackLowerClasses) {
    Lapic a = enabled_apic();
    a.write(TPR, 0x50, 0, false);
    a.raise(0x45);
    EXPECT_EQ(a.deliverable(), -1);  // class 4 <= TPR class 5
    a.raise(0x61);
    EXPECT_EQ(a.deliverable(), 0x61);
}

TEST(Lapic, EoiRetiresTheHighestInServiceVector) {
    Lapic a = enabled_apic();
    a.raise(0x30);
    a.accept(0x30);
    a.raise(0x80);
    EXPECT_EQ(a.deliverable(), 0x80);  // higher class preempts
    a.accept(0x80);
    a.raise(0x31);
    EXPECT_EQ(a.deliverable(), -1);  // same class as 0x30 in service: PPR blocks it
    uint32_t ppr;
    a.read(PPR, ppr, 0, false);
    EXPECT_EQ(ppr, 0x80u);
    a.write(EOI, 0, 0, false);  // retires 0x80
    a.write(EOI, 0, 0, false);  // retires 0x30
    EXPECT_EQ(a.deliverable(), 0x31);
}

TEST(Lapic, SoftwareDisableMasksLvtsAndBlocksDelivery) {
    Lapic a = enabled_apic();
    a.write(LVT_TIMER, 0x40, 0, false);
    a.write(SVR, 0xFF, 0, false);  // APIC software-disabled
    uint32_t v;
    a.read(LVT_TIMER, v, 0, false);
    EXPECT_TRUE(v & LVT_MASKED);
    a.raise(0x50);
    EXPECT_EQ(a.deliverable(), -1);
}

TEST(Lapic, X2apicOnlyAndXapicOnlyRegisters) {
    Lapic a = enabled_apic();
    uint32_t v;
    EXPECT_FALSE(a.read(DFR, v, 0, true));  // no DFR in x2APIC mode
    EXPECT_TRUE(a.read(DFR, v, 0, false));
    EXPECT_FALSE(a.write(SELF_IPI, 0x70, 0, false));  // self-IPI is x2APIC only
    EXPECT_TRUE(a.write(SELF_IPI, 0x70, 0, true));
    EXPECT_EQ(a.deliverable(), 0x70);
    EXPECT_FALSE(a.write(EOI, 1, 0, true));  // x2APIC EOI must be written with 0
}

TEST(Lapic, IllegalVectorSetsTheErrorStatus) {
    Lapic a = enabled_apic();
    a.raise(3);
    EXPECT_EQ(a.deliverable(), -1);
    uint32_t esr;
    a.read(ESR, esr, 0, false);
    EXPECT_EQ(esr, 1u << 6);
}

TEST(Lapic, SelfIpiThroughTheIcrShorthand) {
    Lapic a = enabled_apic();
    a.write(ICR_LOW, 0x55 | (1u << 18), 0, false);  // fixed, shorthand "self"
    EXPECT_EQ(a.deliverable(), 0x55);
}

TEST(Lapic, NmiThroughTheIcrIsReportedOnceAndNotAsAVector) {
    Lapic a = enabled_apic();
    a.write(ICR_HIGH, 0, 0, false);
    a.write(ICR_LOW, (4u << 8) | 0x30, 0, false);  // NMI to APIC ID 0 (vector ignored)
    EXPECT_EQ(a.deliverable(), -1);
    EXPECT_TRUE(a.take_nmi());
    EXPECT_FALSE(a.take_nmi());
    a.write(ICR_HIGH, 5u << 24, 0, false);  // another APIC: not us
    a.write(ICR_LOW, 4u << 8, 0, false);
    EXPECT_FALSE(a.take_nmi());
}

}  // namespace
}  // namespace softkvm::hv
