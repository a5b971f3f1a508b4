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

// ---- a master's services: per-slot generations and incarnations, paced by the master ----

namespace {

/// A master's "web": generation 7 (restart always), generation 6 known too (restart on-failure, other backoff).
DesiredService managed(std::vector<int> slots) {
    DesiredService d = svc(10, 7);
    d.slots = std::move(slots);
    Service six = d.spec;
    six.image = "hull.local/busybox:6";
    six.restart = Service::Restart::OnFailure;
    six.backoff = Backoff{milliseconds(500), milliseconds(1000), milliseconds(30000), 3.0};
    d.versions[6] = six;
    return d;
}

Observed at(Observed o, int64_t generation, int64_t incarnation = 0) {
    o.generation = generation;
    o.incarnation = incarnation;
    return o;
}

}  // namespace

TEST_CASE("reconcile: a master's slots start the generation and incarnation each wants", "[reconcile]") {
    auto d = managed({0, 3, 4});
    d.pins[3] = {6, 0};
    d.pins[4] = {7, 2};
    d.pins[8] = {6, 0};  // not a slot of this node: nothing
    CHECK(d.want(0) == SlotWant{7, 0});
    CHECK(d.want(3) == SlotWant{6, 0});
    CHECK(d.specOf(6)->image == "hull.local/busybox:6");
    CHECK(d.specOf(7) == &d.spec);
    CHECK(d.specOf(5) == nullptr);
    auto a = plan({d}, {}, milliseconds(1000));
    REQUIRE(a.size() == 3);
    CHECK((a[0].slot == 0 && a[0].generation == 7 && a[0].incarnation == 0 && a[0].reason == "replica"));
    CHECK((a[1].slot == 3 && a[1].generation == 6 && a[1].incarnation == 0));
    CHECK((a[2].slot == 4 && a[2].generation == 7 && a[2].incarnation == 2));
    // Running as wanted: nothing to do, mixed generations and all.
    std::vector<Observed> obs = {at(running("a", 0, 0), 7), at(running("b", 3, 0), 6), at(running("c", 4, 0), 7, 2)};
    CHECK(plan({d}, obs, milliseconds(2000)).empty());
}

TEST_CASE("reconcile: a rollback to an older generation keeps the containers of that generation", "[reconcile]") {
    // The master rolls back to 6: generation 6 is the entry's own now, 7 is gone.
    DesiredService d = managed({0, 1});
    d.spec = d.versions[6];
    d.generation = 6;
    d.versions.clear();
    std::vector<Observed> obs = {at(running("a", 0, 0), 6), at(running("b", 1, 0), 7)};
    auto a = plan({d}, obs, milliseconds(1000));
    REQUIRE(a.size() == 1);
    CHECK((a[0].kind == Action::Kind::Start && a[0].slot == 1 && a[0].generation == 6 && a[0].reason == "update"));
    // Mid-replacement, the master goes back: the ready old one stays, the new one goes.
    DesiredService back = managed({0});
    back.pins[0] = {6, 0};
    std::vector<Observed> mid = {at(running("old", 0, 0), 6), at(running("new", 0, 500, false), 7)};
    auto b = plan({back}, mid, milliseconds(1000));
    REQUIRE(b.size() == 1);
    CHECK((b[0].kind == Action::Kind::Stop && b[0].container == "new" && b[0].reason == "update"));
}

TEST_CASE("reconcile: an incarnation bump replaces the slot's container start-first", "[reconcile]") {
    auto d = managed({4});
    d.pins[4] = {7, 1};
    std::vector<Observed> obs = {at(running("a", 4, 0), 7, 0)};
    auto a = plan({d}, obs, milliseconds(1000));
    REQUIRE(a.size() == 1);
    CHECK((a[0].kind == Action::Kind::Start && a[0].generation == 7 && a[0].incarnation == 1));
    CHECK(a[0].reason == "phoenix");
    CHECK(a[0].restarts == 0);
    // The new one starting, not ready: the old one stays, nothing else starts.
    obs.push_back(at(running("a2", 4, 1000, false), 7, 1));
    CHECK(plan({d}, obs, milliseconds(1100)).empty());
    // Ready: the old one goes.
    obs.back().ready = true;
    auto b = plan({d}, obs, milliseconds(1200));
    REQUIRE(b.size() == 1);
    CHECK((b[0].kind == Action::Kind::Stop && b[0].container == "a" && b[0].reason == "phoenix"));
    // Being stopped: nothing more.
    obs[0].stopping = true;
    CHECK(plan({d}, obs, milliseconds(1300)).empty());
}

TEST_CASE("reconcile: stop-first order stops the old container, then starts the new one once it has ended",
          "[reconcile]") {
    auto d = managed({2});
    d.order = ReplaceOrder::StopFirst;
    std::vector<Observed> obs = {at(running("a", 2, 0), 6)};
    auto a = plan({d}, obs, milliseconds(1000));
    REQUIRE(a.size() == 1);
    CHECK((a[0].kind == Action::Kind::Stop && a[0].container == "a" && a[0].reason == "update"));
    // On its way out (the agent keeps an ended record of it, as for a failed probe): nothing starts yet.
    obs[0].stopping = true;
    Observed record = at(exited("a", 2, 0, 1000, 143), 6);
    obs.push_back(record);
    CHECK(plan({d}, obs, milliseconds(1500)).empty());
    // Ended: the new one starts at once (no backoff, no restart policy: it is not a restart).
    obs[0].state = Observed::State::Exited;
    auto b = plan({d}, obs, milliseconds(2000));
    REQUIRE(b.size() == 1);
    CHECK((b[0].kind == Action::Kind::Start && b[0].generation == 7 && b[0].reason == "update"));
    CHECK(b[0].notBefore == milliseconds(2000));
    CHECK(b[0].restarts == 0);
    // Gone altogether: the same.
    obs.erase(obs.begin());
    CHECK(plan({d}, obs, milliseconds(2000)) == b);
    // Start-first, a container being stopped holds nothing up.
    d.order = ReplaceOrder::StartFirst;
    auto c = plan({d}, {at(running("x", 2, 0), 7, 0)}, milliseconds(2000));
    CHECK(c.empty());
    Observed leaving = at(running("x", 2, 0), 7);
    leaving.stopping = true;
    auto e = plan({d}, {leaving}, milliseconds(2000));
    REQUIRE(e.size() == 1);
    CHECK((e[0].kind == Action::Kind::Start && e[0].reason == "replica"));
}

TEST_CASE("reconcile: a master's mismatching slots are all replaced at once", "[reconcile]") {
    auto d = managed({0, 1, 2});
    std::vector<Observed> obs = {at(running("a", 0, 0), 6), at(running("b", 1, 0), 6), at(running("c", 2, 0), 7)};
    auto a = plan({d}, obs, milliseconds(1000));
    REQUIRE(a.size() == 2);
    CHECK((a[0].kind == Action::Kind::Start && a[0].slot == 0 && a[0].generation == 7 && a[0].reason == "update"));
    CHECK((a[1].kind == Action::Kind::Start && a[1].slot == 1 && a[1].generation == 7));
    // Stop-first: both stop at once.
    d.order = ReplaceOrder::StopFirst;
    auto b = plan({d}, obs, milliseconds(1000));
    REQUIRE(b.size() == 2);
    CHECK((b[0].kind == Action::Kind::Stop && b[0].container == "a"));
    CHECK((b[1].kind == Action::Kind::Stop && b[1].container == "b"));
}

TEST_CASE("reconcile: a standalone service still replaces one slot at a time and keeps its own maxAge, a master's "
          "ignores maxAge",
          "[reconcile]") {
    auto d = svc(2, 2);
    d.spec.maxAge = milliseconds(5000);
    std::vector<Observed> obs = {running("a", 0, 0), running("b", 1, 0)};
    auto a = plan({d}, obs, milliseconds(1000));
    REQUIRE(a.size() == 1);
    CHECK((a[0].slot == 0 && a[0].reason == "update" && a[0].incarnation == 0));
    auto old = svc(2, 1);
    old.spec.maxAge = milliseconds(5000);
    auto b = plan({old}, obs, milliseconds(6000));
    REQUIRE(b.size() == 1);
    CHECK(b[0].reason == "phoenix");
    // A master's service: maxAge is the master's business (it bumps incarnations).
    auto m = managed({0, 1});
    m.spec.maxAge = milliseconds(5000);
    CHECK(plan({m}, {at(running("a", 0, 0), 7), at(running("b", 1, 0), 7)}, milliseconds(60000)).empty());
    // The incarnation is not the standalone's business either: it compares generations only.
    CHECK(plan({svc(1, 1)}, {at(running("a", 0, 0), 1, 3)}, milliseconds(1000)).empty());
}

TEST_CASE("reconcile: a pinned slot restarts its pinned generation, with that generation's policy and backoff",
          "[reconcile]") {
    auto d = managed({3});
    d.pins[3] = {6, 2};
    // Generation 6 is on-failure: a clean exit stays ended (7, always, would restart).
    CHECK(plan({d}, {at(exited("a", 3, 0, 1000, 0), 6, 2)}, milliseconds(1000)).empty());
    auto a = plan({d}, {at(exited("a", 3, 0, 1000, 1, 1), 6, 2)}, milliseconds(1000));
    REQUIRE(a.size() == 1);
    CHECK((a[0].kind == Action::Kind::Start && a[0].reason == "restart"));
    CHECK((a[0].generation == 6 && a[0].incarnation == 2 && a[0].restarts == 2));
    CHECK(a[0].notBefore == milliseconds(1000 + 1000));  // 500 ms x 3, capped at 1000 (generation 6's backoff)
    // An ended container of another incarnation: the wanted one starts at once, as a new container.
    auto b = plan({d}, {at(exited("a", 3, 0, 1000, 0, 4), 6, 1)}, milliseconds(1000));
    REQUIRE(b.size() == 1);
    CHECK((b[0].reason == "phoenix" && b[0].restarts == 0 && b[0].notBefore == milliseconds(1000)));
    // A liveness failure of a pinned slot: stopped, and restarted as generation 6.
    auto failing = at(running("a", 3, 0), 6, 2);
    failing.livenessFailed = true;
    auto c = plan({d}, {failing}, milliseconds(1000));
    REQUIRE(c.size() == 1);
    CHECK((c[0].kind == Action::Kind::Stop && c[0].reason == "liveness"));
    // A pin whose spec is missing: the slot is left as it is.
    d.pins[3] = {5, 0};
    CHECK(plan({d}, {at(running("a", 3, 0), 6, 2)}, milliseconds(1000)).empty());
}
