// The cgroupfs-style FUSE view of the controller (`softkvm eid mount DIR`): groups are
// directories (mkdir/rmdir work), the interface files of files.h are files.
#pragma once
#include <string>

#include "common/result.h"

namespace softkvm::eid {

// Mounts the view of the database at `db_path` on `dir` and serves it until unmounted
// (fusermount3 -u DIR) or interrupted. Errors: those of Store::open, ENODEV if the
// mount itself fails.
Status run_fuse_view(const std::string& db_path, const std::string& dir);

}  // namespace softkvm::eid
