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

SlotWant DesiredService::want(int slot) const {
    auto it = pins.find(slot);
    return it == pins.end() ? SlotWant{generation, 0} : it->second;
}

const Service* DesiredService::specOf(int64_t g) const {
    if (g == generation) return &spec;
    auto it = versions.find(g);
    return it == versions.end() ? nullptr : &it->second;
}

namespace {

Action stop(const std::string& service, int slot, const std::string& id, std::string reason) {
    Action a;
    a.kind = Action::Kind::Stop;
    a.service = service;
    a.slot = slot;
    a.container = id;
    a.reason = std::move(reason);
    return a;
}

Action start(const std::string& service, int slot, SlotWant w, int restarts, std::string reason, TimePoint notBefore) {
    Action a;
    a.service = service;
    a.slot = slot;
    a.generation = w.generation;
    a.incarnation = w.incarnation;
    a.restarts = restarts;
    a.reason = std::move(reason);
    a.notBefore = notBefore;
    return a;
}

bool matches(const Observed& o, SlotWant w) { return o.generation == w.generation && o.incarnation == w.incarnation; }

/// Why a container of a slot that wants W is replaced: another spec, or only another incarnation.
std::string replaceReason(const Observed& o, SlotWant w) { return o.generation != w.generation ? "update" : "phoenix"; }

/// A master's slot with its live containers ALIVE (oldest first; none failed
/// or stopping): keep the newest one of the wanted (generation, incarnation),
/// replace the others in the service's order.
void replaceManaged(const DesiredService& d, int slot, SlotWant w, const std::vector<const Observed*>& alive,
                    TimePoint now, std::vector<Action>& out) {
    const std::string& name = d.spec.name;
    const Observed* keeper = nullptr;
    for (const auto* o : alive)
        if (matches(*o, w)) keeper = o;  // the newest: ALIVE is oldest first
    if (keeper) {
        // Start-first: the others go once the wanted one is ready (they serve until then).
        if (d.order == ReplaceOrder::StartFirst && !keeper->ready) return;
        for (const auto* o : alive)
            if (o != keeper) out.push_back(stop(name, slot, o->id, replaceReason(*o, w)));
        return;
    }
    if (d.order == ReplaceOrder::StopFirst) {
        // The new one starts once these have ended (see plan()).
        for (const auto* o : alive) out.push_back(stop(name, slot, o->id, replaceReason(*o, w)));
        return;
    }
    out.push_back(start(name, slot, w, 0, replaceReason(*alive.back(), w), now));
}

}  // namespace

std::vector<Action> plan(const std::vector<DesiredService>& desired, const std::vector<Observed>& observedAll,
                         TimePoint now, const std::set<std::string>& unreadable) {
    std::vector<Action> out;
    std::set<std::string> declared = unreadable;
    for (const auto& d : desired) declared.insert(d.spec.name);

    // Containers being stopped count for nothing but the stop-first wait (below).
    std::vector<Observed> observed;
    std::vector<const Observed*> stopping;
    for (const auto& o : observedAll)
        if (o.stopping) stopping.push_back(&o);
        else observed.push_back(o);

    // Containers of services no longer declared go.
    for (const auto& o : observed)
        if (!declared.count(o.service) && live(o)) out.push_back(stop(o.service, o.slot, o.id, "deleted"));

    for (const auto& d : desired) {
        const Service& s = d.spec;
        if (unreadable.count(s.name)) continue;
        const bool managed = d.managed();
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
                    if (live(*o)) out.push_back(stop(s.name, slot, o->id, d.slots ? "unassigned" : "scale down"));

        // A standalone service: one replacement (update or phoenix) in flight at a time.
        bool replacing = false;
        if (!managed)
            for (int slot : wanted) {
                int liveCount = 0;
                for (const auto* o : slots[slot]) liveCount += live(*o) && !o->livenessFailed;
                if (liveCount > 1) replacing = true;
            }

        for (int slot : wanted) {
            const SlotWant w = managed ? d.want(slot) : SlotWant{d.generation, 0};
            // A pin without its spec: the caller checks for that; left alone if it did not.
            const Service* spec = d.specOf(w.generation);
            if (!spec) continue;
            std::vector<const Observed*> alive;
            const Observed* lastEnded = nullptr;
            for (const auto* o : slots[slot]) {
                if (!live(*o)) {
                    if (!lastEnded || o->finished >= lastEnded->finished) lastEnded = o;
                    continue;
                }
                if (o->livenessFailed) {
                    out.push_back(stop(s.name, slot, o->id, o->startupFailed ? "startup" : "liveness"));
                    continue;
                }
                alive.push_back(o);
            }
            if (alive.empty()) {
                // Being stopped for liveness: the restart follows once it has ended.
                bool failing = std::any_of(slots[slot].begin(), slots[slot].end(),
                                           [](const Observed* o) { return live(*o) && o->livenessFailed; });
                if (failing) continue;
                // Stop-first: nothing new while an old one of the slot is still on its way out.
                if (managed && d.order == ReplaceOrder::StopFirst &&
                    std::any_of(stopping.begin(), stopping.end(), [&](const Observed* o) {
                        return o->service == s.name && o->slot == slot && live(*o);
                    }))
                    continue;
                if (!lastEnded) {
                    out.push_back(start(s.name, slot, w, 0, "replica", now));
                    continue;
                }
                // The master wants another container than the one that ended: a new one, now.
                if (managed && !matches(*lastEnded, w)) {
                    out.push_back(start(s.name, slot, w, 0, replaceReason(*lastEnded, w), now));
                    continue;
                }
                if (!wantsRestart(*spec, *lastEnded)) continue;
                // A container that stayed up for resetAfter starts the count again.
                bool ranLong = lastEnded->finished - lastEnded->started >= spec->backoff.resetAfter;
                int restarts = ranLong ? 1 : lastEnded->restarts + 1;
                auto delay = backoffDelay(spec->backoff.initial, spec->backoff.factor, spec->backoff.max, restarts - 1);
                out.push_back(start(s.name, slot, w, restarts, "restart", std::max(now, lastEnded->finished + delay)));
                continue;
            }
            if (managed) {
                replaceManaged(d, slot, w, alive, now, out);
                continue;
            }
            if (alive.size() > 1) {
                // A replacement in flight: the newest is the new one; the older go once it is ready.
                const Observed* newest = alive.back();
                if (newest->ready)
                    for (size_t i = 0; i + 1 < alive.size(); ++i)
                        out.push_back(stop(s.name, slot, alive[i]->id,
                                           alive[i]->generation != d.generation ? "update" : "phoenix"));
                continue;
            }
            const Observed* c = alive.front();
            bool outdated = c->generation != d.generation;
            bool old = s.maxAge && now - c->started >= *s.maxAge;
            if ((outdated || old) && !replacing) {
                // The new one first; the old one goes when the new one is ready (above).
                out.push_back(start(s.name, slot, w, 0, outdated ? "update" : "phoenix", now));
                replacing = true;
            }
        }
    }
    return out;
}

}  // namespace hull::orchestrator
