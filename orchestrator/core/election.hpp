#pragma once
// Leader election among masters sharing one store, as a pure state machine:
// no I/O, every time passed in as int64 ms of the local monotonic clock. A thin
// layer (master/leadership.hpp) carries out its actions on a state::Store and
// feeds their outcomes back.
//
// The protocol (etcd's, as in its concurrency package, kept simpler):
//  - every master keeps a lease of its own alive, leader or not, so that a
//    follower's campaign is one txn with no grant on the failover path
//    (keepalives cost etcd and SQLite no disk write);
//  - the leader key (kLeaderKey) is created if absent, attached to the lease:
//    txn(createRevision(key) == 0, put(key, {name, url}, lease)). Its
//    create_revision is the leader's fencing revision: every write of the
//    leader's is made conditional on it (state/fenced_store.hpp);
//  - a master leads while the key it observed last is held by its own lease
//    and that lease is still valid by the local clock (below). It also leads
//    when it finds such a key without having seen its campaign succeed (the
//    answer was lost): a lease id is never reused, so only this master writes
//    keys with it;
//  - followers watch the key and campaign the moment they see it deleted:
//    by the leader's resignation (a revoke), or by etcd expiring its lease.
//
// Clocks. Only the local monotonic clock is trusted. etcd times a lease on its
// own leader's clock, from when it processed the grant or keepalive, which is
// after this master sent it. So etcd cannot expire a lease before
// sent + TTL (sent: when the last acknowledged grant or renewal left here); the
// lease is believed valid until sent + TTL - margin, and a leader stops leading
// strictly before etcd could expire its lease. The margin covers the drift of
// the two clocks' rates (NTP slews a clock by at most 500 ppm: 0.5 ms over a
// second) and, mostly, the time between a check of "am I the leader" and the
// effect of what it decided (a thread preempted under load). Writes do not
// depend on it (they are fenced); messages to nodes do.
//
// The numbers (ElectionOptions defaults), for failover under 2 s at p99 from a
// leader's SIGKILL:
//  - TTL 1 s: etcd's smallest (TTLs are whole seconds). etcd raises any TTL to
//    its minimum, ceil(1.5 x election timeout): with its default 1 s election
//    timeout that is 2 s, so etcd must run with --election-timeout 666 ms or
//    less (e.g. --heartbeat-interval 50 --election-timeout 500) for a 1 s TTL
//    to hold. Renewals report the TTL etcd applies; a smaller one than asked
//    for is used from then on, a larger one only delays failover (warned of by
//    the layer, not unsafe).
//  - renewal every TTL/4 = 250 ms, one at a time: a renewal may take up to
//    TTL - margin - 250 ms = 500 ms before the leader steps down.
//  - margin TTL/4 = 250 ms: far above clock drift, enough for a preempted
//    thread; it leaves a gap of at least 250 ms in which nobody leads.
//  - the failover itself: the leader's last renewal reached etcd at most
//    250 ms (+ latency) before the kill; etcd expires the lease 1 s after it,
//    noticed by its lessor within 500 ms (it checks every 500 ms), deletes the
//    key, the watch delivers it and a follower's txn wins: about 1.5 s in the
//    worst case, leaving about 0.5 s for clients to reach the new leader. A
//    clean shutdown (resign: revoke) hands over in one round trip. (When etcd
//    itself changes leader, it extends every lease by about an election
//    timeout: a master dying then takes that much longer to replace.)
//  - a failed grant, campaign or read is retried after 250 ms.
//
// A renewal that fails drops the lease at once (a leader steps down with it):
// the lease is then revoked, best effort (which deletes the key, so a
// successor need not wait for the TTL), and a new one is granted. A master
// never tries to win back the key its dropped lease may still hold.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace hull::orchestrator::core {

/// The leader key in the store.
inline constexpr const char* kLeaderKey = "/hull/leader";
/// Every master, leader or not, under /hull/masters/NAME ({name, url}),
/// attached to its own lease: the list `hull cluster status` shows, which
/// loses a master whose lease ran out.
inline constexpr const char* kMastersPrefix = "/hull/masters/";

struct ElectionOptions {
    int64_t ttlSeconds = 1;    // the lease's TTL, as granted (etcd's unit)
    int64_t renewEveryMs = 250;  // how often the lease is renewed (from the last renewal's sending)
    int64_t marginMs = 250;    // the lease is believed valid until sent + TTL - margin
    int64_t retryMs = 250;     // after a failed grant, campaign or read

    int64_t ttlMs() const { return ttlSeconds * 1000; }
};

enum class Role {
    Candidate,  // knows of no leader (none, or not known yet)
    Follower,   // the leader key is held by another master's lease (its holder: leader())
    Leader,     // holds the key with its own lease, which is valid now
};
/// "candidate", "follower", "leader".
const char* roleName(Role role);

/// Who the leader key names: the master's name and its advertised URL.
struct LeaderInfo {
    std::string name, url;
    bool operator==(const LeaderInfo&) const = default;
};

/// The leader key's value: {"name": NAME, "url": URL}.
std::string leaderValue(const LeaderInfo& who);
/// The value read back; one that is not ours is named by its raw text.
LeaderInfo parseLeaderValue(const std::string& value);

/// The leader key as the store had it at REVISION.
struct LeaderKey {
    bool present = false;
    LeaderInfo holder;           // when present
    int64_t createRevision = 0;  // when present: the holder's fencing revision
    int64_t lease = 0;           // when present: the lease it is attached to
    int64_t revision = 0;        // the store revision this was true at (orders observations)
};

/// What the layer is to do. Each is handed out once by poll(); its outcome
/// goes back through the method named, but Revoke's, which is best effort.
struct ElectionAction {
    enum class Kind {
        Observe,     // read the key, (re)start a watch from the read's revision + 1: keyRead / readFailed
        GrantLease,  // grant a lease of ttlSeconds: granted / grantFailed
        KeepAlive,   // renew lease: renewed / renewFailed
        Campaign,    // txn(createRevision(key) == 0, put(key, value, lease)): campaigned / campaignFailed
        Revoke,      // revoke lease (no outcome needed: a lease that is not revoked expires)
    } kind = Kind::Observe;
    int64_t lease = 0;       // KeepAlive, Campaign, Revoke
    int64_t ttlSeconds = 0;  // GrantLease
    std::string value;       // Campaign: the leader key's value
    bool operator==(const ElectionAction&) const = default;
};

/// A change of leadership, for the layer's callbacks and logs.
struct ElectionEvent {
    enum class Kind { Elected, Deposed } kind = Kind::Elected;
    int64_t revision = 0;  // Elected: the fencing revision; Deposed: the one given up
    std::string reason;    // Deposed: "renewal of lease 7 failed: ...", "resigned", ...
    bool operator==(const ElectionEvent&) const = default;
};

/// One master's view of the election. Feed outcomes in the order they happen
/// (their times never going back); call poll() after each and no later than
/// nextWakeMs().
class Election {
public:
    explicit Election(LeaderInfo self, ElectionOptions options = {});

    /// Applies what time alone changes at NOW (a lease whose renewal has not
    /// come back by sent + TTL - margin is dropped: a leader steps down) and
    /// returns the actions to start now.
    std::vector<ElectionAction> poll(int64_t nowMs);
    /// When poll() must run next if nothing else happens (max: never).
    int64_t nextWakeMs() const;

    // Outcomes. SENT: when the call left (read the clock just before sending);
    // DONE: when its answer came. Every input first applies time as poll does,
    // at DONE (or NOW): an answer that comes after the lease's deadline finds it
    // dropped already.

    /// Observe's read (the watch is running from KEY.revision + 1).
    void keyRead(const LeaderKey& key, int64_t nowMs);
    void readFailed(const std::string& why, int64_t nowMs);
    /// A watch event. Observations older than the latest one are ignored.
    void keyChanged(const LeaderKey& key, int64_t nowMs);
    /// The watch ended (canceled, compacted, broken): read again.
    void watchLost(int64_t nowMs);

    void granted(int64_t lease, int64_t sentMs, int64_t doneMs);
    void grantFailed(const std::string& why, int64_t sentMs, int64_t doneMs);
    /// TTL_SECONDS: the lease's TTL as the store reports it (<= 0: the lease is gone).
    void renewed(int64_t lease, int64_t ttlSeconds, int64_t sentMs, int64_t doneMs);
    void renewFailed(int64_t lease, const std::string& why, int64_t sentMs, int64_t doneMs);
    /// KEY: the leader key as of the txn's revision (ours when WON). Who
    /// leads is decided from KEY alone (held by the current lease or not), so
    /// a win for a lease dropped meanwhile, or one a later watch event has
    /// overtaken, elects nobody.
    void campaigned(int64_t lease, bool won, const LeaderKey& key, int64_t sentMs, int64_t doneMs);
    void campaignFailed(int64_t lease, const std::string& why, int64_t sentMs, int64_t doneMs);

    /// Steps down for good: no more grants or campaigns (the key is still
    /// observed). Returns the lease the caller must revoke now (0: none), so
    /// that a successor takes over at once.
    int64_t resign(int64_t nowMs);

    /// The role at NOW. Leader only while the lease is valid by the local clock,
    /// whether poll() has run since or not.
    Role role(int64_t nowMs) const;
    /// This master when leading, the key's holder when following, else empty.
    LeaderInfo leader(int64_t nowMs) const;
    /// The fencing revision (the leader key's create_revision) while leading, else 0.
    int64_t fencingRevision(int64_t nowMs) const;
    /// The events since the last call, in order.
    std::vector<ElectionEvent> takeEvents();

    const LeaderInfo& self() const { return self_; }
    const ElectionOptions& options() const { return options_; }
    /// The lease held (0: none) and until when it is believed valid.
    int64_t lease() const { return lease_; }
    int64_t leaseValidUntilMs() const { return validUntilMs_; }
    /// The lease TTL the store last reported (0: none reported yet).
    int64_t reportedTtlSeconds() const { return reportedTtlSeconds_; }
    /// The last failed call's error ("" before any).
    const std::string& lastError() const { return lastError_; }

private:
    void expire(int64_t nowMs);
    void dropLease(const std::string& why, int64_t nowMs);
    void observe(const LeaderKey& key);
    void settle(int64_t nowMs);
    bool mayCampaign() const;
    void remember(int64_t lease);
    bool isOwn(int64_t lease) const;
    std::string depositionReason() const;

    LeaderInfo self_;
    ElectionOptions options_;
    std::string value_;
    bool resigned_ = false;

    // The lease.
    int64_t lease_ = 0;
    int64_t ttlMs_ = 0;           // the TTL used: the configured one, or a smaller one reported
    int64_t reportedTtlSeconds_ = 0;
    int64_t lastAckSentMs_ = 0;   // when the last acknowledged grant or renewal was sent
    int64_t validUntilMs_ = 0;    // lastAckSentMs_ + TTL - margin
    int64_t lastRenewMs_ = 0;     // when the last renewal (or the grant) was handed out
    bool granting_ = false, renewing_ = false;
    int64_t grantAtMs_ = 0;       // no grant before
    std::string leaseLoss_;       // why the last lease was dropped
    std::vector<int64_t> revokes_;  // dropped leases to revoke
    // The last leases granted to this master: a key still held by one it
    // dropped names no leader. A few suffice: a dropped lease's key is gone
    // within a TTL, and a master is granted at most one lease per retry period.
    static constexpr size_t kOwnLeases = 16;
    std::vector<int64_t> own_;

    // The key.
    bool keyKnown_ = false;  // some observation was made
    bool watching_ = false;  // a read succeeded and its watch has not been lost
    bool reading_ = false;
    int64_t readAtMs_ = 0;
    LeaderKey key_;

    // The campaign and the leadership.
    bool campaigning_ = false;
    int64_t campaignAtMs_ = 0;
    bool leading_ = false;
    int64_t term_ = 0;  // the fencing revision while leading_
    std::vector<ElectionEvent> events_;
    std::string lastError_;
};

}  // namespace hull::orchestrator::core
