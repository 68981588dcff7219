// softkvm profile --lbr: run a guest with the host owning its LBR unit, sample the branch
// stack at exact points in virtual time, and print the hottest from->to pairs (a table
// shaped like `perf report --branch-stack`), JSON, or folded call chains.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/cpu_options.h"
#include "cli/exit_codes.h"
#include "cli/guest_options.h"
#include "vmm/lbr_profile.h"
#include "vmm/machine.h"

namespace softkvm::cli {
namespace {

constexpr uint64_t kDefaultPeriod = 10007;  // retired instructions (a prime: no lockstep)
constexpr uint64_t kDefaultTop = 20;

struct ProfileOptions {
    GuestOptions guest;  // image or --kernel, --append, --initrd, --engine (as `run`)
    bool lbr = false;
    std::string period_text, max_insns_text, top_text;
    std::string symbols;
    bool json = false, folded = false, quiet = false;
    std::string accel = "emu";
    std::string memory = "128M";
    std::string cpu_model;
    int lbr_fmt = -1;
};

int usage(const std::string& msg) {
    std::fprintf(stderr, "softkvm profile: %s\n", msg.c_str());
    return kExitUsage;
}

// A count option: decimal digits only, 0 to 2^64 - 1.
bool parse_count(const std::string& text, uint64_t& out) {
    if (text.empty()) return false;
    uint64_t v = 0;
    for (char ch : text) {
        if (ch < '0' || ch > '9') return false;
        const uint64_t d = static_cast<uint64_t>(ch - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

// --symbols FILE: an ELF file's symbol table or a System.map, told apart by content.
int load_symbols(const std::string& path, vmm::SymbolTable& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "softkvm profile: --symbols %s: %s\n", path.c_str(),
                     std::strerror(errno));
        return kExitNoInput;
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
        std::fprintf(stderr, "softkvm profile: --symbols %s: read error\n", path.c_str());
        return kExitNoInput;
    }
    if (text.compare(0, 4,
                     "\x7f"
                     "ELF") == 0) {
        out = vmm::SymbolTable::from_elf(std::vector<uint8_t>(text.begin(), text.end()));
        if (out.size() == 0) {
            std::fprintf(stderr,
                         "softkvm profile: --symbols %s: an ELF file without function "
                         "symbols (no readable .symtab)\n",
                         path.c_str());
            return kExitBadInput;
        }
        return kExitOk;
    }
    auto map = vmm::SymbolTable::from_system_map(text);
    if (!map) {
        std::fprintf(stderr,
                     "softkvm profile: --symbols %s: neither an ELF file nor a System.map (%s)\n",
                     path.c_str(), map.error().message.c_str());
        return kExitBadInput;
    }
    out = std::move(map).value();
    return kExitOk;
}

// The kvm accelerator has no host-side sampler: the host kernel's perf owns real LBRs.
int refuse_kvm() {
    std::string why;
    if (auto a = accel::create_accelerator("kvm"); !a) {
        why = "--accel kvm: " + a.error().message;
    } else {
        why =
            "--lbr on --accel kvm is not implemented (on an Intel host, use the host's "
            "`perf record -b`); use --accel emu";
        for (const accel::Capability& c : a.value()->capabilities())
            if (c.name == "guest-lbr" && !c.available)
                why = "--lbr on --accel kvm needs the host's LBR unit: " + c.detail;
    }
    std::fprintf(stderr, "softkvm profile: %s\n", why.c_str());
    return kExitUnavailable;
}

std::string where(const vmm::SymbolTable& syms, uint64_t addr) {
    const std::string s = syms.describe(addr);
    return s.empty() ? fmt::format("{:#x}", addr) : s;
}

void print_table(const vmm::LbrProfile& p, const vmm::SymbolTable& syms, uint64_t top,
                 const vmm::RunReport& r) {
    std::printf(
        "# softkvm profile --lbr: %llu samples, one every %llu instructions; %llu branch "
        "records\n",
        static_cast<unsigned long long>(p.samples()), static_cast<unsigned long long>(p.period()),
        static_cast<unsigned long long>(p.records()));
    std::printf("# guest: %s after %llu instructions\n#\n", vmm::end_name(r.end),
                static_cast<unsigned long long>(r.instructions));
    std::printf("# %8s  %-36s  %-36s  %10s\n", "Share", "From", "To", "Count");
    const auto pairs = p.pairs();
    for (size_t k = 0; k < pairs.size() && (top == 0 || k < top); ++k) {
        const double share =
            100.0 * static_cast<double>(pairs[k].count) / static_cast<double>(p.records());
        std::printf("  %7.2f%%  %-36s  %-36s  %10llu\n", share, where(syms, pairs[k].from).c_str(),
                    where(syms, pairs[k].to).c_str(),
                    static_cast<unsigned long long>(pairs[k].count));
    }
}

void print_json(const vmm::LbrProfile& p, const vmm::SymbolTable& syms, uint64_t top,
                const vmm::RunReport& r, int status) {
    nlohmann::json pairs = nlohmann::json::array();
    const auto all = p.pairs();
    for (size_t k = 0; k < all.size() && (top == 0 || k < top); ++k) {
        auto sym = [&](uint64_t a) {
            const std::string s = syms.describe(a);
            return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
        };
        pairs.push_back(
            {{"from", fmt::format("{:#x}", all[k].from)},
             {"from_symbol", sym(all[k].from)},
             {"to", fmt::format("{:#x}", all[k].to)},
             {"to_symbol", sym(all[k].to)},
             {"count", all[k].count},
             {"share", static_cast<double>(all[k].count) / static_cast<double>(p.records())}});
    }
    const nlohmann::json out = {
        {"period", p.period()},   {"period_unit", "instructions"},  {"samples", p.samples()},
        {"records", p.records()}, {"distinct_pairs", all.size()},   {"exit", vmm::end_name(r.end)},
        {"status", status},       {"instructions", r.instructions}, {"pairs", pairs},
    };
    std::printf("%s\n", out.dump(2).c_str());
}

void print_folded(const vmm::LbrProfile& p) {
    for (const auto& [chain, n] : p.chains())
        std::printf("%s %llu\n", chain.c_str(), static_cast<unsigned long long>(n));
}

int profile(const ProfileOptions& o) {
    if (!o.lbr) return usage("say what to sample: --lbr (the branch stack) is the only mode");
    uint64_t period = kDefaultPeriod, max_insns = 0, top = kDefaultTop;
    if (!o.period_text.empty() && !parse_count(o.period_text, period))
        return usage(
            fmt::format("--period '{}': not a whole number of instructions", o.period_text));
    if (period == 0) return usage("--period 0: the period is at least one instruction");
    if (!o.max_insns_text.empty() && !parse_count(o.max_insns_text, max_insns))
        return usage(fmt::format("--max-insns '{}': not a whole number", o.max_insns_text));
    if (!o.top_text.empty() && !parse_count(o.top_text, top))
        return usage(fmt::format("--top '{}': not a whole number (0: every pair)", o.top_text));
    if (o.json && o.folded) return usage("--json and --folded exclude each other");
    if (int st = check_cpu_options(o.accel, o.cpu_model, o.lbr_fmt, "profile"); st != kExitOk)
        return st;
    if (o.accel == "kvm") return refuse_kvm();

    vmm::MachineConfig cfg;
    cfg.accel = o.accel;
    if (int st = apply_guest_options(o.guest, cfg, "profile"); st != kExitOk) return st;
    cfg.max_insns = max_insns;
    cfg.cpu_model = o.cpu_model;
    cfg.lbr_fmt = o.lbr_fmt;
    auto mem = vmm::parse_size(o.memory);
    if (!mem) return usage("--memory: " + mem.error().message);
    cfg.memory = mem.value();
    if (cfg.memory < vmm::GuestMemory::kMin || cfg.memory > vmm::GuestMemory::kMax ||
        (cfg.memory & 0xFFF))
        return usage(
            fmt::format("--memory {}: must be a multiple of 4 KiB between {} MiB and "
                        "{} GiB",
                        o.memory, vmm::GuestMemory::kMin >> 20, vmm::GuestMemory::kMax >> 30));

    vmm::SymbolTable file_symbols;
    if (!o.symbols.empty())
        if (int st = load_symbols(o.symbols, file_symbols); st != kExitOk) return st;

    // The guest's console goes to stderr: stdout carries the profile.
    std::string line;
    auto console = [&line, quiet = o.quiet](char c) {
        if (quiet) return;
        line.push_back(c);
        if (c == '\n') {
            std::fwrite(line.data(), 1, line.size(), stderr);
            line.clear();
        }
    };
    auto machine = vmm::Machine::create(cfg, o.guest.path(), console);
    if (!machine) {
        std::fprintf(stderr, "softkvm profile: %s\n", machine.error().message.c_str());
        return status_for_error(machine.error());
    }
    vmm::Machine& m = *machine.value();
    vmm::SymbolTable image_symbols;
    if (o.symbols.empty()) {
        std::ifstream in(o.guest.path(), std::ios::binary);
        const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                         std::istreambuf_iterator<char>());
        image_symbols = vmm::SymbolTable::from_elf(bytes);
    }
    const vmm::SymbolTable& syms = o.symbols.empty() ? image_symbols : file_symbols;

    vmm::LbrProfile prof(period, syms);
    if (auto st = prof.attach(m); !st) return usage(st.error().message);
    const vmm::RunReport r = m.run();
    prof.detach(m);
    if (!line.empty()) std::fwrite(line.data(), 1, line.size(), stderr);
    const int status = status_for_report(r);
    if (r.end != vmm::End::GuestExit)
        std::fprintf(stderr, "softkvm profile: the guest ended: %s%s%s\n", vmm::end_name(r.end),
                     r.detail.empty() ? "" : ": ", r.detail.c_str());
    if (o.json)
        print_json(prof, syms, top, r, status);
    else if (o.folded)
        print_folded(prof);
    else
        print_table(prof, syms, top, r);
    std::fflush(stdout);
    return status;
}

}  // namespace

void add_profile_command(CLI::App& root, int& status) {
    auto o = std::make_shared<ProfileOptions>();
    CLI::App* app = root.add_subcommand(
        "profile", "Run a guest and profile its branches from the host (--lbr)");
    add_guest_options(*app, o->guest);
    app->add_flag("--lbr", o->lbr,
                  "Sample the guest's LBR branch stack (the host owns the unit while it runs)");
    app->add_option("--period", o->period_text,
                    fmt::format("Sample every N retired instructions, counted as --max-insns "
                                "counts them (default {})",
                                kDefaultPeriod));
    app->add_option("--symbols", o->symbols,
                    "Name addresses with this ELF file's symbols or this System.map (default: "
                    "the guest image's)");
    app->add_flag("--json", o->json, "Print the profile as JSON");
    app->add_flag("--folded", o->folded,
                  "Print folded call chains (flame-graph input): 'a;b;c SAMPLES' per line");
    app->add_option("--top", o->top_text,
                    fmt::format("Pairs to print (default {}; 0: all)", kDefaultTop));
    app->add_option("--accel", o->accel, "Accelerator (host-side LBR sampling needs emu)")
        ->check(CLI::IsMember({"emu", "kvm"}))
        ->capture_default_str();
    app->add_option("--memory", o->memory, "Guest RAM, e.g. 128M or 1G (2M to 64G)")
        ->capture_default_str();
    app->add_option("--max-insns", o->max_insns_text, "Stop after N guest instructions");
    app->add_flag("-q,--quiet", o->quiet, "Do not print the guest's serial output (on stderr)");
    add_cpu_options(*app, o->cpu_model, o->lbr_fmt);
    app->footer(
        "The profile goes to stdout, the guest's serial output to stderr. The exit status is\n"
        "that of `softkvm run` for the same guest (the guest's code, 0 for a Linux\n"
        "power-off, 122-126, 128+N), or: 64 bad option (--period 0, a non-numeric count,\n"
        "unknown --cpu-model, --lbr-fmt mismatch, neither or both of an image and\n"
        "--kernel), 65 bad image or --symbols file that is neither ELF nor System.map,\n"
        "66 missing file, 69 --accel kvm (no host-side sampler; this needs an LBR unit).");
    app->callback([o, &status] { status = profile(*o); });
}

}  // namespace softkvm::cli
