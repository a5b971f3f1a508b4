#pragma once
// Creating detached containers, apart from the Engine that decides what to
// create: the child that creates a container and becomes its hull-monitor, and
// the spawner process (hull-spawner) that forks such children on request for a
// long-lived caller. Nothing here touches images or the network, so the
// spawner binary links no more than hull-runc does.
#include <string>
#include <vector>

namespace hull::runtime {

/// In the child that becomes the container's monitor: create the container of
/// the bundle DIR as ID (runtime state under RUN_ROOT, its init's pid written to
/// PID_FILE), report "cloned PID", then "created PID" or "error:…" lines on
/// READY, and exec MONITOR (hull-monitor), which stays the init's parent;
/// CLEANUP is the command it runs when the container has ended. Never returns.
[[noreturn]] void createAndBecomeMonitor(int ready, const std::string& dir, const std::string& id,
                                         const std::string& runRoot, const std::string& pidFile,
                                         const std::string& monitor, const std::vector<std::string>& cleanup);

/// Compile the seccomp profile of a bundle's config once in this process, so
/// that the forks it makes inherit it (see compileSeccomp).
void warmSeccomp(const std::string& configText);

/// hull-spawner, started by Engine::startSpawner with its socket on SOCK:
/// creates containers on request (each request: the fields dir, id, run root,
/// pid file, monitor, seccomp profile key, cleanup argv…, NUL-separated, and the
/// caller's end of the readiness pipe) until the socket closes.
int runSpawner(int sock);

}  // namespace hull::runtime
