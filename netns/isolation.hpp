#pragma once
// Networks that keep a cluster's containers apart, in nftables (the node
// agent's; a standalone host has none).
//
// Every container of a node has one address on one bridge, and the overlay
// routes between the nodes' subnets (overlay.hpp): addressing stays flat.
// What a container may reach is policy, by membership: a container is a
// member of the networks its service names (a "group" here), and two
// containers may talk only when they share one. Per group G there are two
// sets of addresses: l_G, this node's members (an address joins as its
// container's network is attached, before the container runs, and leaves
// as it is detached, before its address is free again), and r_G, the other
// nodes' members (as the master last said). Two filter chains check them:
//   ip hull isolate      (forward) routed traffic: to and from other nodes,
//                        and to a service address (DNAT) on this one;
//   bridge hull isolate  (forward) bridged traffic between two containers
//                        of this node's subnet (unless br_netfilter sends it
//                        through the first chain anyway).
// Traffic between two container addresses is dropped unless both are in l_G
// or r_G of one group G (an address no group knows yet included: closed, not
// open, while the master's word is on its way). Not checked: traffic with an
// end outside the cluster range, replies (conntrack), connections to a
// published port (public on every node; the service addresses are not), and
// a node's own VTEP address (its masqueraded routing-mesh traffic).
#include <map>
#include <string>
#include <vector>

#include "netns/ip.hpp"
#include "sys/error.hpp"

namespace hull::netns {

struct IsolationScope {
    Cidr local;     // this node's container subnet (on its bridge)
    Cidr cluster;   // every node's subnets (the overlay's range)
    Cidr services;  // the service addresses (VIPs)
    /// br_netfilter passes bridged IPv4 through the ip hooks in this network
    /// namespace (bridgedThroughIp): the ip chain alone checks bridged traffic.
    bool bridgedThroughIp = false;
};

/// Whether br_netfilter hands this network namespace's bridged IPv4 to the ip
/// hooks (net.bridge.bridge-nf-call-iptables is 1; Docker loads the module).
bool bridgedThroughIp();

/// The nft script that makes both tables' sets for GROUPS and (re)writes the
/// chains to check them (pure; running it again replaces the chains' rules,
/// leaves every set's members as they are). Group names are
/// [a-z0-9][a-z0-9-]{0,62}.
std::string isolationScript(const IsolationScope& scope, const std::vector<std::string>& groups);
[[nodiscard]] Result<void> ensureIsolation(const IsolationScope& scope, const std::vector<std::string>& groups);
/// The nft commands that make IP a local member of GROUPS (ADD) or no longer
/// (!ADD; members already gone are fine): pure.
std::string localMemberScript(Ipv4 ip, const std::vector<std::string>& groups, bool add);
[[nodiscard]] Result<void> setLocalMember(Ipv4 ip, const std::vector<std::string>& groups, bool add);
/// The remote members of each group in MEMBERS, replacing what each had (one
/// transaction; groups not named keep theirs).
std::string remoteMembersScript(const std::map<std::string, std::vector<Ipv4>>& members);
[[nodiscard]] Result<void> setRemoteMembers(const std::map<std::string, std::vector<Ipv4>>& members);
/// Both chains and every set gone (the bridge table whole, the isolation part
/// of "ip hull"). Gone already is fine.
[[nodiscard]] Result<void> dropIsolation();

}  // namespace hull::netns
