// Three masters on etcd, as a user runs them: scripts/cluster up --masters 3
// --store etcd (an etcd member beside each master, in its network namespace),
// real agents and containers on the nodes, the CLI with the cluster's
// admin.conf, which names every master. The leader is killed, partitioned from
// etcd, and etcd loses members; the containers on the nodes never restart.
#include "orchestrator/master/cluster_support.hpp"

using namespace hull;
using namespace hull::test;
using namespace hull::test::cluster;

namespace {

/// scripts/cluster ARGS, required to succeed (its output in the failure's message).
void must(std::vector<std::string> args) {
    auto r = clusterScript(args);
    INFO("scripts/cluster " << args[0] << ": " << r.out << r.err);
    REQUIRE(r.status == 0);
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

/// The leader as `hull cluster status` says ("" when no master answers).
std::string leaderOf(const Cluster& c) { return json::stringOf(c.json({"cluster", "status"}), "leader"); }

/// container id -> restarts of SERVICE's running containers, as each node's own agent has them.
std::map<std::string, int64_t> onNodes(const std::vector<std::string>& nodes, const std::string& service) {
    std::map<std::string, int64_t> out;
    for (const auto& n : nodes)
        for (const auto& c : onNode(n, service)) {
            int64_t restarts = -1;
            if (const auto* r = c.find("restarts")) r->toInt64(restarts);
            out[json::stringOf(c, "id")] = restarts;
        }
    return out;
}

/// A master other than NAME.
std::string otherThan(const std::string& name, const std::string& also = "") {
    for (const char* m : {"m1", "m2", "m3"})
        if (m != name && m != also) return m;
    return "";
}

}  // namespace

TEST_CASE("cluster on etcd: the leader killed or cut off from etcd is replaced, etcd survives one member's loss and "
          "refuses writes without quorum, and the nodes restart no container",
          "[root][net][cluster][etcd]") {
    REQUIRE_ROOT();
    Cluster c(2, {"--masters", "3", "--store", "etcd"});
    const std::vector<std::string> nodes{"n1", "n2"};

    // ---- three masters, one leads; three healthy etcd members
    auto status = c.json({"cluster", "status"});
    INFO(status.dump(true));
    const std::string first = json::stringOf(status, "leader");
    CHECK(first == trimmed(clusterScript({"leader"}).out));
    REQUIRE(status.find("masters"));
    CHECK(status.find("masters")->asArray().size() == 3);
    CHECK(json::stringOf(status, "storeHealth") == "healthy");
    REQUIRE(status.find("storeMembers"));
    CHECK(status.find("storeMembers")->asArray().size() == 3);

    auto web = c.apply("web", "replicas: 4\n" + std::string(kSleep));
    INFO(web.out << web.err);
    REQUIRE(web.status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 4; }, 60000));
    const auto before = onNodes(nodes, "web");
    REQUIRE(before.size() == 4);

    // ---- the leader crashes: another takes over; apply, scale and status work through it
    must({"kill-master", first});
    std::string second;
    REQUIRE(eventually([&] { return !(second = leaderOf(c)).empty() && second != first; }, 20000));
    auto api = c.apply("api", "replicas: 2\n" + std::string(kSleep));
    INFO(api.out << api.err);
    CHECK(api.status == 0);
    CHECK(c.hull({"scale", "web", "5"}).status == 0);
    CHECK(eventually([&] { return c.ready("web").size() == 5 && c.ready("api").size() == 2; }, 60000));
    // The dead master's entry goes with its lease.
    CHECK(eventually([&] { return c.json({"cluster", "status"}).find("masters")->asArray().size() == 2; }, 10000));
    // Back, it stands by.
    must({"start-master", first});
    CHECK(eventually(
        [&] {
            auto s = c.json({"cluster", "status"});
            return s.find("masters") && s.find("masters")->asArray().size() == 3 && json::stringOf(s, "leader") == second;
        },
        10000));

    // Streams go to the leader, whichever master admin.conf names first (a standby refuses them).
    for (const char* m : {"m1", "m2", "m3"}) {
        auto conf = json::Value::parse(readFileOr(c.config()));
        REQUIRE(conf);
        std::string servers = "https://" + kNet + ".1:7443,https://" + kNet + ".2:7443,https://" + kNet + ".3:7443";
        // This master first, the others after it.
        const std::string mine = "https://" + kNet + "." + std::string(1, m[1]) + ":7443";
        servers.erase(servers.find(mine), mine.size() + (servers.find(mine) + mine.size() < servers.size() ? 1 : 0));
        if (!servers.empty() && servers.back() == ',') servers.pop_back();
        conf->set("server", mine + "," + servers);
        TempDir d("hull-ha-conf");
        writeFileOrThrow(d / "admin.conf", conf->dump());
        const std::string container = json::stringOf(c.ready("web").front(), "name");
        auto logs = run({binPath("hull"), "--config", d / "admin.conf", "logs", "--tail", "1", container});
        INFO(m << " first: " << logs.err);
        CHECK(logs.status == 0);
    }

    // ---- the leader's host is cut off (from etcd too): it steps down and exits; another leads
    must({"partition", second});
    std::string third;
    REQUIRE(eventually([&] { return !(third = leaderOf(c)).empty() && third != second; }, 20000));
    CHECK(eventually([&] { return readFileOr(kDir + "/" + second + "/master.log").find("no longer the leader") != std::string::npos; },
                     10000));
    must({"heal", second});
    must({"start-master", second});
    // Writes work again (etcd's member on the healed host rejoining may move etcd's own
    // leader once more, and a master's lease with it: a script retries for a few seconds).
    CHECK(eventually([&] { return c.apply("after-partition", "replicas: 1\n" + std::string(kSleep)).status == 0; }, 20000));

    // ---- one etcd member dies: the cluster keeps working (a master may change)
    const std::string e1 = otherThan(third);
    must({"kill-etcd", e1});
    CHECK(eventually([&] { return c.apply("one-down", "replicas: 1\n" + std::string(kSleep)).status == 0; }, 20000));
    status = c.json({"cluster", "status"});
    CHECK(json::stringOf(status, "storeHealth").find("2 of 3") != std::string::npos);

    // ---- two die: no quorum, every write refused with a clear error; the containers keep running
    const std::string e2 = otherThan(third, e1);
    must({"kill-etcd", e2});
    RunResult refused;
    CHECK(eventually(
        [&] {
            refused = c.apply("no-quorum", "replicas: 1\n" + std::string(kSleep));
            return refused.status != 0;
        },
        20000));
    INFO(refused.out << refused.err);
    // Said plainly, whichever master answered first: the leader's write timed out
    // for want of a quorum, or a standby says there is no leader (and why, in
    // etcd's own words), or that the leader it knew could not be reached.
    CHECK((refused.err.find("quorum") != std::string::npos || refused.err.find("no leader") != std::string::npos ||
           refused.err.find("could not reach the leader") != std::string::npos));
    std::this_thread::sleep_for(std::chrono::seconds(3));
    // Every container that ran before is running still, never restarted.
    const auto during = onNodes(nodes, "web");
    for (const auto& [id, restarts] : before) {
        INFO("container " << id);
        CHECK(during.count(id) == 1);
        if (during.count(id)) CHECK(during.at(id) == 0);
    }

    // ---- quorum back: a master leads again (the deposed ones started again, as a supervisor would)
    must({"start-etcd", e1});
    must({"start-etcd", e2});
    for (const char* m : {"m1", "m2", "m3"}) must({"start-master", m});
    CHECK(eventually([&] { return c.apply("quorum-back", "replicas: 1\n" + std::string(kSleep)).status == 0; }, 30000));
    CHECK(eventually([&] { return json::stringOf(c.json({"cluster", "status"}), "storeHealth") == "healthy"; }, 20000));

    // ---- node failover still works: n2 crashes, its replicas run on n1
    const auto onN1 = onNodes({"n1"}, "web");
    must({"kill", "n2"});
    CHECK(eventually([&] { return c.perNode("web") == std::map<std::string, int>{{"n1", 5}}; }, 60000));
    // Through all of it, the containers on n1 that ran at the start never restarted.
    const auto after = onNodes({"n1"}, "web");
    size_t kept = 0;
    for (const auto& [id, restarts] : onN1) {
        if (!before.count(id)) continue;
        INFO("container " << id << " on n1");
        ++kept;
        CHECK(after.count(id) == 1);
        if (after.count(id)) CHECK(after.at(id) == 0);
    }
    CHECK(kept >= 1);
}
