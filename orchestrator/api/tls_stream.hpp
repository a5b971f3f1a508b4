#pragma once
// A TLS stream over a beast::tcp_stream that costs a few KiB while idle, in
// place of beast::ssl_stream (asio::ssl::stream), whose engine keeps some
// 68 KiB of buffers per connection for its whole life: a thousand idle node
// sessions would be most of the master's memory.
//
// The SSL object reads and writes through a BIO of our own over two small
// buffers: ciphertext read from the socket (2 KiB while idle, growing to one
// record only while reads keep filling it) and ciphertext to send (freed
// once it is on the socket). What stays is mostly OpenSSL's own per-connection
// state (some 20 KiB in OpenSSL 3 with a peer certificate). Every socket read and write goes through the
// tcp_stream, so its deadlines (get_lowest_layer(s).expires_after) bound them.
//
// One read and one write may be pending at once (a WebSocket reads while it
// writes); a write completes once its ciphertext is on the socket. Handlers
// never run inside the call that starts their operation. Not thread-safe:
// like asio's streams, use it from one thread (or strand) at a time.
#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

#include <openssl/ssl.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/beast/core/async_base.hpp>
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace hull::orchestrator::api {

namespace tls_detail {

/// A pending operation's handler, its type erased so the engine is not a template.
class Completion {
public:
    virtual ~Completion() = default;
    /// Run the handler with (EC[, N]) and delete this. IMMEDIATE: from the
    /// call that started the operation, so the handler is posted.
    virtual void complete(const boost::beast::error_code& ec, size_t n, bool immediate) = 0;
};

template <class Handler, bool WithSize>
class Op final : public Completion, public boost::beast::async_base<Handler, boost::beast::tcp_stream::executor_type> {
    using Base = boost::beast::async_base<Handler, boost::beast::tcp_stream::executor_type>;

public:
    template <class H>
    Op(H&& handler, const boost::beast::tcp_stream::executor_type& ex) : Base(std::forward<H>(handler), ex) {}

    void complete(const boost::beast::error_code& ec, size_t n, bool immediate) override {
        std::unique_ptr<Op> self(this);  // deleted after the handler returns
        if constexpr (WithSize)
            Base::complete(!immediate, ec, n);
        else
            Base::complete(!immediate, ec);
    }
};

/// The first non-empty buffer of BUFFERS (an empty one if none).
template <class Buffer, class Sequence>
Buffer firstBuffer(const Sequence& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
        Buffer b(*it);
        if (b.size() > 0) return b;
    }
    return Buffer();
}

}  // namespace tls_detail

class TlsStream {
public:
    using next_layer_type = boost::beast::tcp_stream;
    using lowest_layer_type = boost::beast::tcp_stream;
    using executor_type = next_layer_type::executor_type;
    using handshake_type = boost::asio::ssl::stream_base::handshake_type;

    /// The most plaintext one async_write_some encrypts: its ciphertext is held until flushed.
    static constexpr size_t kMaxWriteBytes = 64 << 10;
    /// Buffer sequences whose first buffer is smaller than this are gathered
    /// into one record (a WebSocket frame header with its payload).
    static constexpr size_t kGatherBytes = 16 << 10;

    /// An unconnected stream on IOC (connect it through next_layer()); its SSL
    /// object comes from CTX, which must outlive the handshake.
    TlsStream(boost::asio::io_context& ioc, boost::asio::ssl::context& ctx);
    /// Over TCP, connected already (an accepted socket).
    TlsStream(boost::beast::tcp_stream tcp, boost::asio::ssl::context& ctx);
    TlsStream(TlsStream&&) noexcept;
    TlsStream& operator=(TlsStream&&) noexcept;
    /// Closes the socket: pending operations end with operation_aborted.
    ~TlsStream();

    next_layer_type& next_layer();
    const next_layer_type& next_layer() const;
    SSL* native_handle();
    executor_type get_executor();

    /// The TLS handshake; handler(error_code). An alert our side sends is flushed first.
    template <class Token>
    auto async_handshake(handshake_type type, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::beast::error_code)>(
            [this](auto&& handler, handshake_type t) {
                startHandshake(t, makeOp<false>(std::forward<decltype(handler)>(handler)));
            },
            token, type);
    }

    /// Plaintext into the first non-empty buffer; handler(error_code, size_t).
    /// The end: asio::error::eof after the peer's close_notify,
    /// asio::ssl::error::stream_truncated without one.
    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::beast::error_code, size_t)>(
            [this](auto&& handler, boost::asio::mutable_buffer buf) {
                startRead(buf, makeOp<true>(std::forward<decltype(handler)>(handler)));
            },
            token, tls_detail::firstBuffer<boost::asio::mutable_buffer>(buffers));
    }

    /// Encrypt up to kMaxWriteBytes of BUFFERS and complete once that is on the
    /// socket; handler(error_code, size_t).
    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::beast::error_code, size_t)>(
            [this, &buffers](auto&& handler) {
                auto op = makeOp<true>(std::forward<decltype(handler)>(handler));
                auto first = tls_detail::firstBuffer<boost::asio::const_buffer>(buffers);
                size_t total = boost::beast::buffer_bytes(buffers);
                if (first.size() >= std::min(total, kGatherBytes))
                    return startWrite(first.data(), std::min(first.size(), kMaxWriteBytes), std::move(op));
                // Small pieces: one record for them, not one each.
                std::array<char, kGatherBytes> gathered;
                size_t n = boost::asio::buffer_copy(boost::asio::buffer(gathered), buffers);
                startWrite(gathered.data(), n, std::move(op));
            },
            token);
    }

    /// Send close_notify and complete once it is on the socket; the peer's is
    /// not waited for (a read may be pending): a pending read ends with eof
    /// when it comes. handler(error_code).
    template <class Token>
    auto async_shutdown(Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::beast::error_code)>(
            [this](auto&& handler) { startShutdown(false, makeOp<false>(std::forward<decltype(handler)>(handler))); },
            token);
    }

    /// async_shutdown, then close the socket (a WebSocket's teardown).
    template <class Token>
    auto async_shutdown_and_close(Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::beast::error_code)>(
            [this](auto&& handler) { startShutdown(true, makeOp<false>(std::forward<decltype(handler)>(handler))); },
            token);
    }

    /// Blocking: send close_notify (unless a flush is under way) and close the socket.
    void shutdownAndClose(boost::beast::error_code& ec);

    struct Impl;

private:
    template <bool WithSize, class Handler>
    std::unique_ptr<tls_detail::Completion> makeOp(Handler&& handler) {
        return std::make_unique<tls_detail::Op<std::decay_t<Handler>, WithSize>>(std::forward<Handler>(handler),
                                                                                 get_executor());
    }

    void startHandshake(handshake_type type, std::unique_ptr<tls_detail::Completion> op);
    void startRead(boost::asio::mutable_buffer buf, std::unique_ptr<tls_detail::Completion> op);
    void startWrite(const void* data, size_t n, std::unique_ptr<tls_detail::Completion> op);
    void startShutdown(bool close, std::unique_ptr<tls_detail::Completion> op);

    std::shared_ptr<Impl> impl_;
};

/// A WebSocket's teardown (found by argument-dependent lookup from
/// beast::websocket::stream<TlsStream>): close_notify, then the TCP socket is closed.
void teardown(boost::beast::role_type role, TlsStream& stream, boost::beast::error_code& ec);

template <class TeardownHandler>
void async_teardown(boost::beast::role_type, TlsStream& stream, TeardownHandler&& handler) {
    stream.async_shutdown_and_close(std::forward<TeardownHandler>(handler));
}

}  // namespace hull::orchestrator::api
