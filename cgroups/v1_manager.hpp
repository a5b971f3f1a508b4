#pragma once
// cgroup v1: one directory per mounted hierarchy, each nested under the caller's
// own placement in that hierarchy. Controller files are reached through
// hierarchy(controller), so limits (apply) and stats slot in per controller later.
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "cgroups/manager.hpp"
#include "cgroups/util.hpp"

namespace hull::cgroups {

/// One hierarchy the container's cgroup lives in.
struct V1Hierarchy {
    /// The hierarchy's controllers as mounted: {"cpu", "cpuacct"}, {"name=systemd"};
    /// empty for the cgroup2 hierarchy of a hybrid host.
    std::vector<std::string> controllers;
    bool unified = false;
    std::string mount;  // "/sys/fs/cgroup/memory"
    std::string dir;    // the container's cgroup in it
};

class V1Manager final : public Manager {
public:
    explicit V1Manager(std::vector<V1Hierarchy> hierarchies) : hierarchies_(std::move(hierarchies)) {}

    /// A directory per v1 hierarchy of LAYOUT (co-mounted controllers share one),
    /// at mount + own placement (OWN, from parseProcCgroup) + cgroupsPath, absolute
    /// or relative alike. On a hybrid host the cgroup2 hierarchy gets one too (it
    /// keeps /proc/<pid>/cgroup and systemd-cgls consistent), last.
    [[nodiscard]] static Result<std::vector<V1Hierarchy>> resolveHierarchies(
        const Layout& layout, const std::string& cgroupsPath,
        const std::vector<std::pair<std::string, std::string>>& own);

    /// The hierarchy holding CONTROLLER, or nullptr.
    const V1Hierarchy* hierarchy(const std::string& controller) const;
    const std::vector<V1Hierarchy>& hierarchies() const { return hierarchies_; }

    /// How long freeze/thaw wait for freezer.state to agree.
    void setStateTimeout(std::chrono::milliseconds t) { timeout_ = t; }

    Result<void> create() override;
    Result<void> attach(pid_t pid) override;
    /// v1 cannot clone into a cgroup: always an invalid fd.
    Result<UniqueFd> openForClone() override { return UniqueFd(); }
    Result<std::vector<pid_t>> pids() override;
    Result<void> killAll(int signal) override;
    Result<void> freeze() override { return setFrozen(true); }
    Result<void> thaw() override { return setFrozen(false); }
    /// False when no freezer hierarchy is mounted.
    Result<bool> frozen() override;
    Result<void> destroy() override;
    Result<void> apply(const Resources& r) override;
    Result<Stats> stats() override;
    std::string path(const std::string& controller = "") const override;
    bool isUnified() const override { return false; }

private:
    [[nodiscard]] Result<void> setFrozen(bool on);
    [[nodiscard]] Result<void> fillCpuset(const V1Hierarchy& h);

    std::vector<V1Hierarchy> hierarchies_;
    std::chrono::milliseconds timeout_ = util::kDefaultStateTimeout;
};

}  // namespace hull::cgroups
