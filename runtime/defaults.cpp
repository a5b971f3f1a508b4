#include "runtime/defaults.hpp"

#include <sched.h>
#include <sys/personality.h>
#include <unistd.h>

#include <cerrno>

namespace hull::runtime {

// hull's default seccomp profile is a deny list over an allow-by-default filter.
// Every group says why it is refused, so a reader can judge a request to lift
// one. The capability set already stops most of these calls; the filter is the
// second wall, and it also shrinks the kernel code a container can reach at all.
const std::vector<BlockedGroup>& blockedSyscallTable() {
    static const std::vector<BlockedGroup> table = {
        {"kernel modules",
         "loading or removing code in the one kernel every container shares is a host takeover",
         {"init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module"},
         EPERM},
        {"kexec",
         "loads and boots a new kernel under the host and every other container",
         {"kexec_load", "kexec_file_load"},
         EPERM},
        {"reboot",
         "halts or restarts the host; a container stops through its runtime, not reboot(2)",
         {"reboot"},
         EPERM},
        {"swap",
         "swap devices are host-wide: turning one off can exhaust host memory, turning one on can expose it",
         {"swapon", "swapoff"},
         EPERM},
        {"clock setting",
         "the realtime clock is not namespaced (time namespaces only offset monotonic and boottime), "
         "so setting it sets the host's clock. adjtimex and clock_adjtime stay allowed: glibc's "
         "ntp_gettime reads through them, and the kernel wants CAP_SYS_TIME for any change",
         {"settimeofday", "stime", "clock_settime", "clock_settime64"},
         EPERM},
        {"kernel keyring",
         "keyrings are not namespaced: keys and key quotas are shared with the host and other containers",
         {"add_key", "keyctl", "request_key"},
         EPERM},
        {"bpf and perf",
         "eBPF programs run inside the kernel and perf events watch the whole machine; both have "
         "leaked kernel memory and addresses",
         {"bpf", "perf_event_open"},
         EPERM},
        {"userfaultfd",
         "lets user space pause kernel page-fault handling at will, the usual way exploits win "
         "kernel race conditions",
         {"userfaultfd"},
         EPERM},
        {"file handles",
         "a file handle opens an inode by number, bypassing the path walk and so the container's "
         "root: the 2014 'shocker' breakout",
         {"open_by_handle_at", "name_to_handle_at"},
         EPERM},
        {"process accounting",
         "switches host-wide accounting on and writes its records to a file of the caller's choosing",
         {"acct"},
         EPERM},
        {"disk quotas",
         "quotas are properties of the host's file systems, not of a container",
         {"quotactl", "quotactl_fd"},
         EPERM},
        {"obsolete interfaces",
         "old kernel interfaces no current program needs (uselib, nfsservctl, _sysctl, sysfs(2), "
         "ustat, vm86...); rarely exercised code is where old bugs live",
         {"uselib", "nfsservctl", "lookup_dcookie", "_sysctl", "sysfs", "ustat", "vm86", "vm86old",
          "afs_syscall", "tuxcall", "security", "vserver", "putpmsg", "getpmsg"},
         EPERM},
        {"raw I/O",
         "I/O port and PCI configuration access talk to hardware directly, past every kernel check",
         {"iopl", "ioperm", "pciconfig_read", "pciconfig_write", "pciconfig_iobase"},
         EPERM},
        {"kernel log",
         "the kernel log is host-wide: reading it leaks kernel addresses and host events, clearing it "
         "hides them",
         {"syslog"},
         EPERM},
        {"mounts",
         "hull builds the container's mount tree; remounting or unmounting could uncover the masked "
         "and read-only paths, and the new mount API reaches the same code",
         {"mount", "umount", "umount2", "pivot_root", "fsopen", "fsmount", "fsconfig", "fspick",
          "move_mount", "open_tree", "mount_setattr"},
         EPERM},
        {"namespaces",
         "a new namespace (above all a user namespace) opens kernel code normally reserved to root; "
         "joining one leaves the container. clone is checked by its flags below",
         {"unshare", "setns"},
         EPERM},
        {"NUMA memory policy",
         "memory placement is the host's decision, and migrate_pages/move_pages act on other "
         "processes' memory",
         {"mbind", "set_mempolicy", "set_mempolicy_home_node", "move_pages", "migrate_pages"},
         EPERM},
        {"io_uring",
         "a large, fast-changing attack surface whose operations run in the kernel without passing "
         "through this filter",
         {"io_uring_setup", "io_uring_enter", "io_uring_register"},
         EPERM},
        // kcmp: only checkpoint/restore tools need it, and those need capabilities
        // we do not grant anyway; refusing it costs nothing.
        {"kcmp",
         "compares kernel objects of two processes, which orders kernel pointers; only "
         "checkpoint/restore needs it",
         {"kcmp"},
         EPERM},
        {"clone3",
         "clone3 passes its flags in memory, which seccomp cannot read. ENOSYS (not EPERM) makes "
         "libc fall back to clone, whose flags the argument rules can check",
         {"clone3"},
         ENOSYS},
    };
    return table;
}

namespace {

// Rules on a syscall's arguments, beyond the table. Each bit is one rule
// ("arg & bit == bit"): seccomp compares an argument against one value, and
// libseccomp takes one comparison per argument in a rule, so "any of these bits"
// is a set of rules, ORed.
struct FlagRule {
    const char* syscall;
    unsigned index;  // the argument holding the flags
    std::vector<uint64_t> bits;
};

const std::vector<FlagRule>& flagRules() {
    static const std::vector<FlagRule> rules = {
        // clone(2) creating namespaces: the same reason as unshare above. Flags
        // are argument 0 on x86 and arm (s390 swaps the first two; not in our
        // architecture list). CLONE_NEWTIME cannot be asked of clone at all.
        {"clone",
         0,
         {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP}},
        // personality(2) switching off address randomisation or making data
        // executable weakens the defences kernel exploits have to get past. The
        // query personality(0xffffffff) sets every bit and so is refused too;
        // callers then see -1 and carry on.
        {"personality", 0, {ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT}},
    };
    return rules;
}

json::Value seccompJson(const Seccomp& s) {
    json::Value out = json::Value::object();
    out.set("defaultAction", s.defaultAction);
    if (s.defaultErrnoRet) out.set("defaultErrnoRet", *s.defaultErrnoRet);
    json::Value archs = json::Value::array();
    for (auto& a : s.architectures) archs.push(a);
    out.set("architectures", std::move(archs));
    if (!s.flags.empty()) {
        json::Value flags = json::Value::array();
        for (auto& f : s.flags) flags.push(f);
        out.set("flags", std::move(flags));
    }
    json::Value syscalls = json::Value::array();
    for (auto& sc : s.syscalls) {
        json::Value entry = json::Value::object();
        json::Value names = json::Value::array();
        for (auto& n : sc.names) names.push(n);
        entry.set("names", std::move(names));
        entry.set("action", sc.action);
        if (sc.errnoRet) entry.set("errnoRet", *sc.errnoRet);
        if (!sc.args.empty()) {
            json::Value args = json::Value::array();
            for (auto& a : sc.args) {
                json::Value arg = json::Value::object();
                arg.set("index", a.index);
                arg.set("value", a.value);
                arg.set("valueTwo", a.valueTwo);
                arg.set("op", a.op);
                args.push(std::move(arg));
            }
            entry.set("args", std::move(args));
        }
        syscalls.push(std::move(entry));
    }
    out.set("syscalls", std::move(syscalls));
    return out;
}

using json::stringArray;

json::Value mountEntry(const char* destination, const char* type, const char* source, std::vector<std::string> options) {
    json::Value m = json::Value::object();
    m.set("destination", destination);
    m.set("type", type);
    m.set("source", source);
    if (!options.empty()) m.set("options", stringArray(options));
    return m;
}

json::Value idMapping(uint32_t hostID) {
    json::Value m = json::Value::object();
    m.set("containerID", 0);
    m.set("hostID", hostID);
    m.set("size", 1);
    return m;
}

}  // namespace

const std::vector<std::string>& defaultCapabilities() {
    // Docker's default set: enough for package managers, servers binding low
    // ports and images that drop to another user, and nothing that reaches past
    // the container's own files and processes.
    static const std::vector<std::string> caps = {
        "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",  "CAP_FOWNER",           "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID",      "CAP_SETUID",  "CAP_SETFCAP",          "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    };
    return caps;
}

Seccomp defaultSeccomp() {
    Seccomp s;
    s.defaultAction = "SCMP_ACT_ALLOW";
    // The native architecture plus the compat ones its kernel can run: a 32-bit
    // binary must meet the same filter.
#if defined(__x86_64__)
    s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
    s.architectures = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#elif defined(__i386__)
    s.architectures = {"SCMP_ARCH_X86"};
#elif defined(__arm__)
    s.architectures = {"SCMP_ARCH_ARM"};
#elif defined(__riscv) && __riscv_xlen == 64
    s.architectures = {"SCMP_ARCH_RISCV64"};
#endif
    for (auto& g : blockedSyscallTable()) {
        SeccompSyscall sc;
        sc.names.assign(g.syscalls.begin(), g.syscalls.end());
        sc.action = "SCMP_ACT_ERRNO";
        sc.errnoRet = uint32_t(g.errnoRet);
        s.syscalls.push_back(std::move(sc));
    }
    // One entry per bit, not one entry with several index-0 args: runtimes agree
    // on the meaning of the former, while the latter relies on runc's convention
    // of ORing comparisons that share an index.
    for (auto& r : flagRules()) {
        for (uint64_t bit : r.bits) {
            SeccompSyscall sc;
            sc.names = {r.syscall};
            sc.action = "SCMP_ACT_ERRNO";
            sc.errnoRet = EPERM;
            sc.args.push_back(SeccompArg{r.index, bit, bit, "SCMP_CMP_MASKED_EQ"});
            s.syscalls.push_back(std::move(sc));
        }
    }
    return s;
}

json::Value defaultConfig(bool rootless) {
    using json::Value;

    Value process = Value::object();
    process.set("terminal", true);
    Value user = Value::object();
    user.set("uid", 0);
    user.set("gid", 0);
    process.set("user", std::move(user));
    process.set("args", stringArray({"sh"}));
    process.set("env", stringArray({"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}));
    process.set("cwd", "/");
    // Bounding, effective and permitted only. No ambient set: it would need the
    // inheritable set too, and root in the container does not need either.
    Value caps = Value::object();
    for (const char* set : {"bounding", "effective", "permitted"}) caps.set(set, stringArray(defaultCapabilities()));
    process.set("capabilities", std::move(caps));
    Value nofile = Value::object();
    nofile.set("type", "RLIMIT_NOFILE");
    nofile.set("hard", 1024);
    nofile.set("soft", 1024);
    Value rlimits = Value::array();
    rlimits.push(std::move(nofile));
    process.set("rlimits", std::move(rlimits));
    process.set("noNewPrivileges", true);

    Value root = Value::object();
    root.set("path", "rootfs");
    root.set("readonly", true);

    Value mounts = Value::array();
    mounts.push(mountEntry("/proc", "proc", "proc", {}));
    mounts.push(mountEntry("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
    // gid=5 is the tty group; without root a user namespace maps only our own gid.
    std::vector<std::string> ptsOptions = {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"};
    if (!rootless) ptsOptions.push_back("gid=5");
    mounts.push(mountEntry("/dev/pts", "devpts", "devpts", ptsOptions));
    mounts.push(mountEntry("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
    mounts.push(mountEntry("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
    // A fresh sysfs needs a network namespace owned by our user namespace; a
    // rootless container shares the host's, so it gets a read-only bind instead.
    if (rootless)
        mounts.push(mountEntry("/sys", "none", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro"}));
    else
        mounts.push(mountEntry("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
    mounts.push(mountEntry("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}));

    Value linuxObj = Value::object();
    if (rootless) {
        Value uids = Value::array(), gids = Value::array();
        uids.push(idMapping(uint32_t(::getuid())));
        gids.push(idMapping(uint32_t(::getgid())));
        linuxObj.set("uidMappings", std::move(uids));
        linuxObj.set("gidMappings", std::move(gids));
    } else {
        // Deny all devices by default; the runtime adds the standard ones.
        Value deny = Value::object();
        deny.set("allow", false);
        deny.set("access", "rwm");
        Value devices = Value::array();
        devices.push(std::move(deny));
        Value resources = Value::object();
        resources.set("devices", std::move(devices));
        linuxObj.set("resources", std::move(resources));
    }
    Value namespaces = Value::array();
    // Rootless: no network namespace of our own (nothing could configure it
    // without privileges), and a user namespace that maps us to root.
    std::vector<const char*> nsTypes = {"pid", "network", "ipc", "uts", "mount", "cgroup"};
    if (rootless) {
        nsTypes.erase(nsTypes.begin() + 1);
        nsTypes.push_back("user");
    }
    for (const char* t : nsTypes) {
        Value ns = Value::object();
        ns.set("type", t);
        namespaces.push(std::move(ns));
    }
    linuxObj.set("namespaces", std::move(namespaces));
    linuxObj.set("seccomp", seccompJson(defaultSeccomp()));
    // Host information a container should not read (masked with an empty file
    // or directory) or write (remounted read-only).
    linuxObj.set("maskedPaths",
              stringArray({"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                           "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                           "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"}));
    linuxObj.set("readonlyPaths",
              stringArray({"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}));

    Value config = Value::object();
    config.set("ociVersion", "1.2.0");
    config.set("process", std::move(process));
    config.set("root", std::move(root));
    config.set("hostname", "hull");
    config.set("mounts", std::move(mounts));
    config.set("linux", std::move(linuxObj));
    return config;
}

}  // namespace hull::runtime
