#pragma once
// Internal to hull_api: one WebSocket over TLS once its handshake is done, as
// the server's sessions and the client both use it: a read loop, a write
// queue (one write at a time, in order), and a close that flushes first.
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "orchestrator/api/tls_stream.hpp"

namespace hull::orchestrator::api {

using WsStream = boost::beast::websocket::stream<TlsStream>;

struct WsLimits {
    std::chrono::milliseconds handshakeTimeout{10000};  // the upgrade; the close handshake
    std::chrono::milliseconds pingEvery{0};             // 0: no pings, no idle limit
    size_t maxMessageBytes = 16 << 20;
    size_t maxQueueBytes = 64 << 20;
};

class WsChannel : public std::enable_shared_from_this<WsChannel> {
public:
    struct Events {
        std::function<void(std::string)> onMessage;
        /// Once, when the channel ends for any reason; WHY says how ("closed", "closed by the peer", an error).
        std::function<void(const std::string& why)> onEnd;
    };

    /// STREAM's TCP layer gets no deadline of its own: LIMITS' apply. WHO names the peer in logs.
    WsChannel(boost::asio::io_context& ioc, WsStream stream, const WsLimits& limits, std::string who);

    /// For the handshake (before start()).
    WsStream& stream() { return ws_; }
    /// Start reading, and writing what was queued (on the io_context, once).
    void start(Events events);
    /// Queue TEXT (any thread); dropped once closing or ended.
    void send(std::string text);
    /// Flush the queue, then the close handshake; the connection is cut if that
    /// takes longer than the handshake timeout. Before start(): cut at once. Any thread.
    void close();
    /// Cut the connection now (on the io_context); the read ends, onEnd runs.
    void abort();
    /// Bytes queued and not yet written (on the io_context): a producer that
    /// can wait (a log reader, an exec's output) waits while this is large.
    size_t queuedBytes() const { return queuedBytes_; }

private:
    void read();
    void writeNext();
    void closeNow();
    void end(const boost::beast::error_code& ec);

    boost::asio::io_context& ioc_;
    WsStream ws_;
    WsLimits limits_;
    std::string who_;
    Events events_;
    boost::asio::steady_timer closeTimer_;
    boost::beast::flat_buffer buf_;
    std::deque<std::string> queue_;
    size_t queuedBytes_ = 0;
    bool started_ = false, writing_ = false, closing_ = false, ended_ = false;
};

}  // namespace hull::orchestrator::api
