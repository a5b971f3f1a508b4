// The factory: the one place that picks a manager for a layout.
#include "cgroups/manager.hpp"

#include "cgroups/v1_manager.hpp"
#include "cgroups/v2_manager.hpp"
#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::cgroups {

Result<std::unique_ptr<Manager>> makeManager(const Layout& layout, const std::string& cgroupsPath,
                                             const std::string& ownCgroupText) {
    auto own = parseProcCgroup(ownCgroupText);
    std::unique_ptr<Manager> m;
    // Hybrid hosts keep their controllers in v1; cgroup2 there holds none we use.
    if (layout.kind == LayoutKind::Unified) {
        auto dir = TRY_CTX("cgroup " + cgroupsPath, V2Manager::resolvePath(layout.unifiedMount, cgroupsPath, own,
                                                                            util::mountRootOf(layout.mountRoots,
                                                                                              layout.unifiedMount)));
        m = std::make_unique<V2Manager>(layout.unifiedMount, std::move(dir));
    } else {
        auto hs = TRY_CTX("cgroup " + cgroupsPath, V1Manager::resolveHierarchies(layout, cgroupsPath, own));
        m = std::make_unique<V1Manager>(std::move(hs));
    }
    log::debugf("cgroup: %s manager for %s at %s", layoutName(layout.kind), cgroupsPath.c_str(), m->path().c_str());
    return m;
}

Result<std::unique_ptr<Manager>> openHostManager(const std::string& cgroupsPath) {
    auto layout = TRY(detectLayout());
    auto own = TRY(sys::readFile("/proc/self/cgroup"));
    return makeManager(layout, cgroupsPath, own);
}

}  // namespace hull::cgroups
