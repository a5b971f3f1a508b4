#pragma once
// Which namespaces a container's init gets by clone flags, which it creates
// later with unshare, and which it joins by path — a pure plan from linux.namespaces.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/spec.hpp"
#include "sys/error.hpp"

namespace hull::runtime {

struct NamespaceJoin {
    NamespaceType type{};
    int flag = 0;  // CLONE_NEW*
    std::string path;
};

struct NamespacePlan {
    uint64_t cloneFlags = 0;  // new namespaces made by clone3 itself
    /// Made by the child after it is placed: a cgroup namespace is rooted at the
    /// cgroup its creator is in, and a time namespace needs its offsets written
    /// before anyone enters it.
    int unshareAfter = 0;
    std::vector<NamespaceJoin> joins;  // joined by the child, the user namespace first
    std::string pidPath;               // a pid namespace to join: set before clone
    bool newUser = false, newUts = false, hasUser = false;
    /// A mount namespace, new or joined. Without one the container stays in the
    /// runtime's, chrooted into its root (checkSharedMountNamespace, rootfs.hpp).
    bool hasMount = false;
};

int cloneFlag(NamespaceType t);

/// Errors: the one combination not supported yet (a new user namespace plus
/// joined others).
[[nodiscard]] Result<NamespacePlan> planNamespaces(const Linux& linux);

}  // namespace hull::runtime
