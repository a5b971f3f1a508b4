// The SQLite store's own tests: its made-up clock, its file (reopening, the
// schema, a SIGKILL mid-write). What every store does is in
// store_conformance_test.cpp, run against SQLite and etcd alike.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>

#include <sqlite3.h>

#include "orchestrator/state/store.hpp"
#include "store_support.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::state;
using namespace hull::state::testing;
using std::string_literals::operator""s;

namespace {

// A clock the test moves by hand.
struct FakeClock {
    std::shared_ptr<int64_t> ms = std::make_shared<int64_t>(1000000);
    std::function<int64_t()> fn() const {
        return [ms = ms] { return *ms; };
    }
    void advance(int64_t by) { *ms += by; }
};

std::unique_ptr<Store> openOrFail(const std::string& path, std::function<int64_t()> clock = {}) {
    auto s = openSqlite(path, std::move(clock));
    if (!s) FAIL("open " << path << ": " << s.error().message());
    return std::move(*s);
}

// A raw connection, to look at the file the way another tool would.
struct RawDb {
    sqlite3* db = nullptr;
    explicit RawDb(const std::string& path) { REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK); }
    ~RawDb() { sqlite3_close_v2(db); }
    int64_t scalar(const char* sql) {
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK);
        int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        return v;
    }
    std::string text(const char* sql) {
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK);
        std::string v;
        if (sqlite3_step(st) == SQLITE_ROW) v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return v;
    }
};

}  // namespace

TEST_CASE("state: compaction keeps the history small", "[state]") {
    test::TempDir dir("hull-state");
    const std::string path = dir / "state.db";
    {
        auto s = openOrFail(path);
        for (int i = 0; i < 50; ++i) ok(s->put("/k/" + std::to_string(i % 5), std::to_string(i)));
        ok(s->put("/gone", "x"));
        ok(s->deleteRange("/gone"));
        ok(s->compact(s->revision()));
        CHECK(getKey(*s, "/k/4")->value == "49");
    }
    RawDb raw(path);
    // One row per live key; the tombstone at the compacted revision stays for watchers.
    CHECK(raw.scalar("SELECT COUNT(*) FROM history") == 6);
}

TEST_CASE("state: leases expire on a made-up clock and take their keys", "[state]") {
    test::TempDir dir("hull-state");
    FakeClock clock;
    auto s = openOrFail(dir / "state.db", clock.fn());
    CHECK(errnoOf(s->grantLease(0)) == EINVAL);
    int64_t lease = ok(s->grantLease(10));
    CHECK(lease > 0);
    CHECK(s->revision() == 1);  // a grant makes no revision
    ok(s->put("/n/a", "1", lease));
    ok(s->put("/n/b", "1", lease));
    ok(s->put("/n/keep", "1"));
    CHECK(getKey(*s, "/n/a")->lease == lease);
    const int64_t before = s->revision();
    Recorder rec;
    ok(s->watch("/n/", prefixEnd("/n/"), 0, rec.fn()));

    clock.advance(9000);
    CHECK(ok(s->expireLeases()) == 0);
    CHECK(ok(s->keepAlive(lease)) == 10);  // 10 s from now
    clock.advance(9000);
    CHECK(ok(s->expireLeases()) == 0);
    CHECK(getKey(*s, "/n/a"));
    clock.advance(1000);  // 10 s since the keepAlive
    // Any call expires it first: this range sees the keys gone.
    CHECK(keysOf(ok(s->range("/n/", prefixEnd("/n/")))) == std::vector<std::string>{"/n/keep"});
    CHECK(s->revision() == before + 1);  // one revision for the lease's keys
    auto got = rec.take();
    REQUIRE(got.size() == 1);
    CHECK(brief(got[0]) == std::vector<std::string>{"D /n/a", "D /n/b"});

    CHECK(errnoOf(s->keepAlive(lease)) == kLeaseNotFound);
    CHECK(errnoOf(s->put("/n/c", "1", lease)) == kLeaseNotFound);
    CHECK(errnoOf(s->revokeLease(lease)) == kLeaseNotFound);

    // expireLeases says how many it revoked; a lease without keys makes no revision.
    int64_t empty = ok(s->grantLease(5));
    int64_t other = ok(s->grantLease(5));
    CHECK(other != empty);
    ok(s->put("/n/d", "1", other));
    const int64_t rev = s->revision();
    clock.advance(5000);
    CHECK(ok(s->expireLeases()) == 2);
    CHECK(s->revision() == rev + 1);
    CHECK_FALSE(getKey(*s, "/n/d"));
}

TEST_CASE("state: a put without the lease detaches the key", "[state]") {
    test::TempDir dir("hull-state");
    FakeClock clock;
    auto s = openOrFail(dir / "state.db", clock.fn());
    int64_t lease = ok(s->grantLease(1));
    ok(s->put("a", "1", lease));
    ok(s->put("a", "2"));
    CHECK(getKey(*s, "a")->lease == 0);
    clock.advance(1000);
    CHECK(ok(s->expireLeases()) == 1);
    CHECK(getKey(*s, "a")->value == "2");
}

TEST_CASE("state: reopen keeps keys, revisions, compaction and leases", "[state]") {
    test::TempDir dir("hull-state");
    const std::string path = dir / "state.db";
    FakeClock clock;
    int64_t lease = 0;
    {
        auto s = openOrFail(path, clock.fn());
        ok(s->put("/a", "1"));
        ok(s->put("/a", "2"));
        ok(s->put("/b", "1"));
        ok(s->compact(3));
        lease = ok(s->grantLease(10));
        ok(s->put("/leased", "1", lease));
        CHECK(s->revision() == 5);
        // A second opener, in this process or another, is refused.
        CHECK(errnoOf(openSqlite(path)) == EBUSY);
        clock.advance(8000);
    }
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    auto s = openOrFail(path, clock.fn());
    CHECK(s->revision() == 5);
    CHECK(*getKey(*s, "/a") == KeyValue{"/a", "2", 2, 3, 2, 0});
    CHECK(errnoOf(s->range("/a", "", 0, 2)) == kCompacted);
    CHECK(getKey(*s, "/a", 4)->value == "2");
    // The lease got a fresh TTL at the open: 8 s used before, 9 s more now.
    clock.advance(9000);
    CHECK(getKey(*s, "/leased"));
    clock.advance(1000);
    CHECK_FALSE(getKey(*s, "/leased"));
    CHECK(ok(s->put("/c", "1")) == 7);
    CHECK(ok(s->grantLease(1)) > lease);
}

TEST_CASE("state: a newer schema is refused", "[state]") {
    test::TempDir dir("hull-state");
    const std::string path = dir / "state.db";
    { auto s = openOrFail(path); }
    {
        RawDb raw(path);
        REQUIRE(sqlite3_exec(raw.db, "PRAGMA user_version = 2", nullptr, nullptr, nullptr) == SQLITE_OK);
    }
    auto s = openSqlite(path);
    REQUIRE_FALSE(s);
    CHECK(s.error().errnum() == EINVAL);
    CHECK(s.error().message().find("newer") != std::string::npos);
}

// The child writes and reports each acknowledged revision through a pipe; it
// is killed mid-write; the reopened store must have every acknowledged write
// and be consistent (revision = the newest history row, kv = history's latest).
TEST_CASE("state: SIGKILL mid-write loses no acknowledged write", "[state]") {
    std::mt19937 rng(std::random_device{}());
    test::TempDir dir("hull-state");
    const std::string path = dir / "state.db";
    struct Ack {
        int64_t revision;
        int32_t i;
    };
    auto keyOf = [](int i) { return "/k/" + std::to_string(i % 37); };
    std::map<int, int64_t> acked;  // i -> revision, over all rounds
    int next = 0;
    for (int round = 0; round < 3; ++round) {
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            // The child: no Catch2, no destructors; _exit only.
            close(fds[0]);
            auto s = openSqlite(path);
            if (!s) _exit(2);
            for (int i = next;; ++i) {
                // Plain puts, and txns that add and delete other keys, so the
                // history has multi-key revisions and tombstones.
                const std::string v = "v" + std::to_string(i);
                auto txn = [&](std::vector<Op> ops) {
                    return (*s)->txn({}, ops, {}).map([](const TxnResult& t) { return t.revision; });
                };
                const std::string tmp = "/tmp/" + std::to_string(i);
                Result<int64_t> rev = i % 3 == 0   ? (*s)->put(keyOf(i), v)
                                      : i % 3 == 1 ? txn({Op::put(keyOf(i), v), Op::put(tmp, "t")})
                                                   : txn({Op::put(keyOf(i), v), Op::del("/tmp/", prefixEnd("/tmp/"))});
                if (!rev) {
                    std::fprintf(stderr, "child: %s\n", rev.error().message().c_str());
                    _exit(3);
                }
                Ack a{*rev, i};
                if (write(fds[1], &a, sizeof a) != sizeof a) _exit(4);
            }
        }
        close(fds[1]);
        Ack a{};
        int got = 0;
        const int killAfter = std::uniform_int_distribution<int>(20, 120)(rng);
        while (got < killAfter && read(fds[0], &a, sizeof a) == sizeof a) {
            acked[a.i] = a.revision;
            ++got;
        }
        REQUIRE(kill(pid, SIGKILL) == 0);
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        INFO("round " << round << ", child status " << status);
        REQUIRE(WIFSIGNALED(status));
        // Acks written before the kill still count.
        while (read(fds[0], &a, sizeof a) == sizeof a) acked[a.i] = a.revision;
        close(fds[0]);
        REQUIRE(!acked.empty());

        auto s = openOrFail(path);
        {
            RawDb raw(path);
            CHECK(raw.text("PRAGMA integrity_check") == "ok");
            CHECK(raw.scalar("SELECT MAX(revision) FROM history") == s->revision());
            CHECK(raw.scalar("SELECT COUNT(*) FROM kv WHERE mod_revision > (SELECT value FROM meta WHERE name = "
                             "'revision')") == 0);
            // Every live key is its history's latest row, and every latest non-tombstone row is live.
            CHECK(raw.scalar("SELECT COUNT(*) FROM kv k WHERE NOT EXISTS (SELECT 1 FROM history h "
                             "WHERE h.key = k.key AND h.revision = k.mod_revision AND h.version = k.version "
                             "AND h.value = k.value)") == 0);
            CHECK(raw.scalar("SELECT COUNT(*) FROM history h WHERE h.version > 0 AND h.revision = (SELECT "
                             "MAX(revision) FROM history x WHERE x.key = h.key) AND NOT EXISTS (SELECT 1 FROM kv "
                             "WHERE kv.key = h.key)") == 0);
        }
        const int64_t lastAcked = acked.rbegin()->second;
        CHECK(s->revision() >= lastAcked);
        // Every acknowledged write is there, at its revision.
        for (const auto& [i, rev] : acked) {
            auto kv = getKey(*s, keyOf(i), rev);
            REQUIRE(kv);
            CHECK(kv->value == "v" + std::to_string(i));
            CHECK(kv->modRevision == rev);
        }
        next = acked.rbegin()->first + 1000;  // the next round's values differ
        // And it takes writes again, at the next revision.
        const int64_t before = s->revision();
        CHECK(ok(s->put("/after", std::to_string(round))) == before + 1);
    }
}

TEST_CASE("state: bench: 100,000 puts in one txn", "[.bench]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    constexpr int kPuts = 100000;
    std::vector<Op> ops;
    ops.reserve(kPuts);
    for (int i = 0; i < kPuts; ++i)
        ops.push_back(Op::put("/hull/placements/svc" + std::to_string(i % 1000) + "/" + std::to_string(i / 1000),
                              R"({"node":"node-)" + std::to_string(i % 997) + R"(","generation":3,"retiring":[]})"));
    for (int round = 0; round < 2; ++round) {  // creating, then rewriting every key
        auto t0 = std::chrono::steady_clock::now();
        auto r = ok(s->txn({}, ops, {}));
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double rate = kPuts / secs;
        std::printf("state bench: %d puts in one txn (%s) in %.3f s: %.0f puts/s\n", kPuts,
                    round ? "rewrite" : "create", secs, rate);
        CHECK(r.revision == 2 + round);
        CHECK(rate > 10000);
    }
    CHECK(ok(s->range("/hull/placements/", prefixEnd("/hull/placements/"), 1)).count == kPuts);
}
