#include "orchestrator/core/election.hpp"

#include <algorithm>

#include "orchestrator/core/lifecycle.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator::core {

namespace {
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int64_t kNow = std::numeric_limits<int64_t>::min();
}  // namespace

const char* roleName(Role role) {
    switch (role) {
        case Role::Candidate: return "candidate";
        case Role::Follower: return "follower";
        case Role::Leader: return "leader";
    }
    return "candidate";
}

std::string leaderValue(const LeaderInfo& who) {
    json::Value v = json::Value::object();
    v.set("name", who.name);
    v.set("url", who.url);
    return v.dump();
}

LeaderInfo parseLeaderValue(const std::string& value) {
    auto v = json::Value::parse(value);
    if (!v || !v->isObject() || !v->find("name") || !v->find("name")->isString()) return {value, ""};
    return {json::stringOf(*v, "name"), json::stringOf(*v, "url")};
}

Election::Election(LeaderInfo self, ElectionOptions options)
    : self_(std::move(self)), options_(options), value_(leaderValue(self_)), ttlMs_(options_.ttlMs()) {}

std::vector<ElectionAction> Election::poll(int64_t nowMs) {
    expire(nowMs);
    settle(nowMs);
    std::vector<ElectionAction> out;
    for (int64_t lease : revokes_) out.push_back({ElectionAction::Kind::Revoke, lease});
    revokes_.clear();
    if (!watching_ && !reading_ && nowMs >= readAtMs_) {
        reading_ = true;
        out.push_back({ElectionAction::Kind::Observe});
    }
    if (!resigned_ && lease_ == 0 && !granting_ && nowMs >= grantAtMs_) {
        granting_ = true;
        out.push_back({ElectionAction::Kind::GrantLease, 0, options_.ttlSeconds});
    }
    if (lease_ != 0 && !renewing_ && nowMs >= lastRenewMs_ + options_.renewEveryMs) {
        renewing_ = true;
        lastRenewMs_ = nowMs;
        out.push_back({ElectionAction::Kind::KeepAlive, lease_});
    }
    if (mayCampaign() && nowMs >= campaignAtMs_ && nowMs < validUntilMs_) {
        campaigning_ = true;
        out.push_back({ElectionAction::Kind::Campaign, lease_, 0, value_});
    }
    return out;
}

int64_t Election::nextWakeMs() const {
    if (!revokes_.empty()) return kNow;
    int64_t t = kNever;
    if (!watching_ && !reading_) t = std::min(t, readAtMs_);
    if (!resigned_ && lease_ == 0 && !granting_) t = std::min(t, grantAtMs_);
    if (lease_ != 0) {
        if (!renewing_) t = std::min(t, lastRenewMs_ + options_.renewEveryMs);
        t = std::min(t, validUntilMs_);  // the lease's deadline: a leader steps down then
    }
    if (mayCampaign()) t = std::min(t, campaignAtMs_);
    return t;
}

bool Election::mayCampaign() const {
    // Only on fresh knowledge (a watch running) that the key is absent: a
    // campaign costs etcd a raft write even when it loses.
    return !resigned_ && lease_ != 0 && !campaigning_ && !leading_ && watching_ && keyKnown_ && !key_.present;
}

void Election::keyRead(const LeaderKey& key, int64_t nowMs) {
    expire(nowMs);
    reading_ = false;
    watching_ = true;
    observe(key);
    settle(nowMs);
}

void Election::readFailed(const std::string& why, int64_t nowMs) {
    expire(nowMs);
    reading_ = false;
    readAtMs_ = nowMs + options_.retryMs;
    lastError_ = "read the leader key: " + why;
    settle(nowMs);
}

void Election::keyChanged(const LeaderKey& key, int64_t nowMs) {
    expire(nowMs);
    observe(key);
    settle(nowMs);
}

void Election::watchLost(int64_t nowMs) {
    expire(nowMs);
    watching_ = false;
    readAtMs_ = nowMs;
    settle(nowMs);
}

void Election::granted(int64_t lease, int64_t sentMs, int64_t doneMs) {
    expire(doneMs);
    granting_ = false;
    if (resigned_ || lease_ != 0) {
        revokes_.push_back(lease);
        return settle(doneMs);
    }
    lease_ = lease;
    remember(lease);
    lastAckSentMs_ = lastRenewMs_ = sentMs;
    validUntilMs_ = sentMs + ttlMs_ - options_.marginMs;
    expire(doneMs);  // a grant answered too late is of no use
    settle(doneMs);
}

void Election::grantFailed(const std::string& why, int64_t, int64_t doneMs) {
    expire(doneMs);
    granting_ = false;
    grantAtMs_ = doneMs + options_.retryMs;
    lastError_ = "grant a lease: " + why;
    settle(doneMs);
}

void Election::renewed(int64_t lease, int64_t ttlSeconds, int64_t sentMs, int64_t doneMs) {
    expire(doneMs);  // first: an answer after the deadline finds the lease dropped already
    if (lease != lease_ || lease == 0) return settle(doneMs);
    renewing_ = false;
    if (ttlSeconds <= 0) {
        // etcd answers a keepalive of an unknown lease with TTL 0, not an error.
        dropLease("lease " + std::to_string(lease) + " is gone (its renewal reported TTL " +
                      std::to_string(ttlSeconds) + ")",
                  doneMs);
        return settle(doneMs);
    }
    reportedTtlSeconds_ = ttlSeconds;
    // etcd only ever raises a TTL (to its minimum); a smaller one is believed.
    ttlMs_ = std::min(options_.ttlMs(), ttlSeconds * 1000);
    lastAckSentMs_ = std::max(lastAckSentMs_, sentMs);
    validUntilMs_ = lastAckSentMs_ + ttlMs_ - options_.marginMs;
    expire(doneMs);  // a smaller TTL may have moved the deadline before now
    settle(doneMs);
}

void Election::renewFailed(int64_t lease, const std::string& why, int64_t, int64_t doneMs) {
    expire(doneMs);
    if (lease != lease_ || lease == 0) return settle(doneMs);
    lastError_ = "renew lease " + std::to_string(lease) + ": " + why;
    dropLease("renewal of lease " + std::to_string(lease) + " failed: " + why, doneMs);
    settle(doneMs);
}

void Election::campaigned(int64_t, bool, const LeaderKey& key, int64_t, int64_t doneMs) {
    expire(doneMs);
    campaigning_ = false;
    // Won or lost, the txn tells who holds the key as of its revision; the
    // master leads iff that is its current lease (settle), so a win with a
    // lease dropped meanwhile, or one a later watch event overtook, elects
    // nobody.
    observe(key);
    settle(doneMs);
}

void Election::campaignFailed(int64_t, const std::string& why, int64_t, int64_t doneMs) {
    expire(doneMs);
    campaigning_ = false;
    campaignAtMs_ = doneMs + options_.retryMs;
    lastError_ = "campaign: " + why;
    settle(doneMs);
}

int64_t Election::resign(int64_t nowMs) {
    expire(nowMs);
    resigned_ = true;
    const int64_t lease = lease_;
    lease_ = 0;
    renewing_ = false;
    leaseLoss_ = "resigned";
    settle(nowMs);
    return lease;
}

Role Election::role(int64_t nowMs) const {
    if (leading_) return nowMs < validUntilMs_ ? Role::Leader : Role::Candidate;
    // A key held by a lease this master dropped is a leftover on its way out
    // (revoked or expiring): nobody leads through it.
    if (!keyKnown_ || !key_.present || isOwn(key_.lease)) return Role::Candidate;
    return Role::Follower;
}

void Election::remember(int64_t lease) {
    if (own_.size() == kOwnLeases) own_.erase(own_.begin());
    own_.push_back(lease);
}

bool Election::isOwn(int64_t lease) const { return std::find(own_.begin(), own_.end(), lease) != own_.end(); }

LeaderInfo Election::leader(int64_t nowMs) const {
    switch (role(nowMs)) {
        case Role::Leader: return self_;
        case Role::Follower: return key_.holder;
        case Role::Candidate: break;
    }
    return {};
}

int64_t Election::fencingRevision(int64_t nowMs) const { return role(nowMs) == Role::Leader ? term_ : 0; }

std::vector<ElectionEvent> Election::takeEvents() { return std::exchange(events_, {}); }

void Election::expire(int64_t nowMs) {
    if (lease_ == 0 || nowMs < validUntilMs_) return;
    dropLease("no renewal of lease " + std::to_string(lease_) + " acknowledged within " +
                  secondsText(ttlMs_ - options_.marginMs) + " of sending it (TTL " + secondsText(ttlMs_) +
                  " less a margin of " + secondsText(options_.marginMs) + ")",
              nowMs);
}

void Election::dropLease(const std::string& why, int64_t nowMs) {
    // Revoked, best effort: if it still lives, that deletes the key it holds
    // and a successor need not wait for the TTL.
    revokes_.push_back(lease_);
    lease_ = 0;
    renewing_ = false;
    leaseLoss_ = why;
    grantAtMs_ = nowMs;
}

void Election::observe(const LeaderKey& key) {
    // A txn's answer and the watch race each other: the later revision wins.
    if (keyKnown_ && key.revision < key_.revision) return;
    keyKnown_ = true;
    key_ = key;
}

void Election::settle(int64_t nowMs) {
    const bool lead = !resigned_ && lease_ != 0 && nowMs < validUntilMs_ && keyKnown_ && key_.present &&
                      key_.lease == lease_;
    if (leading_ && (!lead || key_.createRevision != term_)) {
        events_.push_back({ElectionEvent::Kind::Deposed, term_, depositionReason()});
        leading_ = false;
        term_ = 0;
    }
    if (!leading_ && lead) {
        leading_ = true;
        term_ = key_.createRevision;
        events_.push_back({ElectionEvent::Kind::Elected, term_, ""});
    }
}

std::string Election::depositionReason() const {
    if (resigned_) return "resigned";
    if (lease_ == 0) return leaseLoss_;
    if (!key_.present) return "the leader key was deleted (revision " + std::to_string(key_.revision) + ")";
    if (key_.lease != lease_) {
        std::string who = key_.holder.name + (key_.holder.url.empty() ? "" : " at " + key_.holder.url);
        return "the leader key is now held by " + who + " (created at revision " +
               std::to_string(key_.createRevision) + ")";
    }
    return "the leader key was created anew (revision " + std::to_string(key_.createRevision) + ")";
}

}  // namespace hull::orchestrator::core
