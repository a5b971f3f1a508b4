#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "cgroups/v1_manager.hpp"
#include "sys/fs.hpp"
#include "sys/scope_exit.hpp"

using namespace hull;
using namespace hull::cgroups;
using hull::test::Fixture;

namespace {

// This machine's /proc/self/cgroup: the memory hierarchy puts us below the
// supervisor's cgroup, every other one at its root.
const char* kOwn =
    "9:name=systemd:/\n"
    "8:pids:/\n"
    "7:blkio:/\n"
    "6:freezer:/\n"
    "5:devices:/\n"
    "4:memory:/process_api/35944f447d24802c33462e1e00d290a6\n"
    "3:cpuset:/\n"
    "2:cpu,cpuacct:/\n"
    "0::/\n";
const std::string kMemOwn = "memory/process_api/35944f447d24802c33462e1e00d290a6";

// A hybrid layout over the fixture, read through the mountinfo parser as on a
// host: cpu and cpuacct co-mounted, named systemd hierarchy, cgroup2 at unified.
Layout hybridAt(const Fixture& fx, LayoutKind kind = LayoutKind::Hybrid) {
    std::string r = fx.root();
    std::string mountinfo =
        "31 23 0:28 / " + r + " rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / " + r + "/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        "34 31 0:31 / " + r + "/cpuset rw,relatime - cgroup cgroup rw,clone_children,cpuset\n"
        "35 31 0:32 / " + r + "/memory rw,relatime - cgroup cgroup rw,memory\n"
        "37 31 0:34 / " + r + "/freezer rw,relatime - cgroup cgroup rw,freezer\n"
        "39 31 0:36 / " + r + "/pids rw,relatime - cgroup cgroup rw,pids\n"
        "40 31 0:37 / " + r + "/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
        "41 31 0:38 / " + r + "/unified rw,relatime - cgroup2 cgroup2 rw\n";
    Layout l;
    l.kind = kind;
    l.root = r;
    l.v1Mounts = v1MountsBelow(parseCgroupMounts(mountinfo), r);
    if (kind == LayoutKind::Hybrid) l.unifiedMount = r + "/unified";
    return l;
}

const char* kHierarchies[] = {"cpu,cpuacct", "cpuset", "memory", "freezer", "pids", "systemd", "unified"};

// The container's directory in hierarchy H of the fixture.
std::string dirIn(const std::string& h, const std::string& rel) {
    return (h == "memory" ? kMemOwn : h) + "/" + rel;
}

V1Manager& v1(std::unique_ptr<Manager>& m) { return dynamic_cast<V1Manager&>(*m); }

std::unique_ptr<Manager> managerFor(const Fixture& fx, const std::string& cgroupsPath,
                                    LayoutKind kind = LayoutKind::Hybrid) {
    auto m = makeManager(hybridAt(fx, kind), cgroupsPath, kOwn);
    REQUIRE(m);
    REQUIRE_FALSE((*m)->isUnified());
    return std::move(*m);
}

// Every hierarchy's cgroup directory with cgroup.procs; cpuset with its values.
void makeContainerCgroups(const Fixture& fx, const std::string& rel) {
    for (const char* h : kHierarchies) fx.makeCgroup(dirIn(h, rel));
    fx.makeFile("cpuset/cpuset.cpus", "0-3\n");
    fx.makeFile("cpuset/cpuset.mems", "0\n");
    fx.makeFile("cpuset/" + rel + "/cpuset.cpus", "");
    fx.makeFile("cpuset/" + rel + "/cpuset.mems", "");
    fx.makeFile("freezer/" + rel + "/freezer.state", "THAWED\n");
}

}  // namespace

TEST_CASE("v1: one directory per hierarchy, below our own placement in each", "[cgroups]") {
    Fixture fx;
    for (const char* path : {"hull/web-1", "/hull/web-1"}) {
        INFO("cgroupsPath " << path);
        auto m = managerFor(fx, path);
        auto& hs = v1(m).hierarchies();
        REQUIRE(hs.size() == 7);  // six v1 hierarchies and the unified one
        CHECK(m->path() == fx.path("cpu,cpuacct/hull/web-1"));
        CHECK(m->path("cpu") == fx.path("cpu,cpuacct/hull/web-1"));
        CHECK(m->path("cpuacct") == fx.path("cpu,cpuacct/hull/web-1"));
        CHECK(m->path("memory") == fx.path(kMemOwn + "/hull/web-1"));
        CHECK(m->path("pids") == fx.path("pids/hull/web-1"));
        CHECK(m->path("name=systemd") == fx.path("systemd/hull/web-1"));
        CHECK(m->path("blkio").empty());  // not mounted in this fixture
        CHECK(hs.back().unified);
        CHECK(hs.back().dir == fx.path("unified/hull/web-1"));
    }
}

TEST_CASE("v1: our placement is taken relative to the mounted part of each hierarchy", "[cgroups]") {
    Fixture fx;
    Layout l = hybridAt(fx, LayoutKind::Legacy);
    l.mountRoots = {{fx.path("memory"), "/process_api"}, {fx.path("pids"), "/elsewhere"}};
    auto m = makeManager(l, "c", kOwn);
    REQUIRE(m);
    CHECK((*m)->path("memory") == fx.path("memory/35944f447d24802c33462e1e00d290a6/c"));
    CHECK((*m)->path("pids") == fx.path("pids/c"));  // "/" is not below "/elsewhere": the mount's top
}

TEST_CASE("v1: a legacy host has no unified directory, bad paths are refused", "[cgroups]") {
    Fixture fx;
    auto m = managerFor(fx, "c", LayoutKind::Legacy);
    CHECK(v1(m).hierarchies().size() == 6);
    for (const auto& h : v1(m).hierarchies()) CHECK_FALSE(h.unified);
    auto bad = makeManager(hybridAt(fx), "../escape", kOwn);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().errnum() == EINVAL);
    Layout none = hybridAt(fx);
    none.v1Mounts.clear();
    CHECK_FALSE(makeManager(none, "c", kOwn));
}

TEST_CASE("v1: create copies cpuset.cpus/mems down from the nearest ancestor", "[cgroups]") {
    Fixture fx;
    makeContainerCgroups(fx, "hull/c");
    fx.makeFile("cpuset/hull/cpuset.cpus", "");  // an intermediate cgroup, also fresh
    fx.makeFile("cpuset/hull/cpuset.mems", "\n");
    auto m = managerFor(fx, "hull/c");
    REQUIRE(m->create());
    CHECK(fx.read("cpuset/hull/cpuset.cpus") == "0-3");
    CHECK(fx.read("cpuset/hull/c/cpuset.cpus") == "0-3");
    CHECK(fx.read("cpuset/hull/c/cpuset.mems") == "0");
    CHECK(fx.read("cpuset/cpuset.cpus") == "0-3\n");  // the source is left alone
    REQUIRE(m->create());
    for (const char* h : kHierarchies) CHECK(fx.exists(dirIn(h, "hull/c")));
}

TEST_CASE("v1: a cpuset without its control files fails naming the file", "[cgroups]") {
    Fixture fx;
    fx.makeFile("cpuset/cpuset.cpus", "0-3\n");
    fx.makeFile("cpuset/cpuset.mems", "0\n");
    auto m = managerFor(fx, "c");
    auto r = m->create();
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == ENOENT);
    CHECK_THAT(r.error().message(), Catch::Contains(fx.path("cpuset/c/cpuset.cpus")));
    CHECK_FALSE(fx.exists("cpuset/c/cpuset.cpus"));
}

TEST_CASE("v1: attach writes the pid in every hierarchy", "[cgroups]") {
    Fixture fx;
    makeContainerCgroups(fx, "c");
    auto m = managerFor(fx, "c");
    REQUIRE(m->attach(777));
    for (const char* h : kHierarchies) {
        INFO(h);
        CHECK(fx.read(dirIn(h, "c") + "/cgroup.procs") == "777");
    }
    auto fd = m->openForClone();
    REQUIRE(fd);
    CHECK_FALSE(fd->valid());  // v1 attaches after clone instead
}

TEST_CASE("v1: a missing cgroup.procs fails naming it", "[cgroups]") {
    Fixture fx;
    makeContainerCgroups(fx, "c");
    REQUIRE(sys::removeAll(fx.path("pids/c/cgroup.procs")));
    auto r = managerFor(fx, "c")->attach(777);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::Contains(fx.path("pids/c/cgroup.procs")));
}

TEST_CASE("v1: pids is the union over hierarchies and sub-cgroups", "[cgroups]") {
    Fixture fx;
    makeContainerCgroups(fx, "c");
    fx.makeFile("memory/process_api/35944f447d24802c33462e1e00d290a6/c/cgroup.procs", "5\n3\n");
    fx.makeFile("pids/c/cgroup.procs", "3\n");
    fx.makeFile("pids/c/sub/cgroup.procs", "9\n");
    auto pids = managerFor(fx, "c")->pids();
    REQUIRE(pids);
    CHECK(*pids == std::vector<pid_t>{3, 5, 9});
}

TEST_CASE("v1: freeze and thaw go through freezer.state", "[cgroups]") {
    Fixture fx;
    makeContainerCgroups(fx, "c");
    auto m = managerFor(fx, "c");
    CHECK_FALSE(*m->frozen());
    REQUIRE(m->freeze());
    CHECK(sys::trim(fx.read("freezer/c/freezer.state")) == "FROZEN");
    CHECK(*m->frozen());
    REQUIRE(m->thaw());
    CHECK(sys::trim(fx.read("freezer/c/freezer.state")) == "THAWED");
    CHECK_FALSE(*m->frozen());
}

TEST_CASE("v1: without a freezer hierarchy, freeze says so", "[cgroups]") {
    Fixture fx;
    Layout l = hybridAt(fx);
    std::erase_if(l.v1Mounts, [](auto& e) { return e.first == "freezer"; });
    auto m = makeManager(l, "c", kOwn);
    REQUIRE(m);
    auto r = (*m)->freeze();
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::Contains("freezer"));
    auto f = (*m)->frozen();
    REQUIRE(f);
    CHECK_FALSE(*f);
}

TEST_CASE("v1: killAll signals every pid found", "[cgroups]") {
    Fixture fx;
    makeContainerCgroups(fx, "c");
    pid_t child = test::spawnSleep();
    ScopeExit reap([&] { test::killAndReap(child); });
    fx.makeFile("pids/c/cgroup.procs", std::to_string(child) + "\n");
    auto m = managerFor(fx, "c");
    REQUIRE(m->killAll(SIGKILL));  // freezes around the walk: the fixture file obliges
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    reap.dismiss();
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(sys::trim(fx.read("freezer/c/freezer.state")) == "THAWED");
}

TEST_CASE("v1: destroy removes the cgroup in every hierarchy", "[cgroups]") {
    Fixture fx;
    for (const char* h : kHierarchies) fx.makeDir(dirIn(h, "hull/c/sub"));
    fx.makeDir("pids/hull/other");
    auto m = managerFor(fx, "hull/c");
    REQUIRE(m->destroy());
    for (const char* h : kHierarchies) {
        INFO(h);
        CHECK_FALSE(fx.exists(dirIn(h, "hull/c")));
        CHECK(fx.exists(dirIn(h, "hull")));
    }
    CHECK(fx.exists("pids/hull/other"));
    REQUIRE(m->destroy());
}

TEST_CASE("v1 on this host: create, attach, freeze, thaw, kill, destroy", "[root][cgroups]") {
    REQUIRE_ROOT();
    auto layout = detectLayout();
    REQUIRE(layout);
    if (layout->kind == LayoutKind::Unified) {
        WARN("cgroup v2 host: no v1 hierarchies to test");
        return;
    }
    auto ownText = sys::readFile("/proc/self/cgroup");
    REQUIRE(ownText);
    auto own = parseProcCgroup(*ownText);
    auto ownIn = [&](const std::string& controller) {
        for (auto& [c, p] : own)
            if (c == controller) return p;
        return std::string("<none>");
    };

    std::string name = test::uniqueCgroupName("v1");
    auto made = makeManager(*layout, name, *ownText);
    REQUIRE(made);
    auto& m = *made;
    auto& hs = v1(m).hierarchies();
    REQUIRE_FALSE(hs.empty());
    pid_t child = -1;
    ScopeExit cleanup([&] {
        (void)m->thaw();
        test::killAndReap(child);
        (void)m->destroy();
        for (const auto& h : hs) ::rmdir(h.dir.c_str());
    });

    REQUIRE(m->create());
    for (const auto& h : hs) CHECK(sys::exists(h.dir));

    child = test::spawnSleep();
    REQUIRE(m->attach(child));
    for (const char* controller : {"memory", "pids", "freezer"}) {
        if (!v1(m).hierarchy(controller)) continue;
        INFO(controller);
        CHECK(test::procCgroupPath(child, controller) == sys::cleanPath(ownIn(controller) + "/" + name));
    }
    auto pids = m->pids();
    REQUIRE(pids);
    CHECK(*pids == std::vector<pid_t>{child});

    if (v1(m).hierarchy("freezer")) {
        REQUIRE(m->freeze());
        CHECK(sys::trim(test::readFileOr(m->path("freezer") + "/freezer.state")) == "FROZEN");
        CHECK(*m->frozen());
        char state = test::procState(child);
        INFO("frozen child state " << state);
        CHECK(state == 'D');  // the freezer's tasks sleep uninterruptibly
        REQUIRE(m->thaw());
        CHECK(sys::trim(test::readFileOr(m->path("freezer") + "/freezer.state")) == "THAWED");
        CHECK_FALSE(*m->frozen());
    }

    REQUIRE(m->killAll(SIGKILL));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    child = -1;
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);

    REQUIRE(m->destroy());
    for (const auto& h : hs) {
        INFO(h.dir);
        CHECK_FALSE(sys::exists(h.dir));
    }
}
