#pragma once
// The cluster's clients: a blocking HTTPS request (the CLI, a node's join) and
// an asynchronous WebSocket (a node's session). TLS 1.3 only, trusting only
// the cluster CA, or, before a node has it, a CA pinned by its sha256 (the
// join token's): orchestrator/README.md, "Join".
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "sys/error.hpp"

namespace boost::asio {
class io_context;
}

namespace hull::orchestrator::api {

struct Url {
    std::string scheme;  // "https", "wss" (or "http", "ws": parsed, never connected to)
    std::string host;    // IPv6 without its brackets
    uint16_t port = 0;   // 443 (80) when the URL names none
    std::string target = "/";  // path and query; no fragment
    /// "host:port", IPv6 in brackets.
    std::string authority() const;
};
/// "https://host:port/path?query": errors name the URL and what is wrong with it.
[[nodiscard]] Result<Url> parseUrl(const std::string& url);

struct ClientOptions {
    std::string caPem;  // trust only this CA (and check the host against the server certificate's SANs)
    std::string certPem, keyPem;  // a client certificate: optional
    std::string bearerToken;      // sent as "Authorization: Bearer TOKEN" when set
    /// The whole request (connect, TLS, request, response); for a WebSocket, each handshake.
    std::chrono::milliseconds timeout{10000};
    /// When set and caPem is empty: accept the server only if its chain holds
    /// a CA certificate with this sha256 (lowercase hex, certFingerprint()) and
    /// the server certificate verifies against that CA for the URL's host.
    /// Checked after the handshake, before a byte of the request is sent.
    std::string pinCaSha256;
    size_t maxResponseBytes = 64 << 20;  // and the largest WebSocket message
    /// WebSocket only: ping after this long without a frame from the server;
    /// give up (onClose "timed out") after twice as long. 0: never.
    std::chrono::milliseconds wsPingEvery{0};
};

struct HttpResult {
    int status = 0;
    std::string body;
    std::string caPemSeen;  // with pinCaSha256: the CA the server presented (PEM)
};

/// One request to URL (https only), on a connection of its own, blocking the
/// caller up to OPTIONS.timeout. Any HTTP status is a result; an error is a
/// failure to get one, named by URL and cause: "https://10.0.0.1:7443/v1/join:
/// certificate verify failed: ...", "...: the master's CA does not match the
/// join token", "...: the server refused our client certificate (...)",
/// "...: timed out after 10 s".
[[nodiscard]] Result<HttpResult> httpsRequest(const std::string& method, const std::string& url, const std::string& body,
                                              const ClientOptions& options);

/// A WebSocket to a wss:// URL, asynchronous on the caller's io_context. The
/// client object stays alive while connected (its operations hold it); the
/// handlers run on the io_context.
class WebSocketClient : public std::enable_shared_from_this<WebSocketClient> {
public:
    struct Handlers {
        std::function<void()> onOpen;
        std::function<void(std::string)> onMessage;
        /// Once for every connect(): a failure to connect or the end of the
        /// session, as "URL: why": "closed" (by us), "closed by the peer",
        /// "timed out", a TLS error, "the server refused the WebSocket: 401 {...}".
        std::function<void(const std::string& why)> onClose;
    };

    static std::shared_ptr<WebSocketClient> create(boost::asio::io_context& ioc, std::string url, ClientOptions options,
                                                   Handlers handlers);
    ~WebSocketClient();

    /// Resolve, connect, TLS, upgrade, each within OPTIONS.timeout; onOpen, or
    /// onClose with why not. Once per client (make a new one to reconnect).
    void connect();
    /// Queue TEXT: written in order once open (queued before that). Any thread.
    void send(std::string text);
    /// Flush the queue and close; onClose("closed"). While connecting: give up. Any thread.
    void close();
    /// Bytes queued and not yet written (on the io_context only).
    size_t queuedBytes() const;

    struct State;

private:
    WebSocketClient(boost::asio::io_context& ioc, std::string url, ClientOptions options, Handlers handlers);
    std::unique_ptr<State> s_;
};

}  // namespace hull::orchestrator::api
