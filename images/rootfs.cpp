#include "images/rootfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "sys/fs.hpp"
#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

namespace hull::images {

std::string overlayOptions(const std::vector<std::string>& layers, const std::string& dir) {
    std::string lower;
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) lower += (lower.empty() ? "" : ":") + *it;
    return "lowerdir=" + lower + ",upperdir=" + dir + "/upper,workdir=" + dir + "/work";
}

namespace {

bool isWhiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0); }

bool isOpaque(const std::string& path) {
    char v[4] = {};
    ssize_t n = ::lgetxattr(path.c_str(), "trusted.overlay.opaque", v, sizeof v);
    return n == 1 && v[0] == 'y';
}

/// Copy SRC (one layer) onto DST (the layers below, already copied), applying
/// overlayfs's whiteouts as overlay would. Owners and modes are kept; times and
/// xattrs (file capabilities among them) are not: the fallback is for hosts
/// without overlayfs, where a working root matters more than those.
Result<void> copyLayer(const std::string& src, const std::string& dst) {
    DIR* d = ::opendir(src.c_str());
    if (!d) return failErrno("open layer dir " + src);
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : names) {
        std::string s = src + "/" + n, t = dst + "/" + n;
        struct stat st;
        if (::lstat(s.c_str(), &st) < 0) return failErrno("stat " + s);
        if (isWhiteout(st)) {
            TRY(sys::removeAll(t));
            continue;
        }
        struct stat tt;
        bool exists = ::lstat(t.c_str(), &tt) == 0;
        if (S_ISDIR(st.st_mode)) {
            if (exists && (!S_ISDIR(tt.st_mode) || isOpaque(s))) {
                TRY(sys::removeAll(t));
                exists = false;
            }
            if (!exists && ::mkdir(t.c_str(), 0700) < 0) return failErrno("mkdir " + t);
            TRY(copyLayer(s, t));
            ::lchown(t.c_str(), st.st_uid, st.st_gid);
            ::chmod(t.c_str(), st.st_mode & 07777);
            continue;
        }
        if (exists) TRY(sys::removeAll(t));
        if (S_ISREG(st.st_mode)) {
            UniqueFd in(::open(s.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
            UniqueFd out(::open(t.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
            if (!in || !out) return failErrno("copy " + s);
            char buf[1 << 16];
            for (;;) {
                ssize_t r = ::read(in.get(), buf, sizeof buf);
                if (r < 0) return failErrno("read " + s);
                if (r == 0) break;
                if (::write(out.get(), buf, size_t(r)) != r) return failErrno("write " + t);
            }
            ::fchown(out.get(), st.st_uid, st.st_gid);
            ::fchmod(out.get(), st.st_mode & 07777);
        } else if (S_ISLNK(st.st_mode)) {
            std::string target(size_t(st.st_size) + 1, '\0');
            ssize_t r = ::readlink(s.c_str(), target.data(), target.size());
            if (r < 0) return failErrno("readlink " + s);
            target.resize(size_t(r));
            if (::symlink(target.c_str(), t.c_str()) < 0) return failErrno("symlink " + t);
            ::lchown(t.c_str(), st.st_uid, st.st_gid);
        } else {
            if (::mknod(t.c_str(), st.st_mode, st.st_rdev) < 0) return failErrno("mknod " + t);
            ::lchown(t.c_str(), st.st_uid, st.st_gid);
        }
    }
    return {};
}

}  // namespace

Result<void> copyTree(const std::string& src, const std::string& dst) { return copyLayer(src, dst); }

Result<Rootfs> makeRootfs(const std::vector<std::string>& layers, const std::string& dir, bool overlay) {
    Rootfs r{dir + "/rootfs", true};
    for (const char* sub : {"rootfs", "upper", "work"}) TRY(sys::mkdirAll(dir + "/" + sub, 0755));
    if (layers.empty()) return failInvalid("rootfs: the image has no layers");
    std::string opts = overlayOptions(layers, dir);
    if (overlay) {
        if (opts.size() < 4000 && ::mount("overlay", r.path.c_str(), "overlay", 0, opts.c_str()) == 0) return r;
        log::warnf("rootfs: overlay mount failed (%s); copying the layers instead", std::strerror(errno));
    }
    r.overlay = false;
    for (const auto& l : layers) TRY_CTX("rootfs copy", copyLayer(l, r.path));
    return r;
}

Result<void> removeRootfs(const std::string& dir) {
    std::string path = dir + "/rootfs";
    // Lazy: a process that still has a cwd in it must not keep the container's files around.
    if (::umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return failErrno("unmount " + path);
    for (const char* sub : {"rootfs", "upper", "work"}) TRY(sys::removeAll(dir + "/" + sub));
    return {};
}

}  // namespace hull::images
