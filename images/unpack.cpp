// Layer unpacking. How nothing gets out: libarchive only *reads* the stream;
// every write is ours, made with *at() calls relative to a directory fd of a
// private temp directory (DEST.partial-<pid>-XXXXXX, mode 0700), never through
// a path string the kernel would resolve. Entry paths are cleaned lexically
// first (leading "/" stripped, ".." that climbs above the root refused), and
// each parent is then opened one component at a time with
// O_DIRECTORY|O_NOFOLLOW, so a symlink planted by an earlier entry (absolute or
// relative) stops the walk with an error instead of redirecting it; leaves are
// made with O_CREAT|O_EXCL, mkdirat, symlinkat, mknodat and linkat (no
// AT_SYMLINK_FOLLOW), whose last component is never followed either.
// Hardlink targets go through the same lookup-only walk, so they can only name
// something this layer already made. Any error removes the temp directory;
// only a complete layer is renamed (RENAME_NOREPLACE) to DEST.
#include "images/unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "sys/fs.hpp"
#include "sys/scope_exit.hpp"
#include "sys/unique_fd.hpp"

namespace hull::images {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMeta = ".wh..wh.";  // aufs bookkeeping (.wh..wh.plnk, ...)
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";

using Parts = std::vector<std::string>;

std::string joinParts(const Parts& parts, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        if (i) out += '/';
        out += parts[i];
    }
    return out;
}

/// An entry's path as components below the layer root. A leading "/" is
/// stripped (as tar does) and the rest checked like any relative path; ".." is
/// taken lexically, which is safe because no component is ever resolved through
/// a symlink afterwards, and one that would climb above the root is refused.
Result<Parts> layerPath(std::string_view raw) {
    Parts parts;
    while (!raw.empty() && raw.front() == '/') raw.remove_prefix(1);
    for (size_t i = 0; i <= raw.size();) {
        size_t j = raw.find('/', i);
        if (j == std::string_view::npos) j = raw.size();
        std::string_view part = raw.substr(i, j - i);
        i = j + 1;
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            if (parts.empty()) return failInvalid("the path leaves the layer root");
            parts.pop_back();
            continue;
        }
        parts.emplace_back(part);
    }
    return parts;
}

Result<UniqueFd> openDirAt(int dirfd, const char* name) {
    int fd;
    do fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return failErrno("open");
    return UniqueFd(fd);
}

/// rm -rf NAME below DIRFD, never following a symlink. A directory we may not
/// read or write (a 0555 one from the layer, unpacking as non-root) is given
/// u+rwx first: everything below the temp root is ours to remove.
Result<void> removeTreeAt(int dirfd, const std::string& name) {
    if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return {};
    if (errno != EISDIR && errno != EPERM) return failErrno("remove " + name);
    struct stat st;
    // fchmodat cannot refuse to follow (without /proc), but NAME was just seen
    // to be a directory in a parent only we can write, so it stays one.
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
        (st.st_mode & 0700) != 0700)
        (void)::fchmodat(dirfd, name.c_str(), 0700, 0);
    auto fd = openDirAt(dirfd, name.c_str());
    if (!fd) return fd.error().errnum() == ENOENT ? Result<void>{} : fail(std::move(fd).error().context(name));
    DIR* d = ::fdopendir(fd.value().get());
    if (!d) return failErrno("opendir " + name);
    (void)fd.value().release();  // the DIR owns it now
    Result<void> r;
    while (auto* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n == "." || n == "..") continue;
        r = removeTreeAt(::dirfd(d), e->d_name);
        if (!r) break;
    }
    ::closedir(d);
    if (!r) return fail(std::move(r).error().context(name));
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT) return failErrno("rmdir " + name);
    return {};
}

Result<void> pwriteAll(int fd, const char* data, size_t size, off_t offset) {
    while (size > 0) {
        ssize_t n = ::pwrite(fd, data, size, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("write");
        data += n;
        size -= size_t(n);
        offset += n;
    }
    return {};
}

/// Owner, permission bits and times of one entry.
struct Meta {
    uid_t uid = 0;
    gid_t gid = 0;
    mode_t perm = 0755;
    struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};  // atime, mtime
};

Meta metaOf(archive_entry* e) {
    Meta m;
    m.uid = uid_t(archive_entry_uid(e));
    m.gid = gid_t(archive_entry_gid(e));
    m.perm = mode_t(archive_entry_perm(e)) & 07777;
    if (archive_entry_mtime_is_set(e)) m.times[1] = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
    if (archive_entry_atime_is_set(e)) m.times[0] = {archive_entry_atime(e), archive_entry_atime_nsec(e)};
    else m.times[0] = m.times[1];
    return m;
}

/// A directory's metadata, applied after everything inside it exists.
struct DirMeta {
    Parts parts;
    Meta meta;
};

std::string archiveError(archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

int archiveErrno(archive* a) {
    int e = archive_errno(a);
    return e > 0 ? e : EIO;
}

class Unpacker {
public:
    Unpacker(archive* a, int rootFd) : a_(a), rootFd_(rootFd), root_(::geteuid() == 0) {}

    Result<void> entry(archive_entry* e);
    Result<void> finish();
    const UnpackStats& stats() const { return stats_; }

private:
    Result<UniqueFd> openParent(const Parts& parts, bool create);
    Result<void> clearLeaf(int parent, const Parts& parts, bool keepDir, bool* isDir);
    Result<void> whiteout(int parent, const Parts& dirParts, const std::string& leaf);
    Result<void> regular(archive_entry* e, int parent, const std::string& leaf, const Meta& m);
    Result<void> directory(archive_entry* e, int parent, const Parts& parts, const Meta& m);
    Result<void> symlink(archive_entry* e, int parent, const std::string& leaf, const Meta& m);
    Result<void> special(archive_entry* e, int parent, const std::string& leaf, const Meta& m);
    Result<void> hardlink(const char* target, int parent, const Parts& parts);
    Result<void> xattrsOnFd(archive_entry* e, int fd);
    Result<void> xattrsAt(archive_entry* e, int parent, const std::string& leaf);
    Result<void> chownAt(int parent, const std::string& leaf, const Meta& m);
    void forgetDirsUnder(const Parts& parts);

    archive* a_;
    int rootFd_;
    bool root_;
    UnpackStats stats_;
    // Keyed by the joined path; "" is the layer root. Latest entry wins.
    std::map<std::string, DirMeta> dirs_;
};

/// The directory PARTS (all of them) as an fd, walked from the root one
/// component at a time: O_NOFOLLOW|O_DIRECTORY means a symlink or non-directory
/// anywhere on the way is an error, never a detour. With CREATE, missing
/// directories are made (tar layers need not list every parent).
Result<UniqueFd> Unpacker::openParent(const Parts& parts, bool create) {
    UniqueFd cur = TRY(openDirAt(rootFd_, "."));
    for (size_t i = 0; i < parts.size(); ++i) {
        const char* name = parts[i].c_str();
        auto next = openDirAt(cur.get(), name);
        if (!next && next.error().errnum() == ENOENT && create) {
            if (::mkdirat(cur.get(), name, 0700) < 0 && errno != EEXIST)
                return failErrno("mkdir " + joinParts(parts, i + 1));
            next = openDirAt(cur.get(), name);
            // Implicit parents get tar's default, independent of our umask.
            if (next && ::fchmod(next.value().get(), 0755) < 0)
                return failErrno("chmod " + joinParts(parts, i + 1));
        }
        if (!next) {
            int err = next.error().errnum();
            std::string shown = joinParts(parts, i + 1);
            struct stat st;
            if ((err == ELOOP || err == ENOTDIR) && ::fstatat(cur.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return fail(Error::plain(err, S_ISLNK(st.st_mode) ? "a parent is a symlink (" + shown + ")"
                                                                   : "a parent is not a directory (" + shown + ")"));
            return failErrno("open " + shown, err);
        }
        cur = std::move(*next);
    }
    return cur;
}

void Unpacker::forgetDirsUnder(const Parts& parts) {
    std::string p = joinParts(parts, parts.size());
    for (auto it = dirs_.begin(); it != dirs_.end();) {
        const std::string& k = it->first;
        bool under = k == p || (k.size() > p.size() && k.compare(0, p.size(), p) == 0 && k[p.size()] == '/');
        it = under ? dirs_.erase(it) : std::next(it);
    }
}

/// Make room for the entry PARTS in PARENT: tar semantics, a later entry
/// replaces an earlier one. A directory over a directory is kept (KEEPDIR; the
/// entry then only updates its metadata).
Result<void> Unpacker::clearLeaf(int parent, const Parts& parts, bool keepDir, bool* isDir) {
    const std::string& leaf = parts.back();
    if (isDir) *isDir = false;
    struct stat st;
    if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) return {};
        return failErrno("stat");
    }
    if (S_ISDIR(st.st_mode)) {
        if (keepDir) {
            if (isDir) *isDir = true;
            return {};
        }
        TRY_CTX("replace a directory", removeTreeAt(parent, leaf));
        forgetDirsUnder(parts);
        return {};
    }
    if (::unlinkat(parent, leaf.c_str(), 0) < 0 && errno != ENOENT) return failErrno("replace");
    return {};
}

Result<void> Unpacker::chownAt(int parent, const std::string& leaf, const Meta& m) {
    // Unprivileged, the files stay ours, as GNU tar does for ordinary users (the
    // kernel would refuse other owners anyway).
    if (!root_) return {};
    if (::fchownat(parent, leaf.c_str(), m.uid, m.gid, AT_SYMLINK_NOFOLLOW) < 0)
        return failErrno("chown " + std::to_string(m.uid) + ":" + std::to_string(m.gid));
    return {};
}

/// Should an xattr from the archive be skipped, and is its failure tolerable?
bool skipXattr(const char* name) {
    // overlayfs's own metadata (opaque, redirect, metacopy) comes only from
    // whiteouts; taken verbatim from a layer it could make overlayfs redirect
    // lookups between the stacked layers.
    return std::string_view(name).rfind("trusted.overlay.", 0) == 0;
}

// Like containerd and Docker, an xattr the file system cannot store (user.* on
// tmpfs before Linux 6.6) is dropped rather than failing the layer.
bool tolerable(int err) { return err == EOPNOTSUPP || err == ENOTSUP; }

/// The entry's xattrs through SET (fsetxattr or lsetxattr), minus those we skip
/// and those the file system cannot store.
template <class Set>
Result<void> applyXattrs(archive_entry* e, Set&& set) {
    const char* name;
    const void* value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (!name || skipXattr(name)) continue;
        if (set(name, value, size) < 0 && !tolerable(errno)) return failErrno(std::string("set xattr ") + name);
    }
    return {};
}

Result<void> Unpacker::xattrsOnFd(archive_entry* e, int fd) {
    return applyXattrs(e, [&](const char* n, const void* v, size_t sz) { return ::fsetxattr(fd, n, v, sz, 0); });
}

/// For entries we cannot open (symlinks, fifos, devices): the path goes
/// through PARENT's own fd in /proc, whose last component lsetxattr does not follow.
Result<void> Unpacker::xattrsAt(archive_entry* e, int parent, const std::string& leaf) {
    if (archive_entry_xattr_count(e) == 0) return {};
    std::string path = "/proc/self/fd/" + std::to_string(parent) + "/" + leaf;
    return applyXattrs(e, [&](const char* n, const void* v, size_t sz) { return ::lsetxattr(path.c_str(), n, v, sz, 0); });
}

Result<void> Unpacker::whiteout(int parent, const Parts& dirParts, const std::string& leaf) {
    ++stats_.whiteouts;
    if (leaf == kOpaqueMarker) {
        // Opaque: the lower layers' contents of this directory are hidden.
        UniqueFd dir = TRY(openDirAt(parent, "."));
        if (::fsetxattr(dir.get(), kOpaqueXattr, "y", 1, 0) < 0)
            return failErrno(std::string("set ") + kOpaqueXattr);
        return {};
    }
    std::string name = leaf.substr(kWhiteoutPrefix.size());
    if (name.empty() || name == "." || name == "..") return failInvalid("not a valid whiteout name");
    Parts target = dirParts;
    target.push_back(name);
    // The same layer may also hold NAME (or have held it); the whiteout wins.
    TRY(clearLeaf(parent, target, false, nullptr));
    // overlayfs's whiteout: a 0:0 character device (unprivileged since Linux 5.8).
    if (::mknodat(parent, name.c_str(), S_IFCHR | 0, ::makedev(0, 0)) < 0) return failErrno("make whiteout " + name);
    return {};
}

Result<void> Unpacker::regular(archive_entry* e, int parent, const std::string& leaf, const Meta& m) {
    int raw;
    do raw = ::openat(parent, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    while (raw < 0 && errno == EINTR);
    if (raw < 0) return failErrno("create");
    UniqueFd fd(raw);
    off_t end = 0;
    for (;;) {
        const void* buf;
        size_t size;
        la_int64_t offset;
        int r = archive_read_data_block(a_, &buf, &size, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) return fail(Error::plain(archiveErrno(a_), "read: " + archiveError(a_)));
        if (size == 0) continue;
        // Offsets (not a running position) keep sparse files sparse.
        TRY(pwriteAll(fd.get(), static_cast<const char*>(buf), size, off_t(offset)));
        end = std::max(end, off_t(offset) + off_t(size));
        stats_.bytes += size;
    }
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > end) {
        // A sparse file's trailing hole.
        if (::ftruncate(fd.get(), off_t(archive_entry_size(e))) < 0) return failErrno("truncate");
    }
    // Order matters: chown clears setuid bits and security.capability, and a
    // read-only mode would stop an unprivileged user.* xattr.
    if (root_ && ::fchown(fd.get(), m.uid, m.gid) < 0)
        return failErrno("chown " + std::to_string(m.uid) + ":" + std::to_string(m.gid));
    TRY(xattrsOnFd(e, fd.get()));
    if (::fchmod(fd.get(), m.perm) < 0) return failErrno("chmod");
    if (::futimens(fd.get(), m.times) < 0) return failErrno("set times");
    return {};
}

Result<void> Unpacker::directory(archive_entry* e, int parent, const Parts& parts, const Meta& m) {
    if (!parts.empty()) {
        bool exists = false;
        TRY(clearLeaf(parent, parts, true, &exists));
        // 0700 until finish(): a read-only directory in the layer must not
        // block the entries that follow it.
        if (!exists && ::mkdirat(parent, parts.back().c_str(), 0700) < 0) return failErrno("mkdir");
    }
    UniqueFd dir = TRY(parts.empty() ? openDirAt(rootFd_, ".") : openDirAt(parent, parts.back().c_str()));
    TRY(xattrsOnFd(e, dir.get()));
    dirs_[joinParts(parts, parts.size())] = DirMeta{parts, m};
    return {};
}

Result<void> Unpacker::symlink(archive_entry* e, int parent, const std::string& leaf, const Meta& m) {
    const char* target = archive_entry_symlink(e);
    if (!target) return failInvalid("a symlink without a target");
    // Stored verbatim: an absolute target is normal in an image, and harmless
    // here because nothing is ever written through a symlink.
    if (::symlinkat(target, parent, leaf.c_str()) < 0) return failErrno("symlink");
    TRY(chownAt(parent, leaf, m));
    TRY(xattrsAt(e, parent, leaf));
    if (::utimensat(parent, leaf.c_str(), m.times, AT_SYMLINK_NOFOLLOW) < 0) return failErrno("set times");
    return {};
}

Result<void> Unpacker::special(archive_entry* e, int parent, const std::string& leaf, const Meta& m) {
    mode_t type = mode_t(archive_entry_filetype(e));
    const char* what = type == AE_IFIFO ? "a fifo" : "a device node";
    dev_t dev = type == AE_IFIFO ? 0 : ::makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
    if (::mknodat(parent, leaf.c_str(), type | 0600, dev) < 0) return failErrno(std::string("make ") + what);
    TRY(chownAt(parent, leaf, m));
    TRY(xattrsAt(e, parent, leaf));
    // mknodat just made LEAF in a directory only we can write, so following
    // is safe here (fchmodat cannot refuse to follow without /proc).
    if (::fchmodat(parent, leaf.c_str(), m.perm, 0) < 0) return failErrno("chmod");
    if (::utimensat(parent, leaf.c_str(), m.times, AT_SYMLINK_NOFOLLOW) < 0) return failErrno("set times");
    return {};
}

Result<void> Unpacker::hardlink(const char* target, int parent, const Parts& parts) {
    std::string shown = std::string("hardlink target \"") + target + "\"";
    auto tparts = layerPath(target);
    if (!tparts) return fail(std::move(tparts).error().context(shown));
    if (tparts->empty()) return failInvalid(shown + " is the layer root");
    // Lookup only, no creation: the target must be something this layer made.
    Parts tdir(tparts->begin(), tparts->end() - 1);
    auto tparent = openParent(tdir, false);
    if (!tparent) {
        if (tparent.error().errnum() == ENOENT) return fail(Error::plain(ENOENT, shown + " is not in the layer"));
        return fail(std::move(tparent).error().context(shown));
    }
    const std::string& tleaf = tparts->back();
    struct stat tst;
    if (::fstatat(tparent->get(), tleaf.c_str(), &tst, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) return fail(Error::plain(ENOENT, shown + " is not in the layer"));
        return failErrno("stat " + shown);
    }
    if (S_ISDIR(tst.st_mode)) return fail(Error::plain(EPERM, shown + " is a directory"));
    struct stat st;
    if (::fstatat(parent, parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == tst.st_dev &&
        st.st_ino == tst.st_ino)
        return {};  // already that file (a link to itself, or repeated)
    TRY(clearLeaf(parent, parts, false, nullptr));
    // Flags 0: a symlink target is linked as the symlink itself, never followed.
    if (::linkat(tparent->get(), tleaf.c_str(), parent, parts.back().c_str(), 0) < 0)
        return failErrno("link to " + shown);
    return {};
}

Result<void> Unpacker::entry(archive_entry* e) {
    ++stats_.entries;
    const char* raw = archive_entry_pathname(e);
    if (!raw) return failInvalid("an entry without a path");
    Parts parts = TRY(layerPath(raw));
    mode_t type = mode_t(archive_entry_filetype(e));
    const char* link = archive_entry_hardlink(e);
    Meta m = metaOf(e);

    if (parts.empty()) {
        // "./" or "/": the layer root's own metadata.
        if (link || type != AE_IFDIR) return failInvalid("only a directory can be the layer root");
        return directory(e, -1, parts, m);
    }

    const std::string& leaf = parts.back();
    Parts dirParts(parts.begin(), parts.end() - 1);
    UniqueFd parent = TRY(openParent(dirParts, true));

    if (leaf.rfind(kWhiteoutPrefix, 0) == 0) {
        if (leaf != kOpaqueMarker && leaf.rfind(kWhiteoutMeta, 0) == 0) return {};  // aufs metadata: not content
        return whiteout(parent.get(), dirParts, leaf);
    }
    if (link) return hardlink(link, parent.get(), parts);

    switch (type) {
        case AE_IFDIR:
            return directory(e, parent.get(), parts, m);
        case AE_IFREG:
            TRY(clearLeaf(parent.get(), parts, false, nullptr));
            return regular(e, parent.get(), leaf, m);
        case AE_IFLNK:
            TRY(clearLeaf(parent.get(), parts, false, nullptr));
            return symlink(e, parent.get(), leaf, m);
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFIFO:
            if (!root_)
                return fail(Error::plain(EPERM, std::string(type == AE_IFIFO ? "a fifo" : "a device node") +
                                                    " is only unpacked as root"));
            TRY(clearLeaf(parent.get(), parts, false, nullptr));
            return special(e, parent.get(), leaf, m);
        default:
            return failInvalid("unsupported file type " + std::to_string(type));
    }
}

/// Directory metadata, deepest first: a directory's mtime is final only once
/// nothing more is made inside it, and an unprivileged walk must not meet a
/// read-only or unsearchable directory before it is done below it.
Result<void> Unpacker::finish() {
    if (!dirs_.count("")) {
        // No "./" entry: the root gets tar's default instead of mkdtemp's 0700.
        if (::fchmod(rootFd_, 0755) < 0) return failErrno("chmod the layer root");
    }
    std::vector<const DirMeta*> order;
    for (auto& [path, d] : dirs_) order.push_back(&d);
    std::stable_sort(order.begin(), order.end(),
                     [](const DirMeta* a, const DirMeta* b) { return a->parts.size() > b->parts.size(); });
    for (const DirMeta* d : order) {
        std::string shown = d->parts.empty() ? "." : joinParts(d->parts, d->parts.size());
        auto fd = openParent(d->parts, false);
        if (!fd) return fail(std::move(fd).error().context("layer directory \"" + shown + "\""));
        const Meta& m = d->meta;
        if (root_ && ::fchown(fd->get(), m.uid, m.gid) < 0)
            return failErrno("layer directory \"" + shown + "\": chown");
        if (::fchmod(fd->get(), m.perm) < 0) return failErrno("layer directory \"" + shown + "\": chmod");
        if (::futimens(fd->get(), m.times) < 0) return failErrno("layer directory \"" + shown + "\": set times");
    }
    return {};
}

using ArchivePtr = std::unique_ptr<archive, decltype(&archive_read_free)>;

Result<ArchivePtr> openArchive(int fd, const std::string& path) {
    ArchivePtr a(archive_read_new(), &archive_read_free);
    if (!a) return fail(Error::plain(ENOMEM, "archive_read_new"));
    // Only what OCI layers use (image-spec media types: tar, tar+gzip,
    // tar+zstd); ARCHIVE_WARN means libarchive falls back to the external
    // program, which still works.
    for (auto add : {archive_read_support_filter_gzip, archive_read_support_filter_zstd,
                     archive_read_support_format_tar}) {
        if (add(a.get()) < ARCHIVE_WARN) return fail(Error::plain(EINVAL, "layer " + path + ": " + archiveError(a.get())));
    }
    if (archive_read_open_fd(a.get(), fd, 1 << 16) != ARCHIVE_OK)
        return fail(Error::plain(archiveErrno(a.get()), "layer " + path + ": " + archiveError(a.get())));
    return a;
}

}  // namespace

Result<UnpackStats> unpackLayer(const std::string& archivePath, const std::string& destIn) {
    std::string dest = destIn;
    while (dest.size() > 1 && dest.back() == '/') dest.pop_back();
    if (dest.empty() || dest == "/") return failInvalid("unpack layer: \"" + destIn + "\" is not a valid destination");
    struct stat st;
    if (::lstat(dest.c_str(), &st) == 0) return fail(Error::plain(EEXIST, "unpack layer: " + dest + " already exists"));
    if (errno != ENOENT) return failErrno("unpack layer: stat " + dest);

    UniqueFd in = TRY_CTX("layer " + archivePath, sys::openFile(archivePath, O_RDONLY));
    ArchivePtr a = TRY(openArchive(in.get(), archivePath));

    // A sibling of DEST, so the final rename stays on one file system.
    std::string tmp = dest + ".partial-" + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(tmp.data())) return failErrno("unpack layer: create a temp directory beside " + dest);
    ScopeExit cleanup([&] { (void)removeTreeAt(AT_FDCWD, tmp); });
    UniqueFd rootFd = TRY_CTX("unpack layer", openDirAt(AT_FDCWD, tmp.c_str()));

    Unpacker u(a.get(), rootFd.get());
    std::string last;
    for (;;) {
        archive_entry* e = nullptr;
        int r = archive_read_next_header(a.get(), &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            std::string where = last.empty() ? "" : " after entry \"" + last + "\"";
            return fail(Error::plain(archiveErrno(a.get()), "layer " + archivePath + ": read" + where + ": " +
                                                                archiveError(a.get())));
        }
        const char* name = archive_entry_pathname(e);
        last = name ? name : "?";
        if (auto ok = u.entry(e); !ok) return fail(std::move(ok).error().context("layer entry \"" + last + "\""));
    }
    TRY(u.finish());
    rootFd.reset();

    // NOREPLACE: a DEST made meanwhile (even an empty directory, which a plain
    // rename would silently replace) is left alone.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) < 0) {
        int err = errno;
        if (err != EINVAL) return failErrno("unpack layer: rename to " + dest, err);
        // A file system without RENAME_NOREPLACE: check, then a plain rename.
        if (::lstat(dest.c_str(), &st) == 0) return fail(Error::plain(EEXIST, "unpack layer: " + dest + " already exists"));
        if (::rename(tmp.c_str(), dest.c_str()) < 0) return failErrno("unpack layer: rename to " + dest);
    }
    cleanup.dismiss();
    return u.stats();
}

}  // namespace hull::images
