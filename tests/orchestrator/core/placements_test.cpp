// The master's placement rules, without a master: which slots need a node and
// when a start-first move lets go of the old copy.
#include <catch2/catch.hpp>

#include "orchestrator/core/placements.hpp"

using namespace hull::orchestrator::core;

namespace {

std::vector<std::string> needsOf(const PlacementChanges& c) {
    std::vector<std::string> out;
    for (const auto& n : c.needs) out.push_back(n.service + "/" + std::to_string(n.slot) + ":" + n.why);
    return out;
}

}  // namespace

TEST_CASE("placements: every slot of a new service needs a node", "[placements]") {
    auto c = planPlacements({{"web", 3}}, {}, {{"n1", {true, false}}}, {});
    CHECK(needsOf(c) == std::vector<std::string>{"web/0:new", "web/1:new", "web/2:new"});
    CHECK(c.updates.empty());
}

TEST_CASE("placements: a placed slot on a ready node is left alone, scale-down and deletion remove placements",
          "[placements]") {
    PlacementMap cur{{{"web", 0}, {"n1", {}}}, {{"web", 1}, {"n2", {}}}, {{"web", 2}, {"n1", {}}}, {{"old", 0}, {"n1", {}}}};
    std::map<std::string, NodeView> nodes{{"n1", {true, false}}, {"n2", {true, false}}};
    auto c = planPlacements({{"web", 2}}, cur, nodes, {});
    CHECK(c.needs.empty());
    REQUIRE(c.updates.size() == 2);
    CHECK(c.updates.at({"web", 2}) == SlotPlacement{});
    CHECK(c.updates.at({"old", 0}) == SlotPlacement{});
}

TEST_CASE("placements: a slot on a down node needs another node at once, and nothing is kept there", "[placements]") {
    PlacementMap cur{{{"web", 0}, {"n1", {}}}, {{"web", 1}, {"n2", {}}}};
    std::map<std::string, NodeView> nodes{{"n1", {false, false}}, {"n2", {true, false}}};
    auto c = planPlacements({{"web", 2}}, cur, nodes, {});
    REQUIRE(needsOf(c) == std::vector<std::string>{"web/0:node n1 down"});
    CHECK(c.needs[0].avoid == std::vector<std::string>{"n1"});
    auto p = placedOn(cur.at({"web", 0}), "n2", nodes);
    CHECK(p == SlotPlacement{"n2", {}});
}

TEST_CASE("placements: a drained node's slot moves start-first and lets go once the new copy is ready", "[placements]") {
    PlacementMap cur{{{"web", 0}, {"n1", {}}}};
    std::map<std::string, NodeView> nodes{{"n1", {true, true}}, {"n2", {true, false}}};
    auto c = planPlacements({{"web", 1}}, cur, nodes, {});
    REQUIRE(needsOf(c) == std::vector<std::string>{"web/0:node n1 drained"});
    auto moved = placedOn(cur.at({"web", 0}), "n2", nodes);
    CHECK(moved == SlotPlacement{"n2", {"n1"}});
    cur[{"web", 0}] = moved;
    // Not ready yet on n2: n1 keeps running it, nothing needed.
    c = planPlacements({{"web", 1}}, cur, nodes, {{"web", 0, "n1"}});
    CHECK(c.needs.empty());
    CHECK(c.updates.empty());
    // Ready on n2: the retiring copy goes.
    c = planPlacements({{"web", 1}}, cur, nodes, {{"web", 0, "n1"}, {"web", 0, "n2"}});
    CHECK(c.needs.empty());
    CHECK(c.updates.at({"web", 0}) == SlotPlacement{"n2", {}});
}

TEST_CASE("placements: a retiring copy on a node that went down is dropped", "[placements]") {
    PlacementMap cur{{{"web", 0}, {"n2", {"n1"}}}};
    std::map<std::string, NodeView> nodes{{"n1", {false, true}}, {"n2", {true, false}}};
    auto c = planPlacements({{"web", 1}}, cur, nodes, {});
    CHECK(c.needs.empty());
    CHECK(c.updates.at({"web", 0}) == SlotPlacement{"n2", {}});
}

TEST_CASE("placements: scaling up adds only the missing slots", "[placements]") {
    PlacementMap cur{{{"web", 0}, {"n1", {}}}, {{"web", 1}, {"n1", {}}}};
    std::map<std::string, NodeView> nodes{{"n1", {true, false}}};
    auto c = planPlacements({{"web", 4}}, cur, nodes, {});
    CHECK(needsOf(c) == std::vector<std::string>{"web/2:new", "web/3:new"});
}
