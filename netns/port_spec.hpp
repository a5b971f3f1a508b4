#pragma once
// A published port as users write it ("8080:80", "127.0.0.1:8080:80/udp"):
// parsing and formatting only, no kernel. Its own library (hull_netns_spec)
// with ip.hpp, so that the service model and the master can read port specs
// without linking libnl or libnftables.
#include <cstdint>
#include <optional>
#include <string>

#include "netns/ip.hpp"
#include "sys/error.hpp"

namespace hull::netns {

struct PortMapping {
    uint16_t hostPort = 0;
    uint16_t containerPort = 0;
    std::string protocol = "tcp";  // "tcp" or "udp"
    /// Published on this host address only (docker's -p HOSTIP:…); none: on
    /// every local address.
    std::optional<Ipv4> hostIp;
    bool operator==(const PortMapping&) const = default;
};

/// "8080:80", "8080:80/udp", "53/udp" (same port both sides),
/// "127.0.0.1:8080:80" (on one host address; "0.0.0.0:" means all).
[[nodiscard]] Result<PortMapping> parsePortMapping(const std::string& s);
std::string formatPortMapping(const PortMapping& p);  // "8080:80/tcp", "127.0.0.1:8080:80/tcp"

}  // namespace hull::netns
