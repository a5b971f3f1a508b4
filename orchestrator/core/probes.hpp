#pragma once
// The rules of health probes, without running any: the bookkeeping of
// thresholds, when each of a container's probes runs, and the restart backoff.
// The node agent runs the checks (node/probe_io.hpp, exec through the runtime
// facade) and only their results enter this bookkeeping.
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/model/service.hpp"
#include "sys/error.hpp"

namespace hull::orchestrator {

/// Thresholds over consecutive results (Kubernetes' semantics): the state flips
/// to healthy after SUCCESS successes in a row and to unhealthy after FAILURE
/// failures in a row; it starts unknown.
class ProbeState {
public:
    enum class Health { Unknown, Healthy, Unhealthy };
    ProbeState(int successThreshold, int failureThreshold)
        : success_(successThreshold < 1 ? 1 : successThreshold), failure_(failureThreshold < 1 ? 1 : failureThreshold) {}
    /// Record one result; returns true when the health changed.
    bool record(bool ok);
    Health health() const { return health_; }

private:
    int success_, failure_;
    int okRun_ = 0, failRun_ = 0;
    Health health_ = Health::Unknown;
};

/// One container's startup, readiness and liveness probes, by Kubernetes' rules,
/// without running any: the agent asks due(), runs those checks (an exec check
/// may take several rounds) and record()s each result.
///  - a probe runs first at STARTED + its initialDelay, then at most once per
///    period, and never while its previous check is still out;
///  - until the startup probe has succeeded (successThreshold in a row),
///    readiness and liveness do not run and the container is not ready; once
///    it has, it never runs again for this container;
///  - a startup probe at its failureThreshold fails the container as a failed
///    liveness probe does (it is stopped and restarted per its policy).
class ContainerProbes {
public:
    enum class Kind { Startup, Readiness, Liveness };
    static constexpr std::array<Kind, 3> kKinds{Kind::Startup, Kind::Readiness, Kind::Liveness};

    ContainerProbes(const std::optional<Probe>& startup, const std::optional<Probe>& readiness,
                    const std::optional<Probe>& liveness, int64_t startedMs);
    /// The checks to run at NOW; each is out until its result is recorded.
    std::vector<Kind> due(int64_t nowMs);
    /// The result of a check due() handed out; true when that probe's health changed.
    bool record(Kind k, bool ok);

    const std::optional<Probe>& probe(Kind k) const { return at(k).spec; }
    ProbeState::Health health(Kind k) const;
    /// No startup probe, or it has succeeded.
    bool started() const;
    /// Started, and readiness healthy (or no readiness probe).
    bool ready() const;
    bool startupFailed() const { return health(Kind::Startup) == ProbeState::Health::Unhealthy; }
    bool livenessFailed() const { return health(Kind::Liveness) == ProbeState::Health::Unhealthy; }

private:
    struct One {
        std::optional<Probe> spec;
        std::optional<ProbeState> state;
        int64_t next = 0;  // not before (ms)
        bool out = false;  // a check is running
    };
    One& at(Kind k) { return probes_[size_t(k)]; }
    const One& at(Kind k) const { return probes_[size_t(k)]; }
    std::array<One, 3> probes_;
};

const char* probeKindName(ContainerProbes::Kind k);

/// Restart backoff: INITIAL × FACTOR^restarts, capped at MAX.
std::chrono::milliseconds backoffDelay(std::chrono::milliseconds initial, double factor, std::chrono::milliseconds max,
                                       int restarts);

}  // namespace hull::orchestrator
