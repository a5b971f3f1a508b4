#include "orchestrator/core/reconcile.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "orchestrator/core/probes.hpp"

namespace hull::orchestrator {

namespace {

bool live(const Observed& o) { return o.state != Observed::State::Exited; }

/// Should an ended container be replaced, by the restart policy?
bool wantsRestart(const Service& s, const Observed& ended) {
    switch (s.restart) {
    case Service::Restart::Always: return true;
    case Service::Restart::Never: return false;
    case Service::Restart::OnFailure:
        return ended.livenessFailed || !ended.exitCode || *ended.exitCode != 0;
    }
    return true;
}

}  // namespace

std::vector<int> wantedSlots(const DesiredService& d) {
    std::vector<int> out;
    if (d.slots) {
        out = *d.slots;
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        std::erase_if(out, [](int s) { return s < 0; });
        return out;
    }
    for (int slot = 0; slot < d.spec.replicas; ++slot) out.push_back(slot);
    return out;
}

bool wantsSlot(const DesiredService& d, int slot) {
    if (!d.slots) return slot >= 0 && slot < d.spec.replicas;
    return std::find(d.slots->begin(), d.slots->end(), slot) != d.slots->end();
}

std::vector<Action> plan(const std::vector<DesiredService>& desired, const std::vector<Observed>& observed,
                         TimePoint now, const std::set<std::string>& unreadable) {
    std::vector<Action> out;
    std::set<std::string> declared = unreadable;
    for (const auto& d : desired) declared.insert(d.spec.name);

    // Containers of services no longer declared go.
    for (const auto& o : observed)
        if (!declared.count(o.service) && live(o))
            out.push_back({Action::Kind::Stop, o.service, o.slot, 0, 0, o.id, "deleted", TimePoint{0}});

    for (const auto& d : desired) {
        const Service& s = d.spec;
        if (unreadable.count(s.name)) continue;
        const std::vector<int> wanted = wantedSlots(d);
        std::map<int, std::vector<const Observed*>> slots;
        for (const auto& o : observed)
            if (o.service == s.name) slots[o.slot].push_back(&o);
        for (auto& [slot, list] : slots)
            std::sort(list.begin(), list.end(), [](const Observed* a, const Observed* b) { return a->started < b->started; });

        // Scale down: every live container of a slot not wanted (beyond replicas, or not assigned here).
        for (const auto& [slot, list] : slots)
            if (!wantsSlot(d, slot))
                for (const auto* o : list)
                    if (live(*o))
                        out.push_back({Action::Kind::Stop, s.name, slot, 0, 0, o->id, d.slots ? "unassigned" : "scale down",
                                       TimePoint{0}});

        // One replacement (update or phoenix) in flight per service at a time.
        bool replacing = false;
        for (int slot : wanted) {
            int liveCount = 0;
            for (const auto* o : slots[slot]) liveCount += live(*o) && !o->livenessFailed;
            if (liveCount > 1) replacing = true;
        }

        for (int slot : wanted) {
            std::vector<const Observed*> alive;
            const Observed* lastEnded = nullptr;
            for (const auto* o : slots[slot]) {
                if (!live(*o)) {
                    if (!lastEnded || o->finished >= lastEnded->finished) lastEnded = o;
                    continue;
                }
                if (o->livenessFailed) {
                    out.push_back({Action::Kind::Stop, s.name, slot, 0, 0, o->id, o->startupFailed ? "startup" : "liveness",
                                   TimePoint{0}});
                    continue;
                }
                alive.push_back(o);
            }
            if (alive.empty()) {
                // Being stopped for liveness: the restart follows once it has ended.
                bool stopping = std::any_of(slots[slot].begin(), slots[slot].end(),
                                            [](const Observed* o) { return live(*o) && o->livenessFailed; });
                if (stopping) continue;
                if (!lastEnded) {
                    out.push_back({Action::Kind::Start, s.name, slot, d.generation, 0, "", "replica", now});
                    continue;
                }
                if (!wantsRestart(s, *lastEnded)) continue;
                // A container that stayed up for resetAfter starts the count again.
                bool ranLong = lastEnded->finished - lastEnded->started >= s.backoff.resetAfter;
                int restarts = ranLong ? 1 : lastEnded->restarts + 1;
                auto delay = backoffDelay(s.backoff.initial, s.backoff.factor, s.backoff.max, restarts - 1);
                out.push_back({Action::Kind::Start, s.name, slot, d.generation, restarts, "", "restart",
                               std::max(now, lastEnded->finished + delay)});
                continue;
            }
            if (alive.size() > 1) {
                // A replacement in flight: the newest is the new one; the older go once it is ready.
                const Observed* newest = alive.back();
                if (newest->ready)
                    for (size_t i = 0; i + 1 < alive.size(); ++i)
                        out.push_back({Action::Kind::Stop, s.name, slot, 0, 0, alive[i]->id,
                                       alive[i]->generation != d.generation ? "update" : "phoenix", TimePoint{0}});
                continue;
            }
            const Observed* c = alive.front();
            bool outdated = c->generation != d.generation;
            bool old = s.maxAge && now - c->started >= *s.maxAge;
            if ((outdated || old) && !replacing) {
                // The new one first; the old one goes when the new one is ready (above).
                out.push_back({Action::Kind::Start, s.name, slot, d.generation, 0, "", outdated ? "update" : "phoenix", now});
                replacing = true;
            }
        }
    }
    return out;
}

}  // namespace hull::orchestrator
