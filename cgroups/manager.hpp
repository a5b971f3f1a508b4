#pragma once
// A container's cgroup, on whichever layout the host has. Only the factory
// (Manager::create with a Layout from detectLayout) knows /sys/fs/cgroup: every
// manager takes its root, so unit tests run on fixture trees in a temp dir.
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "cgroups/resources.hpp"
#include "cgroups/limits.hpp"
#include "sys/error.hpp"
#include "sys/unique_fd.hpp"

namespace hull::cgroups {

enum class LayoutKind { Unified, Hybrid, Legacy };
const char* layoutName(LayoutKind k);  // "unified", "hybrid", "legacy"

struct Layout {
    LayoutKind kind = LayoutKind::Unified;
    std::string root = "/sys/fs/cgroup";  // where the hierarchies are mounted
    /// v1: controller name -> mount directory ("memory" -> "/sys/fs/cgroup/memory";
    /// co-mounted "cpu,cpuacct" appear under both names). Empty for unified.
    std::vector<std::pair<std::string, std::string>> v1Mounts;
    /// The cgroup2 mount: root itself (unified), root/unified (hybrid), "" (legacy).
    std::string unifiedMount;
    /// Mount point -> the hierarchy directory mounted there, only where that is
    /// not "/" (inside a container that was given its own cgroup by bind mount).
    /// /proc/self/cgroup paths are relative to the hierarchy, not the mount.
    std::vector<std::pair<std::string, std::string>> mountRoots;
};

/// Read the host's layout: statfs magic of /sys/fs/cgroup and /sys/fs/cgroup/unified,
/// and /proc/self/mountinfo for the v1 hierarchies.
[[nodiscard]] Result<Layout> detectLayout(const std::string& root = "/sys/fs/cgroup");

/// The caller's own placement, parsed from /proc/<pid>/cgroup text:
/// "4:memory:/a/b" -> {"memory", "/a/b"}; "0::/x" -> {"", "/x"}. A co-mounted
/// hierarchy gives one entry per controller: "2:cpu,cpuacct:/" -> {"cpu", "/"},
/// {"cpuacct", "/"}; named ones keep their name: {"name=systemd", "/"}.
std::vector<std::pair<std::string, std::string>> parseProcCgroup(const std::string& text);

/// A cgroup or cgroup2 line of /proc/self/mountinfo.
struct CgroupMount {
    std::string mountPoint;                // "/sys/fs/cgroup/memory"
    std::string root;                      // the hierarchy directory mounted there, usually "/"
    bool v2 = false;                       // fstype cgroup2
    std::vector<std::string> controllers;  // v1 super options naming controllers: "cpu", "name=systemd"
};
/// The cgroup mounts in mountinfo text, in order (pure; for tests and detectLayout).
std::vector<CgroupMount> parseCgroupMounts(const std::string& mountinfo);
/// The v1 hierarchies mounted directly below ROOT, as Layout::v1Mounts. Where a
/// mount point is mounted over, the last mount wins.
std::vector<std::pair<std::string, std::string>> v1MountsBelow(const std::vector<CgroupMount>& mounts,
                                                               const std::string& root);

/// statfs magic numbers: the pure part of detectLayout.
struct LayoutProbe {
    long rootMagic = 0;     // f_type of root
    long unifiedMagic = 0;  // f_type of root/unified, 0 when missing
};
[[nodiscard]] Result<Layout> layoutFromProbe(const std::string& root, const LayoutProbe& probe,
                                             const std::string& mountinfo);

class Manager {
public:
    virtual ~Manager() = default;

    /// Make the cgroup (and its ancestors). Idempotent.
    [[nodiscard]] virtual Result<void> create() = 0;
    /// Move a process in (cgroup.procs / tasks in every hierarchy).
    [[nodiscard]] virtual Result<void> attach(pid_t pid) = 0;
    /// A directory fd for clone3(CLONE_INTO_CGROUP); invalid fd when the layout
    /// cannot do that (v1), and the caller attaches after clone instead.
    [[nodiscard]] virtual Result<UniqueFd> openForClone() = 0;
    /// Every pid in the cgroup, including sub-cgroups.
    [[nodiscard]] virtual Result<std::vector<pid_t>> pids() = 0;
    /// Signal every process; SIGKILL uses cgroup.kill where the kernel has it.
    [[nodiscard]] virtual Result<void> killAll(int signal) = 0;
    /// Freeze/thaw and wait until the kernel reports the state reached.
    [[nodiscard]] virtual Result<void> freeze() = 0;
    [[nodiscard]] virtual Result<void> thaw() = 0;
    [[nodiscard]] virtual Result<bool> frozen() = 0;
    /// Remove the cgroup (retrying while the kernel still reports it busy). A
    /// missing cgroup is success.
    [[nodiscard]] virtual Result<void> destroy() = 0;

    /// Write linux.resources (planV2/planV1) into the cgroup. Only the fields
    /// set are written, so `update` passes just what changes. What this cgroup
    /// version cannot do is logged, or refused when it would weaken isolation.
    [[nodiscard]] virtual Result<void> apply(const Resources& r) = 0;
    /// Usage, limits and OOM counters read from the control files.
    [[nodiscard]] virtual Result<Stats> stats() = 0;

    /// The directory of the cgroup in the unified hierarchy (v2) or in the
    /// given controller's hierarchy (v1; "" = the first one).
    virtual std::string path(const std::string& controller = "") const = 0;
    virtual bool isUnified() const = 0;
};

/// The manager for a container's cgroupsPath on this layout.
/// cgroupsPath: absolute ("/hull/web-1") is taken from the hierarchy root on v2,
/// and, on v1, below the caller's own placement in each hierarchy (this host
/// keeps its memory hierarchy for its supervisor: we nest under our own cgroup).
/// Relative ("hull/web-1") is always below the caller's own cgroup.
/// ownCgroupText is /proc/self/cgroup's content (injected for tests).
[[nodiscard]] Result<std::unique_ptr<Manager>> makeManager(const Layout& layout, const std::string& cgroupsPath,
                                                           const std::string& ownCgroupText);

/// The same, for the host: detectLayout() and /proc/self/cgroup.
[[nodiscard]] Result<std::unique_ptr<Manager>> openHostManager(const std::string& cgroupsPath);

}  // namespace hull::cgroups
