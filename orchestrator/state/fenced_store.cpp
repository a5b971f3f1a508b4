#include "orchestrator/state/fenced_store.hpp"

#include <optional>

#include "sys/json.hpp"

namespace hull::state {

namespace {

// How often the two-txn path starts again when the compared keys change
// between its txns; each retry means another writer got through meanwhile.
constexpr int kAttempts = 16;

bool writes(const std::vector<Op>& ops) {
    for (const auto& op : ops)
        if (op.kind != Op::Kind::Range) return true;
    return false;
}

// "m2 at https://10.0.0.2:7443": the leader key's value as core/election.hpp
// writes it ({"name", "url"}), or its raw text.
std::string holderOf(const KeyValue& kv) {
    auto v = json::Value::parse(kv.value);
    if (!v || !v->isObject() || json::stringOf(*v, "name").empty()) return kv.value;
    std::string url = json::stringOf(*v, "url");
    return json::stringOf(*v, "name") + (url.empty() ? "" : " at " + url);
}

// Whether C holds on R (C's key or range, read at one revision); when it does
// not, a compare that holds exactly as long as the reason it failed stands.
std::optional<Compare> failedBecause(const Compare& c, const RangeResult& r) {
    if (r.kvs.empty()) {
        if (compareMatches(c, nullptr)) return std::nullopt;
        // Still missing (still empty): every key in the range has create revision 0.
        return Compare{c.key, Compare::Target::CreateRevision, Compare::Op::Equal, 0, "", c.rangeEnd};
    }
    for (const auto& kv : r.kvs)
        if (!compareMatches(c, &kv)) return Compare::modRevision(kv.key, Compare::Op::Equal, kv.modRevision);
    return std::nullopt;
}

}  // namespace

FencedStore::FencedStore(Store& inner, std::string leaderKey, std::function<int64_t()> fencingRevision)
    : inner_(inner), leaderKey_(std::move(leaderKey)), fencingRevision_(std::move(fencingRevision)) {}

Result<RangeResult> FencedStore::range(const std::string& key, const std::string& rangeEnd, int64_t limit,
                                       int64_t revision) {
    return inner_.range(key, rangeEnd, limit, revision);
}

Result<int64_t> FencedStore::put(const std::string& key, const std::string& value, int64_t lease) {
    if (key.empty()) return failInvalid("state: put: key is not provided");
    const int64_t f = TRY(fence());
    auto r = TRY(fencedTxn(f, {}, {Op::put(key, value, lease)}, {}));
    return r.revision;
}

Result<int64_t> FencedStore::deleteRange(const std::string& key, const std::string& rangeEnd) {
    if (key.empty()) return failInvalid("state: delete: key is not provided");
    const int64_t f = TRY(fence());
    // The count of a read with limit 1 is every key in the range.
    auto r = TRY(fencedTxn(f, {}, {Op::get(key, rangeEnd, 1), Op::del(key, rangeEnd)}, {}));
    return r.ranges.front().count;
}

Result<TxnResult> FencedStore::txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                                   const std::vector<Op>& failure) {
    // Both branches first, as the inner store does: the branch sent may not be the one given.
    TRY(validateOps(success));
    TRY(validateOps(failure));
    const int64_t f = TRY(fence());
    return fencedTxn(f, compares, success, failure);
}

Result<TxnResult> FencedStore::fencedTxn(int64_t f, const std::vector<Compare>& compares,
                                         const std::vector<Op>& success, const std::vector<Op>& failure) {
    std::vector<Compare> all{fenceCompare(f)};
    all.insert(all.end(), compares.begin(), compares.end());
    const Op readLeader = Op::get(leaderKey_);

    if (!writes(failure)) {
        std::vector<Op> orElse{readLeader};
        orElse.insert(orElse.end(), failure.begin(), failure.end());
        auto r = TRY(inner_.txn(all, success, orElse));
        if (r.succeeded) return r;
        if (!compareMatches(all.front(), r.ranges.front().kvs.empty() ? nullptr : &r.ranges.front().kvs.front()))
            return refused(r.ranges.front(), f);
        r.ranges.erase(r.ranges.begin());
        return r;
    }

    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        std::vector<Op> reads{readLeader};
        for (const auto& c : compares) reads.push_back(Op::get(c.key, c.rangeEnd));
        auto r = TRY(inner_.txn(all, success, reads));
        if (r.succeeded) return r;
        const RangeResult& leader = r.ranges.front();
        if (!compareMatches(all.front(), leader.kvs.empty() ? nullptr : &leader.kvs.front())) return refused(leader, f);
        std::optional<Compare> guard;
        for (size_t i = 0; i < compares.size() && !guard; ++i) guard = failedBecause(compares[i], r.ranges[i + 1]);
        if (!guard)
            return fail(Error::plain(EIO, "state: txn: the store refused compares that held on its own read"));
        auto r2 = TRY(inner_.txn({all.front(), *guard}, failure, {readLeader}));
        if (r2.succeeded) {
            r2.succeeded = false;  // what ran is the caller's failure branch
            return r2;
        }
        if (!compareMatches(all.front(), r2.ranges.front().kvs.empty() ? nullptr : &r2.ranges.front().kvs.front()))
            return refused(r2.ranges.front(), f);
        // The key that made the compares fail changed meanwhile: evaluate them again.
    }
    return fail(Error::plain(EAGAIN, "state: txn: the compared keys kept changing under a fenced txn"));
}

Result<int64_t> FencedStore::fence() {
    const int64_t f = fencingRevision_ ? fencingRevision_() : 0;
    if (f > 0) return f;
    // Known not to lead: refused unsent. The read only names the leader.
    auto r = inner_.range(leaderKey_);
    if (!r) return fail(Error::plain(kNotLeader, "state: not the leader (this master does not lead)"));
    return refused(*r, 0);
}

Compare FencedStore::fenceCompare(int64_t f) const {
    return Compare::createRevision(leaderKey_, Compare::Op::Equal, f);
}

tl::unexpected<Error> FencedStore::refused(const RangeResult& leader, int64_t f) const {
    std::string why;
    if (leader.kvs.empty()) {
        why = "no master leads now: the leader key " + leaderKey_ + " is absent";
    } else {
        const KeyValue& kv = leader.kvs.front();
        why = std::string(f ? "the leader key is now held by " : "the leader key is held by ") + holderOf(kv) +
              ", created at revision " + std::to_string(kv.createRevision);
    }
    if (f) why += "; this master's term began at revision " + std::to_string(f);
    return fail(Error::plain(kNotLeader, "state: not the leader (" + why + ")"));
}

Result<int64_t> FencedStore::watch(const std::string& key, const std::string& rangeEnd, int64_t fromRevision,
                                   std::function<void(const WatchResponse&)> cb, bool prevKv) {
    return inner_.watch(key, rangeEnd, fromRevision, std::move(cb), prevKv);
}

void FencedStore::cancelWatch(int64_t id) { inner_.cancelWatch(id); }
Result<int64_t> FencedStore::grantLease(int64_t ttlSeconds) { return inner_.grantLease(ttlSeconds); }
Result<int64_t> FencedStore::keepAlive(int64_t lease) { return inner_.keepAlive(lease); }
Result<void> FencedStore::revokeLease(int64_t lease) { return inner_.revokeLease(lease); }
Result<int64_t> FencedStore::expireLeases() { return inner_.expireLeases(); }
Result<void> FencedStore::compact(int64_t revision) { return inner_.compact(revision); }
int64_t FencedStore::revision() const { return inner_.revision(); }

}  // namespace hull::state
