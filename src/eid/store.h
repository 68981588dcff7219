// The durable, multi-process store of the encryption-ID controller: one SQLite database
// in WAL mode. Every operation is one BEGIN IMMEDIATE transaction that loads and validates
// the state (state.h), releases the leases of dead owners, applies the operation and saves
// what changed, so many softkvm processes on a host can share the database. The loaded
// state is kept between operations while SQLite's PRAGMA data_version says no other
// connection has committed since.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "eid/controller.h"
#include "eid/state.h"

namespace softkvm::eid {

inline constexpr const char* kDefaultDbPath = "/var/lib/softkvm/eid.db";
inline constexpr const char* kSchema = "softkvm-eid-1";

struct EventRecord {
    int64_t id = 0;
    int64_t time = 0;
    std::string kind;
    std::string detail;
};

// Start time of a live process in clock ticks since boot, or 0 if it does not exist.
uint64_t process_start_time(int pid);

class Store {
  public:
    // Opens an existing database. ENOENT: missing or empty; EBADMSG: not a softkvm eid
    // database; EIO: cannot be read. A database the process cannot write (file or
    // directory) opens read-only: it can be listed, and changes fail with EROFS.
    static Result<std::unique_ptr<Store>> open(const std::string& path);
    // Creates the database with `range`, or opens it if it exists with the same range
    // (EEXIST if its range differs). Concurrent inits of one path serialise on SQLite's
    // write lock: one creates, the others find it initialised.
    static Result<std::unique_ptr<Store>> init(const std::string& path, AsidRange range);
    // Wraps an open handle whose schema may or may not exist (tests and fuzzing use an
    // in-memory database). `schema_sql()` creates the tables.
    static std::unique_ptr<Store> adopt(sqlite3* db, std::string name);
    static const char* schema_sql();
    ~Store();

    // Runs `op` on the controller inside one write transaction and saves the state,
    // whatever `op` returns (failed charges still count their events). `log` lines added
    // by `op` go to the events table. EBADMSG if the stored state is inconsistent.
    using Op = std::function<Status(Controller&, std::vector<EventRecord>& log)>;
    Status update(const Op& op);
    // The current state (dead owners' leases released first; in a read-only database they
    // are left as stored and only hidden from the result). Cheap while nothing changed.
    Result<std::shared_ptr<const State>> view();
    Result<Controller> snapshot();

    // Takes a lease for (pid, start time): charge + ASID.
    Result<Lease> acquire(const std::string& group, Type t, int pid, uint64_t start_time);
    // Gives a lease back. ENOENT if it is not held (already reaped or released).
    Status release(int64_t lease_id);

    Result<std::vector<Lease>> leases();
    Result<std::vector<EventRecord>> events(int64_t after_id = 0);
    // Every inconsistency of the stored state (empty: consistent). Changes nothing.
    Result<std::vector<std::string>> check();
    // Makes the stored state consistent, keeping every valid lease (state.h repair());
    // returns what was changed, each also logged as a "repair" event.
    Result<std::vector<std::string>> repair(std::optional<AsidRange> range);

    const std::string& path() const { return path_; }
    bool read_only() const { return read_only_; }
    // Drops the kept state, for a caller that changed the database through this store's
    // own connection (data_version only moves for other connections' commits).
    void forget() { cache_.reset(); }

    using StmtCache = std::unordered_map<std::string, sqlite3_stmt*>;

  private:
    Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
    using StateOp = std::function<Status(State&, std::vector<EventRecord>& log)>;
    Status update_state(const StateOp& op);
    Status exec(const char* sql);
    Status read_raw(RawState& raw);
    Status load();  // inside a transaction: makes cache_ current
    Status save(const State* before, const State& after);
    Status save_leases(const std::vector<Lease>& leases);
    Status reap(State& s, std::vector<EventRecord>& log);
    Status append_events(const std::vector<EventRecord>& log);
    Result<int64_t> data_version();
    Error sql_error(const char* what) const;
    Status begin(bool write = true);
    Status commit();
    void rollback();

    sqlite3* db_;
    std::string path_;
    bool read_only_ = false;
    StmtCache stmts_;                     // prepared once per connection
    std::shared_ptr<const State> cache_;  // what the database holds, as of cache_version_
    int64_t cache_version_ = -1;
};

}  // namespace softkvm::eid
