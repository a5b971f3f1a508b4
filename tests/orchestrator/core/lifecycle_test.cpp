// Node readiness from heartbeats, with made-up clocks.
#include <catch2/catch.hpp>

#include "orchestrator/core/lifecycle.hpp"

using namespace hull::orchestrator::core;

namespace {

using To = Transition::To;
const LifecycleOptions kOptions{500, 1500};

NodeClock node(const std::string& name, int64_t last, bool connected, bool down, bool drained = false) {
    return {name, last, connected, down, drained};
}

}  // namespace

TEST_CASE("a ready node goes down only after the grace, exactly the grace is still ready", "[lifecycle]") {
    const int64_t now = 100'000;
    CHECK(nodeTransitions({node("n1", now, true, false)}, now, kOptions).empty());
    CHECK(nodeTransitions({node("n1", now - 1500, true, false)}, now, kOptions).empty());
    CHECK(nodeTransitions({node("n1", now - 1501, true, false)}, now, kOptions) ==
          std::vector<Transition>{{"n1", To::Down, "no heartbeat for 1.501s (grace 1.5s)"}});
    CHECK(nodeTransitions({node("n1", now - 1600, true, false)}, now, kOptions) ==
          std::vector<Transition>{{"n1", To::Down, "no heartbeat for 1.6s (grace 1.5s)"}});
    // A closed session alone does not make a node down: it may be reconnecting.
    CHECK(nodeTransitions({node("n1", now - 1000, false, false)}, now, kOptions).empty());
    CHECK(nodeTransitions({node("n1", now - 1600, false, false)}, now, kOptions) ==
          std::vector<Transition>{{"n1", To::Down, "no heartbeat for 1.6s (grace 1.5s)"}});
    // The grace is the option's.
    CHECK(nodeTransitions({node("n1", now - 1600, true, false)}, now, {500, 2000}).empty());
    CHECK(nodeTransitions({node("n1", now - 60'000, true, false)}, now, {500, 2000}) ==
          std::vector<Transition>{{"n1", To::Down, "no heartbeat for 60s (grace 2s)"}});
}

TEST_CASE("a down node comes back when connected and heartbeating within the grace", "[lifecycle]") {
    const int64_t now = 100'000;
    CHECK(nodeTransitions({node("n1", now - 200, true, true)}, now, kOptions) ==
          std::vector<Transition>{{"n1", To::Ready, "heartbeat 0.2s ago"}});
    CHECK(nodeTransitions({node("n1", now - 1500, true, true)}, now, kOptions) ==
          std::vector<Transition>{{"n1", To::Ready, "heartbeat 1.5s ago"}});
    // Still silent, or heard but no longer connected: stays down.
    CHECK(nodeTransitions({node("n1", now - 1501, true, true)}, now, kOptions).empty());
    CHECK(nodeTransitions({node("n1", now - 200, false, true)}, now, kOptions).empty());
}

TEST_CASE("a node never heard from is down", "[lifecycle]") {
    CHECK(nodeTransitions({node("n1", 0, false, false)}, 5000, kOptions) ==
          std::vector<Transition>{{"n1", To::Down, "never heard from"}});
    // Even right at the clock's start, when 0 would be within the grace.
    CHECK(nodeTransitions({node("n1", 0, false, false)}, 1, kOptions) ==
          std::vector<Transition>{{"n1", To::Down, "never heard from"}});
    CHECK(nodeTransitions({node("n1", 0, true, false)}, 1, kOptions) ==
          std::vector<Transition>{{"n1", To::Down, "connected, but no heartbeat yet"}});
    CHECK(nodeTransitions({node("n1", 0, false, true)}, 5000, kOptions).empty());
    CHECK(nodeTransitions({node("n1", 0, true, true)}, 5000, kOptions).empty());
}

TEST_CASE("drained changes no readiness", "[lifecycle]") {
    const int64_t now = 100'000;
    CHECK(nodeTransitions({node("n1", now - 100, true, false, true)}, now, kOptions).empty());
    CHECK(nodeTransitions({node("n1", now - 100, true, true, true)}, now, kOptions) ==
          std::vector<Transition>{{"n1", To::Ready, "heartbeat 0.1s ago"}});
    CHECK(nodeTransitions({node("n1", now - 2000, true, false, true)}, now, kOptions) ==
          std::vector<Transition>{{"n1", To::Down, "no heartbeat for 2s (grace 1.5s)"}});
}

TEST_CASE("a tick over many nodes reports only the changes, in input order", "[lifecycle]") {
    const int64_t now = 10'000;
    std::vector<NodeClock> nodes{
        node("n3", now - 3000, false, false),  // silent: down
        node("n1", now - 100, true, false),    // fine
        node("n2", now - 100, true, true),     // back
        node("n4", now - 3000, false, true),   // still down
    };
    CHECK(nodeTransitions(nodes, now, kOptions) ==
          std::vector<Transition>{{"n3", To::Down, "no heartbeat for 3s (grace 1.5s)"},
                                  {"n2", To::Ready, "heartbeat 0.1s ago"}});
    // Applying the transitions and ticking again changes nothing.
    nodes[0].down = true;
    nodes[2].down = false;
    CHECK(nodeTransitions(nodes, now, kOptions).empty());
}

TEST_CASE("seconds as reasons show them", "[lifecycle]") {
    CHECK(secondsText(0) == "0s");
    CHECK(secondsText(1500) == "1.5s");
    CHECK(secondsText(1600) == "1.6s");
    CHECK(secondsText(2000) == "2s");
    CHECK(secondsText(250) == "0.25s");
    CHECK(secondsText(1) == "0.001s");
    CHECK(secondsText(61'234) == "61.234s");
    CHECK(secondsText(-200) == "-0.2s");
}
