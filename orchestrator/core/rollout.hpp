#pragma once
// A rolling update as a pure function of the slots' state and a made-up clock:
// which slots move to the new generation now, which of those failed, and
// whether the rollout is over. The master keeps the clock readings per slot
// (when it asked, when the node first reported the new copy, when it was first
// ready, when it exited) and acts on the answer: it moves slots by writing
// their placement's generation (nodes then replace the container, start-first
// or stop-first as the service says), rolls back by writing the previous
// generation back, pauses by doing nothing more.
//
// Rules (UpdateConfig in model/service.hpp):
//  - slots move in batches of `parallelism` (0: all at once), lowest first,
//    only those placed on a node that is up; the next batch waits until every
//    slot of this one has had its new copy ready (or failed, with
//    failureAction continue), then `delay`;
//  - a moved slot fails when its new copy exits (or is restarted) before it has
//    been ready for `monitor`, when it is not ready `monitor` plus the startup
//    budget after the node first reported it, or when no node reported it
//    within kStartDeadlineMs plus `monitor` (an image that cannot be pulled);
//  - more failures than maxFailureRatio x replicas (ratio 0: any) end the
//    rollout as failed, unless failureAction is continue;
//  - it completes once every slot runs the new generation and each new copy
//    has been ready for `monitor`.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "orchestrator/model/service.hpp"

namespace hull::orchestrator::core {

/// How long a node may take to report a new copy at all (a pull) before the slot fails.
inline constexpr int64_t kStartDeadlineMs = 120000;

struct RolloutSlot {
    int slot = 0;
    int64_t generation = 0;  // its placement's now
    bool movable = true;     // placed on a node that is up
    // Of the slot's own copy at the target generation, by the master's clock (0: not yet):
    int64_t askedAt = 0;       // moved to the target
    int64_t seenAt = 0;        // first reported by its node
    int64_t firstReadyAt = 0;  // first reported ready
    int64_t exitedAt = 0;      // first reported exited or restarted
    bool ready = false;        // ready now
    bool failed = false;       // counted as a failure already
};

struct RolloutStep {
    std::vector<int> advance;                       // slots to move to the target generation now
    std::vector<std::pair<int, std::string>> failed;  // slots that failed now, and why
    enum class Outcome { Going, Completed, Failed } outcome = Outcome::Going;
    std::string reason;  // Failed: why ("2 of 6 replicas failed, more than maxFailureRatio 0: slot 0: ...")
};

/// One step of the rollout to TARGET. FAILURES: those counted before. STARTBUDGETMS: how
/// long the service's startup (or readiness) probe may take before a container is ready.
RolloutStep stepRollout(const UpdateConfig& update, int64_t target, int replicas, const std::vector<RolloutSlot>& slots,
                        int64_t failures, int64_t startBudgetMs, int64_t now);

/// The time a new container of S may take to be ready, from its probes:
/// the startup probe's initial delay plus failureThreshold periods, else the
/// readiness probe's initial delay plus successThreshold periods.
int64_t startBudgetMs(const Service& s);

}  // namespace hull::orchestrator::core
