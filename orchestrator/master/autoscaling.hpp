#pragma once
// The master's side of autoscaling, the thin layer around core/autoscaler.hpp:
// nodes send their usage once a second ("usage": each running container's CPU
// time and memory, each service's new connections, all counters since they
// started); this turns the counters into rates, makes one sample a second per
// autoscaled service (mean CPU of its ready replicas as a fraction of their
// limit, new connections per second cluster-wide), keeps the last few minutes
// of them in memory (never in the store: a sample a second would be a write a
// second), and asks the core what replica count they call for. The Cluster
// applies a decision like `hull scale` does, with an event saying why.
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "orchestrator/core/autoscaler.hpp"
#include "orchestrator/model/service.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator::master {

/// The core's spec from a service file's autoscale mapping.
core::AutoscaleSpec autoscaleSpec(const Autoscale& a);

class Autoscaling {
public:
    /// NODE's "usage" message at NOW (monotonic ms).
    void usage(const std::string& node, const json::Value& m, int64_t now);
    /// NODE is down or gone: its rates no longer count.
    void forgetNode(const std::string& node);
    /// A service deleted: its samples go.
    void forgetService(const std::string& service);

    /// One sample of SERVICE at NOW from the rates known: READY its ready
    /// containers (ids) on nodes that are up; LIMIT the CPUs each may use.
    core::AutoscaleSample sample(const std::string& service, const std::vector<std::string>& ready, double limit,
                                 bool wantsRps, int64_t now);
    /// Keeps SAMPLE (the last kKeepMs of them) and decides on it.
    core::AutoscaleDecision decide(const std::string& service, const Autoscale& spec, int64_t current,
                                   const core::AutoscaleSample& sample, int64_t now);

    /// What `hull describe` shows: the latest sample and decision.
    struct Status {
        core::AutoscaleSample last;
        core::AutoscaleDecision decision;
        int64_t decidedAt = 0;  // monotonic ms of the last change (0: none)
        std::string lastChange;  // its reason
    };
    const Status* status(const std::string& service) const;
    void changed(const std::string& service, const std::string& reason, int64_t now);
    /// Prometheus text: per service (autoscaled or not) its connections per
    /// second, and per container its CPU (cores) and memory.
    std::string metrics(int64_t now) const;

    static constexpr int64_t kKeepMs = 15 * 60 * 1000;  // the longest window a service may use, and more
    static constexpr int64_t kStaleMs = 3000;          // a node's rates older than this do not count

private:
    struct Counter {
        uint64_t value = 0;
        int64_t at = 0;      // when it came (the master's monotonic ms): how fresh it is
        int64_t nodeAt = 0;  // when the node read it (its monotonic ms): the rate's time base
        double rate = 0;  // per second, from the last two reports
        bool hasRate = false;
    };
    struct ContainerUsage {
        std::string node, service;
        Counter cpuNs;
        int64_t memory = 0;
    };
    std::map<std::string, ContainerUsage> containers_;                  // by id
    std::map<std::string, std::map<std::string, Counter>> connections_;  // service -> node -> counter
    /// service -> node -> HTTP probes' latency: seconds and probes so far, and the last second's mean.
    struct ProbeLatency {
        double seconds = 0;
        uint64_t probes = 0;
        int64_t at = 0;
        double mean = -1;  // seconds; -1: no probe in the last interval
    };
    std::map<std::string, std::map<std::string, ProbeLatency>> probeLatency_;
    std::map<std::string, std::vector<core::AutoscaleSample>> samples_;  // service -> oldest first
    std::map<std::string, Status> status_;
};

}  // namespace hull::orchestrator::master
