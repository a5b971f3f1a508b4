#include "orchestrator/api/status_report.hpp"

#include <unordered_set>

namespace hull::orchestrator::api {

std::optional<StatusReport> StatusReporter::next(const std::vector<ContainerEntry>& now) {
    StatusReport r;
    r.full = fresh_;
    if (fresh_) {
        fresh_ = false;
        sent_.clear();
        for (const auto& c : now) sent_[c.id] = c;
        r.containers = now;
        return r;
    }
    std::unordered_set<std::string> seen;
    seen.reserve(now.size());
    for (const auto& c : now) {
        seen.insert(c.id);
        auto [it, fresh] = sent_.try_emplace(c.id, c);
        if (fresh || !(it->second == c)) {
            it->second = c;
            r.containers.push_back(c);
        }
    }
    for (auto it = sent_.begin(); it != sent_.end();) {
        if (seen.count(it->first)) {
            ++it;
            continue;
        }
        r.gone.push_back(it->first);
        it = sent_.erase(it);
    }
    if (r.containers.empty() && r.gone.empty()) return std::nullopt;
    return r;
}

void StatusReporter::reset() {
    fresh_ = true;
    sent_.clear();
}

std::string statusMessage(const StatusReport& report) {
    json::Value m = json::Value::object();
    m.set("type", "status");
    m.set("report", encodeBody(report));
    return m.dump();
}

}  // namespace hull::orchestrator::api
