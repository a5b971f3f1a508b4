#pragma once
// Container logs read out to the master over the node's session (`hull logs`
// against a cluster): the master asks with {"type": "logs", "stream": N,
// "container": ID, "tail": T, "follow": F}; the node answers with
// {"type": "logs-data", "stream": N, "data": BASE64} messages and one
// {"type": "logs-end", "stream": N, "error": ""}. The master may send
// {"type": "logs-cancel", "stream": N} (its client went away).
//
// Everything runs on the agent's loop in small steps of kChunk bytes: a
// backlog is sent chunk after chunk while the session keeps up (less than
// kMaxBacklog unsent), a follow is polled every kPeriod. A container that logs
// a lot neither stalls supervision nor fills the session's send queue.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace hull::orchestrator::node {

class LogStreams {
public:
    static constexpr size_t kChunk = 64 << 10;
    static constexpr auto kPeriod = std::chrono::milliseconds(100);

    /// Unsent bytes on the session beyond which a stream waits (the session's
    /// queue has a hard limit that cuts the whole session off).
    static constexpr size_t kMaxBacklog = 1 << 20;

    using Send = std::function<void(std::string)>;
    /// BACKLOG: the session's unsent bytes (none: never wait).
    LogStreams(boost::asio::io_context& ioc, Send send, std::function<size_t()> backlog = {})
        : ioc_(ioc), send_(std::move(send)), backlog_(std::move(backlog)) {}
    ~LogStreams() { cancelAll(); }

    /// Stream STREAM: the last TAIL lines of the log in the container directory
    /// DIR (all when negative), then with FOLLOW what it appends until the
    /// container has ended (DIR/exit.json) or the stream is cancelled.
    void start(int64_t stream, const std::string& dir, long tail, bool follow);
    /// The end of STREAM with ERROR, without reading anything (an unknown container).
    void refuse(int64_t stream, const std::string& error);
    void cancel(int64_t stream);
    /// The session ended: every stream stops, nothing more is sent.
    void cancelAll();
    size_t active() const { return streams_.size(); }

private:
    struct Stream {
        explicit Stream(boost::asio::io_context& ioc) : timer(ioc) {}
        std::string dir, pending;
        bool follow = false;
        int64_t offset = 0;  // in ctr.log, what was read
        boost::asio::steady_timer timer;
    };
    void step(int64_t stream);
    void end(int64_t stream, const std::string& error);

    boost::asio::io_context& ioc_;
    Send send_;
    std::function<size_t()> backlog_;
    std::map<int64_t, std::unique_ptr<Stream>> streams_;
};

}  // namespace hull::orchestrator::node
