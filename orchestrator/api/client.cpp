#include "orchestrator/api/client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <optional>

#include "orchestrator/api/https_client.hpp"
#include "orchestrator/api/messages.hpp"
#include "sys/base64.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/unique_fd.hpp"

namespace hull::orchestrator::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Result<ApiTarget> resolveTarget(const std::string& configFlag, const std::string& socket) {
    std::string file = configFlag;
    if (file.empty())
        if (const char* env = std::getenv("HULL_CONFIG"); env && *env) file = env;
    if (file.empty())
        if (const char* home = std::getenv("HOME"); home && *home) {
            std::string def = std::string(home) + "/.config/hull/config";
            if (::access(def.c_str(), F_OK) == 0) file = def;
        }
    ApiTarget t;
    if (file.empty()) {
        t.socket = socket;
        return t;
    }
    auto text = sys::readFile(file);
    if (!text) return fail(std::move(text).error().context("config"));
    auto v = json::Value::parse(*text);
    if (!v) return fail(std::move(v).error().context("config " + file));
    t.config = file;
    for (auto url : sys::split(json::stringOf(*v, "server"), ',', false)) {
        while (!url.empty() && url.back() == '/') url.pop_back();
        if (!url.empty()) t.urls.push_back(url);
    }
    if (!t.urls.empty()) t.url = t.urls[0];
    t.ca = json::stringOf(*v, "ca");
    t.token = json::stringOf(*v, "token");
    if (t.url.empty() || t.ca.empty() || t.token.empty())
        return failInvalid("config " + file + ": expected \"server\", \"ca\" and \"token\" (the shape of a master's admin.conf)");
    return t;
}

Result<std::pair<int, std::string>> apiCall(const ApiTarget& t, const std::string& method, const std::string& target,
                                            const std::string& body) {
    if (!t.master()) return unixRequest(t.socket, method, target, body);
    ClientOptions o;
    o.caPem = t.ca;
    o.bearerToken = t.token;
    // Masters in turn until one answers: a leader that died answers nothing; a
    // standby forwards to the leader, or answers 503 when it knows none (an
    // election, etcd without quorum), and then the next is asked; when none
    // does better, that 503 and its reason are the answer. (A request whose
    // answer was lost may then reach a second master: the API's changes are
    // idempotent but for a join-token rotation, which would rotate twice.)
    std::string tried;
    std::optional<std::pair<int, std::string>> unavailable;
    for (const auto& url : t.urls.empty() ? std::vector<std::string>{t.url} : t.urls) {
        auto r = httpsRequest(method, url + target, body, o);
        if (r && r->status == 503) {
            unavailable = std::make_pair(r->status, r->body);
            continue;
        }
        if (r) return std::make_pair(r->status, r->body);
        tried += (tried.empty() ? "" : "; ") + r.error().message();
    }
    if (unavailable) return *unavailable;
    return fail(Error::plain(EHOSTUNREACH, "cannot reach the master (" + t.config + "): " + tried));
}

Result<std::pair<int, std::string>> unixRequest(const std::string& socketPath, const std::string& method,
                                                const std::string& target, const std::string& body) {
    asio::io_context ioc;
    asio::local::stream_protocol::socket sock(ioc);
    beast::error_code ec;
    sock.connect(asio::local::stream_protocol::endpoint(socketPath), ec);
    if (ec)
        return fail(Error::plain(ECONNREFUSED, "cannot reach the node agent at " + socketPath + ": " + ec.message() +
                                                   " (is `hull node` running? For a cluster: --config admin.conf or $HULL_CONFIG)"));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "hull-node");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(sock, req, ec);
    if (ec) return fail(Error::plain(EIO, "node agent: " + ec.message()));
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res, ec);
    if (ec && ec != http::error::end_of_stream) return fail(Error::plain(EIO, "node agent: " + ec.message()));
    return std::make_pair(int(res.result_int()), res.body());
}

namespace {

/// A stream WebSocket to the master T (its CA, the admin token): PATH's URL and the options.
std::pair<std::string, ClientOptions> masterStream(const ApiTarget& t, const std::string& path) {
    ClientOptions o;
    o.caPem = t.ca;
    o.bearerToken = t.token;
    // A master that dies while the stream is quiet (a follow, a command that
    // prints nothing) is noticed within seconds.
    o.wsPingEvery = std::chrono::milliseconds(5000);
    std::string url = t.url;
    // Several masters (on etcd): a standby refuses streams, so the stream goes
    // to the leader, as the cluster's status (from whichever master answers) names it.
    if (t.urls.size() > 1)
        if (auto st = apiCall(t, "GET", "/v1/cluster/status", ""); st && st->first == 200)
            if (auto status = decode<ClusterStatus>(st->second))
                for (const auto& m : status->masters)
                    if (m.name == status->leader && !m.address.empty() && m.address.rfind("0.0.0.0:", 0) != 0 &&
                        m.address.rfind("[::]:", 0) != 0)
                        url = "https://" + m.address;
    url.replace(0, url.find("://"), "wss");
    return {url + path, o};
}

}  // namespace

Result<void> streamLogs(const ApiTarget& t, const std::string& query, long tail, bool follow,
                        const std::function<void(std::string_view)>& out) {
    if (!t.master()) return failInvalid("logs: not a master target");
    auto [url, o] = masterStream(t, "/v1/logs");
    asio::io_context ioc;
    std::optional<Error> failure;
    bool ended = false;
    std::shared_ptr<WebSocketClient> ws;
    ws = WebSocketClient::create(
        ioc, url, o,
        {[&] {
             json::Value req = json::Value::object();
             req.set("container", query);
             req.set("tail", int64_t(tail));
             req.set("follow", follow);
             ws->send(req.dump());
         },
         [&](std::string text) {
             auto m = json::Value::parse(text);
             if (!m || !m->isObject()) return;
             if (const json::Value* d = m->find("data"); d && d->isString()) {
                 auto bytes = sys::base64Decode(d->asString());
                 if (bytes) out(*bytes);
                 else failure = Error::plain(EPROTO, "logs: the master sent bad data: " + bytes.error().message());
                 return;
             }
             if (const json::Value* e = m->find("end"); e && e->isBool()) {
                 ended = true;
                 if (std::string why = json::stringOf(*m, "error"); !why.empty()) failure = Error::plain(ENOENT, why);
                 ws->close();
             }
         },
         [&](const std::string& why) {
             if (!ended && !failure)
                 failure = Error::plain(EIO, "logs: the stream ended early: " + why + " (" + t.config + ")");
         }});
    ws->connect();
    ioc.run();
    ws.reset();
    if (failure) return fail(*failure);
    return {};
}

namespace {

/// Our terminal (fd 0) and stdin's file flags as they were, put back on destruction:
/// asio's reads turn on O_NONBLOCK, which the shell shares with us.
class TerminalGuard {
public:
    explicit TerminalGuard(bool raw) {
        flags_ = ::fcntl(0, F_GETFL);
        if (raw && ::tcgetattr(0, &saved_) == 0) {
            struct termios t = saved_;
            ::cfmakeraw(&t);
            raw_ = ::tcsetattr(0, TCSADRAIN, &t) == 0;
        }
        struct sigaction ign {};
        ign.sa_handler = SIG_IGN;
        ::sigaction(SIGPIPE, &ign, &pipe_);  // a closed stdout is an EPIPE we handle, not our death
    }
    ~TerminalGuard() {
        if (raw_) ::tcsetattr(0, TCSADRAIN, &saved_);
        if (flags_ >= 0) ::fcntl(0, F_SETFL, flags_);
        ::sigaction(SIGPIPE, &pipe_, nullptr);
    }
    TerminalGuard(const TerminalGuard&) = delete;
    TerminalGuard& operator=(const TerminalGuard&) = delete;

private:
    struct termios saved_ {};
    struct sigaction pipe_ {};
    bool raw_ = false;
    int flags_ = -1;
};

/// All of DATA to FD, waiting when it is non-blocking and full; false on an error (EPIPE).
bool writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n > 0) {
            data.remove_prefix(size_t(n));
        } else if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {fd, POLLOUT, 0};
            ::poll(&p, 1, -1);
        } else if (n < 0 && errno != EINTR) {
            return false;
        }
    }
    return true;
}

std::pair<int, int> terminalSize(int fd) {
    struct winsize ws {};
    if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) return {ws.ws_row, ws.ws_col};
    return {0, 0};
}

}  // namespace

Result<int> execRemote(const ApiTarget& t, const RemoteExec& x) {
    if (!t.master()) return failInvalid("exec: not a master target");
    auto [url, o] = masterStream(t, "/v1/exec");
    asio::io_context ioc;
    // The signals first: from here on SIGINT, SIGTERM and SIGHUP end the
    // session through the path that restores the terminal.
    asio::signal_set sigs(ioc, SIGINT, SIGTERM, SIGHUP);
    sigs.add(SIGWINCH);
    const bool terminal = ::isatty(0) == 1;
    TerminalGuard guard(x.tty && terminal);

    std::optional<Error> failure;
    std::optional<int> exitCode;
    int signalled = 0;
    std::shared_ptr<WebSocketClient> ws;
    asio::posix::stream_descriptor in(ioc);
    UniqueFd plainIn;  // stdin as a regular file or device that epoll refuses: plain reads
    std::string inBuf(64 << 10, '\0');
    bool done = false;

    // Flow control: at most kWindow bytes of stdin on their way; the node
    // credits back what the command took ({"credit": N}), and reading waits
    // meanwhile (so does whoever writes into our stdin).
    constexpr size_t kWindow = 1 << 20;
    size_t inFlight = 0;
    std::function<void()> resume;  // reading stopped for the window: how to go on
    auto sendStdin = [&](std::string_view bytes) {
        json::Value m = json::Value::object();
        m.set("stdin", sys::base64Encode(bytes));
        ws->send(m.dump());
        inFlight += bytes.size();
    };
    auto sendEof = [&] { ws->send(R"({"eof":true})"); };
    std::function<void()> readIn = [&] {
        in.async_read_some(asio::buffer(inBuf), [&](boost::system::error_code ec, size_t n) {
            if (done) return;
            if (n > 0) sendStdin(std::string_view(inBuf).substr(0, n));
            if (ec) return sendEof();
            if (inFlight >= kWindow) return void(resume = readIn);
            readIn();
        });
    };
    // One chunk a turn of the loop: the session's messages go on meanwhile.
    std::function<void()> readPlain = [&] {
        if (done) return;
        if (inFlight >= kWindow) return void(resume = [&] { asio::post(ioc, readPlain); });
        ssize_t n = ::read(plainIn.get(), inBuf.data(), inBuf.size());
        if (n < 0 && errno == EINTR) return asio::post(ioc, readPlain);
        if (n <= 0) return sendEof();
        sendStdin(std::string_view(inBuf).substr(0, size_t(n)));
        asio::post(ioc, readPlain);
    };
    auto startInput = [&]() -> Result<void> {
        struct stat st {};
        if (::fstat(0, &st) < 0) return failErrno("exec: stdin");
        int fd = ::fcntl(0, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) return failErrno("exec: stdin");
        if (S_ISREG(st.st_mode) || (S_ISCHR(st.st_mode) && !terminal)) {
            plainIn.reset(fd);
            asio::post(ioc, readPlain);
            return {};
        }
        boost::system::error_code ec;
        in.assign(fd, ec);
        if (ec) {
            ::close(fd);
            return fail(Error::plain(EIO, "exec: stdin: " + ec.message()));
        }
        readIn();
        return {};
    };
    auto stop = [&] {
        done = true;
        boost::system::error_code ignored;
        sigs.cancel(ignored);
        in.close(ignored);
    };
    std::function<void()> waitSignal = [&] {
        sigs.async_wait([&](boost::system::error_code ec, int sig) {
            if (ec || done) return;
            if (sig == SIGWINCH) {
                if (auto [rows, cols] = terminalSize(0); x.tty && rows > 0) {
                    json::Value m = json::Value::object();
                    json::Value size = json::Value::array();
                    size.push(int64_t(rows));
                    size.push(int64_t(cols));
                    m.set("resize", size);
                    ws->send(m.dump());
                }
                return waitSignal();
            }
            signalled = sig;  // the master cancels the exec when we go
            ws->close();
        });
    };
    ws = WebSocketClient::create(
        ioc, url, o,
        {[&] {
             json::Value req = json::Value::object();
             req.set("container", x.container);
             req.set("args", json::stringArray(x.args));
             req.set("env", json::stringArray(x.env));
             req.set("user", x.user);
             req.set("tty", x.tty);
             req.set("interactive", x.interactive);
             auto [rows, cols] = terminalSize(terminal ? 0 : 1);
             req.set("rows", int64_t(rows));
             req.set("cols", int64_t(cols));
             ws->send(req.dump());
             if (x.interactive)
                 if (auto r = startInput(); !r) {
                     failure = r.error();
                     ws->close();
                 }
         },
         [&](std::string text) {
             auto m = json::Value::parse(text);
             if (!m || !m->isObject() || done) return;
             if (const json::Value* c = m->find("credit")) {
                 int64_t n = 0;
                 if (c->toInt64(n) && n > 0) inFlight -= std::min(inFlight, size_t(n));
                 if (resume && inFlight < kWindow) std::exchange(resume, nullptr)();
                 return;
             }
             for (const char* key : {"data", "stderr"})
                 if (const json::Value* d = m->find(key); d && d->isString()) {
                     auto bytes = sys::base64Decode(d->asString());
                     if (!bytes) {
                         failure = Error::plain(EPROTO, "exec: the master sent bad data: " + bytes.error().message());
                         return ws->close();
                     }
                     if (!writeAll(key[0] == 'd' ? 1 : 2, *bytes)) {
                         signalled = SIGPIPE;  // as if it had killed us, but with the terminal put back
                         return ws->close();
                     }
                     return;
                 }
             int64_t code = 0;
             if (const json::Value* e = m->find("exit"); e && e->toInt64(code)) {
                 exitCode = int(code);
                 return ws->close();
             }
             if (m->find("end")) {
                 std::string why = json::stringOf(*m, "error");
                 failure = Error::plain(EINVAL, why.empty() ? "exec: ended without an exit code" : why);
                 ws->close();
             }
         },
         [&](const std::string& why) {
             if (!exitCode && !failure && !signalled)
                 failure = Error::plain(EIO, "exec: the session ended early: " + why + " (" + t.config + ")");
             stop();
         }});
    waitSignal();
    ws->connect();
    ioc.run();
    ws.reset();
    if (signalled) return 128 + signalled;
    if (failure) return fail(*failure);
    if (!exitCode) return fail(Error::plain(EIO, "exec: no exit code"));
    return *exitCode;
}

}  // namespace hull::orchestrator::api
