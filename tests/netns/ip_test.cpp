// The pure half of netns: addresses, subnets, names, IPAM planning, port
// mappings, nft scripts and resolv.conf.
#include <catch2/catch.hpp>

#include "netns/ip.hpp"
#include "netns/ipam.hpp"
#include "netns/network.hpp"
#include "netns/portmap.hpp"

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

TEST_CASE("portmap: parsing and the nft commands", "[netns]") {
    CHECK(*parsePortMapping("8080:80") == PortMapping{8080, 80, "tcp"});
    CHECK(*parsePortMapping("53/udp") == PortMapping{53, 53, "udp"});
    CHECK(formatPortMapping(*parsePortMapping("5353:53/udp")) == "5353:53/udp");
    CHECK(parsePortMapping("8080:80/sctp").error().message() == "port mapping \"8080:80/sctp\": protocol must be tcp or udp");
    CHECK(parsePortMapping("0:80").error().message() == "port mapping \"0:80\": \"0\" is not a port (1-65535)");
    CHECK_FALSE(parsePortMapping("1:2:3"));
    CHECK(portsScript({{8080, 80, "tcp"}, {53, 53, "udp"}}, *Ipv4::parse("10.88.0.5"), true) ==
          "add element ip hull tcp_ports { 8080 : 10.88.0.5 . 80 }\nadd element ip hull udp_ports { 53 : 10.88.0.5 . 53 }\n");
    CHECK(portsScript({{8080, 80, "tcp"}}, {}, false) == "delete element ip hull tcp_ports { 8080 }\n");
    CHECK(baseRulesetScript().find("fib daddr type local dnat ip to tcp dport map @tcp_ports") != std::string::npos);
}

TEST_CASE("dns: resolv.conf drops loopback nameservers the container cannot reach", "[netns]") {
    CHECK(resolvConf("nameserver 127.0.0.53\noptions edns0\nsearch example.org\n", {"192.0.2.53"}) ==
          "# written by hull\nnameserver 192.0.2.53\noptions edns0\nsearch example.org\n");
    CHECK(resolvConf("nameserver 192.0.2.1\nnameserver ::1\n", {"192.0.2.53"}) ==
          "# written by hull\nnameserver 192.0.2.1\n");
}
