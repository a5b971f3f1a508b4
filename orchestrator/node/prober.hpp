#pragma once
// The node agent's probes, run: each container's ContainerProbes (the rules,
// core/probes.hpp) fed with the results of real checks. Nothing here waits
// for a check:
//  - an exec check goes through the runtime's detached exec: started in one
//    round, collected in a later one, killed at its timeout;
//  - a TCP or HTTP check runs on the agent's io_context (probe_io.hpp) and is
//    recorded the moment it completes, between rounds.
#include <boost/asio/io_context.hpp>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "orchestrator/core/probes.hpp"
#include "orchestrator/model/service.hpp"
#include "orchestrator/node/probe_io.hpp"
#include "orchestrator/node/store.hpp"
#include "runtime/engine.hpp"

namespace hull::orchestrator {

class Prober {
public:
    /// Network checks run on IOC; exec checks through the OCI runtime's state
    /// under RUN_DIR/runc; a change of health is a "probe" event in STORE. WAKE
    /// is called when a check that completed between rounds changed a
    /// container's health, so the loop acts on it at once.
    Prober(boost::asio::io_context& ioc, Store& store, std::string runDir, std::function<void()> wake)
        : ioc_(ioc), store_(store), runDir_(std::move(runDir)), wake_(std::move(wake)) {}
    /// Checks still out are abandoned: exec checks killed, network checks cancelled.
    ~Prober();
    Prober(const Prober&) = delete;
    Prober& operator=(const Prober&) = delete;

    /// Collect C's exec checks that have ended or run out of time, and start
    /// its checks that are due at NOW (S: its service).
    void run(const Service& s, const runtime::ContainerInfo& c, int64_t now);
    /// ID's probes as last recorded; nullptr before its first run().
    const ContainerProbes* probes(const std::string& id) const;
    /// Stop tracking ID; its checks still out are abandoned.
    void forget(const std::string& id);
    /// Forget every container not in PRESENT, and reap the exec checks killed earlier (once a round).
    void retain(const std::set<std::string>& present);

    /// hull_probes_total and hull_probe_latency_seconds, in Prometheus' text format.
    std::string metrics() const;
    /// Per service, its HTTP probes' latency so far: {seconds summed, probes} (counters).
    const std::map<std::string, std::pair<double, uint64_t>>& httpLatency() const { return httpLatency_; }

private:
    /// An exec check: our child (the runtime's detached exec), until DEADLINE (unix ms).
    struct ExecCheck {
        pid_t pid = -1;
        int64_t deadline = 0;
    };
    struct Track {
        std::optional<ContainerProbes> probes;  // made at the first look at it running
        std::map<ContainerProbes::Kind, ExecCheck> execs;
        std::map<ContainerProbes::Kind, std::shared_ptr<ProbeCheck>> checks;  // TCP and HTTP, under way
    };
    /// Record a result: counted for the metrics, an event when the health changed; true then.
    bool record(Track& t, const std::string& service, const std::string& id, ContainerProbes::Kind k, bool ok,
                int64_t now);
    void abandon(Track& t);
    [[nodiscard]] Result<pid_t> startExec(const std::string& id, const std::vector<std::string>& argv);

    boost::asio::io_context& ioc_;
    Store& store_;
    std::string runDir_;
    std::function<void()> wake_;
    std::map<std::string, Track> tracks_;  // by container id
    std::vector<pid_t> reap_;              // exec checks killed, not yet reaped
    std::map<std::string, uint64_t> results_;  // by the metric's labels
    double latencySum_ = 0;                    // seconds, of TCP and HTTP checks
    uint64_t latencyCount_ = 0;
    std::map<std::string, std::pair<double, uint64_t>> httpLatency_;  // by service
};

}  // namespace hull::orchestrator
