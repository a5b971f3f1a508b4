#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "orchestrator/api/messages.hpp"

using namespace hull;
using namespace hull::orchestrator;
using namespace std::chrono_literals;

namespace {

/// A service with every field away from its default.
Service fullService() {
    auto s = parseService(R"(name: web
image: hull.local/busybox:latest
command: ["httpd", "-f", "-p", "80"]
env: {GREETING: hello}
replicas: 3
resources:
  requests: {cpus: 0.1, memory: 16m}
  limits:   {cpus: 0.5, memory: 64m, pids: 64}
ports: ["8080:80", "5353:53/udp"]
volumes: ["/srv/www:/www:ro"]
restart: on-failure
backoff: {initial: 150ms, factor: 1.5, max: 10s, resetAfter: 30s}
probes:
  liveness:  {http: {port: 80, path: /healthz}, period: 1s, timeout: 500ms, failureThreshold: 3}
  readiness: {tcp: {port: 8080}, period: 500ms, successThreshold: 2}
  startup:   {exec: ["cat", "/tmp/ready"], period: 200ms, failureThreshold: 30, initialDelay: 1s}
maxAge: 1h
stopGracePeriod: 3s
)");
    REQUIRE(s);
    return *s;
}

ContainerEntry container(bool ended) {
    ContainerEntry c;
    c.id = "0123456789abcdef";
    c.name = "web-0-1a2b";
    c.service = "web";
    c.slot = 2;
    c.node = ended ? "" : "n2";
    c.generation = 7;
    c.incarnation = ended ? 0 : 2;
    c.restarts = 4;
    c.status = ended ? "exited" : "running";
    if (ended) c.exitCode = 137;
    c.ready = !ended;
    c.ip = ended ? "" : "10.88.0.5";
    c.started = 1700000000123;
    return c;
}

Event event(int64_t id) { return {id, 1700000000000 + id, "start", "web", "0123456789ab", "restart (slot 0)"}; }

NodeEntry node(const std::string& name) {
    NodeEntry n;
    n.name = name;
    n.status = "drained";
    n.address = "10.250.0.12";
    n.labels = {{"zone", "a"}, {"sim", "true"}};
    n.containers = 12;
    n.cpus = 2.5;
    n.memory = int64_t(8) << 30;
    n.version = "0.1.0";
    n.lastSeen = 1700000000456;
    return n;
}

ClusterStatus clusterStatus() {
    return {{{"m1", "10.250.0.1:7443", "leader"}, {"m2", "10.250.0.2:7443", "follower"}},
            "m1",
            "etcd:http://10.250.0.1:2379",
            "1 of 2 etcd members answer with a leader: no quorum, writes fail",
            {{"http://10.250.0.1:2379", true, true, "3.4.23", 20480, ""},
             {"http://10.250.0.2:2379", false, false, "", 0, "cannot connect: Connection refused"}},
            3,
            7};
}

DescribeReply describeReply() {
    DescribeReply d;
    d.name = "web";
    d.generation = 2;
    d.updated = 1700000000999;
    d.spec = fullService();
    d.replicas = {3, 1};
    d.containers = {container(false), container(true)};
    d.pending = {{1, "no node matches node.labels.zone == a"}, {2, "no node has 64m of memory free"}};
    d.events = {event(1), event(2), event(3)};
    return d;
}

template <class T>
T roundTrip(const T& m) {
    std::string text = encode(m);
    INFO(text);
    auto back = decode<T>(text);
    INFO((back ? std::string() : back.error().message()));
    REQUIRE(back);
    return *back;
}

/// The error of decoding TEXT as a T ("" when it decoded).
template <class T>
std::string errorOf(const std::string& text) {
    auto r = decode<T>(text);
    return r ? std::string() : r.error().message();
}

/// TEXT with its first FROM replaced by TO (which must be there).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

bool sameContainer(const ContainerEntry& a, const ContainerEntry& b) {
    return a.id == b.id && a.name == b.name && a.service == b.service && a.slot == b.slot && a.node == b.node &&
           a.generation == b.generation && a.incarnation == b.incarnation && a.restarts == b.restarts && a.status == b.status &&
           a.exitCode == b.exitCode && a.ready == b.ready && a.ip == b.ip && a.started == b.started;
}

bool sameEvent(const Event& a, const Event& b) {
    return a.id == b.id && a.time == b.time && a.kind == b.kind && a.service == b.service && a.container == b.container &&
           a.message == b.message;
}

bool sameNode(const NodeEntry& a, const NodeEntry& b) {
    return a.name == b.name && a.status == b.status && a.address == b.address && a.labels == b.labels &&
           a.containers == b.containers && a.cpus == b.cpus && a.memory == b.memory && a.version == b.version &&
           a.lastSeen == b.lastSeen;
}

std::vector<std::string> keys(const json::Value& o) {
    std::vector<std::string> out;
    for (const auto& [k, v] : o.asObject()) out.push_back(k);
    return out;
}

int64_t intOf(const json::Value& o, const char* key) {
    int64_t n = -1;
    const json::Value* v = o.find(key);
    REQUIRE(v);
    REQUIRE(v->toInt64(n));
    return n;
}

/// A struct that grew a field in its version 3: how a change is written.
struct Grown {
    static constexpr const char* kName = "Grown";
    static constexpr int kVersion = 3;
    std::string name;
    std::string zone = "default";  // since version 3
    void fields(wire::Io& io) {
        io.fields("name", name);
        if (io.version() >= 3) io.field("zone", zone);
    }
};

/// A copy of V with its N-th value (counted depth first, V itself is 0) replaced by WITH.
json::Value withNth(const json::Value& v, int& n, const json::Value& with) {
    if (n-- == 0) return with;
    if (v.isArray()) {
        json::Value out = json::Value::array();
        for (const auto& x : v.asArray()) out.push(withNth(x, n, with));
        return out;
    }
    if (v.isObject()) {
        json::Value out = json::Value::object();
        for (const auto& [k, x] : v.asObject()) out.set(k, withNth(x, n, with));
        return out;
    }
    return v;
}

/// The value withNth(V, N) replaces, or nullptr past the end.
const json::Value* nth(const json::Value& v, int& n) {
    if (n-- == 0) return &v;
    if (v.isArray())
        for (const auto& x : v.asArray())
            if (auto* found = nth(x, n)) return found;
    if (v.isObject())
        for (const auto& [k, x] : v.asObject())
            if (auto* found = nth(x, n)) return found;
    return nullptr;
}

}  // namespace

TEST_CASE("messages: every message survives encode and decode", "[messages]") {
    CHECK(roundTrip(ErrorReply{"no service \"x\""}).message == "no service \"x\"");
    auto apply = roundTrip(ApplyRequest{"web.yaml", "name: web\nimage: \"a\\\\b\"\n\ttab: é\n"});
    CHECK(apply.source == "web.yaml");
    CHECK(apply.text == "name: web\nimage: \"a\\\\b\"\n\ttab: é\n");
    auto applied = roundTrip(ApplyReply{"web", 12});
    CHECK((applied.name == "web" && applied.generation == 12));
    CHECK(roundTrip(ScaleRequest{1000}).replicas == 1000);
    auto scaled = roundTrip(ScaleReply{"web", 3, 0});
    CHECK((scaled.name == "web" && scaled.generation == 3 && scaled.replicas == 0));
    CHECK(roundTrip(DeleteReply{"web"}).name == "web");

    // The spec: every field, the optional probes and maxAge both set and not.
    Service full = fullService();
    Service bare;
    bare.name = "bare";
    bare.image = "busybox";
    auto services = roundTrip(ServiceList{{{"web", 2, full, 1, 3}, {"bare", 1, bare}}});
    REQUIRE(services.services.size() == 2);
    CHECK(services.services[0].name == "web");
    CHECK(services.services[0].generation == 2);
    CHECK(services.services[0].spec == full);
    CHECK((services.services[0].ready == 1 && services.services[0].desired == 3));
    CHECK(services.services[1].spec == bare);
    CHECK((services.services[1].ready == 0 && services.services[1].desired == 0));
    CHECK(serviceJson(services.services[0].spec) == serviceJson(full));
    auto entry = roundTrip(ServiceEntry{"web", 2, full, 2, 2});
    CHECK(entry.spec == full);
    CHECK(roundTrip(ServiceList{}).services.empty());

    auto cs = roundTrip(ContainerList{{container(false), container(true)}});
    REQUIRE(cs.containers.size() == 2);
    CHECK(sameContainer(cs.containers[0], container(false)));
    CHECK(sameContainer(cs.containers[1], container(true)));
    CHECK(cs.containers[0].node == "n2");
    CHECK(!cs.containers[0].exitCode);
    CHECK(cs.containers[1].exitCode == 137);
    CHECK(sameContainer(roundTrip(container(true)), container(true)));

    auto evs = roundTrip(EventList{{event(1), event(2)}});
    REQUIRE(evs.events.size() == 2);
    CHECK(sameEvent(evs.events[1], event(2)));
    CHECK(sameEvent(roundTrip(event(5)), event(5)));
    auto replicas = roundTrip(Replicas{3, 2});
    CHECK((replicas.desired == 3 && replicas.ready == 2));

    auto db = roundTrip(describeReply());
    CHECK(db.name == "web");
    CHECK(db.generation == 2);
    CHECK(db.updated == 1700000000999);
    CHECK(db.spec == full);
    CHECK((db.replicas.desired == 3 && db.replicas.ready == 1));
    REQUIRE(db.containers.size() == 2);
    CHECK(sameContainer(db.containers[0], container(false)));
    CHECK(sameContainer(db.containers[1], container(true)));
    REQUIRE(db.pending.size() == 2);
    CHECK((db.pending[1].slot == 2 && db.pending[1].reason == "no node has 64m of memory free"));
    REQUIRE(db.events.size() == 3);
    CHECK(sameEvent(db.events[2], event(3)));
    auto p = roundTrip(PendingReplica{4, "drained"});
    CHECK((p.slot == 4 && p.reason == "drained"));
}

TEST_CASE("messages: the cluster's messages survive encode and decode", "[messages]") {
    auto n = roundTrip(node("n1"));
    CHECK(sameNode(n, node("n1")));
    NodeEntry bare;
    bare.name = "n9";
    CHECK(sameNode(roundTrip(bare), bare));
    CHECK(roundTrip(bare).labels.empty());

    auto list = roundTrip(NodeList{{node("n1"), node("n2"), bare}});
    REQUIRE(list.nodes.size() == 3);
    CHECK(sameNode(list.nodes[0], node("n1")));
    CHECK(sameNode(list.nodes[1], node("n2")));
    CHECK(sameNode(list.nodes[2], bare));
    CHECK(roundTrip(NodeList{}).nodes.empty());

    auto label = roundTrip(NodeLabelRequest{{{"zone", "b"}, {"disk", "ssd"}, {"empty", ""}}, {"old", "gpu"}});
    CHECK(label.set == std::map<std::string, std::string>{{"zone", "b"}, {"disk", "ssd"}, {"empty", ""}});
    CHECK(label.remove == std::vector<std::string>{"old", "gpu"});
    auto none = roundTrip(NodeLabelRequest{});
    CHECK((none.set.empty() && none.remove.empty()));

    CHECK(sameNode(roundTrip(NodeReply{node("n3")}).node, node("n3")));
    const std::string token = "HULL1." + std::string(64, 'a') + ".s3cr3t";
    CHECK(roundTrip(JoinTokenReply{token}).token == token);

    auto master = roundTrip(MasterEntry{"m2", "10.250.0.2:7443", "follower"});
    CHECK((master.name == "m2" && master.address == "10.250.0.2:7443" && master.role == "follower"));
    auto status = roundTrip(clusterStatus());
    REQUIRE(status.masters.size() == 2);
    CHECK((status.masters[0].name == "m1" && status.masters[0].role == "leader"));
    CHECK((status.masters[1].address == "10.250.0.2:7443" && status.masters[1].role == "follower"));
    CHECK(status.leader == "m1");
    CHECK(status.store == "etcd:http://10.250.0.1:2379");
    CHECK(status.storeHealth == clusterStatus().storeHealth);
    REQUIRE(status.storeMembers.size() == 2);
    CHECK((status.storeMembers[0].healthy && status.storeMembers[0].leader && status.storeMembers[0].dbSize == 20480 &&
           status.storeMembers[0].version == "3.4.23"));
    CHECK((!status.storeMembers[1].healthy && status.storeMembers[1].error == "cannot connect: Connection refused"));
    CHECK((status.nodes == 3 && status.services == 7));
    // A version 2 status (an older master's) has neither: it still decodes.
    std::string v2 = encode(clusterStatus());
    const auto from = v2.find(",\"storeHealth\"");  // the last fields: up to the closing "}}"
    const auto to = v2.rfind("}}");
    INFO(v2);
    REQUIRE((from != std::string::npos && to != std::string::npos && to > from));
    v2.erase(from, to - from);
    const auto ver = v2.find("\"schemaVersion\":3");
    REQUIRE(ver != std::string::npos);
    v2.replace(ver, 17, "\"schemaVersion\":2");
    auto old = decode<ClusterStatus>(v2);
    INFO(v2 << ": " << (old ? "" : old.error().message()));
    REQUIRE(old);
    CHECK((old->storeHealth.empty() && old->storeMembers.empty() && old->nodes == 3));
}

TEST_CASE("messages: the wire is one JSON object under the message's name, each struct with its schemaVersion",
          "[messages]") {
    std::string text = encode(ApplyReply{"web", 3});
    CHECK(text == "{\"ApplyReply\":{\"schemaVersion\":2,\"name\":\"web\",\"generation\":3}}\n");
    // Nested structs carry theirs, each of them; the spec is serviceJson's, the one definition of its JSON.
    auto list = json::Value::parse(encode(ServiceList{{{"web", 1, fullService(), 2, 3}}}));
    REQUIRE(list);
    const json::Value& body = *list->find("ServiceList");
    CHECK(intOf(body, "schemaVersion") == 2);
    const json::Value& service = body.find("services")->asArray()[0];
    CHECK(keys(service) == std::vector<std::string>{"schemaVersion", "name", "generation", "spec", "ready", "desired", "vip"});
    CHECK(service.find("spec")->dump() == serviceJson(fullService()));
    auto cs = json::Value::parse(encode(ContainerList{{container(false), container(true)}}));
    REQUIRE(cs);
    for (const auto& c : cs->find("ContainerList")->find("containers")->asArray()) CHECK(intOf(c, "schemaVersion") == 3);
    CHECK(cs->find("ContainerList")->find("containers")->asArray()[0].find("exitCode")->isNull());
    CHECK(intOf(cs->find("ContainerList")->find("containers")->asArray()[1], "exitCode") == 137);
    auto n = json::Value::parse(encode(NodeReply{node("n1")}));
    REQUIRE(n);
    const json::Value& entry = *n->find("NodeReply")->find("node");
    CHECK(entry.find("labels")->dump() == R"({"sim":"true","zone":"a"})");
    CHECK(entry.find("version")->asString() == "0.1.0");  // the agent's, beside the struct's own
    CHECK(intOf(entry, "schemaVersion") == 2);
}

TEST_CASE("messages: a message written by hand decodes, fields in any order, unknown ones ignored", "[messages]") {
    auto apply = decode<ApplyRequest>(R"({"ApplyRequest": {"schemaVersion": 2, "source": "a.yaml", "text": "name: a"}})");
    REQUIRE(apply);
    CHECK(apply->source == "a.yaml");
    CHECK(apply->text == "name: a");
    auto cs = decode<ContainerList>(R"({"ContainerList": {"schemaVersion": 2, "containers": [
        {"schemaVersion": 2, "status": "running", "id": "c1", "name": "web-0-aaaa", "service": "web", "slot": 0,
         "node": "", "generation": 1, "restarts": 0, "exitCode": null, "ready": true, "ip": "10.88.0.2",
         "started": 5, "later": "ignored"},
        {"schemaVersion": 2, "id": "c2", "name": "web-1-bbbb", "service": "web", "slot": 1, "node": "n1",
         "generation": 1, "restarts": 2, "status": "exited", "exitCode": 1, "ready": false, "ip": "", "started": 6}]}})");
    INFO((cs ? "" : cs.error().message()));
    REQUIRE(cs);
    REQUIRE(cs->containers.size() == 2);
    CHECK(cs->containers[0].status == "running");
    CHECK(!cs->containers[0].exitCode);
    CHECK(cs->containers[1].restarts == 2);
    CHECK(cs->containers[1].node == "n1");
    CHECK(cs->containers[1].exitCode == 1);
    auto scale = decode<ScaleRequest>(R"({"ScaleRequest":{"schemaVersion":2,"replicas":4}})");
    REQUIRE(scale);
    CHECK(scale->replicas == 4);
    auto label = decode<NodeLabelRequest>(R"({"NodeLabelRequest": {"remove": [], "set": {"zone": "c"}, "schemaVersion": 2}})");
    REQUIRE(label);
    CHECK(label->set.at("zone") == "c");
}

TEST_CASE("messages: a field added in a later version is read only from the versions that write it", "[messages]") {
    Grown g;
    g.name = "a";
    g.zone = "b";
    json::Value written = wire::Io::write(g);
    CHECK(written.dump() == R"({"schemaVersion":3,"name":"a","zone":"b"})");
    Grown back;
    CHECK(wire::Io::readBody(written, back) == "");
    CHECK((back.name == "a" && back.zone == "b"));
    // From an older hull: no zone, and none needed.
    auto old = json::Value::parse(R"({"schemaVersion": 2, "name": "o"})");
    REQUIRE(old);
    Grown fromOld;
    CHECK(wire::Io::readBody(*old, fromOld) == "");
    CHECK((fromOld.name == "o" && fromOld.zone == "default"));
    // A version-3 body must have it.
    auto missing = json::Value::parse(R"({"schemaVersion": 3, "name": "o"})");
    REQUIRE(missing);
    Grown m;
    CHECK(wire::Io::readBody(*missing, m) == "zone: missing");
}

TEST_CASE("messages: a ContainerEntry carries its slot's incarnation since version 3, an older one's is 0",
          "[messages]") {
    ContainerEntry c = container(false);
    json::Value written = wire::Io::write(c);
    int64_t version = 0;
    CHECK((written.find("schemaVersion")->toInt64(version) && version == 3));
    REQUIRE(written.find("incarnation"));
    ContainerEntry back;
    CHECK(wire::Io::readBody(written, back) == "");
    CHECK(back.incarnation == 2);
    CHECK(back == c);
    // From an older hull (version 2, no incarnation): 0.
    auto old = json::Value::parse(R"({"schemaVersion": 2, "id": "a", "name": "web-0-1", "service": "web", "slot": 0,
        "node": "", "generation": 3, "restarts": 0, "status": "running", "exitCode": null, "ready": true, "ip": "",
        "started": 5})");
    REQUIRE(old);
    ContainerEntry fromOld;
    CHECK(wire::Io::readBody(*old, fromOld) == "");
    CHECK(fromOld.generation == 3);
    CHECK(fromOld.incarnation == 0);
    // Version 3 must have it.
    auto missing = json::Value::parse(replaced(old->dump(), "\"schemaVersion\":2", "\"schemaVersion\":3"));
    REQUIRE(missing);
    ContainerEntry m;
    CHECK(wire::Io::readBody(*missing, m) == "incarnation: missing");
}

TEST_CASE("messages: garbage, another message, a wrong type or another version is an error naming the problem",
          "[messages]") {
    // Not JSON: where, by our parser.
    auto e = errorOf<ApplyRequest>("{\"ApplyRequest\": ");
    CHECK(e.find("bad ApplyRequest message: not JSON: line 1, column 18: ") == 0);
    CHECK(errorOf<ApplyRequest>("").find("not JSON") != std::string::npos);
    CHECK(errorOf<ApplyRequest>("[1, 2]") == "bad ApplyRequest message: expected an object, {\"ApplyRequest\": {...}}");
    // Another message.
    e = errorOf<ApplyReply>(encode(ApplyRequest{"a", "b"}));
    CHECK(e == "bad ApplyReply message: its key is \"ApplyRequest\", not \"ApplyReply\"");
    CHECK(errorOf<ApplyReply>("{}") == "bad ApplyReply message: an empty object, not {\"ApplyReply\": ...}");
    // A field of the wrong type, and one missing: named with its path.
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"schemaVersion": 2, "source": "a", "text": 5}})");
    CHECK(e == "bad ApplyRequest message: text: expected a string");
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"schemaVersion": 2, "source": "a"}})");
    CHECK(e == "bad ApplyRequest message: text: missing");
    std::string two = encode(ContainerList{{container(false), container(true)}});
    e = errorOf<ContainerList>(replaced(two, "\"exitCode\":137", "\"exitCode\":{}"));
    CHECK(e == "bad ContainerList message: containers[1].exitCode: expected an integer or null");
    e = errorOf<ContainerList>(replaced(two, "\"ready\":true", "\"ready\":1"));
    CHECK(e == "bad ContainerList message: containers[0].ready: expected true or false");
    e = errorOf<ContainerList>(replaced(two, "\"slot\":2", "\"slot\":2147483648"));
    CHECK(e == "bad ContainerList message: containers[0].slot: out of range (a 32-bit integer)");
    e = errorOf<ContainerList>(replaced(two, ",\"node\":\"n2\"", ""));
    CHECK(e == "bad ContainerList message: containers[0].node: missing");
    e = errorOf<DescribeReply>(replaced(encode(describeReply()), "\"exitCode\":137", "\"exitCode\":1.5"));
    CHECK(e == "bad DescribeReply message: containers[1].exitCode: expected an integer");
    CHECK(errorOf<ApplyRequest>(R"({"ApplyRequest": 5})") == "bad ApplyRequest message: expected an object");
    e = errorOf<ScaleRequest>(R"({"ScaleRequest": {"schemaVersion": 2, "replicas": 1.5}})");
    CHECK(e == "bad ScaleRequest message: replicas: expected an integer");
    e = errorOf<ScaleRequest>(R"({"ScaleRequest": {"schemaVersion": 2, "replicas": 18446744073709551615}})");
    CHECK(e == "bad ScaleRequest message: replicas: out of range (a 64-bit integer)");
    e = errorOf<ContainerList>(R"({"ContainerList": {"schemaVersion": 2, "containers": {}}})");
    CHECK(e == "bad ContainerList message: containers: expected an array");
    e = errorOf<ContainerList>(R"({"ContainerList": {"schemaVersion": 2, "containers": [7]}})");
    CHECK(e == "bad ContainerList message: containers[0]: expected an object");
    // Inside a list, inside the spec (whose errors are serviceFromJson's).
    std::string text = encode(ServiceList{{{"web", 1, fullService()}}});
    e = errorOf<ServiceList>(replaced(text, "\"on-failure\"", "\"sometimes\""));
    CHECK(e == "bad ServiceList message: services[0].spec: restart: unknown \"sometimes\"");
    e = errorOf<ServiceList>(replaced(text, "\"restart\":\"on-failure\"", "\"restart\":7"));
    CHECK(e == "bad ServiceList message: services[0].spec: restart: must be a string, not a number");
    e = errorOf<ServiceList>(replaced(text, "\"spec\":", "\"spec\":\"web\",\"was\":"));
    CHECK(e == "bad ServiceList message: services[0].spec: expected an object");
    // Unversioned, and cereal's encoding (version 1): refused, saying so.
    e = errorOf<ApplyReply>(R"({"ApplyReply": {"name": "a", "generation": 1}})");
    CHECK(e == "bad ApplyReply message: schemaVersion: missing");
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"cereal_class_version": 1, "source": "a.yaml", "text": "name: a"}})");
    CHECK(e == "bad ApplyRequest message: ApplyRequest from an older hull (cereal's encoding, with cereal_class_version, "
               "not schemaVersion); upgrade the hull that sent it");
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"schemaVersion": 1, "source": "a", "text": "b"}})");
    CHECK(e == "bad ApplyRequest message: ApplyRequest version 1 is older than this hull reads (2 and up); upgrade "
               "the hull that sent it");
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"schemaVersion": "2", "source": "a", "text": "b"}})");
    CHECK(e == "bad ApplyRequest message: schemaVersion: expected an integer");
    // A version from a later hull: refused, by name, at the top and inside.
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"schemaVersion": 7, "source": "a", "text": "b"}})");
    CHECK(e == "bad ApplyRequest message: ApplyRequest version 7 is newer than this hull reads (up to 2); upgrade hull");
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"schemaVersion": 18446744073709551615, "source": "a"}})");
    CHECK(e == "bad ApplyRequest message: ApplyRequest version 18446744073709551615 is newer than this hull reads "
               "(up to 2); upgrade hull");
    e = errorOf<ContainerList>(replaced(two, "\"schemaVersion\":3,\"id\"", "\"schemaVersion\":9,\"id\""));
    CHECK(e == "bad ContainerList message: containers[0]: ContainerEntry version 9 is newer than this hull reads (up "
               "to 3); upgrade hull");
    e = errorOf<DescribeReply>(replaced(encode(describeReply()), "\"replicas\":{\"schemaVersion\":2",
                                        "\"replicas\":{\"schemaVersion\":3"));
    CHECK(e == "bad DescribeReply message: replicas: Replicas version 3 is newer than this hull reads (up to 2); "
               "upgrade hull");
}

TEST_CASE("messages: the cluster's messages name what is wrong with them", "[messages]") {
    std::string nodes = encode(NodeList{{node("n1"), node("n2")}});
    auto e = errorOf<NodeList>(replaced(nodes, "\"zone\":\"a\"}", "\"zone\":1}"));
    CHECK(e == "bad NodeList message: nodes[0].labels.zone: expected a string");
    e = errorOf<NodeList>(replaced(nodes, "\"labels\":", "\"labels\":[],\"was\":"));
    CHECK(e == "bad NodeList message: nodes[0].labels: expected an object");
    e = errorOf<NodeList>(replaced(nodes, "\"cpus\":2.5", "\"cpus\":\"2.5\""));
    CHECK(e == "bad NodeList message: nodes[0].cpus: expected a number");
    e = errorOf<NodeList>(replaced(nodes, "\"lastSeen\":1700000000456}]", "\"lastSeen\":null}]"));
    CHECK(e == "bad NodeList message: nodes[1].lastSeen: expected an integer");
    CHECK(errorOf<NodeReply>(R"({"NodeReply": {"schemaVersion": 2}})") == "bad NodeReply message: node: missing");
    e = errorOf<NodeReply>(replaced(encode(NodeReply{node("n1")}), ",\"version\":\"0.1.0\"", ""));
    CHECK(e == "bad NodeReply message: node.version: missing");
    e = errorOf<NodeLabelRequest>(R"({"NodeLabelRequest": {"schemaVersion": 2, "set": {}, "remove": "zone"}})");
    CHECK(e == "bad NodeLabelRequest message: remove: expected an array");
    e = errorOf<NodeLabelRequest>(R"({"NodeLabelRequest": {"schemaVersion": 2, "set": {}, "remove": ["a", 2]}})");
    CHECK(e == "bad NodeLabelRequest message: remove[1]: expected a string");
    e = errorOf<JoinTokenReply>(R"({"JoinTokenReply": {"schemaVersion": 2, "token": null}})");
    CHECK(e == "bad JoinTokenReply message: token: expected a string");
    std::string status = encode(clusterStatus());
    e = errorOf<ClusterStatus>(replaced(status, ",\"role\":\"follower\"", ""));
    CHECK(e == "bad ClusterStatus message: masters[1].role: missing");
    e = errorOf<ClusterStatus>(replaced(status, "\"nodes\":3", "\"nodes\":-3.5"));
    CHECK(e == "bad ClusterStatus message: nodes: expected an integer");
    e = errorOf<ClusterStatus>(replaced(status, "\"ClusterStatus\"", "\"NodeList\""));
    CHECK(e == "bad ClusterStatus message: its key is \"NodeList\", not \"ClusterStatus\"");
    std::string d = encode(describeReply());
    e = errorOf<DescribeReply>(replaced(d, "\"slot\":2,\"reason\"", "\"slot\":\"2\",\"reason\""));
    CHECK(e == "bad DescribeReply message: pending[1].slot: expected an integer");
    e = errorOf<DescribeReply>(replaced(d, ",\"pending\":", ",\"was\":"));
    CHECK(e == "bad DescribeReply message: pending: missing");
    e = errorOf<ServiceList>(replaced(encode(ServiceList{{{"web", 1, fullService(), 1, 2}}}), "\"desired\":2",
                                      "\"desired\":true"));
    CHECK(e == "bad ServiceList message: services[0].desired: expected an integer");
}

TEST_CASE("messages: decode survives any input: large garbage, deep nesting, a wrong type anywhere", "[messages]") {
    const size_t mib = size_t(1) << 20;
    std::mt19937 random(42);
    std::string garbage(mib, '\0');
    for (auto& c : garbage) c = char(random());
    CHECK(errorOf<DescribeReply>(garbage).find("bad DescribeReply message: not JSON: line ") == 0);
    CHECK(errorOf<DescribeReply>(std::string(mib, '[')).find("nesting deeper than") != std::string::npos);
    CHECK(errorOf<DescribeReply>(std::string(mib, '{')).find("not JSON") != std::string::npos);
    std::string deep = R"({"ScaleRequest": {"schemaVersion": 2, "replicas": )" + std::string(10000, '[') +
                       std::string(10000, ']') + "}}";
    CHECK(errorOf<ScaleRequest>(deep).find("nesting deeper than") != std::string::npos);
    std::string nested = std::string(400, '[') + std::string(400, ']');
    deep = R"({"ScaleRequest": {"schemaVersion": 2, "replicas": )" + nested + "}}";
    CHECK(errorOf<ScaleRequest>(deep) == "bad ScaleRequest message: replicas: expected an integer");
    // A megabyte in a field is just a long string.
    auto big = decode<ApplyRequest>(encode(ApplyRequest{"a", std::string(mib, 'x')}));
    REQUIRE(big);
    CHECK(big->text.size() == mib);

    // Every value of a full DescribeReply, in turn, replaced by one of another
    // type: an error (where null is not allowed), and never a crash.
    auto doc = json::Value::parse(encode(describeReply()));
    REQUIRE(doc);
    const json::Value wrong[] = {json::Value(), json::Value(true), json::Value("x"), json::Value(1.5),
                                 json::Value(int64_t(-1)), json::Value::array(), json::Value::object()};
    int values = 0, errors = 0;
    for (int i = 0;; ++i) {
        int at = i;
        const json::Value* old = nth(*doc, at);
        if (!old) break;
        ++values;
        for (const auto& with : wrong) {
            int n = i;
            std::string text = withNth(*doc, n, with).dump();
            auto r = decode<DescribeReply>(text);
            if (!r) {
                ++errors;
                CHECK(r.error().message().find("bad DescribeReply message: ") == 0);
                continue;
            }
            // Decoded: only a value of the same type, or where a null may be (a probe, maxAge, an exit code).
            INFO(text);
            CHECK((with.type() == old->type() || with.isNull() || old->isNull()));
        }
    }
    CHECK(values > 100);
    CHECK(errors > values * 5);
}

TEST_CASE("messages: the CLI's JSON keeps the API's shape, with the cluster's fields", "[messages]") {
    auto cs = outputJson(ContainerList{{container(false), container(true)}});
    REQUIRE(cs.isArray());
    REQUIRE(cs.asArray().size() == 2);
    using Keys = std::vector<std::string>;
    CHECK(keys(cs.asArray()[0]) ==
          Keys{"id", "name", "service", "slot", "node", "generation", "incarnation", "restarts", "status", "ready", "ip", "started"});
    CHECK(keys(cs.asArray()[1]) == Keys{"id", "name", "service", "slot", "node", "generation", "incarnation", "restarts",
                                        "status", "exitCode", "ready", "ip", "started"});
    CHECK(cs.asArray()[1].dump() ==
          R"({"id":"0123456789abcdef","name":"web-0-1a2b","service":"web","slot":2,"node":"","generation":7,)"
          R"("incarnation":0,"restarts":4,"status":"exited","exitCode":137,"ready":false,"ip":"","started":1700000000123})");
    CHECK(cs.asArray()[0].find("node")->asString() == "n2");

    auto evs = outputJson(EventList{{event(1)}});
    CHECK(evs.dump() ==
          R"j([{"id":1,"time":1700000000001,"kind":"start","service":"web","container":"0123456789ab","message":"restart (slot 0)"}])j");

    Service full = fullService();
    auto ss = outputJson(ServiceList{{{"web", 2, full, 1, 3}}});
    CHECK(ss.dump() == R"([{"name":"web","generation":2,"replicas":3,"ready":1,"spec":)" + serviceJson(full) + "}]");

    DescribeReply d = describeReply();
    d.containers = {container(false)};
    d.events = {event(1)};
    auto dj = outputJson(d);
    CHECK(keys(dj) == Keys{"name", "generation", "updated", "spec", "replicas", "containers", "pending", "events"});
    CHECK(dj.find("replicas")->dump() == R"({"desired":3,"ready":1})");
    CHECK(dj.find("spec")->dump() == serviceJson(full));
    CHECK(dj.find("pending")->dump() ==
          R"([{"slot":1,"reason":"no node matches node.labels.zone == a"},{"slot":2,"reason":"no node has 64m of memory free"}])");
    CHECK(keys(dj.find("events")->asArray()[0]) == Keys{"id", "time", "kind", "container", "message"});
    d.pending.clear();
    CHECK(outputJson(d).find("pending")->dump() == "[]");

    auto nodes = outputJson(NodeList{{node("n1")}});
    CHECK(nodes.dump() ==
          R"([{"name":"n1","status":"drained","address":"10.250.0.12","labels":{"sim":"true","zone":"a"},)"
          R"("containers":12,"cpus":2.5,"memory":8589934592}])");
    CHECK(outputJson(NodeList{}).dump() == "[]");
    NodeEntry unlabelled;
    unlabelled.name = "n2";
    unlabelled.cpus = 4;
    CHECK(outputJson(NodeList{{unlabelled}}).asArray()[0].find("labels")->dump() == "{}");
    CHECK(outputJson(NodeList{{unlabelled}}).asArray()[0].find("cpus")->dump() == "4.0");

    CHECK(outputJson(clusterStatus()).dump() ==
          R"({"masters":[{"name":"m1","address":"10.250.0.1:7443","role":"leader"},)"
          R"({"name":"m2","address":"10.250.0.2:7443","role":"follower"}],"leader":"m1",)"
          R"("store":"etcd:http://10.250.0.1:2379","storeHealth":"1 of 2 etcd members answer with a leader: no quorum, writes fail",)"
          R"("storeMembers":[{"endpoint":"http://10.250.0.1:2379","healthy":true,"leader":true,"version":"3.4.23","dbSize":20480,"error":""},)"
          R"({"endpoint":"http://10.250.0.2:2379","healthy":false,"leader":false,"version":"","dbSize":0,"error":"cannot connect: Connection refused"}],)"
          R"("nodes":3,"services":7})");
}
