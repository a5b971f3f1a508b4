#pragma once
// The container's file system: the mount plan (pure, unit-tested) and the steps
// that apply it inside the new mount namespace, between clone and exec.
#include <sys/types.h>

#include <string>
#include <vector>

#include "runtime/spec.hpp"
#include "sys/error.hpp"

namespace hull::runtime {

/// One mount(2) step derived from a config.json `mounts` entry.
struct MountOp {
    std::string source;       // host path for binds, fs-specific otherwise
    std::string destination;  // absolute, inside the container, cleaned
    std::string type;         // "proc", "tmpfs", "bind" for binds, ...
    unsigned long flags = 0;  // MS_* (without propagation flags)
    unsigned long propagation = 0;  // MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (|MS_REC)
    std::string data;         // "mode=755,size=65536k"
    bool bind = false, recursive = false;
    /// Bind mounts need a second remount for ro/nosuid/nodev/noexec to take effect.
    bool needsRemount = false;
    /// Clear flags too (e.g. "rw", "suid") when remounting a bind.
    unsigned long clearFlags = 0;
    /// "tmpcopyup": fill a new tmpfs with what the image had at the destination.
    bool copyUp = false;
};

/// Parse options and order the mounts. Errors name the field:
/// "mounts[3].options[1]: unknown option \"rox\"" (unknown options that look like
/// fs data, key=value, go to data). A bind whose source does not exist is not an
/// error here (checked when applied).
[[nodiscard]] Result<std::vector<MountOp>> planMounts(const Spec& spec);

/// Propagation flags for linux.rootfsPropagation, always recursive: "" -> MS_SLAVE|MS_REC
/// (runc's default), "shared" -> MS_SHARED|MS_REC, ... ("rshared" etc. are accepted too).
[[nodiscard]] Result<unsigned long> rootPropagation(const std::string& value);

/// linux.sysctl: only namespaced keys, and only when the container has that
/// namespace (kernel.shm*/msg*/sem and fs.mqueue.* need ipc, net.* a network
/// namespace, kernel.hostname/domainname uts). Errors name the key.
[[nodiscard]] Result<void> validateSysctl(const Spec& spec);
/// A config whose linux.namespaces has no "mount" runs in the runtime's mount
/// namespace, chrooted into root.path, as runc and crun run it: nothing is
/// mounted, /dev is the rootfs's own directory. Anything that would mount is an
/// error naming its field ("mounts[0] (/proc): needs the container's own mount
/// namespace, and linux.namespaces has no \"mount\""): runc would make such
/// mounts on the host, hull refuses them.
[[nodiscard]] Result<void> checkSharedMountNamespace(const Spec& spec);

/// Everything the child needs that is computed before clone.
struct RootfsContext {
    std::string rootfs;  // absolute host path of root.path
    std::vector<MountOp> mounts;
    const Spec* spec = nullptr;
    bool inUserNamespace = false;  // mknod is refused: bind-mount host devices instead
    std::string consolePath;       // pty slave path to bind onto /dev/console ("" = none)

    /// How a mount of type "cgroup" is made on this host: cgroup2 when the host
    /// is unified; otherwise a tmpfs with one cgroup v1 mount per hierarchy
    /// (the kernel refuses a v1 mount that combines hierarchies mounted apart),
    /// plus cgroup2 at "unified" on hybrid hosts.
    struct CgroupHierarchy {
        std::string dir;      // "memory", "cpu,cpuacct", "systemd"
        std::string options;  // "memory", "cpu,cpuacct", "none,name=systemd"
    };
    bool cgroupUnified = true;
    bool cgroupHybrid = false;
    std::vector<CgroupHierarchy> cgroupHierarchies;
};

/// Before pivot_root: set "/" propagation, bind the rootfs onto itself, perform
/// every mount (destinations resolved inside the rootfs; a symlink cannot lead a
/// mount outside it), create /dev (default devices, linux.devices, ptmx, fd links).
[[nodiscard]] Result<void> prepareRootfs(const RootfsContext& ctx);

/// pivot_root into the rootfs and detach the old root; on an initramfs root
/// (where pivot_root is refused) fall back to MS_MOVE + chroot.
[[nodiscard]] Result<void> enterRootfs(const std::string& rootfs);

/// After pivot_root: linux.sysctl, maskedPaths, readonlyPaths, root.readonly and
/// the rootfs propagation.
[[nodiscard]] Result<void> finishRootfs(const Spec& spec);

}  // namespace hull::runtime
