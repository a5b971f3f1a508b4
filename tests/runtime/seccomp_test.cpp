#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "runtime/defaults.hpp"
#include "runtime/runtime.hpp"
#include "runtime/seccomp.hpp"
#include "support.hpp"

using namespace hull::runtime;

namespace {

SeccompSyscall call(std::vector<std::string> names, std::string action, std::optional<uint32_t> errnoRet = {},
                    std::vector<SeccompArg> args = {}) {
    SeccompSyscall s;
    s.names = std::move(names);
    s.action = std::move(action);
    s.errnoRet = errnoRet;
    s.args = std::move(args);
    return s;
}

Seccomp allowBy(std::vector<SeccompSyscall> syscalls) {
    Seccomp s;
    s.defaultAction = "SCMP_ACT_ALLOW";
    s.syscalls = std::move(syscalls);
    return s;
}

std::string planError(const Seccomp& s) {
    auto plan = planSeccomp(s);
    REQUIRE_FALSE(plan);
    return plan.error().message();
}

/// Run `body` in a forked child; whatever it returns comes back through a pipe.
std::string inChild(const std::function<std::string()>& body) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        std::string out = body();
        (void)!::write(fds[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    return out;
}

/// "Seccomp:\t2" and friends, from the calling process's status file.
std::string statusLine(const std::string& key) {
    std::string status = hull::test::readFileOr("/proc/self/status");
    auto pos = status.find("\n" + key + ":");
    if (pos == std::string::npos) return "";
    auto end = status.find('\n', pos + 1);
    return status.substr(pos + 1, end - pos - 1);
}

std::string errnoOf(long rc) { return rc < 0 ? std::to_string(errno) : "ok"; }

}  // namespace

TEST_CASE("a plan resolves names to numbers and actions with their errno", "[seccomp]") {
    auto plan = planSeccomp(allowBy({call({"mkdir", "chdir"}, "SCMP_ACT_ERRNO", 38u),
                                     call({"getpid"}, "SCMP_ACT_ERRNO"),
                                     call({"reboot"}, "SCMP_ACT_KILL_PROCESS"),
                                     call({"ptrace"}, "SCMP_ACT_TRACE", 7u),
                                     call({"getuid"}, "SCMP_ACT_LOG"),
                                     call({"kill"}, "SCMP_ACT_TRAP")}));
    REQUIRE(plan);
    CHECK(plan->defaultAction == SCMP_ACT_ALLOW);
    CHECK(plan->skipped.empty());
    REQUIRE(plan->rules.size() == 7);
    CHECK(plan->rules[0].name == "mkdir");
    CHECK(plan->rules[0].syscall == SYS_mkdir);
    CHECK(plan->rules[0].action == SCMP_ACT_ERRNO(38));
    CHECK(plan->rules[0].args.empty());
    CHECK(plan->rules[1].syscall == SYS_chdir);
    CHECK(plan->rules[1].action == SCMP_ACT_ERRNO(38));
    CHECK(plan->rules[2].syscall == SYS_getpid);
    CHECK(plan->rules[2].action == SCMP_ACT_ERRNO(EPERM));  // errnoRet defaults to EPERM
    CHECK(plan->rules[3].action == SCMP_ACT_KILL_PROCESS);
    CHECK(plan->rules[4].action == SCMP_ACT_TRACE(7));
    CHECK(plan->rules[5].action == SCMP_ACT_LOG);
    CHECK(plan->rules[6].action == SCMP_ACT_TRAP);
}

TEST_CASE("argument comparisons keep their operator and data, MASKED_EQ takes value as the mask", "[seccomp]") {
    auto plan = planSeccomp(allowBy({call({"clone"}, "SCMP_ACT_ERRNO", {},
                                          {{0, 0x10000000, 0x10000000, "SCMP_CMP_MASKED_EQ"},
                                           {2, 5, 0, "SCMP_CMP_GT"}})}));
    REQUIRE(plan);
    REQUIRE(plan->rules.size() == 1);  // distinct indices: one rule, comparisons ANDed
    auto& args = plan->rules[0].args;
    REQUIRE(args.size() == 2);
    CHECK(args[0].index == 0);
    CHECK(args[0].op == SCMP_CMP_MASKED_EQ);
    CHECK(args[0].datumA == 0x10000000);
    CHECK(args[0].datumB == 0x10000000);
    CHECK(args[1].index == 2);
    CHECK(args[1].op == SCMP_CMP_GT);
    CHECK(args[1].datumA == 5);

    const std::pair<const char*, int> ops[] = {{"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT},
                                               {"SCMP_CMP_LE", SCMP_CMP_LE}, {"SCMP_CMP_EQ", SCMP_CMP_EQ},
                                               {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT}};
    for (auto& [name, op] : ops) {
        auto p = planSeccomp(allowBy({call({"read"}, "SCMP_ACT_ERRNO", {}, {{1, 3, 0, name}})}));
        REQUIRE(p);
        CHECK(p->rules[0].args[0].op == op);
    }
}

TEST_CASE("comparisons sharing an index are split into one rule each, ORed (runc's convention)", "[seccomp]") {
    auto plan = planSeccomp(allowBy({call({"getpriority", "setpriority"}, "SCMP_ACT_ERRNO", {},
                                          {{0, PRIO_PGRP, 0, "SCMP_CMP_EQ"},
                                           {0, PRIO_USER, 0, "SCMP_CMP_EQ"},
                                           {1, 0, 0, "SCMP_CMP_EQ"}})}));
    REQUIRE(plan);
    REQUIRE(plan->rules.size() == 6);
    for (auto& r : plan->rules) REQUIRE(r.args.size() == 1);
    CHECK(plan->rules[0].name == "getpriority");
    CHECK(plan->rules[0].args[0].datumA == PRIO_PGRP);
    CHECK(plan->rules[1].args[0].datumA == PRIO_USER);
    CHECK(plan->rules[2].args[0].index == 1);
    CHECK(plan->rules[3].name == "setpriority");
    auto bpf = compileSeccomp(*plan);
    REQUIRE(bpf);
    CHECK_FALSE(bpf->empty());
}

TEST_CASE("syscall names unknown to libseccomp are skipped, not fatal", "[seccomp]") {
    auto plan = planSeccomp(allowBy({call({"no_such_syscall", "mkdir", "another_fake"}, "SCMP_ACT_ERRNO"),
                                     call({"no_such_syscall"}, "SCMP_ACT_KILL")}));
    REQUIRE(plan);
    REQUIRE(plan->rules.size() == 1);
    CHECK(plan->rules[0].name == "mkdir");
    CHECK(plan->skipped == std::vector<std::string>{"no_such_syscall", "another_fake"});
}

TEST_CASE("rules with the default action are dropped", "[seccomp]") {
    Seccomp s;
    s.defaultAction = "SCMP_ACT_ERRNO";  // EPERM by default
    s.syscalls = {call({"read", "write"}, "SCMP_ACT_ALLOW"), call({"mkdir"}, "SCMP_ACT_ERRNO"),
                  call({"chdir"}, "SCMP_ACT_ERRNO", 1u), call({"rmdir"}, "SCMP_ACT_ERRNO", 13u)};
    auto plan = planSeccomp(s);
    REQUIRE(plan);
    CHECK(plan->defaultAction == SCMP_ACT_ERRNO(EPERM));
    REQUIRE(plan->rules.size() == 3);
    CHECK(plan->rules[0].name == "read");
    CHECK(plan->rules[1].name == "write");
    CHECK(plan->rules[2].name == "rmdir");
    CHECK(plan->rules[2].action == SCMP_ACT_ERRNO(EACCES));
    CHECK(compileSeccomp(*plan));

    s.defaultErrnoRet = 38u;
    plan = planSeccomp(s);
    REQUIRE(plan);
    CHECK(plan->defaultAction == SCMP_ACT_ERRNO(38));
    CHECK(plan->rules.size() == 5);
}

TEST_CASE("architectures map to libseccomp tokens, flags set the load options", "[seccomp]") {
    Seccomp s = allowBy({});
    s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                       "SCMP_ARCH_RISCV64", "SCMP_ARCH_X86", "SCMP_ARCH_S390X"};
    s.flags = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"};
    auto plan = planSeccomp(s);
    REQUIRE(plan);
    CHECK(plan->architectures == std::vector<uint32_t>{SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32,
                                                        SCMP_ARCH_AARCH64, SCMP_ARCH_RISCV64, SCMP_ARCH_S390X});
    CHECK(plan->flagLog);
    CHECK(plan->flagSpecAllow);
    CHECK_FALSE(plan->flagWaitKillable);
    // s390x cannot share a filter with a little-endian native arch: skipped.
    auto bpf = compileSeccomp(*plan);
    REQUIRE(bpf);
    CHECK(bpf->size() % sizeof(sock_filter) == 0);

    // Names the spec knows but libseccomp 2.5 does not are skipped, not refused.
    s.architectures = {"SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_X86_64"};
    s.flags = {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};
    plan = planSeccomp(s);
    REQUIRE(plan);
    CHECK(plan->flagWaitKillable);
    if (seccomp_arch_resolve_name("loongarch64") == 0) CHECK(plan->architectures == std::vector<uint32_t>{SCMP_ARCH_X86_64});
}

TEST_CASE("errors name the field", "[seccomp]") {
    CHECK(planError(allowBy({call({"read"}, "SCMP_ACT_ALLOW"), call({"mkdir"}, "SCMP_ACT_ERRNO"),
                             call({"rmdir"}, "SCMP_ACT_ERRNO"), call({"chdir"}, "SCMP_ACT_FOO")})) ==
          "linux.seccomp.syscalls[3].action: unknown action \"SCMP_ACT_FOO\"");
    CHECK(planError(allowBy({call({"read"}, "SCMP_ACT_ERRNO", {},
                                  {{0, 1, 0, "SCMP_CMP_EQ"}, {1, 1, 0, "SCMP_CMP_ALMOST"}})})) ==
          "linux.seccomp.syscalls[0].args[1].op: unknown operator \"SCMP_CMP_ALMOST\"");
    CHECK(planError(allowBy({call({"read"}, "SCMP_ACT_ERRNO", {}, {{6, 1, 0, "SCMP_CMP_EQ"}})})) ==
          "linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0-5)");
    CHECK(planError(allowBy({call({"read"}, "SCMP_ACT_KILL", 1u)})) ==
          "linux.seccomp.syscalls[0].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_KILL");
    CHECK(planError(allowBy({call({"read"}, "SCMP_ACT_ERRNO", 70000u)})) ==
          "linux.seccomp.syscalls[0].errnoRet: 70000 is out of range (0-65535)");
    CHECK(planError(allowBy({call({}, "SCMP_ACT_ERRNO")})) == "linux.seccomp.syscalls[0].names: must not be empty");

    Seccomp s = allowBy({});
    s.defaultAction = "ALLOW";
    CHECK(planError(s) == "linux.seccomp.defaultAction: unknown action \"ALLOW\"");
    s.defaultAction = "SCMP_ACT_ALLOW";
    s.defaultErrnoRet = 1u;
    CHECK(planError(s) ==
          "linux.seccomp.defaultErrnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW");
    s.defaultErrnoRet.reset();
    s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"};
    CHECK(planError(s) == "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_Z80\"");
    s.architectures.clear();
    s.flags = {"SECCOMP_FILTER_FLAG_FAST"};
    CHECK(planError(s) == "linux.seccomp.flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_FAST\"");
    s.flags.clear();

    std::string notify = planError(allowBy({call({"mount"}, "SCMP_ACT_NOTIFY")}));
    CHECK(notify.rfind("linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported", 0) == 0);
    CHECK(notify.find("no seccomp listener support yet") != std::string::npos);
    s.listenerPath = "/run/agent.sock";
    CHECK(planError(s) == "linux.seccomp.listenerPath: hull has no seccomp listener support yet");
}

TEST_CASE("compiled programs are whole sock_filter arrays", "[seccomp]") {
    auto plan = planSeccomp(allowBy({call({"mkdir"}, "SCMP_ACT_ERRNO", 38u)}));
    REQUIRE(plan);
    auto bpf = compileSeccomp(*plan);
    REQUIRE(bpf);
    REQUIRE(bpf->size() >= 4 * sizeof(sock_filter));
    CHECK(bpf->size() % sizeof(sock_filter) == 0);
    // The last instruction of a libseccomp program is a return.
    sock_filter last;
    std::memcpy(&last, bpf->data() + bpf->size() - sizeof last, sizeof last);
    CHECK(BPF_CLASS(last.code) == BPF_RET);

    SeccompPlan empty;
    CHECK_FALSE(loadSeccomp("", false, empty));
    CHECK_FALSE(loadSeccomp("abc", false, empty));
}

TEST_CASE("a loaded filter returns the configured errno and shows in /proc", "[root][seccomp]") {
    REQUIRE_ROOT();
    auto plan = planSeccomp(allowBy({
        call({"mkdir"}, "SCMP_ACT_ERRNO", 38u),
        call({"chdir"}, "SCMP_ACT_ERRNO", uint32_t(EACCES)),
        // Same index twice: either value is refused.
        call({"getpriority"}, "SCMP_ACT_ERRNO", uint32_t(EPERM),
             {{0, PRIO_PGRP, 0, "SCMP_CMP_EQ"}, {0, PRIO_USER, 0, "SCMP_CMP_EQ"}}),
        // Distinct indices: both must match.
        call({"setpriority"}, "SCMP_ACT_ERRNO", uint32_t(EPERM),
             {{0, PRIO_PROCESS, 0, "SCMP_CMP_EQ"}, {2, 5, 0, "SCMP_CMP_EQ"}}),
        call({"not_a_syscall"}, "SCMP_ACT_KILL"),
    }));
    REQUIRE(plan);
    auto bpf = compileSeccomp(*plan);
    REQUIRE(bpf);

    std::string report = inChild([&]() -> std::string {
        auto loaded = loadSeccomp(*bpf, true, *plan);
        if (!loaded) return "load: " + loaded.error().message();
        std::string r;
        r += "mkdir=" + errnoOf(::syscall(SYS_mkdir, "/tmp/hull-seccomp-never", 0700)) + "\n";
        r += "chdir=" + errnoOf(::syscall(SYS_chdir, "/")) + "\n";
        r += "prio-process=" + errnoOf(::syscall(SYS_getpriority, PRIO_PROCESS, 0)) + "\n";
        r += "prio-pgrp=" + errnoOf(::syscall(SYS_getpriority, PRIO_PGRP, 0)) + "\n";
        r += "prio-user=" + errnoOf(::syscall(SYS_getpriority, PRIO_USER, 0)) + "\n";
        r += "setprio-5=" + errnoOf(::syscall(SYS_setpriority, PRIO_PROCESS, 0, 5)) + "\n";
        r += "setprio-6=" + errnoOf(::syscall(SYS_setpriority, PRIO_PROCESS, 0, 6)) + "\n";
        r += statusLine("Seccomp") + "\n" + statusLine("NoNewPrivs") + "\n";
        return r;
    });
    CHECK(report ==
          "mkdir=38\nchdir=13\nprio-process=ok\nprio-pgrp=1\nprio-user=1\nsetprio-5=1\nsetprio-6=ok\n"
          "Seccomp:\t2\nNoNewPrivs:\t1\n");
}

TEST_CASE("without no_new_privs, root loads the filter with CAP_SYS_ADMIN, LOG flag accepted", "[root][seccomp]") {
    REQUIRE_ROOT();
    Seccomp s = allowBy({call({"mkdir"}, "SCMP_ACT_ERRNO", 38u)});
    s.flags = {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"};
    auto plan = planSeccomp(s);
    REQUIRE(plan);
    auto bpf = compileSeccomp(*plan);
    REQUIRE(bpf);
    std::string report = inChild([&]() -> std::string {
        auto loaded = loadSeccomp(*bpf, false, *plan);
        if (!loaded) return "load: " + loaded.error().message();
        return "mkdir=" + errnoOf(::syscall(SYS_mkdir, "/tmp/hull-seccomp-never", 0700)) + "\n" +
               statusLine("Seccomp") + "\n" + statusLine("NoNewPrivs") + "\n";
    });
    CHECK(report == "mkdir=38\nSeccomp:\t2\nNoNewPrivs:\t0\n");
}

TEST_CASE("the default profile blocks its groups and namespace flags on the real kernel", "[root][seccomp]") {
    REQUIRE_ROOT();
    auto plan = planSeccomp(defaultSeccomp());
    REQUIRE(plan);
    auto bpf = compileSeccomp(*plan);
    REQUIRE(bpf);
    std::string report = inChild([&]() -> std::string {
        auto loaded = loadSeccomp(*bpf, true, *plan);
        if (!loaded) return "load: " + loaded.error().message();
        std::string r;
        r += "unshare=" + errnoOf(::syscall(SYS_unshare, CLONE_NEWUSER)) + "\n";
        r += "clone3=" + errnoOf(::syscall(SYS_clone3, nullptr, 0)) + "\n";
        r += "clone-newnet=" + errnoOf(::syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0)) + "\n";
        r += "keyctl=" + errnoOf(::syscall(SYS_keyctl, 0, 0, 0, 0, 0)) + "\n";
        r += "mount=" + errnoOf(::syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, nullptr)) + "\n";
        r += "personality-aslr=" + errnoOf(::syscall(SYS_personality, ADDR_NO_RANDOMIZE)) + "\n";
        r += "personality-linux=" + errnoOf(::syscall(SYS_personality, PER_LINUX)) + "\n";
        // A plain fork (clone without namespace flags) still works.
        pid_t pid = ::fork();
        if (pid == 0) ::_exit(7);
        int status = 0;
        if (pid > 0) ::waitpid(pid, &status, 0);
        r += "fork=" + std::string(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 7 ? "ok" : "failed") + "\n";
        r += "getpid=" + errnoOf(::syscall(SYS_getpid)) + "\n";
        return r;
    });
    CHECK(report ==
          "unshare=1\nclone3=38\nclone-newnet=1\nkeyctl=1\nmount=1\npersonality-aslr=1\npersonality-linux=ok\n"
          "fork=ok\ngetpid=ok\n");
}

namespace {

// In a child: confine it with PROFILE, run BODY; the child's exit status (BODY's result, 100+ on a failed load).
int confinedChild(hull::runtime::DaemonProfile profile, const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid == 0) {
        if (!hull::runtime::confineDaemon(profile)) ::_exit(100);
        ::_exit(body());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("the master's own filter: files, sockets and threads work, exec, fork, mount and namespaces fail with EPERM", "[seccomp]") {
    hull::test::TempDir dir("hull-confine");
    const std::string file = dir.path() + "/f";
    // Each check is a bit of the exit status: 0 is all of them as they should be.
    int r = confinedChild(hull::runtime::DaemonProfile::Master, [&] {
        int bad = 0;
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) bad |= 1;
        ::close(s);
        int f = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (f < 0 || ::write(f, "x", 1) != 1) bad |= 2;
        ::close(f);
        bool ran = false;
        std::thread([&] { ran = true; }).join();
        if (!ran) bad |= 4;
        errno = 0;
        // (Under AddressSanitizer the filter lets clone make processes: LeakSanitizer's tracer.)
        pid_t child = hull::test::kAddressSanitizer ? -1 : ::fork();
        if (child == 0) ::_exit(0);
        if (!hull::test::kAddressSanitizer && (child >= 0 || errno != EPERM)) bad |= 8;
        char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
        if (::execv("/bin/true", argv) == 0 || errno != EPERM) bad |= 16;
        if (::syscall(SYS_unshare, CLONE_NEWNS) == 0 || errno != EPERM) bad |= 32;
        if (::syscall(SYS_mount, "none", "/", nullptr, 0, nullptr) == 0 || errno != EPERM) bad |= 64;
        return bad;
    });
    CHECK(r == 0);
    CHECK(hull::test::readFileOr(file) == "x");
}

TEST_CASE("the node agent's own filter refuses host-wide calls and leaves fork, exec and namespaces alone", "[root][seccomp]") {
    REQUIRE_ROOT();
    int r = confinedChild(hull::runtime::DaemonProfile::Agent, [] {
        int bad = 0;
        // Unfiltered as root: ENOENT. Filtered: EPERM before the kernel looks.
        if (::syscall(SYS_swapoff, "/nonexistent-hull-swap") == 0 || errno != EPERM) bad |= 1;
        if (::syscall(SYS_init_module, nullptr, 0, "") == 0 || errno != EPERM) bad |= 2;
        pid_t child = ::fork();
        if (child == 0) {
            char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
            ::execv("/bin/true", argv);
            ::_exit(127);
        }
        int status = 0;
        if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) bad |= 4;
        if (::syscall(SYS_unshare, CLONE_NEWUTS) != 0) bad |= 8;
        return bad;
    });
    CHECK(r == 0);
}
