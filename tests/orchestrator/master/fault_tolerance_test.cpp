// Fault tolerance as a user sees it, on scripts/cluster hosts with real agents
// and real containers: a killed node's replicas run elsewhere and nothing runs
// twice once it is back; a partition moves only what a service's failover.after
// allows; the phoenix cycle and rolling updates keep the ready count, and a
// rollout whose replicas never get ready rolls itself back.
#include <catch2/catch.hpp>

#include "orchestrator/master/cluster_support.hpp"

using namespace hull;
using namespace hull::test;
using namespace hull::test::cluster;
using json::Value;

namespace {

const std::vector<std::string> kNodes{"n1", "n2", "n3"};

/// Distinct slots of SERVICE with a running, ready container, as the master reports them.
size_t readySlots(const Cluster& c, const std::string& service) {
    std::set<int64_t> slots;
    for (const auto& x : c.ready(service)) slots.insert(intField(x, "slot"));
    return slots.size();
}

bool noneTwice(const std::map<int64_t, int>& slots) {
    for (const auto& [slot, n] : slots)
        if (n > 1) return false;
    return true;
}

}  // namespace

TEST_CASE("cluster: a killed node's replicas run elsewhere, and once it is back its old containers stop and no replica "
          "runs twice",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    REQUIRE(c.apply("web", std::string("replicas: 6\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 6; }));
    REQUIRE(c.perNode("web")["n2"] == 2);

    auto killed = clusterScript({"kill", "n2"});
    INFO(killed.out << killed.err);
    REQUIRE(killed.status == 0);
    // How fast is scripts/bench-failover's to measure, not this test's.
    REQUIRE(eventually([&] {
        auto per = c.perNode("web");
        return per.count("n2") == 0 && readySlots(c, "web") == 6;
    }));
    CHECK(c.node("n2", "status") == "down");

    // The host boots again: its agent may start what it last ran, but the
    // master's assignment stops it; every node's own listing agrees.
    auto started = clusterScript({"start", "n2"});
    INFO(started.out << started.err);
    REQUIRE(started.status == 0);
    REQUIRE(eventually([&] { return c.node("n2", "status") == "ready"; }));
    REQUIRE(eventually([&] {
        auto slots = slotsEverywhere(kNodes, "web");
        return slots.size() == 6 && noneTwice(slots) && onNode("n2", "web").empty();
    }));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    auto slots = slotsEverywhere(kNodes, "web");
    CHECK(slots.size() == 6);
    CHECK(noneTwice(slots));
    auto ev = c.hull({"events"}).out;
    CHECK(ev.find("node-down") != std::string::npos);
    CHECK(ev.find("rescheduled") != std::string::npos);
}

TEST_CASE("cluster: a partitioned node keeps running, and a failover.after longer than the partition moves nothing, a shorter "
          "one moves replicas and their duplicates stop after the heal",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    REQUIRE(c.apply("calm", std::string("replicas: 3\nfailover: {after: 60s}\n") + kSleep).status == 0);
    REQUIRE(c.apply("quick", std::string("replicas: 3\nfailover: {after: 2s}\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return c.ready("calm").size() == 3 && c.ready("quick").size() == 3; }));
    REQUIRE(c.perNode("calm")["n2"] == 1);
    REQUIRE(c.perNode("quick")["n2"] == 1);
    auto calmOnN2 = onNode("n2", "calm");
    auto quickOnN2 = onNode("n2", "quick");
    REQUIRE(calmOnN2.size() == 1);
    REQUIRE(quickOnN2.size() == 1);
    const std::string calmId = json::stringOf(calmOnN2[0], "id");

    REQUIRE(clusterScript({"partition", "n2"}).status == 0);
    auto t0 = std::chrono::steady_clock::now();
    // quick's replica runs elsewhere within its 2 s (and the grace before it);
    // calm's stays placed on n2, which runs both on, cut off.
    REQUIRE(eventually([&] {
        auto per = c.perNode("quick");
        return per.count("n2") == 0 && readySlots(c, "quick") == 3;
    }, 15000));
    std::this_thread::sleep_for(std::chrono::seconds(10) - (std::chrono::steady_clock::now() - t0));
    CHECK(onNode("n2", "calm").size() == 1);
    CHECK(onNode("n2", "quick").size() == 1);  // a duplicate until it hears from the master again
    CHECK(readySlots(c, "calm") == 2);          // n2's is not counted while it is cut off...
    CHECK(c.perNode("calm").count("n1") + c.perNode("calm").count("n3") == 2);  // ...and not moved

    REQUIRE(clusterScript({"heal", "n2"}).status == 0);
    REQUIRE(eventually([&] { return readySlots(c, "calm") == 3; }));
    REQUIRE(eventually([&] { return onNode("n2", "quick").empty(); }));
    CHECK(noneTwice(slotsEverywhere(kNodes, "quick")));
    CHECK(slotsEverywhere(kNodes, "quick").size() == 3);
    auto calmNow = onNode("n2", "calm");
    REQUIRE(calmNow.size() == 1);
    CHECK(json::stringOf(calmNow[0], "id") == calmId);  // never restarted
    CHECK(intField(calmNow[0], "restarts") == 0);
}

TEST_CASE("cluster: the phoenix cycle replaces every replica of maxAge 5s while the ready count never drops below 4",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    REQUIRE(c.apply("web", std::string("replicas: 4\nmaxAge: 5s\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return readySlots(c, "web") == 4; }));
    auto first = c.idsBySlot("web");
    size_t lowest = 4, samples = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < until) {
        lowest = std::min(lowest, readySlots(c, "web"));
        ++samples;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    INFO(samples << " samples");
    CHECK(samples > 50);
    CHECK(lowest == 4);
    auto now = c.idsBySlot("web");
    for (const auto& [slot, id] : first) CHECK(now[slot] != id);  // every one burned and spawned afresh
    auto ev = c.hull({"events"}).out;
    CHECK(ev.find("phoenix") != std::string::npos);
}

TEST_CASE("cluster: a service placed all on one node spreads out over one phoenix cycle", "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    REQUIRE(c.hull({"node", "drain", "n2"}).status == 0);
    REQUIRE(c.hull({"node", "drain", "n3"}).status == 0);
    REQUIRE(c.apply("web", std::string("replicas: 3\nmaxAge: 5s\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return readySlots(c, "web") == 3; }));
    REQUIRE(c.perNode("web") == std::map<std::string, int>{{"n1", 3}});
    REQUIRE(c.hull({"node", "activate", "n2"}).status == 0);
    REQUIRE(c.hull({"node", "activate", "n3"}).status == 0);
    CHECK(eventually([&] { return c.perNode("web") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}, {"n3", 1}}; }, 20000));
}

TEST_CASE("cluster: a rollout whose replicas never get ready rolls back by itself, the old replicas never stop, and "
          "rollout status fails",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    const std::string probe = "probes: {readiness: {exec: [cat, /tmp/ready], period: 200ms}}\nstopGracePeriod: 1s\n";
    REQUIRE(c.apply("web", "replicas: 4\ncommand: [sh, -c, \"touch /tmp/ready; exec sleep 100000\"]\n" + probe).status == 0);
    REQUIRE(eventually([&] { return readySlots(c, "web") == 4; }));
    auto before = c.idsBySlot("web");
    // Generation 2 never creates /tmp/ready.
    auto a = c.apply("web", "replicas: 4\ncommand: [sleep, \"100000\"]\nupdate: {parallelism: 2, monitor: 2s}\n" + probe);
    INFO(a.out << a.err);
    REQUIRE(a.status == 0);
    auto st = c.hull({"rollout", "status", "web", "--timeout", "60s"});
    INFO(st.out << st.err);
    CHECK(st.status != 0);
    CHECK(st.err.find("rolled back to generation 1") != std::string::npos);
    auto s = c.json({"rollout", "status", "web"});
    CHECK(json::stringOf(s, "state") == "rolled-back");
    CHECK(intField(s, "generation") == 1);
    REQUIRE(eventually([&] { return readySlots(c, "web") == 4 && c.ready("web").size() == 4; }));
    CHECK(c.idsBySlot("web") == before);  // the old replicas never stopped
    std::this_thread::sleep_for(std::chrono::seconds(1));
    for (const auto& n : kNodes)
        for (const auto& x : onNode(n, "web")) CHECK(intField(x, "generation") == 1);
    auto h = c.hull({"rollout", "history", "web"});
    CHECK(h.out.find("rolled-back") != std::string::npos);
}

TEST_CASE("cluster: a good rollout of 6 replicas, 2 at a time start-first, keeps 6 ready and apply --wait waits for it",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    REQUIRE(c.apply("web", std::string("replicas: 6\nenv: {V: \"1\"}\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return readySlots(c, "web") == 6; }));
    std::atomic<bool> done{false};
    RunResult waited;
    std::thread applier([&] {
        TempDir d("hull-svc");
        writeFileOrThrow(d / "web.yaml", "name: web\nimage: " + c.image +
                                             "\nreplicas: 6\nenv: {V: \"2\"}\nupdate: {parallelism: 2, order: start-first, "
                                             "monitor: 1s}\n" + kSleep);
        waited = c.hull({"apply", "-f", d / "web.yaml", "--wait", "--timeout", "90s"});
        done = true;
    });
    size_t lowest = 6;
    while (!done) {
        lowest = std::min(lowest, readySlots(c, "web"));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    applier.join();
    INFO(waited.out << waited.err);
    CHECK(waited.status == 0);
    CHECK(waited.out.find("rollout complete") != std::string::npos);
    CHECK(lowest >= 6);
    auto ready = c.ready("web");
    CHECK(ready.size() == 6);
    for (const auto& x : ready) CHECK(intField(x, "generation") == 2);
    auto h = c.json({"rollout", "history", "web"});
    const Value* revs = h.find("revisions");
    REQUIRE(revs);
    REQUIRE(revs->asArray().size() == 2);
    CHECK(json::stringOf(revs->asArray()[1], "outcome") == "completed");
}
