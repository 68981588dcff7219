// The encryption-ID database's contents as they are stored, before softkvm trusts them.
// The store reads every row as SQLite returns it (a value that is NULL or not an integer
// stays "absent"), then `validate` checks it against the model's invariants and `repair`
// rebuilds a consistent state that keeps every valid lease. Pure (no SQLite), so the
// store, `softkvm eid check|repair` and the fuzz target share it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "eid/controller.h"

namespace softkvm::eid {

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

// A column as stored: nullopt when it is NULL, missing or not an integer.
using StoredInt = std::optional<int64_t>;

struct RawGroup {
    std::string path, type;
    bool max_null = false;        // NULL max: "max" (unlimited)
    std::optional<uint64_t> max;  // limits above INT64_MAX are stored as decimal text
    std::string max_text;         // the stored max as text, for messages
    StoredInt usage, peak, events, events_local;
};

struct RawLease {
    int64_t id = 0;
    std::string group, type;
    StoredInt asid, pid, start_time, created;
};

struct RawState {
    StoredInt max_asid, min_sev_asid, flushes;
    std::optional<std::vector<uint8_t>> in_use, reclaim;  // nullopt: missing or not a blob
    std::vector<RawGroup> groups;
    std::vector<RawLease> leases;
};

// A consistent state: the controller and the held leases (ordered by id).
struct State {
    Controller controller;
    std::vector<Lease> leases;
};

// Every inconsistency of `raw`, one line each (stored names escaped with printable()).
// When there is none and `out` is given, `out` receives the state.
std::vector<std::string> validate(const RawState& raw, State* out);

struct Repaired {
    State state;
    std::vector<std::string> fixes;       // what was changed, one line each
    std::vector<int64_t> dropped_leases;  // lease rows that could not be kept
};
// Rebuilds a consistent state from `raw`, keeping every lease whose group path, type,
// ASID (in its type's range, not held twice) and owner are valid; the groups such leases
// need are re-created. Usage is recounted from the leases; every ASID that no lease holds
// but that may still tag cache lines is marked reclaimed (flushed before reuse).
// `range`: the host's ASID range; required (EINVAL) when the stored one is unusable;
// EEXIST when it differs from a usable stored range.
Result<Repaired> repair(const RawState& raw, std::optional<AsidRange> range);

// The rows that store `s` (the inverse of what the store's loader reads).
RawState to_raw(const State& s);

}  // namespace softkvm::eid
