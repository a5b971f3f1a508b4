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

#include "netns/cni_config.hpp"
#include "netns/netlink.hpp"
#include "netns/network.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

using namespace hull;
using json::Value;

namespace {

using namespace netns::cni;

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
    auto c = parseConfig(*input, env("HULL_STATE_DIR").empty() ? "/var/lib/hull" : env("HULL_STATE_DIR"));
    if (!c) return fail(c.error().code, c.error().msg, c.error().details);
    if (cmd == "ADD") return cmdAdd(*c, id, netnsPath, ifname);
    if (cmd == "DEL") return cmdDel(*c, id, ifname);
    return cmdCheck(*c, id, netnsPath, ifname);
}
