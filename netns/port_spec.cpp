#include "netns/port_spec.hpp"

#include <algorithm>
#include <charconv>

#include "sys/fs.hpp"

namespace hull::netns {

namespace {

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
    if (spec.find('[') != std::string::npos || std::count(spec.begin(), spec.end(), ':') > 2)
        return failInvalid("port mapping \"" + s + "\": publishing on an IPv6 host address is not supported");
    if (auto slash = spec.find('/'); slash != std::string::npos) {
        p.protocol = spec.substr(slash + 1);
        spec = spec.substr(0, slash);
        if (p.protocol != "tcp" && p.protocol != "udp")
            return failInvalid("port mapping \"" + s + "\": protocol must be tcp or udp");
    }
    auto parts = sys::split(spec, ':');
    if (parts.size() == 3) {
        auto ip = Ipv4::parse(parts[0]);
        if (!ip) return failInvalid("port mapping \"" + s + "\": \"" + parts[0] + "\" is not an IPv4 host address");
        if (ip->value != 0) p.hostIp = *ip;
        parts.erase(parts.begin());
    }
    if (parts.size() == 1) {
        p.hostPort = p.containerPort = TRY(port(parts[0], s));
    } else {
        p.hostPort = TRY(port(parts[0], s));
        p.containerPort = TRY(port(parts[1], s));
    }
    return p;
}

std::string formatPortMapping(const PortMapping& p) {
    return (p.hostIp ? p.hostIp->str() + ":" : "") + std::to_string(p.hostPort) + ":" +
           std::to_string(p.containerPort) + "/" + p.protocol;
}

}  // namespace hull::netns
