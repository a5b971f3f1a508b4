#pragma once
// `hull master`: owns the cluster's desired state (services, nodes,
// placements) in its store, serves the HTTPS API to the CLI and the node
// sessions, and runs the controllers: node lifecycle (heartbeats, in memory
// only), placement (core/placements.hpp, then core/scheduler.hpp for the slots
// that need a node), and the push of each node's assignments.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "sys/error.hpp"

namespace hull::orchestrator::master {

struct MasterOptions {
    std::string stateDir;                 // STATE: state.db, pki/, admin.conf, join-token
    std::string listen = "0.0.0.0:7443";  // HOST:PORT
    std::vector<std::string> advertise;   // addresses nodes and the CLI dial (certificate SANs; the first is admin.conf's)
    std::string name;                     // this master's name (`hull cluster status`); default: the host name
    std::chrono::milliseconds heartbeat{300}, grace{1200};
    std::chrono::milliseconds failoverAfter{10000};  // a silent node's replicas move after this (ClusterOptions::failoverSilent)
    std::string clusterCidr = "10.96.0.0/12";   // nodes' container subnets, a /24 each
    std::string serviceCidr = "10.112.0.0/16";  // services' virtual IPs
    /// Where the cluster's state lives: "" (or "sqlite") STATE/state.db; or
    /// "etcd://HOST:PORT,HOST:PORT..." an etcd cluster (https with ETCD_CA,
    /// and the client certificate ETCD_CERT/ETCD_KEY when given: PEM files).
    /// On etcd the master campaigns for the leader key and serves nothing
    /// until it leads (a standby); every write it makes is fenced on its term
    /// (state/fenced_store.hpp); deposed, it stops, with an error, for its
    /// supervisor to start it again as a standby.
    std::string store;
    std::string etcdCa, etcdCert, etcdKey;
};

class Master {
public:
    [[nodiscard]] static Result<std::unique_ptr<Master>> open(const MasterOptions& o);
    virtual ~Master() = default;
    /// Serve and run the controllers until SIGINT or SIGTERM.
    [[nodiscard]] virtual Result<void> run() = 0;
};

}  // namespace hull::orchestrator::master
