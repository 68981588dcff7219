// Launch integration of the encryption-ID controller: `softkvm run --confidential ...`
// holds one lease from before the VM starts until softkvm exits. If softkvm dies without
// releasing it (SIGKILL), the lease's owner (pid + start time) is gone and the next
// controller operation releases it.
#include "cli/confidential.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "cli/eid_status.h"
#include "cli/exit_codes.h"
#include "eid/store.h"

namespace softkvm::cli {
namespace {

class StoreLease final : public LaunchLease {
  public:
    StoreLease(std::unique_ptr<eid::Store> store, eid::Lease lease)
        : store_(std::move(store)), lease_(std::move(lease)) {}
    ~StoreLease() override {
        if (auto st = store_->release(lease_.id); !st)
            std::fprintf(stderr, "softkvm run: releasing encryption ID: %s\n",
                         st.error().message.c_str());
    }
    unsigned asid() const override { return lease_.asid; }

  private:
    std::unique_ptr<eid::Store> store_;
    eid::Lease lease_;
};

}  // namespace

void add_confidential_options(CLI::App& run, ConfidentialOptions& opts) {
    opts.db_path = eid::kDefaultDbPath;
    run.add_option("--confidential", opts.type,
                   "Start as a confidential guest: take a sev or sev-es encryption ID")
        ->check(CLI::IsMember({"sev", "sev-es"}));
    run.add_option("--eid-group", opts.group,
                   "Encryption-ID group to charge (with --confidential)");
    run.add_option("--eid-db", opts.db_path, "Encryption-ID database")->capture_default_str();
}

int take_launch_lease(const ConfidentialOptions& opts, std::unique_ptr<LaunchLease>& lease) {
    lease.reset();
    if (opts.type.empty()) {
        if (!opts.group.empty()) {
            std::fprintf(stderr, "softkvm run: --eid-group needs --confidential sev|sev-es\n");
            return kExitUsage;
        }
        return kExitOk;
    }
    if (opts.group.empty()) {
        std::fprintf(stderr, "softkvm run: --confidential needs --eid-group GROUP\n");
        return kExitUsage;
    }
    eid::Type t;
    if (!eid::parse_type(opts.type, t)) {
        std::fprintf(stderr, "softkvm run: unknown confidential type '%s'\n",
                     eid::printable(opts.type).c_str());
        return kExitUsage;
    }
    auto path = eid::normalize_path(opts.group);
    if (!path) {
        std::fprintf(stderr, "softkvm run: %s\n", path.error().message.c_str());
        return kExitUsage;
    }
    auto store = eid::Store::open(opts.db_path);
    if (!store) {
        std::fprintf(stderr, "softkvm run: %s\n", store.error().message.c_str());
        return eid_exit_status(store.error(), true);
    }
    auto l = store.value()->acquire(path.value(), t, getpid(), eid::process_start_time(getpid()));
    if (!l) {
        std::fprintf(stderr, "softkvm run: cannot start a confidential guest: %s\n",
                     l.error().message.c_str());
        // EBUSY from a charge: a limit (or no free ASID) refused the launch.
        return l.error().code == EBUSY ? kExitLimit : eid_exit_status(l.error(), false);
    }
    lease = std::make_unique<StoreLease>(std::move(store).value(), std::move(l).value());
    return kExitOk;
}

}  // namespace softkvm::cli
