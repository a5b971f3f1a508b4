#include <sched.h>

#include <catch2/catch.hpp>

#include "runtime/namespaces.hpp"
#include "runtime/rootfs.hpp"

using namespace hull::runtime;

namespace {
Linux withNamespaces(std::vector<Namespace> ns) {
    Linux l;
    l.namespaces = std::move(ns);
    return l;
}
}  // namespace

TEST_CASE("new namespaces become clone flags, cgroup and time come after placement", "[namespaces]") {
    auto plan = planNamespaces(withNamespaces({{NamespaceType::Pid, ""},
                                               {NamespaceType::Mount, ""},
                                               {NamespaceType::Uts, ""},
                                               {NamespaceType::Ipc, ""},
                                               {NamespaceType::Network, ""},
                                               {NamespaceType::Cgroup, ""}}));
    REQUIRE(plan);
    CHECK(plan->cloneFlags == uint64_t(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET));
    CHECK(plan->unshareAfter == CLONE_NEWCGROUP);
    CHECK(plan->joins.empty());
    CHECK(plan->newUts);
    CHECK_FALSE(plan->newUser);
}

TEST_CASE("namespaces with a path are joined, the user namespace first, pid before clone", "[namespaces]") {
    auto plan = planNamespaces(withNamespaces({{NamespaceType::Network, "/run/netns/a"},
                                               {NamespaceType::Mount, ""},
                                               {NamespaceType::Pid, "/proc/42/ns/pid"},
                                               {NamespaceType::User, "/proc/42/ns/user"},
                                               {NamespaceType::Ipc, "/proc/42/ns/ipc"}}));
    REQUIRE(plan);
    CHECK(plan->cloneFlags == uint64_t(CLONE_NEWNS));
    REQUIRE(plan->joins.size() == 3);
    CHECK(plan->joins[0].flag == CLONE_NEWUSER);
    CHECK(plan->joins[1].path == "/run/netns/a");
    CHECK(plan->joins[2].flag == CLONE_NEWIPC);
    CHECK(plan->pidPath == "/proc/42/ns/pid");
    CHECK(plan->hasUser);
    CHECK_FALSE(plan->newUser);
}

TEST_CASE("no mount namespace is planned as the runtime's, and a config that would mount without one names the field", "[namespaces]") {
    auto plan = planNamespaces(withNamespaces({{NamespaceType::Pid, ""}}));
    REQUIRE(plan);
    CHECK_FALSE(plan->hasMount);
    CHECK((plan->cloneFlags & CLONE_NEWNS) == 0);
    auto joined = planNamespaces(withNamespaces({{NamespaceType::Mount, "/proc/1/ns/mnt"}}));
    REQUIRE(joined);
    CHECK(joined->hasMount);

    Spec spec;
    spec.process = Process{};
    CHECK(checkSharedMountNamespace(spec));
    auto why = [&] {
        auto r = checkSharedMountNamespace(spec);
        return r ? std::string("accepted") : r.error().message();
    };
    spec.linux.sysctl["net.ipv4.ip_forward"] = "1";
    CHECK(why() == "linux.sysctl: needs the container's own mount namespace, and linux.namespaces has no \"mount\"");
    spec.root.readonly = true;
    CHECK(why().rfind("root.readonly: needs", 0) == 0);
    spec.linux.maskedPaths = {"/proc/kcore"};
    CHECK(why().rfind("linux.maskedPaths: needs", 0) == 0);
    spec.mounts.push_back(Mount{});
    spec.mounts.back().destination = "/proc";
    CHECK(why().rfind("mounts[0] (/proc): needs", 0) == 0);
}

TEST_CASE("a new user namespace cannot be combined with joined ones yet", "[namespaces]") {
    auto plan = planNamespaces(withNamespaces({{NamespaceType::User, ""},
                                               {NamespaceType::Mount, ""},
                                               {NamespaceType::Network, "/run/netns/x"}}));
    REQUIRE_FALSE(plan);
    CHECK(plan.error().message().find("new user namespace") != std::string::npos);
}
