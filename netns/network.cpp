#include "netns/network.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#include <algorithm>

#include "netns/isolation.hpp"
#include "netns/netlink.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"
#include "sys/scope_exit.hpp"

namespace hull::netns {

namespace {

std::string networkDir(const std::string& stateDir, const std::string& name) {
    return sys::joinPath(sys::joinPath(stateDir, "networks"), name);
}

Result<void> validName(const std::string& what, const std::string& n, size_t max) {
    bool ok = !n.empty() && n.size() <= max && n != "." && n != ".." && n.find('/') == std::string::npos;
    if (!ok) return failInvalid(what + " \"" + n + "\" must be 1-" + std::to_string(max) + " characters without '/'");
    return {};
}

std::string configJson(const NetworkConfig& c) {
    json::Value v = json::Value::object();
    v.set("name", c.name);
    v.set("bridge", c.bridge);
    v.set("subnet", c.subnet->str());
    v.set("mtu", int64_t(c.mtu));
    v.set("masquerade", c.masquerade);
    if (c.subnet6) v.set("subnet6", c.subnet6->str());  // absent on IPv4-only networks: their file is as before
    return v.dump(true) + "\n";
}

Result<NetworkConfig> parseConfig(const std::string& text, const std::string& path) {
    auto v = TRY_CTX(path, json::Value::parse(text));
    NetworkConfig c;
    auto str = [&](const char* k) { return json::stringOf(v, k); };
    c.name = str("name");
    c.bridge = str("bridge");
    c.subnet = TRY_CTX(path + ": subnet", Cidr::parse(str("subnet")));
    int64_t mtu = 1500;
    if (const json::Value* m = v.find("mtu")) m->toInt64(mtu);
    c.mtu = int(mtu);
    if (const json::Value* m = v.find("masquerade"); m && m->isBool()) c.masquerade = m->asBool();
    if (auto s6 = str("subnet6"); !s6.empty()) c.subnet6 = TRY_CTX(path + ": subnet6", Cidr6::parse(s6));
    return c;
}

/// An IPv6 subnet hull can hand addresses out of, as its network address.
Result<Cidr6> usableSubnet6(const Cidr6& s) {
    // /127 and /128 leave no address beside the gateway (offsets 0 and 1).
    if (s.prefix > 126) return failInvalid("IPv6 subnet " + s.str() + " is too small (at most /126)");
    for (const char* reserved : {"fe80::/10", "ff00::/8", "::/8"})
        if (Cidr6 r = *Cidr6::parse(reserved); s.overlaps(r))
            return failInvalid("IPv6 subnet " + s.str() + " overlaps " + reserved + " (use a ULA such as fd00:89::/64)");
    return Cidr6{s.network(), s.prefix};
}

/// A network namespace file that still names a live namespace.
bool netnsAlive(const std::string& path) {
    if (path.empty()) return false;
    struct statfs s;
    if (::statfs(path.c_str(), &s) < 0) return false;
    // /proc/PID/ns/net of a live process, or a bind mount of one (/run/netns/X).
    return s.f_type == NSFS_MAGIC || s.f_type == PROC_SUPER_MAGIC;
}

}  // namespace

Result<Network> Network::ensure(const std::string& stateDir, NetworkConfig config) {
    TRY(validName("network name", config.name, 64));
    TRY(validName("bridge name", config.bridge, 15));
    std::string dir = networkDir(stateDir, config.name);
    std::string cfgPath = sys::joinPath(dir, "network.json");
    TRY(sys::mkdirAll(dir, 0700));
    auto nl = TRY(Netlink::open());
    if (config.subnet6) config.subnet6 = TRY(usableSubnet6(*config.subnet6));
    if (auto saved = sys::readFile(cfgPath)) {
        auto old = TRY(parseConfig(*saved, cfgPath));
        if (config.subnet && *config.subnet != *old.subnet)
            return failInvalid("network " + config.name + " exists with subnet " + old.subnet->str() + ", not " +
                               config.subnet->str() + " (remove it first)");
        config.subnet = old.subnet;
        // Without one asked for, the saved IPv6 subnet (or none) stands, as the IPv4 one does.
        if (config.subnet6 && config.subnet6 != old.subnet6)
            return failInvalid("network " + config.name + " exists " +
                               (old.subnet6 ? "with IPv6 subnet " + old.subnet6->str() : "without an IPv6 subnet") +
                               ", not " + config.subnet6->str() + " (remove it first)");
        config.subnet6 = old.subnet6;
    }
    if (!config.subnet) {
        auto used = TRY(nl.usedPrefixes());
        auto picked = pickFreeSubnet(used);
        if (!picked) return fail(Error::plain(ENOSPC, "no free private subnet for network " + config.name));
        config.subnet = *picked;
        log::infof("network %s: picked subnet %s", config.name.c_str(), picked->str().c_str());
    }
    Cidr& s = *config.subnet;
    if (s.prefix > 30) return failInvalid("subnet " + s.str() + " is too small (at most /30)");
    s = Cidr{s.network(), s.prefix};
    TRY(sys::writeFile(cfgPath + ".tmp", configJson(config), 0600));
    if (::rename((cfgPath + ".tmp").c_str(), cfgPath.c_str()) < 0) return failErrno("rename " + cfgPath);

    Cidr gw{s.firstHost(), s.prefix};
    TRY_CTX("network " + config.name, nl.ensureBridge(config.bridge, gw, config.mtu));
    // 127.0.0.1 -> published port: the DNATed packet keeps its loopback source
    // until masquerade; the kernel drops it on a bridge without route_localnet.
    TRY(writeSysctl("net/ipv4/conf/" + config.bridge + "/route_localnet", "1"));
    if (config.subnet6) {
        // A host (or a parent netns) may have IPv6 disabled by default; an
        // address on a link with disable_ipv6=1 is refused. No DAD: the bridge's
        // address is ours alone. IPv6 forwarding stays as it is: turning it on
        // makes the host ignore router advertisements on every interface.
        Cidr6 gw6{config.subnet6->firstHost(), config.subnet6->prefix};
        std::string conf = "net/ipv6/conf/" + config.bridge + "/";
        TRY_CTX("network " + config.name + ": IPv6", writeSysctl(conf + "disable_ipv6", "0"));
        TRY_CTX("network " + config.name + ": IPv6", writeSysctl(conf + "accept_dad", "0"));
        auto have = TRY(nl.addresses6(config.bridge));
        if (std::find(have.begin(), have.end(), gw6) == have.end()) {
            auto r = nl.addAddress(config.bridge, gw6);
            if (!r && r.error().errnum() != EEXIST) return fail(std::move(r.error()).context("network " + config.name));
        }
    }
    if (config.masquerade) TRY(writeSysctl("net/ipv4/ip_forward", "1"));
    TRY_CTX("network " + config.name, ensureNatTable(s, config.masquerade));
    return Network(dir, std::move(config));
}

Result<Network> Network::load(const std::string& stateDir, const std::string& name) {
    std::string dir = networkDir(stateDir, name);
    std::string cfgPath = sys::joinPath(dir, "network.json");
    auto text = TRY_CTX("network " + name, sys::readFile(cfgPath));
    return Network(dir, TRY(parseConfig(text, cfgPath)));
}

Result<Attachment> Network::attach(const AttachRequest& req) {
    if (req.id.empty()) return failInvalid("attach: container id is empty");
    TRY(validName("interface name", req.ifname, 15));
    UniqueFd ns = TRY_CTX("attach " + req.id, sys::openFile(req.netnsPath, O_RDONLY));
    auto host = TRY(Netlink::open());

    Allocation want;
    want.id = req.id;
    want.ifname = req.ifname;
    want.netns = req.netnsPath;
    // One container may have several interfaces on one network: the name covers both.
    want.hostVeth = hostVethName(req.id + "/" + req.ifname);
    want.ports = req.ports;
    want.groups = req.groups;
    // Every step below is undone if a later one fails: nothing half-made stays.
    bool allocated = false, linked = false, published = false, joined = false;
    Allocation got;
    ScopeExit rollback([&] {
        if (joined) (void)setLocalMember(got.ip, got.groups, false);
        if (published) (void)unpublishPorts(got.ports);
        if (linked) (void)host.deleteLink(want.hostVeth);
        if (allocated) (void)ipam_.release(req.id, req.ifname);
    });
    got = TRY(ipam_.allocate(want));
    allocated = true;
    Attachment at{got, Cidr{got.ip, subnet().prefix}, gateway(), macForIp(got.ip), config_.bridge, {}, {}};
    if (got.ip6) {
        at.address6 = Cidr6{*got.ip6, subnet6()->prefix};
        at.gateway6 = gateway6();
    }

    // A leftover host veth of the same name (a crash before DEL) would make the create fail.
    (void)host.deleteLink(want.hostVeth);
    TRY_CTX("attach " + req.id, host.createVeth(want.hostVeth, req.ifname, ns.get(), config_.mtu));
    linked = true;
    TRY_CTX("attach " + req.id, host.setMasterUp(want.hostVeth, config_.bridge));
    {
        auto inside = TRY_CTX("attach " + req.id, Netlink::openIn(ns.get()));
        TRY_CTX("attach " + req.id, inside.setMacUp("lo", ""));
        TRY_CTX("attach " + req.id, inside.setMacUp(req.ifname, at.mac));
        TRY_CTX("attach " + req.id, inside.addAddress(req.ifname, at.address));
        TRY_CTX("attach " + req.id, inside.addRoute(Cidr{{0}, 0}, at.gateway, req.ifname));
        if (at.address6) {
            // The container's netns may have IPv6 off by default (inherited
            // devconf); DAD would keep the address tentative for a second.
            std::string conf = "net/ipv6/conf/" + req.ifname + "/";
            TRY_CTX("attach " + req.id + ": IPv6",
                    writeSysctlsIn(ns.get(), {{conf + "disable_ipv6", "0"}, {conf + "accept_dad", "0"}}));
            TRY_CTX("attach " + req.id, inside.addAddress(req.ifname, *at.address6));
            if (req.defaultRoute6)
                TRY_CTX("attach " + req.id, inside.addRoute(Cidr6{{}, 0}, *at.gateway6, req.ifname));
        }
    }
    TRY_CTX("attach " + req.id, publishPorts(got.ports, got.ip));
    published = true;
    TRY_CTX("attach " + req.id, setLocalMember(got.ip, got.groups, true));
    joined = true;
    rollback.dismiss();
    log::debugf("network %s: %s/%s = %s%s%s (veth %s)", config_.name.c_str(), req.id.c_str(), req.ifname.c_str(),
                at.address.str().c_str(), at.address6 ? " " : "", at.address6 ? at.address6->str().c_str() : "",
                want.hostVeth.c_str());
    return at;
}

Result<std::vector<Allocation>> Network::detach(const std::string& id, const std::string& ifname) {
    auto host = TRY(Netlink::open());
    // The address leaves its groups while it is still held: once released, it
    // may be another container's, whose memberships are not to be touched.
    TRY(leaveGroups(id, ifname));
    // Release first, under the IPAM lock: a concurrent ADD of the same id then
    // starts clean. The links and ports follow from the records.
    auto freed = TRY(ipam_.release(id, ifname));
    for (const auto& a : freed) {
        TRY(unpublishPorts(a.ports));
        if (!a.hostVeth.empty()) TRY(host.deleteLink(a.hostVeth));
    }
    // A DEL for an ADD that failed before its record was written: the veth may exist.
    if (freed.empty() && !ifname.empty()) (void)host.deleteLink(hostVethName(id + "/" + ifname));
    return freed;
}

Result<void> Network::leaveGroups(const std::string& id, const std::string& ifname) {
    for (const auto& a : TRY(ipam_.list()))
        if (a.id == id && (ifname.empty() || a.ifname == ifname)) TRY(setLocalMember(a.ip, a.groups, false));
    return {};
}

Result<GcReport> Network::gc() {
    GcReport report;
    auto host = TRY(Netlink::open());
    for (const auto& a : TRY(ipam_.list())) {
        if (netnsAlive(a.netns)) continue;
        TRY(setLocalMember(a.ip, a.groups, false));
        auto freed = TRY(ipam_.release(a.id, a.ifname));
        for (const auto& f : freed) {
            TRY(unpublishPorts(f.ports));
            if (!f.hostVeth.empty() && TRY(host.deleteLink(f.hostVeth))) report.links.push_back(f.hostVeth);
            report.freed.push_back(f);
        }
    }
    return report;
}

Result<void> Network::destroy() {
    auto host = TRY(Netlink::open());
    for (const auto& a : TRY(ipam_.list())) TRY(detach(a.id, a.ifname));
    TRY(host.deleteLink(config_.bridge));
    TRY(dropIsolation());
    TRY(dropNatTable());
    TRY(sys::removeAll(dir_));
    return {};
}

std::string resolvConf(const std::string& hostResolv, const std::vector<std::string>& fallback) {
    std::vector<std::string> servers, other;
    for (const auto& line : sys::split(hostResolv, '\n')) {
        auto t = sys::trim(line);
        if (t.rfind("nameserver", 0) == 0) {
            auto addr = sys::trim(t.substr(10));
            // 127.0.0.53 (systemd-resolved) and friends live in the host's loopback.
            if (addr.rfind("127.", 0) == 0 || addr == "::1") continue;
            servers.push_back(addr);
        } else if (t.rfind("search", 0) == 0 || t.rfind("options", 0) == 0) {
            other.push_back(t);
        }
    }
    if (servers.empty()) servers = fallback;
    std::string out = "# written by hull\n";
    for (const auto& s : servers) out += "nameserver " + s + "\n";
    for (const auto& o : other) out += o + "\n";
    return out;
}

Result<void> writeDnsFiles(const std::string& dir, const std::string& hostname, Ipv4 ip,
                           const std::string& hostResolv, const std::vector<std::string>& fallback,
                           std::optional<Ipv6> ip6) {
    TRY(sys::mkdirAll(dir, 0755));
    std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    if (!hostname.empty()) hosts += ip.str() + "\t" + hostname + "\n";
    if (!hostname.empty() && ip6) hosts += ip6->str() + "\t" + hostname + "\n";
    TRY(sys::writeFile(sys::joinPath(dir, "hosts"), hosts, 0644));
    TRY(sys::writeFile(sys::joinPath(dir, "hostname"), hostname + "\n", 0644));
    std::string host = sys::readFile(hostResolv).value_or("");
    TRY(sys::writeFile(sys::joinPath(dir, "resolv.conf"), resolvConf(host, fallback), 0644));
    return {};
}

}  // namespace hull::netns
