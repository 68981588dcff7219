// Placeholder until the encryption-ID controller lands (issue 4).
#include <cstdio>

#include "cli/commands.h"
#include "cli/exit_codes.h"

namespace softkvm::cli {

void add_eid_command(CLI::App& root, int& status) {
    auto* eid = root.add_subcommand("eid", "Encryption-ID (SEV ASID) controller");
    eid->callback([&status] {
        std::fprintf(stderr, "softkvm eid: not implemented yet\n");
        status = kExitSoftware;
    });
}

}  // namespace softkvm::cli
