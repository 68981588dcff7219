// Launch integration of the encryption-ID controller (issue: eid, item 5): `softkvm run
// --confidential sev|sev-es --eid-group G [--eid-db PATH]` holds a lease for the VM's life.
#pragma once
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace softkvm::cli {

struct ConfidentialOptions {
    std::string type;     // "" (not confidential), "sev" or "sev-es"
    std::string group;    // --eid-group
    std::string db_path;  // --eid-db (default under /var/lib/softkvm/)
};

// A held encryption-ID lease; destroying it releases the ID.
class LaunchLease {
public:
    virtual ~LaunchLease() = default;
    virtual unsigned asid() const = 0;
};

void add_confidential_options(CLI::App& run, ConfidentialOptions& opts);

// Returns 0 with `lease` set (null when the guest is not confidential), or prints one
// line to stderr and returns a non-zero exit status (cli/exit_codes.h).
int take_launch_lease(const ConfidentialOptions& opts, std::unique_ptr<LaunchLease>& lease);

}  // namespace softkvm::cli
