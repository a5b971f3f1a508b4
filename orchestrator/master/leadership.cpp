#include "orchestrator/master/leadership.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>

#include "orchestrator/core/lifecycle.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator::master {

namespace {

int64_t steadyMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

core::LeaderKey absentAt(int64_t revision) { return {false, {}, 0, 0, revision}; }

core::LeaderKey presentAs(const state::KeyValue& kv, int64_t revision) {
    return {true, core::parseLeaderValue(kv.value), kv.createRevision, kv.lease, revision};
}

core::LeaderKey keyOf(const state::RangeResult& r, int64_t revision) {
    return r.kvs.empty() ? absentAt(revision) : presentAs(r.kvs.front(), revision);
}

// Enough rounds for everything that becomes due at once (revoke, read, grant,
// then campaign), with room to spare; a bound, so step() always returns.
constexpr int kStepRounds = 16;

}  // namespace

Leadership::Leadership(state::Store& store, LeadershipOptions options)
    : store_(store),
      options_(std::move(options)),
      key_(core::kLeaderKey),
      election_(options_.self, options_.election) {
    if (!options_.clockMs) options_.clockMs = steadyMs;
}

Leadership::~Leadership() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    timerCv_.notify_all();
    callsCv_.notify_all();
    if (timer_.joinable()) timer_.join();
    if (caller_.joinable()) caller_.join();
    // Not under mu_: cancelWatch waits for a callback running elsewhere, which takes it.
    int64_t id;
    {
        std::lock_guard lk(mu_);
        id = std::exchange(watchId_, 0);
        ++watchGeneration_;
    }
    if (id != 0) store_.cancelWatch(id);
}

int64_t Leadership::now() const { return options_.clockMs(); }

void Leadership::start() {
    std::lock_guard lk(mu_);
    assert(!started_);
    started_ = true;
    caller_ = std::thread([this] { callerLoop(); });
    timer_ = std::thread([this] { timerLoop(); });
}

void Leadership::step() {
    assert(!started_);
    for (int round = 0; round < kStepRounds; ++round) {
        std::vector<core::ElectionAction> actions;
        std::vector<core::ElectionEvent> events;
        {
            std::lock_guard lk(mu_);
            actions = election_.poll(now());
            events = election_.takeEvents();
            logChangesLocked(events);
        }
        deliver(events);
        if (actions.empty()) break;
        for (const auto& a : actions) execute(a);
    }
    std::vector<core::ElectionEvent> events;
    {
        std::lock_guard lk(mu_);
        events = election_.takeEvents();
        logChangesLocked(events);
    }
    deliver(events);
}

void Leadership::resign() {
    int64_t lease;
    {
        std::lock_guard lk(mu_);
        lease = election_.resign(now());
    }
    if (lease != 0) {
        if (auto r = store_.revokeLease(lease); !r)
            log::warnf("election: resign: revoke lease %lld: %s (it expires within %llds)", (long long)lease,
                       r.error().message().c_str(), (long long)options_.election.ttlSeconds);
    }
    timerCv_.notify_all();
}

core::Role Leadership::role() const {
    std::lock_guard lk(mu_);
    return election_.role(now());
}

std::string Leadership::leaderName() const {
    std::lock_guard lk(mu_);
    return election_.leader(now()).name;
}

std::string Leadership::leaderUrl() const {
    std::lock_guard lk(mu_);
    return election_.leader(now()).url;
}

int64_t Leadership::fencingRevision() const {
    std::lock_guard lk(mu_);
    return election_.fencingRevision(now());
}

std::string Leadership::lastError() const {
    std::lock_guard lk(mu_);
    return election_.lastError();
}

void Leadership::execute(const core::ElectionAction& a) {
    using Kind = core::ElectionAction::Kind;
    // SENT is read just before the call: the lease's deadline counts from it.
    const int64_t sent = now();
    switch (a.kind) {
        case Kind::Observe: observe(); break;
        case Kind::GrantLease: {
            auto r = store_.grantLease(a.ttlSeconds);
            // This master's entry in the list of masters, on the new lease (a
            // status page's only: its failure changes nothing of the election).
            if (r)
                if (auto p = store_.put(std::string(core::kMastersPrefix) + options_.self.name, core::leaderValue(options_.self), *r); !p)
                    log::warnf("master %s: cannot list itself under %s: %s", options_.self.name.c_str(), core::kMastersPrefix,
                               p.error().message().c_str());
            std::lock_guard lk(mu_);
            if (r) election_.granted(*r, sent, now());
            else election_.grantFailed(r.error().message(), sent, now());
            break;
        }
        case Kind::KeepAlive: {
            auto r = store_.keepAlive(a.lease);
            std::lock_guard lk(mu_);
            if (r) election_.renewed(a.lease, *r, sent, now());
            else election_.renewFailed(a.lease, r.error().message(), sent, now());
            break;
        }
        case Kind::Campaign: {
            // Create if absent, attached to the lease; either branch reads the
            // key back, so the answer says who holds it as of the txn.
            auto r = store_.txn({state::Compare::createRevision(key_, state::Compare::Op::Equal, 0)},
                                {state::Op::put(key_, a.value, a.lease), state::Op::get(key_)}, {state::Op::get(key_)});
            std::lock_guard lk(mu_);
            if (!r) election_.campaignFailed(a.lease, r.error().message(), sent, now());
            else if (r->ranges.size() != 1)
                election_.campaignFailed(a.lease, "the txn's answer has no read of the key", sent, now());
            else election_.campaigned(a.lease, r->succeeded, keyOf(r->ranges.front(), r->revision), sent, now());
            break;
        }
        case Kind::Revoke:
            // Best effort: a lease that is not revoked expires within its TTL.
            if (auto r = store_.revokeLease(a.lease); !r && r.error().errnum() != state::kLeaseNotFound)
                log::debugf("election: revoke lease %lld: %s", (long long)a.lease, r.error().message().c_str());
            break;
    }
    timerCv_.notify_all();
}

void Leadership::observe() {
    auto r = store_.range(key_);
    if (!r) {
        std::lock_guard lk(mu_);
        election_.readFailed(r.error().message(), now());
        return;
    }
    // The watch starts right after the read, so no change falls between them.
    int64_t old;
    uint64_t generation;
    {
        std::lock_guard lk(mu_);
        old = std::exchange(watchId_, 0);
        generation = ++watchGeneration_;
    }
    if (old != 0) store_.cancelWatch(old);
    auto w = store_.watch(key_, "", r->revision + 1,
                          [this, generation](const state::WatchResponse& resp) { onWatch(generation, resp); });
    std::lock_guard lk(mu_);
    if (!w) {
        election_.readFailed("watch: " + w.error().message(), now());
        return;
    }
    if (generation == watchGeneration_) watchId_ = *w;
    election_.keyRead(keyOf(*r, r->revision), now());
}

void Leadership::onWatch(uint64_t generation, const state::WatchResponse& resp) {
    {
        std::lock_guard lk(mu_);
        if (generation != watchGeneration_) return;
        if (resp.canceled) {
            watchId_ = 0;
            election_.watchLost(now());
        } else {
            for (const auto& ev : resp.events) {
                if (ev.kv.key != key_) continue;
                election_.keyChanged(ev.type == state::Event::Type::Put ? presentAs(ev.kv, ev.kv.modRevision)
                                                                        : absentAt(ev.kv.modRevision),
                                     now());
            }
        }
    }
    timerCv_.notify_all();
}

void Leadership::deliver(const std::vector<core::ElectionEvent>& events) {
    for (const auto& ev : events) {
        if (ev.kind == core::ElectionEvent::Kind::Elected) {
            if (options_.onElected) options_.onElected(ev.revision);
        } else {
            if (options_.onDeposed) options_.onDeposed(ev.reason);
        }
    }
}

void Leadership::logChangesLocked(const std::vector<core::ElectionEvent>& events) {
    const char* self = options_.self.name.c_str();
    for (const auto& ev : events) {
        if (ev.kind == core::ElectionEvent::Kind::Elected)
            log::infof("election: %s leads (fencing revision %lld)", self, (long long)ev.revision);
        else if (ev.reason == "resigned")
            log::infof("election: %s resigned", self);
        else
            log::warnf("election: %s stepped down: %s", self, ev.reason.c_str());
    }
    // Each change once: a store that is down would otherwise fill the log 4 times a second.
    const int64_t t = now();
    if (election_.role(t) == core::Role::Follower) {
        core::LeaderInfo leader = election_.leader(t);
        if (leader != loggedLeader_)
            log::infof("election: following %s at %s", leader.name.c_str(), leader.url.c_str());
        loggedLeader_ = std::move(leader);
    } else {
        loggedLeader_ = {};
    }
    if (election_.lastError() != loggedError_) {
        loggedError_ = election_.lastError();
        log::warnf("election: %s", loggedError_.c_str());
    }
    if (!warnedTtl_ && election_.reportedTtlSeconds() > options_.election.ttlSeconds) {
        warnedTtl_ = true;
        log::warnf("election: the store raised the lease TTL from %llds to %llds (etcd's minimum is 1.5 x its "
                   "--election-timeout): a dead leader is replaced only that long after",
                   (long long)options_.election.ttlSeconds, (long long)election_.reportedTtlSeconds());
    }
}

void Leadership::timerLoop() {
    std::unique_lock lk(mu_);
    while (!stopping_) {
        auto actions = election_.poll(now());
        if (!actions.empty()) {
            queue_.insert(queue_.end(), actions.begin(), actions.end());
            callsCv_.notify_one();
        }
        auto events = election_.takeEvents();
        logChangesLocked(events);
        if (!events.empty()) {
            lk.unlock();
            deliver(events);
            lk.lock();
            continue;  // the callbacks may have changed something (resign)
        }
        // Outcomes and watch events notify; deadlines are waited for. The wait
        // is bounded, so a clock that jumps cannot stall it for long.
        const int64_t wake = election_.nextWakeMs(), t = now();
        const int64_t wait = wake <= t ? 1 : std::min<int64_t>(wake - t, 1000);
        timerCv_.wait_for(lk, std::chrono::milliseconds(wait));
    }
}

void Leadership::callerLoop() {
    std::unique_lock lk(mu_);
    for (;;) {
        callsCv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        core::ElectionAction a = std::move(queue_.front());
        queue_.pop_front();
        lk.unlock();
        execute(a);
        lk.lock();
    }
}

}  // namespace hull::orchestrator::master
