// hull-cni as a CNI runtime calls it: environment, config on stdin, result or
// error JSON on stdout (CNI spec 1.0), in a private "host" namespace.
#include <catch2/catch.hpp>

#include "netns/netns_support.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::test;

namespace {

RunResult cni(const std::string& command, const std::string& config, const std::string& netns = "",
              const std::string& id = "ctr1") {
    return run({"/usr/bin/env", "CNI_COMMAND=" + command, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + netns,
                "CNI_IFNAME=eth0", "CNI_PATH=/nonexistent", binPath("hull-cni")},
               config);
}

json::Value parsed(const RunResult& r) {
    auto v = json::Value::parse(r.out);
    INFO(r.out << r.err);
    REQUIRE(v);
    return *v;
}

}  // namespace

TEST_CASE("cni: VERSION and errors as CNI error JSON with their codes", "[root][net][cni]") {
    auto v = parsed(cni("VERSION", ""));
    CHECK(v.find("cniVersion")->asString() == "1.0.0");
    CHECK(v.find("supportedVersions")->asArray().size() == 4);

    auto bad = cni("ADD", "{not json", "/proc/self/ns/net");
    CHECK(bad.status != 0);
    int64_t code = 0;
    REQUIRE(parsed(bad).find("code")->toInt64(code));
    CHECK(code == 6);  // failed to decode content
    auto old = cni("ADD", R"({"cniVersion":"0.2.0","name":"n","type":"hull-cni"})", "/proc/self/ns/net");
    REQUIRE(parsed(old).find("code")->toInt64(code));
    CHECK(code == 1);  // incompatible version
    auto badPort = cni("ADD", R"({"cniVersion":"1.0.0","name":"n","type":"hull-cni",
        "runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}})", "/proc/self/ns/net");
    REQUIRE(parsed(badPort).find("code")->toInt64(code));
    CHECK(code == 7);
    CHECK(parsed(badPort).find("msg")->asString().find("runtimeConfig.portMappings[0]") == 0);
    auto noEnv = run({"/usr/bin/env", "-i", binPath("hull-cni")});
    REQUIRE(parsed(noEnv).find("code")->toInt64(code));
    CHECK(code == 4);
}

TEST_CASE("cni: ADD, CHECK and DEL against a container namespace", "[root][net][cni]") {
    if (!isRoot()) return;
    TestNetns host("cni"), ctr("cnictr");
    TempDir state("hull-cni-state");
    InNetns in(host.path());
    std::string config = R"({"cniVersion":"1.0.0","name":"cnitest","type":"hull-cni","bridge":"hullcni0",
        "subnet":"10.89.77.0/24","stateDir":")" + state.path() + R"(",
        "prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"lo"}],"ips":[]},
        "runtimeConfig":{"portMappings":[{"hostPort":8081,"containerPort":80,"protocol":"tcp"}]}})";
    auto add = cni("ADD", config, ctr.path());
    INFO(add.out << add.err);
    REQUIRE(add.status == 0);
    auto res = parsed(add);
    CHECK(res.find("cniVersion")->asString() == "1.0.0");
    auto& ifaces = res.find("interfaces")->asArray();
    REQUIRE(ifaces.size() == 4);  // lo from prevResult, then the bridge, the host veth, eth0
    CHECK(ifaces[0].find("name")->asString() == "lo");
    CHECK(ifaces[3].find("sandbox")->asString() == ctr.path());
    auto& ip = res.find("ips")->asArray().at(0);
    CHECK(ip.find("address")->asString() == "10.89.77.2/24");
    CHECK(ip.find("gateway")->asString() == "10.89.77.1");
    int64_t idx = 0;
    REQUIRE(ip.find("interface")->toInt64(idx));
    CHECK(idx == 3);
    CHECK(ctr.sh("ip -4 -o addr show eth0").out.find("10.89.77.2/24") != std::string::npos);
    CHECK(ctr.sh("ip route").out.find("default via 10.89.77.1 dev eth0") != std::string::npos);
    CHECK(host.sh("nft list map ip hull tcp_ports").out.find("8081 : 10.89.77.2 . 80") != std::string::npos);

    CHECK(cni("CHECK", config, ctr.path()).status == 0);
    // ADD is idempotent for the same container: same address.
    auto again = cni("ADD", config, ctr.path());
    (void)again;
    REQUIRE(cni("DEL", config, ctr.path()).status == 0);
    CHECK(host.sh("nft list map ip hull tcp_ports").out.find("8081") == std::string::npos);
    CHECK(ctr.sh("ls /sys/class/net").out.find("eth0") == std::string::npos);
    auto check = cni("CHECK", config, ctr.path());
    CHECK(check.status != 0);
    REQUIRE(cni("DEL", config, ctr.path()).status == 0);  // a second DEL succeeds
    CHECK(cni("DEL", config, "").status == 0);             // DEL without a netns too
    host.sh("ip link del hullcni0");
}
