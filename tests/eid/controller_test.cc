// The controller's rules, one test per behaviour of spec §1.5 (numbers in the names).
#include <gtest/gtest.h>

#include <cerrno>

#include "eid/controller.h"
#include "eid/files.h"

namespace softkvm::eid {
namespace {

Controller make(uint32_t max_asid = 20, uint32_t min_sev = 11) {
    Controller c(AsidRange{max_asid, min_sev});
    c.set_range(AsidRange{max_asid, min_sev});
    return c;
}

const Counters& at(const Controller& c, const std::string& p, Type t = Type::Sev) {
    return c.group(p).c[static_cast<int>(t)];
}

TEST(Controller, S1_FailedChargeRollsBackEveryLevelAndCountsEvents) {
    Controller c = make();
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.mkdir("/a/b").ok());
    ASSERT_TRUE(c.set_max("/a", Type::Sev, 2).ok());
    ASSERT_TRUE(c.charge("/a/b", Type::Sev, 1).ok());
    ASSERT_TRUE(c.charge("/a/b", Type::Sev, 1).ok());
    auto st = c.charge("/a/b", Type::Sev, 1);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, EBUSY);
    EXPECT_EQ(at(c, "/a/b").usage, 2u);
    EXPECT_EQ(at(c, "/a").usage, 2u);
    EXPECT_EQ(at(c, "/").usage, 2u);
    EXPECT_EQ(at(c, "/a").events_local, 1u);
    EXPECT_EQ(at(c, "/a").events, 1u);
    EXPECT_EQ(at(c, "/a/b").events_local, 0u);
    EXPECT_EQ(at(c, "/a/b").events, 0u);
    EXPECT_EQ(at(c, "/").events, 0u);  // never counted in the root
}

TEST(Controller, S1_EventsPropagateToAncestorsButNotTheRoot) {
    Controller c = make();
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.mkdir("/a/b").ok());
    ASSERT_TRUE(c.set_max("/a/b", Type::Sev, 0).ok());
    EXPECT_FALSE(c.charge("/a/b", Type::Sev, 1).ok());
    EXPECT_EQ(at(c, "/a/b").events_local, 1u);
    EXPECT_EQ(at(c, "/a/b").events, 1u);
    EXPECT_EQ(at(c, "/a").events, 1u);
    EXPECT_EQ(at(c, "/a").events_local, 0u);
    EXPECT_EQ(at(c, "/").events, 0u);
}

TEST(Controller, S1_ChildMaxAboveParentStillBoundByParent) {
    Controller c = make();
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.mkdir("/a/b").ok());
    ASSERT_TRUE(c.set_max("/a", Type::Sev, 1).ok());
    ASSERT_TRUE(c.set_max("/a/b", Type::Sev, 5).ok());
    EXPECT_TRUE(c.charge("/a/b", Type::Sev, 1).ok());
    EXPECT_FALSE(c.charge("/a/b", Type::Sev, 1).ok());
}

TEST(Controller, S2_MaxBelowCurrentIsAcceptedAndBlocksUntilUsageDrops) {
    Controller c = make();
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.charge("/a", Type::Sev, 2).ok());
    ASSERT_TRUE(c.set_max("/a", Type::Sev, 1).ok());
    EXPECT_EQ(at(c, "/a").usage, 2u);  // nothing taken back
    EXPECT_FALSE(c.charge("/a", Type::Sev, 1).ok());
    c.uncharge("/a", Type::Sev, 1);
    EXPECT_FALSE(c.charge("/a", Type::Sev, 1).ok());  // usage 1 = max: still full
    c.uncharge("/a", Type::Sev, 1);
    EXPECT_TRUE(c.charge("/a", Type::Sev, 1).ok());
}

TEST(Controller, S3_ChargesStopAtCapacity) {
    Controller c = make(20, 11);  // sev capacity 10
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.mkdir("/b").ok());
    EXPECT_EQ(c.capacity(Type::Sev), 10u);
    for (int k = 0; k < 6; ++k) ASSERT_TRUE(c.charge("/a", Type::Sev, 1).ok()) << k;
    for (int k = 0; k < 4; ++k) ASSERT_TRUE(c.charge("/b", Type::Sev, 1).ok()) << k;
    // /b's own usage (4) is far from capacity; the root's reaches it.
    auto st = c.charge("/b", Type::Sev, 1);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, EBUSY);
    EXPECT_NE(st.error().message.find("in /:"), std::string::npos) << st.error().message;
    EXPECT_EQ(at(c, "/").events_local, 1u);
    EXPECT_EQ(at(c, "/b").events_local, 0u);
    EXPECT_EQ(at(c, "/").usage, 10u);
}

TEST(Controller, S3_CapacityIsCheckedAtEveryLevelAsTheKernelDoes) {
    // misc_cg_try_charge compares each level's new usage with the capacity too, so a
    // group that alone fills the capacity fails at its own level first.
    Controller c = make(20, 11);
    ASSERT_TRUE(c.mkdir("/a").ok());
    for (int k = 0; k < 10; ++k) ASSERT_TRUE(c.charge("/a", Type::Sev, 1).ok()) << k;
    auto st = c.charge("/a", Type::Sev, 1);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(at(c, "/a").events_local, 1u);
    EXPECT_EQ(at(c, "/").events_local, 0u);
}

TEST(Controller, S3_PeakIsTheHighWatermark) {
    Controller c = make();
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.charge("/a", Type::Sev, 3).ok());
    c.uncharge("/a", Type::Sev, 2);
    EXPECT_EQ(at(c, "/a").usage, 1u);
    EXPECT_EQ(at(c, "/a").peak, 3u);
    EXPECT_EQ(at(c, "/").peak, 3u);
}

TEST(Controller, S4_SevAndSevEsAreIndependentCountersAndRanges) {
    Controller c = make(20, 11);  // SEV-ES 1..10, SEV 11..20
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.set_max("/a", Type::Sev, 1).ok());
    auto es = c.allocate("/a", Type::SevEs);
    auto sev = c.allocate("/a", Type::Sev);
    ASSERT_TRUE(es.ok());
    ASSERT_TRUE(sev.ok());
    EXPECT_EQ(es.value(), 1u);
    EXPECT_EQ(sev.value(), 11u);
    EXPECT_FALSE(c.allocate("/a", Type::Sev).ok());   // SEV max 1 reached
    EXPECT_TRUE(c.allocate("/a", Type::SevEs).ok());  // SEV-ES unaffected
    EXPECT_EQ(at(c, "/a", Type::SevEs).usage, 2u);
    EXPECT_EQ(at(c, "/a", Type::Sev).usage, 1u);
}

TEST(Controller, S5_FreedAsidsComeBackOnlyAfterExhaustionAndAFlush) {
    Controller c = make(4, 3);  // SEV-ES 1..2, SEV 3..4
    ASSERT_TRUE(c.mkdir("/a").ok());
    auto a = c.allocate("/a", Type::Sev);
    auto b = c.allocate("/a", Type::Sev);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a.value(), 3u);
    EXPECT_EQ(b.value(), 4u);
    c.release("/a", Type::Sev, 3);
    auto es = c.allocate("/a", Type::SevEs);
    ASSERT_TRUE(es.ok());
    c.release("/a", Type::SevEs, es.value());  // ASID 1 waits for a flush too
    EXPECT_EQ(c.flushes(), 0u);
    // SEV range exhausted (3 reclaimed, 4 in use): the flush frees 3 (and SEV-ES 1).
    auto again = c.allocate("/a", Type::Sev);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again.value(), 3u);
    EXPECT_EQ(c.flushes(), 1u);
    EXPECT_EQ(c.in_use()[1], 0);  // the flush freed every range's reclaimed ASIDs
    // Nothing left and nothing reclaimed: EBUSY, and the charge is undone.
    auto none = c.allocate("/a", Type::Sev);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code, EBUSY);
    EXPECT_EQ(at(c, "/a").usage, 2u);
    EXPECT_EQ(c.flushes(), 1u);
}

TEST(Controller, S5_AsidsOfATypeStayInItsRange) {
    Controller c = make(30, 21);
    ASSERT_TRUE(c.mkdir("/a").ok());
    for (int k = 0; k < 10; ++k) {
        auto s = c.allocate("/a", Type::Sev);
        ASSERT_TRUE(s.ok());
        EXPECT_GE(s.value(), 21u);
        EXPECT_LE(s.value(), 30u);
    }
    for (int k = 0; k < 20; ++k) {
        auto s = c.allocate("/a", Type::SevEs);
        ASSERT_TRUE(s.ok());
        EXPECT_GE(s.value(), 1u);
        EXPECT_LE(s.value(), 20u);
    }
    EXPECT_FALSE(c.allocate("/a", Type::Sev).ok());
    EXPECT_FALSE(c.allocate("/a", Type::SevEs).ok());
}

TEST(Controller, S6_ZeroCapacityTypeIsEinval) {
    Controller c = make(10, 1);  // SEV-ES range empty
    ASSERT_TRUE(c.mkdir("/a").ok());
    EXPECT_EQ(c.capacity(Type::SevEs), 0u);
    EXPECT_EQ(c.charge("/a", Type::SevEs, 1).error().code, EINVAL);
    EXPECT_EQ(c.set_max("/a", Type::SevEs, 1).error().code, EINVAL);
    EXPECT_TRUE(c.charge("/a", Type::Sev, 0).ok());  // amount 0 succeeds
}

TEST(Controller, S6_UnknownTypeNamesAreRejected) {
    Type t;
    EXPECT_TRUE(parse_type("sev", t));
    EXPECT_TRUE(parse_type("sev_es", t));
    EXPECT_TRUE(parse_type("sev-es", t));
    EXPECT_FALSE(parse_type("tdx", t));
    EXPECT_FALSE(parse_type("SEV", t));
}

TEST(Controller, GroupsNeedParentsAndRefuseRemovalWhileBusy) {
    Controller c = make();
    EXPECT_EQ(c.mkdir("/x/y").error().code, ENOENT);
    ASSERT_TRUE(c.mkdir("/x").ok());
    EXPECT_EQ(c.mkdir("/x").error().code, EEXIST);
    ASSERT_TRUE(c.mkdir("/x/y").ok());
    EXPECT_EQ(c.rmdir("/x").error().code, EBUSY);  // has a child
    ASSERT_TRUE(c.charge("/x/y", Type::Sev, 1).ok());
    EXPECT_EQ(c.rmdir("/x/y").error().code, EBUSY);  // holds an ID
    c.uncharge("/x/y", Type::Sev, 1);
    EXPECT_TRUE(c.rmdir("/x/y").ok());
    EXPECT_TRUE(c.rmdir("/x").ok());
    EXPECT_EQ(c.rmdir("/").error().code, EPERM);
    EXPECT_EQ(c.rmdir("/nope").error().code, ENOENT);
}

TEST(Paths, RejectDotDotEmptyComponentsAndRelativePaths) {
    EXPECT_EQ(normalize_path("/tenants/a").value(), "/tenants/a");
    EXPECT_EQ(normalize_path("/tenants/a/").value(), "/tenants/a");
    EXPECT_EQ(normalize_path("/").value(), "/");
    for (const char* bad : {"tenants", "", "/a//b", "/a/../b", "/a/./b", "/a b", "/a/.."})
        EXPECT_EQ(normalize_path(bad).error().code, EINVAL) << bad;
}

// §1.4 / §1.5 item 7: interface files.
TEST(Files, S6_MaxRoundTripsAsMaxAndDecimal) {
    Controller c = make();
    ASSERT_TRUE(c.mkdir("/a").ok());
    EXPECT_EQ(read_group_file(c, "/a", "encryption_ids.sev.max").value(), "max\n");
    ASSERT_TRUE(write_group_file(c, "/a", "encryption_ids.sev.max", "4\n").ok());
    EXPECT_EQ(read_group_file(c, "/a", "encryption_ids.sev.max").value(), "4\n");
    ASSERT_TRUE(write_group_file(c, "/a", "encryption_ids.sev.max", "max").ok());
    EXPECT_EQ(read_group_file(c, "/a", "encryption_ids.sev.max").value(), "max\n");
    EXPECT_EQ(write_group_file(c, "/a", "encryption_ids.sev.max", "-1").error().code, EINVAL);
    EXPECT_EQ(write_group_file(c, "/a", "encryption_ids.sev.max", "4x").error().code, EINVAL);
}

TEST(Files, S7_MiscMaxWriteSyntaxAndErrors) {
    Controller c = make(20, 11);
    ASSERT_TRUE(c.mkdir("/a").ok());
    EXPECT_TRUE(write_group_file(c, "/a", "misc.max", "sev 4\n").ok());
    EXPECT_TRUE(write_group_file(c, "/a", "misc.max", "sev_es 0x10").ok());  // base 0
    EXPECT_EQ(read_group_file(c, "/a", "misc.max").value(), "sev 4\nsev_es 16\n");
    EXPECT_TRUE(write_group_file(c, "/a", "misc.max", "sev max").ok());
    EXPECT_EQ(read_group_file(c, "/a", "misc.max").value(), "sev max\nsev_es 16\n");
    EXPECT_EQ(write_group_file(c, "/a", "misc.max", "tdx 4").error().code, EINVAL);
    EXPECT_EQ(write_group_file(c, "/a", "misc.max", "sev").error().code, EINVAL);
    EXPECT_EQ(write_group_file(c, "/a", "misc.max", "sev -1").error().code, EINVAL);
    EXPECT_EQ(write_group_file(c, "/a", "misc.max", "sev 99999999999999999999").error().code,
              ERANGE);
    // kstrtou64 takes one leading '+'; the value after the first space is not stripped
    // again (misc_cg_max_write strips the whole buffer once).
    EXPECT_TRUE(write_group_file(c, "/a", "misc.max", "sev +3\n").ok());
    EXPECT_EQ(c.group("/a").c[0].max, 3u);
    EXPECT_EQ(write_group_file(c, "/a", "misc.max", "sev ++3").error().code, EINVAL);
    EXPECT_EQ(write_group_file(c, "/a", "misc.max", "sev  3").error().code, EINVAL);
    Controller z = make(10, 1);  // SEV-ES capacity 0
    ASSERT_TRUE(z.mkdir("/a").ok());
    EXPECT_EQ(write_group_file(z, "/a", "misc.max", "sev_es 1").error().code, EINVAL);
}

TEST(Files, ReadOnlyFilesAndRootOnlyFiles) {
    Controller c = make(20, 11);
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.charge("/a", Type::Sev, 3).ok());
    EXPECT_EQ(write_group_file(c, "/a", "misc.current", "sev 1").error().code, EACCES);
    EXPECT_EQ(write_group_file(c, "/a", "encryption_ids.sev.current", "1").error().code, EACCES);
    EXPECT_EQ(read_group_file(c, "/a", "encryption_ids.sev.stat").error().code, ENOENT);
    EXPECT_EQ(read_group_file(c, "/", "encryption_ids.sev.stat").value(), "total 10\nused 3\n");
    EXPECT_EQ(read_group_file(c, "/", "misc.capacity").value(), "sev 10\nsev_es 10\n");
    EXPECT_EQ(read_group_file(c, "/a", "misc.capacity").error().code, ENOENT);
    EXPECT_EQ(read_group_file(c, "/", "misc.max").error().code, ENOENT);
    EXPECT_EQ(read_group_file(c, "/a", "misc.current").value(), "sev 3\nsev_es 0\n");
    EXPECT_EQ(read_group_file(c, "/a", "encryption_ids.sev.current").value(), "3\n");
    EXPECT_EQ(read_group_file(c, "/a", "misc.peak").value(), "sev 3\nsev_es 0\n");
}

TEST(Files, EventsFilesUseTheKernelFormat) {
    Controller c = make(20, 11);
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.set_max("/a", Type::Sev, 0).ok());
    EXPECT_FALSE(c.charge("/a", Type::Sev, 1).ok());
    EXPECT_EQ(read_group_file(c, "/a", "misc.events").value(), "sev.max 1\nsev_es.max 0\n");
    EXPECT_EQ(read_group_file(c, "/a", "misc.events.local").value(), "sev.max 1\nsev_es.max 0\n");
}

}  // namespace
}  // namespace softkvm::eid

namespace softkvm::eid {
namespace {

// Found by fuzz_eid_store: counters loaded at the store's largest integer wrapped to a
// negative number on the next event or flush. They now stop there.
TEST(Controller, EventAndFlushCountersStopAtTheStoresLargestInteger) {
    Controller c = make(2, 2);  // sev: ASID 2 only
    ASSERT_TRUE(c.mkdir("/a").ok());
    ASSERT_TRUE(c.set_max("/a", Type::Sev, 0).ok());
    c.mutable_groups()["/a"].c[0].events = kMaxCount;
    c.mutable_groups()["/a"].c[0].events_local = kMaxCount;
    EXPECT_EQ(c.charge("/a", Type::Sev, 1).error().code, EBUSY);
    EXPECT_EQ(at(c, "/a").events, kMaxCount);
    EXPECT_EQ(at(c, "/a").events_local, kMaxCount);
    c.set_flushes(kMaxCount);
    auto a = c.allocate("/", Type::Sev);
    ASSERT_TRUE(a.ok());
    c.release("/", Type::Sev, a.value());
    ASSERT_TRUE(c.allocate("/", Type::Sev).ok());  // needs a flush
    EXPECT_EQ(c.flushes(), kMaxCount);
}

}  // namespace
}  // namespace softkvm::eid
