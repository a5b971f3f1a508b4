// What scripts/vm-test promises every [vm] test: a pure cgroup v2 hierarchy at
// /sys/fs/cgroup with the controllers hull's v2 manager drives available and enabled
// for the root's children, and the test process in a cgroup of its own (not the root).
// Runs only inside the VM (ctest excludes [vm]).
#include <linux/magic.h>
#include <sys/statfs.h>

#include <set>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "support.hpp"

using hull::test::readFileOr;

namespace {

std::set<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::set<std::string> out;
    for (std::string w; in >> w;) out.insert(w);
    return out;
}

}  // namespace

TEST_CASE("vm: /sys/fs/cgroup is cgroup v2 with the controllers hull needs", "[vm]") {
    struct statfs st {};
    REQUIRE(::statfs("/sys/fs/cgroup", &st) == 0);
    REQUIRE(st.f_type == CGROUP2_SUPER_MAGIC);

    auto available = words(readFileOr("/sys/fs/cgroup/cgroup.controllers"));
    auto enabled = words(readFileOr("/sys/fs/cgroup/cgroup.subtree_control"));
    for (const char* c : {"cpuset", "cpu", "io", "memory", "pids", "hugetlb"}) {
        INFO("controller " << c);
        CHECK(available.count(c) == 1);
        CHECK(enabled.count(c) == 1);
    }

    // "0::/hull-tests": a leaf below the root, like a process on a systemd host.
    auto own = readFileOr("/proc/self/cgroup");
    CHECK(own.rfind("0::/", 0) == 0);
    CHECK(own != "0::/\n");
}
