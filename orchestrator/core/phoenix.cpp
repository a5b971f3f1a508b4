#include "orchestrator/core/phoenix.hpp"

#include <limits>

#include "orchestrator/core/lifecycle.hpp"

namespace hull::orchestrator::core {

namespace {

/// FNV-1a: a stable hash (the same on every master and every run), unlike std::hash.
uint64_t fnv(const std::string& s, uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

}  // namespace

int64_t jitteredMaxAgeMs(const std::string& service, const AgedSlot& slot, int64_t maxAgeMs) {
    const uint64_t h = fnv(service + "/" + std::to_string(slot.slot) + "/" + std::to_string(slot.generation) + "/" +
                           std::to_string(slot.incarnation));
    const int64_t span = maxAgeMs / 10;
    return span > 0 ? maxAgeMs - int64_t(h % uint64_t(span + 1)) : maxAgeMs;
}

std::optional<PhoenixDue> phoenixDue(const std::string& service, int64_t maxAgeMs, int replicas, int64_t readySlots,
                                     const std::vector<AgedSlot>& slots, int64_t now, int64_t* nextMs) {
    if (nextMs) *nextMs = 0;
    if (maxAgeMs <= 0 || replicas <= 0 || readySlots < replicas) return std::nullopt;
    for (const auto& s : slots)
        if (s.slot < replicas && (!s.ready || s.retiring || !s.startedMs)) return std::nullopt;  // one at a time
    const AgedSlot* best = nullptr;
    int64_t bestOver = std::numeric_limits<int64_t>::min(), bestLimit = 0, next = 0;
    for (const auto& s : slots) {
        if (s.slot >= replicas) continue;
        const int64_t limit = jitteredMaxAgeMs(service, s, maxAgeMs);
        const int64_t over = now - s.startedMs - limit;
        if (over >= 0 && over > bestOver) best = &s, bestOver = over, bestLimit = limit;
        const int64_t due = s.startedMs + limit;
        if (!next || due < next) next = due;
    }
    if (nextMs) *nextMs = next;
    if (!best) return std::nullopt;
    return PhoenixDue{best->slot, "age " + secondsText(now - best->startedMs) + ", maxAge " + secondsText(maxAgeMs) +
                                      (bestLimit != maxAgeMs ? " (" + secondsText(bestLimit) + " with jitter)" : "")};
}

}  // namespace hull::orchestrator::core
