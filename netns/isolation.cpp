#include "netns/isolation.hpp"

#include "netns/nft.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

namespace hull::netns {

namespace {

std::string network(const Cidr& c) { return Cidr{c.network(), c.prefix}.str(); }

/// What makes the tables and G's sets: "add" is idempotent for all three.
std::string setsScript(const std::vector<std::string>& groups) {
    std::string out = "add table ip hull\nadd table bridge hull\n";
    for (const auto& g : groups)
        out += "add set ip hull l_" + g + " { type ipv4_addr; }\nadd set ip hull r_" + g +
               " { type ipv4_addr; }\nadd set bridge hull l_" + g + " { type ipv4_addr; }\n";
    return out;
}

}  // namespace

std::string isolationScript(const IsolationScope& scope, const std::vector<std::string>& groups) {
    const std::string cluster = network(scope.cluster), local = network(scope.local);
    // A node's VTEP holds its subnet's network address (overlay.hpp): the host
    // bits of the node prefix all zero.
    const std::string hostBits = Ipv4{~scope.local.mask()}.str();
    std::string out = setsScript(groups);
    out += "add chain ip hull isolate { type filter hook forward priority filter; policy accept; }\n"
           "flush chain ip hull isolate\n"
           "add rule ip hull isolate ip saddr != " + cluster + " accept\n"
           "add rule ip hull isolate ip daddr != " + cluster + " accept\n"
           "add rule ip hull isolate ct state established,related accept\n"
           // A published port is public: what was DNATed from an address other than a service's.
           "add rule ip hull isolate ct status dnat ct original ip daddr != " + network(scope.services) + " accept\n"
           "add rule ip hull isolate ip saddr & " + hostBits + " == 0.0.0.0 accept\n";
    for (const auto& g : groups)
        out += "add rule ip hull isolate ip saddr @l_" + g + " ip daddr @l_" + g + " accept\n"
               "add rule ip hull isolate ip saddr @l_" + g + " ip daddr @r_" + g + " accept\n"
               "add rule ip hull isolate ip saddr @r_" + g + " ip daddr @l_" + g + " accept\n";
    out += "add rule ip hull isolate counter drop\n";
    // Bridged: only this subnet's containers meet here (ARP and the like pass).
    // Bridged: only this subnet's containers meet here (ARP and the like
    // pass). Not when br_netfilter hands bridged IPv4 to the ip hooks (Docker
    // loads it): the chain above sees that traffic then, and a connection
    // DNATed to a container of the same bridge is bridged, not routed, which
    // this chain could not tell (no conntrack in the bridge family here).
    out += "add chain bridge hull isolate { type filter hook forward priority filter; policy accept; }\n"
           "flush chain bridge hull isolate\n";
    if (!scope.bridgedThroughIp) {
        out += "add rule bridge hull isolate ether type != ip accept\n";
        for (const auto& g : groups) out += "add rule bridge hull isolate ip saddr @l_" + g + " ip daddr @l_" + g + " accept\n";
        out += "add rule bridge hull isolate ip saddr " + local + " ip daddr " + local + " counter drop\n";
    }
    return out;
}

bool bridgedThroughIp() {
    auto v = sys::readFile("/proc/sys/net/bridge/bridge-nf-call-iptables");
    return v && sys::trim(*v) == "1";
}

Result<void> ensureIsolation(const IsolationScope& scope, const std::vector<std::string>& groups) {
    return runNft(isolationScript(scope, groups), "isolation");
}

std::string localMemberScript(Ipv4 ip, const std::vector<std::string>& groups, bool add) {
    std::string out = setsScript(groups);
    for (const auto& g : groups)
        for (const char* family : {"ip", "bridge"}) {
            const std::string element = std::string(family) + " hull l_" + g + " { " + ip.str() + " }\n";
            // Removal adds first: deleting a member that is not there would fail the whole script.
            out += "add element " + element;
            if (!add) out += "delete element " + element;
        }
    return out;
}

Result<void> setLocalMember(Ipv4 ip, const std::vector<std::string>& groups, bool add) {
    if (groups.empty()) return {};
    return runNft(localMemberScript(ip, groups, add), std::string(add ? "joining" : "leaving") + " networks");
}

std::string remoteMembersScript(const std::map<std::string, std::vector<Ipv4>>& members) {
    std::vector<std::string> groups;
    for (const auto& [g, ips] : members) groups.push_back(g);
    std::string out = setsScript(groups);
    for (const auto& [g, ips] : members) {
        out += "flush set ip hull r_" + g + "\n";
        if (ips.empty()) continue;
        out += "add element ip hull r_" + g + " { ";
        for (size_t i = 0; i < ips.size(); ++i) out += (i ? ", " : "") + ips[i].str();
        out += " }\n";
    }
    return out;
}

Result<void> setRemoteMembers(const std::map<std::string, std::vector<Ipv4>>& members) {
    if (members.empty()) return {};
    return runNft(remoteMembersScript(members), "remote network members");
}

Result<void> dropIsolation() {
    // The sets of "ip hull" are found by name: the NAT part of the table stays.
    auto listed = nftOutput("list sets ip\n", "isolation", true);
    std::string script;
    if (listed) {
        auto doc = json::Value::parse(*listed);
        if (const json::Value* all = doc ? doc->find("nftables") : nullptr; all && all->isArray())
            for (const auto& item : all->asArray())
                if (const json::Value* set = item.find("set")) {
                    std::string table = json::stringOf(*set, "table"), name = json::stringOf(*set, "name");
                    if (table == "hull" && (name.rfind("l_", 0) == 0 || name.rfind("r_", 0) == 0))
                        script += "delete set ip hull " + name + "\n";
                }
    }
    // The chain first: the sets cannot go while its rules name them.
    for (const std::string& cmd : {std::string("delete chain ip hull isolate\n"), script, std::string("delete table bridge hull\n")}) {
        if (cmd.empty()) continue;
        auto r = runNft(cmd, "isolation");
        if (!r && !nftMissing(r.error())) return r;
    }
    return {};
}

}  // namespace hull::netns
