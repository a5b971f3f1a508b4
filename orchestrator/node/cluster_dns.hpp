#pragma once
// Service names for a cluster node's containers, served by dnsmasq (Debian's
// dnsmasq-base) on the node's bridge address: hull writes hosts files (one per
// service, STATE/dns/hosts/NAME), which
// dnsmasq rereads by itself when they change (--hostsdir), and forwards every
// other name to the host's resolvers. No DNS wire format is written here.
//
//   SERVICE, SERVICE.hull              -> the service's VIP
//   tasks.SERVICE, tasks.SERVICE.hull  -> its ready replicas' addresses
//
// dnsmasq runs as the agent's child and dies with it (PR_SET_PDEATHSIG); one
// that exits is started again at the next check.
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "sys/error.hpp"

namespace hull::orchestrator::node {

struct ServiceAddresses {
    std::string vip;
    std::vector<std::string> backends;
};

/// The hosts file of service NAME (pure): one line for its VIP, one for each
/// replica (STATE/dns/hosts/NAME).
std::string serviceHostsFile(const std::string& name, const ServiceAddresses& s);

class ClusterDns {
public:
    /// Files under DIR (STATE/dns); dnsmasq listens on LISTEN (the bridge's address).
    ClusterDns(std::string dir, std::string listen) : dir_(std::move(dir)), listen_(std::move(listen)) {}
    ~ClusterDns();
    ClusterDns(const ClusterDns&) = delete;
    ClusterDns& operator=(const ClusterDns&) = delete;

    /// Start dnsmasq if it does not run (again, if it exited). Errors say why (not installed, the port taken).
    [[nodiscard]] Result<void> ensureRunning();
    /// Write the names of SERVICES (only when they changed).
    [[nodiscard]] Result<void> update(const std::map<std::string, ServiceAddresses>& services);
    const std::string& listen() const { return listen_; }
    pid_t pid() const { return pid_; }

private:
    std::string dir_, listen_;
    std::map<std::string, std::string> written_;  // service -> its file as written
    bool pruned_ = false;                          // an earlier agent's files removed
    pid_t pid_ = -1;
};

}  // namespace hull::orchestrator::node
