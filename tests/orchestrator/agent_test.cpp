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

bool eventually(const std::function<bool()>& cond, int ms = 8000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return cond();
}

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
                     "backoff: {initial: 100ms, factor: 2, max: 2s, resetAfter: 60s}\n");
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
