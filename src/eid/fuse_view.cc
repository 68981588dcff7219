#define FUSE_USE_VERSION 35
#include "eid/fuse_view.h"

#include <fuse3/fuse.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "eid/files.h"
#include "eid/store.h"

namespace softkvm::eid {
namespace {

Store* g_store = nullptr;

// Splits a FUSE path into (group, file): file is empty for a directory.
struct Node {
    std::string group, file;
};

bool resolve(const Controller& c, const char* fpath, Node& n) {
    std::string p = fpath;
    if (p == "/") return n = {"/", ""}, true;
    const size_t slash = p.rfind('/');
    const std::string parent = slash == 0 ? "/" : p.substr(0, slash);
    const std::string leaf = p.substr(slash + 1);
    if (c.exists(parent) && is_group_file(parent, leaf)) return n = {parent, leaf}, true;
    if (c.exists(p)) return n = {p, ""}, true;
    return false;
}

int errno_of(const Error& e) {
    return e.code ? e.code : EIO;
}

int op_getattr(const char* path, struct stat* st, struct fuse_file_info*) {
    auto v = g_store->view();
    if (!v) return -errno_of(v.error());
    const Controller& c = v.value()->controller;
    Node n;
    if (!resolve(c, path, n)) return -ENOENT;
    std::memset(st, 0, sizeof *st);
    if (n.file.empty()) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        bool writable = false;
        is_group_file(n.group, n.file, &writable);
        st->st_mode = S_IFREG | (writable ? 0644 : 0444);
        st->st_nlink = 1;
        st->st_size = 0;  // like cgroupfs: contents are generated on read
    }
    return 0;
}

int op_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, struct fuse_file_info*,
               enum fuse_readdir_flags) {
    auto v = g_store->view();
    if (!v) return -errno_of(v.error());
    const Controller& c = v.value()->controller;
    Node n;
    if (!resolve(c, path, n) || !n.file.empty()) return -ENOTDIR;
    fill(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    fill(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    for (const FileInfo& f : group_files(n.group))
        fill(buf, f.name.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    for (const std::string& child : c.children(n.group))
        fill(buf, child.substr(child.rfind('/') + 1).c_str(), nullptr, 0,
             static_cast<fuse_fill_dir_flags>(0));
    return 0;
}

int op_open(const char* path, struct fuse_file_info* fi) {
    auto v = g_store->view();
    if (!v) return -errno_of(v.error());
    const Controller& c = v.value()->controller;
    Node n;
    if (!resolve(c, path, n) || n.file.empty()) return -ENOENT;
    bool writable = false;
    is_group_file(n.group, n.file, &writable);
    if ((fi->flags & O_ACCMODE) != O_RDONLY && !writable) return -EACCES;
    fi->direct_io = 1;  // sizes are not known in advance
    return 0;
}

int op_read(const char* path, char* buf, size_t size, off_t off, struct fuse_file_info*) {
    auto v = g_store->view();
    if (!v) return -errno_of(v.error());
    const Controller& c = v.value()->controller;
    Node n;
    if (!resolve(c, path, n) || n.file.empty()) return -ENOENT;
    auto text = read_group_file(c, n.group, n.file);
    if (!text) return -errno_of(text.error());
    const std::string& t = text.value();
    if (static_cast<size_t>(off) >= t.size()) return 0;
    const size_t len = std::min(size, t.size() - static_cast<size_t>(off));
    std::memcpy(buf, t.data() + off, len);
    return static_cast<int>(len);
}

int op_write(const char* path, const char* buf, size_t size, off_t, struct fuse_file_info*) {
    int result = 0;
    auto st = g_store->update([&](Controller& c, std::vector<EventRecord>& log) -> Status {
        Node n;
        if (!resolve(c, path, n) || n.file.empty()) return make_error("no such file", ENOENT);
        auto w = write_group_file(c, n.group, n.file, std::string(buf, size));
        if (w) log.push_back({0, 0, "set", n.group + "/" + n.file + ": " + std::string(buf, size)});
        return w;
    });
    if (!st) result = -errno_of(st.error());
    return result ? result : static_cast<int>(size);
}

int op_truncate(const char* path, off_t, struct fuse_file_info*) {
    auto v = g_store->view();
    if (!v) return -errno_of(v.error());
    const Controller& c = v.value()->controller;
    Node n;
    if (!resolve(c, path, n) || n.file.empty()) return -ENOENT;
    bool writable = false;
    is_group_file(n.group, n.file, &writable);
    return writable ? 0 : -EACCES;
}

// mkdir and rmdir: one store transaction each, logged.
int group_op(const char* path, const char* kind) {
    auto p = normalize_path(path);
    if (!p) return -EINVAL;
    const bool make = std::strcmp(kind, "mkdir") == 0;
    auto st = g_store->update([&](Controller& c, std::vector<EventRecord>& log) -> Status {
        auto r = make ? c.mkdir(p.value()) : c.rmdir(p.value());
        if (r) log.push_back({0, 0, kind, p.value()});
        return r;
    });
    return st ? 0 : -errno_of(st.error());
}

int op_mkdir(const char* path, mode_t) {
    return group_op(path, "mkdir");
}
int op_rmdir(const char* path) {
    return group_op(path, "rmdir");
}

// The set of interface files is fixed. Answers as cgroup v2's kernfs: creating a file
// EACCES (no ->create); unlink, rename, links and device nodes EPERM. softkvm choice:
// chmod, chown and utimens also EPERM (cgroupfs stores modes and owners; this view
// keeps none).
int op_create(const char*, mode_t, struct fuse_file_info*) {
    return -EACCES;
}
int op_unlink(const char*) {
    return -EPERM;
}
int op_rename(const char*, const char*, unsigned int) {
    return -EPERM;
}
int op_link(const char*, const char*) {
    return -EPERM;
}
int op_mknod(const char*, mode_t, dev_t) {
    return -EPERM;
}
int op_chmod(const char*, mode_t, struct fuse_file_info*) {
    return -EPERM;
}
int op_chown(const char*, uid_t, gid_t, struct fuse_file_info*) {
    return -EPERM;
}
int op_utimens(const char*, const struct timespec[2], struct fuse_file_info*) {
    return -EPERM;
}

}  // namespace

Status run_fuse_view(const std::string& db_path, const std::string& dir) {
    auto store = Store::open(db_path);
    if (!store) return store.error();
    g_store = store.value().get();
    struct fuse_operations ops = {};
    ops.getattr = op_getattr;
    ops.readdir = op_readdir;
    ops.open = op_open;
    ops.read = op_read;
    ops.write = op_write;
    ops.truncate = op_truncate;
    ops.mkdir = op_mkdir;
    ops.rmdir = op_rmdir;
    ops.create = op_create;
    ops.unlink = op_unlink;
    ops.rename = op_rename;
    ops.link = op_link;
    ops.symlink = op_link;
    ops.mknod = op_mknod;
    ops.chmod = op_chmod;
    ops.chown = op_chown;
    ops.utimens = op_utimens;
    std::string fsname = "fsname=softkvm-eid";
    std::vector<std::string> args = {"softkvm-eid", dir, "-f", "-s", "-o", fsname};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    const int rc = fuse_main(static_cast<int>(argv.size()), argv.data(), &ops, nullptr);
    g_store = nullptr;
    if (rc != 0)
        return make_error("cannot mount " + dir + " (is /dev/fuse usable and the directory empty?)",
                          ENODEV);
    return {};
}

}  // namespace softkvm::eid
