#include "netns/cni_config.hpp"

#include <optional>

namespace hull::netns::cni {

using json::Value;

namespace {

std::string str(const Value& obj, const char* key, const std::string& def = "") { return json::stringOf(obj, key, def); }


/// host-local's "ranges" and "routes" in hull's terms: at most one subnet per
/// family, its gateway the subnet's first address, only default routes.
/// False with ERR set when they cannot be.
bool parseIpam(const Value& ipam, Config& c, CniError& err) {
    auto bad = [&](int code, const std::string& msg) {
        err = {code, msg, ""};
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
            if (auto v4 = Cidr::parse(subnet)) {
                if (have4 || (c.net.subnet && *c.net.subnet != *v4))
                    return bad(kInvalidConfig, where + ".subnet: a second IPv4 subnet");
                std::string first = v4->firstHost().str();
                if (!gateway.empty() && gateway != first)
                    return bad(kUnsupportedField, where + ".gateway: the gateway is the subnet's first address (" + first + ")");
                c.net.subnet = *v4;
                have4 = true;
            } else if (auto v6 = Cidr6::parse(subnet)) {
                if (have6 || (c.net.subnet6 && *c.net.subnet6 != *v6))
                    return bad(kInvalidConfig, where + ".subnet: a second IPv6 subnet");
                auto first = v6->firstHost();
                auto gw = Ipv6::parse(gateway);
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
            auto v4 = Cidr::parse(dst);
            auto v6 = Cidr6::parse(dst);
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

}  // namespace

tl::expected<Config, CniError> parseConfig(const std::string& text, const std::string& defaultStateDir) {
    auto doc = Value::parse(text);
    if (!doc || !doc->isObject()) {
        return tl::unexpected(CniError{kDecodeFailure, "cannot decode the network configuration",
                  doc ? "expected a JSON object" : doc.error().message()});
    }
    Config c;
    c.cniVersion = str(*doc, "cniVersion", kVersion);
    bool known = false;
    for (const char* v : kSupported) known |= c.cniVersion == v;
    if (!known) {
        return tl::unexpected(CniError{kIncompatibleVersion, "cniVersion " + c.cniVersion + " is not supported", "supported: 0.3.0-1.0.0"});
    }
    c.name = str(*doc, "name");
    if (c.name.empty()) {
        return tl::unexpected(CniError{kInvalidConfig, "the network configuration has no name"});
    }
    c.net.name = c.name;
    c.net.bridge = str(*doc, "bridge", "hull0");
    if (auto s = str(*doc, "subnet"); !s.empty()) {
        auto cidr = Cidr::parse(s);
        if (!cidr) {
            return tl::unexpected(CniError{kInvalidConfig, "subnet: " + cidr.error().message()});
        }
        c.net.subnet = *cidr;
    }
    if (auto s = str(*doc, "subnet6"); !s.empty()) {
        auto cidr = Cidr6::parse(s);
        if (!cidr) {
            return tl::unexpected(CniError{kInvalidConfig, "subnet6: " + cidr.error().message()});
        }
        c.net.subnet6 = *cidr;
    }
    CniError err;
    if (const Value* ipam = doc->find("ipam"); ipam && ipam->isObject() && !parseIpam(*ipam, c, err))
        return tl::unexpected(err);
    if (const Value* m = doc->find("mtu")) {
        int64_t mtu = 0;
        if (!m->toInt64(mtu) || mtu < 576 || mtu > 65535) {
            return tl::unexpected(CniError{kInvalidConfig, "mtu: expected an integer between 576 and 65535"});
        }
        c.net.mtu = int(mtu);
    }
    if (const Value* m = doc->find("ipMasq"); m && m->isBool()) c.net.masquerade = m->asBool();
    c.stateDir = str(*doc, "stateDir", defaultStateDir);
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
                    return tl::unexpected(CniError{kInvalidConfig, "runtimeConfig.portMappings[" + std::to_string(i) +
                                                  "]: expected hostPort and containerPort (1-65535) and protocol tcp or udp"});
                }
                std::optional<Ipv4> hostIp;
                if (std::string ip = str(p, "hostIP"); !ip.empty()) {
                    hostIp = Ipv4::parse(ip);
                    if (!hostIp) {
                        return tl::unexpected(CniError{kUnsupportedField, "runtimeConfig.portMappings[" + std::to_string(i) + "].hostIP: \"" +
                                                         ip + "\" is not an IPv4 address (IPv6 publishing is not supported)"});
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

}  // namespace hull::netns::cni
