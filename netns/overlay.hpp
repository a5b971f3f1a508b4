#pragma once
// The cluster overlay, flannel's VXLAN scheme: each host has its own container
// subnet and one VXLAN device (the VTEP) holding the subnet's network address
// (10.90.1.0/32). Reaching another host's subnet takes exactly three entries:
//   route   10.90.2.0/24 via 10.90.2.0 dev hull.vx onlink
//   neigh   10.90.2.0 lladdr <B's VTEP MAC> dev hull.vx       (no ARP)
//   fdb     <B's VTEP MAC> dst <B's underlay IP> dev hull.vx  (no flooding)
// and the peer's subnet joins the NAT table's set, so traffic between container
// subnets keeps its source address.
#include <string>

#include "netns/ip.hpp"
#include "netns/netlink.hpp"
#include "sys/error.hpp"

namespace hull::netns {

struct OverlayPeer {
    Cidr subnet;         // the peer's container subnet
    Ipv4 underlay;       // the peer's host address on the underlay
    std::string vtepMac; // the MAC of the peer's VXLAN device
};

class Overlay {
public:
    /// Make (or find) the VTEP of this host: VXLAN device O.name with
    /// SUBNET's network address. Runs in the caller's network namespace.
    [[nodiscard]] static Result<Overlay> ensure(const VxlanOptions& o, const Cidr& subnet);

    /// An existing VTEP, by device name (to add or remove peers later, from
    /// another process). Its subnet is known only as the VTEP address (/32).
    [[nodiscard]] static Result<Overlay> open(const std::string& dev);

    /// What a peer needs to know about us.
    OverlayPeer self() const { return {subnet_, options_.local, mac_}; }

    /// UNTRACKED: the peer's traffic skips conntrack (addClusterSubnet); a
    /// cluster node's must not (its service addresses are NAT).
    [[nodiscard]] Result<void> addPeer(const OverlayPeer& p, bool untracked = true);
    /// Idempotent: entries already gone are fine.
    [[nodiscard]] Result<void> removePeer(const OverlayPeer& p);
    /// Remove the VXLAN device (and with it every route and entry through it).
    [[nodiscard]] Result<void> destroy();

private:
    Overlay(VxlanOptions o, Cidr subnet, std::string mac)
        : options_(std::move(o)), subnet_(subnet), mac_(std::move(mac)) {}
    VxlanOptions options_;
    Cidr subnet_;
    std::string mac_;
};

}  // namespace hull::netns
