#include "netns/netlink.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/neighbour.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>

#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::netns {

namespace {

// RAII for libnl objects.
struct LinkDel { void operator()(rtnl_link* l) const { rtnl_link_put(l); } };
struct AddrDel { void operator()(nl_addr* a) const { nl_addr_put(a); } };
struct RtAddrDel { void operator()(rtnl_addr* a) const { rtnl_addr_put(a); } };
struct RouteDel { void operator()(rtnl_route* r) const { rtnl_route_put(r); } };
struct NeighDel { void operator()(rtnl_neigh* n) const { rtnl_neigh_put(n); } };
struct CacheDel { void operator()(nl_cache* c) const { nl_cache_free(c); } };
using LinkPtr = std::unique_ptr<rtnl_link, LinkDel>;
using AddrPtr = std::unique_ptr<nl_addr, AddrDel>;
using RtAddrPtr = std::unique_ptr<rtnl_addr, RtAddrDel>;
using RoutePtr = std::unique_ptr<rtnl_route, RouteDel>;
using NeighPtr = std::unique_ptr<rtnl_neigh, NeighDel>;
using CachePtr = std::unique_ptr<nl_cache, CacheDel>;

/// libnl's negative NLE_* codes -> an Error with the nearest errno.
tl::unexpected<Error> nlFail(const std::string& what, int err) {
    err = err < 0 ? -err : err;
    int e = EIO;
    switch (err) {
    case NLE_EXIST: e = EEXIST; break;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV: e = ENODEV; break;
    case NLE_PERM: e = EPERM; break;
    case NLE_INVAL: e = EINVAL; break;
    case NLE_BUSY: e = EBUSY; break;
    case NLE_NOMEM: e = ENOMEM; break;
    default: break;
    }
    return fail(Error::plain(e, what + ": " + nl_geterror(err)));
}

AddrPtr ipAddr(Ipv4 ip, int prefix = 32) {
    uint32_t be = htonl(ip.value);
    AddrPtr a(nl_addr_build(AF_INET, &be, sizeof be));
    if (a) nl_addr_set_prefixlen(a.get(), prefix);
    return a;
}

AddrPtr ipAddr(Ipv6 ip, int prefix = 128) {
    auto b = ip.bytes();
    AddrPtr a(nl_addr_build(AF_INET6, b.data(), b.size()));
    if (a) nl_addr_set_prefixlen(a.get(), prefix);
    return a;
}

Result<AddrPtr> macAddr(const std::string& mac) {
    nl_addr* a = nullptr;
    int err = nl_addr_parse(mac.c_str(), AF_LLC, &a);
    if (err < 0) return nlFail("MAC address \"" + mac + "\"", err);
    return AddrPtr(a);
}

Result<int> requireIndex(Netlink& nl, const std::string& name) {
    auto idx = TRY(nl.linkIndex(name));
    if (!idx) return fail(Error::plain(ENODEV, "no network device \"" + name + "\""));
    return *idx;
}

/// F runs with the calling thread in the network namespace NETNS_FD; the
/// thread is back in its own before this returns.
Result<void> withNetns(int netnsFd, const std::function<void()>& f) {
    UniqueFd self = TRY(sys::openFile("/proc/thread-self/ns/net", O_RDONLY));
    if (::setns(netnsFd, CLONE_NEWNET) < 0) return failErrno("enter network namespace");
    f();
    // Back home whatever happened: the rest of this thread lives there.
    if (::setns(self.get(), CLONE_NEWNET) < 0) {
        // Unrecoverable: this thread is stranded in another namespace.
        log::errorf("netns: cannot return to the original network namespace: %s", std::strerror(errno));
        std::abort();
    }
    return {};
}

}  // namespace

Result<Netlink> Netlink::open() {
    nl_sock* s = nl_socket_alloc();
    if (!s) return fail(Error::plain(ENOMEM, "netlink socket"));
    if (int err = nl_connect(s, NETLINK_ROUTE); err < 0) {
        nl_socket_free(s);
        return nlFail("connect rtnetlink", err);
    }
    // Our fd must not leak into containers we exec.
    ::fcntl(nl_socket_get_fd(s), F_SETFD, FD_CLOEXEC);
    return Netlink(s);
}

Result<Netlink> Netlink::openIn(int netnsFd) {
    // A socket keeps the namespace it was opened in.
    std::optional<Result<Netlink>> nl;
    TRY(withNetns(netnsFd, [&] { nl.emplace(open()); }));
    return std::move(*nl);
}

Netlink::Netlink(Netlink&& o) noexcept : sock_(std::exchange(o.sock_, nullptr)) {}
Netlink& Netlink::operator=(Netlink&& o) noexcept {
    if (this != &o) {
        if (sock_) nl_socket_free(sock_);
        sock_ = std::exchange(o.sock_, nullptr);
    }
    return *this;
}
Netlink::~Netlink() {
    if (sock_) nl_socket_free(sock_);
}

Result<std::optional<int>> Netlink::linkIndex(const std::string& name) {
    rtnl_link* l = nullptr;
    int err = rtnl_link_get_kernel(sock_, 0, name.c_str(), &l);
    if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return std::optional<int>();
    if (err < 0) return nlFail("look up link " + name, err);
    LinkPtr link(l);
    return std::optional<int>(rtnl_link_get_ifindex(link.get()));
}

Result<void> Netlink::ensureBridge(const std::string& name, const Cidr& address, int mtu) {
    if (!TRY(linkIndex(name))) {
        LinkPtr br(rtnl_link_bridge_alloc());
        if (!br) return fail(Error::plain(ENOMEM, "allocate bridge"));
        rtnl_link_set_name(br.get(), name.c_str());
        if (mtu > 0) rtnl_link_set_mtu(br.get(), unsigned(mtu));
        int err = rtnl_link_add(sock_, br.get(), NLM_F_CREATE | NLM_F_EXCL);
        // Another start racing us made it first: fine.
        if (err < 0 && err != -NLE_EXIST) return nlFail("create bridge " + name, err);
        if (err == 0) log::debugf("netns: created bridge %s", name.c_str());
    }
    bool has = false;
    for (const auto& a : TRY(addresses(name)))
        if (a == address) has = true;
    if (!has) {
        auto r = addAddress(name, address);
        if (!r && r.error().errnum() != EEXIST) return r;
    }
    return setMacUp(name, "");
}

Result<void> Netlink::createVeth(const std::string& hostName, const std::string& peerName, int peerNetnsFd,
                                 int mtu) {
    LinkPtr veth(rtnl_link_veth_alloc());
    if (!veth) return fail(Error::plain(ENOMEM, "allocate veth"));
    rtnl_link* peer = rtnl_link_veth_get_peer(veth.get());
    rtnl_link_set_name(veth.get(), hostName.c_str());
    rtnl_link_set_name(peer, peerName.c_str());
    if (mtu > 0) {
        rtnl_link_set_mtu(veth.get(), unsigned(mtu));
        rtnl_link_set_mtu(peer, unsigned(mtu));
    }
    rtnl_link_set_ns_fd(peer, peerNetnsFd);
    int err = rtnl_link_add(sock_, veth.get(), NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(peer);
    if (err < 0) return nlFail("create veth " + hostName + " (peer " + peerName + ")", err);
    return {};
}

Result<void> Netlink::setMasterUp(const std::string& name, const std::string& master) {
    int idx = TRY(requireIndex(*this, name));
    int br = TRY(requireIndex(*this, master));
    LinkPtr cur(rtnl_link_alloc()), change(rtnl_link_alloc());
    rtnl_link_set_ifindex(cur.get(), idx);
    rtnl_link_set_master(change.get(), br);
    rtnl_link_set_flags(change.get(), IFF_UP);
    if (int err = rtnl_link_change(sock_, cur.get(), change.get(), 0); err < 0)
        return nlFail("attach " + name + " to " + master, err);
    return {};
}

Result<void> Netlink::setMacUp(const std::string& name, const std::string& mac) {
    int idx = TRY(requireIndex(*this, name));
    LinkPtr cur(rtnl_link_alloc()), change(rtnl_link_alloc());
    rtnl_link_set_ifindex(cur.get(), idx);
    AddrPtr ll;
    if (!mac.empty()) {
        ll = TRY(macAddr(mac));
        rtnl_link_set_addr(change.get(), ll.get());
    }
    rtnl_link_set_flags(change.get(), IFF_UP);
    if (int err = rtnl_link_change(sock_, cur.get(), change.get(), 0); err < 0)
        return nlFail("bring up " + name, err);
    return {};
}

Result<void> Netlink::addAddress(const std::string& dev, const Cidr& address) {
    int idx = TRY(requireIndex(*this, dev));
    RtAddrPtr a(rtnl_addr_alloc());
    AddrPtr local = ipAddr(address.addr, address.prefix);
    rtnl_addr_set_ifindex(a.get(), idx);
    rtnl_addr_set_family(a.get(), AF_INET);
    rtnl_addr_set_local(a.get(), local.get());
    rtnl_addr_set_prefixlen(a.get(), address.prefix);
    if (address.prefix < 31) {
        AddrPtr bcast = ipAddr(address.broadcast());
        rtnl_addr_set_broadcast(a.get(), bcast.get());
    }
    if (int err = rtnl_addr_add(sock_, a.get(), 0); err < 0)
        return nlFail("add address " + address.str() + " to " + dev, err);
    return {};
}

Result<void> Netlink::addRoute(const Cidr& dst, Ipv4 gateway, const std::string& dev, bool onlink) {
    int idx = TRY(requireIndex(*this, dev));
    RoutePtr r(rtnl_route_alloc());
    rtnl_route_set_family(r.get(), AF_INET);
    AddrPtr d = ipAddr(dst.network(), dst.prefix);
    rtnl_route_set_dst(r.get(), d.get());
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, idx);
    AddrPtr gw;
    if (gateway.value) {
        gw = ipAddr(gateway);
        rtnl_route_nh_set_gateway(nh, gw.get());
    }
    if (onlink) rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
    rtnl_route_add_nexthop(r.get(), nh);  // the route owns it now
    if (int err = rtnl_route_add(sock_, r.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0)
        return nlFail("add route " + dst.str() + " via " + gateway.str() + " dev " + dev, err);
    return {};
}

Result<void> Netlink::addAddress(const std::string& dev, const Cidr6& address) {
    int idx = TRY(requireIndex(*this, dev));
    RtAddrPtr a(rtnl_addr_alloc());
    AddrPtr local = ipAddr(address.addr, address.prefix);
    rtnl_addr_set_ifindex(a.get(), idx);
    rtnl_addr_set_family(a.get(), AF_INET6);
    rtnl_addr_set_local(a.get(), local.get());
    rtnl_addr_set_prefixlen(a.get(), address.prefix);
    rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
    if (int err = rtnl_addr_add(sock_, a.get(), 0); err < 0)
        return nlFail("add address " + address.str() + " to " + dev, err);
    return {};
}

Result<void> Netlink::addRoute(const Cidr6& dst, Ipv6 gateway, const std::string& dev) {
    int idx = TRY(requireIndex(*this, dev));
    RoutePtr r(rtnl_route_alloc());
    rtnl_route_set_family(r.get(), AF_INET6);
    AddrPtr d = ipAddr(dst.network(), dst.prefix);
    rtnl_route_set_dst(r.get(), d.get());
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, idx);
    AddrPtr gw = ipAddr(gateway);
    rtnl_route_nh_set_gateway(nh, gw.get());
    rtnl_route_add_nexthop(r.get(), nh);  // the route owns it now
    if (int err = rtnl_route_add(sock_, r.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0)
        return nlFail("add route " + dst.str() + " via " + gateway.str() + " dev " + dev, err);
    return {};
}

Result<void> Netlink::delRoute(const Cidr& dst, const std::string& dev) {
    auto idx = TRY(linkIndex(dev));
    if (!idx) return {};
    RoutePtr r(rtnl_route_alloc());
    rtnl_route_set_family(r.get(), AF_INET);
    AddrPtr d = ipAddr(dst.network(), dst.prefix);
    rtnl_route_set_dst(r.get(), d.get());
    rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
    // libnl fills in scope "nowhere" and protocol "static"; the kernel matches
    // only fields it is given, and scope 0 (universe) means any.
    rtnl_route_set_scope(r.get(), RT_SCOPE_UNIVERSE);
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, *idx);
    rtnl_route_add_nexthop(r.get(), nh);
    int err = rtnl_route_delete(sock_, r.get(), 0);
    if (err < 0 && err != -NLE_OBJ_NOTFOUND) return nlFail("delete route " + dst.str(), err);
    return {};
}

Result<bool> Netlink::deleteLink(const std::string& name) {
    auto idx = TRY(linkIndex(name));
    if (!idx) return false;
    LinkPtr l(rtnl_link_alloc());
    rtnl_link_set_ifindex(l.get(), *idx);
    int err = rtnl_link_delete(sock_, l.get());
    if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return false;
    if (err < 0) return nlFail("delete link " + name, err);
    return true;
}

Result<std::vector<Cidr>> Netlink::usedPrefixes() {
    std::vector<Cidr> out;
    nl_cache* rc = nullptr;
    if (int err = rtnl_route_alloc_cache(sock_, AF_INET, 0, &rc); err < 0) return nlFail("list routes", err);
    CachePtr routes(rc);
    for (nl_object* o = nl_cache_get_first(routes.get()); o; o = nl_cache_get_next(o)) {
        auto* r = reinterpret_cast<rtnl_route*>(o);
        nl_addr* d = rtnl_route_get_dst(r);
        if (!d || nl_addr_get_len(d) != 4) continue;
        uint32_t be;
        std::memcpy(&be, nl_addr_get_binary_addr(d), 4);
        out.push_back({Ipv4{ntohl(be)}, int(nl_addr_get_prefixlen(d))});
    }
    nl_cache* ac = nullptr;
    if (int err = rtnl_addr_alloc_cache(sock_, &ac); err < 0) return nlFail("list addresses", err);
    CachePtr addrs(ac);
    for (nl_object* o = nl_cache_get_first(addrs.get()); o; o = nl_cache_get_next(o)) {
        auto* a = reinterpret_cast<rtnl_addr*>(o);
        nl_addr* l = rtnl_addr_get_local(a);
        if (rtnl_addr_get_family(a) != AF_INET || !l || nl_addr_get_len(l) != 4) continue;
        uint32_t be;
        std::memcpy(&be, nl_addr_get_binary_addr(l), 4);
        out.push_back({Ipv4{ntohl(be)}, rtnl_addr_get_prefixlen(a)});
    }
    return out;
}

Result<std::vector<Cidr>> Netlink::addresses(const std::string& dev) {
    int idx = TRY(requireIndex(*this, dev));
    nl_cache* ac = nullptr;
    if (int err = rtnl_addr_alloc_cache(sock_, &ac); err < 0) return nlFail("list addresses", err);
    CachePtr addrs(ac);
    std::vector<Cidr> out;
    for (nl_object* o = nl_cache_get_first(addrs.get()); o; o = nl_cache_get_next(o)) {
        auto* a = reinterpret_cast<rtnl_addr*>(o);
        nl_addr* l = rtnl_addr_get_local(a);
        if (rtnl_addr_get_ifindex(a) != idx || rtnl_addr_get_family(a) != AF_INET || !l) continue;
        uint32_t be;
        std::memcpy(&be, nl_addr_get_binary_addr(l), 4);
        out.push_back({Ipv4{ntohl(be)}, rtnl_addr_get_prefixlen(a)});
    }
    return out;
}

Result<std::vector<Cidr6>> Netlink::addresses6(const std::string& dev) {
    int idx = TRY(requireIndex(*this, dev));
    nl_cache* ac = nullptr;
    if (int err = rtnl_addr_alloc_cache(sock_, &ac); err < 0) return nlFail("list addresses", err);
    CachePtr addrs(ac);
    std::vector<Cidr6> out;
    for (nl_object* o = nl_cache_get_first(addrs.get()); o; o = nl_cache_get_next(o)) {
        auto* a = reinterpret_cast<rtnl_addr*>(o);
        nl_addr* l = rtnl_addr_get_local(a);
        if (rtnl_addr_get_ifindex(a) != idx || rtnl_addr_get_family(a) != AF_INET6 || !l || nl_addr_get_len(l) != 16)
            continue;
        out.push_back({Ipv6::fromBytes(static_cast<const uint8_t*>(nl_addr_get_binary_addr(l))),
                       rtnl_addr_get_prefixlen(a)});
    }
    return out;
}

Result<std::string> Netlink::macOf(const std::string& dev) {
    rtnl_link* l = nullptr;
    if (int err = rtnl_link_get_kernel(sock_, 0, dev.c_str(), &l); err < 0) return nlFail("look up link " + dev, err);
    LinkPtr link(l);
    nl_addr* a = rtnl_link_get_addr(link.get());
    if (!a) return fail(Error::plain(ENOENT, dev + " has no MAC address"));
    char buf[64];
    return std::string(nl_addr2str(a, buf, sizeof buf));
}

Result<void> Netlink::ensureVxlan(const VxlanOptions& o) {
    if (!TRY(linkIndex(o.name))) {
        LinkPtr vx(rtnl_link_vxlan_alloc());
        if (!vx) return fail(Error::plain(ENOMEM, "allocate vxlan"));
        rtnl_link_set_name(vx.get(), o.name.c_str());
        rtnl_link_vxlan_set_id(vx.get(), o.vni);
        AddrPtr local = ipAddr(o.local);
        rtnl_link_vxlan_set_local(vx.get(), local.get());
        rtnl_link_vxlan_set_port(vx.get(), o.port);
        // Entries are programmed per remote host: no flooding, no learning.
        rtnl_link_vxlan_set_learning(vx.get(), 0);
        if (!o.underlay.empty()) rtnl_link_vxlan_set_link(vx.get(), uint32_t(TRY(requireIndex(*this, o.underlay))));
        if (o.mtu > 0) rtnl_link_set_mtu(vx.get(), unsigned(o.mtu));
        int err = rtnl_link_add(sock_, vx.get(), NLM_F_CREATE | NLM_F_EXCL);
        if (err < 0 && err != -NLE_EXIST) return nlFail("create vxlan " + o.name, err);
    }
    return setMacUp(o.name, "");
}

Result<void> Netlink::addNeighbour(const std::string& dev, Ipv4 ip, const std::string& mac) {
    int idx = TRY(requireIndex(*this, dev));
    NeighPtr n(rtnl_neigh_alloc());
    AddrPtr dst = ipAddr(ip);
    AddrPtr ll = TRY(macAddr(mac));
    rtnl_neigh_set_ifindex(n.get(), idx);
    rtnl_neigh_set_family(n.get(), AF_INET);
    rtnl_neigh_set_dst(n.get(), dst.get());
    rtnl_neigh_set_lladdr(n.get(), ll.get());
    rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
    if (int err = rtnl_neigh_add(sock_, n.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0)
        return nlFail("add neighbour " + ip.str() + " " + mac + " on " + dev, err);
    return {};
}

Result<void> Netlink::delNeighbour(const std::string& dev, Ipv4 ip) {
    auto idx = TRY(linkIndex(dev));
    if (!idx) return {};
    NeighPtr n(rtnl_neigh_alloc());
    AddrPtr dst = ipAddr(ip);
    rtnl_neigh_set_ifindex(n.get(), *idx);
    rtnl_neigh_set_family(n.get(), AF_INET);
    rtnl_neigh_set_dst(n.get(), dst.get());
    int err = rtnl_neigh_delete(sock_, n.get(), 0);
    if (err < 0 && err != -NLE_OBJ_NOTFOUND) return nlFail("delete neighbour " + ip.str() + " on " + dev, err);
    return {};
}

Result<void> Netlink::addFdb(const std::string& dev, const std::string& mac, Ipv4 dst) {
    int idx = TRY(requireIndex(*this, dev));
    NeighPtr n(rtnl_neigh_alloc());
    AddrPtr ll = TRY(macAddr(mac));
    AddrPtr remote = ipAddr(dst);
    rtnl_neigh_set_ifindex(n.get(), idx);
    // dst before family: libnl refuses an AF_INET dst on an AF_BRIDGE neighbour
    // (NLE_AF_MISMATCH), yet a VXLAN FDB entry is exactly that.
    if (int err = rtnl_neigh_set_dst(n.get(), remote.get()); err < 0) return nlFail("fdb dst " + dst.str(), err);
    rtnl_neigh_set_family(n.get(), AF_BRIDGE);
    rtnl_neigh_set_lladdr(n.get(), ll.get());
    rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
    rtnl_neigh_set_flags(n.get(), NTF_SELF);
    if (int err = rtnl_neigh_add(sock_, n.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0)
        return nlFail("add fdb " + mac + " dst " + dst.str() + " on " + dev, err);
    return {};
}

Result<void> Netlink::delFdb(const std::string& dev, const std::string& mac, Ipv4 dst) {
    auto idx = TRY(linkIndex(dev));
    if (!idx) return {};
    NeighPtr n(rtnl_neigh_alloc());
    AddrPtr ll = TRY(macAddr(mac));
    AddrPtr remote = ipAddr(dst);
    rtnl_neigh_set_ifindex(n.get(), *idx);
    if (int err = rtnl_neigh_set_dst(n.get(), remote.get()); err < 0) return nlFail("fdb dst " + dst.str(), err);
    rtnl_neigh_set_family(n.get(), AF_BRIDGE);
    rtnl_neigh_set_lladdr(n.get(), ll.get());
    rtnl_neigh_set_flags(n.get(), NTF_SELF);
    int err = rtnl_neigh_delete(sock_, n.get(), 0);
    if (err < 0 && err != -NLE_OBJ_NOTFOUND) return nlFail("delete fdb " + mac + " on " + dev, err);
    return {};
}

Result<void> writeSysctl(const std::string& key, const std::string& value) {
    return sys::writeExisting("/proc/sys/" + key, value);
}

Result<void> writeSysctlsIn(int netnsFd, const std::vector<std::pair<std::string, std::string>>& keyValues) {
    Result<void> r;
    TRY(withNetns(netnsFd, [&] {
        for (const auto& [k, v] : keyValues)
            if (r) r = writeSysctl(k, v);
    }));
    return r;
}

}  // namespace hull::netns
