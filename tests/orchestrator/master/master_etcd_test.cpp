// `hull master --store etcd://...` as a user runs it: real master processes
// on loopback, a real etcd from Debian (tests/orchestrator/state/etcd_support.hpp).
// One leads; another waits as a standby (forwarding the API to the leader)
// and takes over, with the cluster's state, when the leader dies or stops. (Fencing a deposed leader's writes is
// fenced_store_test's; the election's timing, election_test's.)
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/state/etcd_support.hpp"
#include "support.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::test;

namespace {

/// A free TCP port on 127.0.0.1 (the kernel's pick, released at once).
int freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    ::close(fd);
    return ntohs(sa.sin_port);
}

/// `hull master` as a child process (dies with the test process), its output in LOG; as an
/// unprivileged user, as it runs in production (it refuses root without --allow-root).
class MasterProcess {
public:
    MasterProcess(std::string name, std::string stateDir, int port, std::string store)
        : name_(std::move(name)), dir_(std::move(stateDir)), port_(port), store_(std::move(store)) {
        start();
    }
    ~MasterProcess() { stop(SIGKILL); }
    MasterProcess(const MasterProcess&) = delete;
    MasterProcess& operator=(const MasterProcess&) = delete;

    void start() {
        // Its state dir is the unprivileged user's; the parent only needs to let it through.
        const auto u = unprivilegedUser();
        ::chmod(dir_.substr(0, dir_.rfind('/')).c_str(), 0755);
        ::mkdir(dir_.c_str(), 0700);
        REQUIRE(::chown(dir_.c_str(), u.uid, u.gid) == 0);
        std::vector<std::string> args{binPathForUnprivileged("hull"), "master",  "--state-dir", dir_,   "--listen", "127.0.0.1:" + std::to_string(port_),
                                      "--name",        name_,     "--store",     store_};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const std::string log = dir_ + ".log";
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(126);
            int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
            }
            if (!dropToUnprivileged()) ::_exit(125);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    /// SIG (SIGKILL: a crash; SIGTERM: a clean stop), then reaped; its exit status.
    int stop(int sig) {
        if (pid_ <= 0) return -1;
        ::kill(pid_, sig);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }
    /// `hull --config STATE/admin.conf ARGS...`
    RunResult hull(std::vector<std::string> args) const {
        args.insert(args.begin(), {binPath("hull"), "--config", dir_ + "/admin.conf"});
        return run(args);
    }
    std::string log() const { return readFileOr(dir_ + ".log"); }
    bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
    int port() const { return port_; }

private:
    std::string name_, dir_;
    int port_;
    std::string store_;
    pid_t pid_ = -1;
};

/// The services a master serves ("" when it does not answer).
std::string servicesOf(const MasterProcess& m) {
    auto r = m.hull({"get", "services", "--output", "json"});
    if (r.status != 0) return "";
    auto v = json::Value::parse(r.out);
    std::string out;
    if (v && v->isArray())
        for (const auto& s : v->asArray()) out += json::stringOf(s, "name") + " ";
    return out;
}

}  // namespace

TEST_CASE("master on etcd: a standby forwards calls to the leader, and takes over with the cluster's state when the leader "
          "dies or stops",
          "[master][etcd]") {
    EtcdCluster etcd;
    const std::string store = "etcd://" + etcd.endpoint(0).substr(std::string("http://").size());
    TempDir dirs("hull-etcd-masters");
    MasterProcess m1("m1", dirs.path() + "/m1", freePort(), store);
    REQUIRE(waitFor([&] { return m1.hull({"get", "services"}).status == 0; }, 15000));
    // Its state is in etcd: no SQLite file beside it.
    CHECK(::access((dirs.path() + "/m1/state.db").c_str(), F_OK) != 0);
    auto st = m1.hull({"cluster", "status", "--output", "json"});
    INFO(st.out << st.err);
    auto status = json::Value::parse(st.out);
    REQUIRE(status);
    CHECK(json::stringOf(*status, "leader") == "m1");
    CHECK(json::stringOf(*status, "store") == store);

    TempDir files("hull-etcd-svc");
    writeFileOrThrow(files / "web.yaml", "name: web\nimage: hull.local/busybox:latest\nreplicas: 2\n");
    auto applied = m1.hull({"apply", "-f", files / "web.yaml"});
    INFO(applied.out << applied.err);
    REQUIRE(applied.status == 0);

    // m2, on the same etcd: a standby while m1 leads. It holds no state: what
    // it answers is m1's, forwarded (a write too).
    MasterProcess m2("m2", dirs.path() + "/m2", freePort(), store);
    REQUIRE(waitFor([&] { return m2.log().find("standby serving") != std::string::npos; }, 10000));
    REQUIRE(waitFor([&] { return m2.log().find("the leader is m1") != std::string::npos; }, 10000));
    CHECK(servicesOf(m2) == "web ");
    writeFileOrThrow(files / "api.yaml", "name: api\nimage: hull.local/busybox:latest\nreplicas: 1\n");
    auto viaStandby = m2.hull({"apply", "-f", files / "api.yaml"});
    INFO(viaStandby.out << viaStandby.err);
    CHECK(viaStandby.status == 0);
    CHECK(servicesOf(m1) == "api web ");
    CHECK(m2.hull({"delete", "api"}).status == 0);
    CHECK(servicesOf(m1) == "web ");
    auto st2 = m2.hull({"cluster", "status", "--output", "json"});
    auto s2 = json::Value::parse(st2.out);
    REQUIRE(s2);
    CHECK(json::stringOf(*s2, "leader") == "m1");
    REQUIRE(s2->find("masters"));
    CHECK(s2->find("masters")->asArray().size() == 2);

    // One admin.conf for both: the masters share the CA and the admin token
    // (made by m1, kept in etcd). The CLI tries its servers in turn.
    auto conf = json::Value::parse(readFileOr(dirs.path() + "/m1/admin.conf"));
    REQUIRE(conf);
    const std::string m1Url = json::stringOf(*conf, "server");
    conf->set("server", m1Url + "," + "https://127.0.0.1:" + std::to_string(m2.port()));
    writeFileOrThrow(files / "both.conf", conf->dump());
    auto both = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {binPath("hull"), "--config", files / "both.conf"});
        return run(args);
    };
    CHECK(both({"get", "services"}).status == 0);

    // m1 crashes: m2 leads within the lease's time, serving what m1 acknowledged.
    const auto killed = std::chrono::steady_clock::now();
    m1.stop(SIGKILL);
    REQUIRE(waitFor([&] { return servicesOf(m2) == "web "; }, 15000));
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed).count();
    INFO("m2 served " << took << " ms after m1's SIGKILL");
    CHECK(m2.log().find("leading") != std::string::npos);
    WARN("failover: m2 served " << took << " ms after m1's SIGKILL");
    // m2 wrote the same credentials: its admin.conf has m1's token and CA, and
    // the two-server admin.conf reaches it with m1 gone.
    auto conf2 = json::Value::parse(readFileOr(dirs.path() + "/m2/admin.conf"));
    REQUIRE(conf2);
    CHECK(json::stringOf(*conf2, "token") == json::stringOf(*conf, "token"));
    CHECK(json::stringOf(*conf2, "ca") == json::stringOf(*conf, "ca"));
    auto status2 = both({"cluster", "status", "--output", "json"});
    INFO(status2.out << status2.err);
    REQUIRE(status2.status == 0);
    CHECK(json::stringOf(*json::Value::parse(status2.out), "leader") == "m2");
    CHECK(readFileOr(dirs.path() + "/m2/join-token") == readFileOr(dirs.path() + "/m1/join-token"));

    // m1 again: now the standby, forwarding to m2.
    m1.start();
    REQUIRE(waitFor([&] { return m1.log().find("the leader is m2") != std::string::npos; }, 10000));
    CHECK(waitFor([&] { return servicesOf(m1) == "web "; }, 10000));
    // m2 stops cleanly: it resigns, and m1 takes over at once, not after a lease runs out.
    const auto stopped = std::chrono::steady_clock::now();
    const int exit = m2.stop(SIGTERM);
    CHECK(WIFEXITED(exit));
    CHECK(WEXITSTATUS(exit) == 0);
    REQUIRE(waitFor([&] { return servicesOf(m1) == "web "; }, 15000));
    const auto handover = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stopped).count();
    INFO("m1 served " << handover << " ms after m2's SIGTERM");
    CHECK(handover < 3000);
}

TEST_CASE("master: as root it refuses to start without --allow-root, and makes nothing", "[master][root]") {
    REQUIRE_ROOT();
    TempDir dir("hull-master-root");
    const std::string state = dir.path() + "/state";
    auto r = run({binPath("hull"), "master", "--state-dir", state, "--listen", "127.0.0.1:0"});
    CHECK(r.status == 1);
    CHECK(r.err.find("master: refusing to run as root: it needs no privilege") != std::string::npos);
    CHECK(r.err.find("--allow-root") != std::string::npos);
    struct stat st;
    CHECK(::stat(state.c_str(), &st) != 0);
}

TEST_CASE("master: a --store it cannot use is refused at start, naming what it expects", "[master][etcd]") {
    TempDir dir("hull-bad-store");
    for (const char* bad : {"etcd://", "redis://127.0.0.1:6379", "etcd://127.0.0.1:2379/path"}) {
        // --allow-root: a test as root, for the store's message rather than root's.
        auto r = run({binPath("hull"), "master", "--allow-root", "--state-dir", dir.path(), "--listen", "127.0.0.1:0", "--store", bad});
        INFO(bad << ": " << r.err);
        CHECK(r.status != 0);
        CHECK(r.err.find("expected") != std::string::npos);
    }
}

TEST_CASE("masters on etcd: of 500 numbered applies made while the leader is SIGKILLed three times, every acknowledged "
          "one is there afterwards, and none is there in part",
          "[master][etcd]") {
    EtcdCluster etcd({.members = 3});
    std::string store = "etcd://";
    for (int i = 0; i < 3; ++i) store += (i ? "," : "") + etcd.endpoint(i).substr(std::string("http://").size());
    TempDir dirs("hull-etcd-acked");
    std::vector<std::unique_ptr<MasterProcess>> masters;
    for (int i = 1; i <= 3; ++i)
        masters.push_back(std::make_unique<MasterProcess>("m" + std::to_string(i), dirs.path() + "/m" + std::to_string(i), freePort(), store));
    // The leader, as a master's own log says last (a standby answers too: it forwards).
    auto leader = [&]() -> MasterProcess* {
        for (auto& m : masters) {
            const std::string log = m->log();
            const auto led = log.rfind("leading (term");
            if (led != std::string::npos && log.find("no longer the leader", led) == std::string::npos && m->alive()) return m.get();
        }
        return nullptr;
    };
    MasterProcess* first = nullptr;
    REQUIRE(waitFor([&] { return (first = leader()) && first->hull({"get", "services"}).status == 0; }, 20000));
    // The admin.conf of all three (each master wrote the same one, but for its URL).
    std::string servers;
    for (auto& m : masters) servers += (servers.empty() ? "" : ",") + ("https://127.0.0.1:" + std::to_string(m->port()));
    REQUIRE(waitFor([&] { return !readFileOr(dirs.path() + "/m1/admin.conf").empty(); }, 10000));
    auto admin = json::Value::parse(readFileOr(dirs.path() + "/m1/admin.conf"));
    REQUIRE(admin);
    admin->set("server", servers);
    TempDir files("hull-etcd-acked-files");
    writeFileOrThrow(files / "all.conf", admin->dump());
    auto hull = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {binPath("hull"), "--config", files / "all.conf"});
        return run(args);
    };

    // The client: change N is service s-N whose command carries N.
    constexpr int kChanges = 500;
    std::vector<int> acked(kChanges, 0);
    std::atomic<int> done{0};
    std::vector<std::string> failures;  // the first few refusals, for the log
    int refused = 0;                     // applies that failed (and were tried again)
    int64_t longest = 0;                 // ms: the longest wait for one change's acknowledgement
    std::thread client([&] {
        for (int i = 0; i < kChanges; ++i) {
            const std::string f = files / ("s-" + std::to_string(i) + ".yaml");
            writeFileOrThrow(f, "name: s-" + std::to_string(i) + "\nimage: hull.local/busybox:latest\nreplicas: 1\ncommand: [sleep, \"" +
                                    std::to_string(i) + "\"]\n");
            // As a user's script would: refused (no leader for a moment), it tries again.
            const auto start = std::chrono::steady_clock::now();
            while (std::chrono::steady_clock::now() - start < std::chrono::seconds(15)) {
                auto r = hull({"apply", "-f", f});
                if (r.status == 0) {
                    acked[size_t(i)] = 1;
                    break;
                }
                ++refused;
                if (failures.size() < 3) failures.push_back(std::to_string(i) + ": " + r.err);
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            longest = std::max<int64_t>(longest, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
            done = i + 1;
        }
    });
    // Three kills, each at a random moment of the run (the killed master comes
    // back at once, as its supervisor would start it: a standby from then on).
    std::mt19937 rng(std::random_device{}());
    int kills = 0;
    for (int k = 0; k < 3; ++k) {
        const int at = std::uniform_int_distribution<int>(k * kChanges / 4 + 10, (k + 1) * kChanges / 4)(rng);
        while (done < at) std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 20)(rng)));
        MasterProcess* l = nullptr;
        if (!waitFor([&] { return (l = leader()) != nullptr; }, 20000)) break;
        l->stop(SIGKILL);
        ++kills;
        l->start();
    }
    client.join();
    CHECK(kills == 3);

    // Afterwards, through whichever master leads.
    std::optional<json::Value> services;
    REQUIRE(waitFor(
        [&] {
            auto r = hull({"get", "services", "--output", "json"});
            if (r.status != 0) return false;
            services = json::Value::parse(r.out).value_or(json::Value());
            return services->isArray();
        },
        20000));
    std::map<std::string, std::string> there;  // name -> the command's argument
    for (const auto& s : services->asArray()) {
        const json::Value* spec = s.find("spec");
        const json::Value* cmd = spec ? spec->find("command") : nullptr;
        there[json::stringOf(s, "name")] = cmd && cmd->isArray() && cmd->asArray().size() == 2 ? cmd->asArray()[1].asString() : "?";
    }
    int nAcked = 0, lost = 0, partial = 0;
    for (int i = 0; i < kChanges; ++i) {
        const std::string name = "s-" + std::to_string(i);
        nAcked += acked[size_t(i)];
        if (acked[size_t(i)] && !there.count(name)) ++lost;
        if (there.count(name) && there[name] != std::to_string(i)) ++partial;
    }
    INFO(nAcked << " of " << kChanges << " acknowledged, " << there.size() << " there");
    std::string refusals;
    for (const auto& f : failures) refusals += "refused " + f;
    INFO(refusals);
    CHECK(lost == 0);
    CHECK(partial == 0);
    // Every change was acknowledged in the end (the leader came back each time,
    // well within the 15 s a change is tried for); and the kills did land mid-run:
    // applies were refused meanwhile.
    CHECK(nAcked == kChanges);
    CHECK(refused > 0);
    WARN(nAcked << " of " << kChanges << " applies acknowledged across 3 leader kills (" << refused
                << " attempts refused meanwhile; the longest wait for one change " << longest << " ms); " << there.size()
                << " services there");
}
