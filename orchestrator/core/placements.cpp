#include "orchestrator/core/placements.hpp"

#include <algorithm>

#include "orchestrator/core/lifecycle.hpp"

namespace hull::orchestrator::core {

namespace {

const NodeView* viewOf(const std::map<std::string, NodeView>& nodes, const std::string& name) {
    auto it = nodes.find(name);
    return it == nodes.end() ? nullptr : &it->second;
}

bool isUp(const std::map<std::string, NodeView>& nodes, const std::string& name) {
    const NodeView* v = viewOf(nodes, name);
    return v && v->up;
}

}  // namespace

bool SlotPlacement::retiresOn(const std::string& n) const {
    return std::any_of(retiring.begin(), retiring.end(), [&](const Copy& c) { return c.node == n; });
}

int64_t failoverDelayMs(std::optional<int64_t> after, bool closed, const FailoverOptions& options) {
    if (after) return std::max(*after, options.graceMs);
    return closed ? options.graceMs : std::max(options.silentMs, options.graceMs);
}

PlacementChanges planPlacements(const std::map<std::string, ServiceWant>& services, const PlacementMap& current,
                                const std::map<std::string, NodeView>& nodes, const std::vector<ReadyReplica>& ready,
                                const FailoverOptions& options) {
    PlacementChanges out;
    auto ownReady = [&](const std::string& svc, int slot, const SlotPlacement& p) {
        return std::binary_search(ready.begin(), ready.end(), ReadyReplica{svc, slot, p.node, p.generation, p.incarnation});
    };
    // Slots of each service that have a placement: the others are new.
    std::map<std::string, int> placed;
    for (const auto& [key, before] : current) {
        const auto& [svc, slot] = key;
        auto want = services.find(svc);
        if (want == services.end() || slot >= want->second.replicas) {
            out.updates[key] = {};  // deleted, or scaled down
            continue;
        }
        ++placed[svc];
        SlotPlacement p = before;
        // The slot's own copy is ready: the retiring ones have done their job.
        // A retiring copy on a node that is not up is gone, or cut off.
        if (!p.node.empty() && ownReady(svc, slot, p)) p.retiring.clear();
        std::erase_if(p.retiring, [&](const Copy& c) { return !isUp(nodes, c.node); });
        if (p != before) out.updates[key] = p;
        const NodeView* v = p.node.empty() ? nullptr : viewOf(nodes, p.node);
        if (p.node.empty() || !v) {
            out.needs.push_back({svc, slot, {}, p.node.empty() ? "unplaced" : "node " + p.node + " removed",
                                 PlacementChanges::Need::Cause::Unplaced});
        } else if (!v->up) {
            const int64_t delay = failoverDelayMs(want->second.failoverAfterMs, v->closed, options);
            if (v->lostForMs >= delay)
                out.needs.push_back({svc, slot, {p.node},
                                     "node " + p.node + (v->closed ? " gone" : " silent") + " for " + secondsText(v->lostForMs),
                                     PlacementChanges::Need::Cause::Lost});
        } else if (v->drained) {
            out.needs.push_back({svc, slot, {p.node}, "node " + p.node + " drained", PlacementChanges::Need::Cause::Drained});
        }
    }
    for (const auto& [svc, w] : services) {
        if (placed[svc] == w.replicas) continue;
        for (int slot = 0; slot < w.replicas; ++slot)
            if (!current.count({svc, slot})) out.needs.push_back({svc, slot, {}, "new"});
    }
    return out;
}

SlotPlacement placedOn(const SlotPlacement& before, const std::string& node, const std::map<std::string, NodeView>& nodes,
                       int64_t generation, bool fresh) {
    SlotPlacement p;
    p.node = node;
    p.generation = before.generation ? before.generation : generation;
    p.incarnation = before.incarnation + (fresh ? 1 : 0);
    p.retiring = before.retiring;
    // Moved off a node that still runs it: start-first, the old copy runs on
    // until the new one is ready. Off a node that is lost: nothing to keep.
    // Placed where it runs (FRESH): that node replaces it start-first itself.
    if (!before.node.empty() && before.node != node && isUp(nodes, before.node) && !p.retiresOn(before.node))
        p.retiring.push_back(before.own());
    std::erase_if(p.retiring, [&](const Copy& c) { return c.node == node; });
    return p;
}

}  // namespace hull::orchestrator::core
