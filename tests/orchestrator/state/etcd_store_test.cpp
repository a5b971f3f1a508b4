// The etcd store's own tests: the gateway's wire format (pure), and, against a
// real etcd started by the test, TLS, endpoints, restarts and lost quorum.
// What every store does is in store_conformance_test.cpp.
#include "orchestrator/state/etcd_store.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "etcd_support.hpp"
#include "store_support.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::state;
using namespace hull::state::testing;
using std::string_literals::operator""s;

namespace {

/// A loopback port nothing listens on (bound for a moment, then let go).
int closedPort() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);
    return ntohs(a.sin_port);
}

std::unique_ptr<Store> openOrFail(const EtcdOptions& o) {
    auto s = openEtcd(o);
    if (!s) FAIL("open: " << s.error().message());
    return std::move(*s);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

json::Value parse(const std::string& text) {
    auto v = json::Value::parse(text);
    REQUIRE(v);
    return *v;
}

}  // namespace

TEST_CASE("state: etcd: the gateway's error shapes, 3.4's and 3.5's", "[state][etcd]") {
    // etcd 3.4 (Debian 12): "error" and "message" both, and the gRPC code.
    auto e = etcd::replyError(400, R"({"error":"etcdserver: mvcc: required revision has been compacted",)"
                                   R"("message":"etcdserver: mvcc: required revision has been compacted","code":11})");
    CHECK(e.errnum() == kCompacted);
    CHECK(e.message() == "etcdserver: mvcc: required revision has been compacted");
    CHECK(etcd::replyError(404, R"({"error":"etcdserver: requested lease not found","code":5})").errnum() ==
          kLeaseNotFound);
    CHECK(etcd::replyError(503, R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})")
              .errnum() == kUnavailable);
    // etcd 3.5 and later: "code", "message" and "details".
    e = etcd::replyError(400, R"({"code":11,"message":"etcdserver: mvcc: required revision is a future revision",)"
                              R"("details":[]})");
    CHECK(e.errnum() == kFutureRevision);
    CHECK(e.message() == "etcdserver: mvcc: required revision is a future revision");
    CHECK(etcd::replyError(404, R"({"code":5,"message":"etcdserver: requested lease not found","details":[]})")
              .errnum() == kLeaseNotFound);
    e = etcd::replyError(400, R"({"code":3,"message":"etcdserver: too many operations in txn request","details":[]})");
    CHECK(e.errnum() == EINVAL);
    CHECK(e.message() == "etcdserver: too many operations in txn request");
    CHECK(etcd::replyError(400, R"({"code":11,"message":"etcdserver: too large lease TTL","details":[]})").errnum() ==
          EINVAL);
    CHECK(etcd::replyError(403, R"({"code":7,"message":"etcdserver: permission denied","details":[]})").errnum() ==
          EACCES);
    CHECK(etcd::replyError(503, R"({"code":14,"message":"etcdserver: request timed out","details":[]})").errnum() ==
          kUnavailable);
    CHECK(etcd::replyError(504, R"({"code":4,"message":"context deadline exceeded","details":[]})").errnum() ==
          kUnavailable);
    // A stream's failure (watch, keepalive), in grpc-gateway's stream error shape.
    e = etcd::replyError(200, R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader",)"
                              R"("http_status":"Service Unavailable"}})");
    CHECK(e.errnum() == kUnavailable);
    CHECK(e.message() == "etcdserver: no leader");
    // Not etcd: a proxy, a wrong port.
    e = etcd::replyError(404, "404 page not found\n");
    CHECK(e.errnum() == EPROTO);
    CHECK(e.message() == "etcd: HTTP 404: 404 page not found");
    CHECK(etcd::replyError(502, "").errnum() == kUnavailable);
}

TEST_CASE("state: etcd: key-values without their zero fields, events split per revision", "[state][etcd]") {
    // As etcd 3.4 writes them: int64 as strings, zero fields left out.
    auto kv = etcd::decodeKeyValue(
        parse(R"({"key":"YQ==","create_revision":"2","mod_revision":"3","version":"2","value":"Mg=="})"));
    REQUIRE(kv);
    CHECK(*kv == KeyValue{"a", "2", 2, 3, 2, 0});
    kv = etcd::decodeKeyValue(parse(R"({"key":"AP8=","mod_revision":"9"})"));  // an empty value, no lease
    REQUIRE(kv);
    CHECK(*kv == KeyValue{"\0\xff"s, "", 0, 9, 0, 0});
    kv = etcd::decodeKeyValue(parse(R"({"key":"YQ==","lease":7587869, "version":1})"));  // numbers are fine too
    REQUIRE(kv);
    CHECK(kv->lease == 7587869);
    CHECK(kv->version == 1);
    CHECK(etcd::decodeKeyValue(parse(R"({"key":"not base64!"})")).error().errnum() == EPROTO);
    CHECK(etcd::decodeKeyValue(parse(R"({"key":"YQ==","version":"1x"})")).error().errnum() == EPROTO);

    // A watcher catching up gets several revisions in one message; a delete's kv is its key and revision.
    const std::string a1 = R"({"key":"YQ==","create_revision":"2","mod_revision":"2","version":"1","value":"MQ=="})",
                      a2 = R"({"key":"YQ==","create_revision":"2","mod_revision":"3","version":"2","value":"Mg=="})",
                      b = R"({"key":"Yg==","create_revision":"3","mod_revision":"3","version":"1"})";
    auto groups = etcd::eventsByRevision(parse(R"({"header":{"revision":"4"},"events":[)"
                                               R"({"kv":)" + a1 + "}," +
                                               R"({"kv":)" + a2 + R"(,"prev_kv":)" + a1 + "}," +
                                               R"({"kv":)" + b + "}," +
                                               R"({"type":"DELETE","kv":{"key":"YQ==","mod_revision":"4"}}]})"));
    REQUIRE(groups);
    REQUIRE(revisionsOf(*groups) == std::vector<int64_t>{2, 3, 4});
    CHECK(brief((*groups)[0]) == std::vector<std::string>{"P a=1"});
    CHECK(brief((*groups)[1]) == std::vector<std::string>{"P a=2", "P b="});
    CHECK((*groups)[1].events[0].prev == KeyValue{"a", "1", 2, 2, 1, 0});
    CHECK((*groups)[1].events[1].prev.modRevision == 0);
    CHECK(brief((*groups)[2]) == std::vector<std::string>{"D a"});
    CHECK((*groups)[2].events[0].kv == KeyValue{"a", "", 0, 4, 0, 0});
    // A progress notification, or the creation: no events.
    groups = etcd::eventsByRevision(parse(R"({"header":{"revision":"4"},"created":true})"));
    REQUIRE(groups);
    CHECK(groups->empty());
    CHECK_FALSE(etcd::eventsByRevision(parse(R"({"events":[{"type":"EXPIRE","kv":{"key":"YQ=="}}]})")));
}

TEST_CASE("state: etcd: a streamed body splits into its JSON objects wherever the chunks end", "[state][etcd]") {
    const std::vector<std::string> objects = {
        R"({"result":{"header":{"revision":"3"},"created":true}})",
        R"({"result":{"events":[{"kv":{"key":"e30=","value":"In0i"}}],"note":"a } and a \" and a \\"}})",
        R"({"error":{"grpc_code":14,"message":"etcdserver: no leader"}})",
    };
    std::string body;
    for (const auto& o : objects) body += o + "\n";
    // Every split point, and one byte at a time.
    for (size_t cut = 0; cut <= body.size(); ++cut) {
        etcd::JsonStream js;
        std::vector<std::string> got;
        std::string one;
        js.feed(std::string_view(body).substr(0, cut));
        while (js.next(one)) got.push_back(one);
        js.feed(std::string_view(body).substr(cut));
        while (js.next(one)) got.push_back(one);
        INFO("cut at " << cut);
        CHECK(got == objects);
        CHECK_FALSE(js.pending());
    }
    etcd::JsonStream bytewise;
    std::vector<std::string> got;
    std::string one;
    for (char c : body) {
        bytewise.feed(std::string_view(&c, 1));
        while (bytewise.next(one)) got.push_back(one);
    }
    CHECK(got == objects);
    etcd::JsonStream partial;
    partial.feed(R"({"result":{"header")");
    CHECK_FALSE(partial.next(one));
    CHECK(partial.pending());
}

TEST_CASE("state: etcd: bad options are refused, an etcd nobody answers for is named", "[state][etcd]") {
    auto bad = [](std::vector<std::string> endpoints) {
        EtcdOptions o;
        o.endpoints = std::move(endpoints);
        return errnoOf(openEtcd(o));
    };
    CHECK(bad({}) == EINVAL);
    CHECK(bad({"127.0.0.1:2379"}) == EINVAL);
    CHECK(bad({"ftp://127.0.0.1:2379"}) == EINVAL);
    CHECK(bad({"http://"}) == EINVAL);
    CHECK(bad({"http://127.0.0.1:0"}) == EINVAL);
    CHECK(bad({"http://127.0.0.1:99999"}) == EINVAL);
    CHECK(bad({"http://[::1"}) == EINVAL);
    CHECK(bad({"http://127.0.0.1:2379/v3/kv"}) == EINVAL);
    CHECK(bad({"http://user@127.0.0.1:2379"}) == EINVAL);
    EtcdOptions tls;
    tls.endpoints = {"https://127.0.0.1:2379"};
    tls.caPem = "not a certificate";
    CHECK(errnoOf(openEtcd(tls)) == EINVAL);
    tls.caPem.clear();
    tls.certPem = "-----BEGIN CERTIFICATE-----\n";  // and no key
    CHECK(errnoOf(openEtcd(tls)) == EINVAL);

    const std::string a = "http://127.0.0.1:" + std::to_string(closedPort()),
                      b = "http://127.0.0.1:" + std::to_string(closedPort());
    EtcdOptions o;
    o.endpoints = {a, b};
    auto s = openEtcd(o);
    REQUIRE_FALSE(s);
    CHECK(s.error().errnum() == kUnavailable);
    INFO(s.error().message());
    CHECK(has(s.error().message(), "etcd " + a + ": cannot connect: Connection refused"));
    CHECK(has(s.error().message(), "etcd " + b + ": cannot connect: Connection refused"));
}

TEST_CASE("state: etcd: https with a client certificate", "[state][etcd]") {
    test::EtcdCluster etcd({.members = 1, .tls = true});
    REQUIRE(has(etcd.endpoint(), "https://"));
    auto s = openOrFail(etcd.options());
    CHECK(ok(s->put("/tls/a", "1")) == 2);
    CHECK(getKey(*s, "/tls/a")->value == "1");
    Recorder rec;
    ok(s->watch("/tls/", prefixEnd("/tls/"), 0, rec.fn()));
    ok(s->put("/tls/b", "1"));
    CHECK(revisionsOf(rec.take(1)) == std::vector<int64_t>{3});
    const int64_t lease = ok(s->grantLease(30));
    CHECK(ok(s->keepAlive(lease)) == 30);

    // etcd wants a client certificate; without one it says no.
    auto o = etcd.options();
    o.certPem.clear();
    o.keyPem.clear();
    auto refused = openEtcd(o);
    REQUIRE_FALSE(refused);
    INFO(refused.error().message());
    CHECK(has(refused.error().message(), "etcd " + etcd.endpoint() + ": "));
    CHECK(has(refused.error().message(), "client certificate"));

    // A server our CA did not sign is not trusted.
    test::TempDir other("hull-etcd-ca");
    auto stranger = test::EtcdCerts::make(other.path());
    o = etcd.options();
    o.caPem = stranger.caPem;
    auto untrusted = openEtcd(o);
    REQUIRE_FALSE(untrusted);
    INFO(untrusted.error().message());
    CHECK(has(untrusted.error().message(), "certificate verify failed"));
    // Nor a certificate that does not name the host dialed.
    o = etcd.options();
    o.endpoints = {"https://localhost:" + etcd.endpoint().substr(etcd.endpoint().rfind(':') + 1)};
    auto misnamed = openEtcd(o);
    REQUIRE_FALSE(misnamed);
    INFO(misnamed.error().message());
    CHECK(has(misnamed.error().message(), "certificate verify failed"));
}

TEST_CASE("state: etcd: with the first endpoint dead, calls and watches use the next", "[state][etcd]") {
    test::EtcdCluster etcd;
    auto o = etcd.options();
    const std::string dead = "http://127.0.0.1:" + std::to_string(closedPort());
    o.endpoints = {dead, etcd.endpoint()};
    auto s = openOrFail(o);
    Recorder rec;
    ok(s->watch("/f/", prefixEnd("/f/"), 0, rec.fn()));
    CHECK(ok(s->put("/f/a", "1")) == 2);
    CHECK(getKey(*s, "/f/a")->value == "1");
    auto t = ok(s->txn({Compare::version("/f/a", Compare::Op::Equal, 1)}, {Op::put("/f/b", "2")}, {}));
    CHECK(t.succeeded);
    CHECK(revisionsOf(rec.take(2)) == std::vector<int64_t>{2, 3});
    // A second store starting at the dead one's place works the same.
    auto again = openOrFail(o);
    CHECK(again->revision() == 3);
}

TEST_CASE("state: etcd: across an etcd restart, calls fail clearly, then resume, and a watch goes on", "[state][etcd]") {
    test::EtcdCluster etcd;
    auto s = openOrFail(etcd.options());
    Recorder rec;
    ok(s->watch("/w/", prefixEnd("/w/"), 0, rec.fn(), true));
    ok(s->put("/w/a", "1"));  // 2
    CHECK(revisionsOf(rec.take(1)) == std::vector<int64_t>{2});

    etcd.kill(0);
    auto down = s->put("/w/b", "1");
    REQUIRE_FALSE(down);
    CHECK(down.error().errnum() == kUnavailable);
    INFO(down.error().message());
    CHECK(has(down.error().message(), "etcd " + etcd.endpoint() + ": cannot connect"));
    CHECK(errnoOf(s->range("/w/a")) == kUnavailable);

    etcd.start(0);
    // The kept-alive connections died with etcd: fresh ones, without a word.
    CHECK(ok(s->put("/w/b", "1")) == 3);
    CHECK(ok(s->put("/w/a", "2")) == 4);
    // The watch reconnected from revision 3: nothing lost, nothing twice.
    auto got = rec.takeThrough(4);
    REQUIRE(revisionsOf(got) == std::vector<int64_t>{3, 4});
    CHECK(brief(got[0]) == std::vector<std::string>{"P /w/b=1"});
    CHECK(got[1].events[0].prev == KeyValue{"/w/a", "1", 2, 2, 1, 0});
}

TEST_CASE("state: etcd: a member without quorum refuses at once and says so, until quorum is back", "[state][etcd]") {
    test::EtcdCluster etcd({.members = 3});
    auto o = etcd.options();  // member 0 first
    o.timeout = std::chrono::milliseconds(1500);
    auto s = openOrFail(o);
    Recorder rec;
    ok(s->watch("/q/", prefixEnd("/q/"), 0, rec.fn()));
    CHECK(ok(s->put("/q/a", "1")) == 2);
    CHECK(revisionsOf(rec.take(1)) == std::vector<int64_t>{2});

    etcd.kill(1);
    etcd.kill(2);
    // Member 0 is up but alone. It sees it has no leader within an election
    // timeout or two (a call before that times out); from then on it says so
    // at once, and calls try the other endpoints, then give up.
    REQUIRE(test::waitFor([&] {
        auto r = s->range("/q/a");
        return !r && has(r.error().message(), "no leader");
    }, 10000));
    auto read = s->range("/q/a");
    REQUIRE_FALSE(read);
    CHECK(read.error().errnum() == kUnavailable);
    INFO(read.error().message());
    CHECK(has(read.error().message(), "etcd " + etcd.endpoint(0) + ": etcdserver: no leader; etcd " +
                                          etcd.endpoint(1) + ": cannot connect"));
    CHECK(has(read.error().message(), "etcd " + etcd.endpoint(2) + ": cannot connect"));
    CHECK(has(read.error().message(), "(no quorum?)"));
    // "no leader" comes before etcd proposes anything: a write moves on too.
    auto write = s->put("/q/b", "1");
    REQUIRE_FALSE(write);
    CHECK(write.error().errnum() == kUnavailable);
    INFO(write.error().message());
    CHECK(has(write.error().message(), "etcd " + etcd.endpoint(2) + ": cannot connect"));
    CHECK(has(write.error().message(), "(no quorum?)"));

    etcd.start(1);  // two of three: a quorum again
    int64_t rev = 0;
    REQUIRE(test::waitFor([&] {
        auto r = s->put("/q/c", "1");
        rev = r ? *r : 0;
        return rev > 0;
    }, 10000));
    // The watch is back too, from where it was: /q/b never happened.
    auto got = rec.takeThrough(rev);
    REQUIRE(revisionsOf(got) == std::vector<int64_t>{3});
    CHECK(brief(got[0]) == std::vector<std::string>{"P /q/c=1"});
}

TEST_CASE("state: etcd: etcd's own limits are EINVAL", "[state][etcd]") {
    test::EtcdCluster etcd;
    auto s = openOrFail(etcd.options());
    std::vector<Op> ops;
    for (int i = 0; i < 129; ++i) ops.push_back(Op::put("/many/" + std::to_string(i), "v"));
    auto many = s->txn({}, ops, {});  // --max-txn-ops is 128
    REQUIRE_FALSE(many);
    CHECK(many.error().errnum() == EINVAL);
    CHECK(has(many.error().message(), "too many operations in txn request"));
    ops.pop_back();
    CHECK(ok(s->txn({}, ops, {})).revision == 2);
    CHECK(errnoOf(s->grantLease(int64_t(1) << 40)) == EINVAL);  // over etcd's MaxLeaseTTL
}
