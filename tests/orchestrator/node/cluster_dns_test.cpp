// The hosts file dnsmasq serves service names from.
#include <catch2/catch.hpp>

#include "orchestrator/node/cluster_dns.hpp"

using namespace hull::orchestrator::node;

TEST_CASE("cluster dns: a service's name gives its VIP, tasks.NAME its ready replicas, under .hull too", "[dns]") {
    std::map<std::string, ServiceAddresses> services{{"web", {"10.112.0.2", {"10.96.0.2", "10.96.1.3"}}},
                                                    {"db", {"10.112.0.3", {}}}};
    CHECK(clusterHostsFile(services) ==
          "# written by hull: service names of this cluster\n"
          "10.112.0.3\tdb db.hull\n"
          "10.112.0.2\tweb web.hull\n"
          "10.96.0.2\ttasks.web tasks.web.hull\n"
          "10.96.1.3\ttasks.web tasks.web.hull\n");
    CHECK(clusterHostsFile({}) == "# written by hull: service names of this cluster\n");
}
