#include <signal.h>

#include <catch2/catch.hpp>

#include "runtime/process.hpp"
#include "runtime/runtime.hpp"
#include "support.hpp"

using namespace hull::runtime;

TEST_CASE("signals by name or number", "[runtime][cli]") {
    CHECK(parseSignal("KILL") == SIGKILL);
    CHECK(parseSignal("SIGTERM") == SIGTERM);
    CHECK(parseSignal("sigusr1") == SIGUSR1);
    CHECK(parseSignal("9") == 9);
    CHECK(parseSignal("RTMIN+2") == SIGRTMIN + 2);
    CHECK(parseSignal("NOPE") == -1);
    CHECK(parseSignal("0") == 0);  // kill ID 0: does it exist?
    CHECK(parseSignal("-1") == -1);
    CHECK(parseSignal("9x") == -1);
    CHECK(parseSignal("") == -1);
}

TEST_CASE("container ids", "[runtime][cli]") {
    CHECK(validContainerId("web-1.a_b+c"));
    CHECK_FALSE(validContainerId(""));
    CHECK_FALSE(validContainerId(".."));
    CHECK_FALSE(validContainerId("a/b"));
    CHECK_FALSE(validContainerId("a b"));
}

TEST_CASE("the executable is looked up in the container's PATH", "[runtime]") {
    hull::test::TempDir d("hull-path");
    hull::test::makeBusyboxRootfs(d.path());
    ProcessPlan p;
    p.env = {"PATH=/nowhere:" + d.path() + "/bin"};
    p.args = {"sh"};
    auto r = resolveExecutable(p);
    REQUIRE(r);
    CHECK(*r == d.path() + "/bin/sh");

    p.args = {"missing-tool"};
    r = resolveExecutable(p);
    REQUIRE_FALSE(r);
    CHECK(r.error().message() == "exec: \"missing-tool\": executable file not found in $PATH");

    p.args = {d.path() + "/etc/passwd"};  // exists, not executable
    CHECK_FALSE(resolveExecutable(p));
}

TEST_CASE("state JSON has the fields runtime.md requires", "[runtime]") {
    ContainerState s;
    s.id = "c1";
    s.status = "running";
    s.pid = 42;
    s.bundle = "/b";
    s.annotations["k"] = "v";
    auto text = stateJson(s, false);
    CHECK(text.find("\"ociVersion\":\"1.2.0\"") != std::string::npos);
    CHECK(text.find("\"id\":\"c1\"") != std::string::npos);
    CHECK(text.find("\"status\":\"running\"") != std::string::npos);
    CHECK(text.find("\"pid\":42") != std::string::npos);
    CHECK(text.find("\"bundle\":\"/b\"") != std::string::npos);
    CHECK(text.find("\"annotations\":{\"k\":\"v\"}") != std::string::npos);
}
