#include <seccomp.h>
#include <unistd.h>

#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/capabilities.hpp"
#include "runtime/defaults.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/spec.hpp"

using namespace hull::runtime;
namespace json = hull::json;

namespace {

std::vector<std::string> strings(const json::Value* v) {
    std::vector<std::string> out;
    if (!v || !v->isArray()) return out;
    for (auto& s : v->asArray()) out.push_back(s.asString());
    return out;
}

std::vector<std::string> namespaceTypes(const json::Value& config) {
    std::vector<std::string> out;
    for (auto& ns : config.find("linux")->find("namespaces")->asArray()) out.push_back(ns.find("type")->asString());
    return out;
}

}  // namespace

TEST_CASE("every group of the blocked table explains itself", "[defaults]") {
    std::set<std::string> seen;
    for (auto& g : blockedSyscallTable()) {
        INFO(g.group);
        CHECK(std::string(g.group).size() > 2);
        CHECK(std::string(g.reason).size() > 20);
        CHECK_FALSE(g.syscalls.empty());
        CHECK((g.errnoRet == EPERM || g.errnoRet == ENOSYS));
        for (const char* name : g.syscalls) {
            INFO(name);
            CHECK(seen.insert(name).second);  // each syscall in one group only
        }
    }
    for (const char* required : {"init_module", "kexec_load", "reboot", "swapon", "clock_settime", "keyctl", "bpf",
                                 "perf_event_open", "userfaultfd", "open_by_handle_at", "acct", "quotactl",
                                 "uselib", "iopl", "syslog", "mount", "fsopen", "move_mount", "unshare", "setns",
                                 "mbind", "io_uring_setup", "clone3"})
        CHECK(seen.count(required) == 1);
}

TEST_CASE("every name in the default table resolves on x86_64", "[defaults]") {
    for (auto& g : blockedSyscallTable())
        for (const char* name : g.syscalls) {
            INFO(name);
            CHECK(seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name) != __NR_SCMP_ERROR);
        }
}

TEST_CASE("clone3 is refused with ENOSYS so libc falls back to clone", "[defaults]") {
    for (auto& g : blockedSyscallTable()) {
        bool isClone3 = g.syscalls.size() == 1 && std::string(g.syscalls[0]) == "clone3";
        CHECK(g.errnoRet == (isClone3 ? ENOSYS : EPERM));
    }
}

TEST_CASE("the default profile plans without skipped names and compiles", "[defaults]") {
    Seccomp s = defaultSeccomp();
    CHECK(s.defaultAction == "SCMP_ACT_ALLOW");
#if defined(__x86_64__)
    CHECK(s.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"});
#endif
    // One entry per group, then one per clone/personality flag bit.
    REQUIRE(s.syscalls.size() > blockedSyscallTable().size());
    int cloneRules = 0;
    for (auto& sc : s.syscalls)
        if (sc.names == std::vector<std::string>{"clone"}) {
            ++cloneRules;
            REQUIRE(sc.args.size() == 1);
            CHECK(sc.args[0].op == "SCMP_CMP_MASKED_EQ");
            CHECK(sc.args[0].value == sc.args[0].valueTwo);
            CHECK(sc.errnoRet == uint32_t(EPERM));
        }
    CHECK(cloneRules == 7);

    auto plan = planSeccomp(s);
    REQUIRE(plan);
    CHECK(plan->skipped.empty());
    auto bpf = compileSeccomp(*plan);
    REQUIRE(bpf);
    CHECK(bpf->size() / 8 < 4096);  // BPF_MAXINSNS
}

TEST_CASE("Docker's 14 default capabilities", "[defaults]") {
    auto& caps = defaultCapabilities();
    CHECK(caps.size() == 14);
    for (auto& c : caps) {
        INFO(c);
        CHECK(capabilityFromName(c) >= 0);
    }
    CHECK(std::find(caps.begin(), caps.end(), "CAP_SYS_ADMIN") == caps.end());
    CHECK(std::find(caps.begin(), caps.end(), "CAP_NET_BIND_SERVICE") != caps.end());
}

TEST_CASE("the default config carries our capabilities and seccomp profile", "[defaults]") {
    json::Value config = defaultConfig(false);
    CHECK(config.find("ociVersion")->asString() == "1.2.0");
    CHECK(config.find("hostname")->asString() == "hull");
    auto* process = config.find("process");
    REQUIRE(process);
    CHECK(strings(process->find("args")) == std::vector<std::string>{"sh"});
    CHECK(process->find("noNewPrivileges")->asBool());
    auto* caps = process->find("capabilities");
    REQUIRE(caps);
    for (const char* set : {"bounding", "effective", "permitted"}) CHECK(strings(caps->find(set)) == defaultCapabilities());
    CHECK_FALSE(caps->find("ambient"));

    auto* seccomp = config.find("linux")->find("seccomp");
    REQUIRE(seccomp);
    CHECK(seccomp->find("defaultAction")->asString() == "SCMP_ACT_ALLOW");
    CHECK(seccomp->find("syscalls")->asArray().size() == defaultSeccomp().syscalls.size());
    CHECK(namespaceTypes(config) == std::vector<std::string>{"pid", "network", "ipc", "uts", "mount", "cgroup"});
    CHECK_FALSE(config.find("linux")->find("uidMappings"));

    // What `hull-runc spec` writes, hull itself must accept.
    auto spec = parseSpec(config.dump(true));
    REQUIRE(spec);
    REQUIRE(spec->linux.seccomp);
    CHECK(spec->linux.seccomp->syscalls.size() == defaultSeccomp().syscalls.size());
    auto plan = planSeccomp(*spec->linux.seccomp);
    REQUIRE(plan);
    REQUIRE(spec->process);
    REQUIRE(spec->process->capabilities);
    auto capPlan = planCapabilities(*spec->process->capabilities);
    REQUIRE(capPlan);
    CHECK(capPlan->ambient == 0);
    CHECK(capPlan->effective == capPlan->bounding);
}

TEST_CASE("the rootless config maps our ids and has no network namespace", "[defaults]") {
    json::Value config = defaultConfig(true);
    CHECK(namespaceTypes(config) == std::vector<std::string>{"pid", "ipc", "uts", "mount", "cgroup", "user"});
    auto* lx = config.find("linux");
    auto& uid = lx->find("uidMappings")->asArray();
    REQUIRE(uid.size() == 1);
    uint64_t host = 0;
    REQUIRE(uid[0].find("hostID")->toUint64(host));
    CHECK(host == ::getuid());
    REQUIRE(lx->find("gidMappings")->asArray()[0].find("hostID")->toUint64(host));
    CHECK(host == ::getgid());
    CHECK_FALSE(lx->find("resources"));
    CHECK(lx->find("seccomp"));
    for (auto& m : config.find("mounts")->asArray())
        if (m.find("destination")->asString() == "/sys") CHECK(m.find("type")->asString() == "none");
    auto spec = parseSpec(config.dump());
    REQUIRE(spec);
}
