#pragma once
// A node agent's link to its master (`hull node --join URL --token TOKEN`):
// the join (the token pins the master's CA; a CSR buys a node certificate),
// then one WebSocket session over mutual TLS, kept up for good: the node says
// hello (name, address, capacity, labels), heartbeats, and reports its
// containers when they change; the master pushes the node's assignments, which
// the agent keeps in its own store so that it runs them on through master
// outages, its own restarts and host reboots.
#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "orchestrator/api/join.hpp"
#include "orchestrator/api/messages.hpp"
#include "orchestrator/node/exec_sessions.hpp"
#include "sys/error.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator::node {

struct LinkOptions {
    std::string stateDir;   // the agent's: credentials go to STATE/cluster/
    /// https://HOST:PORT, or several masters "https://m1:7443,https://m2:7443"
    /// (on etcd: one leads, the others serve nothing): the join, and every
    /// session after, go to the first that answers, in turn.
    std::string masterUrl;
    std::string token;      // HULL1.<ca sha256>.<secret>; needed for the first join only
    std::string name;       // default: the host name
    std::string address;    // the node's address as others reach it; default: the one that routes to the master
    std::map<std::string, std::string> labels;
};

using api::NodeCredentials;

/// The node's credentials for this master: read from STATE/cluster/, or got by
/// joining (and then kept there). A token whose CA hash does not match the
/// master's, a wrong secret or an unreachable master are errors that say so.
[[nodiscard]] Result<NodeCredentials> ensureJoined(LinkOptions& o);

class MasterLink {
public:
    struct Hooks {
        /// The master's "assignments" message: {full, services: [{name, generation, spec, slots, pins,
        /// versions, order}] (node/assignment.hpp),
        /// keep: [names], removed: [names]}: the whole set when full (a new session), else the
        /// services whose part changed and those no longer assigned.
        std::function<void(const json::Value&)> assign;
        /// The node's containers now (for status reports).
        std::function<ContainerList()> containers;
        /// The directory of the container ID (full or unique prefix, or name)
        /// whose logs the master asks for (LogStreams reads them from there).
        std::function<Result<std::string>(const std::string& id)> containerDir;
        /// The command line that runs the master's "exec" request here (ExecSessions runs
        /// it); an unknown container or one that does not run is an error that says so.
        ExecSessions::Command execCommand;
        /// The master's welcome named this node's subnet of the cluster CIDR: the
        /// agent's network and overlay device (on ADDRESS, the node's as others
        /// reach it) follow it. Returns the overlay device's MAC, which the link
        /// tells the master ("": no overlay here).
        /// SERVICE_CIDR: where the cluster's service addresses are (the node's
        /// isolation tells them from its published ports).
        std::function<std::string(const std::string& subnet, const std::string& clusterCidr,
                                  const std::string& serviceCidr, const std::string& address)>
            network;
        /// The master's "peers" message: {full, clusterCidr, peers: [{name, subnet, underlay, mac}], removed: [...]}.
        std::function<void(const json::Value&)> peers;
        /// The master's "endpoints" message: {full, services: [{name, vip, ports, mode, backends, networks,
        /// members}], removed: [names]}: every service's virtual IP and published ports, its ready
        /// replicas' addresses cluster-wide, its networks and its running replicas' addresses.
        std::function<void(const json::Value&)> endpoints;
        /// The "usage" message sent to the master once a second (the autoscaler's
        /// input): {containers: [{id, service, cpuNs, memory}], services: {NAME:
        /// {connections}}}, counters since they started; "" sends none.
        std::function<std::string()> usage;
    };
    /// Connect now, and again after every loss (with a capped backoff), until stop().
    static std::shared_ptr<MasterLink> start(boost::asio::io_context& ioc, LinkOptions o, NodeCredentials c, Hooks h);
    virtual ~MasterLink() = default;
    /// Look at the containers now (something changed) rather than at the next report tick.
    virtual void poke() = 0;
    virtual void stop() = 0;
    virtual bool connected() const = 0;
};

}  // namespace hull::orchestrator::node
