#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <functional>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/capabilities.hpp"
#include "support.hpp"

using namespace hull::runtime;

namespace {

uint64_t bit(int cap) { return uint64_t(1) << cap; }

/// Run `body` in a forked child; whatever it returns comes back through a pipe.
std::string inChild(const std::function<std::string()>& body) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        std::string out = body();
        (void)!::write(fds[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    return out;
}

std::string capLines() {
    std::string status = hull::test::readFileOr("/proc/self/status"), out;
    for (const char* key : {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"}) {
        auto pos = status.find(std::string("\n") + key);
        if (pos == std::string::npos) continue;
        out += status.substr(pos + 1, status.find('\n', pos + 1) - pos - 1) + "\n";
    }
    return out;
}

std::string hexMask(uint64_t mask) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, mask);
    return buf;
}

}  // namespace

TEST_CASE("capability names resolve both ways", "[caps]") {
    CHECK(capabilityFromName("CAP_NET_ADMIN") == 12);
    CHECK(capabilityFromName("cap_net_admin") == 12);
    CHECK(capabilityFromName("NET_ADMIN") == 12);
    CHECK(capabilityFromName("CAP_CHOWN") == 0);
    CHECK(capabilityFromName("CAP_CHECKPOINT_RESTORE") == 40);
    CHECK(capabilityFromName("CAP_FOO") == -1);
    CHECK(capabilityFromName("12") == -1);
    CHECK(capabilityFromName("") == -1);
    CHECK(capabilityName(12) == "CAP_NET_ADMIN");
    CHECK(capabilityName(21) == "CAP_SYS_ADMIN");
    for (int cap = 0; cap <= 40; ++cap) CHECK(capabilityFromName(capabilityName(cap)) == cap);
}

TEST_CASE("lastCapability matches the kernel", "[caps]") {
    std::string text = hull::test::readFileOr("/proc/sys/kernel/cap_last_cap");
    REQUIRE_FALSE(text.empty());
    CHECK(lastCapability() == std::stoi(text));
}

TEST_CASE("a plan turns names into masks", "[caps]") {
    Capabilities c;
    c.bounding = {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
    c.effective = {"CAP_KILL", "cap_kill"};
    c.permitted = {"CAP_KILL", "CAP_NET_BIND_SERVICE"};
    c.inheritable = {"CAP_NET_BIND_SERVICE"};
    c.ambient = {"CAP_NET_BIND_SERVICE"};
    auto plan = planCapabilities(c);
    REQUIRE(plan);
    CHECK(plan->bounding == (bit(0) | bit(5) | bit(10)));
    CHECK(plan->effective == bit(5));
    CHECK(plan->permitted == (bit(5) | bit(10)));
    CHECK(plan->inheritable == bit(10));
    CHECK(plan->ambient == bit(10));

    auto empty = planCapabilities(Capabilities{});
    REQUIRE(empty);
    CHECK(empty->bounding == 0);
    CHECK(empty->effective == 0);
}

TEST_CASE("unknown capability names are errors naming the field", "[caps]") {
    Capabilities c;
    c.effective = {"CAP_KILL", "CAP_FOO"};
    auto plan = planCapabilities(c);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().message() == "process.capabilities.effective[1]: unknown capability \"CAP_FOO\"");

    c.effective.clear();
    c.ambient = {"CAP_SYS_ADMINISTRATOR"};
    plan = planCapabilities(c);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().message() == "process.capabilities.ambient[0]: unknown capability \"CAP_SYS_ADMINISTRATOR\"");
}

TEST_CASE("ambient capabilities that are not permitted and inheritable are dropped, as runc does", "[caps]") {
    // runc's default spec: ambient = permitted = effective, no inheritable set.
    Capabilities c;
    c.permitted = {"CAP_KILL", "CAP_NET_BIND_SERVICE"};
    c.inheritable = {"CAP_NET_BIND_SERVICE"};
    c.ambient = {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"};
    auto plan = planCapabilities(c);
    REQUIRE(plan);
    CHECK(plan->ambient == bit(10));
    CHECK(plan->permitted == (bit(5) | bit(10)));
}

TEST_CASE("capability sets survive setuid and show in /proc", "[root][caps]") {
    REQUIRE_ROOT();
    Capabilities c;
    c.bounding = {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETPCAP"};
    c.effective = {"CAP_KILL", "CAP_NET_BIND_SERVICE"};
    c.permitted = {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"};
    c.inheritable = {"CAP_NET_BIND_SERVICE"};
    c.ambient = {"CAP_NET_BIND_SERVICE"};
    auto plan = planCapabilities(c);
    REQUIRE(plan);

    std::string report = inChild([&]() -> std::string {
        if (auto r = dropBoundingSet(*plan); !r) return "bounding: " + r.error().message();
        if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return "keepcaps failed";
        if (::setresgid(65534, 65534, 65534) < 0 || ::setresuid(65534, 65534, 65534) < 0) return "setuid failed";
        ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
        if (auto r = applyCapabilitySets(*plan); !r) return "apply: " + r.error().message();
        return capLines();
    });
    CHECK(report == "CapInh:\t" + hexMask(bit(10)) + "\n" +
                        "CapPrm:\t" + hexMask(bit(0) | bit(5) | bit(10)) + "\n" +
                        "CapEff:\t" + hexMask(bit(5) | bit(10)) + "\n" +
                        "CapBnd:\t" + hexMask(bit(0) | bit(5) | bit(8) | bit(10)) + "\n" +
                        "CapAmb:\t" + hexMask(bit(10)) + "\n");
}

TEST_CASE("an empty plan leaves a process with no capabilities at all", "[root][caps]") {
    REQUIRE_ROOT();
    auto plan = planCapabilities(Capabilities{});
    REQUIRE(plan);
    std::string report = inChild([&]() -> std::string {
        if (auto r = dropBoundingSet(*plan); !r) return "bounding: " + r.error().message();
        if (auto r = applyCapabilitySets(*plan); !r) return "apply: " + r.error().message();
        return capLines();
    });
    std::string zero = hexMask(0);
    CHECK(report == "CapInh:\t" + zero + "\nCapPrm:\t" + zero + "\nCapEff:\t" + zero + "\nCapBnd:\t" + zero +
                        "\nCapAmb:\t" + zero + "\n");
}
