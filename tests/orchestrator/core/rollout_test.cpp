// A rolling update's pacing, failures and outcome, with a made-up clock.
#include <catch2/catch.hpp>

#include "orchestrator/core/rollout.hpp"

using namespace hull::orchestrator;
using namespace hull::orchestrator::core;

namespace {

/// N slots at generation 1, on nodes that are up.
std::vector<RolloutSlot> slotsAt1(int n) {
    std::vector<RolloutSlot> out;
    for (int i = 0; i < n; ++i) out.push_back({i, 1});
    return out;
}

UpdateConfig config(int parallelism, int64_t monitorMs = 5000, int64_t delayMs = 0) {
    UpdateConfig u;
    u.parallelism = parallelism;
    u.monitor = Millis(monitorMs);
    u.delay = Millis(delayMs);
    return u;
}

/// Moves SLOTS to generation 2 at NOW, as the master does with an answer.
void advance(std::vector<RolloutSlot>& slots, const std::vector<int>& which, int64_t now) {
    for (int s : which) {
        slots[size_t(s)].generation = 2;
        slots[size_t(s)].askedAt = now;
    }
}

/// Slot S's new copy is reported at SEEN and ready at READY.
void readyAt(std::vector<RolloutSlot>& slots, int s, int64_t seen, int64_t ready) {
    slots[size_t(s)].seenAt = seen;
    slots[size_t(s)].firstReadyAt = ready;
    slots[size_t(s)].ready = true;
}

}  // namespace

TEST_CASE("rollout: batches of parallelism, the next once the last is ready and the delay is over, then completed after "
          "monitor",
          "[rollout]") {
    auto slots = slotsAt1(5);
    auto u = config(2, 5000, 1000);
    auto step = stepRollout(u, 2, 5, slots, 0, 0, 0);
    REQUIRE(step.advance == std::vector<int>{0, 1});
    advance(slots, step.advance, 0);
    // Not ready yet: no next batch.
    CHECK(stepRollout(u, 2, 5, slots, 0, 0, 500).advance.empty());
    readyAt(slots, 0, 200, 800);
    CHECK(stepRollout(u, 2, 5, slots, 0, 0, 900).advance.empty());  // slot 1 is still coming
    readyAt(slots, 1, 300, 1000);
    CHECK(stepRollout(u, 2, 5, slots, 0, 0, 1500).advance.empty());  // the delay (1 s after the last turned ready)
    step = stepRollout(u, 2, 5, slots, 0, 0, 2000);
    REQUIRE(step.advance == std::vector<int>{2, 3});
    advance(slots, step.advance, 2000);
    readyAt(slots, 2, 2100, 2200);
    readyAt(slots, 3, 2100, 2300);
    step = stepRollout(u, 2, 5, slots, 0, 0, 3300);
    REQUIRE(step.advance == std::vector<int>{4});
    advance(slots, step.advance, 3300);
    readyAt(slots, 4, 3400, 3500);
    // All at 2 and ready, but the last is watched for monitor (5 s) before the rollout is done.
    CHECK(stepRollout(u, 2, 5, slots, 0, 0, 8000).outcome == RolloutStep::Outcome::Going);
    CHECK(stepRollout(u, 2, 5, slots, 0, 0, 8500).outcome == RolloutStep::Outcome::Completed);
}

TEST_CASE("rollout: parallelism 0 moves every slot at once, and slots on a lost node wait", "[rollout]") {
    auto slots = slotsAt1(4);
    slots[2].movable = false;
    auto step = stepRollout(config(0), 2, 4, slots, 0, 0, 0);
    CHECK(step.advance == std::vector<int>{0, 1, 3});
}

TEST_CASE("rollout: a new copy that is never ready, or exits within monitor, fails the rollout, with continue it goes on",
          "[rollout]") {
    auto slots = slotsAt1(3);
    auto u = config(1, 2000);
    advance(slots, stepRollout(u, 2, 3, slots, 0, 0, 0).advance, 0);
    slots[0].seenAt = 100;
    // Reported at 0.1 s, not ready by 2.1 s plus the startup budget (1 s).
    CHECK(stepRollout(u, 2, 3, slots, 0, 1000, 3000).outcome == RolloutStep::Outcome::Going);
    auto step = stepRollout(u, 2, 3, slots, 0, 1000, 3200);
    CHECK(step.outcome == RolloutStep::Outcome::Failed);
    REQUIRE(step.failed.size() == 1);
    CHECK(step.failed[0].second == "slot 0: not ready 3.1s after it started (monitor 2s)");
    CHECK(step.reason == "1 of 3 replica(s) failed: slot 0: not ready 3.1s after it started (monitor 2s)");

    // Ready, then exited 1 s later: within monitor, a failure.
    slots = slotsAt1(3);
    advance(slots, {0}, 0);
    readyAt(slots, 0, 100, 500);
    slots[0].exitedAt = 1500;
    step = stepRollout(u, 2, 3, slots, 0, 0, 1600);
    CHECK(step.outcome == RolloutStep::Outcome::Failed);
    CHECK(step.failed.at(0).second == "slot 0: exited 1s after it was ready");
    // Exited after monitor: not the rollout's doing.
    slots[0].exitedAt = 3000;
    CHECK(stepRollout(u, 2, 3, slots, 0, 0, 3100).failed.empty());

    // failureAction continue: counted, and the next slot goes.
    u.failureAction = UpdateConfig::FailureAction::Continue;
    slots = slotsAt1(3);
    advance(slots, {0}, 0);
    slots[0].seenAt = 10;
    step = stepRollout(u, 2, 3, slots, 0, 0, 2500);
    CHECK(step.outcome == RolloutStep::Outcome::Going);
    CHECK(step.failed.size() == 1);
    slots[0].failed = true;
    CHECK(stepRollout(u, 2, 3, slots, 1, 0, 2600).advance == std::vector<int>{1});
}

TEST_CASE("rollout: maxFailureRatio lets some failures pass", "[rollout]") {
    auto slots = slotsAt1(10);
    auto u = config(10, 1000);
    u.maxFailureRatio = 0.2;  // 2 of 10 may fail
    advance(slots, stepRollout(u, 2, 10, slots, 0, 0, 0).advance, 0);
    for (int i = 0; i < 10; ++i) readyAt(slots, i, 10, 20);
    slots[0].exitedAt = slots[1].exitedAt = 100;
    auto step = stepRollout(u, 2, 10, slots, 0, 0, 200);
    CHECK(step.outcome == RolloutStep::Outcome::Going);
    CHECK(step.failed.size() == 2);
    slots[0].failed = slots[1].failed = true;
    slots[2].exitedAt = 300;
    step = stepRollout(u, 2, 10, slots, 2, 0, 400);
    CHECK(step.outcome == RolloutStep::Outcome::Failed);
    CHECK(step.reason.rfind("3 of 10 replica(s) failed (at most 2 may)", 0) == 0);
}

TEST_CASE("rollout: an image no node starts fails after the start deadline", "[rollout]") {
    auto slots = slotsAt1(1);
    auto u = config(1, 1000);
    advance(slots, {0}, 1);
    CHECK(stepRollout(u, 2, 1, slots, 0, 0, kStartDeadlineMs + 1001).outcome == RolloutStep::Outcome::Going);
    auto step = stepRollout(u, 2, 1, slots, 0, 0, kStartDeadlineMs + 1002);
    CHECK(step.outcome == RolloutStep::Outcome::Failed);
}

TEST_CASE("rollout: the start budget comes from the startup probe, else the readiness probe", "[rollout]") {
    Service s;
    CHECK(startBudgetMs(s) == 0);
    s.readiness = Probe{};
    s.readiness->period = Millis(500);
    s.readiness->successThreshold = 2;
    s.readiness->initialDelay = Millis(1000);
    CHECK(startBudgetMs(s) == 2000);
    s.startup = Probe{};
    s.startup->period = Millis(200);
    s.startup->failureThreshold = 30;
    CHECK(startBudgetMs(s) == 6000);
}
