// TCP and HTTP probes against real sockets on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "orchestrator/node/probe_io.hpp"

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

/// A listener that never accepts: the kernel completes the handshake, and nothing ever answers.
class BlackHole {
public:
    BlackHole() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        REQUIRE(::listen(fd_, 64) == 0);
    }
    ~BlackHole() { ::close(fd_); }
    uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    uint16_t port_ = 0;
};

/// Run one check to its end on an io_context of its own.
template <class Start>
ProbeResult runCheck(Start start) {
    boost::asio::io_context ioc;
    ProbeResult out;
    int calls = 0;
    auto keep = start(ioc, [&](const ProbeResult& r) {
        out = r;
        ++calls;
    });
    CHECK(calls == 0);  // never from within the call that starts it
    ioc.run();
    CHECK(calls == 1);
    return out;
}

ProbeResult tcp(uint16_t port, milliseconds timeout) {
    return runCheck([&](auto& ioc, auto done) { return checkTcp(ioc, "127.0.0.1", port, timeout, done); });
}

ProbeResult http(uint16_t port, const std::string& path, milliseconds timeout) {
    return runCheck([&](auto& ioc, auto done) { return checkHttp(ioc, "127.0.0.1", port, path, timeout, done); });
}

}  // namespace

TEST_CASE("probe: tcp succeeds on a listener and fails on a closed port or a bad address", "[probe]") {
    Server up("");
    auto ok = tcp(up.port(), milliseconds(500));
    CHECK(ok.ok);
    CHECK(ok.detail == "connected");
    auto down = tcp(closedPort(), milliseconds(500));
    CHECK_FALSE(down.ok);
    CHECK(down.detail.find("refused") != std::string::npos);
    auto bad = runCheck([](auto& ioc, auto done) { return checkTcp(ioc, "not-an-ip", 80, milliseconds(500), done); });
    CHECK_FALSE(bad.ok);
    CHECK(bad.detail == "bad address not-an-ip");
}

TEST_CASE("probe: http takes 2xx and 3xx, refuses 5xx, garbage and slowness", "[probe]") {
    Server ok("HTTP/1.0 200 OK\r\n\r\nfine");
    Server moved("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n");
    Server broken("HTTP/1.0 503 Service Unavailable\r\n\r\n");
    Server garbage("SSH-2.0-OpenSSH\r\n");
    Server empty("");
    Server slow("HTTP/1.0 200 OK\r\n\r\n", milliseconds(400));
    CHECK(http(ok.port(), "/healthz", milliseconds(500)).ok);
    CHECK(http(moved.port(), "/", milliseconds(500)).ok);
    auto b = http(broken.port(), "/", milliseconds(500));
    CHECK_FALSE(b.ok);
    CHECK(b.detail == "HTTP 503");
    CHECK_FALSE(http(garbage.port(), "/", milliseconds(500)).ok);
    CHECK(http(empty.port(), "/", milliseconds(500)).detail == "not an HTTP response");
    auto t = http(slow.port(), "/", milliseconds(100));
    CHECK_FALSE(t.ok);
    CHECK(t.detail == "timed out after 100 ms waiting for a response");
    CHECK(t.latency < std::chrono::milliseconds(350));  // gave up at the timeout, not at the reply
}

TEST_CASE("probe: checks run side by side: one against a black hole holds up no other", "[probe]") {
    BlackHole hole;
    Server ok("HTTP/1.0 200 OK\r\n\r\n");
    boost::asio::io_context ioc;
    std::vector<std::string> order;
    std::vector<std::shared_ptr<ProbeCheck>> checks;
    // Started first, each waits for its timeout; the good check started last ends first.
    for (int i = 0; i < 5; ++i)
        checks.push_back(checkHttp(ioc, "127.0.0.1", hole.port(), "/", milliseconds(300), [&](const ProbeResult& r) {
            CHECK_FALSE(r.ok);
            CHECK(r.detail == "timed out after 300 ms waiting for a response");
            order.push_back("hole");
        }));
    checks.push_back(checkHttp(ioc, "127.0.0.1", ok.port(), "/", milliseconds(300), [&](const ProbeResult& r) {
        CHECK(r.ok);
        order.push_back("ok");
    }));
    ioc.run();
    REQUIRE(order.size() == 6);
    CHECK(order.front() == "ok");
}

TEST_CASE("probe: a cancelled check ends at once and never calls back", "[probe]") {
    BlackHole hole;
    boost::asio::io_context ioc;
    int calls = 0;
    auto c = checkHttp(ioc, "127.0.0.1", hole.port(), "/", milliseconds(60000), [&](const ProbeResult&) { ++calls; });
    // Let it connect and send, then cancel it: run() returns once nothing is left (not after 60 s).
    ioc.run_for(std::chrono::milliseconds(100));
    c->cancel();
    c->cancel();  // twice is harmless
    ioc.restart();
    ioc.run();
    CHECK(calls == 0);
}
