#include "orchestrator/master/autoscaling.hpp"

#include <algorithm>
#include <cstdio>

namespace hull::orchestrator::master {

core::AutoscaleSpec autoscaleSpec(const Autoscale& a) {
    core::AutoscaleSpec s;
    s.min = a.min;
    s.max = a.max;
    s.cpu = a.cpu;
    s.requestsPerSecond = a.requestsPerSecond;
    s.scaleUpAfterMs = a.scaleUpAfter.count();
    s.scaleDownAfterMs = a.scaleDownAfter.count();
    s.step = a.step;
    return s;
}

namespace {

/// A counter's new reading: its rate from the previous one. A counter that
/// went back (the container's cgroup, or a port's counter, made again) starts
/// over without a rate.
void advance(auto& c, uint64_t value, int64_t now, int64_t nodeMs) {
    if (c.nodeAt > 0 && nodeMs > c.nodeAt && value >= c.value) {
        c.rate = double(value - c.value) * 1000.0 / double(nodeMs - c.nodeAt);
        c.hasRate = true;
    } else {
        c.hasRate = false;
    }
    c.value = value;
    c.at = now;
    c.nodeAt = nodeMs;
}

}  // namespace

void Autoscaling::usage(const std::string& node, const json::Value& m, int64_t now) {
    std::set<std::string> seen;
    // The node's clock when it read the counters (an older node's: the arrival).
    int64_t nodeMs = now;
    if (const json::Value* at = m.find("atMs")) at->toInt64(nodeMs);
    if (const json::Value* list = m.find("containers"); list && list->isArray())
        for (const auto& c : list->asArray()) {
            std::string id = json::stringOf(c, "id");
            if (id.empty()) continue;
            int64_t cpu = 0, mem = 0;
            if (const json::Value* v = c.find("cpuNs")) v->toInt64(cpu);
            if (const json::Value* v = c.find("memory")) v->toInt64(mem);
            ContainerUsage& u = containers_[id];
            u.node = node;
            u.service = json::stringOf(c, "service");
            advance(u.cpuNs, uint64_t(std::max<int64_t>(cpu, 0)), now, nodeMs);
            u.memory = mem;
            seen.insert(id);
        }
    // Containers of NODE it no longer reports have stopped.
    for (auto it = containers_.begin(); it != containers_.end();)
        it = it->second.node == node && !seen.count(it->first) ? containers_.erase(it) : std::next(it);
    if (const json::Value* services = m.find("services"); services && services->isObject())
        for (const auto& [name, s] : services->asObject()) {
            int64_t n = 0;
            if (const json::Value* v = s.find("connections")) v->toInt64(n);
            if (s.find("connections")) advance(connections_[name][node], uint64_t(std::max<int64_t>(n, 0)), now, nodeMs);
            if (const json::Value* secs = s.find("probeSeconds"); secs && secs->isNumber()) {
                int64_t probes = 0;
                if (const json::Value* v = s.find("probes")) v->toInt64(probes);
                ProbeLatency& p = probeLatency_[name][node];
                const double total = secs->asDouble();
                p.mean = uint64_t(probes) > p.probes && total >= p.seconds ? (total - p.seconds) / double(uint64_t(probes) - p.probes)
                                                                          : -1;
                p.seconds = total;
                p.probes = uint64_t(probes);
                p.at = now;
            }
        }
}

void Autoscaling::forgetNode(const std::string& node) {
    for (auto it = containers_.begin(); it != containers_.end();) it = it->second.node == node ? containers_.erase(it) : std::next(it);
    for (auto& [service, byNode] : connections_) byNode.erase(node);
    for (auto& [service, byNode] : probeLatency_) byNode.erase(node);
}

void Autoscaling::forgetService(const std::string& service) {
    samples_.erase(service);
    status_.erase(service);
    connections_.erase(service);
    probeLatency_.erase(service);
}

core::AutoscaleSample Autoscaling::sample(const std::string& service, const std::vector<std::string>& ready, double limit,
                                          bool wantsRps, int64_t now) {
    core::AutoscaleSample s;
    s.atMs = now;
    s.ready = int64_t(ready.size());
    // CPU: the mean over the ready replicas with a fresh rate, of their limit.
    if (limit > 0) {
        double sum = 0;
        size_t n = 0;
        for (const auto& id : ready) {
            auto it = containers_.find(id);
            if (it == containers_.end() || !it->second.cpuNs.hasRate || now - it->second.cpuNs.at > kStaleMs) continue;
            sum += it->second.cpuNs.rate / 1e9 / limit;  // ns of CPU per second: cores
            ++n;
        }
        // Every ready replica measured: one that is not yet (just started, its
        // node's report late) would be capacity the mean does not see, and the
        // others' load would call for replicas that are there already.
        if (n > 0 && n == ready.size()) s.cpu = sum / double(n);
    }
    // Connections: what every node that reported lately counted.
    if (wantsRps) {
        auto it = connections_.find(service);
        double rps = 0;
        bool any = false;
        if (it != connections_.end())
            for (const auto& [node, c] : it->second)
                if (c.hasRate && now - c.at <= kStaleMs) {
                    rps += c.rate;
                    any = true;
                }
        if (any) s.rps = rps;
    }
    return s;
}

core::AutoscaleDecision Autoscaling::decide(const std::string& service, const Autoscale& spec, int64_t current,
                                            const core::AutoscaleSample& sample, int64_t now) {
    auto& list = samples_[service];
    list.push_back(sample);
    const int64_t keep = std::max<int64_t>({kKeepMs, spec.scaleDownAfter.count() + 5000, spec.scaleUpAfter.count() + 5000});
    auto from = std::find_if(list.begin(), list.end(), [&](const auto& s) { return s.atMs >= now - keep; });
    list.erase(list.begin(), from);
    core::AutoscaleDecision d = core::decideScale(autoscaleSpec(spec), current, list, now);
    Status& st = status_[service];
    st.last = sample;
    st.decision = d;
    return d;
}

const Autoscaling::Status* Autoscaling::status(const std::string& service) const {
    auto it = status_.find(service);
    return it == status_.end() ? nullptr : &it->second;
}

void Autoscaling::changed(const std::string& service, const std::string& reason, int64_t now) {
    Status& st = status_[service];
    st.decidedAt = now;
    st.lastChange = reason;
}

std::string Autoscaling::metrics(int64_t now) const {
    std::string out;
    char line[512];
    out += "# HELP hull_service_connections_per_second New connections to a service's published ports and address, "
           "cluster-wide (nodes' nftables counters).\n# TYPE hull_service_connections_per_second gauge\n";
    for (const auto& [service, byNode] : connections_) {
        double rps = 0;
        for (const auto& [node, c] : byNode)
            if (c.hasRate && now - c.at <= kStaleMs) rps += c.rate;
        std::snprintf(line, sizeof line, "hull_service_connections_per_second{service=\"%s\"} %.3f\n", service.c_str(), rps);
        out += line;
    }
    out += "# HELP hull_service_probe_latency_seconds Mean latency of a service's HTTP probes over the last second, "
           "cluster-wide.\n# TYPE hull_service_probe_latency_seconds gauge\n";
    for (const auto& [service, byNode] : probeLatency_) {
        double sum = 0;
        int n = 0;
        for (const auto& [node, p] : byNode)
            if (p.mean >= 0 && now - p.at <= kStaleMs) {
                sum += p.mean;
                ++n;
            }
        if (n == 0) continue;
        std::snprintf(line, sizeof line, "hull_service_probe_latency_seconds{service=\"%s\"} %.6f\n", service.c_str(), sum / n);
        out += line;
    }
    out += "# HELP hull_container_cpu_cores CPU a container uses (cores, over the last second).\n"
           "# TYPE hull_container_cpu_cores gauge\n";
    for (const auto& [id, u] : containers_) {
        if (!u.cpuNs.hasRate || now - u.cpuNs.at > kStaleMs) continue;
        std::snprintf(line, sizeof line, "hull_container_cpu_cores{service=\"%s\",node=\"%s\",container=\"%s\"} %.4f\n",
                      u.service.c_str(), u.node.c_str(), id.substr(0, 12).c_str(), u.cpuNs.rate / 1e9);
        out += line;
    }
    out += "# HELP hull_container_memory_bytes Memory a container uses (its cgroup's).\n"
           "# TYPE hull_container_memory_bytes gauge\n";
    for (const auto& [id, u] : containers_) {
        if (now - u.cpuNs.at > kStaleMs) continue;
        std::snprintf(line, sizeof line, "hull_container_memory_bytes{service=\"%s\",node=\"%s\",container=\"%s\"} %lld\n",
                      u.service.c_str(), u.node.c_str(), id.substr(0, 12).c_str(), (long long)u.memory);
        out += line;
    }
    out += "# HELP hull_autoscale_cpu_ratio Mean CPU of an autoscaled service's ready replicas, of their limit.\n"
           "# TYPE hull_autoscale_cpu_ratio gauge\n";
    for (const auto& [service, st] : status_)
        if (st.last.cpu) {
            std::snprintf(line, sizeof line, "hull_autoscale_cpu_ratio{service=\"%s\"} %.4f\n", service.c_str(), *st.last.cpu);
            out += line;
        }
    out += "# HELP hull_autoscale_desired_replicas What the autoscaler's last decision called for.\n"
           "# TYPE hull_autoscale_desired_replicas gauge\n";
    for (const auto& [service, st] : status_) {
        std::snprintf(line, sizeof line, "hull_autoscale_desired_replicas{service=\"%s\"} %lld\n", service.c_str(),
                      (long long)st.decision.desired);
        out += line;
    }
    return out;
}

}  // namespace hull::orchestrator::master
