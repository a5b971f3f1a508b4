// The master's model and its round, without a network: node sessions are
// recording stand-ins for the WebSocket, the store is the real SQLite one in a
// temp dir, and the clock is made up.
#include <catch2/catch.hpp>

#include <functional>

#include "orchestrator/api/status_report.hpp"
#include "orchestrator/master/cluster.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::orchestrator;
using namespace hull::orchestrator::master;
using hull::test::TempDir;
using json::Value;

namespace {

/// What the master sent a node, and whether it closed the session.
class FakeSession : public api::WebSocketSession {
public:
    explicit FakeSession(std::string name, std::string cert = "") {
        peer_.certCommonName = std::move(name);
        peer_.certOrganization = "hull:node";
        if (!cert.empty()) peer_.certSha256 = std::move(cert);
    }
    void send(std::string text) override { sent.push_back(std::move(text)); }
    void close() override { closed = true; }
    const api::Peer& peer() const override { return peer_; }

    /// A slot as assigned: its number, generation and incarnation.
    struct Assigned {
        int slot = 0;
        int64_t generation = 0, incarnation = 0;
    };
    /// What the master has assigned this node so far, by service: the whole set
    /// on a full message, then changes and removals.
    std::vector<Assigned> copies(const std::string& service) const {
        std::map<std::string, std::vector<Assigned>> assigned;
        for (const auto& text : sent) {
            auto m = Value::parse(text);
            if (!m || json::stringOf(*m, "type") != "assignments") continue;
            if (m->find("full")->asBool()) assigned.clear();
            for (const auto& name : json::stringsOf(m->find("removed"))) assigned.erase(name);
            for (const auto& s : m->find("services")->asArray()) {
                auto& slots = assigned[json::stringOf(s, "name")];
                slots.clear();
                int64_t generation = 0;
                s.find("generation")->toInt64(generation);
                for (const auto& x : s.find("slots")->asArray()) {
                    int64_t n = 0;
                    x.toInt64(n);
                    Assigned a{int(n), generation, 0};
                    if (const Value* pins = s.find("pins"))
                        for (const auto& p : pins->asArray())
                            if (int64_t ps = -1; p.find("slot")->toInt64(ps) && ps == n) {
                                p.find("generation")->toInt64(a.generation);
                                p.find("incarnation")->toInt64(a.incarnation);
                            }
                    slots.push_back(a);
                }
            }
        }
        auto it = assigned.find(service);
        return it == assigned.end() ? std::vector<Assigned>{} : it->second;
    }
    std::vector<int> slots(const std::string& service) const {
        std::vector<int> out;
        for (const auto& a : copies(service)) out.push_back(a.slot);
        return out;
    }
    /// Assignment messages sent, and how many of them were whole sets.
    size_t assignments(bool fullOnly) const {
        size_t n = 0;
        for (const auto& text : sent) {
            auto m = Value::parse(text);
            if (m && json::stringOf(*m, "type") == "assignments" && (!fullOnly || m->find("full")->asBool())) ++n;
        }
        return n;
    }
    /// The last message of TYPE sent (none: none yet).
    std::optional<Value> last(const std::string& type) const {
        std::optional<Value> out;
        for (const auto& text : sent)
            if (auto v = Value::parse(text); v && json::stringOf(*v, "type") == type) out = std::move(*v);
        return out;
    }
    std::vector<std::string> sent;
    bool closed = false;

private:
    api::Peer peer_;
};

struct Master {
    TempDir dir{"hull-master"};
    std::unique_ptr<Cluster> cluster;
    std::map<std::string, std::shared_ptr<FakeSession>> nodes;
    std::map<std::string, std::vector<ContainerEntry>> reported;  // node -> what it reported last
    int64_t now = 1'000'000;
    std::map<std::string, int64_t> started;  // container id -> when reportReady first reported it

    Master() { open(); }
    void open() {
        cluster.reset();
        auto store = state::openSqlite(dir / "state.db");
        REQUIRE(store);
        ClusterOptions o;
        o.wallMs = [this] { return now; };  // one made-up clock for both
        auto c = Cluster::open(std::move(*store), o, now);
        REQUIRE(c);
        cluster = std::move(*c);
    }
    void join(const std::string& name, const std::string& labels = "{}") {
        REQUIRE(cluster->registerNode(name, "10.0.0.1", now));
        connect(name, labels);
    }
    void connect(const std::string& name, const std::string& labels = "{}") {
        auto s = std::make_shared<FakeSession>(name);
        nodes[name] = s;
        cluster->sessionMessage(s, R"({"type":"hello","name":")" + name + R"(","cpus":2,"memory":1000000000,"labels":)" + labels + "}",
                                now);
    }
    void heartbeat(const std::string& name) { cluster->sessionMessage(nodes[name], R"({"type":"heartbeat"})", now); }
    /// NAME reports every slot of SERVICE it was assigned running and ready
    /// (a full report: what it reported of other services stays in it).
    /// READY decides, per copy, whether it is ready (default: all are). A
    /// copy keeps the start time of its first report.
    void reportReady(const std::string& name, const std::string& service,
                     const std::function<bool(const FakeSession::Assigned&)>& ready = {}) {
        auto& mine = reported[name];
        std::erase_if(mine, [&](const ContainerEntry& c) { return c.service == service; });
        for (const auto& a : nodes[name]->copies(service)) {
            ContainerEntry c;
            c.id = name + "-" + service + "-" + std::to_string(a.slot) + "-" + std::to_string(a.generation) + "-" +
                   std::to_string(a.incarnation);
            c.service = service;
            c.slot = a.slot;
            c.generation = a.generation;
            c.incarnation = a.incarnation;
            c.status = "running";
            c.ready = !ready || ready(a);
            c.started = started.try_emplace(c.id, now).first->second;
            c.ip = "10.99." + std::to_string(a.slot) + "." + std::to_string(a.generation * 10 + a.incarnation);
            mine.push_back(c);
        }
        StatusReport r;
        r.full = true;
        r.containers = mine;
        cluster->sessionMessage(nodes[name], api::statusMessage(r), now);
    }
    void apply(const std::string& yaml) {
        auto r = cluster->apply("test.yaml", yaml, now);
        INFO((r ? "" : r.error().message()));
        REQUIRE(r);
    }
    void tick(int64_t ms = 100) {
        now += ms;
        cluster->reconcile(now);
    }
};

}  // namespace

TEST_CASE("master: replicas are spread over the nodes that said hello, and each node is sent its slots", "[master]") {
    Master m;
    for (auto n : {"n1", "n2", "n3"}) m.join(n);
    m.apply("name: web\nimage: x\nreplicas: 6\n");
    m.tick();
    for (auto n : {"n1", "n2", "n3"}) CHECK(m.nodes[n]->slots("web").size() == 2);
    auto list = m.cluster->nodeList(m.now);
    REQUIRE(list.nodes.size() == 3);
    for (const auto& n : list.nodes) CHECK(n.status == "ready");
}

TEST_CASE("master: a scale changes the slots and nothing else, and the generation stays", "[master]") {
    Master m;
    for (auto n : {"n1", "n2"}) m.join(n);
    m.apply("name: web\nimage: x\nreplicas: 2\n");
    m.tick();
    auto before = m.nodes["n1"]->slots("web");
    auto s = m.cluster->scale("web", 4, m.now);
    REQUIRE(s);
    CHECK(s->generation == 1);
    m.tick();
    auto after = m.nodes["n1"]->slots("web");
    for (int slot : before) CHECK(std::find(after.begin(), after.end(), slot) != after.end());
    CHECK(m.nodes["n1"]->slots("web").size() + m.nodes["n2"]->slots("web").size() == 4);
    // A changed template is a new generation.
    m.apply("name: web\nimage: y\nreplicas: 4\n");
    CHECK(m.cluster->serviceList().services[0].generation == 2);
}

TEST_CASE("master: a node whose connection closed is down after its grace period and its slots go elsewhere, back, it "
          "is sent none",
          "[master]") {
    Master m;
    for (auto n : {"n1", "n2"}) m.join(n);
    m.apply("name: web\nimage: x\nreplicas: 4\n");
    m.tick();
    REQUIRE(m.nodes["n2"]->slots("web").size() == 2);
    // n2's host closes its connection (the agent was killed) and it says nothing more.
    m.cluster->sessionClosed(m.nodes["n2"], m.now);
    for (int i = 0; i < 11; ++i) {
        m.heartbeat("n1");
        m.tick();
    }
    CHECK(m.nodes["n1"]->slots("web").size() == 2);  // within the grace: a reconnect would move nothing
    for (int i = 0; i < 3; ++i) {
        m.heartbeat("n1");
        m.tick();
    }
    CHECK(m.nodes["n1"]->slots("web").size() == 4);
    for (const auto& n : m.cluster->nodeList(m.now).nodes) CHECK(n.status == (n.name == "n2" ? "down" : "ready"));
    // n2 comes back: it is told it runs nothing of web (an empty assignment is sent too).
    m.connect("n2");
    m.tick();
    CHECK(m.nodes["n2"]->slots("web").empty());
}

TEST_CASE("master: a node that falls silent is down after its grace, but its slots wait for the failover delay: a "
          "partition that heals moves nothing",
          "[master]") {
    Master m;
    for (auto n : {"n1", "n2"}) m.join(n);
    m.apply("name: web\nimage: x\nreplicas: 4\n");
    m.apply("name: fast\nimage: x\nreplicas: 2\nfailover: {after: 3s}\n");
    m.tick();
    REQUIRE(m.nodes["n2"]->slots("web").size() == 2);
    REQUIRE(m.nodes["n2"]->slots("fast").size() == 1);
    size_t sentBefore = m.nodes["n2"]->sent.size();
    // n2 is silent for 5 s (its session stays open: nothing tells the master it is gone).
    for (int i = 0; i < 50; ++i) {
        m.heartbeat("n1");
        m.tick();
    }
    for (const auto& n : m.cluster->nodeList(m.now).nodes) CHECK(n.status == (n.name == "n2" ? "down" : "ready"));
    CHECK(m.nodes["n1"]->slots("web").size() == 2);   // the default failover delay (10 s) is not over
    CHECK(m.nodes["n1"]->slots("fast").size() == 2);  // failover.after 3s is
    // It speaks again: up, and nothing of web moved; it is sent nothing about web.
    m.heartbeat("n2");
    m.tick();
    CHECK(m.nodes["n2"]->slots("web").size() == 2);
    for (size_t i = sentBefore; i < m.nodes["n2"]->sent.size(); ++i)
        CHECK(m.nodes["n2"]->sent[i].find("\"web\"") == std::string::npos);
    // Silent again, now past the default delay: web's slots move too.
    for (int i = 0; i < 105; ++i) {
        m.heartbeat("n1");
        m.tick();
    }
    CHECK(m.nodes["n1"]->slots("web").size() == 4);
}

TEST_CASE("master: a drained node's slots move start-first: it keeps them until the new copies are ready", "[master]") {
    Master m;
    for (auto n : {"n1", "n2"}) m.join(n);
    m.apply("name: web\nimage: x\nreplicas: 2\n");
    m.tick();
    REQUIRE(m.nodes["n1"]->slots("web").size() == 1);
    REQUIRE(m.cluster->drain("n1", true, m.now));
    m.tick();
    CHECK(m.nodes["n2"]->slots("web").size() == 2);
    CHECK(m.nodes["n1"]->slots("web").size() == 1);  // retiring: still running it
    m.reportReady("n2", "web");
    m.tick();
    CHECK(m.nodes["n1"]->slots("web").empty());
    CHECK(m.cluster->nodeList(m.now).nodes[0].status == "drained");
}

TEST_CASE("master: a replica that fits nowhere is pending with its reason, bad placement rules are refused", "[master]") {
    Master m;
    m.join("n1", R"({"zone":"a"})");
    m.apply("name: web\nimage: x\nreplicas: 1\nplacement: {constraints: [\"node.labels.zone == b\"]}\n");
    m.tick();
    auto d = m.cluster->describe("web");
    REQUIRE(d);
    REQUIRE(d->pending.size() == 1);
    CHECK(d->pending[0].reason.find("node.labels.zone == b") != std::string::npos);
    // A label makes it fit.
    REQUIRE(m.cluster->label("n1", {{"zone", "b"}}, {}, m.now));
    m.tick();
    CHECK(m.nodes["n1"]->slots("web") == std::vector<int>{0});
    CHECK(m.cluster->describe("web")->pending.empty());
    auto bad = m.cluster->apply("bad.yaml", "name: odd\nimage: x\nplacement: {constraints: [\"zone = a\"]}\n", m.now);
    REQUIRE(!bad);
    CHECK(bad.error().message().find("bad.yaml: placement.constraints[0]") != std::string::npos);
    CHECK(m.cluster->serviceCount() == 1);
}

TEST_CASE("master: a restarted master reads its placements back and moves nothing while nodes say hello again",
          "[master]") {
    Master m;
    for (auto n : {"n1", "n2", "n3"}) m.join(n);
    m.apply("name: web\nimage: x\nreplicas: 6\n");
    m.tick();
    std::map<std::string, std::vector<int>> before;
    for (auto n : {"n1", "n2", "n3"}) before[n] = m.nodes[n]->slots("web");
    m.open();
    m.nodes.clear();
    m.tick(2500);  // longer than a heartbeat grace, within the restart grace: nobody said hello yet
    for (auto n : {"n1", "n2"}) m.connect(n);
    m.tick();
    for (auto n : {"n1", "n2", "n3"})
        CHECK((m.nodes.count(n) == 0 || m.nodes[n]->slots("web") == before[n]));
    CHECK(m.cluster->serviceList().services.at(0).generation == 1);
    // n3 never comes back: down once the restart grace (5 s) is over, and, silent
    // (nothing closed), its slots move after the failover delay.
    for (int i = 0; i < 130; ++i) {
        for (auto n : {"n1", "n2"}) m.heartbeat(n);
        m.tick();
    }
    for (const auto& n : m.cluster->nodeList(m.now).nodes) CHECK(n.status == (n.name == "n3" ? "down" : "ready"));
    CHECK(m.nodes["n1"]->slots("web").size() + m.nodes["n2"]->slots("web").size() == 6);
}

TEST_CASE("master: a session whose hello names another node is closed", "[master]") {
    Master m;
    m.join("n1");
    auto s = std::make_shared<FakeSession>("n1");
    m.cluster->sessionMessage(s, R"({"type":"hello","name":"n2"})", m.now);
    CHECK(s->closed);
    auto early = std::make_shared<FakeSession>("n3");
    m.cluster->sessionMessage(early, R"({"type":"status","containers":{}})", m.now);
    CHECK(early->closed);
}

TEST_CASE("master: a session gets the whole set once, then only the services whose part changed", "[master]") {
    Master m;
    m.join("n1");
    m.apply("name: a\nimage: x\nreplicas: 1\n");
    m.apply("name: b\nimage: x\nreplicas: 1\n");
    m.tick();
    auto& s = *m.nodes["n1"];
    size_t before = s.sent.size();
    REQUIRE(s.assignments(true) == 1);
    // Scaling b sends b alone.
    REQUIRE(m.cluster->scale("b", 2, m.now));
    m.tick();
    REQUIRE(s.sent.size() == before + 1);
    auto last = *Value::parse(s.sent.back());
    CHECK_FALSE(last.find("full")->asBool());
    REQUIRE(last.find("services")->asArray().size() == 1);
    CHECK(json::stringOf(last.find("services")->asArray()[0], "name") == "b");
    // Deleting a sends its removal; nothing changed, nothing sent.
    REQUIRE(m.cluster->remove("a", m.now));
    m.tick();
    CHECK(json::stringsOf(Value::parse(s.sent.back())->find("removed")) == std::vector<std::string>{"a"});
    size_t quiet = s.sent.size();
    m.heartbeat("n1");
    m.tick();
    CHECK(s.sent.size() == quiet);
    CHECK(s.slots("a").empty());
    CHECK(s.slots("b") == std::vector<int>{0, 1});
    // A new session gets the whole set again.
    m.cluster->sessionClosed(m.nodes["n1"], m.now);
    m.connect("n1");
    m.tick();
    CHECK(m.nodes["n1"]->assignments(true) == 1);
    CHECK(m.nodes["n1"]->slots("b") == std::vector<int>{0, 1});
}

TEST_CASE("master: status reports after the first carry changes only, and the master's view follows them", "[master]") {
    Master m;
    m.join("n1");
    m.apply("name: web\nimage: busybox\nreplicas: 2\ncommand: [sleep, '1000']\n");
    m.tick();
    REQUIRE(m.nodes["n1"]->slots("web") == std::vector<int>{0, 1});
    auto entry = [](int slot, bool ready) {
        ContainerEntry c;
        c.id = "c" + std::to_string(slot);
        c.service = "web";
        c.slot = slot;
        c.status = "running";
        c.ready = ready;
        return c;
    };
    // The node's side: a reporter over what it runs.
    api::StatusReporter reporter;
    auto send = [&](const std::vector<ContainerEntry>& now) {
        auto r = reporter.next(now);
        if (r) m.cluster->sessionMessage(m.nodes["n1"], api::statusMessage(*r), m.now);
        return r;
    };
    auto first = send({entry(0, false), entry(1, false)});
    REQUIRE(first);
    CHECK(first->full);
    m.tick();
    CHECK(m.cluster->serviceList().services.at(0).ready == 0);
    CHECK(m.cluster->containers("web").containers.size() == 2);
    // One turns ready: one entry travels.
    auto second = send({entry(0, true), entry(1, false)});
    REQUIRE(second);
    CHECK_FALSE(second->full);
    CHECK(second->containers.size() == 1);
    m.tick();
    CHECK(m.cluster->serviceList().services.at(0).ready == 1);
    CHECK_FALSE(send({entry(0, true), entry(1, false)}));  // nothing changed, nothing sent
    // One is gone: its id travels, and the master forgets it.
    auto third = send({entry(0, true)});
    REQUIRE(third);
    CHECK(third->gone == std::vector<std::string>{"c1"});
    CHECK(third->containers.empty());
    m.tick();
    auto list = m.cluster->containers("web").containers;
    REQUIRE(list.size() == 1);
    CHECK(list[0].id == "c0");
    CHECK(list[0].node == "n1");
    CHECK(m.cluster->serviceList().services.at(0).ready == 1);
    // A report that is not one is refused and changes nothing.
    m.cluster->sessionMessage(m.nodes["n1"], R"({"type":"status","report":{"schemaVersion":2,"full":true}})", m.now);
    CHECK(m.cluster->containers("web").containers.size() == 1);
}

TEST_CASE("master: a node down with its session open keeps its containers for when it is back, without one it loses them",
          "[master]") {
    Master m;
    m.join("n1");
    m.join("n2");
    m.apply("name: web\nimage: busybox\nreplicas: 2\ncommand: [sleep, '1000']\n");
    m.tick();
    m.reportReady("n1", "web");
    m.reportReady("n2", "web");
    m.tick();
    REQUIRE(m.cluster->serviceList().services.at(0).ready == 2);
    // n1 goes silent past its grace period with its session open: down, its
    // replica is not counted, but what it reported stays.
    for (int i = 0; i < 20; ++i) {
        m.heartbeat("n2");
        m.tick();
    }
    auto nodes = m.cluster->nodeList(m.now).nodes;
    REQUIRE(nodes.at(0).status == "down");
    CHECK(nodes.at(0).containers == 1);
    CHECK(m.cluster->serviceList().services.at(0).ready == 1);
    // Its session ends: now nothing of it is known.
    m.cluster->sessionClosed(m.nodes["n1"], m.now);
    CHECK(m.cluster->nodeList(m.now).nodes.at(0).containers == 0);
    CHECK(m.cluster->containers("web").containers.size() == 1);
}

TEST_CASE("master: a name is held by the certificate of its last join, and a node that is up cannot be joined again",
          "[master]") {
    Master m;
    REQUIRE(m.cluster->registerNode("n1", "10.0.0.1", m.now, "aaaa"));
    auto first = std::make_shared<FakeSession>("n1", "aaaa");
    m.cluster->sessionMessage(first, R"({"type":"hello","name":"n1","cpus":2,"memory":1000000000})", m.now);
    m.tick();
    REQUIRE(m.cluster->nodeList(m.now).nodes.at(0).status == "ready");
    // Up: a second join under its name is refused, and changes nothing.
    auto again = m.cluster->registerNode("n1", "10.0.0.2", m.now, "bbbb");
    REQUIRE_FALSE(again);
    CHECK(again.error().errnum() == EEXIST);
    auto stale = std::make_shared<FakeSession>("n1", "bbbb");
    m.cluster->sessionMessage(stale, R"({"type":"hello","name":"n1","cpus":2,"memory":1000000000})", m.now);
    CHECK(stale->closed);
    CHECK_FALSE(first->closed);
    // Down (its machine replaced): the new join takes the name, and the old certificate holds nothing.
    // Silent past its grace period with its session still open (a partition TCP has not noticed).
    for (int i = 0; i < 20; ++i) m.tick();
    REQUIRE(m.cluster->nodeList(m.now).nodes.at(0).status == "down");
    REQUIRE_FALSE(first->closed);
    REQUIRE(m.cluster->registerNode("n1", "10.0.0.2", m.now, "bbbb"));
    CHECK(first->closed);  // the session of the certificate before is cut
    CHECK_FALSE(m.cluster->sessionClosed(first, m.now));  // and no longer counts as n1's
    auto old = std::make_shared<FakeSession>("n1", "aaaa");
    m.cluster->sessionMessage(old, R"({"type":"hello","name":"n1","cpus":2,"memory":1000000000})", m.now);
    CHECK(old->closed);
    auto fresh = std::make_shared<FakeSession>("n1", "bbbb");
    m.cluster->sessionMessage(fresh, R"({"type":"hello","name":"n1","cpus":2,"memory":1000000000})", m.now);
    CHECK_FALSE(fresh->closed);
    m.tick();
    CHECK(m.cluster->nodeList(m.now).nodes.at(0).status == "ready");
}

TEST_CASE("master: a status report it cannot read ends the session (the next starts over), an older node's whole list is read",
          "[master]") {
    Master m;
    m.join("n1");
    m.apply("name: web\nimage: busybox\nreplicas: 1\ncommand: [sleep, '1000']\n");
    m.tick();
    m.reportReady("n1", "web");
    m.tick();
    REQUIRE(m.cluster->serviceList().services.at(0).ready == 1);
    m.cluster->sessionMessage(m.nodes["n1"], R"({"type":"status","report":{"schemaVersion":2,"full":false,"containers":[],"gone":[7]}})",
                              m.now);
    CHECK(m.nodes["n1"]->closed);
    m.cluster->sessionMessage(m.nodes["n1"], "not json", m.now);
    // A node of the hull before deltas says hello and sends its whole list the old way.
    auto old = std::make_shared<FakeSession>("n1");
    m.nodes["n1"] = old;
    m.cluster->sessionMessage(old, R"({"type":"hello","name":"n1","cpus":2,"memory":1000000000})", m.now);
    ContainerEntry c;
    c.id = "c0";
    c.service = "web";
    c.slot = 0;
    c.status = "running";
    c.ready = true;
    Value msg = Value::object();
    msg.set("type", "status");
    msg.set("containers", *Value::parse(encode(ContainerList{{c}})));
    m.cluster->sessionMessage(old, msg.dump(), m.now);
    CHECK_FALSE(old->closed);
    m.tick();
    CHECK(m.cluster->containers("web").containers.size() == 1);
    CHECK(m.cluster->serviceList().services.at(0).ready == 1);
}

TEST_CASE("master: a service with a stored placement it cannot read is left as it is: not moved, not rewritten, kept on nodes",
          "[master]") {
    Master m;
    for (auto n : {"n1", "n2"}) m.join(n);
    m.apply("name: web\nimage: x\nreplicas: 4\n");
    m.apply("name: api\nimage: x\nreplicas: 2\n");
    m.tick();
    REQUIRE(m.nodes["n1"]->slots("web").size() == 2);
    // A newer hull wrote slot 1's record in a shape this one cannot read.
    m.cluster.reset();
    {
        auto store = state::openSqlite(m.dir / "state.db");
        REQUIRE(store);
        REQUIRE((*store)->put(keys::placement("web", 1), R"({"version": 99, "node": "n9"})"));
    }
    m.open();
    m.nodes.clear();
    for (auto n : {"n1", "n2"}) m.connect(n);
    m.tick();
    // Every node keeps web as it runs it; api is served as before.
    for (auto n : {"n1", "n2"}) {
        auto last = m.nodes[n]->last("assignments");
        REQUIRE(last);
        CHECK(json::stringsOf(last->find("keep")) == std::vector<std::string>{"web"});
        CHECK(m.nodes[n]->slots("api").size() == 1);
    }
    auto events = m.cluster->events(0).events;
    CHECK(std::any_of(events.begin(), events.end(), [](const Event& e) {
        return e.kind == "error" && e.service == "web" && e.message.find("slot 1 unreadable") != std::string::npos;
    }));
    CHECK_FALSE(m.cluster->describe("web"));
    // n2 goes down (its connection closed): api's slot moves, web's do not, and the record stays as it was written.
    m.cluster->sessionClosed(m.nodes["n2"], m.now);
    for (int i = 0; i < 60; ++i) {
        m.heartbeat("n1");
        m.tick();
    }
    CHECK(m.nodes["n1"]->slots("api").size() == 2);
    m.cluster.reset();
    auto store = state::openSqlite(m.dir / "state.db");
    REQUIRE(store);
    auto rec = (*store)->range(keys::placement("web", 1), "");
    REQUIRE(rec);
    REQUIRE(rec->kvs.size() == 1);
    CHECK(rec->kvs[0].value == R"({"version": 99, "node": "n9"})");
}

TEST_CASE("master: after a restart, new replicas go only to nodes that said hello again", "[master]") {
    Master m;
    for (auto n : {"n1", "n2"}) m.join(n);
    m.tick();
    m.open();  // n2 never comes back; within the restart grace it is not down yet
    m.nodes.clear();
    m.connect("n1");
    m.apply("name: web\nimage: x\nreplicas: 4\n");
    m.tick();
    CHECK(m.nodes["n1"]->slots("web").size() == 4);
    for (const auto& n : m.cluster->nodeList(m.now).nodes) CHECK(n.status == "ready");  // n2: not down, just not chosen
}

namespace {

/// Slots of SERVICE at each generation, over every node's placements as sent.
std::map<int64_t, int> generations(Master& m, const std::string& service) {
    std::map<int64_t, int> out;
    std::set<int> seen;
    for (auto& [name, s] : m.nodes)
        for (const auto& a : s->copies(service))
            if (seen.insert(a.slot).second) ++out[a.generation];
    return out;
}

int64_t readyOf(Master& m, const std::string& service) {
    for (const auto& s : m.cluster->serviceList().services)
        if (s.name == service) return s.ready;
    return -1;
}

}  // namespace

TEST_CASE("master: a rollout moves parallelism slots at a time to the new generation, keeps the ready count, and completes",
          "[master][rollout]") {
    Master m;
    for (auto n : {"n1", "n2"}) m.join(n);
    m.apply("name: web\nimage: x:1\nreplicas: 6\n");
    m.tick();
    for (auto n : {"n1", "n2"}) m.reportReady(n, "web");
    m.tick();
    REQUIRE(readyOf(m, "web") == 6);
    m.apply("name: web\nimage: x:2\nreplicas: 6\nupdate: {parallelism: 2, order: start-first, monitor: 1s}\n");
    auto st = m.cluster->rolloutStatus("web");
    REQUIRE(st);
    CHECK(st->state == "updating");
    CHECK(st->from == 1);
    CHECK(st->to == 2);
    m.tick();
    CHECK(generations(m, "web") == std::map<int64_t, int>{{1, 4}, {2, 2}});
    // The nodes carry the old spec along for the slots still on it.
    auto last = m.nodes["n1"]->last("assignments");
    REQUIRE(last);
    const Value& entry = last->find("services")->asArray().at(0);
    CHECK(json::stringOf(entry, "order") == "start-first");
    REQUIRE(entry.find("versions"));
    CHECK(json::stringOf(entry.find("versions")->asArray().at(0), "generation") == "");  // an integer, not a string
    int64_t g = 0;
    entry.find("versions")->asArray().at(0).find("generation")->toInt64(g);
    CHECK(g == 1);
    // The nodes report each new copy ready a tick after they get it; the ready count never drops.
    int64_t minReady = 6;
    for (int i = 0; i < 100 && m.cluster->rolloutStatus("web")->state == "updating"; ++i) {
        for (auto n : {"n1", "n2"}) {
            m.heartbeat(n);
            m.reportReady(n, "web");
        }
        m.tick();
        minReady = std::min(minReady, readyOf(m, "web"));
        auto gens = generations(m, "web");
        CHECK(gens[2] - m.cluster->rolloutStatus("web")->updated <= 2);  // never more than 2 in flight
    }
    CHECK(minReady == 6);
    st = m.cluster->rolloutStatus("web");
    CHECK(st->state == "completed");
    CHECK(st->updated == 6);
    CHECK(generations(m, "web") == std::map<int64_t, int>{{2, 6}});
    auto h = m.cluster->rolloutHistory("web");
    REQUIRE(h);
    REQUIRE(h->revisions.size() == 2);
    CHECK(h->revisions[1].outcome == "completed");
    CHECK(h->revisions[1].current);
    // Another apply of the same file changes nothing; a scale rolls nothing out.
    m.apply("name: web\nimage: x:2\nreplicas: 6\nupdate: {parallelism: 2, order: start-first, monitor: 1s}\n");
    CHECK(m.cluster->rolloutStatus("web")->state == "completed");
}

TEST_CASE("master: a rollout whose new replicas never turn ready rolls back by itself, and says why", "[master][rollout]") {
    Master m;
    for (auto n : {"n1", "n2"}) m.join(n);
    m.apply("name: web\nimage: x:1\nreplicas: 4\n");
    m.tick();
    for (auto n : {"n1", "n2"}) m.reportReady(n, "web");
    m.tick();
    m.apply("name: web\nimage: x:bad\nreplicas: 4\nupdate: {parallelism: 2, monitor: 1s}\n");
    // Generation 2's copies run but never turn ready; generation 1's (still running, start-first) are.
    auto onlyOld = [](const FakeSession::Assigned& a) { return a.generation == 1; };
    for (int i = 0; i < 40; ++i) {
        for (auto n : {"n1", "n2"}) {
            m.heartbeat(n);
            m.reportReady(n, "web", onlyOld);
        }
        m.tick();
    }
    auto st = m.cluster->rolloutStatus("web");
    REQUIRE(st);
    CHECK(st->state == "rolled-back");
    CHECK(st->generation == 1);
    CHECK(st->reason.find("not ready") != std::string::npos);
    CHECK(generations(m, "web") == std::map<int64_t, int>{{1, 4}});
    auto d = m.cluster->describe("web");
    REQUIRE(d);
    CHECK(d->spec.image == "x:1");
    auto h = m.cluster->rolloutHistory("web");
    REQUIRE(h);
    REQUIRE(h->revisions.size() == 2);
    CHECK(h->revisions[0].current);
    CHECK(h->revisions[1].outcome == "rolled-back");
    auto events = m.cluster->events(0).events;
    CHECK(std::any_of(events.begin(), events.end(), [](const Event& e) {
        return e.kind == "rollout" && e.message.find("rolled back: generation 2 -> 1") != std::string::npos;
    }));
    // The next apply gets a new generation number, not 2 again.
    m.apply("name: web\nimage: x:3\nreplicas: 4\n");
    CHECK(m.cluster->rolloutStatus("web")->to == 3);
}

TEST_CASE("master: failureAction pause stops the rollout where it is, and undo rolls back to the generation before",
          "[master][rollout]") {
    Master m;
    m.join("n1");
    m.apply("name: web\nimage: x:1\nreplicas: 3\n");
    m.tick();
    m.reportReady("n1", "web");
    m.tick();
    m.apply("name: web\nimage: x:bad\nreplicas: 3\nupdate: {parallelism: 1, monitor: 1s, failureAction: pause}\n");
    auto onlyOld = [](const FakeSession::Assigned& a) { return a.generation == 1; };
    for (int i = 0; i < 30; ++i) {
        m.heartbeat("n1");
        m.reportReady("n1", "web", onlyOld);
        m.tick();
    }
    auto st = m.cluster->rolloutStatus("web");
    CHECK(st->state == "paused");
    CHECK(st->generation == 2);
    CHECK(generations(m, "web") == std::map<int64_t, int>{{1, 2}, {2, 1}});
    // hull rollout undo: back to 1, paced like a rollout; the slots on 1 stay as they are.
    auto u = m.cluster->undo("web", 0, m.now);
    REQUIRE(u);
    CHECK(u->to == 1);
    for (int i = 0; i < 150 && m.cluster->rolloutStatus("web")->state == "updating"; ++i) {  // monitor: 5 s (generation 1 has no update:)
        m.heartbeat("n1");
        m.reportReady("n1", "web");
        m.tick();
    }
    CHECK(m.cluster->rolloutStatus("web")->state == "completed");
    CHECK(generations(m, "web") == std::map<int64_t, int>{{1, 3}});
    CHECK_FALSE(m.cluster->undo("web", 7, m.now));
    CHECK_FALSE(m.cluster->undo("web", 1, m.now));
}

TEST_CASE("master: the phoenix cycle replaces one replica at a time, start-first, and spreads a service out", "[master][phoenix]") {
    Master m;
    for (auto n : {"n1", "n2", "n3"}) m.join(n);
    REQUIRE(m.cluster->drain("n2", true, m.now));
    REQUIRE(m.cluster->drain("n3", true, m.now));
    m.apply("name: web\nimage: x\nreplicas: 4\nmaxAge: 5s\n");
    m.tick();
    m.reportReady("n1", "web");
    m.tick();
    REQUIRE(m.nodes["n1"]->slots("web").size() == 4);
    REQUIRE(m.cluster->drain("n2", false, m.now));
    REQUIRE(m.cluster->drain("n3", false, m.now));
    int64_t minReady = 4;
    // Ticks of 100 ms for 12 s: every replica comes due once (5 s, less up to 10% jitter).
    for (int i = 0; i < 120; ++i) {
        for (auto n : {"n1", "n2", "n3"}) {
            m.heartbeat(n);
            m.reportReady(n, "web");
        }
        m.tick();
        minReady = std::min(minReady, readyOf(m, "web"));
    }
    CHECK(minReady == 4);
    for (auto n : {"n1", "n2", "n3"}) CHECK(m.nodes[n]->slots("web").size() >= 1);
    auto events = m.cluster->events(0).events;
    CHECK(std::count_if(events.begin(), events.end(), [](const Event& e) { return e.kind == "phoenix"; }) >= 4);
}

TEST_CASE("master: a node lost in the middle of a rollout is not the new generation's failure: the slot moves and the "
          "rollout goes on",
          "[master][rollout]") {
    Master m;
    for (auto n : {"n1", "n2", "n3"}) m.join(n);
    m.apply("name: web\nimage: x:1\nreplicas: 3\n");
    m.tick();
    for (auto n : {"n1", "n2", "n3"}) m.reportReady(n, "web");
    m.tick();
    m.apply("name: web\nimage: x:2\nreplicas: 3\nupdate: {parallelism: 1, monitor: 1s}\n");
    m.tick();
    // Slot 0 is the first to move; its node dies before the new copy is ready.
    std::string victim;
    for (auto n : {"n1", "n2", "n3"})
        for (const auto& a : m.nodes[n]->copies("web"))
            if (a.slot == 0 && a.generation == 2) victim = n;
    REQUIRE(!victim.empty());
    // It had started the new copy, not yet ready, when it went.
    m.reportReady(victim, "web", [](const FakeSession::Assigned& a) { return a.generation == 1; });
    m.tick();
    m.cluster->sessionClosed(m.nodes[victim], m.now);
    std::vector<std::string> alive;
    for (auto n : {"n1", "n2", "n3"})
        if (n != victim) alive.push_back(n);
    for (int i = 0; i < 100 && m.cluster->rolloutStatus("web")->state == "updating"; ++i) {
        for (const auto& n : alive) {
            m.heartbeat(n);
            m.reportReady(n, "web");
        }
        m.tick();
    }
    auto st = m.cluster->rolloutStatus("web");
    INFO(st->reason);
    CHECK(st->state == "completed");
    CHECK(st->generation == 2);
    CHECK(st->failures == 0);
}

namespace {

/// The overlay peers NODE has been told of so far: name -> subnet.
std::map<std::string, std::string> peersOf(const FakeSession& s) {
    std::map<std::string, std::string> peers;
    for (const auto& text : s.sent) {
        auto m = Value::parse(text);
        if (!m || json::stringOf(*m, "type") != "peers") continue;
        if (m->find("full")->asBool()) peers.clear();
        for (const auto& p : m->find("removed")->asArray()) peers.erase(json::stringOf(p, "name"));
        for (const auto& p : m->find("peers")->asArray()) peers[json::stringOf(p, "name")] = json::stringOf(p, "subnet");
    }
    return peers;
}

std::string welcomeSubnet(const FakeSession& s) {
    auto w = s.last("welcome");
    return w ? json::stringOf(*w, "subnet") : "";
}

}  // namespace

TEST_CASE("master: nodes lease subnets at their join and hear of each other as overlay peers while they are up",
          "[master][overlay]") {
    Master m;
    for (auto n : {"n1", "n2", "n3"}) m.join(n);
    std::set<std::string> subnets;
    for (auto n : {"n1", "n2", "n3"}) subnets.insert(welcomeSubnet(*m.nodes[n]));
    CHECK(subnets == std::set<std::string>{"10.96.0.0/24", "10.96.1.0/24", "10.96.2.0/24"});
    // No VTEP yet: nobody is a peer.
    m.tick();
    CHECK(peersOf(*m.nodes["n1"]).empty());
    for (auto n : {"n1", "n2", "n3"})
        m.cluster->sessionMessage(m.nodes[n], std::string(R"({"type":"overlay","mac":"02:00:00:00:00:0)") + n[1] + "\"}", m.now);
    m.tick();
    CHECK(peersOf(*m.nodes["n1"]) == std::map<std::string, std::string>{{"n2", welcomeSubnet(*m.nodes["n2"])},
                                                                        {"n3", welcomeSubnet(*m.nodes["n3"])}});
    CHECK(peersOf(*m.nodes["n3"]).size() == 2);
    // n2 goes away: once down, it leaves the others' overlay.
    m.cluster->sessionClosed(m.nodes["n2"], m.now);
    for (int i = 0; i < 15; ++i) {
        for (auto n : {"n1", "n3"}) m.heartbeat(n);
        m.tick();
    }
    CHECK(peersOf(*m.nodes["n1"]).count("n2") == 0);
    CHECK(peersOf(*m.nodes["n3"]).count("n2") == 0);
    // A node that is up cannot be removed; one that is down can, and its lease is free for the next.
    auto busy = m.cluster->removeNode("n1", m.now);
    REQUIRE_FALSE(busy);
    CHECK(busy.error().errnum() == EBUSY);
    std::string freed = welcomeSubnet(*m.nodes["n2"]);
    REQUIRE(m.cluster->removeNode("n2", m.now));
    CHECK(m.cluster->nodeList(m.now).nodes.size() == 2);
    m.join("n4");
    CHECK(welcomeSubnet(*m.nodes["n4"]) == freed);
    // The master restarted: leases are kept.
    std::string n1Subnet = welcomeSubnet(*m.nodes["n1"]);
    m.open();
    m.nodes.clear();
    m.connect("n1");
    CHECK(welcomeSubnet(*m.nodes["n1"]) == n1Subnet);
}

namespace {

/// The endpoints NODE has been told of so far: service -> (vip, backends).
std::map<std::string, std::pair<std::string, std::vector<std::string>>> endpointsOf(const FakeSession& s) {
    std::map<std::string, std::pair<std::string, std::vector<std::string>>> out;
    for (const auto& text : s.sent) {
        auto m = Value::parse(text);
        if (!m || json::stringOf(*m, "type") != "endpoints") continue;
        if (m->find("full")->asBool()) out.clear();
        for (const auto& name : json::stringsOf(m->find("removed"))) out.erase(name);
        for (const auto& e : m->find("services")->asArray())
            out[json::stringOf(e, "name")] = {json::stringOf(e, "vip"), json::stringsOf(e.find("backends"))};
    }
    return out;
}

}  // namespace

TEST_CASE("master: services get VIPs, and every node hears of each service's ready replicas wherever they run",
          "[master][endpoints]") {
    Master m;
    for (auto n : {"n1", "n2", "n3"}) m.join(n);
    m.join("sim");  // a node without an overlay (no VTEP): it gets no endpoints
    for (auto n : {"n1", "n2", "n3"})
        m.cluster->sessionMessage(m.nodes[n], std::string(R"({"type":"overlay","mac":"02:00:00:00:00:0)") + n[1] + "\"}", m.now);
    REQUIRE(m.cluster->drain("sim", true, m.now));
    m.apply("name: web\nimage: x\nreplicas: 2\nports: [\"8080:80\"]\n");
    m.apply("name: db\nimage: x\nreplicas: 1\n");
    m.tick();
    auto list = m.cluster->serviceList().services;
    REQUIRE(list.size() == 2);
    CHECK(list[0].vip != list[1].vip);
    for (const auto& s : list) CHECK(s.vip.rfind("10.112.0.", 0) == 0);
    // Nothing ready yet: VIPs without backends, on every node (those without a replica too).
    for (auto n : {"n1", "n2", "n3"}) {
        auto ep = endpointsOf(*m.nodes[n]);
        REQUIRE(ep.size() == 2);
        CHECK(ep["web"].second.empty());
    }
    for (auto n : {"n1", "n2", "n3"}) m.reportReady(n, "web");
    m.tick();
    for (auto n : {"n1", "n2", "n3"}) CHECK(endpointsOf(*m.nodes[n])["web"].second == std::vector<std::string>{"10.99.0.10", "10.99.1.10"});
    CHECK(endpointsOf(*m.nodes["sim"]).empty());
    // A replica that is no longer ready leaves every node's set.
    for (auto n : {"n1", "n2", "n3"}) m.reportReady(n, "web", [](const FakeSession::Assigned& a) { return a.slot != 1; });
    m.tick();
    for (auto n : {"n1", "n2", "n3"}) CHECK(endpointsOf(*m.nodes[n])["web"].second == std::vector<std::string>{"10.99.0.10"});
    // Deleted: gone from every node; its VIP is free again.
    std::string dbVip = list[0].name == "db" ? list[0].vip : list[1].vip;
    REQUIRE(m.cluster->remove("db", m.now));
    m.tick();
    for (auto n : {"n1", "n2", "n3"}) CHECK(endpointsOf(*m.nodes[n]).count("db") == 0);
    m.apply("name: cache\nimage: x\nreplicas: 1\n");
    for (const auto& s : m.cluster->serviceList().services)
        if (s.name == "cache") CHECK(s.vip == dbVip);
    // A new session gets them all at once.
    m.cluster->sessionClosed(m.nodes["n2"], m.now);
    m.connect("n2");
    m.tick();
    CHECK(endpointsOf(*m.nodes["n2"]).size() == 2);
}

TEST_CASE("master: every node hears of each service's networks and of all its running replicas, ready or not",
          "[master][endpoints]") {
    Master m;
    for (auto n : {"n1", "n2"}) {
        m.join(n);
        m.cluster->sessionMessage(m.nodes[n], std::string(R"({"type":"overlay","mac":"02:00:00:00:00:0)") + n[1] + "\"}", m.now);
    }
    m.apply("name: web\nimage: x\nreplicas: 2\nnetworks: [front, back]\n");
    m.apply("name: db\nimage: x\nreplicas: 1\n");
    m.tick();
    // The welcome says where service addresses are (a node's isolation tells them from published ports).
    for (const auto& text : m.nodes["n1"]->sent)
        if (auto w = Value::parse(text); w && json::stringOf(*w, "type") == "welcome")
            CHECK(json::stringOf(*w, "serviceCidr") == "10.112.0.0/16");
    auto entry = [&](const std::string& node, const std::string& service) {
        Value out;
        for (const auto& text : m.nodes[node]->sent) {
            auto msg = Value::parse(text);
            if (!msg || json::stringOf(*msg, "type") != "endpoints") continue;
            for (const auto& e : msg->find("services")->asArray())
                if (json::stringOf(e, "name") == service) out = e;
        }
        return out;
    };
    CHECK(json::stringsOf(entry("n1", "web").find("networks")) == std::vector<std::string>{"front", "back"});
    CHECK(json::stringsOf(entry("n1", "db").find("networks")) == std::vector<std::string>{"default"});
    CHECK(json::stringsOf(entry("n2", "web").find("members")).empty());
    // Running but not ready: members (it may need its peers while it starts), not backends.
    for (auto n : {"n1", "n2"}) m.reportReady(n, "web", [](const FakeSession::Assigned&) { return false; });
    m.tick();
    for (auto n : {"n1", "n2"}) {
        Value web = entry(n, "web");
        CHECK(json::stringsOf(web.find("members")) == std::vector<std::string>{"10.99.0.10", "10.99.1.10"});
        CHECK(json::stringsOf(web.find("backends")).empty());
    }
    // Gone from a report: gone from every node's members.
    m.reported["n2"].clear();
    StatusReport r;
    r.full = true;
    m.cluster->sessionMessage(m.nodes["n2"], api::statusMessage(r), m.now);
    m.tick();
    CHECK(json::stringsOf(entry("n1", "web").find("members")).size() == 1);
}
