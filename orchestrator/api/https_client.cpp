#include "orchestrator/api/https_client.hpp"

#include <cctype>
#include <deque>
#include <exception>
#include <optional>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "orchestrator/api/openssl_util.hpp"
#include "orchestrator/api/tls_stream.hpp"
#include "orchestrator/api/ws_channel.hpp"
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
// URLs

std::string Url::authority() const {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<Url> parseUrl(const std::string& text) {
    auto bad = [&](const std::string& why) { return failInvalid("URL \"" + text + "\": " + why); };
    Url u;
    size_t sep = text.find("://");
    if (sep == std::string::npos) return bad("expected SCHEME://HOST[:PORT][/PATH]");
    u.scheme = text.substr(0, sep);
    for (char& c : u.scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
    uint16_t defaultPort = 0;
    if (u.scheme == "https" || u.scheme == "wss")
        defaultPort = 443;
    else if (u.scheme == "http" || u.scheme == "ws")
        defaultPort = 80;
    else
        return bad("the scheme must be https or wss");
    std::string rest = text.substr(sep + 3);
    size_t slash = rest.find_first_of("/?#");
    std::string authority = rest.substr(0, slash);
    if (slash != std::string::npos) {
        u.target = rest.substr(slash);
        if (auto hash = u.target.find('#'); hash != std::string::npos) u.target.resize(hash);
        if (u.target.empty() || u.target.front() != '/') u.target = "/" + u.target;
    }
    if (authority.find('@') != std::string::npos) return bad("user names in URLs are not supported");
    std::string portText;
    if (!authority.empty() && authority.front() == '[') {
        size_t close = authority.find(']');
        if (close == std::string::npos) return bad("unclosed [ in the host");
        u.host = authority.substr(1, close - 1);
        std::string after = authority.substr(close + 1);
        if (!after.empty() && after.front() != ':') return bad("junk after the IPv6 address");
        if (!after.empty()) portText = after.substr(1);
        if (!ossl::isIpAddress(u.host)) return bad("\"" + u.host + "\" is not an IPv6 address");
    } else {
        size_t colon = authority.find(':');
        u.host = authority.substr(0, colon);
        if (colon != std::string::npos) portText = authority.substr(colon + 1);
        if (portText.find(':') != std::string::npos) return bad("an IPv6 address must be in brackets");
    }
    if (u.host.empty()) return bad("no host");
    for (unsigned char c : u.host)
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\') return bad("bad character in the host");
    if (authority.find(':') != std::string::npos && authority.back() == ':') return bad("empty port");
    if (portText.empty()) {
        u.port = defaultPort;
    } else {
        if (portText.size() > 5 || portText.find_first_not_of("0123456789") != std::string::npos)
            return bad("bad port \"" + portText + "\"");
        unsigned long p = std::stoul(portText);
        if (p == 0 || p > 65535) return bad("port " + portText + " out of range");
        u.port = uint16_t(p);
    }
    return u;
}

// ---------------------------------------------------------------------------
// TLS for clients: the trust rules of ClientOptions

namespace {

bool isHex64(const std::string& s) {
    return s.size() == 64 && s.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

Result<std::unique_ptr<ssl::context>> clientContext(const ClientOptions& o) {
    std::unique_ptr<ssl::context> tls;
    try {
        tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    } catch (const boost::system::system_error& e) {
        return fail(Error::plain(EIO, std::string("TLS setup: ") + e.what()));
    }
    SSL_CTX* ctx = tls->native_handle();
    auto sslError = [](const std::string& what) { return fail(Error::plain(EIO, "TLS setup: " + what + ": " + ossl::drainErrors())); };
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) return sslError("TLS 1.3");
    if (!o.caPem.empty()) {
        ossl::Cert ca = TRY_CTX("TLS setup", ossl::readCert(o.caPem, "CA certificate"));
        if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca.get()) != 1) return sslError("CA certificate");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else if (!o.pinCaSha256.empty()) {
        if (!isHex64(o.pinCaSha256)) return failInvalid("TLS setup: the pinned CA hash is not 64 hex digits");
        // Nothing is trusted yet: the chain is checked against the pin after the handshake.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    } else {
        return failInvalid("TLS setup: no CA to trust (neither a CA certificate nor a pinned CA hash)");
    }
    if (!o.certPem.empty() || !o.keyPem.empty()) {
        ossl::Cert cert = TRY_CTX("TLS setup", ossl::readCert(o.certPem, "client certificate"));
        ossl::PKey key = TRY_CTX("TLS setup", ossl::readKey(o.keyPem, "client key"));
        if (X509_check_private_key(cert.get(), key.get()) != 1) {
            ERR_clear_error();
            return failInvalid("TLS setup: the client key does not belong to the client certificate");
        }
        if (SSL_CTX_use_certificate(ctx, cert.get()) != 1) return sslError("client certificate");
        if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) return sslError("client key");
    }
    return tls;
}

/// SNI, and with a CA: the host must be one of the server certificate's SANs.
Result<void> prepareSsl(SSL* ssl, const Url& u, const ClientOptions& o) {
    if (!ossl::isIpAddress(u.host) && SSL_set_tlsext_host_name(ssl, u.host.c_str()) != 1)
        return fail(Error::plain(EINVAL, "TLS setup: server name \"" + u.host + "\": " + ossl::drainErrors()));
    if (!o.caPem.empty()) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        // Never the CN: a node certificate's CN is the name the node chose.
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        int ok = ossl::isIpAddress(u.host) ? X509_VERIFY_PARAM_set1_ip_asc(param, u.host.c_str())
                                           : X509_VERIFY_PARAM_set1_host(param, u.host.c_str(), u.host.size());
        if (ok != 1) return fail(Error::plain(EINVAL, "TLS setup: bad host name \"" + u.host + "\""));
    }
    return {};
}

/// With a pin: the CA in the server's chain that has the pinned hash, as PEM,
/// once the server certificate verifies against it.
Result<std::string> checkPin(SSL* ssl, const Url& u, const ClientOptions& o) {
    std::string pin = o.pinCaSha256;
    for (char& c : pin) c = char(std::tolower(static_cast<unsigned char>(c)));
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // a client's view: the leaf first
    X509* leaf = SSL_get0_peer_certificate(ssl);
    X509* ca = nullptr;
    for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
        X509* c = sk_X509_value(chain, i);
        if (X509_check_ca(c) != 0 && ossl::fingerprint(c) == pin) ca = c;
    }
    if (!leaf || !ca) return fail(Error::plain(EPERM, "the master's CA does not match the join token"));
    TRY(ossl::verifyChain(ca, leaf, chain, u.host, X509_PURPOSE_SSL_SERVER));
    return ossl::certToPem(ca);
}

/// Why a handshake failed: the certificate check when that was it.
std::string handshakeError(SSL* ssl, const beast::error_code& ec, const ClientOptions& o) {
    long v = SSL_get_verify_result(ssl);
    if (!o.caPem.empty() && v != X509_V_OK) return std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
    if (ec == beast::error::timeout) return "TLS handshake timed out";
    return "TLS handshake: " + ec.message();
}

/// An I/O error after the handshake: in TLS 1.3 a client certificate the server
/// refuses shows up here, as the alert it sends.
std::string ioError(const std::string& what, const beast::error_code& ec, const ClientOptions& o) {
    if (ec.category() == asio::error::get_ssl_category() && !o.certPem.empty()) {
        switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
            case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
            case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
            case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
            case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
            case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
                return "the server refused our client certificate (" + ec.message() + ")";
            default:
                break;
        }
    }
    return what + ": " + ec.message();
}

std::string seconds(std::chrono::milliseconds ms) {
    if (ms.count() % 1000 == 0) return std::to_string(ms.count() / 1000) + " s";
    return std::to_string(ms.count()) + " ms";
}

int errnoOf(const beast::error_code& ec) {
    if (ec == beast::error::timeout) return ETIMEDOUT;
    return ec.category() == boost::system::system_category() ? ec.value() : EIO;
}

}  // namespace

// ---------------------------------------------------------------------------
// One blocking request

Result<HttpResult> httpsRequest(const std::string& method, const std::string& url, const std::string& body,
                                const ClientOptions& o) {
    Url u = TRY(parseUrl(url));
    auto failure = [&](int err, const std::string& why) { return fail(Error::plain(err, url + ": " + why)); };
    if (u.scheme != "https") return failure(EINVAL, "only https is spoken");
    http::verb verb = http::string_to_verb(method);
    if (verb == http::verb::unknown) return failure(EINVAL, "unknown method \"" + method + "\"");
    auto tls = clientContext(o);
    if (!tls) return failure(EINVAL, tls.error().message());

    // Every step is asynchronous on a private io_context, run until it is
    // done: beast's stream deadline then bounds each one, which blocking
    // socket calls would not.
    asio::io_context ioc{1};
    TlsStream stream(ioc, **tls);
    auto& lowest = beast::get_lowest_layer(stream);
    const auto deadline = Clock::now() + o.timeout;
    auto run = [&](auto&& start) {
        beast::error_code result = asio::error::would_block;
        lowest.expires_at(deadline);
        start([&result](beast::error_code ec, auto&&...) { result = ec; });
        ioc.restart();
        ioc.run();
        return result;
    };
    auto timedOut = [&](const std::string& during) {
        return failure(ETIMEDOUT, "timed out after " + seconds(o.timeout) + " (" + during + ")");
    };

    if (auto r = prepareSsl(stream.native_handle(), u, o); !r) return failure(EINVAL, r.error().message());
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto endpoints = resolver.resolve(u.host, std::to_string(u.port), ec);
    if (ec) return failure(EHOSTUNREACH, "cannot resolve " + u.host + ": " + ec.message());
    if (Clock::now() >= deadline) return timedOut("resolving");
    ec = run([&](auto h) { lowest.async_connect(endpoints, [h](beast::error_code e, const tcp::endpoint&) { h(e); }); });
    if (ec == beast::error::timeout) return timedOut("connecting");
    if (ec) return failure(errnoOf(ec), "cannot connect: " + ec.message());
    lowest.socket().set_option(tcp::no_delay(true), ec);

    ec = run([&](auto h) { stream.async_handshake(ssl::stream_base::client, h); });
    if (ec) return failure(ec == beast::error::timeout ? ETIMEDOUT : EPROTO, handshakeError(stream.native_handle(), ec, o));
    HttpResult out;
    if (o.caPem.empty()) {
        auto ca = checkPin(stream.native_handle(), u, o);
        if (!ca) return failure(EPERM, ca.error().message());
        out.caPemSeen = std::move(*ca);
    }

    http::request<http::string_body> req{verb, u.target, 11};
    req.set(http::field::host, u.authority());
    req.set(http::field::user_agent, "hull");
    req.set(http::field::connection, "close");  // one request, one connection
    if (!o.bearerToken.empty()) req.set(http::field::authorization, "Bearer " + o.bearerToken);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    ec = run([&](auto h) { http::async_write(stream, req, h); });
    if (ec == beast::error::timeout) return timedOut("sending the request");
    // An error while sending may be the server answering early and closing
    // (413): its answer is still worth reading.
    beast::error_code writeError = ec;

    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(o.maxResponseBytes);
    ec = run([&](auto h) { http::async_read(stream, buf, parser, h); });
    if (ec == beast::error::timeout) return timedOut("reading the response");
    if (ec == http::error::body_limit) return failure(EFBIG, "response over " + std::to_string(o.maxResponseBytes) + " bytes");
    if (ec) return failure(errnoOf(ec), ioError(writeError ? "sending the request" : "reading the response",
                                                writeError ? writeError : ec, o));
    out.status = int(parser.get().result_int());
    out.body = std::move(parser.get().body());
    return out;
}

// ---------------------------------------------------------------------------
// The WebSocket client

struct WebSocketClient::State {
    State(asio::io_context& io, std::string u, ClientOptions opts, Handlers h)
        : ioc(io), url(std::move(u)), o(std::move(opts)), handlers(std::move(h)), resolver(io), resolveTimer(io) {}
    asio::io_context& ioc;
    std::string url;
    ClientOptions o;
    Handlers handlers;
    Url parsed;
    std::unique_ptr<ssl::context> tls;
    tcp::resolver resolver;
    asio::steady_timer resolveTimer;
    std::optional<TlsStream> stream;  // until the upgrade; then the channel's
    std::shared_ptr<WsChannel> channel;
    websocket::response_type upgradeResponse;
    std::deque<std::string> early;  // sent before the channel exists
    bool connecting = false, closed = false, ended = false;
};

WebSocketClient::WebSocketClient(asio::io_context& ioc, std::string url, ClientOptions options, Handlers handlers)
    : s_(std::make_unique<State>(ioc, std::move(url), std::move(options), std::move(handlers))) {}

WebSocketClient::~WebSocketClient() = default;

std::shared_ptr<WebSocketClient> WebSocketClient::create(asio::io_context& ioc, std::string url, ClientOptions options,
                                                         Handlers handlers) {
    return std::shared_ptr<WebSocketClient>(
        new WebSocketClient(ioc, std::move(url), std::move(options), std::move(handlers)));
}

namespace {

/// The steps of a connect, in order; each failure ends the client through fail().
struct Connector {
    std::shared_ptr<WebSocketClient> self;
    WebSocketClient::State& s;

    void fail(const std::string& why) {
        if (s.ended) return;
        s.ended = true;
        if (s.stream) {
            beast::get_lowest_layer(*s.stream).close();
        }
        s.resolveTimer.cancel();
        auto h = std::move(s.handlers);
        s.handlers = {};
        if (h.onClose) h.onClose(s.url + ": " + why);
    }

    void start() {
        auto u = parseUrl(s.url);
        if (!u) return fail(u.error().message());
        if (u->scheme != "wss") return fail("only wss is spoken");
        s.parsed = *u;
        auto tls = clientContext(s.o);
        if (!tls) return fail(tls.error().message());
        s.tls = std::move(*tls);
        s.stream.emplace(s.ioc, *s.tls);
        if (auto r = prepareSsl(s.stream->native_handle(), s.parsed, s.o); !r) return fail(r.error().message());
        // The resolver has no deadline of its own: a timer cancels it.
        s.resolveTimer.expires_after(s.o.timeout);
        s.resolveTimer.async_wait([c = *this](beast::error_code ec) {
            if (!ec) c.s.resolver.cancel();
        });
        s.resolver.async_resolve(s.parsed.host, std::to_string(s.parsed.port),
                                 [c = *this](beast::error_code ec, tcp::resolver::results_type results) mutable {
                                     c.s.resolveTimer.cancel();
                                     if (c.s.closed) return c.fail("closed");
                                     if (ec == asio::error::operation_aborted) return c.fail("timed out resolving " + c.s.parsed.host);
                                     if (ec) return c.fail("cannot resolve " + c.s.parsed.host + ": " + ec.message());
                                     c.connect(results);
                                 });
    }

    void connect(const tcp::resolver::results_type& results) {
        auto& lowest = beast::get_lowest_layer(*s.stream);
        lowest.expires_after(s.o.timeout);
        lowest.async_connect(results, [c = *this](beast::error_code ec, const tcp::endpoint&) mutable {
            if (c.s.closed) return c.fail("closed");
            if (ec == beast::error::timeout) return c.fail("timed out connecting");
            if (ec) return c.fail("cannot connect: " + ec.message());
            beast::get_lowest_layer(*c.s.stream).socket().set_option(tcp::no_delay(true), ec);
            c.handshake();
        });
    }

    void handshake() {
        beast::get_lowest_layer(*s.stream).expires_after(s.o.timeout);
        s.stream->async_handshake(ssl::stream_base::client, [c = *this](beast::error_code ec) mutable {
            if (c.s.closed) return c.fail("closed");
            if (ec) return c.fail(handshakeError(c.s.stream->native_handle(), ec, c.s.o));
            if (c.s.o.caPem.empty())
                if (auto ca = checkPin(c.s.stream->native_handle(), c.s.parsed, c.s.o); !ca) return c.fail(ca.error().message());
            c.upgrade();
        });
    }

    void upgrade() {
        WsLimits limits{s.o.timeout, s.o.wsPingEvery, s.o.maxResponseBytes, 64 << 20};
        s.channel = std::make_shared<WsChannel>(s.ioc, WsStream(std::move(*s.stream)), limits, s.url);
        s.stream.reset();
        auto& ws = s.channel->stream();
        ws.set_option(websocket::stream_base::decorator([token = s.o.bearerToken](websocket::request_type& req) {
            req.set(http::field::user_agent, "hull");
            if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
        }));
        ws.async_handshake(s.upgradeResponse, s.parsed.authority(), s.parsed.target, [c = *this](beast::error_code ec) mutable {
            if (c.s.closed) {
                c.s.channel->abort();
                return c.fail("closed");
            }
            if (ec == websocket::error::upgrade_declined) {
                c.s.channel->abort();
                return c.fail("the server refused the WebSocket: " + std::to_string(c.s.upgradeResponse.result_int()) + " " +
                              c.s.upgradeResponse.body());
            }
            if (ec) {
                c.s.channel->abort();
                return c.fail(ec == beast::error::timeout ? "WebSocket upgrade timed out" : ioError("WebSocket upgrade", ec, c.s.o));
            }
            c.open();
        });
    }

    void open() {
        auto self = this->self;
        auto& state = s;
        state.channel->start({[self, &state](std::string text) {
                                  if (state.handlers.onMessage) state.handlers.onMessage(std::move(text));
                              },
                              [self, &state](const std::string& why) {
                                  state.ended = true;
                                  auto h = std::move(state.handlers);
                                  state.handlers = {};
                                  if (h.onClose) h.onClose(state.url + ": " + why);
                              }});
        for (auto& text : state.early) state.channel->send(std::move(text));
        state.early.clear();
        try {
            if (state.handlers.onOpen) state.handlers.onOpen();
        } catch (const std::exception& e) {
            log::errorf("api: %s: WebSocket open handler: %s", state.url.c_str(), e.what());
            state.channel->close();
        }
    }
};

}  // namespace

void WebSocketClient::connect() {
    asio::dispatch(s_->ioc, [self = shared_from_this()] {
        if (self->s_->connecting || self->s_->ended) return;
        self->s_->connecting = true;
        Connector{self, *self->s_}.start();
    });
}

size_t WebSocketClient::queuedBytes() const {
    size_t n = 0;
    for (const auto& text : s_->early) n += text.size();
    return n + (s_->channel ? s_->channel->queuedBytes() : 0);
}

void WebSocketClient::send(std::string text) {
    asio::dispatch(s_->ioc, [self = shared_from_this(), text = std::move(text)]() mutable {
        State& s = *self->s_;
        if (s.closed || s.ended) return;
        if (s.channel)
            s.channel->send(std::move(text));
        else
            s.early.push_back(std::move(text));
    });
}

void WebSocketClient::close() {
    asio::dispatch(s_->ioc, [self = shared_from_this()] {
        State& s = *self->s_;
        if (s.closed || s.ended) return;
        s.closed = true;
        if (s.channel) return s.channel->close();
        // Connecting: the step under way fails and reports "closed".
        s.resolver.cancel();
        if (s.stream) beast::get_lowest_layer(*s.stream).close();
        if (!s.connecting) {
            s.ended = true;
            auto h = std::move(s.handlers);
            s.handlers = {};
            if (h.onClose) h.onClose(s.url + ": closed");
        }
    });
}

}  // namespace hull::orchestrator::api
