#pragma once
// IP address management for one network: allocations are files under the
// state dir (DIR/ips/<address>, holding who has it), made with O_EXCL while a
// flock on DIR/lock is held, so concurrent starts never share an address and
// a crash never leaves a half-written record behind. On a dual-stack network
// a container's IPv6 address is a record of its own (DIR/ips/fd00:89::2):
// the file name is what makes an address unique, in either family.
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "netns/ip.hpp"
#include "netns/portmap.hpp"
#include "sys/error.hpp"

namespace hull::netns {

/// Who holds an address: enough for DEL and for the garbage collector.
struct Allocation {
    Ipv4 ip;
    std::string id;        // container id (CNI_CONTAINERID)
    std::string ifname;    // interface in the container ("eth0")
    std::string netns;     // the container's netns path at ADD time
    std::string hostVeth;  // host end of the veth ("" for none)
    std::vector<PortMapping> ports;  // published to this address
    std::optional<Ipv6> ip6;         // on a network with an IPv6 subnet
    std::vector<std::string> groups; // isolation groups the IPv4 address is a member of (isolation.hpp)
};

/// The next free host address after LAST (round robin, so a released address
/// is not handed out again at once), skipping GATEWAY and USED; nullopt when full.
std::optional<Ipv4> nextFree(const Cidr& subnet, Ipv4 gateway, const std::set<uint32_t>& used,
                             std::optional<Ipv4> last);

/// The same for IPv6: the next free offset (see Cidr6) after LAST, from 1 on.
std::optional<Ipv6> nextFree(const Cidr6& subnet, Ipv6 gateway, const std::set<Ipv6>& used,
                             std::optional<Ipv6> last);

class Ipam {
public:
    /// DIR: this network's state directory (created on first use). SUBNET6:
    /// the network's IPv6 subnet, if it has one (its gateway is its first host).
    Ipam(std::string dir, Cidr subnet, Ipv4 gateway, std::optional<Cidr6> subnet6 = std::nullopt)
        : dir_(std::move(dir)), subnet_(subnet), gateway_(gateway), subnet6_(subnet6) {}

    /// An address for A.id (A.ip, and A.ip6 on a dual-stack network, are
    /// filled in). The same id and ifname get the addresses they already hold:
    /// ADD is idempotent.
    [[nodiscard]] Result<Allocation> allocate(Allocation a);
    /// Free what ID (and IFNAME, if not empty) holds; returns the freed records.
    [[nodiscard]] Result<std::vector<Allocation>> release(const std::string& id, const std::string& ifname = "");
    [[nodiscard]] Result<std::vector<Allocation>> list();

    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    Cidr subnet_;
    Ipv4 gateway_;
    std::optional<Cidr6> subnet6_;
};

}  // namespace hull::netns
