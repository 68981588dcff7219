#include "eid/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

namespace softkvm::eid {

std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (const char ch : s) {
        const auto b = static_cast<unsigned char>(ch);
        if (b == '\\')
            out += "\\\\";
        else if (b >= 0x20 && b < 0x7f)
            out += ch;
        else
            out += fmt::format("\\x{:02x}", b);
    }
    return out;
}

Result<std::string> normalize_path(const std::string& raw) {
    const std::string path = printable(raw);  // for messages only
    if (raw.empty() || raw[0] != '/')
        return make_error(fmt::format("group path '{}' must start with '/'", path), EINVAL);
    if (raw == "/") return std::string("/");
    std::string p = raw;
    if (p.back() == '/') p.pop_back();
    size_t start = 1;
    while (start <= p.size()) {
        size_t end = p.find('/', start);
        if (end == std::string::npos) end = p.size();
        const std::string comp = p.substr(start, end - start);
        const std::string shown = printable(comp);
        if (comp.empty())
            return make_error(fmt::format("group path '{}' has an empty component", path), EINVAL);
        if (comp == "." || comp == "..")
            return make_error(fmt::format("group path '{}' may not contain '{}'", path, shown),
                              EINVAL);
        if (comp.rfind("misc.", 0) == 0 || comp.rfind("encryption_ids.", 0) == 0)
            return make_error(fmt::format("group name '{}' would shadow an interface file", shown),
                              EINVAL);
        if (comp.size() > kMaxNameLength)
            return make_error(
                fmt::format("group name '{}' is longer than {} characters", shown, kMaxNameLength),
                EINVAL);
        for (char ch : comp)
            if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' ||
                  ch == '.'))
                return make_error(
                    fmt::format("group name '{}' may only use letters, digits, '_', '-', '.'",
                                shown),
                    EINVAL);
        start = end + 1;
    }
    return p;
}

std::string parent_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::vector<std::string> Controller::children(const std::string& path) const {
    std::vector<std::string> out;
    for (const auto& [p, g] : groups_)
        if (p != "/" && parent_of(p) == path) out.push_back(p);
    return out;
}

Status Controller::mkdir(const std::string& path) {
    if (exists(path)) return make_error(fmt::format("group {} already exists", path), EEXIST);
    if (!exists(parent_of(path)))
        return make_error(fmt::format("parent group {} does not exist", parent_of(path)), ENOENT);
    groups_[path] = Group{};
    return {};
}

Status Controller::rmdir(const std::string& path) {
    if (path == "/") return make_error("the root group cannot be removed", EPERM);
    if (!exists(path)) return make_error(fmt::format("group {} does not exist", path), ENOENT);
    if (!children(path).empty())
        return make_error(fmt::format("group {} has child groups", path), EBUSY);
    for (const TypeInfo& t : kTypes)
        if (groups_[path].c[static_cast<int>(t.type)].usage)
            return make_error(fmt::format("group {} holds {} {} ID(s) (live leases)", path,
                                          groups_[path].c[static_cast<int>(t.type)].usage, t.name),
                              EBUSY);
    groups_.erase(path);
    return {};
}

Status Controller::set_max(const std::string& path, Type t, uint64_t max) {
    if (!exists(path)) return make_error(fmt::format("group {} does not exist", path), ENOENT);
    if (path == "/")
        return make_error("the root group has no max (its limit is the capacity)", EINVAL);
    if (capacity(t) == 0)
        return make_error(fmt::format("type {} has capacity 0 on this host", info(t).name), EINVAL);
    groups_[path].c[static_cast<int>(t)].max = max;  // may be below usage (§1.3)
    return {};
}

Status Controller::charge(const std::string& path, Type t, uint64_t amount) {
    const int k = static_cast<int>(t);
    if (capacity(t) == 0)
        return make_error(fmt::format("type {} has capacity 0 on this host", info(t).name), EINVAL);
    if (!exists(path)) return make_error(fmt::format("group {} does not exist", path), ENOENT);
    if (amount == 0) return {};
    // Walk up to the root; on failure roll back every level charged so far.
    std::vector<std::string> charged;
    for (std::string p = path;; p = parent_of(p)) {
        Counters& c = groups_[p].c[k];
        const uint64_t next = c.usage + amount;
        if (next < c.usage || next > c.max || next > capacity(t)) {
            for (const std::string& q : charged) groups_[q].c[k].usage -= amount;
            // Events (§1.3): local at the failing level; hierarchical there and at every
            // ancestor except the root.
            count(c.events_local);
            for (std::string q = p; q != "/"; q = parent_of(q)) count(groups_[q].c[k].events);
            return make_error(
                fmt::format("{} limit reached in {}: current {}, max {}", info(t).name, p, c.usage,
                            p == "/"              ? fmt::format("{} (capacity)", capacity(t))
                            : c.max == kUnlimited ? std::string("max")
                                                  : std::to_string(c.max)),
                EBUSY);
        }
        c.usage = next;
        charged.push_back(p);
        if (p == "/") break;
    }
    for (const std::string& q : charged) {
        Counters& c = groups_[q].c[k];
        c.peak = std::max(c.peak, c.usage);
    }
    return {};
}

void Controller::uncharge(const std::string& path, Type t, uint64_t amount) {
    const int k = static_cast<int>(t);
    for (std::string p = path;; p = parent_of(p)) {
        auto it = groups_.find(p);
        if (it != groups_.end()) {
            Counters& c = it->second.c[k];
            c.usage = c.usage >= amount ? c.usage - amount : 0;
        }
        if (p == "/") break;
    }
}

Result<uint32_t> Controller::allocate(const std::string& path, Type t) {
    if (auto st = charge(path, t, 1); !st) return st.error();
    if (in_use_.size() != range_.max_asid + 1u || reclaim_.size() != in_use_.size())
        set_range(range_);
    // The store only hands over valid ranges; never index outside the bitmaps regardless.
    const uint32_t lo = std::max<uint32_t>(range_.first(t), 1);
    const auto hi = static_cast<uint32_t>(std::min<uint64_t>(range_.last(t), in_use_.size() - 1));
    for (int attempt = 0; attempt < 2; ++attempt) {
        for (uint32_t a = lo; a <= hi; ++a)
            if (!in_use_[a]) {
                in_use_[a] = 1;
                return a;
            }
        // Exhausted: flush once if this range has reclaimed ASIDs (§1.2); the flush
        // frees every reclaimed ASID of every range.
        bool any = false;
        for (uint32_t a = lo; a <= hi; ++a) any |= reclaim_[a] != 0;
        if (!any) break;
        count(flushes_);
        for (uint32_t a = 1; a < reclaim_.size(); ++a)
            if (reclaim_[a]) reclaim_[a] = 0, in_use_[a] = 0;
    }
    uncharge(path, t, 1);
    return make_error(fmt::format("no free {} ASID on this host", info(t).name), EBUSY);
}

void Controller::release(const std::string& path, Type t, uint32_t asid) {
    if (asid >= 1 && asid < reclaim_.size()) reclaim_[asid] = 1;  // in_use stays set
    uncharge(path, t, 1);
}

}  // namespace softkvm::eid
