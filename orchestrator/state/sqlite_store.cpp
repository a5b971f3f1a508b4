// The SQLite implementation of the etcd-shaped store (store.hpp).
//
// Tables: kv holds the latest state (one row per live key); history holds every
// change, a put or a delete (a "tombstone", version 0), keyed by (revision, sub)
// with sub the change's place within its txn, and indexed by (key, revision)
// for reads at old revisions; meta holds the revision and the compacted one;
// leases their TTLs. Lease deadlines live only in memory: keepAlive writes
// nothing (etcd's renewals cost no disk write either), and a reopened store
// gives every lease a fresh TTL (as etcd does on a leader change).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include <sqlite3.h>

#include "orchestrator/state/store.hpp"
#include "sys/scope_exit.hpp"
#include "sys/unique_fd.hpp"

namespace hull::state {

namespace {

// Bump when the schema changes, and add a migration step in migrate().
constexpr int kSchemaVersion = 1;

// Keys and values are BLOBs: etcd's are bytes, and SQLite compares BLOBs with
// memcmp, which is etcd's key order. kv_by_lease is partial: the 100,000
// placements the master puts at once carry no lease and should cost no index.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(name, value) VALUES ('revision', 1), ('compact_revision', 0);
CREATE TABLE kv (
    key             BLOB PRIMARY KEY NOT NULL,
    value           BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision    INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    lease           INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX kv_by_lease ON kv(lease) WHERE lease != 0;
CREATE TABLE history (
    revision        INTEGER NOT NULL,
    sub             INTEGER NOT NULL,
    key             BLOB NOT NULL,
    value           BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    lease           INTEGER NOT NULL,
    PRIMARY KEY (revision, sub)
) WITHOUT ROWID;
CREATE UNIQUE INDEX history_by_key ON history(key, revision);
CREATE TABLE leases (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl INTEGER NOT NULL
);
PRAGMA user_version = 1;
)sql";

constexpr const char* kSelectKv =
    "SELECT value, create_revision, mod_revision, version, lease FROM kv WHERE key = ?1";
constexpr const char* kUpsertKv =
    "INSERT OR REPLACE INTO kv(key, value, create_revision, mod_revision, version, lease) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
constexpr const char* kDeleteKv = "DELETE FROM kv WHERE key = ?1";
constexpr const char* kInsertHistory =
    "INSERT INTO history(revision, sub, key, value, create_revision, version, lease) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* kSetMeta = "UPDATE meta SET value = ?2 WHERE name = ?1";
constexpr const char* kGetMeta = "SELECT value FROM meta WHERE name = ?1";
// "AND lease != 0" lets SQLite use the partial index.
constexpr const char* kKeysOfLease = "SELECT key FROM kv WHERE lease = ?1 AND lease != 0 ORDER BY key";
constexpr const char* kInsertLease = "INSERT INTO leases(ttl) VALUES (?1) RETURNING id";
constexpr const char* kDeleteLease = "DELETE FROM leases WHERE id = ?1";
constexpr const char* kSelectLeases = "SELECT id, ttl FROM leases";
// The key's latest row before a revision: the prev_kv of a replayed event.
constexpr const char* kPrevOf =
    "SELECT key, value, create_revision, revision, version, lease FROM history "
    "WHERE key = ?1 AND revision < ?2 ORDER BY revision DESC LIMIT 1";
// Compaction keeps, below REVISION, only each key's latest row at or below it,
// and that only when it is not a tombstone: exactly what a read at REVISION
// needs. Rows at REVISION and above stay whole, so a watch from REVISION sees
// every event (etcd drops a tombstone at exactly the compacted revision).
constexpr const char* kCompact =
    "DELETE FROM history WHERE revision < ?1 AND (version = 0 OR EXISTS ("
    "SELECT 1 FROM history x WHERE x.key = history.key AND x.revision > history.revision AND x.revision <= ?1))";

// How a range is bounded: rangeEnd "", "\0", or a key.
enum class Bound { Single, Open, Below };

Bound boundOf(const std::string& rangeEnd) {
    if (rangeEnd.empty()) return Bound::Single;
    if (rangeEnd == std::string(1, '\0')) return Bound::Open;
    return Bound::Below;
}

// The range statements, one per (table, rows or count, bound), built once; the
// statement cache is keyed by their addresses. Parameters: ?1 key, ?2 rangeEnd,
// ?3 limit (-1: none), ?4 revision.
enum class Read { Latest, LatestCount, AtRevision, AtRevisionCount, Replay };
const char* rangeSql(Read read, Bound bound) {
    static const auto table = [] {
        std::array<std::array<std::string, 3>, 5> t;
        const std::array<std::string, 3> cond = {"h.key = ?1", "h.key >= ?1", "h.key >= ?1 AND h.key < ?2"};
        const std::string cols = "h.key, h.value, h.create_revision, ";
        // The key's latest row at or below ?4, when that is not a tombstone.
        const std::string asOf =
            " AND h.revision = (SELECT MAX(x.revision) FROM history x WHERE x.key = h.key AND x.revision <= ?4)"
            " AND h.version > 0";
        for (size_t b = 0; b < 3; ++b) {
            t[0][b] = "SELECT " + cols + "h.mod_revision, h.version, h.lease FROM kv h WHERE " + cond[b] +
                      " ORDER BY h.key LIMIT ?3";
            t[1][b] = "SELECT COUNT(*) FROM kv h WHERE " + cond[b];
            t[2][b] = "SELECT " + cols + "h.revision, h.version, h.lease FROM history h WHERE " + cond[b] + asOf +
                      " ORDER BY h.key LIMIT ?3";
            t[3][b] = "SELECT COUNT(*) FROM history h WHERE " + cond[b] + asOf;
            t[4][b] = "SELECT " + cols + "h.revision, h.version, h.lease FROM history h WHERE " + cond[b] +
                      " AND h.revision >= ?4 ORDER BY h.revision, h.sub";
        }
        return t;
    }();
    return table[static_cast<size_t>(read)][static_cast<size_t>(bound)].c_str();
}

int errnoOf(int rc) {
    switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED: return EBUSY;
        case SQLITE_FULL: return ENOSPC;
        case SQLITE_READONLY: return EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH: return EACCES;
        case SQLITE_CANTOPEN: return EACCES;  // not ENOENT: that is kLeaseNotFound here
        case SQLITE_NOMEM: return ENOMEM;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: return EBADMSG;
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
        case SQLITE_TOOBIG: return EINVAL;
        default: return EIO;
    }
}

// errmsg must be read right after the failing call.
Error sqlError(sqlite3* db, int rc, const char* what) {
    const char* msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return Error::plain(errnoOf(rc), std::string("state: ") + what + ": " + (msg ? msg : sqlite3_errstr(rc)));
}

struct Finalize {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, Finalize>;

// One use of a cached statement: binds, steps, reads columns; reset on scope
// exit, so no half-read SELECT keeps a read transaction open. Blobs are bound
// without a copy (SQLITE_STATIC): the caller's strings outlive the use.
class Use {
public:
    Use(sqlite3* db, sqlite3_stmt* st, const char* what) : db_(db), st_(st), what_(what) {}
    Use(Use&& o) noexcept : db_(o.db_), st_(std::exchange(o.st_, nullptr)), what_(o.what_), rc_(o.rc_) {}
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    Use& operator=(Use&&) = delete;
    ~Use() {
        if (st_) {
            sqlite3_reset(st_);
            sqlite3_clear_bindings(st_);
        }
    }

    // Parameters a statement does not use are skipped, so the range variants
    // (which use ?2 or not) take the same binds. The first failure is kept for step().
    Use& bind(int i, const std::string& v) {
        if (rc_ == SQLITE_OK && i <= sqlite3_bind_parameter_count(st_))
            rc_ = sqlite3_bind_blob64(st_, i, v.data(), v.size(), SQLITE_STATIC);
        return *this;
    }
    Use& bind(int i, int64_t v) {
        if (rc_ == SQLITE_OK && i <= sqlite3_bind_parameter_count(st_)) rc_ = sqlite3_bind_int64(st_, i, v);
        return *this;
    }
    Use& bindText(int i, const char* v) {
        if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_text(st_, i, v, -1, SQLITE_STATIC);
        return *this;
    }

    /// true: a row is ready; false: done.
    [[nodiscard]] Result<bool> step() {
        if (rc_ != SQLITE_OK) return fail(sqlError(db_, rc_, what_));
        int rc = sqlite3_step(st_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        return fail(sqlError(db_, rc, what_));
    }
    /// Steps to the end (a write, or a RETURNING whose row was read).
    [[nodiscard]] Result<void> run() {
        while (TRY(step())) {
        }
        return {};
    }

    int64_t i64(int col) const { return sqlite3_column_int64(st_, col); }
    std::string blob(int col) const {
        // column_blob is NULL for an empty BLOB; bytes must be read after it.
        const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, col));
        return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : std::string();
    }
    /// The columns key, value, create_revision, mod_revision, version, lease.
    KeyValue kv() const { return {blob(0), blob(1), i64(2), i64(3), i64(4), i64(5)}; }

private:
    sqlite3* db_;
    sqlite3_stmt* st_;
    const char* what_;
    int rc_ = SQLITE_OK;
};

int64_t steadyMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// etcd's MaxLeaseTTL; deadlines in ms stay far from overflowing.
constexpr int64_t kMaxLeaseTtl = 9000000000;

const char* const kCompactedReason = "mvcc: required revision has been compacted";

}  // namespace

class SqliteStore final : public Store {
public:
    SqliteStore(std::string path, std::function<int64_t()> clockMs)
        : path_(std::move(path)), clock_(clockMs ? std::move(clockMs) : steadyMs) {}
    ~SqliteStore() override {
        stmts_.clear();  // statements first: close_v2 would otherwise defer the close
        if (db_) sqlite3_close_v2(db_);
    }
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    [[nodiscard]] Result<void> open();
    [[nodiscard]] Result<void> migrate();

    Result<RangeResult> range(const std::string& key, const std::string& rangeEnd, int64_t limit,
                              int64_t revision) override {
        return call([&] { return rangeLocked(key, rangeEnd, limit, revision); });
    }

    Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease) override {
        return call([&]() -> Result<int64_t> {
            if (key.empty()) return failInvalid("state: put: key is not provided");
            TRY(transaction("put", [&](Write& w) { return putLocked(w, key, value, lease); }));
            return rev_;
        });
    }

    Result<int64_t> deleteRange(const std::string& key, const std::string& rangeEnd) override {
        return call([&]() -> Result<int64_t> {
            if (key.empty()) return failInvalid("state: delete: key is not provided");
            return transaction("delete", [&](Write& w) { return deleteLocked(w, key, rangeEnd); });
        });
    }

    Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                          const std::vector<Op>& failure) override {
        return call([&]() -> Result<TxnResult> {
            // Both branches, so a malformed one fails whichever the compares pick.
            TRY(validateOps(success));
            TRY(validateOps(failure));
            auto r = TRY(transaction("txn", [&](Write& w) -> Result<TxnResult> {
                TxnResult t;
                t.succeeded = TRY(comparesHold(compares));
                for (const auto& op : t.succeeded ? success : failure) {
                    switch (op.kind) {
                        case Op::Kind::Put: TRY(putLocked(w, op.key, op.value, op.lease)); break;
                        case Op::Kind::Delete: TRY(deleteLocked(w, op.key, op.rangeEnd)); break;
                        case Op::Kind::Range: t.ranges.push_back(TRY(rangeLocked(op.key, op.rangeEnd, op.limit, 0)));
                    }
                }
                return t;
            }));
            r.revision = rev_;
            for (auto& rr : r.ranges) rr.revision = rev_;
            return r;
        });
    }

    Result<int64_t> watch(const std::string& key, const std::string& rangeEnd, int64_t fromRevision,
                          std::function<void(const WatchResponse&)> cb, bool prevKv) override {
        return call([&]() -> Result<int64_t> {
            if (key.empty()) return failInvalid("state: watch: key is not provided");
            if (!cb) return failInvalid("state: watch: no callback");
            if (fromRevision < 0) return failInvalid("state: watch: negative revision");
            Watcher w{key, rangeEnd, fromRevision ? fromRevision : rev_ + 1, prevKv,
                      std::make_shared<std::function<void(const WatchResponse&)>>(std::move(cb))};
            const int64_t id = lastWatch_ + 1;
            if (fromRevision && fromRevision < compactRev_) {
                // etcd creates the watch, then cancels it with the revision to restart from.
                w.canceled = true;
                WatchResponse r;
                r.revision = rev_;
                r.canceled = true;
                r.compactRevision = compactRev_;
                r.reason = kCompactedReason;
                queue_.push_back({id, std::move(r)});
            } else if (fromRevision && fromRevision <= rev_) {
                TRY(replayLocked(id, w));
            }
            lastWatch_ = id;
            watchers_.emplace(id, std::move(w));
            return id;
        });
    }

    void cancelWatch(int64_t id) override {
        std::unique_lock lk(mu_);
        watchers_.erase(id);
        // Callers free what the callback uses once this returns, so wait out a
        // response being delivered on another thread (on this one, it is the
        // caller: returning to it is the end of that response).
        cv_.wait(lk, [&] { return inFlight_ != id || drainThread_ == std::this_thread::get_id(); });
    }

    Result<int64_t> grantLease(int64_t ttlSeconds) override {
        return call([&]() -> Result<int64_t> {
            if (ttlSeconds <= 0) return failInvalid("state: grant lease: the TTL must be positive");
            if (ttlSeconds > kMaxLeaseTtl) return failInvalid("state: grant lease: too large lease TTL");
            int64_t id = TRY(transaction("grant lease", [&](Write&) -> Result<int64_t> {
                auto u = TRY(use(kInsertLease, "grant lease"));
                u.bind(1, ttlSeconds);
                if (!TRY(u.step())) return failInvalid("state: grant lease: no id returned");
                int64_t leaseId = u.i64(0);
                TRY(u.run());
                return leaseId;
            }));
            leases_[id] = Lease{ttlSeconds, clock_() + ttlSeconds * 1000};
            return id;
        });
    }

    Result<int64_t> keepAlive(int64_t lease) override {
        return call([&]() -> Result<int64_t> {
            auto it = leases_.find(lease);
            if (it == leases_.end()) return leaseNotFound(lease);
            it->second.deadlineMs = clock_() + it->second.ttl * 1000;
            return it->second.ttl;
        });
    }

    Result<void> revokeLease(int64_t lease) override {
        return call([&] { return revokeLocked(lease); });
    }

    Result<int64_t> expireLeases() override {
        // call() has expired them already; a second look finds none left.
        int64_t n = 0;
        auto r = call([&]() -> Result<void> { return {}; }, &n);
        if (!r) return fail(std::move(r).error());
        return n;
    }

    Result<void> compact(int64_t revision) override {
        return call([&]() -> Result<void> {
            if (revision > rev_)
                return fail(Error::plain(kFutureRevision, "state: compact " + std::to_string(revision) +
                                                              ": mvcc: required revision is a future revision"));
            if (revision <= compactRev_)
                return fail(Error::plain(kCompacted, "state: compact " + std::to_string(revision) + ": " +
                                                         kCompactedReason));
            TRY(transaction("compact", [&](Write&) -> Result<void> {
                {
                    auto u = TRY(use(kCompact, "compact"));
                    u.bind(1, revision);
                    TRY(u.run());
                }
                return setMeta("compact_revision", revision);
            }));
            compactRev_ = revision;
            return {};
        });
    }

    int64_t revision() const override {
        std::lock_guard lk(mu_);
        return rev_;
    }

private:
    struct Watcher {
        std::string key, rangeEnd;
        int64_t minRev = 0;  // events from this revision on
        bool prevKv = false;
        std::shared_ptr<std::function<void(const WatchResponse&)>> cb;
        bool canceled = false;  // its last response (a cancel) is queued
    };
    struct Pending {
        int64_t watchId = 0;
        WatchResponse resp;
    };
    struct Lease {
        int64_t ttl = 0;  // seconds
        int64_t deadlineMs = 0;
    };
    // The changes of one SQLite transaction, all at revision REV.
    struct Write {
        int64_t rev = 0;
        int64_t changes = 0;  // also the next change's sub
        bool collect = false;  // someone watches: keep the events
        std::vector<Event> events;
    };

    [[nodiscard]] Result<Use> use(const char* sql, const char* what) {
        auto it = stmts_.find(sql);
        if (it == stmts_.end()) {
            sqlite3_stmt* st = nullptr;
            int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
            if (rc != SQLITE_OK) {
                sqlite3_finalize(st);
                return fail(sqlError(db_, rc, what));
            }
            it = stmts_.emplace(sql, StmtPtr(st)).first;
        }
        return Use(db_, it->second.get(), what);
    }

    [[nodiscard]] Result<void> exec(const char* sql, const char* what) {
        int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
        if (rc != SQLITE_OK) return fail(sqlError(db_, rc, what));
        return {};
    }

    [[nodiscard]] Result<void> setMeta(const char* name, int64_t value) {
        auto u = TRY(use(kSetMeta, "write meta"));
        u.bindText(1, name).bind(2, value);
        return u.run();
    }

    [[nodiscard]] Result<int64_t> getMeta(const char* name) {
        auto u = TRY(use(kGetMeta, "read meta"));
        u.bindText(1, name);
        if (!TRY(u.step())) return fail(Error::plain(EBADMSG, std::string("state: meta has no ") + name));
        return u.i64(0);
    }

    /// F(Write&) inside one SQLite transaction. If F made changes, they get
    /// revision rev_+1, which is stored with them and becomes rev_ once the
    /// commit is durable; their events are then queued for the watchers.
    template <class F>
    auto transaction(const char* what, F&& f) -> decltype(f(std::declval<Write&>())) {
        // IMMEDIATE: take the write lock up front, not at the first write.
        TRY(exec("BEGIN IMMEDIATE", what));
        Write w{rev_ + 1, 0, !watchers_.empty(), {}};
        auto r = f(w);
        if (r && w.changes > 0) {
            if (auto m = setMeta("revision", w.rev); !m) r = fail(std::move(m).error());
        }
        if (!r) {
            (void)exec("ROLLBACK", what);
            return r;
        }
        if (auto c = exec("COMMIT", what); !c) {
            if (!sqlite3_get_autocommit(db_)) (void)exec("ROLLBACK", what);
            return fail(std::move(c).error());
        }
        if (w.changes > 0) {
            rev_ = w.rev;
            fanOut(w);
        }
        return r;
    }

    /// Runs F under the lock after expiring leases, then delivers what the call
    /// (or the expiry) queued for the watchers. EXPIRED: how many leases expired.
    template <class F>
    auto call(F&& f, int64_t* expired = nullptr) -> decltype(f()) {
        decltype(f()) r;
        {
            std::lock_guard lk(mu_);
            auto e = expireLocked();
            if (!e)
                r = fail(std::move(e).error());
            else {
                if (expired) *expired = *e;
                r = f();
            }
        }
        deliver();
        return r;
    }

    [[nodiscard]] Result<void> putLocked(Write& w, const std::string& key, const std::string& value, int64_t lease) {
        if (lease != 0 && !leases_.count(lease)) return leaseNotFound(lease);
        KeyValue prev;
        {
            auto u = TRY(use(kSelectKv, "read kv"));
            u.bind(1, key);
            if (TRY(u.step())) prev = KeyValue{w.collect ? key : std::string(), w.collect ? u.blob(0) : std::string(),
                                               u.i64(1), u.i64(2), u.i64(3), u.i64(4)};
        }
        const bool existed = prev.createRevision != 0;
        KeyValue kv{key, value, existed ? prev.createRevision : w.rev, w.rev, existed ? prev.version + 1 : 1, lease};
        {
            auto u = TRY(use(kUpsertKv, "write kv"));
            u.bind(1, key).bind(2, value).bind(3, kv.createRevision).bind(4, w.rev).bind(5, kv.version).bind(6, lease);
            TRY(u.run());
        }
        TRY(record(w, kv));
        if (w.collect) w.events.push_back(Event{Event::Type::Put, std::move(kv), std::move(prev)});
        return {};
    }

    [[nodiscard]] Result<int64_t> deleteLocked(Write& w, const std::string& key, const std::string& rangeEnd) {
        auto found = TRY(rangeLocked(key, rangeEnd, 0, 0));
        for (auto& prev : found.kvs) {
            {
                auto u = TRY(use(kDeleteKv, "delete kv"));
                u.bind(1, prev.key);
                TRY(u.run());
            }
            KeyValue tombstone{prev.key, {}, 0, w.rev, 0, 0};
            TRY(record(w, tombstone));
            if (w.collect) w.events.push_back(Event{Event::Type::Delete, std::move(tombstone), std::move(prev)});
        }
        return static_cast<int64_t>(found.kvs.size());
    }

    // A change's history row (a delete's: version 0).
    [[nodiscard]] Result<void> record(Write& w, const KeyValue& kv) {
        auto u = TRY(use(kInsertHistory, "write history"));
        u.bind(1, w.rev).bind(2, w.changes).bind(3, kv.key).bind(4, kv.value).bind(5, kv.createRevision);
        u.bind(6, kv.version).bind(7, kv.lease);
        TRY(u.run());
        ++w.changes;
        return {};
    }

    [[nodiscard]] Result<RangeResult> rangeLocked(const std::string& key, const std::string& rangeEnd, int64_t limit,
                                                  int64_t revision) {
        if (key.empty()) return failInvalid("state: range: key is not provided");
        if (limit < 0) return failInvalid("state: range: negative limit");
        if (revision > rev_)
            return fail(Error::plain(kFutureRevision, "state: range at " + std::to_string(revision) +
                                                          ": mvcc: required revision is a future revision"));
        if (revision > 0 && revision < compactRev_)
            return fail(Error::plain(kCompacted, "state: range at " + std::to_string(revision) + ": " +
                                                     kCompactedReason + " (at " + std::to_string(compactRev_) + ")"));
        RangeResult out;
        out.revision = rev_;
        const Bound bound = boundOf(rangeEnd);
        if (bound == Bound::Below && rangeEnd <= key) return out;
        const bool old = revision > 0 && revision < rev_;
        {
            auto u = TRY(use(rangeSql(old ? Read::AtRevision : Read::Latest, bound), "range"));
            // One more than the limit tells whether there are more.
            u.bind(1, key).bind(2, rangeEnd).bind(3, limit > 0 ? limit + 1 : -1).bind(4, revision);
            while (TRY(u.step())) out.kvs.push_back(u.kv());
        }
        if (limit > 0 && static_cast<int64_t>(out.kvs.size()) > limit) {
            out.kvs.pop_back();
            out.more = true;
            auto u = TRY(use(rangeSql(old ? Read::AtRevisionCount : Read::LatestCount, bound), "count"));
            u.bind(1, key).bind(2, rangeEnd).bind(4, revision);
            out.count = TRY(u.step()) ? u.i64(0) : 0;
        } else {
            out.count = static_cast<int64_t>(out.kvs.size());
        }
        return out;
    }

    [[nodiscard]] Result<bool> comparesHold(const std::vector<Compare>& compares) {
        for (const auto& c : compares) {
            if (c.key.empty()) return failInvalid("state: txn: compare: key is not provided");
            auto found = TRY(rangeLocked(c.key, c.rangeEnd, 0, 0));
            if (found.kvs.empty()) {
                if (!compareMatches(c, nullptr)) return false;
                continue;
            }
            for (const auto& kv : found.kvs)
                if (!compareMatches(c, &kv)) return false;
        }
        return true;
    }

    static tl::unexpected<Error> leaseNotFound(int64_t lease) {
        return fail(
            Error::plain(kLeaseNotFound, "state: lease " + std::to_string(lease) + ": requested lease not found"));
    }

    [[nodiscard]] Result<void> revokeLocked(int64_t lease) {
        if (!leases_.count(lease)) return leaseNotFound(lease);
        TRY(transaction("revoke lease", [&](Write& w) -> Result<void> {
            std::vector<std::string> keys;
            {
                auto u = TRY(use(kKeysOfLease, "keys of lease"));
                u.bind(1, lease);
                while (TRY(u.step())) keys.push_back(u.blob(0));
            }
            for (const auto& k : keys) TRY(deleteLocked(w, k, ""));
            auto u = TRY(use(kDeleteLease, "revoke lease"));
            u.bind(1, lease);
            return u.run();
        }));
        leases_.erase(lease);
        return {};
    }

    /// Revokes the leases past their deadline, earliest first, each in its own
    /// transaction (one revision each, as etcd's revokes are separate requests).
    [[nodiscard]] Result<int64_t> expireLocked() {
        if (leases_.empty()) return 0;
        const int64_t now = clock_();
        std::vector<std::pair<int64_t, int64_t>> due;  // deadline, id
        for (const auto& [id, l] : leases_)
            if (l.deadlineMs <= now) due.emplace_back(l.deadlineMs, id);
        std::sort(due.begin(), due.end());
        for (const auto& d : due) TRY(revokeLocked(d.second));
        return static_cast<int64_t>(due.size());
    }

    // Queue, for each watcher of a changed key, the events of this revision.
    void fanOut(Write& w) {
        for (auto& [id, wt] : watchers_) {
            if (wt.canceled || wt.minRev > w.rev) continue;
            WatchResponse r;
            r.revision = w.rev;
            for (const auto& ev : w.events) {
                if (!inRange(ev.kv.key, wt.key, wt.rangeEnd)) continue;
                r.events.push_back(ev);
                if (!wt.prevKv) r.events.back().prev = KeyValue{};
            }
            if (!r.events.empty()) queue_.push_back({id, std::move(r)});
        }
    }

    // Queue the history from W.minRev on, one response per revision.
    [[nodiscard]] Result<void> replayLocked(int64_t id, const Watcher& w) {
        std::vector<WatchResponse> out;
        {
            auto u = TRY(use(rangeSql(Read::Replay, boundOf(w.rangeEnd)), "replay"));
            u.bind(1, w.key).bind(2, w.rangeEnd).bind(4, w.minRev);
            while (TRY(u.step())) {
                KeyValue kv = u.kv();
                if (out.empty() || out.back().revision != kv.modRevision) {
                    out.emplace_back();
                    out.back().revision = kv.modRevision;
                }
                Event ev;
                if (kv.version == 0) {
                    ev.type = Event::Type::Delete;
                    kv = KeyValue{std::move(kv.key), {}, 0, kv.modRevision, 0, 0};
                }
                ev.kv = std::move(kv);
                out.back().events.push_back(std::move(ev));
            }
        }
        if (w.prevKv) {
            for (auto& r : out) {
                for (auto& ev : r.events) {
                    auto u = TRY(use(kPrevOf, "replay prev"));
                    u.bind(1, ev.kv.key).bind(2, ev.kv.modRevision);
                    if (TRY(u.step()) && u.i64(4) > 0) ev.prev = u.kv();
                }
            }
        }
        for (auto& r : out) queue_.push_back({id, std::move(r)});
        return {};
    }

    /// Hands queued responses to their callbacks, outside the lock, one at a
    /// time. Only one thread delivers at once; the others leave their responses
    /// to it, which keeps each watch's responses in order. A call from inside a
    /// callback finds this thread delivering and returns at once.
    void deliver() {
        std::unique_lock lk(mu_);
        if (draining_ || queue_.empty()) return;
        draining_ = true;
        drainThread_ = std::this_thread::get_id();
        // Runs with the lock held (the relock below comes first), even if a
        // callback throws.
        ScopeExit done([&] {
            draining_ = false;
            drainThread_ = {};
        });
        while (!queue_.empty()) {
            Pending p = std::move(queue_.front());
            queue_.pop_front();
            auto it = watchers_.find(p.watchId);
            if (it == watchers_.end()) continue;  // canceled meanwhile
            auto cb = it->second.cb;
            if (p.resp.canceled) watchers_.erase(it);
            inFlight_ = p.watchId;
            lk.unlock();
            ScopeExit relock([&] {
                lk.lock();
                inFlight_ = 0;
                cv_.notify_all();
            });
            (*cb)(p.resp);
        }
    }

    std::string path_;
    std::function<int64_t()> clock_;
    UniqueFd lock_;
    sqlite3* db_ = nullptr;
    std::unordered_map<const char*, StmtPtr> stmts_;  // keyed by the SQL literal's address

    // Everything below, and every use of db_, is under mu_.
    mutable std::mutex mu_;
    std::condition_variable cv_;
    int64_t rev_ = 1, compactRev_ = 0, lastWatch_ = 0;
    std::map<int64_t, Lease> leases_;
    std::map<int64_t, Watcher> watchers_;
    std::deque<Pending> queue_;
    bool draining_ = false;
    std::thread::id drainThread_;
    int64_t inFlight_ = 0;  // the watch whose callback runs now
};

Result<void> SqliteStore::open() {
    // One process owns the store: the revision and lease deadlines live in its
    // memory, and its watchers hear only its own writes. flock on a side file
    // (SQLite's own locks are fcntl locks on the database, which flock leaves
    // alone) is released by the kernel however the owner dies.
    const std::string lockPath = path_ + ".lock";
    lock_ = UniqueFd(::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock_) return failErrno("state: open " + lockPath);
    if (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return fail(Error::plain(EBUSY, "state: open " + path_ + ": in use by another process (or store)"));
        return failErrno("state: lock " + lockPath);
    }
    // The master's records are not for other users; SQLite gives its -wal and
    // -shm files the database's mode.
    {
        UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!fd) return failErrno("state: open " + path_);
    }
    // NOMUTEX: every use of the connection is under mu_.
    int rc = sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return fail(sqlError(db_, rc, ("open " + path_).c_str()));
    sqlite3_extended_result_codes(db_, 1);
    // Readers (a sqlite3 shell) may hold the lock a WAL checkpoint needs.
    sqlite3_busy_timeout(db_, 5000);
    {
        auto u = TRY(use("PRAGMA journal_mode=WAL", "journal_mode=WAL"));
        std::string mode = TRY(u.step()) ? u.blob(0) : "";
        // SQLite answers with the mode it kept (e.g. on a file system without
        // shared memory) instead of failing.
        if (mode != "wal") return failInvalid("state: open " + path_ + ": journal_mode is \"" + mode + "\", not wal");
    }
    // FULL, not the node store's NORMAL: in WAL mode NORMAL skips the fsync of
    // each commit, so a power cut can lose writes the master has acknowledged
    // (and acted on: a placement sent to a node). etcd fsyncs every commit too.
    // One fsync per transaction, so a 100,000-put txn costs one.
    TRY(exec("PRAGMA synchronous=FULL", "synchronous=FULL"));
    // A large txn grows the WAL; truncate it back after checkpoints.
    TRY(exec("PRAGMA journal_size_limit=67108864", "journal_size_limit"));
    // 8 MiB of page cache (default 2 MiB): a round writes its placements in
    // one transaction, and the index pages it walks should stay in memory. The
    // master reads the store once, at start; what it serves is in its memory.
    TRY(exec("PRAGMA cache_size=-8192", "cache_size"));
    TRY(migrate());
    stmts_.clear();  // the pragmas' statements are used once; do not keep them
    rev_ = TRY(getMeta("revision"));
    compactRev_ = TRY(getMeta("compact_revision"));
    const int64_t now = clock_();
    auto u = TRY(use(kSelectLeases, "read leases"));
    while (TRY(u.step())) leases_[u.i64(0)] = Lease{u.i64(1), now + u.i64(1) * 1000};
    return {};
}

Result<void> SqliteStore::migrate() {
    TRY(exec("BEGIN IMMEDIATE", "schema"));
    ScopeExit rollback([&] { (void)exec("ROLLBACK", "schema"); });
    int64_t version = 0;
    {
        auto u = TRY(use("PRAGMA user_version", "schema version"));
        if (TRY(u.step())) version = u.i64(0);
    }
    if (version > kSchemaVersion)
        return failInvalid("state: open " + path_ + ": schema version " + std::to_string(version) +
                           " is newer than this hull supports (" + std::to_string(kSchemaVersion) + "); upgrade hull");
    if (version == 0) TRY(exec(kSchemaV1, "create schema"));
    TRY(exec("COMMIT", "schema"));  // a failed COMMIT leaves the transaction open: rolled back
    rollback.dismiss();
    return {};
}

Result<std::unique_ptr<Store>> openSqlite(const std::string& path, std::function<int64_t()> clockMs) {
    auto s = std::make_unique<SqliteStore>(path, std::move(clockMs));
    TRY(s->open());
    return std::unique_ptr<Store>(std::move(s));
}

}  // namespace hull::state
