#include "netns/portmap.hpp"

#include "netns/nft.hpp"

#include <cstdio>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <map>

#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

namespace hull::netns {

namespace {

/// Whether IP is assigned to an interface of this network namespace.
bool isLocalAddress(Ipv4 ip) {
    struct ifaddrs* list = nullptr;
    if (::getifaddrs(&list) < 0) return false;
    bool found = false;
    for (auto* a = list; a && !found; a = a->ifa_next)
        if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET)
            found = ntohl(reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr) == ip.value;
    ::freeifaddrs(list);
    return found;
}

/// The keys of MAP (one keyed by address . port): address and port each.
Result<std::vector<std::pair<std::string, int64_t>>> addressKeys(const std::string& map) {
    std::string cmd = "list map ip hull " + map;
    auto doc = json::Value::parse(TRY(nftOutput(cmd, cmd, true)));
    if (!doc) return fail(std::move(doc.error()).context(cmd));
    std::vector<std::pair<std::string, int64_t>> out;
    const json::Value* items = doc->find("nftables");
    for (const auto& item : items && items->isArray() ? items->asArray() : json::Array{}) {
        const json::Value* m = item.find("map");
        const json::Value* elems = m ? m->find("elem") : nullptr;
        if (!elems || !elems->isArray()) continue;
        for (const auto& e : elems->asArray()) {
            // [{"concat": ["127.0.0.1", 8080]}, data]
            if (!e.isArray() || e.asArray().empty()) continue;
            const json::Value* key = e.asArray()[0].find("concat");
            int64_t port = 0;
            if (key && key->isArray() && key->asArray().size() == 2 && key->asArray()[0].isString() &&
                key->asArray()[1].toInt64(port))
                out.emplace_back(key->asArray()[0].asString(), port);
        }
    }
    return out;
}

/// P's key in its map: "PORT", or "ADDRESS . PORT" for one host address.
std::string mapKey(const PortMapping& p) { return (p.hostIp ? p.hostIp->str() + " . " : "") + std::to_string(p.hostPort); }

/// The map that holds P, of KIND "ports" (one container) or "bal" (balanced):
/// "tcp_ports", "udp_addr_bal", ….
std::string mapName(const PortMapping& p, const char* kind) {
    return p.protocol + (p.hostIp ? "_addr_" : "_") + kind;
}

/// Whether P is published already, to IP: a second ADD of the same container.
bool publishedTo(const PortMapping& p, Ipv4 ip) {
    std::string key = mapKey(p);
    auto out = nftOutput("get element ip hull " + mapName(p, "ports") + " { " + key + " }", "get");
    return out && out->find(key + " : " + ip.str() + " . " + std::to_string(p.containerPort) + " }") != std::string::npos;
}

/// Who has P's host port already, as "on every address" or "on A, B"; "" when
/// nobody. BALANCED: P's own balanced entry does not count (a new backend list).
Result<std::string> holderOf(const PortMapping& p, bool balanced) {
    std::string port = std::to_string(p.hostPort);
    auto has = [&](const std::string& map) {
        return static_cast<bool>(runNft("get element ip hull " + map + " { " + port + " }\n", "get"));
    };
    if (has(p.protocol + "_ports") || ((!balanced || p.hostIp) && has(p.protocol + "_bal")))
        return std::string("on every address");
    std::string on;
    for (std::string kind : {"_addr_ports", "_addr_bal"}) {
        for (const auto& [addr, keyPort] : TRY(addressKeys(p.protocol + kind))) {
            if (keyPort != p.hostPort) continue;
            if (p.hostIp && addr != p.hostIp->str()) continue;
            if (balanced && kind == "_addr_bal" && p.hostIp) continue;  // our own
            on += (on.empty() ? "on " : ", ") + addr;
        }
    }
    return on;
}

/// P can be published: its host address is ours and nobody has the port (see holderOf).
Result<void> checkFree(const PortMapping& p, bool balanced) {
    if (p.hostIp && !isLocalAddress(*p.hostIp))
        return fail(Error::plain(EADDRNOTAVAIL, "publish " + formatPortMapping(p) + ": " + p.hostIp->str() +
                                                    " is not an address of this host"));
    if (auto by = TRY(holderOf(p, balanced)); !by.empty())
        return fail(Error::plain(EADDRINUSE, "publish " + formatPortMapping(p) + ": host port " +
                                                 std::to_string(p.hostPort) + "/" + p.protocol + " is already published " + by));
    return {};
}

/// Make the table and its chains unless it is there and up to date.
// The table's newest object: a table without it was made by an older hull, and is rebuilt.
constexpr const char* kNewestSet = "vipaddrs";

Result<void> ensureTable() {
    // Only (re)build the chains when the table is new: flushing them on every
    // container start would briefly drop NAT for the running ones.
    // The probe names the newest object, so a table made by an older hull is brought up to date.
    if (!runNft(std::string("list set ip hull ") + kNewestSet, "probe"))
        TRY(runNft(baseRulesetScript(), "create nftables table ip hull"));
    return {};
}

std::string balancedChain(const PortMapping& p) {
    return "bal_" + p.protocol + "_" + (p.hostIp ? p.hostIp->str() + "_" : "") + std::to_string(p.hostPort);
}

}  // namespace


// Overlay traffic skips conntrack ("notrack" at raw priority): the VXLAN
// packets themselves (host to host, never NATed), and container-to-container
// traffic between this host's subnet and a peer's ("remotes"). That is safe
// because no NATed flow can have a peer's container address at either end:
// a container reaching another host's published port is masqueraded on its
// own host first (the destination is no container subnet). It halves the
// per-packet cost of the overlay on 2 cores (scripts/bench-net).
std::string baseRulesetScript() {
    // "add" is idempotent for tables, chains, sets and maps; the rules are
    // only added by the flush-and-refill of the chains below, so running this
    // again yields the same ruleset, not duplicates.
    return R"(add table ip hull
add map ip hull tcp_ports { type inet_service : ipv4_addr . inet_service; }
add map ip hull udp_ports { type inet_service : ipv4_addr . inet_service; }
add map ip hull tcp_addr_ports { type ipv4_addr . inet_service : ipv4_addr . inet_service; }
add map ip hull udp_addr_ports { type ipv4_addr . inet_service : ipv4_addr . inet_service; }
add map ip hull tcp_bal { type inet_service : verdict; }
add map ip hull udp_bal { type inet_service : verdict; }
add map ip hull tcp_addr_bal { type ipv4_addr . inet_service : verdict; }
add map ip hull udp_addr_bal { type ipv4_addr . inet_service : verdict; }
add set ip hull subnets { type ipv4_addr; flags interval; auto-merge; }
add set ip hull remotes { type ipv4_addr; flags interval; auto-merge; }
add set ip hull masq { type ipv4_addr; flags interval; auto-merge; }
add map ip hull vips { type ipv4_addr : verdict; }
add set ip hull vipaddrs { type ipv4_addr; }
add chain ip hull prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain ip hull output { type nat hook output priority -100; policy accept; }
add chain ip hull postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain ip hull raw_prerouting { type filter hook prerouting priority raw; policy accept; }
add chain ip hull raw_output { type filter hook output priority raw; policy accept; }
flush chain ip hull raw_prerouting
flush chain ip hull raw_output
flush chain ip hull prerouting
flush chain ip hull output
flush chain ip hull postrouting
add rule ip hull prerouting fib daddr type local dnat ip to ip daddr . tcp dport map @tcp_addr_ports
add rule ip hull prerouting fib daddr type local dnat ip to ip daddr . udp dport map @udp_addr_ports
add rule ip hull prerouting fib daddr type local dnat ip to tcp dport map @tcp_ports
add rule ip hull prerouting fib daddr type local dnat ip to udp dport map @udp_ports
add rule ip hull prerouting fib daddr type local ip daddr . tcp dport vmap @tcp_addr_bal
add rule ip hull prerouting fib daddr type local ip daddr . udp dport vmap @udp_addr_bal
add rule ip hull prerouting fib daddr type local tcp dport vmap @tcp_bal
add rule ip hull prerouting fib daddr type local udp dport vmap @udp_bal
add rule ip hull output fib daddr type local dnat ip to ip daddr . tcp dport map @tcp_addr_ports
add rule ip hull output fib daddr type local dnat ip to ip daddr . udp dport map @udp_addr_ports
add rule ip hull output fib daddr type local dnat ip to tcp dport map @tcp_ports
add rule ip hull output fib daddr type local dnat ip to udp dport map @udp_ports
add rule ip hull output fib daddr type local ip daddr . tcp dport vmap @tcp_addr_bal
add rule ip hull output fib daddr type local ip daddr . udp dport vmap @udp_addr_bal
add rule ip hull output fib daddr type local tcp dport vmap @tcp_bal
add rule ip hull output fib daddr type local udp dport vmap @udp_bal
add rule ip hull prerouting ip daddr vmap @vips
add rule ip hull output ip daddr vmap @vips
add rule ip hull postrouting ip saddr 127.0.0.0/8 ip daddr @subnets masquerade
add rule ip hull postrouting ct status dnat oifname "hull.vx" ct original ip daddr @vipaddrs ip saddr @subnets accept
add rule ip hull postrouting ct status dnat oifname "hull.vx" masquerade
add rule ip hull postrouting ct status dnat ip saddr @masq ip daddr @masq masquerade
add rule ip hull postrouting ip saddr @masq ip daddr != @subnets masquerade
add rule ip hull raw_prerouting udp dport 4789 notrack
add rule ip hull raw_prerouting ip saddr @remotes ip daddr @subnets notrack
add rule ip hull raw_prerouting ip saddr @subnets ip daddr @remotes notrack
add rule ip hull raw_output udp dport 4789 notrack
add rule ip hull raw_output ip daddr @remotes notrack
)";
}

std::string portsScript(const std::vector<PortMapping>& ports, Ipv4 ip, bool add) {
    std::string out;
    for (const auto& p : ports) {
        std::string map = mapName(p, "ports");
        std::string key = mapKey(p);
        if (add)
            out += "add element ip hull " + map + " { " + key + " : " + ip.str() + " . " +
                   std::to_string(p.containerPort) + " }\n";
        else
            out += "delete element ip hull " + map + " { " + key + " }\n";
    }
    return out;
}

Result<void> ensureNatTable(const Cidr& subnet, std::optional<bool> masquerade) {
    Cidr net{subnet.network(), subnet.prefix};
    // Known as a container subnet in any case (no masquerade towards it); its own
    // outbound traffic masqueraded only when the network asks for it.
    // First the newest set touched and left as it was (in one transaction: atomic), so
    // that a table of an older hull fails the script and is brought up to date.
    std::string script = std::string("add element ip hull ") + kNewestSet + " { 0.0.0.0 }\ndelete element ip hull " +
                         kNewestSet + " { 0.0.0.0 }\nadd element ip hull subnets { " + net.str() + " }\n";
    if (masquerade && *masquerade) script += "add element ip hull masq { " + net.str() + " }\n";
    // One nft transaction when the table is there, as it is for every container but a
    // network's first: each libnftables call first reads the kernel's ruleset into its
    // cache, all of it, so in a host's namespace with a large ruleset (a firewall, Docker)
    // a call costs far more than here. hull-cni's ADD made three (scripts/bench-net).
    if (!runNft(script, "subnet " + net.str())) {
        TRY(ensureTable());
        TRY(runNft(script, "subnet " + net.str()));
    }
    if (masquerade && !*masquerade)
        (void)runNft("delete element ip hull masq { " + net.str() + " }\n", "no masquerade");
    return {};
}

Result<void> publishPorts(const std::vector<PortMapping>& ports, Ipv4 ip) {
    if (ports.empty()) return {};
    TRY(ensureTable());  // gone (a reboot) or made by an older hull
    for (const auto& p : ports)
        if (!publishedTo(p, ip)) TRY(checkFree(p, false));
    // One transaction: all ports or none.
    auto r = runNft(portsScript(ports, ip, true), "publish ports");
    if (!r && r.error().message().find("File exists") != std::string::npos) {
        std::string list;
        for (const auto& p : ports) list += (list.empty() ? "" : ", ") + formatPortMapping(p);
        return fail(Error::plain(EADDRINUSE, "publish " + list + ": a host port is already published"));
    }
    return r;
}

std::string balancedScript(const PortMapping& p, const std::vector<Ipv4>& backends, bool add) {
    std::string chain = balancedChain(p);
    std::string map = mapName(p, "bal");
    // The chain's counter is an object of its own: it outlives the flush that
    // replaces the rule when the backends change. (Added before it is deleted:
    // a table made by an older hull has none.)
    const std::string counter = "counter ip hull " + chain + "_n\n";
    if (!add)
        return "delete element ip hull " + map + " { " + mapKey(p) + " }\ndelete chain ip hull " + chain + "\nadd " + counter +
               "delete " + counter;
    std::string out = "add " + counter + "add chain ip hull " + chain + "\nflush chain ip hull " + chain + "\n";
    // In a nat chain only a connection's first packet is seen: it counts new connections.
    const std::string count = " counter name \"" + chain + "_n\"";
    if (!backends.empty()) {
        out += "add rule ip hull " + chain + count + " meta l4proto " + p.protocol + " dnat ip to numgen random mod " +
               std::to_string(backends.size()) + " map { ";
        for (size_t i = 0; i < backends.size(); ++i)
            out += (i ? ", " : "") + std::to_string(i) + " : " + backends[i].str() + " . " + std::to_string(p.containerPort);
        out += " }\n";
    } else {
        // Nothing behind the port: dropped, not handed to whatever listens on the host.
        out += "add rule ip hull " + chain + count + " drop\n";
    }
    return out + "add element ip hull " + map + " { " + mapKey(p) + " : goto " + chain + " }\n";
}

Result<void> publishBalanced(const PortMapping& p, const std::vector<Ipv4>& backends) {
    TRY(ensureTable());
    TRY(checkFree(p, true));
    return runNft(balancedScript(p, backends, true), "publish " + formatPortMapping(p));
}

Result<void> unpublishBalanced(const PortMapping& p) {
    auto r = runNft(balancedScript(p, {}, false), "unpublish " + formatPortMapping(p));
    if (!r && nftMissing(r.error())) return {};
    return r;
}

Result<void> unpublishPorts(const std::vector<PortMapping>& ports) {
    // One by one: a missing element must not keep the others.
    for (const auto& p : ports) {
        auto r = runNft(portsScript({p}, {}, false), "unpublish " + formatPortMapping(p));
        if (!r) log::debugf("netns: %s", r.error().message().c_str());
    }
    return {};
}

Result<void> addClusterSubnet(const Cidr& subnet, bool untracked) {
    Cidr net{subnet.network(), subnet.prefix};
    return runNft("add element ip hull subnets { " + net.str() + " }\n" +
                      (untracked ? "add element ip hull remotes { " + net.str() + " }\n" : std::string()),
                  "cluster subnet " + net.str());
}

std::string vipChain(Ipv4 vip) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", vip.value);
    return std::string("vip_") + hex;
}

std::string vipScript(Ipv4 vip, const std::vector<Ipv4>& backends, bool add) {
    const std::string chain = vipChain(vip);
    // vipaddrs: removal adds first, so that a member already gone fails nothing.
    const std::string member = "element ip hull vipaddrs { " + vip.str() + " }\n";
    const std::string counter = "counter ip hull " + chain + "_n\n";  // as balancedScript's
    if (!add)
        return "add " + member + "delete " + member + "delete element ip hull vips { " + vip.str() +
               " }\ndelete chain ip hull " + chain + "\nadd " + counter + "delete " + counter;
    std::string out = "add " + counter + "add chain ip hull " + chain + "\nflush chain ip hull " + chain + "\n";
    const std::string count = " counter name \"" + chain + "_n\"";
    if (!backends.empty()) {
        // The address only: VIP:PORT goes to the same PORT of the replica.
        out += "add rule ip hull " + chain + count + " dnat ip to numgen random mod " + std::to_string(backends.size()) + " map { ";
        for (size_t i = 0; i < backends.size(); ++i) out += (i ? ", " : "") + std::to_string(i) + " : " + backends[i].str();
        out += " }\n";
    } else {
        out += "add rule ip hull " + chain + count + " reject\n";  // no replica ready: refused at once, not left to time out
    }
    return out + "add " + member + "add element ip hull vips { " + vip.str() + " : goto " + chain + " }\n";
}

Result<void> publishVip(Ipv4 vip, const std::vector<Ipv4>& backends) {
    TRY(ensureTable());
    return runNft(vipScript(vip, backends, true), "service address " + vip.str());
}

Result<void> unpublishVip(Ipv4 vip) {
    auto r = runNft(vipScript(vip, {}, false), "service address " + vip.str());
    if (!r && nftMissing(r.error())) return {};
    return r;
}

Result<std::vector<uint64_t>> newConnections(const std::vector<ConnectionGroup>& groups) {
    std::vector<uint64_t> sums(groups.size(), 0);
    if (groups.empty()) return sums;
    auto out = nftOutput("list counters table ip hull", "connection counters", true);
    if (!out) {
        if (nftMissing(out.error())) return sums;  // no table: nothing published yet
        return fail(std::move(out).error());
    }
    auto doc = json::Value::parse(*out);
    if (!doc) return fail(std::move(doc).error().context("connection counters: nft's JSON"));
    std::map<std::string, uint64_t> counted;
    if (const json::Value* items = doc->find("nftables"); items && items->isArray())
        for (const auto& item : items->asArray())
            if (const json::Value* c = item.find("counter")) {
                uint64_t n = 0;
                if (const json::Value* packets = c->find("packets")) packets->toUint64(n);
                counted[json::stringOf(*c, "name")] = n;
            }
    auto of = [&](const std::string& name) {
        auto it = counted.find(name + "_n");
        return it == counted.end() ? uint64_t(0) : it->second;
    };
    for (size_t i = 0; i < groups.size(); ++i) {
        for (const auto& p : groups[i].ports) sums[i] += of(balancedChain(p));
        if (groups[i].vip) sums[i] += of(vipChain(*groups[i].vip));
    }
    return sums;
}

Result<void> removeClusterSubnet(const Cidr& subnet) {
    Cidr net{subnet.network(), subnet.prefix};
    for (const char* set : {"subnets", "remotes"}) {
        auto r = runNft(std::string("delete element ip hull ") + set + " { " + net.str() + " }\n",
                        "cluster subnet " + net.str());
        if (!r) log::debugf("netns: %s", r.error().message().c_str());  // already gone
    }
    return {};
}

Result<void> dropNatTable() {
    auto r = runNft("delete table ip hull\n", "delete table ip hull");
    if (!r && nftMissing(r.error())) return {};
    return r;
}

}  // namespace hull::netns
