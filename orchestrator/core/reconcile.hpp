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
//  - a standalone service (no explicit slots): replacements for a changed spec
//    (generation) or an age beyond maxAge (the phoenix cycle) go one slot at a
//    time per service and start the new container first: the old one is
//    stopped only once the new one is ready, so the ready count never drops
//    below replicas;
//  - a master's service (explicit slots): each slot wants one (generation,
//    incarnation), (generation, 0) unless pinned, and runs the spec of that
//    generation. The master paces rollouts and its own phoenix cycle (it bumps
//    a slot's incarnation), so every slot whose container differs is replaced
//    at once, in the order the master gives: start-first (as above) or
//    stop-first (the old one is stopped, and the new one starts once the old
//    one has ended); maxAge is not the node's business. A slot whose last
//    container ended with another (generation, incarnation) than wanted starts
//    the wanted one at once (a new container, not a restart);
//  - slots beyond replicas (or no longer assigned), and services no longer
//    declared, are stopped; a service the caller names as unreadable (its
//    stored spec could not be read) is neither: its containers are left alone.
#include <chrono>
#include <map>
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
    int64_t incarnation = 0;  // hull.incarnation (none: 0)
    int slot = 0;
    enum class State { Starting, Running, Exited } state = State::Starting;
    TimePoint started{0}, finished{0};
    std::optional<int> exitCode;
    int restarts = 0;     // of the slot, when this container was started
    bool ready = false;   // readiness (or no readiness probe and running)
    bool livenessFailed = false;  // liveness, or startup, at its failure threshold
    bool startupFailed = false;   // which of the two (the stop's reason)
    /// Being stopped (its grace period): it counts for nothing, except that in
    /// stop-first order its slot's new container waits until it has ended.
    bool stopping = false;
};

/// What one slot wants: a container of this generation and incarnation.
struct SlotWant {
    int64_t generation = 0;
    int64_t incarnation = 0;
    bool operator==(const SlotWant&) const = default;
};

/// How a slot's container is replaced by one of another (generation, incarnation).
enum class ReplaceOrder { StartFirst, StopFirst };

struct DesiredService {
    Service spec;            // the spec of `generation`
    int64_t generation = 0;
    /// The slots wanted on this node (a master's assignment: slots 5 and 9 of
    /// web); none: 0..replicas-1, a standalone service.
    std::optional<std::vector<int>> slots;
    /// A master's slots that want another (generation, incarnation) than
    /// (generation, 0), by slot.
    std::map<int, SlotWant> pins;
    /// The specs of the other generations the pins name.
    std::map<int64_t, Service> versions;
    ReplaceOrder order = ReplaceOrder::StartFirst;

    /// Placed by a master (explicit slots): it paces replacements, not the node.
    bool managed() const { return slots.has_value(); }
    /// What SLOT wants: its pin, else (generation, 0).
    SlotWant want(int slot) const;
    /// The spec of GENERATION: `spec`, one of `versions`, or none.
    const Service* specOf(int64_t generation) const;
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
    int64_t incarnation = 0;   // Start: the slot's incarnation the new container carries
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
