// hull-cni: hull's bridge networking as a CNI 1.0 plugin, so podman, containerd
// and other CNI users get the same bridge, IPAM and port publishing as `hull run`.
//
// Network configuration (plugin fields besides cniVersion, name, type):
//   "bridge": "hull0", "subnet": "10.88.0.0/16" (default: a free one, kept),
//   "subnet6": "fd00:88::/64" (dual-stack; default none, or the one kept),
//   "mtu": 1500, "ipMasq": true, "stateDir": "/var/lib/hull" (default
//   $HULL_STATE_DIR or /var/lib/hull), and the "portMappings" capability
//   ("runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp",
//   "hostIP": "127.0.0.1"}]}; hostIP is optional, IPv4 only).
// The subnets may also come in host-local's form, one range set per family:
//   "ipam": {"ranges": [[{"subnet": "10.22.0.0/16"}], [{"subnet": "fd00:22::/64"}]],
//            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}
// IPAM itself is hull's (other ipam keys, such as "type", are ignored). A
// range's "gateway", if given, must be the subnet's first address (the
// bridge's). The IPv4 default route is always installed; the IPv6 one unless
// "routes" is given without "::/0".
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "netns/netlink.hpp"
#include "netns/network.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

using namespace hull;
using json::Value;

namespace {

constexpr const char* kVersion = "1.0.0";
const char* kSupported[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};

// CNI spec "Error": well-known codes.
enum Code {
    kIncompatibleVersion = 1,
    kUnsupportedField = 2,
    kUnknownContainer = 3,
    kInvalidEnv = 4,
    kIoFailure = 5,
    kDecodeFailure = 6,
    kInvalidConfig = 7,
    kTryAgainLater = 11,
};

int fail(int code, const std::string& msg, const std::string& details = "") {
    Value e = Value::object();
    e.set("cniVersion", kVersion);
    e.set("code", int64_t(code));
    e.set("msg", msg);
    if (!details.empty()) e.set("details", details);
    printf("%s\n", e.dump().c_str());
    return 1;
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

std::string str(const Value& obj, const char* key, const std::string& def = "") { return json::stringOf(obj, key, def); }

struct Config {
    std::string cniVersion, name;
    std::string stateDir;
    netns::NetworkConfig net;
    bool defaultRoute6 = true;
    std::vector<netns::PortMapping> ports;
    Value prevResult;
};

/// host-local's "ranges" and "routes" in hull's terms: at most one subnet per
/// family, its gateway the subnet's first address, only default routes.
/// False after printing the CNI error (RC is its exit code).
bool parseIpam(const Value& ipam, Config& c, int& rc) {
    auto bad = [&](int code, const std::string& msg) {
        rc = fail(code, msg);
        return false;
    };
    bool have4 = false, have6 = false;
    if (const Value* ranges = ipam.find("ranges")) {
        if (!ranges->isArray()) return bad(kInvalidConfig, "ipam.ranges: expected an array of range sets");
        for (size_t i = 0; i < ranges->asArray().size(); ++i) {
            const Value& set = ranges->asArray()[i];
            std::string where = "ipam.ranges[" + std::to_string(i) + "]";
            if (!set.isArray() || set.asArray().empty() || !set.asArray()[0].isObject())
                return bad(kInvalidConfig, where + ": expected an array of ranges");
            if (set.asArray().size() > 1)
                return bad(kUnsupportedField, where + ": one range per set (one subnet per family)");
            const Value& r = set.asArray()[0];
            where += "[0]";
            for (const char* k : {"rangeStart", "rangeEnd"})
                if (r.find(k)) return bad(kUnsupportedField, where + "." + k + ": address ranges are not supported");
            std::string subnet = str(r, "subnet"), gateway = str(r, "gateway");
            if (auto v4 = netns::Cidr::parse(subnet)) {
                if (have4 || (c.net.subnet && *c.net.subnet != *v4))
                    return bad(kInvalidConfig, where + ".subnet: a second IPv4 subnet");
                std::string first = v4->firstHost().str();
                if (!gateway.empty() && gateway != first)
                    return bad(kUnsupportedField, where + ".gateway: the gateway is the subnet's first address (" + first + ")");
                c.net.subnet = *v4;
                have4 = true;
            } else if (auto v6 = netns::Cidr6::parse(subnet)) {
                if (have6 || (c.net.subnet6 && *c.net.subnet6 != *v6))
                    return bad(kInvalidConfig, where + ".subnet: a second IPv6 subnet");
                auto first = v6->firstHost();
                auto gw = netns::Ipv6::parse(gateway);
                if (!gateway.empty() && (!gw || *gw != first))
                    return bad(kUnsupportedField, where + ".gateway: the gateway is the subnet's first address (" + first.str() + ")");
                c.net.subnet6 = *v6;
                have6 = true;
            } else {
                return bad(kInvalidConfig, where + ".subnet: \"" + subnet + "\" is not an IPv4 or IPv6 CIDR");
            }
        }
    }
    if (const Value* routes = ipam.find("routes")) {
        if (!routes->isArray()) return bad(kInvalidConfig, "ipam.routes: expected an array");
        c.defaultRoute6 = false;
        for (size_t i = 0; i < routes->asArray().size(); ++i) {
            const Value& r = routes->asArray()[i];
            std::string where = "ipam.routes[" + std::to_string(i) + "]", dst = str(r, "dst");
            if (r.find("gw")) return bad(kUnsupportedField, where + ".gw: routes go via the bridge");
            auto v4 = netns::Cidr::parse(dst);
            auto v6 = netns::Cidr6::parse(dst);
            if (v6 && v6->prefix == 0) {
                if (!c.net.subnet6) return bad(kInvalidConfig, where + ": ::/0 needs an IPv6 subnet");
                c.defaultRoute6 = true;
            } else if (!v4 || v4->prefix != 0) {
                return bad(kUnsupportedField, where + ".dst: only default routes (0.0.0.0/0, ::/0) are supported");
            }
        }
    }
    return true;
}

/// Parse the network configuration; on error returns the CNI error (already printed).
std::optional<Config> parseConfig(const std::string& text, int& rc) {
    auto doc = Value::parse(text);
    if (!doc || !doc->isObject()) {
        rc = fail(kDecodeFailure, "cannot decode the network configuration",
                  doc ? "expected a JSON object" : doc.error().message());
        return std::nullopt;
    }
    Config c;
    c.cniVersion = str(*doc, "cniVersion", kVersion);
    bool known = false;
    for (const char* v : kSupported) known |= c.cniVersion == v;
    if (!known) {
        rc = fail(kIncompatibleVersion, "cniVersion " + c.cniVersion + " is not supported", "supported: 0.3.0-1.0.0");
        return std::nullopt;
    }
    c.name = str(*doc, "name");
    if (c.name.empty()) {
        rc = fail(kInvalidConfig, "the network configuration has no name");
        return std::nullopt;
    }
    c.net.name = c.name;
    c.net.bridge = str(*doc, "bridge", "hull0");
    if (auto s = str(*doc, "subnet"); !s.empty()) {
        auto cidr = netns::Cidr::parse(s);
        if (!cidr) {
            rc = fail(kInvalidConfig, "subnet: " + cidr.error().message());
            return std::nullopt;
        }
        c.net.subnet = *cidr;
    }
    if (auto s = str(*doc, "subnet6"); !s.empty()) {
        auto cidr = netns::Cidr6::parse(s);
        if (!cidr) {
            rc = fail(kInvalidConfig, "subnet6: " + cidr.error().message());
            return std::nullopt;
        }
        c.net.subnet6 = *cidr;
    }
    if (const Value* ipam = doc->find("ipam"); ipam && ipam->isObject() && !parseIpam(*ipam, c, rc))
        return std::nullopt;
    if (const Value* m = doc->find("mtu")) {
        int64_t mtu = 0;
        if (!m->toInt64(mtu) || mtu < 576 || mtu > 65535) {
            rc = fail(kInvalidConfig, "mtu: expected an integer between 576 and 65535");
            return std::nullopt;
        }
        c.net.mtu = int(mtu);
    }
    if (const Value* m = doc->find("ipMasq"); m && m->isBool()) c.net.masquerade = m->asBool();
    c.stateDir = str(*doc, "stateDir", env("HULL_STATE_DIR").empty() ? "/var/lib/hull" : env("HULL_STATE_DIR"));
    if (const Value* rt = doc->find("runtimeConfig"); rt && rt->isObject()) {
        if (const Value* pm = rt->find("portMappings"); pm && pm->isArray()) {
            for (size_t i = 0; i < pm->asArray().size(); ++i) {
                const Value& p = pm->asArray()[i];
                int64_t host = 0, ctr = 0;
                const Value* h = p.find("hostPort");
                const Value* cp = p.find("containerPort");
                std::string proto = str(p, "protocol", "tcp");
                if (!h || !cp || !h->toInt64(host) || !cp->toInt64(ctr) || host < 1 || host > 65535 || ctr < 1 ||
                    ctr > 65535 || (proto != "tcp" && proto != "udp")) {
                    rc = fail(kInvalidConfig, "runtimeConfig.portMappings[" + std::to_string(i) +
                                                  "]: expected hostPort and containerPort (1-65535) and protocol tcp or udp");
                    return std::nullopt;
                }
                std::optional<netns::Ipv4> hostIp;
                if (std::string ip = str(p, "hostIP"); !ip.empty()) {
                    hostIp = netns::Ipv4::parse(ip);
                    if (!hostIp) {
                        rc = fail(kUnsupportedField, "runtimeConfig.portMappings[" + std::to_string(i) + "].hostIP: \"" +
                                                         ip + "\" is not an IPv4 address (IPv6 publishing is not supported)");
                        return std::nullopt;
                    }
                    if (hostIp->value == 0) hostIp.reset();  // 0.0.0.0: every address
                }
                c.ports.push_back({uint16_t(host), uint16_t(ctr), proto, hostIp});
            }
        }
    }
    if (const Value* prev = doc->find("prevResult")) c.prevResult = *prev;
    return c;
}

std::string resultJson(const Config& c, const netns::Attachment& at, const std::string& bridgeMac,
                       const std::string& netnsPath, const std::string& ifname) {
    Value ifaces = Value::array();
    // Keep interfaces (and ips) of earlier plugins in the chain: ours are appended.
    if (c.prevResult.isObject())
        if (const Value* prev = c.prevResult.find("interfaces"); prev && prev->isArray())
            for (const auto& i : prev->asArray()) ifaces.push(i);
    int64_t base = int64_t(ifaces.asArray().size());
    Value br = Value::object();
    br.set("name", at.bridge);
    br.set("mac", bridgeMac);
    ifaces.push(br);
    Value veth = Value::object();
    veth.set("name", at.alloc.hostVeth);
    ifaces.push(veth);
    Value eth = Value::object();
    eth.set("name", ifname);
    eth.set("mac", at.mac);
    eth.set("sandbox", netnsPath);
    ifaces.push(eth);

    Value ips = Value::array();
    if (c.prevResult.isObject())
        if (const Value* prev = c.prevResult.find("ips"); prev && prev->isArray())
            for (const auto& i : prev->asArray()) ips.push(i);
    Value ip = Value::object();
    if (c.cniVersion < "1.0.0") ip.set("version", "4");  // 0.3.x/0.4.0 results carry it
    ip.set("address", at.address.str());
    ip.set("gateway", at.gateway.str());
    ip.set("interface", base + 2);
    ips.push(ip);
    if (at.address6) {
        Value ip6 = Value::object();
        if (c.cniVersion < "1.0.0") ip6.set("version", "6");
        ip6.set("address", at.address6->str());
        ip6.set("gateway", at.gateway6->str());
        ip6.set("interface", base + 2);
        ips.push(ip6);
    }

    Value routes = Value::array();
    Value def = Value::object();
    def.set("dst", "0.0.0.0/0");
    routes.push(def);
    if (at.address6 && c.defaultRoute6) {
        Value def6 = Value::object();
        def6.set("dst", "::/0");
        routes.push(def6);
    }

    Value out = Value::object();
    out.set("cniVersion", c.cniVersion);
    out.set("interfaces", ifaces);
    out.set("ips", ips);
    out.set("routes", routes);
    out.set("dns", Value::object());
    return out.dump(true);
}

int cmdAdd(const Config& c, const std::string& id, const std::string& netnsPath, const std::string& ifname) {
    auto net = netns::Network::ensure(c.stateDir, c.net);
    if (!net) return fail(kIoFailure, "network " + c.name + ": " + net.error().message());
    auto at = net->attach({id, netnsPath, ifname, c.ports, c.defaultRoute6});
    if (!at) {
        int code = at.error().errnum() == ENOENT ? kUnknownContainer : at.error().errnum() == ENOSPC ? kTryAgainLater
                                                                                                       : kIoFailure;
        return fail(code, "add " + id + " to " + c.name + ": " + at.error().message());
    }
    auto nl = netns::Netlink::open();
    std::string bridgeMac = nl ? nl->macOf(at->bridge).value_or("") : "";
    printf("%s\n", resultJson(c, *at, bridgeMac, netnsPath, ifname).c_str());
    return 0;
}

int cmdDel(const Config& c, const std::string& id, const std::string& ifname) {
    // DEL must succeed when there is nothing to delete (spec: "should not return an error").
    auto net = netns::Network::load(c.stateDir, c.name);
    if (!net) return 0;
    auto r = net->detach(id, ifname);
    if (!r) return fail(kIoFailure, "del " + id + " from " + c.name + ": " + r.error().message());
    return 0;
}

int cmdCheck(const Config& c, const std::string& id, const std::string& netnsPath, const std::string& ifname) {
    auto net = netns::Network::load(c.stateDir, c.name);
    if (!net) return fail(kInvalidConfig, "check: " + net.error().message());
    auto all = net->ipam().list();
    if (!all) return fail(kIoFailure, "check: " + all.error().message());
    const netns::Allocation* mine = nullptr;
    for (const auto& a : *all)
        if (a.id == id && a.ifname == ifname) mine = &a;
    if (!mine) return fail(kUnknownContainer, "check: " + id + " has no address on " + c.name);
    auto fd = sys::openFile(netnsPath, O_RDONLY);
    if (!fd) return fail(kUnknownContainer, "check: " + fd.error().message());
    auto inside = netns::Netlink::openIn(fd->get());
    if (!inside) return fail(kIoFailure, "check: " + inside.error().message());
    auto addrs = inside->addresses(ifname);
    if (!addrs) return fail(kIoFailure, "check: " + addrs.error().message());
    netns::Cidr want{mine->ip, net->subnet().prefix};
    if (std::find(addrs->begin(), addrs->end(), want) == addrs->end())
        return fail(kIoFailure, "check: " + ifname + " in " + netnsPath + " does not have " + want.str());
    if (!net->subnet6()) return 0;
    if (!mine->ip6) return fail(kUnknownContainer, "check: " + id + " has no IPv6 address on " + c.name);
    auto addrs6 = inside->addresses6(ifname);
    if (!addrs6) return fail(kIoFailure, "check: " + addrs6.error().message());
    netns::Cidr6 want6{*mine->ip6, net->subnet6()->prefix};
    if (std::find(addrs6->begin(), addrs6->end(), want6) == addrs6->end())
        return fail(kIoFailure, "check: " + ifname + " in " + netnsPath + " does not have " + want6.str());
    return 0;
}

}  // namespace

int main() {
    log::configure("", log::Format::Text, !env("HULL_DEBUG").empty());
    std::string cmd = env("CNI_COMMAND");
    if (cmd == "VERSION") {
        Value v = Value::object();
        v.set("cniVersion", kVersion);
        Value list = Value::array();
        for (const char* s : kSupported) list.push(s);
        v.set("supportedVersions", list);
        printf("%s\n", v.dump().c_str());
        return 0;
    }
    if (cmd.empty()) return fail(kInvalidEnv, "CNI_COMMAND is not set (hull-cni is a CNI plugin: see the CNI spec)");
    if (cmd != "ADD" && cmd != "DEL" && cmd != "CHECK") return fail(kInvalidEnv, "unknown CNI_COMMAND " + cmd);
    std::string id = env("CNI_CONTAINERID"), netnsPath = env("CNI_NETNS"), ifname = env("CNI_IFNAME");
    if (id.empty()) return fail(kInvalidEnv, "CNI_CONTAINERID is not set");
    if (ifname.empty()) return fail(kInvalidEnv, "CNI_IFNAME is not set");
    if (cmd != "DEL" && netnsPath.empty()) return fail(kInvalidEnv, "CNI_NETNS is not set");

    auto input = sys::readFd(0);
    if (!input) return fail(kIoFailure, "read the network configuration: " + input.error().message());
    int rc = 0;
    auto c = parseConfig(*input, rc);
    if (!c) return rc;
    if (cmd == "ADD") return cmdAdd(*c, id, netnsPath, ifname);
    if (cmd == "DEL") return cmdDel(*c, id, ifname);
    return cmdCheck(*c, id, netnsPath, ifname);
}
