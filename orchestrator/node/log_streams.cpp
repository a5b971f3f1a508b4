#include "orchestrator/node/log_streams.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/engine.hpp"
#include "sys/base64.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/unique_fd.hpp"

namespace hull::orchestrator::node {

void LogStreams::start(int64_t stream, const std::string& dir, long tail, bool follow) {
    cancel(stream);
    auto s = std::make_unique<Stream>(ioc_);
    s->dir = dir;
    s->follow = follow;
    // What is there now is the tail; a follow goes on from where that read ended.
    runtime::LogRead log = runtime::readLog(dir);
    s->offset = log.offset;
    s->pending = runtime::tailLines(std::move(log.text), tail);
    streams_[stream] = std::move(s);
    step(stream);
}

void LogStreams::refuse(int64_t stream, const std::string& error) {
    json::Value m = json::Value::object();
    m.set("type", "logs-end");
    m.set("stream", stream);
    m.set("error", error);
    send_(m.dump());
}

void LogStreams::cancel(int64_t stream) {
    if (auto it = streams_.find(stream); it != streams_.end()) {
        it->second->timer.cancel();
        streams_.erase(it);
    }
}

void LogStreams::cancelAll() {
    for (auto& [id, s] : streams_) s->timer.cancel();
    streams_.clear();
}

void LogStreams::step(int64_t stream) {
    auto it = streams_.find(stream);
    if (it == streams_.end()) return;
    Stream& s = *it->second;
    if (backlog_ && backlog_() > kMaxBacklog) {
        // The session is behind: wait for it rather than grow its queue.
        s.timer.expires_after(kPeriod);
        s.timer.async_wait([this, stream](auto ec) {
            if (!ec) step(stream);
        });
        return;
    }
    bool ended = false;
    if (s.pending.empty() && s.follow) {
        // Checked before reading: what the container wrote before its end is read now, then the stream ends.
        ended = sys::exists(s.dir + "/exit.json") || !sys::exists(s.dir);
        UniqueFd f(::open((s.dir + "/ctr.log").c_str(), O_RDONLY | O_CLOEXEC));
        struct stat st {};
        if (f && ::fstat(f.get(), &st) == 0) {
            if (st.st_size < s.offset) s.offset = 0;  // rotated: the new file from its start
            std::string buf(kChunk, '\0');
            ssize_t n = ::pread(f.get(), buf.data(), buf.size(), s.offset);
            if (n > 0) {
                buf.resize(size_t(n));
                s.offset += n;
                s.pending = std::move(buf);
                if (st.st_size > s.offset) ended = false;  // more to read first
            }
        }
    }
    if (!s.pending.empty()) {
        size_t n = std::min(s.pending.size(), kChunk);
        json::Value m = json::Value::object();
        m.set("type", "logs-data");
        m.set("stream", stream);
        m.set("data", sys::base64Encode(std::string_view(s.pending).substr(0, n)));
        send_(m.dump());
        s.pending.erase(0, n);
        ended = false;
    }
    if (s.pending.empty() && (!s.follow || ended)) return end(stream, "");
    // Again at once while there is a backlog, else at the next period.
    s.timer.expires_after(s.pending.empty() ? kPeriod : std::chrono::milliseconds(0));
    s.timer.async_wait([this, stream](auto ec) {
        if (!ec) step(stream);
    });
}

void LogStreams::end(int64_t stream, const std::string& error) {
    cancel(stream);
    refuse(stream, error);
}

}  // namespace hull::orchestrator::node
