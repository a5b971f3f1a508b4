// The cluster as a user sees it: a master and three nodes built by
// scripts/cluster out of network namespaces on this machine (real agents, real
// containers, images pulled from the registry in the master's namespace), driven
// through `hull` with the master's admin.conf.
//
// Each test case brings up its own cluster (named hct, underlay 10.252.0.0/24)
// and takes it down again; ctest runs them one at a time (RESOURCE_LOCK cluster).
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "orchestrator/api/https_client.hpp"
#include "orchestrator/api/pki.hpp"
#include "orchestrator/master/cluster_support.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::test;
using namespace hull::test::cluster;
using json::Value;
namespace api = hull::orchestrator::api;

TEST_CASE("cluster: replicas spread over nodes, constraints and requests are honoured, scale keeps replicas, drain moves "
          "them start-first",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    auto nodes = c.json({"node", "ls"});
    REQUIRE(nodes.isArray());
    REQUIRE(nodes.asArray().size() == 3);
    int64_t memory = 0;
    for (const auto& n : nodes.asArray()) {
        CHECK(json::stringOf(n, "status") == "ready");
        n.find("memory")->toInt64(memory);
    }
    REQUIRE(memory > 0);

    // 6 replicas spread 2/2/2.
    auto a = c.apply("web", std::string("replicas: 6\n") + kSleep);
    INFO(a.out << a.err);
    REQUIRE(a.status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 6; }));
    CHECK(c.perNode("web") == std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}});

    // A constraint honoured; an impossible one pending with its reason.
    REQUIRE(c.apply("pinned", std::string("replicas: 2\nplacement: {constraints: [\"node.name == n2\"]}\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return c.ready("pinned").size() == 2; }));
    CHECK(c.perNode("pinned") == std::map<std::string, int>{{"n2", 2}});
    REQUIRE(c.apply("nowhere", std::string("replicas: 1\nplacement: {constraints: [\"node.labels.zone == mars\"]}\n") + kSleep)
                .status == 0);
    REQUIRE(eventually([&] {
        auto d = c.json({"describe", "nowhere"});
        const Value* p = d.find("pending");
        return p && p->isArray() && p->asArray().size() == 1 &&
               json::stringOf(p->asArray()[0], "reason").find("node.labels.zone == mars") != std::string::npos;
    }));
    auto ev = c.hull({"events"});
    CHECK(ev.out.find("mars") != std::string::npos);
    CHECK(c.ready("nowhere").empty());

    // Requests that fit only on one node land there: two replicas that take 60%
    // of a node's memory fill two nodes, then one that takes 50% fits only on the third.
    REQUIRE(c.apply("big", "replicas: 2\nresources: {requests: {memory: " + std::to_string(memory * 6 / 10) + "}}\n" + kSleep)
                .status == 0);
    REQUIRE(eventually([&] { return c.ready("big").size() == 2; }));
    auto big = c.perNode("big");
    REQUIRE(big.size() == 2);
    REQUIRE(c.apply("fits", "replicas: 1\nresources: {requests: {memory: " + std::to_string(memory / 2) + "}}\n" + kSleep)
                .status == 0);
    REQUIRE(eventually([&] { return c.ready("fits").size() == 1; }));
    std::string fitsOn = c.perNode("fits").begin()->first;
    CHECK(!big.count(fitsOn));

    // Scale keeps the running replicas' ids.
    auto before = c.idsBySlot("web");
    REQUIRE(before.size() == 6);
    REQUIRE(c.hull({"scale", "web", "8"}).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 8; }));
    auto after = c.idsBySlot("web");
    for (const auto& [slot, id] : before) CHECK(after[slot] == id);
    REQUIRE(c.hull({"scale", "web", "4"}).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 4; }));
    after = c.idsBySlot("web");
    for (int64_t slot = 0; slot < 4; ++slot) CHECK(after[slot] == before[slot]);

    // Drain n1: its replicas move start-first, the ready count never below 4.
    REQUIRE(c.hull({"scale", "web", "6"}).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 6; }));
    REQUIRE(c.perNode("web")["n1"] > 0);
    REQUIRE(c.hull({"node", "drain", "n1"}).status == 0);
    size_t lowest = 100;
    bool moved = eventually([&] {
        auto per = c.perNode("web");
        size_t n = 0;
        for (const auto& [node, k] : per) n += size_t(k);
        lowest = std::min(lowest, n);
        // Only once the replacements are ready does n1 let go of its copies.
        return per.count("n1") == 0 && n == 6;
    });
    CHECK(moved);
    CHECK(lowest >= 6);
    auto drained = c.json({"node", "ls"});
    for (const auto& n : drained.asArray())
        if (json::stringOf(n, "name") == "n1") CHECK(json::stringOf(n, "status") == "drained");
    // Activated, it takes new work again; nothing moves back by itself.
    REQUIRE(c.hull({"node", "activate", "n1"}).status == 0);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    CHECK(c.perNode("web").count("n1") == 0);
}

TEST_CASE("cluster: a master or a node agent SIGKILLed and restarted restarts no container", "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    REQUIRE(c.apply("web", std::string("replicas: 6\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 6; }));
    auto before = c.idsBySlot("web");

    REQUIRE(clusterScript({"kill-master", "m1"}).status == 0);
    std::this_thread::sleep_for(std::chrono::seconds(2));  // beyond the nodes' grace period
    REQUIRE(clusterScript({"start-master", "m1"}).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 6; }));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    CHECK(c.idsBySlot("web") == before);

    pid_t agent = c.pidOf("n2", "agent");
    REQUIRE(agent > 0);
    REQUIRE(::kill(agent, SIGKILL) == 0);
    // Dead: gone, or a zombie (reaped by whoever PID 1 is, whenever it gets to it).
    REQUIRE(eventually([&] {
        std::string stat = readFileOr("/proc/" + std::to_string(agent) + "/stat");
        auto paren = stat.rfind(')');
        return paren == std::string::npos || stat.substr(paren + 2, 1) == "Z";
    }));
    // Its containers run on without it. Its agent started again at once, as
    // systemd would (within the grace period: the master moves nothing):
    auto restarted = clusterScript({"start", "n2"});
    INFO(restarted.out << restarted.err);
    REQUIRE(restarted.status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 6; }));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    INFO(c.hull({"events"}).out);
    CHECK(c.idsBySlot("web") == before);
    for (const auto& ctr : c.ready("web")) {
        int64_t restarts = -1;
        ctr.find("restarts")->toInt64(restarts);
        CHECK(restarts == 0);
    }
}

TEST_CASE("cluster: bad tokens, foreign certificates, missing credentials and bad requests are refused, and the master "
          "keeps serving",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c(1);
    auto admin = Value::parse(readFileOr(c.config()));
    REQUIRE(admin);
    std::string url = json::stringOf(*admin, "server"), ca = json::stringOf(*admin, "ca");
    std::string token = readFileOr(kDir + "/m1/join-token");
    while (!token.empty() && token.back() == '\n') token.pop_back();
    REQUIRE(token.rfind("HULL1.", 0) == 0);

    // A wrong secret, and a token for another CA: refused, the second before the secret is sent.
    TempDir n("hull-join");
    auto wrongSecret = token.substr(0, token.rfind('.') + 1) + "00000000000000000000000000000000";
    auto r = run({binPath("hull"), "--state-dir", n.path(), "node", "--join", url, "--token", wrongSecret, "--name", "intruder"});
    CHECK(r.status != 0);
    CHECK(r.err.find("wrong or rotated join token") != std::string::npos);
    auto otherCa = "HULL1." + std::string(64, 'a') + token.substr(token.rfind('.'));
    r = run({binPath("hull"), "--state-dir", n.path(), "node", "--join", url, "--token", otherCa, "--name", "intruder"});
    CHECK(r.status != 0);
    CHECK(r.err.find("does not match") != std::string::npos);
    CHECK(c.json({"node", "ls"}).asArray().size() == 1);
    // The right token, but the name of a node that is up: a second machine cannot take it over.
    r = run({binPath("hull"), "--state-dir", n.path(), "node", "--join", url, "--token", token, "--name", "n1"});
    CHECK(r.status != 0);
    CHECK(r.err.find("node \"n1\" is up and connected") != std::string::npos);
    CHECK(c.json({"node", "ls"}).asArray().size() == 1);

    // No token, a wrong token: 401.
    api::ClientOptions none;
    none.caPem = ca;
    auto res = api::httpsRequest("GET", url + "/v1/services", "", none);
    REQUIRE(res);
    CHECK(res->status == 401);
    none.bearerToken = "nope";
    res = api::httpsRequest("GET", url + "/v1/services", "", none);
    REQUIRE(res);
    CHECK(res->status == 401);

    // A node's certificate holds its session and nothing else.
    api::ClientOptions node;
    node.caPem = ca;
    node.certPem = readFileOr(kDir + "/n1/cluster/node.pem");
    node.keyPem = readFileOr(kDir + "/n1/cluster/node.key");
    REQUIRE(!node.certPem.empty());
    res = api::httpsRequest("GET", url + "/v1/services", "", node);
    REQUIRE(res);
    CHECK(res->status == 403);
    res = api::httpsRequest("POST", url + "/v1/nodes/n1/drain", "", node);
    REQUIRE(res);
    CHECK(res->status == 403);

    // A node certificate from another cluster's CA: refused at the handshake.
    auto foreignCa = api::makeCa("another cluster");
    REQUIRE(foreignCa);
    std::string foreignKey;
    auto csr = api::makeKeyAndCsr("n1", foreignKey);
    REQUIRE(csr);
    auto foreign = api::signNodeCsr(*foreignCa, *csr, "n1");
    REQUIRE(foreign);
    api::ClientOptions stranger;
    stranger.caPem = ca;
    stranger.certPem = *foreign;
    stranger.keyPem = foreignKey;
    res = api::httpsRequest("GET", url + "/v1/nodes", "", stranger);
    CHECK(!res);

    // Malformed and oversized requests; an unknown constraint syntax.
    api::ClientOptions adm;
    adm.caPem = ca;
    adm.bearerToken = json::stringOf(*admin, "token");
    res = api::httpsRequest("POST", url + "/v1/services", "{", adm);
    REQUIRE(res);
    CHECK(res->status == 400);
    res = api::httpsRequest("POST", url + "/v1/services", std::string(9 << 20, 'x'), adm);
    CHECK((!res || res->status == 413));
    auto bad = c.apply("odd", "placement: {constraints: [\"node.zone ~ a\"]}\n");
    CHECK(bad.status != 0);
    CHECK(bad.err.find("placement.constraints[0]") != std::string::npos);
    CHECK(c.json({"get", "services"}).asArray().empty());  // nothing half-applied
    CHECK(c.hull({"cluster", "status"}).status == 0);       // and the master serves on
}

TEST_CASE("cluster: hull logs reads a container's log from the node that holds it, with --tail and -f", "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c(2);
    REQUIRE(c.apply("ticker", "replicas: 1\ncommand: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done']\n"
                              "stopGracePeriod: 1s\n")
                .status == 0);
    REQUIRE(eventually([&] { return c.ready("ticker").size() == 1; }));
    Value ctr = c.ready("ticker")[0];
    const std::string id = json::stringOf(ctr, "id"), name = json::stringOf(ctr, "name");
    REQUIRE(eventually([&] { return c.hull({"logs", id}).out.find("tick 2\n") != std::string::npos; }));
    // Whole, from the start; by name and by a prefix of the id too.
    auto all = c.hull({"logs", id.substr(0, 12)});
    INFO(all.out << all.err);
    REQUIRE(all.status == 0);
    CHECK(all.out.rfind("tick 0\ntick 1\ntick 2\n", 0) == 0);
    CHECK(c.hull({"logs", name}).out.rfind("tick 0\n", 0) == 0);
    // The last line only.
    auto last = c.hull({"logs", "--tail", "1", id});
    CHECK(last.status == 0);
    CHECK(std::count(last.out.begin(), last.out.end(), '\n') == 1);
    CHECK(last.out.rfind("tick ", 0) == 0);
    // Followed: what it writes while we read (the client is stopped after 3 s).
    auto followed = run({"/usr/bin/timeout", "3", binPath("hull"), "--config", c.config(), "logs", "-f", "--tail", "0", id});
    CHECK(followed.status == 124);
    CHECK(std::count(followed.out.begin(), followed.out.end(), '\n') >= 3);
    CHECK(followed.out.rfind("tick ", 0) == 0);
    // What is not there is said so.
    auto none = c.hull({"logs", "no-such-container"});
    CHECK(none.status != 0);
    CHECK(none.err.find("no container \"no-such-container\"") != std::string::npos);
    // The master serves on after clients that went away mid-stream.
    CHECK(c.hull({"logs", "--tail", "1", id}).status == 0);
}

TEST_CASE("cluster: hull exec runs a command in a container on the node that holds it: output, stdin, a tty, the exit code",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c(2);
    REQUIRE(c.apply("shell", std::string("replicas: 1\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return c.ready("shell").size() == 1; }));
    Value ctr = c.ready("shell")[0];
    const std::string id = json::stringOf(ctr, "id"), name = json::stringOf(ctr, "name");
    auto hull = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {binPath("hull"), "--config", c.config()});
        return args;
    };
    // Its output, its stderr apart, its exit code as ours.
    auto hi = c.hull({"exec", id, "sh", "-c", "echo hi; echo oops >&2; exit 3"});
    INFO(hi.out << hi.err);
    CHECK(hi.status == 3);
    CHECK(hi.out == "hi\n");
    CHECK(hi.err == "oops\n");
    // Stdin relayed with -i (by name and by an id prefix), from a pipe and from a regular file.
    auto cat = run(hull({"exec", "-i", name, "cat"}), "data\nmore\n");
    CHECK(cat.status == 0);
    CHECK(cat.out == "data\nmore\n");
    TempDir d("hull-exec");
    writeFileOrThrow(d / "big", std::string(5 << 20, 'z'));  // 5 MiB: beyond the 1 MiB window, so credits must come back
    auto wc = run({"/bin/sh", "-c", "\"$0\" --config \"$1\" exec -i \"$2\" wc -c < \"$3\"", binPath("hull"), c.config(),
                   id.substr(0, 12), d / "big"});
    INFO(wc.err);
    CHECK(wc.status == 0);
    CHECK(wc.out.find(std::to_string(5 << 20)) != std::string::npos);
    // Without -i the command's stdin is empty.
    auto noIn = run(hull({"exec", id, "cat"}), "not read\n");
    CHECK(noIn.status == 0);
    CHECK(noIn.out.empty());
    // A tty: the command's own, though ours is none (said so on stderr).
    auto tty = c.hull({"exec", "-t", id, "tty"});
    INFO(tty.out << tty.err);
    CHECK(tty.status == 0);
    CHECK(tty.out.find("/dev/pts/") != std::string::npos);
    CHECK(tty.err.find("not a terminal") != std::string::npos);
    CHECK(c.hull({"exec", "-t", id, "sh", "-c", "exit 4"}).status == 4);
    // Killed by a signal: 128 + its number, as a shell says it.
    CHECK(c.hull({"exec", id, "sh", "-c", "kill -9 $$"}).status == 137);
    // A client that goes away (SIGTERM) takes its command with it.
    auto gone = run({"/usr/bin/timeout", "2", binPath("hull"), "--config", c.config(), "exec", id, "sleep", "4242"});
    CHECK(gone.status == 124);
    CHECK(eventually([&] {
        auto ps = c.hull({"exec", id, "ps"});
        return ps.status == 0 && ps.out.find("4242") == std::string::npos;
    }, 10000));
    // What cannot run is said so.
    auto none = c.hull({"exec", "no-such-container", "true"});
    CHECK(none.status == 1);
    CHECK(none.err.find("no container \"no-such-container\"") != std::string::npos);
    auto missing = c.hull({"exec", id, "/no/such/command"});
    INFO(missing.err);
    CHECK(missing.status != 0);
    CHECK(missing.err.find("/no/such/command") != std::string::npos);
    // The master and the node serve on.
    CHECK(c.hull({"exec", id, "true"}).status == 0);
}
