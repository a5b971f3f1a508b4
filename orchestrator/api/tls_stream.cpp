#include "orchestrator/api/tls_stream.hpp"

#include <climits>
#include <cstring>
#include <new>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

namespace hull::orchestrator::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
using beast::error_code;
using tls_detail::Completion;

namespace {

// The ciphertext read buffer: this much while idle (a socket read is always
// pending on a session), doubling while reads fill it, up to a whole record
// with its header.
constexpr size_t kMinIn = 2 << 10;
constexpr size_t kMaxIn = 17 << 10;

}  // namespace

struct TlsStream::Impl : std::enable_shared_from_this<Impl> {
    explicit Impl(beast::tcp_stream t) : tcp(std::move(t)) {}
    ~Impl() {
        if (ssl) SSL_free(ssl);  // and the BIO with it
    }

    /// An operation waiting for the output to reach the socket, then completing with (EC, N).
    struct Waiter {
        std::unique_ptr<Completion> op;
        error_code ec;
        size_t n = 0;
        bool close = false;  // close the socket first (a teardown)
    };

    void init(SSL_CTX* ctx);
    void driveHandshake(bool immediate);
    void driveRead(bool immediate);
    void startSocketRead();
    void onSocketRead(const error_code& ec, size_t n);
    void startFlush();
    void onFlushed(const error_code& ec);
    /// Complete OP with (EC, N) once the output is flushed (at once if it is).
    void afterFlush(std::unique_ptr<Completion> op, const error_code& ec, size_t n, bool immediate, bool close = false);
    /// The error of a failed SSL call whose SSL_get_error() was ERR.
    error_code sslError(int err);
    /// Destroy the pending operations' handlers uncalled (the io_context is going).
    void dropOps();
    void closeSocket() {
        error_code ignored;
        tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        tcp.close();
    }

    static void finish(std::unique_ptr<Completion>& slot, const error_code& ec, size_t n, bool immediate) {
        slot.release()->complete(ec, n, immediate);
    }

    beast::tcp_stream tcp;
    SSL* ssl = nullptr;

    // Ciphertext read from the socket and not yet taken by the SSL object.
    std::unique_ptr<unsigned char[]> in;
    size_t inCap = 0, inBeg = 0, inEnd = 0, nextInCap = kMinIn;
    bool socketReading = false, eof = false;
    error_code readError;  // the socket read's; every later read gets it too

    // Ciphertext the BIO appends to, and the one being written to the socket.
    std::vector<unsigned char> outPending, outFlight;
    bool socketWriting = false;
    error_code writeError;
    std::vector<Waiter> waiters;

    std::unique_ptr<Completion> handshakeOp, readOp;
    asio::mutable_buffer readBuf;
};

namespace {

/// The Impl, held by a socket operation's handler. A handler destroyed
/// uninvoked (its io_context destroyed first) drops the pending operations:
/// their handlers often own the stream, a cycle through the Impl otherwise.
class Hold {
public:
    explicit Hold(std::shared_ptr<TlsStream::Impl> impl) : impl_(std::move(impl)) {}
    Hold(Hold&&) noexcept = default;
    Hold& operator=(Hold&&) = delete;
    ~Hold() {
        if (impl_) impl_->dropOps();
    }
    /// For the invocation: the handler is done with it.
    std::shared_ptr<TlsStream::Impl> take() { return std::move(impl_); }

private:
    std::shared_ptr<TlsStream::Impl> impl_;
};

}  // namespace

void TlsStream::Impl::dropOps() {
    auto hs = std::move(handshakeOp);
    auto rd = std::move(readOp);
    auto ws = std::move(waiters);
}

// ---------------------------------------------------------------------------
// The BIO: the SSL object's view of our buffers

namespace {

int bioWrite(BIO* b, const char* data, int len) {
    auto* impl = static_cast<TlsStream::Impl*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    impl->outPending.insert(impl->outPending.end(), data, data + len);
    return len;
}

int bioRead(BIO* b, char* data, int len) {
    auto* impl = static_cast<TlsStream::Impl*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    size_t avail = impl->inEnd - impl->inBeg;
    if (avail == 0) {
        // Even at the peer's EOF: the engine reports a truncation, not OpenSSL's guess.
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = std::min(avail, size_t(std::max(len, 0)));
    std::memcpy(data, impl->in.get() + impl->inBeg, n);
    impl->inBeg += n;
    return int(n);
}

long bioCtrl(BIO*, int cmd, long, void*) {
    switch (cmd) {
        case BIO_CTRL_FLUSH:
            return 1;  // the engine flushes after each call
        default:
            return 0;
    }
}

int bioCreate(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

int bioDestroy(BIO*) { return 1; }

BIO_METHOD* bioMethod() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hull tls stream");
        if (!m) return m;
        BIO_meth_set_write(m, bioWrite);
        BIO_meth_set_read(m, bioRead);
        BIO_meth_set_ctrl(m, bioCtrl);
        BIO_meth_set_create(m, bioCreate);
        BIO_meth_set_destroy(m, bioDestroy);
        return m;
    }();
    return method;
}

}  // namespace

void TlsStream::Impl::init(SSL_CTX* ctx) {
    BIO_METHOD* method = bioMethod();
    ssl = method ? SSL_new(ctx) : nullptr;
    BIO* bio = ssl ? BIO_new(method) : nullptr;
    if (!bio) {
        ERR_clear_error();
        throw std::bad_alloc();
    }
    BIO_set_data(bio, this);
    SSL_set_bio(ssl, bio, bio);
    // The SSL object's own record buffers go back between records.
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
}

// ---------------------------------------------------------------------------
// The engine

error_code TlsStream::Impl::sslError(int err) {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e != 0) return error_code(int(e), asio::error::get_ssl_category());
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) return asio::ssl::error::stream_truncated;
    return error_code(int(asio::error::fault), boost::system::system_category());
}

void TlsStream::Impl::driveHandshake(bool immediate) {
    if (!handshakeOp) return;
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        // Our last flight (a client's Finished) goes out before the handshake counts as done.
        return afterFlush(std::move(handshakeOp), {}, 0, immediate);
    }
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        startFlush();
        if (readError) return finish(handshakeOp, readError, 0, immediate);
        if (eof) return finish(handshakeOp, asio::ssl::error::stream_truncated, 0, immediate);
        return startSocketRead();
    }
    // The alert we send says why to the peer: it goes out before we report.
    afterFlush(std::move(handshakeOp), sslError(err), 0, immediate);
}

void TlsStream::Impl::driveRead(bool immediate) {
    if (!readOp) return;
    if (inBeg == inEnd && !SSL_has_pending(ssl)) {
        // Nothing to decrypt: SSL_read would only allocate its record buffer to wait in.
        if (readError) return finish(readOp, readError, 0, immediate);
        if (eof) return finish(readOp, asio::ssl::error::stream_truncated, 0, immediate);
        return startSocketRead();
    }
    ERR_clear_error();
    int r = SSL_read(ssl, readBuf.data(), int(std::min(readBuf.size(), size_t(INT_MAX))));
    startFlush();  // a KeyUpdate's answer, an alert
    if (r > 0) return finish(readOp, {}, size_t(r), immediate);
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        if (readError) return finish(readOp, readError, 0, immediate);
        if (eof) return finish(readOp, asio::ssl::error::stream_truncated, 0, immediate);
        return startSocketRead();
    }
    if (err == SSL_ERROR_ZERO_RETURN) return finish(readOp, asio::error::eof, 0, immediate);
    finish(readOp, sslError(err), 0, immediate);
}

void TlsStream::Impl::startSocketRead() {
    if (socketReading || readError || eof) return;
    // The SSL object's record buffers go back by themselves between records
    // (SSL_MODE_RELEASE_BUFFERS); SSL_free_buffers here bought nothing, and on
    // OpenSSL before 3.0.14 it is CVE-2024-4741's use-after-free.
    if (inBeg == inEnd) inBeg = inEnd = 0;
    if (inBeg == inEnd && nextInCap != inCap) {
        in.reset(new unsigned char[nextInCap]);
        inCap = nextInCap;
    } else if (inEnd == inCap) {
        // Not drained (the engine takes all it can before asking for more): make room all the same.
        size_t cap = std::max(inCap * 2, kMinIn);
        std::unique_ptr<unsigned char[]> bigger(new unsigned char[cap]);
        std::memcpy(bigger.get(), in.get() + inBeg, inEnd - inBeg);
        in = std::move(bigger);
        inEnd -= inBeg;
        inBeg = 0;
        inCap = cap;
    }
    socketReading = true;
    tcp.async_read_some(asio::buffer(in.get() + inEnd, inCap - inEnd),
                        [hold = Hold(shared_from_this())](const error_code& ec, size_t n) mutable {
                            hold.take()->onSocketRead(ec, n);
                        });
}

void TlsStream::Impl::onSocketRead(const error_code& ec, size_t n) {
    socketReading = false;
    size_t space = inCap - inEnd;
    inEnd += n;
    // Grow only while the data keeps filling the buffer; a read that does not
    // means the socket is drained, and the next (maybe idle) read is small.
    nextInCap = n == space ? std::min(inCap * 2, kMaxIn) : kMinIn;
    if (ec == asio::error::eof)
        eof = true;
    else if (ec)
        readError = ec;
    if (handshakeOp)
        driveHandshake(false);
    else if (readOp)
        driveRead(false);
}

void TlsStream::Impl::startFlush() {
    if (socketWriting || outPending.empty() || writeError) return;
    std::swap(outFlight, outPending);
    socketWriting = true;
    asio::async_write(tcp, asio::buffer(outFlight),
                      [hold = Hold(shared_from_this())](const error_code& ec, size_t) mutable {
                          hold.take()->onFlushed(ec);
                      });
}

void TlsStream::Impl::onFlushed(const error_code& ec) {
    socketWriting = false;
    // Freed, not kept: an idle session would keep its largest flight (a
    // handshake's is over a KiB) for nothing; a busy one allocates once a flush.
    std::vector<unsigned char>().swap(outFlight);
    if (ec) {
        writeError = ec;
        std::vector<unsigned char>().swap(outPending);
    }
    if (!outPending.empty()) return startFlush();
    // Everything is out (or cannot be): the waiters' turn. A handler may start
    // operations that wait in turn: they join a fresh list.
    std::vector<Waiter> done;
    done.swap(waiters);
    bool close = false;
    for (auto& w : done) close = close || w.close;
    if (close) closeSocket();
    for (auto& w : done) {
        // A teardown's close_notify is a courtesy: the socket is closed whatever became of it.
        error_code result = w.close ? error_code() : w.ec ? w.ec : writeError;
        w.op.release()->complete(result, result ? 0 : w.n, false);
    }
}

void TlsStream::Impl::afterFlush(std::unique_ptr<Completion> op, const error_code& ec, size_t n, bool immediate,
                                 bool close) {
    startFlush();
    if (!socketWriting) {
        if (close) closeSocket();
        error_code result = close ? error_code() : ec ? ec : writeError;
        op.release()->complete(result, result ? 0 : n, immediate);
        return;
    }
    waiters.push_back(Waiter{std::move(op), ec, n, close});
}

// ---------------------------------------------------------------------------
// The handle

TlsStream::TlsStream(asio::io_context& ioc, asio::ssl::context& ctx) : TlsStream(beast::tcp_stream(ioc), ctx) {}

TlsStream::TlsStream(beast::tcp_stream tcp, asio::ssl::context& ctx)
    : impl_(std::make_shared<Impl>(std::move(tcp))) {
    impl_->init(ctx.native_handle());
}

TlsStream::TlsStream(TlsStream&&) noexcept = default;

TlsStream& TlsStream::operator=(TlsStream&& other) noexcept {
    if (this != &other) {
        if (impl_) impl_->tcp.close();
        impl_ = std::move(other.impl_);
    }
    return *this;
}

TlsStream::~TlsStream() {
    if (impl_) impl_->tcp.close();
}

TlsStream::next_layer_type& TlsStream::next_layer() { return impl_->tcp; }
const TlsStream::next_layer_type& TlsStream::next_layer() const { return impl_->tcp; }
SSL* TlsStream::native_handle() { return impl_->ssl; }
TlsStream::executor_type TlsStream::get_executor() { return impl_->tcp.get_executor(); }

void TlsStream::startHandshake(handshake_type type, std::unique_ptr<Completion> op) {
    if (type == handshake_type::client)
        SSL_set_connect_state(impl_->ssl);
    else
        SSL_set_accept_state(impl_->ssl);
    impl_->handshakeOp = std::move(op);
    impl_->driveHandshake(true);
}

void TlsStream::startRead(asio::mutable_buffer buf, std::unique_ptr<Completion> op) {
    if (buf.size() == 0) return op.release()->complete({}, 0, true);
    impl_->readOp = std::move(op);
    impl_->readBuf = buf;
    impl_->driveRead(true);
}

void TlsStream::startWrite(const void* data, size_t n, std::unique_ptr<Completion> op) {
    Impl& s = *impl_;
    if (n == 0) return op.release()->complete({}, 0, true);
    if (s.writeError) return op.release()->complete(s.writeError, 0, true);
    ERR_clear_error();
    // The BIO takes all the records at once (no partial writes, no retries).
    int r = SSL_write(s.ssl, data, int(std::min(n, kMaxWriteBytes)));
    if (r <= 0) return s.afterFlush(std::move(op), s.sslError(SSL_get_error(s.ssl, r)), 0, true);
    s.afterFlush(std::move(op), {}, size_t(r), true);
}

void TlsStream::startShutdown(bool close, std::unique_ptr<Completion> op) {
    Impl& s = *impl_;
    ERR_clear_error();
    int r = SSL_shutdown(s.ssl);
    error_code ec = r < 0 ? s.sslError(SSL_get_error(s.ssl, r)) : error_code();
    s.afterFlush(std::move(op), ec, 0, true, close);
}

void TlsStream::shutdownAndClose(error_code& ec) {
    Impl& s = *impl_;
    ec = {};
    ERR_clear_error();
    if (SSL_shutdown(s.ssl) < 0) ec = s.sslError(SSL_ERROR_SSL);
    if (!s.socketWriting && !s.writeError && !s.outPending.empty()) {
        error_code wec;
        asio::write(s.tcp.socket(), asio::buffer(s.outPending), wec);
        if (!ec) ec = wec;
        std::vector<unsigned char>().swap(s.outPending);
    }
    s.closeSocket();
}

void teardown(beast::role_type, TlsStream& stream, error_code& ec) { stream.shutdownAndClose(ec); }

}  // namespace hull::orchestrator::api
