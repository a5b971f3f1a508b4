// The probe rules: thresholds, schedules and backoff, with made-up clocks.
#include <catch2/catch.hpp>

#include "orchestrator/core/probes.hpp"

using namespace hull::orchestrator;
using std::chrono::milliseconds;

TEST_CASE("probe: thresholds flip health only after runs of results", "[probe]") {
    ProbeState s(2, 3);
    CHECK(s.health() == ProbeState::Health::Unknown);
    CHECK_FALSE(s.record(true));
    CHECK(s.record(true));
    CHECK(s.health() == ProbeState::Health::Healthy);
    CHECK_FALSE(s.record(false));
    CHECK_FALSE(s.record(false));
    CHECK_FALSE(s.record(true));  // a success resets the failure run
    CHECK_FALSE(s.record(false));
    CHECK_FALSE(s.record(false));
    CHECK(s.record(false));
    CHECK(s.health() == ProbeState::Health::Unhealthy);
}

TEST_CASE("probe: backoff doubles up to its cap", "[probe]") {
    CHECK(backoffDelay(milliseconds(100), 2, milliseconds(1000), 0) == milliseconds(100));
    CHECK(backoffDelay(milliseconds(100), 2, milliseconds(1000), 1) == milliseconds(200));
    CHECK(backoffDelay(milliseconds(100), 2, milliseconds(1000), 3) == milliseconds(800));
    CHECK(backoffDelay(milliseconds(100), 2, milliseconds(1000), 4) == milliseconds(1000));
    CHECK(backoffDelay(milliseconds(100), 2, milliseconds(1000), 500) == milliseconds(1000));
}

namespace {

Probe probeEvery(int64_t periodMs, int successThreshold = 1, int failureThreshold = 3, int64_t initialDelayMs = 0) {
    Probe p;
    p.kind = Probe::Kind::Exec;
    p.exec = {"true"};
    p.period = milliseconds(periodMs);
    p.initialDelay = milliseconds(initialDelayMs);
    p.successThreshold = successThreshold;
    p.failureThreshold = failureThreshold;
    return p;
}

using K = ContainerProbes::Kind;

}  // namespace

TEST_CASE("probe: startup holds back readiness and liveness until it succeeds, then never runs again", "[probe]") {
    ContainerProbes c(probeEvery(100, 2, 5, 50), probeEvery(200), probeEvery(300), 1000);
    CHECK(c.due(1000).empty());  // initial delay
    CHECK(c.due(1049).empty());
    CHECK(c.due(1050) == std::vector<K>{K::Startup});
    CHECK(c.due(1200).empty());  // its check is still out
    CHECK_FALSE(c.record(K::Startup, false));
    CHECK(c.due(1200) == std::vector<K>{K::Startup});  // period elapsed since 1050
    CHECK_FALSE(c.record(K::Startup, true));
    CHECK(c.due(1250).empty());  // next at 1300
    CHECK_FALSE(c.started());
    CHECK_FALSE(c.ready());
    CHECK(c.due(1300) == std::vector<K>{K::Startup});
    CHECK(c.record(K::Startup, true));  // two in a row: started
    CHECK(c.started());
    CHECK_FALSE(c.ready());  // readiness has not said so yet
    // Readiness and liveness are past their (zero) initial delay: both at once.
    CHECK(c.due(1310) == std::vector<K>{K::Readiness, K::Liveness});
    CHECK(c.record(K::Readiness, true));
    CHECK(c.ready());
    c.record(K::Liveness, true);
    // Startup never runs again, whatever the others do.
    for (int64_t t = 1400; t < 5000; t += 50)
        for (K k : c.due(t)) {
            CHECK(k != K::Startup);
            c.record(k, false);
        }
    CHECK_FALSE(c.ready());
    CHECK(c.livenessFailed());
    CHECK_FALSE(c.startupFailed());
}

TEST_CASE("probe: a startup probe at its failure threshold fails the container, and the others never ran", "[probe]") {
    ContainerProbes c(probeEvery(100, 1, 3), probeEvery(100), probeEvery(100), 0);
    int startupRuns = 0;
    for (int64_t t = 0; t < 2000; t += 10)
        for (K k : c.due(t)) {
            REQUIRE(k == K::Startup);
            ++startupRuns;
            bool changed = c.record(k, false);
            CHECK(changed == (startupRuns == 3));
        }
    CHECK(startupRuns == 3);  // then nothing more is due: the container is done for
    CHECK(c.startupFailed());
    CHECK_FALSE(c.started());
    CHECK_FALSE(c.ready());
    CHECK(c.health(K::Readiness) == ProbeState::Health::Unknown);
    CHECK(c.health(K::Liveness) == ProbeState::Health::Unknown);
}

TEST_CASE("probe: without a startup probe, readiness and liveness start at their initial delays", "[probe]") {
    ContainerProbes none(std::nullopt, std::nullopt, std::nullopt, 0);
    CHECK(none.started());
    CHECK(none.ready());  // nothing to wait for
    CHECK(none.due(100).empty());

    ContainerProbes c(std::nullopt, probeEvery(100, 1, 3, 500), probeEvery(100, 1, 2, 1000), 0);
    CHECK(c.started());
    CHECK_FALSE(c.ready());
    CHECK(c.due(499).empty());
    CHECK(c.due(500) == std::vector<K>{K::Readiness});
    c.record(K::Readiness, true);
    CHECK(c.ready());
    CHECK(c.due(1000) == std::vector<K>{K::Readiness, K::Liveness});
    c.record(K::Readiness, true);
    CHECK_FALSE(c.record(K::Liveness, false));
    CHECK(c.due(1100) == std::vector<K>{K::Readiness, K::Liveness});
    c.record(K::Readiness, true);
    CHECK(c.record(K::Liveness, false));
    CHECK(c.livenessFailed());
}
