// The node agent's loop: observe the engine's containers, plan (core/reconcile),
// apply (starts, background stops, the services' host ports). The API it
// serves is in agent_api.cpp; see agent_impl.hpp for the whole.
#include <fcntl.h>
#include <sys/inotify.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <random>
#include <thread>
#include <utility>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "runtime/net.hpp"
#include "orchestrator/node/agent_impl.hpp"
#include "orchestrator/node/assignment.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

int64_t AgentImpl::nowMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string AgentImpl::label(const runtime::ContainerInfo& c, const char* key) {
    auto it = c.labels.find(key);
    return it == c.labels.end() ? "" : it->second;
}

int64_t AgentImpl::labelInt(const runtime::ContainerInfo& c, const char* key) {
    return std::atoll(label(c, key).c_str());
}

namespace {

/// Container starts one reconcile round makes at most (the rest come in the next round, at once).
constexpr int kStartsPerRound = 8;
/// On a master's node, how long a replica to stop stays up after it left this
/// node's ports: the master took it out of every node's VIP and port sets in
/// the round that told us to stop it (or does once we report it stopping),
/// and those nodes apply that within milliseconds. Connections they open
/// meanwhile still find it serving, not refusing.
constexpr int kClusterDrainMs = 200;

/// When the monitor wrote exit.json: the exit's time to the millisecond (the
/// file's own "finished" has seconds), also for an exit while no agent ran.
int64_t exitTimeMs(const runtime::ContainerInfo& c, int64_t now) {
    struct stat st;
    if (::stat((c.dir + "/exit.json").c_str(), &st) != 0) return now;
    int64_t t = int64_t(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
    return t > 0 && t <= now ? t : now;
}

int graceSeconds(const Service& s) { return int((s.stopGracePeriod.count() + 999) / 1000); }

}  // namespace

AgentImpl::AgentImpl(AgentOptions o, runtime::Engine e, Store s)
    : o_(std::move(o)),
      engine_(std::move(e)),
      store_(std::move(s)),
      timer_(ioc_),
      prober_(ioc_, store_, o_.runDir, [this] { wake(); }),
      puller_(ioc_, o_.stateDir, o_.runDir, o_.insecureRegistries),
      startedMs_(nowMs()) {}

Result<void> AgentImpl::reconcileOnce() {
    nextWake_ = 0;
    int64_t now = nowMs();
    // The names' server, started again if it ended (said once per start).
    if (dns_ && now >= dnsCheckAt_) {
        dnsCheckAt_ = now + 1000;
        if (auto r = dns_->ensureRunning(); !r) log::debugf("node: %s", r.error().message().c_str());
    }
    // Desired. A spec this hull cannot read (a newer hull's, or damaged) is
    // not a deleted service: its containers are left as they are.
    std::vector<DesiredService> desired;
    std::map<std::string, DesiredService> specs;
    std::set<std::string> unreadable;
    for (const auto& row : TRY(store_.listServices())) {
        auto read = desiredFrom(row);
        if (!read) {
            unreadable.insert(row.name);
            noteUnreadable(row.name, read.error().message(), now);
            continue;
        }
        DesiredService d = std::move(*read);
        grace_[row.name] = graceSeconds(d.spec);
        specs[row.name] = d;
        desired.push_back(std::move(d));
    }
    std::erase_if(unreadable_, [&](const auto& u) { return !unreadable.count(u.first); });
    specs_ = specs;
    // Before any start: a container joins its networks as it is attached.
    syncIsolation();
    // A service's own, and not gone: its bookkeeping stays.
    auto keeps = [&](const std::string& service, int slot) {
        auto it = specs.find(service);
        return unreadable.count(service) || (it != specs.end() && wantsSlot(it->second, slot));
    };

    // Observed: the engine's containers that carry our labels.
    std::vector<Observed> observed;
    std::set<std::string> present;
    for (const auto& c : TRY(engine_.list(true))) {
        if (label(c, "hull.service").empty()) continue;
        present.insert(c.id);
        Observed o;
        o.id = c.id;
        o.service = label(c, "hull.service");
        o.slot = int(labelInt(c, "hull.slot"));
        o.generation = labelInt(c, "hull.generation");
        o.incarnation = labelInt(c, "hull.incarnation");  // none (an older hull's): 0
        // Being stopped in the background: its slot is free for a replacement now
        // (or, after a failed probe or a stop-first replacement, held by its
        // record in failed_), except that a stop-first replacement waits for it.
        if (isStopping(c.id)) {
            o.stopping = true;
            o.state = c.status == "exited" ? Observed::State::Exited : Observed::State::Running;
            observed.push_back(o);
            continue;
        }
        o.restarts = int(labelInt(c, "hull.restarts"));
        o.started = std::chrono::milliseconds(labelInt(c, "hull.started"));
        auto& exit = exits_[c.id];
        // An init that has just died before its monitor wrote the exit status:
        // wait (briefly) for it, so the exit code and the backoff are right.
        bool pending = false;
        if (c.status == "exited" && !c.exitCode && !exit.finishedMs) {
            if (!exit.pendingSince) exit.pendingSince = now;
            pending = now - exit.pendingSince < 1000;  // still "running" to the planner: no early replica
        }
        if (c.status == "exited" && !pending) {
            o.state = Observed::State::Exited;
            o.exitCode = c.exitCode;
            if (!exit.finishedMs) {
                exit.finishedMs = exitTimeMs(c, now);
                (void)store_.addEvent({0, exit.finishedMs, "exit", o.service, c.id,
                                       "exit code " + (c.exitCode ? std::to_string(*c.exitCode) : std::string("unknown")) +
                                           (exit.finishedMs < startedMs_ ? " (while the agent was down)" : "")});
            }
            o.finished = std::chrono::milliseconds(exit.finishedMs);
        } else if (pending) {
            o.state = Observed::State::Running;
            o.ready = false;
        } else {
            o.state = Observed::State::Running;
            // Probed as its own generation declares (an unknown one: as the service's).
            if (auto it = specs.find(o.service); it != specs.end()) prober_.run(specFor(it->second, o.generation), c, now);
            const ContainerProbes* p = prober_.probes(c.id);
            o.ready = c.status == "running" && (!p || p->ready());
            o.startupFailed = p && p->startupFailed();
            o.livenessFailed = o.startupFailed || (p && p->livenessFailed());
        }
        observed.push_back(o);
    }
    // Bookkeeping of containers that are gone (removed by hand, or stopped and removed).
    prober_.retain(present);
    std::erase_if(exits_, [&](const auto& e) { return !present.count(e.first); });
    // A container stopped for a failed probe counts as ended from the moment it
    // was stopped: its slot restarts per the policy, with the backoff.
    std::erase_if(failed_, [&](const auto& f) { return !keeps(f.second.service, f.second.slot); });
    for (const auto& [id, o] : failed_) observed.push_back(o);
    // Slots whose service is gone, or that it no longer wants, forget their failed starts.
    std::erase_if(startFailures_, [&](const auto& f) { return !keeps(f.first.first, f.first.second); });

    std::map<std::string, int> stops;  // containers to stop this round: grace seconds, by id
    // Starts wait for their containers to be created (some 35 ms each): a round
    // makes a few and leaves the rest to the next, at once, so that the API,
    // probes and the master's heartbeats are served in between (a node given
    // 60 replicas at once must not fall silent for two seconds and be taken
    // for dead).
    int starts = 0;
    for (const auto& a : plan(desired, observed, std::chrono::milliseconds(now), unreadable)) {
        if (a.kind == Action::Kind::Stop) {
            auto d = specs.find(a.service);
            // A stop-first replacement: the new container follows once this one has ended.
            bool stopFirst = (a.reason == "update" || a.reason == "phoenix") && d != specs.end() &&
                             d->second.managed() && d->second.order == ReplaceOrder::StopFirst;
            const Observed* stopped = nullptr;
            for (const auto& o : observed)
                if (o.id == a.container && !o.stopping) stopped = &o;
            if (stopped && (a.reason == "liveness" || a.reason == "startup" || stopFirst)) {
                Observed ended = *stopped;
                ended.state = Observed::State::Exited;
                ended.finished = std::chrono::milliseconds(now);
                failed_[stopped->id] = ended;
            }
            // A deleted service's containers keep the grace period it declared;
            // the others, the one of their own generation.
            int grace = grace_.count(a.service) ? grace_[a.service] : 10;
            if (d != specs.end() && stopped) grace = graceSeconds(specFor(d->second, stopped->generation));
            (void)store_.addEvent({0, now, a.reason == "phoenix" ? "phoenix" : "stop", a.service, a.container,
                                   "stopping (" + a.reason + ")"});
            stops[a.container] = grace;  // once out of its service's ports (below)
            forget(a.container);
            continue;
        }
        if (std::chrono::milliseconds(now) < a.notBefore) {
            // Backing off: wake up exactly when the delay is over, not at the next tick.
            wakeBy(a.notBefore.count());
            continue;
        }
        // A slot whose last starts failed (a missing image, a port taken)
        // is tried again after the service's backoff, doubling per failure.
        auto slotKey = std::make_pair(a.service, a.slot);
        // A new generation (the spec was fixed) starts without waiting.
        if (auto f = startFailures_.find(slotKey);
            f != startFailures_.end() && (f->second.generation != a.generation || f->second.incarnation != a.incarnation))
            startFailures_.erase(f);
        if (auto f = startFailures_.find(slotKey); f != startFailures_.end() && now < f->second.retryAt) {
            wakeBy(f->second.retryAt);
            continue;
        }
        if (starts >= kStartsPerRound) {
            wakeBy(now);
            continue;
        }
        // The spec of the generation the slot wants (the planner starts none it has no spec of).
        const Service& s = specFor(specs.at(a.service), a.generation);
        // An image not made sure of yet is pulled in the background first: a
        // pull can take long, and the other services' supervision goes on.
        // (One removed since it was made sure of is pulled by the start itself.)
        std::optional<Error> pullError;
        if (!puller_.known(s.image)) {
            pullError = puller_.takeFailure(s.image);
            if (!pullError) {
                if (!puller_.pulling(s.image)) puller_.ensure(s.image, [this](const Result<void>&) { wake(); });
                continue;
            }
        }
        // A start that failed leaves the ended container in place: its label
        // holds the slot's restart count, which the next try carries on.
        bool started = false;
        if (pullError) startFailed(s, a, *pullError, now);
        else started = start(s, a, now), ++starts;
        if (!started) {
            auto& f = startFailures_[slotKey];
            f.generation = a.generation;
            f.incarnation = a.incarnation;
            auto delay = backoffDelay(s.backoff.initial, s.backoff.factor, s.backoff.max, f.count++);
            f.retryAt = now + delay.count();
            wakeBy(f.retryAt);
            continue;
        }
        startFailures_.erase(slotKey);
        // The ended container it replaces has done its job (its restart count lives on in the new one's label).
        for (const auto& o : observed)
            if (o.service == a.service && o.slot == a.slot && o.state == Observed::State::Exited && !o.stopping) {
                if (failed_.erase(o.id)) continue;  // the background stop removes it
                (void)engine_.remove(o.id, true);
                forget(o.id);
            }
    }
    syncPorts(specs, unreadable, observed, stops, now);
    for (const auto& [id, grace] : stops) stopInBackground(id, grace, endpoints_ ? kClusterDrainMs : 0);
    return {};
}

void AgentImpl::noteUnreadable(const std::string& name, const std::string& error, int64_t now) {
    auto& said = unreadable_[name];
    if (said == error) return;
    said = error;
    log::errorf("node: service %s: stored spec unreadable: %s; its containers are left as they are", name.c_str(),
                error.c_str());
    (void)store_.addEvent({0, now, "error", name, "",
                           "stored spec unreadable: " + error + "; its containers are left as they are"});
}

Result<void> AgentImpl::run() {
    // Exec checks inherit our stdin; no probe should read a terminal's input.
    if (int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC); null >= 0) ::dup2(null, 0), ::close(null);
    // The API is served between rounds, each connection on its own deadline: a
    // client that sends nothing, or a byte at a time, holds up nothing.
    // Joined to a master: the credentials first (a wrong token ends the agent
    // here, with the master's reason), the session once the loop runs.
    std::optional<node::NodeCredentials> creds;
    if (o_.join) creds = TRY(node::ensureJoined(*o_.join));
    auto api = TRY(ApiServer::listen(ioc_, o_.socketPath,
                                     [this](const std::string& method, const std::string& target, const std::string& body,
                                            ApiServer::Respond respond) { handle(method, target, body, std::move(respond)); }));
    asio::signal_set signals(ioc_, SIGINT, SIGTERM);
    signals.async_wait([&](auto, int) { ioc_.stop(); });
    std::function<void()> watchExitsLater;  // set below, once the watcher exists
    std::function<void()> tick = [&] {
        if (auto r = reconcileOnce(); !r) log::errorf("node: reconcile: %s", r.error().message().c_str());
        if (watchExitsLater) watchExitsLater();
        auto wait = o_.tick;
        if (nextWake_) wait = std::min(wait, std::chrono::milliseconds(std::max<int64_t>(0, nextWake_ - nowMs())));
        timer_.expires_after(wait);
        timer_.async_wait([&](auto ec) {
            if (!ec || ec == asio::error::operation_aborted) tick();  // cancelled: wake() wants a round now
        });
    };
    // Exits wake the loop at once: each container's directory is watched for
    // the exit.json its monitor renames into place, so a replacement does
    // not wait for the next tick.
    int ino = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    asio::posix::stream_descriptor inotify(ioc_);
    if (ino >= 0) inotify.assign(ino);
    std::array<char, 4096> ibuf;
    std::function<void()> watchExits = [&] {
        if (ino < 0) return;
        for (const auto& id : sys::listDir(o_.stateDir + "/containers"))
            if (!watched_.count(id)) {
                ::inotify_add_watch(ino, (o_.stateDir + "/containers/" + id).c_str(), IN_MOVED_TO | IN_CREATE);
                watched_.insert(id);
            }
    };
    std::function<void()> readExits = [&] {
        if (ino < 0) return;
        inotify.async_read_some(asio::buffer(ibuf), [&](beast::error_code ec, size_t) {
            if (ec) return;
            wake();
            readExits();
        });
    };
    // Containers are created by a small spawner process, not by forks of
    // this one: the restart latency is mostly the copy of the forking
    // process's address space.
    if (auto r = engine_.startSpawner(); !r) log::warnf("node: no spawner (%s); forking instead", r.error().message().c_str());
    if (creds && o_.overlay) restoreOverlay();
    log::infof("node: serving %s, state in %s", o_.socketPath.c_str(), o_.stateDir.c_str());
    watchExitsLater = watchExits;
    readExits();
    tick();
    if (creds)
        link_ = node::MasterLink::start(
            ioc_, *o_.join, *creds,
            {[this](const json::Value& m) { assign(m); },
             [this] { return ContainerList{containers()}; },
             [this](const std::string& id) -> Result<std::string> {
                 auto c = TRY(engine_.inspect(id));
                 return c.dir;
             },
             [this](const node::ExecRequest& r) { return execCommand(r); },
             [this](const std::string& subnet, const std::string& cluster, const std::string& services,
                    const std::string& address) { return clusterNetwork(subnet, cluster, services, address); },
             [this](const json::Value& m) { overlayPeers(m); },
             [this](const json::Value& m) { endpoints(m); },
             [this] { return usage(); }});
    ioc_.run();
    if (link_) link_->stop();
    if (ino >= 0) inotify.close();
    return {};
}

void AgentImpl::assign(const json::Value& m) {
    int64_t now = nowMs();
    // The whole set (a new session), or the services whose part changed.
    bool full = !m.find("full") || !m.find("full")->isBool() || m.find("full")->asBool();
    std::set<std::string> assigned = [&] {
        auto keep = json::stringsOf(m.find("keep"));  // the master cannot read them: left as they are
        return std::set<std::string>(keep.begin(), keep.end());
    }();
    if (const json::Value* list = m.find("services"); list && list->isArray())
        for (const auto& entry : list->asArray()) {
            std::string name = json::stringOf(entry, "name");
            assigned.insert(name);
            // An entry we cannot read leaves the service as the node has it (and the others are applied).
            auto a = parseAssignment(entry);
            if (!a) {
                log::errorf("node: assignment of %s unreadable: %s; left as it is", name.c_str(),
                            a.error().message().c_str());
                if (!name.empty())
                    (void)store_.addEvent({0, now, "error", name, "",
                                           "assignment unreadable: " + a.error().message() + "; left as it is"});
                continue;
            }
            ServiceRow row = assignmentRow(*a);
            auto changed = store_.putAssignment(row);
            if (!changed) {
                log::errorf("node: storing the assignment of %s: %s", name.c_str(), changed.error().message().c_str());
                continue;
            }
            if (*changed) (void)store_.addEvent({0, now, "assign", name, "", assignmentSummary(row)});
        }
    auto unassign = [&](const std::string& name) {
        if (store_.deleteService(name).value_or(false))
            (void)store_.addEvent({0, now, "unassign", name, "", "no longer assigned to this node"});
    };
    if (!full)
        for (const auto& name : json::stringsOf(m.find("removed"))) unassign(name);
    else if (auto rows = store_.listServices())
        for (const auto& r : *rows)
            if (!assigned.count(r.name)) unassign(r.name);
    wake();
}

std::string AgentImpl::clusterNetwork(const std::string& subnet, const std::string& cluster, const std::string& services,
                                      const std::string& address) {
    int64_t now = nowMs();
    if (!o_.overlay) return "";  // --no-overlay: not in the master's overlay (no VTEP: no peers, no endpoints)
    auto mac = engine_.ensureOverlay(subnet, cluster, address);
    if (!mac) {
        log::errorf("node: overlay: %s", mac.error().message().c_str());
        (void)store_.addEvent({0, now, "error", "", "", "overlay: " + mac.error().message()});
        return "";
    }
    // Names: dnsmasq on the bridge's address, and containers started from now
    // on ask it (the network's own resolv.conf, which the engine prefers).
    if (auto net = netns::Cidr::parse(subnet)) {
        const std::string gw = net->firstHost().str();
        if (!dns_ || dns_->listen() != gw) dns_ = std::make_unique<node::ClusterDns>(o_.stateDir + "/dns", gw);
        if (auto w = sys::writeFile(o_.stateDir + "/networks/hull/resolv.conf", "nameserver " + gw + "\nsearch hull\n", 0644); !w)
            log::errorf("node: dns: %s", w.error().message().c_str());
        if (auto r = dns_->ensureRunning(); !r) {
            log::errorf("node: %s", r.error().message().c_str());
            (void)store_.addEvent({0, now, "error", "", "", r.error().message()});
        }
    }
    bool changed = !overlay_ || overlay_->subnet != subnet || overlay_->cluster != cluster ||
                   overlay_->services != services || overlay_->address != address;
    if (!overlay_) overlay_.emplace();
    overlay_->subnet = subnet;
    overlay_->cluster = cluster;
    overlay_->services = services;
    overlay_->address = address;
    if (changed) isolationNetworks_.reset();  // the chains are made again for the new ranges
    if (changed) {
        (void)store_.addEvent({0, now, "overlay", "", "", "containers on " + subnet + " of the cluster's " + cluster});
        saveOverlay();
    }
    return *mac;
}

void AgentImpl::overlayPeers(const json::Value& m) {
    if (!overlay_) return;  // no overlay of ours (its setup failed, and said so)
    auto apply = [&](const std::string& name, const OverlayPeer& p, bool add) {
        if (auto r = engine_.overlayPeer(p.subnet, p.underlay, p.mac, add); !r)
            log::errorf("node: overlay peer %s (%s on %s): %s", name.c_str(), p.subnet.c_str(), p.underlay.c_str(),
                        r.error().message().c_str());
    };
    const json::Value* full = m.find("full");
    std::map<std::string, OverlayPeer> next;
    if (!(full && full->isBool() && full->asBool())) next = overlay_->peers;
    if (const json::Value* list = m.find("removed"); list && list->isArray())
        for (const auto& p : list->asArray()) next.erase(json::stringOf(p, "name"));
    if (const json::Value* list = m.find("peers"); list && list->isArray())
        for (const auto& p : list->asArray())
            next[json::stringOf(p, "name")] = {json::stringOf(p, "subnet"), json::stringOf(p, "underlay"), json::stringOf(p, "mac")};
    // What goes first (a peer whose place changed is removed, then added as it is now).
    for (const auto& [name, p] : overlay_->peers)
        if (auto n = next.find(name); n == next.end() || !(n->second == p)) apply(name, p, false);
    for (const auto& [name, p] : next)
        if (auto o = overlay_->peers.find(name); o == overlay_->peers.end() || !(o->second == p)) apply(name, p, true);
    if (next != overlay_->peers) {
        overlay_->peers = std::move(next);
        saveOverlay();
    }
}

void AgentImpl::endpoints(const json::Value& m) {
    const json::Value* full = m.find("full");
    std::map<std::string, Endpoint> next;
    if (endpoints_ && !(full && full->isBool() && full->asBool())) next = *endpoints_;
    for (const auto& name : json::stringsOf(m.find("removed"))) next.erase(name);
    if (const json::Value* list = m.find("services"); list && list->isArray())
        for (const auto& e : list->asArray()) {
            Endpoint ep{json::stringOf(e, "vip"), json::stringsOf(e.find("ports")), json::stringsOf(e.find("backends")),
                        json::stringOf(e, "mode", "ingress"), json::stringsOf(e.find("networks")),
                        json::stringsOf(e.find("members"))};
            next[json::stringOf(e, "name")] = std::move(ep);
        }
    std::map<std::string, Endpoint> before = endpoints_ ? *endpoints_ : std::map<std::string, Endpoint>{};
    for (const auto& [name, ep] : before)
        if (auto n = next.find(name); (n == next.end() || n->second.vip != ep.vip) && !ep.vip.empty())
            if (auto r = engine_.unpublishVip(ep.vip); !r)
                log::errorf("node: service address of %s: %s", name.c_str(), r.error().message().c_str());
    for (const auto& [name, ep] : next)
        if (auto b = before.find(name); b == before.end() || b->second.vip != ep.vip || b->second.backends != ep.backends)
            if (!ep.vip.empty())
                if (auto r = engine_.publishVip(ep.vip, ep.backends); !r)
                    log::errorf("node: service address of %s: %s", name.c_str(), r.error().message().c_str());
    endpoints_ = std::move(next);
    syncIsolation();
    if (dns_) {
        std::map<std::string, node::ServiceAddresses> names;
        for (const auto& [name, ep] : *endpoints_) names[name] = {ep.vip, ep.backends};
        if (auto r = dns_->update(names); !r) log::errorf("node: %s", r.error().message().c_str());
    }
    wake();  // the mesh's ports follow at the round
}

std::vector<std::string> AgentImpl::isolationOf(const Service& s) const {
    if (!overlay_ || overlay_->services.empty()) return {};
    return networksOf(s);
}

void AgentImpl::syncIsolation() {
    if (!overlay_ || overlay_->services.empty()) return;
    std::set<std::string> networks;
    for (const auto& [name, d] : specs_) {
        for (const auto& n : networksOf(d.spec)) networks.insert(n);
        for (const auto& [generation, spec] : d.versions)
            for (const auto& n : networksOf(spec)) networks.insert(n);
    }
    // Every node's members, but for this node's own (local members join as they are attached).
    const auto mine = netns::Cidr::parse(overlay_->subnet);
    std::map<std::string, std::set<std::string>> remote;
    if (endpoints_)
        for (const auto& [name, ep] : *endpoints_)
            for (const auto& n : ep.networks) {
                networks.insert(n);
                auto& set = remote[n];
                for (const auto& m : ep.members)
                    if (auto ip = netns::Ipv4::parse(m); ip && mine && !mine->contains(*ip)) set.insert(m);
            }
    std::vector<std::string> list(networks.begin(), networks.end());
    const bool mode = runtime::Engine::isolationMode();
    if (isolationNetworks_ != list || isolationMode_ != mode) {
        if (auto r = engine_.ensureIsolation(overlay_->subnet, overlay_->cluster, overlay_->services, list); !r) {
            log::errorf("node: networks: %s", r.error().message().c_str());
            (void)store_.addEvent({0, nowMs(), "error", "", "", "networks: " + r.error().message()});
            return;  // tried again at the next round
        }
        isolationNetworks_ = list;
        isolationMode_ = mode;
    }
    // The other nodes' members as the master last said; until it has said
    // (an agent restarted while cut off), the kernel's sets stay as they were.
    if (!endpoints_) return;
    std::map<std::string, std::vector<std::string>> changed;
    for (const auto& n : list) {
        const auto& want = remote[n];
        std::vector<std::string> members(want.begin(), want.end());
        if (auto had = isolationRemote_.find(n); had == isolationRemote_.end() || had->second != members)
            changed[n] = std::move(members);
    }
    if (changed.empty()) return;
    if (auto r = engine_.setRemoteMembers(changed); !r) {
        log::errorf("node: networks: %s", r.error().message().c_str());
        return;
    }
    for (auto& [n, members] : changed) isolationRemote_[n] = std::move(members);
}

void AgentImpl::saveOverlay() const {
    if (!overlay_) return;
    json::Value v = json::Value::object();
    v.set("subnet", overlay_->subnet);
    v.set("clusterCidr", overlay_->cluster);
    v.set("serviceCidr", overlay_->services);
    v.set("address", overlay_->address);
    // As the master's "peers" message has them, so that a restart feeds them back in as one.
    json::Value peers = json::Value::array();
    for (const auto& [name, p] : overlay_->peers) {
        json::Value one = json::Value::object();
        one.set("name", name);
        one.set("subnet", p.subnet);
        one.set("underlay", p.underlay);
        one.set("mac", p.mac);
        peers.push(std::move(one));
    }
    v.set("peers", peers);
    if (auto w = sys::writeFileDurable(o_.stateDir + "/cluster/overlay.json", v.dump(), 0600); !w)
        log::errorf("node: overlay state: %s", w.error().message().c_str());
}

void AgentImpl::restoreOverlay() {
    auto text = sys::readFile(o_.stateDir + "/cluster/overlay.json");
    if (!text) return;  // not given one yet
    auto v = json::Value::parse(*text);
    if (!v || !v->isObject()) {
        log::errorf("node: %s/cluster/overlay.json is damaged: the master's next welcome makes it again", o_.stateDir.c_str());
        return;
    }
    if (clusterNetwork(json::stringOf(*v, "subnet"), json::stringOf(*v, "clusterCidr"), json::stringOf(*v, "serviceCidr"),
                       json::stringOf(*v, "address"))
            .empty())
        return;
    json::Value m = json::Value::object();
    m.set("full", true);
    if (const json::Value* p = v->find("peers"); p && p->isArray()) m.set("peers", *p);
    // The devices may be gone (a reboot) while the record says they were added: add all again.
    overlay_->peers.clear();
    overlayPeers(m);
}

Result<std::vector<std::string>> AgentImpl::execCommand(const node::ExecRequest& r) {
    auto c = TRY(engine_.inspect(r.container));
    if (c.status != "running")
        return failInvalid("exec: container " + c.name + " is " + c.status + " (exec needs a running container)");
    // /proc/self/exe: the agent's own binary even when the file was replaced since.
    std::vector<std::string> argv{"/proc/self/exe", "--state-dir", o_.stateDir};
    if (!o_.runDir.empty()) argv.insert(argv.end(), {"--run-dir", o_.runDir});
    argv.push_back("exec");
    if (r.tty) argv.push_back("--tty");
    if (r.interactive) argv.push_back("--interactive");
    for (const auto& e : r.env) argv.insert(argv.end(), {"--env", e});
    if (!r.user.empty()) argv.insert(argv.end(), {"--user", r.user});
    argv.insert(argv.end(), {"--", c.id});
    argv.insert(argv.end(), r.args.begin(), r.args.end());
    return argv;
}

std::string AgentImpl::hostSide(const std::string& spec) {
    auto p = netns::parsePortMapping(spec);
    if (!p) return spec;
    p->containerPort = p->hostPort;
    return netns::formatPortMapping(*p);
}

/// The same protocol and port, on the same host address or on every address.
/// An adopted container (started before this agent) whose probes have not
/// said anything yet: it keeps its place behind the service's ports until
/// they do, so an agent restart does not cut a running service off.
bool AgentImpl::notYetProbed(const Observed& o) const {
    if (o.started.count() >= startedMs_) return false;
    const ContainerProbes* p = prober_.probes(o.id);
    if (!p) return true;
    return p->health(ContainerProbes::Kind::Readiness) == ProbeState::Health::Unknown && !p->startupFailed();
}

/// The host sides of the balanced ports this agent has published (STATE/ports.json).
std::set<std::string> AgentImpl::readPortsRecord() const {
    std::set<std::string> out;
    if (auto text = sys::readFile(o_.stateDir + "/ports.json"))
        if (auto v = json::Value::parse(*text); v && v->isArray())
            for (const auto& p : v->asArray())
                if (p.isString()) out.insert(p.asString());
    return out;
}

void AgentImpl::writePortsRecord(const std::set<std::string>& ports) const {
    json::Value v = json::Value::array();
    for (const auto& p : ports) v.push(p);
    if (auto r = sys::writeFileAtomic(o_.stateDir + "/ports.json", v.dump() + "\n"); !r)
        log::warnf("node: %s", r.error().message().c_str());
}

/// Each service's host ports lead to its ready containers, and to nothing
/// else: a container joins once ready, and leaves as soon as it is to be
/// stopped (before its stop signal), so a phoenix or update replacement,
/// a liveness kill or a scale-down drops no new connection on the floor.
/// The ports of a service whose spec cannot be read stay as they are.
void AgentImpl::syncPorts(const std::map<std::string, DesiredService>& specs, const std::set<std::string>& unreadable,
                          const std::vector<Observed>& observed, const std::map<std::string, int>& stopping, int64_t now) {
    std::map<std::string, Published> want;
    if (endpoints_) {
        // A master's node: every service's ports, on every node, balanced over
        // its ready replicas wherever they run (the routing mesh). The master
        // refused clashes at apply.
        // publishMode local: this node's own replicas when it has any; host:
        // only those, and no port at all on a node without one (the client's
        // address reaches the replica: nothing is masqueraded).
        std::optional<netns::Cidr> mine;
        if (overlay_) mine = netns::Cidr::parse(overlay_->subnet).value_or(netns::Cidr{});
        for (const auto& [name, ep] : *endpoints_) {
            if (ep.ports.empty()) continue;
            std::vector<std::string> local;
            for (const auto& b : ep.backends)
                if (auto ip = netns::Ipv4::parse(b); ip && mine && mine->prefix > 0 && mine->contains(*ip)) local.push_back(b);
            if (ep.mode == "host" && local.empty()) continue;
            auto& w = want[name];
            w.ports = ep.ports;
            w.backends = ep.mode == "ingress" || local.empty() ? ep.backends : local;  // addresses, not container ids
            w.addresses = true;
        }
    }
    for (const auto& [name, d] : endpoints_ ? std::map<std::string, DesiredService>{} : specs) {
        const Service& s = d.spec;
        if (s.ports.empty()) continue;
        // Stored before apply refused clashes (or by hand): the first by name keeps the port.
        std::string clashWith;
        for (const auto& [other, w] : want)
            if (!portClash(s, specs.at(other).spec).empty()) clashWith = other;
        if (!clashWith.empty()) {
            if (portClashes_.insert(name).second)
                (void)store_.addEvent({0, now, "error", name, "", "ports: published by service \"" + clashWith +
                                                                       "\" already; not published"});
            continue;
        }
        portClashes_.erase(name);
        auto& w = want[name];
        w.ports = s.ports;
        for (const auto& o : observed)
            if (o.service == name && o.state == Observed::State::Running && !o.stopping && !o.livenessFailed &&
                wantsSlot(d, o.slot) &&
                !stopping.count(o.id) && (o.ready || notYetProbed(o)))
                w.backends.push_back(o.id);
        std::sort(w.backends.begin(), w.backends.end());
    }
    std::set<std::string> hostSides;
    for (const auto& [name, w] : want)
        for (const auto& p : w.ports) hostSides.insert(hostSide(p));
    if (!recorded_) recorded_ = readPortsRecord();
    // Once per agent: balanced ports that an earlier agent of this state dir
    // published (its record) and no service declares now. Only those: another
    // agent's ports in the same network namespace are not ours, and an agent
    // that never published any does not load libnftables at all. Not while a
    // spec cannot be read: its ports are among the recorded ones.
    if (!swept_ && unreadable.empty()) {
        for (const auto& h : *recorded_)
            if (!hostSides.count(h)) (void)engine_.unpublishBalanced({h});
        swept_ = true;
    }
    for (auto it = published_.begin(); it != published_.end();) {
        if (unreadable.count(it->first)) {
            ++it;
            continue;
        }
        auto w = want.find(it->first);
        std::vector<std::string> gone;
        for (const auto& p : it->second.ports)
            if (w == want.end() || std::none_of(w->second.ports.begin(), w->second.ports.end(),
                                                [&](const std::string& q) { return hostSide(q) == hostSide(p); }))
                gone.push_back(p);
        if (!gone.empty()) (void)engine_.unpublishBalanced(gone);
        it = w == want.end() ? published_.erase(it) : std::next(it);
    }
    // Recorded before they are published: a crash in between leaves no port
    // unrecorded. Unswept, the record keeps what it had.
    std::set<std::string> record = hostSides;
    for (const auto& [name, p] : published_)
        if (unreadable.count(name))
            for (const auto& port : p.ports) record.insert(hostSide(port));
    if (!swept_) record.insert(recorded_->begin(), recorded_->end());
    if (record != *recorded_) {
        writePortsRecord(record);
        recorded_ = record;
    }
    for (auto& [name, w] : want) {
        auto& have = published_[name];
        // Unchanged, and published (or failed, and not due for another try).
        if (have.ports == w.ports && have.backends == w.backends && (have.error.empty() || now < have.retryAt)) continue;
        auto r = w.addresses ? engine_.publishBalancedTo(w.ports, w.backends) : engine_.publishBalanced(w.ports, w.backends);
        if (r) {
            if (have.backends != w.backends || have.ports != w.ports)
                log::debugf("node: %s: ports lead to %zu container(s)", name.c_str(), w.backends.size());
            have = w;
            continue;
        }
        // Taken by something else (a `hull run -p`): said once, tried again every few seconds.
        if (have.error != r.error().message())
            (void)store_.addEvent({0, now, "error", name, "", "ports: " + r.error().message()});
        have.ports = w.ports;
        have.backends = w.backends;
        have.error = r.error().message();
        have.retryAt = now + 5000;
        wakeBy(have.retryAt);
    }
}

bool AgentImpl::isStopping(const std::string& id) {
    std::lock_guard lock(stoppingMu_);
    return stopping_.count(id) > 0;
}

/// A stop waits for the grace period: it must not hold up the loop (a
/// liveness replacement or the next phoenix step), so it runs in a thread
/// of its own, with an Engine of its own.
void AgentImpl::stopInBackground(const std::string& id, int grace, int drainMs) {
    {
        std::lock_guard lock(stoppingMu_);
        if (!stopping_.insert(id).second) return;
    }
    std::thread([this, id, grace, drainMs, state = o_.stateDir, run = o_.runDir] {
        if (drainMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(drainMs));
        if (auto e = runtime::Engine::open(state, run)) {
            if (auto r = e->stop(id, grace); !r) log::warnf("node: stop %s: %s", id.c_str(), r.error().message().c_str());
            if (auto r = e->remove(id, true); !r) log::warnf("node: remove %s: %s", id.c_str(), r.error().message().c_str());
        }
        std::lock_guard lock(stoppingMu_);
        stopping_.erase(id);
    }).detach();
}

/// False when the engine could not start it (recorded as an event; tried again next round).
bool AgentImpl::start(const Service& s, const Action& a, int64_t now) {
    runtime::RunOptions r;
    r.image = s.image;
    r.insecureRegistries = o_.insecureRegistries;
    static std::mt19937 rng{std::random_device{}()};
    char suffix[8];
    std::snprintf(suffix, sizeof suffix, "%04x", unsigned(rng() & 0xffff));
    r.name = s.name + "-" + std::to_string(a.slot) + "-" + suffix;
    r.command = s.command;
    r.env = s.env;
    // No ports of its own: the service's host ports are balanced over its
    // ready containers (syncPorts).
    r.volumes = s.volumes;
    if (s.limits.memory > 0) r.memory = std::to_string(s.limits.memory);
    r.cpus = s.limits.cpus;
    r.pidsLimit = s.limits.pids;
    r.detach = true;
    r.isolation = isolationOf(s);
    r.labels = {{"hull.service", s.name},
                {"hull.slot", std::to_string(a.slot)},
                {"hull.generation", std::to_string(a.generation)},
                {"hull.incarnation", std::to_string(a.incarnation)},
                {"hull.restarts", std::to_string(a.restarts)},
                {"hull.started", std::to_string(now)}};
    std::string id;
    auto res = engine_.run(r, &id);
    if (!res) {
        startFailed(s, a, res.error(), now);
        return false;
    }
    // Stamped now: the process runs from here (the round began before the start).
    (void)store_.addEvent({0, nowMs(), "start", s.name, id, a.reason + " (slot " + std::to_string(a.slot) + ")"});
    return true;
}

void AgentImpl::startFailed(const Service& s, const Action& a, const Error& e, int64_t now) {
    (void)store_.addEvent({0, now, "error", s.name, "", "start slot " + std::to_string(a.slot) + ": " + e.message()});
    log::warnf("node: %s slot %d: %s", s.name.c_str(), a.slot, e.message().c_str());
}

void AgentImpl::forget(const std::string& id) {
    prober_.forget(id);
    exits_.erase(id);
}

Result<std::unique_ptr<Agent>> Agent::open(const AgentOptions& opts) {
    AgentOptions o = opts;
    if (o.socketPath.empty()) o.socketPath = o.stateDir + "/node.sock";
    auto engine = TRY(runtime::Engine::open(o.stateDir, o.runDir));
    auto store = TRY(Store::open(o.stateDir + "/node.db"));
    return std::unique_ptr<Agent>(new AgentImpl(o, std::move(engine), std::move(store)));
}


}  // namespace hull::orchestrator
