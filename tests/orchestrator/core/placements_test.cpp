// The master's placement rules, without a master: which slots need a node, when
// a lost node's slots move, and when a start-first move lets go of the old copy.
#include <catch2/catch.hpp>

#include "orchestrator/core/placements.hpp"

using namespace hull::orchestrator::core;

namespace {

std::vector<std::string> needsOf(const PlacementChanges& c) {
    std::vector<std::string> out;
    for (const auto& n : c.needs) out.push_back(n.service + "/" + std::to_string(n.slot) + ":" + n.why);
    return out;
}

/// WEB at generation 1 with N replicas (and a failover.after, if given).
std::map<std::string, ServiceWant> web(int n, std::optional<int64_t> after = std::nullopt) { return {{"web", {n, 1, after}}}; }

SlotPlacement on(const std::string& node, std::vector<Copy> retiring = {}) { return {node, 1, 0, std::move(retiring)}; }

NodeView up(bool drained = false) { return {true, drained, 0, false}; }
NodeView lost(int64_t forMs, bool closed) { return {false, false, forMs, closed}; }

}  // namespace

TEST_CASE("placements: every slot of a new service needs a node", "[placements]") {
    auto c = planPlacements(web(3), {}, {{"n1", up()}}, {});
    CHECK(needsOf(c) == std::vector<std::string>{"web/0:new", "web/1:new", "web/2:new"});
    CHECK(c.updates.empty());
    // Placed, a new slot runs the service's generation.
    CHECK(placedOn({}, "n1", {{"n1", up()}}, 4) == SlotPlacement{"n1", 4, 0, {}});
}

TEST_CASE("placements: a placed slot on a ready node is left alone, scale-down and deletion remove placements",
          "[placements]") {
    PlacementMap cur{{{"web", 0}, on("n1")}, {{"web", 1}, on("n2")}, {{"web", 2}, on("n1")}, {{"old", 0}, on("n1")}};
    std::map<std::string, NodeView> nodes{{"n1", up()}, {"n2", up()}};
    auto c = planPlacements(web(2), cur, nodes, {});
    CHECK(c.needs.empty());
    REQUIRE(c.updates.size() == 2);
    CHECK(c.updates.at({"web", 2}) == SlotPlacement{});
    CHECK(c.updates.at({"old", 0}) == SlotPlacement{});
}

TEST_CASE("placements: a node whose connection closed loses its slots after the grace, a silent one after the failover delay",
          "[placements]") {
    PlacementMap cur{{{"web", 0}, on("n1")}, {{"web", 1}, on("n2")}};
    FailoverOptions fo{1200, 10000};
    // Gone (its host closed the connection): moved once the grace is over.
    auto c = planPlacements(web(2), cur, {{"n1", lost(1199, true)}, {"n2", up()}}, {}, fo);
    CHECK(c.needs.empty());
    c = planPlacements(web(2), cur, {{"n1", lost(1200, true)}, {"n2", up()}}, {}, fo);
    REQUIRE(needsOf(c) == std::vector<std::string>{"web/0:node n1 gone for 1.2s"});
    CHECK(c.needs[0].avoid == std::vector<std::string>{"n1"});
    CHECK(c.needs[0].cause == PlacementChanges::Need::Cause::Lost);
    // Silent (a partition looks the same): it waits for the failover delay.
    c = planPlacements(web(2), cur, {{"n1", lost(9999, false)}, {"n2", up()}}, {}, fo);
    CHECK(c.needs.empty());
    c = planPlacements(web(2), cur, {{"n1", lost(10000, false)}, {"n2", up()}}, {}, fo);
    CHECK(needsOf(c) == std::vector<std::string>{"web/0:node n1 silent for 10s"});
    // Moved off a lost node: nothing kept there.
    CHECK(placedOn(cur.at({"web", 0}), "n2", {{"n1", lost(10000, false)}, {"n2", up()}}, 1) == on("n2"));
}

TEST_CASE("placements: a service's failover.after sets its own delay, never below the grace", "[placements]") {
    PlacementMap cur{{{"web", 0}, on("n1")}};
    FailoverOptions fo{1200, 10000};
    std::map<std::string, NodeView> nodes{{"n1", lost(3000, false)}, {"n2", up()}};
    CHECK(planPlacements(web(1, 2000), cur, nodes, {}, fo).needs.size() == 1);  // faster than the silent default
    CHECK(planPlacements(web(1, 30000), cur, {{"n1", lost(20000, true)}, {"n2", up()}}, {}, fo).needs.empty());  // calmer
    CHECK(failoverDelayMs(500, false, fo) == 1200);
    CHECK(failoverDelayMs(std::nullopt, true, fo) == 1200);
    CHECK(failoverDelayMs(std::nullopt, false, fo) == 10000);
    CHECK(failoverDelayMs(30000, true, fo) == 30000);
}

TEST_CASE("placements: a drained node's slot moves start-first and lets go once the new copy is ready", "[placements]") {
    PlacementMap cur{{{"web", 0}, on("n1")}};
    std::map<std::string, NodeView> nodes{{"n1", up(true)}, {"n2", up()}};
    auto c = planPlacements(web(1), cur, nodes, {});
    REQUIRE(needsOf(c) == std::vector<std::string>{"web/0:node n1 drained"});
    CHECK(c.needs[0].cause == PlacementChanges::Need::Cause::Drained);
    auto moved = placedOn(cur.at({"web", 0}), "n2", nodes, 1);
    CHECK(moved == on("n2", {{"n1", 1, 0}}));
    cur[{"web", 0}] = moved;
    // Not ready yet on n2: n1 keeps running it, nothing needed.
    c = planPlacements(web(1), cur, nodes, {{"web", 0, "n1", 1, 0}});
    CHECK(c.needs.empty());
    CHECK(c.updates.empty());
    // A copy of another generation ready on n2 is not the new one.
    c = planPlacements(web(1), cur, nodes, {{"web", 0, "n1", 1, 0}, {"web", 0, "n2", 2, 0}});
    CHECK(c.updates.empty());
    // Ready on n2: the retiring copy goes.
    c = planPlacements(web(1), cur, nodes, {{"web", 0, "n1", 1, 0}, {"web", 0, "n2", 1, 0}});
    CHECK(c.needs.empty());
    CHECK(c.updates.at({"web", 0}) == on("n2"));
}

TEST_CASE("placements: a retiring copy on a node that went down is dropped", "[placements]") {
    PlacementMap cur{{{"web", 0}, on("n2", {{"n1", 1, 0}})}};
    auto c = planPlacements(web(1), cur, {{"n1", lost(100, true)}, {"n2", up()}}, {});
    CHECK(c.needs.empty());
    CHECK(c.updates.at({"web", 0}) == on("n2"));
}

TEST_CASE("placements: a fresh replica (the phoenix cycle) takes a new incarnation, in place or elsewhere", "[placements]") {
    std::map<std::string, NodeView> nodes{{"n1", up()}, {"n2", up()}};
    SlotPlacement p{"n1", 3, 2, {}};
    // In place: the node replaces it start-first itself; nothing retires.
    CHECK(placedOn(p, "n1", nodes, 3, true) == SlotPlacement{"n1", 3, 3, {}});
    // Elsewhere: the old copy runs on until the new one is ready.
    CHECK(placedOn(p, "n2", nodes, 3, true) == SlotPlacement{"n2", 3, 3, {{"n1", 3, 2}}});
    // A move keeps the slot's generation, whatever the service's is now (a rollout moves it).
    CHECK(placedOn(p, "n2", nodes, 4).generation == 3);
}

TEST_CASE("placements: scaling up adds only the missing slots", "[placements]") {
    PlacementMap cur{{{"web", 0}, on("n1")}, {{"web", 1}, on("n1")}};
    auto c = planPlacements(web(4), cur, {{"n1", up()}}, {});
    CHECK(needsOf(c) == std::vector<std::string>{"web/2:new", "web/3:new"});
}
