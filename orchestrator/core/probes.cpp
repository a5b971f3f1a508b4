#include "orchestrator/core/probes.hpp"

#include <cmath>

namespace hull::orchestrator {

using std::chrono::milliseconds;

bool ProbeState::record(bool ok) {
    Health before = health_;
    if (ok) {
        ++okRun_;
        failRun_ = 0;
        if (okRun_ >= success_) health_ = Health::Healthy;
    } else {
        ++failRun_;
        okRun_ = 0;
        if (failRun_ >= failure_) health_ = Health::Unhealthy;
    }
    return health_ != before;
}

ContainerProbes::ContainerProbes(const std::optional<Probe>& startup, const std::optional<Probe>& readiness,
                                 const std::optional<Probe>& liveness, int64_t startedMs) {
    at(Kind::Startup).spec = startup;
    at(Kind::Readiness).spec = readiness;
    at(Kind::Liveness).spec = liveness;
    for (auto& p : probes_)
        if (p.spec) {
            p.state.emplace(p.spec->successThreshold, p.spec->failureThreshold);
            p.next = startedMs + p.spec->initialDelay.count();
        }
}

std::vector<ContainerProbes::Kind> ContainerProbes::due(int64_t now) {
    std::vector<Kind> out;
    // A failed startup ends the container; nothing more to learn from it.
    if (startupFailed()) return out;
    for (Kind k : kKinds) {
        One& p = at(k);
        if (!p.spec || p.out || now < p.next) continue;
        if ((k == Kind::Startup) == started()) continue;  // startup only before, the others only after
        p.out = true;
        p.next = now + p.spec->period.count();
        out.push_back(k);
    }
    return out;
}

bool ContainerProbes::record(Kind k, bool ok) {
    One& p = at(k);
    p.out = false;
    return p.state && p.state->record(ok);
}

ProbeState::Health ContainerProbes::health(Kind k) const {
    const One& p = at(k);
    return p.state ? p.state->health() : ProbeState::Health::Unknown;
}

bool ContainerProbes::started() const {
    return !at(Kind::Startup).spec || health(Kind::Startup) == ProbeState::Health::Healthy;
}

bool ContainerProbes::ready() const {
    return started() && (!at(Kind::Readiness).spec || health(Kind::Readiness) == ProbeState::Health::Healthy);
}

const char* probeKindName(ContainerProbes::Kind k) {
    switch (k) {
    case ContainerProbes::Kind::Startup: return "startup";
    case ContainerProbes::Kind::Readiness: return "readiness";
    case ContainerProbes::Kind::Liveness: return "liveness";
    }
    return "?";
}

milliseconds backoffDelay(milliseconds initial, double factor, milliseconds max, int restarts) {
    if (restarts <= 0) return initial;
    double d = double(initial.count()) * std::pow(factor < 1 ? 1 : factor, restarts);
    if (!std::isfinite(d) || d > double(max.count())) return max;
    return milliseconds(int64_t(d));
}

}  // namespace hull::orchestrator
