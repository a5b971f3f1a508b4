#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <sqlite3.h>

#include "orchestrator/state/store.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::state;
using std::string_literals::operator""s;

namespace {

template <class T>
T ok(Result<T> r) {
    if (!r) FAIL(r.error().message());
    if constexpr (!std::is_void_v<T>) return std::move(*r);
}

template <class T>
int errnoOf(const Result<T>& r) {
    return r ? 0 : r.error().errnum();
}

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

std::optional<KeyValue> getKey(Store& s, const std::string& key, int64_t revision = 0) {
    auto r = ok(s.range(key, "", 0, revision));
    if (r.kvs.empty()) return std::nullopt;
    return r.kvs.front();
}

std::vector<std::string> keysOf(const RangeResult& r) {
    std::vector<std::string> out;
    for (const auto& kv : r.kvs) out.push_back(kv.key);
    return out;
}

// Collects watch responses (callbacks may run on any writer's thread).
struct Recorder {
    std::mutex mu;
    std::vector<WatchResponse> got;
    std::function<void(const WatchResponse&)> fn() {
        return [this](const WatchResponse& r) {
            std::lock_guard lk(mu);
            got.push_back(r);
        };
    }
    std::vector<WatchResponse> take() {
        std::lock_guard lk(mu);
        return std::exchange(got, {});
    }
};

// "P a=1" / "D a": a response's events in short.
std::vector<std::string> brief(const WatchResponse& r) {
    std::vector<std::string> out;
    for (const auto& e : r.events)
        out.push_back(e.type == Event::Type::Put ? "P " + e.kv.key + "=" + e.kv.value : "D " + e.kv.key);
    return out;
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

TEST_CASE("state: one revision for the store, versions per key", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    CHECK(s->revision() == 1);  // as a fresh etcd

    CHECK(ok(s->put("a", "1")) == 2);
    CHECK(*getKey(*s, "a") == KeyValue{"a", "1", 2, 2, 1, 0});
    CHECK(ok(s->put("a", "2")) == 3);
    CHECK(*getKey(*s, "a") == KeyValue{"a", "2", 2, 3, 2, 0});
    CHECK(ok(s->put("b", "x")) == 4);
    CHECK(getKey(*s, "a")->modRevision == 3);  // other keys keep theirs

    // A delete of nothing changes nothing.
    CHECK(ok(s->deleteRange("zz")) == 0);
    CHECK(s->revision() == 4);
    CHECK(ok(s->deleteRange("a")) == 1);
    CHECK(s->revision() == 5);
    CHECK_FALSE(getKey(*s, "a"));
    // Created again: createRevision and version start afresh.
    CHECK(ok(s->put("a", "3")) == 6);
    CHECK(*getKey(*s, "a") == KeyValue{"a", "3", 6, 6, 1, 0});

    // One delete of many keys is one revision.
    CHECK(ok(s->deleteRange("a", "\0"s)) == 2);
    CHECK(s->revision() == 7);
    CHECK(ok(s->range("\0"s, "\0"s)).kvs.empty());

    CHECK(errnoOf(s->put("", "x")) == EINVAL);
    CHECK(errnoOf(s->range("")) == EINVAL);
}

TEST_CASE("state: keys and values are bytes", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    const std::string key = "k\0\xff"s, value = "\0v\0\xfe"s;
    ok(s->put(key, value));
    ok(s->put("k", ""));
    ok(s->put("k\0"s, "z"));
    auto r = ok(s->range("k", prefixEnd("k")));
    REQUIRE(r.kvs.size() == 3);
    CHECK(keysOf(r) == std::vector<std::string>{"k", "k\0"s, key});  // bytewise order
    CHECK(r.kvs[0].value.empty());
    CHECK(r.kvs[2].value == value);
}

TEST_CASE("state: txn compare-and-swap", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    using C = Compare;

    // Create if absent: the first wins, the second sees the winner.
    auto create = [&](const std::string& v) {
        return ok(s->txn({C::createRevision("/lock", C::Op::Equal, 0)}, {Op::put("/lock", v)}, {Op::get("/lock")}));
    };
    auto first = create("one");
    CHECK(first.succeeded);
    CHECK(first.revision == 2);
    CHECK(first.ranges.empty());
    auto second = create("two");
    CHECK_FALSE(second.succeeded);
    CHECK(second.revision == 2);  // the failure branch only read
    REQUIRE(second.ranges.size() == 1);
    REQUIRE(second.ranges[0].kvs.size() == 1);
    CHECK(second.ranges[0].kvs[0].value == "one");
    CHECK(s->revision() == 2);

    // Update only if unchanged since read (modRevision).
    auto cas = [&](int64_t seen, const std::string& v) {
        return ok(s->txn({C::modRevision("/lock", C::Op::Equal, seen)}, {Op::put("/lock", v)}, {})).succeeded;
    };
    CHECK(cas(2, "three"));
    CHECK_FALSE(cas(2, "four"));  // stale
    CHECK(getKey(*s, "/lock")->value == "three");
    CHECK(s->revision() == 3);

    // Value compares; on a missing key they fail even against "".
    CHECK(ok(s->txn({C::valueOf("/lock", C::Op::Equal, "three")}, {}, {})).succeeded);
    CHECK_FALSE(ok(s->txn({C::valueOf("/nope", C::Op::Equal, "")}, {}, {})).succeeded);
    CHECK_FALSE(ok(s->txn({C::valueOf("/nope", C::Op::NotEqual, "x")}, {}, {})).succeeded);
    // Every compare must hold.
    CHECK_FALSE(ok(s->txn({C::version("/lock", C::Op::Equal, 2), C::version("/nope", C::Op::Equal, 1)}, {}, {}))
                    .succeeded);

    // A compare over a range: all keys in it must match; an empty range is a missing key.
    ok(s->put("/r/a", "1"));
    ok(s->put("/r/b", "1"));
    CHECK(ok(s->txn({C{"/r/", C::Target::Value, C::Op::Equal, 0, "1", prefixEnd("/r/")}}, {}, {})).succeeded);
    ok(s->put("/r/b", "2"));
    CHECK_FALSE(ok(s->txn({C{"/r/", C::Target::Value, C::Op::Equal, 0, "1", prefixEnd("/r/")}}, {}, {})).succeeded);
    CHECK(ok(s->txn({C{"/q/", C::Target::CreateRevision, C::Op::Equal, 0, "", prefixEnd("/q/")}}, {}, {})).succeeded);
}

TEST_CASE("state: a txn's writes share one revision and see each other", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    ok(s->put("/x/old", "o"));
    auto r = ok(s->txn(
        {}, {Op::put("/x/a", "1"), Op::put("/x/b", "2"), Op::del("/x/old"), Op::get("/x/", prefixEnd("/x/"))}, {}));
    CHECK(r.succeeded);
    CHECK(r.revision == 3);
    CHECK(s->revision() == 3);
    REQUIRE(r.ranges.size() == 1);
    CHECK(keysOf(r.ranges[0]) == std::vector<std::string>{"/x/a", "/x/b"});
    CHECK(getKey(*s, "/x/a")->modRevision == 3);
    CHECK(getKey(*s, "/x/b")->modRevision == 3);

    // A txn that only reads, or whose deletes find nothing, makes no revision.
    CHECK(ok(s->txn({}, {Op::get("/x/a"), Op::del("/nothing")}, {})).revision == 3);
    CHECK(s->revision() == 3);
}

TEST_CASE("state: a txn is all or nothing", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    ok(s->put("a", "1"));
    // The second put names a lease that does not exist: the first is undone.
    auto r = s->txn({}, {Op::put("a", "2"), Op::put("b", "2", 12345)}, {});
    CHECK(errnoOf(r) == kLeaseNotFound);
    CHECK(getKey(*s, "a")->value == "1");
    CHECK_FALSE(getKey(*s, "b"));
    CHECK(s->revision() == 2);

    // A branch writing one key twice is refused, even the branch not taken.
    CHECK(errnoOf(s->txn({}, {Op::put("a", "x"), Op::put("a", "y")}, {})) == EINVAL);
    CHECK(errnoOf(s->txn({}, {}, {Op::del("a", "c"), Op::put("b", "y")})) == EINVAL);
    CHECK(s->revision() == 2);
    // And the store goes on.
    CHECK(ok(s->put("a", "3")) == 3);
}

TEST_CASE("state: ranges, prefixes, limits", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    for (const char* k : {"/hull/nodes/n1", "/hull/nodes/n2", "/hull/placements/web/0", "/hull/placements/web/1",
                          "/hull/placements/web/2", "/hull/placements/webx/0", "/hull/services/web", "/other"})
        ok(s->put(k, "v"));

    auto web = ok(s->range("/hull/placements/web/", prefixEnd("/hull/placements/web/")));
    CHECK(keysOf(web) == std::vector<std::string>{"/hull/placements/web/0", "/hull/placements/web/1",
                                                  "/hull/placements/web/2"});
    CHECK(web.count == 3);
    CHECK_FALSE(web.more);
    CHECK(web.revision == 9);

    auto limited = ok(s->range("/hull/", prefixEnd("/hull/"), 2));
    CHECK(keysOf(limited) == std::vector<std::string>{"/hull/nodes/n1", "/hull/nodes/n2"});
    CHECK(limited.count == 7);
    CHECK(limited.more);
    auto exact = ok(s->range("/hull/", prefixEnd("/hull/"), 7));
    CHECK(exact.kvs.size() == 7);
    CHECK_FALSE(exact.more);

    // Paging on from the last key seen.
    auto next = ok(s->range("/hull/nodes/n2\0"s, prefixEnd("/hull/"), 2));
    CHECK(keysOf(next) == std::vector<std::string>{"/hull/placements/web/0", "/hull/placements/web/1"});

    CHECK(ok(s->range("/hull/services/", "\0"s)).count == 2);  // from there on: services/web and /other
    CHECK(ok(s->range("\0"s, "\0"s)).count == 8);              // everything
    CHECK(ok(s->range("/z", "/a")).kvs.empty());               // an empty range
    CHECK(ok(s->range("/hull/nodes/n3")).kvs.empty());
    CHECK(errnoOf(s->range("/a", "", -1)) == EINVAL);
}

TEST_CASE("state: range at an old revision", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    ok(s->put("/p/a", "a1"));  // 2
    ok(s->put("/p/b", "b1"));  // 3
    ok(s->put("/p/a", "a2"));  // 4
    ok(s->deleteRange("/p/b"));  // 5
    ok(s->put("/p/c", "c1"));  // 6
    ok(s->put("/p/b", "b2"));  // 7

    auto at = [&](int64_t rev) {
        std::vector<std::string> out;
        for (const auto& kv : ok(s->range("/p/", prefixEnd("/p/"), 0, rev)).kvs) out.push_back(kv.key + "=" + kv.value);
        return out;
    };
    CHECK(at(1).empty());
    CHECK(at(2) == std::vector<std::string>{"/p/a=a1"});
    CHECK(at(3) == std::vector<std::string>{"/p/a=a1", "/p/b=b1"});
    CHECK(at(4) == std::vector<std::string>{"/p/a=a2", "/p/b=b1"});
    CHECK(at(5) == std::vector<std::string>{"/p/a=a2"});
    CHECK(at(6) == std::vector<std::string>{"/p/a=a2", "/p/c=c1"});
    CHECK(at(7) == std::vector<std::string>{"/p/a=a2", "/p/b=b2", "/p/c=c1"});
    CHECK(at(0) == at(7));

    // The key as it was: its revisions and version then.
    CHECK(*getKey(*s, "/p/a", 3) == KeyValue{"/p/a", "a1", 2, 2, 1, 0});
    CHECK(*getKey(*s, "/p/b", 4) == KeyValue{"/p/b", "b1", 3, 3, 1, 0});
    CHECK(*getKey(*s, "/p/b", 7) == KeyValue{"/p/b", "b2", 7, 7, 1, 0});
    auto limited = ok(s->range("/p/", prefixEnd("/p/"), 1, 4));
    CHECK(limited.count == 2);
    CHECK(limited.more);
    CHECK(limited.revision == 7);  // the store's revision, as etcd's header

    CHECK(errnoOf(s->range("/p/a", "", 0, 8)) == kFutureRevision);
}

TEST_CASE("state: watch delivers each revision's changes once, in order", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    ok(s->put("/w/before", "x"));
    Recorder rec, prev;
    int64_t id = ok(s->watch("/w/", prefixEnd("/w/"), 0, rec.fn()));
    int64_t idPrev = ok(s->watch("/w/a", "", 0, prev.fn(), true));
    CHECK(id != idPrev);
    CHECK(rec.take().empty());  // from now on: nothing old

    ok(s->put("/w/a", "1"));                                                  // 3
    ok(s->put("/elsewhere", "1"));                                            // 4: not watched
    ok(s->txn({}, {Op::put("/w/a", "2"), Op::put("/w/b", "1"), Op::put("/x", "1")}, {}));  // 5
    ok(s->deleteRange("/w/", prefixEnd("/w/")));                               // 6

    auto got = rec.take();
    REQUIRE(got.size() == 3);
    CHECK(got[0].revision == 3);
    CHECK(brief(got[0]) == std::vector<std::string>{"P /w/a=1"});
    CHECK(got[0].events[0].kv == KeyValue{"/w/a", "1", 3, 3, 1, 0});
    CHECK(got[0].events[0].prev.modRevision == 0);  // not asked for
    CHECK(got[1].revision == 5);
    CHECK(brief(got[1]) == std::vector<std::string>{"P /w/a=2", "P /w/b=1"});
    CHECK(got[2].revision == 6);
    CHECK(brief(got[2]) == std::vector<std::string>{"D /w/a", "D /w/b", "D /w/before"});
    CHECK(got[2].events[0].kv == KeyValue{"/w/a", "", 0, 6, 0, 0});  // a delete: key and its revision
    for (const auto& r : got) CHECK_FALSE(r.canceled);

    auto withPrev = prev.take();
    REQUIRE(withPrev.size() == 3);
    CHECK(withPrev[0].events[0].prev.modRevision == 0);  // created: nothing before
    CHECK(withPrev[1].events[0].prev == KeyValue{"/w/a", "1", 3, 3, 1, 0});
    CHECK(withPrev[2].events[0].prev == KeyValue{"/w/a", "2", 3, 5, 2, 0});

    s->cancelWatch(id);
    s->cancelWatch(id);  // twice is harmless
    s->cancelWatch(12345);
    ok(s->put("/w/a", "3"));
    CHECK(rec.take().empty());
    CHECK(prev.take().size() == 1);
}

TEST_CASE("state: watch from an old revision replays history, then goes live", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    ok(s->put("/w/a", "1"));          // 2
    ok(s->put("/w/b", "1"));          // 3
    ok(s->put("/o", "1"));            // 4
    ok(s->txn({}, {Op::put("/w/a", "2"), Op::del("/w/b")}, {}));  // 5
    ok(s->put("/w/c", "1"));          // 6

    Recorder rec;
    ok(s->watch("/w/", prefixEnd("/w/"), 3, rec.fn(), true));
    auto got = rec.take();  // delivered before watch() returned
    REQUIRE(got.size() == 3);
    CHECK(got[0].revision == 3);
    CHECK(brief(got[0]) == std::vector<std::string>{"P /w/b=1"});
    CHECK(got[1].revision == 5);
    CHECK(brief(got[1]) == std::vector<std::string>{"P /w/a=2", "D /w/b"});
    CHECK(got[1].events[0].prev == KeyValue{"/w/a", "1", 2, 2, 1, 0});
    CHECK(got[1].events[1].prev == KeyValue{"/w/b", "1", 3, 3, 1, 0});
    CHECK(got[1].events[0].kv == KeyValue{"/w/a", "2", 2, 5, 2, 0});
    CHECK(got[2].revision == 6);
    CHECK(got[2].events[0].prev.modRevision == 0);

    ok(s->put("/w/d", "1"));  // 7: live, no gap, no repeat
    got = rec.take();
    REQUIRE(got.size() == 1);
    CHECK(got[0].revision == 7);

    // From the current revision: just that one; from a future one: nothing until then.
    Recorder cur, future;
    ok(s->watch("/w/d", "", 7, cur.fn()));
    CHECK(cur.take().size() == 1);
    ok(s->watch("/w/", prefixEnd("/w/"), 9, future.fn()));
    ok(s->put("/w/e", "1"));  // 8
    CHECK(future.take().empty());
    ok(s->put("/w/f", "1"));  // 9
    got = future.take();
    REQUIRE(got.size() == 1);
    CHECK(got[0].revision == 9);
}

TEST_CASE("state: compaction drops history, older reads and watches fail", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    ok(s->put("/c/a", "1"));     // 2
    ok(s->put("/c/b", "1"));     // 3
    ok(s->put("/c/a", "2"));     // 4
    ok(s->deleteRange("/c/b"));  // 5
    ok(s->put("/c/c", "1"));     // 6
    ok(s->deleteRange("/c/c"));  // 7
    ok(s->put("/c/a", "3"));     // 8

    ok(s->compact(5));
    // Below: gone, with etcd's error.
    auto old = s->range("/c/", prefixEnd("/c/"), 0, 4);
    CHECK(errnoOf(old) == kCompacted);
    // At and above: as before.
    auto at5 = ok(s->range("/c/", prefixEnd("/c/"), 0, 5));
    REQUIRE(at5.kvs.size() == 1);
    CHECK(at5.kvs[0] == KeyValue{"/c/a", "2", 2, 4, 2, 0});
    CHECK(keysOf(ok(s->range("/c/", prefixEnd("/c/"), 0, 6))) == std::vector<std::string>{"/c/a", "/c/c"});
    CHECK(ok(s->range("/c/", prefixEnd("/c/"), 0, 7)).kvs.size() == 1);

    // A watch from below the compaction is canceled with the revision to restart from.
    Recorder early;
    ok(s->watch("/c/", prefixEnd("/c/"), 4, early.fn()));
    auto got = early.take();
    REQUIRE(got.size() == 1);
    CHECK(got[0].canceled);
    CHECK(got[0].compactRevision == 5);
    CHECK(got[0].events.empty());
    ok(s->put("/c/z", "1"));  // 9
    CHECK(early.take().empty());  // canceled for good

    // From the compacted revision itself: every event from there, the delete at 5 too.
    Recorder from5;
    ok(s->watch("/c/", prefixEnd("/c/"), 5, from5.fn()));
    got = from5.take();
    REQUIRE(got.size() == 5);
    CHECK(brief(got[0]) == std::vector<std::string>{"D /c/b"});
    CHECK(got[0].revision == 5);
    CHECK(got[4].revision == 9);

    CHECK(errnoOf(s->compact(5)) == kCompacted);
    CHECK(errnoOf(s->compact(3)) == kCompacted);
    CHECK(errnoOf(s->compact(10)) == kFutureRevision);
    ok(s->compact(9));
    CHECK(errnoOf(s->range("/c/a", "", 0, 8)) == kCompacted);
    CHECK(getKey(*s, "/c/a", 9)->value == "3");
    CHECK(s->revision() == 9);  // compaction is no write
}

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

TEST_CASE("state: revoke deletes the lease's keys in one revision", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    int64_t lease = ok(s->grantLease(60));
    ok(s->put("/l/a", "1", lease));
    ok(s->put("/l/b", "1", lease));
    ok(s->put("/l/c", "1"));
    const int64_t rev = s->revision();
    ok(s->revokeLease(lease));
    CHECK(s->revision() == rev + 1);
    CHECK(keysOf(ok(s->range("/l/", prefixEnd("/l/")))) == std::vector<std::string>{"/l/c"});
    CHECK(errnoOf(s->keepAlive(lease)) == kLeaseNotFound);
    // Lease ids are not reused.
    CHECK(ok(s->grantLease(60)) > lease);
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

TEST_CASE("state: callbacks may write and cancel, their writes come after", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    std::vector<std::string> seen;
    int64_t selfId = 0;
    // On /in/x: write /out/x (a nested write) and, at the third, cancel itself.
    selfId = ok(s->watch("/in/", prefixEnd("/in/"), 0, [&](const WatchResponse& r) {
        for (const auto& e : r.events) {
            seen.push_back("in " + std::to_string(r.revision) + " " + e.kv.key);
            auto w = s->put("/out/" + e.kv.key.substr(4), "1");
            seen.push_back(w ? "wrote " + std::to_string(*w) : "failed " + w.error().message());
        }
        if (r.revision >= 6) s->cancelWatch(selfId);
    }));
    ok(s->watch("/", "\0"s, 0, [&](const WatchResponse& r) {
        for (const auto& e : r.events) seen.push_back("all " + std::to_string(r.revision) + " " + e.kv.key);
    }));
    ok(s->put("/in/a", "1"));  // 2, and /out/a at 3 from the callback
    ok(s->put("/in/b", "1"));  // 4, /out/b at 5
    ok(s->put("/in/c", "1"));  // 6, /out/c at 7, then canceled
    ok(s->put("/in/d", "1"));  // 8: the canceled watch sees nothing
    CHECK(seen == std::vector<std::string>{
                      "in 2 /in/a", "wrote 3", "all 2 /in/a", "all 3 /out/a",  //
                      "in 4 /in/b", "wrote 5", "all 4 /in/b", "all 5 /out/b",  //
                      "in 6 /in/c", "wrote 7", "all 6 /in/c", "all 7 /out/c",  //
                      "all 8 /in/d"});
}

TEST_CASE("state: writers on many threads, watchers see every revision in order", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    std::mutex mu;
    std::vector<int64_t> revisions;
    std::atomic<bool> overlap{false};
    std::atomic<int> inside{0};
    ok(s->watch("/t/", prefixEnd("/t/"), 0, [&](const WatchResponse& r) {
        if (inside.fetch_add(1) != 0) overlap = true;  // one callback at a time
        {
            std::lock_guard lk(mu);
            revisions.push_back(r.revision);
        }
        inside.fetch_sub(1);
    }));
    constexpr int kThreads = 4, kEach = 50;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i)
                if (!s->put("/t/" + std::to_string(t) + "/" + std::to_string(i), "v")) ++failures;
        });
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    CHECK_FALSE(overlap);
    std::lock_guard lk(mu);
    REQUIRE(revisions.size() == kThreads * kEach);
    for (size_t i = 0; i < revisions.size(); ++i) CHECK(revisions[i] == static_cast<int64_t>(i) + 2);
}

TEST_CASE("state: cancelWatch waits for a callback running on another thread", "[state]") {
    test::TempDir dir("hull-state");
    auto s = openOrFail(dir / "state.db");
    std::atomic<bool> entered{false}, release{false}, finished{false};
    int64_t id = ok(s->watch("/k", "", 0, [&](const WatchResponse&) {
        entered = true;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        finished = true;
    }));
    std::thread writer([&] { (void)s->put("/k", "1"); });
    REQUIRE(test::waitFor([&] { return entered.load(); }));
    std::thread releaser([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        release = true;
    });
    s->cancelWatch(id);
    CHECK(finished);  // not returned while the callback ran
    writer.join();
    releaser.join();
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
