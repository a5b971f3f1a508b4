#pragma once
// Node readiness from heartbeats, as a pure function the master calls every
// tick with its own clock (heartbeats live in its memory, never in the store).
//
//  - a node that is not down and whose last heartbeat is older than graceMs
//    goes Down; exactly graceMs old is still ready;
//  - a node never heard from (lastHeartbeatMs 0) is not ready: not down, it
//    goes Down (a master that restarts should therefore start every known
//    node's clock at its own start, so nodes get one grace period to reconnect);
//  - a down node goes Ready once it is connected and its last heartbeat is
//    within graceMs (a heartbeat alone, on a session since closed, is not enough);
//  - drained is a separate flag: it changes no readiness.
#include <cstdint>
#include <string>
#include <vector>

namespace hull::orchestrator::core {

struct NodeClock {
    std::string name;
    int64_t lastHeartbeatMs = 0;  // the master's clock; 0: never heard from
    bool connected = false;       // its session is open
    bool down = false;            // as the master has it now
    bool drained = false;
};

struct LifecycleOptions {
    int64_t heartbeatMs = 500;  // how often nodes send one (the master tells them)
    int64_t graceMs = 1500;     // how long a silent node stays ready
};

struct Transition {
    std::string node;
    enum class To { Ready, Down } to = To::Ready;
    std::string reason;  // "no heartbeat for 1.6s (grace 1.5s)"
    bool operator==(const Transition&) const = default;
};

/// The nodes whose readiness changes at NOW, in the order of NODES.
std::vector<Transition> nodeTransitions(const std::vector<NodeClock>& nodes, int64_t nowMs,
                                        const LifecycleOptions& options);

/// "1.6s", "2s", "0.25s": milliseconds as users read them in reasons.
std::string secondsText(int64_t ms);

}  // namespace hull::orchestrator::core
