// The phoenix cycle's choice of the next replica to burn, with a made-up clock.
#include <catch2/catch.hpp>

#include <set>

#include "orchestrator/core/phoenix.hpp"

using namespace hull::orchestrator::core;

namespace {

std::vector<AgedSlot> readySlots(int n, int64_t started) {
    std::vector<AgedSlot> out;
    for (int i = 0; i < n; ++i) out.push_back({i, 1, 0, true, false, started});
    return out;
}

}  // namespace

TEST_CASE("phoenix: nothing is due before maxAge less its jitter, the most overdue slot goes first", "[phoenix]") {
    auto slots = readySlots(4, 1000);
    slots[2].startedMs = -2000;  // the oldest, by more than the jitter
    int64_t next = 0;
    CHECK_FALSE(phoenixDue("web", 10000, 4, 4, slots, -2000 + 8999, &next));  // every limit is at least 9 s
    CHECK(next >= -2000 + 9000);
    CHECK(next <= -2000 + 10000);
    auto due = phoenixDue("web", 10000, 4, 4, slots, 11000);
    REQUIRE(due);
    CHECK(due->slot == 2);
    CHECK(due->why.rfind("age 13s, maxAge 10s", 0) == 0);
}

TEST_CASE("phoenix: one at a time, and never while the service is short of ready replicas", "[phoenix]") {
    auto slots = readySlots(3, 1);
    CHECK(phoenixDue("web", 1000, 3, 3, slots, 5000));
    slots[0].startedMs = 0;  // a start not known
    CHECK_FALSE(phoenixDue("web", 1000, 3, 3, slots, 5000));
    slots[0].startedMs = 1;
    CHECK_FALSE(phoenixDue("web", 1000, 3, 2, slots, 5000));  // a slot is not ready
    slots[1].retiring = true;                                  // a replacement in flight
    CHECK_FALSE(phoenixDue("web", 1000, 3, 3, slots, 5000));
    slots[1].retiring = false;
    slots[1].ready = false;  // its fresh copy is starting
    CHECK_FALSE(phoenixDue("web", 1000, 3, 3, slots, 5000));
}

TEST_CASE("phoenix: the jitter spreads replicas started together, and differs per incarnation", "[phoenix]") {
    std::set<int64_t> limits;
    for (int slot = 0; slot < 20; ++slot) {
        int64_t l = jitteredMaxAgeMs("web", {slot, 1, 0, true, false, 0}, 60000);
        CHECK(l <= 60000);
        CHECK(l >= 54000);
        limits.insert(l);
    }
    CHECK(limits.size() >= 15);  // a hash, not a constant
    CHECK(jitteredMaxAgeMs("web", {3, 1, 0}, 60000) != jitteredMaxAgeMs("web", {3, 1, 1}, 60000));
    CHECK(jitteredMaxAgeMs("web", {3, 1, 0}, 60000) == jitteredMaxAgeMs("web", {3, 1, 0}, 60000));  // stable
}
