#include <catch2/catch.hpp>

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
    c.generation = 7;
    c.restarts = 4;
    c.status = ended ? "exited" : "running";
    if (ended) c.exitCode = 137;
    c.ready = !ended;
    c.ip = ended ? "" : "10.88.0.5";
    c.started = 1700000000123;
    return c;
}

Event event(int64_t id) { return {id, 1700000000000 + id, "start", "web", "0123456789ab", "restart (slot 0)"}; }

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

bool sameContainer(const ContainerEntry& a, const ContainerEntry& b) {
    return a.id == b.id && a.name == b.name && a.service == b.service && a.slot == b.slot && a.generation == b.generation &&
           a.restarts == b.restarts && a.status == b.status && a.exitCode == b.exitCode && a.ready == b.ready &&
           a.ip == b.ip && a.started == b.started;
}

bool sameEvent(const Event& a, const Event& b) {
    return a.id == b.id && a.time == b.time && a.kind == b.kind && a.service == b.service && a.container == b.container &&
           a.message == b.message;
}

std::vector<std::string> keys(const json::Value& o) {
    std::vector<std::string> out;
    for (const auto& [k, v] : o.asObject()) out.push_back(k);
    return out;
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
    auto services = roundTrip(ServiceList{{{"web", 2, full}, {"bare", 1, bare}}});
    REQUIRE(services.services.size() == 2);
    CHECK(services.services[0].name == "web");
    CHECK(services.services[0].generation == 2);
    CHECK(services.services[0].spec == full);
    CHECK(services.services[1].spec == bare);
    CHECK(serviceJson(services.services[0].spec) == serviceJson(full));
    auto entry = roundTrip(ServiceEntry{"web", 2, full});
    CHECK(entry.spec == full);
    CHECK(roundTrip(ServiceList{}).services.empty());

    auto cs = roundTrip(ContainerList{{container(false), container(true)}});
    REQUIRE(cs.containers.size() == 2);
    CHECK(sameContainer(cs.containers[0], container(false)));
    CHECK(sameContainer(cs.containers[1], container(true)));
    CHECK(!cs.containers[0].exitCode);
    CHECK(cs.containers[1].exitCode == 137);
    CHECK(sameContainer(roundTrip(container(true)), container(true)));

    auto evs = roundTrip(EventList{{event(1), event(2)}});
    REQUIRE(evs.events.size() == 2);
    CHECK(sameEvent(evs.events[1], event(2)));
    CHECK(sameEvent(roundTrip(event(5)), event(5)));
    auto replicas = roundTrip(Replicas{3, 2});
    CHECK((replicas.desired == 3 && replicas.ready == 2));

    DescribeReply d;
    d.name = "web";
    d.generation = 2;
    d.updated = 1700000000999;
    d.spec = full;
    d.replicas = {3, 1};
    d.containers = {container(false)};
    d.events = {event(1), event(2), event(3)};
    auto db = roundTrip(d);
    CHECK(db.name == "web");
    CHECK(db.generation == 2);
    CHECK(db.updated == 1700000000999);
    CHECK(db.spec == full);
    CHECK((db.replicas.desired == 3 && db.replicas.ready == 1));
    REQUIRE(db.containers.size() == 1);
    CHECK(sameContainer(db.containers[0], container(false)));
    REQUIRE(db.events.size() == 3);
    CHECK(sameEvent(db.events[2], event(3)));
}

TEST_CASE("messages: the wire is cereal JSON, under the message's name, with its version", "[messages]") {
    auto v = json::Value::parse(encode(ApplyReply{"web", 3}));
    REQUIRE(v);
    const json::Value* m = v->find("ApplyReply");
    REQUIRE(m);
    int64_t n = 0;
    REQUIRE(m->find("cereal_class_version"));
    CHECK((m->find("cereal_class_version")->toInt64(n) && n == 1));
    CHECK(m->find("name")->asString() == "web");
    CHECK((m->find("generation")->toInt64(n) && n == 3));
    // Nested classes carry theirs too (the first of each kind in a message).
    auto list = json::Value::parse(encode(ServiceList{{{"web", 1, fullService()}}}));
    REQUIRE(list);
    const json::Value& spec = *list->find("ServiceList")->find("services")->asArray()[0].find("spec");
    CHECK(spec.find("cereal_class_version"));
    CHECK(spec.find("restart")->asString() == "on-failure");
    CHECK((spec.find("stopGracePeriod")->toInt64(n) && n == 3000));
    CHECK(spec.find("backoff")->find("cereal_class_version"));
}

TEST_CASE("messages: a version-1 message written by hand decodes", "[messages]") {
    auto apply = decode<ApplyRequest>(R"({"ApplyRequest": {"cereal_class_version": 1, "source": "a.yaml", "text": "name: a"}})");
    REQUIRE(apply);
    CHECK(apply->source == "a.yaml");
    CHECK(apply->text == "name: a");
    // Fields in any order, unknown ones ignored; the version only on the first of a kind.
    auto cs = decode<ContainerList>(R"({"ContainerList": {"cereal_class_version": 1, "containers": [
        {"cereal_class_version": 1, "status": "running", "id": "c1", "name": "web-0-aaaa", "service": "web", "slot": 0,
         "generation": 1, "restarts": 0, "exitCode": {"nullopt": true}, "ready": true, "ip": "10.88.0.2",
         "started": 5, "later": "ignored"},
        {"id": "c2", "name": "web-1-bbbb", "service": "web", "slot": 1, "generation": 1, "restarts": 2,
         "status": "exited", "exitCode": {"nullopt": false, "data": 1}, "ready": false, "ip": "", "started": 6}]}})");
    INFO((cs ? "" : cs.error().message()));
    REQUIRE(cs);
    REQUIRE(cs->containers.size() == 2);
    CHECK(cs->containers[0].status == "running");
    CHECK(!cs->containers[0].exitCode);
    CHECK(cs->containers[1].restarts == 2);
    CHECK(cs->containers[1].exitCode == 1);
    auto scale = decode<ScaleRequest>(R"({"ScaleRequest":{"cereal_class_version":1,"replicas":4}})");
    REQUIRE(scale);
    CHECK(scale->replicas == 4);
}

TEST_CASE("messages: garbage, another message, a wrong type or a newer version is an error naming the problem",
          "[messages]") {
    // Not JSON: where, by our parser.
    auto e = errorOf<ApplyRequest>("{\"ApplyRequest\": ");
    CHECK(e.find("bad ApplyRequest message: not JSON") != std::string::npos);
    CHECK(e.find("line 1") != std::string::npos);
    CHECK(errorOf<ApplyRequest>("").find("not JSON") != std::string::npos);
    CHECK(errorOf<ApplyRequest>("[1, 2]").find("expected an object") != std::string::npos);
    // Another message.
    e = errorOf<ApplyReply>(encode(ApplyRequest{"a", "b"}));
    CHECK(e == "bad ApplyReply message: its key is \"ApplyRequest\", not \"ApplyReply\"");
    CHECK(errorOf<ApplyReply>("{}") == "bad ApplyReply message: an empty object, not {\"ApplyReply\": ...}");
    // A field of the wrong type, and one missing: named with its path.
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"cereal_class_version": 1, "source": "a", "text": 5}})");
    CHECK(e == "bad ApplyRequest message: text: expected a string");
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"cereal_class_version": 1, "source": "a"}})");
    CHECK(e == "bad ApplyRequest message: text: missing");
    e = errorOf<ContainerList>(R"({"ContainerList": {"cereal_class_version": 1, "containers": [{"cereal_class_version": 1,
        "id": "c", "name": "n", "service": "s", "slot": 0, "generation": 1, "restarts": 0, "status": "running",
        "exitCode": {}, "ready": true, "ip": "", "started": 0}]}})");
    CHECK(e == "bad ContainerList message: containers.exitCode: missing \"nullopt\"");
    CHECK(errorOf<ApplyRequest>(R"({"ApplyRequest": 5})") == "bad ApplyRequest message: expected an object");
    e = errorOf<ScaleRequest>(R"({"ScaleRequest": {"cereal_class_version": 1, "replicas": 1.5}})");
    CHECK(e == "bad ScaleRequest message: replicas: expected an integer");
    e = errorOf<ContainerList>(R"({"ContainerList": {"cereal_class_version": 1, "containers": {}}})");
    CHECK(e == "bad ContainerList message: containers: expected an array");
    // Inside a list, inside the spec.
    std::string text = encode(ServiceList{{{"web", 1, fullService()}}});
    auto at = text.find("\"on-failure\"");
    REQUIRE(at != std::string::npos);
    e = errorOf<ServiceList>(text.substr(0, at) + "\"sometimes\"" + text.substr(at + 12));
    CHECK(e == "bad ServiceList message: services.spec.restart: unknown \"sometimes\" (always, on-failure or never)");
    at = text.find("\"cpus\"");
    REQUIRE(at != std::string::npos);
    e = errorOf<ServiceList>(text.substr(0, at) + "\"cpus\": \"lots\", \"was\"" + text.substr(at + 6));
    CHECK(e == "bad ServiceList message: services.spec.requests.cpus: expected a number");
    // Unversioned.
    e = errorOf<ApplyReply>(R"({"ApplyReply": {"name": "a", "generation": 1}})");
    CHECK(e.find("cereal_class_version") != std::string::npos);
    // A version from a later hull: refused, by name, at the top and inside.
    e = errorOf<ApplyRequest>(R"({"ApplyRequest": {"cereal_class_version": 2, "source": "a", "text": "b"}})");
    CHECK(e == "bad ApplyRequest message: ApplyRequest version 2 is newer than this hull reads (up to 1); upgrade hull");
    at = text.find("\"spec\"");
    auto v = text.find("\"cereal_class_version\": 1", at);
    REQUIRE(v != std::string::npos);
    e = errorOf<ServiceList>(text.substr(0, v) + "\"cereal_class_version\": 9" + text.substr(v + 25));
    CHECK(e == "bad ServiceList message: services.spec: Service version 9 is newer than this hull reads (up to 1); "
               "upgrade hull");
}

TEST_CASE("messages: the CLI's JSON keeps the API's shape from before cereal", "[messages]") {
    auto cs = outputJson(ContainerList{{container(false), container(true)}});
    REQUIRE(cs.isArray());
    REQUIRE(cs.asArray().size() == 2);
    using Keys = std::vector<std::string>;
    CHECK(keys(cs.asArray()[0]) ==
          Keys{"id", "name", "service", "slot", "generation", "restarts", "status", "ready", "ip", "started"});
    CHECK(keys(cs.asArray()[1]) ==
          Keys{"id", "name", "service", "slot", "generation", "restarts", "status", "exitCode", "ready", "ip", "started"});
    CHECK(cs.asArray()[1].dump() ==
          R"({"id":"0123456789abcdef","name":"web-0-1a2b","service":"web","slot":2,"generation":7,"restarts":4,)"
          R"("status":"exited","exitCode":137,"ready":false,"ip":"","started":1700000000123})");

    auto evs = outputJson(EventList{{event(1)}});
    CHECK(evs.dump() ==
          R"j([{"id":1,"time":1700000000001,"kind":"start","service":"web","container":"0123456789ab","message":"restart (slot 0)"}])j");

    Service full = fullService();
    auto ss = outputJson(ServiceList{{{"web", 2, full}}});
    CHECK(ss.dump() == R"([{"name":"web","generation":2,"spec":)" + serviceJson(full) + "}]");

    DescribeReply d;
    d.name = "web";
    d.generation = 2;
    d.updated = 99;
    d.spec = full;
    d.replicas = {3, 1};
    d.containers = {container(false)};
    d.events = {event(1)};
    auto dj = outputJson(d);
    CHECK(keys(dj) == Keys{"name", "generation", "updated", "spec", "replicas", "containers", "events"});
    CHECK(dj.find("replicas")->dump() == R"({"desired":3,"ready":1})");
    CHECK(dj.find("spec")->dump() == serviceJson(full));
    CHECK(keys(dj.find("events")->asArray()[0]) == Keys{"id", "time", "kind", "container", "message"});
}
