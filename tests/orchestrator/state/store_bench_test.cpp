// scripts/bench-ha's in-process store figures: the same operations, timed, on
// the SQLite store and on a one-member etcd (tests/orchestrator/state/etcd_support.hpp),
// both with their data on tmpfs. Hidden ([.bench]): not a test, never timed in CI.
// Prints one "STOREBENCH {json}" line per store and operation.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "orchestrator/state/etcd_support.hpp"
#include "orchestrator/state/store.hpp"
#include "orchestrator/state/store_support.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::state;
using namespace hull::state::testing;
using namespace hull::test;

namespace {

void report(const char* store, const char* op, int n, std::chrono::steady_clock::duration took) {
    const double s = std::chrono::duration<double>(took).count();
    std::printf("STOREBENCH {\"store\": \"%s\", \"op\": \"%s\", \"n\": %d, \"seconds\": %.3f, \"perSecond\": %.0f}\n", store, op, n, s,
                n / s);
    std::fflush(stdout);
}

/// N puts of a service-sized value; N fenced txns (a compare on the leader
/// key's create revision, as the master writes); N ranges of one key.
void measure(const char* name, Store& s, int n) {
    const std::string value(600, 'x');  // about a stored service's size
    auto t = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) ok(s.put("/bench/put/" + std::to_string(i % 100), value));
    report(name, "put", n, std::chrono::steady_clock::now() - t);

    ok(s.put("/bench/leader", "me"));
    const int64_t fence = getKey(s, "/bench/leader")->createRevision;
    t = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
        auto r = ok(s.txn({Compare::createRevision("/bench/leader", Compare::Op::Equal, fence)},
                          {Op::put("/bench/txn/" + std::to_string(i % 100), value)}, {}));
        REQUIRE(r.succeeded);
    }
    report(name, "txn", n, std::chrono::steady_clock::now() - t);

    t = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) REQUIRE(ok(s.range("/bench/put/" + std::to_string(i % 100))).kvs.size() == 1);
    report(name, "range", n, std::chrono::steady_clock::now() - t);
}

}  // namespace

TEST_CASE("store throughput: SQLite against a one-member etcd, both on tmpfs", "[.bench][store]") {
    constexpr int kOps = 2000;
    {
        std::string dir = "/dev/shm/hull-storebench-XXXXXX";
        REQUIRE(::mkdtemp(dir.data()) != nullptr);
        auto s = ok(openSqlite(dir + "/state.db"));
        measure("sqlite", *s, kOps);
        s.reset();
        run({"rm", "-rf", dir});
    }
    {
        EtcdCluster etcd({.members = 1});
        EtcdOptions o;
        o.endpoints = {etcd.endpoint(0)};
        auto s = ok(openEtcd(o));
        measure("etcd", *s, kOps);
    }
}
