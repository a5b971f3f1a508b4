#include "orchestrator/master/cluster.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <malloc.h>

#include "orchestrator/core/constraints.hpp"
#include "orchestrator/core/lifecycle.hpp"
#include "orchestrator/core/phoenix.hpp"
#include "orchestrator/core/rollout.hpp"
#include "orchestrator/core/scheduler.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator::master {

using json::Value;

namespace {

Error storeError(const Error& e) { return Error::plain(EIO, "store: " + e.message()); }

/// The host sides of a service's ports (validated when it was applied).
std::vector<std::string> hostPorts(const Service& s) {
    auto h = core::hostPorts(s.ports);
    return h ? *h : std::vector<std::string>{};
}

/// The scheduler's view of a service; its placement rules were checked at apply.
core::ServiceDemand demandOf(const Service& s) {
    core::ServiceDemand d;
    d.name = s.name;
    d.cpus = s.requests.cpus;
    d.memory = s.requests.memory;
    for (const auto& c : s.placement.constraints)
        if (auto parsed = core::parseConstraint(c)) d.constraints.push_back(*parsed);
    if (auto key = core::parseSpreadKey(s.placement.spread)) d.spreadLabel = *key;
    d.strategy = s.placement.strategy == "binpack" ? core::ServiceDemand::Strategy::Binpack : core::ServiceDemand::Strategy::Spread;
    d.hostPorts = hostPorts(s);
    return d;
}

/// Placement rules a master must understand before it stores a service.
Result<void> checkPlacement(const Service& s, const std::string& source) {
    for (size_t i = 0; i < s.placement.constraints.size(); ++i)
        if (auto c = core::parseConstraint(s.placement.constraints[i]); !c)
            return failInvalid(source + ": placement.constraints[" + std::to_string(i) + "]: " + c.error().message());
    if (auto k = core::parseSpreadKey(s.placement.spread); !k)
        return failInvalid(source + ": placement.spread: " + k.error().message());
    return {};
}

state::Op putOp(std::string key, std::string value) {
    state::Op op;
    op.kind = state::Op::Kind::Put;
    op.key = std::move(key);
    op.value = std::move(value);
    return op;
}

state::Op deleteOp(std::string key, std::string rangeEnd = "") {
    state::Op op;
    op.kind = state::Op::Kind::Delete;
    op.key = std::move(key);
    op.rangeEnd = std::move(rangeEnd);
    return op;
}

}  // namespace

Result<std::unique_ptr<Cluster>> Cluster::open(std::unique_ptr<state::Store> store, ClusterOptions o, int64_t now) {
    std::unique_ptr<Cluster> c(new Cluster(std::move(store), o));
    TRY(c->load(now));
    return c;
}

Result<void> Cluster::load(int64_t now) {
    auto services = store_->range(keys::kServices, state::prefixEnd(keys::kServices));
    if (!services) return fail(storeError(services.error()));
    for (const auto& kv : services->kvs) {
        std::string name = kv.key.substr(keys::kServices.size());
        auto r = decodeService(kv.value);
        if (!r) {
            // Written by a newer hull, or damaged: its placements stay as they
            // are (nodes keep running it) until a hull that reads it takes over.
            unreadable_.insert(name);
            event("error", name, "", "stored service unreadable, its replicas are left as they are: " + r.error().message(), now);
            continue;
        }
        services_[name] = std::move(*r);
    }
    auto nodes = store_->range(keys::kNodes, state::prefixEnd(keys::kNodes));
    if (!nodes) return fail(storeError(nodes.error()));
    for (const auto& kv : nodes->kvs)
        if (auto r = decodeNode(kv.value)) nodes_[r->name] = std::move(*r);
        else log::errorf("master: %s: %s", kv.key.c_str(), r.error().message().c_str());
    auto placements = store_->range(keys::kPlacements, state::prefixEnd(keys::kPlacements));
    if (!placements) return fail(storeError(placements.error()));
    for (const auto& kv : placements->kvs) {
        auto key = placementKey(kv.key);
        if (!key) {
            log::errorf("master: %s: %s", kv.key.c_str(), key.error().message().c_str());
            continue;
        }
        auto p = decodePlacement(kv.value);
        if (!p) {
            // Its slot cannot be known, so its service is left as it is, like
            // one whose spec cannot be read: rounds skip it, nothing rewrites
            // the record, and nodes keep what they run of it.
            if (unreadable_.insert(key->first).second) {
                services_.erase(key->first);
                event("error", key->first, "", "stored placement of slot " + std::to_string(key->second) +
                                                   " unreadable, the service's replicas are left as they are: " + p.error().message(),
                      now);
            }
            continue;
        }
        placements_[*key] = std::move(*p);
    }
    auto history = store_->range(keys::kHistory, state::prefixEnd(keys::kHistory));
    if (!history) return fail(storeError(history.error()));
    for (const auto& kv : history->kvs) {
        std::string rest = kv.key.substr(keys::kHistory.size());
        std::string name = rest.substr(0, rest.rfind('/'));
        if (auto h = decodeHistory(kv.value)) history_[name][h->generation] = std::move(*h);
        else log::errorf("master: %s: %s", kv.key.c_str(), h.error().message().c_str());
    }
    // Records of a hull before generations in placements: the service's.
    for (auto& [key, p] : placements_) {
        auto svc = services_.find(key.first);
        if (svc == services_.end()) continue;
        if (!p.generation) p.generation = svc->second.generation;
        for (auto& c : p.retiring)
            if (!c.generation) c.generation = svc->second.generation;
    }
    // Services of a hull before VIPs get theirs now.
    for (auto& [name, r] : services_)
        if (r.vip.empty()) {
            r.vip = freeVip();
            if (auto put = store_->put(keys::service(name), encodeService(r)); !put) return fail(storeError(put.error()));
        }
    // A rollout in progress goes on: its slots' new copies are watched from now.
    for (const auto& [key, p] : placements_)
        if (auto svc = services_.find(key.first);
            svc != services_.end() && svc->second.rollout.state == "updating" && p.generation == svc->second.generation)
            watches_[key].askedAt = now;
    // A master restart restarts no container: known nodes count as heard from
    // now, with restartGrace (not grace) to find this master again; a node's
    // slots move only if it stays away longer.
    for (const auto& [name, r] : nodes_)
        live_[name].lastHeartbeat = now + std::max<int64_t>(0, (o_.restartGrace - o_.grace).count());
    for (auto& [name, l] : live_) l.down = false;
    log::infof("master: %zu services, %zu nodes, %zu placements", services_.size(), nodes_.size(), placements_.size());
    return {};
}

void Cluster::event(const std::string& kind, const std::string& service, const std::string& container,
                    const std::string& msg, int64_t now) {
    (void)now;
    events_.push_back({nextEvent_++, o_.wallMs(), kind, service, container, msg});
    while (events_.size() > o_.events) events_.pop_front();
    log::infof("master: %s %s%s%s", kind.c_str(), service.c_str(), service.empty() ? "" : ": ", msg.c_str());
}

// ---- services ----

Result<ApplyReply> Cluster::apply(const std::string& source, const std::string& text, int64_t now) {
    auto svc = parseService(text, source);
    if (!svc) return fail(Error::invalid(svc.error().message()));
    TRY(checkPlacement(*svc, source));
    // Two services cannot share a host port: every node publishes both.
    for (const auto& [name, other] : services_)
        if (name != svc->name)
            if (auto clash = portClash(*svc, other.spec); !clash.empty())
                return failInvalid(source + ": ports: " + clash + " is published by service \"" + name + "\" already");
    ServiceRecord r;
    r.spec = *svc;
    r.updated = o_.wallMs();
    auto old = services_.find(svc->name);
    bool rollout = false;
    if (old != services_.end()) r.vip = old->second.vip;
    // An autoscaled service applied again keeps the replicas the autoscaler
    // chose (within the new bounds): the file's `replicas` is where it starts.
    if (old != services_.end() && old->second.spec.autoscale && r.spec.autoscale)
        r.spec.replicas = std::clamp(old->second.spec.replicas, r.spec.autoscale->min, r.spec.autoscale->max);
    if (r.vip.empty() && (r.vip = freeVip()).empty())
        return fail(Error::plain(ENOSPC, source + ": the service CIDR " + o_.serviceCidr.str() + " has no address left for a VIP"));
    if (old == services_.end()) {
        // A service applied before under this name (deleted since) starts over.
        r.generation = r.lastGeneration = 1;
    } else if (sameTemplate(old->second.spec, *svc)) {
        // The same file again, or only the replica count, placement, update or
        // failover changed: running replicas stay as they are.
        r.generation = old->second.generation;
        r.lastGeneration = old->second.lastGeneration;
        r.rollout = old->second.rollout;
        if (old->second.spec == r.spec && old->second.vip == r.vip) return ApplyReply{svc->name, r.generation};
    } else {
        // A new template: rolled out slot by slot (core/rollout.hpp), from the
        // generation the replicas run, or, during a rollout that has not
        // completed, from the one it started from.
        rollout = true;
        r.generation = r.lastGeneration = old->second.lastGeneration + 1;
        const RolloutRecord& was = old->second.rollout;
        r.rollout.state = "updating";
        r.rollout.from = was.state == "updating" || was.state == "paused" ? was.from : old->second.generation;
        r.rollout.to = r.generation;
        r.rollout.started = r.updated;
    }
    std::vector<state::Op> ops{putOp(keys::service(svc->name), encodeService(r))};
    std::optional<HistoryRecord> added;
    std::vector<int64_t> dropped;  // generations of its history that go
    if (r.generation != (old == services_.end() ? 0 : old->second.generation)) {
        added = HistoryRecord{r.generation, r.spec, r.updated, rollout ? "updating" : "", "", "apply"};
        dropped = historyOps(svc->name, *added, ops);
    }
    if (auto t = store_->txn({}, ops, {}); !t) return fail(storeError(t.error()));
    if (added) history_[svc->name][added->generation] = std::move(*added);
    for (int64_t g : dropped) history_[svc->name].erase(g);
    services_[svc->name] = r;
    unreadable_.erase(svc->name);
    dirtyServices_.insert(svc->name);
    specChanged_.insert(svc->name);
    if (rollout) {
        // Slots moved in the rollout before (to the generation now replaced) are watched afresh.
        forgetWatches(svc->name);
        event("rollout", svc->name, "", "started: generation " + std::to_string(r.rollout.from) + " -> " +
                                              std::to_string(r.generation) + " (" + std::to_string(svc->update.parallelism) +
                                              " at a time, " + orderName(svc->update.order) + ")",
              now);
    }
    event("apply", svc->name, "", "generation " + std::to_string(r.generation) + ", " + std::to_string(svc->replicas) + " replicas",
          now);
    return ApplyReply{svc->name, r.generation};
}

Result<ScaleReply> Cluster::scale(const std::string& name, int64_t replicas, int64_t now) {
    auto it = services_.find(name);
    if (it == services_.end()) return fail(Error::plain(ENOENT, "no service \"" + name + "\" (hull get services lists them)"));
    if (replicas < 0 || replicas > 100000) return failInvalid("replicas: expected a number from 0 to 100000");
    if (const auto& a = it->second.spec.autoscale)
        return fail(Error::plain(EBUSY, "service \"" + name + "\" is autoscaled (" + std::to_string(a->min) + " to " +
                                            std::to_string(a->max) + " replicas, now " +
                                            std::to_string(it->second.spec.replicas) +
                                            "): change autoscale.min and max in its file and apply it, or remove autoscale "
                                            "to set replicas by hand"));
    return rescale(name, replicas, "scale", std::to_string(replicas) + " replicas", now);
}

Result<ScaleReply> Cluster::rescale(const std::string& name, int64_t replicas, const std::string& kind, const std::string& why,
                                    int64_t now) {
    auto it = services_.find(name);
    if (it == services_.end()) return fail(Error::plain(ENOENT, "no service \"" + name + "\""));
    ServiceRecord r = it->second;
    r.spec.replicas = int(replicas);
    r.updated = o_.wallMs();
    if (auto put = store_->put(keys::service(name), encodeService(r)); !put) return fail(storeError(put.error()));
    it->second = r;
    dirtyServices_.insert(name);
    event(kind, name, "", why, now);
    return ScaleReply{name, r.generation, replicas};
}

void Cluster::autoscale(int64_t now) {
    if (now - lastSample_ < 1000) return;
    lastSample_ = now;
    std::map<std::string, std::vector<std::string>> ready;  // service -> ready container ids on up nodes
    for (const auto& [node, l] : live_) {
        if (l.down) continue;
        for (const auto& [id, c] : l.containers)
            if (c.ready && c.status == "running") ready[c.service].push_back(id);
    }
    for (const auto& [name, r] : services_) {
        if (!r.spec.autoscale) continue;
        const Autoscale& a = *r.spec.autoscale;
        const double limit = r.spec.limits.cpus > 0 ? r.spec.limits.cpus : r.spec.requests.cpus;
        auto sample = autoscaling_.sample(name, ready[name], limit, a.requestsPerSecond.has_value(), now);
        auto d = autoscaling_.decide(name, a, r.spec.replicas, sample, now);
        if (!d.changed || d.desired == r.spec.replicas) continue;
        log::infof("master: autoscale %s: %s", name.c_str(), d.reason.c_str());
        if (auto res = rescale(name, d.desired, "autoscale", d.reason, now); !res)
            log::errorf("master: autoscale %s: %s", name.c_str(), res.error().message().c_str());
        else autoscaling_.changed(name, d.reason, now);
    }
}

Result<void> Cluster::remove(const std::string& name, int64_t now) {
    if (!services_.count(name) && !unreadable_.count(name))
        return fail(Error::plain(ENOENT, "no service \"" + name + "\" (hull get services lists them)"));
    std::string placements = keys::kPlacements + name + "/", history = keys::kHistory + name + "/";
    auto t = store_->txn({}, {deleteOp(keys::service(name)), deleteOp(placements, state::prefixEnd(placements)),
                              deleteOp(history, state::prefixEnd(history))}, {});
    if (!t) return fail(storeError(t.error()));
    services_.erase(name);
    history_.erase(name);
    autoscaling_.forgetService(name);
    forgetWatches(name);
    unreadable_.erase(name);
    pending_.erase(name);
    for (auto it = placements_.lower_bound({name, 0}); it != placements_.end() && it->first.first == name;)
        it = placements_.erase(it);
    // Its nodes are told; what it held is free for the pending ones (retried every round).
    dirtyServices_.insert(name);
    specChanged_.insert(name);
    event("delete", name, "", "deleted", now);
    return {};
}

std::set<std::string> Cluster::downNodes() const {
    std::set<std::string> down;
    for (const auto& [node, l] : live_)
        if (l.down) down.insert(node);
    return down;
}

std::map<std::string, int64_t> Cluster::readySlots(const std::string* only) const {
    const std::set<std::string> down = downNodes();
    std::map<std::string, int64_t> out;
    auto r = only ? readyAt_.lower_bound({*only, 0, "", 0, 0}) : readyAt_.begin();
    auto p = only ? placements_.lower_bound({*only, 0}) : placements_.begin();
    const std::string* counting = nullptr;  // the service whose slots are being counted
    int64_t n = 0, lastSlot = -1;
    for (; r != readyAt_.end(); ++r) {
        const auto& [svc, slot, node, generation, incarnation] = r->first;
        if (only && svc != *only) break;
        if (!counting || *counting != svc) {
            if (counting) out[*counting] = n;
            counting = &svc;
            n = 0;
            lastSlot = -1;
        }
        if (slot == lastSlot || down.count(node)) continue;  // that slot counted already
        // Both maps are in (service, slot) order: P catches up with R.
        while (p != placements_.end() && (p->first.first < svc || (p->first.first == svc && p->first.second < slot))) ++p;
        if (p == placements_.end() || p->first.first != svc || p->first.second != slot) continue;
        const core::SlotPlacement& at = p->second;
        if (at.node == node || at.retiresOn(node)) {
            ++n;
            lastSlot = slot;
        }
    }
    if (counting) out[*counting] = n;
    return out;
}

std::vector<core::ReadyReplica> Cluster::readyReplicas(const std::set<std::string>* scope) const {
    std::vector<core::ReadyReplica> out;
    const std::set<std::string> down = downNodes();
    auto add = [&](const std::tuple<std::string, int, std::string, int64_t, int64_t>& key) {
        const auto& [svc, slot, node, generation, incarnation] = key;
        if (!down.count(node)) out.push_back({svc, slot, node, generation, incarnation});
    };
    if (!scope) {
        for (const auto& [key, n] : readyAt_) add(key);
    } else {
        for (const auto& svc : *scope)
            for (auto it = readyAt_.lower_bound({svc, 0, "", 0, 0}); it != readyAt_.end() && std::get<0>(it->first) == svc; ++it)
                add(it->first);
    }
    std::sort(out.begin(), out.end());
    return out;
}

void Cluster::countReady(const std::string& node, const ContainerEntry& c, int delta) {
    if (!c.ready || c.status != "running") return;
    std::tuple<std::string, int, std::string, int64_t, int64_t> key{c.service, c.slot, node, c.generation, c.incarnation};
    auto [it, fresh] = readyAt_.try_emplace(key, 0);
    if ((it->second += delta) <= 0) {
        readyAt_.erase(it);
        readyIps_.erase(key);
    } else if (delta > 0 && !c.ip.empty()) {
        readyIps_[key] = c.ip;
    }
    // What placement looks at changed: which slots are ready where.
    dirtyServices_.insert(c.service);
}

void Cluster::applyReport(const std::string& node, Live& l, StatusReport r) {
    if (r.full) {
        forgetContainers(node, l);
        // A node back from a partition or a reboot runs what was moved away
        // meanwhile: it stops those now (its assignment no longer has them).
        std::map<std::string, std::vector<std::string>> stale;
        for (const auto& c : r.containers) {
            if (c.status != "running" || unreadable_.count(c.service)) continue;
            auto p = placements_.find({c.service, c.slot});
            if (p == placements_.end() || (p->second.node != node && !p->second.retiresOn(node)))
                stale[c.service].push_back("slot " + std::to_string(c.slot));
        }
        for (const auto& [svc, slots] : stale) {
            std::string list;
            for (size_t i = 0; i < slots.size() && i < 5; ++i) list += (i ? ", " : "") + slots[i];
            if (slots.size() > 5) list += ", ...";
            event("stopped-after-heal", svc, "",
                  "node " + node + " stops " + std::to_string(slots.size()) + " replica(s) no longer its own (moved or removed while it was away): " + list,
                  lastRound_);
        }
    }
    for (const auto& id : r.gone)
        if (auto it = l.containers.find(id); it != l.containers.end()) {
            countReady(node, it->second, -1);
            indexMember(node, it->second, false);
            l.containers.erase(it);
        }
    for (auto& c : r.containers) {
        c.node = node;
        indexMember(node, c, true);
        auto [it, fresh] = l.containers.try_emplace(c.id);
        if (!fresh) {
            bool wasReady = it->second.ready && it->second.status == "running";
            bool isReady = c.ready && c.status == "running";
            if (wasReady && isReady && it->second.service == c.service && it->second.slot == c.slot &&
                it->second.generation == c.generation && it->second.incarnation == c.incarnation) {
                it->second = std::move(c);  // still counted where it was
                continue;
            }
            countReady(node, it->second, -1);
        }
        it->second = std::move(c);
        countReady(node, it->second, +1);
    }
}

void Cluster::indexMember(const std::string& node, const ContainerEntry& c, bool present) {
    std::tuple<std::string, std::string, std::string> key{c.service, node, c.id};
    if (present && c.status == "running" && !c.ip.empty()) {
        auto [it, fresh] = memberIps_.try_emplace(key, c.ip);
        if (!fresh && it->second == c.ip) return;
        it->second = c.ip;
    } else if (!memberIps_.erase(key)) {
        return;
    }
    // The service's networks have other members: every node hears of it.
    dirtyServices_.insert(c.service);
}

void Cluster::forgetContainers(const std::string& node, Live& l) {
    autoscaling_.forgetNode(node);
    for (const auto& [id, c] : l.containers) {
        countReady(node, c, -1);
        indexMember(node, c, false);
    }
    l.containers.clear();
}

ServiceList Cluster::serviceList() const {
    ServiceList out;
    auto ready = readySlots();
    for (const auto& [name, r] : services_) {
        ServiceEntry e;
        e.name = name;
        e.generation = r.generation;
        e.spec = r.spec;
        e.desired = r.spec.replicas;
        e.ready = ready[name];
        e.vip = r.vip;
        out.services.push_back(std::move(e));
    }
    return out;
}

ContainerList Cluster::containers(const std::string& service) const {
    ContainerList out;
    for (const auto& [node, l] : live_)
        for (const auto& [id, c] : l.containers)
            if (service.empty() || c.service == service) out.containers.push_back(c);
    std::sort(out.containers.begin(), out.containers.end(), [](const ContainerEntry& a, const ContainerEntry& b) {
        return std::tie(a.service, a.slot, a.node, a.name) < std::tie(b.service, b.slot, b.node, b.name);
    });
    return out;
}

Result<DescribeReply> Cluster::describe(const std::string& name) const {
    auto it = services_.find(name);
    if (it == services_.end()) {
        if (unreadable_.count(name)) return fail(Error::plain(EIO, "service " + name + ": stored records unreadable, left as they are (see events)"));
        return fail(Error::plain(ENOENT, "no service \"" + name + "\" (hull get services lists them)"));
    }
    DescribeReply d;
    d.name = name;
    d.generation = it->second.generation;
    d.updated = it->second.updated;
    d.spec = it->second.spec;
    d.containers = containers(name).containers;
    d.replicas.desired = d.spec.replicas;
    d.replicas.ready = readySlots(&name)[name];
    if (auto st = rolloutStatus(name)) d.rollout = *st;
    if (d.spec.autoscale) {
        d.autoscale.active = true;
        d.autoscale.desired = d.spec.replicas;
        if (const Autoscaling::Status* a = autoscaling_.status(name)) {
            d.autoscale.cpu = a->last.cpu.value_or(-1);
            d.autoscale.rps = a->last.rps.value_or(-1);
            d.autoscale.ready = a->last.ready;
            d.autoscale.desired = a->decision.desired;
            d.autoscale.decision = a->decision.reason;
            d.autoscale.lastChange = a->lastChange;
            if (a->decidedAt > 0) d.autoscale.lastChangeAgoMs = lastSample_ - a->decidedAt;
        }
    }
    if (auto p = pending_.find(name); p != pending_.end())
        for (const auto& [slot, why] : p->second) d.pending.push_back({slot, why});
    std::vector<Event> mine;
    for (auto e = events_.rbegin(); e != events_.rend() && mine.size() < 20; ++e)
        if (e->service == name) mine.push_back(*e);
    d.events.assign(mine.rbegin(), mine.rend());
    return d;
}

EventList Cluster::events(int64_t sinceId) const {
    EventList out;
    for (const auto& e : events_)
        if (e.id > sinceId) out.events.push_back(e);
    return out;
}

// ---- nodes ----

NodeEntry Cluster::nodeEntry(const std::string& name, int64_t now) const {
    const NodeRecord& r = nodes_.at(name);
    NodeEntry e;
    e.name = name;
    auto l = live_.find(name);
    bool down = l == live_.end() || l->second.down;
    e.status = down ? "down" : r.drained ? "drained" : "ready";
    e.address = r.address;
    e.labels = r.labels;
    e.cpus = r.cpus;
    e.memory = r.memory;
    e.version = r.version;
    if (l != live_.end()) {
        e.containers = int64_t(l->second.containers.size());
        e.lastSeen = o_.wallMs() - std::max<int64_t>(0, now - l->second.lastHeartbeat);
    }
    return e;
}

NodeList Cluster::nodeList(int64_t now) const {
    NodeList out;
    for (const auto& [name, r] : nodes_) out.nodes.push_back(nodeEntry(name, now));
    return out;
}

Result<void> Cluster::putNode(const NodeRecord& r) {
    if (auto put = store_->put(keys::node(r.name), encodeNode(r)); !put) return fail(storeError(put.error()));
    nodes_[r.name] = r;
    return {};
}

Result<NodeEntry> Cluster::drain(const std::string& node, bool drained, int64_t now) {
    auto it = nodes_.find(node);
    if (it == nodes_.end()) return fail(Error::plain(ENOENT, "no node \"" + node + "\" (hull node ls lists them)"));
    if (it->second.drained != drained) {
        NodeRecord r = it->second;
        r.drained = drained;
        TRY(putNode(r));
        dirty_ = true;
        event(drained ? "drain" : "activate", "", "", "node " + node + (drained ? " drained" : " active"), now);
    }
    return nodeEntry(node, now);
}

Result<NodeEntry> Cluster::label(const std::string& node, const std::map<std::string, std::string>& set,
                                 const std::vector<std::string>& remove, int64_t now) {
    auto it = nodes_.find(node);
    if (it == nodes_.end()) return fail(Error::plain(ENOENT, "no node \"" + node + "\" (hull node ls lists them)"));
    NodeRecord r = it->second;
    for (const auto& [k, v] : set) {
        if (k.empty() || k.size() > 63 || v.size() > 253 ||
            k.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") != std::string::npos ||
            v.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") != std::string::npos)
            return failInvalid("label " + k + "=" + v + ": keys and values are [A-Za-z0-9._/-] (a key 1 to 63 characters)");
        r.labels[k] = v;
    }
    for (const auto& k : remove) r.labels.erase(k);
    if (!(r == it->second)) {
        TRY(putNode(r));
        dirty_ = true;
        event("label", "", "", "node " + node + " labels changed", now);
    }
    return nodeEntry(node, now);
}

Result<void> Cluster::registerNode(const std::string& name, const std::string& address, int64_t now,
                                   const std::string& certSha256) {
    if (auto it = nodes_.find(name); it != nodes_.end()) {
        auto l = live_.find(name);
        if (l != live_.end() && l->second.session && !l->second.down)
            return fail(Error::plain(EEXIST, "join: node \"" + name +
                                                 "\" is up and connected: another machine cannot join under its name (stop "
                                                 "it first, or join with another --name)"));
        NodeRecord r = it->second;
        r.certSha256 = certSha256;
        if (r == it->second) {
            event("join", "", "", "node " + name + " joined again", now);
            return {};
        }
        TRY(putNode(r));
        // A session of the certificate before (a partition the TCP stack has
        // not noticed) holds the name no longer.
        if (l != live_.end() && l->second.session) {
            sessions_.erase(l->second.session.get());
            l->second.session->close();
            l->second.session.reset();
            forgetContainers(name, l->second);
        }
        event("join", "", "", "node " + name + " joined again with a new certificate: the one before holds nothing", now);
        return {};
    }
    NodeRecord r;
    r.name = name;
    r.address = address;
    r.joined = o_.wallMs();
    r.certSha256 = certSha256;
    // Its containers' subnet, for as long as it is a member (hull node rm frees it).
    if (!lease(r))
        return fail(Error::plain(ENOSPC, "join: the cluster CIDR " + o_.clusterCidr.str() + " has no /24 left for node " + name +
                                             " (hull node rm frees a removed node's)"));
    TRY(putNode(r));
    live_[name];  // down until its session says hello
    event("join", "", "", "node " + name + " joined", now);
    return {};
}

std::string Cluster::nodeOf(const api::WebSocketSession* s) const {
    auto it = sessions_.find(s);
    return it == sessions_.end() ? "" : it->second;
}

void Cluster::hello(const std::shared_ptr<api::WebSocketSession>& s, const Value& m, int64_t now) {
    const std::string name = *s->peer().certCommonName;
    if (json::stringOf(m, "name") != name) {
        log::warnf("master: session of %s says it is \"%s\": closed", name.c_str(), json::stringOf(m, "name").c_str());
        s->close();
        return;
    }
    // Capacity and address are the node's to say; labels it declares are taken
    // on its first hello only, so `hull node label` is not undone by a restart.
    NodeRecord r;
    if (auto it = nodes_.find(name); it != nodes_.end()) r = it->second;
    // The certificate of its last join only: one from an earlier join of that
    // name (a machine replaced, a copied key) holds no session.
    const std::string cert = s->peer().certSha256.value_or("");
    if (!r.certSha256.empty() && cert != r.certSha256) {
        log::warnf("master: session of %s with a certificate from an earlier join: closed", name.c_str());
        s->close();
        return;
    }
    if (r.certSha256.empty()) r.certSha256 = cert;  // a record from before fingerprints: the first one holds
    if (r.subnet.empty() && !lease(r))  // a record from before leases
        log::errorf("master: node %s: the cluster CIDR %s has no /24 left: its containers are not on the overlay",
                    name.c_str(), o_.clusterCidr.str().c_str());
    bool first = r.name.empty() || r.cpus == 0;
    r.name = name;
    if (r.joined == 0) r.joined = o_.wallMs();
    r.address = json::stringOf(m, "address", r.address);
    r.version = json::stringOf(m, "version");
    if (const Value* c = m.find("cpus"); c && c->isNumber()) r.cpus = c->asDouble();
    if (const Value* mem = m.find("memory")) mem->toInt64(r.memory);
    if (first)
        if (const Value* l = m.find("labels"); l && l->isObject())
            for (const auto& [k, v] : l->asObject())
                if (v.isString()) r.labels[k] = v.asString();
    if (!nodes_.count(name) || !(nodes_.at(name) == r)) {
        if (auto put = putNode(r); !put) {
            log::errorf("master: node %s: %s", name.c_str(), put.error().message().c_str());
            s->close();
            return;
        }
        dirty_ = true;  // its capacity or labels changed: every service's round sees it
    }
    Live& l = live_[name];
    if (l.session && l.session != s) {
        sessions_.erase(l.session.get());
        l.session->close();  // an older session of the same node
    }
    l.session = s;
    l.lastHeartbeat = now;
    l.closedAt = 0;
    l.sent.reset();  // push its assignments on this session, even an empty one
    sessions_[s.get()] = name;
    Value welcome = Value::object();
    welcome.set("type", "welcome");
    welcome.set("heartbeatMs", int64_t(o_.heartbeat.count()));
    // Its place in the overlay: its containers' subnet, and the cluster's (not masqueraded).
    welcome.set("subnet", nodes_[name].subnet);
    welcome.set("clusterCidr", o_.clusterCidr.str());
    // Where the service addresses are: a node's isolation tells them from a published port.
    welcome.set("serviceCidr", o_.serviceCidr.str());
    s->send(welcome.dump());
    // The next round pushes it its whole set. A node that was down comes up
    // there (node lifecycle: a change every service sees); one back within its
    // grace period moves nothing.
    freshSession_ = true;
    l.peersSent.reset();
    l.endpointsSent.reset();
    peersChanged_ = true;
}

void Cluster::sessionMessage(const std::shared_ptr<api::WebSocketSession>& s, const std::string& text, int64_t now) {
    auto m = Value::parse(text);
    std::string type = m ? json::stringOf(*m, "type") : "";
    if (type == "hello") return hello(s, *m, now);
    std::string node = nodeOf(s.get());
    if (node.empty()) {
        log::warnf("master: a session sent \"%s\" before hello: closed", type.c_str());
        s->close();
        return;
    }
    if (!m || !m->isObject()) {
        // What it says next builds on what it said: a message lost would leave
        // the master's copy wrong for the session's life. A new session starts
        // over with a full report.
        log::warnf("master: %s sent a message that is not a JSON object: session closed", node.c_str());
        s->close();
        return;
    }
    Live& l = live_[node];
    l.lastHeartbeat = now;
    if (type == "heartbeat") return;
    if (type == "usage") return autoscaling_.usage(node, *m, now);
    if (type == "status") {
        Result<StatusReport> report = failInvalid("no report");
        if (const Value* body = m->find("report")) {
            report = decodeBody<StatusReport>(*body);
        } else if (const Value* list = m->find("containers"); list && list->isObject()) {
            // A node of the hull before deltas: its whole list, every time.
            if (const Value* inner = list->find("ContainerList"))
                if (auto old = decodeBody<ContainerList>(*inner)) report = StatusReport{true, std::move(old->containers), {}};
        }
        if (!report) {
            log::warnf("master: status of %s: %s: session closed (a new one starts with a full report)", node.c_str(),
                       report.error().message().c_str());
            s->close();
            return;
        }
        applyReport(node, l, std::move(*report));
        return;
    }
    if (type == "overlay") {
        // {mac}: the node's VTEP, what its peers send its subnet's packets to.
        std::string mac = json::stringOf(*m, "mac");
        auto it = nodes_.find(node);
        if (it != nodes_.end() && !mac.empty() && mac != it->second.vtepMac) {
            NodeRecord r = it->second;
            r.vtepMac = mac;
            if (auto put = putNode(r); !put) log::errorf("master: node %s: %s", node.c_str(), put.error().message().c_str());
            else peersChanged_ = true;
        }
        // In the overlay (again): it gets every service's endpoints at the next round.
        l.endpointsSent.reset();
        freshSession_ = true;
        return;
    }
    if (type == "logs-data" || type == "logs-end" || type == "exec-data" || type == "exec-exit" || type == "exec-credit") {
        if (relay_) relay_(node, *m);
        return;
    }
    log::warnf("master: %s sent an unknown message \"%s\"", node.c_str(), type.c_str());
}

Result<std::pair<std::string, std::string>> Cluster::locate(const std::string& query) const {
    if (query.empty()) return failInvalid("no container named");
    std::vector<std::pair<std::string, std::string>> found;
    for (const auto& [node, l] : live_)
        for (const auto& [id, c] : l.containers) {
            if (id == query || c.name == query) return std::pair{node, id};
            if (query.size() >= 4 && id.compare(0, query.size(), query) == 0) found.push_back({node, id});
        }
    if (found.size() == 1) return found[0];
    if (found.empty())
        return fail(Error::plain(ENOENT, "no container \"" + query + "\" on a node (hull get containers lists them)"));
    return failInvalid("container \"" + query + "\" is ambiguous: " + std::to_string(found.size()) + " ids start with it");
}

bool Cluster::sendToNode(const std::string& node, std::string text) {
    auto l = live_.find(node);
    if (l == live_.end() || !l->second.session) return false;
    l->second.session->send(std::move(text));
    return true;
}

bool Cluster::sessionClosed(const std::shared_ptr<api::WebSocketSession>& s, int64_t now) {
    std::string node = nodeOf(s.get());
    sessions_.erase(s.get());
    if (node.empty()) return false;
    Live& l = live_[node];
    if (l.session != s) return false;
    l.session.reset();
    l.closedAt = now;
    // Down only once its grace period is over: a reconnect within it moves
    // nothing. Already down: nothing more will come of what it reported.
    if (l.down) forgetContainers(node, l);
    return true;
}

// ---- the round ----

void Cluster::reconcile(int64_t now) {
    autoscale(now);
    // The store keeps every revision until compacted (etcd's model); the master
    // reads only the latest, so history older than a minute's worth of rounds goes.
    if (now - lastCompact_ > 60000) {
        lastCompact_ = now;
        if (int64_t rev = store_->revision(); rev > 1000)
            // kCompacted: nothing was written since the last compaction, so there is nothing to drop.
            if (auto r = store_->compact(rev - 1000); !r && r.error().errnum() != state::kCompacted)
                log::warnf("master: compact: %s", r.error().message().c_str());
    }
    // A burst of work (a thousand replicas placed, a node's sessions coming
    // back) frees memory in the middle of the heap, where malloc keeps it:
    // given back to the system every ten seconds after rounds ran.
    if (rounds_ != trimmedAt_ && now - lastTrim_ > 10000) {
        lastTrim_ = now;
        trimmedAt_ = rounds_;
        ::malloc_trim(0);
    }
    // Node lifecycle: heartbeats against the grace period.
    std::vector<core::NodeClock> clocks;
    clocks.reserve(nodes_.size());
    for (const auto& [name, r] : nodes_) {
        const Live& l = live_[name];
        clocks.push_back({name, l.lastHeartbeat, bool(l.session), l.down, r.drained});
    }
    core::LifecycleOptions lo;
    lo.heartbeatMs = o_.heartbeat.count();
    lo.graceMs = o_.grace.count();
    // The master itself stalled (a long write, a swapped-out process): the
    // heartbeats that came meanwhile are still unread in the sockets. That
    // says nothing of the nodes: they start their grace period again.
    bool stalled = lastRound_ && now - lastRound_ > o_.grace.count() / 2;
    lastRound_ = now;
    if (stalled)
        for (auto& c : clocks)
            if (c.connected) c.lastHeartbeatMs = live_[c.name].lastHeartbeat = std::max(c.lastHeartbeatMs, now);
    for (const auto& t : core::nodeTransitions(clocks, now, lo)) {
        bool down = t.to == core::Transition::To::Down;
        live_[t.node].down = down;
        // What it ran is no longer known, unless its session is still open:
        // what comes on it then applies to what the master has.
        if (Live& l = live_[t.node]; down && !l.session) forgetContainers(t.node, l);
        event(down ? "node-down" : "node-up", "", "", "node " + t.node + (down ? " down: " : " up: ") + t.reason, now);
        dirty_ = true;
        peersChanged_ = true;  // it leaves (or rejoins) every other node's overlay
    }
    // Timers: a rollout's clock, a replica coming due for the phoenix cycle,
    // a lost node's failover delay. Each wakes the services it is for.
    for (auto it = wakes_.begin(); it != wakes_.end();) {
        if (it->second > now) {
            ++it;
            continue;
        }
        if (it->first.empty()) dirty_ = true;  // a failover delay: every service on the node
        else dirtyServices_.insert(it->first);
        it = wakes_.erase(it);
    }
    if (peersChanged_) {
        peersChanged_ = false;
        pushPeers();
    }
    if (!changed()) return;
    // The services this round looks at: every one after a change of nodes (or
    // a failed write), else those that changed, and those with replicas
    // pending (what a change freed may fit them now). A round costs what its
    // services hold, not what the cluster holds.
    std::optional<std::set<std::string>> scope;
    if (!dirty_) {
        scope = std::move(dirtyServices_);
    } else {
        scope.emplace();
        for (const auto& [name, r] : services_) scope->insert(name);
        // And what has placements without a service (nothing should): the planner clears them.
        for (auto it = placements_.begin(); it != placements_.end(); it = placements_.lower_bound({it->first.first + '\0', 0}))
            scope->insert(it->first.first);
    }
    for (const auto& [svc, slots] : pending_) scope->insert(svc);
    // A service this hull cannot read is left as it is: its nodes keep running
    // it, and no round moves or rewrites its slots (another node could not be
    // given its spec anyway).
    for (const auto& name : unreadable_) scope->erase(name);
    dirty_ = false;
    dirtyServices_.clear();
    auto inScope = [&](const std::string& svc) { return !scope || scope->count(svc); };
    auto started = std::chrono::steady_clock::now();

    std::map<std::string, int> replicas;
    std::map<std::string, core::ServiceWant> wants;
    for (const auto& [name, r] : services_)
        if (inScope(name)) {
            replicas[name] = r.spec.replicas;
            std::optional<int64_t> after;
            if (r.spec.failover.after) after = r.spec.failover.after->count();
            wants[name] = {r.spec.replicas, r.generation, after};
        }
    core::PlacementMap current;
    if (scope)
        for (const auto& svc : *scope)
            for (auto it = placements_.lower_bound({svc, 0}); it != placements_.end() && it->first.first == svc; ++it)
                current.insert(*it);
    const core::PlacementMap& considered = scope ? current : placements_;
    std::map<std::string, core::NodeView> view;
    core::FailoverOptions fo{o_.grace.count(), o_.failoverSilent.count()};
    for (const auto& [name, r] : nodes_) {
        const Live& l = live_[name];
        core::NodeView v{!l.down, r.drained};
        if (l.down) {
            v.lostForMs = std::max<int64_t>(0, now - l.lastHeartbeat);
            // Closed while it was still heard from: its host answered for it.
            v.closed = l.closedAt && l.closedAt - l.lastHeartbeat < o_.grace.count();
            // A round when its replicas come due to move, whichever delay applies to them.
            std::set<int64_t> delays{core::failoverDelayMs(std::nullopt, v.closed, fo)};
            for (const auto& [svc, w] : wants)
                if (w.failoverAfterMs) delays.insert(core::failoverDelayMs(w.failoverAfterMs, v.closed, fo));
            for (int64_t d : delays)
                if (v.lostForMs < d) wake("", l.lastHeartbeat + d);
        }
        view[name] = v;
    }
    std::vector<core::ReadyReplica> ready = readyReplicas(scope ? &*scope : nullptr);

    auto changes = core::planPlacements(wants, considered, view, ready, fo);
    core::PlacementMap updates = std::move(changes.updates);
    // Rollouts move slots to their new generation (or back), then the phoenix
    // cycle asks for fresh replicas of what has grown old.
    stepRollouts(*scope, updates, now);
    {
        std::set<std::pair<std::string, int>> needed;
        for (const auto& n : changes.needs) needed.insert({n.service, n.slot});
        for (auto& n : phoenixNeeds(*scope, updates, now))
            if (!needed.count({n.service, n.slot})) changes.needs.push_back(std::move(n));
    }
    std::map<std::string, int> placedPer;
    if (!changes.needs.empty()) {
        // New work goes to nodes that are up and connected now: one within its
        // grace period without a session (reconnecting, or not yet back after
        // a master restart, maybe never) keeps what it has and gets nothing new.
        std::vector<core::NodeInfo> infos;
        for (const auto& [name, r] : nodes_)
            infos.push_back({name, r.labels, view[name].up && !r.drained && bool(live_[name].session), r.cpus, r.memory});
        std::vector<core::ServiceDemand> demands;
        for (const auto& [name, r] : services_) demands.push_back(demandOf(r.spec));
        // What is placed already, of the services it matters for: those wanted
        // now (their spread), and those whose replicas take resources or host
        // ports from a node. A service with neither leaves nothing to count, so
        // a round reads what its services hold, not all the cluster's placements.
        std::set<std::string> counted;
        for (const auto& d : demands)
            if (d.cpus > 0 || d.memory > 0 || !d.hostPorts.empty()) counted.insert(d.name);
        std::vector<std::pair<std::string, int>> moving;
        for (const auto& n : changes.needs) {
            counted.insert(n.service);
            moving.push_back({n.service, n.slot});
        }
        std::sort(moving.begin(), moving.end());
        std::vector<core::Existing> existing;
        for (const auto& svc : counted) {
            // Three maps in (service, slot) order walked side by side: no lookups.
            auto u = updates.lower_bound({svc, 0});
            auto m = std::lower_bound(moving.begin(), moving.end(), std::pair<std::string, int>{svc, 0});
            for (auto it = placements_.lower_bound({svc, 0}); it != placements_.end() && it->first.first == svc; ++it) {
                const auto& key = it->first;
                while (u != updates.end() && u->first < key) ++u;
                while (m != moving.end() && *m < key) ++m;
                const core::SlotPlacement& now = u != updates.end() && u->first == key ? u->second : it->second;
                if (!now.node.empty() && !(m != moving.end() && *m == key)) existing.push_back({svc, key.second, now.node});
                for (const auto& n : now.retiring) existing.push_back({svc, key.second, n.node});
            }
        }
        std::vector<core::Want> wants;
        wants.reserve(changes.needs.size());
        for (const auto& n : changes.needs) wants.push_back({n.service, n.slot, n.avoid});
        auto plan = core::schedule(infos, demands, existing, wants);
        std::map<std::pair<std::string, int>, std::string> why;
        std::map<std::pair<std::string, int>, const core::PlacementChanges::Need*> needOf;
        std::map<std::pair<std::string, std::string>, std::vector<std::string>> moved;  // (service, why) -> "slot 3 to n2"
        for (const auto& n : changes.needs) {
            why[{n.service, n.slot}] = n.why;
            needOf[{n.service, n.slot}] = &n;
        }
        for (const auto& p : plan.placed) {
            std::pair<std::string, int> key{p.service, p.slot};
            auto u = updates.find(key);
            auto cur = placements_.find(key);
            core::SlotPlacement before = u != updates.end() ? u->second : cur != placements_.end() ? cur->second : core::SlotPlacement{};
            const core::PlacementChanges::Need* need = needOf[key];
            auto svcRec = services_.find(p.service);
            updates[key] = core::placedOn(before, p.node, view, svcRec == services_.end() ? 0 : svcRec->second.generation,
                                          need && need->fresh());
            if (need && need->cause == core::PlacementChanges::Need::Cause::Lost) ++failovers_;
            if (need && need->fresh()) {
                ++phoenixes_;
                event("phoenix", p.service, "", "slot " + std::to_string(p.slot) + " replaced on " + p.node + " (" + need->why + ")",
                      now);
                continue;
            }
            if (auto pend = pending_.find(p.service); pend != pending_.end()) pend->second.erase(p.slot);
            ++placedPer[p.service];
            if (why[key] != "new") moved[{p.service, why[key]}].push_back("slot " + std::to_string(p.slot) + " to " + p.node);
        }
        // One event per service and reason, not one per slot: a node that goes
        // down with a thousand replicas makes a few lines, not a thousand.
        for (const auto& [what, slots] : moved) {
            std::string msg = std::to_string(slots.size()) + " replica(s) (" + what.second + "): ";
            for (size_t i = 0; i < slots.size() && i < 5; ++i) msg += (i ? ", " : "") + slots[i];
            if (slots.size() > 5) msg += ", ...";
            event("rescheduled", what.first, "", msg, now);
        }
        for (const auto& p : plan.pending) {
            // A fresh replica that fits nowhere now: the old one runs on, and the cycle tries again later.
            if (const auto* n = needOf[{p.service, p.slot}]; n && n->fresh()) {
                wake(p.service, now + 5000);
                continue;
            }
            pending_[p.service][p.slot] = p.reason;
            // Said once per service and reason, not once per slot.
            if (saidPending_[p.service].insert(p.reason).second)
                event("pending", p.service, "", "slot " + std::to_string(p.slot) + ": " + p.reason, now);
        }
    }
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (!inScope(it->first)) {
            ++it;
            continue;
        }
        auto r = replicas.find(it->first);
        if (r != replicas.end()) std::erase_if(it->second, [&](const auto& s) { return s.first >= r->second; });
        if (r == replicas.end() || it->second.empty()) {
            saidPending_.erase(it->first);
            it = pending_.erase(it);
            continue;
        }
        ++it;
    }
    std::set<std::string> placedServices;  // those whose placements this round changed
    if (!updates.empty()) {
        // One transaction, or (a store with a limit) one per MAX_TXN_OPS
        // slots: each taken once it is committed.
        const size_t chunk = o_.maxTxnOps ? o_.maxTxnOps : updates.size();
        for (auto from = updates.begin(); from != updates.end();) {
            std::vector<state::Op> ops;
            auto to = from;
            for (; to != updates.end() && ops.size() < chunk; ++to) {
                const auto& [key, p] = *to;
                ops.push_back(p.node.empty() && p.retiring.empty()
                                  ? deleteOp(keys::placement(key.first, key.second))
                                  : putOp(keys::placement(key.first, key.second), encodePlacement(p)));
            }
            if (auto t = store_->txn({}, ops, {}); !t) {
                // What is not written is not taken: the next round tries again.
                log::errorf("master: writing placements: %s", t.error().message().c_str());
                dirty_ = true;
                if (from == updates.begin()) return;
                updates.erase(from, updates.end());
                break;
            }
            from = to;
        }
        for (auto& [key, p] : updates) {
            placedServices.insert(key.first);
            if (p.node.empty() && p.retiring.empty()) placements_.erase(key);
            else placements_[key] = std::move(p);
        }
    }
    for (const auto& [svc, n] : placedPer) {
        placed_ += uint64_t(n);
        event("scheduled", svc, "", std::to_string(n) + " replica(s) placed", now);
    }
    // Nodes hear of the services whose placements or spec changed; a round
    // that only saw replicas turn ready sends nothing.
    std::set<std::string> touched = std::move(specChanged_);
    specChanged_.clear();
    touched.insert(placedServices.begin(), placedServices.end());
    pushAssignments(touched);
    touched.insert(scope->begin(), scope->end());
    pushEndpoints(touched);
    freshSession_ = false;
    ++rounds_;
    lastRoundMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
}

// ---- the overlay ----

bool Cluster::lease(NodeRecord& r) {
    std::vector<netns::Cidr> taken;
    for (const auto& [name, n] : nodes_)
        if (name != r.name)
            if (auto c = netns::Cidr::parse(n.subnet)) taken.push_back(*c);
    auto c = core::leaseSubnet(o_.clusterCidr, core::kNodeSubnetPrefix, taken);
    if (!c) return false;
    r.subnet = c->str();
    return true;
}

void Cluster::pushPeers() {
    // name -> {name, subnet, underlay, mac}: the nodes in the overlay now, as peers are sent.
    std::map<std::string, Value> members;
    for (const auto& [name, r] : nodes_) {
        auto l = live_.find(name);
        if (l == live_.end() || l->second.down || r.subnet.empty() || r.vtepMac.empty() || r.address.empty()) continue;
        Value& p = members[name];
        p = Value::object();
        p.set("name", name);
        p.set("subnet", r.subnet);
        p.set("underlay", r.address);
        p.set("mac", r.vtepMac);
    }
    for (auto& [node, l] : live_) {
        // Only nodes in the overlay need it (a node without a VTEP, a simulated one, gets nothing).
        if (!l.session || !members.count(node)) continue;
        const bool full = !l.peersSent;
        if (full) l.peersSent.emplace();
        Value add = Value::array(), removed = Value::array();
        for (const auto& [name, peer] : members) {
            if (name == node) continue;
            auto sent = l.peersSent->find(name);
            if (sent != l.peersSent->end() && sent->second.dump() == peer.dump()) continue;
            // A peer whose place changed (a new VTEP, a new address) goes, then comes back as it is now.
            if (sent != l.peersSent->end()) removed.push(sent->second);
            (*l.peersSent)[name] = peer;
            add.push(peer);
        }
        for (auto it = l.peersSent->begin(); it != l.peersSent->end();) {
            if (members.count(it->first) && it->first != node) {
                ++it;
                continue;
            }
            removed.push(it->second);
            it = l.peersSent->erase(it);
        }
        if (!full && add.asArray().empty() && removed.asArray().empty()) continue;
        Value m = Value::object();
        m.set("type", "peers");
        m.set("full", full);
        m.set("clusterCidr", o_.clusterCidr.str());
        m.set("peers", add);
        m.set("removed", removed);
        l.session->send(m.dump());
    }
}

std::string Cluster::freeVip() const {
    std::set<uint32_t> used;
    for (const auto& [name, r] : services_)
        if (auto ip = netns::Ipv4::parse(r.vip)) used.insert(ip->value);
    // From the second address on: the first is left for the cluster's own use (a DNS address, say).
    for (uint32_t v = o_.serviceCidr.firstHost().value + 1; v <= o_.serviceCidr.lastHost().value; ++v)
        if (!used.count(v)) return netns::Ipv4{v}.str();
    return "";
}

std::vector<std::string> Cluster::backendsOf(const std::string& service) const {
    const std::set<std::string> down = downNodes();
    std::vector<std::string> out;
    auto p = placements_.lower_bound({service, 0});
    for (auto it = readyIps_.lower_bound({service, 0, "", 0, 0}); it != readyIps_.end() && std::get<0>(it->first) == service;
         ++it) {
        const auto& [svc, slot, node, generation, incarnation] = it->first;
        if (down.count(node)) continue;
        while (p != placements_.end() && p->first.first == service && p->first.second < slot) ++p;
        if (p == placements_.end() || p->first != std::pair<std::string, int>{service, slot}) continue;
        // A copy its slot still holds: its own, or a retiring one until the new one is ready.
        if (p->second.node == node || p->second.retiresOn(node)) out.push_back(it->second);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

void Cluster::pushEndpoints(const std::set<std::string>& touched) {
    // Each service's entry, made once per round: {name, vip, ports, backends}.
    std::map<std::string, std::pair<std::string, Value>> entries;  // name -> (signature, entry)
    auto entryOf = [&](const std::string& name) -> const std::pair<std::string, Value>* {
        auto e = entries.find(name);
        if (e != entries.end()) return &e->second;
        auto r = services_.find(name);
        if (r == services_.end() || r->second.vip.empty()) return nullptr;
        Value v = Value::object(), ports = Value::array(), backends = Value::array();
        std::string sig = r->second.vip + "|";
        for (const auto& p : r->second.spec.ports) {
            ports.push(p);
            sig += p + ",";
        }
        sig += "|";
        for (const auto& ip : backendsOf(name)) {
            backends.push(ip);
            sig += ip + ",";
        }
        v.set("name", name);
        v.set("vip", r->second.vip);
        v.set("ports", ports);
        v.set("mode", publishModeName(r->second.spec.publishMode));
        sig += std::string("|") + publishModeName(r->second.spec.publishMode);
        v.set("backends", backends);
        // Who may reach whom (the nodes' isolation): its networks, and every
        // running replica's address, ready or not (one starting up may need
        // what it depends on).
        Value networks = Value::array(), members = Value::array();
        sig += "|";
        for (const auto& n : networksOf(r->second.spec)) {
            networks.push(n);
            sig += n + ",";
        }
        sig += "|";
        for (auto m = memberIps_.lower_bound({name, "", ""}); m != memberIps_.end() && std::get<0>(m->first) == name; ++m) {
            members.push(m->second);
            sig += m->second + ",";
        }
        v.set("networks", networks);
        v.set("members", members);
        return &entries.emplace(name, std::pair{sig, std::move(v)}).first->second;
    };
    for (auto& [node, l] : live_) {
        // Only nodes in the overlay can reach replicas elsewhere: the others get none.
        if (!l.session) continue;
        if (auto r = nodes_.find(node); r == nodes_.end() || r->second.vtepMac.empty()) continue;
        const bool full = !l.endpointsSent;
        if (full) l.endpointsSent.emplace();
        Value list = Value::array(), removed = Value::array();
        auto consider = [&, &l = l](const std::string& name) {
            const auto* e = entryOf(name);
            auto sent = l.endpointsSent->find(name);
            if (!e) {
                if (sent != l.endpointsSent->end()) {
                    removed.push(name);
                    l.endpointsSent->erase(sent);
                }
                return;
            }
            if (sent != l.endpointsSent->end() && sent->second == e->first) return;
            (*l.endpointsSent)[name] = e->first;
            list.push(e->second);
        };
        if (full)
            for (const auto& [name, r] : services_) consider(name);
        else
            for (const auto& name : touched) consider(name);
        if (!full && list.asArray().empty() && removed.asArray().empty()) continue;
        Value m = Value::object();
        m.set("type", "endpoints");
        m.set("full", full);
        m.set("services", list);
        m.set("removed", removed);
        l.session->send(m.dump());
    }
}

Result<void> Cluster::removeNode(const std::string& node, int64_t now) {
    auto it = nodes_.find(node);
    if (it == nodes_.end()) return fail(Error::plain(ENOENT, "no node \"" + node + "\" (hull node ls lists them)"));
    auto l = live_.find(node);
    if (l != live_.end() && (!l->second.down || l->second.session))
        return fail(Error::plain(EBUSY, "node " + node + " is up: drain it (hull node drain " + node +
                                            "), stop its agent, then remove it once it is down"));
    // Its replicas have moved, unless their services kept them for their
    // failover.after: they go now, as for a node that is gone.
    if (auto d = store_->deleteRange(keys::node(node)); !d) return fail(storeError(d.error()));
    std::string subnet = it->second.subnet;
    nodes_.erase(it);
    if (l != live_.end()) {
        forgetContainers(node, l->second);
        live_.erase(l);
    }
    dirty_ = true;
    peersChanged_ = true;
    event("node-removed", "", "", "node " + node + " removed" + (subnet.empty() ? "" : ", its subnet " + subnet + " free again"), now);
    return {};
}

// ---- generations, rollouts, the phoenix cycle ----

void Cluster::forgetWatches(const std::string& service) {
    for (auto w = watches_.lower_bound({service, 0}); w != watches_.end() && w->first.first == service;) w = watches_.erase(w);
}

int64_t Cluster::failedWatches(const std::string& service) const {
    int64_t n = 0;
    for (auto w = watches_.lower_bound({service, 0}); w != watches_.end() && w->first.first == service; ++w) n += w->second.failed;
    return n;
}

void Cluster::wake(const std::string& service, int64_t at) {
    auto [it, fresh] = wakes_.try_emplace(service, at);
    if (!fresh) it->second = std::min(it->second, at);
}

const Service* Cluster::specOf(const std::string& service, int64_t generation) const {
    if (auto s = services_.find(service); s != services_.end() && s->second.generation == generation) return &s->second.spec;
    if (auto h = history_.find(service); h != history_.end())
        if (auto g = h->second.find(generation); g != h->second.end()) return &g->second.spec;
    return nullptr;
}

std::vector<int64_t> Cluster::historyOps(const std::string& service, const HistoryRecord& h, std::vector<state::Op>& ops) {
    ops.push_back(putOp(keys::history(service, h.generation), encodeHistory(h)));
    // Kept: the newest ones, and any a placement or the rollout still names.
    std::set<int64_t> needed{h.generation};
    for (auto it = placements_.lower_bound({service, 0}); it != placements_.end() && it->first.first == service; ++it) {
        needed.insert(it->second.generation);
        for (const auto& c : it->second.retiring) needed.insert(c.generation);
    }
    if (auto s = services_.find(service); s != services_.end()) needed.insert({s->second.generation, s->second.rollout.from});
    std::vector<int64_t> dropped;
    auto hist = history_.find(service);
    if (hist == history_.end()) return dropped;
    size_t keep = o_.history > 0 ? o_.history - 1 : 0;  // H is one
    for (auto g = hist->second.rbegin(); g != hist->second.rend(); ++g) {
        if (g->first == h.generation) continue;
        if (keep > 0) {
            --keep;
            continue;
        }
        if (needed.count(g->first)) continue;
        ops.push_back(deleteOp(keys::history(service, g->first)));
        dropped.push_back(g->first);
    }
    return dropped;
}

Result<void> Cluster::putService(const std::string& service, const ServiceRecord& r, int64_t) {
    std::vector<state::Op> ops{putOp(keys::service(service), encodeService(r))};
    // The outcome of the rollout to R's target, in its history too.
    std::optional<HistoryRecord> h;
    if (!r.rollout.state.empty() && r.rollout.to)
        if (auto hist = history_.find(service); hist != history_.end())
            if (auto g = hist->second.find(r.rollout.to); g != hist->second.end()) {
                h = g->second;
                h->outcome = r.rollout.state;
                h->reason = r.rollout.reason;
                if (h->outcome == g->second.outcome && h->reason == g->second.reason) h.reset();
                else ops.push_back(putOp(keys::history(service, h->generation), encodeHistory(*h)));
            }
    if (auto t = store_->txn({}, ops, {}); !t) return fail(storeError(t.error()));
    services_[service] = r;
    if (h) history_[service][h->generation] = std::move(*h);
    return {};
}

const core::SlotPlacement* Cluster::placementOf(const std::string& service, int slot, const core::PlacementMap& updates) const {
    if (auto u = updates.find({service, slot}); u != updates.end())
        return u->second.node.empty() && u->second.retiring.empty() ? nullptr : &u->second;
    auto p = placements_.find({service, slot});
    return p == placements_.end() ? nullptr : &p->second;
}

std::map<std::tuple<int, std::string, int64_t, int64_t>, Cluster::CopyState> Cluster::copiesOf(const std::string& service) const {
    std::set<std::string> nodes;
    for (auto it = placements_.lower_bound({service, 0}); it != placements_.end() && it->first.first == service; ++it) {
        nodes.insert(it->second.node);
        for (const auto& c : it->second.retiring) nodes.insert(c.node);
    }
    std::map<std::tuple<int, std::string, int64_t, int64_t>, CopyState> out;
    for (const auto& node : nodes) {
        auto l = live_.find(node);
        if (l == live_.end()) continue;
        for (const auto& [id, c] : l->second.containers) {
            if (c.service != service) continue;
            CopyState& st = out[{c.slot, node, c.generation, c.incarnation}];
            const bool ready = c.ready && c.status == "running";
            if (c.status == "exited" || c.restarts > 0) st.exited = true;
            if (ready && (!st.ready || c.started > st.started)) st.started = c.started;
            else if (!st.ready && c.started > st.started) st.started = c.started;
            st.ready = st.ready || ready;
        }
    }
    return out;
}

void Cluster::stepRollouts(const std::set<std::string>& scope, core::PlacementMap& updates, int64_t now) {
    for (const auto& name : scope) {
        auto it = services_.find(name);
        if (it == services_.end() || it->second.rollout.state != "updating") continue;
        const ServiceRecord& r = it->second;
        const int64_t target = r.generation;
        const auto copies = copiesOf(name);
        std::vector<core::RolloutSlot> slots;
        int64_t failures = 0;
        for (int slot = 0; slot < r.spec.replicas; ++slot) {
            const core::SlotPlacement* p = placementOf(name, slot, updates);
            if (!p || p->node.empty()) continue;  // not placed yet: it gets the target when it is
            auto view = live_.find(p->node);
            core::RolloutSlot rs;
            rs.slot = slot;
            rs.generation = p->generation;
            rs.movable = view != live_.end() && !view->second.down && view->second.session;
            if (p->generation == target && !rs.movable) {
                // On a node that is lost: not the new generation's failure. It
                // holds the next batch until the slot is back or has moved.
                failures += watches_[{name, slot}].failed;
                rs.failed = watches_[{name, slot}].failed;
            } else if (p->generation == target) {
                Watch& w = watches_[{name, slot}];
                if (w.node != p->node && !w.failed) w = Watch{now, 0, 0, 0, false, p->node};  // new, or moved since
                if (!w.askedAt) w.askedAt = now;
                if (auto c = copies.find({slot, p->node, target, p->incarnation}); c != copies.end()) {
                    if (!w.seenAt) w.seenAt = now;
                    if (c->second.ready && !w.firstReadyAt) w.firstReadyAt = now;
                    if (c->second.exited && !w.exitedAt) w.exitedAt = now;
                    rs.ready = c->second.ready;
                }
                rs.askedAt = w.askedAt;
                rs.seenAt = w.seenAt;
                rs.firstReadyAt = w.firstReadyAt;
                rs.exitedAt = w.exitedAt;
                rs.failed = w.failed;
                failures += w.failed;
            }
            slots.push_back(rs);
        }
        auto step = core::stepRollout(r.spec.update, target, r.spec.replicas, slots, failures, core::startBudgetMs(r.spec), now);
        for (const auto& [slot, why] : step.failed) {
            watches_[{name, slot}].failed = true;
            event("rollout", name, "", "replica failed: " + why, now);
        }
        if (step.outcome == core::RolloutStep::Outcome::Failed) {
            const auto action = r.spec.update.failureAction;
            if (action == UpdateConfig::FailureAction::Rollback) {
                if (auto rb = rollBack(name, step.reason, updates, now); !rb)
                    log::errorf("master: rolling %s back: %s", name.c_str(), rb.error().message().c_str());
            } else {
                ServiceRecord next = r;
                next.rollout.state = "paused";
                next.rollout.reason = step.reason;
                next.rollout.failures = failures + int64_t(step.failed.size());
                if (auto put = putService(name, next, now); !put)
                    log::errorf("master: pausing the rollout of %s: %s", name.c_str(), put.error().message().c_str());
                else
                    event("rollout", name, "", "paused at generation " + std::to_string(target) + ": " + step.reason +
                                                   " (hull apply, or hull rollout undo " + name + ")",
                          now);
            }
            continue;
        }
        if (step.outcome == core::RolloutStep::Outcome::Completed) {
            ServiceRecord next = r;
            next.rollout.state = "completed";
            next.rollout.finished = o_.wallMs();
            next.rollout.failures = failures;
            if (auto put = putService(name, next, now); !put) {
                log::errorf("master: completing the rollout of %s: %s", name.c_str(), put.error().message().c_str());
                wake(name, now + 1000);
                continue;
            }
            forgetWatches(name);
            event("rollout", name, "", "succeeded: generation " + std::to_string(target) + " on all " +
                                           std::to_string(r.spec.replicas) + " replicas",
                  now);
            continue;
        }
        for (int slot : step.advance) {
            core::SlotPlacement p = *placementOf(name, slot, updates);
            p.generation = target;
            watches_[{name, slot}] = Watch{now, 0, 0, 0, false, p.node};
            updates[{name, slot}] = std::move(p);
        }
        wake(name, now + 100);  // its clock: monitor windows, the delay between batches
    }
}

Result<void> Cluster::rollBack(const std::string& name, const std::string& why, core::PlacementMap& updates, int64_t now) {
    const ServiceRecord& r = services_.at(name);
    const int64_t from = r.rollout.from, target = r.generation;
    const Service* before = specOf(name, from);
    if (!before) return failInvalid("generation " + std::to_string(from) + " is no longer known");
    ServiceRecord next = r;
    next.spec = *before;
    next.spec.replicas = r.spec.replicas;  // a scale is not what failed
    next.generation = from;
    next.rollout.state = "rolled-back";
    next.rollout.reason = why;
    next.rollout.finished = o_.wallMs();
    next.rollout.failures += failedWatches(name);
    // The outcome goes on the target's history record (putService), the spec back in force.
    TRY(putService(name, next, now));
    // Every slot moved goes back at once: where the new copy never got ready,
    // the old one still runs (start-first) and simply stays.
    for (int slot = 0; slot < r.spec.replicas; ++slot)
        if (const core::SlotPlacement* p = placementOf(name, slot, updates); p && p->generation == target) {
            core::SlotPlacement back = *p;
            back.generation = from;
            updates[{name, slot}] = std::move(back);
        }
    forgetWatches(name);
    specChanged_.insert(name);
    ++rollbacks_;
    event("rollout", name, "", "rolled back: generation " + std::to_string(target) + " -> " + std::to_string(from) + ": " + why, now);
    return {};
}

std::vector<core::PlacementChanges::Need> Cluster::phoenixNeeds(const std::set<std::string>& scope,
                                                               const core::PlacementMap& updates, int64_t now) {
    std::vector<core::PlacementChanges::Need> out;
    std::optional<std::map<std::string, int64_t>> ready;
    const int64_t wallNow = o_.wallMs();
    for (const auto& name : scope) {
        auto it = services_.find(name);
        if (it == services_.end() || !it->second.spec.maxAge) continue;
        const ServiceRecord& r = it->second;
        if (r.rollout.state == "updating" || r.rollout.state == "paused") continue;
        if (!ready) ready = readySlots();
        const auto copies = copiesOf(name);
        std::vector<core::AgedSlot> slots;
        for (int slot = 0; slot < r.spec.replicas; ++slot) {
            const core::SlotPlacement* p = placementOf(name, slot, updates);
            core::AgedSlot a;
            a.slot = slot;
            if (p) {
                a.generation = p->generation;
                a.incarnation = p->incarnation;
                a.retiring = !p->retiring.empty();
                if (auto c = copies.find({slot, p->node, p->generation, p->incarnation}); c != copies.end()) {
                    a.ready = c->second.ready;
                    a.startedMs = c->second.started;
                }
            }
            slots.push_back(a);
        }
        int64_t next = 0;
        auto due = core::phoenixDue(name, r.spec.maxAge->count(), r.spec.replicas, (*ready)[name], slots, wallNow, &next);
        if (due) {
            core::PlacementChanges::Need n;
            n.service = name;
            n.slot = due->slot;
            n.why = "phoenix: " + due->why;
            n.cause = core::PlacementChanges::Need::Cause::Phoenix;
            out.push_back(std::move(n));
        } else if (next > wallNow) {
            wake(name, now + (next - wallNow));
        }
        // Not due and nothing to wait for (a replacement in flight, a slot not
        // ready): its reports bring the next round.
    }
    return out;
}

Result<RolloutStatus> Cluster::rolloutStatus(const std::string& name) const {
    auto it = services_.find(name);
    if (it == services_.end()) return fail(Error::plain(ENOENT, "no service \"" + name + "\" (hull get services lists them)"));
    const ServiceRecord& r = it->second;
    RolloutStatus st;
    st.name = name;
    st.generation = r.generation;
    st.state = r.rollout.state;
    st.from = r.rollout.from;
    st.to = r.rollout.to;
    st.started = r.rollout.started;
    st.finished = r.rollout.finished;
    st.failures = r.rollout.failures;
    if (r.rollout.state == "updating") st.failures += failedWatches(name);
    st.reason = r.rollout.reason;
    st.desired = r.spec.replicas;
    st.ready = readySlots(&name)[name];
    const auto copies = copiesOf(name);
    for (auto p = placements_.lower_bound({name, 0}); p != placements_.end() && p->first.first == name; ++p) {
        if (p->first.second >= r.spec.replicas || p->second.generation != r.generation) continue;
        auto l = live_.find(p->second.node);
        if (l == live_.end() || l->second.down) continue;
        if (auto c = copies.find({p->first.second, p->second.node, p->second.generation, p->second.incarnation});
            c != copies.end() && c->second.ready)
            ++st.updated;
    }
    return st;
}

Result<RolloutHistory> Cluster::rolloutHistory(const std::string& name) const {
    auto it = services_.find(name);
    if (it == services_.end()) return fail(Error::plain(ENOENT, "no service \"" + name + "\" (hull get services lists them)"));
    RolloutHistory out;
    out.name = name;
    if (auto h = history_.find(name); h != history_.end())
        for (const auto& [g, rec] : h->second)
            out.revisions.push_back({g, rec.applied, rec.cause, rec.outcome, rec.reason, rec.spec.image, g == it->second.generation});
    return out;
}

Result<RolloutStatus> Cluster::undo(const std::string& name, int64_t toGeneration, int64_t now) {
    auto it = services_.find(name);
    if (it == services_.end()) return fail(Error::plain(ENOENT, "no service \"" + name + "\" (hull get services lists them)"));
    const ServiceRecord& r = it->second;
    auto hist = history_.find(name);
    if (!toGeneration) {
        // The one before: a rollout's origin, else the newest older generation kept.
        if (r.rollout.from && r.rollout.from != r.generation && r.rollout.state != "rolled-back") toGeneration = r.rollout.from;
        else if (hist != history_.end())
            for (auto g = hist->second.rbegin(); g != hist->second.rend(); ++g)
                if (g->first < r.generation) {
                    toGeneration = g->first;
                    break;
                }
        if (!toGeneration) return fail(Error::plain(ENOENT, "service " + name + " has no generation before " + std::to_string(r.generation)));
    }
    if (toGeneration == r.generation) return failInvalid("service " + name + " runs generation " + std::to_string(toGeneration) + " already");
    const Service* spec = specOf(name, toGeneration);
    if (!spec)
        return fail(Error::plain(ENOENT, "service " + name + " has no generation " + std::to_string(toGeneration) +
                                             " in its history (hull rollout history " + name + ")"));
    // A rollout like any other, to a generation that existed: containers of
    // it that still run (a rollout that paused half-way) stay as they are.
    ServiceRecord next = r;
    next.spec = *spec;
    next.spec.replicas = r.spec.replicas;
    next.generation = toGeneration;
    next.updated = o_.wallMs();
    next.rollout = RolloutRecord{"updating", r.generation, toGeneration, next.updated, 0, 0, ""};
    HistoryRecord h = hist->second.at(toGeneration);
    h.cause = "undo";
    h.outcome = "updating";
    h.reason.clear();
    h.applied = next.updated;
    std::vector<state::Op> ops{putOp(keys::service(name), encodeService(next)),
                               putOp(keys::history(name, toGeneration), encodeHistory(h))};
    if (auto t = store_->txn({}, ops, {}); !t) return fail(storeError(t.error()));
    services_[name] = next;
    history_[name][toGeneration] = std::move(h);
    forgetWatches(name);
    dirtyServices_.insert(name);
    specChanged_.insert(name);
    event("rollout", name, "", "undo: generation " + std::to_string(r.generation) + " -> " + std::to_string(toGeneration), now);
    return rolloutStatus(name);
}

void Cluster::pushAssignments(const std::set<std::string>& touched) {
    // node -> service -> its slots there, with the generation and incarnation
    // of each (a retiring copy is assigned too, as it runs, until released).
    using Slots = std::vector<std::tuple<int, int64_t, int64_t>>;
    std::map<std::string, std::map<std::string, Slots>> byNode;
    // A session that has had nothing yet needs the whole set: one pass over
    // every placement, only when there is such a session.
    std::set<std::string> fresh;
    for (const auto& [node, l] : live_)
        if (l.session && !l.sent) fresh.insert(node);
    auto add = [&](const std::string& svc, int slot, const core::SlotPlacement& p, bool freshOnly) {
        if (!p.node.empty() && fresh.count(p.node) == freshOnly) byNode[p.node][svc].push_back({slot, p.generation, p.incarnation});
        for (const auto& c : p.retiring)
            if (fresh.count(c.node) == freshOnly) byNode[c.node][svc].push_back({slot, c.generation, c.incarnation});
    };
    if (!fresh.empty())
        for (const auto& [key, p] : placements_) add(key.first, key.second, p, true);
    // The others: the part of the services that changed.
    for (const auto& svc : touched)
        for (auto it = placements_.lower_bound({svc, 0}); it != placements_.end() && it->first.first == svc; ++it)
            add(svc, it->first.second, it->second, false);
    std::map<std::pair<std::string, int64_t>, Value> specs;  // each generation's spec JSON, made once per round
    auto specValue = [&](const std::string& svc, int64_t generation, const Service& s) -> const Value& {
        auto it = specs.find({svc, generation});
        if (it == specs.end()) {
            // What nodes run: the autoscaler is the master's alone (and a node of an
            // older hull would refuse a field it does not know).
            Service forNodes = s;
            forNodes.autoscale.reset();
            it = specs.emplace(std::pair{svc, generation}, *Value::parse(serviceJson(forNodes))).first;
        }
        return it->second;
    };
    auto entry = [&](const std::string& svc, const ServiceRecord& r, const Slots& slots) {
        Value a = Value::object();
        a.set("name", svc);
        a.set("generation", r.generation);
        a.set("spec", specValue(svc, r.generation, r.spec));
        Value list = Value::array(), pins = Value::array(), versions = Value::array();
        std::set<int64_t> other;
        for (const auto& [slot, generation, incarnation] : slots) {
            list.push(slot);
            int64_t g = generation;
            if (g != r.generation && !specOf(svc, g)) {
                // Its spec is gone from the history (it should not be): the
                // current one is what the node can be given.
                log::errorf("master: %s: generation %lld of slot %d is not in its history; sending %lld", svc.c_str(),
                            static_cast<long long>(g), slot, static_cast<long long>(r.generation));
                g = r.generation;
            }
            if (g == r.generation && incarnation == 0) continue;
            Value pin = Value::object();
            pin.set("slot", slot);
            pin.set("generation", g);
            pin.set("incarnation", incarnation);
            pins.push(std::move(pin));
            if (g != r.generation) other.insert(g);
        }
        a.set("slots", list);
        if (!pins.asArray().empty()) a.set("pins", pins);
        for (int64_t g : other) {
            Value v = Value::object();
            v.set("generation", g);
            v.set("spec", specValue(svc, g, *specOf(svc, g)));
            versions.push(std::move(v));
        }
        if (!other.empty()) a.set("versions", versions);
        a.set("order", orderName(r.spec.update.order));
        return a;
    };
    // What a node was sent of a service, in a few bytes: its generation and
    // slots as they were.
    auto sigOf = [&](const std::string& svc, const Slots& slots) {
        auto r = services_.find(svc);
        std::string sig = std::to_string(r == services_.end() ? -1 : r->second.generation) + ":" +
                          (r == services_.end() ? "" : orderName(r->second.spec.update.order)) + ":";
        for (const auto& [slot, g, i] : slots) sig += std::to_string(slot) + "/" + std::to_string(g) + "/" + std::to_string(i) + ",";
        return sig;
    };
    static const std::map<std::string, Slots> kNone;
    for (auto& [node, l] : live_) {
        if (!l.session) continue;
        auto found = byNode.find(node);
        const auto& mine = found == byNode.end() ? kNone : found->second;
        // A new session gets the whole set, then only the services whose part changed.
        bool full = !l.sent;
        Value list = Value::array(), keep = Value::array(), removed = Value::array();
        auto include = [&](const std::string& svc, const Slots& slots) {
            auto r = services_.find(svc);
            if (r == services_.end()) keep.push(svc);  // unreadable here: the node keeps what it has of it
            else list.push(entry(svc, r->second, slots));
        };
        if (full) {
            l.sent.emplace();
            for (const auto& [svc, slots] : mine) {
                (*l.sent)[svc] = sigOf(svc, slots);
                include(svc, slots);
            }
            // What this hull cannot read stays on every node as it is, whether
            // or not a placement it could read names the node.
            for (const auto& svc : unreadable_)
                if (!mine.count(svc)) keep.push(svc);
        } else {
            for (const auto& svc : touched) {
                auto s = mine.find(svc);
                auto old = l.sent->find(svc);
                if (s == mine.end()) {
                    if (old != l.sent->end()) {
                        removed.push(svc);
                        l.sent->erase(old);
                    }
                    continue;
                }
                std::string sig = sigOf(svc, s->second);
                if (old != l.sent->end() && old->second == sig) continue;
                (*l.sent)[svc] = std::move(sig);
                include(svc, s->second);
            }
            if (list.asArray().empty() && keep.asArray().empty() && removed.asArray().empty()) continue;
        }
        Value m = Value::object();
        m.set("type", "assignments");
        m.set("full", full);
        m.set("services", list);
        m.set("keep", keep);
        m.set("removed", removed);
        l.session->send(m.dump());
    }
}

std::string Cluster::metrics(int64_t now) const {
    std::string out = autoscaling_.metrics(now);
    std::map<std::string, int> byStatus{{"ready", 0}, {"down", 0}, {"drained", 0}};
    for (const auto& [name, r] : nodes_) ++byStatus[nodeEntry(name, now).status];
    out += "# HELP hull_nodes Nodes by status.\n# TYPE hull_nodes gauge\n";
    for (const auto& [s, n] : byStatus) out += "hull_nodes{status=\"" + s + "\"} " + std::to_string(n) + "\n";
    out += "# HELP hull_service_replicas_desired Replicas declared.\n# TYPE hull_service_replicas_desired gauge\n";
    for (const auto& [name, r] : services_)
        out += "hull_service_replicas_desired{service=\"" + name + "\"} " + std::to_string(r.spec.replicas) + "\n";
    out += "# HELP hull_service_replicas_ready Slots with a ready replica.\n# TYPE hull_service_replicas_ready gauge\n";
    auto ready = readySlots();
    for (const auto& [name, r] : services_)
        out += "hull_service_replicas_ready{service=\"" + name + "\"} " + std::to_string(ready[name]) + "\n";
    size_t pending = 0;
    for (const auto& [s, slots] : pending_) pending += slots.size();
    out += "# HELP hull_replicas_pending Replicas no node fits.\n# TYPE hull_replicas_pending gauge\nhull_replicas_pending " +
           std::to_string(pending) + "\n";
    out += "# HELP hull_placements_total Replicas placed by the scheduler.\n# TYPE hull_placements_total counter\nhull_placements_total " +
           std::to_string(placed_) + "\n";
    out += "# HELP hull_reconcile_rounds_total Placement rounds.\n# TYPE hull_reconcile_rounds_total counter\nhull_reconcile_rounds_total " +
           std::to_string(rounds_) + "\n";
    out += "# HELP hull_failovers_total Replicas moved off nodes that were lost.\n# TYPE hull_failovers_total counter\nhull_failovers_total " +
           std::to_string(failovers_) + "\n";
    out += "# HELP hull_phoenix_replacements_total Replicas replaced for their age (maxAge).\n# TYPE hull_phoenix_replacements_total counter\n"
           "hull_phoenix_replacements_total " + std::to_string(phoenixes_) + "\n";
    out += "# HELP hull_rollbacks_total Rollouts rolled back by themselves.\n# TYPE hull_rollbacks_total counter\nhull_rollbacks_total " +
           std::to_string(rollbacks_) + "\n";
    out += "# HELP hull_rollouts Services by the state of their last rollout.\n# TYPE hull_rollouts gauge\n";
    std::map<std::string, int> rollouts{{"updating", 0}, {"paused", 0}, {"completed", 0}, {"rolled-back", 0}};
    for (const auto& [name, r] : services_)
        if (!r.rollout.state.empty()) ++rollouts[r.rollout.state];
    for (const auto& [st, n] : rollouts) out += "hull_rollouts{state=\"" + st + "\"} " + std::to_string(n) + "\n";
    char line[128];
    std::snprintf(line, sizeof line, "hull_reconcile_last_round_seconds %.6f\n", lastRoundMs_ / 1000);
    out += "# HELP hull_reconcile_last_round_seconds How long the last placement round took.\n# TYPE hull_reconcile_last_round_seconds gauge\n";
    out += line;
    return out;
}

}  // namespace hull::orchestrator::master
