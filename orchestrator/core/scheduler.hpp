#pragma once
// The master's placement of service replicas onto nodes, as a pure function:
// from the nodes, the services' demands, what is placed already and the
// (service, slot) pairs that need a node, the node for each of them, or why
// there is none. The master writes the plan in one transaction per round.
//
// Filters (a node must pass all):
//  - it is schedulable (ready and not drained) and not in the want's avoid list;
//  - every constraint of the service matches it;
//  - the replica's requests fit in what is left of its cpus and memory, after
//    the replicas already there and those placed earlier in the same call (a
//    node with capacity 0 for a resource takes only demands of 0 for it);
//  - no OTHER service publishes one of the service's host ports there (same
//    protocol and port, on the same address or either on every address).
//    Replicas of one service share a node's port (the node balances it).
// Scores, among the nodes that pass:
//  - Spread: the spread domain (the node itself, or its value of the label
//    spreadLabel; nodes lacking the label form one domain) with the fewest
//    replicas of the service; in it the node with the fewest replicas of the
//    service; then the most resources left after placing (free cpu fraction +
//    free memory fraction); then the node name.
//  - Binpack: the least resources left after placing (the most packed), then
//    the node name.
// Wants are placed in (service, slot) order, one service after another, so the
// plan depends on the inputs' contents and never on their order. Per service,
// the nodes are filtered and ranked once and kept in ordered sets updated as
// replicas land: R replicas over N nodes cost O((R + N) log N).
#include <cstdint>
#include <string>
#include <vector>

#include "orchestrator/core/constraints.hpp"
#include "orchestrator/core/node_info.hpp"
#include "sys/error.hpp"

namespace hull::orchestrator::core {

/// What one replica of a service asks of its node. Names are unique.
struct ServiceDemand {
    std::string name;
    double cpus = 0;      // requests per replica (0: none)
    int64_t memory = 0;   // bytes (0: none)
    std::vector<Constraint> constraints;
    std::string spreadLabel;  // "": spread over nodes; else the label KEY (parseSpreadKey)
    enum class Strategy { Spread, Binpack } strategy = Strategy::Spread;
    std::vector<std::string> hostPorts;  // host sides: "8080/tcp", "127.0.0.1:8080/tcp" (hostPorts() below)
};

/// A replica placed already: it counts for its node's resources and ports,
/// and for the spread of its service unless its (service, slot) is also wanted
/// (then it is moving away: it still holds its resources and ports until it
/// stops, but the spread counts it where it goes).
struct Existing {
    std::string service;
    int slot = 0;
    std::string node;
};

/// A replica that needs a node; AVOID: nodes not to use (the one being drained).
struct Want {
    std::string service;
    int slot = 0;
    std::vector<std::string> avoid;
};

struct Placed {
    std::string service;
    int slot = 0;
    std::string node;
    bool operator==(const Placed&) const = default;
};

/// A want that fits nowhere, and why, in words for users: `no node fits: 3
/// nodes fail constraint "node.labels.zone == c", 1 node lacks 2 cpus (free
/// 0.5), 1 node is drained or down`; or `unknown service`.
struct Pending {
    std::string service;
    int slot = 0;
    std::string reason;
    bool operator==(const Pending&) const = default;
};

/// Both lists in (service, slot) order; each want is in exactly one of them
/// (a (service, slot) wanted twice is one want avoiding the nodes of both).
struct Plan {
    std::vector<Placed> placed;
    std::vector<Pending> pending;
};

Plan schedule(const std::vector<NodeInfo>& nodes, const std::vector<ServiceDemand>& services,
              const std::vector<Existing>& existing, const std::vector<Want>& wants);

/// The host sides of a service's ports, as ServiceDemand::hostPorts wants them:
/// ["8080:80", "127.0.0.1:53:53/udp"] -> ["8080/tcp", "127.0.0.1:53/udp"].
[[nodiscard]] Result<std::vector<std::string>> hostPorts(const std::vector<std::string>& portMappings);

}  // namespace hull::orchestrator::core
