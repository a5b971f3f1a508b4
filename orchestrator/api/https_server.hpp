#pragma once
// The master's one TLS 1.3 port (orchestrator/README.md, "The cluster
// protocol"): an asynchronous HTTPS server on Boost.Asio/Beast with OpenSSL,
// HTTP/1.1 keep-alive, optional client certificates checked against the
// cluster CA, and WebSocket endpoints for node sessions.
//
// Every stage of a connection has a deadline (handshake and first header,
// idle keep-alive, each later header, body, response write), so a client that
// connects and sends nothing, or dribbles bytes, is cut off at its deadline and
// costs the others nothing. Errors are JSON everywhere: {"error": "..."}.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sys/error.hpp"

namespace boost::asio {
class io_context;
}

namespace hull::orchestrator::api {

/// Who is on the other end of a connection.
struct Peer {
    std::string address;  // "10.0.0.5:41234", "[fd00::5]:41234"
    /// The client certificate's subject: only when the client presented one and
    /// it verified against the server's CA (a certificate that does not verify
    /// fails the handshake; these are then simply absent without one).
    std::optional<std::string> certCommonName, certOrganization;
    /// The client certificate's sha256 (lowercase hex): which certificate, of
    /// several issued under one name, this peer holds.
    std::optional<std::string> certSha256;
    /// From "Authorization: Bearer TOKEN"; empty without one.
    std::string bearerToken;
};

struct Request {
    std::string method, target, body;  // target as sent: path and query
    std::map<std::string, std::string> headers;  // lower-case names; repeated ones joined with ", "
    Peer peer;

    /// The target without its query.
    std::string path() const;
    /// The query parameter NAME, percent-decoded ("+" is a space); nullopt when absent.
    std::optional<std::string> query(const std::string& name) const;
    /// The header NAME (lower-case), "" when absent.
    std::string header(const std::string& name) const;
};

struct Response {
    int status = 200;
    std::string body;
    std::string contentType = "application/json";
    /// Extra headers (WWW-Authenticate, Retry-After...); Content-Length and
    /// Connection are the server's.
    std::vector<std::pair<std::string, std::string>> headers;
};

/// STATUS with the body {"error": MESSAGE}.
Response errorResponse(int status, const std::string& message);

/// One WebSocket session (a node's). Text frames; messages are whole.
class WebSocketSession {
public:
    virtual ~WebSocketSession() = default;
    /// Queue TEXT; written in order of the calls, never interleaved. Never blocks;
    /// callable from any thread. After close(), or once closed, a no-op. A peer
    /// that lets more than ServerOptions::wsMaxQueueBytes pile up unread is cut off.
    virtual void send(std::string text) = 0;
    /// Close after the queued messages are written (a close frame, then the
    /// connection); cut off when that takes longer than headerTimeout. Any thread.
    virtual void close() = 0;
    /// As on the upgrade request (its bearerToken included). Immutable: any thread.
    virtual const Peer& peer() const = 0;
};

/// The handlers of a WebSocket endpoint; all run on the io_context.
struct WebSocketHandlers {
    /// The upgrade is done: the session may send.
    std::function<void(std::shared_ptr<WebSocketSession>)> onOpen;
    std::function<void(const std::shared_ptr<WebSocketSession>&, std::string)> onMessage;
    /// The session ended, closed by either side, by a deadline or by stop():
    /// exactly once for every session whose onOpen ran.
    std::function<void(const std::shared_ptr<WebSocketSession>&)> onClose;
};

struct ServerOptions {
    std::string listen = "0.0.0.0:7443";  // "HOST:PORT", "[::]:PORT"; port 0 picks one (tests)
    std::string certPem, keyPem;  // the server's certificate and key
    /// The cluster CA: sent after the server certificate in the chain (a joining
    /// node pins it from there) and the one trust anchor for client
    /// certificates. Clients are asked for a certificate but may send none.
    std::string caPem;
    /// From the accept to the end of the first request's header (TLS handshake
    /// included); from the first byte to the end of any later header.
    std::chrono::milliseconds headerTimeout{5000};
    /// To read a body after its header; to write a response.
    std::chrono::milliseconds requestTimeout{10000};
    /// A keep-alive connection waiting for its next request.
    std::chrono::milliseconds idleTimeout{60000};
    size_t maxBodyBytes = 8 << 20;  // beyond: 413
    size_t maxConnections = 4096;   // beyond: new connections are closed at once (WebSockets count)
    size_t wsMaxMessageBytes = 16 << 20;
    size_t wsMaxQueueBytes = 64 << 20;  // unsent bytes of a session before it is cut off
    /// A WebSocket silent for this long is pinged; silent twice as long, closed. 0: never.
    std::chrono::milliseconds wsPingEvery{0};
};

class HttpsServer {
public:
    /// Listen on OPTIONS.listen. Runs on the caller's io_context (one thread);
    /// every handler runs on it too. Register routes before running the io_context.
    [[nodiscard]] static Result<std::unique_ptr<HttpsServer>> create(boost::asio::io_context& ioc, ServerOptions options);
    /// stop()s.
    ~HttpsServer();
    HttpsServer(const HttpsServer&) = delete;
    HttpsServer& operator=(const HttpsServer&) = delete;

    /// HANDLER answers METHOD PATH: an exact path (the query is ignored for matching),
    /// or every path under a prefix when PATH ends with '*' ("/v1/services/*").
    /// An exact route wins over a prefix, a longer prefix over a shorter one. A
    /// path served for other methods only gets 405, an unknown one 404. An
    /// exception from a handler is a 500.
    void route(std::string method, std::string path, std::function<Response(const Request&)> handler);
    /// As route(), but HANDLER replies later (a long poll) by calling its second
    /// argument exactly once, on the io_context. If every copy of it is dropped
    /// uncalled, the client gets a 500. The connection waits without a deadline.
    void routeAsync(std::string method, std::string path,
                    std::function<void(const Request&, std::function<void(Response)>)> handler);
    /// A WebSocket endpoint: an upgrade on GET PATH (exact). AUTHORIZE sees the
    /// upgrade request; a Response from it is sent instead of the upgrade.
    void webSocket(std::string path, std::function<std::optional<Response>(const Request&)> authorize,
                   WebSocketHandlers handlers);

    /// The bound port (listen "127.0.0.1:0" picks one).
    uint16_t port() const;
    /// Stop accepting and cut every connection and session (their onClose run).
    /// Any thread; done on the io_context (at once when called on it).
    void stop();

    struct Impl;

private:
    explicit HttpsServer(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

}  // namespace hull::orchestrator::api
