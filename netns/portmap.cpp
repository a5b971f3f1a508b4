#include "netns/portmap.hpp"

#include <nftables/libnftables.h>

#include <charconv>
#include <memory>

#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::netns {

namespace {

struct CtxDel {
    void operator()(nft_ctx* c) const { nft_ctx_free(c); }
};

/// Run an nft script; errors carry nft's own message.
Result<void> runNft(const std::string& script, const std::string& what) {
    std::unique_ptr<nft_ctx, CtxDel> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
    if (!ctx) return fail(Error::plain(ENOMEM, what + ": nft_ctx_new failed"));
    nft_ctx_buffer_output(ctx.get());
    nft_ctx_buffer_error(ctx.get());
    int rc = nft_run_cmd_from_buffer(ctx.get(), script.c_str());
    if (rc != 0) {
        std::string err = sys::trim(nft_ctx_get_error_buffer(ctx.get()));
        return fail(Error::plain(EINVAL, what + ": " + (err.empty() ? "nft failed" : err)));
    }
    return {};
}

Result<uint16_t> port(const std::string& s, const std::string& whole) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535)
        return failInvalid("port mapping \"" + whole + "\": \"" + s + "\" is not a port (1-65535)");
    return uint16_t(v);
}

}  // namespace

Result<PortMapping> parsePortMapping(const std::string& s) {
    PortMapping p;
    std::string spec = s;
    if (auto slash = spec.find('/'); slash != std::string::npos) {
        p.protocol = spec.substr(slash + 1);
        spec = spec.substr(0, slash);
        if (p.protocol != "tcp" && p.protocol != "udp")
            return failInvalid("port mapping \"" + s + "\": protocol must be tcp or udp");
    }
    auto colon = spec.find(':');
    if (colon == std::string::npos) {
        p.hostPort = p.containerPort = TRY(port(spec, s));
    } else {
        if (spec.find(':', colon + 1) != std::string::npos)
            return failInvalid("port mapping \"" + s + "\": expected HOST:CONTAINER[/PROTOCOL]");
        p.hostPort = TRY(port(spec.substr(0, colon), s));
        p.containerPort = TRY(port(spec.substr(colon + 1), s));
    }
    return p;
}

std::string formatPortMapping(const PortMapping& p) {
    return std::to_string(p.hostPort) + ":" + std::to_string(p.containerPort) + "/" + p.protocol;
}

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
add set ip hull subnets { type ipv4_addr; flags interval; auto-merge; }
add set ip hull remotes { type ipv4_addr; flags interval; auto-merge; }
add set ip hull masq { type ipv4_addr; flags interval; auto-merge; }
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
add rule ip hull prerouting fib daddr type local dnat ip to tcp dport map @tcp_ports
add rule ip hull prerouting fib daddr type local dnat ip to udp dport map @udp_ports
add rule ip hull output fib daddr type local dnat ip to tcp dport map @tcp_ports
add rule ip hull output fib daddr type local dnat ip to udp dport map @udp_ports
add rule ip hull postrouting ip saddr 127.0.0.0/8 ip daddr @subnets masquerade
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
        std::string map = p.protocol + "_ports";
        if (add)
            out += "add element ip hull " + map + " { " + std::to_string(p.hostPort) + " : " + ip.str() + " . " +
                   std::to_string(p.containerPort) + " }\n";
        else
            out += "delete element ip hull " + map + " { " + std::to_string(p.hostPort) + " }\n";
    }
    return out;
}

Result<void> ensureNatTable(const Cidr& subnet, std::optional<bool> masquerade) {
    // Only (re)build the chains when the table is new: flushing them on every
    // container start would briefly drop NAT for the running ones.
    // The probe names the newest chain, so a table made by an older hull is brought up to date.
    static const char kProbe[] = "list set ip hull masq";
    bool exists = static_cast<bool>(runNft(kProbe, "probe"));
    if (!exists) TRY(runNft(baseRulesetScript(), "create nftables table ip hull"));
    Cidr net{subnet.network(), subnet.prefix};
    // Known as a container subnet in any case (no masquerade towards it); its own
    // outbound traffic masqueraded only when the network asks for it.
    TRY(runNft("add element ip hull subnets { " + net.str() + " }\n", "subnet " + net.str()));
    if (masquerade && *masquerade)
        TRY(runNft("add element ip hull masq { " + net.str() + " }\n", "masquerade " + net.str()));
    else if (masquerade)
        (void)runNft("delete element ip hull masq { " + net.str() + " }\n", "no masquerade");
    return {};
}

Result<void> publishPorts(const std::vector<PortMapping>& ports, Ipv4 ip) {
    if (ports.empty()) return {};
    // One transaction: all ports or none.
    auto r = runNft(portsScript(ports, ip, true), "publish ports");
    if (!r && r.error().message().find("File exists") != std::string::npos) {
        std::string list;
        for (const auto& p : ports) list += (list.empty() ? "" : ", ") + formatPortMapping(p);
        return fail(Error::plain(EADDRINUSE, "publish " + list + ": a host port is already published"));
    }
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

Result<void> addClusterSubnet(const Cidr& subnet) {
    Cidr net{subnet.network(), subnet.prefix};
    return runNft("add element ip hull subnets { " + net.str() + " }\nadd element ip hull remotes { " + net.str() +
                      " }\n",
                  "cluster subnet " + net.str());
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
    if (!r && r.error().message().find("No such file") != std::string::npos) return {};
    return r;
}

}  // namespace hull::netns
