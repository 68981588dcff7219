// Fuzz target: writes to the encryption-ID interface files (misc.max,
// encryption_ids.<type>.max, read-only files, unknown names) with arbitrary bytes.
// Oracle: no crash or sanitizer report; only the kernel's errnos (EINVAL, ERANGE, EACCES,
// ENOENT); acceptance, value and errno equal a reference written from the kernel's rules
// (misc_cg_max_write: strstrip, split at the first space, "max" or kstrtou64 base 0, which takes
// one leading '+'); an accepted value reads back from the file.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "eid/files.h"

using namespace softkvm::eid;

namespace {

// What the kernel's kstrtou64(s, 0) makes of `s` (one trailing newline allowed): the value,
// or the errno.
struct Parsed {
    int err = 0;
    uint64_t v = 0;
};
Parsed reference_u64(std::string s) {
    if (!s.empty() && s[0] == '+') s = s.substr(1);
    // _parse_integer_fixup_radix: "0x" then a hex digit is hex, another leading 0 octal.
    unsigned base = 10;
    size_t i = 0;
    auto digit = [](char c) -> unsigned {
        return c >= '0' && c <= '9'   ? unsigned(c - '0')
               : c >= 'a' && c <= 'f' ? unsigned(c - 'a' + 10)
               : c >= 'A' && c <= 'F' ? unsigned(c - 'A' + 10)
                                      : 99;
    };
    if (s.size() >= 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && digit(s[2]) < 16)
        base = 16, i = 2;
    else if (!s.empty() && s[0] == '0')
        base = 8;
    // _parse_integer: the longest run of digits, noting overflow; then _kstrtoull: overflow
    // is ERANGE before anything else, no digits EINVAL, then one '\n' and the end.
    unsigned __int128 v = 0;
    bool overflow = false;
    const size_t start = i;
    for (; i < s.size() && digit(s[i]) < base; ++i) {
        v = v * base + digit(s[i]);
        if (v > UINT64_MAX) overflow = true, v &= UINT64_MAX;
    }
    if (overflow) return {ERANGE, 0};
    if (i == start) return {EINVAL, 0};
    if (i < s.size() && s[i] == '\n') ++i;
    if (i != s.size()) return {EINVAL, 0};
    return {0, static_cast<uint64_t>(v)};
}

// Kernel strstrip(): isspace() on both ends.
std::string strstrip(const std::string& s) {
    auto sp = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    size_t a = 0, b = s.size();
    while (a < b && sp(s[a])) ++a;
    while (b > a && sp(s[b - 1])) --b;
    return s.substr(a, b - a);
}

const char* const kFiles[] = {"misc.max",
                              "encryption_ids.sev.max",
                              "encryption_ids.sev_es.max",
                              "misc.current",
                              "encryption_ids.sev.current",
                              "misc.events",
                              "encryption_ids.tdx.max",
                              "misc.capacity"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const std::string file = kFiles[data[0] % 8];
    const bool root = data[0] & 0x80;
    const bool es_only = data[0] & 0x40;  // min_sev_asid 17: no plain-SEV ASIDs at all
    const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    const AsidRange range{16, es_only ? 17u : 9u};
    Controller c(range);
    c.set_range(range);
    if (!c.mkdir("/a")) std::abort();
    const std::string group = root ? "/" : "/a";

    auto st = write_group_file(c, group, file, text);

    // The reference: which file, which type, which value, which errno.
    bool writable = false;
    const bool exists = is_group_file(group, file, &writable);
    int want_err = 0;
    std::optional<Type> type;
    uint64_t want_v = 0;
    if (!exists) {
        want_err = ENOENT;
    } else if (!writable) {
        want_err = EACCES;
    } else if (file == "misc.max") {
        const std::string s = strstrip(text);
        const size_t sp = s.find(' ');
        Type t;
        if (sp == std::string::npos || !parse_type(s.substr(0, sp), t) ||
            s.substr(0, sp) != info(t).name) {
            want_err = EINVAL;
        } else {
            type = t;
            const std::string value = s.substr(sp + 1);
            if (value == "max") {
                want_v = kUnlimited;
            } else {
                const Parsed p = reference_u64(value);
                want_err = p.err, want_v = p.v;
            }
        }
    } else {  // encryption_ids.<type>.max: "max" or a number, surrounding blanks ignored
        type = file == "encryption_ids.sev.max" ? Type::Sev : Type::SevEs;
        const std::string s = strstrip(text);
        if (s == "max") {
            want_v = kUnlimited;
        } else {
            const Parsed p = reference_u64(s);
            want_err = p.err, want_v = p.v;
        }
    }
    if (!want_err && type && c.capacity(*type) == 0) want_err = EINVAL;

    if (st.ok() != (want_err == 0)) std::abort();
    if (!st.ok() && st.error().code != want_err) std::abort();
    if (st.ok()) {
        const Counters& k = c.group(group).c[static_cast<int>(*type)];
        if (k.max != want_v) std::abort();
        auto back = read_group_file(c, group, "misc.max");
        const std::string line = std::string(info(*type).name) + " " + format_max(want_v) + "\n";
        if (!back || back.value().find(line) == std::string::npos) std::abort();
    }
    return 0;
}
