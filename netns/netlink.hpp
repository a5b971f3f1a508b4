#pragma once
// Links, addresses, routes and neighbour/FDB entries over rtnetlink, through
// libnl-route. One Netlink is one socket bound to one network namespace: a
// socket keeps the namespace it was opened in, so a container's side is
// configured through a socket opened there (openIn), with no setns afterwards.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "netns/ip.hpp"
#include "sys/error.hpp"
#include "sys/unique_fd.hpp"

struct nl_sock;

namespace hull::netns {

struct VxlanOptions {
    std::string name;       // "hull.vx"
    uint32_t vni = 1;
    Ipv4 local;             // the underlay address of this host
    std::string underlay;   // the underlay device ("" = any)
    uint16_t port = 4789;   // IANA VXLAN port
    int mtu = 0;            // 0: the kernel's choice (underlay MTU - 50)
};

class Netlink {
public:
    /// A socket in the calling thread's network namespace.
    [[nodiscard]] static Result<Netlink> open();
    /// A socket in the network namespace NETNS_FD (a /proc/PID/ns/net or
    /// /run/netns/NAME fd): the thread enters it, opens, and returns.
    [[nodiscard]] static Result<Netlink> openIn(int netnsFd);

    Netlink(Netlink&&) noexcept;
    Netlink& operator=(Netlink&&) noexcept;
    ~Netlink();

    /// ifindex of NAME, nullopt when there is no such link.
    [[nodiscard]] Result<std::optional<int>> linkIndex(const std::string& name);
    /// Create a bridge unless it exists; then give it ADDRESS (the gateway,
    /// e.g. 10.88.0.1/16) unless it has it, and bring it up.
    [[nodiscard]] Result<void> ensureBridge(const std::string& name, const Cidr& address, int mtu);
    /// A veth pair: HOST_NAME here, PEER_NAME created directly in PEER_NETNS_FD.
    [[nodiscard]] Result<void> createVeth(const std::string& hostName, const std::string& peerName,
                                          int peerNetnsFd, int mtu);
    /// Attach NAME to bridge MASTER and bring it up.
    [[nodiscard]] Result<void> setMasterUp(const std::string& name, const std::string& master);
    /// Set the MAC (if not empty) and bring NAME up.
    [[nodiscard]] Result<void> setMacUp(const std::string& name, const std::string& mac);
    [[nodiscard]] Result<void> addAddress(const std::string& dev, const Cidr& address);
    /// An IPv6 address, with IFA_F_NODAD: hull hands out each address once, so
    /// duplicate address detection would only hold it tentative (unusable) for
    /// about a second after every start.
    [[nodiscard]] Result<void> addAddress(const std::string& dev, const Cidr6& address);
    /// DST via GATEWAY on DEV (ONLINK: the gateway need not be on a local subnet).
    [[nodiscard]] Result<void> addRoute(const Cidr& dst, Ipv4 gateway, const std::string& dev, bool onlink = false);
    [[nodiscard]] Result<void> addRoute(const Cidr6& dst, Ipv6 gateway, const std::string& dev);
    [[nodiscard]] Result<void> delRoute(const Cidr& dst, const std::string& dev);
    /// Delete a link; a missing one is not an error (returns false).
    [[nodiscard]] Result<bool> deleteLink(const std::string& name);
    /// Every IPv4 route destination and address prefix of this namespace.
    [[nodiscard]] Result<std::vector<Cidr>> usedPrefixes();
    /// Addresses (with prefix) of DEV.
    [[nodiscard]] Result<std::vector<Cidr>> addresses(const std::string& dev);
    /// IPv6 addresses (with prefix) of DEV, link-local ones included.
    [[nodiscard]] Result<std::vector<Cidr6>> addresses6(const std::string& dev);
    /// The MAC address of DEV ("aa:bb:...").
    [[nodiscard]] Result<std::string> macOf(const std::string& dev);

    /// A VXLAN device without learning (entries are programmed), up. Idempotent.
    [[nodiscard]] Result<void> ensureVxlan(const VxlanOptions& o);
    /// Permanent ARP entry IP -> MAC on DEV (replaces).
    [[nodiscard]] Result<void> addNeighbour(const std::string& dev, Ipv4 ip, const std::string& mac);
    [[nodiscard]] Result<void> delNeighbour(const std::string& dev, Ipv4 ip);
    /// Bridge FDB entry on a VXLAN DEV: frames for MAC go to underlay DST.
    [[nodiscard]] Result<void> addFdb(const std::string& dev, const std::string& mac, Ipv4 dst);
    [[nodiscard]] Result<void> delFdb(const std::string& dev, const std::string& mac, Ipv4 dst);

private:
    explicit Netlink(nl_sock* s) : sock_(s) {}
    nl_sock* sock_ = nullptr;
};

/// Write SYSCTL (a path below /proc/sys, e.g. "net/ipv4/ip_forward") in the
/// caller's network namespace.
[[nodiscard]] Result<void> writeSysctl(const std::string& key, const std::string& value);
/// The same in the network namespace NETNS_FD: /proc/sys/net shows the netns
/// of the thread that opens the file, so the thread enters it for the writes.
[[nodiscard]] Result<void> writeSysctlsIn(int netnsFd,
                                          const std::vector<std::pair<std::string, std::string>>& keyValues);

}  // namespace hull::netns
