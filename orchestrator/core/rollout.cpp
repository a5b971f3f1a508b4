#include "orchestrator/core/rollout.hpp"

#include <algorithm>
#include <cmath>

#include "orchestrator/core/lifecycle.hpp"

namespace hull::orchestrator::core {

int64_t startBudgetMs(const Service& s) {
    if (s.startup) return s.startup->initialDelay.count() + s.startup->period.count() * s.startup->failureThreshold;
    if (s.readiness)
        return s.readiness->initialDelay.count() + s.readiness->period.count() * s.readiness->successThreshold;
    return 0;
}

RolloutStep stepRollout(const UpdateConfig& u, int64_t target, int replicas, const std::vector<RolloutSlot>& slots,
                        int64_t failures, int64_t startBudget, int64_t now) {
    RolloutStep out;
    const int64_t monitor = u.monitor.count();
    bool inFlight = false, settling = false;
    int64_t lastReady = 0;  // when the last moved slot's new copy first turned ready
    int atTarget = 0;
    for (const auto& s : slots) {
        if (s.slot >= replicas || s.generation != target) continue;
        ++atTarget;
        if (s.failed) continue;
        std::string why;
        if (s.exitedAt && (!s.firstReadyAt || s.exitedAt - s.firstReadyAt < monitor)) {
            why = s.firstReadyAt ? "exited " + secondsText(s.exitedAt - s.firstReadyAt) + " after it was ready"
                                 : "exited before it was ready";
        } else if (!s.firstReadyAt && s.seenAt && now - s.seenAt > monitor + startBudget) {
            why = "not ready " + secondsText(now - s.seenAt) + " after it started (monitor " + secondsText(monitor) + ")";
        } else if (!s.firstReadyAt && !s.seenAt && s.askedAt && now - s.askedAt > kStartDeadlineMs + monitor) {
            why = "its node has not started it in " + secondsText(now - s.askedAt);
        }
        if (!why.empty()) {
            out.failed.push_back({s.slot, "slot " + std::to_string(s.slot) + ": " + why});
            continue;
        }
        if (!s.firstReadyAt) {
            inFlight = true;
        } else {
            lastReady = std::max(lastReady, s.firstReadyAt);
            if (now - s.firstReadyAt < monitor) settling = true;
        }
    }
    const int64_t total = failures + int64_t(out.failed.size());
    const int64_t allowed = int64_t(std::floor(u.maxFailureRatio * replicas + 1e-9));
    if (total > allowed && u.failureAction != UpdateConfig::FailureAction::Continue) {
        out.outcome = RolloutStep::Outcome::Failed;
        out.reason = std::to_string(total) + " of " + std::to_string(replicas) + " replica(s) failed";
        if (allowed > 0 || u.maxFailureRatio > 0) out.reason += " (at most " + std::to_string(allowed) + " may)";
        if (!out.failed.empty()) out.reason += ": " + out.failed.front().second;
        return out;
    }
    if (atTarget >= replicas && !inFlight && !settling) {
        out.outcome = RolloutStep::Outcome::Completed;
        return out;
    }
    if (inFlight || (lastReady && now - lastReady < u.delay.count())) return out;
    const size_t batch = u.parallelism > 0 ? size_t(u.parallelism) : slots.size();
    for (const auto& s : slots) {
        if (out.advance.size() >= batch) break;
        if (s.slot < replicas && s.generation != target && s.movable) out.advance.push_back(s.slot);
    }
    return out;
}

}  // namespace hull::orchestrator::core
