#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "orchestrator/api/https_client.hpp"
#include "orchestrator/api/https_server.hpp"
#include "orchestrator/api/pki.hpp"
#include "support.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::orchestrator::api;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

/// "localhost" has an address here (the cgroup v2 VM has no /etc/hosts: the
/// hostname checks that dial it by name are left out there, with a warning).
bool localhostResolves() {
    addrinfo* res = nullptr;
    if (::getaddrinfo("localhost", nullptr, nullptr, &res) != 0) {
        WARN("\"localhost\" does not resolve here: hostname mismatch not checked");
        return false;
    }
    ::freeaddrinfo(res);
    return true;
}

/// A cluster's credentials, and some that are not the cluster's.
struct Pki {
    Pem ca, server, otherCa;
    Pem node;     // signed by ca: CN=n1, O=hull:node
    Pem foreign;  // signed by otherCa: CN=intruder
};

Pem nodeCert(const Pem& ca, const std::string& name) {
    Pem p;
    auto csr = makeKeyAndCsr(name, p.key);
    REQUIRE(csr);
    auto cert = signNodeCsr(ca, *csr, name);
    REQUIRE(cert);
    p.cert = *cert;
    return p;
}

const Pki& pki() {
    static const Pki p = [] {
        Pki k;
        k.ca = *makeCa("hull test CA");
        k.otherCa = *makeCa("another CA");
        k.server = *makeServerCert(k.ca, "master", {"127.0.0.1"});
        k.node = nodeCert(k.ca, "n1");
        k.foreign = nodeCert(k.otherCa, "intruder");
        return k;
    }();
    return p;
}

ServerOptions serverOptions() {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.certPem = pki().server.cert;
    o.keyPem = pki().server.key;
    o.caPem = pki().ca.cert;
    return o;
}

ClientOptions adminClient() {
    ClientOptions o;
    o.caPem = pki().ca.cert;
    o.bearerToken = "admin-token";
    o.timeout = 5s;
    return o;
}

ClientOptions nodeClient() {
    ClientOptions o;
    o.caPem = pki().ca.cert;
    o.certPem = pki().node.cert;
    o.keyPem = pki().node.key;
    o.timeout = 5s;
    return o;
}

/// A server on 127.0.0.1:0 whose io_context runs in a thread of its own.
class TestServer {
public:
    explicit TestServer(const std::function<void(HttpsServer&)>& setup, ServerOptions o = serverOptions()) {
        auto s = HttpsServer::create(ioc_, std::move(o));
        REQUIRE(s);
        server_ = std::move(*s);
        setup(*server_);
        thread_ = std::thread([this] {
            ioc_.run();
            done_ = true;
        });
    }
    ~TestServer() {
        server_->stop();
        // Stopped, the server leaves the io_context nothing to do: run() returns.
        if (!test::waitFor([this] { return done_.load(); }, 5000)) {
            WARN("the server's io_context still had work 5 s after stop()");
            ioc_.stop();
        }
        thread_.join();
        server_.reset();
    }
    uint16_t port() const { return server_->port(); }
    std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(port()) + path; }
    HttpsServer& server() { return *server_; }
    asio::io_context& ioc() { return ioc_; }

private:
    asio::io_context ioc_;
    std::unique_ptr<HttpsServer> server_;
    std::thread thread_;
    std::atomic<bool> done_{false};
};

json::Value parseJson(const std::string& text) {
    auto v = json::Value::parse(text);
    INFO(text);
    REQUIRE(v);
    return *v;
}

std::string errorOf(const std::string& body) { return json::stringOf(parseJson(body), "error"); }

/// A hand-driven TLS connection for what httpsRequest never does: keep-alive,
/// malformed requests, old TLS versions. Each step has a deadline.
class RawTls {
public:
    explicit RawTls(uint16_t port, int maxVersion = 0) : ctx_(ssl::context::tls_client) {
        SSL_CTX* c = ctx_.native_handle();
        auto ca = BIO_new_mem_buf(pki().ca.cert.data(), int(pki().ca.cert.size()));
        X509* x = PEM_read_bio_X509(ca, nullptr, nullptr, nullptr);
        X509_STORE_add_cert(SSL_CTX_get_cert_store(c), x);
        X509_free(x);
        BIO_free(ca);
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
        if (maxVersion) SSL_CTX_set_max_proto_version(c, maxVersion);
        stream_.emplace(ioc_, ctx_);
        auto ec = run([&](auto h) {
            beast::get_lowest_layer(*stream_).async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), h);
        });
        REQUIRE_FALSE(ec);
    }
    beast::error_code handshake() {
        return run([&](auto h) { stream_->async_handshake(ssl::stream_base::client, h); });
    }
    beast::error_code write(const std::string& bytes) {
        return run([&](auto h) { asio::async_write(*stream_, asio::buffer(bytes), h); });
    }
    beast::error_code read(http::response<http::string_body>& res) {
        res = {};
        return run([&](auto h) { http::async_read(*stream_, buf_, res, h); });
    }

private:
    template <class Start>
    beast::error_code run(Start&& start) {
        beast::error_code result = asio::error::would_block;
        beast::get_lowest_layer(*stream_).expires_after(5s);
        start([&result](beast::error_code ec, auto&&...) { result = ec; });
        ioc_.restart();
        ioc_.run();
        return result;
    }

    asio::io_context ioc_;
    ssl::context ctx_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
    beast::flat_buffer buf_;
};

/// A plain TCP connection to 127.0.0.1:PORT (blocking connect); -1 on failure.
int tcpConnect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// Whether the peer has closed FD (EOF or reset), waiting up to MS.
bool closedByPeer(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return false;
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/// Run IOC (the test thread's) until PRED holds or LIMIT passes.
bool runUntil(asio::io_context& ioc, const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
    auto end = Clock::now() + limit;
    while (!pred() && Clock::now() < end) {
        ioc.restart();
        if (ioc.run_for(20ms) == 0) std::this_thread::sleep_for(2ms);
    }
    return pred();
}

}  // namespace

TEST_CASE("https: URLs", "[tls]") {
    auto u = parseUrl("https://10.0.0.1:7443/v1/join?x=1#frag");
    REQUIRE(u);
    CHECK(u->scheme == "https");
    CHECK(u->host == "10.0.0.1");
    CHECK(u->port == 7443);
    CHECK(u->target == "/v1/join?x=1");
    CHECK(u->authority() == "10.0.0.1:7443");
    u = parseUrl("wss://[fd00::1]:8443");
    REQUIRE(u);
    CHECK(u->host == "fd00::1");
    CHECK(u->target == "/");
    CHECK(u->authority() == "[fd00::1]:8443");
    CHECK(parseUrl("https://master.example")->port == 443);
    CHECK(parseUrl("https://master.example?x")->target == "/?x");
    for (const char* bad : {"", "10.0.0.1:7443", "ftp://x/", "https://", "https://:80/", "https://h:0/", "https://h:65536/",
                            "https://h:8x/", "https://h:/", "https://[fd00::1/", "https://fd00::1/", "https://[zz]:1/",
                            "https://u@h/", "https://h st/"}) {
        INFO(bad);
        auto r = parseUrl(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().message().rfind(std::string("URL \"") + bad + "\": ", 0) == 0);
    }
}

TEST_CASE("https: routes, bearer tokens and client certificates reach the handler", "[tls]") {
    std::atomic<int> calls{0};
    TestServer ts([&](HttpsServer& s) {
        s.route("GET", "/v1/whoami", [&](const Request& r) {
            ++calls;
            json::Value v = json::Value::object();
            v.set("token", r.peer.bearerToken);
            v.set("cn", r.peer.certCommonName ? json::Value(*r.peer.certCommonName) : json::Value());
            v.set("o", r.peer.certOrganization ? json::Value(*r.peer.certOrganization) : json::Value());
            v.set("path", r.path());
            v.set("x", r.query("x") ? json::Value(*r.query("x")) : json::Value());
            v.set("agent", r.header("user-agent"));
            v.set("address", r.peer.address);
            return Response{200, v.dump()};
        });
        s.route("POST", "/v1/services/*", [&](const Request& r) {
            ++calls;
            return Response{201, r.method + " " + r.path() + " " + r.body, "text/plain"};
        });
        s.route("POST", "/v1/services/special", [&](const Request&) { return Response{200, "exact"}; });
    });

    auto r = httpsRequest("GET", ts.url("/v1/whoami?x=a%20b&y=2"), "", adminClient());
    REQUIRE(r);
    CHECK(r->status == 200);
    auto v = parseJson(r->body);
    CHECK(json::stringOf(v, "token") == "admin-token");
    CHECK(v.find("cn")->isNull());
    CHECK(json::stringOf(v, "path") == "/v1/whoami");
    CHECK(json::stringOf(v, "x") == "a b");
    CHECK(json::stringOf(v, "agent") == "hull");
    CHECK(json::stringOf(v, "address").rfind("127.0.0.1:", 0) == 0);

    r = httpsRequest("GET", ts.url("/v1/whoami"), "", nodeClient());
    REQUIRE(r);
    v = parseJson(r->body);
    CHECK(json::stringOf(v, "cn") == "n1");
    CHECK(json::stringOf(v, "o") == "hull:node");
    CHECK(json::stringOf(v, "token").empty());

    r = httpsRequest("POST", ts.url("/v1/services/web"), R"({"replicas": 3})", adminClient());
    REQUIRE(r);
    CHECK(r->status == 201);
    CHECK(r->body == R"(POST /v1/services/web {"replicas": 3})");
    CHECK(httpsRequest("POST", ts.url("/v1/services/special"), "", adminClient())->body == "exact");
    CHECK(calls == 3);

    SECTION("a certificate from another CA is refused at the handshake") {
        // TLS 1.3: the client finishes its side first; the server's alert
        // arrives when the client reads. The handler never runs.
        ClientOptions o = nodeClient();
        o.certPem = pki().foreign.cert;
        o.keyPem = pki().foreign.key;
        auto bad = httpsRequest("GET", ts.url("/v1/whoami"), "", o);
        REQUIRE_FALSE(bad);
        INFO(bad.error().message());
        CHECK(bad.error().message().rfind(ts.url("/v1/whoami") + ": the server refused our client certificate (", 0) == 0);
        CHECK(calls == 3);
    }
    SECTION("the server's own certificate is no client certificate (serverAuth only)") {
        ClientOptions o = nodeClient();
        o.certPem = pki().server.cert;
        o.keyPem = pki().server.key;
        CHECK_FALSE(httpsRequest("GET", ts.url("/v1/whoami"), "", o));
        CHECK(calls == 3);
    }
    SECTION("a server certificate from a CA we do not trust") {
        ClientOptions o = adminClient();
        o.caPem = pki().otherCa.cert;
        auto bad = httpsRequest("GET", ts.url("/v1/whoami"), "", o);
        REQUIRE_FALSE(bad);
        CHECK(bad.error().message() ==
              ts.url("/v1/whoami") + ": certificate verify failed: self-signed certificate in certificate chain");
        CHECK(calls == 3);
    }
    SECTION("a host the server certificate does not name") {
        if (!localhostResolves()) return;
        auto bad = httpsRequest("GET", "https://localhost:" + std::to_string(ts.port()) + "/v1/whoami", "", adminClient());
        REQUIRE_FALSE(bad);
        CHECK(bad.error().message().find(": certificate verify failed: hostname mismatch") != std::string::npos);
    }
    SECTION("a client key that is not the certificate's") {
        ClientOptions o = nodeClient();
        o.keyPem = pki().foreign.key;
        CHECK(httpsRequest("GET", ts.url("/v1/whoami"), "", o).error().message() ==
              ts.url("/v1/whoami") + ": TLS setup: the client key does not belong to the client certificate");
    }
    SECTION("no CA and no pin: nothing is trusted") {
        ClientOptions o;
        auto bad = httpsRequest("GET", ts.url("/v1/whoami"), "", o);
        REQUIRE_FALSE(bad);
        CHECK(bad.error().message().find("no CA to trust") != std::string::npos);
    }
}

TEST_CASE("https: pinning the CA by its hash, as a joining node does", "[tls]") {
    std::atomic<int> joins{0};
    TestServer ts([&](HttpsServer& s) {
        s.route("POST", "/v1/join", [&](const Request& r) {
            ++joins;
            return Response{200, r.body};
        });
    });
    ClientOptions o;
    o.pinCaSha256 = *certFingerprint(pki().ca.cert);
    o.timeout = 5s;
    auto r = httpsRequest("POST", ts.url("/v1/join"), R"({"token": "secret"})", o);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->caPemSeen == pki().ca.cert);
    CHECK(joins == 1);

    // The wrong CA: refused before a byte of the request (the secret) is sent.
    o.pinCaSha256 = *certFingerprint(pki().otherCa.cert);
    auto bad = httpsRequest("POST", ts.url("/v1/join"), R"({"token": "secret"})", o);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message() == ts.url("/v1/join") + ": the master's CA does not match the join token");
    CHECK(joins == 1);

    // The right CA, but the address is not the server certificate's.
    o.pinCaSha256 = *certFingerprint(pki().ca.cert);
    if (localhostResolves()) {
        bad = httpsRequest("POST", "https://localhost:" + std::to_string(ts.port()) + "/v1/join", "{}", o);
        REQUIRE_FALSE(bad);
        CHECK(bad.error().message().find("certificate verify failed: hostname mismatch") != std::string::npos);
        CHECK(joins == 1);
    }

    o.pinCaSha256 = "abc";
    CHECK(httpsRequest("POST", ts.url("/v1/join"), "{}", o).error().message().find("not 64 hex digits") != std::string::npos);
}

TEST_CASE("https: error shapes: 404, 405, 413, 500, malformed requests, TLS 1.2", "[tls]") {
    std::atomic<int> calls{0};
    asio::io_context* serverIoc = nullptr;
    TestServer ts([&](HttpsServer& s) {
        s.route("POST", "/v1/apply", [&](const Request& r) {
            ++calls;
            return Response{200, std::to_string(r.body.size())};
        });
        s.route("GET", "/v1/throws", [](const Request&) -> Response { throw std::runtime_error("boom"); });
        s.routeAsync("GET", "/v1/later", [&](const Request&, std::function<void(Response)> reply) {
            auto t = std::make_shared<asio::steady_timer>(*serverIoc, 50ms);
            t->async_wait([t, reply](beast::error_code) { reply(Response{200, R"({"waited": true})"}); });
        });
        s.routeAsync("GET", "/v1/dropped", [](const Request&, std::function<void(Response)>) {});
        s.webSocket("/v1/ws", nullptr, {});
    });
    serverIoc = &ts.ioc();

    auto r = httpsRequest("GET", ts.url("/x"), "", adminClient());
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(parseJson(r->body).dump() == R"({"error":"no such endpoint: GET /x"})");

    r = httpsRequest("DELETE", ts.url("/v1/apply"), "", adminClient());
    CHECK(r->status == 405);
    CHECK(errorOf(r->body) == "method not allowed: DELETE /v1/apply");

    std::string big((8 << 20) + 1, 'x');
    r = httpsRequest("POST", ts.url("/v1/apply"), big, adminClient());
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(parseJson(r->body).dump() == R"({"error":"request body over 8 MiB"})");
    big.pop_back();
    r = httpsRequest("POST", ts.url("/v1/apply"), big, adminClient());
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == std::to_string(8 << 20));
    CHECK(calls == 1);

    r = httpsRequest("GET", ts.url("/v1/ws"), "", adminClient());
    CHECK(r->status == 426);
    CHECK(errorOf(r->body) == "GET /v1/ws is a WebSocket endpoint");

    r = httpsRequest("GET", ts.url("/v1/throws"), "", adminClient());
    CHECK(r->status == 500);
    CHECK(errorOf(r->body) == "internal error: boom");
    r = httpsRequest("GET", ts.url("/v1/later"), "", adminClient());
    INFO((r ? "" : r.error().message()));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == R"({"waited": true})");
    r = httpsRequest("GET", ts.url("/v1/dropped"), "", adminClient());
    CHECK(r->status == 500);
    CHECK(errorOf(r->body) == "internal error: the request was dropped unanswered");

    SECTION("a malformed request gets 400 and the connection is closed") {
        RawTls c(ts.port());
        REQUIRE_FALSE(c.handshake());
        REQUIRE_FALSE(c.write("POST /v1/apply HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n\r\n"));
        http::response<http::string_body> res;
        REQUIRE_FALSE(c.read(res));
        CHECK(res.result_int() == 400);
        CHECK(errorOf(res.body()).rfind("malformed request: ", 0) == 0);
        CHECK_FALSE(res.keep_alive());
        CHECK(c.read(res));  // closed
        CHECK(calls == 1);
    }
    SECTION("keep-alive: requests one after another on one connection, 100-continue") {
        RawTls c(ts.port());
        REQUIRE_FALSE(c.handshake());
        http::response<http::string_body> res;
        for (int i = 0; i < 3; ++i) {
            REQUIRE_FALSE(c.write("POST /v1/apply HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
            REQUIRE_FALSE(c.read(res));
            CHECK(res.result_int() == 200);
            CHECK(res.keep_alive());
        }
        REQUIRE_FALSE(c.write("POST /v1/apply HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"));
        REQUIRE_FALSE(c.read(res));
        CHECK(res.result_int() == 100);
        REQUIRE_FALSE(c.write("ab"));
        REQUIRE_FALSE(c.read(res));
        CHECK(res.result_int() == 200);
        CHECK(res.body() == "2");
        CHECK(calls == 5);
    }
    SECTION("a TLS 1.2 client is refused") {
        RawTls c(ts.port(), TLS1_2_VERSION);
        auto ec = c.handshake();
        CHECK(ec);
        CHECK(calls == 1);
    }
}

TEST_CASE("https: a server that cannot start says why", "[tls]") {
    asio::io_context ioc;
    auto start = [&](const std::function<void(ServerOptions&)>& change) {
        ServerOptions o = serverOptions();
        change(o);
        auto s = HttpsServer::create(ioc, o);
        REQUIRE_FALSE(s);
        return s.error().message();
    };
    CHECK(start([](ServerOptions& o) { o.listen = "7443"; }) == "listen \"7443\": expected HOST:PORT");
    CHECK(start([](ServerOptions& o) { o.listen = "127.0.0.1:99999"; }) == "listen \"127.0.0.1:99999\": bad port");
    CHECK(start([](ServerOptions& o) { o.listen = "localhost:1"; }) == "listen \"localhost:1\": not an IP address");
    CHECK(start([](ServerOptions& o) { o.keyPem = pki().node.key; }) ==
          "TLS setup: the server key does not belong to the server certificate");
    CHECK(start([](ServerOptions& o) { o.caPem = pki().otherCa.cert; }).rfind("TLS setup: the server certificate does not chain to the CA", 0) == 0);
    CHECK(start([](ServerOptions& o) { o.certPem = "junk"; }).rfind("TLS setup: server certificate: no PEM certificate", 0) == 0);
    auto first = HttpsServer::create(ioc, serverOptions());
    REQUIRE(first);
    std::string port = std::to_string((*first)->port());
    CHECK(start([&](ServerOptions& o) { o.listen = "127.0.0.1:" + port; }) ==
          "listen 127.0.0.1:" + port + ": bind: Address already in use");
}

TEST_CASE("https: an idle keep-alive connection is closed at idleTimeout", "[tls]") {
    ServerOptions o = serverOptions();
    o.idleTimeout = 300ms;
    TestServer ts([](HttpsServer& s) { s.route("GET", "/", [](const Request&) { return Response{200, "{}"}; }); }, o);
    RawTls c(ts.port());
    REQUIRE_FALSE(c.handshake());
    REQUIRE_FALSE(c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    http::response<http::string_body> res;
    REQUIRE_FALSE(c.read(res));
    CHECK(res.keep_alive());
    auto start = Clock::now();
    CHECK(c.read(res));  // the server closes; RawTls would give up at 5 s
    CHECK(Clock::now() - start < 2s);
}

TEST_CASE("https: idle and slow clients are cut at their deadline and delay no one", "[tls]") {
    std::signal(SIGPIPE, SIG_IGN);  // the slow clients write to sockets the server closes
    ServerOptions o = serverOptions();
    o.headerTimeout = 2s;
    TestServer ts([](HttpsServer& s) { s.route("GET", "/v1/ping", [](const Request&) { return Response{200, "{}"}; }); }, o);

    constexpr int kIdle = 50, kSlow = 5;
    std::vector<int> fds;
    std::vector<Clock::time_point> opened;
    // Idle: connect, send nothing.
    for (int i = 0; i < kIdle; ++i) {
        fds.push_back(tcpConnect(ts.port()));
        opened.push_back(Clock::now());
        REQUIRE(fds.back() >= 0);
    }
    // Slow loris: a TLS handshake, then a request header at a byte a second.
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    std::vector<SSL*> slow;
    for (int i = 0; i < kSlow; ++i) {
        int fd = tcpConnect(ts.port());
        REQUIRE(fd >= 0);
        opened.push_back(Clock::now());
        fds.push_back(fd);
        SSL* s = SSL_new(ctx);
        SSL_set_fd(s, fd);
        REQUIRE(SSL_connect(s) == 1);
        slow.push_back(s);
    }
    std::vector<Clock::time_point> closedAt(fds.size());
    std::atomic<bool> stopWatch{false};
    std::thread watcher([&] {
        const std::string header = "GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n";
        size_t sent = 0;
        auto nextByte = Clock::now();
        while (!stopWatch) {
            for (size_t i = 0; i < fds.size(); ++i)
                if (closedAt[i] == Clock::time_point{} && closedByPeer(fds[i], 0)) closedAt[i] = Clock::now();
            if (Clock::now() >= nextByte && sent < header.size()) {
                for (int i = 0; i < kSlow; ++i)
                    if (closedAt[kIdle + i] == Clock::time_point{}) SSL_write(slow[i], &header[sent], 1);
                ++sent;
                nextByte += 1s;
            }
            std::this_thread::sleep_for(5ms);
        }
    });

    // A normal client meanwhile: 20 requests, each answered well under a second.
    std::vector<double> took;
    for (int i = 0; i < 20; ++i) {
        auto start = Clock::now();
        auto r = httpsRequest("GET", ts.url("/v1/ping"), "", adminClient());
        took.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        REQUIRE(r);
        CHECK(r->status == 200);
        std::this_thread::sleep_for(50ms);
    }
    for (double t : took) CHECK(t < 1.0);

    // Every idle and slow client is cut at the header deadline (2 s from its accept).
    test::waitFor(
        [&] {
            for (auto& t : closedAt)
                if (t == Clock::time_point{}) return false;
            return true;
        },
        6000);
    stopWatch = true;
    watcher.join();
    for (size_t i = 0; i < fds.size(); ++i) {
        INFO("client " << i << (i < kIdle ? " (idle)" : " (slow)"));
        REQUIRE(closedAt[i] != Clock::time_point{});
        double after = std::chrono::duration<double>(closedAt[i] - opened[i]).count();
        CHECK(after > 1.8);
        CHECK(after < 2.75);
    }
    for (SSL* s : slow) SSL_free(s);
    SSL_CTX_free(ctx);
    for (int fd : fds) ::close(fd);
}

TEST_CASE("https: over maxConnections a new connection is closed at once", "[tls]") {
    ServerOptions o = serverOptions();
    o.maxConnections = 3;
    o.headerTimeout = 5s;
    TestServer ts([](HttpsServer& s) { s.route("GET", "/", [](const Request&) { return Response{200, "{}"}; }); }, o);
    std::vector<int> held;
    for (int i = 0; i < 3; ++i) held.push_back(tcpConnect(ts.port()));
    std::this_thread::sleep_for(200ms);  // accepted by now
    int extra = tcpConnect(ts.port());
    REQUIRE(extra >= 0);
    auto start = Clock::now();
    CHECK(closedByPeer(extra, 2000));
    CHECK(Clock::now() - start < 1s);
    for (int fd : held) CHECK_FALSE(closedByPeer(fd, 0));
    ::close(extra);
    // Once the held ones go, the server serves again.
    for (int fd : held) ::close(fd);
    CHECK(test::waitFor(
        [&] {
            auto r = httpsRequest("GET", ts.url("/"), "", adminClient());
            return r && r->status == 200;
        },
        3000));
}

namespace {

/// What the server's side of the WebSocket test saw (written on the server's thread).
struct ServerSide {
    std::mutex mu;
    std::vector<std::string> received;
    std::shared_ptr<WebSocketSession> session;
    std::string cn;
    int opened = 0, closed = 0;
    template <class F>
    auto with(F f) {
        std::lock_guard<std::mutex> l(mu);
        return f();
    }
};

void addSessionEndpoint(HttpsServer& s, ServerSide& side, int greetings) {
    s.webSocket(
        "/v1/node/session",
        [](const Request& r) -> std::optional<Response> {
            if (!r.peer.certCommonName) return errorResponse(401, "a node certificate is required");
            return std::nullopt;
        },
        WebSocketHandlers{[&side, greetings](std::shared_ptr<WebSocketSession> ws) {
                              for (int i = 0; i < greetings; ++i) ws->send("s" + std::to_string(i));
                              std::lock_guard<std::mutex> l(side.mu);
                              side.session = ws;
                              side.cn = ws->peer().certCommonName.value_or("");
                              ++side.opened;
                          },
                          [&side](const std::shared_ptr<WebSocketSession>&, std::string text) {
                              std::lock_guard<std::mutex> l(side.mu);
                              side.received.push_back(std::move(text));
                          },
                          [&side](const std::shared_ptr<WebSocketSession>&) {
                              std::lock_guard<std::mutex> l(side.mu);
                              ++side.closed;
                              side.session.reset();
                          }});
}

struct ClientSide {
    std::vector<std::string> received;
    bool opened = false;
    std::string closed;  // the why, once closed
};

std::shared_ptr<WebSocketClient> sessionClient(asio::io_context& ioc, const TestServer& ts, ClientSide& side,
                                               ClientOptions o, int messages) {
    std::shared_ptr<WebSocketClient> client;
    WebSocketClient::Handlers h;
    h.onOpen = [&side] { side.opened = true; };
    h.onMessage = [&side](std::string text) { side.received.push_back(std::move(text)); };
    h.onClose = [&side](const std::string& why) { side.closed = why; };
    client = WebSocketClient::create(ioc, "wss://127.0.0.1:" + std::to_string(ts.port()) + "/v1/node/session", o, h);
    client->connect();
    for (int i = 0; i < messages; ++i) client->send("c" + std::to_string(i));  // queued until open
    return client;
}

}  // namespace

TEST_CASE("https: WebSocket sessions", "[tls]") {
    constexpr int kMessages = 1000;
    ServerSide server;
    TestServer ts([&](HttpsServer& s) { addSessionEndpoint(s, server, kMessages); });
    asio::io_context ioc;
    ClientSide client;
    auto ws = sessionClient(ioc, ts, client, nodeClient(), kMessages);

    // Both ways, in order.
    REQUIRE(runUntil(ioc, [&] {
        return client.received.size() == kMessages && server.with([&] { return server.received.size() == kMessages; });
    }));
    CHECK(client.opened);
    CHECK(server.with([&] { return server.cn; }) == "n1");
    std::vector<std::string> want;
    for (int i = 0; i < kMessages; ++i) want.push_back("s" + std::to_string(i));
    CHECK(client.received == want);
    for (auto& w : want) w[0] = 'c';
    CHECK(server.with([&] { return server.received; }) == want);
    CHECK(client.closed.empty());

    SECTION("the client closes") {
        ws->close();
        REQUIRE(runUntil(ioc, [&] { return !client.closed.empty() && server.with([&] { return server.closed == 1; }); }));
        CHECK(client.closed == "wss://127.0.0.1:" + std::to_string(ts.port()) + "/v1/node/session: closed");
    }
    SECTION("the server closes, after what it queued") {
        auto session = server.with([&] { return server.session; });
        REQUIRE(session);
        session->send("bye");
        session->close();  // from this thread: send and close are thread-safe
        session->send("dropped: after close");
        REQUIRE(runUntil(ioc, [&] { return !client.closed.empty() && server.with([&] { return server.closed == 1; }); }));
        CHECK(client.received.back() == "bye");
        CHECK(client.closed.find(": closed by the peer") != std::string::npos);
    }
    SECTION("the server stops") {
        ts.server().stop();
        REQUIRE(runUntil(ioc, [&] { return !client.closed.empty() && server.with([&] { return server.closed == 1; }); }));
    }
    CHECK(server.with([&] { return server.opened; }) == 1);
}

TEST_CASE("https: WebSocket pings keep a live session and give up on a silent peer", "[tls]") {
    ServerSide server;
    ServerOptions so = serverOptions();
    so.wsPingEvery = 100ms;
    TestServer ts([&](HttpsServer& s) { addSessionEndpoint(s, server, 0); }, so);
    asio::io_context ioc;
    ClientSide client;
    ClientOptions o = nodeClient();
    o.wsPingEvery = 100ms;
    auto ws = sessionClient(ioc, ts, client, o, 0);
    REQUIRE(runUntil(ioc, [&] { return client.opened; }));
    // Quiet for many ping periods: pings and pongs keep it open.
    runUntil(ioc, [] { return false; }, 700ms);
    CHECK(client.closed.empty());
    ws->send("still here");
    REQUIRE(runUntil(ioc, [&] { return server.with([&] { return server.received.size() == 1; }); }));

    // The server's thread hangs: no pong comes, and the client gives up after two ping periods or so.
    asio::post(ts.ioc(), [] { std::this_thread::sleep_for(1500ms); });
    auto start = Clock::now();
    REQUIRE(runUntil(ioc, [&] { return !client.closed.empty(); }, 3s));
    CHECK(Clock::now() - start < 1200ms);
    CHECK(client.closed.find(": timed out") != std::string::npos);
    // And the server notices the session is gone once it runs again.
    CHECK(test::waitFor([&] { return server.with([&] { return server.closed == 1; }); }, 3000));
}

TEST_CASE("https: a WebSocket without a client certificate can be refused", "[tls]") {
    ServerSide server;
    TestServer ts([&](HttpsServer& s) { addSessionEndpoint(s, server, 0); });
    asio::io_context ioc;
    ClientSide client;
    auto ws = sessionClient(ioc, ts, client, adminClient(), 1);
    REQUIRE(runUntil(ioc, [&] { return !client.closed.empty(); }));
    CHECK_FALSE(client.opened);
    CHECK(client.closed.find(": the server refused the WebSocket: 401 {\"error\":\"a node certificate is required\"}") !=
          std::string::npos);
    CHECK(server.with([&] { return server.opened + server.closed; }) == 0);

    SECTION("a WebSocket to a pinned CA, and to a path that is none") {
        ClientOptions o = nodeClient();
        o.caPem.clear();
        o.pinCaSha256 = *certFingerprint(pki().ca.cert);
        ClientSide pinned;
        auto ws2 = sessionClient(ioc, ts, pinned, o, 0);
        REQUIRE(runUntil(ioc, [&] { return pinned.opened; }));
        ws2->close();
        REQUIRE(runUntil(ioc, [&] { return !pinned.closed.empty(); }));

        o.pinCaSha256 = *certFingerprint(pki().otherCa.cert);
        ClientSide wrong;
        auto ws3 = sessionClient(ioc, ts, wrong, o, 0);
        REQUIRE(runUntil(ioc, [&] { return !wrong.closed.empty(); }));
        CHECK(wrong.closed.find("the master's CA does not match the join token") != std::string::npos);
        CHECK_FALSE(wrong.opened);
    }
}
