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

struct ServiceRecord {
    Service spec;
    int64_t generation = 0;  // bumped when anything but replicas changes
    int64_t updated = 0;     // unix ms
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
    bool operator==(const NodeRecord&) const = default;
};

namespace keys {
inline const std::string kServices = "/hull/services/", kNodes = "/hull/nodes/", kPlacements = "/hull/placements/";
inline std::string service(const std::string& name) { return kServices + name; }
inline std::string node(const std::string& name) { return kNodes + name; }
inline std::string placement(const std::string& service, int slot) { return kPlacements + service + "/" + std::to_string(slot); }
}  // namespace keys

std::string encodeService(const ServiceRecord& r);
[[nodiscard]] Result<ServiceRecord> decodeService(const std::string& text);
std::string encodeNode(const NodeRecord& r);
[[nodiscard]] Result<NodeRecord> decodeNode(const std::string& text);
std::string encodePlacement(const core::SlotPlacement& p);
[[nodiscard]] Result<core::SlotPlacement> decodePlacement(const std::string& text);
/// "/hull/placements/web/3" -> ("web", 3).
[[nodiscard]] Result<std::pair<std::string, int>> placementKey(const std::string& key);

}  // namespace hull::orchestrator::master
