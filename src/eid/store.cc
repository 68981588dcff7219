#include "eid/store.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace softkvm::eid {
namespace {

// RAII prepared statement.
class Stmt {
  public:
    Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
    ~Stmt() { sqlite3_finalize(s_); }
    bool ok() const { return rc_ == SQLITE_OK; }
    Stmt& bind(int i, int64_t v) {
        sqlite3_bind_int64(s_, i, v);
        return *this;
    }
    Stmt& bind(int i, const std::string& v) {
        sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Stmt& bind_blob(int i, const std::vector<uint8_t>& v) {
        sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Stmt& bind_null(int i) {
        sqlite3_bind_null(s_, i);
        return *this;
    }
    int step() { return rc_ = sqlite3_step(s_); }
    int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
    bool null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
    std::string text(int c) const {
        const auto* p = sqlite3_column_text(s_, c);
        return p ? reinterpret_cast<const char*>(p) : "";
    }
    std::vector<uint8_t> blob(int c) const {
        const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, c));
        return p ? std::vector<uint8_t>(p, p + sqlite3_column_bytes(s_, c))
                 : std::vector<uint8_t>{};
    }
    int rc() const { return rc_; }

  private:
    sqlite3_stmt* s_ = nullptr;
    int rc_;
};

constexpr const char* kCreate = R"(
CREATE TABLE meta(key TEXT PRIMARY KEY, value);
CREATE TABLE groups(path TEXT NOT NULL, type TEXT NOT NULL, max INTEGER, usage INTEGER NOT NULL,
                    peak INTEGER NOT NULL, events INTEGER NOT NULL, events_local INTEGER NOT NULL,
                    PRIMARY KEY(path, type));
CREATE TABLE leases(id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, type TEXT NOT NULL,
                    asid INTEGER NOT NULL, pid INTEGER NOT NULL, start_time INTEGER NOT NULL,
                    created INTEGER NOT NULL);
CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,
                    kind TEXT NOT NULL, detail TEXT NOT NULL);
)";

Error corrupt(const std::string& path, const std::string& why) {
    return make_error(fmt::format("{} is not a usable softkvm encryption-ID database ({}); move "
                                  "it aside and recreate it with 'softkvm eid init'",
                                  path, why),
                      EBADMSG);
}

int64_t now() {
    return static_cast<int64_t>(std::time(nullptr));
}

}  // namespace

uint64_t process_start_time(int pid) {
    if (pid <= 0) return 0;
    std::ifstream f(fmt::format("/proc/{}/stat", pid));
    std::string line;
    if (!std::getline(f, line)) return 0;
    // Field 2 (comm) may contain spaces: count fields after the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    // Fields 3..22: state is field 3; start time is field 22.
    for (int k = 3; k <= 22; ++k)
        if (!(rest >> field)) return 0;
    return std::strtoull(field.c_str(), nullptr, 10);
}

Error Store::sql_error(const char* what) const {
    return make_error(fmt::format("{}: {}: {}", path_, what, sqlite3_errmsg(db_)), EIO);
}

Status Store::exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "?";
        sqlite3_free(err);
        return make_error(fmt::format("{}: {}", path_, msg), EIO);
    }
    return {};
}

Store::~Store() {
    sqlite3_close(db_);
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        return make_error(fmt::format("no encryption-ID database at {}; create it with 'softkvm "
                                      "eid init --sev-asids 1-N --min-sev-asid M --eid-db {}'",
                                      path, path),
                          ENOENT);
    if (!S_ISREG(st.st_mode)) return corrupt(path, "not a regular file");
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        const std::string msg = db ? sqlite3_errmsg(db) : "cannot open";
        sqlite3_close(db);
        return make_error(fmt::format("{}: {}", path, msg), EACCES);
    }
    std::unique_ptr<Store> s(new Store(db, path));
    sqlite3_busy_timeout(db, 30000);
    // WAL with synchronous=NORMAL cannot corrupt the database; a power loss may forget the
    // last transactions, which only concern processes that died with the host anyway.
    (void)s->exec("PRAGMA synchronous=NORMAL");
    Stmt q(db, "SELECT value FROM meta WHERE key = 'schema'");
    if (!q.ok()) return corrupt(path, sqlite3_errmsg(db));
    if (q.step() != SQLITE_ROW || q.text(0) != kSchema) return corrupt(path, "no softkvm schema");
    return s;
}

Result<std::unique_ptr<Store>> Store::init(const std::string& path, AsidRange range) {
    if (range.max_asid == 0 || range.min_sev_asid < 1 || range.min_sev_asid > range.max_asid + 1)
        return make_error("ASID range is empty or inconsistent", EINVAL);
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
        auto s = open(path);
        if (!s) return s.error();
        auto snap = s.value()->snapshot();
        if (!snap) return snap.error();
        const AsidRange& have = snap->range();
        if (have.max_asid != range.max_asid || have.min_sev_asid != range.min_sev_asid)
            return make_error(fmt::format("{} is already initialised with ASIDs 1-{} and "
                                          "min SEV ASID {}; refusing to change it",
                                          path, have.max_asid, have.min_sev_asid),
                              EEXIST);
        return s;
    }
    const auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
        const std::string msg = db ? sqlite3_errmsg(db) : "cannot create";
        sqlite3_close(db);
        return make_error(fmt::format("{}: {}", path, msg), EACCES);
    }
    std::unique_ptr<Store> s(new Store(db, path));
    sqlite3_busy_timeout(db, 30000);
    if (auto st = s->exec("PRAGMA journal_mode=WAL"); !st) return st.error();
    if (auto st = s->begin(); !st) return st.error();
    if (auto st = s->exec(kCreate); !st) return st.error();
    Stmt m(db, "INSERT INTO meta(key, value) VALUES('schema', ?)");
    m.bind(1, std::string(kSchema)).step();
    Controller c(range);
    c.set_range(range);
    if (auto st = s->save(c); !st) return st.error();
    if (auto st = s->append_events(
            {{0, now(), "init",
              fmt::format("ASIDs 1-{}, min SEV ASID {}", range.max_asid, range.min_sev_asid)}});
        !st)
        return st.error();
    if (auto st = s->commit(); !st) return st.error();
    return s;
}

Status Store::begin() {
    // IMMEDIATE: take the write lock now, so two processes never both read, then write.
    return exec("BEGIN IMMEDIATE");
}
Status Store::commit() {
    return exec("COMMIT");
}
void Store::rollback() {
    (void)exec("ROLLBACK");
}

Status Store::load(Controller& c) {
    AsidRange r;
    std::vector<uint8_t> in_use, reclaim;
    uint64_t flushes = 0;
    Stmt m(db_, "SELECT key, value FROM meta");
    if (!m.ok()) return corrupt(path_, sqlite3_errmsg(db_));
    while (m.step() == SQLITE_ROW) {
        const std::string k = m.text(0);
        if (k == "max_asid") r.max_asid = static_cast<uint32_t>(m.i64(1));
        if (k == "min_sev_asid") r.min_sev_asid = static_cast<uint32_t>(m.i64(1));
        if (k == "flushes") flushes = static_cast<uint64_t>(m.i64(1));
        if (k == "in_use") in_use = m.blob(1);
        if (k == "reclaim") reclaim = m.blob(1);
    }
    if (r.max_asid == 0 || in_use.size() != r.max_asid + 1u || reclaim.size() != in_use.size())
        return corrupt(path_, "ASID state is missing or inconsistent");
    c = Controller(r);
    c.in_use() = std::move(in_use);
    c.reclaim() = std::move(reclaim);
    c.set_flushes(flushes);
    Stmt g(db_, "SELECT path, type, max, usage, peak, events, events_local FROM groups");
    if (!g.ok()) return corrupt(path_, sqlite3_errmsg(db_));
    while (g.step() == SQLITE_ROW) {
        Type t;
        if (!parse_type(g.text(1), t)) return corrupt(path_, "unknown type " + g.text(1));
        Counters& k = c.mutable_groups()[g.text(0)].c[static_cast<int>(t)];
        k.max = g.null(2) ? kUnlimited : static_cast<uint64_t>(g.i64(2));
        k.usage = static_cast<uint64_t>(g.i64(3));
        k.peak = static_cast<uint64_t>(g.i64(4));
        k.events = static_cast<uint64_t>(g.i64(5));
        k.events_local = static_cast<uint64_t>(g.i64(6));
    }
    if (!c.exists("/")) return corrupt(path_, "root group missing");
    return {};
}

Status Store::save(const Controller& c) {
    if (auto st = exec("DELETE FROM meta WHERE key <> 'schema'; DELETE FROM groups"); !st)
        return st;
    auto put = [&](const char* k, int64_t v) {
        Stmt s(db_, "INSERT INTO meta(key, value) VALUES(?, ?)");
        s.bind(1, std::string(k)).bind(2, v).step();
        return s.rc() == SQLITE_DONE;
    };
    auto put_blob = [&](const char* k, const std::vector<uint8_t>& v) {
        Stmt s(db_, "INSERT INTO meta(key, value) VALUES(?, ?)");
        s.bind(1, std::string(k)).bind_blob(2, v).step();
        return s.rc() == SQLITE_DONE;
    };
    Controller& mc = const_cast<Controller&>(c);
    if (!put("max_asid", c.range().max_asid) || !put("min_sev_asid", c.range().min_sev_asid) ||
        !put("flushes", static_cast<int64_t>(c.flushes())) || !put_blob("in_use", mc.in_use()) ||
        !put_blob("reclaim", mc.reclaim()))
        return sql_error("saving state");
    for (const auto& [path, g] : c.groups()) {
        for (const TypeInfo& t : kTypes) {
            const Counters& k = g.c[static_cast<int>(t.type)];
            Stmt s(db_,
                   "INSERT INTO groups(path, type, max, usage, peak, events, events_local) "
                   "VALUES(?, ?, ?, ?, ?, ?, ?)");
            s.bind(1, path).bind(2, std::string(t.name));
            if (k.max == kUnlimited)
                s.bind_null(3);
            else
                s.bind(3, static_cast<int64_t>(k.max));
            s.bind(4, static_cast<int64_t>(k.usage))
                .bind(5, static_cast<int64_t>(k.peak))
                .bind(6, static_cast<int64_t>(k.events))
                .bind(7, static_cast<int64_t>(k.events_local));
            if (s.step() != SQLITE_DONE) return sql_error("saving groups");
        }
    }
    return {};
}

Status Store::append_events(const std::vector<EventRecord>& log) {
    for (const EventRecord& e : log) {
        Stmt s(db_, "INSERT INTO events(time, kind, detail) VALUES(?, ?, ?)");
        s.bind(1, e.time ? e.time : now()).bind(2, e.kind).bind(3, e.detail);
        if (s.step() != SQLITE_DONE) return sql_error("logging an event");
    }
    return {};
}

// Releases every lease whose owner is gone (dead, or its pid reused by another process).
Status Store::reap(Controller& c, std::vector<EventRecord>& log) {
    std::vector<Lease> dead;
    {
        Stmt q(db_, "SELECT id, grp, type, asid, pid, start_time FROM leases");
        if (!q.ok()) return corrupt(path_, sqlite3_errmsg(db_));
        while (q.step() == SQLITE_ROW) {
            Lease l;
            l.id = q.i64(0);
            l.group = q.text(1);
            if (!parse_type(q.text(2), l.type)) return corrupt(path_, "bad lease type");
            l.asid = static_cast<uint32_t>(q.i64(3));
            l.pid = static_cast<int>(q.i64(4));
            l.start_time = static_cast<uint64_t>(q.i64(5));
            if (process_start_time(l.pid) != l.start_time) dead.push_back(l);
        }
    }
    for (const Lease& l : dead) {
        c.release(l.group, l.type, l.asid);
        Stmt d(db_, "DELETE FROM leases WHERE id = ?");
        d.bind(1, l.id).step();
        log.push_back({0, now(), "reaped",
                       fmt::format("lease {} ({} ASID {} in {}) of dead pid {}", l.id,
                                   info(l.type).name, l.asid, l.group, l.pid)});
    }
    return {};
}

Status Store::update(const Op& op) {
    if (auto st = begin(); !st) return st;
    Controller c;
    std::vector<EventRecord> log;
    Status result;
    if (auto st = load(c); !st) {
        rollback();
        return st;
    }
    if (auto st = reap(c, log); !st) {
        rollback();
        return st;
    }
    const uint64_t flushes_before = c.flushes();
    result = op(c, log);
    if (c.flushes() != flushes_before)
        log.push_back(
            {0, now(), "flush", fmt::format("reclaimed ASIDs flushed (flush #{})", c.flushes())});
    if (auto st = save(c); !st) {
        rollback();
        return st;
    }
    if (auto st = append_events(log); !st) {
        rollback();
        return st;
    }
    if (auto st = commit(); !st) {
        rollback();
        return st;
    }
    return result;
}

Result<Controller> Store::snapshot() {
    Controller out;
    auto st = update([&](Controller& c, std::vector<EventRecord>&) {
        out = c;
        return Status{};
    });
    if (!st) return st.error();
    return out;
}

Result<Lease> Store::acquire(const std::string& group, Type t, int pid, uint64_t start_time) {
    Lease lease;
    auto st = update([&](Controller& c, std::vector<EventRecord>& log) -> Status {
        auto asid = c.allocate(group, t);
        if (!asid) {
            log.push_back(
                {0, now(), "refused", fmt::format("pid {}: {}", pid, asid.error().message)});
            return asid.error();
        }
        Stmt s(db_,
               "INSERT INTO leases(grp, type, asid, pid, start_time, created) "
               "VALUES(?, ?, ?, ?, ?, ?)");
        lease = {0, group, t, asid.value(), pid, start_time, now()};
        s.bind(1, group).bind(2, std::string(info(t).name)).bind(3, asid.value()).bind(4, pid);
        s.bind(5, static_cast<int64_t>(start_time)).bind(6, lease.created);
        if (s.step() != SQLITE_DONE) return sql_error("recording the lease");
        lease.id = sqlite3_last_insert_rowid(db_);
        log.push_back({0, now(), "acquired",
                       fmt::format("lease {} ({} ASID {} in {}) by pid {}", lease.id, info(t).name,
                                   lease.asid, group, pid)});
        return {};
    });
    if (!st) return st.error();
    return lease;
}

Status Store::release(int64_t lease_id) {
    return update([&](Controller& c, std::vector<EventRecord>& log) -> Status {
        Stmt q(db_, "SELECT grp, type, asid FROM leases WHERE id = ?");
        q.bind(1, lease_id);
        if (q.step() != SQLITE_ROW)
            return make_error(fmt::format("lease {} is not held", lease_id), ENOENT);
        Type t;
        if (!parse_type(q.text(1), t)) return corrupt(path_, "bad lease type");
        const std::string group = q.text(0);
        const auto asid = static_cast<uint32_t>(q.i64(2));
        c.release(group, t, asid);
        Stmt d(db_, "DELETE FROM leases WHERE id = ?");
        d.bind(1, lease_id).step();
        log.push_back(
            {0, now(), "released",
             fmt::format("lease {} ({} ASID {} in {})", lease_id, info(t).name, asid, group)});
        return {};
    });
}

Result<std::vector<Lease>> Store::leases() {
    std::vector<Lease> out;
    auto st = update([&](Controller&, std::vector<EventRecord>&) -> Status {
        Stmt q(db_, "SELECT id, grp, type, asid, pid, start_time, created FROM leases ORDER BY id");
        while (q.step() == SQLITE_ROW) {
            Lease l;
            l.id = q.i64(0);
            l.group = q.text(1);
            parse_type(q.text(2), l.type);
            l.asid = static_cast<uint32_t>(q.i64(3));
            l.pid = static_cast<int>(q.i64(4));
            l.start_time = static_cast<uint64_t>(q.i64(5));
            l.created = q.i64(6);
            out.push_back(l);
        }
        return {};
    });
    if (!st) return st.error();
    return out;
}

Result<std::vector<EventRecord>> Store::events(int64_t after_id) {
    std::vector<EventRecord> out;
    Stmt q(db_, "SELECT id, time, kind, detail FROM events WHERE id > ? ORDER BY id");
    if (!q.ok()) return corrupt(path_, sqlite3_errmsg(db_));
    q.bind(1, after_id);
    while (q.step() == SQLITE_ROW) out.push_back({q.i64(0), q.i64(1), q.text(2), q.text(3)});
    return out;
}

}  // namespace softkvm::eid
