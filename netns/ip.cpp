#include "netns/ip.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <limits>

namespace hull::netns {

std::string Ipv4::str() const {
    char b[16];
    std::snprintf(b, sizeof b, "%u.%u.%u.%u", value >> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff);
    return b;
}

std::optional<Ipv4> Ipv4::parse(std::string_view s) {
    uint32_t v = 0;
    const char* p = s.data();
    const char* end = s.data() + s.size();
    for (int i = 0; i < 4; ++i) {
        unsigned octet = 0;
        auto [next, ec] = std::from_chars(p, end, octet);
        if (ec != std::errc() || octet > 255 || next == p || next - p > 3) return std::nullopt;
        v = (v << 8) | octet;
        p = next;
        if (i < 3) {
            if (p == end || *p != '.') return std::nullopt;
            ++p;
        }
    }
    if (p != end) return std::nullopt;
    return Ipv4{v};
}

Result<Cidr> Cidr::parse(std::string_view s) {
    auto slash = s.find('/');
    if (slash == std::string_view::npos) return failInvalid("\"" + std::string(s) + "\": expected ADDRESS/PREFIX");
    auto ip = Ipv4::parse(s.substr(0, slash));
    if (!ip) return failInvalid("\"" + std::string(s) + "\": not an IPv4 address");
    int prefix = -1;
    auto rest = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), prefix);
    if (ec != std::errc() || end != rest.data() + rest.size() || prefix < 0 || prefix > 32)
        return failInvalid("\"" + std::string(s) + "\": the prefix must be 0..32");
    return Cidr{*ip, prefix};
}

std::string Cidr::str() const { return addr.str() + "/" + std::to_string(prefix); }

bool Cidr::overlaps(const Cidr& o) const {
    int p = std::min(prefix, o.prefix);
    uint32_t m = p == 0 ? 0 : ~uint32_t(0) << (32 - p);
    return (addr.value & m) == (o.addr.value & m);
}

Ipv4 Cidr::firstHost() const { return prefix >= 31 ? network() : Ipv4{network().value + 1}; }
Ipv4 Cidr::lastHost() const { return prefix >= 31 ? broadcast() : Ipv4{broadcast().value - 1}; }

std::array<uint8_t, 16> Ipv6::bytes() const {
    std::array<uint8_t, 16> b{};
    for (int i = 0; i < 8; ++i) {
        b[size_t(i)] = uint8_t(hi >> (56 - 8 * i));
        b[size_t(8 + i)] = uint8_t(lo >> (56 - 8 * i));
    }
    return b;
}

Ipv6 Ipv6::fromBytes(const uint8_t* b) {
    Ipv6 ip;
    for (int i = 0; i < 8; ++i) {
        ip.hi = (ip.hi << 8) | b[i];
        ip.lo = (ip.lo << 8) | b[8 + i];
    }
    return ip;
}

// inet_pton/inet_ntop are pure text conversions; glibc's output already follows
// RFC 5952 (lower case, the first longest run of two or more zero groups as "::").
std::string Ipv6::str() const {
    auto b = bytes();
    char out[INET6_ADDRSTRLEN];
    if (!::inet_ntop(AF_INET6, b.data(), out, sizeof out)) return "?";
    return out;
}

std::optional<Ipv6> Ipv6::parse(std::string_view s) {
    if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    std::string z(s);  // inet_pton wants a terminated string
    uint8_t b[16];
    if (::inet_pton(AF_INET6, z.c_str(), b) != 1) return std::nullopt;
    return fromBytes(b);
}

namespace {

// Masks of the two halves for a prefix length.
uint64_t maskHi(int prefix) { return prefix <= 0 ? 0 : prefix >= 64 ? ~uint64_t(0) : ~uint64_t(0) << (64 - prefix); }
uint64_t maskLo(int prefix) { return prefix <= 64 ? 0 : prefix >= 128 ? ~uint64_t(0) : ~uint64_t(0) << (128 - prefix); }

}  // namespace

Result<Cidr6> Cidr6::parse(std::string_view s) {
    auto slash = s.find('/');
    if (slash == std::string_view::npos) return failInvalid("\"" + std::string(s) + "\": expected ADDRESS/PREFIX");
    auto ip = Ipv6::parse(s.substr(0, slash));
    if (!ip) return failInvalid("\"" + std::string(s) + "\": not an IPv6 address");
    int prefix = -1;
    auto rest = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), prefix);
    if (ec != std::errc() || end != rest.data() + rest.size() || prefix < 0 || prefix > 128)
        return failInvalid("\"" + std::string(s) + "\": the prefix must be 0..128");
    return Cidr6{*ip, prefix};
}

std::string Cidr6::str() const { return addr.str() + "/" + std::to_string(prefix); }

Ipv6 Cidr6::network() const { return {addr.hi & maskHi(prefix), addr.lo & maskLo(prefix)}; }

bool Cidr6::contains(Ipv6 ip) const {
    return (ip.hi & maskHi(prefix)) == network().hi && (ip.lo & maskLo(prefix)) == network().lo;
}

bool Cidr6::overlaps(const Cidr6& o) const {
    int p = std::min(prefix, o.prefix);
    return (addr.hi & maskHi(p)) == (o.addr.hi & maskHi(p)) && (addr.lo & maskLo(p)) == (o.addr.lo & maskLo(p));
}

uint64_t Cidr6::lastOffset() const {
    return prefix <= 64 ? std::numeric_limits<uint64_t>::max() : ~maskLo(prefix);
}

std::optional<Ipv6> Cidr6::nth(uint64_t n) const {
    if (n > lastOffset()) return std::nullopt;
    Ipv6 net = network();
    return Ipv6{net.hi, net.lo + n};  // N fits in the host bits of the low half: no carry
}

std::optional<uint64_t> Cidr6::offsetOf(Ipv6 ip) const {
    Ipv6 net = network();
    if (!contains(ip) || ip.hi != net.hi) return std::nullopt;  // host bits in the high half: out of nth's reach
    return ip.lo - net.lo;
}

std::string macForIp(Ipv4 ip) {
    char b[18];
    std::snprintf(b, sizeof b, "02:42:%02x:%02x:%02x:%02x", ip.value >> 24, (ip.value >> 16) & 0xff,
                  (ip.value >> 8) & 0xff, ip.value & 0xff);
    return b;
}

std::string hostVethName(std::string_view containerId) {
    // FNV-1a: stable across runs and builds (std::hash is neither).
    uint32_t h = 2166136261u;
    for (unsigned char c : containerId) h = (h ^ c) * 16777619u;
    char b[16];
    std::snprintf(b, sizeof b, "hull%08x", h);
    return b;
}

std::optional<Cidr> pickFreeSubnet(const std::vector<Cidr>& used) {
    auto free = [&](const Cidr& c) {
        for (const auto& u : used)
            if (u.prefix > 0 && c.overlaps(u)) return false;  // a default route (/0) overlaps everything
        return true;
    };
    for (uint32_t b = 88; b <= 255; ++b)
        if (Cidr c{Ipv4{(10u << 24) | (b << 16)}, 16}; free(c)) return c;
    for (uint32_t b = 16; b <= 31; ++b)
        for (uint32_t c3 = 0; c3 <= 255; ++c3)
            if (Cidr c{Ipv4{(172u << 24) | (b << 16) | (c3 << 8)}, 24}; free(c)) return c;
    return std::nullopt;
}

}  // namespace hull::netns
