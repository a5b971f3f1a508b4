// A master's assignment entries: read and checked, stored, and made into the planner's input.
#include "orchestrator/node/assignment.hpp"

#include <catch2/catch.hpp>

#include "support.hpp"

using namespace hull;
using namespace hull::orchestrator;
using std::chrono::milliseconds;

namespace {

Service spec(const std::string& image, const std::string& name = "web") {
    Service s;
    s.name = name;
    s.image = image;
    s.replicas = 5;
    return s;
}

json::Value specJson(const Service& s) { return *json::Value::parse(serviceJson(s)); }

/// The brief's entry: web at 7 on slots 0, 3, 4; slot 3 at 6, slot 4 at 7's incarnation 2.
json::Value entry() {
    auto v = json::Value::parse(R"({"name": "web", "generation": 7, "slots": [4, 0, 3, 3],
        "pins": [{"slot": 3, "generation": 6, "incarnation": 0}, {"slot": 4, "generation": 7, "incarnation": 2},
                 {"slot": 0, "generation": 7, "incarnation": 0}, {"slot": 9, "generation": 5, "incarnation": 1}],
        "order": "stop-first"})");
    REQUIRE(v);
    v->set("spec", specJson(spec("img:7")));
    json::Value versions = json::Value::array();
    for (int g : {6, 5, 4}) {
        json::Value x = json::Value::object();
        x.set("generation", g);
        x.set("spec", specJson(spec("img:" + std::to_string(g))));
        versions.push(std::move(x));
    }
    v->set("versions", versions);
    return *v;
}

std::string errorOf(const json::Value& e) {
    auto a = parseAssignment(e);
    return a ? std::string("(read)") : a.error().message();
}

/// ENTRY with KEY set to the JSON TEXT.
json::Value with(json::Value e, const std::string& key, const std::string& text) {
    auto v = json::Value::parse(text);
    REQUIRE(v);
    e.set(key, *v);
    return e;
}

}  // namespace

TEST_CASE("assignment: an entry with pins, versions and order is read, keeping what says something", "[assignment]") {
    auto a = parseAssignment(entry());
    REQUIRE(a);
    CHECK(a->name == "web");
    CHECK(a->generation == 7);
    CHECK(a->spec.image == "img:7");
    CHECK(a->slots == std::vector<int>{0, 3, 4});
    // Slot 0's pin says (7, 0), slot 9 is not this node's: neither is kept.
    CHECK(a->pins == std::map<int, SlotWant>{{3, {6, 0}}, {4, {7, 2}}});
    // Only the versions a kept pin names.
    REQUIRE(a->versions.size() == 1);
    CHECK(a->versions.at(6).image == "img:6");
    CHECK(a->order == ReplaceOrder::StopFirst);
}

TEST_CASE("assignment: an older master's entry (no pins, versions or order) reads as start-first, nothing pinned",
          "[assignment]") {
    auto e = json::Value::object();
    e.set("name", "web");
    e.set("generation", 3);
    e.set("spec", specJson(spec("img:3")));
    e = with(e, "slots", "[5, 1]");
    auto a = parseAssignment(e);
    REQUIRE(a);
    CHECK(a->generation == 3);
    CHECK(a->slots == std::vector<int>{1, 5});
    CHECK(a->pins.empty());
    CHECK(a->versions.empty());
    CHECK(a->order == ReplaceOrder::StartFirst);
    ServiceRow r = assignmentRow(*a);
    CHECK((r.pins.empty() && r.versions.empty() && r.order.empty()));
    CHECK(assignmentSummary(r) == "slots 1,5, generation 3");
    // No slots at all: none run here.
    auto none = json::Value::object();
    none.set("name", "web");
    none.set("generation", 3);
    none.set("spec", specJson(spec("img:3")));
    REQUIRE(parseAssignment(none));
    CHECK(parseAssignment(none)->slots.empty());
}

TEST_CASE("assignment: a bad entry is an error that says what is wrong", "[assignment]") {
    CHECK(errorOf(entry()) == "(read)");
    // A pin whose generation has no spec.
    CHECK(errorOf(with(entry(), "pins", R"([{"slot": 3, "generation": 2, "incarnation": 0}])")) ==
          "pins[0].generation: slot 3 is pinned to generation 2, whose spec is neither the entry's nor in versions");
    CHECK(errorOf(with(entry(), "pins", R"([{"slot": 3, "generation": 6}])")) ==
          "pins[0].incarnation: expected an integer from 0 up");
    CHECK(errorOf(with(entry(), "pins", R"([{"slot": -3, "generation": 6, "incarnation": 0}])")) ==
          "pins[0].slot: expected an integer from 0 to 999999");
    CHECK(errorOf(with(entry(), "pins", R"([{"slot": 3, "generation": 6, "incarnation": 0},
                                            {"slot": 3, "generation": 7, "incarnation": 1}])")) ==
          "pins[1].slot: 3 is pinned twice");
    CHECK(errorOf(with(entry(), "pins", R"({"slot": 3})")) == "pins: expected an array");
    CHECK(errorOf(with(entry(), "order", R"("sideways")")) == "order: expected \"start-first\" or \"stop-first\"");
    CHECK(errorOf(with(entry(), "generation", "0")) == "generation: expected an integer from 1 up");
    CHECK(errorOf(with(entry(), "generation", "\"7\"")) == "generation: expected an integer from 1 up");
    CHECK(errorOf(with(entry(), "slots", "[1, \"two\"]")) == "slots[1]: expected an integer from 0 to 999999");
    CHECK(errorOf(with(entry(), "spec", "{\"name\": \"web\"}")).rfind("spec: ", 0) == 0);
    auto other = entry();
    other.set("spec", specJson(spec("img:7", "api")));
    CHECK(errorOf(other) == "spec: of service \"api\", not \"web\"");
    // Versions: each a spec of this service, for a generation that has none yet.
    auto v = entry();
    json::Value versions = json::Value::array();
    json::Value x = json::Value::object();
    x.set("generation", 6);
    x.set("spec", specJson(spec("img:6", "api")));
    versions.push(x);
    v.set("versions", versions);
    CHECK(errorOf(v) == "versions[0].spec: of service \"api\", not \"web\"");
    x.set("spec", specJson(spec("img:6")));
    x.set("generation", 7);
    versions = json::Value::array();
    versions.push(x);
    v.set("versions", versions);
    CHECK(errorOf(v) == "versions[0].generation: 7 has a spec already");
    CHECK(errorOf(json::Value("web")) == "expected an object");
}

TEST_CASE("assignment: stored and read back, it is what the planner runs: each slot its generation and incarnation",
          "[assignment]") {
    test::TempDir dir("hull-assignment");
    auto store = Store::open(dir / "node.db");
    REQUIRE(store);
    auto a = parseAssignment(entry());
    REQUIRE(a);
    ServiceRow row = assignmentRow(*a);
    CHECK(assignmentSummary(row) == "slots 0,3,4, generation 7; slot 3: generation 6; slot 4: incarnation 2; stop-first");
    REQUIRE(store->putAssignment(row).value_or(false));
    auto back = store->getService("web");
    REQUIRE(back);
    REQUIRE(*back);
    auto d = desiredFrom(**back);
    REQUIRE(d);
    CHECK(d->generation == 7);
    CHECK(d->managed());
    CHECK(d->order == ReplaceOrder::StopFirst);
    CHECK(d->want(0) == SlotWant{7, 0});
    CHECK(d->want(3) == SlotWant{6, 0});
    CHECK(d->want(4) == SlotWant{7, 2});
    REQUIRE(d->specOf(6));
    CHECK(d->specOf(6)->image == "img:6");
    auto starts = plan({*d}, {}, milliseconds(1000));
    REQUIRE(starts.size() == 3);
    CHECK((starts[1].slot == 3 && starts[1].generation == 6 && starts[1].incarnation == 0));
    CHECK((starts[2].slot == 4 && starts[2].generation == 7 && starts[2].incarnation == 2));
    // The same entry again: nothing to store.
    CHECK_FALSE(store->putAssignment(assignmentRow(*parseAssignment(entry()))).value_or(true));

    // A standalone row: its own spec and generation, no slots, nothing pinned.
    ServiceRow standalone{"db", serviceJson(spec("img:db", "db")), 2, 0, std::nullopt, {}, {}, "", ""};
    auto s = desiredFrom(standalone);
    REQUIRE(s);
    CHECK_FALSE(s->managed());
    CHECK((s->generation == 2 && s->pins.empty()));
}

TEST_CASE("assignment: a stored row that cannot be read whole is an error (its containers are left alone)",
          "[assignment]") {
    ServiceRow row = assignmentRow(*parseAssignment(entry()));
    REQUIRE(desiredFrom(row));
    ServiceRow damaged = row;
    damaged.damaged = "stored pins unreadable: [1]";
    CHECK(desiredFrom(damaged).error().message() == "stored pins unreadable: [1]");
    ServiceRow noVersion = row;
    noVersion.versions.clear();
    CHECK(desiredFrom(noVersion).error().message() == "slot 3 is pinned to generation 6, whose spec is not stored");
    ServiceRow badVersion = row;
    badVersion.versions[6] = "{";
    CHECK(desiredFrom(badVersion).error().message().rfind("generation 6: ", 0) == 0);
    ServiceRow badOrder = row;
    badOrder.order = "sideways";
    CHECK(desiredFrom(badOrder).error().message() == "stored order \"sideways\" unknown");
    ServiceRow badSpec = row;
    badSpec.spec = "{";
    CHECK_FALSE(desiredFrom(badSpec));
}
