// The etcd implementation of the store (etcd_store.hpp): JSON over HTTP/1.1 to
// etcd's grpc-gateway. Each request is a POST of the gRPC request message as
// proto3 JSON (bytes base64, int64 as strings) to its route; the reply is the
// response message, with zero-valued fields left out. Streaming RPCs (watch,
// lease keepalive) take their request stream as the body and answer with a
// chunked body of {"result": message} objects, or {"error": {...}} when the
// stream fails.
#include "orchestrator/state/etcd_store.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "sys/base64.hpp"
#include "sys/scope_exit.hpp"

namespace hull::state {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// gRPC status codes etcd answers with (google.golang.org/grpc/codes).
constexpr int kGrpcInvalidArgument = 3, kGrpcDeadlineExceeded = 4, kGrpcNotFound = 5, kGrpcPermissionDenied = 7,
              kGrpcResourceExhausted = 8, kGrpcFailedPrecondition = 9, kGrpcOutOfRange = 11,
              kGrpcUnavailable = 14, kGrpcUnauthenticated = 16;

constexpr const char* kCompactedMessage = "etcdserver: mvcc: required revision has been compacted";

Error protocolError(const std::string& what) { return Error::plain(EPROTO, "etcd: unexpected reply: " + what); }

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// ---------------------------------------------------------------------------
// Reading the gateway's JSON

/// An int64 field: a JSON string (proto3 JSON's int64) or a number; 0 when absent.
Result<int64_t> int64Of(const json::Value& obj, std::string_view name) {
    const json::Value* v = obj.find(name);
    if (!v || v->isNull()) return 0;
    int64_t out = 0;
    if (v->isString()) {
        const std::string& s = v->asString();
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return out;
    } else if (v->toInt64(out)) {
        return out;
    }
    return fail(protocolError("\"" + std::string(name) + "\" is not an int64"));
}

/// A bytes field (base64); "" when absent.
Result<std::string> bytesOf(const json::Value& obj, std::string_view name) {
    const json::Value* v = obj.find(name);
    if (!v || v->isNull()) return std::string();
    if (!v->isString()) return fail(protocolError("\"" + std::string(name) + "\" is not a string"));
    auto bytes = sys::base64Decode(v->asString());
    if (!bytes) return fail(protocolError("\"" + std::string(name) + "\" is not base64"));
    return std::move(*bytes);
}

bool boolOf(const json::Value& obj, std::string_view name) {
    const json::Value* v = obj.find(name);
    return v && v->isBool() && v->asBool();
}

/// The elements of an array field; none when absent.
const json::Array& arrayOf(const json::Value& obj, std::string_view name) {
    static const json::Array kNone;
    const json::Value* v = obj.find(name);
    return v && v->isArray() ? v->asArray() : kNone;
}

Result<int64_t> headerRevision(const json::Value& reply) {
    const json::Value* h = reply.find("header");
    return h ? int64Of(*h, "revision") : Result<int64_t>(0);
}

// ---------------------------------------------------------------------------
// Writing requests: bytes as base64, int64 as strings (as proto3 JSON does)

json::Value bytesValue(std::string_view s) { return json::Value(sys::base64Encode(s)); }
json::Value int64Value(int64_t v) { return json::Value(std::to_string(v)); }

json::Value rangeRequest(const std::string& key, const std::string& rangeEnd, int64_t limit, int64_t revision) {
    json::Value r = json::Value::object();
    r.set("key", bytesValue(key));
    if (!rangeEnd.empty()) r.set("range_end", bytesValue(rangeEnd));
    if (limit > 0) r.set("limit", int64Value(limit));
    if (revision > 0) r.set("revision", int64Value(revision));
    return r;
}

json::Value putRequest(const std::string& key, const std::string& value, int64_t lease) {
    json::Value r = json::Value::object();
    r.set("key", bytesValue(key));
    r.set("value", bytesValue(value));
    if (lease != 0) r.set("lease", int64Value(lease));
    return r;
}

json::Value deleteRequest(const std::string& key, const std::string& rangeEnd) {
    json::Value r = json::Value::object();
    r.set("key", bytesValue(key));
    if (!rangeEnd.empty()) r.set("range_end", bytesValue(rangeEnd));
    return r;
}

json::Value compareJson(const Compare& c) {
    json::Value r = json::Value::object();
    r.set("key", bytesValue(c.key));
    if (!c.rangeEnd.empty()) r.set("range_end", bytesValue(c.rangeEnd));
    const char* result = "EQUAL";
    switch (c.op) {
        case Compare::Op::Equal: result = "EQUAL"; break;
        case Compare::Op::NotEqual: result = "NOT_EQUAL"; break;
        case Compare::Op::Less: result = "LESS"; break;
        case Compare::Op::Greater: result = "GREATER"; break;
    }
    r.set("result", result);
    switch (c.target) {
        case Compare::Target::Version:
            r.set("target", "VERSION");
            r.set("version", int64Value(c.number));
            break;
        case Compare::Target::CreateRevision:
            r.set("target", "CREATE");
            r.set("create_revision", int64Value(c.number));
            break;
        case Compare::Target::ModRevision:
            r.set("target", "MOD");
            r.set("mod_revision", int64Value(c.number));
            break;
        case Compare::Target::Value:
            r.set("target", "VALUE");
            r.set("value", bytesValue(c.value));
            break;
        case Compare::Target::Lease:
            r.set("target", "LEASE");
            r.set("lease", int64Value(c.number));
            break;
    }
    return r;
}

json::Value opJson(const Op& op) {
    json::Value r = json::Value::object();
    switch (op.kind) {
        case Op::Kind::Put: r.set("request_put", putRequest(op.key, op.value, op.lease)); break;
        case Op::Kind::Delete: r.set("request_delete_range", deleteRequest(op.key, op.rangeEnd)); break;
        case Op::Kind::Range: r.set("request_range", rangeRequest(op.key, op.rangeEnd, op.limit, 0)); break;
    }
    return r;
}

Result<RangeResult> decodeRange(const json::Value& reply, int64_t revision) {
    RangeResult r;
    for (const auto& kv : arrayOf(reply, "kvs")) r.kvs.push_back(TRY(etcd::decodeKeyValue(kv)));
    r.count = TRY(int64Of(reply, "count"));
    r.more = boolOf(reply, "more");
    r.revision = revision;
    return r;
}

// ---------------------------------------------------------------------------
// Endpoints and TLS

struct Endpoint {
    std::string url;  // as given (without a trailing /): for messages
    bool tls = false;
    std::string host, port;  // host without brackets
    std::string hostHeader;
    bool hostIsIp = false;
};

Result<Endpoint> parseEndpoint(std::string url) {
    auto bad = [&](const std::string& why) { return failInvalid("etcd endpoint \"" + url + "\": " + why); };
    while (!url.empty() && url.back() == '/') url.pop_back();
    Endpoint e;
    e.url = url;
    std::string rest;
    if (url.rfind("http://", 0) == 0) {
        rest = url.substr(7);
    } else if (url.rfind("https://", 0) == 0) {
        rest = url.substr(8);
        e.tls = true;
    } else {
        return bad("expected http://HOST:PORT or https://HOST:PORT");
    }
    if (rest.find_first_of("/?#@") != std::string::npos) return bad("only a scheme, a host and a port");
    std::string port;
    if (!rest.empty() && rest.front() == '[') {
        size_t close = rest.find(']');
        if (close == std::string::npos) return bad("unclosed [ in the host");
        e.host = rest.substr(1, close - 1);
        std::string after = rest.substr(close + 1);
        if (!after.empty() && after.front() != ':') return bad("junk after the IPv6 address");
        if (!after.empty()) port = after.substr(1);
    } else {
        size_t colon = rest.find(':');
        e.host = rest.substr(0, colon);
        if (colon != std::string::npos) port = rest.substr(colon + 1);
        if (port.find(':') != std::string::npos) return bad("an IPv6 address must be in brackets");
    }
    if (e.host.empty()) return bad("no host");
    if (port.empty()) port = "2379";
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) return bad("bad port");
    e.port = port;
    beast::error_code addrError;
    auto addr = asio::ip::make_address(e.host, addrError);
    e.hostIsIp = !addrError;
    if (!e.hostIsIp && e.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") !=
                           std::string::npos)
        return bad("bad host");
    e.hostHeader = (e.hostIsIp && addr.is_v6() ? "[" + e.host + "]" : e.host) + ":" + e.port;
    return e;
}

std::string opensslErrors() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        out += (out.empty() ? "" : "; ") + std::string(buf);
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

Result<std::unique_ptr<ssl::context>> tlsContext(const EtcdOptions& o) {
    auto bad = [](const std::string& what, const beast::error_code& ec) {
        return failInvalid("etcd TLS setup: " + what + ": " + ec.message());
    };
    std::unique_ptr<ssl::context> ctx;
    try {
        ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    } catch (const boost::system::system_error& e) {
        return fail(Error::plain(EIO, std::string("etcd TLS setup: ") + e.what()));
    }
    if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
        return fail(Error::plain(EIO, "etcd TLS setup: TLS 1.2: " + opensslErrors()));
    beast::error_code ec;
    if (!o.caPem.empty()) {
        ctx->add_certificate_authority(asio::buffer(o.caPem), ec);
        if (ec) return bad("CA certificate", ec);
    } else {
        ctx->set_default_verify_paths(ec);
        if (ec) return bad("the system's CA certificates", ec);
    }
    ctx->set_verify_mode(ssl::verify_peer, ec);
    if (ec) return bad("verify mode", ec);
    if (o.certPem.empty() != o.keyPem.empty())
        return failInvalid("etcd TLS setup: a client certificate needs its key, and a key its certificate");
    if (!o.certPem.empty()) {
        ctx->use_certificate_chain(asio::buffer(o.certPem), ec);
        if (ec) return bad("client certificate", ec);
        ctx->use_private_key(asio::buffer(o.keyPem), ssl::context::pem, ec);
        if (ec) return bad("client key", ec);
        if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
            ERR_clear_error();
            return failInvalid("etcd TLS setup: the client key does not belong to the client certificate");
        }
    }
    return ctx;
}

std::string seconds(Clock::duration d) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    return std::to_string(ms) + " ms";
}

/// An I/O error in words. In TLS 1.3 a client certificate etcd refuses shows
/// up after the handshake, as the alert it sends in place of its first answer.
std::string ioError(const std::string& what, const beast::error_code& ec) {
    if (ec.category() == asio::error::get_ssl_category()) {
        switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
            case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
            case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
            case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
            case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
            case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
                return "etcd refused our client certificate (" + ec.message() + ")";
            default:
                break;
        }
    }
    return what + ": " + ec.message();
}

// ---------------------------------------------------------------------------
// One HTTP/1.1 connection to one endpoint, blocking its caller. Every step is
// an asynchronous operation on the connection's io_context, run until it is
// done, so that beast's stream deadline bounds it (blocking socket calls have
// no deadline), and so that another thread can end it by posting close().

struct Reply {
    int status = 0;
    std::string body;
    bool keepAlive = false;
};

/// What came of one request on one connection.
struct Exchange {
    std::optional<Reply> reply;
    std::string why;           // no reply: what went wrong
    bool unsent = false;       // not a byte of the request left: etcd cannot have acted on it
    bool nothingBack = false;  // sent, and the connection ended before a byte of answer
    bool timedOut = false;
};

class Conn {
public:
    /// Closes the socket: pending operations end with operation_aborted.
    Conn(std::shared_ptr<asio::io_context> ioc, const Endpoint& ep, ssl::context* tls) : ioc_(std::move(ioc)), ep_(ep) {
        if (ep.tls)
            tls_.emplace(*ioc_, *tls);
        else
            tcp_.emplace(*ioc_);
    }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *tcp_; }

    /// Resolve, connect and (https) handshake by DEADLINE. The error does not name the endpoint.
    Result<void> dial(Clock::time_point deadline, Clock::duration budget) {
        beast::error_code ec;
        tcp::resolver resolver(*ioc_);
        auto addrs = resolver.resolve(ep_.host, ep_.port, ec);
        if (ec) return fail(Error::plain(EHOSTUNREACH, "cannot resolve " + ep_.host + ": " + ec.message()));
        ec = run([&](auto h) {
            lowest().async_connect(addrs, [h](beast::error_code e, const tcp::endpoint&) mutable { h(e); });
        }, deadline);
        if (ec == beast::error::timeout)
            return fail(Error::plain(ETIMEDOUT, "timed out after " + seconds(budget) + " (connecting)"));
        if (ec) return fail(Error::plain(ECONNREFUSED, "cannot connect: " + ec.message()));
        lowest().socket().set_option(tcp::no_delay(true), ec);
        if (!tls_) return {};
        SSL* ssl = tls_->native_handle();
        if (!ep_.hostIsIp && SSL_set_tlsext_host_name(ssl, ep_.host.c_str()) != 1)
            return fail(Error::plain(EINVAL, "TLS setup: server name: " + opensslErrors()));
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int set = ep_.hostIsIp ? X509_VERIFY_PARAM_set1_ip_asc(param, ep_.host.c_str())
                               : X509_VERIFY_PARAM_set1_host(param, ep_.host.c_str(), ep_.host.size());
        if (set != 1) return fail(Error::plain(EINVAL, "TLS setup: host " + ep_.host + ": " + opensslErrors()));
        ec = run([&](auto h) { tls_->async_handshake(ssl::stream_base::client, h); }, deadline);
        if (!ec) return {};
        if (ec == beast::error::timeout)
            return fail(Error::plain(ETIMEDOUT, "timed out after " + seconds(budget) + " (TLS handshake)"));
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK)
            return fail(Error::plain(EPROTO, std::string("certificate verify failed: ") +
                                                 X509_verify_cert_error_string(verify)));
        return fail(Error::plain(EPROTO, ioError("TLS handshake", ec)));
    }

    /// POST BODY to TARGET and read the whole answer, by DEADLINE.
    Exchange request(const std::string& target, const std::string& body, Clock::time_point deadline,
                     Clock::duration budget) {
        Exchange x;
        if (!send(target, body, deadline, budget, x)) return x;
        http::response_parser<http::string_body> parser;
        parser.body_limit(kMaxReplyBytes);
        beast::error_code ec = run([&](auto h) { withStream([&](auto& s) { http::async_read(s, buf_, parser, h); }); },
                                   deadline);
        if (ec) {
            failed(x, "reading the answer", ec, budget);
            x.nothingBack = !parser.got_some() && buf_.size() == 0;
            return x;
        }
        x.reply = Reply{int(parser.get().result_int()), std::move(parser.get().body()), parser.keep_alive()};
        return x;
    }

    /// POST BODY to TARGET and read the answer's header, by DEADLINE; its body
    /// is then read with readSome(). An answer other than 200 is read whole.
    Exchange openStream(const std::string& target, const std::string& body, Clock::time_point deadline,
                        Clock::duration budget) {
        Exchange x;
        if (!send(target, body, deadline, budget, x)) return x;
        stream_.emplace();
        stream_->body_limit(boost::none);
        beast::error_code ec = run(
            [&](auto h) { withStream([&](auto& s) { http::async_read_header(s, buf_, *stream_, h); }); }, deadline);
        if (ec) {
            failed(x, "reading the answer", ec, budget);
            return x;
        }
        Reply r{int(stream_->get().result_int()), {}, false};
        if (r.status != 200) {
            std::string why;
            while (r.body.size() < kMaxReplyBytes && readSome(r.body, deadline, why)) {
            }
        }
        x.reply = std::move(r);
        return x;
    }

    /// Appends the streamed body's next bytes to OUT, waiting until DEADLINE (none:
    /// for ever). False once the body has ended, or failed: WHY says which.
    bool readSome(std::string& out, std::optional<Clock::time_point> deadline, std::string& why) {
        if (stream_->is_done()) {
            why = "etcd ended the stream";
            return false;
        }
        char chunk[16384];
        stream_->get().body().data = chunk;
        stream_->get().body().size = sizeof chunk;
        beast::error_code ec = run(
            [&](auto h) { withStream([&](auto& s) { http::async_read_some(s, buf_, *stream_, h); }); }, deadline);
        out.append(chunk, sizeof chunk - stream_->get().body().size);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
            why = ec == beast::error::timeout ? "timed out waiting for etcd" : ioError("reading", ec);
            return false;
        }
        return true;
    }

    /// Whether an idle kept-alive connection is still open: etcd closes idle
    /// ones when it restarts, and one with anything to read (a FIN, a TLS
    /// close_notify) is of no more use.
    bool idleAndOpen() {
        char c;
        ssize_t n = ::recv(lowest().socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && buf_.size() == 0;
    }

    /// A watch's connection: TCP keepalive notices a dead host (10 s idle, then 4 probes 5 s apart).
    void keepProbing() {
        int fd = lowest().socket().native_handle();
        int on = 1, idle = 10, interval = 5, count = 4;
        (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    }

    /// Ends the connection: a pending operation completes with an error. On the io_context's thread only.
    void close() {
        beast::error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
        lowest().close();
    }

private:
    static constexpr size_t kMaxReplyBytes = size_t(1) << 30;

    template <class F>
    void withStream(F&& f) {
        if (tls_)
            f(*tls_);
        else
            f(*tcp_);
    }

    /// Starts an operation through START(handler), runs the io_context until it
    /// is done, and returns its error.
    template <class Start>
    beast::error_code run(Start&& start, std::optional<Clock::time_point> deadline) {
        beast::error_code result = asio::error::would_block;
        bool done = false;
        if (deadline)
            lowest().expires_at(*deadline);
        else
            lowest().expires_never();
        start([&result, &done](beast::error_code ec, size_t = 0) {
            result = ec;
            done = true;
        });
        ioc_->restart();
        ioc_->run();
        assert(done);  // nothing stops the io_context: run() returns once the operation is done
        if (!done) {
            // Were it stopped after all: end the operation, so that its handler,
            // which points into this frame, runs now and not later.
            close();
            ioc_->restart();
            ioc_->run();
        }
        return result;
    }

    bool send(const std::string& target, const std::string& body, Clock::time_point deadline, Clock::duration budget,
              Exchange& x) {
        http::request<http::string_body> req{http::verb::post, target, 11};
        req.set(http::field::host, ep_.hostHeader);
        req.set(http::field::user_agent, "hull");
        req.set(http::field::content_type, "application/json");
        // grpc-gateway passes Grpc-Metadata-* headers on as gRPC metadata:
        // etcd's WithRequireLeader, so a member without a leader answers "no
        // leader" at once (and ends a watch) instead of waiting.
        req.set("Grpc-Metadata-hasleader", "true");
        req.keep_alive(true);
        req.body() = body;
        req.prepare_payload();
        size_t written = 0;
        beast::error_code ec = run([&](auto h) {
            withStream([&](auto& s) {
                http::async_write(s, req, [h, &written](beast::error_code e, size_t n) mutable {
                    written = n;
                    h(e);
                });
            });
        }, deadline);
        if (!ec) return true;
        failed(x, "sending the request", ec, budget);
        x.unsent = written == 0;
        return false;
    }

    static void failed(Exchange& x, const std::string& what, const beast::error_code& ec, Clock::duration budget) {
        x.timedOut = ec == beast::error::timeout;
        x.why = x.timedOut ? "timed out after " + seconds(budget) + " (" + what + ")" : ioError(what, ec);
    }

    std::shared_ptr<asio::io_context> ioc_;
    Endpoint ep_;
    std::optional<beast::tcp_stream> tcp_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
    beast::flat_buffer buf_;
    std::optional<http::response_parser<http::buffer_body>> stream_;
};

// ---------------------------------------------------------------------------
// The store

class EtcdStore final : public Store {
public:
    EtcdStore(EtcdOptions o, std::vector<Endpoint> eps, std::unique_ptr<ssl::context> tls)
        : o_(std::move(o)), eps_(std::move(eps)), tls_(std::move(tls)) {}

    ~EtcdStore() override {
        std::vector<std::shared_ptr<Watch>> all;
        {
            std::lock_guard lk(mu_);
            for (auto& [id, w] : watches_) all.push_back(w);
            all.insert(all.end(), ended_.begin(), ended_.end());
            watches_.clear();
            ended_.clear();
            for (auto& w : all) stopLocked(*w);
            cv_.notify_all();
        }
        for (auto& w : all)
            if (w->thread.joinable()) w->thread.join();
    }

    Result<void> open() {
        TRY(range(std::string(1, '\0'), "", 1, 0));
        return {};
    }

    Result<RangeResult> range(const std::string& key, const std::string& rangeEnd, int64_t limit,
                              int64_t revision) override {
        if (key.empty()) return failInvalid("etcd: range: key is not provided");
        if (limit < 0) return failInvalid("etcd: range: negative limit");
        auto reply = TRY(call("/v3/kv/range", rangeRequest(key, rangeEnd, limit, revision), Kind::Read));
        return decodeRange(reply, TRY(headerRevision(reply)));
    }

    Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease) override {
        if (key.empty()) return failInvalid("etcd: put: key is not provided");
        auto reply = TRY(call("/v3/kv/put", putRequest(key, value, lease), Kind::Write));
        return headerRevision(reply);
    }

    Result<int64_t> deleteRange(const std::string& key, const std::string& rangeEnd) override {
        if (key.empty()) return failInvalid("etcd: delete: key is not provided");
        auto reply = TRY(call("/v3/kv/deleterange", deleteRequest(key, rangeEnd), Kind::Write));
        return int64Of(reply, "deleted");
    }

    Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                          const std::vector<Op>& failure) override {
        // etcd checks these too; checking here gives the SQLite store's errors.
        TRY(validateOps(success));
        TRY(validateOps(failure));
        json::Value cmp = json::Value::array(), ok = json::Value::array(), otherwise = json::Value::array();
        for (const auto& c : compares) cmp.push(compareJson(c));
        for (const auto& op : success) ok.push(opJson(op));
        for (const auto& op : failure) otherwise.push(opJson(op));
        json::Value req = json::Value::object();
        req.set("compare", std::move(cmp));
        req.set("success", std::move(ok));
        req.set("failure", std::move(otherwise));
        auto reply = TRY(call("/v3/kv/txn", req, Kind::Write));
        TxnResult t;
        t.succeeded = boolOf(reply, "succeeded");
        t.revision = TRY(headerRevision(reply));
        for (const auto& resp : arrayOf(reply, "responses"))
            if (const json::Value* r = resp.find("response_range")) t.ranges.push_back(TRY(decodeRange(*r, t.revision)));
        return t;
    }

    Result<int64_t> watch(const std::string& key, const std::string& rangeEnd, int64_t fromRevision,
                          std::function<void(const WatchResponse&)> cb, bool prevKv) override {
        if (key.empty()) return failInvalid("etcd: watch: key is not provided");
        if (!cb) return failInvalid("etcd: watch: no callback");
        if (fromRevision < 0) return failInvalid("etcd: watch: negative revision");
        auto w = std::make_shared<Watch>();
        w->key = key;
        w->rangeEnd = rangeEnd;
        w->fromRevision = fromRevision;
        w->prevKv = prevKv;
        w->cb = std::move(cb);
        std::vector<std::shared_ptr<Watch>> reaped;
        std::optional<Error> failed;
        {
            std::unique_lock lk(mu_);
            reaped = reapLocked();
            w->id = ++lastWatch_;
            try {
                w->thread = std::thread([this, w] { runWatch(*w); });
                watches_[w->id] = w;
                cv_.wait(lk, [&] { return w->start != Watch::Start::Pending; });
                if (w->start == Watch::Start::Failed) {
                    watches_.erase(w->id);
                    failed = w->startError;
                }
            } catch (const std::system_error& e) {
                failed = Error::plain(EAGAIN, std::string("etcd: watch: no thread: ") + e.what());
            }
        }
        for (auto& r : reaped) r->thread.join();
        if (failed) {
            if (w->thread.joinable()) w->thread.join();  // it said so and returned
            return fail(std::move(*failed));
        }
        return w->id;
    }

    void cancelWatch(int64_t id) override {
        std::vector<std::shared_ptr<Watch>> reaped;
        {
            std::unique_lock lk(mu_);
            auto it = watches_.find(id);
            if (it == watches_.end()) return;
            std::shared_ptr<Watch> w = it->second;
            watches_.erase(it);
            ended_.push_back(w);
            stopLocked(*w);
            cv_.notify_all();
            // Callers free what the callback uses once this returns: wait out
            // its response being delivered on another thread (on this one, the
            // caller is that callback).
            cv_.wait(lk, [&] { return inFlight_ != id || delivering_ == std::this_thread::get_id(); });
            reaped = reapLocked();
        }
        for (auto& r : reaped) r->thread.join();
    }

    Result<int64_t> grantLease(int64_t ttlSeconds) override {
        if (ttlSeconds <= 0) return failInvalid("etcd: grant lease: the TTL must be positive");
        json::Value req = json::Value::object();
        req.set("TTL", int64Value(ttlSeconds));
        auto reply = TRY(call("/v3/lease/grant", req, Kind::Write));
        int64_t id = TRY(int64Of(reply, "ID"));
        if (id == 0) {
            if (const json::Value* e = reply.find("error"); e && e->isString() && !e->asString().empty())
                return fail(Error::plain(EINVAL, "etcd: grant lease: " + e->asString()));
            return fail(protocolError("a lease grant without an ID"));
        }
        return id;
    }

    Result<int64_t> keepAlive(int64_t lease) override {
        json::Value req = json::Value::object();
        req.set("ID", int64Value(lease));
        // A renewal is safe to repeat.
        auto reply = TRY(call("/v3/lease/keepalive", req, Kind::Read, true));
        int64_t ttl = TRY(int64Of(reply, "TTL"));
        // etcd answers an unknown lease with a TTL of 0 (left out), not an error.
        if (ttl <= 0)
            return fail(Error::plain(kLeaseNotFound,
                                     "etcdserver: requested lease not found (lease " + std::to_string(lease) + ")"));
        return ttl;
    }

    Result<void> revokeLease(int64_t lease) override {
        json::Value req = json::Value::object();
        req.set("ID", int64Value(lease));
        TRY(call("/v3/lease/revoke", req, Kind::Write));
        return {};
    }

    Result<int64_t> expireLeases() override { return 0; }  // etcd's own job

    Result<void> compact(int64_t revision) override {
        json::Value req = json::Value::object();
        req.set("revision", int64Value(revision));
        req.set("physical", false);
        TRY(call("/v3/kv/compaction", req, Kind::Write));
        return {};
    }

    int64_t revision() const override { return rev_.load(); }

    std::vector<StoreMember> members() override {
        std::vector<StoreMember> out;
        for (size_t ep = 0; ep < eps_.size(); ++ep) {
            StoreMember m;
            m.endpoint = eps_[ep].url;
            Exchange x = exchange(ep, "/v3/maintenance/status", "{}", Kind::Read);
            std::optional<json::Value> parsed;
            if (x.reply && x.reply->status == 200)
                if (auto p = json::Value::parse(x.reply->body); p && p->isObject()) parsed = std::move(*p);
            if (!x.reply) {
                m.error = x.why;
            } else if (x.reply->status != 200) {
                m.error = etcd::replyError(x.reply->status, x.reply->body).message();
            } else if (!parsed) {
                m.error = "an unexpected reply to /v3/maintenance/status";
            } else {
                const json::Value* header = parsed->find("header");
                // Zero values are omitted: no "leader" means none is known.
                const std::string self = header ? json::stringOf(*header, "member_id") : "";
                const std::string leader = json::stringOf(*parsed, "leader");
                m.version = json::stringOf(*parsed, "version");
                auto size = int64Of(*parsed, "dbSize");
                m.dbSize = size ? *size : 0;
                m.leader = !self.empty() && self == leader;
                std::string errors;
                for (const auto& e : arrayOf(*parsed, "errors")) errors += (errors.empty() ? "" : "; ") + (e.isString() ? e.asString() : e.dump());
                if (leader.empty() || leader == "0") m.error = "no leader";
                else if (!errors.empty()) m.error = errors;
                else m.healthy = true;
            }
            out.push_back(std::move(m));
        }
        return out;
    }

private:
    /// Read: repeating it is harmless, so any failure moves on to the next
    /// endpoint. Write: repeated only when it cannot have reached etcd.
    enum class Kind { Read, Write };

    struct Watch {
        int64_t id = 0;
        std::string key, rangeEnd;
        int64_t fromRevision = 0;
        bool prevKv = false;
        std::function<void(const WatchResponse&)> cb;
        std::shared_ptr<asio::io_context> ioc = std::make_shared<asio::io_context>(1);
        Conn* conn = nullptr;  // the current connection; used on the watch's thread only
        std::atomic<bool> stop{false}, exited{false};
        enum class Start { Pending, Created, Failed } start = Start::Pending;  // under mu_
        Error startError;                                                   // under mu_
        std::thread thread;
    };

    /// How one connection of a watch ended.
    enum class WatchEnd { Done, Broken, Refused };

    /// What a watch carries from one connection to the next.
    struct WatchProgress {
        int64_t next = 0;       // the revision to watch from (0: until etcd has created the watch)
        int64_t lastHeader = 0;  // the newest header revision seen
        bool created = false;   // etcd created it once: watch() has returned
        bool working = false;   // etcd created it on the last connection
        std::string why;        // the last connection's end
        std::optional<Error> refusal;
    };

    void observe(int64_t rev) {
        int64_t cur = rev_.load();
        while (rev > cur && !rev_.compare_exchange_weak(cur, rev)) {
        }
    }

    std::unique_ptr<Conn> takeIdle(size_t ep) {
        std::lock_guard lk(poolMu_);
        while (true) {
            auto it = std::find_if(idle_.rbegin(), idle_.rend(), [&](const auto& p) { return p.first == ep; });
            if (it == idle_.rend()) return nullptr;
            std::unique_ptr<Conn> c = std::move(it->second);
            idle_.erase(std::next(it).base());
            if (c->idleAndOpen()) return c;
        }
    }

    void putIdle(size_t ep, std::unique_ptr<Conn> c) {
        std::lock_guard lk(poolMu_);
        if (idle_.size() >= kMaxIdle) idle_.erase(idle_.begin());
        idle_.emplace_back(ep, std::move(c));
    }

    /// One request to endpoint EP, on a kept-alive connection when there is one.
    Exchange exchange(size_t ep, const std::string& target, const std::string& body, Kind kind) {
        const auto start = Clock::now(), deadline = start + o_.timeout;
        while (true) {
            std::unique_ptr<Conn> conn = takeIdle(ep);
            const bool reused = conn != nullptr;
            if (!conn) {
                conn = std::make_unique<Conn>(std::make_shared<asio::io_context>(1), eps_[ep], tls_.get());
                auto dialBudget = std::min(o_.timeout, o_.dialTimeout);
                if (auto r = conn->dial(start + dialBudget, dialBudget); !r) {
                    Exchange x;
                    x.why = r.error().message();
                    x.unsent = true;
                    x.timedOut = r.error().errnum() == ETIMEDOUT;
                    return x;
                }
            }
            Exchange x = conn->request(target, body, deadline, o_.timeout);
            if (x.reply) {
                if (x.reply->keepAlive) putIdle(ep, std::move(conn));
                return x;
            }
            // A kept-alive connection etcd closed just as we used it: a fresh one.
            // A write is repeated only if none of it left (etcd may have read it).
            if (reused && !x.timedOut && (x.unsent || (x.nothingBack && kind == Kind::Read))) continue;
            return x;
        }
    }

    /// POSTs REQUEST to ROUTE, moving on through the endpoints as the top of
    /// etcd_store.hpp says; the reply (for STREAMED routes, the first
    /// message's "result").
    Result<json::Value> call(const char* route, const json::Value& request, Kind kind, bool streamed = false) {
        const std::string body = request.dump();
        const size_t n = eps_.size(), first = preferred_.load();
        std::string failures;
        bool noQuorum = false;
        auto unavailable = [&](const std::string& tail = "") {
            return fail(Error::plain(kUnavailable, failures + (noQuorum ? " (no quorum?)" : "") + tail));
        };
        for (size_t i = 0; i < n; ++i) {
            const size_t ep = (first + i) % n;
            Exchange x = exchange(ep, route, body, kind);
            const std::string who = "etcd " + eps_[ep].url + ": ";
            failures += (failures.empty() ? "" : "; ");
            if (!x.reply) {
                failures += who + x.why;
                noQuorum |= x.timedOut;
                if (x.unsent || kind == Kind::Read) continue;
                return unavailable("; the write may or may not have been applied");
            }
            std::string_view text = x.reply->body;
            std::string message;
            if (streamed && x.reply->status == 200) {
                etcd::JsonStream js;
                js.feed(text);
                if (!js.next(message)) return fail(protocolError(std::string(route) + ": an empty stream"));
                text = message;
            }
            auto parsed = json::Value::parse(text);
            const json::Value* error = parsed ? parsed->find("error") : nullptr;
            if (x.reply->status != 200 || (streamed && error)) {
                Error e = etcd::replyError(x.reply->status, text);
                if (e.errnum() == kUnavailable) {
                    failures += who + e.message();
                    noQuorum = true;
                    // "no leader" comes before etcd proposes anything: safe to repeat.
                    if (kind == Kind::Read || contains(e.message(), "no leader")) continue;
                    return unavailable("; the write may or may not have been applied");
                }
                preferred_ = ep;
                return fail(std::move(e));
            }
            if (!parsed || !parsed->isObject())
                return fail(protocolError(std::string(route) + ": " + (parsed ? "not an object" : parsed.error().message())));
            preferred_ = ep;
            json::Value reply = std::move(*parsed);
            if (streamed) {
                const json::Value* result = reply.find("result");
                if (!result || !result->isObject()) return fail(protocolError(std::string(route) + ": no result"));
                reply = *result;
            }
            observe(TRY(headerRevision(reply)));
            return reply;
        }
        return unavailable();
    }

    // -- watches ----------------------------------------------------------

    /// Under mu_: no callback of W starts from now on, and its connection ends.
    void stopLocked(Watch& w) {
        w.stop = true;
        // Runs on the watch's thread, inside its io_context: the only place its connection is touched.
        asio::post(*w.ioc, [wp = &w] {
            if (wp->conn) wp->conn->close();
        });
    }

    /// Under mu_: the watches whose threads have returned, taken out to be joined.
    std::vector<std::shared_ptr<Watch>> reapLocked() {
        std::vector<std::shared_ptr<Watch>> out;
        auto gone = [&](const std::shared_ptr<Watch>& w) {
            if (!w->exited || w->thread.get_id() == std::this_thread::get_id()) return false;
            out.push_back(w);
            return true;
        };
        ended_.erase(std::remove_if(ended_.begin(), ended_.end(), gone), ended_.end());
        for (auto it = watches_.begin(); it != watches_.end();) it = gone(it->second) ? watches_.erase(it) : std::next(it);
        return out;
    }

    void started(Watch& w, Watch::Start how, Error why = {}) {
        std::lock_guard lk(mu_);
        w.start = how;
        w.startError = std::move(why);
        cv_.notify_all();
    }

    /// Hands R to W's callback, one callback at a time store-wide; false once W is canceled.
    bool deliver(Watch& w, const WatchResponse& r) {
        std::lock_guard one(deliveryMu_);
        {
            std::lock_guard lk(mu_);
            if (w.stop) return false;
            inFlight_ = w.id;
            delivering_ = std::this_thread::get_id();
        }
        ScopeExit done([&] {
            std::lock_guard lk(mu_);
            inFlight_ = 0;
            delivering_ = {};
            cv_.notify_all();
        });
        w.cb(r);
        return true;
    }

    /// The watch's thread: one connection after another until the watch ends.
    void runWatch(Watch& w) {
        ScopeExit exited([&] { w.exited = true; });
        WatchProgress p;
        p.next = w.fromRevision;
        auto backoff = kFirstBackoff;
        while (!w.stop) {
            std::string failures;
            const size_t n = eps_.size(), first = preferred_.load();
            for (size_t i = 0; i < n && !w.stop; ++i) {
                const size_t ep = (first + i) % n;
                p.working = false;
                WatchEnd end = watchOn(w, ep, p);
                if (end == WatchEnd::Done) return;
                if (end == WatchEnd::Refused) {
                    if (!p.created) return started(w, Watch::Start::Failed, std::move(*p.refusal));
                    // Refused on a reconnect (etcd's auth changed?): the watch ends, as if etcd had ended it.
                    WatchResponse r;
                    r.canceled = true;
                    r.revision = p.lastHeader;
                    r.reason = p.refusal->message();
                    (void)deliver(w, r);
                    return;
                }
                failures += (failures.empty() ? "" : "; ") + ("etcd " + eps_[ep].url + ": " + p.why);
                if (p.working) {
                    // It was working: start over from the preferred endpoint, after a short pause.
                    backoff = kFirstBackoff;
                    break;
                }
            }
            if (w.stop) return;
            if (!p.created) return started(w, Watch::Start::Failed, Error::plain(kUnavailable, failures));
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, backoff, [&] { return w.stop.load(); });
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(2));
        }
    }

    /// One connection of W to endpoint EP: create the watch from P.next,
    /// deliver what comes. Broken: P.why says why, and the next connection
    /// goes on from P.next. Refused: etcd refused the watch (P.refusal).
    WatchEnd watchOn(Watch& w, size_t ep, WatchProgress& p) {
        Conn conn(w.ioc, eps_[ep], tls_.get());
        w.conn = &conn;
        ScopeExit forget([&] { w.conn = nullptr; });
        if (w.stop) return WatchEnd::Done;
        const auto start = Clock::now(), deadline = start + o_.timeout;
        const auto dialBudget = std::min(o_.timeout, o_.dialTimeout);
        if (auto r = conn.dial(start + dialBudget, dialBudget); !r) {
            p.why = r.error().message();
            return w.stop ? WatchEnd::Done : WatchEnd::Broken;
        }
        conn.keepProbing();
        json::Value create = json::Value::object();
        create.set("key", bytesValue(w.key));
        if (!w.rangeEnd.empty()) create.set("range_end", bytesValue(w.rangeEnd));
        if (p.next > 0) create.set("start_revision", int64Value(p.next));
        if (w.prevKv) create.set("prev_kv", true);
        // Progress notifications move P.next on while nothing changes, so a
        // reconnect after a quiet spell does not start below a compaction.
        create.set("progress_notify", true);
        json::Value req = json::Value::object();
        req.set("create_request", std::move(create));
        Exchange x = conn.openStream("/v3/watch", req.dump(), deadline, o_.timeout);
        if (w.stop) return WatchEnd::Done;
        if (!x.reply) {
            p.why = x.why;
            return WatchEnd::Broken;
        }
        if (x.reply->status != 200) {
            Error e = etcd::replyError(x.reply->status, x.reply->body);
            if (e.errnum() == kUnavailable) {
                p.why = e.message() + " (no quorum?)";
                return WatchEnd::Broken;
            }
            p.refusal = std::move(e);
            return WatchEnd::Refused;
        }
        etcd::JsonStream js;
        bool createdHere = false;
        std::string message;
        while (true) {
            std::string bytes, why;
            const bool more = conn.readSome(bytes, createdHere ? std::nullopt : std::optional(deadline), why);
            js.feed(bytes);
            while (js.next(message)) {
                auto end = onMessage(w, message, p, createdHere);
                if (end) return *end;
            }
            if (w.stop) return WatchEnd::Done;
            if (!more) {
                p.why = why;
                return WatchEnd::Broken;
            }
        }
    }

    /// One message of a watch stream; an end when it ends the connection.
    std::optional<WatchEnd> onMessage(Watch& w, const std::string& message, WatchProgress& p, bool& createdHere) {
        auto parsed = json::Value::parse(message);
        if (!parsed || !parsed->isObject()) {
            p.why = "unexpected reply: " + (parsed ? std::string("not an object") : parsed.error().message());
            return WatchEnd::Broken;
        }
        if (parsed->find("error")) {
            Error e = etcd::replyError(200, message);
            if (e.errnum() == kUnavailable || createdHere) {
                p.why = e.message();
                return WatchEnd::Broken;
            }
            p.refusal = std::move(e);
            return WatchEnd::Refused;
        }
        const json::Value* result = parsed->find("result");
        if (!result || !result->isObject()) {
            p.why = "unexpected reply: no result";
            return WatchEnd::Broken;
        }
        auto header = headerRevision(*result);
        if (!header) {
            p.why = header.error().message();
            return WatchEnd::Broken;
        }
        p.lastHeader = std::max(p.lastHeader, *header);
        observe(*header);
        const bool created = boolOf(*result, "created"), canceled = boolOf(*result, "canceled");
        std::string reason = json::stringOf(*result, "cancel_reason");
        if (created) {
            createdHere = p.working = true;
            if (!p.created) {
                // etcd refuses a watch by creating and canceling it at once.
                if (canceled) {
                    p.refusal = Error::plain(EINVAL, "etcd: watch: " + (reason.empty() ? "refused" : reason));
                    return WatchEnd::Refused;
                }
                // From revision 0, etcd watches from the revision after its header's.
                if (p.next == 0) p.next = *header + 1;
                p.created = true;
                started(w, Watch::Start::Created);
            }
        }
        if (canceled) {
            WatchResponse r;
            r.canceled = true;
            auto compacted = int64Of(*result, "compact_revision");
            r.compactRevision = compacted ? *compacted : 0;
            r.revision = p.lastHeader;
            r.reason = !reason.empty() ? reason : r.compactRevision ? kCompactedMessage : "canceled by etcd";
            (void)deliver(w, r);
            return WatchEnd::Done;
        }
        auto groups = etcd::eventsByRevision(*result);
        if (!groups) {
            p.why = groups.error().message();
            return WatchEnd::Broken;
        }
        for (auto& r : *groups) {
            if (r.revision < p.next) continue;  // delivered on an earlier connection
            if (!deliver(w, r)) return WatchEnd::Done;
            p.next = r.revision + 1;
        }
        // A progress notification: every change up to its header has been sent.
        if (groups->empty() && !created) p.next = std::max(p.next, *header + 1);
        return std::nullopt;
    }

    static constexpr size_t kMaxIdle = 4;
    static constexpr std::chrono::milliseconds kFirstBackoff{50};

    const EtcdOptions o_;
    const std::vector<Endpoint> eps_;
    const std::unique_ptr<ssl::context> tls_;
    std::atomic<size_t> preferred_{0};
    std::atomic<int64_t> rev_{0};

    std::mutex poolMu_;
    std::vector<std::pair<size_t, std::unique_ptr<Conn>>> idle_;  // oldest first

    std::mutex deliveryMu_;  // held while a callback runs: one at a time
    std::mutex mu_;          // the watch tables below
    std::condition_variable cv_;
    std::map<int64_t, std::shared_ptr<Watch>> watches_;
    std::vector<std::shared_ptr<Watch>> ended_;  // canceled, their threads not joined yet
    int64_t lastWatch_ = 0;
    int64_t inFlight_ = 0;  // the watch whose callback runs now
    std::thread::id delivering_;
};

}  // namespace

// ---------------------------------------------------------------------------
// The wire format's pure parts

namespace etcd {

Error replyError(int httpStatus, std::string_view body) {
    auto parsed = json::Value::parse(body);
    std::string message;
    int64_t code = -1;
    if (parsed && parsed->isObject()) {
        const json::Value& v = *parsed;
        message = json::stringOf(v, "message");
        if (const json::Value* c = v.find("code")) (void)c->toInt64(code);
        if (const json::Value* e = v.find("error")) {
            if (e->isString() && message.empty()) message = e->asString();  // 3.4
            if (e->isObject()) {                                           // a stream's
                if (message.empty()) message = json::stringOf(*e, "message");
                if (const json::Value* c = e->find("grpc_code")) (void)c->toInt64(code);
                if (const json::Value* c = e->find("code"); c && code < 0) (void)c->toInt64(code);
            }
        }
    }
    if (message.empty() && code < 0) {
        std::string text(body.substr(0, 200));
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        return Error::plain(httpStatus >= 500 ? kUnavailable : EPROTO,
                            "etcd: HTTP " + std::to_string(httpStatus) + (text.empty() ? "" : ": " + text));
    }
    if (message.empty()) message = "etcd: gRPC error " + std::to_string(code);
    int err = EIO;
    if (contains(message, "required revision has been compacted"))
        err = kCompacted;
    else if (contains(message, "required revision is a future revision"))
        err = kFutureRevision;
    else if (contains(message, "requested lease not found"))
        err = kLeaseNotFound;
    else {
        switch (code) {
            case kGrpcInvalidArgument:
            case kGrpcFailedPrecondition:
            case kGrpcOutOfRange: err = EINVAL; break;
            case kGrpcNotFound: err = ENOENT; break;
            case kGrpcPermissionDenied:
            case kGrpcUnauthenticated: err = EACCES; break;
            case kGrpcUnavailable:
            case kGrpcDeadlineExceeded:
            case kGrpcResourceExhausted: err = kUnavailable; break;
            default: err = httpStatus == 503 || httpStatus == 504 ? kUnavailable : EIO;
        }
    }
    return Error::plain(err, message);
}

Result<KeyValue> decodeKeyValue(const json::Value& kv) {
    if (!kv.isObject()) return fail(protocolError("a key-value is not an object"));
    KeyValue out;
    out.key = TRY(bytesOf(kv, "key"));
    out.value = TRY(bytesOf(kv, "value"));
    out.createRevision = TRY(int64Of(kv, "create_revision"));
    out.modRevision = TRY(int64Of(kv, "mod_revision"));
    out.version = TRY(int64Of(kv, "version"));
    out.lease = TRY(int64Of(kv, "lease"));
    return out;
}

Result<std::vector<WatchResponse>> eventsByRevision(const json::Value& result) {
    std::vector<WatchResponse> out;
    for (const auto& ev : arrayOf(result, "events")) {
        Event e;
        std::string type = json::stringOf(ev, "type", "PUT");
        if (type == "DELETE")
            e.type = Event::Type::Delete;
        else if (type != "PUT")
            return fail(protocolError("event type \"" + type + "\""));
        const json::Value* kv = ev.find("kv");
        if (!kv) return fail(protocolError("an event without kv"));
        e.kv = TRY(decodeKeyValue(*kv));
        if (e.type == Event::Type::Delete) e.kv = KeyValue{e.kv.key, "", 0, e.kv.modRevision, 0, 0};
        if (const json::Value* prev = ev.find("prev_kv")) e.prev = TRY(decodeKeyValue(*prev));
        if (out.empty() || out.back().revision != e.kv.modRevision) {
            if (!out.empty() && e.kv.modRevision < out.back().revision)
                return fail(protocolError("watch events out of revision order"));
            out.emplace_back().revision = e.kv.modRevision;
        }
        out.back().events.push_back(std::move(e));
    }
    return out;
}

void JsonStream::feed(std::string_view bytes) { buf_.append(bytes); }

bool JsonStream::next(std::string& out) {
    for (; scanned_ < buf_.size(); ++scanned_) {
        const char c = buf_[scanned_];
        if (inString_) {
            if (escaped_)
                escaped_ = false;
            else if (c == '\\')
                escaped_ = true;
            else if (c == '"')
                inString_ = false;
            continue;
        }
        if (c == '"') {
            inString_ = true;
        } else if (c == '{' || c == '[') {
            ++depth_;
        } else if ((c == '}' || c == ']') && --depth_ <= 0) {
            // A stray closer (depth below 0) comes out too: the parser then says what is wrong.
            depth_ = 0;
            size_t begin = buf_.find_first_not_of(" \t\r\n");
            out = buf_.substr(begin, scanned_ + 1 - begin);
            buf_.erase(0, scanned_ + 1);
            scanned_ = 0;
            return true;
        }
    }
    return false;
}

bool JsonStream::pending() const { return buf_.find_first_not_of(" \t\r\n") != std::string::npos; }

}  // namespace etcd

Result<std::unique_ptr<Store>> openEtcd(const EtcdOptions& options) {
    if (options.endpoints.empty()) return failInvalid("etcd: no endpoints");
    if (options.timeout.count() <= 0 || options.dialTimeout.count() <= 0)
        return failInvalid("etcd: the timeouts must be positive");
    std::vector<Endpoint> eps;
    bool anyTls = false;
    for (const auto& url : options.endpoints) {
        eps.push_back(TRY(parseEndpoint(url)));
        anyTls |= eps.back().tls;
    }
    std::unique_ptr<ssl::context> tls;
    if (anyTls) tls = TRY(tlsContext(options));
    auto s = std::make_unique<EtcdStore>(options, std::move(eps), std::move(tls));
    TRY(s->open());
    return std::unique_ptr<Store>(std::move(s));
}

}  // namespace hull::state
