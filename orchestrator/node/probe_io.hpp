#pragma once
// The checks behind TCP and HTTP probes: a connect and a GET against a
// container's address, each bounded by its timeout.
#include <chrono>
#include <cstdint>
#include <string>

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

}  // namespace hull::orchestrator
