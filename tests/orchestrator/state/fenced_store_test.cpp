// The fenced store over SQLite: a deposed leader's writes change nothing, the
// leader's behave as the inner store's.
#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "orchestrator/state/fenced_store.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::state;
using std::string_literals::operator""s;

namespace {

const std::string kKey = "/hull/leader";
const std::string kM1 = R"({"name":"m1","url":"https://10.0.0.1:7443"})";
const std::string kM2 = R"({"name":"m2","url":"https://10.0.0.2:7443"})";

template <class T>
T ok(Result<T> r) {
    if (!r) FAIL(r.error().message());
    if constexpr (!std::is_void_v<T>) return std::move(*r);
}

template <class T>
int errnoOf(const Result<T>& r) {
    return r ? 0 : r.error().errnum();
}

std::unique_ptr<Store> open(const std::string& path) {
    auto s = openSqlite(path, [] { return int64_t(1'000'000); });
    REQUIRE(s);
    return std::move(*s);
}

// The leader key created by the holder of a new lease, as the election does;
// returns its create revision.
int64_t elect(Store& s, const std::string& who) {
    const int64_t lease = ok(s.grantLease(60));
    auto t = ok(s.txn({Compare::createRevision(kKey, Compare::Op::Equal, 0)}, {Op::put(kKey, who, lease)}, {}));
    REQUIRE(t.succeeded);
    return t.revision;
}

std::vector<KeyValue> everything(Store& s) { return ok(s.range("\0"s, "\0"s)).kvs; }

// Passes calls through, and runs a hook after the Nth txn (1-based): another
// writer getting in between two txns of the fenced store.
struct Meddler : Store {
    Store& inner;
    int txns = 0, after = 0;
    std::function<void()> hook;
    explicit Meddler(Store& s) : inner(s) {}
    Result<RangeResult> range(const std::string& k, const std::string& e, int64_t l, int64_t r) override {
        return inner.range(k, e, l, r);
    }
    Result<int64_t> put(const std::string& k, const std::string& v, int64_t l) override { return inner.put(k, v, l); }
    Result<int64_t> deleteRange(const std::string& k, const std::string& e) override { return inner.deleteRange(k, e); }
    Result<TxnResult> txn(const std::vector<Compare>& c, const std::vector<Op>& s,
                          const std::vector<Op>& f) override {
        auto r = inner.txn(c, s, f);
        if (++txns == after && hook) hook();
        return r;
    }
    Result<int64_t> watch(const std::string& k, const std::string& e, int64_t from,
                          std::function<void(const WatchResponse&)> cb, bool prev) override {
        return inner.watch(k, e, from, std::move(cb), prev);
    }
    void cancelWatch(int64_t id) override { inner.cancelWatch(id); }
    Result<int64_t> grantLease(int64_t ttl) override { return inner.grantLease(ttl); }
    Result<int64_t> keepAlive(int64_t l) override { return inner.keepAlive(l); }
    Result<void> revokeLease(int64_t l) override { return inner.revokeLease(l); }
    Result<int64_t> expireLeases() override { return inner.expireLeases(); }
    Result<void> compact(int64_t r) override { return inner.compact(r); }
    int64_t revision() const override { return inner.revision(); }
};

}  // namespace

TEST_CASE("fenced: the leader's writes have the inner store's results", "[state][fenced]") {
    test::TempDir dir("hull-fenced");
    // Two stores in the same state: one written directly, one through the fence.
    auto plain = open(dir / "plain.db");
    auto inner = open(dir / "fenced.db");
    const int64_t term = elect(*plain, kM1);
    REQUIRE(elect(*inner, kM1) == term);
    FencedStore fenced(*inner, kKey, [term] { return term; });
    CHECK(fenced.revision() == plain->revision());

    using Step = std::function<std::string(Store&)>;
    auto show = [](const auto& r) -> std::string {
        if (!r) return "error " + std::to_string(r.error().errnum());
        return "ok";
    };
    auto txnText = [&](const Result<TxnResult>& r) -> std::string {
        if (!r) return show(r);
        std::string s = (r->succeeded ? "then" : "else") + (" @" + std::to_string(r->revision));
        for (const auto& rr : r->ranges) {
            s += " [";
            for (const auto& kv : rr.kvs) s += kv.key + "=" + kv.value + ",";
            s += " count " + std::to_string(rr.count) + (rr.more ? " more" : "") + "]";
        }
        return s;
    };
    const int64_t lease = ok(plain->grantLease(30));
    REQUIRE(ok(inner->grantLease(30)) == lease);
    std::vector<Step> steps{
        [](Store& s) { return std::to_string(ok(s.put("a", "1"))); },
        [](Store& s) { return std::to_string(ok(s.put("a", "2"))); },
        [&](Store& s) { return std::to_string(ok(s.put("b", "x", lease))); },
        [&](Store& s) { return show(s.put("c", "x", 999)); },  // no such lease
        [&](Store& s) { return show(s.put("", "x")); },
        [](Store& s) { return std::to_string(ok(s.put("p/1", "x"))); },
        [](Store& s) { return std::to_string(ok(s.put("p/2", "y"))); },
        [](Store& s) { return std::to_string(ok(s.put("p/3", "x"))); },
        [](Store& s) { return std::to_string(ok(s.deleteRange("zz"))) + " @" + std::to_string(s.revision()); },
        [](Store& s) { return std::to_string(ok(s.deleteRange("a"))) + " @" + std::to_string(s.revision()); },
        [](Store& s) { return std::to_string(ok(s.put("a", "3"))); },
        [&](Store& s) { return show(s.deleteRange("")); },
        // Compares that hold, and ones that fail with a failure branch that reads.
        [&](Store& s) {
            return txnText(s.txn({Compare::valueOf("a", Compare::Op::Equal, "3")},
                                 {Op::put("t", "1"), Op::get("p/", prefixEnd("p/"), 2)}, {Op::get("a")}));
        },
        [&](Store& s) {
            return txnText(s.txn({Compare::valueOf("a", Compare::Op::Equal, "nope")}, {Op::put("t", "2")},
                                 {Op::get("a"), Op::get("p/", prefixEnd("p/"))}));
        },
        // A failure branch that writes.
        [&](Store& s) {
            return txnText(s.txn({Compare::version("a", Compare::Op::Greater, 5)}, {Op::put("t", "3")},
                                 {Op::put("u", "1"), Op::del("p/1"), Op::get("u")}));
        },
        // Range compares: one key of the range fails; an empty range fails.
        [&](Store& s) {
            Compare c = Compare::valueOf("p/", Compare::Op::Equal, "x");
            c.rangeEnd = prefixEnd("p/");
            return txnText(s.txn({c}, {Op::put("t", "4")}, {Op::put("v", "1"), Op::get("v")}));
        },
        [&](Store& s) {
            Compare c = Compare::createRevision("q/", Compare::Op::Greater, 0);
            c.rangeEnd = prefixEnd("q/");
            return txnText(s.txn({c}, {Op::put("t", "5")}, {Op::put("w", "1")}));
        },
        // A range delete: the count of what it deleted.
        [](Store& s) { return std::to_string(ok(s.deleteRange("p/", prefixEnd("p/")))); },
        // Malformed branches are refused whichever branch would run.
        [&](Store& s) { return txnText(s.txn({}, {Op::put("x", "1")}, {Op::put("y", "1"), Op::put("y", "2")})); },
        [&](Store& s) { return txnText(s.txn({}, {}, {})); },
    };
    for (size_t i = 0; i < steps.size(); ++i) {
        INFO("step " << i);
        const std::string want = steps[i](*plain);
        CHECK(steps[i](fenced) == want);
        REQUIRE(fenced.revision() == plain->revision());
    }
    CHECK(everything(fenced) == everything(*plain));
    // History too: what the fence adds is reads.
    CHECK(ok(fenced.range("a", "", 0, 5)).kvs == ok(plain->range("a", "", 0, 5)).kvs);
}

TEST_CASE("fenced: a deposed leader's writes are refused and change nothing", "[state][fenced]") {
    test::TempDir dir("hull-fenced");
    auto inner = open(dir / "state.db");
    const int64_t term = elect(*inner, kM1);
    int64_t fencing = term;
    FencedStore m1(*inner, kKey, [&] { return fencing; });
    const int64_t put = ok(m1.put("a", "1"));
    CHECK(put == inner->revision());

    // m1's lease goes (it expired, or m1 resigned): no master leads.
    ok(inner->revokeLease(ok(inner->range(kKey)).kvs.front().lease));
    const int64_t rev = inner->revision();
    auto r = m1.put("a", "2");
    REQUIRE(errnoOf(r) == kNotLeader);
    CHECK(r.error().message() == "state: not the leader (no master leads now: the leader key /hull/leader is absent; "
                                 "this master's term began at revision " +
                                     std::to_string(term) + ")");

    // m2 is elected: m1, which still believes it leads, writes nothing.
    const int64_t term2 = elect(*inner, kM2);
    const auto before = everything(*inner);
    const int64_t rev2 = inner->revision();
    CHECK(rev2 == rev + 1);
    r = m1.put("a", "2");
    REQUIRE(errnoOf(r) == kNotLeader);
    CHECK(r.error().message() == "state: not the leader (the leader key is now held by m2 at https://10.0.0.2:7443, "
                                 "created at revision " +
                                     std::to_string(term2) + "; this master's term began at revision " +
                                     std::to_string(term) + ")");
    CHECK(errnoOf(m1.put("new", "1")) == kNotLeader);
    CHECK(errnoOf(m1.deleteRange("a")) == kNotLeader);
    CHECK(errnoOf(m1.deleteRange("\0"s, "\0"s)) == kNotLeader);
    CHECK(errnoOf(m1.txn({}, {Op::put("a", "3")}, {})) == kNotLeader);
    // Its own compares failing too, its failure branch does not run, reading or writing.
    CHECK(errnoOf(m1.txn({Compare::valueOf("a", Compare::Op::Equal, "no")}, {Op::put("a", "3")}, {Op::get("a")})) ==
          kNotLeader);
    CHECK(errnoOf(m1.txn({Compare::valueOf("a", Compare::Op::Equal, "no")}, {Op::put("a", "3")},
                         {Op::put("b", "1")})) == kNotLeader);
    CHECK(errnoOf(m1.txn({}, {}, {Op::del("a")})) == kNotLeader);
    CHECK(inner->revision() == rev2);
    CHECK(everything(*inner) == before);
    // Reads still work for it.
    CHECK(ok(m1.range("a")).kvs.front().value == "1");

    // The new leader's go through.
    FencedStore m2(*inner, kKey, [&] { return term2; });
    CHECK(ok(m2.put("a", "9")) == rev2 + 1);

    // A master that knows it does not lead is refused without a write.
    fencing = 0;
    r = m1.put("a", "2");
    REQUIRE(errnoOf(r) == kNotLeader);
    CHECK(r.error().message() == "state: not the leader (the leader key is held by m2 at https://10.0.0.2:7443, "
                                 "created at revision " +
                                     std::to_string(term2) + ")");
    CHECK(inner->revision() == rev2 + 1);
    // Leases are not fenced: a follower's election needs its own.
    CHECK(m1.grantLease(5).has_value());
}

TEST_CASE("fenced: a failure branch that writes runs only under the fence, and is evaluated again after a race",
          "[state][fenced]") {
    test::TempDir dir("hull-fenced");
    auto sqlite = open(dir / "state.db");
    Meddler inner(*sqlite);
    const int64_t term = elect(inner, kM1);
    ok(sqlite->put("k", "y"));
    FencedStore fenced(inner, kKey, [&] { return term; });
    const std::vector<Compare> kIsX{Compare::valueOf("k", Compare::Op::Equal, "x")};

    SECTION("the compared key changes between the two txns: the success branch runs after all") {
        inner.txns = 0;
        inner.after = 1;
        inner.hook = [&] { ok(sqlite->put("k", "x")); };
        auto r = ok(fenced.txn(kIsX, {Op::put("then", "1")}, {Op::put("else", "1")}));
        CHECK(r.succeeded);
        CHECK(ok(sqlite->range("then")).kvs.size() == 1);
        CHECK(ok(sqlite->range("else")).kvs.empty());
        CHECK(inner.txns == 3);  // the first saw "y", the guarded second failed, the third succeeded
    }
    SECTION("a key nobody compared changes: the failure branch runs") {
        inner.txns = 0;
        inner.after = 1;
        inner.hook = [&] { ok(sqlite->put("other", "1")); };
        auto r = ok(fenced.txn(kIsX, {Op::put("then", "1")}, {Op::put("else", "1"), Op::get("k")}));
        CHECK_FALSE(r.succeeded);
        REQUIRE(r.ranges.size() == 1);
        CHECK(r.ranges[0].kvs.front().value == "y");
        CHECK(r.revision == inner.revision());
        CHECK(ok(sqlite->range("else")).kvs.size() == 1);
        CHECK(inner.txns == 2);
    }
    SECTION("the leader is deposed between the two txns: nothing is written") {
        inner.txns = 0;
        inner.after = 1;
        inner.hook = [&] {
            ok(sqlite->revokeLease(ok(sqlite->range(kKey)).kvs.front().lease));
            elect(*sqlite, kM2);
        };
        const int64_t rev = inner.revision();
        auto r = fenced.txn(kIsX, {Op::put("then", "1")}, {Op::put("else", "1")});
        REQUIRE(errnoOf(r) == kNotLeader);
        CHECK(inner.revision() == rev + 2);  // the revoke and m2's election only
        CHECK(ok(sqlite->range("else")).kvs.empty());
        CHECK(ok(sqlite->range("then")).kvs.empty());
    }
}
