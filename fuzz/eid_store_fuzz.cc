// Fuzz target: the encryption-ID store's loader on random database contents. The input
// becomes rows of an in-memory database with softkvm's schema (meta values of any SQLite
// type, bitmaps of any size, groups and leases with hostile paths, types and numbers,
// live and dead owners), then a few operations run on it.
// Oracle: no crash, sanitizer report or hang; check() finds a problem exactly when the
// store refuses to load (EBADMSG); on a database it accepts, acquire/release/set/mkdir/
// rmdir keep it consistent (usage = leases) and never hand out an ASID twice; repair()
// always yields a database that loads and checks clean.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "eid/store.h"

using namespace softkvm::eid;

namespace {

// Reads the input a little at a time; zeros when it runs out.
class Bytes {
  public:
    Bytes(const uint8_t* d, size_t n) : d_(d), n_(n) {}
    uint8_t u8() { return i_ < n_ ? d_[i_++] : 0; }
    int64_t i64() {
        switch (u8() % 8) {  // mostly small numbers, sometimes edges
            case 0:
                return -static_cast<int64_t>(u8());
            case 1:
                return INT64_MAX - u8();
            case 2:
                return INT64_MIN + u8();
            case 3:
                return static_cast<int64_t>(u8()) << 8 | u8();
            default:
                return u8() % 20;
        }
    }
    std::string str(size_t max) {
        std::string s;
        for (size_t k = u8() % (max + 1); k > 0; --k) s += static_cast<char>(u8());
        return s;
    }
    bool done() const { return i_ >= n_; }

  private:
    const uint8_t* d_;
    size_t n_, i_ = 0;
};

const char* const kPaths[] = {"/",   "/a",    "/a/b", "/b",        "/a/b/c",  "a",
                              "/a/", "/a//b", "/..",  "/misc.max", "/\x1b[2J"};
const char* const kTypeNames[] = {"sev", "sev_es", "tdx", "sev-es", ""};

std::string path(Bytes& b) {
    const uint8_t k = b.u8();
    return k < 240 ? kPaths[k % 11] : "/" + b.str(8);
}

// Binds a value of a random SQLite type: integer, NULL, text or blob.
void bind_any(sqlite3_stmt* s, int i, Bytes& b) {
    switch (b.u8() % 8) {
        case 0:
            sqlite3_bind_null(s, i);
            break;
        case 1: {
            const std::string t = b.str(6);
            sqlite3_bind_text(s, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
            break;
        }
        case 2:
            sqlite3_bind_double(s, i, 1.5);
            break;
        default:
            sqlite3_bind_int64(s, i, b.i64());
    }
}

void exec(sqlite3* db, const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) std::abort();
}

[[noreturn]] void broken(const std::string& why) {
    std::fprintf(stderr, "eid store fuzz: %s\n", why.c_str());
    std::abort();
}

// The state is consistent and no ASID is held twice.
void expect_consistent(Store& s) {
    auto problems = s.check();
    if (!problems) broken(problems.error().message);
    if (!problems->empty()) broken("inconsistent after an operation: " + problems->front());
    auto v = s.view();
    if (!v) broken(v.error().message);
    std::set<uint32_t> held;
    for (const Lease& l : v.value()->leases)
        if (!held.insert(l.asid).second) std::abort();
}

}  // namespace

// One in-memory database and store for the whole run (opening one and preparing its
// statements costs milliseconds under AddressSanitizer); each input empties the tables.
sqlite3* g_db = nullptr;
std::unique_ptr<Store> g_store;
sqlite3_stmt *g_meta = nullptr, *g_group = nullptr, *g_lease = nullptr;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (sqlite3_open(":memory:", &g_db) != SQLITE_OK) std::abort();
    exec(g_db, Store::schema_sql());
    g_store = Store::adopt(g_db, "fuzz.db");
    const std::pair<sqlite3_stmt**, const char*> stmts[] = {
        {&g_meta, "INSERT OR REPLACE INTO meta VALUES(?, ?)"},
        {&g_group, "INSERT OR REPLACE INTO groups VALUES(?, ?, ?, ?, ?, ?, ?)"},
        {&g_lease,
         "INSERT INTO leases(grp, type, asid, pid, start_time, created) VALUES(?, ?, ?, ?, ?, "
         "?)"}};
    for (const auto& [st, sql] : stmts)
        if (sqlite3_prepare_v2(g_db, sql, -1, st, nullptr) != SQLITE_OK) std::abort();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Bytes b(data, size);
    sqlite3* db = g_db;
    Store* store = g_store.get();
    exec(db,
         "DELETE FROM meta; DELETE FROM groups; DELETE FROM leases; DELETE FROM events; "
         "DELETE FROM sqlite_sequence; INSERT INTO meta VALUES('schema', 'softkvm-eid-1')");
    const uint64_t me = process_start_time(getpid());
    {
        sqlite3_stmt* s = g_meta;
        // Meta: the range mostly sane (1-16, min 9) so deeper checks are reached.
        const uint8_t mode = b.u8();
        const int64_t max_asid = mode & 1 ? b.i64() : 16, min_sev = mode & 2 ? b.i64() : 9;
        const std::pair<const char*, int64_t> ints[] = {
            {"max_asid", max_asid}, {"min_sev_asid", min_sev}, {"flushes", mode & 4 ? b.i64() : 0}};
        for (const auto& [k, v] : ints) {
            if (mode & 8 && b.u8() % 4 == 0) continue;  // missing
            sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
            if (mode & 16)
                bind_any(s, 2, b);
            else
                sqlite3_bind_int64(s, 2, v);
            sqlite3_step(s);
            sqlite3_reset(s);
        }
        for (const char* k : {"in_use", "reclaim"}) {
            std::string bits(17, '\0');
            if (mode & 32) bits.resize(b.u8() % 24);
            for (char& c : bits) c = static_cast<char>(b.u8() % 3 == 0 ? (b.u8() % 4) : 0);
            sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
            sqlite3_bind_blob(s, 2, bits.data(), static_cast<int>(bits.size()), SQLITE_TRANSIENT);
            sqlite3_step(s);
            sqlite3_reset(s);
        }
        // Groups: the root and a few others, counters mostly small.
        s = g_group;
        for (int n = b.u8() % 8; n >= 0; --n) {
            const std::string p = n == 0 ? "/" : path(b);
            const uint8_t t = b.u8();
            sqlite3_bind_text(s, 1, p.data(), static_cast<int>(p.size()), SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 2, kTypeNames[t % 5 < 3 ? t % 2 : t % 5], -1, SQLITE_STATIC);
            if (t & 0x80)
                bind_any(s, 3, b);
            else
                sqlite3_bind_null(s, 3);
            for (int c = 4; c <= 7; ++c)
                if (t & 0x40)
                    bind_any(s, c, b);
                else
                    sqlite3_bind_int64(s, c, b.u8() % 3);
            sqlite3_step(s);
            sqlite3_reset(s);
        }
        // Leases: owners alive (this process) or dead.
        s = g_lease;
        for (int n = b.u8() % 5; n > 0; --n) {
            const std::string p = path(b);
            const uint8_t t = b.u8();
            sqlite3_bind_text(s, 1, p.data(), static_cast<int>(p.size()), SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 2, kTypeNames[t % 5 < 3 ? t % 2 : t % 5], -1, SQLITE_STATIC);
            if (t & 0x80)
                bind_any(s, 3, b);
            else
                sqlite3_bind_int64(s, 3, b.u8() % 18);
            const bool live = t & 0x40;
            sqlite3_bind_int64(s, 4, live ? getpid() : 1 + b.u8());
            sqlite3_bind_int64(s, 5, live ? static_cast<int64_t>(me) : b.i64());
            bind_any(s, 6, b);
            sqlite3_step(s);
            sqlite3_reset(s);
        }
    }
    for (sqlite3_stmt* st : {g_meta, g_group, g_lease}) sqlite3_clear_bindings(st);
    store->forget();  // the rows above came through the store's own connection

    auto problems = store->check();
    if (!problems) std::abort();  // the tables are there: only contents can be wrong
    auto v = store->view();
    if (v.ok() != problems->empty()) std::abort();
    if (!v.ok() && v.error().code != EBADMSG) std::abort();
    if (!v.ok()) {
        auto fixed = store->repair(std::nullopt);
        if (!fixed && fixed.error().code == EINVAL) fixed = store->repair(AsidRange{16, 9});
        if (!fixed) std::abort();
        expect_consistent(*store);
    }
    // Up to four operations on a consistent database keep it consistent.
    std::vector<int64_t> mine;
    for (int ops = 0; ops < 4 && !b.done(); ++ops) {
        const uint8_t op = b.u8();
        const std::string g = kPaths[b.u8() % 5];
        const Type t = op & 0x10 ? Type::SevEs : Type::Sev;
        softkvm::Status st;
        switch (op % 5) {
            case 0: {
                auto l = store->acquire(g, t, getpid(), me);
                if (l) mine.push_back(l->id);
                if (!l && l.error().code != EBUSY && l.error().code != ENOENT &&
                    l.error().code != EINVAL)
                    std::abort();
                break;
            }
            case 1:
                if (!mine.empty()) {
                    if (!store->release(mine.back())) std::abort();
                    mine.pop_back();
                }
                break;
            case 2:
                st = store->update([&](Controller& c, std::vector<EventRecord>&) {
                    return c.set_max(g, t, b.u8() % 4);
                });
                break;
            case 3:
                st = store->update(
                    [&](Controller& c, std::vector<EventRecord>&) { return c.mkdir(g); });
                break;
            case 4:
                st = store->update(
                    [&](Controller& c, std::vector<EventRecord>&) { return c.rmdir(g); });
                break;
        }
        if (!st && st.error().code == EBADMSG) broken(st.error().message);
    }
    expect_consistent(*store);
    auto end = store->view();
    if (!end) std::abort();
    for (const auto& [p, grp] : end.value()->controller.groups())
        for (const Counters& k : grp.c)
            if (k.usage > k.peak) std::abort();
    return 0;
}
