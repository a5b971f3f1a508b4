#pragma once
// A bridge network on one host: the netns library's one entry point for hull
// run, the node agent and hull-cni. ensure() makes the bridge, the subnet
// (persisted) and the NAT table; attach() gives a container's network
// namespace a veth on the bridge, an address, a default route and its
// published ports, rolling every step back if a later one fails; detach()
// and gc() undo it. A network configured with an IPv6 subnet is dual-stack:
// the bridge and every container also get an IPv6 address and default route
// (addressing and routing only: ports are published, and traffic
// masqueraded, over IPv4).
#include <optional>
#include <string>
#include <vector>

#include "netns/ip.hpp"
#include "netns/ipam.hpp"
#include "netns/portmap.hpp"
#include "sys/error.hpp"

namespace hull::netns {

struct NetworkConfig {
    std::string name = "hull";     // state lives in STATE_DIR/networks/NAME
    std::string bridge = "hull0";  // at most 15 characters
    std::optional<Cidr> subnet;    // default: a free /16 from 10.88.0.0 on (pickFreeSubnet), then kept
    int mtu = 1500;
    bool masquerade = true;        // outbound NAT and ip_forward
    std::optional<Cidr6> subnet6;  // dual-stack when set (never picked by default), then kept
};

struct AttachRequest {
    std::string id;                 // container id
    std::string netnsPath;          // /proc/PID/ns/net, /run/netns/NAME
    std::string ifname = "eth0";
    std::vector<PortMapping> ports;
    bool defaultRoute6 = true;      // a default IPv6 route via the bridge (dual-stack networks)
    /// Isolation groups (a cluster node's networks, isolation.hpp) the address
    /// joins before the container runs, and leaves at detach.
    std::vector<std::string> groups;
};

struct Attachment {
    Allocation alloc;
    Cidr address;  // the container's address with the subnet's prefix
    Ipv4 gateway;
    std::string mac;
    std::string bridge;
    std::optional<Cidr6> address6;  // dual-stack networks: alloc.ip6 with the subnet's prefix
    std::optional<Ipv6> gateway6;
};

struct GcReport {
    std::vector<Allocation> freed;  // allocations whose network namespace is gone
    std::vector<std::string> links; // host veths removed with them
};

class Network {
public:
    /// Make or find the network. Runs in the caller's network namespace (the host's).
    [[nodiscard]] static Result<Network> ensure(const std::string& stateDir, NetworkConfig config);
    /// The network as last ensured, without touching the kernel (DEL, gc).
    [[nodiscard]] static Result<Network> load(const std::string& stateDir, const std::string& name);

    [[nodiscard]] Result<Attachment> attach(const AttachRequest& req);
    /// Remove the veth, ports and address of ID (IFNAME: "" = all). Idempotent.
    [[nodiscard]] Result<std::vector<Allocation>> detach(const std::string& id, const std::string& ifname = "");
    /// Free what belongs to network namespaces that no longer exist (a crash
    /// between ADD and DEL, a container removed without DEL).
    [[nodiscard]] Result<GcReport> gc();
    /// Remove the bridge, the NAT table and the state (tests, `hull network rm`).
    [[nodiscard]] Result<void> destroy();

    const NetworkConfig& config() const { return config_; }
    Cidr subnet() const { return *config_.subnet; }
    Ipv4 gateway() const { return config_.subnet->firstHost(); }
    const std::optional<Cidr6>& subnet6() const { return config_.subnet6; }
    /// The bridge's IPv6 address, on a dual-stack network.
    std::optional<Ipv6> gateway6() const {
        return config_.subnet6 ? std::optional<Ipv6>(config_.subnet6->firstHost()) : std::nullopt;
    }
    Ipam& ipam() { return ipam_; }

private:
    /// ID's addresses (on IFNAME, "" = all) leave their isolation groups.
    [[nodiscard]] Result<void> leaveGroups(const std::string& id, const std::string& ifname);
    Network(std::string dir, NetworkConfig c)
        : dir_(std::move(dir)),
          config_(std::move(c)),
          ipam_(dir_, *config_.subnet, config_.subnet->firstHost(), config_.subnet6) {}
    std::string dir_;
    NetworkConfig config_;
    Ipam ipam_;
};

/// /etc/hosts, /etc/hostname and /etc/resolv.conf for a container, written into
/// DIR (to be bind-mounted). Nameservers come from the host's resolv.conf
/// (HOST_RESOLV) minus loopback ones, which the container cannot reach; when
/// none is left, from FALLBACK. IP6: the container's IPv6 address, also named
/// HOSTNAME in /etc/hosts.
[[nodiscard]] Result<void> writeDnsFiles(const std::string& dir, const std::string& hostname, Ipv4 ip,
                                         const std::string& hostResolv = "/etc/resolv.conf",
                                         const std::vector<std::string>& fallback = {},
                                         std::optional<Ipv6> ip6 = std::nullopt);
/// The resolv.conf text (pure).
std::string resolvConf(const std::string& hostResolv, const std::vector<std::string>& fallback);

}  // namespace hull::netns
