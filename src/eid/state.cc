#include "eid/state.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

namespace softkvm::eid {
namespace {

std::string shown(const StoredInt& v) {
    return v ? std::to_string(*v) : std::string("missing or not an integer");
}

// A stored group path softkvm could have written: valid and already normalised.
bool valid_group_path(const std::string& p) {
    auto n = normalize_path(p);
    return n.ok() && n.value() == p;
}

// The stored type name, exactly as the store writes it ("sev", "sev_es").
bool stored_type(const std::string& s, Type& t) {
    return parse_type(s, t) && s == info(t).name;
}

bool range_of(const RawState& raw, AsidRange& r) {
    if (!raw.max_asid || !raw.min_sev_asid) return false;
    if (*raw.max_asid < 1 || *raw.max_asid > kMaxAsids) return false;
    if (*raw.min_sev_asid < 1 || *raw.min_sev_asid > *raw.max_asid + 1) return false;
    r.max_asid = static_cast<uint32_t>(*raw.max_asid);
    r.min_sev_asid = static_cast<uint32_t>(*raw.min_sev_asid);
    return true;
}

std::string range_text(const AsidRange& r) {
    return fmt::format("ASIDs 1-{}, min SEV ASID {}", r.max_asid, r.min_sev_asid);
}

// Number of leases of each type held in each group and below (the usage the model defines:
// every lease charged its group and every ancestor once).
using Usage = std::map<std::string, std::array<uint64_t, kTypeCount>>;
void count_lease(Usage& u, const std::string& group, Type t) {
    for (std::string p = group;; p = parent_of(p)) {
        u[p][static_cast<int>(t)] += 1;
        if (p == "/") break;
    }
}

}  // namespace

std::vector<std::string> validate(const RawState& raw, State* out) {
    std::vector<std::string> bad;
    auto add = [&](std::string s) { bad.push_back(std::move(s)); };

    // The host's ASID range and the allocator's bitmaps (§1.1, §1.2).
    AsidRange r;
    const bool have_range = range_of(raw, r);
    if (!raw.max_asid || *raw.max_asid < 1 || *raw.max_asid > kMaxAsids)
        add(fmt::format("max_asid is {}, expected 1..{}", shown(raw.max_asid), kMaxAsids));
    else if (!have_range)
        add(fmt::format("min_sev_asid is {}, outside 1..{} for ASIDs 1-{}", shown(raw.min_sev_asid),
                        *raw.max_asid + 1, *raw.max_asid));
    if (!raw.flushes || *raw.flushes < 0)
        add(fmt::format("the flush count is {}, expected a non-negative number",
                        shown(raw.flushes)));
    bool bitmaps = false;
    if (have_range) {
        const size_t want = r.max_asid + 1u;
        bitmaps = true;
        for (const auto& [name, map] :
             {std::pair{"in-use", &raw.in_use}, std::pair{"reclaim", &raw.reclaim}}) {
            if (!*map) {
                add(fmt::format("the {} bitmap is missing", name)), bitmaps = false;
            } else if ((*map)->size() != want) {
                add(fmt::format("the {} bitmap has {} entries, expected {} for ASIDs 1-{}", name,
                                (*map)->size(), want, r.max_asid));
                bitmaps = false;
            }
        }
        if (bitmaps) {
            const auto& iu = *raw.in_use;
            const auto& rc = *raw.reclaim;
            if (iu[0] || rc[0]) add("ASID 0 (the host's) is marked in the bitmaps");
            for (size_t a = 0; a < want; ++a) {
                if (iu[a] > 1 || rc[a] > 1)
                    add(fmt::format("ASID {} has bitmap values {}/{}, expected 0 or 1", a, iu[a],
                                    rc[a]));
                else if (rc[a] && !iu[a])
                    add(fmt::format("ASID {} is marked reclaimed but not in use", a));
            }
        }
    }

    // Groups.
    std::map<std::string, Group> groups;
    std::set<std::pair<std::string, int>> seen;
    for (const RawGroup& g : raw.groups) {
        const std::string name = printable(g.path);
        Type t;
        if (!valid_group_path(g.path)) {
            add(fmt::format("group '{}' has an invalid path", name));
            continue;
        }
        if (!stored_type(g.type, t)) {
            add(fmt::format("group {} has a row of unknown type '{}'", name, printable(g.type)));
            continue;
        }
        if (!seen.insert({g.path, static_cast<int>(t)}).second) {
            add(fmt::format("group {} has two {} rows", name, info(t).name));
            continue;
        }
        Counters& k = groups[g.path].c[static_cast<int>(t)];
        const std::string_view tn = info(t).name;
        if (g.path == "/" && !g.max_null)
            add(fmt::format("the root group has a {} max ({}); its limit is the capacity", tn,
                            printable(g.max_text)));
        else if (!g.max_null && (!g.max || *g.max == kUnlimited))
            add(fmt::format("group {} has {} max '{}', expected 'max' or a non-negative number",
                            name, tn, printable(g.max_text)));
        else if (!g.max_null)
            k.max = *g.max;
        const std::pair<const char*, const StoredInt*> counters[] = {
            {"usage", &g.usage},
            {"peak", &g.peak},
            {"events", &g.events},
            {"events.local", &g.events_local}};
        bool counters_ok = true;
        for (const auto& [what, v] : counters)
            if (!*v || **v < 0) {
                add(fmt::format("group {} has {} {} {}, expected a non-negative number", name, tn,
                                what, shown(*v)));
                counters_ok = false;
            }
        if (!counters_ok) continue;
        k.usage = static_cast<uint64_t>(*g.usage);
        k.peak = static_cast<uint64_t>(*g.peak);
        k.events = static_cast<uint64_t>(*g.events);
        k.events_local = static_cast<uint64_t>(*g.events_local);
        if (k.peak < k.usage)
            add(fmt::format("group {} has {} peak {} below its usage {}", name, tn, k.peak,
                            k.usage));
        if (g.path != "/" && k.events < k.events_local)
            add(fmt::format("group {} has {} events {} below its local events {}", name, tn,
                            k.events, k.events_local));
    }
    if (!groups.count("/")) add("the root group '/' is missing");
    for (const auto& [path, g] : groups)
        if (path != "/" && !groups.count(parent_of(path)))
            add(fmt::format("group {} has no parent group {}", path, parent_of(path)));

    // Leases: each in an existing group, an ASID of its type's range held once and marked
    // in use; usage is the number of leases in a group and below.
    std::vector<Lease> leases;
    std::map<uint32_t, int64_t> holder;
    Usage usage;
    for (const RawLease& l : raw.leases) {
        Lease x;
        x.id = l.id;
        x.group = l.group;
        bool ok = true;
        if (!stored_type(l.type, x.type)) {
            add(fmt::format("lease {} has unknown type '{}'", l.id, printable(l.type)));
            continue;
        }
        const std::string_view tn = info(x.type).name;
        if (!valid_group_path(l.group) || !groups.count(l.group)) {
            add(fmt::format("lease {} is in group '{}', which does not exist", l.id,
                            printable(l.group)));
            ok = false;
        }
        if (!l.asid || (have_range && (*l.asid < r.first(x.type) || *l.asid > r.last(x.type)))) {
            add(have_range
                    ? fmt::format("lease {} holds {} ASID {}, outside the {} range {}-{}", l.id, tn,
                                  shown(l.asid), tn, r.first(x.type), r.last(x.type))
                    : fmt::format("lease {} holds ASID {}", l.id, shown(l.asid)));
            ok = false;
        } else if (have_range) {
            x.asid = static_cast<uint32_t>(*l.asid);
            auto [it, fresh] = holder.insert({x.asid, l.id});
            if (!fresh) {
                add(fmt::format("lease {} holds ASID {}, already held by lease {}", l.id, x.asid,
                                it->second));
                ok = false;
            } else if (bitmaps && (!(*raw.in_use)[x.asid] || (*raw.reclaim)[x.asid])) {
                add(fmt::format("lease {} holds ASID {}, which the bitmaps mark free", l.id,
                                x.asid));
            }
        }
        if (!l.pid || *l.pid <= 0 || *l.pid > INT32_MAX) {
            add(fmt::format("lease {} has owner pid {}", l.id, shown(l.pid)));
            ok = false;
        }
        if (!l.start_time || *l.start_time < 0) {
            add(fmt::format("lease {} has owner start time {}", l.id, shown(l.start_time)));
            ok = false;
        }
        if (!l.created) add(fmt::format("lease {} has creation time {}", l.id, shown(l.created)));
        if (!ok) continue;
        x.pid = static_cast<int>(*l.pid);
        x.start_time = static_cast<uint64_t>(*l.start_time);
        x.created = l.created.value_or(0);
        count_lease(usage, x.group, x.type);
        leases.push_back(x);
    }
    for (const auto& [path, g] : groups)
        for (const TypeInfo& t : kTypes) {
            const uint64_t want = usage.count(path) ? usage[path][static_cast<int>(t.type)] : 0;
            const uint64_t have = g.c[static_cast<int>(t.type)].usage;
            if (have != want)
                add(
                    fmt::format("group {} has {} usage {}, but {} {} lease(s) are held in it and "
                                "below",
                                path, t.name, have, want, t.name));
        }
    if (bitmaps)
        for (uint32_t a = 1; a <= r.max_asid; ++a)
            if ((*raw.in_use)[a] == 1 && !(*raw.reclaim)[a] && !holder.count(a))
                add(fmt::format("ASID {} is marked in use, but no lease holds it", a));

    if (bad.empty() && out) {
        Controller c(r);
        c.set_range(r);
        c.in_use() = *raw.in_use;
        c.reclaim() = *raw.reclaim;
        c.set_flushes(static_cast<uint64_t>(*raw.flushes));
        c.mutable_groups() = std::move(groups);
        std::sort(leases.begin(), leases.end(),
                  [](const Lease& a, const Lease& b) { return a.id < b.id; });
        *out = State{std::move(c), std::move(leases)};
    }
    return bad;
}

Result<Repaired> repair(const RawState& raw, std::optional<AsidRange> given) {
    Repaired res;
    auto fix = [&](std::string s) { res.fixes.push_back(std::move(s)); };
    AsidRange stored;
    const bool have_stored = range_of(raw, stored);
    AsidRange r;
    if (given) {
        if (!valid_range(*given)) return make_error("the given ASID range is inconsistent", EINVAL);
        if (have_stored &&
            (stored.max_asid != given->max_asid || stored.min_sev_asid != given->min_sev_asid))
            return make_error(fmt::format("the database holds {}, not {}; refusing to change it",
                                          range_text(stored), range_text(*given)),
                              EEXIST);
        r = *given;
        if (!have_stored) fix(fmt::format("ASID range set to {}", range_text(r)));
    } else if (have_stored) {
        r = stored;
    } else {
        return make_error(
            "the stored ASID range is unusable; give the host's range: 'softkvm eid repair "
            "--sev-asids 1-N --min-sev-asid M' (or --from-cpuid)",
            EINVAL);
    }
    Controller c(r);
    c.set_range(r);
    if (raw.flushes && *raw.flushes >= 0)
        c.set_flushes(static_cast<uint64_t>(*raw.flushes));
    else
        fix(fmt::format("flush count {} reset to 0", shown(raw.flushes)));

    // Groups: rows softkvm could have written; counters reset where they are not numbers.
    auto& groups = c.mutable_groups();
    std::set<std::pair<std::string, int>> seen;
    bool root_stored = false;
    for (const RawGroup& g : raw.groups) {
        const std::string name = printable(g.path);
        Type t;
        if (!valid_group_path(g.path) || !stored_type(g.type, t)) {
            fix(fmt::format("dropped the row of group '{}' type '{}' (invalid path or type)", name,
                            printable(g.type)));
            continue;
        }
        if (!seen.insert({g.path, static_cast<int>(t)}).second) {
            fix(fmt::format("dropped a second {} row of group {}", info(t).name, name));
            continue;
        }
        root_stored |= g.path == "/";
        Counters& k = groups[g.path].c[static_cast<int>(t)];
        const std::string_view tn = info(t).name;
        if (g.path == "/") {
            if (!g.max_null) fix(fmt::format("removed the root group's {} max", tn));
        } else if (!g.max_null && (!g.max || *g.max == kUnlimited)) {
            k.max = 0;
            fix(
                fmt::format("group {} {} max '{}' set to 0 (blocks new charges); set the intended "
                            "limit with 'softkvm eid set'",
                            name, tn, printable(g.max_text)));
        } else if (!g.max_null) {
            k.max = *g.max;
        }
        const std::pair<const char*, std::pair<const StoredInt*, uint64_t*>> counters[] = {
            {"peak", {&g.peak, &k.peak}},
            {"events", {&g.events, &k.events}},
            {"events.local", {&g.events_local, &k.events_local}}};
        for (const auto& [what, pv] : counters) {
            if (*pv.first && **pv.first >= 0) {
                *pv.second = static_cast<uint64_t>(**pv.first);
            } else {
                *pv.second = 0;
                fix(fmt::format("group {} {} {} {} reset to 0", name, tn, what, shown(*pv.first)));
            }
        }
        k.usage = g.usage && *g.usage >= 0 ? static_cast<uint64_t>(*g.usage) : kUnlimited;
    }
    if (!root_stored) fix("re-created the root group");
    auto ensure_group = [&](const std::string& path, const std::string& why) {
        std::vector<std::string> missing;
        for (std::string p = path; p != "/"; p = parent_of(p))
            if (!groups.count(p)) missing.push_back(p);
        for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
            groups[*it] = Group{};
            for (Counters& k : groups[*it].c) k.usage = kUnlimited;  // "not stored"
            fix(fmt::format("re-created group {} ({}); its limits are 'max'", *it, why));
        }
    };

    // Leases: keep every one that names a valid group, type, ASID and owner.
    std::vector<const RawLease*> order;
    for (const RawLease& l : raw.leases) order.push_back(&l);
    std::sort(order.begin(), order.end(),
              [](const RawLease* a, const RawLease* b) { return a->id < b->id; });
    std::map<uint32_t, int64_t> holder;
    for (const RawLease* l : order) {
        Lease x;
        x.id = l->id;
        x.group = l->group;
        std::string why;
        if (!stored_type(l->type, x.type))
            why = fmt::format("unknown type '{}'", printable(l->type));
        else if (!valid_group_path(l->group))
            why = fmt::format("invalid group '{}'", printable(l->group));
        else if (!l->asid || *l->asid < r.first(x.type) || *l->asid > r.last(x.type))
            why = fmt::format("{} ASID {} outside {}-{}", info(x.type).name, shown(l->asid),
                              r.first(x.type), r.last(x.type));
        else if (holder.count(static_cast<uint32_t>(*l->asid)))
            why = fmt::format("ASID {} already held by lease {}", *l->asid,
                              holder[static_cast<uint32_t>(*l->asid)]);
        else if (!l->pid || *l->pid <= 0 || *l->pid > INT32_MAX || !l->start_time ||
                 *l->start_time < 0)
            why = fmt::format("owner pid {} start time {}", shown(l->pid), shown(l->start_time));
        if (!why.empty()) {
            res.dropped_leases.push_back(l->id);
            fix(fmt::format("dropped lease {} ({}); it cannot be honoured", l->id, why));
            continue;
        }
        x.asid = static_cast<uint32_t>(*l->asid);
        x.pid = static_cast<int>(*l->pid);
        x.start_time = static_cast<uint64_t>(*l->start_time);
        x.created = l->created.value_or(0);
        if (!l->created) fix(fmt::format("lease {} creation time reset to 0", l->id));
        holder[x.asid] = x.id;
        ensure_group(x.group, fmt::format("lease {} is held in it", x.id));
        res.state.leases.push_back(x);
    }
    std::vector<std::string> paths;
    for (const auto& [p, g] : groups) paths.push_back(p);
    for (const std::string& p : paths) ensure_group(p, "a child group needs it");

    // Usage recounted from the leases; peak and events made consistent with it.
    Usage usage;
    for (const Lease& l : res.state.leases) count_lease(usage, l.group, l.type);
    for (auto& [path, g] : groups)
        for (const TypeInfo& t : kTypes) {
            Counters& k = g.c[static_cast<int>(t.type)];
            const uint64_t want = usage.count(path) ? usage[path][static_cast<int>(t.type)] : 0;
            if (k.usage != want)
                fix(fmt::format(
                    "group {} {} usage {} recounted as {} from the leases", path, t.name,
                    k.usage == kUnlimited ? std::string("(invalid)") : std::to_string(k.usage),
                    want));
            k.usage = want;
            if (k.peak < k.usage) k.peak = k.usage;
            if (path != "/" && k.events < k.events_local) k.events = k.events_local;
        }

    // Bitmaps: an ASID that may still tag cache lines must be flushed before reuse, so
    // anything not provably free and not leased becomes "reclaimed".
    auto& iu = c.in_use();
    auto& rc = c.reclaim();
    const size_t n = r.max_asid + 1u;
    if (raw.in_use && raw.reclaim && raw.in_use->size() == n && raw.reclaim->size() == n) {
        for (size_t a = 1; a < n; ++a) {
            const uint8_t u = (*raw.in_use)[a], r = (*raw.reclaim)[a];
            iu[a] = u != 0 || r != 0;
            rc[a] = r != 0;
            if (u > 1 || r > 1 || (r && !u))
                fix(fmt::format("ASID {} bitmap values {}/{} set to {}/{}", a, u, r, iu[a], rc[a]));
        }
        if ((*raw.in_use)[0] || (*raw.reclaim)[0]) fix("cleared ASID 0 from the bitmaps");
    } else {
        for (size_t a = 1; a < n; ++a) iu[a] = rc[a] = 1;
        fix("rebuilt the ASID bitmaps: every ASID no lease holds is marked reclaimed, so it is "
            "flushed before reuse");
    }
    for (size_t a = 1; a < n; ++a) {
        const bool leased = holder.count(static_cast<uint32_t>(a)) != 0;
        if (leased && (!iu[a] || rc[a])) {
            iu[a] = 1, rc[a] = 0;
            fix(fmt::format("ASID {} marked in use (lease {} holds it)", a,
                            holder[static_cast<uint32_t>(a)]));
        } else if (!leased && iu[a] && !rc[a]) {
            rc[a] = 1;
            fix(fmt::format("ASID {} was in use without a lease; marked reclaimed", a));
        }
    }
    res.state.controller = std::move(c);

    // The result must pass the same checks as any loaded database.
    if (auto left = validate(to_raw(res.state), nullptr); !left.empty())
        return make_error("repair left an inconsistency: " + left.front(), EBADMSG);
    return res;
}

RawState to_raw(const State& s) {
    RawState raw;
    Controller& c = const_cast<Controller&>(s.controller);
    raw.max_asid = c.range().max_asid;
    raw.min_sev_asid = c.range().min_sev_asid;
    raw.flushes = static_cast<int64_t>(c.flushes());
    raw.in_use = c.in_use();
    raw.reclaim = c.reclaim();
    for (const auto& [path, g] : c.groups())
        for (const TypeInfo& t : kTypes) {
            const Counters& k = g.c[static_cast<int>(t.type)];
            RawGroup row;
            row.path = path;
            row.type = t.name;
            row.max_null = k.max == kUnlimited;
            if (!row.max_null) row.max = k.max, row.max_text = std::to_string(k.max);
            row.usage = static_cast<int64_t>(k.usage);
            row.peak = static_cast<int64_t>(k.peak);
            row.events = static_cast<int64_t>(k.events);
            row.events_local = static_cast<int64_t>(k.events_local);
            raw.groups.push_back(row);
        }
    for (const Lease& l : s.leases)
        raw.leases.push_back({l.id, l.group, std::string(info(l.type).name), l.asid, l.pid,
                              static_cast<int64_t>(l.start_time), l.created});
    return raw;
}

}  // namespace softkvm::eid
