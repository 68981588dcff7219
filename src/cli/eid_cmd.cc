// softkvm eid: the operator's interface to the encryption-ID controller (issue 4).
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpuid.h>
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/eid_status.h"
#include "cli/exit_codes.h"
#include "eid/files.h"
#include "eid/fuse_view.h"
#include "eid/store.h"

namespace softkvm::cli {
namespace {

using namespace softkvm::eid;
using json = nlohmann::json;

int status_of(const Error& e) {
    return eid_exit_status(e, false);
}
int open_status(const Error& e) {
    return eid_exit_status(e, true);
}

int fail(const std::string& cmd, const Error& e, int status) {
    std::fprintf(stderr, "softkvm eid %s: %s\n", cmd.c_str(), e.message.c_str());
    return status;
}

Result<std::unique_ptr<Store>> open_store(const std::string& db) {
    return Store::open(db);
}

struct Common {
    std::string db = kDefaultDbPath;
    bool json = false;
};

// The host's ASID range from --sev-asids/--min-sev-asid or CPUID (init, repair).
int parse_range(const std::string& cmd, const std::string& range, uint32_t min_sev, bool from_cpuid,
                AsidRange& r) {
    if (from_cpuid) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid(kCpuidSevLeaf, &a, &b, &c, &d) || !(a & kCpuidSevSupported))
            return fail(cmd,
                        make_error("this host's CPU does not report SEV (CPUID "
                                   "0x8000001F); give --sev-asids and --min-sev-asid"),
                        kExitUnavailable);
        r.max_asid = c, r.min_sev_asid = d;
        if (!valid_range(r))
            return fail(cmd,
                        make_error(fmt::format("CPUID 0x8000001F reports max ASID {} and min SEV "
                                               "ASID {}, which softkvm cannot use",
                                               c, d)),
                        kExitUnavailable);
        return kExitOk;
    }
    unsigned lo = 0, hi = 0;
    char extra = 0;
    if (range.empty() || std::sscanf(range.c_str(), "%u-%u%c", &lo, &hi, &extra) != 2)
        return fail(cmd, make_error("--sev-asids must look like 1-509"), kExitUsage);
    if (lo != 1)
        return fail(cmd, make_error("--sev-asids must start at 1 (ASID 0 is the host)"),
                    kExitUsage);
    if (hi == 0 || hi > kMaxAsids)
        return fail(cmd,
                    make_error(fmt::format("--sev-asids upper bound must be 1..{}", kMaxAsids)),
                    kExitUsage);
    if (min_sev < 1 || min_sev > hi + 1)
        return fail(cmd, make_error(fmt::format("--min-sev-asid must be 1..{}", hi + 1)),
                    kExitUsage);
    r.max_asid = hi, r.min_sev_asid = min_sev;
    return kExitOk;
}

// ---- init ----
int cmd_init(const Common& o, const std::string& range, uint32_t min_sev, bool from_cpuid) {
    AsidRange r;
    if (int st = parse_range("init", range, min_sev, from_cpuid, r); st != kExitOk) return st;
    auto s = Store::init(o.db, r);
    if (!s) return fail("init", s.error(), open_status(s.error()));
    std::printf("%s: sev ASIDs %u-%u (capacity %llu), sev_es ASIDs 1-%u (capacity %llu)\n",
                printable(o.db).c_str(), r.min_sev_asid, r.max_asid,
                static_cast<unsigned long long>(r.capacity(Type::Sev)), r.min_sev_asid - 1,
                static_cast<unsigned long long>(r.capacity(Type::SevEs)));
    return kExitOk;
}

// ---- check / repair ----
int cmd_check(const Common& o) {
    auto s = open_store(o.db);
    if (!s) return fail("check", s.error(), open_status(s.error()));
    auto problems = s.value()->check();
    if (!problems) return fail("check", problems.error(), status_of(problems.error()));
    if (o.json) {
        std::printf("%s\n", json{{"consistent", problems->empty()}, {"problems", problems.value()}}
                                .dump(2)
                                .c_str());
    } else if (problems->empty()) {
        std::printf("%s: consistent\n", printable(o.db).c_str());
    } else {
        for (const std::string& p : problems.value()) std::printf("%s\n", p.c_str());
    }
    if (problems->empty()) return kExitOk;
    std::fprintf(stderr,
                 "softkvm eid check: %zu problem(s); 'softkvm eid repair --eid-db %s' fixes "
                 "them and keeps every valid lease\n",
                 problems->size(), printable(o.db).c_str());
    return kExitCorrupt;
}

int cmd_repair(const Common& o, const std::string& range, uint32_t min_sev, bool from_cpuid,
               bool have_range) {
    std::optional<AsidRange> r;
    if (have_range) {
        r.emplace();
        if (int st = parse_range("repair", range, min_sev, from_cpuid, *r); st != kExitOk)
            return st;
    }
    auto s = open_store(o.db);
    if (!s) return fail("repair", s.error(), open_status(s.error()));
    auto fixes = s.value()->repair(r);
    if (!fixes) return fail("repair", fixes.error(), status_of(fixes.error()));
    if (fixes->empty()) std::printf("%s: consistent, nothing to repair\n", printable(o.db).c_str());
    for (const std::string& f : fixes.value()) std::printf("repaired: %s\n", f.c_str());
    return kExitOk;
}

// ---- mkdir / rmdir ----
int cmd_group(const Common& o, const std::string& cmd, const std::string& path) {
    auto p = normalize_path(path);
    if (!p) return fail(cmd, p.error(), kExitUsage);
    auto s = open_store(o.db);
    if (!s) return fail(cmd, s.error(), open_status(s.error()));
    auto st = s.value()->update([&](Controller& c, std::vector<EventRecord>& log) -> Status {
        Status r = cmd == "mkdir" ? c.mkdir(p.value()) : c.rmdir(p.value());
        if (r) log.push_back({0, 0, cmd, p.value()});
        return r;
    });
    return st ? kExitOk : fail(cmd, st.error(), status_of(st.error()));
}

// ---- set GROUP sev.max=4 ... ----
int cmd_set(const Common& o, const std::string& path, const std::vector<std::string>& assigns) {
    auto p = normalize_path(path);
    if (!p) return fail("set", p.error(), kExitUsage);
    struct Change {
        Type t;
        uint64_t max;
    };
    std::vector<Change> changes;
    for (const std::string& a : assigns) {
        const size_t eq = a.find('=');
        const size_t dot = a.find('.');
        if (eq == std::string::npos || dot == std::string::npos || dot > eq ||
            a.substr(dot + 1, eq - dot - 1) != "max")
            return fail("set",
                        make_error(fmt::format("'{}': expected TYPE.max=VALUE", printable(a))),
                        kExitUsage);
        Type t;
        if (!parse_type(a.substr(0, dot), t))
            return fail("set",
                        make_error(fmt::format("unknown type '{}' (sev, sev_es)",
                                               printable(a.substr(0, dot)))),
                        kExitUsage);
        auto v = parse_max(a.substr(eq + 1));
        if (!v)
            return fail("set",
                        make_error(fmt::format("'{}': value must be 'max' or a non-negative "
                                               "number ({})",
                                               printable(a), printable(v.error().message))),
                        kExitUsage);
        changes.push_back({t, v.value()});
    }
    auto s = open_store(o.db);
    if (!s) return fail("set", s.error(), open_status(s.error()));
    auto st = s.value()->update([&](Controller& c, std::vector<EventRecord>& log) -> Status {
        for (const Change& ch : changes) {
            if (auto r = c.set_max(p.value(), ch.t, ch.max); !r) return r;
            log.push_back(
                {0, 0, "set",
                 fmt::format("{} {}.max={}", p.value(), info(ch.t).name, format_max(ch.max))});
        }
        return {};
    });
    return st ? kExitOk : fail("set", st.error(), status_of(st.error()));
}

// ---- show GROUP ----
int cmd_show(const Common& o, const std::string& path) {
    auto p = normalize_path(path);
    if (!p) return fail("show", p.error(), kExitUsage);
    auto s = open_store(o.db);
    if (!s) return fail("show", s.error(), open_status(s.error()));
    auto c = s.value()->snapshot();
    if (!c) return fail("show", c.error(), status_of(c.error()));
    if (!c->exists(p.value()))
        return fail("show", make_error(fmt::format("group {} does not exist", p.value())),
                    kExitNotFound);
    json files = json::object();
    std::string text;
    for (const FileInfo& f : group_files(p.value())) {
        auto content = read_group_file(c.value(), p.value(), f.name);
        if (!content) continue;
        files[f.name] = content.value();
        std::string v = content.value();
        if (!v.empty() && v.back() == '\n') v.pop_back();
        if (v.find('\n') == std::string::npos) {
            text += fmt::format("{:<30} {}\n", f.name, v.empty() ? "(empty)" : v);
        } else {
            text += f.name + "\n";
            size_t start = 0;
            while (start <= v.size()) {
                size_t end = v.find('\n', start);
                if (end == std::string::npos) end = v.size();
                text += "    " + v.substr(start, end - start) + "\n";
                start = end + 1;
            }
        }
    }
    if (o.json)
        std::printf("%s\n", json{{"group", p.value()}, {"files", files}}.dump(2).c_str());
    else
        std::printf("%s:\n%s", p.value().c_str(), text.c_str());
    return kExitOk;
}

// ---- ls ----
int cmd_ls(const Common& o) {
    auto s = open_store(o.db);
    if (!s) return fail("ls", s.error(), open_status(s.error()));
    auto c = s.value()->snapshot();
    if (!c) return fail("ls", c.error(), status_of(c.error()));
    json arr = json::array();
    std::printf("%s", o.json ? ""
                             : fmt::format("{:<32} {:>13} {:>13}\n", "GROUP", "SEV cur/max",
                                           "SEV-ES cur/max")
                                   .c_str());
    for (const auto& [path, g] : c->groups()) {
        json types = json::object();
        std::string cols;
        for (const TypeInfo& t : kTypes) {
            const Counters& k = g.c[static_cast<int>(t.type)];
            const std::string max =
                path == "/" ? std::to_string(c->capacity(t.type)) : format_max(k.max);
            types[std::string(t.name)] = {{"current", k.usage},
                                          {"max", path == "/"           ? json(c->capacity(t.type))
                                                  : k.max == kUnlimited ? json("max")
                                                                        : json(k.max)},
                                          {"peak", k.peak},
                                          {"events", k.events}};
            cols += fmt::format(" {:>13}", fmt::format("{}/{}", k.usage, max));
        }
        arr.push_back({{"group", path}, {"types", types}});
        if (!o.json) std::printf("%-32s%s\n", path.c_str(), cols.c_str());
    }
    if (o.json)
        std::printf("%s\n", json{{"groups", arr}, {"flushes", c->flushes()}}.dump(2).c_str());
    return kExitOk;
}

// ---- leases / events ----
int cmd_leases(const Common& o) {
    auto s = open_store(o.db);
    if (!s) return fail("leases", s.error(), open_status(s.error()));
    auto l = s.value()->leases();
    if (!l) return fail("leases", l.error(), status_of(l.error()));
    json arr = json::array();
    if (!o.json) std::printf("%-6s %-24s %-7s %5s %8s\n", "LEASE", "GROUP", "TYPE", "ASID", "PID");
    for (const Lease& x : l.value()) {
        arr.push_back({{"id", x.id},
                       {"group", x.group},
                       {"type", info(x.type).name},
                       {"asid", x.asid},
                       {"pid", x.pid},
                       {"start_time", x.start_time},
                       {"created", x.created}});
        if (!o.json)
            std::printf("%-6lld %-24s %-7s %5u %8d\n", static_cast<long long>(x.id),
                        x.group.c_str(), std::string(info(x.type).name).c_str(), x.asid, x.pid);
    }
    if (o.json) std::printf("%s\n", arr.dump(2).c_str());
    return kExitOk;
}

int cmd_events(const Common& o) {
    auto s = open_store(o.db);
    if (!s) return fail("events", s.error(), open_status(s.error()));
    auto ev = s.value()->events();
    if (!ev) return fail("events", ev.error(), status_of(ev.error()));
    json arr = json::array();
    for (const EventRecord& e : ev.value()) {
        arr.push_back({{"id", e.id}, {"time", e.time}, {"kind", e.kind}, {"detail", e.detail}});
        if (!o.json)
            std::printf("%6lld %-9s %s\n", static_cast<long long>(e.id), e.kind.c_str(),
                        e.detail.c_str());
    }
    if (o.json) std::printf("%s\n", arr.dump(2).c_str());
    return kExitOk;
}

// ---- hold: a lease for the life of a command ----
int cmd_hold(const Common& o, const std::string& type, const std::string& group,
             const std::vector<std::string>& command) {
    Type t;
    if (!parse_type(type, t))
        return fail("hold",
                    make_error(fmt::format("unknown type '{}' (sev, sev-es)", printable(type))),
                    kExitUsage);
    auto p = normalize_path(group);
    if (!p) return fail("hold", p.error(), kExitUsage);
    auto s = open_store(o.db);
    if (!s) return fail("hold", s.error(), open_status(s.error()));
    auto lease = s.value()->acquire(p.value(), t, getpid(), process_start_time(getpid()));
    if (!lease)
        return fail("hold", lease.error(),
                    lease.error().code == EBUSY ? kExitLimit : status_of(lease.error()));
    std::fprintf(stderr, "softkvm eid hold: lease %lld: %s ASID %u in %s\n",
                 static_cast<long long>(lease->id), std::string(info(t).name).c_str(), lease->asid,
                 p.value().c_str());
    int status = kExitOk;
    if (!command.empty()) {
        const pid_t child = fork();
        if (child == 0) {
            std::vector<char*> argv;
            for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
            argv.push_back(nullptr);
            execvp(argv[0], argv.data());
            std::fprintf(stderr, "softkvm eid hold: cannot run %s: %s\n", argv[0],
                         std::strerror(errno));
            _exit(127);
        }
        int ws = 0;
        while (waitpid(child, &ws, 0) < 0 && errno == EINTR) {
        }
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    }
    if (auto st = s.value()->release(lease->id); !st)
        std::fprintf(stderr, "softkvm eid hold: %s\n", st.error().message.c_str());
    return status;
}

}  // namespace

void add_eid_command(CLI::App& root, int& status) {
    auto o = std::make_shared<Common>();
    CLI::App* eid =
        root.add_subcommand("eid", "Encryption-ID (SEV/SEV-ES ASID) controller: per-tenant limits");
    eid->require_subcommand(1);
    eid->footer(
        "Exit status: 0 ok, 64 bad argument, 66 no database, 74 I/O error, 75 limit reached\n"
        "(hold), 76 conflict (exists, busy, different init), 77 no such group or lease, 78\n"
        "corrupt or inconsistent database ('eid check' lists the problems, 'eid repair' fixes\n"
        "them keeping every valid lease).");
    auto add_common = [o](CLI::App* a, bool json) {
        a->add_option("--eid-db", o->db, "Controller database")->capture_default_str();
        if (json) a->add_flag("--json", o->json, "Print JSON");
    };

    auto range = std::make_shared<std::string>();
    auto min_sev = std::make_shared<uint32_t>(0);
    auto from_cpuid = std::make_shared<bool>(false);
    CLI::App* init = eid->add_subcommand("init", "Create the database for this host's ASIDs");
    add_common(init, false);
    init->add_option("--sev-asids", *range, "All ASIDs, e.g. 1-509 (CPUID 0x8000001F ECX)");
    init->add_option("--min-sev-asid", *min_sev,
                     "First plain-SEV ASID; SEV-ES gets 1..N-1 (CPUID 0x8000001F EDX)");
    init->add_flag("--from-cpuid", *from_cpuid, "Read the ranges from this host's CPUID");
    init->callback([o, range, min_sev, from_cpuid, init, &status] {
        if (!*from_cpuid && (range->empty() || init->count("--min-sev-asid") == 0)) {
            std::fprintf(stderr,
                         "softkvm eid init: give --sev-asids and --min-sev-asid, or "
                         "--from-cpuid\n");
            status = kExitUsage;
            return;
        }
        status = cmd_init(*o, *range, *min_sev, *from_cpuid);
    });

    CLI::App* check = eid->add_subcommand(
        "check", "List every inconsistency of the database (exit 78 if there is any)");
    add_common(check, true);
    check->callback([o, &status] { status = cmd_check(*o); });

    CLI::App* repair = eid->add_subcommand(
        "repair", "Make an inconsistent database consistent, keeping every valid lease");
    add_common(repair, false);
    repair->add_option("--sev-asids", *range,
                       "The host's ASIDs, needed only when the stored range is unusable");
    repair->add_option("--min-sev-asid", *min_sev, "The host's first plain-SEV ASID");
    repair->add_flag("--from-cpuid", *from_cpuid, "Read the ranges from this host's CPUID");
    repair->callback([o, range, min_sev, from_cpuid, repair, &status] {
        const bool given = *from_cpuid || !range->empty() || repair->count("--min-sev-asid");
        if (!*from_cpuid && given && (range->empty() || repair->count("--min-sev-asid") == 0)) {
            std::fprintf(stderr,
                         "softkvm eid repair: give both --sev-asids and --min-sev-asid, or "
                         "--from-cpuid\n");
            status = kExitUsage;
            return;
        }
        status = cmd_repair(*o, *range, *min_sev, *from_cpuid, given);
    });

    auto group = std::make_shared<std::string>();
    for (const char* name : {"mkdir", "rmdir"}) {
        CLI::App* a = eid->add_subcommand(
            name, std::string(name) == "mkdir" ? "Create a group" : "Remove an empty, idle group");
        add_common(a, false);
        a->add_option("group", *group, "Group path, e.g. /tenants/a")->required();
        const std::string cmd = name;
        a->callback([o, group, cmd, &status] { status = cmd_group(*o, cmd, *group); });
    }

    auto assigns = std::make_shared<std::vector<std::string>>();
    CLI::App* set = eid->add_subcommand("set", "Set limits: softkvm eid set /tenants/a sev.max=4");
    add_common(set, false);
    set->add_option("group", *group, "Group path")->required();
    set->add_option("limits", *assigns, "TYPE.max=VALUE (VALUE: a number or 'max')")->required();
    set->callback([o, group, assigns, &status] { status = cmd_set(*o, *group, *assigns); });

    CLI::App* show = eid->add_subcommand("show", "Show a group's interface files");
    add_common(show, true);
    show->add_option("group", *group, "Group path")->required();
    show->callback([o, group, &status] { status = cmd_show(*o, *group); });

    CLI::App* ls = eid->add_subcommand("ls", "List groups with usage and limits");
    add_common(ls, true);
    ls->callback([o, &status] { status = cmd_ls(*o); });

    CLI::App* leases = eid->add_subcommand("leases", "List held IDs and their owners");
    add_common(leases, true);
    leases->callback([o, &status] { status = cmd_leases(*o); });

    CLI::App* events = eid->add_subcommand("events", "Show the controller's event log");
    add_common(events, true);
    events->callback([o, &status] { status = cmd_events(*o); });

    auto dir = std::make_shared<std::string>();
    CLI::App* mount = eid->add_subcommand(
        "mount", "Serve a cgroupfs-style view at DIR until unmounted (fusermount3 -u DIR)");
    add_common(mount, false);
    mount->add_option("dir", *dir, "Mount point (an empty directory)")->required();
    mount->callback([o, dir, &status] {
        auto st = run_fuse_view(o->db, *dir);
        if (st) {
            status = kExitOk;
        } else {
            const int code = st.error().code;
            status = fail("mount", st.error(),
                          code == ENOENT || code == EBADMSG ? open_status(st.error())
                                                            : status_of(st.error()));
        }
    });

    auto type = std::make_shared<std::string>();
    auto command = std::make_shared<std::vector<std::string>>();
    CLI::App* hold = eid->add_subcommand(
        "hold", "Hold one ID while COMMAND runs (e.g. another VMM): hold -t sev -g G -- CMD");
    add_common(hold, false);
    hold->add_option("-t,--type", *type, "sev or sev-es")->required();
    hold->add_option("-g,--group", *group, "Group to charge")->required();
    hold->add_option("command", *command, "Command to run while the ID is held");
    hold->callback(
        [o, type, group, command, &status] { status = cmd_hold(*o, *type, *group, *command); });
}

}  // namespace softkvm::cli
