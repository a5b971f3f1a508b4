#pragma once
// hull's runtime facade: everything above the runtime (the hull-runc CLI, the
// hull CLI, the node agent) drives containers through this header only.
#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sys/error.hpp"

namespace hull::runtime {

/// The default --root of hull-runc (runtime state, one directory per container).
inline constexpr const char* kDefaultRoot = "/run/hull/runc";

struct CreateOptions {
    std::string id;
    std::string bundle = ".";
    std::string pidFile;
    std::string consoleSocket;
    unsigned preserveFds = 0;
    bool noPivot = false;
    bool keep = false;  // run: keep the stopped container instead of deleting it (runc --keep)
    /// run only: called with the init's pid once it waits to be started (its
    /// namespaces exist): `hull run` attaches the network here. An error aborts
    /// the run and removes the container.
    std::function<Result<void>(pid_t)> beforeStart;
    /// create and run: called with the init's pid as soon as it exists (its
    /// namespaces do), while it still sets itself up: a caller may work on its
    /// network namespace meanwhile.
    std::function<void(pid_t)> onCloned;
};

/// What `state` reports (runtime.md "State"), plus hull's bookkeeping.
struct ContainerState {
    std::string ociVersion, id, status, bundle, rootfs, created, owner;
    pid_t pid = 0;
    std::map<std::string, std::string> annotations;
};

struct ExecOptions {
    std::string processJson;  // --process FILE contents ("" = build from the fields below)
    std::vector<std::string> args, env;
    std::string cwd, user, consoleSocket, pidFile;
    bool tty = false, detach = false, noNewPrivs = false;
    std::vector<std::string> addCaps;
    std::vector<std::string> additionalGids;  // --additional-gids (numbers)
    unsigned preserveFds = 0;
};

class Runtime {
public:
    /// root: the state directory (hull-runc --root).
    explicit Runtime(std::string root = kDefaultRoot);

    /// Set up the container; its process waits for start().
    [[nodiscard]] Result<void> create(const CreateOptions& opts);
    [[nodiscard]] Result<void> start(const std::string& id);
    /// create + start; without detach, wait and return the exit status (128+sig
    /// for a signal), then delete the container.
    [[nodiscard]] Result<int> run(const CreateOptions& opts, bool detach);
    [[nodiscard]] Result<ContainerState> state(const std::string& id);
    [[nodiscard]] Result<std::vector<ContainerState>> list();
    [[nodiscard]] Result<void> kill(const std::string& id, int signal, bool all);
    /// Remove the container: refuses a live one unless force (then SIGKILL).
    [[nodiscard]] Result<void> remove(const std::string& id, bool force);
    [[nodiscard]] Result<std::vector<pid_t>> pids(const std::string& id);
    [[nodiscard]] Result<void> pause(const std::string& id);
    [[nodiscard]] Result<void> resume(const std::string& id);
    /// Change the limits of a live container: RESOURCES_JSON is a linux.resources
    /// object (runc's `update -r`); only the fields it sets are written.
    [[nodiscard]] Result<void> update(const std::string& id, const std::string& resourcesJson);
    /// runc's `events --stats` data object: cpu, memory (with OOM counters), pids, blkio.
    [[nodiscard]] Result<std::string> stats(const std::string& id);
    /// OOM kills counted by the container's cgroup so far (memory.events or oom_control).
    [[nodiscard]] Result<uint64_t> oomKills(const std::string& id);
    /// Run a new process in the container; without detach, its exit status.
    [[nodiscard]] Result<int> exec(const std::string& id, const ExecOptions& opts);

    const std::string& root() const { return root_; }

private:
    std::string root_;
};

/// "KILL", "SIGKILL", "9" -> 9; -1 when unknown.
int parseSignal(const std::string& s);
/// JSON of a state (runtime.md), as `hull-runc state` prints it.
std::string stateJson(const ContainerState& s, bool pretty = true);
/// A container id is [A-Za-z0-9_+.-]+, not "." or "..".
bool validContainerId(const std::string& id);
/// Every capability this kernel's headers name ("CAP_CHOWN", ...), in number
/// order: `hull-runc features`.
std::vector<std::string> capabilityNames();
/// The capabilities a node agent keeps, and why each (README, "Least privilege"): what it
/// does itself (namespaces, mounts, networks, cgroups, image layers) and the defaults every
/// container gets, which it cannot hand on without holding them.
std::vector<std::string> agentCapabilities();
/// Keep only NAMES: every other capability leaves this process's bounding, permitted,
/// effective, inheritable and ambient sets, so neither it nor anything it starts can hold
/// one again. An unknown name is an error; a capability this process lacks stays lacking.
[[nodiscard]] Result<void> keepOnlyCapabilities(const std::vector<std::string>& names);

/// hull's own daemons confine themselves with a seccomp filter, loaded into every thread:
///   Master: only what a network service that runs nothing uses (files, sockets, epoll,
///     timers, threads); anything else fails with EPERM: no exec, no fork (clone only with
///     CLONE_THREAD), no mount, namespace, ptrace, bpf, keyring or module call. With
///     no_new_privs, so it holds for good.
///   Agent: what it runs (containers) needs nearly everything, so it refuses the host-wide
///     calls neither it nor a container has any use for: modules, kexec, reboot, swap,
///     clocks, accounting, raw I/O ports, the kernel log, quotas. Without no_new_privs, so
///     setuid programs in containers keep working; inherited by everything it starts.
enum class DaemonProfile { Master, Agent };
[[nodiscard]] Result<void> confineDaemon(DaemonProfile profile);
/// The config.json `hull-runc spec` writes (ROOTLESS: for an unprivileged
/// user), as JSON text.
std::string specTemplate(bool rootless);

}  // namespace hull::runtime
