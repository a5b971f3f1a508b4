#include "orchestrator/core/placements.hpp"

#include <algorithm>

namespace hull::orchestrator::core {

namespace {

bool isUp(const std::map<std::string, NodeView>& nodes, const std::string& name) {
    auto it = nodes.find(name);
    return it != nodes.end() && it->second.up;
}

}  // namespace

PlacementChanges planPlacements(const std::map<std::string, int>& replicas, const PlacementMap& current,
                                const std::map<std::string, NodeView>& nodes, const std::vector<ReadyReplica>& ready) {
    PlacementChanges out;
    auto isReady = [&](const std::string& svc, int slot, const std::string& node) {
        return std::binary_search(ready.begin(), ready.end(), ReadyReplica{svc, slot, node});
    };
    // Slots of each service that have a placement: the others are new.
    std::map<std::string, int> placed;
    for (const auto& [key, before] : current) {
        const auto& [svc, slot] = key;
        auto want = replicas.find(svc);
        if (want == replicas.end() || slot >= want->second) {
            out.updates[key] = {};  // deleted, or scaled down
            continue;
        }
        ++placed[svc];
        SlotPlacement p = before;
        // The new copy is ready: the retiring ones have done their job. A retiring
        // copy on a node that is down is gone anyway.
        if (!p.node.empty() && isReady(svc, slot, p.node)) p.retiring.clear();
        std::erase_if(p.retiring, [&](const std::string& n) { return !isUp(nodes, n); });
        if (p != before) out.updates[key] = p;
        if (p.node.empty()) {
            out.needs.push_back({svc, slot, {}, "unplaced"});
        } else if (!isUp(nodes, p.node)) {
            out.needs.push_back({svc, slot, {p.node}, "node " + p.node + " down"});
        } else if (nodes.at(p.node).drained) {
            out.needs.push_back({svc, slot, {p.node}, "node " + p.node + " drained"});
        }
    }
    for (const auto& [svc, n] : replicas) {
        if (placed[svc] == n) continue;
        for (int slot = 0; slot < n; ++slot)
            if (!current.count({svc, slot})) out.needs.push_back({svc, slot, {}, "new"});
    }
    return out;
}

SlotPlacement placedOn(const SlotPlacement& before, const std::string& node, const std::map<std::string, NodeView>& nodes) {
    SlotPlacement p;
    p.node = node;
    p.retiring = before.retiring;
    // Moved off a node that still runs it (drained): start-first, the old copy
    // runs on until the new one is ready. Off a node that is down: nothing to keep.
    if (!before.node.empty() && before.node != node && isUp(nodes, before.node) &&
        std::find(p.retiring.begin(), p.retiring.end(), before.node) == p.retiring.end())
        p.retiring.push_back(before.node);
    std::erase(p.retiring, node);
    return p;
}

}  // namespace hull::orchestrator::core
