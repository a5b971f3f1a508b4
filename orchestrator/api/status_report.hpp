#pragma once
// What a node tells its master about its containers (StatusReport): all of
// them when its session starts, then only what changed. A node with a hundred
// replicas whose one replica turns ready sends one entry, not a hundred; the
// master applies it to the copy the session's first report made.
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "orchestrator/api/messages.hpp"

namespace hull::orchestrator::api {

class StatusReporter {
public:
    /// The report to send for the containers NOW: all of them after reset() (a
    /// new session), else those whose entry changed and the ids gone since the
    /// last report; nullopt when nothing changed. What it returns counts as sent.
    std::optional<StatusReport> next(const std::vector<ContainerEntry>& now);
    /// The next report is a full one (a new session).
    void reset();

private:
    std::unordered_map<std::string, ContainerEntry> sent_;  // id -> as last reported
    bool fresh_ = true;
};

/// {"type": "status", "report": REPORT}: the session message carrying it.
std::string statusMessage(const StatusReport& report);

}  // namespace hull::orchestrator::api
