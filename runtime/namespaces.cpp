#include "runtime/namespaces.hpp"

#include <sched.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace hull::runtime {

int cloneFlag(NamespaceType t) {
    switch (t) {
        case NamespaceType::Pid: return CLONE_NEWPID;
        case NamespaceType::Network: return CLONE_NEWNET;
        case NamespaceType::Mount: return CLONE_NEWNS;
        case NamespaceType::Ipc: return CLONE_NEWIPC;
        case NamespaceType::Uts: return CLONE_NEWUTS;
        case NamespaceType::User: return CLONE_NEWUSER;
        case NamespaceType::Cgroup: return CLONE_NEWCGROUP;
        case NamespaceType::Time: return CLONE_NEWTIME;
    }
    return 0;
}

Result<NamespacePlan> planNamespaces(const Linux& linux) {
    NamespacePlan plan;
    plan.hasMount = linux.findNamespace(NamespaceType::Mount) != nullptr;
    bool joinsOthers = false;
    for (auto& ns : linux.namespaces) {
        int f = cloneFlag(ns.type);
        if (ns.type == NamespaceType::User) plan.hasUser = true;
        if (ns.path.empty()) {
            if (ns.type == NamespaceType::Time || ns.type == NamespaceType::Cgroup) plan.unshareAfter |= f;
            else plan.cloneFlags |= uint64_t(f);
            continue;
        }
        if (ns.type == NamespaceType::Pid) {
            plan.pidPath = ns.path;
            continue;
        }
        NamespaceJoin j{ns.type, f, ns.path};
        // The user namespace first: the others are then joined with the
        // privileges it grants.
        if (ns.type == NamespaceType::User) plan.joins.insert(plan.joins.begin(), j);
        else {
            plan.joins.push_back(j);
            joinsOthers = true;
        }
    }
    plan.newUser = plan.cloneFlags & CLONE_NEWUSER;
    plan.newUts = plan.cloneFlags & CLONE_NEWUTS;
    if (plan.newUser && joinsOthers)
        return failInvalid(
            "linux.namespaces: joining existing namespaces together with a new user namespace is not supported");
    return plan;
}

}  // namespace hull::runtime
