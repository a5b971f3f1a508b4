#include "orchestrator/core/scheduler.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "runtime/net.hpp"

namespace hull::orchestrator::core {

namespace {

// CPUs are counted in millionths, so that sums do not depend on the order in
// which they are added (ties between equal nodes must break by name, not by
// the last bit of a floating sum).
constexpr double kMicro = 1e6;
int64_t microCpus(double cpus) { return cpus > 0 ? std::llround(cpus * kMicro) : 0; }

/// A host port: protocol and port (key), on one address or on all.
struct HostPort {
    uint32_t key = 0;  // port | udp << 16
    bool any = true;
    uint32_t addr = 0;
    std::string text;  // as the service gave it, for reasons
};

Result<HostPort> parseHostPort(const std::string& text) {
    auto bad = [&](const std::string& why) { return failInvalid("host port \"" + text + "\": " + why); };
    std::string_view s = text;
    HostPort p;
    p.text = text;
    uint32_t udp = 0;
    if (auto slash = s.rfind('/'); slash != std::string_view::npos) {
        std::string_view proto = s.substr(slash + 1);
        if (proto == "udp") udp = 1;
        else if (proto != "tcp") return bad("protocol must be tcp or udp");
        s = s.substr(0, slash);
    }
    if (auto colon = s.rfind(':'); colon != std::string_view::npos) {
        auto ip = netns::Ipv4::parse(s.substr(0, colon));
        if (!ip) return bad("\"" + std::string(s.substr(0, colon)) + "\" is not an IPv4 address");
        p.any = ip->value == 0;  // 0.0.0.0 is every address
        p.addr = ip->value;
        s = s.substr(colon + 1);
    }
    unsigned port = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
    if (ec != std::errc() || end != s.data() + s.size() || port == 0 || port > 65535)
        return bad("port must be 1..65535");
    p.key = port | udp << 16;
    return p;
}

/// A service publishing a host port on a node.
struct PortHolder {
    bool any;
    uint32_t addr;
    uint32_t service;
};

struct NodeState {
    const NodeInfo* info = nullptr;
    int64_t cpuCap = 0, memCap = 0;    // micro-cpus, bytes
    int64_t cpuUsed = 0, memUsed = 0;
    std::unordered_map<uint32_t, std::vector<PortHolder>> ports;  // by HostPort::key
};

struct ServiceState {
    const ServiceDemand* demand = nullptr;
    int64_t cpu = 0, mem = 0;  // per replica
    std::vector<HostPort> ports;
    std::string portError;     // the host ports that do not parse
    std::vector<uint32_t> replicasOn;  // nodes of its replicas that stay where they are
};

/// "2", "0.5", "0.125": up to DECIMALS decimals, no trailing zeros.
std::string trimmed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
    }
    return s;
}

std::string cpusText(int64_t micro) { return trimmed(double(micro) / kMicro, 6); }

/// Sizes in the service file's words: "64m", "1.5g", "512k", "100b".
std::string bytesText(int64_t b) {
    static constexpr std::pair<int, const char*> kUnits[] = {{30, "g"}, {20, "m"}, {10, "k"}};
    for (auto [shift, unit] : kUnits)
        if (b >= int64_t(1) << shift) return trimmed(double(b) / double(int64_t(1) << shift), 1) + unit;
    return std::to_string(b) + "b";
}

/// "1 node fails", "3 nodes fail".
std::string nodesThat(int n, const char* one, const char* many) {
    return std::to_string(n) + (n == 1 ? " node " : " nodes ") + (n == 1 ? one : many);
}

/// The whole cluster during one call: nodes by name, services by name, and
/// what the replicas placed so far hold on each node.
class Cluster {
public:
    Cluster(const std::vector<NodeInfo>& nodes, const std::vector<ServiceDemand>& services) {
        nodes_.reserve(nodes.size());
        for (const NodeInfo& n : nodes) {
            NodeState s;
            s.info = &n;
            s.cpuCap = microCpus(n.cpus);
            s.memCap = std::max<int64_t>(n.memory, 0);
            nodes_.push_back(std::move(s));
        }
        // Name order is the tie-break: node indices are ranks by name.
        std::stable_sort(nodes_.begin(), nodes_.end(),
                         [](const NodeState& a, const NodeState& b) { return a.info->name < b.info->name; });
        nodes_.erase(std::unique(nodes_.begin(), nodes_.end(),
                                 [](const NodeState& a, const NodeState& b) { return a.info->name == b.info->name; }),
                     nodes_.end());
        for (uint32_t i = 0; i < nodes_.size(); ++i) nodeIndex_.emplace(nodes_[i].info->name, i);

        for (const ServiceDemand& d : services) {
            if (!serviceIndex_.emplace(d.name, uint32_t(services_.size())).second) continue;  // names are unique
            ServiceState s;
            s.demand = &d;
            s.cpu = microCpus(d.cpus);
            s.mem = std::max<int64_t>(d.memory, 0);
            for (const std::string& text : d.hostPorts) {
                auto p = parseHostPort(text);
                if (p) s.ports.push_back(std::move(*p));
                else if (s.portError.empty()) s.portError = p.error().message();
            }
            services_.push_back(std::move(s));
        }
    }

    std::optional<uint32_t> node(const std::string& name) const {
        auto it = nodeIndex_.find(name);
        return it == nodeIndex_.end() ? std::nullopt : std::optional(it->second);
    }
    std::optional<uint32_t> service(const std::string& name) const {
        auto it = serviceIndex_.find(name);
        return it == serviceIndex_.end() ? std::nullopt : std::optional(it->second);
    }
    size_t nodeCount() const { return nodes_.size(); }
    NodeState& nodeAt(uint32_t n) { return nodes_[n]; }
    ServiceState& serviceAt(uint32_t s) { return services_[s]; }

    /// A replica of S now holds its requests and host ports on N.
    void hold(uint32_t n, uint32_t s) {
        NodeState& node = nodes_[n];
        const ServiceState& svc = services_[s];
        node.cpuUsed += svc.cpu;
        node.memUsed += svc.mem;
        for (const HostPort& p : svc.ports) {
            auto& holders = node.ports[p.key];
            bool known = std::any_of(holders.begin(), holders.end(), [&](const PortHolder& h) {
                return h.service == s && h.any == p.any && h.addr == p.addr;
            });
            if (!known) holders.push_back({p.any, p.addr, s});
        }
    }

    /// The first of S's host ports that another service publishes on N (overlapping addresses).
    const HostPort* portTaken(uint32_t n, uint32_t s) const {
        const NodeState& node = nodes_[n];
        if (node.ports.empty()) return nullptr;
        for (const HostPort& p : services_[s].ports) {
            auto it = node.ports.find(p.key);
            if (it == node.ports.end()) continue;
            for (const PortHolder& h : it->second)
                if (h.service != s && (h.any || p.any || h.addr == p.addr)) return &p;
        }
        return nullptr;
    }

private:
    std::vector<NodeState> nodes_;
    std::vector<ServiceState> services_;
    std::unordered_map<std::string, uint32_t> nodeIndex_, serviceIndex_;
};

/// A feasible node's rank within its domain, smallest first. Spread: (replicas
/// of the service on it, -resources left, name); binpack: (0, resources left, name).
struct Key {
    int64_t primary = 0;
    double secondary = 0;
    uint32_t node = 0;  // rank by name
    bool operator<(const Key& o) const {
        if (primary != o.primary) return primary < o.primary;
        if (secondary != o.secondary) return secondary < o.secondary;
        return node < o.node;
    }
};

/// A domain's rank: its replica count, then its best node.
struct DomainKey {
    int64_t count = 0;
    Key best;
    uint32_t domain = 0;
    bool operator<(const DomainKey& o) const {
        if (count != o.count) return count < o.count;
        if (best < o.best || o.best < best) return best < o.best;
        return domain < o.domain;
    }
};

/// One service's placements within a call: the nodes filtered once, the
/// feasible ones kept ranked in ordered sets (one per spread domain; one for
/// all when spreading over nodes or bin-packing) and the domains in one more,
/// each placement re-ranking one node and one domain (O(log N)).
class ServiceRound {
public:
    ServiceRound(Cluster& cluster, uint32_t service)
        : cluster_(cluster), service_(service), svc_(cluster.serviceAt(service)),
          spread_(svc_.demand->strategy == ServiceDemand::Strategy::Spread) {
        const size_t n = cluster_.nodeCount();
        count_.assign(n, 0);
        key_.resize(n);
        for (uint32_t node : svc_.replicasOn) ++count_[node];
        assignDomains();
        constraintFails_.assign(svc_.demand->constraints.size(), 0);
        portFails_.assign(svc_.ports.size(), 0);
        for (uint32_t node = 0; node < n; ++node) {
            if (!admit(node)) continue;
            key_[node] = keyOf(node);
            domains_[domainOf_[node]].nodes.insert(key_[node]);
            ++feasible_;
        }
        for (uint32_t d = 0; d < domains_.size(); ++d)
            if (!domains_[d].nodes.empty()) ranked_.insert(domainKey(d));
    }

    /// The node for one more replica, not one of AVOID (node ranks); records
    /// the placement. nullopt: none fits (see whyNot).
    std::optional<uint32_t> place(const std::vector<uint32_t>& avoid) {
        auto avoided = [&](uint32_t node) { return std::find(avoid.begin(), avoid.end(), node) != avoid.end(); };
        // The best node in the order (domain count, node key), skipping avoided
        // ones: a domain's key bounds every node in it, so the walk stops at
        // the first domain that cannot beat the best found, after at most
        // |avoid| + 1 steps.
        std::optional<std::pair<int64_t, Key>> best;
        uint32_t bestDomain = 0;
        for (const DomainKey& dk : ranked_) {
            if (best && !(std::pair(dk.count, dk.best) < *best)) break;
            for (const Key& k : domains_[dk.domain].nodes) {
                if (avoided(k.node)) continue;
                if (std::pair candidate(dk.count, k); !best || candidate < *best) {
                    best = candidate;
                    bestDomain = dk.domain;
                }
                break;
            }
        }
        if (!best) return std::nullopt;
        commit(best->second.node, bestDomain);
        return best->second.node;
    }

    /// Why no node took a replica that avoids AVOIDED feasible nodes: each node
    /// counted under the first filter it fails.
    std::string whyNot(size_t avoided) const {
        if (cluster_.nodeCount() == 0) return "no node fits: there are no nodes";
        std::vector<std::string> parts;
        const ServiceDemand& d = *svc_.demand;
        for (size_t i = 0; i < constraintFails_.size(); ++i)
            if (int n = constraintFails_[i])
                parts.push_back(nodesThat(n, "fails", "fail") + " constraint \"" + d.constraints[i].text() + "\"");
        for (size_t i = 0; i < portFails_.size(); ++i)
            if (int n = portFails_[i])
                parts.push_back(nodesThat(n, "has", "have") + " host port " + svc_.ports[i].text +
                                " taken by another service");
        if (cpuFails_)
            parts.push_back(nodesThat(cpuFails_, "lacks", "lack") + " " + cpusText(svc_.cpu) +
                            (svc_.cpu == int64_t(kMicro) ? " cpu" : " cpus") +
                            (cpuFails_ == 1 ? " (free " : " (most free ") +
                            cpusText(std::max<int64_t>(cpuMostFree_, 0)) + ")");
        if (memFails_)
            parts.push_back(nodesThat(memFails_, "lacks", "lack") + " " + bytesText(svc_.mem) + " of memory" +
                            (memFails_ == 1 ? " (free " : " (most free ") +
                            bytesText(std::max<int64_t>(memMostFree_, 0)) + ")");
        if (down_) parts.push_back(nodesThat(down_, "is drained or down", "are drained or down"));
        if (avoided) parts.push_back(nodesThat(int(avoided), "is avoided by this replica", "are avoided by this replica"));
        std::string s = "no node fits: ";
        for (size_t i = 0; i < parts.size(); ++i) s += (i ? ", " : "") + parts[i];
        return s;
    }

    /// Feasible nodes left (a want that found none avoided all of them).
    size_t feasible() const { return feasible_; }

private:
    struct Domain {
        int64_t count = 0;  // replicas of the service in it (spread over a label only)
        std::set<Key> nodes;  // feasible ones
    };

    void assignDomains() {
        const size_t n = cluster_.nodeCount();
        domainOf_.assign(n, 0);
        const std::string& label = svc_.demand->spreadLabel;
        if (!spread_ || label.empty()) {
            // Binpack ranks all nodes together; so does a spread over nodes,
            // whose domains are the nodes themselves: their replica count
            // leads the node key already.
            domains_.resize(1);
            return;
        }
        // Domains are numbered by label value, so ties between them break by
        // value whatever the input order; lacking the label is value "".
        std::map<std::string, uint32_t> values;
        auto valueOf = [&](uint32_t node) -> const std::string& {
            static const std::string kNone;
            const auto& labels = cluster_.nodeAt(node).info->labels;
            auto it = labels.find(label);
            return it == labels.end() ? kNone : it->second;
        };
        for (uint32_t node = 0; node < n; ++node) values.emplace(valueOf(node), 0);
        uint32_t next = 0;
        for (auto& [value, index] : values) index = next++;
        domains_.resize(values.size());
        for (uint32_t node = 0; node < n; ++node) {
            domainOf_[node] = values[valueOf(node)];
            domains_[domainOf_[node]].count += count_[node];
        }
        domainCounts_ = true;
    }

    /// Whether NODE passes the service's filters; counts the first it fails.
    bool admit(uint32_t node) {
        const NodeState& ns = cluster_.nodeAt(node);
        if (!ns.info->schedulable) {
            ++down_;
            return false;
        }
        const auto& constraints = svc_.demand->constraints;
        for (size_t i = 0; i < constraints.size(); ++i)
            if (!matches(constraints[i], *ns.info)) {
                ++constraintFails_[i];
                return false;
            }
        if (const HostPort* p = cluster_.portTaken(node, service_)) {
            ++portFails_[size_t(p - svc_.ports.data())];
            return false;
        }
        return fits(node);
    }

    /// Whether one more replica fits in what NODE has left; counts a failure.
    bool fits(uint32_t node) {
        const NodeState& ns = cluster_.nodeAt(node);
        const int64_t cpuFree = ns.cpuCap - ns.cpuUsed, memFree = ns.memCap - ns.memUsed;
        if (svc_.cpu > 0 && svc_.cpu > cpuFree) {
            ++cpuFails_;
            cpuMostFree_ = std::max(cpuMostFree_, cpuFree);
            return false;
        }
        if (svc_.mem > 0 && svc_.mem > memFree) {
            ++memFails_;
            memMostFree_ = std::max(memMostFree_, memFree);
            return false;
        }
        return true;
    }

    /// Resources NODE would have left after one more replica: free cpu
    /// fraction + free memory fraction (a resource of capacity 0 adds nothing).
    double left(uint32_t node) const {
        const NodeState& ns = cluster_.nodeAt(node);
        double l = 0;
        if (ns.cpuCap > 0) l += double(ns.cpuCap - ns.cpuUsed - svc_.cpu) / double(ns.cpuCap);
        if (ns.memCap > 0) l += double(ns.memCap - ns.memUsed - svc_.mem) / double(ns.memCap);
        return l;
    }

    Key keyOf(uint32_t node) const {
        return spread_ ? Key{count_[node], -left(node), node} : Key{0, left(node), node};
    }

    DomainKey domainKey(uint32_t d) const { return {domains_[d].count, *domains_[d].nodes.begin(), d}; }

    void commit(uint32_t node, uint32_t d) {
        Domain& domain = domains_[d];
        ranked_.erase(domainKey(d));
        domain.nodes.erase(key_[node]);
        cluster_.hold(node, service_);
        ++count_[node];
        if (domainCounts_) ++domain.count;
        if (fits(node)) {
            key_[node] = keyOf(node);
            domain.nodes.insert(key_[node]);
        } else {
            --feasible_;
        }
        if (!domain.nodes.empty()) ranked_.insert(domainKey(d));
    }

    Cluster& cluster_;
    uint32_t service_;
    const ServiceState& svc_;
    bool spread_;
    bool domainCounts_ = false;      // spread over a label: domains are its values
    std::vector<int64_t> count_;     // replicas of the service per node
    std::vector<Key> key_;           // each feasible node's key in its domain's set
    std::vector<uint32_t> domainOf_;
    std::vector<Domain> domains_;
    std::set<DomainKey> ranked_;     // domains with a feasible node
    size_t feasible_ = 0;
    // Why nodes were filtered out, for whyNot.
    int down_ = 0, cpuFails_ = 0, memFails_ = 0;
    int64_t cpuMostFree_ = std::numeric_limits<int64_t>::min();
    int64_t memMostFree_ = std::numeric_limits<int64_t>::min();
    std::vector<int> constraintFails_, portFails_;
};

}  // namespace

Plan schedule(const std::vector<NodeInfo>& nodes, const std::vector<ServiceDemand>& services,
              const std::vector<Existing>& existing, const std::vector<Want>& wants) {
    Cluster cluster(nodes, services);

    // Wants in (service, slot) order, one per pair, their avoid lists merged.
    struct Wanted {
        const std::string* service;
        int slot;
        std::vector<uint32_t> avoid;  // node ranks
    };
    auto before = [](const std::string& s1, int slot1, const std::string& s2, int slot2) {
        int c = s1.compare(s2);
        return c != 0 ? c < 0 : slot1 < slot2;
    };
    std::vector<const Want*> sorted;
    sorted.reserve(wants.size());
    for (const Want& w : wants) sorted.push_back(&w);
    std::sort(sorted.begin(), sorted.end(),
              [&](const Want* a, const Want* b) { return before(a->service, a->slot, b->service, b->slot); });
    std::vector<Wanted> wanted;
    wanted.reserve(sorted.size());
    for (const Want* w : sorted) {
        if (wanted.empty() || *wanted.back().service != w->service || wanted.back().slot != w->slot)
            wanted.push_back({&w->service, w->slot, {}});
        for (const std::string& name : w->avoid)
            if (auto n = cluster.node(name)) wanted.back().avoid.push_back(*n);
    }
    auto isWanted = [&](const Existing& e) {
        auto it = std::lower_bound(wanted.begin(), wanted.end(), e, [&](const Wanted& w, const Existing& x) {
            return before(*w.service, w.slot, x.service, x.slot);
        });
        return it != wanted.end() && *it->service == e.service && it->slot == e.slot;
    };

    for (const Existing& e : existing) {
        auto n = cluster.node(e.node);
        auto s = cluster.service(e.service);
        if (!n || !s) continue;  // a node gone, or a service deleted: nothing known to hold
        cluster.hold(*n, *s);
        if (!isWanted(e)) cluster.serviceAt(*s).replicasOn.push_back(*n);
    }

    Plan plan;
    plan.placed.reserve(wanted.size());
    for (auto it = wanted.begin(); it != wanted.end();) {
        const std::string& name = *it->service;
        auto end = it;
        while (end != wanted.end() && *end->service == name) ++end;
        auto s = cluster.service(name);
        std::string reason = !s ? "unknown service" : cluster.serviceAt(*s).portError;
        if (!reason.empty()) {
            for (; it != end; ++it) plan.pending.push_back({name, it->slot, reason});
            continue;
        }
        ServiceRound round(cluster, *s);
        for (; it != end; ++it) {
            if (auto node = round.place(it->avoid)) {
                plan.placed.push_back({name, it->slot, cluster.nodeAt(*node).info->name});
            } else {
                // No node passed the filters, or the want avoids every one that did.
                plan.pending.push_back({name, it->slot, round.whyNot(round.feasible())});
            }
        }
    }
    return plan;
}

Result<std::vector<std::string>> hostPorts(const std::vector<std::string>& portMappings) {
    std::vector<std::string> out;
    for (const std::string& text : portMappings) {
        netns::PortMapping p = TRY(netns::parsePortMapping(text));
        std::string host = p.hostIp && p.hostIp->value != 0 ? p.hostIp->str() + ":" : "";
        out.push_back(host + std::to_string(p.hostPort) + "/" + p.protocol);
    }
    return out;
}

}  // namespace hull::orchestrator::core
