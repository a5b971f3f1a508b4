#include "orchestrator/master/cluster.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <malloc.h>

#include "orchestrator/core/constraints.hpp"
#include "orchestrator/core/lifecycle.hpp"
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
    if (old == services_.end()) {
        r.generation = 1;
    } else if (sameTemplate(old->second.spec, *svc)) {
        // The same file again, or only the replica count changed: running
        // replicas stay as they are.
        r.generation = old->second.generation;
        if (old->second.spec.replicas == svc->replicas) return ApplyReply{svc->name, r.generation};
    } else {
        r.generation = old->second.generation + 1;
    }
    if (auto put = store_->put(keys::service(svc->name), encodeService(r)); !put) return fail(storeError(put.error()));
    services_[svc->name] = r;
    unreadable_.erase(svc->name);
    dirtyServices_.insert(svc->name);
    specChanged_.insert(svc->name);
    event("apply", svc->name, "", "generation " + std::to_string(r.generation) + ", " + std::to_string(svc->replicas) + " replicas",
          now);
    return ApplyReply{svc->name, r.generation};
}

Result<ScaleReply> Cluster::scale(const std::string& name, int64_t replicas, int64_t now) {
    auto it = services_.find(name);
    if (it == services_.end()) return fail(Error::plain(ENOENT, "no service \"" + name + "\" (hull get services lists them)"));
    if (replicas < 0 || replicas > 100000) return failInvalid("replicas: expected a number from 0 to 100000");
    ServiceRecord r = it->second;
    r.spec.replicas = int(replicas);
    r.updated = o_.wallMs();
    if (auto put = store_->put(keys::service(name), encodeService(r)); !put) return fail(storeError(put.error()));
    it->second = r;
    dirtyServices_.insert(name);
    event("scale", name, "", std::to_string(replicas) + " replicas", now);
    return ScaleReply{name, r.generation, replicas};
}

Result<void> Cluster::remove(const std::string& name, int64_t now) {
    if (!services_.count(name) && !unreadable_.count(name))
        return fail(Error::plain(ENOENT, "no service \"" + name + "\" (hull get services lists them)"));
    std::string placements = keys::kPlacements + name + "/";
    auto t = store_->txn({}, {deleteOp(keys::service(name)), deleteOp(placements, state::prefixEnd(placements))}, {});
    if (!t) return fail(storeError(t.error()));
    services_.erase(name);
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
    auto r = only ? readyAt_.lower_bound({*only, 0, ""}) : readyAt_.begin();
    auto p = only ? placements_.lower_bound({*only, 0}) : placements_.begin();
    const std::string* counting = nullptr;  // the service whose slots are being counted
    int64_t n = 0, lastSlot = -1;
    for (; r != readyAt_.end(); ++r) {
        const auto& [svc, slot, node] = r->first;
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
        if (at.node == node || std::find(at.retiring.begin(), at.retiring.end(), node) != at.retiring.end()) {
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
    auto add = [&](const std::tuple<std::string, int, std::string>& key) {
        const auto& [svc, slot, node] = key;
        if (!down.count(node)) out.push_back({svc, slot, node});
    };
    if (!scope) {
        for (const auto& [key, n] : readyAt_) add(key);
    } else {
        for (const auto& svc : *scope)
            for (auto it = readyAt_.lower_bound({svc, 0, ""}); it != readyAt_.end() && std::get<0>(it->first) == svc; ++it)
                add(it->first);
    }
    std::sort(out.begin(), out.end());
    return out;
}

void Cluster::countReady(const std::string& node, const ContainerEntry& c, int delta) {
    if (!c.ready || c.status != "running") return;
    auto [it, fresh] = readyAt_.try_emplace({c.service, c.slot, node}, 0);
    if ((it->second += delta) <= 0) readyAt_.erase(it);
    // What placement looks at changed: which slots are ready where.
    dirtyServices_.insert(c.service);
}

void Cluster::applyReport(const std::string& node, Live& l, StatusReport r) {
    if (r.full) forgetContainers(node, l);
    for (const auto& id : r.gone)
        if (auto it = l.containers.find(id); it != l.containers.end()) {
            countReady(node, it->second, -1);
            l.containers.erase(it);
        }
    for (auto& c : r.containers) {
        c.node = node;
        auto [it, fresh] = l.containers.try_emplace(c.id);
        if (!fresh) {
            bool wasReady = it->second.ready && it->second.status == "running";
            bool isReady = c.ready && c.status == "running";
            if (wasReady && isReady && it->second.service == c.service && it->second.slot == c.slot) {
                it->second = std::move(c);  // still counted where it was
                continue;
            }
            countReady(node, it->second, -1);
        }
        it->second = std::move(c);
        countReady(node, it->second, +1);
    }
}

void Cluster::forgetContainers(const std::string& node, Live& l) {
    for (const auto& [id, c] : l.containers) countReady(node, c, -1);
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
    l.sent.reset();  // push its assignments on this session, even an empty one
    sessions_[s.get()] = name;
    Value welcome = Value::object();
    welcome.set("type", "welcome");
    welcome.set("heartbeatMs", int64_t(o_.heartbeat.count()));
    s->send(welcome.dump());
    // The next round pushes it its whole set. A node that was down comes up
    // there (node lifecycle: a change every service sees); one back within its
    // grace period moves nothing.
    freshSession_ = true;
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

bool Cluster::sessionClosed(const std::shared_ptr<api::WebSocketSession>& s, int64_t) {
    std::string node = nodeOf(s.get());
    sessions_.erase(s.get());
    if (node.empty()) return false;
    Live& l = live_[node];
    if (l.session != s) return false;
    l.session.reset();
    // Down only once its grace period is over: a reconnect within it moves
    // nothing. Already down: nothing more will come of what it reported.
    if (l.down) forgetContainers(node, l);
    return true;
}

// ---- the round ----

void Cluster::reconcile(int64_t now) {
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
    for (const auto& [name, r] : services_)
        if (inScope(name)) replicas[name] = r.spec.replicas;
    core::PlacementMap current;
    if (scope)
        for (const auto& svc : *scope)
            for (auto it = placements_.lower_bound({svc, 0}); it != placements_.end() && it->first.first == svc; ++it)
                current.insert(*it);
    const core::PlacementMap& considered = scope ? current : placements_;
    std::map<std::string, core::NodeView> view;
    for (const auto& [name, r] : nodes_) view[name] = {!live_[name].down, r.drained};
    std::vector<core::ReadyReplica> ready = readyReplicas(scope ? &*scope : nullptr);

    auto changes = core::planPlacements(replicas, considered, view, ready);
    core::PlacementMap updates = std::move(changes.updates);
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
                for (const auto& n : now.retiring) existing.push_back({svc, key.second, n});
            }
        }
        std::vector<core::Want> wants;
        wants.reserve(changes.needs.size());
        for (const auto& n : changes.needs) wants.push_back({n.service, n.slot, n.avoid});
        auto plan = core::schedule(infos, demands, existing, wants);
        std::map<std::pair<std::string, int>, std::string> why;
        std::map<std::pair<std::string, std::string>, std::vector<std::string>> moved;  // (service, why) -> "slot 3 to n2"
        for (const auto& n : changes.needs) why[{n.service, n.slot}] = n.why;
        for (const auto& p : plan.placed) {
            std::pair<std::string, int> key{p.service, p.slot};
            auto u = updates.find(key);
            auto cur = placements_.find(key);
            core::SlotPlacement before = u != updates.end() ? u->second : cur != placements_.end() ? cur->second : core::SlotPlacement{};
            updates[key] = core::placedOn(before, p.node, view);
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
        std::vector<state::Op> ops;
        ops.reserve(updates.size());
        for (const auto& [key, p] : updates)
            ops.push_back(p.node.empty() && p.retiring.empty() ? deleteOp(keys::placement(key.first, key.second))
                                                               : putOp(keys::placement(key.first, key.second), encodePlacement(p)));
        if (auto t = store_->txn({}, ops, {}); !t) {
            // Nothing of this round is taken: the next round tries again.
            log::errorf("master: writing placements: %s", t.error().message().c_str());
            dirty_ = true;
            return;
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
    freshSession_ = false;
    ++rounds_;
    lastRoundMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
}

void Cluster::pushAssignments(const std::set<std::string>& touched) {
    // node -> service -> slots (a retiring copy is assigned too, until released).
    std::map<std::string, std::map<std::string, std::vector<int>>> byNode;
    // A session that has had nothing yet needs the whole set: one pass over
    // every placement, only when there is such a session.
    std::set<std::string> fresh;
    for (const auto& [node, l] : live_)
        if (l.session && !l.sent) fresh.insert(node);
    if (!fresh.empty())
        for (const auto& [key, p] : placements_) {
            if (fresh.count(p.node)) byNode[p.node][key.first].push_back(key.second);
            for (const auto& n : p.retiring)
                if (fresh.count(n)) byNode[n][key.first].push_back(key.second);
        }
    // The others: the part of the services that changed.
    for (const auto& svc : touched)
        for (auto it = placements_.lower_bound({svc, 0}); it != placements_.end() && it->first.first == svc; ++it) {
            const auto& [key, p] = *it;
            if (!p.node.empty() && !fresh.count(p.node)) byNode[p.node][svc].push_back(key.second);
            for (const auto& n : p.retiring)
                if (!fresh.count(n)) byNode[n][svc].push_back(key.second);
        }
    std::map<std::string, Value> specs;  // each service's spec JSON, made once per round
    auto entry = [&](const std::string& svc, const ServiceRecord& r, const std::vector<int>& slots) {
        auto spec = specs.find(svc);
        if (spec == specs.end()) spec = specs.emplace(svc, *Value::parse(serviceJson(r.spec))).first;
        Value a = Value::object();
        a.set("name", svc);
        a.set("generation", r.generation);
        a.set("spec", spec->second);
        Value s = Value::array();
        for (int x : slots) s.push(x);
        a.set("slots", s);
        return a;
    };
    auto sigOf = [&](const std::string& svc, const std::vector<int>& slots) {
        auto r = services_.find(svc);
        std::string sig = std::to_string(r == services_.end() ? -1 : r->second.generation) + ":";
        for (int s : slots) sig += std::to_string(s) + ",";
        return sig;
    };
    static const std::map<std::string, std::vector<int>> kNone;
    for (auto& [node, l] : live_) {
        if (!l.session) continue;
        auto found = byNode.find(node);
        const auto& mine = found == byNode.end() ? kNone : found->second;
        // What the node was sent, per service in a few bytes: a new session
        // gets the whole set, then only the services whose part changed.
        bool full = !l.sent;
        Value list = Value::array(), keep = Value::array(), removed = Value::array();
        auto include = [&](const std::string& svc, const std::vector<int>& slots) {
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
    std::string out;
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
    char line[128];
    std::snprintf(line, sizeof line, "hull_reconcile_last_round_seconds %.6f\n", lastRoundMs_ / 1000);
    out += "# HELP hull_reconcile_last_round_seconds How long the last placement round took.\n# TYPE hull_reconcile_last_round_seconds gauge\n";
    out += line;
    return out;
}

}  // namespace hull::orchestrator::master
