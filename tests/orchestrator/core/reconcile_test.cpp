// The node agent's decisions, with made-up clocks and containers.
#include <catch2/catch.hpp>

#include "orchestrator/core/reconcile.hpp"

using namespace hull::orchestrator;
using std::chrono::milliseconds;

namespace {

DesiredService svc(int replicas, int64_t generation = 1) {
    DesiredService d;
    d.spec.name = "web";
    d.spec.image = "hull.local/busybox";
    d.spec.replicas = replicas;
    d.spec.backoff = Backoff{milliseconds(100), milliseconds(1000), milliseconds(30000), 2.0};
    d.generation = generation;
    return d;
}

Observed running(const std::string& id, int slot, int64_t started, bool ready = true, int64_t generation = 1) {
    Observed o;
    o.id = id;
    o.service = "web";
    o.slot = slot;
    o.generation = generation;
    o.state = Observed::State::Running;
    o.started = milliseconds(started);
    o.ready = ready;
    return o;
}

Observed exited(const std::string& id, int slot, int64_t started, int64_t finished, int code, int restarts = 0) {
    Observed o = running(id, slot, started, false);
    o.state = Observed::State::Exited;
    o.finished = milliseconds(finished);
    o.exitCode = code;
    o.restarts = restarts;
    return o;
}

}  // namespace

TEST_CASE("reconcile: replicas start at once", "[reconcile]") {
    auto a = plan({svc(3)}, {}, milliseconds(1000));
    REQUIRE(a.size() == 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(a[size_t(i)].kind == Action::Kind::Start);
        CHECK(a[size_t(i)].slot == i);
        CHECK(a[size_t(i)].reason == "replica");
        CHECK(a[size_t(i)].notBefore == milliseconds(1000));
    }
    CHECK(plan({svc(1)}, {running("a", 0, 0)}, milliseconds(5000)).empty());
}

TEST_CASE("reconcile: an ended container restarts after a backoff that doubles up to its cap", "[reconcile]") {
    for (auto [restartsBefore, delay] : std::vector<std::pair<int, int>>{{0, 100}, {1, 200}, {2, 400}, {3, 800}, {4, 1000}, {9, 1000}}) {
        auto a = plan({svc(1)}, {exited("a", 0, 1000, 2000, 137, restartsBefore)}, milliseconds(2000));
        REQUIRE(a.size() == 1);
        CHECK(a[0].kind == Action::Kind::Start);
        CHECK(a[0].reason == "restart");
        CHECK(a[0].restarts == restartsBefore + 1);
        CHECK(a[0].notBefore == milliseconds(2000 + delay));
    }
    // A container that stayed up for resetAfter starts the count again.
    auto reset = plan({svc(1)}, {exited("a", 0, 0, 40000, 1, 7)}, milliseconds(40000));
    REQUIRE(reset.size() == 1);
    CHECK(reset[0].restarts == 1);
    CHECK(reset[0].notBefore == milliseconds(40100));
    // Only the latest ended container of a slot counts.
    auto latest = plan({svc(1)}, {exited("old", 0, 0, 500, 1, 0), exited("new", 0, 600, 700, 1, 3)}, milliseconds(700));
    REQUIRE(latest.size() == 1);
    CHECK(latest[0].restarts == 4);
}

TEST_CASE("reconcile: restart policies", "[reconcile]") {
    auto onFailure = svc(1);
    onFailure.spec.restart = Service::Restart::OnFailure;
    CHECK(plan({onFailure}, {exited("a", 0, 0, 10, 0)}, milliseconds(10)).empty());
    CHECK(plan({onFailure}, {exited("a", 0, 0, 10, 2)}, milliseconds(10)).size() == 1);
    auto never = svc(1);
    never.spec.restart = Service::Restart::Never;
    CHECK(plan({never}, {exited("a", 0, 0, 10, 2)}, milliseconds(10)).empty());
    CHECK(plan({never}, {}, milliseconds(10)).size() == 1);  // but it starts once
}

TEST_CASE("reconcile: a failed liveness probe stops the container, and the restart follows its exit", "[reconcile]") {
    auto bad = running("a", 0, 0);
    bad.livenessFailed = true;
    auto a = plan({svc(1)}, {bad}, milliseconds(5000));
    REQUIRE(a.size() == 1);
    CHECK(a[0].kind == Action::Kind::Stop);
    CHECK(a[0].container == "a");
    CHECK(a[0].reason == "liveness");
    bad.startupFailed = true;  // a startup probe at its threshold fails the container the same way
    auto b = plan({svc(1)}, {bad}, milliseconds(5000));
    REQUIRE(b.size() == 1);
    CHECK(b[0].kind == Action::Kind::Stop);
    CHECK(b[0].reason == "startup");
}

TEST_CASE("reconcile: a container stopped for a failed probe restarts per its policy, with backoff", "[reconcile]") {
    auto failed = exited("a", 0, 1000, 2000, 143, 2);
    failed.livenessFailed = true;
    auto a = plan({svc(1)}, {failed}, milliseconds(2000));
    REQUIRE(a.size() == 1);
    CHECK(a[0].kind == Action::Kind::Start);
    CHECK(a[0].reason == "restart");
    CHECK(a[0].restarts == 3);
    CHECK(a[0].notBefore == milliseconds(2000 + 400));
    auto onFailure = svc(1);
    onFailure.spec.restart = Service::Restart::OnFailure;
    failed.exitCode = 0;  // it ended cleanly on SIGTERM, but was unhealthy: a failure all the same
    CHECK(plan({onFailure}, {failed}, milliseconds(2000)).size() == 1);
    auto never = svc(1);
    never.spec.restart = Service::Restart::Never;
    CHECK(plan({never}, {failed}, milliseconds(2000)).empty());
}

TEST_CASE("reconcile: the phoenix cycle replaces one old container at a time, new first", "[reconcile]") {
    auto d = svc(3);
    d.spec.maxAge = milliseconds(5000);
    std::vector<Observed> obs = {running("a", 0, 0), running("b", 1, 100), running("c", 2, 200)};
    // All three are older than maxAge: one replacement starts, for slot 0.
    auto a = plan({d}, obs, milliseconds(6000));
    REQUIRE(a.size() == 1);
    CHECK(a[0].kind == Action::Kind::Start);
    CHECK(a[0].slot == 0);
    CHECK(a[0].reason == "phoenix");
    // The new one is starting, not ready: nothing stops, nothing else starts.
    obs.push_back(running("a2", 0, 6000, false));
    CHECK(plan({d}, obs, milliseconds(6100)).empty());
    // Ready: the old one of slot 0 stops; still no second replacement in the same round.
    obs.back().ready = true;
    auto b = plan({d}, obs, milliseconds(6200));
    REQUIRE(b.size() == 1);
    CHECK(b[0].kind == Action::Kind::Stop);
    CHECK(b[0].container == "a");
    // Once it has ended, the next slot's turn.
    obs[0].state = Observed::State::Exited;
    obs[0].finished = milliseconds(6300);
    auto c = plan({d}, obs, milliseconds(6300));
    REQUIRE(c.size() == 1);
    CHECK(c[0].kind == Action::Kind::Start);
    CHECK(c[0].slot == 1);
}

TEST_CASE("reconcile: a changed spec rolls out one slot at a time", "[reconcile]") {
    std::vector<Observed> obs = {running("a", 0, 0), running("b", 1, 0)};
    auto a = plan({svc(2, 2)}, obs, milliseconds(1000));
    REQUIRE(a.size() == 1);
    CHECK(a[0].reason == "update");
    CHECK(a[0].generation == 2);
}

TEST_CASE("reconcile: scaling down and deleting stop containers", "[reconcile]") {
    std::vector<Observed> obs = {running("a", 0, 0), running("b", 1, 0), running("c", 2, 0)};
    auto down = plan({svc(1)}, obs, milliseconds(1000));
    REQUIRE(down.size() == 2);
    CHECK(down[0].container == "b");
    CHECK(down[1].container == "c");
    CHECK(down[0].reason == "scale down");
    auto gone = plan({}, obs, milliseconds(1000));
    REQUIRE(gone.size() == 3);
    for (const auto& x : gone) CHECK(x.reason == "deleted");
}

TEST_CASE("reconcile: explicit slots: exactly those run here, whatever replicas says", "[reconcile]") {
    auto d = svc(10);
    d.slots = std::vector<int>{9, 5};
    auto a = plan({d}, {}, milliseconds(1000));
    REQUIRE(a.size() == 2);
    CHECK(a[0].kind == Action::Kind::Start);
    CHECK(a[0].slot == 5);
    CHECK(a[1].slot == 9);
    // Running: nothing to do; slot 0, which replicas alone would want, is not started.
    CHECK(plan({d}, {running("a", 5, 0), running("b", 9, 0)}, milliseconds(2000)).empty());
    // A slot beyond replicas is wanted all the same when assigned (the master decides).
    auto beyond = svc(1);
    beyond.slots = std::vector<int>{3};
    auto b = plan({beyond}, {}, milliseconds(1000));
    REQUIRE(b.size() == 1);
    CHECK(b[0].slot == 3);
    // No slots assigned: nothing runs here.
    auto none = svc(3);
    none.slots = std::vector<int>{};
    CHECK(plan({none}, {}, milliseconds(1000)).empty());
}

TEST_CASE("reconcile: a slot no longer assigned is stopped as \"unassigned\", the others are left alone", "[reconcile]") {
    auto d = svc(10);
    d.slots = std::vector<int>{5};
    std::vector<Observed> obs = {running("a", 5, 0), running("b", 9, 0), exited("c", 2, 0, 10, 0)};
    auto a = plan({d}, obs, milliseconds(1000));
    REQUIRE(a.size() == 1);
    CHECK(a[0].kind == Action::Kind::Stop);
    CHECK(a[0].container == "b");
    CHECK(a[0].slot == 9);
    CHECK(a[0].reason == "unassigned");
    // An ended container of an unassigned slot is not restarted either.
    d.slots = std::vector<int>{5, 9};
    obs[1].state = Observed::State::Exited;
    obs[1].finished = milliseconds(500);
    obs[1].exitCode = 137;
    auto b = plan({d}, obs, milliseconds(1000));
    REQUIRE(b.size() == 1);
    CHECK(b[0].kind == Action::Kind::Start);
    CHECK(b[0].slot == 9);
    CHECK(b[0].reason == "restart");
    // Without explicit slots, the same stop is a scale down.
    CHECK(plan({svc(1)}, {running("a", 0, 0), running("b", 1, 0)}, milliseconds(1000))[0].reason == "scale down");
}

TEST_CASE("reconcile: wantedSlots and wantsSlot", "[reconcile]") {
    auto d = svc(3);
    CHECK(wantedSlots(d) == std::vector<int>{0, 1, 2});
    CHECK(wantsSlot(d, 2));
    CHECK_FALSE(wantsSlot(d, 3));
    d.slots = std::vector<int>{9, 5, 9, -1};
    CHECK(wantedSlots(d) == std::vector<int>{5, 9});
    CHECK(wantsSlot(d, 9));
    CHECK_FALSE(wantsSlot(d, 0));
}

TEST_CASE("reconcile: the containers of a service whose spec cannot be read are left alone", "[reconcile]") {
    // Not declared (its spec unreadable) but named: no "deleted" stop, no restart of its ended container.
    std::vector<Observed> obs = {running("a", 0, 0), running("b", 1, 0, true, 7), exited("c", 2, 0, 10, 137)};
    CHECK(plan({}, obs, milliseconds(1000), {"web"}).empty());
    // The other services are planned as ever.
    auto other = svc(1);
    other.spec.name = "api";
    auto a = plan({other}, obs, milliseconds(1000), {"web"});
    REQUIRE(a.size() == 1);
    CHECK(a[0].service == "api");
    CHECK(a[0].kind == Action::Kind::Start);
    // Without the name, they would go.
    CHECK(plan({other}, obs, milliseconds(1000)).size() == 3);
}
