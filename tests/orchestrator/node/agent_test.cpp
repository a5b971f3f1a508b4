// `hull node` as a user runs it: a real agent process on its API socket, real
// containers, kill -9, an agent crash and restart, bad input. In a network
// namespace of its own, with a temp state dir.
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>

#include "orchestrator/api/client.hpp"
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include <sqlite3.h>

#include "images/registry_fixture.hpp"
#include "netns/netns_support.hpp"
#include "orchestrator/node/agent.hpp"
#include "orchestrator/api/messages.hpp"
#include "orchestrator/model/service.hpp"
#include "orchestrator/node/store.hpp"
#include "runtime/runtime.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::test;

namespace {

struct Node {
    TempDir state{"hull-node"};
    pid_t pid = -1;
    /// `hull node` with EXTRA flags.
    void start(std::vector<std::string> extra = {}) {
        ::unlink((state / "node.sock").c_str());  // a killed agent leaves its socket behind
        std::vector<std::string> args = {"hull", "--state-dir", state.path(), "node"};
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::string bin = binPath("hull");
        pid = ::fork();
        if (pid == 0) {
            int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(null, 2);
            ::execv(bin.c_str(), argv.data());
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

size_t runningCount(const json::Value& cs) {
    size_t n = 0;
    if (!cs.isArray()) return 0;
    for (const auto& c : cs.asArray()) n += c.find("status")->asString() == "running";
    return n;
}

}  // namespace

TEST_CASE("node: keeps replicas running through kill -9 (backoff doubling up to its cap) and an agent crash, and bad input "
          "changes nothing",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string images = std::string(HULL_BIN_DIR) + "/../images/busybox";
    REQUIRE(run({std::string(HULL_SOURCE_DIR) + "/scripts/make-busybox-image", images}).status == 0);
    TestNetns host("node");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", images + "/busybox.oci.tar"}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "svc.yaml",
                     "name: sleeper\nimage: hull.local/busybox\ncommand: [sleep, '1000']\nreplicas: 2\n"
                     "backoff: {initial: 200ms, factor: 2, max: 800ms, resetAfter: 60s}\nstopGracePeriod: 1s\n");
    auto applied = node.hull({"apply", "-f", node.state / "svc.yaml"});
    INFO(applied.err);
    REQUIRE(applied.status == 0);
    bool up = eventually([&] { return runningCount(node.containers()) == 2; });
    INFO(node.hull({"events"}).out << node.hull({"get", "containers"}).out);
    REQUIRE(up);
    // Re-applying the same file changes nothing.
    CHECK(node.hull({"apply", "-f", node.state / "svc.yaml"}).out.find("generation 1") != std::string::npos);

    UNSCOPED_INFO("stage: kill -9");
    // kill -9 of slot 0's process, five times over: each time a replacement runs,
    // with the restart counted, after a backoff that doubles up to its cap:
    // 200, 400, 800, then 800 ms (not 1600), from the exit to the new start.
    const int64_t expected[] = {200, 400, 800, 800, 800};
    for (int k = 1; k <= 5; ++k) {
        std::string victim;
        auto cs = node.containers();
        for (const auto& c : cs.asArray())
            if (intOf(c, "slot") == 0 && c.find("status")->asString() == "running") victim = idOf(c);
        REQUIRE(!victim.empty());
        auto inspect = json::Value::parse(node.hull({"inspect", victim}).out);
        REQUIRE(inspect);
        REQUIRE(intOf(*inspect, "pid") > 0);
        ::kill(pid_t(intOf(*inspect, "pid")), SIGKILL);
        std::string replacement;
        bool replaced = eventually([&] {
            auto now = node.containers();
            for (const auto& c : now.asArray())
                if (intOf(c, "slot") == 0 && c.find("status")->asString() == "running" && idOf(c) != victim) {
                    replacement = idOf(c);
                    return intOf(c, "restarts") == k && runningCount(now) == 2;
                }
            return false;
        });
        auto evs = json::Value::parse(node.hull({"events", "--output", "json"}).out);
        REQUIRE(evs);
        int64_t exited = -1, started = -1;
        std::string exitMessage;
        for (const auto& e : evs->asArray()) {
            if (e.find("kind")->asString() == "exit" && e.find("container")->asString() == victim) {
                exited = intOf(e, "time");
                exitMessage = e.find("message")->asString();
            }
            if (e.find("kind")->asString() == "start" && e.find("container")->asString() == replacement) started = intOf(e, "time");
        }
        INFO("kill " << k << ": exit at " << exited << ", restart at " << started << " (" << started - exited << " ms)");
        REQUIRE(replaced);
        REQUIRE(exited > 0);
        REQUIRE(started > 0);
        CHECK(exitMessage == "exit code 137");
        CHECK(started - exited >= expected[k - 1]);
        // Well below what one more doubling would give: the growth stopped at the cap.
        CHECK(started - exited < expected[k - 1] + 600);
    }

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
    struct Bad {
        const char* file;
        const char* text;
        const char* says;  // in the error
    };
    for (const Bad& b : {Bad{"bad.yaml", "name: broken\nimage: hull.local/busybox\nreplicas: -1\n", "replicas"},
                         Bad{"unknown.yaml", "name: other\nimage: hull.local/busybox\nreplicaz: 2\n", "replicaz"},
                         Bad{"malformed.yaml", "name: m\nimage: [hull.local/busybox\n", "malformed.yaml:"},
                         Bad{"dup.yaml", "name: d\nimage: hull.local/busybox\nname: e\n", "duplicate"},
                         Bad{"noimage.yaml", "name: noimage\nimage: hull.local/nothing-here\n", "nothing-here"},
                         // A master's fields: refused by a standalone agent, not ignored.
                         Bad{"placed.yaml", "name: p\nimage: hull.local/busybox\nplacement: {strategy: binpack}\n", "placement:"},
                         Bad{"update.yaml", "name: u\nimage: hull.local/busybox\nupdate: {parallelism: 2}\n", "update:"},
                         Bad{"failover.yaml", "name: f\nimage: hull.local/busybox\nfailover: {after: 5s}\n", "failover:"},
                         Bad{"mode.yaml", "name: h\nimage: hull.local/busybox\npublishMode: host\n", "publishMode:"},
                         Bad{"autoscale.yaml",
                             "name: a\nimage: hull.local/busybox\nresources: {limits: {cpus: 1}}\n"
                             "autoscale: {min: 1, max: 3, cpu: 50%}\n",
                             "autoscale: only a cluster master"}}) {
        writeFileOrThrow(node.state / b.file, b.text);
        auto r = node.hull({"apply", "-f", node.state / b.file});
        INFO(b.file);
        CHECK(r.status != 0);
        CHECK(r.err.find(b.says) != std::string::npos);
    }
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
    REQUIRE_ROOT();
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
    REQUIRE_ROOT();
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

TEST_CASE("node: a service's host port is balanced over its ready replicas, through scaling, the phoenix cycle and delete",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("lb", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "lb.yaml",
                     "name: lb\nimage: hull.local/busybox\n"
                     "command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']\n"
                     "replicas: 2\nports: ['18080:80']\nstopGracePeriod: 1s\n"
                     "probes: {readiness: {tcp: {port: 80}, period: 300ms, successThreshold: 3}}\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "lb.yaml"}).status == 0);
    auto readyCount = [&] {
        size_t n = 0;
        auto cs = node.containers();
        for (const auto& c : cs.asArray()) n += c.find("status")->asString() == "running" && c.find("ready")->asBool();
        return n;
    };
    REQUIRE(eventually([&] { return readyCount() == 2; }));
    // A second service cannot take the port, on every address or on one.
    for (const char* port : {"18080:81", "127.0.0.1:18080:80"}) {
        writeFileOrThrow(node.state / "lb2.yaml", std::string("name: lb2\nimage: hull.local/busybox\nports: ['") + port + "']\n");
        auto clash = node.hull({"apply", "-f", node.state / "lb2.yaml"});
        CHECK(clash.status != 0);
        CHECK(clash.err.find("ports: 18080/tcp is published by service \"lb\" already") != std::string::npos);
    }
    CHECK(node.hull({"describe", "lb2"}).status != 0);
    // Answers by body (each replica serves its hostname); "" for a failed request.
    auto ask = [&] {
        auto r = host.sh("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 127.0.0.1 18080 | tail -n 1");
        return sys::trim(r.out);
    };
    std::map<std::string, int> seen;
    // The port follows readiness: wait for it to lead to both, then 20 requests reach both.
    REQUIRE(eventually([&] { return host.sh("nft list chain ip hull bal_tcp_18080").out.find("mod 2") != std::string::npos; }));
    for (int i = 0; i < 20; ++i) ++seen[ask()];
    CHECK(node.hull({"metrics"}).out.find("hull_service_port_backends{service=\"lb\"} 2\n") != std::string::npos);
    INFO(seen.size());
    CHECK(seen.count("") == 0);
    CHECK(seen.size() == 2);

    // Scaled to 1: every request reaches the one left.
    REQUIRE(node.hull({"scale", "lb", "1"}).status == 0);
    REQUIRE(eventually([&] { return node.containers().asArray().size() == 1 && readyCount() == 1; }));
    seen.clear();
    for (int i = 0; i < 10; ++i) ++seen[ask()];
    CHECK(seen.size() == 1);
    CHECK(seen.count("") == 0);

    // The agent dies: the port keeps answering. It had recorded its ports
    // (ports.json); a restarted agent drops a recorded port no service declares,
    // and leaves alone one it did not publish (another agent's).
    node.kill(SIGKILL);
    CHECK(ask() == seen.begin()->first);
    auto record = json::Value::parse(sys::readFile(node.state / "ports.json").value_or(""));
    REQUIRE(record);
    CHECK(record->dump() == R"(["18080:18080/tcp"])");
    host.sh("nft add chain ip hull bal_tcp_18181; nft add element ip hull tcp_bal { 18181 : goto bal_tcp_18181 }; "
            "nft add chain ip hull bal_tcp_18282; nft add element ip hull tcp_bal { 18282 : goto bal_tcp_18282 }");
    writeFileOrThrow(node.state / "ports.json", R"(["18080:18080/tcp", "18181:18181/tcp"])");
    node.start();
    // Its readiness needs three probes in a row (600 ms) to be known again: meanwhile the port keeps leading to it.
    // (A dropped SYN is sent again after 1 s: each answer must come at once.)
    for (int i = 0; i < 10; ++i) {
        auto t0 = nowMs();
        CHECK(ask() == seen.begin()->first);
        CHECK(nowMs() - t0 < 500);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(eventually([&] { return host.sh("nft list map ip hull tcp_bal").out.find("18181") == std::string::npos; }));
    auto bal = host.sh("nft list map ip hull tcp_bal").out;
    CHECK(bal.find("18080") != std::string::npos);
    CHECK(bal.find("18282") != std::string::npos);
    CHECK(ask() == seen.begin()->first);
    host.sh("nft delete element ip hull tcp_bal { 18282 }; nft delete chain ip hull bal_tcp_18282");

    // The phoenix cycle of that one: the port answers throughout (sampled every 100 ms).
    writeFileOrThrow(node.state / "lb.yaml",
                     "name: lb\nimage: hull.local/busybox\n"
                     "command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']\n"
                     "replicas: 1\nports: ['18080:80']\nstopGracePeriod: 1s\nmaxAge: 2s\n"
                     "probes: {readiness: {tcp: {port: 80}, period: 300ms, successThreshold: 3}}\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "lb.yaml"}).status == 0);
    int failed = 0;
    std::set<std::string> answered;
    auto deadline = nowMs() + 6000;
    while (nowMs() < deadline) {
        std::string a = ask();
        failed += a.empty();
        answered.insert(a);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(failed == 0);
    CHECK(answered.size() >= 2);  // replaced at least once (the update, then maxAge)
    CHECK(node.hull({"events"}).out.find("error") == std::string::npos);

    // Deleted: the port is gone with its chain.
    REQUIRE(node.hull({"delete", "lb"}).status == 0);
    REQUIRE(eventually([&] { return node.containers().asArray().empty(); }));
    CHECK(eventually([&] { return host.sh("nft list map ip hull tcp_bal").out.find("18080") == std::string::npos; }));
    CHECK(ask().empty());
}

TEST_CASE("node: after a simulated reboot (every container and the agent killed) the services come back",
          "[root][net][node]") {
    REQUIRE_ROOT();
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

TEST_CASE("node: a startup probe holds back readiness and liveness until it succeeds", "[root][net][node]") {
    REQUIRE_ROOT();
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
    CHECK(samples >= 5);  // each a `hull get containers`: some 80 ms, several times that sanitized
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
    REQUIRE_ROOT();
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

TEST_CASE("node: an exec probe that hangs is killed at its timeout and does not hold up the loop", "[root][net][node]") {
    REQUIRE_ROOT();
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
    // The API is served by the loop's thread: it never waited for a probe (300 ms each). Each
    // answer is a `hull get containers`, several times slower sanitized (523 ms seen in CI): there
    // the bound only catches a loop held for several probes; the plain build checks the 300 ms.
    CHECK(slowest < (kAddressSanitizer ? 900 : 300));
    CHECK(node.hull({"events"}).out.find("liveness failing") != std::string::npos);
}

TEST_CASE("node: hull describe shows a service's spec, containers and recent events", "[root][net][node]") {
    REQUIRE_ROOT();
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

namespace {
int64_t wallMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

TEST_CASE("node: a changed file replaces the containers one at a time, and the same file again changes nothing",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("update", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    // Ready 300 ms after it starts (a readiness probe), so "new first" has something to wait for.
    auto spec = [](const std::string& value) {
        return "name: upd\nimage: hull.local/busybox\nreplicas: 3\nenv: {VERSION: '" + value + "'}\n"
               "command: [sh, -c, 'sleep 0.3; touch /tmp/ready; exec sleep 1000']\nstopGracePeriod: 1s\n"
               "probes:\n  readiness: {exec: [cat, /tmp/ready], period: 100ms}\n";
    };
    writeFileOrThrow(node.state / "upd.yaml", spec("1"));
    REQUIRE(node.hull({"apply", "-f", node.state / "upd.yaml"}).status == 0);
    auto readyCount = [](const json::Value& cs) {
        size_t n = 0;
        for (const auto& c : cs.asArray()) n += c.find("status")->asString() == "running" && c.find("ready")->asBool();
        return n;
    };
    REQUIRE(eventually([&] { return readyCount(node.containers()) == 3; }));
    std::set<std::string> originals;
    auto cs0 = node.containers();
    for (const auto& c : cs0.asArray()) originals.insert(idOf(c));
    REQUIRE(originals.size() == 3);

    writeFileOrThrow(node.state / "upd.yaml", spec("2"));
    auto applied = node.hull({"apply", "-f", node.state / "upd.yaml"});
    REQUIRE(applied.out.find("generation 2") != std::string::npos);
    // Sample every 50 ms until every slot runs generation 2 and is ready.
    size_t minReady = 3, maxLive = 0, maxSlotsReplacing = 0;
    std::set<std::string> newIds;
    bool done = false;
    for (auto deadline = nowMs() + 30000; nowMs() < deadline && !done;) {
        auto cs = node.containers();
        std::map<int64_t, int> liveBySlot;
        size_t live = 0, newReady = 0;
        for (const auto& c : cs.asArray()) {
            if (c.find("status")->asString() != "running") continue;  // exited, or stopping in the background
            ++live;
            ++liveBySlot[intOf(c, "slot")];
            if (intOf(c, "generation") == 2) {
                newIds.insert(idOf(c));
                newReady += c.find("ready")->asBool();
            }
        }
        size_t replacing = 0;
        for (const auto& [slot, n] : liveBySlot) replacing += n > 1;
        minReady = std::min(minReady, readyCount(cs));
        maxLive = std::max(maxLive, live);
        maxSlotsReplacing = std::max(maxSlotsReplacing, replacing);
        done = newReady == 3 && live == 3;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto events = node.hull({"events"}).out;
    INFO(events);
    REQUIRE(done);
    CHECK(minReady >= 3);          // never fewer ready than replicas
    CHECK(maxLive <= 4);           // never more than one extra container
    CHECK(maxSlotsReplacing <= 1);  // one slot at a time
    CHECK(maxLive == 4);           // new first: the extra one did exist
    CHECK(newIds.size() == 3);     // each slot replaced once, no churn
    // The old ones finish their grace period and go.
    CHECK(eventually([&] { return node.containers().asArray().size() == 3; }));
    std::set<std::string> updated;
    auto cs1 = node.containers();
    for (const auto& c : cs1.asArray()) {
        updated.insert(idOf(c));
        CHECK(intOf(c, "generation") == 2);
        CHECK(intOf(c, "restarts") == 0);
        CHECK(originals.count(idOf(c)) == 0);
    }
    CHECK(updated == newIds);
    // The new containers run the new file.
    auto env = node.hull({"exec", *updated.begin(), "sh", "-c", "echo $VERSION"});
    CHECK(env.out == "2\n");

    // The same file again: the same generation, the same containers.
    auto again = node.hull({"apply", "-f", node.state / "upd.yaml"});
    CHECK(again.out.find("generation 2") != std::string::npos);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    std::set<std::string> after;
    auto cs2 = node.containers();
    for (const auto& c : cs2.asArray()) after.insert(idOf(c));
    CHECK(after == updated);
    auto services = json::Value::parse(node.hull({"get", "services", "--output", "json"}).out);
    REQUIRE(services);
    CHECK(intOf(services->asArray()[0], "generation") == 2);
}

TEST_CASE("node: agent crash with 10 containers: the same 10 run on, and an exit during the downtime is recorded",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("crash", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "ten.yaml",
                     "name: ten\nimage: hull.local/busybox\ncommand: [sleep, '1000']\nreplicas: 10\n"
                     "backoff: {initial: 100ms, factor: 2, max: 1s, resetAfter: 60s}\nstopGracePeriod: 1s\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "ten.yaml"}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 10; }, 30000));
    // Each container's id, pid and slot before the crash.
    std::map<std::string, int64_t> pids, slots;
    auto cs0 = node.containers();
    for (const auto& c : cs0.asArray()) {
        auto inspect = json::Value::parse(node.hull({"inspect", idOf(c)}).out);
        REQUIRE(inspect);
        pids[idOf(c)] = intOf(*inspect, "pid");
        slots[idOf(c)] = intOf(c, "slot");
        REQUIRE(intOf(c, "restarts") == 0);
    }
    REQUIRE(pids.size() == 10);

    node.kill(SIGKILL);
    // While no agent runs, one container's process is killed; its monitor records the exit.
    std::string victim = pids.begin()->first;
    REQUIRE(::kill(pid_t(pids[victim]), SIGKILL) == 0);
    REQUIRE(eventually([&] {
        auto v = json::Value::parse(node.hull({"inspect", victim}).out);
        return v && v->find("status")->asString() == "exited";
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int64_t restartedAt = wallMs();
    node.start();

    // A replacement for the victim's slot, counted as a restart; the other nine untouched.
    bool replaced = eventually([&] {
        auto cs = node.containers();
        if (runningCount(cs) != 10) return false;
        for (const auto& c : cs.asArray())
            if (!pids.count(idOf(c))) return intOf(c, "slot") == slots[victim] && intOf(c, "restarts") == 1;
        return false;
    });
    auto events = json::Value::parse(node.hull({"events", "--output", "json"}).out);
    REQUIRE(events);
    INFO(events->dump(true));
    CHECK(replaced);
    auto cs1 = node.containers();
    size_t same = 0;
    for (const auto& c : cs1.asArray()) {
        if (idOf(c) == victim || !pids.count(idOf(c))) continue;
        ++same;
        CHECK(c.find("status")->asString() == "running");
        CHECK(intOf(c, "restarts") == 0);
        auto inspect = json::Value::parse(node.hull({"inspect", idOf(c)}).out);
        REQUIRE(inspect);
        CHECK(intOf(*inspect, "pid") == pids[idOf(c)]);  // the very same process: not restarted
    }
    CHECK(same == 9);
    // The exit is in the events, with its code and its own time, before the agent came back.
    int exits = 0;
    for (const auto& e : events->asArray()) {
        if (e.find("kind")->asString() != "exit") continue;
        ++exits;
        CHECK(e.find("container")->asString() == victim);
        CHECK(e.find("message")->asString() == "exit code 137 (while the agent was down)");
        CHECK(intOf(e, "time") < restartedAt);
    }
    CHECK(exits == 1);
}

TEST_CASE("node: a replacement that cannot start leaves the ended container, so its slot's restart count survives",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("noimage", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "one.yaml",
                     "name: one\nimage: hull.local/busybox\ncommand: [sleep, '1000']\n"
                     "backoff: {initial: 100ms, factor: 2, max: 400ms, resetAfter: 60s}\nstopGracePeriod: 1s\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "one.yaml"}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 1; }));
    auto killProcess = [&](const std::string& id) {
        auto inspect = json::Value::parse(node.hull({"inspect", id}).out);
        REQUIRE(inspect);
        REQUIRE(intOf(*inspect, "pid") > 0);
        ::kill(pid_t(intOf(*inspect, "pid")), SIGKILL);
    };
    auto runningWith = [&](int64_t restarts) {
        json::Value c = onlyContainer(node);
        return c.isObject() && intOf(c, "restarts") == restarts;
    };
    // A first restart, counted.
    killProcess(idOf(onlyContainer(node)));
    REQUIRE(eventually([&] { return runningWith(1); }));

    // The image goes: the next replacement cannot start.
    REQUIRE(node.hull({"image", "rm", "hull.local/busybox"}).status == 0);
    std::string victim = idOf(onlyContainer(node));
    killProcess(victim);
    bool failed = eventually([&] {
        auto evs = json::Value::parse(node.hull({"events", "--output", "json"}).out);
        if (!evs) return false;
        for (const auto& e : evs->asArray())
            if (e.find("kind")->asString() == "error" && e.find("service")->asString() == "one") return true;
        return false;
    });
    REQUIRE(failed);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a few more tries
    // Failed starts back off like restarts (100, 200, 400, 400 ms here), not once per tick (50 ms).
    std::vector<int64_t> tries;
    auto evs = json::Value::parse(node.hull({"events", "--output", "json"}).out);
    REQUIRE(evs);
    for (const auto& e : evs->asArray())
        if (e.find("kind")->asString() == "error" && e.find("service")->asString() == "one")
            tries.push_back(intOf(e, "time"));
    INFO(evs->dump(true));
    REQUIRE(tries.size() >= 4);
    CHECK(tries.size() <= 7);
    CHECK(tries[1] - tries[0] >= 90);
    CHECK(tries[2] - tries[1] >= 180);
    CHECK(tries[3] - tries[2] >= 360);
    // The ended container stays, with the slot's count, while no replacement runs.
    auto cs = node.containers();
    INFO(cs.dump(true));
    REQUIRE(cs.asArray().size() == 1);
    CHECK(idOf(cs.asArray()[0]) == victim);
    CHECK(cs.asArray()[0].find("status")->asString() == "exited");
    CHECK(intOf(cs.asArray()[0], "restarts") == 1);

    // The image is back: the replacement is the slot's second restart, and the ended one goes.
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    bool second = eventually([&] { return runningWith(2); });
    INFO(node.hull({"events"}).out);
    CHECK(second);
    CHECK(eventually([&] { return node.containers().asArray().size() == 1; }));
}

TEST_CASE("node: the API answers a message it cannot read with 400 and an ErrorReply naming the problem",
          "[root][net][node]") {
    REQUIRE_ROOT();
    TestNetns host("api", "hn-");
    InNetns in(host.path());
    Node node;
    node.start();
    std::string sock = node.state / "node.sock";
    auto errorFor = [&](const std::string& method, const std::string& target, const std::string& body) {
        auto r = orchestrator::api::unixRequest(sock, method, target, body);
        REQUIRE(r);
        CHECK(r->first == 400);
        auto e = orchestrator::decode<orchestrator::ErrorReply>(r->second);
        INFO(r->second);
        REQUIRE(e);
        return e->message;
    };
    CHECK(errorFor("POST", "/v1/services", "garbage").find("bad ApplyRequest message: not JSON") == 0);
    // The API's JSON before cereal, and cereal's: other shapes, refused.
    CHECK(errorFor("POST", "/v1/services", R"({"source": "a.yaml", "text": "name: a"})") ==
          "bad ApplyRequest message: its key is \"source\", not \"ApplyRequest\"");
    CHECK(errorFor("POST", "/v1/services",
                   R"({"ApplyRequest": {"cereal_class_version": 1, "source": "a.yaml", "text": "name: a"}})") ==
          "bad ApplyRequest message: ApplyRequest from an older hull (cereal's encoding, with cereal_class_version, "
          "not schemaVersion); upgrade the hull that sent it");
    CHECK(errorFor("POST", "/v1/services",
                   R"({"ApplyRequest": {"schemaVersion": 7, "source": "a.yaml", "text": "name: a"}})") ==
          "bad ApplyRequest message: ApplyRequest version 7 is newer than this hull reads (up to 2); upgrade hull");
    REQUIRE(node.hull({"image", "import", busyboxImage()}).status == 0);  // apply refuses a missing image
    writeFileOrThrow(node.state / "a.yaml", "name: a\nimage: hull.local/busybox\nreplicas: 0\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "a.yaml"}).status == 0);
    CHECK(errorFor("POST", "/v1/services/a/scale", R"({"ScaleRequest": {"schemaVersion": 2, "replicas": "2"}})") ==
          "bad ScaleRequest message: replicas: expected an integer");
    CHECK(errorFor("POST", "/v1/services/a/scale", orchestrator::encode(orchestrator::ScaleRequest{1001})) ==
          "replicas: expected a number from 0 to 1000");
    // A version-2 message from another client (curl, the master) works.
    auto ok = orchestrator::api::unixRequest(sock, "POST", "/v1/services/a/scale",
                                       R"({"ScaleRequest": {"schemaVersion": 2, "replicas": 0}})");
    REQUIRE(ok);
    CHECK(ok->first == 200);
    auto reply = orchestrator::decode<orchestrator::ScaleReply>(ok->second);
    REQUIRE(reply);
    CHECK(reply->name == "a");
    auto missing = node.hull({"scale", "nope", "1"});
    CHECK(missing.status != 0);
    CHECK(missing.err == "hull: no service \"nope\"\n");
}

TEST_CASE("node: containers are created by the agent's spawner, and by the agent itself once the spawner is gone",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("spawn");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    const std::string spawner = "hull-spawner --state-dir " + node.state.path() + " ";
    REQUIRE(eventually([&] { return run({"/usr/bin/pgrep", "-f", "--", spawner}).status == 0; }));
    writeFileOrThrow(node.state / "s.yaml", "name: s\nimage: hull.local/busybox\ncommand: [sleep, '1000']\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "s.yaml"}).status == 0);
    auto pidOf = [&]() -> int64_t {
        auto ps = json::Value::parse(node.hull({"ps", "--output", "json"}).out);
        int64_t pid = 0;
        if (ps && ps->isArray())
            for (const auto& c : ps->asArray())
                if (const json::Value* p = c.find("pid"); p && p->toInt64(pid) && pid > 0) return pid;
        return 0;
    };
    REQUIRE(eventually([&] { return pidOf() > 0; }));
    // The monitor of a spawned container is the spawner's child, not the agent's.
    int64_t first = pidOf();
    std::string stat = sys::readFile("/proc/" + std::to_string(first) + "/stat").value_or("");
    int64_t monitor = std::atoll(stat.substr(stat.rfind(')') + 4).c_str());
    std::string mstat = sys::readFile("/proc/" + std::to_string(monitor) + "/stat").value_or("");
    int64_t creator = std::atoll(mstat.substr(mstat.rfind(')') + 4).c_str());
    CHECK(creator != node.pid);
    CHECK(sys::readFile("/proc/" + std::to_string(creator) + "/cmdline").value_or("").find("hull-spawner") != std::string::npos);
    // Without the spawner, a kill still gets a replacement: the agent forks itself.
    run({"/usr/bin/pkill", "-9", "-f", "--", spawner});
    ::kill(pid_t(first), SIGKILL);
    CHECK(eventually([&] {
        int64_t p = pidOf();
        return p > 0 && p != first;
    }));
}

namespace {

/// The agent's events, straight from its store (read-only): no API call, so an
/// agent that is stuck cannot hold up the test that finds it so.
struct DbEvent {
    int64_t id = 0, time = 0;
    std::string kind, service, container, message;
};
std::vector<DbEvent> dbEvents(const std::string& dbPath) {
    std::vector<DbEvent> out;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(dbPath.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db, "SELECT id, time_ms, kind, service, container, message FROM events ORDER BY id", -1, &st,
                               nullptr) == SQLITE_OK)
            while (sqlite3_step(st) == SQLITE_ROW) {
                auto text = [&](int col) {
                    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
                    return p ? std::string(p) : std::string();
                };
                out.push_back({sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), text(2), text(3), text(4), text(5)});
            }
        sqlite3_finalize(st);
    }
    sqlite3_close_v2(db);
    return out;
}

int connectUnix(const std::string& path) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return s;
    if (s >= 0) ::close(s);
    return -1;
}

/// GET TARGET over the agent's socket, waiting at most WAIT_MS for the whole
/// answer: its status, or 0 when none came in time.
int getWithin(const std::string& sock, const std::string& target, int waitMs) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
    int fd = connectUnix(sock);
    if (fd < 0) return 0;
    std::string req = "GET " + target + " HTTP/1.0\r\nHost: hull-node\r\n\r\n", answer;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) return ::close(fd), 0;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) <= 0) return ::close(fd), 0;
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        answer.append(buf, size_t(n));
    }
    ::close(fd);
    return answer.rfind("HTTP/1.", 0) == 0 && answer.size() > 12 ? std::atoi(answer.c_str() + 9) : 0;
}

/// Clients that hold the agent's socket without ever completing a request:
/// IDLE of them send nothing, SLOW of them a byte every 500 ms. One that the
/// agent closes (at its deadline) is replaced at once, so they are there throughout.
class Pests {
public:
    Pests(std::string sock, int idle, int slow) : sock_(std::move(sock)) {
        for (int i = 0; i < idle + slow; ++i) clients_.push_back({connectUnix(sock_), i >= idle, 0});
        thread_ = std::thread([this] { loop(); });
    }
    ~Pests() {
        stop_ = true;
        thread_.join();
        for (auto& c : clients_)
            if (c.fd >= 0) ::close(c.fd);
    }
    int replaced() const { return replaced_; }

private:
    struct Client {
        int fd;
        bool slow;
        size_t sent;
    };
    void loop() {
        const std::string req = "GET /v1/services HTTP/1.1\r\nHost: hull-node\r\nX-Padding: " + std::string(200, 'x') + "\r\n\r\n";
        for (int round = 0; !stop_; ++round) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            for (auto& c : clients_) {
                char b;
                if (c.fd >= 0 && ::recv(c.fd, &b, 1, MSG_DONTWAIT) == 0) {  // closed by the agent
                    ::close(c.fd);
                    c.fd = -1;
                    ++replaced_;
                }
                if (c.fd < 0) c = {connectUnix(sock_), c.slow, 0};
                if (c.fd >= 0 && c.slow && round % 5 == 0 && c.sent + 1 < req.size())
                    c.sent += size_t(std::max<ssize_t>(0, ::send(c.fd, req.data() + c.sent, 1, MSG_NOSIGNAL)));
            }
        }
    }
    std::string sock_;
    std::vector<Client> clients_;
    std::atomic<bool> stop_{false};
    std::atomic<int> replaced_{0};
    std::thread thread_;
};

/// The pid of the running container whose name starts with PREFIX ("web-0-"), from the engine (not the agent).
std::pair<std::string, int64_t> runningNamed(const Node& node, const std::string& prefix) {
    auto ps = json::Value::parse(node.hull({"ps", "--output", "json"}).out);
    if (ps && ps->isArray())
        for (const auto& c : ps->asArray())
            if (c.find("name")->asString().rfind(prefix, 0) == 0 && c.find("status")->asString() == "running")
                return {idOf(c), intOf(c, "pid")};
    return {"", 0};
}

}  // namespace

TEST_CASE("node: idle and slow API clients and a probe against a black hole hold up no replacement",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("stall", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    // A black hole: nc accepts every connection on 8080 and hands it to a
    // sleep, which never answers. Its probes fail only at their timeout, 2 s
    // after each starts.
    writeFileOrThrow(node.state / "hole.yaml",
                     "name: hole\nimage: hull.local/busybox\ncommand: [nc, -ll, -p, '8080', -e, sleep, '100000']\n"
                     "stopGracePeriod: 1s\nprobes:\n"
                     "  readiness: {http: {port: 8080}, period: 100ms, timeout: 2s}\n"
                     "  liveness: {http: {port: 8080}, period: 100ms, timeout: 2s, failureThreshold: 1000}\n");
    writeFileOrThrow(node.state / "victim.yaml",
                     "name: victim\nimage: hull.local/busybox\ncommand: [sleep, '100000']\nreplicas: 2\n"
                     "backoff: {initial: 1ms, factor: 1, max: 1ms, resetAfter: 60s}\nstopGracePeriod: 1s\n");
    for (const char* f : {"hole.yaml", "victim.yaml"}) REQUIRE(node.hull({"apply", "-f", node.state / f}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 3; }));
    // It is a black hole: the connection is taken, and no answer comes.
    std::string holeIp;
    auto cs = node.containers();
    for (const auto& c : cs.asArray())
        if (c.find("service")->asString() == "hole") holeIp = c.find("ip")->asString();
    REQUIRE(!holeIp.empty());
    auto probe = host.sh("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 1 busybox nc " + holeIp + " 8080; echo rc=$?");
    INFO(probe.out << probe.err);
    REQUIRE(probe.out == "rc=124\n");  // connected, then nothing until timeout's kill

    Pests pests(node.state / "node.sock", 20, 3);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // all attached
    // The API answers meanwhile.
    CHECK(getWithin(node.state / "node.sock", "/v1/services", 1000) == 200);

    std::string db = node.state / "node.db";
    for (int k = 1; k <= 5; ++k) {
        auto [victim, pid] = runningNamed(node, "victim-0-");
        REQUIRE(pid > 0);
        REQUIRE(::kill(pid_t(pid), SIGKILL) == 0);
        // From the store alone: the exit, then the start of its replacement (slot 0).
        int64_t exited = -1, started = -1;
        waitFor([&, &victim = victim] {
            for (const auto& e : dbEvents(db)) {
                if (e.kind == "exit" && e.container == victim) exited = e.time;
                if (exited > 0 && e.kind == "start" && e.service == "victim" && e.message.find("(slot 0)") != std::string::npos &&
                    e.time >= exited)
                    started = e.time;
            }
            return started > 0;
        }, 5000);
        INFO("kill " << k << ": exit at " << exited << ", replacement at " << started << " (" << started - exited << " ms)");
        REQUIRE(exited > 0);
        REQUIRE(started > 0);
        CHECK(started - exited < 1000);
        CHECK(getWithin(node.state / "node.sock", "/v1/services", 1000) == 200);
        // The replacement runs before the next kill.
        REQUIRE(waitFor([&, victim = victim] {
            auto next = runningNamed(node, "victim-0-");
            return next.second > 0 && next.first != victim;
        }));
    }
    // The black hole's probes were out throughout, and never said anything but failure.
    auto metrics = getWithin(node.state / "node.sock", "/metrics", 1000);
    CHECK(metrics == 200);
    CHECK(node.hull({"metrics"}).out.find("service=\"hole\",probe=\"readiness\",result=\"success\"") == std::string::npos);
}

TEST_CASE("node: a stored spec this hull cannot read leaves its containers and port as they are, said once",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("unread", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    writeFileOrThrow(node.state / "keep.yaml",
                     "name: keep\nimage: hull.local/busybox\nreplicas: 2\nports: ['18090:80']\nstopGracePeriod: 1s\n"
                     "command: [sh, -c, 'mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www']\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "keep.yaml"}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 2; }));
    auto ask = [&] {
        return sys::trim(host.sh("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 127.0.0.1 18090 | tail -n 1").out);
    };
    REQUIRE(eventually([&] { return ask() == "hi"; }));
    auto ids = [&] {
        std::set<std::string> out;
        auto cs = node.containers();
        for (const auto& c : cs.asArray())
            if (c.find("status")->asString() == "running") out.insert(idOf(c));
        return out;
    };
    const std::set<std::string> before = ids();
    REQUIRE(before.size() == 2);

    // What a newer hull would write: a later version, with a field this one does not know.
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open((node.state / "node.db").c_str(), &db) == SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        char* err = nullptr;
        int rc = sqlite3_exec(db,
                              "UPDATE services SET spec = replace(spec, '\"version\":1,', "
                              "'\"version\":2,\"placement\":{\"spread\":\"zone\"},') WHERE name = 'keep'",
                              nullptr, nullptr, &err);
        INFO((err ? err : ""));
        sqlite3_free(err);
        CHECK(sqlite3_changes(db) == 1);
        sqlite3_close_v2(db);
        REQUIRE(rc == SQLITE_OK);
    }
    auto unreadableErrors = [&] {
        int n = 0;
        for (const auto& e : dbEvents(node.state / "node.db"))
            n += e.kind == "error" && e.service == "keep" &&
                 e.message.find("version: 2 is newer than this hull reads (up to 1); upgrade hull") != std::string::npos;
        return n;
    };
    REQUIRE(eventually([&] { return unreadableErrors() == 1; }));
    // Many rounds later (a round is 50 ms): the same containers, the port as it was, said once.
    for (int i = 0; i < 4; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        CHECK(ids() == before);
        CHECK(ask() == "hi");
    }
    CHECK(unreadableErrors() == 1);
    auto events = node.hull({"events"}).out;
    CHECK(events.find("stopping") == std::string::npos);
    // Listed, as far as it can be read; described with its error among its events.
    auto services = json::Value::parse(node.hull({"get", "services", "--output", "json"}).out);
    REQUIRE(services);
    REQUIRE(services->asArray().size() == 1);
    CHECK(services->asArray()[0].find("name")->asString() == "keep");
    CHECK(services->asArray()[0].find("spec")->find("image")->asString() == "hull.local/busybox");
    auto described = node.hull({"describe", "keep"});
    INFO(described.err);
    CHECK(described.status == 0);
    CHECK(described.out.find("stored spec unreadable") != std::string::npos);
    CHECK(described.out.find("2 desired, 2 ready") != std::string::npos);
    // Scaling what cannot be read is refused, clearly.
    auto scaled = node.hull({"scale", "keep", "3"});
    CHECK(scaled.status != 0);
    CHECK(scaled.err.find("stored spec unreadable") != std::string::npos);

    // An agent restart changes nothing either: adopted as they are, the port left published.
    node.kill(SIGKILL);
    node.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    CHECK(ids() == before);
    CHECK(ask() == "hi");

    // Applying its file again replaces it: a readable spec, a new generation, its containers updated.
    REQUIRE(node.hull({"apply", "-f", node.state / "keep.yaml"}).status == 0);
    CHECK(eventually([&] {
        auto cs = node.containers();
        size_t fresh = 0;
        for (const auto& c : cs.asArray())
            fresh += c.find("status")->asString() == "running" && intOf(c, "generation") == 2 && !before.count(idOf(c));
        return fresh == 2;
    }, 15000));
    CHECK(eventually([&] { return ask() == "hi"; }));
}

TEST_CASE("node: hull scale adds and removes replicas and leaves the running ones be", "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("scale", "hn-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start();
    auto file = [&](int replicas) {
        writeFileOrThrow(node.state / "sc.yaml", "name: sc\nimage: hull.local/busybox\ncommand: [sleep, '100000']\n"
                                                 "stopGracePeriod: 1s\nreplicas: " + std::to_string(replicas) + "\n");
        return node.hull({"apply", "-f", node.state / "sc.yaml"});
    };
    REQUIRE(file(2).status == 0);
    // The running containers by slot, once there are exactly N of them (nothing on its way out).
    auto bySlot = [&](size_t n) {
        std::map<int64_t, json::Value> out;
        bool settled = eventually([&] {
            out.clear();
            auto cs = node.containers();
            for (const auto& c : cs.asArray()) out[intOf(c, "slot")] = c;
            return cs.asArray().size() == n && runningCount(cs) == n;
        });
        INFO(node.hull({"events"}).out);
        REQUIRE(settled);
        return out;
    };
    auto two = bySlot(2);
    // The survivors of each step keep their ids and their generation label.
    auto kept = [&](const std::map<int64_t, json::Value>& now, const std::map<int64_t, json::Value>& was, int64_t slots) {
        for (int64_t slot = 0; slot < slots; ++slot) {
            INFO("slot " << slot);
            REQUIRE(now.count(slot));
            CHECK(idOf(now.at(slot)) == idOf(was.at(slot)));
            CHECK(intOf(now.at(slot), "generation") == 1);
        }
    };
    REQUIRE(node.hull({"scale", "sc", "4"}).status == 0);
    auto four = bySlot(4);
    kept(four, two, 2);
    CHECK(intOf(four.at(3), "generation") == 1);
    REQUIRE(node.hull({"scale", "sc", "1"}).status == 0);
    auto one = bySlot(1);
    kept(one, four, 1);
    // A file that differs only in replicas: the same generation, the same slot 0.
    auto applied = file(3);
    CHECK(applied.out.find("generation 1") != std::string::npos);
    auto three = bySlot(3);
    kept(three, one, 1);
    auto events = node.hull({"events"}).out;
    INFO(events);
    CHECK(events.find("stopping (update)") == std::string::npos);
    CHECK(events.find("stopping (scale down)") != std::string::npos);
    auto services = json::Value::parse(node.hull({"get", "services", "--output", "json"}).out);
    REQUIRE(services);
    CHECK(intOf(services->asArray()[0], "generation") == 1);
    CHECK(intOf(*services->asArray()[0].find("spec"), "replicas") == 3);
}

TEST_CASE("node: --insecure-registry lets the agent pull from a plain-HTTP registry, at apply and at a restart",
          "[root][net][node][registry]") {
    REQUIRE_ROOT();
    if (auto missing = registryToolsMissing(); !missing.empty()) {
        WARN("skipped: " << missing);
        return;
    }
    TestNetns host("insecure", "hn-");
    InNetns in(host.path());
    TempDir work("hull-node-reg");
    std::string layout = buildTestImage(work.path());
    // On an address of this namespace that is not loopback (a registry on
    // loopback is spoken to over plain HTTP without the flag).
    REQUIRE(host.sh("ip addr add 10.254.77.1/32 dev lo").status == 0);
    RegistryOptions ro;
    ro.listen = "0.0.0.0";
    TestRegistry reg(ro);
    pushImage(layout, "latest", reg.host() + "/test/busybox:oci", "oci");
    const std::string registry = "10.254.77.1:" + std::to_string(reg.port());
    std::string ref = registry + "/test/busybox:oci";
    Node node;
    writeFileOrThrow(node.state / "pulled.yaml", "name: pulled\nimage: " + ref +
                                                     "\ncommand: [busybox, sleep, '100000']\nstopGracePeriod: 1s\n"
                                                     "backoff: {initial: 100ms, factor: 2, max: 400ms, resetAfter: 60s}\n");
    // Without the flag the registry is spoken to over TLS, which it does not speak.
    node.start();
    auto refused = node.hull({"apply", "-f", node.state / "pulled.yaml"});
    CHECK(refused.status != 0);
    CHECK(refused.err.find("image") != std::string::npos);
    node.kill(SIGTERM);
    node.start({"--insecure-registry", registry});
    auto applied = node.hull({"apply", "-f", node.state / "pulled.yaml"});
    INFO(applied.err);
    REQUIRE(applied.status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 1; }));
    // The image goes; the replacement of a killed container pulls it again on its way.
    std::string first = idOf(onlyContainer(node));
    auto rm = node.hull({"image", "rm", ref});
    INFO(rm.err);
    REQUIRE(rm.status == 0);
    auto inspect = json::Value::parse(node.hull({"inspect", first}).out);
    REQUIRE(inspect);
    REQUIRE(::kill(pid_t(intOf(*inspect, "pid")), SIGKILL) == 0);
    bool replaced = eventually([&] {
        auto c = onlyContainer(node);
        return !idOf(c).empty() && idOf(c) != first && intOf(c, "restarts") == 1;
    }, 15000);
    INFO(node.hull({"events"}).out);
    CHECK(replaced);
    CHECK(node.hull({"image", "ls"}).out.find("test/busybox") != std::string::npos);
}

TEST_CASE("node: a pull that hangs, at apply or at a start, holds up neither supervision nor the API",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("pull", "hn-");
    InNetns in(host.path());
    // A registry that accepts and never answers (a listener nobody accepts on):
    // a pull from it waits for the registry client's own timeout (minutes).
    int hole = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(hole, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(hole, 64) == 0);
    ::getsockname(hole, reinterpret_cast<sockaddr*>(&a), &len);
    std::string registry = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    struct Close {
        int fd;
        ~Close() { ::close(fd); }
    } closeHole{hole};

    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    node.start({"--insecure-registry", registry});
    writeFileOrThrow(node.state / "victim.yaml",
                     "name: victim\nimage: hull.local/busybox\ncommand: [sleep, '100000']\n"
                     "backoff: {initial: 1ms, factor: 1, max: 1ms, resetAfter: 60s}\nstopGracePeriod: 1s\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "victim.yaml"}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 1; }));

    // At apply: the request waits for the pull (its connection held open here), the loop does not.
    std::string stuck = "name: stuck\nimage: " + registry + "/stuck:1\ncommand: [sleep, '100000']\n";
    std::string body = orchestrator::encode(orchestrator::ApplyRequest{"stuck.yaml", stuck});
    int applying = connectUnix(node.state / "node.sock");
    REQUIRE(applying >= 0);
    std::string req = "POST /v1/services HTTP/1.1\r\nHost: hull-node\r\nContent-Type: application/json\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body;
    REQUIRE(::send(applying, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()));
    struct CloseApplying {
        int fd;
        ~CloseApplying() { ::close(fd); }
    } closeApplying{applying};
    // At a start: a spec stored as a master would store it, with no apply to check its image first.
    {
        auto spec = orchestrator::parseService("name: stuck2\nimage: " + registry + "/stuck2:1\ncommand: [sleep, '100000']\n");
        REQUIRE(spec);
        auto store = orchestrator::Store::open(node.state / "node.db");
        REQUIRE(store);
        REQUIRE(store->putService("stuck2", orchestrator::serviceJson(*spec)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // both pulls under way

    std::string db = node.state / "node.db";
    for (int k = 1; k <= 3; ++k) {
        CHECK(getWithin(node.state / "node.sock", "/v1/services", 1000) == 200);
        auto [victim, pid] = runningNamed(node, "victim-0-");
        REQUIRE(pid > 0);
        REQUIRE(::kill(pid_t(pid), SIGKILL) == 0);
        int64_t exited = -1, started = -1;
        waitFor([&, &victim = victim] {
            for (const auto& e : dbEvents(db)) {
                if (e.kind == "exit" && e.container == victim) exited = e.time;
                if (exited > 0 && e.kind == "start" && e.service == "victim" && e.time >= exited) started = e.time;
            }
            return started > 0;
        }, 5000);
        INFO("kill " << k << ": exit at " << exited << ", replacement at " << started);
        REQUIRE(exited > 0);
        REQUIRE(started > 0);
        CHECK(started - exited < 1000);
        REQUIRE(waitFor([&, victim = victim] {
            auto next = runningNamed(node, "victim-0-");
            return next.second > 0 && next.first != victim;
        }));
    }
    // Nothing of either has started, and the one being applied is not stored until its image is there.
    auto services = node.hull({"get", "services"}).out;
    CHECK(services.find("stuck2") != std::string::npos);
    CHECK(services.find("stuck ") == std::string::npos);
    for (const auto& e : dbEvents(db)) CHECK_FALSE((e.kind == "start" && e.service.rfind("stuck", 0) == 0));
    pollfd p{applying, POLLIN, 0};
    CHECK(::poll(&p, 1, 0) == 0);  // no answer yet: the pull goes on
}

TEST_CASE("node: a master's assignment runs each slot at its pinned generation and incarnation, through a bump and a "
          "kill -9",
          "[root][net][node]") {
    REQUIRE_ROOT();
    std::string image = busyboxImage();
    TestNetns host("pins", "hp-");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", image}).status == 0);
    // What a master's assignment leaves in the store (as an agent cut off from
    // its master, restarted, finds it): web at 7 on slots 0 and 1, slot 1 pinned to 6.
    auto spec = [](const std::string& mark) {
        auto s = orchestrator::parseService("name: web\nimage: hull.local/busybox\ncommand: [sleep, '1000']\n"
                                            "env: [MARK=" + mark + "]\nstopGracePeriod: 1s\n"
                                            "backoff: {initial: 100ms, factor: 2, max: 200ms, resetAfter: 60s}\n",
                                            "web.yaml");
        REQUIRE(s);
        return orchestrator::serviceJson(*s);
    };
    orchestrator::ServiceRow row;
    row.name = "web";
    row.spec = spec("seven");
    row.generation = 7;
    row.slots = std::vector<int>{0, 1};
    row.pins = {{1, 6, 0}};
    row.versions = {{6, spec("six")}};
    auto put = [&](const orchestrator::ServiceRow& r) {
        auto store = orchestrator::Store::open(node.state / "node.db");
        REQUIRE(store);
        REQUIRE(store->putAssignment(r).value_or(false));
    };
    put(row);
    node.start();
    auto list = [&] {
        auto r = orchestrator::api::unixRequest(node.state / "node.sock", "GET", "/v1/containers", "");
        std::map<int, orchestrator::ContainerEntry> running;  // by slot
        if (!r || r->first != 200) return running;
        auto l = orchestrator::decode<orchestrator::ContainerList>(r->second);
        if (l)
            for (const auto& c : l->containers)
                if (c.status == "running") running[c.slot] = c;
        return running;
    };
    auto mark = [&](const std::string& id) { return sys::trim(node.hull({"exec", id, "sh", "-c", "echo $MARK"}).out); };
    std::map<int, orchestrator::ContainerEntry> cs;
    bool up = eventually([&] { return (cs = list()).size() == 2; });
    INFO(node.hull({"events"}).out);
    REQUIRE(up);
    CHECK((cs[0].generation == 7 && cs[0].incarnation == 0));
    CHECK((cs[1].generation == 6 && cs[1].incarnation == 0));
    CHECK(mark(cs[0].id) == "seven");
    CHECK(mark(cs[1].id) == "six");
    const std::string zero = cs[0].id, first = cs[1].id;

    // The master bumps slot 1's incarnation: a fresh copy of generation 6 replaces it; slot 0 stays.
    row.pins = {{1, 6, 1}};
    put(row);
    bool replaced = eventually([&] {
        cs = list();
        return cs.size() == 2 && cs[1].id != first && cs[1].incarnation == 1 && cs[1].ready;
    });
    REQUIRE(replaced);
    CHECK(cs[1].generation == 6);
    CHECK(cs[0].id == zero);
    CHECK(mark(cs[1].id) == "six");
    REQUIRE(eventually([&] {
        auto r = orchestrator::api::unixRequest(node.state / "node.sock", "GET", "/v1/containers", "");
        return r && r->second.find(first) == std::string::npos;  // the old copy is gone
    }));
    CHECK(node.hull({"events"}).out.find("stopping (phoenix)") != std::string::npos);

    // kill -9 of slot 1: it restarts as generation 6, incarnation 1, its restart counted.
    const std::string victim = cs[1].id;
    auto inspect = json::Value::parse(node.hull({"inspect", victim}).out);
    REQUIRE(inspect);
    REQUIRE(intOf(*inspect, "pid") > 0);
    ::kill(pid_t(intOf(*inspect, "pid")), SIGKILL);
    bool restarted = eventually([&] {
        cs = list();
        return cs.count(1) && cs[1].id != victim && cs[1].restarts == 1;
    });
    REQUIRE(restarted);
    CHECK((cs[1].generation == 6 && cs[1].incarnation == 1));
    CHECK(mark(cs[1].id) == "six");
    CHECK(cs[0].id == zero);
}

namespace {

// A capability mask of /proc/PID/status ("CapEff", "CapBnd", ...).
uint64_t capMask(pid_t pid, const std::string& key) {
    auto status = readFileOr("/proc/" + std::to_string(pid) + "/status");
    auto at = status.find("\n" + key + ":\t");
    return at == std::string::npos ? ~uint64_t(0) : std::strtoull(status.c_str() + at + key.size() + 3, nullptr, 16);
}

uint64_t maskOf(const std::vector<std::string>& names) {
    const auto all = runtime::capabilityNames();
    uint64_t m = 0;
    for (const auto& n : names)
        for (size_t i = 0; i < all.size(); ++i)
            if (all[i] == n) m |= uint64_t(1) << i;
    return m;
}

}  // namespace

TEST_CASE("node: the agent keeps only the capabilities it needs, and its containers still get the default set", "[root][net][node]") {
    REQUIRE_ROOT();
    std::string images = std::string(HULL_BIN_DIR) + "/../images/busybox";
    REQUIRE(run({std::string(HULL_SOURCE_DIR) + "/scripts/make-busybox-image", images}).status == 0);
    TestNetns host("nodecaps");
    InNetns in(host.path());
    Node node;
    REQUIRE(node.hull({"image", "import", images + "/busybox.oci.tar"}).status == 0);
    node.start();
    // Of those, what this machine gives root at all (a sandbox may hold back some).
    const uint64_t want = maskOf(runtime::agentCapabilities()) & capMask(::getpid(), "CapBnd");
    REQUIRE(want != 0);
    CHECK(capMask(node.pid, "CapEff") == want);
    CHECK(capMask(node.pid, "CapPrm") == want);
    CHECK(capMask(node.pid, "CapBnd") == want);
    // Nothing the agent is without: none of these.
    for (const char* gone : {"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_MAC_ADMIN"})
        CHECK((capMask(node.pid, "CapBnd") & maskOf({gone})) == 0);

    writeFileOrThrow(node.state / "svc.yaml", "name: capped\nimage: hull.local/busybox\ncommand: [sleep, '1000']\n");
    REQUIRE(node.hull({"apply", "-f", node.state / "svc.yaml"}).status == 0);
    REQUIRE(eventually([&] { return runningCount(node.containers()) == 1; }));
    auto inspect = json::Value::parse(node.hull({"inspect", idOf(onlyContainer(node))}).out);
    REQUIRE(inspect);
    const pid_t pid = pid_t(intOf(*inspect, "pid"));
    REQUIRE(pid > 0);
    // The container's bounding set: the runtime's defaults, all within the agent's.
    const uint64_t defaults = capMask(pid, "CapBnd");
    CHECK(defaults != 0);
    CHECK((defaults & ~want) == 0);
    CHECK((defaults & maskOf({"CAP_NET_RAW", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"})) ==
          maskOf({"CAP_NET_RAW", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"}));
    REQUIRE(node.hull({"delete", "capped"}).status == 0);
}
