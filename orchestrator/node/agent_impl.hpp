#pragma once
// The node agent inside (agent.hpp is its face), for its own files only:
//   agent.cpp      the loop: observe, plan (core/reconcile.hpp), apply (starts,
//                  background stops, the services' host ports), and run()
//   agent_api.cpp  what the API serves: apply, scale, delete, get, describe,
//                  events, metrics
// with the probes in prober.cpp, the API's connections in api_server.cpp and
// pulls in image_puller.cpp.
// Everything runs on one thread, the io_context's: a reconcile round, an API
// request and a probe's completion never overlap. The exceptions: background
// stops share only stopping_, under its mutex; pulls share nothing and post
// their results back to the io_context.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "orchestrator/api/messages.hpp"
#include "orchestrator/core/reconcile.hpp"
#include "orchestrator/node/agent.hpp"
#include "orchestrator/node/api_server.hpp"
#include "orchestrator/node/cluster_dns.hpp"
#include "orchestrator/node/image_puller.hpp"
#include "orchestrator/node/prober.hpp"
#include "orchestrator/node/store.hpp"
#include "runtime/engine.hpp"

namespace hull::orchestrator {

class AgentImpl final : public Agent {
public:
    AgentImpl(AgentOptions o, runtime::Engine e, Store s);

    Result<void> reconcileOnce() override;
    Result<void> run() override;

private:
    static int64_t nowMs();
    static std::string label(const runtime::ContainerInfo& c, const char* key);
    static int64_t labelInt(const runtime::ContainerInfo& c, const char* key);

    // ---- the loop (agent.cpp) ----
    /// Reconcile again at AT (unix ms) if that is before the next wake-up already due.
    void wakeBy(int64_t at) { nextWake_ = nextWake_ ? std::min(nextWake_, at) : at; }
    /// Reconcile now (from between rounds: a probe's health changed, a container exited).
    void wake() { timer_.cancel(); }
    /// A service whose stored spec cannot be read: said once (an error event),
    /// until it can be read again or the error changes.
    void noteUnreadable(const std::string& name, const std::string& error, int64_t now);
    bool notYetProbed(const Observed& o) const;
    /// The spec of D's GENERATION; D's own for a generation it has none of (a
    /// container on its way out), so it is probed and stopped as before.
    static const Service& specFor(const DesiredService& d, int64_t generation) {
        const Service* s = d.specOf(generation);
        return s ? *s : d.spec;
    }
    std::set<std::string> readPortsRecord() const;
    void writePortsRecord(const std::set<std::string>& ports) const;
    void syncPorts(const std::map<std::string, DesiredService>& specs, const std::set<std::string>& unreadable,
                   const std::vector<Observed>& observed, const std::map<std::string, int>& stopping, int64_t now);
    /// DRAIN_MS: how long it keeps serving first (kClusterDrainMs on a master's node).
    void stopInBackground(const std::string& id, int grace, int drainMs = 0);
    bool start(const Service& s, const Action& a, int64_t now);
    /// A start that failed (E): an error event; the caller backs the slot off.
    void startFailed(const Service& s, const Action& a, const Error& e, int64_t now);
    void forget(const std::string& id);
    bool isStopping(const std::string& id);

    // ---- the master's link (agent.cpp) ----
    /// The master's assignments: stored (so they survive the master's absence,
    /// our restarts and reboots), services no longer assigned deleted.
    void assign(const json::Value& m);
    // The cluster overlay (a master's agent): the node's subnet, the cluster
    // CIDR, its address and its peers, kept in STATE/cluster/overlay.json so
    // that a node restarted while cut off from its master joins its containers
    // to the overlay again at once.
    struct OverlayPeer {
        std::string subnet, underlay, mac;
        bool operator==(const OverlayPeer&) const = default;
    };
    struct Overlay {
        std::string subnet, cluster, services, address;
        std::map<std::string, OverlayPeer> peers;  // by node name
    };
    /// The master's welcome: the overlay made (or checked); the VTEP's MAC ("": failed, said).
    std::string clusterNetwork(const std::string& subnet, const std::string& cluster, const std::string& services,
                               const std::string& address);
    /// The master's "peers" message applied.
    void overlayPeers(const json::Value& m);
    void saveOverlay() const;
    /// At start: the overlay as last saved, before anything runs.
    void restoreOverlay();
    /// A service as the master's endpoints describe it: its VIP, its published
    /// ports (every node publishes them: the routing mesh) and its ready
    /// replicas' addresses on every node.
    struct Endpoint {
        std::string vip;
        std::vector<std::string> ports, backends;
        std::string mode = "ingress";  // publishMode: ingress, local, host
        /// Its networks, and its running replicas' addresses on every node (ready or not).
        std::vector<std::string> networks, members;
        bool operator==(const Endpoint&) const = default;
    };
    /// The networks of this node's services and of the master's endpoints:
    /// their filter chains made (again, when the list changed), and each one's
    /// members on other nodes as the endpoints say (netns/isolation.hpp).
    /// Nothing on a node outside a master's overlay.
    void syncIsolation();
    /// The networks the container of S joins (none outside a master's overlay).
    std::vector<std::string> isolationOf(const Service& s) const;
    /// The master's "endpoints" message applied: VIPs now, ports at the next round.
    void endpoints(const json::Value& m);
    /// The master's "exec": this very binary as `hull exec` on our state and
    /// run dirs (entered as a local exec enters), for a container that runs here.
    [[nodiscard]] Result<std::vector<std::string>> execCommand(const node::ExecRequest& r);

    // ---- the API (agent_api.cpp) ----
    void handle(const std::string& method, const std::string& target, const std::string& body, ApiServer::Respond respond);
    ApiReply answer(const std::string& method, const std::string& target, const std::string& body);
    /// `hull apply`: answered once its image is there (a pull, in the background).
    void apply(const std::string& body, ApiServer::Respond respond);
    ApiReply store(const Service& s, const std::string& source);
    ApiReply scale(const std::string& name, const std::string& body);
    ApiReply describe(const std::string& name);
    /// Store S with the generation it calls for: a new one only when more than replicas changed.
    [[nodiscard]] Result<int64_t> storeService(const Service& s);
    std::vector<ContainerEntry> containers(const std::string& service = "");
    bool readyOf(const runtime::ContainerInfo& c);
    std::string metrics();
    /// The link's "usage" message (MasterLink::Hooks::usage).
    std::string usage();

    /// "[IP:]PORT:PORT/PROTO": a port spec's host side, the same for every
    /// spelling of it ("8080:80" and "0.0.0.0:8080:81/tcp" are one host port).
    static std::string hostSide(const std::string& spec);

    boost::asio::io_context ioc_;  // first: what runs on it may use every member below
    AgentOptions o_;
    runtime::Engine engine_;
    Store store_;
    boost::asio::steady_timer timer_;  // the next round
    Prober prober_;
    ImagePuller puller_;
    std::shared_ptr<node::MasterLink> link_;  // when joined to a master
    std::optional<Overlay> overlay_;          // when the master gave this node a subnet
    std::optional<std::map<std::string, Endpoint>> endpoints_;  // a master's, once it sent them (by service)
    std::unique_ptr<node::ClusterDns> dns_;                    // service names, on a master's node with an overlay
    /// What syncIsolation last made: the chains' networks (none: not yet), the
    /// other nodes' members by network.
    std::optional<std::vector<std::string>> isolationNetworks_;
    bool isolationMode_ = false;  // runtime::Engine::isolationMode() as the chains were made
    std::map<std::string, std::vector<std::string>> isolationRemote_;
    int64_t dnsCheckAt_ = 0;

    /// The exit of a container, once seen.
    struct ExitTrack {
        int64_t finishedMs = 0;    // when it ended (exit.json's mtime), once we have seen it
        int64_t pendingSince = 0;  // ended, exit status not yet recorded
    };
    std::map<std::string, ExitTrack> exits_;          // by container id
    std::map<std::string, DesiredService> specs_;     // as of the last round (readiness of containers not probed yet)
    std::map<std::string, std::string> unreadable_;   // services whose stored spec cannot be read: the error said
    // Stopped for a failed probe or a stop-first replacement (as ended), until their slot starts again.
    std::map<std::string, Observed> failed_;
    struct Published {
        std::vector<std::string> ports, backends;  // the spec's ports; container ids (or addresses)
        bool addresses = false;                    // BACKENDS are addresses (the routing mesh's)
        std::string error;                         // of the last try, if it failed
        int64_t retryAt = 0;
    };
    std::map<std::string, Published> published_;    // by service: what its host ports lead to
    std::optional<std::set<std::string>> recorded_;  // STATE/ports.json as last read or written (none: not read yet)
    bool swept_ = false;                             // the record's leftovers unpublished (once per agent)
    std::set<std::string> portClashes_;              // services whose ports another service holds (said once)
    struct StartFailures {
        int count = 0;           // consecutive failed starts of the slot
        int64_t retryAt = 0;     // unix ms: not before
        int64_t generation = 0;  // of the spec that failed
        int64_t incarnation = 0;
    };
    std::map<std::pair<std::string, int>, StartFailures> startFailures_;  // by (service, slot)
    int64_t startedMs_ = 0;             // this agent's start (exits before it happened while none ran)
    int64_t nextWake_ = 0;              // the earliest backoff that ends before the next tick
    std::set<std::string> watched_;     // container dirs with an inotify watch
    std::map<std::string, int> grace_;  // seconds, per service, remembered past its deletion
    std::mutex stoppingMu_;
    std::set<std::string> stopping_;
};

}  // namespace hull::orchestrator
