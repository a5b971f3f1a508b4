#pragma once
// Health probes the node agent runs against a container: a TCP connect, an
// HTTP GET, and the bookkeeping of thresholds. The exec probe runs through the
// runtime facade (Engine::exec) and only its result enters this bookkeeping.
#include <chrono>
#include <cstdint>
#include <string>

#include "sys/error.hpp"

namespace hull::orchestrator {

struct ProbeResult {
    bool ok = false;
    std::chrono::microseconds latency{0};
    std::string detail;  // "HTTP 503", "connect: Connection refused", "timed out after 500 ms"
};

/// Connect to IP:PORT within TIMEOUT; success when the connection is accepted.
ProbeResult probeTcp(const std::string& ip, uint16_t port, std::chrono::milliseconds timeout);
/// GET PATH from IP:PORT within TIMEOUT (HTTP/1.0, Host: IP); success on a 2xx or 3xx status.
ProbeResult probeHttp(const std::string& ip, uint16_t port, const std::string& path, std::chrono::milliseconds timeout);

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

/// Restart backoff: INITIAL × FACTOR^restarts, capped at MAX.
std::chrono::milliseconds backoffDelay(std::chrono::milliseconds initial, double factor, std::chrono::milliseconds max,
                                       int restarts);

}  // namespace hull::orchestrator
