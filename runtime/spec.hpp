#pragma once
// The OCI runtime configuration (config.json), runtime-spec 1.x: config.md and
// config-linux.md, the fields a Linux runtime acts on. Parsing lives in
// spec_parse.cpp; this header is plain data.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cgroups/resources.hpp"
#include "sys/error.hpp"

namespace hull::runtime {

struct IdMapping {
    uint32_t containerID = 0, hostID = 0, size = 0;
};

struct User {
    uint32_t uid = 0, gid = 0;
    std::optional<uint32_t> umask;
    std::vector<uint32_t> additionalGids;
    std::string username;  // informational on Linux
};

struct Rlimit {
    std::string type;  // "RLIMIT_NOFILE"
    int resource = 0;  // RLIMIT_NOFILE, resolved by the parser
    uint64_t soft = 0, hard = 0;
};

struct Capabilities {
    // Names as written ("CAP_NET_ADMIN"); validated by the parser.
    std::vector<std::string> bounding, effective, inheritable, permitted, ambient;
};

struct IoPriority {
    std::string ioClass;  // IOPRIO_CLASS_RT | IOPRIO_CLASS_BE | IOPRIO_CLASS_IDLE
    int priority = 0;
};

struct Scheduler {
    std::string policy;  // SCHED_OTHER, SCHED_FIFO, ...
    int nice = 0, priority = 0;
    std::vector<std::string> flags;
    uint64_t runtime = 0, deadline = 0, period = 0;
};

struct ConsoleSize {
    uint32_t height = 0, width = 0;
};

struct Process {
    bool terminal = false;
    std::optional<ConsoleSize> consoleSize;
    User user;
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string cwd = "/";
    std::optional<Capabilities> capabilities;
    std::vector<Rlimit> rlimits;
    bool noNewPrivileges = false;
    std::optional<int> oomScoreAdj;
    std::string apparmorProfile, selinuxLabel;  // parsed, not enforced (no LSM support)
    std::optional<IoPriority> ioPriority;
    std::optional<Scheduler> scheduler;
};

struct Root {
    std::string path;  // as written; relative to the bundle when not absolute
    bool readonly = false;
};

struct Mount {
    std::string destination, type, source;
    std::vector<std::string> options;
    std::vector<IdMapping> uidMappings, gidMappings;
};

struct Hook {
    std::string path;
    std::vector<std::string> args, env;
    std::optional<int> timeout;  // seconds, > 0
};

struct Hooks {
    std::vector<Hook> prestart, createRuntime, createContainer, startContainer, poststart, poststop;
};

enum class NamespaceType { Pid, Network, Mount, Ipc, Uts, User, Cgroup, Time };
/// "pid", "network", ... as in config-linux.md.
const char* namespaceName(NamespaceType t);

struct Namespace {
    NamespaceType type{};
    std::string path;  // empty: create a new one
};

struct Device {
    std::string path;
    char type = 'c';  // 'c', 'b', 'u' (= 'c'), 'p'
    int64_t major = 0, minor = 0;
    std::optional<uint32_t> fileMode, uid, gid;
};

struct SeccompArg {
    uint32_t index = 0;
    uint64_t value = 0, valueTwo = 0;
    std::string op;  // SCMP_CMP_EQ ...
};

struct SeccompSyscall {
    std::vector<std::string> names;
    std::string action;  // SCMP_ACT_ERRNO ...
    std::optional<uint32_t> errnoRet;
    std::vector<SeccompArg> args;
};

struct Seccomp {
    std::string defaultAction;
    std::optional<uint32_t> defaultErrnoRet;
    std::vector<std::string> architectures;  // SCMP_ARCH_X86_64 ...
    std::vector<std::string> flags;          // SECCOMP_FILTER_FLAG_LOG ...
    std::string listenerPath, listenerMetadata;
    std::vector<SeccompSyscall> syscalls;
};

struct Personality {
    std::string domain;  // LINUX | LINUX32
    std::vector<std::string> flags;
};

struct TimeOffset {
    int64_t secs = 0;
    uint32_t nanosecs = 0;
};

struct Linux {
    std::vector<Namespace> namespaces;
    std::vector<IdMapping> uidMappings, gidMappings;
    std::map<std::string, TimeOffset> timeOffsets;  // "monotonic", "boottime"
    std::vector<Device> devices;
    std::string cgroupsPath;
    std::optional<cgroups::Resources> resources;
    std::string rootfsPropagation;  // "", shared, slave, private, unbindable
    std::optional<Seccomp> seccomp;
    std::map<std::string, std::string> sysctl;
    std::vector<std::string> maskedPaths, readonlyPaths;
    std::string mountLabel;
    std::optional<Personality> personality;

    const Namespace* findNamespace(NamespaceType t) const {
        for (auto& n : namespaces)
            if (n.type == t) return &n;
        return nullptr;
    }
};

struct Spec {
    std::string ociVersion;
    Root root;
    std::vector<Mount> mounts;
    std::optional<Process> process;
    std::string hostname, domainname;
    Hooks hooks;
    std::map<std::string, std::string> annotations;
    Linux linux;
};

/// Parse config.json text. Errors name the JSON path of the bad field:
/// "process.user.uid: expected an unsigned integer", "mounts[2].destination: must be absolute".
[[nodiscard]] Result<Spec> parseSpec(std::string_view json);
/// A linux.resources object alone (`update -r`); errors name PATH.field.
[[nodiscard]] Result<cgroups::Resources> parseResources(std::string_view json,
                                                        const std::string& path = "linux.resources");
/// Read and parse BUNDLE/config.json.
[[nodiscard]] Result<Spec> loadSpec(const std::string& bundleDir);

}  // namespace hull::runtime
