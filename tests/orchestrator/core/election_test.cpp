// Leader election as a pure state machine, with made-up clocks.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>
#include <random>

#include "orchestrator/core/election.hpp"

using namespace hull::orchestrator::core;

namespace {

using Kind = ElectionAction::Kind;
const LeaderInfo kM1{"m1", "https://10.0.0.1:7443"};
const LeaderInfo kM2{"m2", "https://10.0.0.2:7443"};

LeaderKey absent(int64_t revision) { return {false, {}, 0, 0, revision}; }
LeaderKey heldBy(const LeaderInfo& who, int64_t lease, int64_t createRevision, int64_t revision) {
    return {true, who, createRevision, lease, revision};
}

std::vector<Kind> kinds(const std::vector<ElectionAction>& actions) {
    std::vector<Kind> out;
    for (const auto& a : actions) out.push_back(a.kind);
    return out;
}

bool has(const std::vector<ElectionAction>& actions, Kind kind) {
    for (const auto& a : actions)
        if (a.kind == kind) return true;
    return false;
}

// m1 elected at 1003 with lease 7 granted by a call sent at 1000: its lease is
// believed valid until 1000 + 1000 - 250 = 1750.
Election electedM1() {
    Election e(kM1);
    REQUIRE(kinds(e.poll(1000)) == std::vector<Kind>{Kind::Observe, Kind::GrantLease});
    e.keyRead(absent(1), 1001);
    e.granted(7, 1000, 1002);
    auto actions = e.poll(1002);
    REQUIRE(actions == std::vector<ElectionAction>{{Kind::Campaign, 7, 0, leaderValue(kM1)}});
    e.campaigned(7, true, heldBy(kM1, 7, 2, 2), 1002, 1003);
    REQUIRE(e.role(1003) == Role::Leader);
    REQUIRE(e.takeEvents() == std::vector<ElectionEvent>{{ElectionEvent::Kind::Elected, 2, ""}});
    return e;
}

}  // namespace

TEST_CASE("the leader key's value names the master and its URL", "[election]") {
    CHECK(leaderValue(kM1) == R"({"name":"m1","url":"https://10.0.0.1:7443"})");
    CHECK(parseLeaderValue(leaderValue(kM1)) == kM1);
    // A value hull did not write is named by its text.
    CHECK(parseLeaderValue("someone else") == LeaderInfo{"someone else", ""});
    CHECK(parseLeaderValue(R"({"url": "x"})") == LeaderInfo{R"({"url": "x"})", ""});
    CHECK(std::string(roleName(Role::Follower)) == "follower");
}

TEST_CASE("a clean election: read, grant, create if absent, and the loser follows", "[election]") {
    Election e = electedM1();
    CHECK(e.fencingRevision(1003) == 2);
    CHECK(e.leader(1003) == kM1);
    CHECK(e.lease() == 7);
    CHECK(e.leaseValidUntilMs() == 1750);
    // Nothing more to do until the first renewal, TTL/4 after the grant was sent.
    CHECK(e.poll(1003).empty());
    CHECK(e.nextWakeMs() == 1250);

    // m2 raced m1 for the absent key and lost: it follows m1, and its lease is kept alive.
    Election f(kM2);
    CHECK(kinds(f.poll(1000)) == std::vector<Kind>{Kind::Observe, Kind::GrantLease});
    CHECK(f.role(1000) == Role::Candidate);
    f.keyRead(absent(1), 1001);
    f.granted(8, 1000, 1002);
    CHECK(kinds(f.poll(1002)) == std::vector<Kind>{Kind::Campaign});
    f.campaigned(8, false, heldBy(kM1, 7, 2, 2), 1002, 1004);
    CHECK(f.role(1004) == Role::Follower);
    CHECK(f.leader(1004) == kM1);
    CHECK(f.fencingRevision(1004) == 0);
    CHECK(f.takeEvents().empty());
    CHECK(f.poll(1100).empty());
    CHECK(kinds(f.poll(1250)) == std::vector<Kind>{Kind::KeepAlive});
}

TEST_CASE("a candidate that finds the key held follows without a campaign", "[election]") {
    Election e(kM2);
    e.poll(1000);
    e.granted(8, 1000, 1002);
    CHECK(e.poll(1002).empty());  // the key is not known yet: no campaign
    e.keyRead(heldBy(kM1, 7, 2, 5), 1003);
    CHECK(e.role(1003) == Role::Follower);
    CHECK(e.poll(1003).empty());
    // A read that fails is retried after retryMs; no campaign on unknown ground.
    Election g(kM2);
    g.poll(1000);
    g.granted(9, 1000, 1001);
    g.readFailed("connection refused", 1002);
    CHECK(g.lastError() == "read the leader key: connection refused");
    CHECK(g.poll(1100).empty());
    CHECK(g.nextWakeMs() == 1250);
    CHECK(kinds(g.poll(1252)) == std::vector<Kind>{Kind::Observe, Kind::KeepAlive});
}

TEST_CASE("renewals keep a leader leading, each one moving its deadline", "[election]") {
    Election e = electedM1();
    int64_t now = 1003;
    for (int i = 0; i < 40; ++i) {
        const int64_t due = e.nextWakeMs();
        // Until the renewal is due the leader leads and has nothing to do.
        CHECK(e.role(due - 1) == Role::Leader);
        now = due;
        auto actions = e.poll(now);
        REQUIRE(actions == std::vector<ElectionAction>{{Kind::KeepAlive, 7}});
        e.renewed(7, 1, now, now + 5);
        CHECK(e.leaseValidUntilMs() == now + 750);
        CHECK(e.role(now + 5) == Role::Leader);
    }
    CHECK(now == 1000 + 40 * 250);
    CHECK(e.fencingRevision(now) == 2);
    CHECK(e.reportedTtlSeconds() == 1);
    CHECK(e.takeEvents().empty());
}

TEST_CASE("a renewal that fails makes the leader step down at once, revoke and grant anew", "[election]") {
    Election e = electedM1();
    REQUIRE(kinds(e.poll(1250)) == std::vector<Kind>{Kind::KeepAlive});
    e.renewFailed(7, "connection refused", 1250, 1260);
    // The lease is valid by the clock until 1750, but the leader no longer leads.
    CHECK(e.role(1260) == Role::Candidate);
    CHECK(e.fencingRevision(1260) == 0);
    CHECK(e.lease() == 0);
    CHECK(e.takeEvents() == std::vector<ElectionEvent>{
                                {ElectionEvent::Kind::Deposed, 2, "renewal of lease 7 failed: connection refused"}});
    CHECK(e.poll(1260) == std::vector<ElectionAction>{{Kind::Revoke, 7}, {Kind::GrantLease, 0, 1}});
    // The new lease does not win back the key the old one may still hold.
    e.granted(9, 1260, 1262);
    CHECK(e.poll(1262).empty());
    CHECK(e.role(1262) == Role::Candidate);  // the key, as last seen, is held by the dropped lease: nobody leads
    // etcd answers a keepalive of an unknown lease with TTL 0: that is a failure too.
    e.keyChanged(absent(3), 1263);  // the revoke deleted it
    REQUIRE(kinds(e.poll(1263)) == std::vector<Kind>{Kind::Campaign});
    e.campaigned(9, true, heldBy(kM1, 9, 4, 4), 1263, 1264);
    CHECK(e.role(1264) == Role::Leader);
    CHECK(e.fencingRevision(1264) == 4);
    REQUIRE(kinds(e.poll(1510)) == std::vector<Kind>{Kind::KeepAlive});
    e.renewed(9, 0, 1510, 1512);
    CHECK(e.role(1512) == Role::Candidate);
    auto events = e.takeEvents();
    REQUIRE(events.size() == 2);
    CHECK(events[1] == ElectionEvent{ElectionEvent::Kind::Deposed, 4,
                                     "lease 9 is gone (its renewal reported TTL 0)"});
}

TEST_CASE("a slow renewal makes the leader step down before the TTL could run out", "[election]") {
    Election e = electedM1();
    REQUIRE(kinds(e.poll(1250)) == std::vector<Kind>{Kind::KeepAlive});
    // No answer. The last acknowledged call (the grant) was sent at 1000: etcd
    // processed it no earlier, so it cannot expire the lease before 2000. The
    // leader stops believing at 1750, even if nothing polls it then.
    CHECK(e.nextWakeMs() == 1750);
    CHECK(e.role(1749) == Role::Leader);
    CHECK(e.role(1750) == Role::Candidate);
    CHECK(e.fencingRevision(1750) == 0);
    CHECK(e.poll(1750) == std::vector<ElectionAction>{{Kind::Revoke, 7}, {Kind::GrantLease, 0, 1}});
    CHECK(e.takeEvents() ==
          std::vector<ElectionEvent>{{ElectionEvent::Kind::Deposed, 2,
                                      "no renewal of lease 7 acknowledged within 0.75s of sending it "
                                      "(TTL 1s less a margin of 0.25s)"}});
    // The late answer revives nothing.
    e.renewed(7, 1, 1250, 1800);
    CHECK(e.role(1800) == Role::Candidate);
    CHECK(e.lease() == 0);
    CHECK(e.takeEvents().empty());
}

TEST_CASE("an acknowledgement that arrives after the deadline does not extend it", "[election]") {
    Election e = electedM1();
    REQUIRE(kinds(e.poll(1250)) == std::vector<Kind>{Kind::KeepAlive});
    // Nobody polled at 1750; the answer comes at 1760: by then the lease was
    // lost (no acknowledgement by 1750), whatever the answer says.
    e.renewed(7, 1, 1250, 1760);
    CHECK(e.role(1760) == Role::Candidate);
    CHECK(e.lease() == 0);
    REQUIRE(e.takeEvents().size() == 1);
    // An answer just in time does extend it, from when its call was sent.
    Election f = electedM1();
    f.poll(1250);
    f.renewed(7, 1, 1250, 1749);
    CHECK(f.role(1749) == Role::Leader);
    CHECK(f.leaseValidUntilMs() == 2000);
    CHECK(f.role(1999) == Role::Leader);
    CHECK(f.role(2000) == Role::Candidate);
}

TEST_CASE("a TTL smaller than asked for is believed, a larger one is not", "[election]") {
    Election e = electedM1();
    e.poll(1250);
    e.renewed(7, 5, 1250, 1260);  // etcd raised the TTL to its minimum
    CHECK(e.reportedTtlSeconds() == 5);
    CHECK(e.leaseValidUntilMs() == 2000);  // still from the 1 s asked for
    ElectionOptions opts;
    opts.ttlSeconds = 3;
    Election f(kM1, opts);
    f.poll(1000);
    f.keyRead(absent(1), 1000);
    f.granted(7, 1000, 1001);
    CHECK(f.leaseValidUntilMs() == 1000 + 3000 - 250);
    f.poll(1001);
    f.campaigned(7, true, heldBy(kM1, 7, 2, 2), 1001, 1002);
    f.poll(1250);
    f.renewed(7, 1, 1250, 1260);
    CHECK(f.leaseValidUntilMs() == 1250 + 1000 - 250);
    CHECK(f.role(1999) == Role::Leader);
    CHECK(f.role(2000) == Role::Candidate);
}

TEST_CASE("a leader whose key is deleted or taken steps down and keeps its lease", "[election]") {
    Election e = electedM1();
    e.keyChanged(absent(3), 1100);
    CHECK(e.role(1100) == Role::Candidate);
    CHECK(e.takeEvents() == std::vector<ElectionEvent>{
                                {ElectionEvent::Kind::Deposed, 2, "the leader key was deleted (revision 3)"}});
    // Its lease is fine: it campaigns again at once, with it.
    CHECK(e.poll(1100) == std::vector<ElectionAction>{{Kind::Campaign, 7, 0, leaderValue(kM1)}});
    e.campaigned(7, false, heldBy(kM2, 8, 4, 4), 1100, 1101);
    CHECK(e.role(1101) == Role::Follower);
    CHECK(e.leader(1101) == kM2);

    Election f = electedM1();
    f.keyChanged(absent(3), 1100);
    f.keyChanged(heldBy(kM2, 8, 4, 4), 1101);
    CHECK(f.takeEvents().size() == 1);
    CHECK(f.poll(1101).empty());  // held: no campaign
    CHECK(f.role(1101) == Role::Follower);
    // An older observation arriving late changes nothing.
    f.keyChanged(absent(3), 1102);
    CHECK(f.role(1102) == Role::Follower);
    CHECK(f.leader(1102) == kM2);
}

TEST_CASE("a follower takes over once the key is deleted: by a resignation or an expiry", "[election]") {
    Election m1 = electedM1();
    Election m2(kM2);
    m2.poll(1000);
    m2.keyRead(heldBy(kM1, 7, 2, 2), 1001);
    m2.granted(8, 1000, 1002);
    CHECK(m2.poll(1002).empty());
    CHECK(m2.role(1002) == Role::Follower);

    SECTION("resignation") {
        CHECK(m1.resign(1100) == 7);  // the caller revokes it: the key goes at once
        CHECK(m1.role(1100) == Role::Candidate);
        CHECK(m1.takeEvents() == std::vector<ElectionEvent>{{ElectionEvent::Kind::Deposed, 2, "resigned"}});
        m1.keyChanged(absent(3), 1101);
        CHECK(m1.poll(1101).empty());  // a resigned master never campaigns, nor grants
        CHECK(m1.poll(5000).empty());
        m2.keyChanged(absent(3), 1101);
        CHECK(m2.role(1101) == Role::Candidate);
        REQUIRE(m2.poll(1101) == std::vector<ElectionAction>{{Kind::Campaign, 8, 0, leaderValue(kM2)}});
        m2.campaigned(8, true, heldBy(kM2, 8, 4, 4), 1101, 1102);
        CHECK(m2.role(1102) == Role::Leader);
        CHECK(m2.fencingRevision(1102) == 4);
        m1.keyChanged(heldBy(kM2, 8, 4, 4), 1102);
        CHECK(m1.role(1102) == Role::Follower);
        CHECK(m1.leader(1102) == kM2);
    }
    SECTION("expiry") {
        // m1 dies: nothing more from it. m2 renews its own lease meanwhile;
        // etcd deletes m1's key once its lease runs out.
        int64_t now = 1002;
        for (; now < 2500; now += 250) {
            auto a = m2.poll(now);
            if (has(a, Kind::KeepAlive)) m2.renewed(8, 1, now, now + 2);
            CHECK(m2.role(now + 2) == Role::Follower);
        }
        m2.keyChanged(absent(3), now);
        auto a = m2.poll(now);
        REQUIRE(has(a, Kind::Campaign));
        m2.campaigned(8, true, heldBy(kM2, 8, 4, 4), now, now + 1);
        CHECK(m2.role(now + 1) == Role::Leader);
    }
}

TEST_CASE("a won campaign overtaken by a later watch event elects nobody", "[election]") {
    Election e(kM1);
    e.poll(1000);
    e.keyRead(absent(1), 1001);
    e.granted(7, 1000, 1002);
    REQUIRE(kinds(e.poll(1002)) == std::vector<Kind>{Kind::Campaign});
    // The key was created (rev 2) and deleted again (rev 3, an operator) before the txn's answer came.
    e.keyChanged(absent(3), 1003);
    e.campaigned(7, true, heldBy(kM1, 7, 2, 2), 1002, 1004);
    CHECK(e.role(1004) == Role::Candidate);
    CHECK(e.takeEvents().empty());
    CHECK(kinds(e.poll(1004)) == std::vector<Kind>{Kind::Campaign});
}

TEST_CASE("a key held by the master's own lease is its own, even when the txn's answer was lost", "[election]") {
    Election e(kM1);
    e.poll(1000);
    e.keyRead(absent(1), 1001);
    e.granted(7, 1000, 1002);
    e.poll(1002);
    e.campaignFailed(7, "connection reset", 1002, 1010);
    CHECK(e.lastError() == "campaign: connection reset");
    CHECK(e.role(1010) == Role::Candidate);
    CHECK(e.poll(1100).empty());  // retried after retryMs
    // The txn did go through: the watch says so.
    e.keyChanged(heldBy(kM1, 7, 2, 2), 1150);
    CHECK(e.role(1150) == Role::Leader);
    CHECK(e.fencingRevision(1150) == 2);
    CHECK(e.poll(1300) == std::vector<ElectionAction>{{Kind::KeepAlive, 7}});
    // A dropped lease's key is not its own.
    Election f(kM1);
    f.poll(1000);
    f.granted(7, 1000, 1002);
    f.renewFailed(7, "timeout", 1002, 1003);
    f.keyRead(heldBy(kM1, 7, 2, 2), 1004);
    CHECK(f.role(1004) == Role::Candidate);
    CHECK(f.poll(1004) == std::vector<ElectionAction>{{Kind::Revoke, 7}, {Kind::GrantLease, 0, 1}});
}

TEST_CASE("a grant that fails is retried, one that comes back too late is revoked", "[election]") {
    Election e(kM1);
    e.poll(1000);
    e.keyRead(absent(1), 1000);
    e.grantFailed("etcdserver: no leader", 1000, 1100);
    CHECK(e.poll(1200).empty());
    CHECK(e.nextWakeMs() == 1350);
    REQUIRE(e.poll(1350) == std::vector<ElectionAction>{{Kind::GrantLease, 0, 1}});
    e.granted(7, 1350, 2200);  // valid until 2100 only: useless
    CHECK(e.lease() == 0);
    CHECK(e.poll(2200) == std::vector<ElectionAction>{{Kind::Revoke, 7}, {Kind::GrantLease, 0, 1}});
    // After a resignation a grant's answer is revoked at once.
    Election f(kM1);
    f.poll(1000);
    CHECK(f.resign(1001) == 0);
    f.granted(7, 1000, 1002);
    CHECK(f.poll(1002) == std::vector<ElectionAction>{{Kind::Revoke, 7}});
    CHECK(f.poll(5000).empty());
}

TEST_CASE("a lost watch is read again before any campaign", "[election]") {
    Election e(kM2);
    e.poll(1000);
    e.keyRead(heldBy(kM1, 7, 2, 2), 1001);
    e.granted(8, 1000, 1002);
    e.watchLost(1100);
    CHECK(e.role(1100) == Role::Follower);  // the last known leader still
    CHECK(e.poll(1100) == std::vector<ElectionAction>{{Kind::Observe}});
    e.keyRead(absent(9), 1105);
    CHECK(kinds(e.poll(1105)) == std::vector<Kind>{Kind::Campaign});
}

// Three masters on a simulated etcd: calls take random times (some very long),
// some are lost, masters are partitioned from etcd and killed. etcd processes a
// call somewhere between its sending and its answer, expires leases on its own
// clock (checked every 500 ms, as its lessor does) and feeds watches late. At
// every millisecond: at most one master believes it leads, and the one that
// does holds the key with a lease etcd cannot expire within the margin.
TEST_CASE("simulated: never two leaders, and a leader's lease outlives its belief by the margin", "[election]") {
    struct Etcd {
        int64_t revision = 1;
        std::optional<LeaderKey> key;  // present
        std::map<int64_t, int64_t> leases;  // id -> expiry
        int64_t nextLease = 100;
        std::vector<std::pair<int64_t, LeaderKey>> changes;  // (when, key) in revision order

        void setKey(std::optional<LeaderKey> k, int64_t now) {
            ++revision;
            key = std::move(k);
            LeaderKey seen = key ? *key : absent(revision);
            seen.revision = revision;
            changes.emplace_back(now, seen);
        }
        void revoke(int64_t lease, int64_t now) {
            leases.erase(lease);
            if (key && key->lease == lease) setKey(std::nullopt, now);
        }
        LeaderKey read() const {
            LeaderKey k = key ? *key : absent(revision);
            k.revision = revision;
            return k;
        }
    };
    struct Call {
        ElectionAction action;
        int64_t sent = 0, process = 0, answer = 0;
        bool lost = false;        // never reached etcd
        bool answerLost = false;  // the caller sees a failure, whatever etcd did
        bool ok = false, won = false;
        int64_t lease = 0, ttl = 0;
        LeaderKey key;
    };
    struct Master {
        std::unique_ptr<Election> e;
        std::vector<Call> calls;
        int64_t watchFrom = -1;  // revision; -1: no watch
        size_t delivered = 0;    // changes delivered
        int64_t watchDelay = 0;
        bool dead = false;
        int64_t cutUntil = 0;  // partitioned from etcd until
        int64_t restartAt = 0;
    };

    std::mt19937_64 rng(GENERATE(1, 2, 3, 4, 5));
    auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    const ElectionOptions opts;
    Etcd etcd;
    std::vector<Master> ms(3);
    const std::vector<LeaderInfo> who{{"m1", "u1"}, {"m2", "u2"}, {"m3", "u3"}};
    for (size_t i = 0; i < ms.size(); ++i) ms[i].e = std::make_unique<Election>(who[i], opts);

    int64_t ledMs = 0, elections = 0;
    const int64_t end = 120'000;
    for (int64_t t = 1; t <= end; ++t) {
        // etcd's lessor.
        if (t % 500 == 0)
            for (auto it = etcd.leases.begin(); it != etcd.leases.end();) {
                if (it->second > t) {
                    ++it;
                    continue;
                }
                int64_t id = it->first;
                ++it;
                etcd.revoke(id, t);
            }
        // Disruptions, now and then.
        if (uniform(0, 3000) == 0) {
            Master& m = ms[uniform(0, 2)];
            if (!m.dead) {
                if (uniform(0, 1)) {
                    m.cutUntil = t + uniform(200, 3000);
                } else {
                    m.dead = true;
                    m.restartAt = t + uniform(500, 4000);
                }
            }
        }
        for (size_t i = 0; i < ms.size(); ++i) {
            Master& m = ms[i];
            if (m.dead) {
                if (t < m.restartAt) continue;
                // A new process: its calls in flight were processed or not; it knows nothing.
                m = Master{};
                m.e = std::make_unique<Election>(who[i], opts);
            }
            // etcd processes the calls that reached it.
            for (Call& c : m.calls) {
                if (c.process != t || c.lost) continue;
                const auto& a = c.action;
                switch (a.kind) {
                    case Kind::Observe:
                        c.key = etcd.read();
                        c.ok = true;
                        break;
                    case Kind::GrantLease:
                        c.lease = etcd.nextLease++;
                        etcd.leases[c.lease] = t + a.ttlSeconds * 1000;
                        c.ok = true;
                        break;
                    case Kind::KeepAlive:
                        if (etcd.leases.count(a.lease)) {
                            etcd.leases[a.lease] = t + 1000;
                            c.ttl = 1;
                        }
                        c.ok = true;  // TTL 0 when gone
                        break;
                    case Kind::Campaign:
                        if (!etcd.leases.count(a.lease)) break;  // lease not found: an error
                        c.ok = true;
                        if (!etcd.key) {
                            etcd.setKey(LeaderKey{true, parseLeaderValue(a.value), etcd.revision + 1, a.lease, 0}, t);
                            c.won = true;
                        }
                        c.key = etcd.read();
                        break;
                    case Kind::Revoke: etcd.revoke(a.lease, t); break;
                }
            }
            // Answers.
            for (Call& c : m.calls) {
                if (c.answer != t) continue;
                Election& e = *m.e;
                const auto& a = c.action;
                const bool ok = c.ok && !c.answerLost;
                switch (a.kind) {
                    case Kind::Observe:
                        if (ok) {
                            m.watchFrom = c.key.revision;
                            m.delivered = 0;
                            e.keyRead(c.key, t);
                        } else {
                            e.readFailed("lost", t);
                        }
                        break;
                    case Kind::GrantLease:
                        if (ok) e.granted(c.lease, c.sent, t);
                        else e.grantFailed("lost", c.sent, t);
                        break;
                    case Kind::KeepAlive:
                        if (ok) e.renewed(a.lease, c.ttl, c.sent, t);
                        else e.renewFailed(a.lease, "lost", c.sent, t);
                        break;
                    case Kind::Campaign:
                        if (ok) e.campaigned(a.lease, c.won, c.key, c.sent, t);
                        else e.campaignFailed(a.lease, "lost", c.sent, t);
                        break;
                    case Kind::Revoke: break;
                }
            }
            std::erase_if(m.calls, [&](const Call& c) { return c.answer <= t; });
            // The watch, late, and not across a partition.
            if (m.watchFrom >= 0 && t >= m.cutUntil)
                for (; m.delivered < etcd.changes.size(); ++m.delivered) {
                    const auto& [when, k] = etcd.changes[m.delivered];
                    if (when + m.watchDelay > t) break;
                    if (k.revision > m.watchFrom) m.e->keyChanged(k, t);
                }
            if (uniform(0, 2000) == 0) m.watchDelay = uniform(0, 300);
            // New calls.
            for (ElectionAction& a : m.e->poll(t)) {
                Call c{std::move(a), t};
                const bool slow = uniform(0, 50) == 0;
                c.process = t + (slow ? uniform(0, 900) : uniform(0, 10));
                c.answer = c.process + (slow ? uniform(0, 900) : uniform(0, 10));
                if (t < m.cutUntil || uniform(0, 200) == 0) {
                    // Lost: it fails after a timeout, having reached etcd or not.
                    c.answer = t + uniform(100, 2000);
                    c.answerLost = true;
                    c.lost = t < m.cutUntil || uniform(0, 1) == 0;
                    c.process = std::min(c.process, c.answer);
                }
                m.calls.push_back(std::move(c));
            }
        }
        // The property.
        int leaders = 0;
        for (Master& m : ms) {
            if (m.dead || m.e->role(t) != Role::Leader) continue;
            ++leaders;
            const int64_t lease = m.e->lease();
            INFO("t=" << t << " " << m.e->self().name << " lease " << lease);
            REQUIRE(etcd.leases.count(lease) == 1);
            REQUIRE(t + opts.marginMs < etcd.leases[lease]);
            REQUIRE(etcd.key.has_value());
            REQUIRE(etcd.key->lease == lease);
            REQUIRE(etcd.key->createRevision == m.e->fencingRevision(t));
        }
        REQUIRE(leaders <= 1);
        ledMs += leaders;
        for (Master& m : ms)
            for (const auto& ev : m.e->takeEvents()) elections += ev.kind == ElectionEvent::Kind::Elected;
    }
    // And the cluster is led most of the time, through a few dozen elections.
    CHECK(ledMs > end * 7 / 10);
    CHECK(elections > 10);
}
