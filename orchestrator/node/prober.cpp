#include "orchestrator/node/prober.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "runtime/runtime.hpp"
#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator {

namespace {

int64_t nowMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

int64_t startedLabel(const runtime::ContainerInfo& c) {
    auto it = c.labels.find("hull.started");
    return it == c.labels.end() ? 0 : std::atoll(it->second.c_str());
}

}  // namespace

Prober::~Prober() {
    for (auto& [id, t] : tracks_) abandon(t);
    for (pid_t p : reap_) ::waitpid(p, nullptr, WNOHANG);
}

void Prober::run(const Service& s, const runtime::ContainerInfo& c, int64_t now) {
    Track& t = tracks_[c.id];
    if (!t.probes) t.probes.emplace(s.startup, s.readiness, s.liveness, startedLabel(c));
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
        record(t, s.name, c.id, it->first, w > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, now);
        it = t.execs.erase(it);
    }
    for (ContainerProbes::Kind k : t.probes->due(now)) {
        const Probe& p = *t.probes->probe(k);
        if (p.kind == Probe::Kind::Exec) {
            auto pid = startExec(c.id, p.exec);
            if (!pid) {
                log::debugf("node: %s: %s probe: %s", c.name.c_str(), probeKindName(k), pid.error().message().c_str());
                record(t, s.name, c.id, k, false, now);
            } else {
                t.execs[k] = {*pid, now + p.timeout.count()};
            }
            continue;
        }
        if (c.ip.empty()) {
            record(t, s.name, c.id, k, false, now);
            continue;
        }
        // Recorded when it completes: the callback finds the track unless the
        // container was forgotten, which cancels the check (no callback then).
        auto done = [this, id = c.id, service = s.name, name = c.name, k, http = p.kind == Probe::Kind::Http](const ProbeResult& r) {
            auto it = tracks_.find(id);
            if (it == tracks_.end()) return;
            it->second.checks.erase(k);
            latencySum_ += double(r.latency.count()) / 1e6;
            ++latencyCount_;
            if (http) {
                auto& [sum, n] = httpLatency_[service];
                sum += double(r.latency.count()) / 1e6;
                ++n;
            }
            if (!r.ok) log::debugf("node: %s: %s probe: %s", name.c_str(), probeKindName(k), r.detail.c_str());
            if (record(it->second, service, id, k, r.ok, nowMs()) && wake_) wake_();
        };
        t.checks[k] = p.kind == Probe::Kind::Http ? checkHttp(ioc_, c.ip, p.port, p.path, p.timeout, std::move(done))
                                                   : checkTcp(ioc_, c.ip, p.port, p.timeout, std::move(done));
    }
}

bool Prober::record(Track& t, const std::string& service, const std::string& id, ContainerProbes::Kind k, bool ok,
                    int64_t now) {
    const char* kind = probeKindName(k);
    ++results_[service + "\",probe=\"" + kind + "\",result=\"" + (ok ? "success" : "failure")];
    if (!t.probes->record(k, ok)) return false;
    (void)store_.addEvent({0, now, "probe", service, id,
                           std::string(kind) + (t.probes->health(k) == ProbeState::Health::Healthy ? " ok" : " failing")});
    return true;
}

const ContainerProbes* Prober::probes(const std::string& id) const {
    auto it = tracks_.find(id);
    return it == tracks_.end() || !it->second.probes ? nullptr : &*it->second.probes;
}

void Prober::abandon(Track& t) {
    for (const auto& [k, x] : t.execs) {
        ::kill(x.pid, SIGKILL);
        reap_.push_back(x.pid);
    }
    t.execs.clear();
    for (auto& [k, check] : t.checks) check->cancel();
    t.checks.clear();
}

void Prober::forget(const std::string& id) {
    auto it = tracks_.find(id);
    if (it == tracks_.end()) return;
    abandon(it->second);
    tracks_.erase(it);
}

void Prober::retain(const std::set<std::string>& present) {
    std::erase_if(reap_, [](pid_t p) { return ::waitpid(p, nullptr, WNOHANG) != 0; });
    for (auto it = tracks_.begin(); it != tracks_.end();) {
        if (present.count(it->first)) {
            ++it;
            continue;
        }
        abandon(it->second);
        it = tracks_.erase(it);
    }
}

/// Start ARGV in the container and return at once: the runtime's detached
/// exec leaves the process our child, collected by a later round (Engine::exec
/// would wait for it, with no timeout, holding up the loop).
Result<pid_t> Prober::startExec(const std::string& id, const std::vector<std::string>& argv) {
    runtime::Runtime rt(runDir_ + "/runc");
    runtime::ExecOptions eo;
    eo.args = argv;
    eo.detach = true;
    eo.pidFile = runDir_ + "/probe-" + id + ".pid";
    TRY(rt.exec(id, eo));
    auto text = sys::readFile(eo.pidFile);
    ::unlink(eo.pidFile.c_str());
    pid_t pid = text ? pid_t(std::atoi(text->c_str())) : 0;
    if (pid <= 0) return fail(Error::plain(EIO, "exec probe: no pid in " + eo.pidFile));
    return pid;
}

std::string Prober::metrics() const {
    std::string out = "# HELP hull_probes_total Probe results.\n# TYPE hull_probes_total counter\n";
    for (const auto& [k, n] : results_) out += "hull_probes_total{service=\"" + k + "\"} " + std::to_string(n) + "\n";
    char lat[128];
    std::snprintf(lat, sizeof lat, "hull_probe_latency_seconds_sum %.6f\nhull_probe_latency_seconds_count %llu\n",
                  latencySum_, (unsigned long long)latencyCount_);
    out += "# HELP hull_probe_latency_seconds Latency of HTTP and TCP probes.\n# TYPE hull_probe_latency_seconds summary\n";
    return out + lat;
}

}  // namespace hull::orchestrator
