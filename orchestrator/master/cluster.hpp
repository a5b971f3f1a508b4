#pragma once
// The master's model of the cluster and its controllers, driven by the thin
// layer in master.cpp (HTTPS routes, node sessions, a 100 ms tick):
//  - desired state (services, node records, placements) is read from the
//    store at start and written through it, each change one transaction
//    acknowledged only once committed;
//  - what nodes report (heartbeats, their containers) lives in memory only;
//  - reconcile() runs node lifecycle (core/lifecycle.hpp), the placement rules
//    (core/placements.hpp) and the scheduler (core/scheduler.hpp) for the slots
//    that need a node, commits the round's placements in one transaction, and
//    pushes each connected node its assignments when they changed.
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "orchestrator/api/https_server.hpp"
#include "orchestrator/api/messages.hpp"
#include "orchestrator/core/placements.hpp"
#include "orchestrator/core/subnets.hpp"
#include "orchestrator/master/autoscaling.hpp"
#include "orchestrator/master/records.hpp"
#include "orchestrator/state/store.hpp"
#include "sys/error.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator::master {

struct ClusterOptions {
    std::chrono::milliseconds heartbeat{300}, grace{1200};
    /// How long the replicas of a node that fell silent (its connection not
    /// closed: maybe a partition that passes) wait before they move; a node
    /// whose connection closed moves them after the grace. A service's
    /// failover.after overrides both (core/placements.hpp).
    std::chrono::milliseconds failoverSilent{10000};
    /// Generations of a service kept for `hull rollout history|undo` (and any
    /// a node still runs).
    size_t history = 10;
    /// Each node leases a /24 of CLUSTERCIDR for its containers; services take
    /// their virtual IPs from SERVICECIDR (core/subnets.hpp).
    netns::Cidr clusterCidr = *netns::Cidr::parse(core::kDefaultClusterCidr);
    netns::Cidr serviceCidr = *netns::Cidr::parse(core::kDefaultServiceCidr);
    /// After a master (re)start, how long known nodes have to say hello again
    /// before they count as down: they look for a master that is back with a
    /// backoff (up to 1 s), and a master restart must move nothing.
    std::chrono::milliseconds restartGrace{5000};
    size_t events = 2000;  // kept in memory, newest last
    /// The most operations one transaction of a round's placements may hold
    /// (0: no limit). etcd refuses more than 128 (--max-txn-ops): a round is
    /// then written in several, each slot's record whole; what a crash
    /// between two leaves unwritten, the next leader's first round places again.
    size_t maxTxnOps = 0;
    /// Unix ms, for what users read as dates (events, updated, joined). Every
    /// `now` passed to Cluster is another clock: monotonic ms, for heartbeats
    /// and grace periods, which a wall clock set by NTP must not move.
    std::function<int64_t()> wallMs = [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
};

class Cluster {
public:
    [[nodiscard]] static Result<std::unique_ptr<Cluster>> open(std::unique_ptr<state::Store> store, ClusterOptions o,
                                                               int64_t nowMs);

    // The CLI's API (admin). Errors: ENOENT for an unknown name, EINVAL for bad
    // input (the message says what), EIO for the store.
    [[nodiscard]] Result<ApplyReply> apply(const std::string& source, const std::string& text, int64_t now);
    [[nodiscard]] Result<ScaleReply> scale(const std::string& name, int64_t replicas, int64_t now);
    [[nodiscard]] Result<void> remove(const std::string& name, int64_t now);
    [[nodiscard]] Result<DescribeReply> describe(const std::string& name) const;
    [[nodiscard]] Result<RolloutStatus> rolloutStatus(const std::string& name) const;
    [[nodiscard]] Result<RolloutHistory> rolloutHistory(const std::string& name) const;
    /// `hull rollout undo`: a rollout back to TOGENERATION (0: the one before
    /// the current), paced like any other. ENOENT: no such service or generation.
    [[nodiscard]] Result<RolloutStatus> undo(const std::string& name, int64_t toGeneration, int64_t now);
    ServiceList serviceList() const;
    ContainerList containers(const std::string& service) const;
    EventList events(int64_t sinceId) const;
    NodeList nodeList(int64_t now) const;
    [[nodiscard]] Result<NodeEntry> drain(const std::string& node, bool drained, int64_t now);
    [[nodiscard]] Result<NodeEntry> label(const std::string& node, const std::map<std::string, std::string>& set,
                                          const std::vector<std::string>& remove, int64_t now);
    /// `hull node rm`: a node that is down leaves the cluster: its record, its
    /// subnet's lease and its place in every node's overlay go (its replicas
    /// moved already). EBUSY while it is up: drain it and stop it first.
    [[nodiscard]] Result<void> removeNode(const std::string& node, int64_t now);
    std::string metrics(int64_t now) const;
    size_t nodeCount() const { return nodes_.size(); }
    size_t serviceCount() const { return services_.size(); }
    void event(const std::string& kind, const std::string& service, const std::string& container, const std::string& msg,
               int64_t now);

    // Nodes.
    /// A node joined (or joined again) with the certificate whose sha256 is
    /// CERT: its record exists from now on, and only that certificate holds its
    /// session. EEXIST while a node of that name is up: a second machine cannot
    /// take a live node's name (a reinstalled one joins again once it is down).
    [[nodiscard]] Result<void> registerNode(const std::string& name, const std::string& address, int64_t now,
                                            const std::string& certSha256 = "");
    void sessionMessage(const std::shared_ptr<api::WebSocketSession>& s, const std::string& text, int64_t now);
    /// True when S was its node's session (not one replaced, refused or never said hello).
    bool sessionClosed(const std::shared_ptr<api::WebSocketSession>& s, int64_t now);

    /// The container QUERY names (its id, a unique prefix of it, or its name)
    /// as nodes reported it: {node, full id}. ENOENT, or EINVAL when ambiguous.
    [[nodiscard]] Result<std::pair<std::string, std::string>> locate(const std::string& query) const;
    /// TEXT on NODE's session; false when it has none.
    bool sendToNode(const std::string& node, std::string text);
    /// Where node messages for someone else go (logs-data, logs-end, exec-data,
    /// exec-exit: a stream's relay in master.cpp), with the node that sent them.
    void onRelay(std::function<void(const std::string& node, const json::Value& message)> f) { relay_ = std::move(f); }

    /// Lifecycle, placement, scheduling, assignments: one round.
    void reconcile(int64_t now);
    /// Something changed that the next round must see (run one soon rather than at the next tick).
    bool changed() const { return dirty_ || freshSession_ || !dirtyServices_.empty(); }


private:
    struct Live {
        std::shared_ptr<api::WebSocketSession> session;
        int64_t lastHeartbeat = 0;
        bool down = true;
        /// id -> as reported: the session's first report, then what changed.
        /// Kept while the node is away with its session open (what comes on it
        /// still applies); dropped when it is down with no session.
        std::map<std::string, ContainerEntry> containers;
        std::optional<std::map<std::string, std::string>> sent;  // per service, what was pushed (none: push all)
        /// When its connection closed (0: open, or gone long before): a node
        /// whose host closed it is gone, one that fell silent may come back.
        int64_t closedAt = 0;
        /// The overlay peers it was sent: name -> the peer as sent (none: send all).
        std::optional<std::map<std::string, json::Value>> peersSent;
        /// The services' endpoints it was sent: name -> "vip ports backends" (none: send all).
        std::optional<std::map<std::string, std::string>> endpointsSent;
    };
    /// What the master saw of a slot's new copy during a rollout (core/rollout.hpp).
    struct Watch {
        int64_t askedAt = 0, seenAt = 0, firstReadyAt = 0, exitedAt = 0;
        bool failed = false;
        std::string node;  // where it was asked for: a slot moved since (its node lost) starts over
    };

    Cluster(std::unique_ptr<state::Store> s, ClusterOptions o) : store_(std::move(s)), o_(o) {}
    [[nodiscard]] Result<void> load(int64_t now);
    [[nodiscard]] Result<void> putNode(const NodeRecord& r);
    NodeEntry nodeEntry(const std::string& name, int64_t now) const;
    /// REPLICAS for NAME, stored, with an event of KIND saying WHY (`hull scale`, the autoscaler).
    [[nodiscard]] Result<ScaleReply> rescale(const std::string& name, int64_t replicas, const std::string& kind,
                                             const std::string& why, int64_t now);
    /// Once a second: a sample of each autoscaled service, and what it calls for.
    void autoscale(int64_t now);
    void hello(const std::shared_ptr<api::WebSocketSession>& s, const json::Value& m, int64_t now);
    /// Each session's assignments: the whole set to a new one, else the part of
    /// the TOUCHED services (placements or spec changed) that changed for it.
    void pushAssignments(const std::set<std::string>& touched);
    /// Distinct slots with a ready container on an up node that holds them, by
    /// service (ONLY: that one). One pass over readyAt_ beside placements_.
    std::map<std::string, int64_t> readySlots(const std::string* only = nullptr) const;
    std::string nodeOf(const api::WebSocketSession* s) const;
    /// REPORT from NODE applied to what the master knows of its containers.
    void applyReport(const std::string& node, Live& l, StatusReport report);
    /// C, on NODE, in memberIps_ (PRESENT and running with an address) or not; a change dirties its service.
    void indexMember(const std::string& node, const ContainerEntry& c, bool present);
    /// What the master knew of NODE's containers is gone (it is down, without a session).
    void forgetContainers(const std::string& node, Live& l);
    /// C, on NODE, counted (+1) or no longer (-1) in readyAt_ if it is ready.
    void countReady(const std::string& node, const ContainerEntry& c, int delta);
    /// The nodes taken for down (few, usually none): their readiness does not count.
    std::set<std::string> downNodes() const;
    /// The ready replicas of the services SCOPE names (none: all) on nodes that are up, sorted.
    std::vector<core::ReadyReplica> readyReplicas(const std::set<std::string>* scope) const;
    /// The generation of SERVICE a node must be given the spec of: the current
    /// one, or one in its history (nullptr: none).
    const Service* specOf(const std::string& service, int64_t generation) const;
    /// A new generation's history record, and the older ones beyond the limit
    /// that no placement needs any more, as ops of the write that makes it;
    /// returns the generations that go.
    std::vector<int64_t> historyOps(const std::string& service, const HistoryRecord& h, std::vector<state::Op>& ops);
    /// The rollouts' step of a round: slots to move to the new generation, the
    /// outcome (completed, rolled back, paused) written. Adds to UPDATES.
    void stepRollouts(const std::set<std::string>& scope, core::PlacementMap& updates, int64_t now);
    /// SERVICE's rollout watches dropped (a new rollout, an outcome, the service deleted).
    void forgetWatches(const std::string& service);
    /// The slots of SERVICE's rollout counted as failures so far.
    int64_t failedWatches(const std::string& service) const;
    /// An automatic rollback of SERVICE to the generation its rollout came from.
    [[nodiscard]] Result<void> rollBack(const std::string& service, const std::string& why, core::PlacementMap& updates,
                                        int64_t now);
    /// Writes R (and history outcome changes) for SERVICE; on success, it is the master's.
    [[nodiscard]] Result<void> putService(const std::string& service, const ServiceRecord& r, int64_t now);
    /// The phoenix cycle's needs of the services in SCOPE (placements as UPDATES leave them).
    std::vector<core::PlacementChanges::Need> phoenixNeeds(const std::set<std::string>& scope,
                                                           const core::PlacementMap& updates, int64_t now);
    /// A slot's copy (node, generation, incarnation) as its node reports it.
    struct CopyState {
        bool ready = false;   // one of its containers is running and ready
        bool exited = false;  // one exited, or was restarted
        int64_t started = 0;  // unix ms: of the ready one, else the newest
    };
    /// SERVICE's containers on the nodes its placements name: (slot, node, generation, incarnation) -> state.
    std::map<std::tuple<int, std::string, int64_t, int64_t>, CopyState> copiesOf(const std::string& service) const;
    /// SERVICE's placement of SLOT as this round has it: UPDATES, else the stored one (nullptr: none).
    const core::SlotPlacement* placementOf(const std::string& service, int slot, const core::PlacementMap& updates) const;
    /// A round for SERVICE ("": every service) at AT, at the latest.
    void wake(const std::string& service, int64_t at);
    /// R with a subnet of the cluster CIDR leased, if it had none; false when none is left.
    bool lease(NodeRecord& r);
    /// Each session the overlay peers it lacks and those gone: the other nodes
    /// that are up and have a subnet and a VTEP (a whole list to a new session).
    void pushPeers();
    /// A free address of the service CIDR for a service's VIP ("" when none is left).
    std::string freeVip() const;
    /// Each session the endpoints of the services in TOUCHED that changed for
    /// it (all of them to a new session): every service's VIP, published ports
    /// and ready replicas' addresses cluster-wide, for the VIP and the routing
    /// mesh every node publishes.
    void pushEndpoints(const std::set<std::string>& touched);
    /// SERVICE's ready replicas' addresses, on nodes that are up and hold their slot, sorted.
    std::vector<std::string> backendsOf(const std::string& service) const;

    std::unique_ptr<state::Store> store_;
    ClusterOptions o_;
    std::function<void(const std::string&, const json::Value&)> relay_;
    std::map<std::string, ServiceRecord> services_;
    std::set<std::string> unreadable_;  // stored services this hull cannot read: their placements stay as they are
    std::map<std::string, NodeRecord> nodes_;
    std::map<std::string, Live> live_;
    std::map<const api::WebSocketSession*, std::string> sessions_;  // session -> node, once it said hello
    /// (service, slot, node) -> its ready, running containers of that slot
    /// there: kept as reports come, so that a round reads its services' part
    /// only, and in placements' order, so that counting is one merged pass.
    std::map<std::tuple<std::string, int, std::string, int64_t, int64_t>, int> readyAt_;  // + generation, incarnation
    /// The same keys -> the ready container's address, for those that have one
    /// (what the VIPs and the routing mesh send connections to).
    std::map<std::tuple<std::string, int, std::string, int64_t, int64_t>, std::string> readyIps_;
    /// (service, node, container id) -> the address of every running container
    /// that has one, ready or not: its networks' members (endpoints' "members").
    std::map<std::tuple<std::string, std::string, std::string>, std::string> memberIps_;
    /// service -> generation -> what it was (the current one is services_'s too).
    std::map<std::string, std::map<int64_t, HistoryRecord>> history_;
    std::map<std::pair<std::string, int>, Watch> watches_;  // rollouts in progress: their slots' new copies
    /// Rounds that must run even if nothing changes: service -> when (a
    /// rollout's clock, a replica coming due for the phoenix cycle); "" -> a
    /// lost node's failover delay (every service).
    std::map<std::string, int64_t> wakes_;
    uint64_t failovers_ = 0, phoenixes_ = 0, rollbacks_ = 0;
    core::PlacementMap placements_;
    std::map<std::string, std::map<int, std::string>> pending_;  // service -> slot -> why it has no node
    std::deque<Event> events_;
    int64_t nextEvent_ = 1;
    bool dirty_ = true;                     // a change every service's round must see (nodes, a failed write)
    std::set<std::string> dirtyServices_;  // services changed since the last round
    std::set<std::string> specChanged_;    // applied or deleted since the last push: every node hears
    bool freshSession_ = false;            // a session said hello: the next round pushes its whole set
    bool peersChanged_ = false;            // a node's overlay place changed (up, down, its VTEP, removed)
    // Figures for /metrics.
    uint64_t placed_ = 0, rounds_ = 0;
    int64_t lastCompact_ = 0;
    Autoscaling autoscaling_;
    int64_t lastSample_ = 0;  // the autoscaler's last sample (monotonic ms)
    int64_t lastTrim_ = 0;
    uint64_t trimmedAt_ = 0;  // rounds_ at the last malloc_trim
    int64_t lastRound_ = 0;  // when reconcile last ran (a gap: the master itself stalled)
    std::map<std::string, std::set<std::string>> saidPending_;  // service -> pending reasons already in events
    double lastRoundMs_ = 0;
};

}  // namespace hull::orchestrator::master
