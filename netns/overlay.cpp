#include "netns/overlay.hpp"

#include "netns/portmap.hpp"
#include "sys/log.hpp"

namespace hull::netns {

Result<Overlay> Overlay::ensure(const VxlanOptions& o, const Cidr& subnet) {
    auto nl = TRY(Netlink::open());
    TRY_CTX("overlay", nl.ensureVxlan(o));
    // The NAT table holds the cluster's subnets (exempt from masquerade and conntrack).
    TRY_CTX("overlay", ensureNatTable(subnet, std::nullopt));
    Cidr vtep{subnet.network(), 32};
    bool has = false;
    for (const auto& a : TRY(nl.addresses(o.name))) has |= a == vtep;
    if (!has) TRY_CTX("overlay", nl.addAddress(o.name, vtep));
    auto mac = TRY(nl.macOf(o.name));
    return Overlay(o, subnet, mac);
}

Result<Overlay> Overlay::open(const std::string& dev) {
    auto nl = TRY(Netlink::open());
    auto addrs = TRY_CTX("overlay " + dev, nl.addresses(dev));
    if (addrs.empty()) return failInvalid("overlay " + dev + " has no VTEP address (made by `hull overlay up`?)");
    VxlanOptions o;
    o.name = dev;
    return Overlay(o, Cidr{addrs[0].addr, 32}, TRY(nl.macOf(dev)));
}

Result<void> Overlay::addPeer(const OverlayPeer& p, bool untracked) {
    if (p.subnet.overlaps(subnet_))
        return failInvalid("overlay peer subnet " + p.subnet.str() + " overlaps this host's " + subnet_.str());
    auto nl = TRY(Netlink::open());
    Ipv4 gw = p.subnet.network();
    const std::string what = "overlay peer " + p.underlay.str() + " (" + p.subnet.str() + ")";
    // FDB and neighbour first: once the route exists, packets use them at once.
    // All three entries or none: a half-added peer would black-hole its subnet.
    auto added = nl.addFdb(options_.name, p.vtepMac, p.underlay)
                     .and_then([&] { return nl.addNeighbour(options_.name, gw, p.vtepMac); })
                     .and_then([&] { return nl.addRoute(Cidr{gw, p.subnet.prefix}, gw, options_.name, true); })
                     .and_then([&] { return addClusterSubnet(p.subnet, untracked); });
    if (!added) {
        (void)removePeer(p);
        return fail(std::move(added.error()).context(what));
    }
    log::debugf("overlay: peer %s added", what.c_str());
    return {};
}

Result<void> Overlay::removePeer(const OverlayPeer& p) {
    auto nl = TRY(Netlink::open());
    Ipv4 gw = p.subnet.network();
    const std::string what = "overlay peer " + p.underlay.str() + " (" + p.subnet.str() + ")";
    TRY_CTX(what, nl.delRoute(Cidr{gw, p.subnet.prefix}, options_.name));
    TRY_CTX(what, nl.delNeighbour(options_.name, gw));
    TRY_CTX(what, nl.delFdb(options_.name, p.vtepMac, p.underlay));
    TRY_CTX(what, removeClusterSubnet(p.subnet));
    return {};
}

Result<void> Overlay::destroy() {
    auto nl = TRY(Netlink::open());
    TRY(nl.deleteLink(options_.name));
    return {};
}

}  // namespace hull::netns
