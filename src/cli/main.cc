// The softkvm command line.
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/exit_codes.h"

int main(int argc, char** argv) {
    using namespace softkvm::cli;
    CLI::App app{
        "softkvm: a hypervisor with a software x86-64 CPU (emu) and /dev/kvm (kvm) back ends"};
    app.name("softkvm");
    app.set_version_flag("--version", "softkvm 0.1.0");
    app.require_subcommand(1);
    int status = kExitOk;
    add_run_command(app, status);
    add_caps_command(app, status);
    add_eid_command(app, status);
    add_profile_command(app, status);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version are "errors" with status 0; real ones are usage errors.
        const int code = app.exit(e);
        return code == 0 ? kExitOk : kExitUsage;
    }
    return status;
}
