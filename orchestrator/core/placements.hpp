#pragma once
// The master's placement rules as a pure function: from the services' desired
// replica counts, where each slot is placed, which nodes are up or drained and
// what the nodes report, the changes that bring placements closer to what is
// declared. The scheduler (scheduler.hpp) then picks nodes for the slots that
// need one; the master writes the result in one transaction and pushes each
// node the slots it must run.
//
// Rules:
//  - every slot 0..replicas-1 of a service has one placement: a node that must
//    run it; slots at or beyond replicas lose theirs ("scale down");
//  - a slot on a node that is down needs a node at once (the down node's
//    replica is gone as far as the cluster knows; if the node comes back it is
//    no longer assigned the slot and stops it, so nothing runs twice);
//  - a slot on a drained node is moved start-first: it gets a new node while
//    the drained node keeps running it as "retiring", and the retiring copy is
//    released only once the new node reports the slot ready (the ready count
//    never drops below replicas during a drain);
//  - a retiring copy on a node that is down is released at once.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace hull::orchestrator::core {

struct SlotPlacement {
    std::string node;                   // runs it (empty: none yet)
    std::vector<std::string> retiring;  // still run it until NODE reports it ready
    bool operator==(const SlotPlacement&) const = default;
};

/// (service, slot) -> placement.
using PlacementMap = std::map<std::pair<std::string, int>, SlotPlacement>;

struct NodeView {
    bool up = false;       // ready (heartbeating)
    bool drained = false;
};

/// What nodes report: (service, slot, node) with a ready replica.
struct ReadyReplica {
    std::string service;
    int slot = 0;
    std::string node;
    auto operator<=>(const ReadyReplica&) const = default;
};

struct PlacementChanges {
    /// Slots that need a node now, with the nodes they must not go to.
    struct Need {
        std::string service;
        int slot = 0;
        std::vector<std::string> avoid;
        std::string why;  // "new", "node n2 down", "node n1 drained"
    };
    std::vector<Need> needs;
    /// Placements to write (an empty node and no retiring means: remove it).
    PlacementMap updates;
};

/// REPLICAS: service -> desired count. READY must be sorted.
PlacementChanges planPlacements(const std::map<std::string, int>& replicas, const PlacementMap& current,
                                const std::map<std::string, NodeView>& nodes, const std::vector<ReadyReplica>& ready);

/// Apply a scheduler's answer for NEED: the slot's placement once placed on NODE
/// (a drained node's copy goes on running as retiring).
SlotPlacement placedOn(const SlotPlacement& before, const std::string& node, const std::map<std::string, NodeView>& nodes);

}  // namespace hull::orchestrator::core
