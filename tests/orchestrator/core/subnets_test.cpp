// The cluster's address plan: node leases and the checks at master start.
#include <catch2/catch.hpp>

#include "orchestrator/core/subnets.hpp"

using namespace hull;
using namespace hull::orchestrator::core;
using netns::Cidr;

namespace {
Cidr cidr(const char* s) { return *Cidr::parse(s); }
}  // namespace

TEST_CASE("subnets: nodes lease the first free /24 of the cluster CIDR, and a full range says so", "[subnets]") {
    auto cluster = cidr("10.96.0.0/12");
    auto a = leaseSubnet(cluster, 24, {});
    REQUIRE(a);
    CHECK(a->str() == "10.96.0.0/24");
    auto b = leaseSubnet(cluster, 24, {*a});
    REQUIRE(b);
    CHECK(b->str() == "10.96.1.0/24");
    // A freed lease is taken again first.
    CHECK(leaseSubnet(cluster, 24, {*b})->str() == "10.96.0.0/24");
    // A /22 has four.
    auto small = cidr("10.200.0.0/22");
    std::vector<Cidr> taken;
    for (int i = 0; i < 4; ++i) taken.push_back(*leaseSubnet(small, 24, taken));
    CHECK(taken.back().str() == "10.200.3.0/24");
    auto none = leaseSubnet(small, 24, taken);
    REQUIRE_FALSE(none);
    CHECK(none.error().message().find("no free /24") != std::string::npos);
    CHECK_FALSE(leaseSubnet(cidr("10.0.0.0/25"), 24, {}));
}

TEST_CASE("subnets: the plan is refused when the ranges overlap each other or a host route", "[subnets]") {
    auto cluster = cidr("10.96.0.0/12"), services = cidr("10.112.0.0/16");
    CHECK(checkAddressPlan(cluster, services, {}));
    auto e = checkAddressPlan(cluster, cidr("10.100.0.0/16"), {});
    REQUIRE_FALSE(e);
    CHECK(e.error().message() == "--service-cidr 10.100.0.0/16 overlaps --cluster-cidr 10.96.0.0/12");
    e = checkAddressPlan(cluster, services, {cidr("10.112.5.0/24")});
    REQUIRE_FALSE(e);
    CHECK(e.error().message() == "--service-cidr 10.112.0.0/16 overlaps the host's route to 10.112.5.0/24: choose another range");
    CHECK_FALSE(checkAddressPlan(cidr("10.96.0.1/12"), services, {}));  // not a network address
    CHECK_FALSE(checkAddressPlan(cidr("10.96.0.0/25"), services, {}));  // smaller than a node's /24
}

TEST_CASE("subnets: /proc/net/route gives the host's routes, the default one left out", "[subnets]") {
    const std::string text =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "hull0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
    auto routes = parseProcRoutes(text);
    REQUIRE(routes.size() == 2);
    CHECK(routes[0].str() == "192.168.2.0/24");
    CHECK(routes[1].str() == "10.88.0.0/16");
}
