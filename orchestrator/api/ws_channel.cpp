#include "orchestrator/api/ws_channel.hpp"

#include <exception>

#include <boost/asio/dispatch.hpp>

#include "sys/log.hpp"

namespace hull::orchestrator::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

WsChannel::WsChannel(asio::io_context& ioc, WsStream stream, const WsLimits& limits, std::string who)
    : ioc_(ioc), ws_(std::move(stream)), limits_(limits), who_(std::move(who)), closeTimer_(ioc) {
    // The websocket stream keeps its own deadlines; the TCP layer's would cut a quiet session.
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = limits_.handshakeTimeout;
    if (limits_.pingEvery.count() > 0) {
        // Beast pings after half the idle timeout of silence and gives up after all of it.
        t.idle_timeout = 2 * limits_.pingEvery;
        t.keep_alive_pings = true;
    } else {
        t.idle_timeout = websocket::stream_base::none();
        t.keep_alive_pings = false;
    }
    ws_.set_option(t);
    ws_.read_message_max(limits_.maxMessageBytes);
}

void WsChannel::start(Events events) {
    events_ = std::move(events);
    started_ = true;
    if (ended_) return;
    read();
    if (!queue_.empty() && !writing_) writeNext();
}

void WsChannel::send(std::string text) {
    asio::dispatch(ioc_, [self = shared_from_this(), text = std::move(text)]() mutable {
        if (self->closing_ || self->ended_) return;
        self->queuedBytes_ += text.size();
        self->queue_.push_back(std::move(text));
        if (self->queuedBytes_ > self->limits_.maxQueueBytes) {
            log::warnf("api: %s: WebSocket peer is not reading (%zu bytes queued): cutting it off", self->who_.c_str(),
                       self->queuedBytes_);
            self->abort();
            return;
        }
        if (self->started_ && !self->writing_) self->writeNext();
    });
}

void WsChannel::close() {
    asio::dispatch(ioc_, [self = shared_from_this()] {
        if (self->closing_ || self->ended_) return;
        self->closing_ = true;
        if (!self->started_) return self->abort();
        self->closeTimer_.expires_after(self->limits_.handshakeTimeout);
        self->closeTimer_.async_wait([weak = std::weak_ptr<WsChannel>(self)](beast::error_code ec) {
            if (auto s = weak.lock(); s && !ec) s->abort();
        });
        if (!self->writing_) self->closeNow();
    });
}

void WsChannel::abort() {
    beast::error_code ignored;
    auto& tcp = beast::get_lowest_layer(ws_);
    tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    tcp.close();
}

void WsChannel::read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return self->end(ec);
        std::string text = beast::buffers_to_string(self->buf_.data());
        self->buf_.consume(self->buf_.size());
        // A big message (a node's first report) leaves no big buffer behind on
        // a session that then carries heartbeats for hours.
        if (self->buf_.capacity() > 8192) self->buf_.shrink_to_fit();
        if (self->events_.onMessage) {
            try {
                self->events_.onMessage(std::move(text));
            } catch (const std::exception& e) {
                log::errorf("api: %s: WebSocket message handler: %s", self->who_.c_str(), e.what());
            }
        }
        if (!self->ended_) self->read();
    });
}

void WsChannel::writeNext() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
        self->writing_ = false;
        if (ec || self->ended_) return self->abort();  // the pending read ends the channel
        self->queuedBytes_ -= self->queue_.front().size();
        self->queue_.pop_front();
        if (!self->queue_.empty())
            self->writeNext();
        else if (self->closing_)
            self->closeNow();
    });
}

void WsChannel::closeNow() {
    ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code ec) {
        // Done: the pending read completes with websocket::error::closed once the peer answers.
        if (ec) self->abort();
    });
}

void WsChannel::end(const beast::error_code& ec) {
    if (ended_) return;
    ended_ = true;
    closeTimer_.cancel();
    queue_.clear();
    queuedBytes_ = 0;
    std::string why;
    if (ec == websocket::error::closed) {
        auto reason = ws_.reason();
        why = closing_ ? "closed" : "closed by the peer";
        if (!closing_ && reason.code != websocket::close_code::normal && reason.code != websocket::close_code::none)
            why += " (code " + std::to_string(reason.code) + (reason.reason.empty() ? "" : ": " + std::string(reason.reason.data(), reason.reason.size())) + ")";
    } else if (ec == beast::error::timeout) {
        why = "timed out";
    } else if (closing_ && ec == asio::error::operation_aborted) {
        why = "closed";
    } else {
        why = ec.message();
    }
    log::debugf("api: %s: WebSocket ended: %s", who_.c_str(), why.c_str());
    abort();  // whatever state the close handshake is in, the socket goes
    Events e = std::move(events_);  // no cycles through the owner's lambdas
    events_ = {};
    if (e.onEnd) {
        try {
            e.onEnd(why);
        } catch (const std::exception& ex) {
            log::errorf("api: %s: WebSocket close handler: %s", who_.c_str(), ex.what());
        }
    }
}

}  // namespace hull::orchestrator::api
