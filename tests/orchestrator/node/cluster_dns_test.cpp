// The hosts files dnsmasq serves service names from (one per service).
#include <catch2/catch.hpp>

#include "orchestrator/node/cluster_dns.hpp"
#include "support.hpp"
#include "sys/fs.hpp"

using namespace hull;
using namespace hull::orchestrator::node;

TEST_CASE("cluster dns: a service's name gives its VIP, tasks.NAME its ready replicas, under .hull too", "[dns]") {
    CHECK(serviceHostsFile("web", {"10.112.0.2", {"10.96.0.2", "10.96.1.3"}}) ==
          "# written by hull: the names of service web\n"
          "10.112.0.2\tweb web.hull\n"
          "10.96.0.2\ttasks.web tasks.web.hull\n"
          "10.96.1.3\ttasks.web tasks.web.hull\n");
    CHECK(serviceHostsFile("db", {}) == "# written by hull: the names of service db\n");
}

TEST_CASE("cluster dns: one file per service, rewritten only when it changed, emptied when the service goes", "[dns]") {
    test::TempDir dir("hull-dns");
    ClusterDns dns(dir.path(), "127.0.0.1");
    REQUIRE(dns.update({{"web", {"10.112.0.2", {"10.96.0.2"}}}, {"db", {"10.112.0.3", {}}}}));
    const std::string web = dir.path() + "/hosts/web", db = dir.path() + "/hosts/db";
    CHECK(test::readFileOr(web) == serviceHostsFile("web", {"10.112.0.2", {"10.96.0.2"}}));
    CHECK(test::readFileOr(db) == serviceHostsFile("db", {"10.112.0.3", {}}));
    // Unchanged: not written again (dnsmasq rereads what was renamed into its directory).
    REQUIRE(sys::writeFile(db, "marker\n", 0644));
    REQUIRE(dns.update({{"web", {"10.112.0.2", {"10.96.0.2", "10.96.0.3"}}}, {"db", {"10.112.0.3", {}}}}));
    CHECK(test::readFileOr(db) == "marker\n");
    CHECK(test::readFileOr(web).find("10.96.0.3\ttasks.web") != std::string::npos);
    // Gone: its file stays, empty of names.
    REQUIRE(dns.update({{"web", {"10.112.0.2", {}}}}));
    CHECK(test::readFileOr(db) == serviceHostsFile("db", {}));
    // No temporary file is left in the watched directory.
    CHECK(sys::listDir(dir.path() + "/hosts").size() == 2);
}
