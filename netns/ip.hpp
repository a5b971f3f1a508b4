#pragma once
// IPv4 and IPv6 addresses, CIDR blocks, MAC addresses and interface names:
// the pure arithmetic under IPAM and link setup (unit-tested, no kernel).
#include <array>
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

/// An IPv6 address as two 64-bit halves in host byte order, so that
/// comparison and host arithmetic are plain integer operations.
struct Ipv6 {
    uint64_t hi = 0, lo = 0;
    auto operator<=>(const Ipv6&) const = default;
    /// RFC 5952 text: lower case, the longest run of zero groups as "::".
    std::string str() const;
    /// Any RFC 4291 text form ("fd00:89::2", "::", "::ffff:10.0.0.1"); no zone, no prefix.
    static std::optional<Ipv6> parse(std::string_view s);
    std::array<uint8_t, 16> bytes() const;  // network byte order
    static Ipv6 fromBytes(const uint8_t* b);
};

/// An IPv6 block. Hosts are numbered by their offset from the network address
/// in the low 64 bits only: a /48 hands out the first 2^64 addresses of its
/// first /64, which is more than any host will ever run.
struct Cidr6 {
    Ipv6 addr;       // as written
    int prefix = 0;  // 0..128
    bool operator==(const Cidr6&) const = default;

    [[nodiscard]] static Result<Cidr6> parse(std::string_view s);
    std::string str() const;  // "fd00:89::1/64"
    Ipv6 network() const;
    bool contains(Ipv6 ip) const;
    bool overlaps(const Cidr6& o) const;
    /// The largest host offset: 2^(128-prefix) - 1, at most 2^64 - 1.
    uint64_t lastOffset() const;
    /// network + N, nullopt when N is beyond lastOffset(). Offset 0 (the
    /// subnet-router anycast address, RFC 4291 2.6.1) is never handed out.
    std::optional<Ipv6> nth(uint64_t n) const;
    /// The offset of IP from the network, nullopt when nth() cannot reach it.
    std::optional<uint64_t> offsetOf(Ipv6 ip) const;
    /// The gateway's address (the bridge's): network + 1.
    Ipv6 firstHost() const { return {network().hi, network().lo + 1}; }
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
