// The VMM's bus-lock policy (spec §4): QEMU's rate-limiter semantics with 1-second
// slices, the statistics it keeps, and the exit dispatcher's handling of the bus-lock exit.
#include <gtest/gtest.h>

#include "vmm/bus_lock.h"
#include "vmm/machine.h"
#include "vmm/symbols.h"

namespace softkvm::vmm {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

TEST(RateLimiter, QuotaZeroNeverDelays) {
    RateLimiter r(0);
    for (uint64_t t = 0; t < 1000; ++t) EXPECT_EQ(r.account(t), 0u);
}

TEST(RateLimiter, TheEventThatUsesUpTheQuotaWaitsForTheSliceEnd) {
    RateLimiter r(3);
    EXPECT_EQ(r.account(100), 0u);
    EXPECT_EQ(r.account(110), 0u);
    EXPECT_EQ(r.account(120), kSecond - 20);  // the slice began at 100
    // After the wait a new slice begins.
    EXPECT_EQ(r.account(100 + kSecond + 1), 0u);
}

TEST(RateLimiter, EventsBeyondTheQuotaStretchTheSlice) {
    RateLimiter r(2);
    EXPECT_EQ(r.account(0), 0u);
    EXPECT_EQ(r.account(1), kSecond - 1);
    // Another vCPU in the same slice: 3 events for a quota of 2 is 1.5 slices.
    EXPECT_EQ(r.account(2), kSecond * 3 / 2 - 2);
}

TEST(RateLimiter, AHammeringClientSettlesAtTheLimit) {
    // One event per microsecond of the client's own time plus the delays it is given:
    // over 20 simulated seconds it gets the limit's rate within 1%.
    for (uint64_t limit : {100u, 1000u, 10000u}) {
        RateLimiter r(limit);
        uint64_t now = 0, events = 0;
        while (now < 20 * kSecond) {
            now += 1000 + r.account(now);
            ++events;
        }
        const double rate = static_cast<double>(events) / (static_cast<double>(now) / kSecond);
        EXPECT_NEAR(rate / static_cast<double>(limit), 1.0, 0.01) << "limit " << limit;
    }
}

abi::RunState bus_lock_exit(bool known, bool split, uint64_t rip) {
    abi::RunState rs;
    rs.exit_reason = abi::KVM_EXIT_X86_BUS_LOCK;
    rs.flags = abi::KVM_RUN_X86_BUS_LOCK;
    rs.bus_lock = {static_cast<uint8_t>(known), static_cast<uint8_t>(split), rip};
    return rs;
}

TEST(BusLockPolicy, CountsKindsSitesAndDelay) {
    BusLockPolicy p(2);
    EXPECT_EQ(p.on_bus_lock(bus_lock_exit(true, true, 0x1000), 0), 0u);
    EXPECT_EQ(p.on_bus_lock(bus_lock_exit(true, false, 0x1000), 10), kSecond - 10);
    EXPECT_EQ(p.on_bus_lock(bus_lock_exit(false, false, 0), kSecond + 1), 0u);
    const BusLockStats s = p.stats();
    EXPECT_EQ(s.count, 3u);
    EXPECT_EQ(s.split, 1u);
    EXPECT_EQ(s.not_wb, 1u);
    EXPECT_EQ(s.unknown, 1u);
    EXPECT_EQ(s.delay_ns, kSecond - 10);
    ASSERT_EQ(s.by_rip.size(), 1u);  // the unknown-kind (kvm) exit has no exact RIP
    EXPECT_EQ(s.by_rip.at(0x1000), 2u);
}

TEST(BusLockDispatch, TheBusLockExitItselfIsANoOp) {
    Platform p([](char) {});
    abi::RunState rs = bus_lock_exit(true, true, 0x1234);
    const Dispatch d = dispatch_exit(rs, p);
    EXPECT_FALSE(d.stop);
    EXPECT_EQ(p.stats.exits["bus-lock"], 1u);
}

TEST(SymbolTable, NotAnElfGivesNoNames) {
    const SymbolTable t = SymbolTable::from_elf({'n', 'o', 't', ' ', 'e', 'l', 'f'});
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.describe(0x100000), "");
}

}  // namespace
}  // namespace softkvm::vmm
