// hull: the single-host and cluster CLI. Today: bridge networks and the VXLAN
// overlay (`hull network`, `hull overlay`); images, `hull run` and the node
// agent arrive with their issues. OCI bundles run with hull-runc.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "netns/network.hpp"
#include "netns/overlay.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

using namespace hull;
using cli::Args;

namespace {

const char* kUsage = R"(hull: containers and networks without a daemon

usage: hull [--state-dir DIR] [--debug] COMMAND ...

  version
  network create [--name hull] [--bridge hull0] [--subnet CIDR] [--mtu 1500] [--no-masquerade]
  network ls [--output table|json]
  network attach [--name hull] --id ID --netns PATH [--ifname eth0] [-p HOST:CTR[/udp]]...
  network detach [--name hull] --id ID [--ifname IF]
  network gc [--name hull]          free addresses, veths and ports of vanished namespaces
  network rm NAME                   remove the bridge, its NAT entries and its state
  overlay up --subnet CIDR --local IP [--underlay DEV] [--vni 1] [--dev hull.vx] [--port 4789] [--mtu N]
  overlay add-peer [--dev hull.vx] --subnet CIDR --underlay IP --mac MAC
  overlay del-peer [--dev hull.vx] --subnet CIDR --underlay IP --mac MAC
  overlay down [--dev hull.vx]

The state directory is --state-dir, else $HULL_STATE_DIR, else /var/lib/hull.
)";

int failWith(const std::string& msg) {
    std::fprintf(stderr, "hull: %s\n", msg.c_str());
    return 1;
}

template <class T>
int check(const Result<T>& r) {
    return r ? 0 : failWith(r.error().message());
}

std::string stateDir(const std::string& flag) {
    if (!flag.empty()) return flag;
    const char* env = std::getenv("HULL_STATE_DIR");
    return env && *env ? env : "/var/lib/hull";
}

int networkCmd(const std::string& state, const std::vector<std::string>& rest) {
    if (rest.empty()) return failWith("network: expected create, ls, attach, detach, gc or rm");
    const std::string sub = rest[0];
    std::vector<std::string> argv(rest.begin() + 1, rest.end());
    if (sub == "create") {
        Args a(argv, {"--no-masquerade"}, {"--name", "--bridge", "--subnet", "--mtu"}, {});
        if (!a.error.empty()) return failWith("network create: " + a.error);
        netns::NetworkConfig c;
        c.name = a.get("--name", "hull");
        c.bridge = a.get("--bridge", c.name == "hull" ? "hull0" : c.name.substr(0, 15));
        if (a.has("--subnet")) {
            auto s = netns::Cidr::parse(a.get("--subnet"));
            if (!s) return failWith("network create: --subnet " + s.error().message());
            c.subnet = *s;
        }
        c.mtu = std::atoi(a.get("--mtu", "1500").c_str());
        c.masquerade = !a.has("--no-masquerade");
        auto n = netns::Network::ensure(state, c);
        if (!n) return failWith(n.error().message());
        std::printf("%s %s %s gateway %s\n", n->config().name.c_str(), n->config().bridge.c_str(),
                    n->subnet().str().c_str(), n->gateway().str().c_str());
        return 0;
    }
    if (sub == "ls") {
        Args a(argv, {}, {"--output"}, {{"-o", "--output"}});
        if (!a.error.empty()) return failWith("network ls: " + a.error);
        json::Value list = json::Value::array();
        std::string dir = sys::joinPath(state, "networks");
        std::printf("%s", a.get("--output", "table") == "json" ? "" : "NAME        BRIDGE           SUBNET             CONTAINERS\n");
        for (const auto& name : sys::listDir(dir)) {
            auto n = netns::Network::load(state, name);
            if (!n) continue;
            auto allocs = n->ipam().list();
            size_t count = allocs ? allocs->size() : 0;
            json::Value v = json::Value::object();
            v.set("name", name);
            v.set("bridge", n->config().bridge);
            v.set("subnet", n->subnet().str());
            v.set("gateway", n->gateway().str());
            json::Value members = json::Value::array();
            if (allocs)
                for (const auto& al : *allocs) {
                    json::Value m = json::Value::object();
                    m.set("id", al.id);
                    m.set("ifname", al.ifname);
                    m.set("ip", al.ip.str());
                    members.push(m);
                }
            v.set("containers", members);
            list.push(v);
            if (a.get("--output", "table") != "json")
                std::printf("%-11s %-16s %-18s %zu\n", name.c_str(), n->config().bridge.c_str(),
                            n->subnet().str().c_str(), count);
        }
        if (a.get("--output", "table") == "json") std::printf("%s\n", list.dump(true).c_str());
        return 0;
    }
    if (sub == "attach") {
        Args a(argv, {}, {"--name", "--id", "--netns", "--ifname", "--publish"}, {{"-p", "--publish"}});
        if (!a.error.empty()) return failWith("network attach: " + a.error);
        if (!a.has("--id") || !a.has("--netns")) return failWith("network attach: --id and --netns are required");
        auto n = netns::Network::load(state, a.get("--name", "hull"));
        if (!n) return failWith(n.error().message() + " (create it with `hull network create`)");
        netns::AttachRequest req{a.get("--id"), a.get("--netns"), a.get("--ifname", "eth0"), {}};
        for (const auto& p : a.all("--publish")) {
            auto m = netns::parsePortMapping(p);
            if (!m) return failWith(m.error().message());
            req.ports.push_back(*m);
        }
        auto at = n->attach(req);
        if (!at) return failWith(at.error().message());
        std::printf("%s\n", at->address.str().c_str());
        return 0;
    }
    if (sub == "detach") {
        Args a(argv, {}, {"--name", "--id", "--ifname"}, {});
        if (!a.error.empty()) return failWith("network detach: " + a.error);
        if (!a.has("--id")) return failWith("network detach: --id is required");
        auto n = netns::Network::load(state, a.get("--name", "hull"));
        if (!n) return failWith(n.error().message());
        return check(n->detach(a.get("--id"), a.get("--ifname")));
    }
    if (sub == "gc") {
        Args a(argv, {}, {"--name"}, {});
        if (!a.error.empty()) return failWith("network gc: " + a.error);
        auto n = netns::Network::load(state, a.get("--name", "hull"));
        if (!n) return failWith(n.error().message());
        auto r = n->gc();
        if (!r) return failWith(r.error().message());
        for (const auto& f : r->freed) std::printf("freed %s (%s/%s)\n", f.ip.str().c_str(), f.id.c_str(), f.ifname.c_str());
        return 0;
    }
    if (sub == "rm") {
        if (argv.size() != 1) return failWith("network rm: expected one network name");
        auto n = netns::Network::load(state, argv[0]);
        if (!n) return failWith(n.error().message());
        return check(n->destroy());
    }
    return failWith("network: unknown command \"" + sub + "\"");
}

int overlayCmd(const std::vector<std::string>& rest) {
    if (rest.empty()) return failWith("overlay: expected up, add-peer, del-peer or down");
    const std::string sub = rest[0];
    std::vector<std::string> argv(rest.begin() + 1, rest.end());
    if (sub == "up") {
        Args a(argv, {}, {"--dev", "--vni", "--local", "--underlay", "--port", "--mtu", "--subnet"}, {});
        if (!a.error.empty()) return failWith("overlay up: " + a.error);
        netns::VxlanOptions o;
        o.name = a.get("--dev", "hull.vx");
        o.vni = uint32_t(std::strtoul(a.get("--vni", "1").c_str(), nullptr, 10));
        auto local = netns::Ipv4::parse(a.get("--local"));
        if (!local) return failWith("overlay up: --local IP (this host's underlay address) is required");
        o.local = *local;
        o.underlay = a.get("--underlay");
        o.port = uint16_t(std::strtoul(a.get("--port", "4789").c_str(), nullptr, 10));
        o.mtu = std::atoi(a.get("--mtu", "0").c_str());
        auto subnet = netns::Cidr::parse(a.get("--subnet"));
        if (!subnet) return failWith("overlay up: --subnet " + subnet.error().message());
        auto ov = netns::Overlay::ensure(o, *subnet);
        if (!ov) return failWith(ov.error().message());
        auto self = ov->self();
        // What the other hosts pass to `hull overlay add-peer`.
        std::printf("--subnet %s --underlay %s --mac %s\n", self.subnet.str().c_str(), self.underlay.str().c_str(),
                    self.vtepMac.c_str());
        return 0;
    }
    if (sub == "add-peer" || sub == "del-peer") {
        Args a(argv, {}, {"--dev", "--subnet", "--underlay", "--mac"}, {});
        if (!a.error.empty()) return failWith("overlay " + sub + ": " + a.error);
        auto subnet = netns::Cidr::parse(a.get("--subnet"));
        auto underlay = netns::Ipv4::parse(a.get("--underlay"));
        if (!subnet || !underlay || !a.has("--mac"))
            return failWith("overlay " + sub + ": --subnet CIDR, --underlay IP and --mac MAC are required");
        auto ov = netns::Overlay::open(a.get("--dev", "hull.vx"));
        if (!ov) return failWith(ov.error().message());
        netns::OverlayPeer p{*subnet, *underlay, a.get("--mac")};
        return check(sub == "add-peer" ? ov->addPeer(p) : ov->removePeer(p));
    }
    if (sub == "down") {
        Args a(argv, {}, {"--dev"}, {});
        auto ov = netns::Overlay::open(a.get("--dev", "hull.vx"));
        if (!ov) return failWith(ov.error().message());
        return check(ov->destroy());
    }
    return failWith("overlay: unknown command \"" + sub + "\"");
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string state;
    bool debug = false;
    size_t i = 0;
    for (; i < args.size() && args[i].rfind("--", 0) == 0; ++i) {
        if (args[i] == "--debug") debug = true;
        else if (args[i] == "--state-dir" && i + 1 < args.size()) state = args[++i];
        else if (args[i].rfind("--state-dir=", 0) == 0) state = args[i].substr(12);
        else if (args[i] == "--version") args[i] = "version";
        else if (args[i] == "--help") {
            std::printf("%s", kUsage);
            return 0;
        } else return failWith("unknown option " + args[i] + "\n\n" + kUsage);
        if (args[i] == "version") break;
    }
    log::configure("", log::Format::Text, debug);
    if (i >= args.size()) {
        std::fprintf(stderr, "%s", kUsage);
        return 2;
    }
    const std::string cmd = args[i];
    std::vector<std::string> rest(args.begin() + long(i) + 1, args.end());
    if (cmd == "version") {
        std::printf("hull version 0.1.0\n");
        return 0;
    }
    if (cmd == "network") return networkCmd(stateDir(state), rest);
    if (cmd == "overlay") return overlayCmd(rest);
    return failWith("unknown command \"" + cmd + "\" (see hull --help)");
}
