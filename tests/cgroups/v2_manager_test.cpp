#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "cgroups/v2_manager.hpp"
#include "sys/fs.hpp"
#include "sys/scope_exit.hpp"

using namespace hull;
using namespace hull::cgroups;
using hull::test::Fixture;

namespace {

Layout unifiedAt(const std::string& root) {
    Layout l;
    l.kind = LayoutKind::Unified;
    l.root = root;
    l.unifiedMount = root;
    return l;
}

const char* kOwn = "0::/user.slice/session-1.scope\n";

std::unique_ptr<Manager> managerFor(const Fixture& fx, const std::string& cgroupsPath) {
    auto m = makeManager(unifiedAt(fx.root()), cgroupsPath, kOwn);
    REQUIRE(m);
    REQUIRE((*m)->isUnified());
    return std::move(*m);
}

}  // namespace

TEST_CASE("v2: absolute paths start at the hierarchy root, relative ones beside our own cgroup", "[cgroups]") {
    // Relative: below our cgroup's parent, as runc does; our own cgroup holds
    // processes, so v2 would refuse to enable controllers below it.
    Fixture fx;
    CHECK(managerFor(fx, "/hull/web-1")->path() == fx.path("hull/web-1"));
    CHECK(managerFor(fx, "hull/web-1")->path() == fx.path("user.slice/hull/web-1"));
    CHECK(managerFor(fx, "hull//./web-1/")->path() == fx.path("user.slice/hull/web-1"));
    CHECK(managerFor(fx, "/hull/web-1")->path("memory") == fx.path("hull/web-1"));
}

TEST_CASE("v2: our placement is taken relative to the mounted part of the hierarchy", "[cgroups]") {
    Fixture fx;
    Layout l = unifiedAt(fx.root());
    l.mountRoots = {{fx.root(), "/docker/abc"}};
    auto m = makeManager(l, "hull/web-1", "0::/docker/abc/init/sub\n");
    REQUIRE(m);
    CHECK((*m)->path() == fx.path("init/hull/web-1"));
}

TEST_CASE("v2: cgroupsPath that would escape or name no cgroup is refused", "[cgroups]") {
    Fixture fx;
    for (const char* bad : {"", "/", ".", "../x", "hull/../../x", "/a/.."}) {
        auto m = makeManager(unifiedAt(fx.root()), bad, kOwn);
        INFO("cgroupsPath \"" << bad << "\"");
        REQUIRE_FALSE(m);
        CHECK(m.error().errnum() == EINVAL);
    }
}

TEST_CASE("v2: create makes the directory and its parents, idempotently", "[cgroups]") {
    Fixture fx;
    auto m = managerFor(fx, "/hull/web-1");
    REQUIRE(m->create());
    REQUIRE(m->create());
    CHECK(fx.exists("hull/web-1"));
}

TEST_CASE("v2: attach writes the pid to cgroup.procs", "[cgroups]") {
    Fixture fx;
    fx.makeCgroup("hull/web-1");
    auto m = managerFor(fx, "/hull/web-1");
    REQUIRE(m->attach(4242));
    CHECK(fx.read("hull/web-1/cgroup.procs") == "4242");
}

TEST_CASE("v2: a missing control file is an error naming it, and is not created", "[cgroups]") {
    Fixture fx;
    fx.makeDir("hull/web-1");
    auto m = managerFor(fx, "/hull/web-1");
    auto r = m->attach(4242);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == ENOENT);
    CHECK_THAT(r.error().message(), Catch::Contains(fx.path("hull/web-1/cgroup.procs")));
    CHECK_FALSE(fx.exists("hull/web-1/cgroup.procs"));

    auto f = m->freeze();
    REQUIRE_FALSE(f);
    CHECK_THAT(f.error().message(), Catch::Contains(fx.path("hull/web-1/cgroup.freeze")));
    CHECK_FALSE(fx.exists("hull/web-1/cgroup.freeze"));
}

TEST_CASE("v2: pids covers sub-cgroups, a missing cgroup has none", "[cgroups]") {
    Fixture fx;
    fx.makeFile("c/cgroup.procs", "30\n10\n");
    fx.makeFile("c/sub/cgroup.procs", "20\n10\n");
    fx.makeFile("c/sub/deeper/cgroup.procs", "");
    auto m = managerFor(fx, "/c");
    auto pids = m->pids();
    REQUIRE(pids);
    CHECK(*pids == std::vector<pid_t>{10, 20, 30});
    auto none = managerFor(fx, "/gone")->pids();
    REQUIRE(none);
    CHECK(none->empty());
}

TEST_CASE("v2: freeze writes cgroup.freeze and waits for cgroup.events", "[cgroups]") {
    Fixture fx;
    fx.makeCgroup("c");
    fx.makeFile("c/cgroup.freeze", "0\n");
    fx.makeFile("c/cgroup.events", "populated 1\nfrozen 1\n");
    auto m = managerFor(fx, "/c");
    REQUIRE(m->freeze());
    CHECK(fx.read("c/cgroup.freeze").front() == '1');
    auto f = m->frozen();
    REQUIRE(f);
    CHECK(*f);
}

TEST_CASE("v2: a state the kernel never reports times out with a clear error", "[cgroups]") {
    Fixture fx;
    fx.makeCgroup("c");
    fx.makeFile("c/cgroup.freeze", "1\n");
    fx.makeFile("c/cgroup.events", "populated 1\nfrozen 1\n");
    V2Manager m(fx.root(), fx.path("c"));
    m.setStateTimeout(std::chrono::milliseconds(200));
    auto start = std::chrono::steady_clock::now();
    auto r = m.thaw();
    auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == ETIMEDOUT);
    CHECK_THAT(r.error().message(), Catch::Contains("timed out") && Catch::Contains(fx.path("c/cgroup.events")));
    CHECK(took >= std::chrono::milliseconds(200));
    CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("v2: killAll(SIGKILL) uses cgroup.kill", "[cgroups]") {
    Fixture fx;
    fx.makeCgroup("c");
    fx.makeFile("c/cgroup.kill", "");
    auto m = managerFor(fx, "/c");
    REQUIRE(m->killAll(SIGKILL));
    CHECK(fx.read("c/cgroup.kill") == "1");
}

TEST_CASE("v2: killAll with another signal walks the pids", "[cgroups]") {
    Fixture fx;
    pid_t child = test::spawnSleep();
    ScopeExit reap([&] { test::killAndReap(child); });
    fx.makeFile("c/cgroup.procs", std::to_string(child) + "\n");
    fx.makeFile("c/cgroup.kill", "");
    auto m = managerFor(fx, "/c");
    REQUIRE(m->killAll(SIGTERM));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    reap.dismiss();
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGTERM);
    CHECK(fx.read("c/cgroup.kill").empty());
}

TEST_CASE("v2: destroy removes sub-cgroups depth-first, then the cgroup", "[cgroups]") {
    Fixture fx;
    fx.makeDir("hull/c/a/b");
    fx.makeDir("hull/c/d");
    auto m = managerFor(fx, "/hull/c");
    REQUIRE(m->destroy());
    CHECK_FALSE(fx.exists("hull/c"));
    CHECK(fx.exists("hull"));
    REQUIRE(m->destroy());  // gone already: fine
}

TEST_CASE("v2: openForClone gives a directory fd", "[cgroups]") {
    Fixture fx;
    fx.makeCgroup("c");
    auto fd = managerFor(fx, "/c")->openForClone();
    REQUIRE(fd);
    CHECK(fd->valid());
    CHECK(managerFor(fx, "/missing")->openForClone().has_value() == false);
}

TEST_CASE("v2 on the real cgroup2 mount: clone into, freeze, thaw, kill, destroy", "[root][cgroups]") {
    REQUIRE_ROOT();
    auto host = detectLayout();
    REQUIRE(host);
    if (host->unifiedMount.empty()) {
        WARN("no cgroup2 mount on this host");
        return;
    }
    Layout layout = unifiedAt(host->unifiedMount);
    auto ownText = sys::readFile("/proc/self/cgroup");
    REQUIRE(ownText);
    std::string ownPath;
    for (auto& [c, p] : parseProcCgroup(*ownText))
        if (c.empty()) ownPath = p;
    REQUIRE_FALSE(ownPath.empty());

    // Relative paths go beside our own cgroup (below its parent), as runc does.
    std::string ownParent = ownPath.substr(0, ownPath.rfind('/'));
    if (ownParent.empty()) ownParent = "/";
    std::string name = test::uniqueCgroupName("v2");
    auto made = makeManager(layout, name, *ownText);
    REQUIRE(made);
    auto& m = *made;
    CHECK(m->path() == sys::joinPath(host->unifiedMount, sys::cleanPath(ownParent + "/" + name)));
    pid_t child = -1;
    ScopeExit cleanup([&] {
        test::killAndReap(child);
        (void)m->thaw();
        (void)m->destroy();
        ::rmdir(m->path().c_str());
    });

    REQUIRE(m->create());
    auto fd = m->openForClone();
    REQUIRE(fd);
    REQUIRE(fd->valid());

    struct clone_args args = {};
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = uint64_t(fd->get());
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
        ::execl("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    REQUIRE(pid > 0);
    child = pid_t(pid);

    CHECK(test::procCgroupPath(child, "") == sys::cleanPath(ownParent + "/" + name));
    auto pids = m->pids();
    REQUIRE(pids);
    CHECK(*pids == std::vector<pid_t>{child});

    REQUIRE(m->freeze());
    CHECK(test::readFileOr(m->path() + "/cgroup.events").find("frozen 1") != std::string::npos);
    CHECK(*m->frozen());
    REQUIRE(m->thaw());
    CHECK_FALSE(*m->frozen());

    REQUIRE(m->killAll(SIGKILL));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    child = -1;
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);

    REQUIRE(m->destroy());
    CHECK_FALSE(sys::exists(m->path()));
}
