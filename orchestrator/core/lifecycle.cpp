#include "orchestrator/core/lifecycle.hpp"

namespace hull::orchestrator::core {

std::string secondsText(int64_t ms) {
    std::string s = ms < 0 ? "-" : "";
    uint64_t v = ms < 0 ? uint64_t(0) - uint64_t(ms) : uint64_t(ms);
    s += std::to_string(v / 1000);
    if (uint64_t frac = v % 1000) {
        std::string digits = std::to_string(frac);
        digits.insert(0, 3 - digits.size(), '0');
        while (digits.back() == '0') digits.pop_back();
        s += "." + digits;
    }
    return s + "s";
}

std::vector<Transition> nodeTransitions(const std::vector<NodeClock>& nodes, int64_t nowMs,
                                        const LifecycleOptions& options) {
    std::vector<Transition> out;
    const std::string grace = " (grace " + secondsText(options.graceMs) + ")";
    for (const NodeClock& n : nodes) {
        const bool heard = n.lastHeartbeatMs != 0;
        const int64_t age = nowMs - n.lastHeartbeatMs;
        const bool fresh = heard && age <= options.graceMs;
        if (!n.down && !fresh) {
            std::string reason = !heard         ? (n.connected ? "connected, but no heartbeat yet" : "never heard from")
                                                : "no heartbeat for " + secondsText(age) + grace;
            out.push_back({n.name, Transition::To::Down, std::move(reason)});
        } else if (n.down && fresh && n.connected) {
            out.push_back({n.name, Transition::To::Ready, "heartbeat " + secondsText(age) + " ago"});
        }
    }
    return out;
}

}  // namespace hull::orchestrator::core
