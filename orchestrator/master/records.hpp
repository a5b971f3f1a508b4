#pragma once
// What the master keeps in its store, one record per key (orchestrator/README.md
// lists the keys), and their JSON: each record carries a version, so a newer
// hull reads what an older one wrote; fields it lacks take their defaults.
#include <cstdint>
#include <map>
#include <string>

#include "orchestrator/core/placements.hpp"
#include "orchestrator/model/service.hpp"
#include "sys/error.hpp"

namespace hull::orchestrator::master {

inline constexpr int64_t kRecordVersion = 1;

/// A service's rolling update to its current generation (core/rollout.hpp
/// decides; this is what survives a master restart).
struct RolloutRecord {
    std::string state;   // "" (none yet), "updating", "paused", "completed", "rolled-back"
    int64_t from = 0, to = 0;
    int64_t started = 0, finished = 0;  // unix ms
    int64_t failures = 0;
    std::string reason;  // why it paused or rolled back ("slot 2: not ready 5s after it started")
    bool operator==(const RolloutRecord&) const = default;
};

struct ServiceRecord {
    Service spec;
    int64_t generation = 0;  // of SPEC: a new one when anything but replicas, placement, update or failover changes
    int64_t updated = 0;     // unix ms
    /// The highest generation this service has had: a rollback goes back to
    /// an older one, and the next apply still gets a new number.
    int64_t lastGeneration = 0;
    RolloutRecord rollout;
    /// Its virtual IP, from the service CIDR: every node sends VIP:PORT to one
    /// of its ready replicas, wherever it runs. Kept while the service is.
    std::string vip;
};

/// One generation of a service, kept for `hull rollout history|undo` and for
/// nodes that still run it (a rollout in progress, a retiring copy).
struct HistoryRecord {
    int64_t generation = 0;
    Service spec;
    int64_t applied = 0;   // unix ms
    std::string outcome;   // of the rollout to it: "", "updating", "completed", "paused", "rolled-back"
    std::string reason;
    std::string cause;     // "apply", "undo", "rollback"
};

struct NodeRecord {
    std::string name, address, version;
    std::map<std::string, std::string> labels;
    double cpus = 0;
    int64_t memory = 0;  // bytes
    bool drained = false;
    int64_t joined = 0;  // unix ms
    /// The sha256 of the certificate its last join got: only that one may hold
    /// its session ("" in records of an older hull: the first session's is taken).
    std::string certSha256;
    /// Its lease of the cluster CIDR ("10.96.3.0/24": its containers'
    /// addresses), made at its join, freed when it is removed; and the MAC of
    /// its overlay device (what peers address its subnet's packets to), as it
    /// last said ("" until it has one).
    std::string subnet, vtepMac;
    bool operator==(const NodeRecord&) const = default;
};

namespace keys {
inline const std::string kServices = "/hull/services/", kNodes = "/hull/nodes/", kPlacements = "/hull/placements/",
                         kHistory = "/hull/history/";
inline std::string service(const std::string& name) { return kServices + name; }
inline std::string node(const std::string& name) { return kNodes + name; }
inline std::string placement(const std::string& service, int slot) { return kPlacements + service + "/" + std::to_string(slot); }
/// Zero-padded, so that a range reads generations in order.
std::string history(const std::string& service, int64_t generation);
}  // namespace keys

std::string encodeService(const ServiceRecord& r);
[[nodiscard]] Result<ServiceRecord> decodeService(const std::string& text);
std::string encodeNode(const NodeRecord& r);
[[nodiscard]] Result<NodeRecord> decodeNode(const std::string& text);
std::string encodePlacement(const core::SlotPlacement& p);
[[nodiscard]] Result<core::SlotPlacement> decodePlacement(const std::string& text);
std::string encodeHistory(const HistoryRecord& r);
[[nodiscard]] Result<HistoryRecord> decodeHistory(const std::string& text);
/// "/hull/placements/web/3" -> ("web", 3).
[[nodiscard]] Result<std::pair<std::string, int>> placementKey(const std::string& key);

}  // namespace hull::orchestrator::master
