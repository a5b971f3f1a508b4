#pragma once
// The cluster's address plan as pure functions: each node leases a subnet of
// the cluster CIDR for its containers (a /24 of 10.96.0.0/12 by default:
// 4,096 nodes of 253 containers), and services take virtual IPs from the
// service CIDR. The master checks the plan at start; nodes route between the
// subnets over the overlay (netns/overlay.hpp), unmasqueraded.
#include <string>
#include <vector>

#include "runtime/net.hpp"
#include "sys/error.hpp"

namespace hull::orchestrator::core {

inline constexpr const char* kDefaultClusterCidr = "10.96.0.0/12";
inline constexpr const char* kDefaultServiceCidr = "10.112.0.0/16";
inline constexpr int kNodeSubnetPrefix = 24;

/// The first /PREFIX of CLUSTER that overlaps none of TAKEN; an error when
/// none is left (or PREFIX does not fit in CLUSTER).
[[nodiscard]] Result<netns::Cidr> leaseSubnet(const netns::Cidr& cluster, int prefix, const std::vector<netns::Cidr>& taken);

/// The plan is usable: the service CIDR does not overlap the cluster CIDR,
/// neither overlaps a route of the host's (ROUTES: its destinations, the
/// default route left out), and each is a network address of a sane size.
[[nodiscard]] Result<void> checkAddressPlan(const netns::Cidr& cluster, const netns::Cidr& services,
                                            const std::vector<netns::Cidr>& routes);

/// The host's IPv4 routes from /proc/net/route's text (destination and mask in
/// hex, little-endian), the default route left out.
std::vector<netns::Cidr> parseProcRoutes(const std::string& text);

}  // namespace hull::orchestrator::core
