#pragma once
// The node agent's decisions as a pure function: from the declared services,
// what is running, and the time, the actions that bring the node closer to the
// declaration. The agent loop carries them out (through the runtime facade) and
// calls plan() again; nothing here touches the kernel, so every rule is
// unit-tested with made-up clocks.
//
// Rules:
//  - each service has slots 0..replicas-1 (or the slots a master assigned to
//    this node), each wanting one live container;
//  - an ended container is replaced per the restart policy (always; on-failure
//    only after a non-zero exit; never), after the backoff delay for its slot's
//    restart count; a container that ran for backoff.resetAfter resets it;
//  - a container whose liveness (or startup) probe failed is stopped, then
//    replaced as above;
//  - replacements for a changed spec (generation) or an age beyond maxAge (the
//    phoenix cycle) go one slot at a time per service and start the new
//    container first: the old one is stopped only once the new one is ready,
//    so the ready count never drops below replicas;
//  - slots beyond replicas (or no longer assigned), and services no longer
//    declared, are stopped; a service the caller names as unreadable (its
//    stored spec could not be read) is neither: its containers are left alone.
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "orchestrator/model/service.hpp"

namespace hull::orchestrator {

using TimePoint = std::chrono::milliseconds;  // since an epoch the caller chooses

struct Observed {
    std::string id, service;
    int64_t generation = 0;
    int slot = 0;
    enum class State { Starting, Running, Exited } state = State::Starting;
    TimePoint started{0}, finished{0};
    std::optional<int> exitCode;
    int restarts = 0;     // of the slot, when this container was started
    bool ready = false;   // readiness (or no readiness probe and running)
    bool livenessFailed = false;  // liveness, or startup, at its failure threshold
    bool startupFailed = false;   // which of the two (the stop's reason)
};

struct DesiredService {
    Service spec;
    int64_t generation = 0;
    /// The slots wanted on this node (a master's assignment: slots 5 and 9 of
    /// web); none: 0..replicas-1.
    std::optional<std::vector<int>> slots;
};

/// The slots D wants on this node, ascending.
std::vector<int> wantedSlots(const DesiredService& d);
/// Does D want SLOT on this node?
bool wantsSlot(const DesiredService& d, int slot);

struct Action {
    enum class Kind { Start, Stop } kind = Kind::Start;
    std::string service;
    int slot = 0;
    int64_t generation = 0;    // Start: of the spec to start
    int restarts = 0;          // Start: the slot's restart count for the new container
    std::string container;     // Stop: which
    std::string reason;        // "replica", "restart", "liveness", "startup", "phoenix", "update", "scale down",
                               // "unassigned" (explicit slots), "deleted"
    TimePoint notBefore{0};    // Start: not before this time (backoff)
    bool operator==(const Action&) const = default;
};

/// The actions at NOW. UNREADABLE: services whose containers are left alone
/// as they are (declared, but their spec cannot be read: never "deleted").
std::vector<Action> plan(const std::vector<DesiredService>& desired, const std::vector<Observed>& observed,
                         TimePoint now, const std::set<std::string>& unreadable = {});

}  // namespace hull::orchestrator
