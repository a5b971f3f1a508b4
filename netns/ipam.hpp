#pragma once
// IP address management for one network: allocations are files under the
// state dir (DIR/ips/<address>, holding who has it), made with O_EXCL while a
// flock on DIR/lock is held, so concurrent starts never share an address and
// a crash never leaves a half-written record behind.
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
};

/// The next free host address after LAST (round robin, so a released address
/// is not handed out again at once), skipping GATEWAY and USED; nullopt when full.
std::optional<Ipv4> nextFree(const Cidr& subnet, Ipv4 gateway, const std::set<uint32_t>& used,
                             std::optional<Ipv4> last);

class Ipam {
public:
    /// DIR: this network's state directory (created on first use).
    Ipam(std::string dir, Cidr subnet, Ipv4 gateway)
        : dir_(std::move(dir)), subnet_(subnet), gateway_(gateway) {}

    /// An address for A.id (A.ip is filled in). The same id and ifname get the
    /// address they already hold: ADD is idempotent.
    [[nodiscard]] Result<Allocation> allocate(Allocation a);
    /// Free what ID (and IFNAME, if not empty) holds; returns the freed records.
    [[nodiscard]] Result<std::vector<Allocation>> release(const std::string& id, const std::string& ifname = "");
    [[nodiscard]] Result<std::vector<Allocation>> list();

    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    Cidr subnet_;
    Ipv4 gateway_;
};

}  // namespace hull::netns
