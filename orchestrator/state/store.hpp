#pragma once
// The master's state: an etcd-shaped key-value store (etcd's v3 API model, so an
// etcd implementation can stand behind the same interface later).
//
// - One revision counter for the whole store. A fresh store is at revision 1
//   (as etcd is); every successful write (a put, a delete that deleted
//   something, a txn with at least one such change) bumps it by exactly one, and
//   all changes of one txn share that revision.
// - A key's createRevision is the revision that created it, modRevision the one
//   that last changed it, version the number of puts since its creation (1 on
//   creation); a delete then put starts afresh.
// - Old revisions are kept until compacted: range() and watch() can look back.
// - Keys and values are bytes; keys compare bytewise. Ranges are [key, rangeEnd):
//   rangeEnd "" is the single key, rangeEnd "\0" every key >= key (so key "\0",
//   rangeEnd "\0" is every key), prefixEnd(p) every key starting with p.
//
// Errors callers branch on carry an errno (Error::errnum()): kCompacted,
// kFutureRevision, kLeaseNotFound, EINVAL for malformed requests (an empty key,
// the same key written twice in one txn, a non-positive TTL), EBUSY when
// another process holds the store.
#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sys/error.hpp"

namespace hull::state {

/// etcd's ErrCompacted: the revision asked for was compacted away.
constexpr int kCompacted = ESTALE;
/// etcd's ErrFutureRev: the revision asked for is above the store's.
constexpr int kFutureRevision = ERANGE;
/// etcd's ErrLeaseNotFound: no such lease (never granted, revoked or expired).
constexpr int kLeaseNotFound = ENOENT;

struct KeyValue {
    std::string key, value;
    int64_t createRevision = 0, modRevision = 0, version = 0, lease = 0;
    bool operator==(const KeyValue&) const = default;
};

struct RangeResult {
    std::vector<KeyValue> kvs;  // ordered by key
    int64_t revision = 0;       // the store's revision when read (etcd's header revision)
    int64_t count = 0;          // keys in the range, whatever the limit
    bool more = false;          // the limit left some out
};

/// One condition of a txn. Over a range (rangeEnd as in range()), every key in
/// it must match. On a missing key (or an empty range) Version, CreateRevision,
/// ModRevision and Lease compare as 0, so "create if absent" is
/// CreateRevision Equal 0; a Value compare on a missing key is always false,
/// whatever the op, as in etcd (an absent value is not "").
struct Compare {
    std::string key;
    enum class Target { Version, CreateRevision, ModRevision, Value, Lease } target = Target::Version;
    enum class Op { Equal, NotEqual, Less, Greater } op = Op::Equal;
    int64_t number = 0;  // for every target but Value
    std::string value;   // for Value: compared bytewise
    std::string rangeEnd;

    static Compare version(std::string key, Op op, int64_t n) { return {std::move(key), Target::Version, op, n}; }
    static Compare createRevision(std::string key, Op op, int64_t n) {
        return {std::move(key), Target::CreateRevision, op, n};
    }
    static Compare modRevision(std::string key, Op op, int64_t n) {
        return {std::move(key), Target::ModRevision, op, n};
    }
    static Compare valueOf(std::string key, Op op, std::string v) {
        return {std::move(key), Target::Value, op, 0, std::move(v)};
    }
};

/// One operation of a txn branch. Ops run in order and see the earlier ops'
/// writes. As in etcd, a branch may not write one key twice (two puts, or a
/// put inside a deleted range): the txn is refused with EINVAL.
struct Op {
    enum class Kind { Put, Delete, Range } kind = Kind::Range;
    std::string key, rangeEnd, value;
    int64_t lease = 0;  // Put: attach to this lease (0: none, detaching any earlier one)
    int64_t limit = 0;  // Range: at most this many keys (0: all)

    static Op put(std::string key, std::string value, int64_t lease = 0) {
        return {Kind::Put, std::move(key), {}, std::move(value), lease};
    }
    static Op del(std::string key, std::string rangeEnd = {}) {
        return {Kind::Delete, std::move(key), std::move(rangeEnd)};
    }
    static Op get(std::string key, std::string rangeEnd = {}, int64_t limit = 0) {
        return {Kind::Range, std::move(key), std::move(rangeEnd), {}, 0, limit};
    }
};

struct TxnResult {
    bool succeeded = false;           // the compares held: the success branch ran
    int64_t revision = 0;             // the store's revision after the txn
    std::vector<RangeResult> ranges;  // one per Range op of the branch that ran, in order
};

struct Event {
    enum class Type { Put, Delete } type = Type::Put;
    /// Put: the key as written. Delete: only key and modRevision (the delete's revision).
    KeyValue kv;
    /// The key before this change, when the watch asked for it and it existed
    /// (and was not compacted); otherwise empty (modRevision 0).
    KeyValue prev;
};

struct WatchResponse {
    std::vector<Event> events;  // all of one revision, in the order they were written
    int64_t revision = 0;       // the revision of these events (or the store's, on cancel)
    bool canceled = false;      // no further responses follow
    int64_t compactRevision = 0;  // set on cancel when fromRevision was compacted
    std::string reason;
};

/// The rangeEnd for "every key starting with PREFIX" (etcd's GetPrefixRangeEnd):
/// PREFIX with its last byte below 0xff incremented and what follows dropped;
/// "\0" (no upper bound) when there is no such byte.
std::string prefixEnd(const std::string& prefix);

/// Whether KEY lies in [from, rangeEnd) with rangeEnd's conventions above.
bool inRange(const std::string& key, const std::string& from, const std::string& rangeEnd);

/// Whether KV (nullptr: a missing key) satisfies C's condition on one key.
bool compareMatches(const Compare& c, const KeyValue* kv);

/// Checks a txn branch before it runs: keys present, no key written twice.
[[nodiscard]] Result<void> validateOps(const std::vector<Op>& ops);

/// One member of a replicated store as its client sees it (`hull cluster
/// status`): etcd's /v3/maintenance/status of that endpoint alone.
struct StoreMember {
    std::string endpoint;  // the client URL
    bool healthy = false;  // answered, and has a leader
    bool leader = false;   // the store's own (raft) leader
    std::string version;   // "3.4.23"
    int64_t dbSize = 0;    // bytes
    std::string error;     // why not healthy
};

class Store {
public:
    virtual ~Store() = default;

    /// Keys in [key, rangeEnd) as of REVISION (<= 0: the latest), at most LIMIT
    /// of them (0: all). A compacted revision fails with kCompacted, one above
    /// the store's with kFutureRevision.
    [[nodiscard]] virtual Result<RangeResult> range(const std::string& key, const std::string& rangeEnd = "",
                                                    int64_t limit = 0, int64_t revision = 0) = 0;
    /// Returns the new revision. LEASE must exist (else kLeaseNotFound).
    [[nodiscard]] virtual Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0) = 0;
    /// Returns how many keys were deleted (the revision moves only if some were).
    [[nodiscard]] virtual Result<int64_t> deleteRange(const std::string& key, const std::string& rangeEnd = "") = 0;
    /// Atomically: if every compare holds, run SUCCESS, else FAILURE.
    [[nodiscard]] virtual Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                                                const std::vector<Op>& failure) = 0;

    /// Deliver changes of [key, rangeEnd) to CB, one response per revision, in
    /// revision order, from FROM_REVISION on (0: from the next write). A
    /// FROM_REVISION below the compacted one gets a single canceled response
    /// with compactRevision set. PREV_KV fills Event::prev. Returns the watch's
    /// id. When and on which thread CB runs is the implementation's to say.
    [[nodiscard]] virtual Result<int64_t> watch(const std::string& key, const std::string& rangeEnd,
                                                int64_t fromRevision, std::function<void(const WatchResponse&)> cb,
                                                bool prevKv = false) = 0;
    /// No response starts after this returns (one running on another thread is
    /// waited for). Unknown ids are ignored.
    virtual void cancelWatch(int64_t id) = 0;

    /// A lease of TTL_SECONDS (> 0); returns its id (never 0, never reused).
    [[nodiscard]] virtual Result<int64_t> grantLease(int64_t ttlSeconds) = 0;
    /// Restarts the lease's TTL; returns the TTL. kLeaseNotFound when it is gone.
    [[nodiscard]] virtual Result<int64_t> keepAlive(int64_t lease) = 0;
    /// Ends the lease and deletes its keys (one revision, if it had any).
    [[nodiscard]] virtual Result<void> revokeLease(int64_t lease) = 0;
    /// Revokes every lease whose TTL has run out; returns how many. Expiry also
    /// happens at the start of every other call, so a timer calling this only
    /// makes it prompt when nothing else is happening.
    [[nodiscard]] virtual Result<int64_t> expireLeases() = 0;

    /// Drops history below REVISION: ranges and watches from there on still
    /// work, earlier ones fail with kCompacted. REVISION must be above the last
    /// compaction (else kCompacted) and at most the store's (else kFutureRevision).
    [[nodiscard]] virtual Result<void> compact(int64_t revision) = 0;
    /// The store's current revision.
    virtual int64_t revision() const = 0;
    /// Each member of a replicated store, asked one by one now (a dead one
    /// costs its connect timeout); empty for a store of one file.
    virtual std::vector<StoreMember> members() { return {}; }
};

/// The SQLite store: one file (WAL mode, synchronous=FULL) at PATH, created
/// 0600 when missing, held by this process alone (a second open, here or
/// elsewhere, fails with EBUSY). CLOCK_MS (default: the monotonic clock) times
/// leases.
///
/// Threading: calls may come from any thread; they are serialized. Expired
/// leases are revoked at the start of every call but revision() and
/// cancelWatch(). Watch callbacks run outside the store's lock, one at a time,
/// each watch's responses in revision order, on the thread whose call queued
/// them: a write's after its commit, before the write returns; watch()'s
/// replayed history before watch() returns. Two exceptions: if another thread
/// is delivering at that moment, it delivers these too (the call returns
/// first); and a call made from inside a callback returns first, its responses
/// following once that callback has returned. So callbacks may call anything,
/// writes and cancelWatch included. cancelWatch waits for that watch's callback
/// running on another thread: do not cancel while holding a lock the callback
/// takes. Destroy the store only when no call and no callback is running.
[[nodiscard]] Result<std::unique_ptr<Store>> openSqlite(const std::string& path,
                                                        std::function<int64_t()> clockMs = {});

}  // namespace hull::state
