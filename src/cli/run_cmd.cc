// softkvm run: boot a multiboot guest, print its serial console, exit with its code.
#include <fmt/format.h>
#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/confidential.h"
#include "cli/cpu_options.h"
#include "cli/exit_codes.h"
#include "cli/guest_options.h"
#include "cli/terminal.h"
#include "common/cpu_features.h"
#include "vmm/machine.h"

namespace softkvm::cli {
namespace {

struct RunOptions {
    std::string accel = "emu";
    std::string memory = "128M";
    std::string max_insns_text;  // parsed by parse_count(): CLI11 would wrap "-1"
    std::string trace_text;
    uint64_t max_insns = 0;
    uint64_t trace = 0;
    uint32_t cpus = 1;
    bool stats = false;
    bool quiet = false;
    std::string stats_json;
    std::optional<std::string> bus_lock_ratelimit;  // as given
    std::vector<std::string> cpu_features;          // -NAME hides, +NAME keeps
    std::vector<std::string> devices;               // --device NAME

    std::string cpu_model;
    int lbr_fmt = -1;
    GuestOptions guest;  // image or --kernel, --append, --initrd, --engine
    ConfidentialOptions confidential;
};

// Guest exit codes 0..63 are the process status; softkvm keeps 64 and up for itself.
constexpr uint32_t kMaxGuestStatus = 63;

// A count option: decimal digits only, at most 2^64 - 1 ("-1", "+5", "1e3", "0x10" and
// 18446744073709551616 are refused, not wrapped or truncated).
bool parse_count(const std::string& option, const std::string& text, uint64_t& out) {
    auto fail = [&](const char* why) {
        std::fprintf(stderr, "softkvm run: %s %s: %s (a whole number from 0 to %llu)\n",
                     option.c_str(), text.c_str(), why,
                     static_cast<unsigned long long>(UINT64_MAX));
        return false;
    };
    if (text.empty()) return fail("empty");
    uint64_t v = 0;
    for (char ch : text) {
        if (ch < '0' || ch > '9') return fail("not a decimal number");
        const uint64_t d = static_cast<uint64_t>(ch - '0');
        if (v > (UINT64_MAX - d) / 10) return fail("too large");
        v = v * 10 + d;
    }
    out = v;
    return true;
}

// Writes `text` to `path`; false (with errno set) if any part of it, or the final flush
// and close, failed.
bool write_whole_file(const std::string& path, const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return false;
    const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    const int saved = errno;
    const bool closed = std::fclose(f) == 0;
    if (!wrote) errno = saved;
    return wrote && closed;
}

// Peak resident set size of this process in KiB (getrusage), for --stats.
uint64_t max_rss_kib() {
    struct rusage ru = {};
    return getrusage(RUSAGE_SELF, &ru) == 0 ? static_cast<uint64_t>(ru.ru_maxrss) : 0;
}

// --bus-lock-ratelimit N: a decimal count of bus locks per second, 0 to 2^32 (0: count
// them without a limit). Returns an error message, or "" when `text` is valid.
std::string parse_ratelimit(const std::string& text, uint64_t& out) {
    constexpr uint64_t kMax = 1ull << 32;
    if (text.empty()) return "expects a number of bus locks per second";
    if (text[0] == '-') return fmt::format("'{}' is negative", text);
    uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return fmt::format("'{}' is not a decimal number", text);
        v = v * 10 + static_cast<uint64_t>(c - '0');
        if (v > kMax) return fmt::format("'{}' is above the maximum of 2^32 ({})", text, kMax);
    }
    out = v;
    return "";
}

// --cpu-feature [+-]NAME (features in common/cpu_features.h). Returns an error message.
std::string parse_cpu_features(const std::vector<std::string>& specs,
                               std::vector<features::CpuidBit>& hidden) {
    for (const std::string& s : specs) {
        const bool hide = !s.empty() && s[0] == '-';
        const std::string name = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? s.substr(1) : s;
        const features::CpuFeature* f = features::find_cpu_feature(name);
        if (!f) {
            std::string known;
            for (const features::CpuFeature& k : features::kCpuFeatures)
                known += (known.empty() ? "" : ", ") + std::string(k.name);
            return fmt::format("unknown feature '{}' (known: {})", name, known);
        }
        std::erase_if(hidden, [&](const features::CpuidBit& b) {
            return b.leaf == f->where.leaf && b.subleaf == f->where.subleaf &&
                   b.reg == f->where.reg && b.bit == f->where.bit;
        });
        if (hide) hidden.push_back(f->where);  // the last word on a feature wins
    }
    return "";
}

nlohmann::json bus_lock_json(const vmm::BusLockReport& b) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& s : b.top)
        top.push_back(
            {{"rip", fmt::format("{:#x}", s.rip)},
             {"count", s.count},
             {"symbol", s.symbol.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.symbol)}});
    return {
        {"limit_per_second", b.limit},
        {"count", b.stats.count},
        {"split", b.stats.split},
        {"not_write_back", b.stats.not_wb},
        {"kind_unknown", b.stats.unknown},
        {"delay_seconds", static_cast<double>(b.stats.delay_ns) / 1e9},
        {"top_rips", top},
    };
}

void print_bus_locks(const vmm::BusLockReport& b) {
    std::fprintf(stderr,
                 "  bus locks        %llu (split %llu, non-WB %llu%s), limit %s, delay %.6f s\n",
                 static_cast<unsigned long long>(b.stats.count),
                 static_cast<unsigned long long>(b.stats.split),
                 static_cast<unsigned long long>(b.stats.not_wb),
                 b.stats.unknown ? fmt::format(", kind unknown {}", b.stats.unknown).c_str() : "",
                 b.limit ? fmt::format("{}/s", b.limit).c_str() : "none",
                 static_cast<double>(b.stats.delay_ns) / 1e9);
    for (const auto& s : b.top)
        std::fprintf(stderr, "    rip %#018llx %10llu  %s\n",
                     static_cast<unsigned long long>(s.rip),
                     static_cast<unsigned long long>(s.count), s.symbol.c_str());
}

nlohmann::json report_json(const RunOptions& o, const vmm::RunReport& r, int status) {
    nlohmann::json exits = nlohmann::json::object();
    for (const auto& [k, v] : r.stats.exits) exits[k] = v;
    nlohmann::json ports = nlohmann::json::object();
    for (const auto& [k, v] : r.stats.unclaimed_ports) ports[fmt::format("{:#x}", k)] = v;
    nlohmann::json mmio = nlohmann::json::object();
    for (const auto& [k, v] : r.stats.unclaimed_mmio) mmio[fmt::format("{:#x}", k)] = v;
    nlohmann::json counters = nlohmann::json::object();
    for (const auto& [k, v] : r.counters) counters[k] = v;
    return {
        {"bus_locks", r.bus_locks ? bus_lock_json(*r.bus_locks) : nlohmann::json(nullptr)},
        {"accel", o.accel},
        {"engine", o.guest.engine_name(o.accel)},
        {"image", o.guest.path()},
        {"exit", vmm::end_name(r.end)},
        {"status", status},
        {"guest_code",
         r.end == vmm::End::GuestExit ? nlohmann::json(r.guest_code) : nlohmann::json(nullptr)},
        {"instructions", r.instructions},
        {"seconds", r.seconds},
        {"mips", r.seconds > 0 ? static_cast<double>(r.instructions) / r.seconds / 1e6 : 0.0},
        {"exits", exits},
        {"unclaimed_ports", ports},
        {"unclaimed_mmio_pages", mmio},
        {"refused_irqs", r.stats.refused_irqs},
        {"accel_counters", counters},
        {"max_rss_kib", max_rss_kib()},
    };
}

// Console output: line-buffered to stdout, so a crash loses at most a partial line.
class Console {
  public:
    explicit Console(bool quiet) : quiet_(quiet) {}
    ~Console() { flush(); }
    void put(char c) {
        if (quiet_) return;
        buf_.push_back(c);
        if (c == '\n' || unbuffered_ || buf_.size() >= 4096) flush();
    }
    // Interactive runs show every byte at once: a shell's prompt ends without a newline.
    void set_unbuffered() { unbuffered_ = true; }
    void flush() {
        if (!buf_.empty()) {
            std::fwrite(buf_.data(), 1, buf_.size(), stdout);
            buf_.clear();
        }
        std::fflush(stdout);
    }

  private:
    bool quiet_;
    bool unbuffered_ = false;
    std::string buf_;
};

vmm::Machine* g_running = nullptr;

void on_stop_signal(int signo) {
    if (g_running) g_running->request_stop(signo);
}

// Routes SIGINT and SIGTERM to Machine::request_stop while it lives.
class StopOnSignal {
  public:
    explicit StopOnSignal(vmm::Machine& m) {
        g_running = &m;
        struct sigaction sa = {};
        sa.sa_handler = on_stop_signal;  // no SA_RESTART: KVM_RUN returns EINTR
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int_);
        sigaction(SIGTERM, &sa, &old_term_);
    }
    ~StopOnSignal() {
        sigaction(SIGINT, &old_int_, nullptr);
        sigaction(SIGTERM, &old_term_, nullptr);
        g_running = nullptr;
    }
    StopOnSignal(const StopOnSignal&) = delete;
    StopOnSignal& operator=(const StopOnSignal&) = delete;

  private:
    struct sigaction old_int_ = {}, old_term_ = {};
};

int run(RunOptions o) {
    if (!o.max_insns_text.empty() && !parse_count("--max-insns", o.max_insns_text, o.max_insns))
        return kExitUsage;
    if (!o.trace_text.empty() && !parse_count("--trace", o.trace_text, o.trace)) return kExitUsage;
    vmm::MachineConfig cfg;
    cfg.accel = o.accel;
    cfg.max_insns = o.max_insns;
    cfg.trace = o.trace;
    cfg.cpus = o.cpus;
    cfg.cpu_model = o.cpu_model;
    cfg.lbr_fmt = o.lbr_fmt;
    if (int st = check_cpu_options(o.accel, o.cpu_model, o.lbr_fmt, "run"); st != kExitOk)
        return st;
    cfg.trace_sink = [](const std::string& line) {
        std::fprintf(stderr, "trace: %s\n", line.c_str());
    };
    auto mem = vmm::parse_size(o.memory);
    if (!mem) {
        std::fprintf(stderr, "softkvm run: --memory: %s\n", mem.error().message.c_str());
        return kExitUsage;
    }
    cfg.memory = mem.value();
    if (cfg.memory < vmm::GuestMemory::kMin || cfg.memory > vmm::GuestMemory::kMax ||
        (cfg.memory & 0xFFF)) {
        std::fprintf(stderr,
                     "softkvm run: --memory %s: must be a multiple of 4 KiB between %llu MiB "
                     "and %llu GiB\n",
                     o.memory.c_str(),
                     static_cast<unsigned long long>(vmm::GuestMemory::kMin >> 20),
                     static_cast<unsigned long long>(vmm::GuestMemory::kMax >> 30));
        return kExitUsage;
    }
    if ((o.max_insns || o.trace) && o.accel != "emu") {
        std::fprintf(stderr, "softkvm run: --max-insns and --trace need --accel emu\n");
        return kExitUsage;
    }
    if (o.bus_lock_ratelimit) {
        uint64_t limit = 0;
        if (std::string e = parse_ratelimit(*o.bus_lock_ratelimit, limit); !e.empty()) {
            std::fprintf(stderr, "softkvm run: --bus-lock-ratelimit: %s\n", e.c_str());
            return kExitUsage;
        }
        cfg.bus_lock_ratelimit = limit;
    }
    if (std::string e = parse_cpu_features(o.cpu_features, cfg.hidden_cpuid); !e.empty()) {
        std::fprintf(stderr, "softkvm run: --cpu-feature: %s\n", e.c_str());
        return kExitUsage;
    }

    if (int st = apply_guest_options(o.guest, cfg, "run"); st != kExitOk) return st;
    for (const std::string& d : o.devices) {
        if (d != "pc-testdev") {
            std::fprintf(
                stderr, "softkvm run: --device '%s': %s (known: pc-testdev)\n", d.c_str(),
                d.find(',') != std::string::npos ? "devices take no properties" : "unknown device");
            return kExitUsage;
        }
        if (cfg.pc_testdev) {
            std::fprintf(stderr, "softkvm run: --device pc-testdev given more than once\n");
            return kExitUsage;
        }
        cfg.pc_testdev = true;
    }

    std::unique_ptr<LaunchLease> lease;
    if (int st = take_launch_lease(o.confidential, lease); st != kExitOk) return st;

    Console console(o.quiet);
    auto machine =
        vmm::Machine::create(cfg, o.guest.path(), [&console](char c) { console.put(c); });
    if (!machine) {
        std::fprintf(stderr, "softkvm run: %s\n", machine.error().message.c_str());
        return status_for_error(machine.error());
    }
    // SIGINT/SIGTERM end the run cleanly: the guest stops at the next block, the
    // console is flushed, statistics are written and the encryption-ID lease is given
    // back before softkvm exits with 128 + the signal number.
    StopOnSignal stop_on_signal(*machine.value());
    // On a terminal, what the user types goes to the guest's serial port.
    auto input = std::make_shared<vmm::SerialInput>();
    std::optional<TerminalInput> terminal;
    if (o.cpus == 1 && !o.quiet) {
        terminal.emplace(input);
        if (terminal->active()) {
            machine.value()->attach_serial_input(input);
            console.set_unbuffered();
        }
    }
    const vmm::RunReport r = machine.value()->run();
    terminal.reset();  // the terminal's settings come back before anything is printed
    console.flush();
    const int status = status_for_report(r);
    switch (r.end) {
        case vmm::End::GuestExit:
            if (r.guest_code > kMaxGuestStatus)
                std::fprintf(stderr, "softkvm run: guest exit code %u reported as %u\n",
                             r.guest_code, kMaxGuestStatus);
            break;
        case vmm::End::InsnLimit:
            std::fprintf(stderr, "softkvm run: instruction limit of %llu reached\n",
                         static_cast<unsigned long long>(o.max_insns));
            break;
        case vmm::End::Halted:
            std::fprintf(stderr, "softkvm run: %s (no exit code written to port 0xf4)\n",
                         r.detail.c_str());
            break;
        case vmm::End::Shutdown:
            std::fprintf(stderr, "softkvm run: guest shut down (%s)\n%s", r.detail.c_str(),
                         r.state.c_str());
            break;
        case vmm::End::Stalled:
            std::fprintf(stderr, "softkvm run: guest stalled: %s\n%s", r.detail.c_str(),
                         r.state.c_str());
            break;
        case vmm::End::InternalError:
            std::fprintf(stderr, "softkvm run: cannot emulate: %s\n%s", r.detail.c_str(),
                         r.state.c_str());
            break;
        case vmm::End::Failure:
            std::fprintf(stderr, "softkvm run: %s\n%s", r.detail.c_str(), r.state.c_str());
            break;
        case vmm::End::Reset:
            std::fprintf(stderr, "softkvm run: %s (a reboot; the run ends here)\n",
                         r.detail.c_str());
            break;
        case vmm::End::PowerOff:
            std::fprintf(stderr, "softkvm run: %s\n", r.detail.c_str());
            break;
        case vmm::End::Interrupted:
            std::fprintf(stderr, "softkvm run: stopped by %s after %llu instructions\n",
                         strsignal(r.stop_signal), static_cast<unsigned long long>(r.instructions));
            break;
    }
    if (o.stats) {
        std::fprintf(stderr, "softkvm run: %s after %llu instructions in %.3f s (%.1f MIPS)\n",
                     vmm::end_name(r.end), static_cast<unsigned long long>(r.instructions),
                     r.seconds,
                     r.seconds > 0 ? static_cast<double>(r.instructions) / r.seconds / 1e6 : 0);
        for (const auto& [k, v] : r.stats.exits)
            std::fprintf(stderr, "  exits %-16s %llu\n", k.c_str(),
                         static_cast<unsigned long long>(v));
        for (const auto& [k, v] : r.counters)
            std::fprintf(stderr, "  %-22s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
        for (const auto& [k, v] : r.stats.unclaimed_ports)
            std::fprintf(stderr, "  unclaimed port %#-9x %llu\n", k,
                         static_cast<unsigned long long>(v));
        for (const auto& [k, v] : r.stats.unclaimed_mmio)
            std::fprintf(stderr, "  unclaimed mmio page %#llx %llu\n",
                         static_cast<unsigned long long>(k), static_cast<unsigned long long>(v));
        std::fprintf(stderr, "  %-22s %llu\n", "refused_irqs",
                     static_cast<unsigned long long>(r.stats.refused_irqs));
        std::fprintf(stderr, "  %-22s %llu\n", "max_rss_kib",
                     static_cast<unsigned long long>(max_rss_kib()));
        if (r.bus_locks) print_bus_locks(*r.bus_locks);
    }
    if (!o.stats_json.empty() &&
        !write_whole_file(o.stats_json, report_json(o, r, status).dump(2) + "\n")) {
        std::fprintf(stderr, "softkvm run: cannot write %s: %s\n", o.stats_json.c_str(),
                     std::strerror(errno));
        return kExitIoError;
    }
    return status;
}

}  // namespace

int status_for_report(const vmm::RunReport& r) {
    switch (r.end) {
        case vmm::End::GuestExit:
            return static_cast<int>(std::min(r.guest_code, kMaxGuestStatus));
        case vmm::End::Halted:
            return kExitGuestStopped;
        case vmm::End::InsnLimit:
            return kExitInsnLimit;
        case vmm::End::Shutdown:
            return kExitTripleFault;
        case vmm::End::Stalled:
            return kExitGuestStalled;
        case vmm::End::InternalError:
            return kExitEmulation;
        case vmm::End::Failure:
            return kExitSoftware;
        case vmm::End::Interrupted:
            return 128 + r.stop_signal;  // as a shell reports a death by that signal
        case vmm::End::Reset:
            return kExitGuestReset;
        case vmm::End::PowerOff:
            return kExitOk;
    }
    return kExitSoftware;
}

void add_run_command(CLI::App& root, int& status) {
    auto opts = std::make_shared<RunOptions>();
    CLI::App* run_app = root.add_subcommand("run", "Boot a multiboot guest and run it to its end");
    add_guest_options(*run_app, opts->guest);
    run_app->add_option("--accel", opts->accel, "Accelerator: emu (software CPU) or kvm")
        ->check(CLI::IsMember({"emu", "kvm"}))
        ->capture_default_str();
    run_app->add_option("--memory", opts->memory, "Guest RAM, e.g. 128M or 1G (2M to 64G)")
        ->capture_default_str();
    run_app->add_option("--max-insns", opts->max_insns_text,
                        "Stop after N guest instructions, each iteration of a REP string "
                        "instruction counting as one (emu; exit status 124)");
    run_app
        ->add_option("--cpus", opts->cpus,
                     "vCPUs (1-8); application processors wait for INIT/SIPI (kvm: a thread each)")
        ->check(CLI::Range(1, 8))
        ->capture_default_str();
    run_app->add_option("--trace", opts->trace_text,
                        "Print the first N instructions (RIP, disassembly) to stderr (emu)");
    run_app->add_flag("--stats", opts->stats, "Print instructions, time and exit counts to stderr");
    run_app->add_option("--stats-json", opts->stats_json,
                        "Write the run's statistics as JSON to this file");
    run_app->add_flag("-q,--quiet", opts->quiet, "Do not print the guest's serial output");
    run_app->add_option_function<std::string>(
        "--bus-lock-ratelimit", [opts](const std::string& v) { opts->bus_lock_ratelimit = v; },
        "At most N guest bus locks per second, VM-wide (0-2^32; 0 counts them "
        "without a limit); needs KVM_CAP_X86_BUS_LOCK_EXIT");
    run_app
        ->add_option("--cpu-feature", opts->cpu_features,
                     "-NAME hides a CPU feature from the guest, +NAME keeps it (repeatable; "
                     "names: bus-lock-detect)")
        ->allow_extra_args(false);
    run_app
        ->add_option("--device", opts->devices,
                     "Add a device (repeatable; devices: pc-testdev, QEMU's test device)")
        ->allow_extra_args(false);
    add_cpu_options(*run_app, opts->cpu_model, opts->lbr_fmt);
    add_confidential_options(*run_app, opts->confidential);
    run_app->footer(
        "The guest's serial port (COM1) is printed on stdout. The exit status is the value the\n"
        "guest wrote to the debug-exit port 0xf4 (0 = pass; values above 63 are reported as\n"
        "63), or: 64 bad option, 65 bad image, 66 missing or unreadable image, 69 accelerator\n"
        "unavailable, 75 encryption-ID limit, 122 guest reset (reboot), 123 guest halted\n"
        "without an exit code, 124\n"
        "instruction limit, 125 triple fault, 126 instruction softkvm cannot emulate,\n"
        "128+N stopped by signal N (SIGINT, SIGTERM: the guest stops, output is flushed and\n"
        "an encryption-ID lease is given back).");
    run_app->callback([opts, &status] { status = run(*opts); });
}

}  // namespace softkvm::cli
