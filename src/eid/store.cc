#include "eid/store.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "eid/files.h"

namespace softkvm::eid {
namespace {

// RAII prepared statement: its own, or borrowed from a Store's cache (prepared once per
// connection, reset and unbound when given back).
class Stmt {
  public:
    Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
    Stmt(sqlite3* db, Store::StmtCache& cache, const char* sql) : cached_(true) {
        auto it = cache.find(sql);
        if (it == cache.end()) {
            rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
            if (rc_ != SQLITE_OK) {
                sqlite3_finalize(s_);
                s_ = nullptr;
                return;
            }
            cache.emplace(sql, s_);
        } else {
            s_ = it->second;
            rc_ = SQLITE_OK;
        }
    }
    ~Stmt() {
        if (!cached_) {
            sqlite3_finalize(s_);
        } else if (s_) {
            sqlite3_reset(s_);
            sqlite3_clear_bindings(s_);
        }
    }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
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
    sqlite3_stmt* get() const { return s_; }

  private:
    sqlite3_stmt* s_ = nullptr;
    int rc_ = SQLITE_ERROR;
    bool cached_ = false;
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

// Why a database cannot be used at all (as opposed to inconsistent contents, which
// `softkvm eid repair` fixes).
Error unusable(const std::string& path, const std::string& why) {
    return make_error(fmt::format("{} is not a usable softkvm encryption-ID database ({}); move "
                                  "it aside and recreate it with 'softkvm eid init'",
                                  printable(path), why),
                      EBADMSG);
}

Error inconsistent(const std::string& path, const std::vector<std::string>& problems) {
    const std::string p = printable(path);
    return make_error(
        fmt::format("{} is inconsistent: {}{}; nothing was changed. List every problem with "
                    "'softkvm eid check --eid-db {}'; fix them, keeping every valid lease, with "
                    "'softkvm eid repair --eid-db {}'",
                    p, problems.front(),
                    problems.size() > 1 ? fmt::format(" (and {} more)", problems.size() - 1) : "",
                    p, p),
        EBADMSG);
}

Error read_only_error(const std::string& path) {
    return make_error(fmt::format("{} is read-only (the file or its directory is not writable by "
                                  "this user): it can be listed but not changed",
                                  printable(path)),
                      EROFS);
}

// errno for an SQLite result code.
int errno_of(int rc) {
    switch (rc & 0xff) {
        case SQLITE_READONLY:
            return EROFS;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            return EBADMSG;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            return ETIMEDOUT;
        default:
            return EIO;
    }
}

// A stored integer: absent unless SQLite holds an INTEGER.
StoredInt int_col(sqlite3_stmt* s, int c) {
    if (sqlite3_column_type(s, c) != SQLITE_INTEGER) return std::nullopt;
    return sqlite3_column_int64(s, c);
}

std::string text_col(sqlite3_stmt* s, int c) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, c))) : std::string();
}

// "file:" URI for `path` (RFC 3986 escapes for the characters SQLite's URI parser treats
// specially).
std::string file_uri(const std::string& path, const char* query) {
    std::string out = "file:";
    for (const char ch : path) {
        if (ch == '%' || ch == '?' || ch == '#' || static_cast<unsigned char>(ch) < 0x20)
            out += fmt::format("%{:02X}", static_cast<unsigned char>(ch));
        else
            out += ch;
    }
    return out + "?" + query;
}

bool writable(const std::string& path) {
    const auto dir = std::filesystem::path(path).parent_path();
    return ::access(path.c_str(), W_OK) == 0 &&
           ::access(dir.empty() ? "." : dir.c_str(), W_OK) == 0;
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
    const int rc = sqlite3_extended_errcode(db_);
    if ((rc & 0xff) == SQLITE_READONLY) return read_only_error(path_);
    if (errno_of(rc) == EBADMSG) return unusable(path_, sqlite3_errmsg(db_));
    return make_error(fmt::format("{}: {}: {}", printable(path_), what, sqlite3_errmsg(db_)),
                      errno_of(rc));
}

Status Store::exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return sql_error(sql);
    return {};
}

Store::~Store() {
    for (auto& [sql, st] : stmts_) sqlite3_finalize(st);
    sqlite3_close(db_);
}

const char* Store::schema_sql() {
    return kCreate;
}

std::unique_ptr<Store> Store::adopt(sqlite3* db, std::string name) {
    std::unique_ptr<Store> s(new Store(db, std::move(name)));
    s->read_only_ = sqlite3_db_readonly(db, "main") == 1;
    return s;
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT)
            return make_error(fmt::format("{}: {}", printable(path), std::strerror(errno)), EIO);
        return make_error(fmt::format("no encryption-ID database at {}; create it with 'softkvm "
                                      "eid init --sev-asids 1-N --min-sev-asid M --eid-db {}'",
                                      printable(path), printable(path)),
                          ENOENT);
    }
    if (!S_ISREG(st.st_mode)) return unusable(path, "not a regular file");
    if (::access(path.c_str(), R_OK) != 0)
        return make_error(fmt::format("{}: cannot read: {}", printable(path), std::strerror(errno)),
                          EIO);
    // SQLite opens a file it cannot write read-only. A WAL database also needs its -shm
    // file; in a directory this user cannot write, read it as immutable instead.
    const bool can_write = writable(path);
    sqlite3* db = nullptr;
    int rc = can_write ? sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr)
                       : sqlite3_open_v2(file_uri(path, "immutable=1").c_str(), &db,
                                         SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
    if (rc != SQLITE_OK) {
        const std::string msg = db ? sqlite3_errmsg(db) : "cannot open";
        sqlite3_close(db);
        return make_error(fmt::format("{}: {}", printable(path), msg), errno_of(rc));
    }
    std::unique_ptr<Store> s(new Store(db, path));
    s->read_only_ = !can_write || sqlite3_db_readonly(db, "main") == 1;
    sqlite3_busy_timeout(db, 30000);
    // WAL with synchronous=NORMAL cannot corrupt the database; a power loss may forget the
    // last transactions, which only concern processes that died with the host anyway.
    if (!s->read_only_) (void)s->exec("PRAGMA synchronous=NORMAL");
    auto tables = [&](int64_t& n, bool& meta) -> Status {
        Stmt q(db, "SELECT count(*), sum(name = 'meta') FROM sqlite_master WHERE type = 'table'");
        if (!q.ok() || q.step() != SQLITE_ROW) return s->sql_error("reading the schema");
        n = q.i64(0), meta = q.i64(1) > 0;
        return {};
    };
    int64_t n = 0;
    bool meta = false;
    if (auto st = tables(n, meta); !st) return st.error();
    if (n == 0 && !s->read_only_) {
        // Empty: possibly another process's `eid init` between creating the file and
        // committing the tables. Its write lock ends when it has; look again then.
        if (auto st = s->begin(); !st) return st.error();
        auto st = tables(n, meta);
        s->rollback();
        if (!st) return st.error();
    }
    if (n == 0)
        return make_error(fmt::format("{} is an empty database; initialise it with 'softkvm eid "
                                      "init --sev-asids 1-N --min-sev-asid M --eid-db {}'",
                                      printable(path), printable(path)),
                          ENOENT);
    if (!meta) return unusable(path, "no softkvm tables");
    Stmt q(db, "SELECT value FROM meta WHERE key = 'schema'");
    if (!q.ok()) return unusable(path, sqlite3_errmsg(db));
    if (q.step() != SQLITE_ROW || q.text(0) != kSchema) return unusable(path, "no softkvm schema");
    return s;
}

Result<std::unique_ptr<Store>> Store::init(const std::string& path, AsidRange range) {
    if (!valid_range(range)) return make_error("ASID range is empty or inconsistent", EINVAL);
    auto same_range = [&](std::unique_ptr<Store> s) -> Result<std::unique_ptr<Store>> {
        auto v = s->view();
        if (!v) return v.error();
        const AsidRange& have = v.value()->controller.range();
        if (have.max_asid != range.max_asid || have.min_sev_asid != range.min_sev_asid)
            return make_error(fmt::format("{} is already initialised with ASIDs 1-{} and "
                                          "min SEV ASID {}; refusing to change it",
                                          printable(path), have.max_asid, have.min_sev_asid),
                              EEXIST);
        return s;
    };
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
        auto s = open(path);
        if (s) return same_range(std::move(s).value());
        if (s.error().code != ENOENT) return s.error();  // ENOENT here: an empty file
    }
    const auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    sqlite3* db = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc != SQLITE_OK) {
        const std::string msg = db ? sqlite3_errmsg(db) : "cannot create";
        sqlite3_close(db);
        const bool ro = !dir.empty() && ::access(dir.c_str(), W_OK) != 0;
        return make_error(fmt::format("{}: cannot create: {}{}", printable(path), msg,
                                      ro ? " (the directory is not writable by this user)" : ""),
                          ro ? EROFS : errno_of(rc));
    }
    std::unique_ptr<Store> s(new Store(db, path));
    sqlite3_busy_timeout(db, 30000);
    // One creator: the schema is written under the write lock, and a second `init` that
    // waited for it finds the tables there.
    if (auto st = s->begin(); !st) return st.error();
    int64_t tables = -1;
    {
        Stmt t(db, "SELECT count(*) FROM sqlite_master");
        if (t.ok() && t.step() == SQLITE_ROW) tables = t.i64(0);
    }
    if (tables < 0) {
        auto e = s->sql_error("reading the schema");
        s->rollback();
        return e;
    }
    if (tables != 0) {  // another init was first
        s->rollback();
        s.reset();
        auto again = open(path);
        if (!again) return again.error();
        return same_range(std::move(again).value());
    }
    if (auto st = s->exec(kCreate); !st) return s->rollback(), st.error();
    {
        Stmt m(db, "INSERT INTO meta(key, value) VALUES('schema', ?)");
        if (m.bind(1, std::string(kSchema)).step() != SQLITE_DONE) {
            auto e = s->sql_error("writing the schema");
            s->rollback();
            return e;
        }
    }
    State fresh{Controller(range), {}};
    fresh.controller.set_range(range);
    if (auto st = s->save(nullptr, fresh); !st) return s->rollback(), st.error();
    if (auto st = s->append_events(
            {{0, now(), "init",
              fmt::format("ASIDs 1-{}, min SEV ASID {}", range.max_asid, range.min_sev_asid)}});
        !st)
        return s->rollback(), st.error();
    if (auto st = s->commit(); !st) return st.error();
    // WAL lets readers and the writer work at once; a concurrent reader may keep it busy
    // for a moment, and the mode sticks once any process has set it.
    for (int i = 0; i < 50; ++i) {
        Stmt w(db, "PRAGMA journal_mode=WAL");
        if (w.step() == SQLITE_ROW && w.text(0) == "wal") break;
        ::usleep(20000);
    }
    return s;
}

Status Store::begin(bool write) {
    // IMMEDIATE: take the write lock now, so two processes never both read, then write.
    return exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
}
Status Store::commit() {
    return exec("COMMIT");
}
void Store::rollback() {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Result<int64_t> Store::data_version() {
    Stmt q(db_, stmts_, "PRAGMA data_version");
    if (!q.ok() || q.step() != SQLITE_ROW) return sql_error("reading the data version");
    return q.i64(0);
}

Status Store::read_raw(RawState& raw) {
    Stmt m(db_, stmts_, "SELECT key, value FROM meta");
    if (!m.ok()) return unusable(path_, sqlite3_errmsg(db_));
    while (m.step() == SQLITE_ROW) {
        const std::string k = m.text(0);
        if (k == "max_asid") raw.max_asid = int_col(m.get(), 1);
        if (k == "min_sev_asid") raw.min_sev_asid = int_col(m.get(), 1);
        if (k == "flushes") raw.flushes = int_col(m.get(), 1);
        if ((k == "in_use" || k == "reclaim") && sqlite3_column_type(m.get(), 1) == SQLITE_BLOB)
            (k == "in_use" ? raw.in_use : raw.reclaim) = m.blob(1);
    }
    if (m.rc() != SQLITE_DONE) return sql_error("reading meta");
    Stmt g(db_, stmts_, "SELECT path, type, max, usage, peak, events, events_local FROM groups");
    if (!g.ok()) return unusable(path_, sqlite3_errmsg(db_));
    while (g.step() == SQLITE_ROW) {
        RawGroup r;
        r.path = text_col(g.get(), 0);
        r.type = text_col(g.get(), 1);
        r.max_null = g.null(2);
        r.max_text = text_col(g.get(), 2);
        if (auto v = int_col(g.get(), 2); v && *v >= 0) {
            r.max = static_cast<uint64_t>(*v);
        } else if (sqlite3_column_type(g.get(), 2) == SQLITE_TEXT && !r.max_text.empty() &&
                   r.max_text.size() <= 20 && r.max_text[0] != '0' &&
                   r.max_text.find_first_not_of("0123456789") == std::string::npos) {
            // Limits above INT64_MAX are stored as decimal text (see save()).
            auto big = parse_u64(r.max_text);
            if (big && big.value() > static_cast<uint64_t>(INT64_MAX)) r.max = big.value();
        }
        r.usage = int_col(g.get(), 3);
        r.peak = int_col(g.get(), 4);
        r.events = int_col(g.get(), 5);
        r.events_local = int_col(g.get(), 6);
        raw.groups.push_back(std::move(r));
    }
    if (g.rc() != SQLITE_DONE) return sql_error("reading groups");
    Stmt l(db_, stmts_, "SELECT id, grp, type, asid, pid, start_time, created FROM leases");
    if (!l.ok()) return unusable(path_, sqlite3_errmsg(db_));
    while (l.step() == SQLITE_ROW) {
        RawLease r;
        r.id = l.i64(0);
        r.group = text_col(l.get(), 1);
        r.type = text_col(l.get(), 2);
        r.asid = int_col(l.get(), 3);
        r.pid = int_col(l.get(), 4);
        r.start_time = int_col(l.get(), 5);
        r.created = int_col(l.get(), 6);
        raw.leases.push_back(std::move(r));
    }
    if (l.rc() != SQLITE_DONE) return sql_error("reading leases");
    return {};
}

Status Store::load() {
    auto v = data_version();
    if (!v) return v.error();
    if (cache_ && v.value() == cache_version_) return {};
    cache_.reset();
    RawState raw;
    if (auto st = read_raw(raw); !st) return st;
    State s;
    if (auto bad = validate(raw, &s); !bad.empty()) return inconsistent(path_, bad);
    cache_ = std::make_shared<const State>(std::move(s));
    cache_version_ = v.value();
    return {};
}

// Writes what differs between `before` (what the database holds; nullptr: nothing) and
// `after`. Leases are written by the operations that change them.
Status Store::save(const State* before, const State& after) {
    auto put = [&](const char* k, auto bind) {
        Stmt s(db_, stmts_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
        s.bind(1, std::string(k));
        bind(s);
        return s.step() == SQLITE_DONE;
    };
    Controller& a = const_cast<Controller&>(after.controller);
    Controller* b = before ? const_cast<Controller*>(&before->controller) : nullptr;
    const bool range_changed = !b || b->range().max_asid != a.range().max_asid ||
                               b->range().min_sev_asid != a.range().min_sev_asid;
    auto i64 = [](int64_t v) { return [v](Stmt& s) { s.bind(2, v); }; };
    auto blob = [](const std::vector<uint8_t>& v) { return [&v](Stmt& s) { s.bind_blob(2, v); }; };
    if (range_changed && (!put("max_asid", i64(a.range().max_asid)) ||
                          !put("min_sev_asid", i64(a.range().min_sev_asid))))
        return sql_error("saving the ASID range");
    if ((!b || b->flushes() != a.flushes()) &&
        !put("flushes", i64(static_cast<int64_t>(a.flushes()))))
        return sql_error("saving the flush count");
    if ((!b || b->in_use() != a.in_use()) && !put("in_use", blob(a.in_use())))
        return sql_error("saving the in-use bitmap");
    if ((!b || b->reclaim() != a.reclaim()) && !put("reclaim", blob(a.reclaim())))
        return sql_error("saving the reclaim bitmap");
    if (b)
        for (const auto& [path, g] : b->groups())
            if (!a.exists(path)) {
                Stmt d(db_, stmts_, "DELETE FROM groups WHERE path = ?");
                if (d.bind(1, path).step() != SQLITE_DONE) return sql_error("removing a group");
            }
    auto same = [](const Counters& x, const Counters& y) {
        return x.max == y.max && x.usage == y.usage && x.peak == y.peak && x.events == y.events &&
               x.events_local == y.events_local;
    };
    for (const auto& [path, g] : a.groups()) {
        const Group* old = b && b->exists(path) ? &b->group(path) : nullptr;
        for (const TypeInfo& t : kTypes) {
            const Counters& k = g.c[static_cast<int>(t.type)];
            if (old && same(old->c[static_cast<int>(t.type)], k)) continue;
            Stmt s(db_,
                   "INSERT OR REPLACE INTO groups(path, type, max, usage, peak, events, "
                   "events_local) VALUES(?, ?, ?, ?, ?, ?, ?)");
            s.bind(1, path).bind(2, std::string(t.name));
            if (k.max == kUnlimited)
                s.bind_null(3);
            else if (k.max > static_cast<uint64_t>(INT64_MAX))
                s.bind(3, std::to_string(k.max));  // SQLite integers are signed 64-bit
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

Status Store::save_leases(const std::vector<Lease>& leases) {
    if (auto st = exec("DELETE FROM leases"); !st) return st;
    for (const Lease& l : leases) {
        Stmt s(db_,
               "INSERT INTO leases(id, grp, type, asid, pid, start_time, created) "
               "VALUES(?, ?, ?, ?, ?, ?, ?)");
        s.bind(1, l.id).bind(2, l.group).bind(3, std::string(info(l.type).name)).bind(4, l.asid);
        s.bind(5, l.pid).bind(6, static_cast<int64_t>(l.start_time)).bind(7, l.created);
        if (s.step() != SQLITE_DONE) return sql_error("saving leases");
    }
    return {};
}

Status Store::append_events(const std::vector<EventRecord>& log) {
    for (const EventRecord& e : log) {
        Stmt s(db_, stmts_, "INSERT INTO events(time, kind, detail) VALUES(?, ?, ?)");
        s.bind(1, e.time ? e.time : now()).bind(2, e.kind).bind(3, e.detail);
        if (s.step() != SQLITE_DONE) return sql_error("logging an event");
    }
    return {};
}

// Releases every lease whose owner is gone (dead, or its pid reused by another process).
Status Store::reap(State& s, std::vector<EventRecord>& log) {
    std::vector<Lease> live;
    for (const Lease& l : s.leases) {
        if (process_start_time(l.pid) == l.start_time) {
            live.push_back(l);
            continue;
        }
        s.controller.release(l.group, l.type, l.asid);
        Stmt d(db_, stmts_, "DELETE FROM leases WHERE id = ?");
        if (d.bind(1, l.id).step() != SQLITE_DONE) return sql_error("reaping a lease");
        log.push_back({0, now(), "reaped",
                       fmt::format("lease {} ({} ASID {} in {}) of dead pid {}", l.id,
                                   info(l.type).name, l.asid, l.group, l.pid)});
    }
    s.leases = std::move(live);
    return {};
}

Status Store::update_state(const StateOp& op) {
    if (read_only_) return read_only_error(path_);
    if (auto st = begin(); !st) return st;
    auto fail = [&](Status st) {
        rollback();
        cache_.reset();
        return st;
    };
    if (auto st = load(); !st) return fail(st);
    State work = *cache_;
    std::vector<EventRecord> log;
    if (auto st = reap(work, log); !st) return fail(st);
    const uint64_t flushes_before = work.controller.flushes();
    Status result = op(work, log);
    if (work.controller.flushes() != flushes_before)
        log.push_back(
            {0, now(), "flush",
             fmt::format("reclaimed ASIDs flushed (flush #{})", work.controller.flushes())});
    if (auto st = save(cache_.get(), work); !st) return fail(st);
    if (auto st = append_events(log); !st) return fail(st);
    if (auto st = commit(); !st) return fail(st);
    // Our own commit leaves data_version as it is: the cache stays current.
    cache_ = std::make_shared<const State>(std::move(work));
    return result;
}

Status Store::update(const Op& op) {
    return update_state(
        [&](State& s, std::vector<EventRecord>& log) { return op(s.controller, log); });
}

Result<std::shared_ptr<const State>> Store::view() {
    // A read transaction first: most calls find the cache current and every owner alive.
    if (auto st = begin(false); !st) return st.error();
    auto st = load();
    rollback();
    if (!st) return cache_.reset(), st.error();
    bool dead = false;
    for (const Lease& l : cache_->leases) dead |= process_start_time(l.pid) != l.start_time;
    if (!dead) return cache_;
    if (read_only_) {
        State s = *cache_;
        std::erase_if(s.leases, [&](const Lease& l) {
            if (process_start_time(l.pid) == l.start_time) return false;
            s.controller.release(l.group, l.type, l.asid);
            return true;
        });
        return std::make_shared<const State>(std::move(s));
    }
    if (auto u = update_state([](State&, std::vector<EventRecord>&) { return Status{}; }); !u)
        return u.error();
    return cache_;
}

Result<Controller> Store::snapshot() {
    auto v = view();
    if (!v) return v.error();
    return v.value()->controller;
}

Result<Lease> Store::acquire(const std::string& group, Type t, int pid, uint64_t start_time) {
    Lease lease;
    auto st = update_state([&](State& s, std::vector<EventRecord>& log) -> Status {
        auto asid = s.controller.allocate(group, t);
        if (!asid) {
            log.push_back(
                {0, now(), "refused", fmt::format("pid {}: {}", pid, asid.error().message)});
            return asid.error();
        }
        Stmt q(db_,
               "INSERT INTO leases(grp, type, asid, pid, start_time, created) "
               "VALUES(?, ?, ?, ?, ?, ?)");
        lease = {0, group, t, asid.value(), pid, start_time, now()};
        q.bind(1, group).bind(2, std::string(info(t).name)).bind(3, asid.value()).bind(4, pid);
        q.bind(5, static_cast<int64_t>(start_time)).bind(6, lease.created);
        if (q.step() != SQLITE_DONE) return sql_error("recording the lease");
        lease.id = sqlite3_last_insert_rowid(db_);
        s.leases.push_back(lease);
        log.push_back({0, now(), "acquired",
                       fmt::format("lease {} ({} ASID {} in {}) by pid {}", lease.id, info(t).name,
                                   lease.asid, group, pid)});
        return {};
    });
    if (!st) return st.error();
    return lease;
}

Status Store::release(int64_t lease_id) {
    return update_state([&](State& s, std::vector<EventRecord>& log) -> Status {
        auto it = std::find_if(s.leases.begin(), s.leases.end(),
                               [&](const Lease& l) { return l.id == lease_id; });
        if (it == s.leases.end())
            return make_error(fmt::format("lease {} is not held", lease_id), ENOENT);
        const Lease l = *it;
        s.leases.erase(it);
        s.controller.release(l.group, l.type, l.asid);
        Stmt d(db_, stmts_, "DELETE FROM leases WHERE id = ?");
        if (d.bind(1, lease_id).step() != SQLITE_DONE) return sql_error("releasing a lease");
        log.push_back({0, now(), "released",
                       fmt::format("lease {} ({} ASID {} in {})", lease_id, info(l.type).name,
                                   l.asid, l.group)});
        return {};
    });
}

Result<std::vector<Lease>> Store::leases() {
    auto v = view();
    if (!v) return v.error();
    return v.value()->leases;
}

Result<std::vector<EventRecord>> Store::events(int64_t after_id) {
    std::vector<EventRecord> out;
    Stmt q(db_, stmts_, "SELECT id, time, kind, detail FROM events WHERE id > ? ORDER BY id");
    if (!q.ok()) return unusable(path_, sqlite3_errmsg(db_));
    q.bind(1, after_id);
    while (q.step() == SQLITE_ROW)
        out.push_back({q.i64(0), q.i64(1), printable(q.text(2)), printable(q.text(3))});
    if (q.rc() != SQLITE_DONE) return sql_error("reading events");
    return out;
}

Result<std::vector<std::string>> Store::check() {
    if (auto st = begin(false); !st) return st.error();
    RawState raw;
    auto st = read_raw(raw);
    rollback();
    if (!st) return st.error();
    return validate(raw, nullptr);
}

Result<std::vector<std::string>> Store::repair(std::optional<AsidRange> range) {
    if (read_only_) return read_only_error(path_);
    if (auto st = begin(); !st) return st.error();
    cache_.reset();
    auto fail = [&](Error e) {
        rollback();
        return e;
    };
    RawState raw;
    if (auto st = read_raw(raw); !st) return fail(st.error());
    const bool consistent = validate(raw, nullptr).empty();
    auto r = eid::repair(raw, range);  // also refuses a range that differs from the stored one
    if (!r) return fail(r.error());
    if (consistent) {  // write nothing
        rollback();
        return std::vector<std::string>{};
    }
    if (r->fixes.empty()) r->fixes.push_back("rewrote the state");
    if (auto st = exec("DELETE FROM meta WHERE key <> 'schema'; DELETE FROM groups"); !st)
        return fail(st.error());
    if (auto st = save(nullptr, r->state); !st) return fail(st.error());
    if (auto st = save_leases(r->state.leases); !st) return fail(st.error());
    std::vector<EventRecord> log;
    for (const std::string& f : r->fixes) log.push_back({0, now(), "repair", f});
    if (auto st = append_events(log); !st) return fail(st.error());
    if (auto st = commit(); !st) return fail(st.error());
    return r->fixes;
}

}  // namespace softkvm::eid
