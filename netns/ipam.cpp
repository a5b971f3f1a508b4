#include "netns/ipam.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <utility>

#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/unique_fd.hpp"

namespace hull::netns {

std::optional<Ipv4> nextFree(const Cidr& subnet, Ipv4 gateway, const std::set<uint32_t>& used,
                             std::optional<Ipv4> last) {
    uint32_t first = subnet.firstHost().value, lastHost = subnet.lastHost().value;
    if (lastHost < first) return std::nullopt;
    uint64_t count = uint64_t(lastHost) - first + 1;
    uint32_t start = last && subnet.contains(*last) && last->value >= first && last->value < lastHost
                         ? last->value + 1
                         : first;
    for (uint64_t i = 0; i < count; ++i) {
        uint32_t ip = uint32_t(first + (uint64_t(start - first) + i) % count);
        if (ip == gateway.value || used.count(ip)) continue;
        return Ipv4{ip};
    }
    return std::nullopt;
}

std::optional<Ipv6> nextFree(const Cidr6& subnet, Ipv6 gateway, const std::set<Ipv6>& used,
                             std::optional<Ipv6> last) {
    const uint64_t first = 1, lastOff = subnet.lastOffset();
    if (lastOff < first) return std::nullopt;
    const uint64_t count = lastOff - first + 1;  // < 2^64: offset 0 is never handed out
    auto lastAt = last ? subnet.offsetOf(*last) : std::nullopt;
    const uint64_t rel = lastAt && *lastAt >= first && *lastAt < lastOff ? *lastAt + 1 - first : 0;
    // Only the gateway and USED can be skipped, so a free address turns up
    // within used.size() + 2 steps: no walk over 2^64 offsets.
    const uint64_t steps = std::min<uint64_t>(count, used.size() + 2);
    for (uint64_t i = 0; i < steps; ++i) {
        uint64_t off = first + (i < count - rel ? rel + i : i - (count - rel));  // (rel + i) mod count, no overflow
        Ipv6 ip = *subnet.nth(off);
        if (ip == gateway || used.count(ip)) continue;
        return ip;
    }
    return std::nullopt;
}

namespace {

class Lock {
public:
    static Result<Lock> take(const std::string& dir) {
        TRY(sys::mkdirAll(sys::joinPath(dir, "ips"), 0700));
        std::string path = sys::joinPath(dir, "lock");
        UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!fd) return failErrno("open " + path);
        while (::flock(fd.get(), LOCK_EX) < 0)
            if (errno != EINTR) return failErrno("lock " + path);
        return Lock(std::move(fd));
    }

private:
    explicit Lock(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;  // closing releases the flock
};

/// The record of one address: IP is A.ip's text, or A.ip6's for the IPv6
/// record, which carries no ports (they are published to the IPv4 address).
std::string recordJson(const Allocation& a, const std::string& ip) {
    json::Value v = json::Value::object();
    v.set("ip", ip);
    v.set("id", a.id);
    v.set("ifname", a.ifname);
    v.set("netns", a.netns);
    v.set("hostVeth", a.hostVeth);
    json::Value ports = json::Value::array();
    if (ip == a.ip.str())
        for (const auto& p : a.ports) ports.push(formatPortMapping(p));
    v.set("ports", std::move(ports));
    if (ip == a.ip.str() && !a.groups.empty()) {
        json::Value groups = json::Value::array();
        for (const auto& g : a.groups) groups.push(g);
        v.set("groups", std::move(groups));
    }
    return v.dump() + "\n";
}

/// One record file; its address goes to .ip or .ip6 by family.
std::optional<Allocation> parseRecord(const std::string& text) {
    auto v = json::Value::parse(text);
    if (!v || !v->isObject()) return std::nullopt;
    auto str = [&](const char* k) { return json::stringOf(*v, k); };
    Allocation a{{}, str("id"), str("ifname"), str("netns"), str("hostVeth"), {}, {}, json::stringsOf(v->find("groups"))};
    if (auto ip = Ipv4::parse(str("ip"))) a.ip = *ip;
    else if (auto ip6 = Ipv6::parse(str("ip"))) a.ip6 = *ip6;
    else return std::nullopt;
    if (const json::Value* ports = v->find("ports"); ports && ports->isArray())
        for (const auto& p : ports->asArray())
            if (p.isString())
                if (auto m = parsePortMapping(p.asString())) a.ports.push_back(*m);
    return a;
}

/// Every container interface's allocation: the IPv4 records in directory
/// order, each joined by its IPv6 record if it has one. An IPv6 record alone
/// (a crash between writing the two) is listed too, with ip 0.0.0.0, so
/// release and gc still find it.
Result<std::vector<Allocation>> readAll(const std::string& dir) {
    std::vector<Allocation> out, six;
    std::string ips = sys::joinPath(dir, "ips");
    for (const auto& name : sys::listDir(ips)) {
        if (!Ipv4::parse(name) && !Ipv6::parse(name)) continue;  // temp files
        auto text = sys::readFile(sys::joinPath(ips, name));
        if (!text) continue;  // released meanwhile
        if (auto a = parseRecord(*text)) (a->ip6 ? six : out).push_back(*a);
    }
    std::map<std::pair<std::string, std::string>, size_t> at;  // (id, ifname) -> index in OUT
    for (size_t i = 0; i < out.size(); ++i) at.emplace(std::make_pair(out[i].id, out[i].ifname), i);
    for (const auto& s : six) {
        if (auto it = at.find({s.id, s.ifname}); it != at.end() && !out[it->second].ip6) out[it->second].ip6 = s.ip6;
        else out.push_back(s);
    }
    return out;
}

/// Write RECORD whole to a temp name, then link it to ips/NAME: a reader never
/// sees half a record, and an address someone holds is never taken (EEXIST).
Result<void> linkRecord(const std::string& dir, const std::string& name, const std::string& record) {
    std::string ips = sys::joinPath(dir, "ips");
    std::string tmp = sys::joinPath(ips, ".new-" + std::to_string(::getpid()));
    TRY(sys::writeFile(tmp, record, 0600));
    std::string final = sys::joinPath(ips, name);
    if (::link(tmp.c_str(), final.c_str()) < 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return failErrno("record allocation " + final, e);
    }
    ::unlink(tmp.c_str());
    return {};
}

}  // namespace

Result<Allocation> Ipam::allocate(Allocation a) {
    auto lock = TRY(Lock::take(dir_));
    auto all = TRY(readAll(dir_));
    std::set<uint32_t> used;
    std::set<Ipv6> used6;
    std::optional<Allocation> held;
    for (const auto& x : all) {
        if (x.id == a.id && x.ifname == a.ifname) held = x;
        if (x.ip.value) used.insert(x.ip.value);
        if (x.ip6) used6.insert(*x.ip6);
    }
    // What this interface holds already is kept; only a missing family is added.
    bool need4 = !held || !held->ip.value, need6 = subnet6_ && (!held || !held->ip6);
    if (!need4 && !need6) return *held;
    if (held) a = *held;
    if (need4) {
        std::string lastPath = sys::joinPath(dir_, "last");
        std::optional<Ipv4> last;
        if (auto t = sys::readFile(lastPath)) last = Ipv4::parse(sys::trim(*t));
        auto ip = nextFree(subnet_, gateway_, used, last);
        if (!ip) return fail(Error::plain(ENOSPC, "no free address left in " + subnet_.str()));
        a.ip = *ip;
        TRY(linkRecord(dir_, ip->str(), recordJson(a, ip->str())));
        TRY(sys::writeFile(lastPath, ip->str() + "\n", 0600));
    }
    if (need6) {
        std::string lastPath = sys::joinPath(dir_, "last6");
        std::optional<Ipv6> last;
        if (auto t = sys::readFile(lastPath)) last = Ipv6::parse(sys::trim(*t));
        auto ip = nextFree(*subnet6_, subnet6_->firstHost(), used6, last);
        // The IPv4 record just written stays: the caller's rollback (or gc) releases the id.
        if (!ip) return fail(Error::plain(ENOSPC, "no free address left in " + subnet6_->str()));
        a.ip6 = *ip;
        TRY(linkRecord(dir_, ip->str(), recordJson(a, ip->str())));
        TRY(sys::writeFile(lastPath, ip->str() + "\n", 0600));
    }
    return a;
}

Result<std::vector<Allocation>> Ipam::release(const std::string& id, const std::string& ifname) {
    auto lock = TRY(Lock::take(dir_));
    std::vector<Allocation> freed;
    for (const auto& x : TRY(readAll(dir_))) {
        if (x.id != id || (!ifname.empty() && x.ifname != ifname)) continue;
        // IPv6 first: a crash in between leaves the IPv4 record, the usual kind.
        for (const auto& name : {x.ip6 ? x.ip6->str() : "", x.ip.value ? x.ip.str() : ""}) {
            if (name.empty()) continue;
            std::string path = sys::joinPath(sys::joinPath(dir_, "ips"), name);
            if (::unlink(path.c_str()) < 0 && errno != ENOENT) return failErrno("release " + path);
        }
        freed.push_back(x);
    }
    return freed;
}

Result<std::vector<Allocation>> Ipam::list() {
    auto lock = TRY(Lock::take(dir_));
    return readAll(dir_);
}

}  // namespace hull::netns
