#include "runtime/seccomp.hpp"

#include "runtime/runtime.hpp"

#include <linux/filter.h>
#include <sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <cassert>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

#include "sys/fs.hpp"
#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

namespace hull::runtime {
namespace {

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string hex(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%x", v);
    return buf;
}

// ---- actions ---------------------------------------------------------------

enum class ActionKind { Plain, WithData, Notify };

struct ActionName {
    std::string_view name;
    uint32_t base;  // for WithData: the action with data 0
    ActionKind kind;
};

// config-linux.md "Seccomp": the action names a runtime must accept.
constexpr std::array<ActionName, 9> kActions = {{
    {"SCMP_ACT_KILL", SCMP_ACT_KILL, ActionKind::Plain},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, ActionKind::Plain},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, ActionKind::Plain},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP, ActionKind::Plain},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), ActionKind::WithData},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), ActionKind::WithData},
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, ActionKind::Plain},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG, ActionKind::Plain},
    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY, ActionKind::Notify},
}};

// `errnoRet` applies to ERRNO and TRACE (the spec: "If not specified then its
// default value is EPERM"); any other action given one is a config error.
Result<uint32_t> resolveAction(const std::string& field, const std::string& name,
                               const std::string& errnoField, const std::optional<uint32_t>& errnoRet) {
    auto it = std::find_if(kActions.begin(), kActions.end(), [&](const ActionName& a) { return a.name == name; });
    if (it == kActions.end()) return failInvalid(field + ": unknown action " + quoted(name));
    switch (it->kind) {
    case ActionKind::Notify:
        return failInvalid(field + ": SCMP_ACT_NOTIFY is not supported: hull has no seccomp listener "
                                   "support yet (linux.seccomp.listenerPath)");
    case ActionKind::Plain:
        if (errnoRet)
            return failInvalid(errnoField + ": only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not " + name);
        return it->base;
    case ActionKind::WithData: {
        uint32_t data = errnoRet.value_or(EPERM);
        if (data > 0xffff) return failInvalid(errnoField + ": " + std::to_string(data) + " is out of range (0-65535)");
        return it->base | data;
    }
    }
    return failInvalid(field + ": unknown action " + quoted(name));
}

// ---- operators -------------------------------------------------------------

struct OperatorName {
    std::string_view name;
    scmp_compare op;
};

constexpr std::array<OperatorName, 7> kOperators = {{
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
}};

// A syscall has at most six arguments.
constexpr unsigned kMaxArgs = 6;

Result<SeccompArgCmp> resolveArg(const std::string& field, const SeccompArg& a) {
    auto it = std::find_if(kOperators.begin(), kOperators.end(), [&](const OperatorName& o) { return o.name == a.op; });
    if (it == kOperators.end()) return failInvalid(field + ".op: unknown operator " + quoted(a.op));
    if (a.index >= kMaxArgs)
        return failInvalid(field + ".index: " + std::to_string(a.index) + " is out of range (0-5)");
    SeccompArgCmp cmp;
    cmp.index = a.index;
    cmp.op = it->op;
    // For MASKED_EQ the spec's `value` is the mask and `valueTwo` the expected
    // value, the same order libseccomp takes them in (datum_a, datum_b).
    cmp.datumA = a.value;
    cmp.datumB = a.valueTwo;
    return cmp;
}

// ---- architectures ---------------------------------------------------------

// The names the spec lists (plus the newer ones libseccomp 2.6 added). A name in
// this list that this libseccomp does not know is skipped; anything else is a typo.
constexpr std::array<std::string_view, 23> kArchitectures = {
    "SCMP_ARCH_X86",      "SCMP_ARCH_X86_64",    "SCMP_ARCH_X32",       "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",  "SCMP_ARCH_MIPS",      "SCMP_ARCH_MIPS64",    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",   "SCMP_ARCH_MIPSEL64",  "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",    "SCMP_ARCH_PPC64LE",   "SCMP_ARCH_S390",      "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",   "SCMP_ARCH_PARISC64",  "SCMP_ARCH_RISCV64",   "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",     "SCMP_ARCH_SH",        "SCMP_ARCH_SHEB",
};

// libseccomp's own names are the spec's without the prefix, in lower case
// ("SCMP_ARCH_MIPSEL64N32" -> "mipsel64n32"), so its resolver does the mapping
// and newer libseccomp releases need no change here. 0 means unknown.
uint32_t archToken(std::string_view specName) {
    std::string name(specName.substr(std::strlen("SCMP_ARCH_")));
    for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    return seccomp_arch_resolve_name(name.c_str());
}

// ---- flags -----------------------------------------------------------------

Result<void> resolveFlag(const std::string& field, const std::string& flag, SeccompPlan& plan) {
    if (flag == "SECCOMP_FILTER_FLAG_TSYNC") {
        // The filter is loaded in the single-threaded child before exec: there
        // are no other threads to synchronise.
        log::debugf("seccomp: %s ignored: the container process is single-threaded", flag.c_str());
    } else if (flag == "SECCOMP_FILTER_FLAG_LOG") {
        plan.flagLog = true;
    } else if (flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
        plan.flagSpecAllow = true;
    } else if (flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") {
        // Only meaningful with a notify listener (the kernel refuses it without
        // SECCOMP_FILTER_FLAG_NEW_LISTENER), which we refuse anyway.
        plan.flagWaitKillable = true;
        log::debugf("seccomp: %s has no effect without a notify listener", flag.c_str());
    } else {
        return failInvalid(field + ": unknown flag " + quoted(flag));
    }
    return {};
}

// ---- libseccomp context ----------------------------------------------------

struct FilterDeleter {
    void operator()(void* ctx) const { seccomp_release(ctx); }
};
using FilterCtx = std::unique_ptr<void, FilterDeleter>;

Result<std::string> exportBpf(const scmp_filter_ctx ctx) {
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 6)
    size_t len = 0;
    int rc = seccomp_export_bpf_mem(ctx, nullptr, &len);
    if (rc < 0) return failErrno("export filter", -rc);
    std::string out(len, '\0');
    rc = seccomp_export_bpf_mem(ctx, out.data(), &len);
    if (rc < 0) return failErrno("export filter", -rc);
    out.resize(len);
    return out;
#else
    // libseccomp 2.5 exports only to a file descriptor.
    int raw = ::memfd_create("hull-seccomp-bpf", MFD_CLOEXEC);
    if (raw < 0) return failErrno("memfd_create");
    UniqueFd fd(raw);
    int rc = seccomp_export_bpf(ctx, fd.get());
    if (rc < 0) return failErrno("export filter", -rc);
    if (::lseek(fd.get(), 0, SEEK_SET) < 0) return failErrno("rewind exported filter");
    return sys::readFd(fd.get());
#endif
}

}  // namespace

Result<SeccompPlan> planSeccomp(const Seccomp& spec) {
    const std::string base = "linux.seccomp";
    SeccompPlan plan;
    plan.defaultAction =
        TRY(resolveAction(base + ".defaultAction", spec.defaultAction, base + ".defaultErrnoRet", spec.defaultErrnoRet));

    for (size_t i = 0; i < spec.architectures.size(); ++i) {
        const std::string& name = spec.architectures[i];
        std::string field = base + ".architectures[" + std::to_string(i) + "]";
        if (std::find(kArchitectures.begin(), kArchitectures.end(), name) == kArchitectures.end())
            return failInvalid(field + ": unknown architecture " + quoted(name));
        uint32_t token = archToken(name);
        if (token == 0) {
            log::debugf("seccomp: architecture %s unknown to libseccomp %u.%u.%u, skipped", name.c_str(),
                        SCMP_VER_MAJOR, SCMP_VER_MINOR, SCMP_VER_MICRO);
            continue;
        }
        if (std::find(plan.architectures.begin(), plan.architectures.end(), token) == plan.architectures.end())
            plan.architectures.push_back(token);
    }

    for (size_t i = 0; i < spec.flags.size(); ++i)
        TRY(resolveFlag(base + ".flags[" + std::to_string(i) + "]", spec.flags[i], plan));

    if (!spec.listenerPath.empty())
        return failInvalid(base + ".listenerPath: hull has no seccomp listener support yet");

    for (size_t i = 0; i < spec.syscalls.size(); ++i) {
        const SeccompSyscall& sc = spec.syscalls[i];
        std::string field = base + ".syscalls[" + std::to_string(i) + "]";
        uint32_t action = TRY(resolveAction(field + ".action", sc.action, field + ".errnoRet", sc.errnoRet));

        std::vector<SeccompArgCmp> args;
        std::array<unsigned, kMaxArgs> perIndex{};
        for (size_t j = 0; j < sc.args.size(); ++j) {
            args.push_back(TRY(resolveArg(field + ".args[" + std::to_string(j) + "]", sc.args[j])));
            ++perIndex[sc.args[j].index];
        }
        if (sc.names.empty()) return failInvalid(field + ".names: must not be empty");
        // libseccomp rejects a rule with the action it already takes by default.
        if (action == plan.defaultAction) continue;

        // libseccomp takes one comparison per argument in a rule. Like runc, when
        // any index repeats, every comparison becomes a rule of its own (ORed);
        // otherwise the comparisons form one rule (ANDed), as the spec says.
        bool split = std::any_of(perIndex.begin(), perIndex.end(), [](unsigned n) { return n > 1; });

        for (size_t n = 0; n < sc.names.size(); ++n) {
            const std::string& name = sc.names[n];
            int nr = seccomp_syscall_resolve_name(name.c_str());
            if (nr == __NR_SCMP_ERROR) {
                log::debugf("seccomp: %s.names[%zu]: syscall \"%s\" unknown to libseccomp, skipped", field.c_str(),
                            n, name.c_str());
                if (std::find(plan.skipped.begin(), plan.skipped.end(), name) == plan.skipped.end())
                    plan.skipped.push_back(name);
                continue;
            }
            if (split) {
                for (auto& cmp : args) plan.rules.push_back(SeccompRule{name, nr, action, {cmp}});
            } else {
                plan.rules.push_back(SeccompRule{name, nr, action, args});
            }
        }
    }
    return plan;
}

namespace {

/// What the program depends on, as bytes: the default action, the
/// architectures and the rules (load-time flags are not part of it).
std::string programKey(const SeccompPlan& plan) {
    std::string key;
    auto put = [&](const auto& v) { key.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put(plan.defaultAction);
    put(plan.architectures.size());
    for (uint32_t a : plan.architectures) put(a);
    for (const auto& r : plan.rules) {
        put(r.syscall);
        put(r.action);
        put(r.args.size());
        for (const auto& a : r.args) {
            put(a.index);
            put(a.op);
            put(a.datumA);
            put(a.datumB);
        }
    }
    return key;
}

Result<std::string> compileUncached(const SeccompPlan& plan);

}  // namespace

Result<std::string> compileSeccomp(const SeccompPlan& plan) {
    // libseccomp takes milliseconds for a profile of 300 syscalls. A long-lived
    // caller (the node agent) starts the same profile over and over, and creates
    // each container in a fork of itself: one compilation per process serves
    // them all. Only the thread that forks touches the cache.
    static std::mutex mu;
    static std::map<std::string, std::string> cache;
    std::string key = programKey(plan);
    {
        std::lock_guard lock(mu);
        if (auto it = cache.find(key); it != cache.end()) return it->second;
    }
    auto bpf = TRY(compileUncached(plan));
    std::lock_guard lock(mu);
    if (cache.size() >= 16) cache.clear();  // a bound, for a caller that sees many profiles
    cache.emplace(std::move(key), bpf);
    return bpf;
}

namespace {

Result<std::string> compileUncached(const SeccompPlan& plan) {
    FilterCtx ctx(seccomp_init(plan.defaultAction));
    if (!ctx) return fail(Error::plain(EINVAL, "seccomp_init: invalid default action"));
    // We load the program ourselves (loadSeccomp), so load-time attributes (NNP,
    // TSYNC, LOG, SSB) do not matter here; only the program's shape does. A
    // binary tree keeps long deny lists cheap on every syscall.
    if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
        log::debugf("seccomp: binary-tree optimisation unavailable: %s", std::strerror(-rc));

    for (uint32_t arch : plan.architectures) {
        int rc = seccomp_arch_add(ctx.get(), arch);
        if (rc == -EEXIST) continue;  // the native architecture is always there
        if (rc == -EDOM) {
            // libseccomp cannot mix byte orders in one filter; such an arch cannot
            // run here anyway.
            log::debugf("seccomp: architecture 0x%x has another byte order than the native one, skipped", arch);
            continue;
        }
        if (rc < 0) return failErrno("add architecture " + hex(arch), -rc);
    }

    for (auto& rule : plan.rules) {
        std::array<scmp_arg_cmp, kMaxArgs> cmps{};
        assert(rule.args.size() <= kMaxArgs);
        for (size_t i = 0; i < rule.args.size() && i < kMaxArgs; ++i) {
            cmps[i].arg = rule.args[i].index;
            cmps[i].op = static_cast<scmp_compare>(rule.args[i].op);
            cmps[i].datum_a = rule.args[i].datumA;
            cmps[i].datum_b = rule.args[i].datumB;
        }
        int rc = seccomp_rule_add_array(ctx.get(), rule.action, rule.syscall, unsigned(rule.args.size()), cmps.data());
        if (rc < 0) return failErrno("add rule for \"" + rule.name + "\"", -rc);
    }
    return exportBpf(ctx.get());
}

}  // namespace

Result<void> loadSeccomp(const std::string& bpf, bool noNewPrivileges, const SeccompPlan& plan) {
    // Runs between clone and exec: no allocation on the success path.
    if (bpf.empty() || bpf.size() % sizeof(sock_filter) != 0 || bpf.size() / sizeof(sock_filter) > 0xffff)
        return fail(Error::plain(EINVAL, "malformed BPF program"));
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(bpf.size() / sizeof(sock_filter));
    prog.filter = reinterpret_cast<sock_filter*>(const_cast<char*>(bpf.data()));

    if (noNewPrivileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return failErrno("set no_new_privs");
    unsigned long flags = 0;
    if (plan.flagLog) flags |= SECCOMP_FILTER_FLAG_LOG;
    if (plan.flagSpecAllow) flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) < 0) return failErrno("load filter");
    return {};
}

// ---- hull's own daemons (runtime.hpp, confineDaemon) -------------------------------

namespace {

// Each group as a network service uses it; all of them are the master's allowlist.
const char* const kMasterAllowed[] = {
    // descriptors and files
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "lseek",
    "close", "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl", "fsync", "fdatasync", "ftruncate", "fallocate",
    "flock", "open", "openat", "openat2", "creat", "stat", "fstat", "lstat", "newfstatat", "statx", "access",
    "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "mkdir", "mkdirat", "rmdir",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod",
    "fchmod", "fchmodat", "utimensat", "statfs", "fstatfs", "getcwd", "chdir", "fchdir", "umask", "truncate",
    "fadvise64", "sendfile", "copy_file_range", "memfd_create",
    // memory
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "msync", "mincore", "membarrier", "mlock", "munlock",
    // sockets
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
    "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    // waiting
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll",
    "select", "pselect6", "eventfd", "eventfd2", "timerfd_create", "timerfd_settime", "timerfd_gettime", "pipe",
    "pipe2", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    // threads (clone itself below: threads only)
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "set_tid_address", "rseq", "gettid", "tgkill",
    "tkill", "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_getscheduler", "exit",
    "exit_group", "restart_syscall",
    // time and signals
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "rt_sigaction",
    "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigpending", "rt_sigsuspend", "sigaltstack", "kill",
    "alarm", "getitimer", "setitimer",
    // about itself
    "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "getpgrp",
    "getpgid", "getsid", "uname", "sysinfo", "getrlimit", "prlimit64", "getrusage", "times", "prctl", "arch_prctl",
    "getrandom", "capget", "getcpu", "wait4", "waitid",
};

// Host-wide calls: the agent and every container it starts are refused them.
const char* const kAgentRefused[] = {
    "init_module", "finit_module", "delete_module", "create_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime", "iopl",
    "ioperm", "syslog", "vhangup", "quotactl", "quotactl_fd", "lookup_dcookie", "nfsservctl", "uselib", "_sysctl",
};

// LeakSanitizer checks a process at its exit from a tracer it clones (no CLONE_THREAD) and
// attaches with ptrace: in the sanitized build (scripts/build --sanitize) the master may do
// both, or its exit would end in LeakSanitizer's fatal error instead of a leak check.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kLeakSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kLeakSanitizer = true;
#else
constexpr bool kLeakSanitizer = false;
#endif
#else
constexpr bool kLeakSanitizer = false;
#endif

Seccomp daemonSpec(DaemonProfile p) {
    Seccomp s;
    // The native architecture only: a call made through another (int 0x80, x32) meets
    // libseccomp's bad-architecture action, which kills.
    if (p == DaemonProfile::Master) {
        s.defaultAction = "SCMP_ACT_ERRNO";
        s.defaultErrnoRet = EPERM;
        SeccompSyscall allow;
        allow.action = "SCMP_ACT_ALLOW";
        for (const char* n : kMasterAllowed) allow.names.push_back(n);
        if (kLeakSanitizer) allow.names.push_back("ptrace");
        s.syscalls.push_back(allow);
        // Threads, never processes: clone only with CLONE_THREAD. clone3's flags are in
        // memory a filter cannot read: ENOSYS makes glibc fall back to clone.
        SeccompSyscall thread;
        thread.names = {"clone"};
        thread.action = "SCMP_ACT_ALLOW";
        if (!kLeakSanitizer) thread.args.push_back({0, CLONE_THREAD, CLONE_THREAD, "SCMP_CMP_MASKED_EQ"});
        s.syscalls.push_back(thread);
        SeccompSyscall clone3;
        clone3.names = {"clone3"};
        clone3.action = "SCMP_ACT_ERRNO";
        clone3.errnoRet = ENOSYS;
        s.syscalls.push_back(clone3);
    } else {
        s.defaultAction = "SCMP_ACT_ALLOW";
        SeccompSyscall refuse;
        refuse.action = "SCMP_ACT_ERRNO";
        refuse.errnoRet = EPERM;
        for (const char* n : kAgentRefused) refuse.names.push_back(n);
        s.syscalls.push_back(refuse);
    }
    return s;
}

}  // namespace

Result<void> confineDaemon(DaemonProfile profile) {
    const char* what = profile == DaemonProfile::Master ? "master" : "node agent";
    auto plan = TRY_CTX(std::string("seccomp filter of the ") + what, planSeccomp(daemonSpec(profile)));
    auto bpf = TRY_CTX(std::string("seccomp filter of the ") + what, compileSeccomp(plan));
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(bpf.size() / sizeof(sock_filter));
    prog.filter = reinterpret_cast<sock_filter*>(bpf.data());
    if (profile == DaemonProfile::Master && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return failErrno("set no_new_privs");
    // Every thread at once: a library may have started one already.
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
        return failErrno(std::string("load the seccomp filter of the ") + what);
    return {};
}

}  // namespace hull::runtime
