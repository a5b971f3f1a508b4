#include "orchestrator/api/https_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <exception>
#include <unordered_map>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "orchestrator/api/openssl_util.hpp"
#include "orchestrator/api/tls_stream.hpp"
#include "orchestrator/api/ws_channel.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Requests and responses

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string percentDecode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

/// "8 MiB" for whole mebibytes, "1000 bytes" otherwise.
std::string sizeText(size_t n) {
    if (n >= (1u << 20) && n % (1u << 20) == 0) return std::to_string(n >> 20) + " MiB";
    if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + " KiB";
    return std::to_string(n) + " bytes";
}

}  // namespace

std::string Request::path() const { return target.substr(0, target.find('?')); }

std::optional<std::string> Request::query(const std::string& name) const {
    size_t q = target.find('?');
    if (q == std::string::npos) return std::nullopt;
    std::string_view rest = std::string_view(target).substr(q + 1);
    while (!rest.empty()) {
        size_t amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        size_t eq = pair.find('=');
        if (percentDecode(pair.substr(0, eq)) == name)
            return eq == std::string_view::npos ? std::string() : percentDecode(pair.substr(eq + 1));
    }
    return std::nullopt;
}

std::string Request::header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
}

Response errorResponse(int status, const std::string& message) {
    json::Value body = json::Value::object();
    body.set("error", message);
    return Response{status, body.dump()};
}

// ---------------------------------------------------------------------------
// The server's state, shared by its connections

namespace {

constexpr size_t kMaxHeaderBytes = 64 << 10;
// How long a refused request's remaining body is read and dropped before the
// close: a client still sending it would otherwise get a reset instead of our answer.
constexpr auto kLinger = std::chrono::seconds(2);
// A TLS close_notify exchange is a courtesy; a peer gets this long for it.
constexpr auto kShutdownTimeout = std::chrono::seconds(1);
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

/// A connection or session the server can cut at stop().
class Tracked {
public:
    virtual ~Tracked() = default;
    virtual void abort() = 0;
};

using AsyncHandler = std::function<void(const Request&, std::function<void(Response)>)>;

struct Route {
    std::string method, path;  // path without the '*' of a prefix
    bool prefix = false;
    AsyncHandler handler;
};

struct WsRoute {
    std::string path;
    std::function<std::optional<Response>(const Request&)> authorize;
    WebSocketHandlers handlers;
};

std::string endpointText(const tcp::endpoint& ep) {
    auto a = ep.address();
    return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

bool isHttpError(const beast::error_code& ec) { return ec.category() == http::make_error_code(http::error::bad_method).category(); }

}  // namespace

struct HttpsServer::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, ServerOptions opts)
        : ioc(io), o(std::move(opts)), tls(ssl::context::tls_server), acceptor(io), acceptRetry(io) {}

    [[nodiscard]] Result<void> setupTls();
    [[nodiscard]] Result<void> listen();
    void accept();
    void stopNow();

    void track(const std::shared_ptr<Tracked>& t) { live.emplace(t.get(), t); }
    void untrack(Tracked* t) { live.erase(t); }

    /// The route for METHOD PATH; nullptr with STATUS 404 or 405 (and the methods allowed).
    const Route* find(const std::string& method, const std::string& path, int& status, std::string& allowed) const;
    const WsRoute* findWs(const std::string& path) const {
        for (const auto& r : wsRoutes)
            if (r.path == path) return &r;
        return nullptr;
    }

    asio::io_context& ioc;
    ServerOptions o;
    ssl::context tls;
    tcp::acceptor acceptor;
    asio::steady_timer acceptRetry;
    uint16_t port = 0;
    std::vector<Route> routes;
    std::vector<WsRoute> wsRoutes;
    std::unordered_map<Tracked*, std::weak_ptr<Tracked>> live;
    bool refusing = false;  // over maxConnections: logged once per burst
    std::atomic<bool> stopped{false};
};

const Route* HttpsServer::Impl::find(const std::string& method, const std::string& path, int& status,
                                     std::string& allowed) const {
    const Route* best = nullptr;
    auto better = [&](const Route& r) {
        if (!best) return true;
        if (best->prefix != r.prefix) return !r.prefix;
        return r.path.size() > best->path.size();
    };
    for (const auto& r : routes) {
        bool match = r.prefix ? path.compare(0, r.path.size(), r.path) == 0 : path == r.path;
        if (!match) continue;
        if (r.method == method) {
            if (better(r)) best = &r;
        } else if (allowed.find(r.method) == std::string::npos) {
            allowed += (allowed.empty() ? "" : ", ") + r.method;
        }
    }
    status = best ? 200 : allowed.empty() ? 404 : 405;
    return best;
}

// ---------------------------------------------------------------------------
// A WebSocket session

namespace {

class WsSession final : public WebSocketSession, public Tracked, public std::enable_shared_from_this<WsSession> {
public:
    WsSession(std::shared_ptr<HttpsServer::Impl> srv, const WsRoute& route, TlsStream stream, Peer peer)
        : srv_(std::move(srv)), handlers_(route.handlers), peer_(std::move(peer)) {
        WsLimits limits{srv_->o.headerTimeout, srv_->o.wsPingEvery, srv_->o.wsMaxMessageBytes, srv_->o.wsMaxQueueBytes};
        channel_ = std::make_shared<WsChannel>(srv_->ioc, WsStream(std::move(stream)), limits, peer_.address);
    }
    ~WsSession() override { srv_->untrack(this); }

    void start(http::request<http::string_body> req) {
        channel_->stream().set_option(websocket::stream_base::decorator(
            [](websocket::response_type& res) { res.set(http::field::server, "hull"); }));
        channel_->stream().async_accept(req, [self = shared_from_this()](beast::error_code ec) {
            if (ec) {
                log::debugf("api: %s: WebSocket upgrade failed: %s", self->peer_.address.c_str(), ec.message().c_str());
                return;  // never opened: no onClose
            }
            // The channel's lambdas hold the session until it ends.
            self->channel_->start({[self](std::string text) {
                                       if (self->handlers_.onMessage) self->handlers_.onMessage(self, std::move(text));
                                   },
                                   [self](const std::string&) {
                                       WebSocketHandlers h = std::move(self->handlers_);
                                       self->handlers_ = {};
                                       if (h.onClose) h.onClose(self);
                                   }});
            try {
                if (self->handlers_.onOpen) self->handlers_.onOpen(self);
            } catch (const std::exception& e) {
                log::errorf("api: %s: WebSocket open handler: %s", self->peer_.address.c_str(), e.what());
                self->channel_->close();
            }
        });
    }

    void send(std::string text) override { channel_->send(std::move(text)); }
    void close() override { channel_->close(); }
    const Peer& peer() const override { return peer_; }
    void abort() override { channel_->abort(); }

private:
    std::shared_ptr<HttpsServer::Impl> srv_;
    WebSocketHandlers handlers_;
    Peer peer_;
    std::shared_ptr<WsChannel> channel_;
};

// ---------------------------------------------------------------------------
// An HTTPS connection: handshake, then requests one after another

class Connection final : public Tracked, public std::enable_shared_from_this<Connection> {
public:
    Connection(std::shared_ptr<HttpsServer::Impl> srv, tcp::socket sock)
        : srv_(std::move(srv)), stream_(beast::tcp_stream(std::move(sock)), srv_->tls) {}
    ~Connection() override { srv_->untrack(this); }

    void start() {
        beast::error_code ec;
        auto& sock = beast::get_lowest_layer(stream_).socket();
        auto remote = sock.remote_endpoint(ec);
        peer_.address = ec ? "?" : endpointText(remote);
        sock.set_option(tcp::no_delay(true), ec);
        // One deadline from the accept to the end of the first request's header.
        beast::get_lowest_layer(stream_).expires_after(srv_->o.headerTimeout);
        stream_.async_handshake(ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
            if (ec) {
                log::debugf("api: %s: TLS handshake: %s", self->peer_.address.c_str(), ec.message().c_str());
                return self->abort();
            }
            self->readPeerCert();
            self->readRequest(true);
        });
    }

    void abort() override {
        if (upgraded_) return;  // the stream is the session's now
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(stream_).close();
    }

    /// Write RES (from a handler, on the io_context).
    void reply(Response res) {
        if (srv_->stopped) return;
        write(std::move(res), !keepAlive_);
    }

private:
    void readPeerCert() {
        SSL* ssl = stream_.native_handle();
        X509* cert = SSL_get0_peer_certificate(ssl);
        // SSL_VERIFY_PEER fails the handshake on a bad certificate; checked again all the same.
        if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return;
        peer_.certCommonName = ossl::subjectEntry(cert, NID_commonName);
        peer_.certOrganization = ossl::subjectEntry(cert, NID_organizationName);
        if (std::string fp = ossl::fingerprint(cert); !fp.empty()) peer_.certSha256 = fp;
    }

    void readRequest(bool first) {
        parser_.emplace();
        parser_->header_limit(kMaxHeaderBytes);
        parser_->body_limit(srv_->o.maxBodyBytes);
        auto& tcpStream = beast::get_lowest_layer(stream_);
        if (first || buf_.size() > 0) {
            if (!first) tcpStream.expires_after(srv_->o.headerTimeout);  // a pipelined request
            return readHeader();
        }
        // Keep-alive: wait for the next request's first bytes, then give its header the header deadline.
        tcpStream.expires_after(srv_->o.idleTimeout);
        stream_.async_read_some(buf_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
            if (ec) return self->abort();
            self->buf_.commit(n);
            beast::get_lowest_layer(self->stream_).expires_after(self->srv_->o.headerTimeout);
            self->readHeader();
        });
    }

    void readHeader() {
        http::async_read_header(stream_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec) return self->readFailed(ec);
            self->onHeader();
        });
    }

    void onHeader() {
        auto& req = parser_->get();
        keepAlive_ = req.keep_alive();
        if (websocket::is_upgrade(req)) return upgrade();
        beast::get_lowest_layer(stream_).expires_after(srv_->o.requestTimeout);
        if (parser_->is_done()) return dispatch();
        // curl and others wait for "100 Continue" before sending a large body.
        if (lower(std::string(req[http::field::expect])) == "100-continue") {
            auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
            return http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec, size_t) {
                if (ec) return self->abort();
                self->readBody();
            });
        }
        readBody();
    }

    void readBody() {
        http::async_read(stream_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec) return self->readFailed(ec);
            self->dispatch();
        });
    }

    void readFailed(const beast::error_code& ec) {
        if (ec == http::error::body_limit) {
            lingering_ = true;
            return write(errorResponse(413, "request body over " + sizeText(srv_->o.maxBodyBytes)), true);
        }
        if (ec == http::error::header_limit)
            return write(errorResponse(431, "request header over " + sizeText(kMaxHeaderBytes)), true);
        // A connection closed between requests is the normal end of keep-alive.
        if (ec != http::error::end_of_stream && isHttpError(ec))
            return write(errorResponse(400, "malformed request: " + ec.message()), true);
        log::debugf("api: %s: reading request: %s", peer_.address.c_str(), ec.message().c_str());
        abort();
    }

    Request makeRequest(http::request<http::string_body> msg) {
        Request r;
        r.method = std::string(msg.method_string());
        r.target = std::string(msg.target());
        r.body = std::move(msg.body());
        for (const auto& f : msg) {
            std::string name = lower(std::string(f.name_string()));
            auto [it, fresh] = r.headers.emplace(name, std::string(f.value()));
            if (!fresh) it->second += ", " + std::string(f.value());
        }
        r.peer = peer_;
        std::string auth = r.header("authorization");
        if (auth.size() > 7 && lower(auth.substr(0, 7)) == "bearer ") {
            size_t b = auth.find_first_not_of(' ', 7);
            if (b != std::string::npos) r.peer.bearerToken = auth.substr(b);
        }
        return r;
    }

    void dispatch() {
        Request req = makeRequest(parser_->release());
        std::string path = req.path();
        int status = 0;
        std::string allowed;
        const Route* route = srv_->find(req.method, path, status, allowed);
        if (!route) {
            if (status == 405) {
                Response res = errorResponse(405, "method not allowed: " + req.method + " " + path);
                res.headers.emplace_back("Allow", allowed);
                return write(std::move(res), !keepAlive_);
            }
            if (srv_->findWs(path))
                return write(errorResponse(426, req.method + " " + path + " is a WebSocket endpoint"), !keepAlive_);
            return write(errorResponse(404, "no such endpoint: " + req.method + " " + path), !keepAlive_);
        }
        log::debugf("api: %s %s from %s", req.method.c_str(), req.target.c_str(), peer_.address.c_str());
        // No deadline while the handler works (a long poll may take minutes); nothing is read meanwhile.
        beast::get_lowest_layer(stream_).expires_never();
        auto state = std::make_shared<ReplyState>(shared_from_this());
        auto replyFn = [state](Response res) { state->reply(std::move(res)); };
        try {
            route->handler(req, replyFn);
        } catch (const std::exception& e) {
            log::errorf("api: %s %s: handler failed: %s", req.method.c_str(), path.c_str(), e.what());
            state->reply(errorResponse(500, std::string("internal error: ") + e.what()));
        }
    }

    /// The reply of one request: once, and a 500 when every copy of the reply
    /// function is dropped uncalled. It holds the connection while the handler works.
    struct ReplyState {
        ReplyState(std::shared_ptr<Connection> c) : conn(std::move(c)) {}
        ~ReplyState() {
            if (done || conn->srv_->stopped) return;
            asio::post(conn->srv_->ioc,
                       [c = conn] { c->reply(errorResponse(500, "internal error: the request was dropped unanswered")); });
        }
        void reply(Response res) {
            if (done) {
                log::errorf("api: a handler replied twice; the second reply is dropped");
                return;
            }
            done = true;
            conn->reply(std::move(res));
        }
        std::shared_ptr<Connection> conn;
        bool done = false;
    };

    void upgrade() {
        auto msg = parser_->release();
        Request req = makeRequest(msg);
        std::string path = req.path();
        const WsRoute* route = msg.method() == http::verb::get ? srv_->findWs(path) : nullptr;
        if (!route) return write(errorResponse(404, "no such WebSocket endpoint: " + req.method + " " + path), true);
        std::optional<Response> refusal;
        try {
            if (route->authorize) refusal = route->authorize(req);
        } catch (const std::exception& e) {
            refusal = errorResponse(500, std::string("internal error: ") + e.what());
        }
        if (refusal) return write(std::move(*refusal), true);
        upgraded_ = true;
        auto session = std::make_shared<WsSession>(srv_, *route, std::move(stream_), std::move(req.peer));
        srv_->track(session);
        session->start(std::move(msg));
    }

    void write(Response r, bool close) {
        if (r.status < 100 || r.status > 599) {
            log::errorf("api: a handler answered with status %d; sent as 500", r.status);
            r = errorResponse(500, "internal error: status " + std::to_string(r.status));
        }
        auto res = std::make_shared<http::response<http::string_body>>(http::status(unsigned(r.status)), 11);
        res->set(http::field::server, "hull");
        res->set(http::field::content_type, r.contentType);
        for (auto& [k, v] : r.headers) res->set(k, v);
        res->keep_alive(!close);
        res->body() = std::move(r.body);
        res->prepare_payload();
        beast::get_lowest_layer(stream_).expires_after(srv_->o.requestTimeout);
        http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
            if (ec) return self->abort();
            if (self->lingering_) return self->linger();
            if (!res->keep_alive()) return self->shutdown();
            self->readRequest(false);
        });
    }

    /// Read and drop what the client still sends, then close: it reads our answer instead of a reset.
    void linger() {
        beast::get_lowest_layer(stream_).expires_after(kLinger);
        stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec) return self->abort();
            self->linger();
        });
    }

    void shutdown() {
        beast::get_lowest_layer(stream_).expires_after(kShutdownTimeout);
        stream_.async_shutdown([self = shared_from_this()](beast::error_code) { self->abort(); });
    }

    std::shared_ptr<HttpsServer::Impl> srv_;
    TlsStream stream_;
    beast::flat_buffer buf_;
    std::optional<http::request_parser<http::string_body>> parser_;
    Peer peer_;
    bool keepAlive_ = true, lingering_ = false, upgraded_ = false;
    std::array<char, 16384> scratch_;
};

}  // namespace

// ---------------------------------------------------------------------------
// Setup, accept, stop

Result<void> HttpsServer::Impl::setupTls() {
    SSL_CTX* ctx = tls.native_handle();
    auto sslError = [](const std::string& what) { return fail(Error::plain(EIO, "TLS setup: " + what + ": " + ossl::drainErrors())); };
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) return sslError("TLS 1.3");
    // A thousand node sessions are idle most of the time: their TLS read and
    // write buffers (some 34 KiB each) are given back between records.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    ossl::Cert cert = TRY_CTX("TLS setup", ossl::readCert(o.certPem, "server certificate"));
    ossl::PKey key = TRY_CTX("TLS setup", ossl::readKey(o.keyPem, "server key"));
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        ERR_clear_error();
        return failInvalid("TLS setup: the server key does not belong to the server certificate");
    }
    if (SSL_CTX_use_certificate(ctx, cert.get()) != 1) return sslError("server certificate");
    if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) return sslError("server key");
    if (!o.caPem.empty()) {
        ossl::Cert ca = TRY_CTX("TLS setup", ossl::readCert(o.caPem, "CA certificate"));
        if (auto r = ossl::verifyChain(ca.get(), cert.get(), nullptr, "", X509_PURPOSE_SSL_SERVER); !r)
            return failInvalid("TLS setup: the server certificate does not chain to the CA: " + r.error().message());
        // In the chain: a joining node pins the CA it finds there.
        if (SSL_CTX_add1_chain_cert(ctx, ca.get()) != 1) return sslError("CA in the chain");
        if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca.get()) != 1) return sslError("CA as trust anchor");
        if (SSL_CTX_add_client_CA(ctx, ca.get()) != 1) return sslError("CA for client certificates");
        // Ask for a client certificate, accept none: the CLI brings a bearer token instead.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        SSL_CTX_set_verify_depth(ctx, 2);
    }
    // No resumption: clients make one connection per request or keep one
    // session; tickets would cost a write per connection for nothing.
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return {};
}

Result<void> HttpsServer::Impl::listen() {
    const std::string& l = o.listen;
    size_t colon = l.rfind(':');
    if (colon == std::string::npos) return failInvalid("listen \"" + l + "\": expected HOST:PORT");
    std::string host = l.substr(0, colon), portText = l.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "0.0.0.0";
    unsigned long portNum = 0;
    bool portOk = !portText.empty() && portText.size() <= 5 && portText.find_first_not_of("0123456789") == std::string::npos;
    if (portOk) portNum = std::stoul(portText);
    if (!portOk || portNum > 65535) return failInvalid("listen \"" + l + "\": bad port");
    beast::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) return failInvalid("listen \"" + l + "\": not an IP address");
    tcp::endpoint ep(addr, uint16_t(portNum));
    auto failed = [&](const char* step) {
        int err = ec.category() == boost::system::system_category() ? ec.value() : EIO;
        return fail(Error::plain(err, "listen " + l + ": " + step + ": " + ec.message()));
    };
    if (acceptor.open(ep.protocol(), ec)) return failed("socket");
    if (acceptor.set_option(tcp::acceptor::reuse_address(true), ec)) return failed("SO_REUSEADDR");
    if (acceptor.bind(ep, ec)) return failed("bind");
    if (acceptor.listen(asio::socket_base::max_listen_connections, ec)) return failed("listen");
    port = acceptor.local_endpoint(ec).port();
    return {};
}

void HttpsServer::Impl::accept() {
    acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket sock) {
        if (self->stopped || ec == asio::error::operation_aborted) return;
        if (ec) {
            // Out of descriptors or memory: try again shortly rather than spin.
            log::warnf("api: accept: %s", ec.message().c_str());
            self->acceptRetry.expires_after(kAcceptRetry);
            self->acceptRetry.async_wait([self](beast::error_code e) {
                if (!e && !self->stopped) self->accept();
            });
            return;
        }
        if (self->live.size() >= self->o.maxConnections) {
            if (!self->refusing)
                log::warnf("api: %zu connections open, the most allowed: refusing new ones", self->live.size());
            self->refusing = true;
            beast::error_code ignored;
            sock.close(ignored);
        } else {
            self->refusing = false;
            auto conn = std::make_shared<Connection>(self, std::move(sock));
            self->track(conn);
            conn->start();
        }
        self->accept();
    });
}

void HttpsServer::Impl::stopNow() {
    stopped = true;
    beast::error_code ignored;
    acceptor.close(ignored);
    acceptRetry.cancel();
    std::vector<std::shared_ptr<Tracked>> all;
    for (auto& [p, weak] : live)
        if (auto s = weak.lock()) all.push_back(std::move(s));
    for (auto& s : all) s->abort();
}

// ---------------------------------------------------------------------------
// The public face

HttpsServer::HttpsServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpsServer::~HttpsServer() { stop(); }

Result<std::unique_ptr<HttpsServer>> HttpsServer::create(asio::io_context& ioc, ServerOptions options) {
    std::shared_ptr<Impl> impl;
    try {
        impl = std::make_shared<Impl>(ioc, std::move(options));
    } catch (const boost::system::system_error& e) {
        return fail(Error::plain(EIO, std::string("TLS setup: ") + e.what()));
    }
    TRY(impl->setupTls());
    TRY(impl->listen());
    impl->accept();
    return std::unique_ptr<HttpsServer>(new HttpsServer(std::move(impl)));
}

void HttpsServer::route(std::string method, std::string path, std::function<Response(const Request&)> handler) {
    routeAsync(std::move(method), std::move(path),
               [h = std::move(handler)](const Request& req, std::function<void(Response)> reply) { reply(h(req)); });
}

void HttpsServer::routeAsync(std::string method, std::string path, AsyncHandler handler) {
    Route r;
    r.method = std::move(method);
    r.prefix = !path.empty() && path.back() == '*';
    if (r.prefix) path.pop_back();
    r.path = std::move(path);
    r.handler = std::move(handler);
    impl_->routes.push_back(std::move(r));
}

void HttpsServer::webSocket(std::string path, std::function<std::optional<Response>(const Request&)> authorize,
                            WebSocketHandlers handlers) {
    impl_->wsRoutes.push_back(WsRoute{std::move(path), std::move(authorize), std::move(handlers)});
}

uint16_t HttpsServer::port() const { return impl_->port; }

void HttpsServer::stop() {
    impl_->stopped = true;  // at once: replies from other threads' work stop here
    asio::dispatch(impl_->ioc, [impl = impl_] { impl->stopNow(); });
}

}  // namespace hull::orchestrator::api
