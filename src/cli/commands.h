// Subcommands of the softkvm binary. Each registers itself on the root app; its callback
// stores the process exit status (cli/exit_codes.h) in `status`.
#pragma once
#include <CLI/CLI.hpp>

namespace softkvm::cli {

void add_run_command(CLI::App& root, int& status);
void add_caps_command(CLI::App& root, int& status);
void add_eid_command(CLI::App& root, int& status);
void add_profile_command(CLI::App& root, int& status);

}  // namespace softkvm::cli
