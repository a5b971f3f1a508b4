#pragma once
// Published ports and outbound masquerade in nftables, through libnftables.
//
// One table, "ip hull", per network namespace, with static rules and two maps:
// publishing a port adds one map element (host port -> container address and
// port), removing it deletes that element. No per-container rules, so nothing
// needs rule handles, and the datapath is the kernel's (no proxy process).
// Traffic from the host itself (127.0.0.1 included) is DNATed in the output
// hook; route_localnet on the bridge plus masquerade lets 127.0.0.1 reach it.
// A port published on one host address is an element of a second pair of
// maps, keyed by address and port, looked up before the any-address ones.
// A port balanced over a service's replicas is an element of a verdict map
// (by port, or address . port) that jumps to a chain of its own holding one
// rule: dnat to numgen random mod N map { 0: backend, ... }.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "netns/ip.hpp"
#include "netns/port_spec.hpp"
#include "sys/error.hpp"

namespace hull::netns {

/// The nft script that creates the table (pure; idempotent when run again).
std::string baseRulesetScript();
/// The nft commands that publish (add) or unpublish (!add) PORTS to IP.
std::string portsScript(const std::vector<PortMapping>& ports, Ipv4 ip, bool add);

/// Make the table and its chains (idempotent), record SUBNET as a container
/// subnet, and masquerade its traffic to anywhere outside the container subnets
/// when MASQUERADE is true (false: stop; nullopt: leave as it is).
[[nodiscard]] Result<void> ensureNatTable(const Cidr& subnet, std::optional<bool> masquerade = true);
/// Refused when a host port is taken: by the same mapping, by one on any
/// address when PORTS names an address (or the other way round), or when a
/// named host address is not one of this network namespace's.
[[nodiscard]] Result<void> publishPorts(const std::vector<PortMapping>& ports, Ipv4 ip);
/// A host port balanced over several containers (a service's replicas, for the
/// node agent): each new connection goes to one of BACKENDS, at random, on
/// PORT's container port; the list is replaced in one transaction (connections
/// already made keep their backend). An empty list keeps the port with no
/// backend (its packets are dropped). Refused, like publishPorts, when the host
/// port is published otherwise. Makes the table if there is none.
[[nodiscard]] Result<void> publishBalanced(const PortMapping& port, const std::vector<Ipv4>& backends);
/// Gone already is not an error.
[[nodiscard]] Result<void> unpublishBalanced(const PortMapping& port);
/// The nft commands behind publishBalanced (ADD) and unpublishBalanced (pure).
std::string balancedScript(const PortMapping& port, const std::vector<Ipv4>& backends, bool add);
/// Missing elements are not an error (a half-made attach, a second DEL).
[[nodiscard]] Result<void> unpublishPorts(const std::vector<PortMapping>& ports);
/// A subnet traffic to which is not masqueraded (another host's containers, in
/// the overlay): added to the table's "subnets" set. Needs the table.
/// UNTRACKED: also to "remotes", whose traffic skips conntrack (a plain
/// overlay's speed); not on a cluster node, whose service addresses need
/// conntrack to take replies back.
[[nodiscard]] Result<void> addClusterSubnet(const Cidr& subnet, bool untracked = true);
/// A service's virtual IP: each new connection to VIP (any port) goes to one of
/// BACKENDS at random, same port; none: refused. Replaces what VIP had; one
/// transaction. Traffic DNATed out the overlay, or back into the subnet it
/// came from, is masqueraded so that its replies come back this way; but for
/// a VIP's from a cluster address (a container, a node's VTEP), whose replies
/// are routed back here anyway: the replica sees the caller's own address.
[[nodiscard]] Result<void> publishVip(Ipv4 vip, const std::vector<Ipv4>& backends);
/// Gone already is fine.
[[nodiscard]] Result<void> unpublishVip(Ipv4 vip);
/// The nft commands behind publishVip (ADD) and unpublishVip (pure).
std::string vipScript(Ipv4 vip, const std::vector<Ipv4>& backends, bool add);
[[nodiscard]] Result<void> removeClusterSubnet(const Cidr& subnet);
/// One service's published ports (balanced) and virtual IP.
struct ConnectionGroup {
    std::vector<PortMapping> ports;
    std::optional<Ipv4> vip;
};
/// New connections so far to each group's ports and address, summed per group
/// (one nft call for all). A counter each, in the nat chain, which sees only a
/// connection's first packet. A port or address published again keeps
/// counting from where it was; one unpublished starts again from 0. No table: 0s.
[[nodiscard]] Result<std::vector<uint64_t>> newConnections(const std::vector<ConnectionGroup>& groups);
/// Remove the whole table (tests; `hull network rm`).
[[nodiscard]] Result<void> dropNatTable();

}  // namespace hull::netns
