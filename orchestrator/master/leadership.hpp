#pragma once
// Leader election among the masters sharing one store: the thin layer that
// carries out core/election.hpp's decisions on a state::Store (the lease, the
// leader key /hull/leader, its watch) and reports the outcome. The numbers and
// the clock assumptions are the core's (core/election.hpp): TTL 1 s, renewals
// every 250 ms, a leader believes in its lease until 750 ms after the last
// acknowledged renewal was sent, measured on the local monotonic clock.
//
// Threads, not the master's io_context. Store calls block (the etcd store
// speaks HTTP synchronously), and a renewal must not wait behind the master's
// own work: a long scheduling round on the io_context would delay renewals and
// depose a healthy leader. Nor may a step-down wait behind a store call that
// hangs (a partition from etcd), since nodes must hear from a deposed leader no
// more. So start() runs two threads:
//  - the timer thread holds the state machine's clock: it polls it at each
//    deadline and on every outcome, queues the actions and runs the callbacks.
//    It never calls the store, so a step-down happens on time however long a
//    call hangs;
//  - the caller thread makes the store calls, one at a time, in order, and
//    feeds their outcomes back. (A renewal that hangs therefore delays the
//    next one: the leader steps down at its deadline, as it should.)
// role(), isLeader() and fencingRevision() read the clock themselves: they
// never report a lease past its deadline, even between two polls.
//
// Tests drive it by hand instead: step() polls and runs every due action on
// the calling thread, with a made-up clock.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/core/election.hpp"
#include "orchestrator/state/store.hpp"

namespace hull::orchestrator::master {

struct LeadershipOptions {
    /// This master: its name and the URL it advertises (followers redirect there).
    core::LeaderInfo self;
    core::ElectionOptions election;
    /// The local monotonic clock in ms (default: steady_clock). start() needs a
    /// clock that runs at real speed; step() takes any.
    std::function<int64_t()> clockMs;
    /// Run on the timer thread (on step()'s caller without start()), in order,
    /// never under a lock of the Leadership's: they may call its accessors and
    /// resign(), and should hand longer work to the master's own loop.
    std::function<void(int64_t fencingRevision)> onElected;
    std::function<void(const std::string& why)> onDeposed;
};

class Leadership {
public:
    /// Does nothing yet: start() runs it on its threads, step() by hand. STORE
    /// must outlive this object.
    Leadership(state::Store& store, LeadershipOptions options);
    /// Stops the threads (waiting for a store call in progress) and the watch.
    /// Does not resign: the lease runs out by itself, as if the process died.
    ~Leadership();
    Leadership(const Leadership&) = delete;
    Leadership& operator=(const Leadership&) = delete;

    /// Campaigns and keeps the lease alive on two threads of its own, from now
    /// until destruction. Not with step().
    void start();
    /// Without start(): polls the election at the clock's now and runs the due
    /// actions, and what their outcomes make due at once, on this thread; then
    /// runs the callbacks. A test calls it as often as the timer thread would.
    void step();
    /// Steps down for good and revokes the lease before returning, so the key
    /// is deleted and a follower takes over at once (a clean shutdown). The
    /// master keeps following the key afterwards. onDeposed("resigned") comes
    /// from the timer thread (or the next step()).
    void resign();

    core::Role role() const;
    bool isLeader() const { return role() == core::Role::Leader; }
    /// The leader as known now: this master when it leads, the key's holder
    /// when it follows; "" when no leader is known.
    std::string leaderName() const;
    std::string leaderUrl() const;
    /// While leading, the leader key's create_revision: what the fenced store
    /// (state/fenced_store.hpp) makes every write conditional on. Else 0.
    int64_t fencingRevision() const;
    /// The last store call that failed, for status pages ("" before any).
    std::string lastError() const;

private:
    int64_t now() const;
    void execute(const core::ElectionAction& action);
    void observe();
    void onWatch(uint64_t generation, const state::WatchResponse& response);
    void deliver(const std::vector<core::ElectionEvent>& events);
    void logChangesLocked(const std::vector<core::ElectionEvent>& events);
    void timerLoop();
    void callerLoop();

    state::Store& store_;
    LeadershipOptions options_;
    const std::string key_;

    mutable std::mutex mu_;
    core::Election election_;
    std::condition_variable timerCv_, callsCv_;
    std::deque<core::ElectionAction> queue_;  // for the caller thread
    bool started_ = false, stopping_ = false;
    int64_t watchId_ = 0;
    uint64_t watchGeneration_ = 0;  // responses of an earlier watch are ignored
    std::string loggedError_;
    core::LeaderInfo loggedLeader_;
    bool warnedTtl_ = false;
    std::thread timer_, caller_;
};

}  // namespace hull::orchestrator::master
