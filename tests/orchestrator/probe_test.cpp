// Probes against real sockets on 127.0.0.1, and the threshold and backoff rules.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "orchestrator/probe.hpp"

using namespace hull::orchestrator;
using std::chrono::milliseconds;

namespace {

/// A listener on 127.0.0.1:<ephemeral> answering each connection with REPLY
/// (after DELAY), until destroyed.
class Server {
public:
    Server(std::string reply, milliseconds delay = milliseconds(0)) : reply_(std::move(reply)), delay_(delay) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        REQUIRE(::listen(fd_, 16) == 0);
        thread_ = std::thread([this] {
            for (;;) {
                int c = ::accept(fd_, nullptr, nullptr);
                if (c < 0 || stop_) {
                    if (c >= 0) ::close(c);
                    return;
                }
                char buf[1024];
                (void)!::recv(c, buf, sizeof buf, 0);
                std::this_thread::sleep_for(delay_);
                (void)!::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
                ::close(c);
            }
        });
    }
    ~Server() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    uint16_t port() const { return port_; }

private:
    std::string reply_;
    milliseconds delay_;
    int fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

uint16_t closedPort() {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);  // nothing listens there now
    return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("probe: tcp succeeds on a listener and fails on a closed port", "[probe]") {
    Server up("");
    auto ok = probeTcp("127.0.0.1", up.port(), milliseconds(500));
    CHECK(ok.ok);
    auto down = probeTcp("127.0.0.1", closedPort(), milliseconds(500));
    CHECK_FALSE(down.ok);
    CHECK(down.detail.find("refused") != std::string::npos);
}

TEST_CASE("probe: http takes 2xx and 3xx, refuses 5xx, garbage and slowness", "[probe]") {
    Server ok("HTTP/1.0 200 OK\r\n\r\nfine");
    Server moved("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n");
    Server broken("HTTP/1.0 503 Service Unavailable\r\n\r\n");
    Server garbage("SSH-2.0-OpenSSH\r\n");
    Server slow("HTTP/1.0 200 OK\r\n\r\n", milliseconds(400));
    CHECK(probeHttp("127.0.0.1", ok.port(), "/healthz", milliseconds(500)).ok);
    CHECK(probeHttp("127.0.0.1", moved.port(), "/", milliseconds(500)).ok);
    auto b = probeHttp("127.0.0.1", broken.port(), "/", milliseconds(500));
    CHECK_FALSE(b.ok);
    CHECK(b.detail == "HTTP 503");
    CHECK_FALSE(probeHttp("127.0.0.1", garbage.port(), "/", milliseconds(500)).ok);
    auto t = probeHttp("127.0.0.1", slow.port(), "/", milliseconds(100));
    CHECK_FALSE(t.ok);
    CHECK(t.detail.find("timed out") != std::string::npos);
    CHECK(t.latency < std::chrono::milliseconds(350));  // gave up at the timeout, not at the reply
}

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
