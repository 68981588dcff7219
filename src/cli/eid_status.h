// Exit statuses for errors of the encryption-ID store and controller (README "Exit
// status", docs/eid.md), shared by `softkvm eid` and `softkvm run --confidential`.
#pragma once
#include <cerrno>

#include "cli/exit_codes.h"
#include "common/result.h"

namespace softkvm::cli {

// `opening`: the error came from opening the database (ENOENT: no database) rather than
// from an operation on it (ENOENT: no such group or lease). EBUSY is a conflict here; a
// refused charge is kExitLimit, which the launching callers choose themselves.
inline int eid_exit_status(const Error& e, bool opening) {
    switch (e.code) {
        case EINVAL:
        case ERANGE:
        case EPERM:
            return kExitUsage;
        case ENOENT:
            return opening ? kExitNoInput : kExitNotFound;
        case EEXIST:
        case EBUSY:
            return kExitConflict;
        case EACCES:
        case EIO:
        case EROFS:
        case ETIMEDOUT:
            return kExitIoError;
        case EBADMSG:
            return kExitCorrupt;
        case ENODEV:
            return kExitUnavailable;
        default:
            return kExitSoftware;
    }
}

}  // namespace softkvm::cli
