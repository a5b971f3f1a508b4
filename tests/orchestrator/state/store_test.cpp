#include "orchestrator/state/store.hpp"

#include <catch2/catch.hpp>

using namespace hull;
using namespace hull::state;
using std::string_literals::operator""s;

TEST_CASE("state: prefixEnd is etcd's GetPrefixRangeEnd", "[state]") {
    CHECK(prefixEnd("/hull/") == "/hull0");
    CHECK(prefixEnd("abc") == "abd");
    CHECK(prefixEnd("a\xff") == "b");
    CHECK(prefixEnd("a\xff\xff") == "b");
    CHECK(prefixEnd("\xff\xff") == "\0"s);  // no bound: every key from the prefix
    CHECK(prefixEnd("") == "\0"s);
}

TEST_CASE("state: inRange follows etcd's rangeEnd conventions", "[state]") {
    CHECK(inRange("a", "a", ""));
    CHECK_FALSE(inRange("ab", "a", ""));
    CHECK(inRange("ab", "a", "b"));
    CHECK_FALSE(inRange("b", "a", "b"));
    CHECK_FALSE(inRange("0", "a", "b"));
    CHECK(inRange("zzz", "a", "\0"s));
    CHECK_FALSE(inRange("0", "a", "\0"s));
    CHECK(inRange("\0"s, "\0"s, "\0"s));
    CHECK(inRange("/hull/x", "/hull/", prefixEnd("/hull/")));
    CHECK_FALSE(inRange("/hull0", "/hull/", prefixEnd("/hull/")));
    CHECK_FALSE(inRange("b", "b", "a"));  // an empty range
}

TEST_CASE("state: compares on a missing key are etcd's", "[state]") {
    using C = Compare;
    // Revisions, version and lease compare as 0: create-if-absent.
    CHECK(compareMatches(C::createRevision("k", C::Op::Equal, 0), nullptr));
    CHECK(compareMatches(C::version("k", C::Op::Equal, 0), nullptr));
    CHECK(compareMatches(C::modRevision("k", C::Op::Less, 1), nullptr));
    CHECK_FALSE(compareMatches(C::version("k", C::Op::Greater, 0), nullptr));
    // A value compare on a missing key fails, whatever the op.
    CHECK_FALSE(compareMatches(C::valueOf("k", C::Op::Equal, ""), nullptr));
    CHECK_FALSE(compareMatches(C::valueOf("k", C::Op::NotEqual, "x"), nullptr));
    CHECK_FALSE(compareMatches(C::valueOf("k", C::Op::Less, "x"), nullptr));
}

TEST_CASE("state: compares on a present key", "[state]") {
    using C = Compare;
    KeyValue kv{"k", "b", 3, 7, 2, 9};
    CHECK(compareMatches(C::createRevision("k", C::Op::Equal, 3), &kv));
    CHECK_FALSE(compareMatches(C::createRevision("k", C::Op::Equal, 0), &kv));
    CHECK(compareMatches(C::modRevision("k", C::Op::Equal, 7), &kv));
    CHECK(compareMatches(C::modRevision("k", C::Op::NotEqual, 6), &kv));
    CHECK(compareMatches(C::version("k", C::Op::Greater, 1), &kv));
    CHECK_FALSE(compareMatches(C::version("k", C::Op::Less, 2), &kv));
    CHECK(compareMatches(C::valueOf("k", C::Op::Equal, "b"), &kv));
    CHECK(compareMatches(C::valueOf("k", C::Op::Greater, "a"), &kv));
    CHECK(compareMatches(C::valueOf("k", C::Op::Less, "ba"), &kv));  // bytewise
    CHECK(compareMatches(C{"k", C::Target::Lease, C::Op::Equal, 9}, &kv));
    KeyValue empty{"k", "", 3, 3, 1, 0};
    CHECK(compareMatches(C::valueOf("k", C::Op::Equal, ""), &empty));  // present and empty
}

TEST_CASE("state: a txn branch may not write a key twice", "[state]") {
    CHECK(validateOps({Op::put("a", "1"), Op::put("b", "2"), Op::get("a")}));
    CHECK(validateOps({Op::del("a", "c"), Op::del("b", "d")}));  // overlapping deletes are fine
    CHECK(validateOps({Op::put("c", "1"), Op::del("a", "c")}));  // "c" is past [a, c)
    CHECK(validateOps({}));

    auto errnoOf = [](const Result<void>& r) { return r ? 0 : r.error().errnum(); };
    CHECK(errnoOf(validateOps({Op::put("a", "1"), Op::put("a", "2")})) == EINVAL);
    CHECK(errnoOf(validateOps({Op::put("b", "1"), Op::del("a", "c")})) == EINVAL);
    CHECK(errnoOf(validateOps({Op::del("a", "\0"s), Op::put("zz", "1")})) == EINVAL);
    CHECK(errnoOf(validateOps({Op::del("b"), Op::put("b", "1")})) == EINVAL);
    CHECK(errnoOf(validateOps({Op::put("", "1")})) == EINVAL);
    CHECK(errnoOf(validateOps({Op::get("a", "", -1)})) == EINVAL);
}
