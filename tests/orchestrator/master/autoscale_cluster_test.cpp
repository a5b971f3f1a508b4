// Autoscaling on scripts/cluster hosts, as a user sees it: a CPU-bound service
// follows the load its replicas are given (through `hull exec`), and a
// requests-per-second service follows the connections made to its published
// port; both come back to their minimum once the load is gone for
// scaleDownAfter. Decisions are events with their reasons, and `hull describe`
// and `hull scale` say what the autoscaler does.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "orchestrator/master/cluster_support.hpp"

using namespace hull;
using namespace hull::test;
using namespace hull::test::cluster;

namespace {

/// The desired replicas of SERVICE as `hull get services` says (-1: none).
int64_t desired(const Cluster& c, const std::string& service) {
    const Value services = c.json({"get", "services"});
    if (services.isArray())
        for (const auto& s : services.asArray())
            if (json::stringOf(s, "name") == service) {
                int64_t n = -1;
                if (const Value* r = s.find("replicas")) r->toInt64(n);
                return n;
            }
    return -1;
}

/// SERVICE's autoscale events' messages, oldest first.
std::vector<std::string> autoscaleEvents(const Cluster& c, const std::string& service) {
    std::vector<std::string> out;
    const Value events = c.json({"events"});
    if (events.isArray())
        for (const auto& e : events.asArray())
            if (json::stringOf(e, "service") == service && json::stringOf(e, "kind") == "autoscale")
                out.push_back(json::stringOf(e, "message"));
    return out;
}

/// One TCP connection to ADDRESS:PORT, closed at once; whether it was accepted.
bool connectOnce(const std::string& address, int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(port));
    ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
    timeval tv{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

TEST_CASE("cluster: a CPU-bound service scales out as its replicas burn CPU and back in once they stop, each decision "
          "an event with its reason",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c(2);
    // Each replica burns its whole CPU limit (half a core) while /tmp/burn exists.
    const std::string spec =
        "replicas: 1\nresources: {limits: {cpus: 0.5}}\n"
        "autoscale: {min: 1, max: 4, cpu: 60%, scaleDownAfter: 8s}\n"
        "command: [sh, -c, 'while :; do if [ -f /tmp/burn ]; then while [ -f /tmp/burn ]; do :; done; else sleep 0.2; fi; "
        "done']\nstopGracePeriod: 1s\n";
    auto applied = c.apply("burn", spec);
    INFO(applied.out << applied.err);
    REQUIRE(applied.status == 0);
    REQUIRE(eventually([&] { return c.ready("burn").size() == 1; }, 60000));
    // Idle: it stays at its minimum (and `hull scale` is refused, saying why).
    std::this_thread::sleep_for(std::chrono::seconds(3));
    CHECK(desired(c, "burn") == 1);
    auto scaled = c.hull({"scale", "burn", "3"});
    CHECK(scaled.status != 0);
    CHECK(scaled.err.find("autoscaled") != std::string::npos);

    // One replica at 100% of its limit, against a 60% target: two replicas (ceil(1 x 100/60)).
    const std::string first = json::stringOf(c.ready("burn").front(), "id");
    REQUIRE(c.hull({"exec", first, "touch", "/tmp/burn"}).status == 0);
    CHECK(eventually([&] { return desired(c, "burn") == 2; }, 15000));
    CHECK(eventually([&] { return c.ready("burn").size() == 2; }, 60000));
    // One busy, one idle: 50% against 60% calls for 2 (ceil(2 x 50/60)): no change.
    std::this_thread::sleep_for(std::chrono::seconds(4));
    CHECK(desired(c, "burn") == 2);
    // Both burning: 100% on 2 replicas calls for 4 (ceil(2 x 100/60), the max).
    for (const auto& r : c.ready("burn"))
        REQUIRE(c.hull({"exec", json::stringOf(r, "id"), "touch", "/tmp/burn"}).status == 0);
    CHECK(eventually([&] { return desired(c, "burn") == 4; }, 15000));
    CHECK(eventually([&] { return c.ready("burn").size() == 4; }, 60000));
    auto describe = c.hull({"describe", "burn"});
    INFO(describe.out);
    CHECK(describe.out.find("Autoscale:") != std::string::npos);
    CHECK(describe.out.find("1..4 replicas") != std::string::npos);

    // The load stops: back to 1, not before scaleDownAfter (8 s).
    for (const auto& r : c.ready("burn")) (void)c.hull({"exec", json::stringOf(r, "id"), "rm", "-f", "/tmp/burn"});
    const auto stopped = std::chrono::steady_clock::now();
    CHECK(eventually([&] { return desired(c, "burn") == 1; }, 40000));
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stopped).count();
    CHECK(took >= 7000);
    auto events = autoscaleEvents(c, "burn");
    std::string all;
    for (const auto& e : events) all += e + "\n";
    INFO(all);
    REQUIRE(events.size() >= 3);
    CHECK(events[0].find("cpu") != std::string::npos);
    CHECK(events[0].find("1 -> 2") != std::string::npos);
    CHECK(events.back().find("-> 1") != std::string::npos);
}

TEST_CASE("cluster: a service scales out under a bounded wrk load on its published port and back in when it stops",
          "[root][net][cluster]") {
    REQUIRE_ROOT();
    Cluster c(2);
    const std::string spec =
        "replicas: 1\nports: [\"18080:80\"]\n"
        "probes: {readiness: {http: {port: 80, path: /}, period: 500ms}}\n"
        "autoscale: {min: 1, max: 3, requestsPerSecond: 15, scaleDownAfter: 6s}\n"
        "command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www']\nstopGracePeriod: 1s\n";
    auto applied = c.apply("web", spec);
    INFO(applied.out << applied.err);
    REQUIRE(applied.status == 0);
    REQUIRE(eventually([&] { return c.ready("web").size() == 1; }, 60000));
    // The routing mesh publishes 18080 on every node: it is open on n1 once the replica is ready.
    const std::string n1 = kNet + ".11";
    REQUIRE(eventually([&] { return connectOnce(n1, 18080); }, 20000));
    std::this_thread::sleep_for(std::chrono::seconds(3));
    CHECK(desired(c, "web") == 1);

    // wrk at about 50 requests a second, each on a new connection (bounded: 15 s at
    // most), against 15 per replica: 3 replicas.
    TempDir d("hull-wrk");
    writeFileOrThrow(d / "rate.lua",
                     "wrk.headers[\"Connection\"] = \"close\"\n"
                     "function delay() return 80 end  -- 4 connections x 12.5/s\n");
    const auto start = std::chrono::steady_clock::now();
    pid_t wrk = ::fork();
    REQUIRE(wrk >= 0);
    if (wrk == 0) {
        ::execlp("wrk", "wrk", "-t1", "-c4", "-d15s", "-s", (d / "rate.lua").c_str(), ("http://" + n1 + ":18080/").c_str(),
                 (char*)nullptr);
        ::_exit(127);
    }
    const bool out = eventually([&] { return desired(c, "web") == 3; }, 15000);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    ::kill(wrk, SIGTERM);
    int status = 0;
    ::waitpid(wrk, &status, 0);
    INFO("scaled out " << took << " ms into the load");
    CHECK(out);
    CHECK(eventually([&] { return c.ready("web").size() == 3; }, 60000));
    // No load: back to 1 after scaleDownAfter.
    CHECK(eventually([&] { return desired(c, "web") == 1; }, 30000));
    auto events = autoscaleEvents(c, "web");
    REQUIRE(!events.empty());
    CHECK(events[0].find("1 -> ") != std::string::npos);
    // The master exposes the rates it acts on.
    auto metrics = c.hull({"metrics"});
    CHECK(metrics.out.find("hull_service_connections_per_second{service=\"web\"}") != std::string::npos);
    CHECK(metrics.out.find("hull_container_cpu_cores{service=\"web\"") != std::string::npos);
    CHECK(metrics.out.find("hull_service_probe_latency_seconds{service=\"web\"}") != std::string::npos);
}
