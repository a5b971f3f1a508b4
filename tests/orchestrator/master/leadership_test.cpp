// Masters electing a leader over one SQLite store, driven by hand with a
// made-up clock (the store's leases run on it too), and once on threads.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/master/leadership.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::orchestrator;
using hull::orchestrator::master::Leadership;
using hull::orchestrator::master::LeadershipOptions;

namespace {

struct FakeClock {
    std::shared_ptr<int64_t> ms = std::make_shared<int64_t>(1'000'000);
    std::function<int64_t()> fn() const {
        return [ms = ms] { return *ms; };
    }
};

std::string nameOf(size_t i) { return "m" + std::to_string(i + 1); }
std::string urlOf(size_t i) { return "https://10.0.0." + std::to_string(i + 1) + ":7443"; }

// Three masters on one store. A round moves the clock, then steps each live
// master in turn, as their timer threads would.
struct World {
    test::TempDir dir{"hull-leadership"};
    FakeClock clock;
    std::unique_ptr<state::Store> store;
    std::vector<std::unique_ptr<Leadership>> masters;
    std::vector<int> elected, deposed;
    std::vector<std::string> reasons;
    std::vector<bool> paused;
    bool leaderInCallback = false;

    explicit World(size_t n = 3) : elected(n), deposed(n), reasons(n), paused(n) {
        auto s = state::openSqlite(dir / "state.db", clock.fn());
        REQUIRE(s);
        store = std::move(*s);
        masters.resize(n);
        for (size_t i = 0; i < n; ++i) masters[i] = make(i);
    }

    std::unique_ptr<Leadership> make(size_t i) {
        LeadershipOptions o;
        o.self = {nameOf(i), urlOf(i)};
        o.clockMs = clock.fn();
        o.onElected = [this, i](int64_t) {
            ++elected[i];
            // Callbacks run outside the Leadership's lock: its accessors work.
            leaderInCallback = masters[i]->isLeader();
        };
        o.onDeposed = [this, i](const std::string& why) {
            ++deposed[i];
            reasons[i] = why;
        };
        return std::make_unique<Leadership>(*store, o);
    }

    int64_t now() const { return *clock.ms; }

    void round(int64_t advanceMs = 10) {
        *clock.ms += advanceMs;
        for (size_t i = 0; i < masters.size(); ++i)
            if (masters[i] && !paused[i]) masters[i]->step();
    }

    std::vector<size_t> leaders() const {
        std::vector<size_t> out;
        for (size_t i = 0; i < masters.size(); ++i)
            if (masters[i] && masters[i]->isLeader()) out.push_back(i);
        return out;
    }

    std::optional<state::KeyValue> key() const {
        auto r = store->range(core::kLeaderKey);
        REQUIRE(r);
        if (r->kvs.empty()) return std::nullopt;
        return r->kvs.front();
    }

    size_t electOne() {
        for (int i = 0; i < 10 && leaders().empty(); ++i) round();
        REQUIRE(leaders().size() == 1);
        return leaders().front();
    }

    // Rounds until a master other than NOT leads; the time it took.
    int64_t roundsUntilLed(int64_t maxMs, const std::function<void()>& each = {}, size_t notBy = SIZE_MAX) {
        const int64_t from = now();
        auto led = [&] {
            auto l = leaders();
            return !l.empty() && l.front() != notBy;
        };
        while (!led() && now() - from < maxMs) {
            round();
            if (each) each();
        }
        return now() - from;
    }
};

}  // namespace

TEST_CASE("three masters on one store: exactly one leads, the others follow it", "[leadership]") {
    World w;
    const size_t l = w.electOne();
    auto key = w.key();
    REQUIRE(key);
    CHECK(core::parseLeaderValue(key->value) == core::LeaderInfo{nameOf(l), urlOf(l)});
    CHECK(key->lease != 0);
    CHECK(w.masters[l]->fencingRevision() == key->createRevision);
    CHECK(w.masters[l]->leaderName() == nameOf(l));
    CHECK(w.elected[l] == 1);
    CHECK(w.leaderInCallback);
    for (size_t i = 0; i < 3; ++i) {
        if (i == l) continue;
        CHECK(w.masters[i]->role() == core::Role::Follower);
        CHECK(w.masters[i]->leaderName() == nameOf(l));
        CHECK(w.masters[i]->leaderUrl() == urlOf(l));
        CHECK(w.masters[i]->fencingRevision() == 0);
        CHECK(w.elected[i] == 0);
    }
    // Renewals hold it for as long as it lives: 10 s of rounds.
    for (int i = 0; i < 1000; ++i) {
        w.round();
        REQUIRE(w.leaders() == std::vector<size_t>{l});
    }
    CHECK(w.key()->createRevision == key->createRevision);
    CHECK(w.elected == std::vector<int>{l == 0, l == 1, l == 2});
    CHECK(w.deposed == std::vector<int>{0, 0, 0});
    CHECK(w.masters[l]->lastError().empty());
}

TEST_CASE("a leader destroyed without resigning is replaced once its lease has run out, not before",
          "[leadership]") {
    World w;
    const size_t l = w.electOne();
    for (int i = 0; i < 37; ++i) w.round();  // somewhere between two renewals
    const state::KeyValue old = *w.key();
    w.masters[l].reset();  // a SIGKILL: no resign, no revoke
    const int64_t killed = w.now();
    const int64_t took = w.roundsUntilLed(5000, [&] {
        // While the dead leader's key is there, nobody else leads.
        auto k = w.key();
        if (k && k->lease == old.lease) REQUIRE(w.leaders().empty());
    });
    REQUIRE(w.leaders().size() == 1);
    const size_t n = w.leaders().front();
    INFO("taken over after " << took << " ms");
    // The lease ran for its TTL after its last renewal (at most 250 ms before
    // the kill); SQLite expires it at the next call after that (a follower's
    // renewal, every 250 ms).
    CHECK(took >= 1000 - 250);
    CHECK(took <= 1000 + 250 + 20);
    CHECK(w.key()->createRevision > old.createRevision);
    CHECK(w.masters[n]->fencingRevision() == w.key()->createRevision);
    CHECK(w.now() - killed == took);
    for (size_t i = 0; i < 3; ++i)
        if (w.masters[i] && i != n) CHECK(w.masters[i]->leaderName() == nameOf(n));
}

TEST_CASE("a stalled leader stops believing it leads before its lease runs out, and learns it was deposed",
          "[leadership]") {
    World w;
    const size_t l = w.electOne();
    for (int i = 0; i < 12; ++i) w.round();
    w.paused[l] = true;  // stopped: no renewals, no steps (SIGSTOP, a long pause)
    const int64_t stalled = w.now();
    const state::KeyValue old = *w.key();
    bool believedLate = false;
    w.roundsUntilLed(5000, [&] {
        // Its belief ends 750 ms after its last renewal was sent, before the
        // 1 s the store gives the lease; and never two leaders.
        if (w.now() - stalled >= 750) believedLate |= w.masters[l]->isLeader();
        auto k = w.key();
        if (w.masters[l]->isLeader()) {
            REQUIRE(k);
            REQUIRE(k->lease == old.lease);
        }
        REQUIRE(w.leaders().size() <= 1);
    }, l);
    CHECK_FALSE(believedLate);
    REQUIRE(w.leaders().size() == 1);
    const size_t n = w.leaders().front();
    CHECK(n != l);
    // It wakes up: it is told it lost, and follows.
    w.paused[l] = false;
    w.round();
    CHECK(w.deposed[l] == 1);
    CHECK(w.reasons[l].find("no renewal of lease") == 0);
    CHECK(w.masters[l]->role() == core::Role::Follower);
    CHECK(w.masters[l]->leaderName() == nameOf(n));
    for (int i = 0; i < 100; ++i) {
        w.round();
        REQUIRE(w.leaders() == std::vector<size_t>{n});
    }
}

TEST_CASE("resign hands over at once, and a resigned master never leads again", "[leadership]") {
    World w;
    const size_t l = w.electOne();
    for (int i = 0; i < 30; ++i) w.round();
    w.masters[l]->resign();
    CHECK_FALSE(w.masters[l]->isLeader());
    CHECK_FALSE(w.key().has_value());  // revoked: the key went with the lease
    w.round(0);                        // no time passes
    REQUIRE(w.leaders().size() == 1);
    const size_t n = w.leaders().front();
    CHECK(n != l);
    CHECK(w.deposed[l] == 1);
    CHECK(w.reasons[l] == "resigned");
    CHECK(w.masters[l]->leaderName() == nameOf(n));
    // The new leader dies: the third master takes over, never the resigned one.
    w.masters[n].reset();
    w.roundsUntilLed(5000);
    REQUIRE(w.leaders().size() == 1);
    const size_t third = w.leaders().front();
    CHECK(third != l);
    for (int i = 0; i < 300; ++i) w.round();
    CHECK(w.leaders() == std::vector<size_t>{third});
    CHECK(w.elected[l] == 1);
    CHECK(w.masters[l]->leaderName() == nameOf(third));
}

TEST_CASE("on threads and the real clock: one leads, a killed one is replaced, a resigned one at once",
          "[leadership]") {
    test::TempDir dir("hull-leadership");
    auto s = state::openSqlite(dir / "state.db");
    REQUIRE(s);
    std::unique_ptr<state::Store> store = std::move(*s);
    std::vector<std::unique_ptr<Leadership>> ms(3);
    std::atomic<int> elections{0};
    for (size_t i = 0; i < ms.size(); ++i) {
        LeadershipOptions o;
        o.self = {nameOf(i), urlOf(i)};
        o.onElected = [&](int64_t) { ++elections; };
        ms[i] = std::make_unique<Leadership>(*store, o);
        ms[i]->start();
    }
    bool twoLed = false;
    auto leader = [&]() -> std::optional<size_t> {
        std::optional<size_t> found;
        for (size_t i = 0; i < ms.size(); ++i) {
            if (!ms[i] || !ms[i]->isLeader()) continue;
            twoLed |= found.has_value();
            found = i;
        }
        return found;
    };
    REQUIRE(test::waitFor([&] { return leader().has_value(); }));
    const size_t first = *leader();
    ms[first].reset();
    REQUIRE(test::waitFor([&] { return leader().has_value(); }));
    const size_t second = *leader();
    CHECK(second != first);
    ms[second]->resign();
    REQUIRE(test::waitFor([&] { return leader().has_value() && *leader() != second; }, 3000));
    const size_t third = *leader();
    CHECK(third != first);
    CHECK(test::waitFor([&] {
        auto l = leader();
        return l && ms[second]->leaderName() == nameOf(*l);
    }));
    CHECK_FALSE(twoLed);
    // onElected runs on the timer thread just after the role changed. (More
    // than 3 when a loaded machine delayed a renewal past its deadline.)
    CHECK(test::waitFor([&] { return elections >= 3; }));
    ms.clear();  // before the store
}
