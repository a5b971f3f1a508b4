// The Engine's part of the cluster overlay: network "hull" on the node's
// subnet and the VXLAN device that joins it to the other nodes' subnets.
#include "netns/isolation.hpp"
#include "netns/network.hpp"
#include "netns/overlay.hpp"
#include "netns/portmap.hpp"
#include "runtime/engine.hpp"
#include "sys/log.hpp"

namespace hull::runtime {

namespace {
constexpr const char* kVxlan = "hull.vx";
}

Result<std::string> Engine::ensureOverlay(const std::string& subnetText, const std::string& clusterText,
                                         const std::string& localText) {
    const auto subnet = TRY_CTX("overlay subnet", netns::Cidr::parse(subnetText));
    const auto cluster = TRY_CTX("overlay cluster CIDR", netns::Cidr::parse(clusterText));
    const auto local = netns::Ipv4::parse(localText);
    if (!local) return failInvalid("overlay: \"" + localText + "\" is not this node's IPv4 address");
    if (!cluster.contains(subnet.network()))
        return failInvalid("overlay: subnet " + subnet.str() + " is not in the cluster CIDR " + cluster.str());
    // Network "hull" on the node's subnet: made anew if it had another one and
    // nothing of ours is attached to it (a standalone agent joining a cluster).
    if (auto net = netns::Network::load(state_, "hull"); net && net->config().subnet && *net->config().subnet != subnet) {
        for (const auto& c : TRY(list(true)))
            if (c.network == "hull" && c.status == "running")
                return failInvalid("overlay: network hull has subnet " + net->config().subnet->str() + ", not this node's " +
                                   subnet.str() + ", and container " + c.name +
                                   " uses it: stop this node's containers (hull node drain), then restart the agent");
        TRY_CTX("overlay: remaking network hull", net->destroy());
        nets_->erase("hull");
        log::infof("overlay: network hull remade on %s (it was on %s)", subnet.str().c_str(),
                   net->config().subnet->str().c_str());
    }
    netns::NetworkConfig cfg;
    cfg.subnet = subnet;
    auto net = TRY(netns::Network::ensure(state_, cfg));
    (*nets_).insert_or_assign("hull", std::move(net));
    netns::VxlanOptions vx;
    vx.name = kVxlan;
    vx.local = *local;
    auto ov = TRY(netns::Overlay::ensure(vx, subnet));
    // The whole cluster range keeps its source addresses (peers add their own subnets too).
    // Tracked: service addresses (NAT) need replies from other nodes to meet their conntrack entries.
    TRY_CTX("overlay", netns::addClusterSubnet(cluster, false));
    return ov.self().vtepMac;
}

Result<void> Engine::overlayPeer(const std::string& subnetText, const std::string& underlayText, const std::string& mac, bool add) {
    const auto subnet = TRY_CTX("overlay peer subnet", netns::Cidr::parse(subnetText));
    const auto underlay = netns::Ipv4::parse(underlayText);
    if (!underlay) return failInvalid("overlay peer: \"" + underlayText + "\" is not an IPv4 address");
    auto ov = TRY(netns::Overlay::open(kVxlan));
    netns::OverlayPeer p{subnet, *underlay, mac};
    return add ? ov.addPeer(p, false) : ov.removePeer(p);
}

Result<void> Engine::publishVip(const std::string& vipText, const std::vector<std::string>& backendTexts) {
    auto vip = netns::Ipv4::parse(vipText);
    if (!vip) return failInvalid("service address \"" + vipText + "\" is not an IPv4 address");
    std::vector<netns::Ipv4> backends;
    for (const auto& b : backendTexts)
        if (auto ip = netns::Ipv4::parse(b)) backends.push_back(*ip);
    return netns::publishVip(*vip, backends);
}

Result<void> Engine::unpublishVip(const std::string& vipText) {
    auto vip = netns::Ipv4::parse(vipText);
    if (!vip) return failInvalid("service address \"" + vipText + "\" is not an IPv4 address");
    return netns::unpublishVip(*vip);
}

Result<void> Engine::ensureIsolation(const std::string& subnetText, const std::string& clusterText,
                                     const std::string& servicesText, const std::vector<std::string>& networks) {
    netns::IsolationScope scope{TRY_CTX("isolation: subnet", netns::Cidr::parse(subnetText)),
                                TRY_CTX("isolation: cluster CIDR", netns::Cidr::parse(clusterText)),
                                TRY_CTX("isolation: service CIDR", netns::Cidr::parse(servicesText)),
                                netns::bridgedThroughIp()};
    return netns::ensureIsolation(scope, networks);
}

bool Engine::isolationMode() { return netns::bridgedThroughIp(); }

Result<void> Engine::setRemoteMembers(const std::map<std::string, std::vector<std::string>>& members) {
    std::map<std::string, std::vector<netns::Ipv4>> ips;
    for (const auto& [network, list] : members) {
        auto& out = ips[network];
        for (const auto& text : list)
            if (auto ip = netns::Ipv4::parse(text)) out.push_back(*ip);
    }
    return netns::setRemoteMembers(ips);
}

}  // namespace hull::runtime
