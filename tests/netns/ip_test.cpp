// The pure half of netns: addresses, subnets, names, IPAM planning, port
// mappings, nft scripts and resolv.conf.
#include <catch2/catch.hpp>

#include "netns/ip.hpp"
#include "netns/ipam.hpp"
#include "netns/network.hpp"
#include "netns/portmap.hpp"
#include "support.hpp"
#include "sys/fs.hpp"

using namespace hull;
using namespace hull::netns;

TEST_CASE("ip: IPv4 addresses and CIDR blocks", "[netns]") {
    CHECK(Ipv4::parse("10.88.0.1")->str() == "10.88.0.1");
    CHECK(Ipv4::parse("255.255.255.255")->value == 0xffffffffu);
    for (const char* bad : {"", "10.88.0", "10.88.0.256", "10.88.0.1.", "a.b.c.d", "10.88.0.01234", "10..0.1"})
        CHECK_FALSE(Ipv4::parse(bad));
    auto c = Cidr::parse("10.88.3.7/16");
    REQUIRE(c);
    CHECK(c->network().str() == "10.88.0.0");
    CHECK(c->broadcast().str() == "10.88.255.255");
    CHECK(c->firstHost().str() == "10.88.0.1");
    CHECK(c->lastHost().str() == "10.88.255.254");
    CHECK(c->contains(*Ipv4::parse("10.88.200.1")));
    CHECK_FALSE(c->contains(*Ipv4::parse("10.89.0.1")));
    CHECK(c->overlaps(*Cidr::parse("10.88.5.0/24")));
    CHECK(c->overlaps(*Cidr::parse("10.0.0.0/8")));
    CHECK_FALSE(c->overlaps(*Cidr::parse("10.89.0.0/16")));
    CHECK(Cidr::parse("10.0.0.0/33").error().message() == "\"10.0.0.0/33\": the prefix must be 0..32");
    CHECK(Cidr::parse("10.0.0.0").error().message() == "\"10.0.0.0\": expected ADDRESS/PREFIX");
}

TEST_CASE("ip: IPv6 addresses in RFC 5952 text", "[netns]") {
    CHECK(Ipv6::parse("fd00:89::2")->str() == "fd00:89::2");
    CHECK(Ipv6::parse("::")->str() == "::");
    CHECK(Ipv6::parse("::1")->lo == 1);
    CHECK(Ipv6::parse("2001:DB8:0:0:1:0:0:1")->str() == "2001:db8::1:0:0:1");  // first longest zero run
    CHECK(Ipv6::parse("2001:db8:0:1:1:1:1:1")->str() == "2001:db8:0:1:1:1:1:1");  // one zero group stays
    CHECK(Ipv6::parse("fd00:0089:0000::0002") == Ipv6::parse("fd00:89::2"));
    auto ip = *Ipv6::parse("fd00:89:1:2:3:4:5:6");
    CHECK(ip.hi == 0xfd00008900010002ull);
    CHECK(ip.lo == 0x0003000400050006ull);
    CHECK(Ipv6::fromBytes(ip.bytes().data()) == ip);
    CHECK(ip.bytes()[0] == 0xfd);
    CHECK(ip.bytes()[15] == 0x06);
    for (const char* bad : {"", "1:2:3", "fd00::89::1", "fd00::/64", "[::1]", "fe80::1%eth0", "12345::", "10.0.0.1",
                            "g::1", "1:2:3:4:5:6:7:8:9"})
        CHECK_FALSE(Ipv6::parse(bad));
}

TEST_CASE("ip: IPv6 blocks: contains, overlaps, the nth host", "[netns]") {
    auto c = Cidr6::parse("fd00:89::17/64");
    REQUIRE(c);
    CHECK(c->str() == "fd00:89::17/64");
    CHECK(c->network().str() == "fd00:89::");
    CHECK(c->firstHost().str() == "fd00:89::1");
    CHECK(c->nth(2)->str() == "fd00:89::2");
    CHECK(c->nth(0xffff)->str() == "fd00:89::ffff");
    CHECK(c->lastOffset() == ~uint64_t(0));
    CHECK(c->nth(~uint64_t(0))->str() == "fd00:89::ffff:ffff:ffff:ffff");
    CHECK(c->contains(*Ipv6::parse("fd00:89::abcd:1")));
    CHECK_FALSE(c->contains(*Ipv6::parse("fd00:8a::1")));
    CHECK(*c->offsetOf(*Ipv6::parse("fd00:89::1:0")) == 0x10000);
    CHECK_FALSE(c->offsetOf(*Ipv6::parse("fd00:8a::1")));
    CHECK(c->overlaps(*Cidr6::parse("fd00::/16")));
    CHECK(c->overlaps(*Cidr6::parse("fd00:89::80/121")));
    CHECK_FALSE(c->overlaps(*Cidr6::parse("fd00:8a::/64")));

    auto small = *Cidr6::parse("fd00:89::100/120");
    CHECK(small.lastOffset() == 255);
    CHECK(small.nth(255)->str() == "fd00:89::1ff");
    CHECK_FALSE(small.nth(256));
    CHECK_FALSE(small.offsetOf(*Ipv6::parse("fd00:89::200")));
    // Wider than /64: hosts are numbered in the first /64 only.
    auto wide = *Cidr6::parse("fd00:89::/48");
    CHECK(wide.nth(5)->str() == "fd00:89::5");
    CHECK(wide.contains(*Ipv6::parse("fd00:89:0:1::5")));
    CHECK_FALSE(wide.offsetOf(*Ipv6::parse("fd00:89:0:1::5")));
    CHECK(Cidr6::parse("::/0")->contains(*Ipv6::parse("2001:db8::1")));
    CHECK(Cidr6::parse("::1/128")->lastOffset() == 0);

    CHECK(Cidr6::parse("fd00::/129").error().message() == "\"fd00::/129\": the prefix must be 0..128");
    CHECK(Cidr6::parse("fd00::").error().message() == "\"fd00::\": expected ADDRESS/PREFIX");
    CHECK(Cidr6::parse("10.0.0.0/8").error().message() == "\"10.0.0.0/8\": not an IPv6 address");
    CHECK_FALSE(Cidr6::parse("fd00::/64x"));
}

TEST_CASE("ip: MACs and interface names", "[netns]") {
    CHECK(macForIp(*Ipv4::parse("10.88.0.2")) == "02:42:0a:58:00:02");
    auto a = hostVethName("a-container-id-that-is-much-longer-than-fifteen-characters");
    CHECK(a.size() <= 15);
    CHECK(a.rfind("hull", 0) == 0);
    CHECK(a == hostVethName("a-container-id-that-is-much-longer-than-fifteen-characters"));  // stable
    CHECK(a != hostVethName("another"));
}

TEST_CASE("ip: the default subnet avoids the host's routes", "[netns]") {
    CHECK(pickFreeSubnet({})->str() == "10.88.0.0/16");
    std::vector<Cidr> used = {*Cidr::parse("0.0.0.0/0"), *Cidr::parse("10.88.0.0/16"), *Cidr::parse("10.89.4.0/24")};
    CHECK(pickFreeSubnet(used)->str() == "10.90.0.0/16");
    std::vector<Cidr> all10 = {*Cidr::parse("10.0.0.0/8")};
    CHECK(pickFreeSubnet(all10)->str() == "172.16.0.0/24");
}

TEST_CASE("ipam: next free address, round robin, skipping the gateway", "[netns][ipam]") {
    auto s = *Cidr::parse("10.88.0.0/29");  // hosts .1-.6
    Ipv4 gw = s.firstHost();
    CHECK(nextFree(s, gw, {}, std::nullopt)->str() == "10.88.0.2");
    CHECK(nextFree(s, gw, {}, Ipv4::parse("10.88.0.2"))->str() == "10.88.0.3");
    CHECK(nextFree(s, gw, {}, Ipv4::parse("10.88.0.6"))->str() == "10.88.0.2");  // wraps, skips .1
    std::set<uint32_t> used = {Ipv4::parse("10.88.0.3")->value, Ipv4::parse("10.88.0.4")->value};
    CHECK(nextFree(s, gw, used, Ipv4::parse("10.88.0.2"))->str() == "10.88.0.5");
    std::set<uint32_t> full;
    for (uint32_t i = 2; i <= 6; ++i) full.insert(s.network().value + i);
    CHECK_FALSE(nextFree(s, gw, full, std::nullopt));
}

TEST_CASE("ipam: the next free IPv6 address, round robin, skipping the gateway", "[netns][ipam]") {
    auto s = *Cidr6::parse("fd00:89::/126");  // offsets 0 (never), 1 (gateway), 2, 3
    Ipv6 gw = s.firstHost();
    CHECK(nextFree(s, gw, {}, std::nullopt)->str() == "fd00:89::2");
    CHECK(nextFree(s, gw, {}, Ipv6::parse("fd00:89::2"))->str() == "fd00:89::3");
    CHECK(nextFree(s, gw, {}, Ipv6::parse("fd00:89::3"))->str() == "fd00:89::2");  // wraps, skips ::1
    CHECK(nextFree(s, gw, {*Ipv6::parse("fd00:89::3")}, Ipv6::parse("fd00:89::2"))->str() == "fd00:89::2");
    CHECK_FALSE(nextFree(s, gw, {*Ipv6::parse("fd00:89::2"), *Ipv6::parse("fd00:89::3")}, std::nullopt));
    CHECK(nextFree(s, gw, {}, Ipv6::parse("fd00:99::2"))->str() == "fd00:89::2");  // a last from elsewhere

    // A /64: the last offset wraps to the start without walking 2^64 addresses.
    auto big = *Cidr6::parse("fd00:89::/64");
    CHECK(nextFree(big, big.firstHost(), {}, big.nth(~uint64_t(0)))->str() == "fd00:89::2");
    std::set<Ipv6> used;
    for (uint64_t i = 2; i < 1000; ++i) used.insert(*big.nth(i));
    CHECK(nextFree(big, big.firstHost(), used, std::nullopt)->str() == "fd00:89::3e8");
    CHECK(nextFree(big, big.firstHost(), used, big.nth(~uint64_t(0) - 1))->str() == "fd00:89::ffff:ffff:ffff:ffff");
}

TEST_CASE("ipam: a dual-stack allocation is two records, kept and released together", "[netns][ipam]") {
    test::TempDir state("hull-ipam6");
    auto subnet = *Cidr::parse("10.89.0.0/24");
    auto subnet6 = *Cidr6::parse("fd00:89::/64");
    std::string ips = state / "ips";
    Ipam ipam(state.path(), subnet, subnet.firstHost(), subnet6);
    Allocation a;
    a.id = "a";
    a.ifname = "eth0";
    a.ports = {{8080, 80, "tcp"}};
    auto first = ipam.allocate(a);
    REQUIRE(first);
    CHECK(first->ip.str() == "10.89.0.2");
    REQUIRE(first->ip6);
    CHECK(first->ip6->str() == "fd00:89::2");
    a.id = "b";
    a.ports = {};
    auto second = ipam.allocate(a);
    REQUIRE(second);
    CHECK(second->ip6->str() == "fd00:89::3");
    CHECK(sys::listDir(ips).size() == 4);
    // Each address is a record of its own; ports go with the IPv4 one.
    CHECK(test::readFileOr(ips + "/fd00:89::2").find(R"("ip":"fd00:89::2","id":"a")") != std::string::npos);
    CHECK(test::readFileOr(ips + "/fd00:89::2").find(R"("ports":[])") != std::string::npos);
    CHECK(test::readFileOr(ips + "/10.89.0.2").find(R"("ports":["8080:80/tcp"])") != std::string::npos);
    // ADD again: the same two addresses.
    a.id = "a";
    auto again = ipam.allocate(a);
    REQUIRE(again);
    CHECK(again->ip == first->ip);
    CHECK(again->ip6 == first->ip6);
    auto all = ipam.list();
    REQUIRE(all);
    REQUIRE(all->size() == 2);
    for (const auto& x : *all) CHECK(x.ip6);

    auto freed = ipam.release("a");
    REQUIRE(freed);
    REQUIRE(freed->size() == 1);
    CHECK((*freed)[0].ip6 == first->ip6);
    CHECK_FALSE(sys::exists(ips + "/10.89.0.2"));
    CHECK_FALSE(sys::exists(ips + "/fd00:89::2"));

    // An IPv6 record left alone (a crash between the two links) is listed,
    // completed by the next ADD of its owner, and released with it.
    test::writeFileOrThrow(ips + "/fd00:89::9", R"({"ip":"fd00:89::9","id":"c","ifname":"eth0","netns":"","hostVeth":"","ports":[]})");
    all = ipam.list();
    REQUIRE(all->size() == 2);
    a.id = "c";
    auto completed = ipam.allocate(a);
    REQUIRE(completed);
    CHECK(completed->ip6->str() == "fd00:89::9");
    CHECK(completed->ip.str() == "10.89.0.4");  // round robin after .3
    CHECK(ipam.list()->size() == 2);
    REQUIRE(ipam.release("c"));
    REQUIRE(ipam.release("b"));
    CHECK(sys::listDir(ips).empty());
}

TEST_CASE("ipam: an IPv4-only network writes the same records as before", "[netns][ipam]") {
    test::TempDir state("hull-ipam4");
    auto subnet = *Cidr::parse("10.89.0.0/24");
    Ipam ipam(state.path(), subnet, subnet.firstHost());
    Allocation a;
    a.id = "a";
    a.ifname = "eth0";
    a.netns = "/proc/1/ns/net";
    a.hostVeth = "hull12345678";
    a.ports = {{8080, 80, "tcp"}};
    auto got = ipam.allocate(a);
    REQUIRE(got);
    CHECK_FALSE(got->ip6);
    CHECK(sys::listDir(state / "ips") == std::vector<std::string>{"10.89.0.2"});
    CHECK(test::readFileOr(state / "ips/10.89.0.2") ==
          R"({"ip":"10.89.0.2","id":"a","ifname":"eth0","netns":"/proc/1/ns/net","hostVeth":"hull12345678","ports":["8080:80/tcp"]})"
          "\n");
    CHECK_FALSE(sys::exists(state / "last6"));
}

TEST_CASE("portmap: parsing and the nft commands", "[netns]") {
    CHECK(*parsePortMapping("8080:80") == PortMapping{8080, 80, "tcp"});
    CHECK(*parsePortMapping("53/udp") == PortMapping{53, 53, "udp"});
    CHECK(formatPortMapping(*parsePortMapping("5353:53/udp")) == "5353:53/udp");
    CHECK(parsePortMapping("8080:80/sctp").error().message() == "port mapping \"8080:80/sctp\": protocol must be tcp or udp");
    CHECK(parsePortMapping("0:80").error().message() == "port mapping \"0:80\": \"0\" is not a port (1-65535)");
    CHECK(parsePortMapping("1:2:3").error().message() == "port mapping \"1:2:3\": \"1\" is not an IPv4 host address");
    // On one host address (docker's -p HOSTIP:HOSTPORT:CONTAINERPORT); 0.0.0.0 is every address.
    auto one = *parsePortMapping("127.0.0.1:8080:80/udp");
    CHECK(one == PortMapping{8080, 80, "udp", Ipv4::parse("127.0.0.1")});
    CHECK(formatPortMapping(one) == "127.0.0.1:8080:80/udp");
    CHECK(*parsePortMapping("0.0.0.0:8080:80") == PortMapping{8080, 80, "tcp"});
    CHECK(parsePortMapping("10.0.0.300:8080:80").error().message() ==
          "port mapping \"10.0.0.300:8080:80\": \"10.0.0.300\" is not an IPv4 host address");
    CHECK(parsePortMapping("[::1]:8080:80").error().message() ==
          "port mapping \"[::1]:8080:80\": publishing on an IPv6 host address is not supported");
    CHECK_FALSE(parsePortMapping("::1:8080:80"));
    CHECK_FALSE(parsePortMapping("127.0.0.1::80"));  // no random host ports
    CHECK(portsScript({one}, *Ipv4::parse("10.88.0.5"), true) ==
          "add element ip hull udp_addr_ports { 127.0.0.1 . 8080 : 10.88.0.5 . 80 }\n");
    CHECK(portsScript({one}, {}, false) == "delete element ip hull udp_addr_ports { 127.0.0.1 . 8080 }\n");
    // Balanced over backends: a chain per host port, reached through a verdict
    // map, its rule counting new connections in a named counter (kept when the
    // rule is replaced).
    CHECK(balancedScript({8080, 80, "tcp"}, {*Ipv4::parse("10.88.0.2"), *Ipv4::parse("10.88.0.3")}, true) ==
          "add counter ip hull bal_tcp_8080_n\n"
          "add chain ip hull bal_tcp_8080\nflush chain ip hull bal_tcp_8080\n"
          "add rule ip hull bal_tcp_8080 counter name \"bal_tcp_8080_n\" meta l4proto tcp dnat ip to numgen random mod 2 map "
          "{ 0 : 10.88.0.2 . 80, 1 : 10.88.0.3 . 80 }\n"
          "add element ip hull tcp_bal { 8080 : goto bal_tcp_8080 }\n");
    CHECK(balancedScript(one, {}, true) ==
          "add counter ip hull bal_udp_127.0.0.1_8080_n\n"
          "add chain ip hull bal_udp_127.0.0.1_8080\nflush chain ip hull bal_udp_127.0.0.1_8080\n"
          "add rule ip hull bal_udp_127.0.0.1_8080 counter name \"bal_udp_127.0.0.1_8080_n\" drop\n"
          "add element ip hull udp_addr_bal { 127.0.0.1 . 8080 : goto bal_udp_127.0.0.1_8080 }\n");
    CHECK(balancedScript(one, {}, false) ==
          "delete element ip hull udp_addr_bal { 127.0.0.1 . 8080 }\ndelete chain ip hull bal_udp_127.0.0.1_8080\n"
          "add counter ip hull bal_udp_127.0.0.1_8080_n\ndelete counter ip hull bal_udp_127.0.0.1_8080_n\n");
    // The address-keyed maps are looked up first.
    auto rules = baseRulesetScript();
    CHECK(rules.find("dnat ip to ip daddr . tcp dport map @tcp_addr_ports") < rules.find("dnat ip to tcp dport map @tcp_ports"));
    CHECK(portsScript({{8080, 80, "tcp"}, {53, 53, "udp"}}, *Ipv4::parse("10.88.0.5"), true) ==
          "add element ip hull tcp_ports { 8080 : 10.88.0.5 . 80 }\nadd element ip hull udp_ports { 53 : 10.88.0.5 . 53 }\n");
    CHECK(portsScript({{8080, 80, "tcp"}}, {}, false) == "delete element ip hull tcp_ports { 8080 }\n");
    CHECK(baseRulesetScript().find("fib daddr type local dnat ip to tcp dport map @tcp_ports") != std::string::npos);
}

TEST_CASE("dns: /etc/hosts names the container's IPv6 address too, when it has one", "[netns]") {
    test::TempDir dir("hull-dns6");
    REQUIRE(writeDnsFiles(dir.path(), "box", *Ipv4::parse("10.89.0.2"), "/nonexistent", {"192.0.2.53"},
                          Ipv6::parse("fd00:89::2")));
    CHECK(test::readFileOr(dir / "hosts") ==
          "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.89.0.2\tbox\nfd00:89::2\tbox\n");
    REQUIRE(writeDnsFiles(dir.path(), "box", *Ipv4::parse("10.89.0.2"), "/nonexistent", {"192.0.2.53"}));
    CHECK(test::readFileOr(dir / "hosts") == "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.89.0.2\tbox\n");
}

TEST_CASE("dns: resolv.conf drops loopback nameservers the container cannot reach", "[netns]") {
    CHECK(resolvConf("nameserver 127.0.0.53\noptions edns0\nsearch example.org\n", {"192.0.2.53"}) ==
          "# written by hull\nnameserver 192.0.2.53\noptions edns0\nsearch example.org\n");
    CHECK(resolvConf("nameserver 192.0.2.1\nnameserver ::1\n", {"192.0.2.53"}) ==
          "# written by hull\nnameserver 192.0.2.1\n");
}
