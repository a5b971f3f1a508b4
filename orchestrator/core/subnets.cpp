#include "orchestrator/core/subnets.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <sstream>

namespace hull::orchestrator::core {

using netns::Cidr;

Result<Cidr> leaseSubnet(const Cidr& cluster, int prefix, const std::vector<Cidr>& taken) {
    if (prefix < cluster.prefix || prefix > 30)
        return failInvalid("a /" + std::to_string(prefix) + " does not fit in the cluster CIDR " + cluster.str());
    const uint64_t count = uint64_t(1) << (prefix - cluster.prefix);
    const uint32_t step = prefix == 32 ? 1 : uint32_t(1) << (32 - prefix);
    for (uint64_t i = 0; i < count; ++i) {
        Cidr c{{uint32_t(cluster.network().value + i * step)}, prefix};
        if (std::none_of(taken.begin(), taken.end(), [&](const Cidr& t) { return t.overlaps(c); })) return c;
    }
    return fail(Error::plain(ENOSPC, "the cluster CIDR " + cluster.str() + " has no free /" + std::to_string(prefix) +
                                         " left for another node (hull node rm frees a removed node's; a larger "
                                         "--cluster-cidr holds more)"));
}

Result<void> checkAddressPlan(const Cidr& cluster, const Cidr& services, const std::vector<Cidr>& routes) {
    for (const auto& [what, c] : {std::pair{"--cluster-cidr", cluster}, std::pair{"--service-cidr", services}}) {
        if (c.addr != c.network())
            return failInvalid(std::string(what) + " " + c.str() + ": not a network address (" + c.network().str() + "/" +
                               std::to_string(c.prefix) + "?)");
        if (c.prefix < 8 || c.prefix > 24)
            return failInvalid(std::string(what) + " " + c.str() + ": expected a prefix from /8 to /24");
    }
    if (cluster.prefix > kNodeSubnetPrefix)
        return failInvalid("--cluster-cidr " + cluster.str() + ": smaller than one node's /" + std::to_string(kNodeSubnetPrefix));
    if (services.overlaps(cluster))
        return failInvalid("--service-cidr " + services.str() + " overlaps --cluster-cidr " + cluster.str());
    for (const auto& r : routes)
        for (const auto& [what, c] : {std::pair{"--cluster-cidr", cluster}, std::pair{"--service-cidr", services}})
            if (r.prefix > 0 && c.overlaps(r))
                return failInvalid(std::string(what) + " " + c.str() + " overlaps the host's route to " + r.str() +
                                   ": choose another range");
    return {};
}

std::vector<Cidr> parseProcRoutes(const std::string& text) {
    std::vector<Cidr> out;
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string iface, dest, gateway, flags, refcnt, use, metric, mask;
        if (!(f >> iface >> dest >> gateway >> flags >> refcnt >> use >> metric >> mask)) continue;
        uint32_t d = 0, m = 0;
        if (std::from_chars(dest.data(), dest.data() + dest.size(), d, 16).ec != std::errc() ||
            std::from_chars(mask.data(), mask.data() + mask.size(), m, 16).ec != std::errc())
            continue;
        // Little-endian on the machines hull runs on: the kernel prints the
        // address as a host-order integer of network-order bytes.
        d = __builtin_bswap32(d);
        m = __builtin_bswap32(m);
        if (m == 0) continue;  // the default route
        out.push_back({{d}, std::popcount(m)});
    }
    return out;
}

}  // namespace hull::orchestrator::core
