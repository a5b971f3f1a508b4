#include "netns/ipam.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

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

std::string recordJson(const Allocation& a) {
    json::Value v = json::Value::object();
    v.set("ip", a.ip.str());
    v.set("id", a.id);
    v.set("ifname", a.ifname);
    v.set("netns", a.netns);
    v.set("hostVeth", a.hostVeth);
    json::Value ports = json::Value::array();
    for (const auto& p : a.ports) ports.push(formatPortMapping(p));
    v.set("ports", std::move(ports));
    return v.dump() + "\n";
}

std::optional<Allocation> parseRecord(const std::string& text) {
    auto v = json::Value::parse(text);
    if (!v || !v->isObject()) return std::nullopt;
    auto str = [&](const char* k) { return json::stringOf(*v, k); };
    auto ip = Ipv4::parse(str("ip"));
    if (!ip) return std::nullopt;
    Allocation a{*ip, str("id"), str("ifname"), str("netns"), str("hostVeth"), {}};
    if (const json::Value* ports = v->find("ports"); ports && ports->isArray())
        for (const auto& p : ports->asArray())
            if (p.isString())
                if (auto m = parsePortMapping(p.asString())) a.ports.push_back(*m);
    return a;
}

Result<std::vector<Allocation>> readAll(const std::string& dir) {
    std::vector<Allocation> out;
    std::string ips = sys::joinPath(dir, "ips");
    for (const auto& name : sys::listDir(ips)) {
        if (!Ipv4::parse(name)) continue;  // temp files
        auto text = sys::readFile(sys::joinPath(ips, name));
        if (!text) continue;  // released meanwhile
        if (auto a = parseRecord(*text)) out.push_back(*a);
    }
    return out;
}

}  // namespace

Result<Allocation> Ipam::allocate(Allocation a) {
    auto lock = TRY(Lock::take(dir_));
    auto all = TRY(readAll(dir_));
    std::set<uint32_t> used;
    for (const auto& x : all) {
        if (x.id == a.id && x.ifname == a.ifname) return x;
        used.insert(x.ip.value);
    }
    std::string lastPath = sys::joinPath(dir_, "last");
    std::optional<Ipv4> last;
    if (auto t = sys::readFile(lastPath)) last = Ipv4::parse(sys::trim(*t));
    auto ip = nextFree(subnet_, gateway_, used, last);
    if (!ip) return fail(Error::plain(ENOSPC, "no free address left in " + subnet_.str()));
    a.ip = *ip;
    // Written whole to a temp name, then linked into place: a reader never sees half a record.
    std::string ips = sys::joinPath(dir_, "ips");
    std::string tmp = sys::joinPath(ips, ".new-" + std::to_string(::getpid()));
    TRY(sys::writeFile(tmp, recordJson(a), 0600));
    std::string final = sys::joinPath(ips, ip->str());
    if (::link(tmp.c_str(), final.c_str()) < 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return failErrno("record allocation " + final, e);
    }
    ::unlink(tmp.c_str());
    TRY(sys::writeFile(lastPath, ip->str() + "\n", 0600));
    return a;
}

Result<std::vector<Allocation>> Ipam::release(const std::string& id, const std::string& ifname) {
    auto lock = TRY(Lock::take(dir_));
    std::vector<Allocation> freed;
    for (const auto& x : TRY(readAll(dir_))) {
        if (x.id != id || (!ifname.empty() && x.ifname != ifname)) continue;
        std::string path = sys::joinPath(sys::joinPath(dir_, "ips"), x.ip.str());
        if (::unlink(path.c_str()) < 0 && errno != ENOENT) return failErrno("release " + path);
        freed.push_back(x);
    }
    return freed;
}

Result<std::vector<Allocation>> Ipam::list() {
    auto lock = TRY(Lock::take(dir_));
    return readAll(dir_);
}

}  // namespace hull::netns
