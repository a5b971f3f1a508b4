// The master's placements, over made-up nodes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <tuple>

#include "orchestrator/core/scheduler.hpp"

using namespace hull::orchestrator::core;

namespace {

constexpr int64_t kGiB = int64_t(1) << 30;
constexpr int64_t kMiB = int64_t(1) << 20;

NodeInfo node(const std::string& name, double cpus = 4, int64_t memory = 8 * kGiB,
              std::map<std::string, std::string> labels = {}, bool schedulable = true) {
    return NodeInfo{name, std::move(labels), schedulable, cpus, memory};
}

ServiceDemand service(const std::string& name, double cpus = 0, int64_t memory = 0) {
    ServiceDemand d;
    d.name = name;
    d.cpus = cpus;
    d.memory = memory;
    return d;
}

Constraint constraint(const std::string& text) {
    auto c = parseConstraint(text);
    REQUIRE(c);
    return *c;
}

std::vector<Want> want(const std::string& svc, int from, int to, std::vector<std::string> avoid = {}) {
    std::vector<Want> out;
    for (int slot = from; slot < to; ++slot) out.push_back({svc, slot, avoid});
    return out;
}

/// Replicas of SERVICE per node: the plan's and EXISTING's together.
std::map<std::string, int> perNode(const Plan& plan, const std::string& svc,
                                   const std::vector<Existing>& existing = {}) {
    std::map<std::string, int> out;
    for (const Placed& p : plan.placed)
        if (p.service == svc) ++out[p.node];
    for (const Existing& e : existing)
        if (e.service == svc) ++out[e.node];
    return out;
}

std::string describe(const Plan& plan) {
    std::string s;
    for (const Placed& p : plan.placed) s += p.service + "/" + std::to_string(p.slot) + "->" + p.node + " ";
    for (const Pending& p : plan.pending) s += p.service + "/" + std::to_string(p.slot) + ": " + p.reason + "; ";
    return s;
}

}  // namespace

TEST_CASE("spread: 6 replicas over 3 nodes give 2/2/2", "[scheduler]") {
    Plan plan = schedule({node("n1"), node("n2"), node("n3")}, {service("web", 0.1, 16 * kMiB)}, {},
                         want("web", 0, 6));
    INFO(describe(plan));
    CHECK(plan.pending.empty());
    CHECK(perNode(plan, "web") == std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}});
    // Slots in order, round robin by name while the nodes are equal.
    REQUIRE(plan.placed.size() == 6);
    CHECK(plan.placed[0] == Placed{"web", 0, "n1"});
    CHECK(plan.placed[1] == Placed{"web", 1, "n2"});
    CHECK(plan.placed[2] == Placed{"web", 2, "n3"});
}

TEST_CASE("spread over a label: zones a, a, b and 4 replicas give 2 in a and 2 in b", "[scheduler]") {
    ServiceDemand web = service("web");
    web.spreadLabel = "zone";
    std::vector<NodeInfo> nodes{node("n1", 4, 8 * kGiB, {{"zone", "a"}}), node("n2", 4, 8 * kGiB, {{"zone", "a"}}),
                                node("n3", 4, 8 * kGiB, {{"zone", "b"}})};
    Plan plan = schedule(nodes, {web}, {}, want("web", 0, 4));
    INFO(describe(plan));
    CHECK(plan.pending.empty());
    CHECK(perNode(plan, "web") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}, {"n3", 2}});

    // Nodes lacking the label form one domain of their own.
    nodes.push_back(node("n4"));
    nodes.push_back(node("n5"));
    plan = schedule(nodes, {web}, {}, want("web", 0, 6));
    INFO(describe(plan));
    CHECK(perNode(plan, "web") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}, {"n3", 2}, {"n4", 1}, {"n5", 1}});
}

TEST_CASE("spread breaks ties by the resources left, then by name", "[scheduler]") {
    // The api replica on n3 takes resources there, but does not count for web's spread.
    std::vector<NodeInfo> nodes{node("n1", 4, 8 * kGiB), node("n2", 8, 8 * kGiB), node("n3", 4, 8 * kGiB)};
    std::vector<ServiceDemand> services{service("web", 1, kGiB), service("api", 2, 4 * kGiB)};
    Plan plan = schedule(nodes, services, {{"api", 0, "n3"}}, want("web", 0, 3));
    INFO(describe(plan));
    REQUIRE(plan.placed.size() == 3);
    CHECK(plan.placed[0].node == "n2");  // most left: (8-1)/8 + 7/8
    CHECK(plan.placed[1].node == "n1");  // n1 and n3 have one web replica fewer than n2; n3 has less left
    CHECK(plan.placed[2].node == "n3");
}

TEST_CASE("binpack fills one node before the next", "[scheduler]") {
    ServiceDemand batch = service("batch", 1, kGiB);
    batch.strategy = ServiceDemand::Strategy::Binpack;
    Plan plan = schedule({node("n1", 2), node("n2", 2), node("n3", 2)}, {batch}, {}, want("batch", 0, 5));
    INFO(describe(plan));
    CHECK(plan.pending.empty());
    CHECK(perNode(plan, "batch") == std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 1}});
    REQUIRE(plan.placed.size() == 5);
    CHECK(plan.placed[0].node == "n1");
    CHECK(plan.placed[1].node == "n1");
    CHECK(plan.placed[2].node == "n2");

    // The most packed node first: a node half full from other replicas before an empty one.
    plan = schedule({node("n1", 4), node("n2", 4)}, {batch, service("other", 2, 0)}, {{"other", 0, "n2"}},
                    want("batch", 0, 3));
    INFO(describe(plan));
    CHECK(perNode(plan, "batch") == std::map<std::string, int>{{"n1", 1}, {"n2", 2}});
    CHECK(plan.placed[0].node == "n2");
}

TEST_CASE("constraints are honoured", "[scheduler]") {
    ServiceDemand web = service("web");
    web.constraints = {constraint("node.labels.zone == a"), constraint("node.name != n2")};
    std::vector<NodeInfo> nodes{node("n1", 4, 8 * kGiB, {{"zone", "a"}}), node("n2", 4, 8 * kGiB, {{"zone", "a"}}),
                                node("n3", 4, 8 * kGiB, {{"zone", "b"}}), node("n4", 4, 8 * kGiB, {{"zone", "a"}}),
                                node("n5")};
    Plan plan = schedule(nodes, {web}, {}, want("web", 0, 4));
    INFO(describe(plan));
    CHECK(plan.pending.empty());
    CHECK(perNode(plan, "web") == std::map<std::string, int>{{"n1", 2}, {"n4", 2}});
}

TEST_CASE("requests that fit only one node land there", "[scheduler]") {
    std::vector<NodeInfo> nodes{node("n1", 1, 8 * kGiB), node("n2", 8, 512 * kMiB), node("n3", 4, 4 * kGiB),
                                node("n4", 2, 8 * kGiB)};
    Plan plan = schedule(nodes, {service("big", 3, kGiB)}, {}, want("big", 0, 1));
    INFO(describe(plan));
    REQUIRE(plan.placed.size() == 1);
    CHECK(plan.placed[0].node == "n3");
}

TEST_CASE("what is placed earlier, in the same call or before, is subtracted", "[scheduler]") {
    // Two cpus hold two replicas of one cpu; the third has no room.
    Plan plan = schedule({node("n1", 2)}, {service("web", 1)}, {}, want("web", 0, 3));
    INFO(describe(plan));
    CHECK(plan.placed.size() == 2);
    REQUIRE(plan.pending.size() == 1);
    CHECK(plan.pending[0] == Pending{"web", 2, "no node fits: 1 node lacks 1 cpu (free 0)"});

    // Across services: api, placed first (by name), leaves web no memory on n1.
    plan = schedule({node("n1", 8, kGiB), node("n2", 8, 0)},
                    {service("web", 0, 512 * kMiB), service("api", 0, 768 * kMiB)}, {},
                    {{"web", 0, {}}, {"api", 0, {}}});
    INFO(describe(plan));
    CHECK(plan.placed == std::vector<Placed>{{"api", 0, "n1"}});
    CHECK(plan.pending ==
          std::vector<Pending>{{"web", 0, "no node fits: 2 nodes lack 512m of memory (most free 256m)"}});

    // Existing replicas hold their requests.
    plan = schedule({node("n1", 2), node("n2", 2)}, {service("web", 1.5)}, {{"web", 0, "n1"}}, want("web", 1, 3));
    INFO(describe(plan));
    CHECK(plan.placed == std::vector<Placed>{{"web", 1, "n2"}});
    CHECK(plan.pending == std::vector<Pending>{{"web", 2, "no node fits: 2 nodes lack 1.5 cpus (most free 0.5)"}});
}

TEST_CASE("a node with no capacity for a resource takes only replicas that request none of it", "[scheduler]") {
    std::vector<NodeInfo> nodes{node("n1", 0, 0)};
    Plan plan = schedule(nodes, {service("free"), service("cpu", 0.001), service("mem", 0, 1)}, {},
                         {{"free", 0, {}}, {"cpu", 0, {}}, {"mem", 0, {}}});
    INFO(describe(plan));
    CHECK(plan.placed == std::vector<Placed>{{"free", 0, "n1"}});
    CHECK(plan.pending == std::vector<Pending>{{"cpu", 0, "no node fits: 1 node lacks 0.001 cpus (free 0)"},
                                               {"mem", 0, "no node fits: 1 node lacks 1b of memory (free 0b)"}});
    // A replica requesting nothing fits even where others overcommitted the node.
    plan = schedule({node("n1", 1, kGiB)}, {service("free"), service("hog", 4, 4 * kGiB)}, {{"hog", 0, "n1"}},
                    want("free", 0, 2));
    CHECK(plan.placed.size() == 2);
}

TEST_CASE("host ports: another service's port on a node keeps a replica off it", "[scheduler]") {
    ServiceDemand web = service("web"), api = service("api");
    web.hostPorts = {"8080/tcp"};
    api.hostPorts = {"8080/tcp"};
    std::vector<NodeInfo> nodes{node("n1"), node("n2"), node("n3")};
    Plan plan = schedule(nodes, {web, api}, {{"api", 0, "n1"}}, want("web", 0, 4));
    INFO(describe(plan));
    CHECK(plan.pending.empty());
    CHECK(perNode(plan, "web") == std::map<std::string, int>{{"n2", 2}, {"n3", 2}});

    // Replicas of one service share the port: all on one node is fine.
    plan = schedule({node("n1")}, {web}, {{"web", 0, "n1"}}, want("web", 1, 3));
    CHECK(plan.placed.size() == 2);

    // A port placed earlier in the same call counts: api goes first (by name).
    ServiceDemand pinned = api;
    pinned.constraints = {constraint("node.name == n2")};
    std::vector<Want> wants = want("web", 0, 2);
    wants.push_back({"api", 0, {}});
    plan = schedule(nodes, {web, pinned}, {}, wants);
    INFO(describe(plan));
    CHECK(perNode(plan, "api") == std::map<std::string, int>{{"n2", 1}});
    CHECK(perNode(plan, "web") == std::map<std::string, int>{{"n1", 1}, {"n3", 1}});

    // Only the same protocol and port on overlapping addresses conflict.
    auto conflicts = [&](const std::string& mine, const std::string& theirs) {
        ServiceDemand a = service("a"), b = service("b");
        a.hostPorts = {mine};
        b.hostPorts = {"9999/tcp", theirs};
        Plan p = schedule({node("n1")}, {a, b}, {{"b", 0, "n1"}}, want("a", 0, 1));
        return p.placed.empty();
    };
    CHECK(conflicts("8080/tcp", "8080/tcp"));
    CHECK_FALSE(conflicts("8080/tcp", "8080/udp"));
    CHECK_FALSE(conflicts("8080/tcp", "8081/tcp"));
    CHECK(conflicts("127.0.0.1:8080/tcp", "8080/tcp"));
    CHECK(conflicts("8080/tcp", "10.0.0.1:8080/tcp"));
    CHECK(conflicts("0.0.0.0:8080/tcp", "10.0.0.1:8080/tcp"));
    CHECK(conflicts("10.0.0.1:8080/tcp", "10.0.0.1:8080/tcp"));
    CHECK_FALSE(conflicts("10.0.0.1:8080/tcp", "10.0.0.2:8080/tcp"));
    CHECK(conflicts("53/udp", "53/udp"));
    CHECK(conflicts("8080", "8080/tcp"));  // tcp unless said

    // The reason names the port.
    plan = schedule({node("n1"), node("n2")}, {web, api}, {{"api", 0, "n1"}, {"api", 1, "n2"}}, want("web", 0, 1));
    CHECK(plan.pending == std::vector<Pending>{
                              {"web", 0, "no node fits: 2 nodes have host port 8080/tcp taken by another service"}});
}

TEST_CASE("host ports of a service's port mappings", "[scheduler]") {
    auto ports = hostPorts({"8080:80", "127.0.0.1:5353:53/udp", "0.0.0.0:9090:90", "443/tcp"});
    REQUIRE(ports);
    CHECK(*ports == std::vector<std::string>{"8080/tcp", "127.0.0.1:5353/udp", "9090/tcp", "443/tcp"});
    CHECK_FALSE(hostPorts({"8080:80", "nonsense"}));

    // And a host port the scheduler cannot read keeps the service's wants pending.
    ServiceDemand web = service("web");
    web.hostPorts = {"8080/sctp"};
    Plan plan = schedule({node("n1")}, {web}, {}, want("web", 0, 1));
    CHECK(plan.pending ==
          std::vector<Pending>{{"web", 0, "host port \"8080/sctp\": protocol must be tcp or udp"}});
}

TEST_CASE("avoid keeps a replica off the nodes it names", "[scheduler]") {
    std::vector<NodeInfo> nodes{node("n1"), node("n2"), node("n3")};
    // Draining n1: its two replicas move, one to each of the others.
    std::vector<Existing> existing{{"web", 0, "n1"}, {"web", 1, "n1"}, {"web", 2, "n2"}, {"web", 3, "n3"}};
    Plan plan = schedule(nodes, {service("web")}, existing, want("web", 0, 2, {"n1"}));
    INFO(describe(plan));
    CHECK(plan.pending.empty());
    CHECK(perNode(plan, "web") == std::map<std::string, int>{{"n2", 1}, {"n3", 1}});

    // The best node avoided, the next best in the order is taken, per want.
    plan = schedule(nodes, {service("web")}, {}, {{"web", 0, {"n1"}}, {"web", 1, {}}, {"web", 2, {"n3", "n2"}}});
    INFO(describe(plan));
    CHECK(plan.placed == std::vector<Placed>{{"web", 0, "n2"}, {"web", 1, "n1"}, {"web", 2, "n1"}});

    // Every feasible node avoided: pending, and why.
    plan = schedule({node("n1"), node("n2", 4, 8 * kGiB, {}, false)}, {service("web")}, {}, want("web", 0, 1, {"n1"}));
    CHECK(plan.pending ==
          std::vector<Pending>{
              {"web", 0, "no node fits: 1 node is drained or down, 1 node is avoided by this replica"}});

    // A (service, slot) wanted twice is one want avoiding both lists.
    plan = schedule(nodes, {service("web")}, {}, {{"web", 0, {"n1"}}, {"web", 0, {"n2"}}});
    CHECK(plan.placed == std::vector<Placed>{{"web", 0, "n3"}});
    CHECK(plan.pending.empty());
}

TEST_CASE("wants that fit nowhere are pending, with reasons users understand", "[scheduler]") {
    ServiceDemand web = service("web", 2, 0);
    web.constraints = {constraint("node.labels.zone == c")};
    std::vector<NodeInfo> nodes{
        node("n1", 4, 8 * kGiB, {{"zone", "a"}}),       node("n2", 4, 8 * kGiB, {{"zone", "a"}}),
        node("n3", 4, 8 * kGiB, {{"zone", "b"}}),       node("n4", 0.5, 8 * kGiB, {{"zone", "c"}}),
        node("n5", 4, 8 * kGiB, {{"zone", "c"}}, false),
    };
    Plan plan = schedule(nodes, {web}, {}, want("web", 0, 2));
    CHECK(plan.placed.empty());
    CHECK(plan.pending == std::vector<Pending>{
                              {"web", 0,
                               "no node fits: 3 nodes fail constraint \"node.labels.zone == c\", 1 node lacks 2 cpus "
                               "(free 0.5), 1 node is drained or down"},
                              {"web", 1,
                               "no node fits: 3 nodes fail constraint \"node.labels.zone == c\", 1 node lacks 2 cpus "
                               "(free 0.5), 1 node is drained or down"},
                          });

    // Each node counts under the first filter it fails, the constraints in their order.
    web = service("web", 0, 64 * kMiB);
    web.constraints = {constraint("node.name != n1"), constraint("node.labels.zone != b")};
    plan = schedule({node("n1", 4, kGiB, {{"zone", "b"}}), node("n2", 4, kGiB, {{"zone", "b"}}),
                     node("n3", 4, 32 * kMiB), node("n4", 4, 48 * kMiB)},
                    {web}, {}, want("web", 0, 1));
    CHECK(plan.pending ==
          std::vector<Pending>{{"web", 0,
                                "no node fits: 1 node fails constraint \"node.name != n1\", 1 node fails constraint "
                                "\"node.labels.zone != b\", 2 nodes lack 64m of memory (most free 48m)"}});

    plan = schedule({}, {web}, {}, want("web", 0, 1));
    CHECK(plan.pending == std::vector<Pending>{{"web", 0, "no node fits: there are no nodes"}});

    plan = schedule({node("n1")}, {web}, {}, {{"ghost", 3, {}}});
    CHECK(plan.pending == std::vector<Pending>{{"ghost", 3, "unknown service"}});
}

TEST_CASE("existing placements count for the spread", "[scheduler]") {
    std::vector<NodeInfo> nodes{node("n1"), node("n2"), node("n3")};
    std::vector<Existing> existing{{"web", 0, "n1"}, {"web", 1, "n1"}, {"web", 2, "n2"},
                                   {"web", 3, "n2"}, {"web", 4, "n3"}, {"api", 0, "n3"}};
    Plan plan = schedule(nodes, {service("web"), service("api")}, existing, want("web", 5, 6));
    CHECK(plan.placed == std::vector<Placed>{{"web", 5, "n3"}});

    // A replica that is wanted again is moving: it counts where it goes, not where it was.
    plan = schedule(nodes, {service("web")}, {{"web", 0, "n1"}, {"web", 1, "n2"}, {"web", 2, "n2"}},
                    {{"web", 2, {"n2"}}});
    CHECK(plan.placed == std::vector<Placed>{{"web", 2, "n3"}});

    // Over a label: the zone with fewer replicas, whatever its node count.
    ServiceDemand web = service("web");
    web.spreadLabel = "zone";
    nodes = {node("a1", 4, 8 * kGiB, {{"zone", "a"}}), node("a2", 4, 8 * kGiB, {{"zone", "a"}}),
             node("b1", 4, 8 * kGiB, {{"zone", "b"}})};
    plan = schedule(nodes, {web}, {{"web", 0, "a1"}, {"web", 1, "b1"}, {"web", 2, "b1"}}, want("web", 3, 4));
    CHECK(plan.placed == std::vector<Placed>{{"web", 3, "a2"}});
}

TEST_CASE("the plan does not depend on the order of the input", "[scheduler]") {
    std::mt19937 rng(42);
    std::vector<NodeInfo> nodes;
    for (int i = 0; i < 60; ++i) {
        std::map<std::string, std::string> labels;
        if (i % 7) labels["zone"] = std::string(1, char('a' + i % 3));
        // Equal capacities on many nodes, so ties must break by name.
        nodes.push_back(node("n" + std::to_string(i), 1 + i % 4, (1 + i % 3) * kGiB, labels, i % 11 != 0));
    }
    std::vector<ServiceDemand> services;
    std::vector<Want> wants;
    std::vector<Existing> existing;
    for (int s = 0; s < 8; ++s) {
        ServiceDemand d = service("svc" + std::to_string(s), 0.1 * (s % 3), (s % 4) * 64 * kMiB);
        if (s % 2) d.spreadLabel = "zone";
        if (s == 3) d.strategy = ServiceDemand::Strategy::Binpack;
        if (s == 5) d.constraints = {constraint("node.labels.zone != c")};
        if (s % 4 == 1) d.hostPorts = {"8080/tcp"};
        services.push_back(d);
        for (int slot = 0; slot < 40; ++slot) {
            if (slot % 5 == 0) existing.push_back({d.name, slot, "n" + std::to_string(rng() % 60)});
            if (slot % 5 != 0 || slot % 10 == 0) {
                std::vector<std::string> avoid;
                if (slot % 6 == 0) avoid.push_back("n" + std::to_string(rng() % 60));
                wants.push_back({d.name, slot, avoid});
            }
        }
    }
    const Plan reference = schedule(nodes, services, existing, wants);
    CHECK(reference.placed.size() > 200);
    for (int round = 0; round < 5; ++round) {
        std::shuffle(nodes.begin(), nodes.end(), rng);
        std::shuffle(services.begin(), services.end(), rng);
        std::shuffle(existing.begin(), existing.end(), rng);
        std::shuffle(wants.begin(), wants.end(), rng);
        Plan again = schedule(nodes, services, existing, wants);
        CHECK(again.placed == reference.placed);
        CHECK(again.pending == reference.pending);
    }
}

namespace {

/// The rules written the slow, obvious way (every node scored for every want),
/// to check the incremental structures against. Host ports are compared as
/// text: the random cases use no addresses.
Plan naiveSchedule(std::vector<NodeInfo> nodes, const std::vector<ServiceDemand>& services,
                   const std::vector<Existing>& existing, std::vector<Want> wants) {
    auto micro = [](double cpus) { return std::llround(cpus * 1e6); };
    std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    std::map<std::string, const ServiceDemand*> byName;
    for (const auto& d : services) byName.emplace(d.name, &d);
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < nodes.size(); ++i) index[nodes[i].name] = i;
    std::vector<int64_t> cpu(nodes.size()), mem(nodes.size());
    std::vector<std::map<std::string, std::set<std::string>>> ports(nodes.size());  // port -> services
    std::map<std::pair<std::string, size_t>, int64_t> count;                       // (service, node)
    std::map<std::pair<std::string, int>, std::set<std::string>> wanted;
    for (const Want& w : wants) wanted[{w.service, w.slot}].insert(w.avoid.begin(), w.avoid.end());
    auto hold = [&](size_t n, const ServiceDemand& d) {
        cpu[n] += micro(d.cpus);
        mem[n] += d.memory;
        for (const auto& p : d.hostPorts) ports[n][p].insert(d.name);
    };
    for (const Existing& e : existing) {
        if (!index.contains(e.node) || !byName.contains(e.service)) continue;
        hold(index[e.node], *byName[e.service]);
        if (!wanted.contains({e.service, e.slot})) ++count[{e.service, index[e.node]}];
    }
    Plan plan;
    for (const auto& [w, avoid] : wanted) {
        const ServiceDemand& d = *byName.at(w.first);
        auto domainOf = [&](size_t n) {
            auto it = nodes[n].labels.find(d.spreadLabel);
            return d.spreadLabel.empty() ? nodes[n].name : it == nodes[n].labels.end() ? "" : it->second;
        };
        std::map<std::string, int64_t> domainCount;
        for (size_t n = 0; n < nodes.size(); ++n) domainCount[domainOf(n)] += count[{d.name, n}];
        std::optional<std::tuple<int64_t, int64_t, double, size_t>> best;
        for (size_t n = 0; n < nodes.size(); ++n) {
            const NodeInfo& node = nodes[n];
            if (!node.schedulable || avoid.contains(node.name)) continue;
            auto fails = [&](const Constraint& c) { return !matches(c, node); };
            if (std::any_of(d.constraints.begin(), d.constraints.end(), fails)) continue;
            if (std::any_of(d.hostPorts.begin(), d.hostPorts.end(), [&](const std::string& p) {
                    auto it = ports[n].find(p);
                    return it != ports[n].end() && (it->second.size() > 1 || !it->second.contains(d.name));
                }))
                continue;
            const int64_t capCpu = micro(node.cpus), reqCpu = micro(d.cpus);
            if (reqCpu > 0 && reqCpu > capCpu - cpu[n]) continue;
            if (d.memory > 0 && d.memory > node.memory - mem[n]) continue;
            double left = 0;
            if (capCpu > 0) left += double(capCpu - cpu[n] - reqCpu) / double(capCpu);
            if (node.memory > 0) left += double(node.memory - mem[n] - d.memory) / double(node.memory);
            auto key = d.strategy == ServiceDemand::Strategy::Binpack
                           ? std::tuple<int64_t, int64_t, double, size_t>(0, 0, left, n)
                           : std::tuple<int64_t, int64_t, double, size_t>(domainCount[domainOf(n)],
                                                                         count[{d.name, n}], -left, n);
            if (!best || key < *best) best = key;
        }
        if (!best) {
            plan.pending.push_back({w.first, w.second, ""});
            continue;
        }
        size_t n = std::get<3>(*best);
        hold(n, d);
        ++count[{d.name, n}];
        plan.placed.push_back({w.first, w.second, nodes[n].name});
    }
    return plan;
}

}  // namespace

TEST_CASE("the plan is the one the rules give, scored node by node", "[scheduler]") {
    for (unsigned seed = 1; seed <= 200; ++seed) {
        std::mt19937 rng(seed);
        auto pick = [&](int n) { return int(rng() % unsigned(n)); };
        std::vector<NodeInfo> nodes;
        const int nodeCount = 1 + pick(25);
        for (int i = 0; i < nodeCount; ++i) {
            std::map<std::string, std::string> labels;
            if (pick(4)) labels["zone"] = std::string(1, char('a' + pick(3)));
            if (pick(2)) labels["ssd"] = "true";
            nodes.push_back(node("n" + std::to_string(i), pick(5) * 0.5, pick(5) * 256 * kMiB, labels, pick(8) != 0));
        }
        std::vector<ServiceDemand> services;
        std::vector<Want> wants;
        std::vector<Existing> existing;
        const int serviceCount = 1 + pick(6);
        for (int s = 0; s < serviceCount; ++s) {
            ServiceDemand d = service("s" + std::to_string(s), pick(4) * 0.25, pick(3) * 128 * kMiB);
            if (pick(2)) d.spreadLabel = pick(2) ? "zone" : "ssd";
            if (pick(3) == 0) d.strategy = ServiceDemand::Strategy::Binpack;
            if (pick(3) == 0)
                d.constraints.push_back(constraint(pick(2) ? "node.labels.ssd == true" : "node.labels.zone != b"));
            if (pick(3) == 0) d.hostPorts = {pick(2) ? "80/tcp" : "53/udp"};
            services.push_back(d);
            const int slots = pick(30);
            for (int slot = 0; slot < slots; ++slot) {
                if (pick(3) == 0) existing.push_back({d.name, slot, "n" + std::to_string(pick(nodeCount))});
                if (pick(3) != 0) {
                    std::vector<std::string> avoid;
                    for (int a = pick(4) - 1; a > 0; --a) avoid.push_back("n" + std::to_string(pick(nodeCount)));
                    wants.push_back({d.name, slot, avoid});
                }
            }
        }
        Plan fast = schedule(nodes, services, existing, wants);
        Plan slow = naiveSchedule(nodes, services, existing, wants);
        INFO("seed " << seed << ": " << describe(fast));
        CHECK(fast.placed == slow.placed);
        REQUIRE(fast.pending.size() == slow.pending.size());
        for (size_t i = 0; i < fast.pending.size(); ++i) {
            CHECK(fast.pending[i].service == slow.pending[i].service);
            CHECK(fast.pending[i].slot == slow.pending[i].slot);
            CHECK(fast.pending[i].reason.starts_with("no node fits: "));
        }
    }
}

TEST_CASE("a large cluster: 10,000 replicas over 1,000 nodes spread evenly", "[scheduler]") {
    std::vector<NodeInfo> nodes;
    for (int i = 0; i < 1000; ++i)
        nodes.push_back(
            node("sim-" + std::to_string(i), 2 + i % 8, (4 + i % 5) * kGiB, {{"zone", std::to_string(i % 3)}}));
    ServiceDemand web = service("web", 0.05, 32 * kMiB);
    ServiceDemand zoned = web;
    zoned.name = "zoned";
    zoned.spreadLabel = "zone";
    Plan plan = schedule(nodes, {web, zoned}, {}, [] {
        auto w = want("web", 0, 10'000);
        auto z = want("zoned", 0, 10'000);
        w.insert(w.end(), z.begin(), z.end());
        return w;
    }());
    CHECK(plan.pending.empty());
    CHECK(plan.placed.size() == 20'000);

    auto counts = perNode(plan, "web");
    REQUIRE(counts.size() == 1000);
    auto [lo, hi] = std::minmax_element(counts.begin(), counts.end(),
                                        [](const auto& a, const auto& b) { return a.second < b.second; });
    CHECK(hi->second - lo->second <= 1);

    std::map<std::string, int> zones;
    for (const Placed& p : plan.placed)
        if (p.service == "zoned") ++zones[std::to_string(std::stoi(p.node.substr(4)) % 3)];
    REQUIRE(zones.size() == 3);
    auto [zlo, zhi] = std::minmax_element(zones.begin(), zones.end(),
                                          [](const auto& a, const auto& b) { return a.second < b.second; });
    CHECK(zhi->second - zlo->second <= 1);
}

TEST_CASE("scheduler benchmark: 100,000 replicas of 100 services over 1,000 nodes", "[.bench]") {
    std::vector<NodeInfo> nodes;
    for (int i = 0; i < 1000; ++i)
        nodes.push_back(node("sim-" + std::to_string(i), 64, 256 * kGiB,
                             {{"zone", std::to_string(i % 5)}, {"sim", "true"}}, i % 97 != 0));
    std::vector<ServiceDemand> services;
    std::vector<Want> wants;
    for (int s = 0; s < 100; ++s) {
        ServiceDemand d = service("svc-" + std::to_string(s), 0.01 * (1 + s % 4), (8 + s % 16) * kMiB);
        if (s % 3 == 1) d.spreadLabel = "zone";
        if (s % 10 == 9) d.strategy = ServiceDemand::Strategy::Binpack;
        if (s % 4 == 0) d.constraints = {constraint("node.labels.sim == true"), constraint("node.labels.zone != 4")};
        if (s % 5 == 0) d.hostPorts = {std::to_string(8000 + s) + "/tcp"};
        services.push_back(d);
        for (int slot = 0; slot < 1000; ++slot)
            wants.push_back({d.name, slot, slot % 100 == 0 ? std::vector<std::string>{"sim-1"}
                                                           : std::vector<std::string>{}});
    }
    // The first round pays for fresh memory; the later ones show the steady cost.
    Plan plan;
    for (int round = 0; round < 3; ++round) {
        auto start = std::chrono::steady_clock::now();
        plan = schedule(nodes, services, {}, wants);
        auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        std::printf("scheduler: %zu placed, %zu pending, 100 services over 1000 nodes in %.1f ms\n",
                    plan.placed.size(), plan.pending.size(), ms);
    }
    CHECK(plan.placed.size() == 100'000);
}
