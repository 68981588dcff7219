// Placeholder until the encryption-ID controller lands (issue 4).
#include "cli/confidential.h"

#include <cstdio>

#include "cli/exit_codes.h"

namespace softkvm::cli {

void add_confidential_options(CLI::App& run, ConfidentialOptions& opts) {
    run.add_option("--confidential", opts.type, "Confidential guest type: sev or sev-es");
    run.add_option("--eid-group", opts.group, "Encryption-ID group to charge");
    run.add_option("--eid-db", opts.db_path, "Encryption-ID database");
}

int take_launch_lease(const ConfidentialOptions& opts, std::unique_ptr<LaunchLease>& lease) {
    lease.reset();
    if (opts.type.empty()) return kExitOk;
    std::fprintf(stderr, "softkvm run: --confidential is not implemented yet\n");
    return kExitUnavailable;
}

}  // namespace softkvm::cli
