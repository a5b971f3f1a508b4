#pragma once
// Helpers of the store tests (SQLite, etcd and the suite both run).
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "orchestrator/state/store.hpp"

namespace hull::state::testing {

template <class T>
T ok(Result<T> r) {
    if (!r) FAIL(r.error().message());
    if constexpr (!std::is_void_v<T>) return std::move(*r);
}

template <class T>
int errnoOf(const Result<T>& r) {
    return r ? 0 : r.error().errnum();
}

inline std::optional<KeyValue> getKey(Store& s, const std::string& key, int64_t revision = 0) {
    auto r = ok(s.range(key, "", 0, revision));
    if (r.kvs.empty()) return std::nullopt;
    return r.kvs.front();
}

inline std::vector<std::string> keysOf(const RangeResult& r) {
    std::vector<std::string> out;
    for (const auto& kv : r.kvs) out.push_back(kv.key);
    return out;
}

/// Collects watch responses, which may come on any thread: with SQLite
/// before the write that made them returns, with etcd a little later.
struct Recorder {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<WatchResponse> got;

    std::function<void(const WatchResponse&)> fn() {
        return [this](const WatchResponse& r) {
            std::lock_guard lk(mu);
            got.push_back(r);
            cv.notify_all();
        };
    }
    /// What has come so far.
    std::vector<WatchResponse> take() {
        std::lock_guard lk(mu);
        return std::exchange(got, {});
    }
    /// Waits up to 10 s for N responses; then what has come (more than N if more did).
    std::vector<WatchResponse> take(size_t n) {
        std::unique_lock lk(mu);
        cv.wait_for(lk, std::chrono::seconds(10), [&] { return got.size() >= n; });
        return std::exchange(got, {});
    }
    /// Waits up to 10 s for a response at REVISION or above; then what has come.
    std::vector<WatchResponse> takeThrough(int64_t revision) {
        std::unique_lock lk(mu);
        cv.wait_for(lk, std::chrono::seconds(10), [&] { return !got.empty() && got.back().revision >= revision; });
        return std::exchange(got, {});
    }
};

/// "P a=1" / "D a": a response's events in short.
inline std::vector<std::string> brief(const WatchResponse& r) {
    std::vector<std::string> out;
    for (const auto& e : r.events)
        out.push_back(e.type == Event::Type::Put ? "P " + e.kv.key + "=" + e.kv.value : "D " + e.kv.key);
    return out;
}

inline std::vector<int64_t> revisionsOf(const std::vector<WatchResponse>& rs) {
    std::vector<int64_t> out;
    for (const auto& r : rs) out.push_back(r.revision);
    return out;
}

}  // namespace hull::state::testing
