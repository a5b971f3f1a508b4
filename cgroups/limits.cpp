#include "cgroups/limits.hpp"

#include <algorithm>
#include <charconv>

#include "sys/fs.hpp"
#include "sys/json.hpp"

namespace hull::cgroups {

namespace {

const std::string kRes = "linux.resources.";

std::string num(uint64_t v) { return std::to_string(v); }
std::string num(int64_t v) { return std::to_string(v); }

std::string devKey(int64_t major, int64_t minor) { return std::to_string(major) + ":" + std::to_string(minor); }

/// "2MB" -> "2MB" as the kernel spells hugetlb files; refuse anything that
/// could leave the cgroup directory.
Result<std::string> hugepageFilePart(const std::string& pageSize, size_t i) {
    bool ok = !pageSize.empty() && std::all_of(pageSize.begin(), pageSize.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    });
    if (!ok)
        return failInvalid(kRes + "hugepageLimits[" + std::to_string(i) + "].pageSize: \"" + pageSize +
                           "\" is not a page size like \"2MB\"");
    return pageSize;
}

/// unified keys are file names in the container's own cgroup directory.
Result<void> checkUnifiedKey(const std::string& key) {
    bool ok = !key.empty() && key.find('/') == std::string::npos && key != "." && key != ".." &&
              key.find('.') != std::string::npos && key.rfind("cgroup.", 0) != 0;
    // cgroup.* files are the kernel's interface for the tree itself (procs,
    // subtree_control, kill); writing them from a config is not a limit.
    if (!ok) return failInvalid(kRes + "unified: key \"" + key + "\" is not a controller file name like \"memory.high\"");
    return {};
}

/// v1's swap counts memory plus swap (both versions refuse less than the limit).
Result<void> checkSwap(const MemoryLimits& m) {
    if (m.limit && m.swap && *m.swap >= 0 && *m.limit >= 0 && *m.swap < *m.limit)
        return failInvalid(kRes + "memory.swap: " + std::to_string(*m.swap) +
                           " is below memory.limit (swap counts memory plus swap)");
    return {};
}

/// rdma.max is the same file on v1 and v2: "mlx5_0 hca_handle=2 hca_object=2000".
std::string rdmaValue(const std::string& device, const RdmaLimit& l) {
    std::string v = device;
    if (l.hcaHandles) v += " hca_handle=" + std::to_string(*l.hcaHandles);
    if (l.hcaObjects) v += " hca_object=" + std::to_string(*l.hcaObjects);
    return v;
}

}  // namespace

uint64_t cpuWeightFromShares(uint64_t shares) {
    if (shares == 0) return 0;
    shares = std::clamp<uint64_t>(shares, 2, 262144);
    // Linear map of [2, 262144] onto [1, 10000] (the kernel's own documented ranges).
    return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t ioWeightFromBlkioWeight(uint64_t weight) {
    if (weight == 0) return 0;
    weight = std::clamp<uint64_t>(weight, 10, 1000);
    return 1 + ((weight - 10) * 9999) / 990;
}

std::string limitValue(int64_t v) { return v < 0 ? "max" : std::to_string(v); }

std::optional<std::string> swapMaxV2(std::optional<int64_t> limit, int64_t swap) {
    if (swap < 0) return std::string("max");
    if (!limit || *limit < 0) return std::nullopt;
    // A swap below the memory limit is refused earlier (validation); equal means no swap.
    return std::to_string(swap > *limit ? swap - *limit : 0);
}

std::string cpuMaxValue(std::optional<int64_t> quota, std::optional<uint64_t> period) {
    std::string q = quota && *quota > 0 ? std::to_string(*quota) : "max";
    return q + " " + std::to_string(period && *period > 0 ? *period : 100000);
}

Result<Plan> planV2(const Resources& r) {
    Plan p;
    auto add = [&](const char* controller, std::string file, std::string value) {
        p.writes.push_back({controller, std::move(file), std::move(value)});
    };
    auto note = [&](std::string field, std::string message, bool fatal = false) {
        p.notes.push_back({kRes + field, std::move(message), fatal});
    };
    if (r.memory) {
        const auto& m = *r.memory;
        TRY(checkSwap(m));
        // memory.low before memory.max: a reservation above the new limit is the kernel's call, not an ordering accident.
        if (m.reservation) add("memory", "memory.low", limitValue(*m.reservation));
        if (m.limit) add("memory", "memory.max", limitValue(*m.limit));
        if (m.swap) {
            if (auto v = swapMaxV2(m.limit, *m.swap)) add("memory", "memory.swap.max", *v);
            else note("memory.swap", "a swap limit without a memory limit has no cgroup v2 equivalent; ignored");
        }
        if (m.disableOOMKiller && *m.disableOOMKiller)
            note("memory.disableOOMKiller", "cgroup v2 has no switch to disable the OOM killer; ignored");
        if (m.swappiness) note("memory.swappiness", "cgroup v2 has no per-cgroup swappiness; ignored");
        if (m.kernel || m.kernelTCP) note("memory.kernel", "kernel memory limits are not supported by cgroup v2; ignored");
    }
    if (r.cpu) {
        const auto& c = *r.cpu;
        if (c.shares && *c.shares) add("cpu", "cpu.weight", num(cpuWeightFromShares(*c.shares)));
        if (c.quota || c.period) add("cpu", "cpu.max", cpuMaxValue(c.quota, c.period));
        if (c.burst) add("cpu", "cpu.max.burst", num(*c.burst));
        if (c.idle) add("cpu", "cpu.idle", num(*c.idle));
        if ((c.realtimeRuntime && *c.realtimeRuntime) || (c.realtimePeriod && *c.realtimePeriod))
            note("cpu.realtimeRuntime", "realtime CPU limits do not exist in cgroup v2", true);
        if (!c.cpus.empty()) add("cpuset", "cpuset.cpus", c.cpus);
        if (!c.mems.empty()) add("cpuset", "cpuset.mems", c.mems);
    }
    if (r.pidsLimit) add("pids", "pids.max", *r.pidsLimit > 0 ? num(*r.pidsLimit) : "max");
    if (r.blockIO) {
        const auto& b = *r.blockIO;
        if (b.weight && *b.weight) add("io", "io.weight", "default " + num(ioWeightFromBlkioWeight(*b.weight)));
        for (const auto& d : b.weightDevice)
            if (d.weight && *d.weight)
                add("io", "io.weight", devKey(d.major, d.minor) + " " + num(ioWeightFromBlkioWeight(*d.weight)));
        const std::pair<const std::vector<ThrottleDevice>*, const char*> throttles[] = {
            {&b.throttleReadBpsDevice, "rbps"},
            {&b.throttleWriteBpsDevice, "wbps"},
            {&b.throttleReadIOPSDevice, "riops"},
            {&b.throttleWriteIOPSDevice, "wiops"},
        };
        for (const auto& [list, key] : throttles)
            for (const auto& d : *list)
                add("io", "io.max",
                    devKey(d.major, d.minor) + " " + key + "=" + (d.rate ? std::to_string(d.rate) : "max"));
    }
    for (size_t i = 0; i < r.hugepageLimits.size(); ++i) {
        auto size = TRY(hugepageFilePart(r.hugepageLimits[i].pageSize, i));
        add("hugetlb", "hugetlb." + size + ".max", num(r.hugepageLimits[i].limit));
    }
    for (const auto& [device, l] : r.rdma) add("rdma", "rdma.max", rdmaValue(device, l));
    if (r.network && (r.network->classID || !r.network->priorities.empty()))
        note("network", "net_cls and net_prio do not exist in cgroup v2; ignored");
    // devices: no control file on v2; V2Manager::apply attaches an eBPF filter instead.
    for (const auto& [key, value] : r.unified) {
        TRY(checkUnifiedKey(key));
        add(key.substr(0, key.find('.')).c_str(), key, value);
    }
    return p;
}

Result<Plan> planV1(const Resources& r) {
    Plan p;
    auto add = [&](const char* controller, std::string file, std::string value) {
        p.writes.push_back({controller, std::move(file), std::move(value)});
    };
    auto note = [&](std::string field, std::string message, bool fatal = false) {
        p.notes.push_back({kRes + field, std::move(message), fatal});
    };
    if (!r.devices.empty()) {
        for (size_t i = 0; i < r.devices.size(); ++i) {
            const auto& d = r.devices[i];
            std::string type = d.type.empty() ? "a" : d.type;
            std::string rule = type + " " + (d.major ? std::to_string(*d.major) : "*") + ":" +
                               (d.minor ? std::to_string(*d.minor) : "*") + " " +
                               (d.access.empty() ? "rwm" : d.access);
            // "a" takes no major:minor in devices.allow/deny.
            if (type == "a") rule = "a";
            add("devices", d.allow ? "devices.allow" : "devices.deny", rule);
        }
    }
    if (r.memory) {
        const auto& m = *r.memory;
        TRY(checkSwap(m));
        // The kernel keeps memsw >= limit at every step: the manager orders the
        // two writes by the current values (see V1Manager::apply).
        if (m.limit) add("memory", "memory.limit_in_bytes", num(*m.limit < 0 ? int64_t(-1) : *m.limit));
        if (m.swap) add("memory", "memory.memsw.limit_in_bytes", num(*m.swap < 0 ? int64_t(-1) : *m.swap));
        if (m.reservation) add("memory", "memory.soft_limit_in_bytes", num(*m.reservation < 0 ? int64_t(-1) : *m.reservation));
        if (m.swappiness && *m.swappiness <= 100) add("memory", "memory.swappiness", num(*m.swappiness));
        if (m.disableOOMKiller && *m.disableOOMKiller) add("memory", "memory.oom_control", "1");
        if (m.kernel || m.kernelTCP) note("memory.kernel", "kernel memory limits are deprecated by the kernel; ignored");
    }
    if (r.cpu) {
        const auto& c = *r.cpu;
        if (c.shares && *c.shares) add("cpu", "cpu.shares", num(*c.shares));
        if (c.period && *c.period) add("cpu", "cpu.cfs_period_us", num(*c.period));
        if (c.quota) add("cpu", "cpu.cfs_quota_us", num(*c.quota > 0 ? *c.quota : int64_t(-1)));
        if (c.burst) add("cpu", "cpu.cfs_burst_us", num(*c.burst));
        if (c.realtimePeriod && *c.realtimePeriod) add("cpu", "cpu.rt_period_us", num(*c.realtimePeriod));
        if (c.realtimeRuntime) add("cpu", "cpu.rt_runtime_us", num(*c.realtimeRuntime));
        if (c.idle) add("cpu", "cpu.idle", num(*c.idle));
        if (!c.cpus.empty()) add("cpuset", "cpuset.cpus", c.cpus);
        if (!c.mems.empty()) add("cpuset", "cpuset.mems", c.mems);
    }
    if (r.pidsLimit) add("pids", "pids.max", *r.pidsLimit > 0 ? num(*r.pidsLimit) : "max");
    if (r.blockIO) {
        const auto& b = *r.blockIO;
        if (b.weight && *b.weight) add("blkio", "blkio.weight", num(uint64_t(*b.weight)));
        if (b.leafWeight && *b.leafWeight) add("blkio", "blkio.leaf_weight", num(uint64_t(*b.leafWeight)));
        for (const auto& d : b.weightDevice) {
            if (d.weight) add("blkio", "blkio.weight_device", devKey(d.major, d.minor) + " " + num(uint64_t(*d.weight)));
            if (d.leafWeight)
                add("blkio", "blkio.leaf_weight_device", devKey(d.major, d.minor) + " " + num(uint64_t(*d.leafWeight)));
        }
        const std::pair<const std::vector<ThrottleDevice>*, const char*> throttles[] = {
            {&b.throttleReadBpsDevice, "blkio.throttle.read_bps_device"},
            {&b.throttleWriteBpsDevice, "blkio.throttle.write_bps_device"},
            {&b.throttleReadIOPSDevice, "blkio.throttle.read_iops_device"},
            {&b.throttleWriteIOPSDevice, "blkio.throttle.write_iops_device"},
        };
        for (const auto& [list, file] : throttles)
            for (const auto& d : *list) add("blkio", file, devKey(d.major, d.minor) + " " + num(d.rate));
    }
    for (size_t i = 0; i < r.hugepageLimits.size(); ++i) {
        auto size = TRY(hugepageFilePart(r.hugepageLimits[i].pageSize, i));
        add("hugetlb", "hugetlb." + size + ".limit_in_bytes", num(r.hugepageLimits[i].limit));
    }
    if (r.network) {
        if (r.network->classID) add("net_cls", "net_cls.classid", num(uint64_t(*r.network->classID)));
        for (const auto& prio : r.network->priorities)
            add("net_prio", "net_prio.ifpriomap", prio.name + " " + num(uint64_t(prio.priority)));
    }
    for (const auto& [device, l] : r.rdma) add("rdma", "rdma.max", rdmaValue(device, l));
    if (!r.unified.empty()) note("unified", "the unified map needs cgroup v2; refused on a v1 host", true);
    return p;
}

// ---- statistics --------------------------------------------------------------

namespace {
std::optional<uint64_t> toU64(std::string_view s) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}
}  // namespace

std::map<std::string, uint64_t> parseFlatKeyed(std::string_view text) {
    std::map<std::string, uint64_t> out;
    for (const auto& line : sys::split(text, '\n')) {
        auto sp = line.find(' ');
        if (sp == std::string::npos) continue;
        if (auto v = toU64(sys::trim(line.substr(sp + 1)))) out[line.substr(0, sp)] = *v;
    }
    return out;
}

std::optional<uint64_t> parseLimit(std::string_view text) {
    auto t = sys::trim(text);
    if (t == "max") return 0;
    auto v = toU64(t);
    // v1 reports "unlimited" as the largest page-aligned value (0x7FFFFFFFFFFFF000).
    if (v && *v >= (uint64_t(1) << 62)) return 0;
    return v;
}

std::vector<Stats::IoDevice> parseIoStat(std::string_view text) {
    std::vector<Stats::IoDevice> out;
    for (const auto& line : sys::split(text, '\n')) {
        auto fields = sys::split(line, ' ');
        if (fields.empty()) continue;
        auto colon = fields[0].find(':');
        if (colon == std::string::npos) continue;
        auto major = toU64(std::string_view(fields[0]).substr(0, colon));
        auto minor = toU64(std::string_view(fields[0]).substr(colon + 1));
        if (!major || !minor) continue;
        Stats::IoDevice d;
        d.major = *major;
        d.minor = *minor;
        for (size_t i = 1; i < fields.size(); ++i) {
            auto eq = fields[i].find('=');
            if (eq == std::string::npos) continue;
            auto v = toU64(std::string_view(fields[i]).substr(eq + 1));
            if (!v) continue;
            std::string_view k = std::string_view(fields[i]).substr(0, eq);
            if (k == "rbytes") d.rbytes = *v;
            else if (k == "wbytes") d.wbytes = *v;
            else if (k == "rios") d.rios = *v;
            else if (k == "wios") d.wios = *v;
        }
        out.push_back(d);
    }
    return out;
}

void addBlkioV1(std::vector<Stats::IoDevice>& into, std::string_view text, bool bytes) {
    for (const auto& line : sys::split(text, '\n')) {
        auto fields = sys::split(line, ' ');
        if (fields.size() != 3) continue;  // "Total N" lines have two
        auto colon = fields[0].find(':');
        if (colon == std::string::npos) continue;
        auto major = toU64(std::string_view(fields[0]).substr(0, colon));
        auto minor = toU64(std::string_view(fields[0]).substr(colon + 1));
        auto v = toU64(fields[2]);
        if (!major || !minor || !v) continue;
        auto it = std::find_if(into.begin(), into.end(),
                               [&](const Stats::IoDevice& d) { return d.major == *major && d.minor == *minor; });
        if (it == into.end()) {
            into.push_back({});
            it = into.end() - 1;
            it->major = *major;
            it->minor = *minor;
        }
        if (fields[1] == "Read") (bytes ? it->rbytes : it->rios) += *v;
        else if (fields[1] == "Write") (bytes ? it->wbytes : it->wios) += *v;
    }
}

std::string statsJson(const Stats& s) {
    using json::Value;
    Value cpu = Value::object();
    Value usage = Value::object();
    // runc reports nanoseconds.
    usage.set("total", s.cpu.usageUsec * 1000);
    usage.set("kernel", s.cpu.systemUsec * 1000);
    usage.set("user", s.cpu.userUsec * 1000);
    cpu.set("usage", std::move(usage));
    Value thr = Value::object();
    thr.set("periods", s.cpu.periods);
    thr.set("throttledPeriods", s.cpu.throttledPeriods);
    thr.set("throttledTime", s.cpu.throttledUsec * 1000);
    cpu.set("throttling", std::move(thr));

    Value mem = Value::object();
    Value mu = Value::object();
    mu.set("limit", s.memory.limit);
    mu.set("usage", s.memory.usage);
    mu.set("max", s.memory.maxUsage);
    mem.set("usage", std::move(mu));
    Value sw = Value::object();
    sw.set("limit", s.memory.swapLimit);
    sw.set("usage", s.memory.swapUsage);
    mem.set("swap", std::move(sw));
    Value raw = Value::object();
    for (const auto& [k, v] : s.memory.raw) raw.set(k, v);
    mem.set("raw", std::move(raw));
    Value events = Value::object();
    events.set("oom", s.memory.oom);
    events.set("oom_kill", s.memory.oomKill);
    mem.set("events", std::move(events));

    Value pids = Value::object();
    pids.set("current", s.pids.current);
    pids.set("limit", s.pids.limit);

    Value blkio = Value::object();
    Value bytes = Value::array(), ios = Value::array();
    for (const auto& d : s.io) {
        auto entry = [&](const char* op, uint64_t v) {
            Value e = Value::object();
            e.set("major", d.major);
            e.set("minor", d.minor);
            e.set("op", op);
            e.set("value", v);
            return e;
        };
        bytes.push(entry("Read", d.rbytes));
        bytes.push(entry("Write", d.wbytes));
        ios.push(entry("Read", d.rios));
        ios.push(entry("Write", d.wios));
    }
    blkio.set("ioServiceBytesRecursive", std::move(bytes));
    blkio.set("ioServicedRecursive", std::move(ios));

    Value out = Value::object();
    out.set("cpu", std::move(cpu));
    out.set("memory", std::move(mem));
    out.set("pids", std::move(pids));
    out.set("blkio", std::move(blkio));
    return out.dump();
}

}  // namespace hull::cgroups
