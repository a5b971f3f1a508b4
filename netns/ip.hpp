#pragma once
// IPv4 addresses, CIDR blocks, MAC addresses and interface names: the pure
// arithmetic under IPAM and link setup (unit-tested, no kernel).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sys/error.hpp"

namespace hull::netns {

struct Ipv4 {
    uint32_t value = 0;  // host byte order
    auto operator<=>(const Ipv4&) const = default;
    std::string str() const;
    static std::optional<Ipv4> parse(std::string_view s);
};

struct Cidr {
    Ipv4 addr;       // as written: "10.88.0.1/16" keeps .1
    int prefix = 0;  // 0..32
    bool operator==(const Cidr&) const = default;

    /// "10.88.0.0/16"; errors say what is wrong with the text.
    [[nodiscard]] static Result<Cidr> parse(std::string_view s);
    std::string str() const;  // "10.88.0.1/16"
    uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t(0) << (32 - prefix); }
    Ipv4 network() const { return {addr.value & mask()}; }
    Ipv4 broadcast() const { return {network().value | ~mask()}; }
    bool contains(Ipv4 ip) const { return (ip.value & mask()) == network().value; }
    bool overlaps(const Cidr& o) const;
    /// Addresses usable by hosts: network+1 .. broadcast-1 (all of them for /31, /32).
    Ipv4 firstHost() const;
    Ipv4 lastHost() const;
};

/// A locally administered unicast MAC derived from an IPv4 address
/// (02:42:a.b.c.d, as Docker does): stable, and unique within a subnet.
std::string macForIp(Ipv4 ip);

/// The host end of a container's veth: "hull" + 8 hex digits of a hash of the
/// container id; at most 15 characters (IFNAMSIZ - 1), the kernel's limit.
std::string hostVethName(std::string_view containerId);

/// The first /16 (then /24) in 10.88.0.0–10.255.255.255 and 172.16–31.x that
/// overlaps none of USED (the host's routes and addresses): the default subnet.
std::optional<Cidr> pickFreeSubnet(const std::vector<Cidr>& used);

}  // namespace hull::netns
