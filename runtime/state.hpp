#pragma once
// A container's on-disk record under <root>/<id>/ and how its status is derived
// from the kernel (a pid alone is not enough: pids get reused).
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "cgroups/manager.hpp"
#include "sys/error.hpp"
#include "sys/unique_fd.hpp"

namespace hull::runtime {

struct StoredState {
    std::string id, bundle, rootfs, created, owner, cgroupsPath;
    /// /proc/self/cgroup of the `create` that made the container: where the
    /// cgroup was placed (relative paths, v1 nesting) depends on it, and later
    /// commands may run from other cgroups (podman's conmon, a shell).
    std::string cgroupOwner;
    std::string phase = "creating";  // creating -> created (start removes the exec fifo)
    pid_t pid = 0;
    uint64_t startTime = 0;  // /proc/<pid>/stat field 22: guards against pid reuse
    std::map<std::string, std::string> annotations;
};

/// Files in a container's directory.
inline constexpr const char* kStateFile = "state.json";
inline constexpr const char* kExecFifo = "exec.fifo";
inline constexpr const char* kConfigCopy = "config.json";

[[nodiscard]] Result<void> writeState(const std::string& dir, const StoredState& s);
[[nodiscard]] Result<StoredState> readState(const std::string& dir);

/// Start time of a live (non-zombie) process, 0 when it is gone or a zombie.
uint64_t processStartTime(pid_t pid);
/// Is the recorded process still the one we started?
bool processAlive(const StoredState& s);

/// An exclusive flock on the container directory, released on destruction.
[[nodiscard]] Result<UniqueFd> lockDir(const std::string& dir);

/// The container's cgroup manager, resolved as `create` resolved it.
[[nodiscard]] Result<std::unique_ptr<cgroups::Manager>> cgroupFor(const StoredState& s);

/// RFC 3339 UTC with nanoseconds, as runc writes "created".
std::string nowRfc3339();

}  // namespace hull::runtime
