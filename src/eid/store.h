// The durable, multi-process store of the encryption-ID controller: one SQLite database
// in WAL mode. Every operation is one BEGIN IMMEDIATE transaction that loads the
// controller, releases the leases of dead owners, applies the operation and saves the
// result, so many softkvm processes on a host can share the database.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "eid/controller.h"

namespace softkvm::eid {

inline constexpr const char* kDefaultDbPath = "/var/lib/softkvm/eid.db";
inline constexpr const char* kSchema = "softkvm-eid-1";

// A held ID: owned by a process, identified by pid and its start time (/proc/PID/stat
// field 22), so a recycled pid is not mistaken for the owner.
struct Lease {
    int64_t id = 0;
    std::string group;
    Type type = Type::Sev;
    uint32_t asid = 0;
    int pid = 0;
    uint64_t start_time = 0;
    int64_t created = 0;  // unix seconds
};

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
    // Opens an existing database. ENOENT: missing; EBADMSG: not a softkvm eid database
    // (corrupt or foreign); the message says how to recover.
    static Result<std::unique_ptr<Store>> open(const std::string& path);
    // Creates the database with `range`, or opens it if it exists with the same range
    // (EEXIST if its range differs).
    static Result<std::unique_ptr<Store>> init(const std::string& path, AsidRange range);
    ~Store();

    // Runs `op` on the controller inside one write transaction and saves the state,
    // whatever `op` returns (failed charges still count their events). `log` lines added
    // by `op` go to the events table.
    using Op = std::function<Status(Controller&, std::vector<EventRecord>& log)>;
    Status update(const Op& op);
    // A read-only snapshot (dead owners' leases are reaped first, in a write
    // transaction).
    Result<Controller> snapshot();

    // Takes a lease for (pid, start time): charge + ASID.
    Result<Lease> acquire(const std::string& group, Type t, int pid, uint64_t start_time);
    // Gives a lease back. ENOENT if it is not held (already reaped or released).
    Status release(int64_t lease_id);

    Result<std::vector<Lease>> leases();
    Result<std::vector<EventRecord>> events(int64_t after_id = 0);
    const std::string& path() const { return path_; }

  private:
    Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
    Status exec(const char* sql);
    Status load(Controller& c);
    Status save(const Controller& c);
    Status reap(Controller& c, std::vector<EventRecord>& log);
    Status append_events(const std::vector<EventRecord>& log);
    Error sql_error(const char* what) const;
    Status begin();
    Status commit();
    void rollback();

    sqlite3* db_;
    std::string path_;
};

}  // namespace softkvm::eid
