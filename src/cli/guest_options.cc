// The guest of `softkvm run` and `softkvm profile` (guest_options.h): one option parser
// and one set of checks, so both commands boot the same things the same way.
#include "cli/guest_options.h"

#include <cerrno>
#include <cstdio>

#include "accel/accel.h"
#include "cli/exit_codes.h"
#include "vmm/machine.h"

namespace softkvm::cli {
namespace {

// --engine: a known engine, the emu accelerator, available on this host.
int check_engine(const std::string& accel, const std::optional<std::string>& given,
                 const char* command) {
    if (!given) return kExitOk;
    const std::string& engine = *given;
    const auto engines = accel::emu_engines();
    std::string names;
    const accel::EngineInfo* found = nullptr;
    for (const auto& e : engines) {
        names += (names.empty() ? "" : ", ") + e.name;
        if (e.name == engine) found = &e;
    }
    if (!found) {
        std::fprintf(stderr, "softkvm %s: --engine %s: unknown engine (known: %s)\n", command,
                     engine.c_str(), names.c_str());
        return kExitUsage;
    }
    if (accel != "emu") {
        std::fprintf(stderr, "softkvm %s: --engine needs --accel emu\n", command);
        return kExitUsage;
    }
    if (!found->available) {
        std::fprintf(stderr, "softkvm %s: --engine %s: not available on this host\n", command,
                     engine.c_str());
        return kExitUnavailable;
    }
    return kExitOk;
}

}  // namespace

std::string GuestOptions::engine_name(const std::string& accel) const {
    return accel == "emu" ? engine.value_or(accel::emu_default_engine()) : "hardware";
}

void add_guest_options(CLI::App& app, GuestOptions& o) {
    app.add_option("guest", o.image, "Multiboot ELF image (ELF32 or ELF64)");
    app.add_option("--kernel", o.kernel,
                   "Boot FILE as QEMU's -kernel does: a Linux bzImage or vmlinux ELF "
                   "(Linux boot protocol, 64-bit entry), or a multiboot image");
    app.add_option_function<std::string>(
        "--append", [&o](const std::string& v) { o.append.push_back(v); },
        "Kernel command line (Linux), or the multiboot command line after the image's name "
        "(as qemu -append)");
    app.add_option_function<std::string>(
        "--initrd", [&o](const std::string& v) { o.initrd.push_back(v); },
        "Linux initrd FILE, or multiboot modules FILE[ ARGS][,FILE...] (as qemu -initrd; "
        "',,' is a comma)");
    app.add_option("--engine", o.engine,
                   "emu's execution engine: translate (the default where available: x86-64 "
                   "hosts; docs/translator.md) or interp");
}

int apply_guest_options(const GuestOptions& o, vmm::MachineConfig& cfg, const char* command) {
    if (int st = check_engine(cfg.accel, o.engine, command); st != kExitOk) return st;
    if (cfg.accel == "emu") cfg.engine = o.engine_name(cfg.accel);
    if (o.append.size() > 1 || o.initrd.size() > 1) {
        std::fprintf(stderr, "softkvm %s: %s given more than once\n", command,
                     o.append.size() > 1 ? "--append" : "--initrd");
        return kExitUsage;
    }
    if (o.image.empty() == o.kernel.empty()) {
        std::fprintf(stderr, "softkvm %s: give either a multiboot image or --kernel FILE%s\n",
                     command, o.image.empty() ? "" : ", not both");
        return kExitUsage;
    }
    cfg.kernel = !o.kernel.empty();
    if (!o.append.empty()) cfg.append = o.append[0];
    if (!o.initrd.empty()) {
        cfg.initrd_file = o.initrd[0];
        auto mods = vmm::parse_module_list(o.initrd[0]);
        if (!mods) {
            std::fprintf(stderr, "softkvm %s: --initrd %s\n", command,
                         mods.error().message.c_str());
            return kExitUsage;
        }
        cfg.modules = std::move(mods).value();
    }
    return kExitOk;
}

int status_for_error(const Error& e) {
    switch (e.code) {
        case ENOENT:
        case EACCES:
        case EISDIR:
        case ENOTDIR:
        case ELOOP:
        case ENAMETOOLONG:
        case ESPIPE:
        case ENXIO:
            return kExitNoInput;
        case EIO:
            return kExitIoError;
        case ENOEXEC:
        case ERANGE:
            return kExitBadInput;
        case EFBIG:  // --append/--initrd do not fit in --memory
            return kExitUsage;
        case ENODEV:
        case ENOSYS:
            return kExitUnavailable;
        case EINVAL:
            return kExitUsage;
        default:
            return kExitSoftware;
    }
}

}  // namespace softkvm::cli
