#include "orchestrator/node/api_server.hpp"

#include <grp.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

extern char** environ;

namespace hull::orchestrator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using boost::system::error_code;

struct ApiServer::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& ioc, std::string p, Handler h, ApiLimits l)
        : acceptor(ioc), retry(ioc), path(std::move(p)), handler(std::move(h)), limits(l) {}

    void accept();

    local::acceptor acceptor;
    asio::steady_timer retry;  // after a failed accept (out of fds): again shortly, not in a hot loop
    std::string path;
    Handler handler;
    ApiLimits limits;
    size_t open = 0;  // connections
};

namespace {

/// One connection: read one request within the deadline, answer it, close.
/// The stream's expiry closes the socket on a client that is too slow, so
/// every operation ends, and with the last one the session.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(std::shared_ptr<ApiServer::Impl> server, local::socket sock)
        : server_(std::move(server)), stream_(std::move(sock)) {
        ++server_->open;
    }
    ~Session() { --server_->open; }

    void start() {
        stream_.expires_after(server_->limits.deadline);
        http::async_read(stream_, buf_, req_, [self = shared_from_this()](error_code ec, size_t) { self->answer(ec); });
    }

private:
    void answer(error_code ec) {
        // Closed, too slow (beast::error::timeout), or not HTTP: nothing to answer.
        if (ec) return;
        // Not while the agent is working on the answer: only the client's own pace is bounded.
        stream_.expires_never();
        server_->handler(std::string(req_.method_string()), std::string(req_.target()), req_.body(),
                         [self = shared_from_this()](ApiReply r) { self->send(std::move(r)); });
    }

    void send(ApiReply r) {
        res_ = http::response<http::string_body>{http::status(r.status), req_.version()};
        res_.set(http::field::content_type, r.contentType);
        res_.body() = std::move(r.body);
        res_.keep_alive(false);
        res_.prepare_payload();
        stream_.expires_after(server_->limits.deadline);
        http::async_write(stream_, res_, [self = shared_from_this()](error_code, size_t) {
            error_code ignored;
            self->stream_.socket().shutdown(local::socket::shutdown_both, ignored);
        });
    }

    std::shared_ptr<ApiServer::Impl> server_;
    beast::basic_stream<local> stream_;
    beast::flat_buffer buf_;
    http::request<http::string_body> req_;
    http::response<http::string_body> res_;
};

}  // namespace

void ApiServer::Impl::accept() {
    acceptor.async_accept([self = shared_from_this()](error_code ec, local::socket sock) {
        if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
        if (ec) {
            log::warnf("node: api: accept: %s", ec.message().c_str());
            self->retry.expires_after(std::chrono::milliseconds(100));
            self->retry.async_wait([self](error_code e) {
                if (!e) self->accept();
            });
            return;
        }
        // Over the cap: closed at once (the socket's destructor), so a flood
        // of clients costs an fd each only for a moment.
        if (self->open < self->limits.maxConnections) std::make_shared<Session>(self, std::move(sock))->start();
        self->accept();
    });
}

std::optional<gid_t> groupIdInFile(const std::string& groupFile, const std::string& name) {
    FILE* f = std::fopen(groupFile.c_str(), "re");
    if (!f) return std::nullopt;
    std::optional<gid_t> out;
    struct group g {};
    struct group* found = nullptr;
    std::vector<char> buf(4096);
    for (;;) {
        int r = ::fgetgrent_r(f, &g, buf.data(), buf.size(), &found);
        if (r == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);  // a group with many members: the same line again, with room
            continue;
        }
        if (r != 0 || !found) break;
        if (name == found->gr_name) {
            out = found->gr_gid;
            break;
        }
    }
    std::fclose(f);
    return out;
}

std::optional<gid_t> groupIdFromGetent(const std::string& name) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
    UniqueFd readEnd(fds[0]), writeEnd(fds[1]);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), STDOUT_FILENO);
    ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    std::string argGroup = "group";
    std::string argName = name;
    char* argv[] = {const_cast<char*>("getent"), argGroup.data(), argName.data(), nullptr};
    pid_t pid = -1;
    int err = ::posix_spawnp(&pid, "getent", &actions, nullptr, argv, environ);
    ::posix_spawn_file_actions_destroy(&actions);
    writeEnd.reset();
    if (err != 0) return std::nullopt;  // no getent: no NSS-only groups either
    std::string text;
    char chunk[512];
    for (ssize_t n; (n = ::read(readEnd.get(), chunk, sizeof chunk)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || text.size() > (1u << 20)) break;
        text.append(chunk, size_t(n));
    }
    readEnd.reset();  // a getent with more to say gets EPIPE rather than waiting on us forever
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
    // name:password:gid:members
    size_t a = text.find(':'), b = a == std::string::npos ? a : text.find(':', a + 1);
    size_t c = b == std::string::npos ? b : text.find(':', b + 1);
    if (c == std::string::npos || text.compare(0, a, name) != 0 || c == b + 1) return std::nullopt;
    std::string gid = text.substr(b + 1, c - b - 1);
    if (gid.find_first_not_of("0123456789") != std::string::npos || gid.size() > 10) return std::nullopt;
    unsigned long v = std::strtoul(gid.c_str(), nullptr, 10);
    if (v > 0xfffffffeul) return std::nullopt;
    return gid_t(v);
}

namespace {

/// The gid of the group NAME. /etc/group is read directly: that is where
/// groupadd and systemd-sysusers put a service's group, and what NSS's `files`
/// source (first on every distribution's nsswitch.conf) answers. Only a group
/// that is not there (LDAP, SSSD, systemd-userdb) is asked of NSS, by
/// `getent group` in a child, as dockerd does for its socket's group: getgrnam
/// here would map NSS's modules (libnss_systemd and what it links, ~300 KiB)
/// into the agent for the months it runs, for one lookup at start.
std::optional<gid_t> groupId(const std::string& name) {
    if (auto gid = groupIdInFile("/etc/group", name)) return gid;
    return groupIdFromGetent(name);
}

}  // namespace

Result<std::unique_ptr<ApiServer>> ApiServer::listen(asio::io_context& ioc, const std::string& path, Handler handler,
                                                     ApiLimits limits) {
    auto impl = std::make_shared<Impl>(ioc, path, std::move(handler), limits);
    ::unlink(path.c_str());
    error_code ec;
    impl->acceptor.open(local(), ec);
    if (!ec) impl->acceptor.bind(local::endpoint(path), ec);
    if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail(Error::plain(ec.value(), "node: listen on " + path + ": " + ec.message()));
    // root and the hull group only.
    ::chmod(path.c_str(), 0660);
    if (auto gid = groupId("hull")) (void)!::chown(path.c_str(), 0, *gid);
    impl->accept();
    return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

ApiServer::~ApiServer() {
    error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->retry.cancel();
    ::unlink(impl_->path.c_str());
}

size_t ApiServer::connections() const { return impl_->open; }

}  // namespace hull::orchestrator
