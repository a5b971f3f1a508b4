// TCP and HTTP probes against real sockets on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>

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

