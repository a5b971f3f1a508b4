#pragma once
// A Store whose writes go through only while this master leads, as the store
// itself sees it: every put, delete and txn is sent to the inner store as a txn
// with one more compare, createRevision(leader key) == this master's fencing
// revision (the create_revision of the leader key it created when elected,
// master/leadership.hpp). A deposed leader's key is gone (its lease expired or
// was revoked) and any later one was created at a higher revision, so the
// compare fails and the write changes nothing, however long the deposed
// master goes on believing it leads: the store decides, not its clock.
//
// Refused writes fail with kNotLeader (EPERM): "state: not the leader (the
// leader key is now held by m2 at https://10.0.0.2:7443, created at revision
// 42; this master's term began at revision 17)". While this master knows it
// does not lead (fencing revision 0), writes are refused without being sent.
//
// Otherwise results are the inner store's: put returns the new revision,
// deleteRange the number deleted, txn the branch that ran with its ranges.
// - put and deleteRange become txns (deleteRange reads the range's count
//   first, with limit 1, in the same txn: a txn's answer has no deleted count).
// - A txn's own failure branch must not run when the fence is what failed, and
//   the interface has no nested txns. A failure branch without writes is sent
//   in the same txn, after a read of the leader key that tells the two
//   failures apart. One with writes takes two txns: the first runs the success
//   branch if everything holds, else reads the leader key and the compared
//   keys; if the fence held, a compare that failed is found in that read and
//   the second txn runs the failure branch under the fence and a guard that
//   this compare's keys are unchanged (so it still fails), retrying if they
//   changed in between.
//
// Reads, watches, compaction and leases pass through: reads change nothing,
// compaction no data, and leases cannot be made conditional in etcd (no txn
// takes a lease call). The election keeps its lease on the inner store. A
// deposed leader's revoke of a lease with keys attached would delete them
// unfenced: the master attaches no data to leases.
#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>

#include "orchestrator/state/store.hpp"

namespace hull::state {

/// The errno of a write refused because this master does not lead.
constexpr int kNotLeader = EPERM;

class FencedStore : public Store {
public:
    /// INNER must outlive this object. FENCING_REVISION gives this master's
    /// fencing revision now (0: it does not lead), e.g. Leadership::fencingRevision;
    /// it is called once per write. LEADER_KEY: core::kLeaderKey.
    FencedStore(Store& inner, std::string leaderKey, std::function<int64_t()> fencingRevision);

    [[nodiscard]] Result<RangeResult> range(const std::string& key, const std::string& rangeEnd = "",
                                            int64_t limit = 0, int64_t revision = 0) override;
    [[nodiscard]] Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0) override;
    [[nodiscard]] Result<int64_t> deleteRange(const std::string& key, const std::string& rangeEnd = "") override;
    [[nodiscard]] Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                                        const std::vector<Op>& failure) override;
    [[nodiscard]] Result<int64_t> watch(const std::string& key, const std::string& rangeEnd, int64_t fromRevision,
                                        std::function<void(const WatchResponse&)> cb, bool prevKv = false) override;
    void cancelWatch(int64_t id) override;
    [[nodiscard]] Result<int64_t> grantLease(int64_t ttlSeconds) override;
    [[nodiscard]] Result<int64_t> keepAlive(int64_t lease) override;
    [[nodiscard]] Result<void> revokeLease(int64_t lease) override;
    [[nodiscard]] Result<int64_t> expireLeases() override;
    [[nodiscard]] Result<void> compact(int64_t revision) override;
    int64_t revision() const override;
    std::vector<StoreMember> members() override { return inner_.members(); }

private:
    /// The fenced txn: SUCCESS runs iff the fence and COMPARES hold, FAILURE iff
    /// only the fence does; a failed fence is kNotLeader.
    [[nodiscard]] Result<TxnResult> fencedTxn(int64_t fence, const std::vector<Compare>& compares,
                                              const std::vector<Op>& success, const std::vector<Op>& failure);
    [[nodiscard]] Result<int64_t> fence();
    Compare fenceCompare(int64_t fence) const;
    /// The error for a write refused: LEADER is the leader key as read when it was.
    tl::unexpected<Error> refused(const RangeResult& leader, int64_t fence) const;

    Store& inner_;
    std::string leaderKey_;
    std::function<int64_t()> fencingRevision_;
};

}  // namespace hull::state
