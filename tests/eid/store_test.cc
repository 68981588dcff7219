// The SQLite store: durability, refusal to touch missing or corrupt databases, init
// conflicts, leases of dead owners.
#include "eid/store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

namespace softkvm::eid {
namespace {

class StoreTest : public ::testing::Test {
  protected:
    StoreTest() {
        dir_ = std::filesystem::temp_directory_path() /
               ("softkvm-eid-test-" + std::to_string(getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        db_ = (dir_ / "eid.db").string();
    }
    ~StoreTest() override { std::filesystem::remove_all(dir_); }
    std::filesystem::path dir_;
    std::string db_;
};

TEST_F(StoreTest, MissingDatabaseIsNotCreated) {
    auto s = Store::open(db_);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ENOENT);
    EXPECT_NE(s.error().message.find("softkvm eid init"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(db_));
}

TEST_F(StoreTest, CorruptDatabaseIsRefusedAndLeftAlone) {
    { std::ofstream(db_) << "this is not a database, it is a text file with some bytes\n"; }
    const auto size = std::filesystem::file_size(db_);
    auto s = Store::open(db_);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, EBADMSG);
    EXPECT_NE(s.error().message.find("move it aside"), std::string::npos);
    auto i = Store::init(db_, AsidRange{509, 100});
    ASSERT_FALSE(i.ok());
    EXPECT_EQ(i.error().code, EBADMSG);
    EXPECT_EQ(std::filesystem::file_size(db_), size);  // never re-created over it
}

TEST_F(StoreTest, InitIsIdempotentButRefusesADifferentRange) {
    ASSERT_TRUE(Store::init(db_, AsidRange{509, 100}).ok());
    ASSERT_TRUE(Store::init(db_, AsidRange{509, 100}).ok());
    auto again = Store::init(db_, AsidRange{509, 200});
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, EEXIST);
}

TEST_F(StoreTest, StateSurvivesReopening) {
    {
        auto s = Store::init(db_, AsidRange{20, 11});
        ASSERT_TRUE(s.ok());
        ASSERT_TRUE(s.value()
                        ->update([](Controller& c, std::vector<EventRecord>&) {
                            if (auto st = c.mkdir("/t"); !st) return st;
                            return c.set_max("/t", Type::Sev, 3);
                        })
                        .ok());
        ASSERT_TRUE(
            s.value()->acquire("/t", Type::Sev, getpid(), process_start_time(getpid())).ok());
    }
    auto s = Store::open(db_);
    ASSERT_TRUE(s.ok());
    auto snap = s.value()->snapshot();
    ASSERT_TRUE(snap.ok());
    EXPECT_EQ(snap->group("/t").c[0].max, 3u);
    EXPECT_EQ(snap->group("/t").c[0].usage, 1u);
    auto leases = s.value()->leases();
    ASSERT_TRUE(leases.ok());
    ASSERT_EQ(leases->size(), 1u);
    EXPECT_EQ(leases->at(0).asid, 11u);
}

TEST_F(StoreTest, LeaseOfADeadProcessIsReleasedByTheNextOperation) {
    auto s = Store::init(db_, AsidRange{20, 11});
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(s.value()
                    ->update([](Controller& c, std::vector<EventRecord>&) { return c.mkdir("/t"); })
                    .ok());
    const pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    auto l = s.value()->acquire("/t", Type::Sev, child, process_start_time(child));
    ASSERT_TRUE(l.ok()) << l.error().message;
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    auto snap = s.value()->snapshot();
    ASSERT_TRUE(snap.ok());
    EXPECT_EQ(snap->group("/t").c[0].usage, 0u);
    EXPECT_TRUE(s.value()->leases()->empty());
    auto ev = s.value()->events();
    ASSERT_TRUE(ev.ok());
    bool reaped = false;
    for (const auto& e : ev.value()) reaped |= e.kind == "reaped";
    EXPECT_TRUE(reaped);
}

TEST_F(StoreTest, ReleasingAnUnknownLeaseIsEnoent) {
    auto s = Store::init(db_, AsidRange{20, 11});
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s.value()->release(42).error().code, ENOENT);
}

TEST_F(StoreTest, ProcessStartTimeIdentifiesThisProcess) {
    EXPECT_NE(process_start_time(getpid()), 0u);
    EXPECT_EQ(process_start_time(0), 0u);
    EXPECT_EQ(process_start_time(999999999), 0u);
}

}  // namespace
}  // namespace softkvm::eid

namespace softkvm::eid {
namespace {

// Many processes charge and release against one database at once; every one checks,
// while it holds its ID, that no group is over its limit and no ASID is held twice.
TEST_F(StoreTest, ConcurrentProcessesNeverExceedLimitsOrShareAsids) {
    {
        auto s = Store::init(db_, AsidRange{12, 7});  // sev 7..12: capacity 6
        ASSERT_TRUE(s.ok());
        ASSERT_TRUE(s.value()
                        ->update([](Controller& c, std::vector<EventRecord>&) {
                            if (auto st = c.mkdir("/a"); !st) return st;
                            if (auto st = c.mkdir("/b"); !st) return st;
                            return c.set_max("/a", Type::Sev, 3);
                        })
                        .ok());
    }
    constexpr int kProcs = 8, kRounds = 40;
    std::vector<pid_t> kids;
    for (int p = 0; p < kProcs; ++p) {
        const pid_t pid = fork();
        if (pid == 0) {
            int bad = 0;
            auto s = Store::open(db_);
            if (!s) _exit(10);
            const std::string group = p % 2 ? "/a" : "/b";
            const uint64_t st = process_start_time(getpid());
            for (int r = 0; r < kRounds; ++r) {
                auto l = s.value()->acquire(group, Type::Sev, getpid(), st);
                if (!l) {
                    if (l.error().code != EBUSY) bad |= 1;
                    continue;
                }
                auto snap = s.value()->snapshot();
                auto leases = s.value()->leases();
                if (!snap || !leases) {
                    bad |= 2;
                } else {
                    for (const auto& [path, g] : snap->groups()) {
                        const Counters& k = g.c[0];
                        if (k.usage > k.max || k.usage > snap->capacity(Type::Sev)) bad |= 4;
                    }
                    std::vector<int> seen(13, 0);
                    for (const Lease& x : leases.value())
                        if (x.asid < 7 || x.asid > 12 || seen[x.asid]++) bad |= 8;
                }
                if (!s.value()->release(l->id)) bad |= 16;
            }
            _exit(bad);
        }
        kids.push_back(pid);
    }
    for (pid_t k : kids) {
        int ws = 0;
        waitpid(k, &ws, 0);
        EXPECT_TRUE(WIFEXITED(ws));
        EXPECT_EQ(WEXITSTATUS(ws), 0) << "child saw an invariant broken (bitmask)";
    }
    auto s = Store::open(db_);
    ASSERT_TRUE(s.ok());
    auto snap = s.value()->snapshot();
    ASSERT_TRUE(snap.ok());
    EXPECT_EQ(snap->group("/").c[0].usage, 0u);  // everything given back
    EXPECT_LE(snap->group("/a").c[0].peak, 3u);
    EXPECT_LE(snap->group("/").c[0].peak, 6u);
    EXPECT_TRUE(s.value()->leases()->empty());
}

}  // namespace
}  // namespace softkvm::eid
