#include "images/registry.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "sys/base64.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"
#include "sys/scope_exit.hpp"
#include "sys/unique_fd.hpp"
#include "images/wire.hpp"

namespace hull::images {

// ---------------------------------------------------------------------------
// References: the grammar of distribution/reference (docker/distribution),
// without its regular expressions.

namespace {

constexpr const char* kDockerHub = "registry-1.docker.io";

bool isAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// domain-component: [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool validDomainComponent(std::string_view s) {
    if (s.empty() || !isAlnum(s.front()) || !isAlnum(s.back())) return false;
    for (char c : s)
        if (!isAlnum(c) && c != '-') return false;
    return true;
}

// host[:port], host being dot-separated components or a bracketed IPv6 address.
bool validRegistry(std::string_view s) {
    std::string_view host = s;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos || close < 2) return false;
        for (char c : s.substr(1, close - 1))
            if (!isAlnum(c) && c != ':' && c != '.') return false;
        host = {};
        s.remove_prefix(close + 1);
        if (!s.empty() && s.front() != ':') return false;
    } else {
        auto colon = s.find(':');
        host = s.substr(0, colon);
        s = colon == std::string_view::npos ? std::string_view() : s.substr(colon);
        if (host.empty()) return false;
        for (auto part : sys::split(host, '.', false))
            if (!validDomainComponent(part)) return false;
    }
    if (!s.empty()) {  // ":port"
        auto port = s.substr(1);
        if (port.empty() || port.size() > 5) return false;
        for (char c : port)
            if (c < '0' || c > '9') return false;
        if (std::stoul(std::string(port)) > 65535) return false;
    }
    return true;
}

// path-component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
bool validPathComponent(std::string_view s) {
    size_t i = 0;
    auto alnums = [&] {
        size_t start = i;
        while (i < s.size() && isLowerAlnum(s[i])) ++i;
        return i > start;
    };
    if (!alnums()) return false;
    while (i < s.size()) {
        if (s[i] == '.') {
            ++i;
        } else if (s[i] == '_') {
            ++i;
            if (i < s.size() && s[i] == '_') ++i;
        } else if (s[i] == '-') {
            while (i < s.size() && s[i] == '-') ++i;
        } else {
            return false;
        }
        if (!alnums()) return false;
    }
    return true;
}

// tag: [\w][\w.-]{0,127}
bool validTag(std::string_view s) {
    if (s.empty() || s.size() > 128 || s.front() == '.' || s.front() == '-') return false;
    for (char c : s)
        if (!isAlnum(c) && c != '_' && c != '.' && c != '-') return false;
    return true;
}

}  // namespace

Result<Reference> Reference::parse(const std::string& s) {
    auto bad = [&](const std::string& why) { return failInvalid("invalid image reference \"" + s + "\": " + why); };
    if (s.empty()) return failInvalid("invalid image reference: empty");
    Reference r;
    std::string name = s;
    if (auto at = name.find('@'); at != std::string::npos) {
        auto d = Digest::parse(name.substr(at + 1));
        if (!d) return bad(d.error().message());
        r.digest = *d;
        name.resize(at);
    }
    // A tag is a colon after the last slash; a colon before it is a registry's port.
    auto lastSlash = name.rfind('/');
    auto colon = name.find(':', lastSlash == std::string::npos ? 0 : lastSlash + 1);
    bool hasTag = colon != std::string::npos;
    if (hasTag) {
        r.tag = name.substr(colon + 1);
        name.resize(colon);
        if (!validTag(r.tag)) return bad("tag \"" + r.tag + "\" must be 1-128 of [A-Za-z0-9_.-], not starting with . or -");
    }
    // The first component names a registry when it looks like a host (a dot, a
    // port, "localhost") or has capitals, which no repository may (Docker's rule).
    auto slash = name.find('/');
    if (slash != std::string::npos) {
        std::string first = name.substr(0, slash);
        bool upper = false;
        for (char c : first) upper |= (c >= 'A' && c <= 'Z');
        if (first.find_first_of(".:") != std::string::npos || first == "localhost" || upper) {
            r.registry = first;
            name = name.substr(slash + 1);
        }
    }
    if (r.registry.empty() || r.registry == "docker.io" || r.registry == "index.docker.io") r.registry = kDockerHub;
    if (!validRegistry(r.registry)) return bad("registry \"" + r.registry + "\" is not a host[:port]");
    if (name.empty()) return bad("no repository name");
    if (r.registry == kDockerHub && name.find('/') == std::string::npos) name = "library/" + name;
    for (char c : name)
        if (c >= 'A' && c <= 'Z') return bad("repository name must be lowercase");
    for (auto part : sys::split(name, '/', false))
        if (!validPathComponent(part))
            return bad("repository component \"" + std::string(part) +
                       "\" must be lowercase letters and digits separated by '.', '_', '__' or '-'");
    if (name.size() > 255) return bad("repository name longer than 255 characters");
    r.repository = name;
    if (!hasTag && !r.digest) r.tag = "latest";
    return r;
}

std::string Reference::str() const {
    std::string s = registry + "/" + repository;
    if (!tag.empty()) s += ":" + tag;
    if (digest) s += "@" + digest->str();
    return s;
}

// ---------------------------------------------------------------------------
// HTTP: one connection per request (no keep-alive), synchronous from the
// caller's view. Every operation is asynchronous on a private io_context, run
// until it completes, so beast::tcp_stream's timers can abort a stalled peer;
// blocking socket calls would wait forever.

bool isLoopbackRegistry(const std::string& registry) {
    std::string host = registry;
    if (!host.empty() && host[0] == '[') {
        host = host.substr(1, host.find(']') == std::string::npos ? std::string::npos : host.find(']') - 1);
    } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
        host = host.substr(0, colon);
    }
    if (host == "localhost" || host == "::1") return true;
    // 127.0.0.0/8, written as a dotted quad.
    int a = -1, b = -1, c = -1, d = -1;
    char tail = 0;
    return std::sscanf(host.c_str(), "%d.%d.%d.%d%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b >= 0 && b <= 255 && c >= 0 &&
           c <= 255 && d >= 0 && d <= 255;
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using namespace wire;
using tcp = asio::ip::tcp;

constexpr auto kConnectTimeout = std::chrono::seconds(30);
constexpr auto kIoTimeout = std::chrono::seconds(120);  // per read or write, not per body
constexpr int kMaxRedirects = 10;
constexpr size_t kMaxManifest = 4 << 20;  // what distribution accepts on push
constexpr size_t kMaxSmallBody = 1 << 20;  // tokens, error documents

bool isIpLiteral(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

/// One HTTP exchange on its own connection and io_context: connect, send a
/// GET, read the header; then the body in chunks, to a string or a file.
class Exchange {
public:
    explicit Exchange(ssl::context& tls) : tlsCtx_(tls) {
        // Blobs are large; callers count bytes against descriptors. Not boost::none:
        // Boost 1.74 compares the length against the empty optional and refuses every body.
        parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
        parser_.header_limit(64 * 1024);  // storage redirects carry long signed URLs
        // Beast reads as much as the buffer has room for, starting from 512
        // bytes: without room reserved a 1 MB layer takes 2000 reads.
        buf_.reserve(1 << 16);
    }
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    [[nodiscard]] Result<void> open(const Url& url, const std::vector<std::pair<std::string, std::string>>& headers) {
        url_ = url;
        TRY(connect());
        http::request<http::empty_body> req{http::verb::get, url.target, 11};
        req.set(http::field::host, url.hostHeader());
        req.set(http::field::user_agent, "hull/0.1");
        req.set(http::field::connection, "close");  // never reused: one exchange, one connection
        for (auto& [k, v] : headers) req.set(k, v);
        log::debugf("GET %s", url.str().c_str());
        auto ec = run([&](auto h) { withStream([&](auto& s) { http::async_write(s, req, h); }); });
        if (ec) return ioError("sending request", ec);
        ec = run([&](auto h) { withStream([&](auto& s) { http::async_read_header(s, buf_, parser_, h); }); });
        if (ec) return ioError("reading response", ec);
        return {};
    }

    unsigned status() const { return parser_.get().result_int(); }
    std::string header(http::field f) const { return std::string(parser_.get()[f]); }
    std::string headerNamed(const std::string& name) const { return std::string(parser_.get()[name]); }
    std::string reason() const { return std::to_string(status()) + " " + std::string(parser_.get().reason()); }
    const Url& url() const { return url_; }
    boost::optional<uint64_t> contentLength() const { return parser_.content_length(); }

    /// Up to N body bytes into OUT; 0 at the end of the body.
    [[nodiscard]] Result<size_t> read(char* out, size_t n) {
        while (!parser_.is_done()) {
            parser_.get().body().data = out;
            parser_.get().body().size = n;
            auto ec = run([&](auto h) { withStream([&](auto& s) { http::async_read(s, buf_, parser_, h); }); });
            if (ec == http::error::need_buffer) ec = {};  // OUT is full: the normal case
            if (ec) return ioError("reading body", ec);
            size_t got = n - parser_.get().body().size;
            if (got > 0) return got;
        }
        return size_t(0);
    }

    /// The whole body, refused past LIMIT bytes.
    [[nodiscard]] Result<std::string> readAll(size_t limit) {
        std::string body;
        char buf[16384];
        for (;;) {
            size_t n = TRY(read(buf, sizeof buf));
            if (n == 0) return body;
            if (body.size() + n > limit)
                return fail(Error::plain(EFBIG, url_.str() + ": response larger than " + std::to_string(limit) + " bytes"));
            body.append(buf, n);
        }
    }

private:
    template <class F>
    void withStream(F&& f) {
        if (tls_)
            f(*tls_);
        else
            f(*plain_);
    }
    beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

    /// Start one asynchronous operation and run the io_context until it is done.
    template <class Start>
    beast::error_code run(Start&& start) {
        beast::error_code result = asio::error::would_block;
        lowest().expires_after(kIoTimeout);
        start([&result](beast::error_code ec, auto&&...) { result = ec; });
        ioc_.restart();
        ioc_.run();
        return result;
    }

    tl::unexpected<Error> ioError(const std::string& what, const beast::error_code& ec) {
        if (ec == beast::error::timeout)
            return fail(Error::plain(ETIMEDOUT, url_.authority() + ": " + what + ": timed out"));
        int err = ec.category() == boost::system::system_category() ? ec.value() : EIO;
        return fail(Error::plain(err, url_.authority() + ": " + what + ": " + ec.message()));
    }

    [[nodiscard]] Result<void> connect() {
        const std::string who = url_.authority();
        tcp::resolver resolver(ioc_);
        boost::system::error_code ec;
        auto endpoints = resolver.resolve(url_.bareHost(), url_.port, ec);
        if (ec)
            return fail(Error::plain(EHOSTUNREACH, "cannot connect to " + who + ": cannot resolve " + url_.bareHost() +
                                                       ": " + ec.message()));
        if (url_.tls) {
            tls_.emplace(ioc_, tlsCtx_);
            SSL* ssl = tls_->native_handle();
            // The certificate must name the host (or IP address) we asked for.
            X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
            if (isIpLiteral(url_.bareHost())) {
                X509_VERIFY_PARAM_set1_ip_asc(param, url_.bareHost().c_str());
            } else {
                X509_VERIFY_PARAM_set1_host(param, url_.bareHost().c_str(), 0);
                SSL_set_tlsext_host_name(ssl, url_.bareHost().c_str());  // SNI
            }
            tls_->set_verify_mode(ssl::verify_peer);
        } else {
            plain_.emplace(ioc_);
        }
        lowest().expires_after(kConnectTimeout);
        beast::error_code result = asio::error::would_block;
        lowest().async_connect(endpoints, [&result](beast::error_code e, const tcp::endpoint&) { result = e; });
        ioc_.restart();
        ioc_.run();
        if (result) {
            if (result == beast::error::timeout) return fail(Error::plain(ETIMEDOUT, "cannot connect to " + who + ": timed out"));
            int err = result.category() == boost::system::system_category() ? result.value() : EIO;
            return fail(Error::plain(err, "cannot connect to " + who + ": " + result.message()));
        }
        if (tls_) {
            auto hs = run([&](auto h) { tls_->async_handshake(ssl::stream_base::client, h); });
            if (hs) {
                long v = SSL_get_verify_result(tls_->native_handle());
                std::string why = v != X509_V_OK ? std::string("certificate not trusted: ") + X509_verify_cert_error_string(v)
                                                 : hs.message();
                return fail(Error::plain(EPROTO, "TLS handshake with " + who + " failed: " + why));
            }
        }
        return {};
    }

    // Members in construction order: the io_context outlives the streams on it.
    asio::io_context ioc_{1};
    ssl::context& tlsCtx_;
    std::optional<beast::tcp_stream> plain_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
    beast::flat_buffer buf_;
    http::response_parser<http::buffer_body> parser_;
    Url url_;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

/// GET URL, following redirects. AUTHORIZATION goes only to AUTH_FOR
/// (host:port): a registry's token must not leak to the storage it redirects to.
Result<std::unique_ptr<Exchange>> httpGet(ssl::context& tls, Url url, const Headers& headers, const std::string& authFor,
                                          const std::string& authorization) {
    for (int hop = 0;; ++hop) {
        auto ex = std::make_unique<Exchange>(tls);
        Headers h = headers;
        if (!authorization.empty() && url.authority() == authFor) h.emplace_back("Authorization", authorization);
        TRY(ex->open(url, h));
        unsigned s = ex->status();
        if (s != 301 && s != 302 && s != 303 && s != 307 && s != 308) return ex;
        if (hop == kMaxRedirects) return fail(Error::plain(ELOOP, url.str() + ": more than 10 redirects"));
        std::string loc = ex->header(http::field::location);
        if (loc.empty()) return fail(Error::plain(EPROTO, url.str() + ": redirect (" + ex->reason() + ") without Location"));
        url = TRY_CTX("redirect from " + url.str(), resolveLocation(url, loc));
        log::debugf("redirected to %s", url.str().c_str());
    }
}

/// A registry's error document {"errors":[{"code":…,"message":…}]}: the first
/// code and a message for the user ("" when the body is something else).
std::pair<std::string, std::string> registryError(Exchange& ex) {
    auto body = ex.readAll(kMaxSmallBody);
    if (!body) return {};
    auto doc = json::Value::parse(*body);
    if (!doc) return {};
    auto* errors = doc->find("errors");
    if (!errors || !errors->isArray() || errors->asArray().empty()) return {};
    auto& e = errors->asArray().front();
    std::string code, msg;
    if (auto* c = e.find("code"); c && c->isString()) code = c->asString();
    if (auto* m = e.find("message"); m && m->isString()) msg = m->asString();
    return {code, msg};
}

/// "user:pass" in base64 for REGISTRY from a Docker config.json, "" when the
/// file has no entry for it.
Result<std::string> loadCredentials(const std::string& file, const std::string& registry) {
    if (file.empty()) return std::string();
    auto text = TRY(sys::readFile(file));
    auto doc = TRY_CTX("credentials file " + file, json::Value::parse(text));
    auto* auths = doc.find("auths");
    if (!auths) return std::string();
    if (!auths->isObject()) return failInvalid("credentials file " + file + ": \"auths\" is not an object");
    // Docker writes Docker Hub's key as "https://index.docker.io/v1/"; others as host:port, maybe with a scheme.
    auto normalize = [](std::string k) {
        if (k.rfind("https://", 0) == 0) k = k.substr(8);
        if (k.rfind("http://", 0) == 0) k = k.substr(7);
        return k.substr(0, k.find('/'));
    };
    auto isHub = [](const std::string& h) {
        return h == kDockerHub || h == "index.docker.io" || h == "docker.io";
    };
    for (auto& [key, entry] : auths->asObject()) {
        std::string host = normalize(key);
        if (host != registry && !(isHub(host) && isHub(registry))) continue;
        if (!entry.isObject()) return failInvalid("credentials file " + file + ": entry \"" + key + "\" is not an object");
        if (auto* a = entry.find("auth"); a && a->isString() && !a->asString().empty()) return sys::trim(a->asString());
        auto* u = entry.find("username");
        auto* p = entry.find("password");
        if (u && p && u->isString() && p->isString()) return sys::base64Encode(u->asString() + ":" + p->asString());
    }
    return std::string();
}

/// The registry of one pull: its URL, its Authorization header (shared by the
/// download threads and refreshed when a token runs out), and HTTP through it.
class Registry {
public:
    Registry(const PullOptions& o, ssl::context& tls, std::string basic)
        : o_(o), tls_(tls), basic_(std::move(basic)) {
        base_.tls = true;
        for (auto& r : o.insecure)
            if (r == o.ref.registry) base_.tls = false;
        // On loopback, as Docker does: TLS when the registry speaks it (and
        // its certificate is checked as anywhere), else plain HTTP.
        loopback_ = base_.tls && isLoopbackRegistry(o.ref.registry);
        auto colon = o.ref.registry.rfind(':');
        auto close = o.ref.registry.rfind(']');
        if (colon != std::string::npos && (close == std::string::npos || colon > close)) {
            base_.host = o.ref.registry.substr(0, colon);
            base_.port = o.ref.registry.substr(colon + 1);
        } else {
            base_.host = o.ref.registry;
            base_.port = base_.tls ? "443" : "80";
        }
    }

    std::string name() const { return o_.ref.registry + "/" + o_.ref.repository; }

    /// GET /v2/<repo>/<path>; on 401, authenticate as the challenge asks and try once more.
    [[nodiscard]] Result<std::unique_ptr<Exchange>> get(const std::string& path, const std::string& accept) {
        Url url = base();
        url.target = "/v2/" + o_.ref.repository + "/" + path;
        Headers h;
        if (!accept.empty()) h.emplace_back("Accept", accept);
        std::string used = authorization();
        auto first = httpGet(tls_, url, h, url.authority(), used);
        // A loopback registry that answered TLS with plain HTTP (not one whose
        // certificate failed): plain HTTP from now on.
        if (!first && url.tls && loopback_ && first.error().message().find("TLS handshake with") != std::string::npos &&
            first.error().message().find("certificate") == std::string::npos) {
            {
                std::lock_guard lock(mu_);
                base_.tls = false;
            }
            url.tls = false;
            first = httpGet(tls_, url, h, url.authority(), used);
        }
        auto ex = TRY(std::move(first));
        std::string challenge = ex->header(http::field::www_authenticate);
        if (ex->status() != 401 || challenge.empty()) return ex;
        TRY(authenticate(challenge, used));
        std::string fresh = authorization();
        if (fresh == used) return ex;  // nothing new to offer: the caller reports the 401
        return httpGet(tls_, url, h, url.authority(), fresh);
    }

    /// An error for a 401/403 answer to what.
    Error denied(Exchange& ex, const std::string& what) {
        auto [code, msg] = registryError(ex);
        std::string s = (ex.status() == 401 ? "authentication failed (401) for " : "access denied (403) for ") + what;
        if (!msg.empty()) s += ": " + msg;
        if (basic_.empty()) s += " (no credentials for " + o_.ref.registry + (o_.credentialsFile.empty() ? "" : " in " + o_.credentialsFile) + ")";
        return Error::plain(EACCES, s);
    }

private:
    Url base() {
        std::lock_guard lock(mu_);
        return base_;
    }
    std::string authorization() {
        std::lock_guard lock(mu_);
        return auth_;
    }

    /// Answer a challenge: a Bearer token from its realm (with our basic
    /// credentials when we have some), or basic credentials.
    [[nodiscard]] Result<void> authenticate(const std::string& header, const std::string& used) {
        std::lock_guard lock(mu_);
        if (auth_ != used) return {};  // another download already renewed it
        Challenge c = parseChallenge(header);
        if (c.scheme == "basic") {
            if (basic_.empty())
                return fail(Error::plain(EACCES, "authentication required (401) for " + name() + ": no credentials for " +
                                                     o_.ref.registry +
                                                     (o_.credentialsFile.empty() ? "" : " in " + o_.credentialsFile)));
            auth_ = "Basic " + basic_;
            return {};
        }
        if (c.scheme != "bearer")
            return fail(Error::plain(EACCES, "authentication required (401) for " + name() + ": unsupported scheme in \"" +
                                                 header + "\""));
        std::string realm = c.param("realm");
        if (realm.empty()) return fail(Error::plain(EPROTO, name() + ": Bearer challenge without a realm"));
        auto url = TRY_CTX(name() + ": token realm", parseUrl(realm));
        std::string scope = c.param("scope");
        if (scope.empty()) scope = "repository:" + o_.ref.repository + ":pull";
        std::string query;
        if (auto service = c.param("service"); !service.empty()) query += "service=" + urlEncode(service);
        query += std::string(query.empty() ? "" : "&") + "scope=" + urlEncode(scope);
        url.target += (url.target.find('?') == std::string::npos ? "?" : "&") + query;
        std::string basic = basic_.empty() ? "" : "Basic " + basic_;
        auto ex = TRY_CTX("token for " + name(), httpGet(tls_, url, {{"Accept", "application/json"}}, url.authority(), basic));
        if (ex->status() == 401 || ex->status() == 403)
            return fail(Error::plain(EACCES, "authentication failed (" + std::to_string(ex->status()) + ") for " + name() +
                                                 ": the token service " + realm + " refused " +
                                                 (basic_.empty() ? "anonymous access" : "the credentials")));
        if (ex->status() != 200)
            return fail(Error::plain(EPROTO, "token for " + name() + ": " + realm + " answered " + ex->reason()));
        auto body = TRY_CTX("token for " + name(), ex->readAll(kMaxSmallBody));
        auto doc = TRY_CTX("token for " + name() + " from " + realm, json::Value::parse(body));
        const json::Value* tok = doc.find("token");
        if (!tok || !tok->isString() || tok->asString().empty()) tok = doc.find("access_token");
        if (!tok || !tok->isString() || tok->asString().empty())
            return fail(Error::plain(EPROTO, "token for " + name() + ": " + realm + " sent no token"));
        auth_ = "Bearer " + tok->asString();
        return {};
    }

    const PullOptions& o_;
    ssl::context& tls_;
    Url base_;
    bool loopback_ = false;  // a loopback registry not named insecure: TLS if it speaks it, else HTTP
    std::string basic_;  // base64(user:pass) or ""
    std::mutex mu_;
    std::string auth_;  // the Authorization header in use ("" until challenged)
};

struct Manifest {
    std::string body, mediaType;
    Digest digest;
};

class Puller {
public:
    Puller(const PullOptions& o, BlobSink& sink, ssl::context& tls, std::string basic)
        : o_(o), sink_(sink), reg_(o, tls, std::move(basic)) {}

    Result<PulledImage> pull() {
        const std::string refStr = o_.ref.str();
        std::string first = o_.ref.digest ? o_.ref.digest->str() : o_.ref.tag.empty() ? "latest" : o_.ref.tag;
        auto m = TRY(fetchManifest(first, o_.ref.digest));
        if (isIndexType(m.mediaType)) {
            auto d = TRY_CTX(refStr, selectPlatform(m));
            m = TRY(fetchManifest(d.digest.str(), d.digest));
            if (m.body.size() != d.size)
                return fail(Error::plain(EBADMSG, refStr + ": manifest " + d.digest.str() + " is " +
                                                      std::to_string(m.body.size()) + " bytes, its index says " +
                                                      std::to_string(d.size)));
        }
        if (!isManifestType(m.mediaType))
            return fail(Error::plain(ENOTSUP, refStr + ": unsupported manifest media type \"" + m.mediaType +
                                                  "\" (hull pulls OCI and Docker v2 schema 2 images)"));

        PulledImage img;
        img.manifest = m.digest;
        img.manifestJson = m.body;
        img.mediaType = m.mediaType;
        auto doc = TRY_CTX(refStr + ": manifest " + m.digest.str(), json::Value::parse(m.body));
        auto parsed = TRY(parseManifest(doc, refStr, "manifest " + m.digest.str()));
        img.config = parsed.config.digest;
        std::vector<Descriptor> blobs{parsed.config};
        for (auto& l : parsed.layers) {
            img.layers.push_back(l.digest);
            img.layerMediaTypes.push_back(l.mediaType);
            blobs.push_back(l);
        }
        TRY(fetchBlobs(blobs));
        return img;
    }

private:
    /// GET a manifest by tag or digest; verify it against EXPECTED when given.
    Result<Manifest> fetchManifest(const std::string& ref, const std::optional<Digest>& expected) {
        bool byDigest = expected.has_value();
        std::string what = reg_.name() + (byDigest ? "@" : ":") + ref;
        auto ex = TRY(reg_.get("manifests/" + ref, std::string(kOciIndex) + ", " + kOciManifest + ", " + kDockerList +
                                                       ", " + kDockerManifest));
        if (ex->status() == 404) {
            auto [code, msg] = registryError(*ex);
            // distribution answers MANIFEST_UNKNOWN for a tag of a repository it
            // has never heard of; its tag list tells the two apart.
            if (code != "NAME_UNKNOWN" && !byDigest) {
                auto tags = TRY(reg_.get("tags/list", ""));
                if (tags->status() == 404) code = "NAME_UNKNOWN";
            }
            if (code == "NAME_UNKNOWN") return fail(Error::plain(ENOENT, o_.ref.str() + ": repository not found"));
            if (byDigest) return fail(Error::plain(ENOENT, reg_.name() + ": manifest " + ref + " not found"));
            return fail(Error::plain(ENOENT, reg_.name() + ": tag \"" + ref + "\" not found"));
        }
        if (ex->status() == 401 || ex->status() == 403) return fail(reg_.denied(*ex, what));
        if (ex->status() != 200) {
            auto [code, msg] = registryError(*ex);
            return fail(Error::plain(EPROTO, what + ": registry answered " + ex->reason() + (msg.empty() ? "" : ": " + msg)));
        }
        Manifest m;
        m.body = TRY_CTX("manifest " + what, ex->readAll(kMaxManifest));
        m.digest = digestOf(m.body);
        if (expected && m.digest != *expected)
            return fail(Error::plain(EBADMSG, "manifest " + expected->str() + " from " + reg_.name() +
                                                  " does not match its digest (got " + m.digest.str() + ")"));
        if (auto hdr = ex->headerNamed("Docker-Content-Digest"); !hdr.empty()) {
            auto served = Digest::parse(hdr);
            if (served && *served != m.digest)
                return fail(Error::plain(EBADMSG, "manifest " + what + ": the registry says " + served->str() +
                                                      " but its bytes hash to " + m.digest.str()));
        }
        auto doc = TRY_CTX("manifest " + what, json::Value::parse(m.body));
        m.mediaType = TRY(manifestMediaType(doc, ex->header(http::field::content_type), what));
        return m;
    }

    Result<Descriptor> selectPlatform(const Manifest& index) {
        auto doc = TRY_CTX("index " + index.digest.str(), json::Value::parse(index.body));
        return wire::selectPlatform(doc, o_.platform, "index " + index.digest.str());
    }

    /// Download what the sink lacks, PARALLEL at a time; the first error stops
    /// the others at their next chunk.
    Result<void> fetchBlobs(const std::vector<Descriptor>& all) {
        std::vector<Descriptor> todo;
        for (auto& d : all) {
            bool dup = false;
            for (auto& t : todo) dup |= t.digest == d.digest;
            if (dup) continue;
            if (sink_.has(d.digest)) {
                report(d.digest.str(), d.size, d.size);
                continue;
            }
            todo.push_back(d);
        }
        if (todo.empty()) return {};
        std::atomic<size_t> next{0};
        std::mutex errMu;
        std::optional<Error> firstError;
        auto worker = [&] {
            for (;;) {
                if (failed_) return;
                size_t i = next++;
                if (i >= todo.size()) return;
                auto r = fetchBlob(todo[i]);
                if (!r && !failed_.exchange(true)) {
                    std::lock_guard lock(errMu);
                    firstError = r.error();
                }
            }
        };
        size_t n = size_t(std::max(1, o_.parallel));
        if (n > todo.size()) n = todo.size();
        std::vector<std::thread> threads;
        for (size_t t = 1; t < n; ++t) {
            try {
                threads.emplace_back(worker);
            } catch (const std::system_error&) {
                break;  // fewer threads; this one works too
            }
        }
        worker();
        for (auto& t : threads) t.join();
        if (firstError) return fail(*firstError);
        return {};
    }

    Result<void> fetchBlob(const Descriptor& d) {
        const std::string name = "blob " + d.digest.str();
        std::string dir = o_.tempDir;
        if (dir.empty()) {
            const char* t = std::getenv("TMPDIR");
            dir = t && *t ? t : "/tmp";
        }
        std::string path = dir + "/hull-blob-" + d.digest.hex.substr(0, 12) + "-XXXXXX";
        UniqueFd fd(::mkostemp(path.data(), O_CLOEXEC));
        if (!fd) return failErrno("create a temp file in " + dir + " for " + name);
        ScopeExit removeTemp([&] { ::unlink(path.c_str()); });

        auto ex = TRY_CTX(name, reg_.get("blobs/" + d.digest.str(), ""));
        if (ex->status() == 404)
            return fail(Error::plain(ENOENT, name + " not found in " + reg_.name()));
        if (ex->status() == 401 || ex->status() == 403) return fail(reg_.denied(*ex, name));
        if (ex->status() != 200) {
            auto [code, msg] = registryError(*ex);
            return fail(Error::plain(EPROTO, name + ": " + ex->url().authority() + " answered " + ex->reason() +
                                                 (msg.empty() ? "" : ": " + msg)));
        }
        auto sizeError = [&](const std::string& got) {
            return fail(Error::plain(EBADMSG, name + " from " + reg_.name() + " has the wrong size: " + got +
                                                  ", its descriptor says " + std::to_string(d.size)));
        };
        if (auto cl = ex->contentLength(); cl && *cl != d.size) return sizeError(std::to_string(*cl) + " bytes announced");

        Sha256 hash;
        uint64_t done = 0, reported = 0;
        report(d.digest.str(), 0, d.size);
        std::vector<char> buf(1 << 16);
        for (;;) {
            if (failed_) return fail(Error::plain(ECANCELED, name + ": cancelled"));
            size_t n = TRY_CTX(name, ex->read(buf.data(), buf.size()));
            if (n == 0) break;
            // Stop at the first byte past the descriptor: a lying server must not fill the disk.
            if (done + n > d.size) return sizeError("more than " + std::to_string(d.size) + " bytes");
            hash.update(buf.data(), n);
            TRY_CTX("write " + path, sys::writeAll(fd.get(), std::string_view(buf.data(), n)));
            done += n;
            if (done - reported >= (256 << 10) || done == d.size) {
                report(d.digest.str(), done, d.size);
                reported = done;
            }
        }
        if (done != d.size) return sizeError(std::to_string(done) + " bytes");
        Digest got = hash.finish();
        if (got != d.digest)
            return fail(Error::plain(EBADMSG, name + " from " + reg_.name() + " does not match its digest (got " +
                                                  got.str() + ")"));
        fd.reset();
        {
            // Sinks need not be thread-safe: one put() at a time.
            std::lock_guard lock(sinkMu_);
            TRY_CTX("store " + name, sink_.put(d.digest, path));
        }
        return {};  // removeTemp unlinks what the sink did not take
    }

    void report(const std::string& what, uint64_t done, uint64_t total) {
        if (!o_.progress) return;
        std::lock_guard lock(progressMu_);
        o_.progress(what, done, total);
    }

    const PullOptions& o_;
    BlobSink& sink_;
    Registry reg_;
    std::atomic<bool> failed_{false};
    std::mutex sinkMu_, progressMu_;
};

}  // namespace

Result<PulledImage> pull(const PullOptions& o, BlobSink& sink) {
    if (o.ref.registry.empty() || o.ref.repository.empty())
        return failInvalid("pull: the reference has no registry or repository");
    std::string basic = TRY(loadCredentials(o.credentialsFile, o.ref.registry));
    std::unique_ptr<ssl::context> tls;
    try {
        tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    } catch (const boost::system::system_error& e) {
        return fail(Error::plain(EIO, std::string("TLS setup: ") + e.what()));
    }
    boost::system::error_code ec;
    tls->set_default_verify_paths(ec);  // the system store (SSL_CERT_FILE/SSL_CERT_DIR move it)
    if (ec) return fail(Error::plain(EIO, "TLS setup: loading the system certificates: " + ec.message()));
    tls->set_verify_mode(ssl::verify_peer);
    Puller p(o, sink, *tls, std::move(basic));
    return p.pull();
}

}  // namespace hull::images
