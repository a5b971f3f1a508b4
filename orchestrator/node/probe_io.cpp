#include "orchestrator/node/probe_io.hpp"

#include <array>
#include <cstdlib>
#include <optional>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace hull::orchestrator {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr size_t kMaxStatusLine = 4096;  // "HTTP/1.x NNN ..." is all we read

/// One check: connect, and for HTTP send the request and read up to the end
/// of the status line. The timer and every I/O step hold the check alive;
/// whichever ends first (the I/O or the timer) finishes it, once.
class Check final : public ProbeCheck, public std::enable_shared_from_this<Check> {
public:
    Check(asio::io_context& ioc, std::chrono::milliseconds timeout, ProbeDone done)
        : sock_(ioc), timer_(ioc), timeout_(timeout), done_(std::move(done)), start_(Clock::now()) {}

    void cancel() override {
        done_ = nullptr;
        finish(false, "cancelled");
    }

    void start(const std::string& ip, uint16_t port, std::optional<std::string> request) {
        error_code ec;
        auto addr = asio::ip::make_address_v4(ip, ec);
        if (ec) {
            // Never from within checkTcp/checkHttp: the caller has not kept its handle yet.
            asio::post(sock_.get_executor(), [self = shared_from_this(), ip] { self->finish(false, "bad address " + ip); });
            return;
        }
        request_ = std::move(request);
        timer_.expires_after(timeout_);
        timer_.async_wait([self = shared_from_this()](error_code e) {
            if (e) return;  // cancelled: the check ended first
            self->finish(false, self->stage_ == Stage::Connect ? "timed out connecting"
                                                               : "timed out after " + std::to_string(self->timeout_.count()) +
                                                                     " ms waiting for a response");
        });
        sock_.async_connect(tcp::endpoint(addr, port), [self = shared_from_this()](error_code e) { self->connected(e); });
    }

private:
    enum class Stage { Connect, Exchange } stage_ = Stage::Connect;

    void connected(error_code e) {
        if (finished_) return;
        if (e) return finish(false, "connect: " + e.message());
        if (!request_) return finish(true, "connected");
        stage_ = Stage::Exchange;
        asio::async_write(sock_, asio::buffer(*request_), [self = shared_from_this()](error_code e, size_t) {
            if (self->finished_) return;
            if (e) return self->finish(false, "send: " + e.message());
            self->readSome();
        });
    }

    void readSome() {
        sock_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](error_code e, size_t n) {
            if (self->finished_) return;
            self->head_.append(self->buf_.data(), n);
            bool complete = self->head_.find("\r\n") != std::string::npos || self->head_.size() >= kMaxStatusLine;
            if (!complete && !e) return self->readSome();
            if (e && e != asio::error::eof && !complete) return self->finish(false, "recv: " + e.message());
            self->status();
        });
    }

    void status() {
        int code = 0;
        if (head_.rfind("HTTP/1.", 0) == 0 && head_.size() >= 12) code = std::atoi(head_.c_str() + 9);
        if (code == 0) return finish(false, "not an HTTP response");
        finish(code >= 200 && code < 400, "HTTP " + std::to_string(code));
    }

    void finish(bool ok, std::string detail) {
        if (finished_) return;
        finished_ = true;
        error_code ignored;
        timer_.cancel();
        sock_.close(ignored);  // ends an operation still out (it sees finished_ and returns)
        ProbeResult r;
        r.ok = ok;
        r.detail = std::move(detail);
        r.latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_);
        if (auto done = std::move(done_)) done(r);
    }

    tcp::socket sock_;
    asio::steady_timer timer_;
    std::chrono::milliseconds timeout_;
    ProbeDone done_;
    Clock::time_point start_;
    std::optional<std::string> request_;  // HTTP only
    std::array<char, 1024> buf_;
    std::string head_;
    bool finished_ = false;
};

}  // namespace

std::shared_ptr<ProbeCheck> checkTcp(asio::io_context& ioc, const std::string& ip, uint16_t port,
                                     std::chrono::milliseconds timeout, ProbeDone done) {
    auto c = std::make_shared<Check>(ioc, timeout, std::move(done));
    c->start(ip, port, std::nullopt);
    return c;
}

std::shared_ptr<ProbeCheck> checkHttp(asio::io_context& ioc, const std::string& ip, uint16_t port,
                                      const std::string& path, std::chrono::milliseconds timeout, ProbeDone done) {
    auto c = std::make_shared<Check>(ioc, timeout, std::move(done));
    c->start(ip, port,
             "GET " + (path.empty() ? std::string("/") : path) + " HTTP/1.0\r\nHost: " + ip +
                 "\r\nUser-Agent: hull-probe\r\nConnection: close\r\n\r\n");
    return c;
}

}  // namespace hull::orchestrator
