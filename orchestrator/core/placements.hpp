#pragma once
// The master's placement rules as a pure function: from the services' desired
// replica counts and generations, where each slot is placed, which nodes are
// up, lost or drained and what the nodes report, the changes that bring
// placements closer to what is declared. The scheduler (scheduler.hpp) then
// picks nodes for the slots that need one; the master writes the result in one
// transaction and pushes each node the slots it must run.
//
// Rules:
//  - every slot 0..replicas-1 of a service has one placement: a node that must
//    run it, with the generation of the spec it runs and an incarnation (bumped
//    when the slot's container is to be replaced by a fresh one of the same
//    generation: the phoenix cycle); slots at or beyond replicas lose theirs;
//  - a new slot runs the service's current generation; a rolling update
//    (rollout.hpp) moves slots to a new generation, not this function;
//  - a slot on a lost node needs a node once its service's failover delay has
//    passed since the node was last heard from (failoverDelayMs). Until then
//    it stays: a partition that heals moves nothing. Once moved, the node that
//    comes back is no longer assigned the slot and stops it: nothing runs twice;
//  - a slot on a drained node is moved start-first: it gets a new node while
//    the drained node keeps running its copy as "retiring", and the retiring
//    copy is released only once the new node reports the slot's own copy ready
//    (the ready count never drops below replicas during a drain);
//  - a retiring copy on a node that is not up is released at once.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hull::orchestrator::core {

/// One container's place: a node, and the generation and incarnation it runs.
struct Copy {
    std::string node;
    int64_t generation = 0, incarnation = 0;
    auto operator<=>(const Copy&) const = default;
};

struct SlotPlacement {
    std::string node;             // runs it (empty: none yet)
    int64_t generation = 0;       // of the spec it runs
    int64_t incarnation = 0;      // a fresh container of the same generation: +1
    std::vector<Copy> retiring;   // still run until NODE reports the slot's own copy ready
    bool operator==(const SlotPlacement&) const = default;
    Copy own() const { return {node, generation, incarnation}; }
    bool retiresOn(const std::string& n) const;
};

/// (service, slot) -> placement.
using PlacementMap = std::map<std::pair<std::string, int>, SlotPlacement>;

struct NodeView {
    bool up = false;       // ready (heartbeating)
    bool drained = false;
    /// Not up: how long since it was last heard from, and whether its
    /// connection was closed while it was still heard from (its host answered
    /// for it: the agent or the machine went away) rather than falling silent
    /// (which a partition that passes does too).
    int64_t lostForMs = 0;
    bool closed = false;
};

/// What nodes report: a ready copy of (service, slot), sorted.
struct ReadyReplica {
    std::string service;
    int slot = 0;
    std::string node;
    int64_t generation = 0, incarnation = 0;
    auto operator<=>(const ReadyReplica&) const = default;
};

struct ServiceWant {
    int replicas = 0;
    int64_t generation = 0;                 // new slots run this one
    std::optional<int64_t> failoverAfterMs;  // the service's failover.after
};

struct FailoverOptions {
    int64_t graceMs = 1200;    // a node silent this long is down (lifecycle.hpp)
    int64_t silentMs = 10000;  // a silent node's replicas move after this (its connection not closed)
};

/// How long after it was last heard from a lost node's replicas of a service
/// move: AFTER when the service sets it (never less than the grace: a node is
/// not lost before), else the grace when the node's connection was closed (its
/// host said it is gone), else OPTIONS.silentMs.
int64_t failoverDelayMs(std::optional<int64_t> after, bool closed, const FailoverOptions& options);

struct PlacementChanges {
    /// Slots that need a node now, with the nodes they must not go to.
    struct Need {
        std::string service;
        int slot = 0;
        std::vector<std::string> avoid;
        std::string why;  // "new", "node n2 gone for 1.2s", "node n1 drained", "phoenix: ..."
        enum class Cause { New, Unplaced, Lost, Drained, Phoenix } cause = Cause::New;
        bool fresh() const { return cause == Cause::Phoenix; }  // a fresh container even where it runs
    };
    std::vector<Need> needs;
    /// Placements to write (an empty node and no retiring means: remove it).
    PlacementMap updates;
};

/// READY must be sorted.
PlacementChanges planPlacements(const std::map<std::string, ServiceWant>& services, const PlacementMap& current,
                                const std::map<std::string, NodeView>& nodes, const std::vector<ReadyReplica>& ready,
                                const FailoverOptions& options = {});

/// Apply a scheduler's answer for a slot: its placement once placed on NODE.
/// A slot without a generation yet (a new one): GENERATION. Moved off a node that
/// still runs it (drained, or the phoenix cycle's move): its copy runs on as
/// retiring. FRESH (the phoenix cycle): the incarnation goes up, so a
/// replacement placed where the old copy runs is a new container there too.
SlotPlacement placedOn(const SlotPlacement& before, const std::string& node, const std::map<std::string, NodeView>& nodes,
                       int64_t generation, bool fresh = false);

}  // namespace hull::orchestrator::core
