// Tampered databases (issue 8, item 1): every hand-edited inconsistency is refused inside
// the transaction with EBADMSG and a message that names it and the repair command;
// `check` lists it; `repair` fixes it and keeps every valid lease.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "eid/store.h"

namespace softkvm::eid {
namespace {

class TamperTest : public ::testing::Test {
  protected:
    TamperTest() {
        dir_ = std::filesystem::temp_directory_path() /
               ("softkvm-eid-tamper-" + std::to_string(getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        db_ = (dir_ / "eid.db").string();
        // ASIDs 1-16: sev_es 1-8, sev 9-16; /t with sev.max 4 and one live lease (ASID 9).
        auto s = Store::init(db_, AsidRange{16, 9});
        EXPECT_TRUE(s.ok());
        EXPECT_TRUE(s.value()
                        ->update([](Controller& c, std::vector<EventRecord>&) {
                            if (auto st = c.mkdir("/t"); !st) return st;
                            return c.set_max("/t", Type::Sev, 4);
                        })
                        .ok());
        auto l = s.value()->acquire("/t", Type::Sev, getpid(), process_start_time(getpid()));
        EXPECT_TRUE(l.ok());
        lease_ = l.ok() ? l->id : 0;
    }
    ~TamperTest() override { std::filesystem::remove_all(dir_); }

    // Runs SQL on the database as another process would (sqlite3 CLI, an editor...).
    void tamper(const std::string& sql) {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
        char* err = nullptr;
        const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
        EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
        sqlite3_free(err);
        sqlite3_close(db);
    }

    // The database is refused with a message naming `what`; check() lists it; repair()
    // (with `range` if given) makes it usable and keeps the live lease on ASID 9.
    void expect_refused_then_repaired(const std::string& what,
                                      std::optional<AsidRange> range = std::nullopt) {
        auto s = Store::open(db_);
        ASSERT_TRUE(s.ok()) << s.error().message;
        auto snap = s.value()->snapshot();
        ASSERT_FALSE(snap.ok()) << "tampered database accepted";
        EXPECT_EQ(snap.error().code, EBADMSG);
        EXPECT_NE(snap.error().message.find(what), std::string::npos) << snap.error().message;
        EXPECT_NE(snap.error().message.find("softkvm eid repair"), std::string::npos);
        // Nothing is handed out from an inconsistent database.
        auto l = s.value()->acquire("/t", Type::Sev, getpid(), process_start_time(getpid()));
        ASSERT_FALSE(l.ok());
        EXPECT_EQ(l.error().code, EBADMSG);
        auto problems = s.value()->check();
        ASSERT_TRUE(problems.ok());
        bool listed = false;
        for (const std::string& p : problems.value()) listed |= p.find(what) != std::string::npos;
        EXPECT_TRUE(listed) << what;
        auto fixes = s.value()->repair(range);
        ASSERT_TRUE(fixes.ok()) << fixes.error().message;
        EXPECT_FALSE(fixes->empty());
        EXPECT_TRUE(s.value()->check()->empty());
        auto after = s.value()->view();
        ASSERT_TRUE(after.ok()) << after.error().message;
        bool kept = false;
        for (const Lease& x : after.value()->leases) kept |= x.id == lease_ && x.asid == 9;
        EXPECT_TRUE(kept) << "the valid lease was lost";
        // The repaired database works: another charge gets a fresh ASID, never ASID 9.
        auto l2 = s.value()->acquire("/t", Type::Sev, getpid(), process_start_time(getpid()));
        if (l2.ok()) {
            EXPECT_NE(l2->asid, 9u);
        }
    }

    std::filesystem::path dir_;
    std::string db_;
    int64_t lease_ = 0;
};

class MinSevAsid : public TamperTest, public ::testing::WithParamInterface<int> {};

// The AddressSanitizer heap-overflow report of issue 8: min_sev_asid outside 1..max+1.
TEST_P(MinSevAsid, OutOfRangeIsRefusedAndRepairNeedsTheHostsRange) {
    tamper("UPDATE meta SET value = " + std::to_string(GetParam()) + " WHERE key = 'min_sev_asid'");
    auto s = Store::open(db_);
    ASSERT_TRUE(s.ok());
    auto no_range = s.value()->repair(std::nullopt);
    ASSERT_FALSE(no_range.ok());
    EXPECT_EQ(no_range.error().code, EINVAL);
    EXPECT_NE(no_range.error().message.find("--sev-asids"), std::string::npos);
    expect_refused_then_repaired(
        "min_sev_asid is " + std::to_string(GetParam()) + ", outside 1..17", AsidRange{16, 9});
}
INSTANTIATE_TEST_SUITE_P(Tamper, MinSevAsid, ::testing::Values(0, 18, 100, -5));

TEST_F(TamperTest, NegativeUsage) {
    tamper("UPDATE groups SET usage = -5 WHERE path = '/t' AND type = 'sev'");
    expect_refused_then_repaired("group /t has sev usage -5");
}

TEST_F(TamperTest, UsageThatDisagreesWithTheLeases) {
    tamper("UPDATE groups SET usage = 3, peak = 3 WHERE path = '/t' AND type = 'sev'");
    expect_refused_then_repaired("group /t has sev usage 3, but 1 sev lease(s)");
}

TEST_F(TamperTest, NegativeMax) {
    tamper("UPDATE groups SET max = -1 WHERE path = '/t' AND type = 'sev'");
    expect_refused_then_repaired("group /t has sev max '-1'");
    auto s = Store::open(db_);
    EXPECT_EQ(s.value()->snapshot()->group("/t").c[0].max, 0u);  // blocks, never unlimited
}

TEST_F(TamperTest, MaxThatIsNotANumber) {
    tamper("UPDATE groups SET max = 'lots' WHERE path = '/t' AND type = 'sev'");
    expect_refused_then_repaired("group /t has sev max 'lots'");
}

TEST_F(TamperTest, RootWithAMax) {
    tamper("UPDATE groups SET max = 2 WHERE path = '/' AND type = 'sev'");
    expect_refused_then_repaired("the root group has a sev max");
}

TEST_F(TamperTest, OrphanGroup) {
    tamper(
        "INSERT INTO groups VALUES('/x/y', 'sev', NULL, 0, 0, 0, 0);"
        "INSERT INTO groups VALUES('/x/y', 'sev_es', NULL, 0, 0, 0, 0)");
    expect_refused_then_repaired("group /x/y has no parent group /x");
    auto s = Store::open(db_);
    EXPECT_TRUE(s.value()->snapshot()->exists("/x"));  // re-created, the child kept
}

TEST_F(TamperTest, LeaseWithNegativeAsid) {
    tamper(
        "INSERT INTO leases(grp, type, asid, pid, start_time, created) VALUES('/t', 'sev', "
        "-7, 1, 0, 0); UPDATE groups SET usage = 2, peak = 2 WHERE type = 'sev'");
    expect_refused_then_repaired("holds sev ASID -7, outside the sev range 9-16");
}

TEST_F(TamperTest, TwoLeasesOnOneAsid) {
    tamper(
        "INSERT INTO leases(grp, type, asid, pid, start_time, created) VALUES('/t', 'sev', "
        "9, 1, 0, 0); UPDATE groups SET usage = 2, peak = 2 WHERE type = 'sev'");
    expect_refused_then_repaired("holds ASID 9, already held by lease");
}

TEST_F(TamperTest, LeaseInAMissingGroupKeepsItsLeaseOnRepair) {
    tamper("UPDATE leases SET grp = '/gone'");
    expect_refused_then_repaired("is in group '/gone', which does not exist");
    auto s = Store::open(db_);
    EXPECT_EQ(s.value()->snapshot()->group("/gone").c[0].usage, 1u);
}

TEST_F(TamperTest, LeasedAsidMarkedFree) {
    tamper("UPDATE meta SET value = zeroblob(17) WHERE key = 'in_use'");
    expect_refused_then_repaired("lease 1 holds ASID 9, which the bitmaps mark free");
}

TEST_F(TamperTest, BitmapOfTheWrongSize) {
    tamper("UPDATE meta SET value = zeroblob(4) WHERE key = 'reclaim'");
    expect_refused_then_repaired("the reclaim bitmap has 4 entries, expected 17");
    // Rebuilt conservatively: every ASID no lease held was marked reclaimed, so the charge
    // after the repair could only get one through a flush.
    auto s = Store::open(db_);
    EXPECT_EQ(s.value()->snapshot()->flushes(), 1u);
}

TEST_F(TamperTest, AsidInUseWithoutALease) {
    tamper("UPDATE meta SET value = X'0000000000000000000101000000000000' WHERE key = 'in_use'");
    expect_refused_then_repaired("ASID 10 is marked in use, but no lease holds it");
}

TEST_F(TamperTest, MaxAsidOutOfRange) {
    tamper("UPDATE meta SET value = 0 WHERE key = 'max_asid'");
    expect_refused_then_repaired("max_asid is 0, expected 1..65535", AsidRange{16, 9});
}

TEST_F(TamperTest, CounterThatIsNotAnInteger) {
    tamper("UPDATE groups SET events = 'x' WHERE path = '/t' AND type = 'sev_es'");
    expect_refused_then_repaired("group /t has sev_es events missing or not an integer");
}

TEST_F(TamperTest, GroupNameWithControlCharactersIsEscaped) {
    tamper("INSERT INTO groups VALUES('/a' || char(27) || '[2J', 'sev', NULL, 0, 0, 0, 0)");
    expect_refused_then_repaired("group '/a\\x1b[2J' has an invalid path");
}

TEST_F(TamperTest, RepairRefusesToChangeAUsableRange) {
    tamper("UPDATE groups SET usage = -1 WHERE path = '/t' AND type = 'sev'");
    auto s = Store::open(db_);
    auto r = s.value()->repair(AsidRange{20, 9});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EEXIST);
}

// Validation runs inside every transaction, also for a process that had the database open
// (and its state cached) before another process edited it.
TEST_F(TamperTest, TamperingUnderAnOpenStoreIsSeenByItsNextOperation) {
    auto s = Store::open(db_);
    ASSERT_TRUE(s.value()->snapshot().ok());
    tamper("UPDATE meta SET value = 0 WHERE key = 'min_sev_asid'");
    auto l = s.value()->acquire("/t", Type::Sev, getpid(), process_start_time(getpid()));
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.error().code, EBADMSG);
}

TEST_F(TamperTest, ConsistentDatabaseChecksCleanAndRepairChangesNothing) {
    auto s = Store::open(db_);
    EXPECT_TRUE(s.value()->check()->empty());
    auto fixes = s.value()->repair(std::nullopt);
    ASSERT_TRUE(fixes.ok());
    EXPECT_TRUE(fixes->empty());
}

// Two identical inits at once (issue 8, item 5): both succeed, neither claims corruption.
TEST(StoreInit, ConcurrentIdenticalInitsAllSucceed) {
    for (int round = 0; round < 5; ++round) {
        const auto dir = std::filesystem::temp_directory_path() /
                         ("softkvm-eid-init-race-" + std::to_string(getpid()));
        std::filesystem::remove_all(dir);
        const std::string db = (dir / "eid.db").string();
        std::vector<pid_t> kids;
        for (int p = 0; p < 6; ++p) {
            const pid_t pid = fork();
            if (pid == 0) {
                auto s = Store::init(db, AsidRange{16, 9});
                if (!s) std::fprintf(stderr, "%s\n", s.error().message.c_str());
                _exit(s ? 0 : 1);
            }
            kids.push_back(pid);
        }
        for (pid_t k : kids) {
            int ws = 0;
            waitpid(k, &ws, 0);
            EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << "round " << round;
        }
        auto s = Store::open(db);
        ASSERT_TRUE(s.ok());
        EXPECT_TRUE(s.value()->check()->empty());
        auto ev = s.value()->events();
        ASSERT_TRUE(ev.ok());
        int inits = 0;
        for (const EventRecord& e : ev.value()) inits += e.kind == "init";
        EXPECT_EQ(inits, 1);
        std::filesystem::remove_all(dir);
    }
}

}  // namespace
}  // namespace softkvm::eid
