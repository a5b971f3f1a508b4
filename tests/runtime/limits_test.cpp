// linux.resources enforced by the kernel, seen from inside the container and
// through hull-runc's `events` and `update`. Each scenario runs twice: on this
// host ([root]: cgroup v1, or whatever the host has) and in the VM harness
// ([vm]: cgroup v2 with every controller; scripts/vm-test).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <thread>

#include "runtime/bundle.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

using namespace hull::test;

namespace {

/// A number inside `events --stats` output: path like {"memory","events","oom_kill"}.
uint64_t statOf(const HullRunc& rc, const std::string& id, std::initializer_list<const char*> path) {
    auto r = rc({"events", "--stats", id});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto v = hull::json::Value::parse(r.out);
    REQUIRE(v);
    REQUIRE(v->find("type")->asString() == "stats");
    const hull::json::Value* at = v->find("data");
    for (const char* key : path) {
        REQUIRE(at);
        at = at->find(key);
    }
    REQUIRE(at);
    uint64_t n = 0;
    REQUIRE(at->toUint64(n));
    return n;
}

/// A background `hull-runc events ID` writing to a file; stopped on destruction.
class EventsStream {
public:
    EventsStream(const HullRunc& rc, const std::string& id) : out_("hull-events") {
        int fd = ::open((out_ / "events").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        std::string bin = binPath("hull-runc");
        std::string root = rc.root();
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(fd, 1);
            ::execl(bin.c_str(), "hull-runc", "--root", root.c_str(), "events", "--interval", "60s", id.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(fd);
    }
    ~EventsStream() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    std::string text() const { return readFileOr(out_ / "events"); }
    /// True once hull-runc events has exited by itself (the container stopped).
    bool exited() { return ::waitpid(pid_, &status_, WNOHANG) == pid_; }

private:
    TempDir out_;
    pid_t pid_ = -1;
    int status_ = 0;
};

void memoryScenario() {
    BundleOptions o;
    o.args = {"/bin/sleep", "300"};
    // 32 MiB, no swap beyond it (swap counts memory + swap).
    o.resources = R"({"memory":{"limit":33554432,"swap":33554432}})";
    Bundle b(o);
    HullRunc rc;
    auto c = rc({"create", "--bundle", b.path(), "lim-mem"});
    INFO(c.err);
    REQUIRE(c.status == 0);
    REQUIRE(rc({"start", "lim-mem"}).status == 0);
    CHECK(statOf(rc, "lim-mem", {"memory", "usage", "limit"}) == 33554432);
    CHECK(statOf(rc, "lim-mem", {"memory", "events", "oom_kill"}) == 0);

    EventsStream events(rc, "lim-mem");
    auto small = rc({"exec", "lim-mem", "/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null; echo rc=$?"});
    CHECK(small.out == "rc=0\n");
    // dd's 64 MiB buffer is filled from /dev/zero: every page is touched.
    auto big = rc({"exec", "lim-mem", "/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo rc=$?"});
    INFO(big.out << big.err);
    CHECK(big.out == "rc=137\n");  // SIGKILL from the OOM killer
    CHECK(statOf(rc, "lim-mem", {"memory", "events", "oom_kill"}) >= 1);
    CHECK(waitFor([&] { return events.text().find(R"({"type":"oom","id":"lim-mem"})") != std::string::npos; }, 3000));

    // update raises the limit of the running container; the same allocation now fits.
    auto u = rc({"update", "--memory", "128m", "--memory-swap", "128m", "lim-mem"});
    INFO(u.err);
    REQUIRE(u.status == 0);
    CHECK(statOf(rc, "lim-mem", {"memory", "usage", "limit"}) == 128u << 20);
    auto again = rc({"exec", "lim-mem", "/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo rc=$?"});
    CHECK(again.out == "rc=0\n");

    REQUIRE(rc({"kill", "lim-mem", "KILL"}).status == 0);
    CHECK(waitFor([&] { return events.exited(); }, 3000));  // the stream ends with the container
    REQUIRE(rc({"delete", "--force", "lim-mem"}).status == 0);
    CHECK(cgroupDirsNamed("lim-mem").empty());
}

void pidsScenario() {
    BundleOptions o;
    o.args = {"/bin/sleep", "300"};
    o.resources = R"({"pids":{"limit":16}})";
    Bundle b(o);
    HullRunc rc;
    REQUIRE(rc({"run", "--detach", "--bundle", b.path(), "lim-pids"}).status == 0);
    // A fork loop of 40: busybox sh gives up at the first fork the kernel refuses,
    // leaving the init and 14 sleeps: 15 of the 16.
    auto loop = rc({"exec", "lim-pids", "/bin/sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 60 & i=$((i+1)); done"});
    CHECK(loop.status != 0);
    CHECK(loop.err.find("can't fork") != std::string::npos);
    CHECK(statOf(rc, "lim-pids", {"pids", "current"}) == 15);
    // One more process fits, and counts 16 (a /proc glob needs no fork); the next is refused.
    auto count = rc({"exec", "lim-pids", "/bin/sh", "-c", "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo n=$n; sleep 0; true"});
    INFO(count.err);
    CHECK(count.out == "n=16\n");
    CHECK(count.err.find("can't fork") != std::string::npos);
    CHECK(statOf(rc, "lim-pids", {"pids", "limit"}) == 16);
    REQUIRE(rc({"delete", "--force", "lim-pids"}).status == 0);
    CHECK(cgroupDirsNamed("lim-pids").empty());
}

void cpuScenario() {
    BundleOptions o;
    o.args = {"/bin/sleep", "300"};
    o.resources = R"({"cpu":{"quota":10000,"period":100000}})";
    Bundle b(o);
    HullRunc rc;
    REQUIRE(rc({"run", "--detach", "--bundle", b.path(), "lim-cpu"}).status == 0);
    auto start = std::chrono::steady_clock::now();
    auto busy = rc({"exec", "lim-cpu", "/bin/timeout", "2", "/bin/sh", "-c", "while :; do :; done"});
    double wallUsec = double(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count());
    (void)busy;
    uint64_t usageNs = statOf(rc, "lim-cpu", {"cpu", "usage", "total"});
    uint64_t throttled = statOf(rc, "lim-cpu", {"cpu", "throttling", "throttledPeriods"});
    INFO("usage " << usageNs / 1000 << " us over " << wallUsec << " us of wall time");
    CHECK(throttled > 0);
    // 10% of one CPU, "within about 15% of wall time".
    CHECK(double(usageNs) / 1000.0 <= 0.15 * wallUsec);
    CHECK(double(usageNs) / 1000.0 >= 0.03 * wallUsec);  // it did run
    REQUIRE(rc({"delete", "--force", "lim-cpu"}).status == 0);
}

void freezeScenario() {
    BundleOptions o;
    o.args = {"/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; usleep 20000; done"};
    Bundle b(o);
    HullRunc rc;
    REQUIRE(rc({"run", "--detach", "--bundle", b.path(), "lim-frz"}).status == 0);
    std::string counter = b.rootfs() + "/tmp/counter";
    auto value = [&] { return std::atol(readFileOr(counter, "0").c_str()); };
    REQUIRE(waitFor([&] { return value() > 2; }, 5000));
    REQUIRE(rc({"pause", "lim-frz"}).status == 0);
    CHECK(statusOf(rc, "lim-frz") == "paused");
    long frozen = value();
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    CHECK(value() == frozen);
    REQUIRE(rc({"resume", "lim-frz"}).status == 0);
    CHECK(waitFor([&] { return value() > frozen + 2; }, 5000));
    REQUIRE(rc({"delete", "--force", "lim-frz"}).status == 0);
    CHECK(cgroupDirsNamed("lim-frz").empty());
}

void devicesScenario() {
    BundleOptions o;
    // podman's and Docker's rule set: deny everything; the runtime adds the standard devices.
    o.resources = R"({"devices":[{"allow":false,"access":"rwm"}]})";
    o.caps = {"CAP_MKNOD", "CAP_DAC_OVERRIDE"};
    o.args = {"/bin/sh", "-c",
              "echo x > /dev/null && echo null=ok; mknod /tmp/disk b 7 0 && echo mknod=ok; "
              "head -c 1 /tmp/disk 2>&1 > /dev/null; echo read=$?"};
    Bundle b(o);
    HullRunc rc;
    auto r = rc({"run", "--bundle", b.path(), "lim-dev"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("null=ok") != std::string::npos);
    CHECK(r.out.find("mknod=ok") != std::string::npos);
    CHECK(r.out.find("Operation not permitted\nread=1") != std::string::npos);  // the device exists, we may not open it
}

void badResourcesScenario() {
    BundleOptions o;
    o.resources = R"({"memory":{"limit":67108864,"swap":33554432}})";
    Bundle b(o);
    HullRunc rc;
    auto r = rc({"run", "--bundle", b.path(), "lim-bad"});
    CHECK(r.status != 0);
    CHECK(r.err.find("linux.resources.memory.swap") != std::string::npos);
    CHECK_FALSE(hull::sys::exists(rc.root() + "/lim-bad"));
    CHECK(cgroupDirsNamed("lim-bad").empty());
}

}  // namespace

TEST_CASE("limits: a memory limit OOM-kills, events reports it, update raises it", "[root][limits]") {
    REQUIRE_ROOT();
    memoryScenario();
}
TEST_CASE("limits: pids.limit stops a fork loop", "[root][limits]") {
    REQUIRE_ROOT();
    pidsScenario();
}
TEST_CASE("limits: a cpu quota throttles a busy loop", "[root][limits]") {
    REQUIRE_ROOT();
    cpuScenario();
}
TEST_CASE("limits: device rules deny a block device the container can make", "[root][limits]") {
    REQUIRE_ROOT();
    devicesScenario();
}
TEST_CASE("limits: a bad resources block fails create and leaves nothing", "[root][limits]") {
    REQUIRE_ROOT();
    badResourcesScenario();
}

TEST_CASE("vm: memory.max OOM-kills, memory.events and events report it, update raises it", "[vm][limits]") {
    memoryScenario();
}
TEST_CASE("vm: pids.max stops a fork loop at 16", "[vm][limits]") { pidsScenario(); }
TEST_CASE("vm: cpu.max throttles a busy loop", "[vm][limits]") { cpuScenario(); }
TEST_CASE("vm: cgroup.freeze stops a counter and thaw resumes it", "[vm][limits]") { freezeScenario(); }
TEST_CASE("vm: the eBPF device filter denies a block device the container can make", "[vm][limits]") {
    devicesScenario();
}
TEST_CASE("vm: a bad resources block fails create and leaves nothing", "[vm][limits]") { badResourcesScenario(); }
