// --cpu-model and --lbr-fmt, shared by `softkvm run` and `softkvm profile`.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace softkvm::cli {

void add_cpu_options(CLI::App& app, std::string& model, int& lbr_fmt);
// Checks the options against the emu model table (kvm checks against its host when the
// machine is created). Prints one line and returns kExitUsage, or returns kExitOk.
int check_cpu_options(const std::string& accel, const std::string& model, int lbr_fmt,
                      const char* command);

}  // namespace softkvm::cli
