// Subcommands of the softkvm binary. Each registers itself on the root app; its callback
// stores the process exit status (cli/exit_codes.h) in `status`.
#pragma once
#include <CLI/CLI.hpp>

namespace softkvm::vmm {
struct RunReport;
}

namespace softkvm::cli {

void add_run_command(CLI::App& root, int& status);
void add_caps_command(CLI::App& root, int& status);
void add_eid_command(CLI::App& root, int& status);
void add_profile_command(CLI::App& root, int& status);

// The exit status of a run that ended, as `softkvm run` documents it (run_cmd.cc); also
// used by `softkvm profile`.
int status_for_report(const vmm::RunReport& r);

}  // namespace softkvm::cli
