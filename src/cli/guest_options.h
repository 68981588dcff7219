// What to boot and how emu runs it, shared by `softkvm run` and `softkvm profile`: a
// multiboot image or --kernel with --initrd/--append (QEMU's -kernel/-initrd/-append),
// and emu's --engine. One parser and one loader path for both commands.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace softkvm::vmm {
struct MachineConfig;
}

namespace softkvm::cli {

struct GuestOptions {
    std::string image;                        // the positional multiboot image
    std::string kernel;                       // --kernel FILE
    std::vector<std::string> append, initrd;  // as given (each at most once)
    std::optional<std::string> engine;        // --engine (emu); unset: emu's default

    // The file the machine loads (the image or the kernel), once apply() accepted them.
    const std::string& path() const { return kernel.empty() ? image : kernel; }
    // emu's engine as the run uses it ("hardware" on another accelerator).
    std::string engine_name(const std::string& accel) const;
};

void add_guest_options(CLI::App& app, GuestOptions& o);

// Checks the options and fills `cfg` (cfg.accel must be set): kernel or multiboot image,
// command line, initrd or multiboot modules, engine. Prints one line "softkvm COMMAND:
// ..." and returns kExitUsage (kExitUnavailable for an engine this host lacks), or
// returns kExitOk.
int apply_guest_options(const GuestOptions& o, vmm::MachineConfig& cfg, const char* command);

// The exit status for a machine that could not be created (README "Exit status").
int status_for_error(const Error& e);

}  // namespace softkvm::cli
