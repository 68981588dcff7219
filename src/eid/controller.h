// The encryption-ID controller as a pure in-memory model (spec §1.2, §1.3): the group
// tree with per-type max/usage/peak/events, charge and uncharge, and the ASID allocator
// with deferred reclaim. The SQLite store (store.h) loads it, applies one operation and
// saves it inside one transaction.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "eid/types.h"

namespace softkvm::eid {

// Event and flush counters stop at the largest value the store keeps (SQLite integers
// are signed 64-bit) instead of wrapping.
inline constexpr uint64_t kMaxCount = INT64_MAX;
inline void count(uint64_t& n) {
    if (n < kMaxCount) ++n;
}

struct Counters {
    uint64_t max = kUnlimited;
    uint64_t usage = 0;
    uint64_t peak = 0;
    uint64_t events = 0;        // hierarchical: failures here or below (not in the root)
    uint64_t events_local = 0;  // failures at this level
};

struct Group {
    std::array<Counters, kTypeCount> c;
};

// Host ASID layout (§1.1): SEV-ES 1..min_sev_asid-1, SEV min_sev_asid..max_asid.
struct AsidRange {
    uint32_t max_asid = 0;
    uint32_t min_sev_asid = 1;
    uint32_t first(Type t) const { return t == Type::Sev ? min_sev_asid : 1; }
    uint32_t last(Type t) const { return t == Type::Sev ? max_asid : min_sev_asid - 1; }
    uint64_t capacity(Type t) const {
        return last(t) >= first(t) ? static_cast<uint64_t>(last(t)) - first(t) + 1 : 0;
    }
};

// A range the controller can hold: 1 <= max_asid <= kMaxAsids, 1 <= min_sev_asid <=
// max_asid + 1 (an empty SEV range means the host has SEV-ES ASIDs only).
inline bool valid_range(const AsidRange& r) {
    return r.max_asid >= 1 && r.max_asid <= kMaxAsids && r.min_sev_asid >= 1 &&
           r.min_sev_asid <= r.max_asid + 1;
}

// `s` safe to print on a terminal: bytes outside printable ASCII as \xNN, '\\' doubled.
std::string printable(std::string_view s);

// Longest group name (one path component); softkvm choice, documented in docs/eid.md.
inline constexpr size_t kMaxNameLength = 64;

// Validates and normalises a group path: absolute, no empty, "." or ".." components,
// names of [A-Za-z0-9_.-] up to kMaxNameLength characters. "/" is the root. Messages
// show the rejected name through printable().
Result<std::string> normalize_path(const std::string& path);
std::string parent_of(const std::string& path);  // "/" for top-level groups

class Controller {
  public:
    Controller() { groups_["/"] = Group{}; }
    explicit Controller(AsidRange r) : range_(r) { groups_["/"] = Group{}; }

    const AsidRange& range() const { return range_; }
    uint64_t capacity(Type t) const { return range_.capacity(t); }

    // Groups.
    bool exists(const std::string& path) const { return groups_.count(path) != 0; }
    const Group& group(const std::string& path) const { return groups_.at(path); }
    std::vector<std::string> children(const std::string& path) const;
    const std::map<std::string, Group>& groups() const { return groups_; }
    Status mkdir(const std::string& path);  // EEXIST, ENOENT (no parent), EINVAL
    // ENOENT, EBUSY (children or usage), EPERM (root).
    Status rmdir(const std::string& path);
    // EINVAL (root has no max, zero-capacity type), ENOENT.
    Status set_max(const std::string& path, Type t, uint64_t max);

    // Charge/uncharge (§1.3). Charge: EINVAL for a zero-capacity type, EBUSY at a limit
    // (with events), ENOENT for a missing group.
    Status charge(const std::string& path, Type t, uint64_t amount);
    void uncharge(const std::string& path, Type t, uint64_t amount);

    // The allocator (§1.2): charges, then takes the lowest free ASID of the type's range,
    // flushing reclaimed ASIDs once if the range is exhausted. EBUSY if none.
    Result<uint32_t> allocate(const std::string& path, Type t);
    // Frees `asid` into the reclaim set and uncharges.
    void release(const std::string& path, Type t, uint32_t asid);
    uint64_t flushes() const { return flushes_; }

    // Raw state, for the store.
    std::map<std::string, Group>& mutable_groups() { return groups_; }
    std::vector<uint8_t>& in_use() { return in_use_; }
    std::vector<uint8_t>& reclaim() { return reclaim_; }
    void set_flushes(uint64_t n) { flushes_ = n; }
    void set_range(AsidRange r) {
        range_ = r;
        in_use_.assign(r.max_asid + 1, 0);
        reclaim_.assign(r.max_asid + 1, 0);
    }

  private:
    AsidRange range_;
    std::map<std::string, Group> groups_;
    std::vector<uint8_t> in_use_, reclaim_;  // indexed by ASID (0 unused)
    uint64_t flushes_ = 0;
};

}  // namespace softkvm::eid
