// The container's file system, in three acts:
//   planMounts    (before clone, pure)   config.json `mounts` -> MountOp list
//   prepareRootfs (child, before pivot)  propagation, rootfs bind, mounts, /dev
//   enterRootfs / finishRootfs           pivot_root, then sysctl, masks, read-only
// prepareRootfs and later run between clone and exec: no exceptions, no threads.
#include "runtime/rootfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <string_view>

#include "sys/fs.hpp"
#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

namespace hull::runtime {
namespace {

// ---- planning: options -> flags --------------------------------------------

/// A mount(8)-style option that sets or clears one MS_* flag.
struct FlagOption {
    std::string_view name;
    bool clear;
    unsigned long flag;
};

constexpr FlagOption kFlagOptions[] = {
    {"ro", false, MS_RDONLY},           {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},       {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},         {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},       {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},     {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},       {"nomand", true, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},     {"atime", true, MS_NOATIME},
    {"nodiratime", false, MS_NODIRATIME}, {"diratime", true, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},   {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME}, {"nostrictatime", true, MS_STRICTATIME},
    {"nosymfollow", false, MS_NOSYMFOLLOW}, {"symfollow", true, MS_NOSYMFOLLOW},
    {"bind", false, MS_BIND},           {"rbind", false, MS_BIND | MS_REC},
};

struct PropagationOption {
    std::string_view name;
    unsigned long flags;
};

constexpr PropagationOption kPropagationOptions[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

/// Flags that belong to the mount point, not the file system. mount(2) ignores
/// them on MS_BIND (only MS_REC counts), so a bind needs a second MS_REMOUNT call.
constexpr unsigned long kPerMountFlags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME |
                                         MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW;

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

Result<MountOp> planMount(const Mount& m, const std::string& field) {
    MountOp op;
    if (m.destination.empty()) return failInvalid(field + ".destination: required");
    // config.md: the destination SHOULD be absolute; like runc, a relative one is
    // taken from "/". Cleaning cannot climb above "/", and symlinks are resolved
    // later, inside the rootfs.
    op.destination = sys::cleanPath("/" + m.destination);
    if (op.destination == "/") return failInvalid(field + ".destination: cannot mount over the container's root");
    if (!m.uidMappings.empty() || !m.gidMappings.empty())
        return failInvalid(field + ".uidMappings: id-mapped mounts are not supported yet");

    std::string data;
    std::string firstData;  // index path of the first fs-data option, for bind errors
    for (size_t j = 0; j < m.options.size(); ++j) {
        const std::string& opt = m.options[j];
        std::string at = field + ".options[" + std::to_string(j) + "]";
        if (opt.empty()) return failInvalid(at + ": empty option");
        // One option per entry: a comma would smuggle extra options into `data`.
        if (opt.find(',') != std::string::npos) return failInvalid(at + ": one option per entry, found a comma");

        bool known = false;
        for (auto& f : kFlagOptions) {
            if (f.name != opt) continue;
            known = true;
            if (f.clear) {
                op.flags &= ~f.flag;
                op.clearFlags |= f.flag;
            } else {
                op.flags |= f.flag;
                op.clearFlags &= ~f.flag;
            }
        }
        for (auto& p : kPropagationOptions) {
            if (p.name != opt) continue;
            known = true;
            op.propagation = p.flags;  // the last one wins, as with mount(8)
        }
        if (known) continue;
        if (opt == "tmpcopyup") {
            op.copyUp = true;
        } else if (opt == "idmap" || opt == "ridmap") {
            return failInvalid(at + ": id-mapped mounts (" + quoted(opt) + ") are not supported yet");
        } else {
            // Everything else is file-system data: mode=755, size=65536k, newinstance...
            // The kernel judges it when mounting.
            if (firstData.empty()) firstData = at + ": unknown option " + quoted(opt);
            if (!data.empty()) data += ',';
            data += opt;
        }
    }

    op.bind = m.type == "bind" || (op.flags & MS_BIND);
    if (op.bind) {
        if (m.source.empty()) return failInvalid(field + ".source: required for a bind mount");
        // A bind mount has no file system to take data ("mode=755", as some
        // generators write): ignored, as runc and crun do, but said in the log,
        // where a typo such as "rox" shows too.
        if (!firstData.empty()) {
            log::warnf("%s: ignored (a bind mount takes no file-system data)", firstData.c_str());
            data.clear();
        }
        if (op.copyUp) return failInvalid(field + ".options: tmpcopyup needs a tmpfs, not a bind mount");
        op.type = "bind";
        op.flags |= MS_BIND;
        op.recursive = (op.flags & MS_REC) != 0;
        op.source = m.source;
        op.needsRemount = (op.flags & kPerMountFlags) != 0;
    } else {
        if (m.type.empty()) return failInvalid(field + ".type: required for a mount that is not a bind");
        if (op.copyUp && m.type != "tmpfs") return failInvalid(field + ".options: tmpcopyup needs a tmpfs");
        op.type = m.type;
        // The source of a pseudo file system is only a label in /proc/mounts.
        op.source = m.source.empty() ? m.type : m.source;
        op.data = std::move(data);
    }
    return op;
}

// ---- paths inside the rootfs ------------------------------------------------

std::string fdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

/// openat2(RESOLVE_IN_ROOT): ROOT acts as "/" for the whole walk. Absolute
/// symlinks and ".." stop at ROOT, so an image's `/evil -> /etc` means
/// ROOT/etc, never the host's /etc (kernel >= 5.6). Magic links (/proc/self/root
/// once proc is mounted inside) are refused outright.
Result<UniqueFd> openInRoot(int rootFd, const std::string& path, int flags, mode_t mode = 0) {
    struct open_how how {};
    how.flags = uint64_t(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    std::string rel = sys::cleanPath("/" + path).substr(1);
    if (rel.empty()) rel = ".";
    for (int attempt = 0;; ++attempt) {
        long fd = ::syscall(SYS_openat2, rootFd, rel.c_str(), &how, sizeof how);
        if (fd >= 0) return UniqueFd(int(fd));
        // EAGAIN: a rename elsewhere raced with ".." handling; the kernel asks for a retry.
        if ((errno == EAGAIN || errno == EINTR) && attempt < 32) continue;
        return failErrno("open " + sys::cleanPath("/" + path) + " in the rootfs");
    }
}

std::pair<std::string, std::string> splitParent(const std::string& clean) {
    auto slash = clean.find_last_of('/');
    return {slash == 0 ? "/" : clean.substr(0, slash), clean.substr(slash + 1)};
}

/// mkdir -p inside the rootfs; returns an O_PATH fd of the directory. Each
/// component is opened with openInRoot, and a missing one is made with mkdirat
/// on its (already safely opened) parent. A dangling symlink in the image is
/// followed by hand: its target is read and the walk restarts from the root with
/// the rewritten path, so even then nothing is created outside.
Result<UniqueFd> mkdirAllInRoot(int rootFd, const std::string& path) {
    std::string want = sys::cleanPath("/" + path);
    for (int links = 0;;) {
        UniqueFd parent = TRY(openInRoot(rootFd, "/", O_PATH | O_DIRECTORY));
        std::string prefix;  // "" is the root
        auto parts = sys::split(want, '/');
        bool restart = false;
        for (size_t i = 0; i < parts.size() && !restart; ++i) {
            std::string next = prefix + "/" + parts[i];
            auto child = openInRoot(rootFd, next, O_PATH | O_DIRECTORY);
            if (!child && child.error().errnum() == ENOENT) {
                if (::mkdirat(parent.get(), parts[i].c_str(), 0755) == 0) {
                    child = openInRoot(rootFd, next, O_PATH | O_DIRECTORY);
                } else if (errno != EEXIST) {
                    return failErrno("mkdir " + next + " in the rootfs");
                } else {
                    // The name exists yet does not resolve: a dangling symlink.
                    if (++links > 40) return fail(Error::fromErrno("mkdir " + want, ELOOP));
                    char buf[PATH_MAX];
                    ssize_t n = ::readlinkat(parent.get(), parts[i].c_str(), buf, sizeof buf - 1);
                    if (n < 0) return failErrno("mkdir " + next + " in the rootfs");
                    std::string target(buf, size_t(n));
                    std::string rest;
                    for (size_t k = i + 1; k < parts.size(); ++k) rest += "/" + parts[k];
                    // Lexical, but always under "/": cleanPath cannot climb out.
                    bool absolute = !target.empty() && target[0] == '/';
                    want = sys::cleanPath((absolute ? target : prefix + "/" + target) + rest);
                    if (want == "/") return fail(Error::plain(EEXIST, "mkdir " + next + ": symlink to the root"));
                    restart = true;
                    continue;
                }
            }
            if (!child) return fail(std::move(child).error());
            parent = std::move(*child);
            prefix = next;
        }
        if (!restart) return parent;
    }
}

/// An empty regular file at PATH inside the rootfs (the target of a file bind),
/// or whatever already exists there; returns an O_PATH fd of it.
Result<UniqueFd> touchInRoot(int rootFd, const std::string& path) {
    auto [dir, name] = splitParent(sys::cleanPath("/" + path));
    UniqueFd parent = TRY(mkdirAllInRoot(rootFd, dir));
    int fd = ::openat(parent.get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
    else if (errno != EEXIST) return failErrno("create " + path + " in the rootfs");
    return openInRoot(rootFd, path, O_PATH);
}

// ---- mounting ----------------------------------------------------------------

/// The per-mount MS_* flags PATH's mount has now (statvfs reports them as
/// ST_*), which a bind remount must repeat to keep them.
Result<unsigned long> perMountFlagsOf(const std::string& path) {
    struct statvfs sv;
    if (::statvfs(path.c_str(), &sv) < 0) return failErrno("statvfs " + path);
    // ST_NOSYMFOLLOW is in the kernel's statfs.h (5.10) but not in glibc 2.36.
    constexpr unsigned long kStNoSymFollow = 0x2000;
    struct Pair {
        unsigned long st, ms;
    };
    constexpr Pair kMap[] = {{ST_RDONLY, MS_RDONLY},     {ST_NOSUID, MS_NOSUID},       {ST_NODEV, MS_NODEV},
                             {ST_NOEXEC, MS_NOEXEC},     {ST_NOATIME, MS_NOATIME},     {ST_NODIRATIME, MS_NODIRATIME},
                             {ST_RELATIME, MS_RELATIME}, {kStNoSymFollow, MS_NOSYMFOLLOW}};
    unsigned long out = 0;
    for (auto& p : kMap)
        if (sv.f_flag & p.st) out |= p.ms;
    return out;
}

/// MS_BIND|MS_REMOUNT replaces every per-mount flag. In a user namespace the
/// kernel locks the flags the mount had when it came from a more privileged
/// namespace (nosuid, nodev, ...), and a remount that drops one gets EPERM; then
/// repeat the current flags, minus those the config asked to clear.
Result<void> remountBind(const std::string& path, unsigned long want, unsigned long clear) {
    if (::mount(nullptr, path.c_str(), nullptr, MS_BIND | MS_REMOUNT | want, nullptr) == 0) return {};
    if (errno != EPERM) return failErrno("remount");
    unsigned long current = TRY(perMountFlagsOf(path));
    unsigned long flags = want | (current & ~clear);
    if (::mount(nullptr, path.c_str(), nullptr, MS_BIND | MS_REMOUNT | flags, nullptr) < 0) return failErrno("remount");
    return {};
}

/// "tmpcopyup": copy FROM (the image's directory, now hidden under the tmpfs)
/// into TO (the new tmpfs), keeping modes, owners and symlinks.
Result<void> copyTree(int from, int to) {
    int dupFd = ::fcntl(from, F_DUPFD_CLOEXEC, 0);
    if (dupFd < 0) return failErrno("dup");
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(dupFd), ::closedir);
    if (!dir) {
        ::close(dupFd);
        return failErrno("opendir");
    }
    while (auto* e = ::readdir(dir.get())) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        struct stat st;
        if (::fstatat(from, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return failErrno("stat " + name);
        if (S_ISDIR(st.st_mode)) {
            if (::mkdirat(to, name.c_str(), 0700) < 0 && errno != EEXIST) return failErrno("mkdir " + name);
            auto src = TRY(sys::openAt(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
            auto dst = TRY(sys::openAt(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
            TRY_CTX(name, copyTree(src.get(), dst.get()));
        } else if (S_ISREG(st.st_mode)) {
            auto src = TRY(sys::openAt(from, name, O_RDONLY | O_NOFOLLOW));
            auto dst = TRY(sys::openAt(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
            char buf[65536];
            for (;;) {
                ssize_t n = ::read(src.get(), buf, sizeof buf);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) return failErrno("read " + name);
                if (n == 0) break;
                TRY_CTX(name, sys::writeAll(dst.get(), std::string_view(buf, size_t(n))));
            }
        } else if (S_ISLNK(st.st_mode)) {
            char buf[PATH_MAX];
            ssize_t n = ::readlinkat(from, name.c_str(), buf, sizeof buf - 1);
            if (n < 0) return failErrno("readlink " + name);
            buf[n] = '\0';
            if (::symlinkat(buf, to, name.c_str()) < 0) return failErrno("symlink " + name);
        } else if (::mknodat(to, name.c_str(), st.st_mode, st.st_rdev) < 0) {
            return failErrno("mknod " + name);
        }
        if (::fchownat(to, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
            return failErrno("chown " + name);
        // After chown, which clears set-id bits; and past the umask.
        if (!S_ISLNK(st.st_mode) && ::fchmodat(to, name.c_str(), st.st_mode & 07777, 0) < 0)
            return failErrno("chmod " + name);
    }
    return {};
}

/// A "cgroup" mount (see RootfsContext): made read-write, then remounted with
/// the config's flags once every hierarchy is in place.
Result<void> mountCgroup(int rootFd, const MountOp& op, const RootfsContext& ctx) {
    auto target = TRY(mkdirAllInRoot(rootFd, op.destination));
    std::string where = fdPath(target.get());
    if (ctx.cgroupUnified) {
        if (::mount("cgroup2", where.c_str(), "cgroup2", op.flags, nullptr) < 0) return failErrno("mount cgroup2");
        return {};
    }
    unsigned long base = op.flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
    if (::mount("tmpfs", where.c_str(), "tmpfs", base, "mode=755") < 0) return failErrno("mount tmpfs for cgroups");
    auto top = TRY(openInRoot(rootFd, op.destination, O_PATH | O_DIRECTORY));
    auto mountAt = [&](const std::string& dir, const char* type, const std::string& options) -> Result<void> {
        if (::mkdirat(top.get(), dir.c_str(), 0755) < 0 && errno != EEXIST) return failErrno("mkdir " + dir);
        auto d = TRY(sys::openAt(top.get(), dir, O_PATH | O_DIRECTORY | O_NOFOLLOW));
        if (::mount(type, fdPath(d.get()).c_str(), type, op.flags, options.empty() ? nullptr : options.c_str()) < 0)
            return failErrno("mount " + std::string(type) + " " + dir);
        return {};
    };
    for (auto& h : ctx.cgroupHierarchies) TRY(mountAt(h.dir, "cgroup", h.options));
    if (ctx.cgroupHybrid) TRY(mountAt("unified", "cgroup2", ""));
    if ((op.flags & MS_RDONLY) &&
        ::mount(nullptr, fdPath(top.get()).c_str(), nullptr, MS_REMOUNT | MS_RDONLY | base, "mode=755") < 0)
        return failErrno("remount the cgroup tmpfs read-only");
    return {};
}

Result<void> mountOne(int rootFd, const MountOp& op, const RootfsContext& ctx) {
    if (op.type == "cgroup" && !op.bind) return mountCgroup(rootFd, op, ctx);
    UniqueFd target;
    if (op.bind) {
        // The source is a host path, chosen by whoever wrote config.json.
        struct stat st;
        if (::stat(op.source.c_str(), &st) < 0) return failErrno("bind source " + op.source);
        target = S_ISDIR(st.st_mode) ? TRY(mkdirAllInRoot(rootFd, op.destination))
                                     : TRY(touchInRoot(rootFd, op.destination));
        unsigned long flags = MS_BIND | (op.recursive ? MS_REC : 0);
        if (::mount(op.source.c_str(), fdPath(target.get()).c_str(), nullptr, flags, nullptr) < 0)
            return failErrno("bind " + op.source);
    } else {
        target = TRY(mkdirAllInRoot(rootFd, op.destination));
        UniqueFd lower;  // the image's directory, still reachable once the tmpfs covers it
        if (op.copyUp) lower = TRY(sys::openFile(fdPath(target.get()), O_RDONLY | O_DIRECTORY));
        if (::mount(op.source.c_str(), fdPath(target.get()).c_str(), op.type.c_str(), op.flags,
                    op.data.empty() ? nullptr : op.data.c_str()) < 0)
            return failErrno("mount " + op.type + (op.data.empty() ? "" : " (" + op.data + ")"));
        if (op.copyUp) {
            auto upper = TRY(openInRoot(rootFd, op.destination, O_RDONLY | O_DIRECTORY));
            TRY_CTX("tmpcopyup", copyTree(lower.get(), upper.get()));
        }
    }
    if (!op.needsRemount && !op.propagation) return {};
    // The fd above names the directory *under* the new mount; reopen the path to
    // get the mount itself, which remount and propagation changes act on.
    auto top = TRY(openInRoot(rootFd, op.destination, O_PATH));
    if (op.needsRemount) TRY(remountBind(fdPath(top.get()), op.flags & kPerMountFlags, op.clearFlags));
    if (op.propagation && ::mount(nullptr, fdPath(top.get()).c_str(), nullptr, op.propagation, nullptr) < 0)
        return failErrno("set propagation");
    return {};
}

// ---- /dev --------------------------------------------------------------------

struct DevNode {
    std::string path;  // absolute, inside the container; also the host node to bind in a user namespace
    mode_t type;       // S_IFCHR, S_IFBLK, S_IFIFO
    dev_t dev;
    mode_t mode;
    uid_t uid;
    gid_t gid;
};

/// config-linux.md "Default Devices" (console and ptmx are handled apart).
std::vector<DevNode> defaultDevices() {
    auto chr = [](const char* p, unsigned maj, unsigned min) {
        return DevNode{p, S_IFCHR, makedev(maj, min), 0666, 0, 0};
    };
    return {chr("/dev/null", 1, 3),   chr("/dev/zero", 1, 5),    chr("/dev/full", 1, 7),
            chr("/dev/random", 1, 8), chr("/dev/urandom", 1, 9), chr("/dev/tty", 5, 0)};
}

Result<DevNode> devNodeOf(const Device& d) {
    DevNode n{sys::cleanPath("/" + d.path), S_IFCHR, makedev(unsigned(d.major), unsigned(d.minor)),
              d.fileMode ? mode_t(*d.fileMode & 07777) : mode_t(0666), d.uid.value_or(0), d.gid.value_or(0)};
    switch (d.type) {
        case 'c': case 'u': n.type = S_IFCHR; break;
        case 'b': n.type = S_IFBLK; break;
        case 'p': n.type = S_IFIFO; n.dev = 0; break;
        default: return failInvalid(std::string("type: unknown device type '") + d.type + "'");
    }
    if (n.path == "/") return failInvalid("path: required");
    return n;
}

bool sameNode(const struct stat& st, const DevNode& n) {
    return (st.st_mode & S_IFMT) == n.type && (n.type == S_IFIFO || st.st_rdev == n.dev);
}

Result<void> createDevice(int rootFd, const DevNode& n, bool inUserNamespace) {
    auto [dir, name] = splitParent(n.path);
    UniqueFd parent = TRY(mkdirAllInRoot(rootFd, dir));
    struct stat st;
    if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        // config-linux.md "Devices": a file already at `path` that is not the
        // requested device is an error.
        if (!sameNode(st, n)) return fail(Error::plain(EEXIST, "exists and is not the requested device"));
        if (inUserNamespace) return {};  // not ours to chmod
    } else if (errno != ENOENT) {
        return failErrno("stat");
    } else if (inUserNamespace && n.type != S_IFIFO) {
        // mknod of a device needs CAP_MKNOD in the initial user namespace, so it
        // is refused here. The spec lets a runtime bind-mount the host's node
        // instead: an empty file as the mount point, the host node on top (its
        // owner and mode show through).
        int fd = ::openat(parent.get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (fd < 0) return failErrno("create mount point");
        ::close(fd);
        auto target = TRY(sys::openAt(parent.get(), name, O_PATH | O_NOFOLLOW));
        if (::mount(n.path.c_str(), fdPath(target.get()).c_str(), nullptr, MS_BIND, nullptr) < 0)
            return failErrno("bind the host's " + n.path);
        return {};
    } else if (::mknodat(parent.get(), name.c_str(), n.type | n.mode, n.dev) < 0) {
        return failErrno("mknod");
    }
    // mknod's mode went through the umask; set it exactly. lstat above ruled out a symlink.
    if (::fchmodat(parent.get(), name.c_str(), n.mode, 0) < 0) return failErrno("chmod");
    if (::fchownat(parent.get(), name.c_str(), n.uid, n.gid, AT_SYMLINK_NOFOLLOW) < 0) return failErrno("chown");
    return {};
}

Result<void> setupDev(int rootFd, const RootfsContext& ctx) {
    const MountOp* devMount = nullptr;
    bool hasPts = false;
    for (auto& op : ctx.mounts) {
        if (op.destination == "/dev") devMount = &op;
        if (op.destination == "/dev/pts") hasPts = true;
    }
    // A /dev bound from the host (or a devtmpfs) is the host's: creating nodes
    // or links there would change the host. Only a private tmpfs, or the image's
    // own /dev directory, is ours to fill.
    if (devMount && (devMount->bind || devMount->type != "tmpfs")) return {};

    std::vector<DevNode> nodes;
    if (ctx.spec)
        for (size_t i = 0; i < ctx.spec->linux.devices.size(); ++i)
            nodes.push_back(TRY_CTX("linux.devices[" + std::to_string(i) + "]", devNodeOf(ctx.spec->linux.devices[i])));
    // linux.devices may redefine a default device (another mode, owner): theirs wins.
    for (auto& def : defaultDevices()) {
        bool overridden = false;
        for (auto& n : nodes) overridden = overridden || n.path == def.path;
        if (!overridden) nodes.push_back(def);
    }
    for (auto& n : nodes) TRY_CTX("device " + n.path, createDevice(rootFd, n, ctx.inUserNamespace));

    UniqueFd dev = TRY(mkdirAllInRoot(rootFd, "/dev"));
    struct Link {
        const char *name, *target;
    };
    std::vector<Link> links = {
        {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
    if (sys::exists("/proc/kcore")) links.push_back({"core", "/proc/kcore"});
    if (hasPts) {
        // config-linux.md: /dev/ptmx is the container's own devpts ptmx, not the
        // host's multiplexer; an image may ship a ptmx node, so drop it first.
        if (::unlinkat(dev.get(), "ptmx", 0) < 0 && errno != ENOENT) return failErrno("remove /dev/ptmx");
        links.push_back({"ptmx", "pts/ptmx"});
    }
    for (auto& l : links)  // an image's own /dev may already have them: keep those
        if (::symlinkat(l.target, dev.get(), l.name) < 0 && errno != EEXIST)
            return failErrno(std::string("symlink /dev/") + l.name);

    // POSIX shared memory lives in /dev/shm; without its own mount it is a plain
    // sticky, world-writable directory, like /tmp.
    if (::mkdirat(dev.get(), "shm", 0755) == 0) {
        if (::fchmodat(dev.get(), "shm", 01777, 0) < 0) return failErrno("chmod /dev/shm");
    } else if (errno != EEXIST) {
        return failErrno("mkdir /dev/shm");
    }

    if (!ctx.consolePath.empty()) {
        auto console = TRY(touchInRoot(rootFd, "/dev/console"));
        if (::mount(ctx.consolePath.c_str(), fdPath(console.get()).c_str(), nullptr, MS_BIND, nullptr) < 0)
            return failErrno("bind " + ctx.consolePath + " onto /dev/console");
    }
    return {};
}

// ---- after pivot_root ----------------------------------------------------------

/// "net.ipv4.ip_forward" -> "net/ipv4/ip_forward". As with sysctl(8), a key
/// that already has slashes uses them as separators and keeps its dots.
std::string sysctlPath(const std::string& key) {
    if (key.find('/') != std::string::npos) return key;
    std::string out = key;
    for (char& c : out)
        if (c == '.') c = '/';
    return out;
}

bool startsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

Result<void> maskPath(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) {
        if (errno == ENOENT) return {};  // nothing to hide
        return failErrno("stat " + path);
    }
    if (S_ISDIR(st.st_mode)) {
        // An empty, read-only tmpfs hides the directory's contents.
        if (::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
            return failErrno("mount tmpfs over " + path);
    } else if (::mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr) < 0) {
        return failErrno("bind /dev/null over " + path);
    }
    return {};
}

Result<void> makeReadonly(const std::string& path) {
    if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) {
        if (errno == ENOENT) return {};
        return failErrno("bind " + path);
    }
    unsigned long keep = TRY(perMountFlagsOf(path));
    if (::mount(nullptr, path.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, nullptr) < 0)
        return failErrno("remount " + path + " read-only");
    return {};
}

bool isInitramfsRoot() {
    // mountinfo: "id parent maj:min root mountpoint opts ... - fstype source superopts".
    auto info = sys::readFile("/proc/self/mountinfo");
    if (!info) return false;
    for (auto& line : sys::split(*info, '\n')) {
        auto f = sys::split(line, ' ');
        if (f.size() < 5 || f[4] != "/") continue;
        auto dash = line.find(" - ");
        if (dash != std::string::npos && startsWith(std::string_view(line).substr(dash + 3), "rootfs ")) return true;
    }
    return false;
}

}  // namespace

// ---- public -------------------------------------------------------------------

Result<std::vector<MountOp>> planMounts(const Spec& spec) {
    std::vector<MountOp> ops;
    ops.reserve(spec.mounts.size());
    // config.md "Mounts": the runtime MUST mount entries in the listed order.
    for (size_t i = 0; i < spec.mounts.size(); ++i)
        ops.push_back(TRY(planMount(spec.mounts[i], "mounts[" + std::to_string(i) + "]")));
    return ops;
}

Result<unsigned long> rootPropagation(const std::string& value) {
    if (value.empty() || value == "slave" || value == "rslave") return MS_SLAVE | MS_REC;
    if (value == "private" || value == "rprivate") return MS_PRIVATE | MS_REC;
    if (value == "shared" || value == "rshared") return MS_SHARED | MS_REC;
    if (value == "unbindable" || value == "runbindable") return MS_UNBINDABLE | MS_REC;
    return failInvalid("linux.rootfsPropagation: unknown value " + quoted(value) +
                       " (expected shared, slave, private or unbindable)");
}

Result<void> validateSysctl(const Spec& spec) {
    auto has = [&](NamespaceType t) { return spec.linux.findNamespace(t) != nullptr; };
    for (auto& [key, value] : spec.linux.sysctl) {
        std::string at = "linux.sysctl[" + quoted(key) + "]";
        std::string path = sysctlPath(key);
        for (auto& part : sys::split(path, '/', false))
            if (part.empty() || part == "." || part == "..") return failInvalid(at + ": malformed key");
        // Policy on the dotted name, whichever separator was written.
        std::string name = path;
        for (char& c : name)
            if (c == '/') c = '.';
        // A sysctl is only safe when it belongs to a namespace the container has
        // to itself; anything else would change the host for everyone.
        const char* needs = nullptr;
        bool ok = false;
        if (startsWith(name, "kernel.msg") || startsWith(name, "kernel.shm") || name == "kernel.sem" ||
            startsWith(name, "fs.mqueue.")) {
            needs = "ipc";
            ok = has(NamespaceType::Ipc);
        } else if (startsWith(name, "net.")) {
            needs = "network";
            ok = has(NamespaceType::Network);
        } else if (name == "kernel.hostname" || name == "kernel.domainname") {
            needs = "uts";
            ok = has(NamespaceType::Uts);
        } else {
            return failInvalid(at + ": not namespaced; setting it would change the host");
        }
        if (!ok) return failInvalid(at + ": needs the container's own " + needs + " namespace");
    }
    return {};
}

Result<void> checkSharedMountNamespace(const Spec& spec) {
    auto needs = [](const std::string& field) {
        return failInvalid(field + ": needs the container's own mount namespace, and linux.namespaces has no \"mount\"");
    };
    if (!spec.mounts.empty()) return needs("mounts[0] (" + spec.mounts[0].destination + ")");
    if (!spec.linux.maskedPaths.empty()) return needs("linux.maskedPaths");
    if (!spec.linux.readonlyPaths.empty()) return needs("linux.readonlyPaths");
    if (spec.root.readonly) return needs("root.readonly");
    if (!spec.linux.rootfsPropagation.empty()) return needs("linux.rootfsPropagation");
    if (!spec.linux.devices.empty()) return needs("linux.devices");
    if (!spec.linux.sysctl.empty()) return needs("linux.sysctl");  // written through the container's own /proc
    if (spec.process && spec.process->terminal) return needs("process.terminal");  // its pty is on the container's /dev/pts
    return {};
}

Result<void> prepareRootfs(const RootfsContext& ctx) {
    // 1. Cut propagation back to the host: our mount namespace is a copy of the
    //    host's, and on systemd hosts "/" is shared, so every mount below would
    //    appear on the host too. Slave (runc's default) still lets host mounts
    //    flow in; private cuts both ways. A "shared" or "unbindable" root is set
    //    at the very end (finishRootfs), once nothing of ours can leak.
    unsigned long first = MS_SLAVE | MS_REC;
    if (ctx.spec && TRY(rootPropagation(ctx.spec->linux.rootfsPropagation)) == (MS_PRIVATE | MS_REC))
        first = MS_PRIVATE | MS_REC;
    if (::mount(nullptr, "/", nullptr, first, nullptr) < 0) return failErrno("make / a slave mount");

    // 2. pivot_root needs the new root to be a mount point; the rootfs is often
    //    a plain directory, so bind it onto itself.
    if (::mount(ctx.rootfs.c_str(), ctx.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
        return failErrno("bind the rootfs " + ctx.rootfs + " onto itself");
    // Opened after the bind, so this names the new mount.
    auto root = TRY(sys::openFile(ctx.rootfs, O_PATH | O_DIRECTORY));

    // 3. The mounts, in order; each destination resolved inside the rootfs.
    for (size_t i = 0; i < ctx.mounts.size(); ++i)
        TRY_CTX("mounts[" + std::to_string(i) + "] " + ctx.mounts[i].destination, mountOne(root.get(), ctx.mounts[i], ctx));

    // 4. /dev: default devices, linux.devices, the usual links, the console.
    TRY(setupDev(root.get(), ctx));
    return {};
}

Result<void> enterRootfs(const std::string& rootfs) {
    if (::chdir(rootfs.c_str()) < 0) return failErrno("chdir " + rootfs);
    // pivot_root(".", ".") puts the old root on top of the new one, at "/"; no
    // put_old directory is needed inside the image (pivot_root(2), NOTES).
    if (::syscall(SYS_pivot_root, ".", ".") < 0) {
        int err = errno;
        // The initramfs root ("rootfs" in mountinfo) has no parent mount and can
        // never be unmounted, so pivot_root refuses it. Moving the new root over
        // "/" and chroot-ing is the workaround; weaker (the old root is still
        // below), but there is nothing else to escape to on such a system.
        if (err == EINVAL && isInitramfsRoot()) {
            if (::mount(rootfs.c_str(), "/", nullptr, MS_MOVE, nullptr) < 0) return failErrno("move " + rootfs + " to /");
            if (::chroot(".") < 0) return failErrno("chroot");
            if (::chdir("/") < 0) return failErrno("chdir /");
            return {};
        }
        return failErrno("pivot_root " + rootfs, err);
    }
    // The old root must not pass our unmount on to the host's mounts.
    if (::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) return failErrno("make the old root a slave");
    if (::umount2(".", MNT_DETACH) < 0) return failErrno("detach the old root");
    if (::chdir("/") < 0) return failErrno("chdir /");
    return {};
}

Result<void> finishRootfs(const Spec& spec) {
    // Paths are the container's now: "/" is the rootfs, /proc its own proc.
    TRY(validateSysctl(spec));
    for (auto& [key, value] : spec.linux.sysctl)
        TRY_CTX("linux.sysctl[" + quoted(key) + "]", sys::writeExisting("/proc/sys/" + sysctlPath(key), value));

    for (size_t i = 0; i < spec.linux.maskedPaths.size(); ++i)
        TRY_CTX("linux.maskedPaths[" + std::to_string(i) + "]",
                maskPath(sys::cleanPath("/" + spec.linux.maskedPaths[i])));
    for (size_t i = 0; i < spec.linux.readonlyPaths.size(); ++i)
        TRY_CTX("linux.readonlyPaths[" + std::to_string(i) + "]",
                makeReadonly(sys::cleanPath("/" + spec.linux.readonlyPaths[i])));

    if (spec.root.readonly) {
        // Only the root mount itself: mounts below keep their own flags.
        unsigned long keep = TRY_CTX("root.readonly", perMountFlagsOf("/"));
        if (::mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, nullptr) < 0)
            return failErrno("root.readonly: remount / read-only");
    }

    if (!spec.linux.rootfsPropagation.empty()) {
        unsigned long flags = TRY(rootPropagation(spec.linux.rootfsPropagation));
        if (::mount(nullptr, "/", nullptr, flags, nullptr) < 0)
            return failErrno("linux.rootfsPropagation: " + spec.linux.rootfsPropagation);
    }
    return {};
}

}  // namespace hull::runtime
