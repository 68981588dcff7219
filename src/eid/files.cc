#include "eid/files.h"

#include <fmt/format.h>

#include <cerrno>

namespace softkvm::eid {
namespace {

std::string strip(const std::string& s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
    return s.substr(a, b - a);
}

const std::string kSeedPrefix = "encryption_ids.";

// Parses "encryption_ids.<type>.<leaf>".
bool seed_file(const std::string& name, Type& t, std::string& leaf) {
    if (name.rfind(kSeedPrefix, 0) != 0) return false;
    const std::string rest = name.substr(kSeedPrefix.size());
    const size_t dot = rest.rfind('.');
    if (dot == std::string::npos) return false;
    leaf = rest.substr(dot + 1);
    return parse_type(rest.substr(0, dot), t) && rest.substr(0, dot) == info(t).name;
}

}  // namespace

std::string format_max(uint64_t v) {
    return v == kUnlimited ? "max" : std::to_string(v);
}

Result<uint64_t> parse_u64(const std::string& in) {
    std::string s = in;
    if (!s.empty() && s.back() == '\n') s.pop_back();
    if (!s.empty() && s[0] == '+') s.erase(0, 1);  // kstrtoull() skips one leading '+'
    if (s.empty()) return make_error("empty number", EINVAL);
    int base = 10;
    size_t i = 0;
    if (s.size() > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        base = 16, i = 2;
    else if (s.size() > 1 && s[0] == '0')
        base = 8, i = 1;
    if (i >= s.size()) return make_error(fmt::format("'{}' is not a number", s), EINVAL);
    uint64_t v = 0;
    for (; i < s.size(); ++i) {
        const char ch = s[i];
        int d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return make_error(fmt::format("'{}' is not a number", s), EINVAL);
        if (d >= base) return make_error(fmt::format("'{}' is not a number", s), EINVAL);
        if (v > (UINT64_MAX - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base))
            return make_error(fmt::format("'{}' is too large", s), ERANGE);
        v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    }
    return v;
}

Result<uint64_t> parse_max(const std::string& in) {
    const std::string s = strip(in);
    if (s == "max") return kUnlimited;
    return parse_u64(s);
}

std::vector<FileInfo> group_files(const std::string& path) {
    std::vector<FileInfo> out;
    const bool root = path == "/";
    for (const TypeInfo& t : kTypes) {
        const std::string base = kSeedPrefix + std::string(t.name);
        if (root) {
            out.push_back({base + ".stat", false});
        } else {
            out.push_back({base + ".max", true});
            out.push_back({base + ".current", false});
        }
    }
    if (root) out.push_back({"misc.capacity", false});
    if (!root) out.push_back({"misc.max", true});
    out.push_back({"misc.current", false});
    out.push_back({"misc.peak", false});
    if (!root) {
        out.push_back({"misc.events", false});
        out.push_back({"misc.events.local", false});
    }
    return out;
}

bool is_group_file(const std::string& path, const std::string& name, bool* writable) {
    for (const FileInfo& f : group_files(path))
        if (f.name == name) {
            if (writable) *writable = f.writable;
            return true;
        }
    return false;
}

Result<std::string> read_group_file(const Controller& c, const std::string& path,
                                    const std::string& name) {
    if (!c.exists(path) || !is_group_file(path, name))
        return make_error(fmt::format("{}: no file {}", path, name), ENOENT);
    const Group& g = c.group(path);
    Type t;
    std::string leaf;
    if (seed_file(name, t, leaf)) {
        const Counters& k = g.c[static_cast<int>(t)];
        if (leaf == "max") return format_max(k.max) + "\n";
        if (leaf == "current") return fmt::format("{}\n", k.usage);
        if (leaf == "stat") return fmt::format("total {}\nused {}\n", c.capacity(t), k.usage);
    }
    std::string out;
    for (const TypeInfo& ti : kTypes) {
        const Counters& k = g.c[static_cast<int>(ti.type)];
        const uint64_t cap = c.capacity(ti.type);
        if (name == "misc.capacity" && cap) out += fmt::format("{} {}\n", ti.name, cap);
        if (name == "misc.max" && cap) out += fmt::format("{} {}\n", ti.name, format_max(k.max));
        if (name == "misc.current" && (cap || k.usage))
            out += fmt::format("{} {}\n", ti.name, k.usage);
        if (name == "misc.peak" && (cap || k.peak)) out += fmt::format("{} {}\n", ti.name, k.peak);
        if (name == "misc.events" && (cap || k.events))
            out += fmt::format("{}.max {}\n", ti.name, k.events);
        if (name == "misc.events.local" && (cap || k.events_local))
            out += fmt::format("{}.max {}\n", ti.name, k.events_local);
    }
    return out;
}

Status write_group_file(Controller& c, const std::string& path, const std::string& name,
                        const std::string& data) {
    bool writable = false;
    if (!c.exists(path) || !is_group_file(path, name, &writable))
        return make_error(fmt::format("{}: no file {}", path, name), ENOENT);
    if (!writable) return make_error(fmt::format("{} is read-only", name), EACCES);
    Type t;
    std::string leaf;
    if (seed_file(name, t, leaf)) {
        auto v = parse_max(data);
        if (!v) return v.error();
        return c.set_max(path, t, v.value());
    }
    // misc.max: "<name> <max|number>" (kernel misc_cg_max_write).
    const std::string s = strip(data);
    const size_t sp = s.find(' ');
    if (sp == std::string::npos)
        return make_error("misc.max expects '<type> <max|number>'", EINVAL);
    if (!parse_type(s.substr(0, sp), t) || s.substr(0, sp) != info(t).name)
        return make_error(fmt::format("unknown type '{}'", s.substr(0, sp)), EINVAL);
    const std::string value = s.substr(sp + 1);  // as the kernel: no second strip
    uint64_t max;
    if (value == "max") {
        max = kUnlimited;
    } else {
        auto v = parse_u64(value);
        if (!v) return v.error();
        max = v.value();
    }
    return c.set_max(path, t, max);
}

}  // namespace softkvm::eid
