#pragma once
// cgroup v2: one directory in the unified hierarchy. Control files are written
// relative to dir_, so limits (apply) and stats slot in as more files later.
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "cgroups/manager.hpp"
#include "cgroups/util.hpp"

namespace hull::cgroups {

class V2Manager final : public Manager {
public:
    /// DIR: the cgroup's directory, already resolved (see resolvePath), below
    /// MOUNT, the cgroup2 mount point (controllers are enabled from there down).
    V2Manager(std::string mount, std::string dir) : mount_(std::move(mount)), dir_(std::move(dir)) {}

    /// UNIFIED_MOUNT + cgroupsPath when absolute; when relative, + the PARENT of
    /// the caller's own "0::" placement (OWN, from parseProcCgroup) + cgroupsPath.
    /// The parent, as runc does: our own cgroup holds us, and cgroup v2's "no
    /// internal processes" rule forbids enabling controllers for its children.
    /// MOUNT_ROOT: the hierarchy directory mounted at UNIFIED_MOUNT (Layout::mountRoots).
    [[nodiscard]] static Result<std::string> resolvePath(const std::string& unifiedMount,
                                                         const std::string& cgroupsPath,
                                                         const std::vector<std::pair<std::string, std::string>>& own,
                                                         const std::string& mountRoot = "/");

    /// How long freeze/thaw wait for cgroup.events to agree.
    void setStateTimeout(std::chrono::milliseconds t) { timeout_ = t; }

    Result<void> create() override;
    Result<void> attach(pid_t pid) override;
    Result<UniqueFd> openForClone() override;
    Result<std::vector<pid_t>> pids() override;
    Result<void> killAll(int signal) override;
    Result<void> freeze() override { return setFrozen(true); }
    Result<void> thaw() override { return setFrozen(false); }
    Result<bool> frozen() override;
    Result<void> destroy() override;
    Result<void> apply(const Resources& r) override;
    Result<Stats> stats() override;
    std::string path(const std::string& = "") const override { return dir_; }
    bool isUnified() const override { return true; }

private:
    [[nodiscard]] Result<void> setFrozen(bool on);
    /// Enable in every ancestor's cgroup.subtree_control, from the mount down,
    /// each controller the ancestor offers (its cgroup.controllers).
    void enableControllers();

    std::string mount_;
    std::string dir_;
    std::chrono::milliseconds timeout_ = util::kDefaultStateTimeout;
};

}  // namespace hull::cgroups
