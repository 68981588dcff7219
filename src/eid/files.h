// The cgroupfs-style interface files of a group (spec §1.4): the seed's
// encryption_ids.<type>.{max,current,stat} and upstream's misc.* files, with the kernel's
// read formats, write syntax and errnos. Shared by `softkvm eid show` and the FUSE view.
#pragma once
#include <string>
#include <vector>

#include "common/result.h"
#include "eid/controller.h"

namespace softkvm::eid {

struct FileInfo {
    std::string name;
    bool writable;
};

// The files a group has (the root's differ from the others').
std::vector<FileInfo> group_files(const std::string& path);
bool is_group_file(const std::string& path, const std::string& name, bool* writable = nullptr);

// Contents of a file. ENOENT if the group has no such file.
Result<std::string> read_group_file(const Controller& c, const std::string& path,
                                    const std::string& name);
// Applies a write. Errors as the kernel's: EINVAL (syntax, unknown or zero-capacity type),
// ERANGE (number too large), EACCES (read-only file), ENOENT (no such file).
Status write_group_file(Controller& c, const std::string& path, const std::string& name,
                        const std::string& data);

// kstrtou64(s, 0): optional '+', decimal, 0x hex or 0 octal, optional trailing newline.
// EINVAL/ERANGE.
Result<uint64_t> parse_u64(const std::string& s);
// "max" or a number (seed max files; CLI `set`).
Result<uint64_t> parse_max(const std::string& s);
std::string format_max(uint64_t v);

}  // namespace softkvm::eid
