#include "orchestrator/node/agent.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/inotify.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "netns/portmap.hpp"
#include "orchestrator/api/messages.hpp"
#include "orchestrator/core/probes.hpp"
#include "orchestrator/node/probe_io.hpp"
#include "orchestrator/core/reconcile.hpp"
#include "orchestrator/model/service.hpp"
#include "orchestrator/node/store.hpp"
#include "runtime/engine.hpp"
#include "runtime/runtime.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using json::Value;
using Clock = std::chrono::system_clock;

namespace {

int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

std::string label(const runtime::ContainerInfo& c, const char* key) {
    auto it = c.labels.find(key);
    return it == c.labels.end() ? "" : it->second;
}

int64_t labelInt(const runtime::ContainerInfo& c, const char* key) {
    return std::atoll(label(c, key).c_str());
}

/// An exec check is started in one round and collected in a later one, so a
/// slow command never holds up the loop; it is killed at its timeout.
struct ExecCheck {
    pid_t pid = -1;       // our child (the runtime's detached exec)
    int64_t deadline = 0;
};

/// Probe bookkeeping per container, kept in memory: after an agent restart
/// probes start over (startup and readiness are re-established by the first
/// successes).
struct ProbeTrack {
    std::optional<ContainerProbes> probes;  // made at the first look at it running
    std::map<ContainerProbes::Kind, ExecCheck> execs;
    int64_t finishedMs = 0;    // when it ended (exit.json's mtime), once we have seen it
    int64_t pendingSince = 0;  // ended, exit status not yet recorded
};

/// An error answer of the API.
std::pair<int, std::string> apiError(int code, const std::string& msg) { return {code, encode(ErrorReply{msg})}; }

constexpr size_t kDescribeEvents = 20;  // the last ones of a service that `hull describe` shows

/// When the monitor wrote exit.json: the exit's time to the millisecond (the
/// file's own "finished" has seconds), also for an exit while no agent ran.
int64_t exitTimeMs(const runtime::ContainerInfo& c, int64_t now) {
    struct stat st;
    if (::stat((c.dir + "/exit.json").c_str(), &st) != 0) return now;
    int64_t t = int64_t(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
    return t > 0 && t <= now ? t : now;
}

class AgentImpl final : public Agent {
public:
    AgentImpl(AgentOptions o, runtime::Engine e, Store s)
        : o_(std::move(o)), engine_(std::move(e)), store_(std::move(s)), startedMs_(nowMs()) {}

    Result<void> reconcileOnce() override {
        nextWake_ = 0;
        // Exec checks killed at their timeout or with their container.
        std::erase_if(reap_, [](pid_t p) { return ::waitpid(p, nullptr, WNOHANG) != 0; });
        // Desired.
        std::vector<DesiredService> desired;
        std::map<std::string, Service> specs;
        for (const auto& row : TRY(store_.listServices())) {
            auto s = serviceFromJson(row.spec);
            if (!s) {
                log::errorf("node: service %s: stored spec unreadable: %s", row.name.c_str(), s.error().message().c_str());
                continue;
            }
            specs[row.name] = *s;
            grace_[row.name] = int((s->stopGracePeriod.count() + 999) / 1000);
            desired.push_back({*s, row.generation});
        }
        specs_ = specs;
        // Observed: the engine's containers that carry our labels.
        int64_t now = nowMs();
        std::vector<Observed> observed;
        std::map<std::string, runtime::ContainerInfo> byId;
        std::set<std::string> stopping;
        {
            std::lock_guard lock(stoppingMu_);
            stopping = stopping_;
        }
        std::set<std::string> present;
        for (const auto& c : TRY(engine_.list(true))) {
            if (label(c, "hull.service").empty()) continue;
            present.insert(c.id);
            // Being stopped in the background: its slot is free for a replacement now
            // (or, after a failed probe, held by its record in failed_).
            if (stopping.count(c.id)) continue;
            byId[c.id] = c;
            Observed o;
            o.id = c.id;
            o.service = label(c, "hull.service");
            o.slot = int(labelInt(c, "hull.slot"));
            o.generation = labelInt(c, "hull.generation");
            o.restarts = int(labelInt(c, "hull.restarts"));
            o.started = std::chrono::milliseconds(labelInt(c, "hull.started"));
            auto& track = probes_[c.id];
            // An init that has just died before its monitor wrote the exit status:
            // wait (briefly) for it, so the exit code and the backoff are right.
            bool pending = false;
            if (c.status == "exited" && !c.exitCode && !track.finishedMs) {
                if (!track.pendingSince) track.pendingSince = now;
                pending = now - track.pendingSince < 1000;  // still "running" to the planner: no early replica
            }
            if (c.status == "exited" && !pending) {
                o.state = Observed::State::Exited;
                o.exitCode = c.exitCode;
                if (!track.finishedMs) {
                    track.finishedMs = exitTimeMs(c, now);
                    (void)store_.addEvent({0, track.finishedMs, "exit", o.service, c.id,
                                           "exit code " + (c.exitCode ? std::to_string(*c.exitCode) : std::string("unknown")) +
                                               (track.finishedMs < startedMs_ ? " (while the agent was down)" : "")});
                }
                o.finished = std::chrono::milliseconds(track.finishedMs);
            } else if (pending) {
                o.state = Observed::State::Running;
                o.ready = false;
            } else {
                o.state = Observed::State::Running;
                auto it = specs.find(o.service);
                if (it != specs.end()) runProbes(it->second, c, track, now);
                const auto& p = track.probes;
                o.ready = c.status == "running" && (!p || p->ready());
                o.startupFailed = p && p->startupFailed();
                o.livenessFailed = o.startupFailed || (p && p->livenessFailed());
            }
            observed.push_back(o);
        }
        // Bookkeeping of containers that are gone (removed by hand, or stopped and removed).
        for (auto it = probes_.begin(); it != probes_.end();)
            it = present.count(it->first) ? std::next(it) : (abandonChecks(it->second), probes_.erase(it));
        // A container stopped for a failed probe counts as ended from the moment it
        // was stopped: its slot restarts per the policy, with the backoff.
        std::erase_if(failed_, [&](const auto& f) {
            auto it = specs.find(f.second.service);
            return it == specs.end() || f.second.slot >= it->second.replicas;
        });
        for (const auto& [id, o] : failed_) observed.push_back(o);
        // Slots whose service is gone, or scaled below them, forget their failed starts.
        std::erase_if(startFailures_, [&](const auto& f) {
            auto it = specs.find(f.first.first);
            return it == specs.end() || f.first.second >= it->second.replicas;
        });

        std::map<std::string, int> stops;  // containers to stop this round: grace seconds, by id
        for (const auto& a : plan(desired, observed, std::chrono::milliseconds(now))) {
            if (a.kind == Action::Kind::Stop) {
                if (a.reason == "liveness" || a.reason == "startup")
                    for (const auto& o : observed)
                        if (o.id == a.container) {
                            Observed ended = o;
                            ended.state = Observed::State::Exited;
                            ended.finished = std::chrono::milliseconds(now);
                            failed_[o.id] = ended;
                        }
                // A deleted service's containers keep the grace period it declared.
                auto it = specs.find(a.service);
                if (it != specs.end()) grace_[a.service] = int((it->second.stopGracePeriod.count() + 999) / 1000);
                int grace = grace_.count(a.service) ? grace_[a.service] : 10;
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
            if (auto f = startFailures_.find(slotKey); f != startFailures_.end() && f->second.generation != a.generation)
                startFailures_.erase(f);
            if (auto f = startFailures_.find(slotKey); f != startFailures_.end() && now < f->second.retryAt) {
                wakeBy(f->second.retryAt);
                continue;
            }
            // A start that failed leaves the ended container in place: its label
            // holds the slot's restart count, which the next try carries on.
            if (!start(specs.at(a.service), a, now)) {
                const Service& s = specs.at(a.service);
                auto& f = startFailures_[slotKey];
                f.generation = a.generation;
                auto delay = backoffDelay(s.backoff.initial, s.backoff.factor, s.backoff.max, f.count++);
                f.retryAt = now + delay.count();
                wakeBy(f.retryAt);
                continue;
            }
            startFailures_.erase(slotKey);
            // The ended container it replaces has done its job (its restart count lives on in the new one's label).
            for (const auto& o : observed)
                if (o.service == a.service && o.slot == a.slot && o.state == Observed::State::Exited) {
                    if (failed_.erase(o.id)) continue;  // the background stop removes it
                    (void)engine_.remove(o.id, true);
                    forget(o.id);
                }
        }
        syncPorts(specs, observed, stops, now);
        for (const auto& [id, grace] : stops) stopInBackground(id, grace);
        return {};
    }

    Result<void> run() override {
        // Exec checks inherit our stdin; no probe should read a terminal's input.
        if (int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC); null >= 0) ::dup2(null, 0), ::close(null);
        asio::io_context ioc;
        ::unlink(o_.socketPath.c_str());
        local::acceptor acceptor(ioc, local::endpoint(o_.socketPath));
        // root and the hull group only.
        ::chmod(o_.socketPath.c_str(), 0660);
        if (struct group* g = ::getgrnam("hull")) (void)!::chown(o_.socketPath.c_str(), 0, g->gr_gid);
        asio::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&](auto, int) { ioc.stop(); });
        asio::steady_timer timer(ioc);
        std::function<void()> watchExitsLater;  // set below, once the watcher exists
        std::function<void()> tick = [&] {
            if (auto r = reconcileOnce(); !r) log::errorf("node: reconcile: %s", r.error().message().c_str());
            if (watchExitsLater) watchExitsLater();
            auto wait = o_.tick;
            if (nextWake_) wait = std::min(wait, std::chrono::milliseconds(std::max<int64_t>(0, nextWake_ - nowMs())));
            timer.expires_after(wait);
            timer.async_wait([&](auto ec) {
                if (!ec || ec == asio::error::operation_aborted) tick();
            });
        };
        // Exits wake the loop at once: each container's directory is watched for
        // the exit.json its monitor renames into place, so a replacement does
        // not wait for the next tick.
        int ino = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        asio::posix::stream_descriptor inotify(ioc);
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
                timer.cancel();  // reconcile now (the tick handler runs on cancel too)
                readExits();
            });
        };
        std::function<void()> accept = [&] {
            acceptor.async_accept([&](beast::error_code ec, local::socket sock) {
                if (!ec) serveOne(std::move(sock));
                accept();
            });
        };
        // Containers are created by a small spawner process, not by forks of
        // this one: the restart latency is mostly the copy of the forking
        // process's address space.
        if (auto r = engine_.startSpawner(); !r) log::warnf("node: no spawner (%s); forking instead", r.error().message().c_str());
        log::infof("node: serving %s, state in %s", o_.socketPath.c_str(), o_.stateDir.c_str());
        watchExitsLater = watchExits;
        accept();
        readExits();
        tick();
        ioc.run();
        if (ino >= 0) inotify.close();
        ::unlink(o_.socketPath.c_str());
        return {};
    }

private:
    /// Reconcile again at AT (unix ms) if that is before the next wake-up already due.
    void wakeBy(int64_t at) { nextWake_ = nextWake_ ? std::min(nextWake_, at) : at; }

    /// "[IP:]PORT:PORT/PROTO": a port spec's host side, the same for every
    /// spelling of it ("8080:80" and "0.0.0.0:8080:81/tcp" are one host port).
    static std::string hostSide(const std::string& spec) {
        auto p = netns::parsePortMapping(spec);
        if (!p) return spec;
        p->containerPort = p->hostPort;
        return netns::formatPortMapping(*p);
    }

    /// A host port of A that B publishes too ("8080/tcp"), or "": the same
    /// protocol and port, on the same host address or on every address.
    static std::string portClash(const Service& a, const Service& b) {
        for (const auto& x : a.ports)
            for (const auto& y : b.ports) {
                auto p = netns::parsePortMapping(x), q = netns::parsePortMapping(y);
                if (p && q && p->protocol == q->protocol && p->hostPort == q->hostPort &&
                    (!p->hostIp || !q->hostIp || p->hostIp == q->hostIp))
                    return std::to_string(p->hostPort) + "/" + p->protocol;
            }
        return "";
    }

    /// An adopted container (started before this agent) whose probes have not
    /// said anything yet: it keeps its place behind the service's ports until
    /// they do, so an agent restart does not cut a running service off.
    bool notYetProbed(const Observed& o) const {
        if (o.started.count() >= startedMs_) return false;
        auto t = probes_.find(o.id);
        if (t == probes_.end() || !t->second.probes) return true;
        const auto& p = *t->second.probes;
        return p.health(ContainerProbes::Kind::Readiness) == ProbeState::Health::Unknown && !p.startupFailed();
    }

    /// The host sides of the balanced ports this agent has published (STATE/ports.json).
    std::set<std::string> readPortsRecord() const {
        std::set<std::string> out;
        if (auto text = sys::readFile(o_.stateDir + "/ports.json"))
            if (auto v = json::Value::parse(*text); v && v->isArray())
                for (const auto& p : v->asArray())
                    if (p.isString()) out.insert(p.asString());
        return out;
    }
    void writePortsRecord(const std::set<std::string>& ports) const {
        json::Value v = json::Value::array();
        for (const auto& p : ports) v.push(p);
        if (auto r = sys::writeFileAtomic(o_.stateDir + "/ports.json", v.dump() + "\n"); !r)
            log::warnf("node: %s", r.error().message().c_str());
    }

    /// Each service's host ports lead to its ready containers, and to nothing
    /// else: a container joins once ready, and leaves as soon as it is to be
    /// stopped (before its stop signal), so a phoenix or update replacement,
    /// a liveness kill or a scale-down drops no new connection on the floor.
    void syncPorts(const std::map<std::string, Service>& specs, const std::vector<Observed>& observed,
                   const std::map<std::string, int>& stopping, int64_t now) {
        std::map<std::string, Published> want;
        for (const auto& [name, s] : specs) {
            if (s.ports.empty()) continue;
            // Stored before apply refused clashes (or by hand): the first by name keeps the port.
            std::string clashWith;
            for (const auto& [other, w] : want)
                if (!portClash(s, specs.at(other)).empty()) clashWith = other;
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
                if (o.service == name && o.state == Observed::State::Running && !o.livenessFailed &&
                    o.slot < s.replicas && !stopping.count(o.id) && (o.ready || notYetProbed(o)))
                    w.backends.push_back(o.id);
            std::sort(w.backends.begin(), w.backends.end());
        }
        std::set<std::string> hostSides;
        for (const auto& [name, w] : want)
            for (const auto& p : w.ports) hostSides.insert(hostSide(p));
        // Once per agent: balanced ports that an earlier agent of this state dir
        // published (its record) and no service declares now. Only those: another
        // agent's ports in the same network namespace are not ours, and an agent
        // that never published any does not load libnftables at all.
        if (!recorded_) {
            recorded_ = readPortsRecord();
            for (const auto& h : *recorded_)
                if (!hostSides.count(h)) (void)engine_.unpublishBalanced({h});
        }
        for (auto it = published_.begin(); it != published_.end();) {
            auto w = want.find(it->first);
            std::vector<std::string> gone;
            for (const auto& p : it->second.ports)
                if (w == want.end() || std::none_of(w->second.ports.begin(), w->second.ports.end(),
                                                    [&](const std::string& q) { return hostSide(q) == hostSide(p); }))
                    gone.push_back(p);
            if (!gone.empty()) (void)engine_.unpublishBalanced(gone);
            it = w == want.end() ? published_.erase(it) : std::next(it);
        }
        // Recorded before they are published: a crash in between leaves no port unrecorded.
        if (hostSides != *recorded_) {
            writePortsRecord(hostSides);
            recorded_ = hostSides;
        }
        for (auto& [name, w] : want) {
            auto& have = published_[name];
            // Unchanged, and published (or failed, and not due for another try).
            if (have.ports == w.ports && have.backends == w.backends && (have.error.empty() || now < have.retryAt))
                continue;
            auto r = engine_.publishBalanced(w.ports, w.backends);
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

    /// A stop waits for the grace period: it must not hold up the loop (a
    /// liveness replacement or the next phoenix step), so it runs in a thread
    /// of its own, with an Engine of its own.
    void stopInBackground(const std::string& id, int grace) {
        {
            std::lock_guard lock(stoppingMu_);
            if (!stopping_.insert(id).second) return;
        }
        std::thread([this, id, grace, state = o_.stateDir, run = o_.runDir] {
            if (auto e = runtime::Engine::open(state, run)) {
                if (auto r = e->stop(id, grace); !r) log::warnf("node: stop %s: %s", id.c_str(), r.error().message().c_str());
                if (auto r = e->remove(id, true); !r) log::warnf("node: remove %s: %s", id.c_str(), r.error().message().c_str());
            }
            std::lock_guard lock(stoppingMu_);
            stopping_.erase(id);
        }).detach();
    }

    /// False when the engine could not start it (recorded as an event; tried again next round).
    bool start(const Service& s, const Action& a, int64_t now) {
        runtime::RunOptions r;
        r.image = s.image;
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
        r.labels = {{"hull.service", s.name},
                    {"hull.slot", std::to_string(a.slot)},
                    {"hull.generation", std::to_string(a.generation)},
                    {"hull.restarts", std::to_string(a.restarts)},
                    {"hull.started", std::to_string(now)}};
        std::string id;
        auto res = engine_.run(r, &id);
        if (!res) {
            (void)store_.addEvent({0, now, "error", s.name, "", "start slot " + std::to_string(a.slot) + ": " + res.error().message()});
            log::warnf("node: %s slot %d: %s", s.name.c_str(), a.slot, res.error().message().c_str());
            return false;
        }
        // Stamped now: the process runs from here (the round began before the start).
        (void)store_.addEvent({0, nowMs(), "start", s.name, id, a.reason + " (slot " + std::to_string(a.slot) + ")"});
        return true;
    }

    void runProbes(const Service& s, const runtime::ContainerInfo& c, ProbeTrack& t, int64_t now) {
        if (!t.probes) t.probes.emplace(s.startup, s.readiness, s.liveness, labelInt(c, "hull.started"));
        ContainerProbes& cp = *t.probes;
        auto result = [&](ContainerProbes::Kind k, bool ok) {
            const char* kind = probeKindName(k);
            ++probeResults_[s.name + "\"," + "probe=\"" + kind + "\",result=\"" + (ok ? "success" : "failure")];
            if (cp.record(k, ok))
                (void)store_.addEvent({0, now, "probe", s.name, c.id,
                                       std::string(kind) + (cp.health(k) == ProbeState::Health::Healthy ? " ok" : " failing")});
        };
        // Exec checks from earlier rounds: those that have ended, or run out of time.
        for (auto it = t.execs.begin(); it != t.execs.end();) {
            int status = 0;
            pid_t w = ::waitpid(it->second.pid, &status, WNOHANG);
            if (w == 0 && now < it->second.deadline) {
                ++it;
                continue;
            }
            if (w == 0) {
                ::kill(it->second.pid, SIGKILL);
                reap_.push_back(it->second.pid);
            }
            result(it->first, w > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
            it = t.execs.erase(it);
        }
        for (ContainerProbes::Kind k : cp.due(now)) {
            const Probe& p = *cp.probe(k);
            if (p.kind == Probe::Kind::Exec) {
                auto pid = startExec(c.id, p.exec);
                if (!pid) {
                    log::debugf("node: %s: %s probe: %s", c.name.c_str(), probeKindName(k), pid.error().message().c_str());
                    result(k, false);
                } else {
                    t.execs[k] = {*pid, now + p.timeout.count()};
                }
                continue;
            }
            // TCP and HTTP checks are bounded by their timeout and run here and now.
            bool ok = false;
            if (!c.ip.empty()) {
                auto r = p.kind == Probe::Kind::Http ? probeHttp(c.ip, p.port, p.path, p.timeout) : probeTcp(c.ip, p.port, p.timeout);
                latencySum_ += double(r.latency.count()) / 1e6;
                ++latencyCount_;
                ok = r.ok;
            }
            result(k, ok);
        }
    }

    /// Start ARGV in the container and return at once: the runtime's detached
    /// exec leaves the process our child, collected by a later round (Engine::exec
    /// would wait for it, with no timeout, holding up the loop).
    Result<pid_t> startExec(const std::string& id, const std::vector<std::string>& argv) {
        runtime::Runtime rt(o_.runDir + "/runc");
        runtime::ExecOptions eo;
        eo.args = argv;
        eo.detach = true;
        eo.pidFile = o_.runDir + "/probe-" + id + ".pid";
        TRY(rt.exec(id, eo));
        auto text = sys::readFile(eo.pidFile);
        ::unlink(eo.pidFile.c_str());
        pid_t pid = text ? pid_t(std::atoi(text->c_str())) : 0;
        if (pid <= 0) return fail(Error::plain(EIO, "exec probe: no pid in " + eo.pidFile));
        return pid;
    }

    /// Exec checks still out for a container we stop tracking: killed, reaped later.
    void abandonChecks(ProbeTrack& t) {
        for (const auto& [k, x] : t.execs) {
            ::kill(x.pid, SIGKILL);
            reap_.push_back(x.pid);
        }
        t.execs.clear();
    }

    void forget(const std::string& id) {
        auto it = probes_.find(id);
        if (it == probes_.end()) return;
        abandonChecks(it->second);
        probes_.erase(it);
    }

    /// Ready as the loop last saw it; a container not probed yet is ready only
    /// when its service declares nothing that has to say so first.
    bool readyOf(const runtime::ContainerInfo& c) {
        if (c.status != "running") return false;
        {
            std::lock_guard lock(stoppingMu_);
            if (stopping_.count(c.id)) return false;
        }
        auto t = probes_.find(c.id);
        if (t != probes_.end() && t->second.probes) return t->second.probes->ready();
        auto s = specs_.find(label(c, "hull.service"));
        return s == specs_.end() || (!s->second.readiness && !s->second.startup);
    }

    /// Prometheus text format (version 0.0.4).
    std::string metrics() {
        std::string out;
        std::map<std::string, int> byState;
        std::map<std::string, int64_t> restarts;
        std::string perContainer;
        auto list = engine_.list(true);
        if (list)
            for (const auto& c : *list) {
                std::string svc = label(c, "hull.service");
                if (svc.empty()) continue;
                ++byState[c.status];
                restarts[svc] += labelInt(c, "hull.restarts");
                if (c.status != "running") continue;
                auto st = engine_.stats(c.id);
                auto v = st ? Value::parse(*st) : Result<Value>(fail(Error::plain(EIO, "")));
                if (!v) continue;
                uint64_t cpuNs = 0, mem = 0;
                if (const Value* cpu = v->find("cpu"))
                    if (const Value* u = cpu->find("usage"))
                        if (const Value* t = u->find("total")) t->toUint64(cpuNs);
                if (const Value* m = v->find("memory"))
                    if (const Value* u = m->find("usage"))
                        if (const Value* x = u->find("usage")) x->toUint64(mem);
                std::string lbl = "{service=\"" + svc + "\",container=\"" + c.name + "\"}";
                char line[256];
                std::snprintf(line, sizeof line, "hull_container_cpu_seconds_total%s %.6f\n", lbl.c_str(), double(cpuNs) / 1e9);
                perContainer += line;
                perContainer += "hull_container_memory_bytes" + lbl + " " + std::to_string(mem) + "\n";
            }
        out += "# HELP hull_containers Containers of declared services, by state.\n# TYPE hull_containers gauge\n";
        for (const char* st : {"running", "paused", "created", "exited"})
            out += "hull_containers{state=\"" + std::string(st) + "\"} " + std::to_string(byState[st]) + "\n";
        out += "# HELP hull_restarts Restarts of the containers now present, per service.\n# TYPE hull_restarts gauge\n";
        for (const auto& [svc, n] : restarts) out += "hull_restarts{service=\"" + svc + "\"} " + std::to_string(n) + "\n";
        out += "# HELP hull_probes_total Probe results.\n# TYPE hull_probes_total counter\n";
        for (const auto& [k, n] : probeResults_) out += "hull_probes_total{service=\"" + k + "\"} " + std::to_string(n) + "\n";
        char lat[128];
        std::snprintf(lat, sizeof lat, "hull_probe_latency_seconds_sum %.6f\nhull_probe_latency_seconds_count %llu\n",
                      latencySum_, (unsigned long long)latencyCount_);
        out += "# HELP hull_probe_latency_seconds Latency of HTTP and TCP probes.\n# TYPE hull_probe_latency_seconds summary\n";
        out += lat;
        out += "# HELP hull_container_cpu_seconds_total CPU time, from the cgroup.\n# TYPE hull_container_cpu_seconds_total counter\n";
        out += "# HELP hull_container_memory_bytes Memory in use, from the cgroup.\n# TYPE hull_container_memory_bytes gauge\n";
        out += perContainer;
        out += "# HELP hull_service_port_backends Containers a service's host ports lead to (-1: not published, see events).\n"
               "# TYPE hull_service_port_backends gauge\n";
        for (const auto& [svc, p] : published_)
            out += "hull_service_port_backends{service=\"" + svc + "\"} " +
                   (p.error.empty() ? std::to_string(p.backends.size()) : std::string("-1")) + "\n";
        return out;
    }

    /// The containers of declared services (of SERVICE only, when given).
    std::vector<ContainerEntry> containers(const std::string& service = "") {
        std::vector<ContainerEntry> out;
        auto list = engine_.list(true);
        if (!list) return out;
        std::set<std::string> stopping;
        {
            std::lock_guard lock(stoppingMu_);
            stopping = stopping_;
        }
        for (const auto& c : *list) {
            std::string svc = label(c, "hull.service");
            if (svc.empty() || (!service.empty() && svc != service)) continue;
            ContainerEntry e;
            e.id = c.id;
            e.name = c.name;
            e.service = svc;
            e.slot = int(labelInt(c, "hull.slot"));
            e.generation = labelInt(c, "hull.generation");
            e.restarts = int(labelInt(c, "hull.restarts"));
            // "stopping": on its way out in the background (grace period), no longer counted.
            e.status = c.status == "running" && stopping.count(c.id) ? std::string("stopping") : c.status;
            e.exitCode = c.exitCode;
            e.ready = readyOf(c);
            e.ip = c.ip;
            e.started = labelInt(c, "hull.started");
            out.push_back(std::move(e));
        }
        return out;
    }

    static Event eventOf(const EventRow& r) { return {r.id, r.timeMs, r.kind, r.service, r.container, r.message}; }

    /// The API: cereal messages (messages.hpp) under /v1, Prometheus text at /metrics.
    std::pair<int, std::string> handle(const std::string& method, const std::string& target, const std::string& body) {
        auto error = apiError;
        const std::string services = "/v1/services";
        if (method == "GET" && target == services) {
            auto rows = store_.listServices();
            if (!rows) return error(500, rows.error().message());
            ServiceList list;
            for (const auto& r : *rows) {
                auto spec = serviceFromJson(r.spec);
                if (!spec) {
                    log::errorf("node: service %s: stored spec unreadable: %s", r.name.c_str(), spec.error().message().c_str());
                    continue;
                }
                list.services.push_back({r.name, r.generation, std::move(*spec)});
            }
            return {200, encode(list)};
        }
        if (method == "POST" && target == services) {
            auto req = decode<ApplyRequest>(body);
            if (!req) return error(400, req.error().message());
            std::string source = req->source.empty() ? "<input>" : req->source;
            auto svc = parseService(req->text, source);
            if (!svc) return error(400, svc.error().message());
            // An image the node does not have and cannot pull would only make
            // every start fail: refused here, before anything is stored.
            if (auto img = engine_.ensureImage(svc->image); !img)
                return error(400, source + ": image: " +
                                      img.error().message());
            // Two services cannot share a host port: refused here, before anything is stored.
            if (auto rows = store_.listServices())
                for (const auto& r : *rows) {
                    if (r.name == svc->name) continue;
                    auto other = serviceFromJson(r.spec);
                    if (!other) continue;
                    if (auto clash = portClash(*svc, *other); !clash.empty())
                        return error(400, source + ": ports: " +
                                              clash + " is published by service \"" + r.name + "\" already");
                }
            auto gen = store_.putService(svc->name, serviceJson(*svc));
            if (!gen) return error(500, gen.error().message());
            (void)store_.addEvent({0, nowMs(), "apply", svc->name, "", "generation " + std::to_string(*gen)});
            return {200, encode(ApplyReply{svc->name, *gen})};
        }
        if (target.rfind(services + "/", 0) == 0) {
            std::string rest = target.substr(services.size() + 1);
            std::string name = rest.substr(0, rest.find('/'));
            if (method == "GET" && rest == name) return describe(name);
            if (method == "DELETE" && rest == name) {
                auto gone = store_.deleteService(name);
                if (!gone) return error(500, gone.error().message());
                if (!*gone) return error(404, "no service \"" + name + "\"");
                (void)store_.addEvent({0, nowMs(), "delete", name, "", "deleted"});
                return {200, encode(DeleteReply{name})};
            }
            if (method == "POST" && rest == name + "/scale") {
                auto req = decode<ScaleRequest>(body);
                if (!req) return error(400, req.error().message());
                if (req->replicas < 0 || req->replicas > 1000) return error(400, "replicas: expected a number from 0 to 1000");
                auto row = store_.getService(name);
                if (!row || !*row) return error(404, "no service \"" + name + "\"");
                auto svc = serviceFromJson((*row)->spec);
                if (!svc) return error(500, svc.error().message());
                svc->replicas = int(req->replicas);
                auto gen = store_.putService(name, serviceJson(*svc));
                if (!gen) return error(500, gen.error().message());
                return {200, encode(ScaleReply{name, *gen, req->replicas})};
            }
        }
        if (method == "GET" && target == "/v1/containers") return {200, encode(ContainerList{containers()})};
        if (method == "GET" && target == "/metrics") return {200, metrics()};
        if (method == "GET" && target.rfind("/v1/events", 0) == 0) {
            int64_t since = 0;
            if (auto q = target.find("since="); q != std::string::npos) since = std::atoll(target.c_str() + q + 6);
            auto evs = store_.events(since);
            if (!evs) return error(500, evs.error().message());
            EventList list;
            for (const auto& e : *evs) list.events.push_back(eventOf(e));
            return {200, encode(list)};
        }
        return error(404, "no such endpoint: " + method + " " + target);
    }

    /// `hull describe`: the spec, its containers and its recent events in one message.
    std::pair<int, std::string> describe(const std::string& name) {
        auto row = store_.getService(name);
        if (!row) return apiError(500, row.error().message());
        if (!*row) return apiError(404, "no service \"" + name + "\" (hull get services lists them)");
        auto spec = serviceFromJson((*row)->spec);
        if (!spec) return apiError(500, "service " + name + ": stored spec unreadable: " + spec.error().message());
        DescribeReply d;
        d.name = name;
        d.generation = (*row)->generation;
        d.updated = (*row)->updatedMs;
        d.spec = std::move(*spec);
        d.containers = containers(name);
        d.replicas.desired = d.spec.replicas;
        for (const auto& c : d.containers) d.replicas.ready += c.ready;
        if (auto rows = store_.serviceEvents(name, kDescribeEvents))
            for (const auto& e : *rows) d.events.push_back(eventOf(e));
        return {200, encode(d)};
    }

    void serveOne(local::socket sock) {
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        beast::error_code ec;
        http::read(sock, buf, req, ec);
        if (ec) return;
        auto [status, body] = handle(std::string(req.method_string()), std::string(req.target()), req.body());
        http::response<http::string_body> res{http::status(status), req.version()};
        res.set(http::field::content_type,
                std::string(req.target()) == "/metrics" ? "text/plain; version=0.0.4" : "application/json");
        res.body() = body;
        res.prepare_payload();
        http::write(sock, res, ec);
    }

    AgentOptions o_;
    runtime::Engine engine_;
    Store store_;
    std::map<std::string, ProbeTrack> probes_;
    std::map<std::string, Service> specs_;      // as of the last round (readiness of containers not probed yet)
    std::map<std::string, Observed> failed_;    // stopped for a failed probe, until their slot restarts
    struct Published {
        std::vector<std::string> ports, backends;  // the spec's ports; container ids
        std::string error;                         // of the last try, if it failed
        int64_t retryAt = 0;
    };
    std::map<std::string, Published> published_;  // by service: what its host ports lead to
    std::optional<std::set<std::string>> recorded_;  // STATE/ports.json as last read or written (none: not read yet)
    std::set<std::string> portClashes_;  // services whose ports another service holds (said once)
    struct StartFailures {
        int count = 0;        // consecutive failed starts of the slot
        int64_t retryAt = 0;  // unix ms: not before
        int64_t generation = 0;  // of the spec that failed
    };
    std::map<std::pair<std::string, int>, StartFailures> startFailures_;  // by (service, slot)
    std::vector<pid_t> reap_;                   // exec checks killed, not yet reaped
    int64_t startedMs_ = 0;                     // this agent's start (exits before it happened while none ran)
    std::map<std::string, uint64_t> probeResults_;
    double latencySum_ = 0;
    uint64_t latencyCount_ = 0;
    int64_t nextWake_ = 0;              // the earliest backoff that ends before the next tick
    std::set<std::string> watched_;     // container dirs with an inotify watch
    std::map<std::string, int> grace_;  // seconds, per service, remembered past its deletion
    std::mutex stoppingMu_;
    std::set<std::string> stopping_;
};

}  // namespace

Result<std::unique_ptr<Agent>> Agent::open(const AgentOptions& opts) {
    AgentOptions o = opts;
    if (o.socketPath.empty()) o.socketPath = o.stateDir + "/node.sock";
    auto engine = TRY(runtime::Engine::open(o.stateDir, o.runDir));
    auto store = TRY(Store::open(o.stateDir + "/node.db"));
    return std::unique_ptr<Agent>(new AgentImpl(o, std::move(engine), std::move(store)));
}

Result<std::pair<int, std::string>> apiRequest(const std::string& socketPath, const std::string& method,
                                               const std::string& target, const std::string& body) {
    asio::io_context ioc;
    local::socket sock(ioc);
    beast::error_code ec;
    sock.connect(local::endpoint(socketPath), ec);
    if (ec) return fail(Error::plain(ECONNREFUSED, "cannot reach the node agent at " + socketPath + ": " + ec.message() +
                                                       " (is `hull node` running?)"));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "hull-node");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(sock, req, ec);
    if (ec) return fail(Error::plain(EIO, "node agent: " + ec.message()));
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res, ec);
    if (ec && ec != http::error::end_of_stream) return fail(Error::plain(EIO, "node agent: " + ec.message()));
    return std::make_pair(int(res.result_int()), res.body());
}

}  // namespace hull::orchestrator
