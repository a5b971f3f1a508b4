// The agent's API server on a unix socket in a temp dir, with short limits:
// clients that send nothing, or too slowly, are closed at the deadline; past the
// cap a connection is closed at once; meanwhile requests are answered.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "orchestrator/api/client.hpp"
#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "orchestrator/node/agent.hpp"
#include "orchestrator/node/api_server.hpp"
#include "support.hpp"
#include "sys/unique_fd.hpp"

using namespace hull;
using namespace hull::orchestrator;
using std::chrono::milliseconds;

namespace {

UniqueFd connectTo(const std::string& path) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    return s;
}

/// Has the server closed FD (end of file within WAIT)?
bool closedWithin(int fd, milliseconds wait) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, int(wait.count())) <= 0) return false;
    char c;
    return ::recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

/// The server on an io_context of its own thread, stopped and joined at the end.
struct Running {
    test::TempDir dir{"hull-api"};
    std::string path = dir / "api.sock";
    boost::asio::io_context ioc;
    std::unique_ptr<ApiServer> server;
    std::vector<ApiServer::Respond> held;  // answers of /later, not sent yet
    std::thread thread;
    Running(ApiLimits limits) {
        auto s = ApiServer::listen(ioc, path, [this](const std::string& method, const std::string& target,
                                                     const std::string& body, ApiServer::Respond respond) {
            if (target == "/text") return respond(ApiReply{200, "plain", "text/plain"});
            // Answered later: held until /release comes.
            if (target == "/later") return held.push_back(std::move(respond));
            if (target == "/release") {
                for (auto& r : held) r(ApiReply{200, "released"});
                held.clear();
            }
            respond(ApiReply{target == "/missing" ? 404 : 200, method + " " + target + " " + body});
        }, limits);
        if (!s) FAIL(s.error().message());
        server = std::move(*s);
        thread = std::thread([this] { ioc.run(); });
    }
    size_t connections() {
        // Read on the server's thread: it is not thread-safe.
        std::promise<size_t> n;
        boost::asio::post(ioc, [&] { n.set_value(server->connections()); });
        return n.get_future().get();
    }
    ~Running() {
        ioc.stop();
        thread.join();
        server.reset();
    }
    /// Wait (up to 2 s) for the count of open connections to be N.
    bool connectionsReach(size_t n) {
        for (int i = 0; i < 200; ++i) {
            if (connections() == n) return true;
            std::this_thread::sleep_for(milliseconds(10));
        }
        return false;
    }
};

}  // namespace

TEST_CASE("api server: answers requests, one per connection", "[api_server]") {
    Running r(ApiLimits{});
    auto ok = orchestrator::api::unixRequest(r.path, "POST", "/v1/things", "body");
    REQUIRE(ok);
    CHECK(ok->first == 200);
    CHECK(ok->second == "POST /v1/things body");
    auto missing = orchestrator::api::unixRequest(r.path, "GET", "/missing");
    REQUIRE(missing);
    CHECK(missing->first == 404);
    // The content type is the handler's; the connection is closed after the answer.
    UniqueFd s = connectTo(r.path);
    std::string req = "GET /text HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(::send(s.get(), req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()));
    std::string all;
    char buf[512];
    for (ssize_t n; (n = ::recv(s.get(), buf, sizeof buf, 0)) > 0;) all.append(buf, size_t(n));
    CHECK(all.find("HTTP/1.1 200 OK\r\n") == 0);
    CHECK(all.find("Content-Type: text/plain\r\n") != std::string::npos);
    CHECK(all.find("\r\n\r\nplain") != std::string::npos);
}

TEST_CASE("api server: idle and slow clients are closed at the deadline, and hold up no request meanwhile",
          "[api_server]") {
    Running r(ApiLimits{milliseconds(300), 64});
    std::vector<UniqueFd> idle;
    for (int i = 0; i < 10; ++i) idle.push_back(connectTo(r.path));
    UniqueFd slow = connectTo(r.path);
    // While they are attached, a request is answered.
    auto ok = orchestrator::api::unixRequest(r.path, "GET", "/v1/services");
    REQUIRE(ok);
    CHECK(ok->first == 200);
    // The slow client sends a byte every 50 ms: still not a whole request at the deadline.
    std::string req = "GET /v1/services HTTP/1.1\r\nHost: x\r\n\r\n";
    bool cut = false;
    for (size_t i = 0; i < req.size() && !cut; ++i) {
        if (::send(slow.get(), &req[i], 1, MSG_NOSIGNAL) != 1) break;
        cut = closedWithin(slow.get(), milliseconds(50));
    }
    CHECK(cut);
    for (auto& fd : idle) CHECK(closedWithin(fd.get(), milliseconds(2000)));
    CHECK(r.connectionsReach(0));
}

TEST_CASE("api server: an answer that comes later holds up neither other requests nor the deadline", "[api_server]") {
    Running r(ApiLimits{milliseconds(200), 64});
    // Asked, and not answered until /release: longer than the deadline, which bounds the client alone.
    std::promise<Result<std::pair<int, std::string>>> later;
    std::thread asker([&] { later.set_value(orchestrator::api::unixRequest(r.path, "GET", "/later")); });
    REQUIRE(r.connectionsReach(1));
    std::this_thread::sleep_for(milliseconds(400));
    auto other = orchestrator::api::unixRequest(r.path, "GET", "/v1/services");
    REQUIRE(other);
    CHECK(other->first == 200);
    auto released = orchestrator::api::unixRequest(r.path, "GET", "/release");
    REQUIRE(released);
    asker.join();
    auto answer = later.get_future().get();
    REQUIRE(answer);
    CHECK(answer->first == 200);
    CHECK(answer->second == "released");
}

TEST_CASE("api server: past the cap a connection is closed at once", "[api_server]") {
    Running r(ApiLimits{milliseconds(60000), 4});
    std::vector<UniqueFd> held;
    for (int i = 0; i < 4; ++i) held.push_back(connectTo(r.path));
    // The four are open once the server has accepted them.
    REQUIRE(r.connectionsReach(4));
    UniqueFd extra = connectTo(r.path);
    CHECK(closedWithin(extra.get(), milliseconds(2000)));
    for (auto& fd : held) CHECK_FALSE(closedWithin(fd.get(), milliseconds(0)));
    // One held connection goes away: there is room again.
    held.pop_back();
    REQUIRE(r.connectionsReach(3));
    auto ok = orchestrator::api::unixRequest(r.path, "GET", "/v1/services");
    REQUIRE(ok);
    CHECK(ok->first == 200);
}

TEST_CASE("api server: the socket file is replaced when stale and removed at the end", "[api_server]") {
    test::TempDir dir("hull-api");
    std::string path = dir / "api.sock";
    test::writeFileOrThrow(path, "stale");
    boost::asio::io_context ioc;
    {
        auto s = ApiServer::listen(ioc, path, [](auto&, auto&, auto&, auto respond) { respond(ApiReply{}); });
        REQUIRE(s);
        struct stat st;
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 0777) == 0660);
    }
    CHECK(::access(path.c_str(), F_OK) != 0);
    auto bad = ApiServer::listen(ioc, dir / "no/such/dir/api.sock", [](auto&, auto&, auto&, auto respond) { respond(ApiReply{}); });
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message().find("no/such/dir/api.sock") != std::string::npos);
}

TEST_CASE("api server: the socket's group is read from a group file without NSS", "[api_server]") {
    test::TempDir dir{"hull-grp"};
    std::string many(20000, 'm');  // a member list longer than the first buffer
    for (size_t i = 1; i < many.size(); i += 2) many[i] = ',';
    test::writeFileOrThrow(dir / "group", "root:x:0:\n"
                                          "big:x:77:" + many + "\n"
                                          "hullish:x:1001:\n"
                                          "hull:x:998:alice,bob\n"
                                          "other:x:999:\n");
    CHECK(groupIdInFile(dir / "group", "hull") == std::optional<gid_t>(998));
    CHECK(groupIdInFile(dir / "group", "big") == std::optional<gid_t>(77));
    CHECK(groupIdInFile(dir / "group", "other") == std::optional<gid_t>(999));
    CHECK_FALSE(groupIdInFile(dir / "group", "hul"));
    CHECK_FALSE(groupIdInFile(dir / "group", "nobody-here"));
    CHECK_FALSE(groupIdInFile(dir / "missing", "hull"));
}

TEST_CASE("api server: a group not in /etc/group is asked of NSS through getent", "[api_server]") {
    // root is in every NSS source's answer; the made-up name in none.
    CHECK(groupIdFromGetent("root") == std::optional<gid_t>(0));
    CHECK_FALSE(groupIdFromGetent("hull-no-such-group-here"));
}
