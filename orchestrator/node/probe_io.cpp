#include "orchestrator/node/probe_io.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "sys/unique_fd.hpp"

namespace hull::orchestrator {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int remainingMs(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? int(left) : 0;
}

/// A connected socket to IP:PORT before DEADLINE, or an error text.
UniqueFd connectBy(const std::string& ip, uint16_t port, Clock::time_point deadline, std::string& err) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) {
        err = "bad address " + ip;
        return {};
    }
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s) {
        err = std::string("socket: ") + std::strerror(errno);
        return {};
    }
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 && errno != EINPROGRESS) {
        err = std::string("connect: ") + std::strerror(errno);
        return {};
    }
    pollfd p{s.get(), POLLOUT, 0};
    int n = ::poll(&p, 1, remainingMs(deadline));
    if (n == 0) {
        err = "timed out connecting";
        return {};
    }
    int soErr = 0;
    socklen_t len = sizeof soErr;
    ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &soErr, &len);
    if (n < 0 || soErr) {
        err = std::string("connect: ") + std::strerror(soErr ? soErr : errno);
        return {};
    }
    return s;
}

}  // namespace

ProbeResult probeTcp(const std::string& ip, uint16_t port, milliseconds timeout) {
    auto start = Clock::now();
    ProbeResult r;
    auto s = connectBy(ip, port, start + timeout, r.detail);
    r.ok = static_cast<bool>(s);
    if (r.ok) r.detail = "connected";
    r.latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    return r;
}

ProbeResult probeHttp(const std::string& ip, uint16_t port, const std::string& path, milliseconds timeout) {
    auto start = Clock::now();
    auto deadline = start + timeout;
    ProbeResult r;
    auto done = [&] {
        r.latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
        return r;
    };
    auto s = connectBy(ip, port, deadline, r.detail);
    if (!s) return done();
    std::string req = "GET " + (path.empty() ? std::string("/") : path) + " HTTP/1.0\r\nHost: " + ip +
                      "\r\nUser-Agent: hull-probe\r\nConnection: close\r\n\r\n";
    size_t sent = 0;
    while (sent < req.size()) {
        pollfd p{s.get(), POLLOUT, 0};
        if (::poll(&p, 1, remainingMs(deadline)) <= 0) {
            r.detail = "timed out sending";
            return done();
        }
        ssize_t n = ::send(s.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            r.detail = std::string("send: ") + std::strerror(errno);
            return done();
        }
        if (n > 0) sent += size_t(n);
    }
    // The status line is all we need: "HTTP/1.x NNN ...".
    std::string head;
    while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
        pollfd p{s.get(), POLLIN, 0};
        if (::poll(&p, 1, remainingMs(deadline)) <= 0) {
            r.detail = "timed out after " + std::to_string(timeout.count()) + " ms waiting for a response";
            return done();
        }
        char buf[1024];
        ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            r.detail = std::string("recv: ") + std::strerror(errno);
            return done();
        }
        head.append(buf, size_t(n));
    }
    int status = 0;
    if (head.rfind("HTTP/1.", 0) == 0 && head.size() >= 12) status = std::atoi(head.c_str() + 9);
    if (status == 0) {
        r.detail = "not an HTTP response";
        return done();
    }
    r.ok = status >= 200 && status < 400;
    r.detail = "HTTP " + std::to_string(status);
    return done();
}

}  // namespace hull::orchestrator
