#include <linux/magic.h>

#include <algorithm>

#include <catch2/catch.hpp>

#include "cgroups/manager.hpp"
#include "support.hpp"

using namespace hull::cgroups;

namespace {

// This machine's /proc/self/mountinfo (hybrid: tmpfs root, v1 hierarchies, cgroup2
// at unified), with some of the lines around it.
const char* kHybridMountinfo =
    "23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw\n"
    "24 1 0:5 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "42 1 254:1 / /work rw,relatime - ext4 /dev/vdb rw\n";

// A systemd host on cgroup v2 only.
const char* kUnifiedMountinfo =
    "22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

// A CentOS 7 style legacy host: co-mounted controllers, named systemd hierarchy
// with mount flags, optional fields, and a container's bind of a hierarchy elsewhere.
const char* kLegacyMountinfo =
    "24 19 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755\n"
    "25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup "
    "rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd\n"
    "28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "29 24 0:25 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup "
    "rw,net_cls,net_prio\n"
    "30 24 0:26 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup "
    "rw,clone_children,cpuset\n"
    "31 24 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory\n"
    "32 24 0:28 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,freezer\n"
    "90 88 0:27 /docker/abc /var/lib/docker/overlay2/x/merged/sys/fs/cgroup/memory ro,nosuid - cgroup cgroup "
    "rw,memory\n";

std::string mountOf(const Layout& l, const std::string& controller) {
    for (const auto& [c, m] : l.v1Mounts)
        if (c == controller) return m;
    return "<none>";
}

}  // namespace

TEST_CASE("mountinfo: cgroup lines with their controllers", "[cgroups]") {
    auto mounts = parseCgroupMounts(kHybridMountinfo);
    REQUIRE(mounts.size() == 10);
    CHECK(mounts[0].mountPoint == "/sys/fs/cgroup/cpu");
    CHECK(mounts[0].root == "/");
    CHECK(mounts[0].controllers == std::vector<std::string>{"cpu"});
    CHECK_FALSE(mounts[0].v2);
    CHECK(mounts[8].controllers == std::vector<std::string>{"name=systemd"});
    CHECK(mounts[9].v2);
    CHECK(mounts[9].mountPoint == "/sys/fs/cgroup/unified");
    CHECK(mounts[9].controllers.empty());
}

TEST_CASE("mountinfo: mount flags are not controllers, escaped paths are decoded", "[cgroups]") {
    auto mounts = parseCgroupMounts(kLegacyMountinfo);
    REQUIRE(mounts.size() == 7);
    CHECK(mounts[0].controllers == std::vector<std::string>{"name=systemd"});
    CHECK(mounts[1].controllers == std::vector<std::string>{"cpu", "cpuacct"});
    CHECK(mounts[3].controllers == std::vector<std::string>{"cpuset"});
    CHECK(mounts[6].root == "/docker/abc");

    auto esc = parseCgroupMounts("50 24 0:40 / /tmp/my\\040cgroups/pids rw - cgroup cgroup rw,pids\n"
                                 "garbage line\n\n");
    REQUIRE(esc.size() == 1);
    CHECK(esc[0].mountPoint == "/tmp/my cgroups/pids");
}

TEST_CASE("layout: unified host", "[cgroups]") {
    auto l = layoutFromProbe("/sys/fs/cgroup", {CGROUP2_SUPER_MAGIC, 0}, kUnifiedMountinfo);
    REQUIRE(l);
    CHECK(l->kind == LayoutKind::Unified);
    CHECK(std::string(layoutName(l->kind)) == "unified");
    CHECK(l->unifiedMount == "/sys/fs/cgroup");
    CHECK(l->v1Mounts.empty());
}

TEST_CASE("layout: hybrid host, one entry per v1 controller, cgroup2 at unified", "[cgroups]") {
    auto l = layoutFromProbe("/sys/fs/cgroup", {TMPFS_MAGIC, CGROUP2_SUPER_MAGIC}, kHybridMountinfo);
    REQUIRE(l);
    CHECK(l->kind == LayoutKind::Hybrid);
    CHECK(l->unifiedMount == "/sys/fs/cgroup/unified");
    CHECK(l->v1Mounts.size() == 9);
    CHECK(mountOf(*l, "memory") == "/sys/fs/cgroup/memory");
    CHECK(mountOf(*l, "cpuacct") == "/sys/fs/cgroup/cpuacct");
    CHECK(mountOf(*l, "name=systemd") == "/sys/fs/cgroup/systemd");
}

TEST_CASE("layout: legacy host with co-mounted controllers", "[cgroups]") {
    auto l = layoutFromProbe("/sys/fs/cgroup", {TMPFS_MAGIC, 0}, kLegacyMountinfo);
    REQUIRE(l);
    CHECK(l->kind == LayoutKind::Legacy);
    CHECK(l->unifiedMount.empty());
    CHECK(mountOf(*l, "cpu") == "/sys/fs/cgroup/cpu,cpuacct");
    CHECK(mountOf(*l, "cpuacct") == "/sys/fs/cgroup/cpu,cpuacct");
    CHECK(mountOf(*l, "net_prio") == "/sys/fs/cgroup/net_cls,net_prio");
    // The docker bind mount elsewhere does not replace the host's memory hierarchy.
    CHECK(mountOf(*l, "memory") == "/sys/fs/cgroup/memory");
    CHECK(mountOf(*l, "name=systemd") == "/sys/fs/cgroup/systemd");
    CHECK(mountOf(*l, "xattr") == "<none>");
}

TEST_CASE("layout: an over-mounted hierarchy is replaced by the later mount", "[cgroups]") {
    std::string text = std::string(kLegacyMountinfo) +
                       "91 24 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory,hugetlb\n";
    auto mounts = v1MountsBelow(parseCgroupMounts(text), "/sys/fs/cgroup/");
    auto it = std::find_if(mounts.begin(), mounts.end(), [](auto& e) { return e.first == "hugetlb"; });
    REQUIRE(it != mounts.end());
    CHECK(it->second == "/sys/fs/cgroup/memory");
}

TEST_CASE("layout: refusals", "[cgroups]") {
    auto ext4 = layoutFromProbe("/sys/fs/cgroup", {0xEF53, 0}, kLegacyMountinfo);
    REQUIRE_FALSE(ext4);
    CHECK_THAT(ext4.error().message(), Catch::Contains("/sys/fs/cgroup"));
    auto empty = layoutFromProbe("/sys/fs/cgroup", {TMPFS_MAGIC, 0}, kUnifiedMountinfo);
    REQUIRE_FALSE(empty);
    CHECK_THAT(empty.error().message(), Catch::Contains("no cgroup v1 hierarchies"));
}

TEST_CASE("layout: a plain directory is no cgroup root", "[cgroups]") {
    hull::test::TempDir tmp("hull-cgroup-layout");
    auto l = detectLayout(tmp.path());
    REQUIRE_FALSE(l);
    CHECK_THAT(l.error().message(), Catch::Contains(tmp.path()));
}

TEST_CASE("layout: this host's layout is detected", "[cgroups]") {
    auto l = detectLayout();
    REQUIRE(l);
    if (l->kind == LayoutKind::Unified) {
        CHECK(l->unifiedMount == "/sys/fs/cgroup");
    } else {
        CHECK_FALSE(l->v1Mounts.empty());
        CHECK(mountOf(*l, "memory") != "<none>");
    }
}

TEST_CASE("/proc/self/cgroup: one entry per controller, unified as \"\"", "[cgroups]") {
    auto own = parseProcCgroup("9:name=systemd:/\n"
                               "4:memory:/process_api/35944f447d24802c33462e1e00d290a6\n"
                               "2:cpu,cpuacct:/user.slice\n"
                               "1:pids:/odd:name\n"
                               "0::/\n");
    using P = std::pair<std::string, std::string>;
    REQUIRE(own.size() == 6);
    CHECK(own[0] == P{"name=systemd", "/"});
    CHECK(own[1] == P{"memory", "/process_api/35944f447d24802c33462e1e00d290a6"});
    CHECK(own[2] == P{"cpu", "/user.slice"});
    CHECK(own[3] == P{"cpuacct", "/user.slice"});
    CHECK(own[4] == P{"pids", "/odd:name"});
    CHECK(own[5] == P{"", "/"});
    CHECK(parseProcCgroup("0::/user.slice/user-0.slice/session-1.scope\n") ==
          std::vector<P>{{"", "/user.slice/user-0.slice/session-1.scope"}});
}

TEST_CASE("layout: hierarchies mounted from a sub-directory keep their mount root", "[cgroups]") {
    // Inside a container given its own cgroups by bind mount (no cgroup namespace).
    const char* text =
        "700 690 0:60 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "701 700 0:27 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
        "702 700 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
    auto l = layoutFromProbe("/sys/fs/cgroup", {TMPFS_MAGIC, 0}, text);
    REQUIRE(l);
    using P = std::pair<std::string, std::string>;
    CHECK(l->mountRoots == std::vector<P>{{"/sys/fs/cgroup/memory", "/docker/abc"}});

    auto v2 = layoutFromProbe("/sys/fs/cgroup", {CGROUP2_SUPER_MAGIC, 0},
                              "800 790 0:23 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    REQUIRE(v2);
    CHECK(v2->mountRoots == std::vector<P>{{"/sys/fs/cgroup", "/docker/abc"}});
}
