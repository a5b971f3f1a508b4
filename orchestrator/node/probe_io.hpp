#pragma once
// The checks behind TCP and HTTP probes: a connect and a GET against a
// container's address, run asynchronously on the agent's io_context, each
// ended by a timer at its timeout. Nothing here blocks: a probe against a port
// that accepts and never answers costs the loop nothing while it waits.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

namespace hull::orchestrator {

struct ProbeResult {
    bool ok = false;
    std::chrono::microseconds latency{0};
    std::string detail;  // "HTTP 503", "connect: Connection refused", "timed out after 500 ms waiting for a response"
};

/// A check under way. cancel() ends it at once; its callback then never runs.
/// Dropping the handle does not cancel it (the check keeps itself alive until it ends).
class ProbeCheck {
public:
    virtual ~ProbeCheck() = default;
    virtual void cancel() = 0;
};

using ProbeDone = std::function<void(const ProbeResult&)>;

/// Connect to IP:PORT within TIMEOUT; success when the connection is accepted.
/// DONE runs once, on IOC, never from within this call.
std::shared_ptr<ProbeCheck> checkTcp(boost::asio::io_context& ioc, const std::string& ip, uint16_t port,
                                     std::chrono::milliseconds timeout, ProbeDone done);
/// GET PATH from IP:PORT within TIMEOUT (HTTP/1.0, Host: IP); success on a 2xx
/// or 3xx status. DONE runs once, on IOC, never from within this call.
std::shared_ptr<ProbeCheck> checkHttp(boost::asio::io_context& ioc, const std::string& ip, uint16_t port,
                                      const std::string& path, std::chrono::milliseconds timeout, ProbeDone done);

}  // namespace hull::orchestrator
