#pragma once
// `hull node`: the node agent. It keeps the services declared to it running on
// this host: a reconcile loop (core/reconcile.hpp) over the runtime facade's
// Engine, probes (prober.hpp), and an HTTP API on a unix socket (api_server.hpp,
// messages.hpp) for `hull apply`, `hull get`, `hull describe`, `hull delete`,
// `hull scale` and `hull events`. Everything runs on one thread, asynchronously:
// no client and no probe holds up supervision. Desired state and events live
// in the store (store.hpp); the containers themselves are the engine's (each
// watched by its hull-monitor), so they outlive the agent and a restarted
// agent adopts them from their labels.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/node/link.hpp"
#include "sys/error.hpp"

namespace hull::orchestrator {

struct AgentOptions {
    std::string stateDir;    // STATE (node.db, containers, images, networks)
    std::string runDir;      // runtime state
    std::string socketPath;  // the API socket (default STATE/node.sock)
    std::chrono::milliseconds tick{50};
    std::vector<std::string> insecureRegistries;  // HOST:PORT spoken to over plain HTTP, for pulls
    /// Joined to a master (`hull node --join`): the master assigns what runs
    /// here and the local API only reads. None: a standalone agent.
    std::optional<node::LinkOptions> join;
    /// Joined: take part in the master's overlay (network "hull" on the node's
    /// lease, the VXLAN device, service addresses, names). Off for an agent that
    /// shares its host's network namespace with another agent (a benchmark's):
    /// its containers then reach only this host's.
    bool overlay = true;
};

class Agent {
public:
    [[nodiscard]] static Result<std::unique_ptr<Agent>> open(const AgentOptions& o);
    virtual ~Agent() = default;
    /// Serve the API and reconcile until SIGINT or SIGTERM.
    [[nodiscard]] virtual Result<void> run() = 0;
    /// One reconcile round (tests drive it directly).
    [[nodiscard]] virtual Result<void> reconcileOnce() = 0;
};


}  // namespace hull::orchestrator
