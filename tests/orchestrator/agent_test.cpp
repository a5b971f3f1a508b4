// `hull node` as a user runs it: a real agent process on its API socket, real
// containers, kill -9, an agent crash and restart, bad input. In a network
// namespace of its own, with a temp state dir.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <thread>

#include "netns/netns_support.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::test;

namespace {

struct Node {
    TempDir state{"hull-node"};
    pid_t pid = -1;
    void start() {
        ::unlink((state / "node.sock").c_str());  // a killed agent leaves its socket behind
        pid = ::fork();
        if (pid == 0) {
            int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(null, 2);
            ::execl(binPath("hull").c_str(), "hull", "--state-dir", state.path().c_str(), "node", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 100 && !sys::exists(state / "node.sock"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    void kill(int sig) {
        if (pid > 0) {
            ::kill(pid, sig);
            ::waitpid(pid, nullptr, 0);
            pid = -1;
        }
    }
    ~Node() {
        kill(SIGKILL);
        // Containers outlive the agent by design: remove them for the next test.
        auto ps = hull({"ps", "-a", "--output", "json"});
        if (auto v = json::Value::parse(ps.out); v && v->isArray())
            for (const auto& c : v->asArray()) hull({"rm", "-f", c.find("id")->asString()});
    }
    RunResult hull(std::vector<std::string> args) const {
        args.insert(args.begin(), {binPath("hull"), "--state-dir", state.path()});
        return run(args);
    }
    json::Value containers() const {
        auto v = json::Value::parse(hull({"get", "containers", "--output", "json"}).out);
        return v && v->isArray() ? *v : json::Value::array();
    }
};

/// The agent's tests wait longer by default: starts go through the agent's loop.
bool eventually(const std::function<bool()>& cond, int ms = 8000) { return waitFor(cond, ms); }

size_t runningCount(const json::Value& cs) {
    size_t n = 0;
    if (!cs.isArray()) return 0;
    for (const auto& c : cs.asArray()) n += c.find("status")->asString() == "running";
    return n;
}

}  // namespace

TEST_CASE("node: keeps replicas running through kill -9 and an agent crash; bad input changes nothing",
          "[root][net][node]") {
    if (!isRoot()) return;
    std::string images = std::string(HULL_BIN_DIR) + "/../images/busybox";
    REQUIRE(run({std::string(HULL_SOURCE_DIR) + "/scripts/make-busybox-image", images}).status == 0);
    TestNetns host("node");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", images + "/busybox.oci.tar"}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "svc.yaml",
                     "name: sleeper\nimage: hull.local/busybox\ncommand: [sleep, '1000']\nreplicas: 2\n"
                     "backoff: {initial: 100ms, factor: 2, max: 2s, resetAfter: 60s}\nstopGracePeriod: 1s\n");
    auto applied = node.hull({"apply", "-f", node.state / "svc.yaml"});
    INFO(applied.err);
    REQUIRE(applied.status == 0);
    bool up = eventually([&] { return runningCount(node.containers()) == 2; });
    INFO(node.hull({"events"}).out << node.hull({"get", "containers"}).out);
    REQUIRE(up);
    // Re-applying the same file changes nothing.
    CHECK(node.hull({"apply", "-f", node.state / "svc.yaml"}).out.find("generation 1") != std::string::npos);

    UNSCOPED_INFO("stage: kill -9");
    // kill -9 of a container's process: a replacement runs, with the restart counted.
    auto ps = json::Value::parse(node.hull({"ps", "--output", "json"}).out);
    REQUIRE(ps);
    int64_t victim = 0;
    REQUIRE(ps->asArray()[0].find("pid")->toInt64(victim));
    ::kill(pid_t(victim), SIGKILL);
    CHECK(eventually([&] {
        auto cs = node.containers();
        int64_t restarts = 0;
        for (const auto& c : cs.asArray())
            if (c.find("status")->asString() == "running") {
                int64_t r = 0;
                c.find("restarts")->toInt64(r);
                restarts += r;
            }
        return runningCount(cs) == 2 && restarts == 1;
    }));

    UNSCOPED_INFO("stage: agent crash");
    // The agent dies; the containers do not; the restarted agent adopts them as they are.
    std::set<std::string> before;
    auto cs1 = node.containers();  // (kept: a temporary's array would dangle in the loop)
    for (const auto& c : cs1.asArray()) before.insert(c.find("id")->asString());
    node.kill(SIGKILL);
    auto psAfter = json::Value::parse(node.hull({"ps", "--output", "json"}).out);
    REQUIRE(psAfter);
    CHECK(runningCount(*psAfter) == 2);
    node.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    std::set<std::string> after;
    auto cs2 = node.containers();
    for (const auto& c : cs2.asArray()) after.insert(c.find("id")->asString());
    CHECK(after == before);

    UNSCOPED_INFO("stage: bad input");
    // Bad input: a clear error, and nothing applied.
    writeFileOrThrow(node.state / "bad.yaml", "name: broken\nimage: hull.local/busybox\nreplicas: -1\n");
    auto bad = node.hull({"apply", "-f", node.state / "bad.yaml"});
    CHECK(bad.status != 0);
    CHECK(bad.err.find("replicas") != std::string::npos);
    writeFileOrThrow(node.state / "unknown.yaml", "name: other\nimage: hull.local/busybox\nreplicaz: 2\n");
    auto unknown = node.hull({"apply", "-f", node.state / "unknown.yaml"});
    CHECK(unknown.status != 0);
    CHECK(unknown.err.find("replicaz") != std::string::npos);
    auto services = json::Value::parse(node.hull({"get", "services", "--output", "json"}).out);
    REQUIRE(services);
    CHECK(services->asArray().size() == 1);

    // delete: the containers go.
    REQUIRE(node.hull({"delete", "sleeper"}).status == 0);
    CHECK(eventually([&] { return node.containers().asArray().empty(); }));
}

namespace {
std::string busyboxImage() {
    std::string images = std::string(HULL_BIN_DIR) + "/../images/busybox";
    REQUIRE(run({std::string(HULL_SOURCE_DIR) + "/scripts/make-busybox-image", images}).status == 0);
    return images + "/busybox.oci.tar";
}
int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

TEST_CASE("node: a failing liveness probe gets the container replaced", "[root][net][node]") {
    if (!isRoot()) return;
    std::string image = busyboxImage();
    TestNetns host("live");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    TempDir www("hull-www");
    writeFileOrThrow(www / "healthz", "ok\n");
    node.start();
    writeFileOrThrow(node.state / "web.yaml",
                     "name: web\nimage: hull.local/busybox\ncommand: [httpd, -f, -p, '80', -h, /www]\n"
                     "volumes: ['" + www.path() + ":/www']\n"
                     "probes:\n  liveness: {http: {port: 80, path: /healthz}, period: 200ms, timeout: 200ms, failureThreshold: 3}\n");
    auto applied = node.hull({"apply", "-f", node.state / "web.yaml"});
    INFO(applied.err);
    REQUIRE(applied.status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 1; }));
    auto first = node.containers();
    std::string oldId = first.asArray()[0].find("id")->asString();
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    CHECK(node.containers().asArray()[0].find("id")->asString() == oldId);  // healthy: left alone
    // The health URL starts failing: replaced within period x threshold (+ the agent's tick).
    ::unlink((www / "healthz").c_str());
    int64_t broke = nowMs();
    std::string newId;
    REQUIRE(eventually([&] {
        auto cs = node.containers();
        for (const auto& c : cs.asArray())
            if (c.find("id")->asString() != oldId && c.find("status")->asString() == "running") newId = c.find("id")->asString();
        return !newId.empty();
    }));
    int64_t took = nowMs() - broke;
    INFO("replaced after " << took << " ms");
    CHECK(took < 200 * 3 + 1500);  // 600 ms of failures, then stop and start
    auto events = node.hull({"events"}).out;
    CHECK(events.find("liveness failing") != std::string::npos);
    auto metrics = node.hull({"metrics"}).out;
    CHECK(metrics.find("hull_probes_total{service=\"web\",probe=\"liveness\",result=\"failure\"}") != std::string::npos);
    CHECK(metrics.find("hull_containers{state=\"running\"} ") != std::string::npos);
    CHECK(metrics.find("hull_container_memory_bytes{service=\"web\"") != std::string::npos);
    CHECK(events.find("stopping (liveness)") != std::string::npos);
}

TEST_CASE("node: the phoenix cycle replaces old containers with the ready count never below replicas",
          "[root][net][node]") {
    if (!isRoot()) return;
    std::string image = busyboxImage();
    TestNetns host("phx");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "p.yaml",
                     "name: phx\nimage: hull.local/busybox\ncommand: [sleep, '1000']\nreplicas: 3\nmaxAge: 3s\n"
                     "stopGracePeriod: 1s\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "p.yaml"}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 3; }));
    std::set<std::string> originals;
    auto cs0 = node.containers();
    for (const auto& c : cs0.asArray()) originals.insert(c.find("id")->asString());
    // Sample the ready count every 50 ms until every original has been replaced.
    size_t minReady = 3;
    auto deadline = nowMs() + 25000;
    bool allReplaced = false;
    while (nowMs() < deadline && !allReplaced) {
        auto cs = node.containers();
        size_t ready = 0;
        std::set<std::string> present;
        for (const auto& c : cs.asArray()) {
            if (c.find("status")->asString() == "running" && c.find("ready")->asBool()) ++ready;
            present.insert(c.find("id")->asString());
        }
        minReady = std::min(minReady, ready);
        allReplaced = std::none_of(originals.begin(), originals.end(), [&](const std::string& id) { return present.count(id); });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(allReplaced);
    CHECK(minReady >= 3);
    CHECK(node.hull({"events"}).out.find("phoenix") != std::string::npos);
}

TEST_CASE("node: after a simulated reboot (every container and the agent killed) the services come back",
          "[root][net][node]") {
    if (!isRoot()) return;
    std::string image = busyboxImage();
    TestNetns host("boot");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "s.yaml", "name: s\nimage: hull.local/busybox\ncommand: [sleep, '1000']\nreplicas: 2\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "s.yaml"}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 2; }));
    node.kill(SIGKILL);
    // Every container's processes and monitors die, as in a power cut.
    auto ps = json::Value::parse(node.hull({"ps", "--output", "json"}).out);
    REQUIRE(ps);
    for (const auto& c : ps->asArray()) {
        int64_t pid = 0;
        c.find("pid")->toInt64(pid);
        ::kill(pid_t(pid), SIGKILL);
    }
    run({"/usr/bin/pkill", "-9", "-f", "hull-monitor " + node.state.path()});
    node.start();
    CHECK(eventually([&] { return runningCount(node.containers()) == 2; }, 15000));
}

namespace {

/// The one container of a single-replica service that is not on its way out ("" when none).
json::Value onlyContainer(const Node& node) {
    auto cs = node.containers();
    for (const auto& c : cs.asArray())
        if (c.find("status")->asString() == "running") return c;
    return json::Value();
}

std::string idOf(const json::Value& c) { return c.isObject() ? c.find("id")->asString() : std::string(); }

int64_t intOf(const json::Value& c, const char* key) {
    int64_t v = -1;
    if (c.isObject() && c.find(key)) c.find(key)->toInt64(v);
    return v;
}

}  // namespace

TEST_CASE("node: a startup probe holds back readiness and liveness until it succeeds", "[root][net][node]") {
    if (!isRoot()) return;
    std::string image = busyboxImage();
    TestNetns host("startup", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    // Nothing listens on port 80 for the first 2 s: a liveness probe run then
    // (failureThreshold 1) would have the container replaced at once.
    writeFileOrThrow(node.state / "slow.yaml",
                     "name: slow\nimage: hull.local/busybox\n"
                     "command: [sh, -c, 'sleep 2; httpd -p 80 -h /; touch /tmp/started; exec sleep 1000']\n"
                     "probes:\n"
                     "  startup: {exec: [cat, /tmp/started], period: 200ms, timeout: 1s, failureThreshold: 30}\n"
                     "  readiness: {tcp: {port: 80}, period: 200ms}\n"
                     "  liveness: {tcp: {port: 80}, period: 100ms, timeout: 200ms, failureThreshold: 1}\n");
    auto applied = node.hull({"apply", "-f", node.state / "slow.yaml"});
    INFO(applied.err);
    REQUIRE(applied.status == 0);
    std::string id;
    REQUIRE(eventually([&] { return !(id = idOf(onlyContainer(node))).empty(); }));
    int64_t seen = nowMs();
    // Not ready while the startup probe has not succeeded (sampled every 50 ms).
    int samples = 0, readyEarly = 0;
    while (nowMs() - seen < 1500) {
        auto c = onlyContainer(node);
        if (idOf(c) == id) {
            ++samples;
            readyEarly += c.find("ready")->asBool();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(samples > 10);
    CHECK(readyEarly == 0);
    // Then ready, the same container, never restarted.
    bool ready = eventually([&] {
        auto c = onlyContainer(node);
        return idOf(c) == id && c.find("ready")->asBool();
    });
    auto events = node.hull({"events"}).out;
    INFO(events);
    CHECK(ready);
    CHECK(nowMs() - seen >= 1500);
    CHECK(intOf(onlyContainer(node), "restarts") == 0);
    CHECK(events.find("startup ok") != std::string::npos);
    CHECK(events.find("readiness ok") != std::string::npos);
    CHECK(events.find("liveness failing") == std::string::npos);
    CHECK(events.find("stopping") == std::string::npos);
    // The startup probe failed while the file was missing; it ran no more once it succeeded.
    auto metrics = node.hull({"metrics"}).out;
    CHECK(metrics.find("probe=\"startup\",result=\"failure\"") != std::string::npos);
    auto startupRuns = [&] {
        auto m = node.hull({"metrics"}).out;
        const std::string key = "probe=\"startup\",result=\"success\"} ";
        auto at = m.find(key);
        return at == std::string::npos ? -1 : std::atoi(m.c_str() + at + key.size());
    };
    int runs = startupRuns();
    CHECK(runs == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    CHECK(startupRuns() == runs);
    CHECK(idOf(onlyContainer(node)) == id);
}

TEST_CASE("node: a startup probe that never succeeds gets the container replaced, as a restart", "[root][net][node]") {
    if (!isRoot()) return;
    std::string image = busyboxImage();
    TestNetns host("nostart", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "never.yaml",
                     "name: never\nimage: hull.local/busybox\ncommand: [sleep, '1000']\n"
                     "backoff: {initial: 100ms, factor: 2, max: 1s, resetAfter: 60s}\nstopGracePeriod: 1s\n"
                     "probes:\n"
                     "  startup: {exec: [cat, /tmp/started], period: 200ms, timeout: 500ms, failureThreshold: 3}\n"
                     "  readiness: {exec: ['true'], period: 100ms}\n"
                     "  liveness: {exec: ['true'], period: 100ms}\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "never.yaml"}).status == 0);
    std::string first;
    REQUIRE(eventually([&] { return !(first = idOf(onlyContainer(node))).empty(); }));
    int64_t seen = nowMs();
    bool everReady = false;
    json::Value next;
    bool replaced = eventually([&] {
        auto c = onlyContainer(node);
        if (idOf(c) == first) everReady |= c.find("ready")->asBool();
        if (!idOf(c).empty() && idOf(c) != first) next = c;
        return next.isObject();
    });
    int64_t took = nowMs() - seen;
    auto events = node.hull({"events"}).out;
    INFO(events << "replaced after " << took << " ms");
    REQUIRE(replaced);
    CHECK_FALSE(everReady);
    CHECK(took < 3 * 200 + 2000);  // three failed checks, then the stop, the backoff and the start
    CHECK(events.find("startup failing") != std::string::npos);
    CHECK(events.find("stopping (startup)") != std::string::npos);
    // A restart like any other: counted, so the backoff grows if it keeps failing.
    CHECK(intOf(next, "restarts") == 1);
    // Readiness and liveness never ran for a container that never started.
    auto metrics = node.hull({"metrics"}).out;
    CHECK(metrics.find("probe=\"readiness\"") == std::string::npos);
    CHECK(metrics.find("probe=\"liveness\"") == std::string::npos);
}

TEST_CASE("node: an exec probe that hangs is killed at its timeout; the loop is not held up", "[root][net][node]") {
    if (!isRoot()) return;
    std::string image = busyboxImage();
    TestNetns host("hang", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "hang.yaml",
                     "name: hang\nimage: hull.local/busybox\ncommand: [sleep, '1000']\nstopGracePeriod: 1s\n"
                     "probes:\n  liveness: {exec: [sleep, '100'], period: 300ms, timeout: 300ms, failureThreshold: 2}\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "hang.yaml"}).status == 0);
    std::string first;
    REQUIRE(eventually([&] { return !(first = idOf(onlyContainer(node))).empty(); }));
    int64_t seen = nowMs(), slowest = 0;
    bool replaced = eventually([&] {
        int64_t t = nowMs();
        auto c = onlyContainer(node);
        slowest = std::max(slowest, nowMs() - t);
        return !idOf(c).empty() && idOf(c) != first;
    });
    int64_t took = nowMs() - seen;
    INFO("replaced after " << took << " ms; slowest answer " << slowest << " ms");
    CHECK(replaced);
    CHECK(took < 2 * 300 + 2000);
    CHECK(slowest < 300);  // the API is served by the loop's thread: it never waited for a probe
    CHECK(node.hull({"events"}).out.find("liveness failing") != std::string::npos);
}

TEST_CASE("node: hull describe shows a service's spec, containers and recent events", "[root][net][node]") {
    if (!isRoot()) return;
    std::string image = busyboxImage();
    TestNetns host("describe", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "web.yaml",
                     "name: web\nimage: hull.local/busybox\ncommand: [sleep, '1000']\nreplicas: 2\nenv: {GREETING: hi}\n"
                     "restart: on-failure\nmaxAge: 1h\nstopGracePeriod: 1s\n"
                     "probes:\n  startup: {exec: ['true'], period: 100ms, failureThreshold: 30}\n"
                     "  readiness: {tcp: {port: 80}, period: 250ms, timeout: 200ms, failureThreshold: 2}\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "web.yaml"}).status == 0);
    // Another service's events must not show up in web's.
    writeFileOrThrow(node.state / "other.yaml", "name: other\nimage: hull.local/busybox\ncommand: [sleep, '1000']\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "other.yaml"}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 3; }));
    std::set<std::string> webIds, webNames, otherIds;
    auto cs = node.containers();
    for (const auto& c : cs.asArray())
        if (c.find("service")->asString() == "web") {
            webIds.insert(c.find("id")->asString());
            webNames.insert(c.find("name")->asString());
        } else {
            otherIds.insert(c.find("id")->asString());
        }
    REQUIRE(webIds.size() == 2);
    // Both have passed their startup probe.
    REQUIRE(eventually([&] {
        auto ev = node.hull({"events"}).out;
        size_t n = 0;
        for (auto at = ev.find("startup ok"); at != std::string::npos; at = ev.find("startup ok", at + 1)) ++n;
        return n == 2;
    }));

    auto json = node.hull({"describe", "web", "--output", "json"});
    INFO(json.out << json.err);
    REQUIRE(json.status == 0);
    auto v = json::Value::parse(json.out);
    REQUIRE(v);
    CHECK(v->find("name")->asString() == "web");
    CHECK(intOf(*v, "generation") == 1);
    CHECK(v->find("spec")->find("image")->asString() == "hull.local/busybox");
    CHECK(intOf(*v->find("replicas"), "desired") == 2);
    // Nothing listens on port 80: started (the startup probe passes) but never ready.
    CHECK(intOf(*v->find("replicas"), "ready") == 0);
    std::set<std::string> described;
    for (const auto& c : v->find("containers")->asArray()) {
        described.insert(c.find("id")->asString());
        CHECK(c.find("ready")->asBool() == false);
        CHECK(intOf(c, "started") > 0);
    }
    CHECK(described == webIds);
    std::set<std::string> started;
    for (const auto& e : v->find("events")->asArray()) {
        if (e.find("kind")->asString() == "start") started.insert(e.find("container")->asString());
        CHECK(otherIds.count(e.find("container")->asString()) == 0);
    }
    CHECK(started == webIds);
    CHECK(json.out.find("other") == std::string::npos);

    auto text = node.hull({"describe", "web"});
    INFO(text.out);
    REQUIRE(text.status == 0);
    for (std::string want : {"Name:", "hull.local/busybox", "sleep 1000", "GREETING=hi", "Generation:   1",
                                    "2 desired, 0 ready", "on-failure", "Max age:      1h", "Stop grace:   1s",
                                    "startup:", "exec [true]", "readiness:", "tcp :80", "Containers:", "Events:",
                                    "generation 1", "startup ok"}) {
        CAPTURE(want);
        CHECK(text.out.find(want) != std::string::npos);
    }
    for (const auto& name : webNames) CHECK(text.out.find(name) != std::string::npos);

    // Only the last 20 events: a service at 0 replicas applied 25 times over.
    for (int i = 1; i <= 25; ++i) {
        writeFileOrThrow(node.state / "many.yaml", "name: many\nimage: hull.local/busybox\nreplicas: 0\nenv: [N=" +
                                                       std::to_string(i) + "]\n");
        REQUIRE(node.hull({"apply", "-f", node.state / "many.yaml"}).status == 0);
    }
    auto many = json::Value::parse(node.hull({"describe", "many", "-o", "json"}).out);
    REQUIRE(many);
    const auto& evs = many->find("events")->asArray();
    REQUIRE(evs.size() == 20);
    CHECK(evs.front().find("message")->asString() == "generation 6");
    CHECK(evs.back().find("message")->asString() == "generation 25");
    CHECK(many->find("containers")->asArray().empty());

    // An unknown service: a clear error, not an empty description.
    auto unknown = node.hull({"describe", "nope"});
    CHECK(unknown.status != 0);
    CHECK(unknown.err.find("no service \"nope\"") != std::string::npos);
    CHECK(node.hull({"describe"}).status != 0);
}
