#include <catch2/catch.hpp>

#include "orchestrator/api/status_report.hpp"

using namespace hull;
using namespace hull::orchestrator;

namespace {

ContainerEntry entry(const std::string& id, bool ready, int restarts = 0) {
    ContainerEntry c;
    c.id = id;
    c.name = "web-" + id;
    c.service = "web";
    c.status = "running";
    c.ready = ready;
    c.restarts = restarts;
    return c;
}

}  // namespace

TEST_CASE("status reports: all at first, then what changed and what is gone, nothing when nothing changed",
          "[api][status]") {
    api::StatusReporter r;
    auto first = r.next({entry("a", false), entry("b", false)});
    REQUIRE(first);
    CHECK(first->full);
    CHECK(first->containers.size() == 2);
    CHECK_FALSE(r.next({entry("a", false), entry("b", false)}));

    auto changed = r.next({entry("a", true), entry("b", false), entry("c", false)});
    REQUIRE(changed);
    CHECK_FALSE(changed->full);
    REQUIRE(changed->containers.size() == 2);
    CHECK(changed->containers[0].id == "a");
    CHECK(changed->containers[1].id == "c");
    CHECK(changed->gone.empty());

    auto gone = r.next({entry("c", false, 1)});
    REQUIRE(gone);
    REQUIRE(gone->containers.size() == 1);
    CHECK(gone->containers[0].restarts == 1);
    std::sort(gone->gone.begin(), gone->gone.end());
    CHECK(gone->gone == std::vector<std::string>{"a", "b"});

    // A new copy of the slot (another incarnation) is a change, as is another generation.
    auto fresh = entry("c", false, 1);
    fresh.incarnation = 1;
    auto inc = r.next({fresh});
    REQUIRE(inc);
    REQUIRE(inc->containers.size() == 1);
    CHECK(inc->containers[0].incarnation == 1);
    fresh.generation = 4;
    REQUIRE(r.next({fresh}));
    CHECK_FALSE(r.next({fresh}));

    // A new session: everything again, even what did not change.
    r.reset();
    auto again = r.next({entry("c", false, 1)});
    REQUIRE(again);
    CHECK(again->full);
    CHECK(again->containers.size() == 1);
    // An empty node's first report is sent too: the master learns it has nothing.
    api::StatusReporter empty;
    auto none = empty.next({});
    REQUIRE(none);
    CHECK(none->full);
}

TEST_CASE("status reports travel as session messages the master reads back", "[api][status]") {
    StatusReport r;
    r.full = false;
    r.containers = {entry("a", true)};
    r.gone = {"b"};
    auto m = json::Value::parse(api::statusMessage(r));
    REQUIRE(m);
    CHECK(json::stringOf(*m, "type") == "status");
    auto back = decodeBody<StatusReport>(*m->find("report"));
    REQUIRE(back);
    CHECK_FALSE(back->full);
    CHECK(back->containers == r.containers);
    CHECK(back->gone == r.gone);
    auto bad = decodeBody<StatusReport>(*json::Value::parse(R"({"schemaVersion":2,"full":true,"containers":[],"gone":[1]})"));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message() == "bad StatusReport message: gone[0]: expected a string");
}
