// Cluster networking as a user sees it, on scripts/cluster hosts with real
// agents and containers: the master leases each node a subnet of the cluster
// CIDR and manages the VXLAN overlay between them.
#include <catch2/catch.hpp>

#include "orchestrator/master/cluster_support.hpp"

using namespace hull;
using namespace hull::test;
using namespace hull::test::cluster;
using json::Value;

namespace {

/// "10.96.0.2\n" from what httpd gives CGI, "[::ffff:10.96.0.2]\n" (it listens dual-stack).
std::string plainAddress(std::string s) {
    if (s.rfind("[::ffff:", 0) == 0) s = s.substr(8);
    if (auto b = s.find(']'); b != std::string::npos) s.erase(b, 1);
    return s;
}

/// A web server whose /cgi-bin/ip answers with the client's address as it arrived.
const char* kWhoAmI =
    "command: [sh, -c, 'mkdir -p /www/cgi-bin && printf \"#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho "
    "\\$REMOTE_ADDR\\n\" > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www']\n"
    "stopGracePeriod: 1s\n";

/// The one ready container of SERVICE.
Value only(const Cluster& c, const std::string& service) {
    auto r = c.ready(service);
    REQUIRE(r.size() == 1);
    return r[0];
}

}  // namespace

TEST_CASE("cluster: nodes get subnets of the cluster CIDR, and a container on n1 reaches one on n3 by address, "
          "unmasqueraded, over the overlay",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    REQUIRE(c.apply("server", std::string("replicas: 1\nplacement: {constraints: [\"node.name == n3\"]}\n") + kWhoAmI).status == 0);
    REQUIRE(c.apply("client", std::string("replicas: 1\nplacement: {constraints: [\"node.name == n1\"]}\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return c.ready("server").size() == 1 && c.ready("client").size() == 1; }));
    Value server = only(c, "server"), client = only(c, "client");
    const std::string serverIp = json::stringOf(server, "ip"), clientIp = json::stringOf(client, "ip");
    INFO("server " << serverIp << " on n3, client " << clientIp << " on n1");
    // Each in its node's lease of 10.96.0.0/12, the two different.
    CHECK(serverIp.rfind("10.96.", 0) == 0);
    CHECK(clientIp.rfind("10.96.", 0) == 0);
    CHECK(serverIp.substr(0, serverIp.rfind('.')) != clientIp.substr(0, clientIp.rfind('.')));
    // The client's own address arrives: no masquerade between nodes.
    RunResult got;
    REQUIRE(eventually([&] {
        // (busybox's wget -T crashes: timeout bounds it instead)
        got = c.hull({"exec", json::stringOf(client, "id"), "timeout", "3", "wget", "-q", "-O-", "http://" + serverIp + "/cgi-bin/ip"});
        return got.status == 0;
    }, 15000));
    INFO(got.out << got.err);
    CHECK(plainAddress(got.out) == clientIp + "\n");

    // A node that leaves: once it is down and removed, the others have no
    // VXLAN peer, route or neighbour for it, and its lease is free.
    std::string n2Subnet;
    for (const auto& line : Cluster::split(run({"/usr/sbin/ip", "netns", "exec", kName + "-n1", "/usr/sbin/ip", "route"}).out))
        if (line.find("dev hull.vx") != std::string::npos) n2Subnet += line + "\n";
    INFO(n2Subnet);
    CHECK(!n2Subnet.empty());  // routes to n2's and n3's subnets
    REQUIRE(clusterScript({"kill", "n2"}).status == 0);
    REQUIRE(eventually([&] { return c.node("n2", "status") == "down"; }));
    auto rm = c.hull({"node", "rm", "n2"});
    INFO(rm.out << rm.err);
    REQUIRE(rm.status == 0);
    REQUIRE(eventually([&] {
        auto routes = run({"/usr/sbin/ip", "netns", "exec", kName + "-n1", "/usr/sbin/ip", "route"}).out;
        size_t vx = 0;
        for (const auto& line : Cluster::split(routes)) vx += line.find("dev hull.vx") != std::string::npos;
        auto fdb = run({"/usr/sbin/ip", "netns", "exec", kName + "-n1", "/usr/sbin/bridge", "fdb", "show", "dev", "hull.vx"}).out;
        size_t fdbs = 0;
        for (const auto& line : Cluster::split(fdb)) fdbs += line.find(" dst ") != std::string::npos;
        auto neigh = run({"/usr/sbin/ip", "netns", "exec", kName + "-n1", "/usr/sbin/ip", "neigh", "show", "dev", "hull.vx"}).out;
        size_t neighs = 0;
        for (const auto& line : Cluster::split(neigh)) neighs += line.find("PERMANENT") != std::string::npos;
        return vx == 1 && fdbs == 1 && neighs == 1;  // n3 only
    }));
    CHECK(c.json({"node", "ls"}).asArray().size() == 2);
    // Still reachable after n2 left.
    got = c.hull({"exec", json::stringOf(client, "id"), "timeout", "3", "wget", "-q", "-O-", "http://" + serverIp + "/cgi-bin/ip"});
    CHECK(plainAddress(got.out) == clientIp + "\n");
}

TEST_CASE("cluster: a service's VIP and its names reach its replicas on other nodes, and its port published on a node "
          "without a replica answers from them all (the routing mesh)",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    const std::string web =
        "replicas: 2\nplacement: {constraints: [\"node.name != n2\"]}\nports: [\"8080:80\"]\n"
        "command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']\nstopGracePeriod: 1s\n";
    REQUIRE(c.apply("web", web).status == 0);
    REQUIRE(c.apply("client", std::string("replicas: 1\nplacement: {constraints: [\"node.name == n2\"]}\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 2 && c.ready("client").size() == 1; }));
    std::string vip;
    const Value services = c.json({"get", "services"});  // kept: a range-for over a temporary's member dangles
    for (const auto& s : services.asArray())
        if (json::stringOf(s, "name") == "web") vip = json::stringOf(s, "vip");
    REQUIRE(vip.rfind("10.112.", 0) == 0);
    const std::string client = json::stringOf(only(c, "client"), "id");
    // From n2, which runs no web replica: the VIP answers, from both replicas.
    std::set<std::string> seen;
    REQUIRE(eventually([&] {
        auto r = c.hull({"exec", client, "sh", "-c",
                         "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O- http://" + vip + "/; done"});
        for (const auto& line : Cluster::split(r.out))
            if (!line.empty()) seen.insert(line);
        return seen.size() == 2;
    }, 20000));

    // Names, from the node's resolver: web (and web.hull) is the VIP, tasks.web the ready replicas.
    std::vector<std::string> replicaIps;
    for (const auto& r : c.ready("web")) replicaIps.push_back(json::stringOf(r, "ip"));
    RunResult ns;
    REQUIRE(eventually([&] {
        ns = c.hull({"exec", client, "nslookup", "-type=a", "tasks.web"});
        return ns.out.find(replicaIps[0]) != std::string::npos && ns.out.find(replicaIps[1]) != std::string::npos;
    }, 10000));
    for (const char* name : {"web", "web.hull"}) {
        ns = c.hull({"exec", client, "nslookup", "-type=a", name});
        INFO(name << ": " << ns.out << ns.err);
        CHECK(ns.out.find("Address: " + vip) != std::string::npos);
    }
    auto byName = c.hull({"exec", client, "timeout", "3", "wget", "-q", "-O-", "http://web/"});
    CHECK(byName.status == 0);
    CHECK(seen.count(byName.out.substr(0, byName.out.find('\n'))) == 1);

    // The routing mesh: n2's address, port 8080, from outside the cluster (this host's end of the underlay).
    seen.clear();
    const std::string n2 = c.node("n2", "address");
    REQUIRE(!n2.empty());
    REQUIRE(eventually([&] {
        return run({"/usr/bin/timeout", "3", "/usr/bin/busybox", "wget", "-q", "-O-", "http://" + n2 + ":8080/"}).status == 0;
    }, 20000));
    std::map<std::string, int> answers;
    int failed = 0;
    for (int i = 0; i < 300; ++i) {
        auto r = run({"/usr/bin/timeout", "3", "/usr/bin/busybox", "wget", "-q", "-O-", "http://" + n2 + ":8080/"});
        if (r.status != 0) ++failed;
        else ++answers[r.out];
    }
    INFO(failed << " failed");
    CHECK(failed == 0);
    CHECK(answers.size() == 2);  // from both replicas, neither on n2

    // publishMode host: only the node that runs a replica publishes the port,
    // and the client's own address reaches it (nothing masqueraded).
    REQUIRE(c.apply("direct", std::string("replicas: 1\nplacement: {constraints: [\"node.name == n3\"]}\nports: [\"8081:80\"]\n"
                                          "publishMode: host\n") + kWhoAmI)
                .status == 0);
    REQUIRE(eventually([&] { return c.ready("direct").size() == 1; }));
    const std::string n1 = c.node("n1", "address"), n3 = c.node("n3", "address");
    RunResult direct;
    REQUIRE(eventually([&] {
        direct = run({"/usr/bin/timeout", "3", "/usr/bin/busybox", "wget", "-q", "-O-", "http://" + n3 + ":8081/cgi-bin/ip"});
        return direct.status == 0;
    }, 20000));
    CHECK(plainAddress(direct.out) == kNet + ".254\n");  // this host's end of the underlay
    CHECK(run({"/usr/bin/timeout", "3", "/usr/bin/busybox", "wget", "-q", "-O-", "http://" + n1 + ":8081/cgi-bin/ip"}).status != 0);

    // A replica that goes leaves the name.
    REQUIRE(c.hull({"scale", "web", "1"}).status == 0);
    CHECK(eventually([&] {
        ns = c.hull({"exec", client, "nslookup", "-type=a", "tasks.web"});
        return ns.out.find(replicaIps[0]) != std::string::npos && ns.out.find(replicaIps[1]) == std::string::npos;
    }, 10000));
}

TEST_CASE("cluster: a killed node's replicas leave the VIP, the mesh's ports and the names", "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    const std::string web =
        "replicas: 2\nplacement: {constraints: [\"node.name != n2\"]}\nports: [\"8080:80\"]\nfailover: {after: 60s}\n"
        "command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']\nstopGracePeriod: 1s\n";
    REQUIRE(c.apply("web", web).status == 0);
    REQUIRE(c.apply("client", std::string("replicas: 1\nplacement: {constraints: [\"node.name == n2\"]}\n") + kSleep).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 2 && c.ready("client").size() == 1; }));
    const std::string client = json::stringOf(only(c, "client"), "id");
    std::string onN1, onN3;
    for (const auto& r : c.ready("web"))
        (json::stringOf(r, "node") == "n1" ? onN1 : onN3) = json::stringOf(r, "ip");
    REQUIRE(!onN1.empty());
    REQUIRE(!onN3.empty());
    RunResult ns;
    REQUIRE(eventually([&] {
        ns = c.hull({"exec", client, "nslookup", "-type=a", "tasks.web"});
        return ns.out.find(onN3) != std::string::npos;
    }, 10000));
    // n3 dies; failover.after 60s keeps its slot placed there: nothing replaces it,
    // so what answers below is n1's replica alone.
    REQUIRE(clusterScript({"kill", "n3"}).status == 0);
    CHECK(eventually([&] {
        ns = c.hull({"exec", client, "nslookup", "-type=a", "tasks.web"});
        return ns.out.find(onN3) == std::string::npos && ns.out.find(onN1) != std::string::npos;
    }, 10000));
    // Every request through the VIP, and through n2's published port, answers (from n1).
    auto r = c.hull({"exec", client, "sh", "-c",
                     "ok=0; for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O /dev/null http://web/ && ok=$((ok+1)); "
                     "done; echo $ok"});
    INFO(r.out << r.err);
    CHECK(r.out == "10\n");
    const std::string n2 = c.node("n2", "address");
    int failed = 0;
    for (int i = 0; i < 20; ++i)
        failed += run({"/usr/bin/timeout", "3", "/usr/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://" + n2 + ":8080/"}).status != 0;
    CHECK(failed == 0);
    // Nothing in the other nodes' nftables names it any more: no VIP or port
    // backend, no network member.
    for (const char* node : {"n1", "n2"})
        CHECK(eventually([&] {
            auto rules = run({"/usr/sbin/ip", "netns", "exec", kName + "-" + node, "/usr/sbin/nft", "list", "ruleset"});
            return rules.status == 0 && rules.out.find(onN3) == std::string::npos && rules.out.find(onN1) != std::string::npos;
        }, 10000));
}

TEST_CASE("cluster: networks keep services apart: containers with a network in common reach each other, on one node "
          "and across nodes, by address and by name, and those with none cannot, either way",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    auto on = [](const std::string& node, const std::string& networks) {
        return "replicas: 1\nplacement: {constraints: [\"node.name == " + node + "\"]}\n" + networks + kWhoAmI;
    };
    // front: edge (n1), web (n2). back: web (n2), api (n3). The default network: lone (n1), lone2 (n3).
    REQUIRE(c.apply("edge", on("n1", "networks: [front]\n")).status == 0);
    REQUIRE(c.apply("web", on("n2", "networks: [front, back]\n")).status == 0);
    REQUIRE(c.apply("api", on("n3", "networks: [back]\n")).status == 0);
    REQUIRE(c.apply("lone", on("n1", "")).status == 0);
    REQUIRE(c.apply("lone2", on("n3", "")).status == 0);
    REQUIRE(eventually([&] {
        for (const char* s : {"edge", "web", "api", "lone", "lone2"})
            if (c.ready(s).size() != 1) return false;
        return true;
    }));
    std::map<std::string, std::string> id, ip;
    for (const char* s : {"edge", "web", "api", "lone", "lone2"}) {
        Value v = only(c, s);
        id[s] = json::stringOf(v, "id");
        ip[s] = json::stringOf(v, "ip");
    }
    // What FROM gets of TARGET's /cgi-bin/ip (TARGET: an address or a name): the caller's address as it arrived.
    auto get = [&](const std::string& from, const std::string& target) {
        auto r = c.hull({"exec", id[from], "timeout", "2", "wget", "-q", "-O-", "http://" + target + "/cgi-bin/ip"});
        return r.status == 0 ? plainAddress(r.out) : std::string();
    };
    auto reaches = [&](const std::string& from, const std::string& target) {
        return eventually([&] { return get(from, target) == ip[from] + "\n"; }, 15000);
    };
    // A network in common: across nodes, both ways, by address, by VIP name and by tasks.NAME.
    CHECK(reaches("edge", ip["web"]));
    CHECK(reaches("web", ip["edge"]));
    CHECK(reaches("edge", "web"));
    CHECK(reaches("edge", "tasks.web"));
    CHECK(reaches("web", ip["api"]));
    CHECK(reaches("api", "web"));
    // The default network holds the services that name none.
    CHECK(reaches("lone", ip["lone2"]));
    CHECK(reaches("lone2", "lone"));
    // None in common, with each end shown able to reach others above: across
    // nodes (edge and api), on one node over its bridge (edge and lone), both
    // ways, by address and through the VIP.
    CHECK(get("edge", ip["api"]).empty());
    CHECK(get("api", ip["edge"]).empty());
    CHECK(get("edge", "api").empty());
    CHECK(get("lone", ip["edge"]).empty());
    CHECK(get("edge", ip["lone"]).empty());
    CHECK(get("lone", "edge").empty());
    CHECK(get("lone2", ip["api"]).empty());
    // Changing a service's networks replaces its containers in the new ones: api joins front.
    REQUIRE(c.apply("api", on("n3", "networks: [back, front]\n")).status == 0);
    REQUIRE(eventually([&] {
        auto r = c.ready("api");
        return r.size() == 1 && json::stringOf(r[0], "id") != id["api"];
    }));
    id["api"] = json::stringOf(only(c, "api"), "id");
    ip["api"] = json::stringOf(only(c, "api"), "ip");
    CHECK(reaches("edge", ip["api"]));
    CHECK(reaches("api", ip["edge"]));
}

TEST_CASE("cluster: publishMode local: a node with a ready replica sends its connections there, one without any to all",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c;
    const std::string web =
        "replicas: 2\nplacement: {constraints: [\"node.name != n2\"]}\nports: [\"8080:80\"]\npublishMode: local\n"
        "command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']\nstopGracePeriod: 1s\n";
    REQUIRE(c.apply("web", web).status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 2; }));
    // Who answers on NODE's published port, over 20 requests (host name -> count); -1 failures.
    auto answers = [&](const std::string& node) {
        std::map<std::string, int> out;
        const std::string address = c.node(node, "address");
        for (int i = 0; i < 20; ++i) {
            auto r = run({"/usr/bin/timeout", "3", "/usr/bin/busybox", "wget", "-q", "-O-", "http://" + address + ":8080/"});
            ++out[r.status == 0 ? r.out.substr(0, r.out.find('\n')) : std::string("-1")];
        }
        return out;
    };
    std::map<std::string, int> n1, n2;
    // Once n2 publishes both replicas (the master's word reached every node), n1 keeps to its own.
    REQUIRE(eventually([&] { return (n2 = answers("n2")).size() == 2 && !n2.count("-1"); }, 20000));
    n1 = answers("n1");
    INFO("n1 answered by " << n1.size() << " replica(s)");
    CHECK(n1.size() == 1);
    CHECK(!n1.count("-1"));
    const std::string local = n1.begin()->first;
    CHECK(n2.count(local) == 1);
    // And it is the replica that runs on n1.
    for (const auto& r : c.ready("web"))
        if (json::stringOf(r, "node") == "n1") {
            auto h = c.hull({"exec", json::stringOf(r, "id"), "hostname"});
            CHECK(h.out == local + "\n");
        }
}
