#pragma once
// Containers from images on one host, daemonless (podman's model): the part of
// the runtime facade that `hull run`, `hull ps` … and later the node agent use.
// It joins the image store (images/), networks (netns/) and the OCI lifecycle
// (runtime.hpp) and keeps its records under STATE/containers/<id>/:
//
//   config.json        the OCI bundle's config, generated from the image and flags
//   rootfs/ upper/ work/   overlay of the image's layers
//   etc/               hosts, hostname, resolv.conf (bind-mounted)
//   container.json     name, image, command, ports, network, created, monitor pid
//   ctr.log ctr.log.1  stdout+stderr, size-capped and rotated by the monitor
//   exit.json          exit code and time, written when the container ends
//
// A detached container is watched by hull-monitor (cli/hull_monitor.cpp), a
// small plain-libc process that is the parent of the container's init: it
// collects the exit status, copies the output into the size-capped log, and
// runs `hull _cleanup ID` when the container ends. It outlives the CLI and any
// node agent.
#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sys/error.hpp"

namespace hull::netns {
class Network;  // a cache of them (below): the engine's own business, not its users'
}

namespace hull::runtime {

struct RunOptions {
    std::string image;                 // name or id in the store (pulled if missing and pullable)
    std::string name;                  // "" = generated
    std::vector<std::string> command;  // overrides the image's Cmd (Entrypoint kept)
    std::vector<std::string> env;      // K=V
    std::vector<std::string> publish;  // "8080:80", "5353:53/udp"
    std::vector<std::string> volumes;  // "/host:/ctr[:ro]"
    std::string memory;                // "64m" ("" = no limit)
    double cpus = 0;                   // 0 = no limit
    int64_t pidsLimit = 0;             // 0 = no limit
    std::string user;                  // overrides the image's User
    std::string network = "hull";      // a network name, or "none"
    bool detach = false, remove = false, tty = false, interactive = false;
    std::vector<std::string> insecureRegistries;  // for a pull on the way
    std::map<std::string, std::string> labels;    // kept with the container (the node agent's bookkeeping)
    /// A cluster node's networks the container is a member of (netns/isolation.hpp):
    /// joined as its address is attached, before it runs.
    std::vector<std::string> isolation;
};

struct ContainerInfo {
    std::string id, name, image, imageId, created, status;  // created|running|paused|exited
    std::vector<std::string> command;
    std::optional<int> exitCode;
    std::string finished;
    pid_t pid = 0;
    std::string ip, network;
    std::string ip6;  // "" unless the network is dual-stack
    std::vector<std::string> ports;
    std::map<std::string, std::string> labels;
    std::string dir;
};

class Engine {
public:
    /// STATE: the state dir (images, networks, containers); RUN: runtime state
    /// (the OCI runtime's --root lives in RUN/runc).
    [[nodiscard]] static Result<Engine> open(const std::string& stateDir, const std::string& runDir);

    /// Create and start a container. Detached: returns 0 once it runs (the id is
    /// in *ID). Foreground: runs it with our stdio and returns its exit status.
    [[nodiscard]] Result<int> run(const RunOptions& o, std::string* id = nullptr);
    /// IMAGE is in the store, or is pulled into it (what `hull apply` checks
    /// first), from INSECURE_REGISTRIES (HOST:PORT) over plain HTTP.
    [[nodiscard]] Result<void> ensureImage(const std::string& image,
                                           const std::vector<std::string>& insecureRegistries = {});
    [[nodiscard]] Result<std::vector<ContainerInfo>> list(bool all);
    [[nodiscard]] Result<ContainerInfo> inspect(const std::string& nameOrId);
    /// StopSignal (or SIGTERM), then SIGKILL after TIMEOUT seconds; waits until it has ended.
    [[nodiscard]] Result<void> stop(const std::string& nameOrId, int timeoutSeconds);
    [[nodiscard]] Result<void> kill(const std::string& nameOrId, int signal);
    /// Remove a stopped container (FORCE: kill a running one first).
    [[nodiscard]] Result<void> remove(const std::string& nameOrId, bool force);
    /// Write the log to FD: the last TAIL lines (-1 = all), following until the
    /// container ends when FOLLOW.
    [[nodiscard]] Result<void> logs(const std::string& nameOrId, bool follow, long tail, int fd);
    [[nodiscard]] Result<int> exec(const std::string& nameOrId, const std::vector<std::string>& args,
                                   const std::vector<std::string>& env, const std::string& user, bool tty,
                                   bool interactive);
    /// The runtime's stats JSON (runc's `events --stats` data) of a running container.
    [[nodiscard]] Result<std::string> stats(const std::string& nameOrId);
    /// `hull _cleanup ID`, which hull-monitor runs when the container has ended:
    /// the runtime's state and cgroup, the network, the rootfs; the record too with --rm.
    [[nodiscard]] Result<void> cleanup(const std::string& id);

    /// For a long-lived caller (the node agent): from now on containers are
    /// created by a small process of ours (hull-spawner) that forks for each,
    /// instead of by a fork of this, possibly big, process: copying a big
    /// address space is most of the cost of a start here. Falls back to forking
    /// if the spawner goes away.
    [[nodiscard]] Result<void> startSpawner();

    /// A service's host ports (the node agent): PORTS as in RunOptions::publish,
    /// each balanced over the containers IDS (connections spread at random),
    /// replacing the list these ports had. IDS without an address are left out.
    [[nodiscard]] Result<void> publishBalanced(const std::vector<std::string>& ports, const std::vector<std::string>& ids);
    [[nodiscard]] Result<void> unpublishBalanced(const std::vector<std::string>& ports);

    // The cluster overlay (a master's node agent): this host's containers on
    // network "hull" in SUBNET (the node's lease of CLUSTER), a VXLAN device
    // (hull.vx, VNI 1, on LOCAL, its underlay address) holding SUBNET's network
    // address, and CLUSTER exempt from masquerade, so containers on different
    // nodes see each other's own addresses (netns/overlay.hpp). The network is
    // made anew when it had another subnet and no container of ours uses it; an
    // error says so when one does. Returns the VXLAN device's MAC.
    [[nodiscard]] Result<std::string> ensureOverlay(const std::string& subnet, const std::string& cluster, const std::string& local);
    /// Another node's subnet (SUBNET, on its UNDERLAY address, its VXLAN device's MAC),
    /// reachable over the overlay (ADD) or no longer (gone already is fine).
    [[nodiscard]] Result<void> overlayPeer(const std::string& subnet, const std::string& underlay, const std::string& mac, bool add);
    /// A service's virtual IP on this host, balanced over BACKENDS (addresses on
    /// any node; none: refused) on the port asked for (netns::publishVip).
    [[nodiscard]] Result<void> publishVip(const std::string& vip, const std::vector<std::string>& backends);
    [[nodiscard]] Result<void> unpublishVip(const std::string& vip);
    /// New connections so far, per service: to its balanced ports ("8080:80")
    /// and its virtual IP ("": none), as this host's nftables counted them
    /// (netns::newConnections). One nft call for all.
    struct Published {
        std::vector<std::string> ports;
        std::string vip;
    };
    [[nodiscard]] Result<std::vector<uint64_t>> newConnections(const std::vector<Published>& services);
    /// The networks that keep a cluster's containers apart (netns/isolation.hpp):
    /// the filter chains for NETWORKS on this node's SUBNET of CLUSTER, where
    /// SERVICES holds the service addresses. Run again when the list changes,
    /// or isolationMode() does.
    [[nodiscard]] Result<void> ensureIsolation(const std::string& subnet, const std::string& cluster,
                                               const std::string& services, const std::vector<std::string>& networks);
    /// What else the chains depend on: whether br_netfilter sends bridged
    /// traffic through the ip hooks here (it may be loaded at any time).
    static bool isolationMode();
    /// The other nodes' members of each network in MEMBERS (addresses), replacing theirs.
    [[nodiscard]] Result<void> setRemoteMembers(const std::map<std::string, std::vector<std::string>>& members);
    /// As publishBalanced, to ADDRESSES (a cluster's replicas on any node: the routing mesh).
    [[nodiscard]] Result<void> publishBalancedTo(const std::vector<std::string>& ports, const std::vector<std::string>& addresses);

    const std::string& stateDir() const { return state_; }

private:
    Engine(std::string state, std::string run);
    /// Collect the monitors we started that have ended (they are our children).
    void reapMonitors();
    struct Spawner;
    std::shared_ptr<Spawner> spawner_;
    std::string state_, run_;
    std::shared_ptr<std::map<std::string, netns::Network>> nets_;  // networks made sure of, by name
    std::shared_ptr<std::set<std::string>> warmProfiles_;          // seccomp profiles compiled in this process
    std::shared_ptr<std::vector<pid_t>> monitors_;                 // our children, until reaped
};

/// Docker-style names for containers without one ("hull-3f2a9c"), and short ids.
std::string shortId(const std::string& id);
/// "64m", "1g", "512k", "1048576" -> bytes; -1 on error.
int64_t parseMemory(const std::string& s);

/// A container's log as its directory DIR keeps it: the rotated part
/// (ctr.log.1), then ctr.log as far as it went when read; OFFSET is that far,
/// where a follow of ctr.log goes on.
struct LogRead {
    std::string text;
    int64_t offset = 0;
};
LogRead readLog(const std::string& dir);
/// The last TAIL lines of TEXT: all of it when TAIL is negative, nothing when 0.
std::string tailLines(std::string text, long tail);

}  // namespace hull::runtime
