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
    auto v6 = cni("ADD", R"({"cniVersion":"1.0.0","name":"n","type":"hull-cni",
        "runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"::1"}]}})", "/proc/self/ns/net");
    REQUIRE(parsed(v6).find("code")->toInt64(code));
    CHECK(code == 2);  // unsupported field
    CHECK(parsed(v6).find("msg")->asString().find("runtimeConfig.portMappings[0].hostIP") == 0);
    auto noEnv = run({"/usr/bin/env", "-i", binPath("hull-cni")});
    REQUIRE(parsed(noEnv).find("code")->toInt64(code));
    CHECK(code == 4);
}

TEST_CASE("cni: ADD, CHECK and DEL against a container namespace", "[root][net][cni]") {
    REQUIRE_ROOT();
    TestNetns host("cni"), ctr("cnictr");
    TempDir state("hull-cni-state");
    InNetns in(host.path());
    std::string config = R"({"cniVersion":"1.0.0","name":"cnitest","type":"hull-cni","bridge":"hullcni0",
        "subnet":"10.89.77.0/24","stateDir":")" + state.path() + R"(",
        "prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"lo"}],"ips":[]},
        "runtimeConfig":{"portMappings":[{"hostPort":8081,"containerPort":80,"protocol":"tcp"},
                                         {"hostPort":8082,"containerPort":81,"hostIP":"127.0.0.1"}]}})";
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
    CHECK(host.sh("nft list map ip hull tcp_addr_ports").out.find("127.0.0.1 . 8082 : 10.89.77.2 . 81") !=
          std::string::npos);

    CHECK(cni("CHECK", config, ctr.path()).status == 0);
    // ADD is idempotent for the same container: same address.
    auto again = cni("ADD", config, ctr.path());
    INFO(again.out << again.err);
    CHECK(again.status == 0);
    CHECK(parsed(again).find("ips")->asArray().at(0).find("address")->asString() == "10.89.77.2/24");
    REQUIRE(cni("DEL", config, ctr.path()).status == 0);
    CHECK(host.sh("nft list map ip hull tcp_ports").out.find("8081") == std::string::npos);
    CHECK(host.sh("nft list map ip hull tcp_addr_ports").out.find("8082") == std::string::npos);
    CHECK(ctr.sh("ls /sys/class/net").out.find("eth0") == std::string::npos);
    auto check = cni("CHECK", config, ctr.path());
    CHECK(check.status != 0);
    REQUIRE(cni("DEL", config, ctr.path()).status == 0);  // a second DEL succeeds
    CHECK(cni("DEL", config, "").status == 0);             // DEL without a netns too
    host.sh("ip link del hullcni0");
}

TEST_CASE("cni: an IPv6 range: ADD returns both addresses, CHECK verifies both, DEL frees both", "[root][net][cni]") {
    REQUIRE_ROOT();
    TestNetns host("cni", "h6-"), ctr("cnictr", "h6-");
    TempDir state("hull-cni6-state");
    InNetns in(host.path());
    auto config = [&](const std::string& version, const std::string& ipam) {
        return R"({"cniVersion":")" + version + R"(","name":"cni6","type":"hull-cni","bridge":"hullcni6",
            "stateDir":")" + state.path() + R"(","ipam":)" + ipam + "}";
    };
    const std::string ranges = R"({"type":"host-local","ranges":[[{"subnet":"10.89.78.0/24"}],
        [{"subnet":"fd00:89:78::/64","gateway":"fd00:89:78::1"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]})";
    std::string cfg = config("1.0.0", ranges);
    auto add = cni("ADD", cfg, ctr.path());
    INFO(add.out << add.err);
    REQUIRE(add.status == 0);
    auto res = parsed(add);
    CHECK(res.find("cniVersion")->asString() == "1.0.0");
    auto& ifaces = res.find("interfaces")->asArray();
    REQUIRE(ifaces.size() == 3);  // the bridge, the host veth, eth0
    CHECK(ifaces[2].find("name")->asString() == "eth0");
    CHECK(ifaces[2].find("sandbox")->asString() == ctr.path());
    auto& ips = res.find("ips")->asArray();
    REQUIRE(ips.size() == 2);
    const char* want[][2] = {{"10.89.78.2/24", "10.89.78.1"}, {"fd00:89:78::2/64", "fd00:89:78::1"}};
    for (size_t i = 0; i < 2; ++i) {
        CHECK(ips[i].find("address")->asString() == want[i][0]);  // CIDR form (spec: "address")
        CHECK(ips[i].find("gateway")->asString() == want[i][1]);
        int64_t idx = -1;
        REQUIRE(ips[i].find("interface")->toInt64(idx));
        CHECK(idx == 2);  // an index into interfaces: eth0
        CHECK_FALSE(ips[i].find("version"));  // 1.0.0 dropped it
    }
    auto& routes = res.find("routes")->asArray();
    REQUIRE(routes.size() == 2);
    CHECK(routes[0].find("dst")->asString() == "0.0.0.0/0");
    CHECK(routes[1].find("dst")->asString() == "::/0");
    CHECK(res.find("dns")->isObject());
    CHECK(ctr.sh("ip -6 -o addr show dev eth0 scope global").out.find("fd00:89:78::2/64") != std::string::npos);
    CHECK(ctr.sh("ip -6 route show default").out.find("default via fd00:89:78::1 dev eth0") != std::string::npos);
    CHECK(ctr.sh("busybox ping -6 -c 1 -W 2 fd00:89:78::1").status == 0);

    CHECK(cni("CHECK", cfg, ctr.path()).status == 0);
    // CHECK looks at the IPv6 address too.
    ctr.sh("ip -6 addr del fd00:89:78::2/64 dev eth0");
    auto broken = cni("CHECK", cfg, ctr.path());
    CHECK(broken.status != 0);
    CHECK(broken.out.find("does not have fd00:89:78::2/64") != std::string::npos);

    REQUIRE(cni("DEL", cfg, ctr.path()).status == 0);
    CHECK(sys::listDir(state / "networks/cni6/ips").empty());
    CHECK(ctr.sh("ls /sys/class/net").out.find("eth0") == std::string::npos);
    REQUIRE(cni("DEL", cfg, ctr.path()).status == 0);

    // 0.4.0 results carry "version"; routes without ::/0 leave out the IPv6 default route.
    std::string old = config("0.4.0", R"({"ranges":[[{"subnet":"10.89.78.0/24"}],[{"subnet":"fd00:89:78::/64"}]],
        "routes":[{"dst":"0.0.0.0/0"}]})");
    auto add4 = cni("ADD", old, ctr.path(), "ctr2");
    INFO(add4.out << add4.err);
    REQUIRE(add4.status == 0);
    auto res4 = parsed(add4);
    REQUIRE(res4.find("ips")->asArray().size() == 2);
    CHECK(res4.find("ips")->asArray()[0].find("version")->asString() == "4");
    CHECK(res4.find("ips")->asArray()[1].find("version")->asString() == "6");
    CHECK(res4.find("ips")->asArray()[1].find("address")->asString() == "fd00:89:78::3/64");
    CHECK(res4.find("routes")->asArray().size() == 1);
    CHECK(ctr.sh("ip -6 route show default").out.empty());
    REQUIRE(cni("DEL", old, ctr.path(), "ctr2").status == 0);
    CHECK(sys::listDir(state / "networks/cni6/ips").empty());

    // What hull's IPAM cannot do is refused with the spec's codes.
    int64_t code = 0;
    auto range = parsed(cni("ADD", config("1.0.0", R"({"ranges":[[{"subnet":"fd00:1::/64","rangeStart":"fd00:1::10"}]]})"),
                            ctr.path(), "bad"));
    REQUIRE(range.find("code")->toInt64(code));
    CHECK(code == 2);
    CHECK(range.find("msg")->asString().find("ipam.ranges[0][0].rangeStart") == 0);
    auto gw = parsed(cni("ADD", config("1.0.0", R"({"ranges":[[{"subnet":"fd00:1::/64","gateway":"fd00:1::fe"}]]})"),
                         ctr.path(), "bad"));
    REQUIRE(gw.find("code")->toInt64(code));
    CHECK(code == 2);
    auto two = parsed(cni("ADD", config("1.0.0", R"({"ranges":[[{"subnet":"fd00:1::/64"}],[{"subnet":"fd00:2::/64"}]]})"),
                          ctr.path(), "bad"));
    REQUIRE(two.find("code")->toInt64(code));
    CHECK(code == 7);
    auto route = parsed(cni("ADD", config("1.0.0", R"({"ranges":[[{"subnet":"10.89.79.0/24"}]],"routes":[{"dst":"::/0"}]})"),
                            ctr.path(), "bad"));
    REQUIRE(route.find("code")->toInt64(code));
    CHECK(code == 7);
    CHECK(sys::listDir(state / "networks/cni6/ips").empty());
    host.sh("ip link del hullcni6");
}
