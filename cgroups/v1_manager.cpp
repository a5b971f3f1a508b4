#include "cgroups/v1_manager.hpp"

#include <signal.h>

#include <algorithm>
#include <thread>

#include <unistd.h>

#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::cgroups {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Result<std::vector<V1Hierarchy>> V1Manager::resolveHierarchies(
    const Layout& layout, const std::string& cgroupsPath, const std::vector<std::pair<std::string, std::string>>& own) {
    auto sub = TRY(util::cleanCgroupsPath(cgroupsPath));
    std::vector<V1Hierarchy> out;
    for (const auto& [controller, mount] : layout.v1Mounts) {
        auto it = std::find_if(out.begin(), out.end(), [&m = mount](const V1Hierarchy& h) { return h.mount == m; });
        if (it == out.end()) out.push_back({{controller}, false, mount, ""});
        else it->controllers.push_back(controller);
    }
    if (out.empty()) return failInvalid("no cgroup v1 hierarchies in the " + std::string(layoutName(layout.kind)) +
                                        " layout at " + layout.root);
    if (layout.kind == LayoutKind::Hybrid && !layout.unifiedMount.empty())
        out.push_back({{}, true, layout.unifiedMount, ""});
    // Absolute paths nest under our own placement too: on a shared host the
    // hierarchy above us belongs to someone else (here, the machine's supervisor).
    for (auto& h : out) {
        auto placement = util::placementBelowMount(
            h.unified ? util::ownPlacement(own, {""}) : util::ownPlacement(own, h.controllers),
            util::mountRootOf(layout.mountRoots, h.mount));
        h.dir = sys::joinPath(h.mount, sys::cleanPath(placement + sub));
    }
    return out;
}

const V1Hierarchy* V1Manager::hierarchy(const std::string& controller) const {
    for (const auto& h : hierarchies_)
        if (std::find(h.controllers.begin(), h.controllers.end(), controller) != h.controllers.end()) return &h;
    return nullptr;
}

std::string V1Manager::path(const std::string& controller) const {
    if (controller.empty()) return hierarchies_.empty() ? "" : hierarchies_.front().dir;
    auto* h = hierarchy(controller);
    return h ? h->dir : "";
}

// A new v1 cpuset starts with empty cpuset.cpus/mems and refuses tasks until both
// are set: copy them down from the nearest ancestor that has them.
Result<void> V1Manager::fillCpuset(const V1Hierarchy& h) {
    std::vector<std::string> chain{h.mount};
    std::string rel = h.dir.substr(h.mount.size());
    for (const auto& part : sys::split(rel, '/')) chain.push_back(sys::joinPath(chain.back(), part));
    for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
        std::string inherited;
        for (const auto& dir : chain) {
            auto value = sys::trim(TRY_CTX("set up cpuset " + h.dir, util::readControl(dir, file)));
            if (!value.empty()) {
                inherited = value;
                continue;
            }
            if (inherited.empty()) continue;
            TRY_CTX("set up cpuset " + h.dir, util::writeControl(dir, file, inherited));
            log::debugf("cgroup: %s/%s = %s (from its parent)", dir.c_str(), file, inherited.c_str());
            inherited = sys::trim(TRY_CTX("set up cpuset " + h.dir, util::readControl(dir, file)));
        }
        if (inherited.empty()) return failInvalid("set up cpuset " + h.dir + ": no ancestor has " + file);
    }
    return {};
}

Result<void> V1Manager::create() {
    for (const auto& h : hierarchies_) {
        TRY_CTX("create cgroup " + h.dir, sys::mkdirAll(h.dir));
        if (std::find(h.controllers.begin(), h.controllers.end(), "cpuset") != h.controllers.end())
            TRY(fillCpuset(h));
    }
    log::debugf("cgroup: created %s in %zu hierarchies", path().c_str(), hierarchies_.size());
    return {};
}

Result<void> V1Manager::attach(pid_t pid) {
    for (const auto& h : hierarchies_)
        TRY_CTX("attach pid " + std::to_string(pid) + " to cgroup " + h.dir,
                util::writeControl(h.dir, "cgroup.procs", std::to_string(pid)));
    return {};
}

Result<std::vector<pid_t>> V1Manager::pids() {
    // The union: a process moved out of one hierarchy by someone else is still ours.
    std::vector<pid_t> all;
    for (const auto& h : hierarchies_) {
        auto some = TRY(util::readPidsRecursive(h.dir));
        all.insert(all.end(), some.begin(), some.end());
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    return all;
}

Result<void> V1Manager::killAll(int signal) {
    const std::string what = "kill cgroup " + path();
    auto walk = [&] { return util::signalUntilStable([this] { return pids(); }, signal); };
    if (signal != SIGKILL || !hierarchy("freezer") || !sys::exists(hierarchy("freezer")->dir)) {
        TRY_CTX(what, walk());
        return {};
    }
    // An empty cgroup (the usual case after the init of a private PID namespace
    // has died: the kernel killed the rest) needs no freeze, which costs ~2 ms.
    if (TRY_CTX(what, pids()).empty()) return {};
    // No cgroup.kill in v1: freeze so nothing forks while we walk, signal, then
    // thaw (a frozen v1 task acts on SIGKILL only once thawed).
    auto frozenNow = freeze();
    if (!frozenNow) log::debugf("cgroup: %s: %s; signalling unfrozen", what.c_str(), frozenNow.error().message().c_str());
    auto sent = walk();
    if (frozenNow) TRY_CTX(what, thaw());
    TRY_CTX(what, std::move(sent));
    return {};
}

Result<bool> V1Manager::frozen() {
    auto* h = hierarchy("freezer");
    if (!h) return false;
    auto state = sys::trim(TRY(util::readControl(h->dir, "freezer.state")));
    return state == "FROZEN";
}

Result<void> V1Manager::setFrozen(bool on) {
    const std::string what = std::string(on ? "freeze" : "thaw") + " cgroup " + path();
    auto* h = hierarchy("freezer");
    if (!h) return fail(Error::plain(ENOTSUP, what + ": no v1 freezer hierarchy is mounted"));
    const char* want = on ? "FROZEN" : "THAWED";
    // freezer.state reads FREEZING until every task has stopped; a task that forks
    // meanwhile can leave it there, so the request is repeated now and then.
    const auto deadline = Clock::now() + timeout_;
    auto nextWrite = Clock::now();
    auto delay = milliseconds(1);
    std::string state;
    for (;;) {
        if (Clock::now() >= nextWrite) {
            TRY_CTX(what, util::writeControl(h->dir, "freezer.state", want));
            nextWrite = Clock::now() + milliseconds(100);
        }
        state = sys::trim(TRY_CTX(what, util::readControl(h->dir, "freezer.state")));
        if (state == want) {
            log::debugf("cgroup: %s done", what.c_str());
            return {};
        }
        if (Clock::now() >= deadline) break;
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, milliseconds(20));
    }
    // Do not leave a half-frozen container behind a failed freeze.
    if (on) (void)util::writeControl(h->dir, "freezer.state", "THAWED");
    return fail(Error::plain(ETIMEDOUT, what + ": " + sys::joinPath(h->dir, "freezer.state") + " still reads " +
                                            state + " after " + std::to_string(timeout_.count()) + " ms"));
}

Result<void> V1Manager::destroy() {
    // Every hierarchy is tried; the first failure is reported.
    Result<void> first;
    for (const auto& h : hierarchies_) {
        auto r = util::removeCgroupDir(h.dir);
        if (!r && first) first = std::move(r);
    }
    return first;
}

Result<void> V1Manager::apply(const Resources& r) {
    auto plan = TRY(planV1(r));
    for (const auto& n : plan.notes) {
        if (n.fatal) return failInvalid(n.field + ": " + n.message);
        log::warnf("%s: %s", n.field.c_str(), n.message.c_str());
    }
    auto write = [&](const ControlWrite& w) -> Result<void> {
        const V1Hierarchy* h = hierarchy(w.controller);
        std::string file = w.file;
        if (!h && w.controller == "hugetlb") {
            // A hybrid host may keep hugetlb on its cgroup2 mount (this one does).
            auto it = std::find_if(hierarchies_.begin(), hierarchies_.end(), [](const V1Hierarchy& x) { return x.unified; });
            if (it != hierarchies_.end()) {
                h = &*it;
                file = file.substr(0, file.rfind(".limit_in_bytes")) + ".max";
            }
        }
        if (!h)
            return failInvalid("linux.resources: " + w.file + ": no cgroup v1 hierarchy with the " + w.controller +
                               " controller is mounted");
        auto res = util::writeControl(h->dir, file, w.value);
        if (!res) return fail(std::move(res.error()).context("linux.resources: set " + file + " to \"" + w.value + "\""));
        return {};
    };
    const auto& ws = plan.writes;
    for (size_t i = 0; i < ws.size(); ++i) {
        const auto& w = ws[i];
        if (w.file == "memory.memsw.limit_in_bytes") {
            // Without swap accounting the file is missing: only "no swap beyond
            // the limit" or "unlimited" can be honoured then.
            auto* h = hierarchy("memory");
            if (h && !sys::exists(sys::joinPath(h->dir, w.file))) {
                log::warnf("linux.resources.memory.swap: the kernel has no swap accounting (%s); ignored",
                           w.file.c_str());
                continue;
            }
        }
        if (w.file == "memory.limit_in_bytes" && i + 1 < ws.size() && ws[i + 1].file == "memory.memsw.limit_in_bytes") {
            // The kernel keeps limit <= memsw at every step: raising both needs
            // memsw first, lowering both needs the limit first.
            auto first = write(w);
            if (!first && first.error().errnum() == EINVAL) {
                TRY(write(ws[i + 1]));
                TRY(write(w));
                ++i;
                continue;
            }
            TRY(std::move(first));
            continue;
        }
        TRY(write(w));
    }
    return {};
}

Result<Stats> V1Manager::stats() {
    Stats s;
    auto read = [&](const char* controller, const char* file) -> std::string {
        auto* h = hierarchy(controller);
        return h ? util::readControl(h->dir, file).value_or("") : "";
    };
    if (auto* h = hierarchy("memory"); !h || !sys::exists(h->dir))
        return fail(Error::plain(ENOENT, "cgroup " + path("memory") + " does not exist"));
    // cpuacct.usage is in ns; cpuacct.stat in USER_HZ ticks.
    s.cpu.usageUsec = parseLimit(read("cpuacct", "cpuacct.usage")).value_or(0) / 1000;
    auto ticks = parseFlatKeyed(read("cpuacct", "cpuacct.stat"));
    const uint64_t usecPerTick = 1000000 / uint64_t(std::max(1L, ::sysconf(_SC_CLK_TCK)));
    s.cpu.userUsec = ticks["user"] * usecPerTick;
    s.cpu.systemUsec = ticks["system"] * usecPerTick;
    auto cpu = parseFlatKeyed(read("cpu", "cpu.stat"));
    s.cpu.periods = cpu["nr_periods"];
    s.cpu.throttledPeriods = cpu["nr_throttled"];
    s.cpu.throttledUsec = cpu["throttled_time"] / 1000;
    s.memory.usage = parseLimit(read("memory", "memory.usage_in_bytes")).value_or(0);
    s.memory.maxUsage = parseLimit(read("memory", "memory.max_usage_in_bytes")).value_or(0);
    s.memory.limit = parseLimit(read("memory", "memory.limit_in_bytes")).value_or(0);
    uint64_t memsw = parseLimit(read("memory", "memory.memsw.usage_in_bytes")).value_or(0);
    s.memory.swapUsage = memsw > s.memory.usage ? memsw - s.memory.usage : 0;
    s.memory.swapLimit = parseLimit(read("memory", "memory.memsw.limit_in_bytes")).value_or(0);
    s.memory.raw = parseFlatKeyed(read("memory", "memory.stat"));
    // v1 counts OOM kills (4.13+); an OOM that killed nothing is not counted.
    auto oom = parseFlatKeyed(read("memory", "memory.oom_control"));
    s.memory.oomKill = oom["oom_kill"];
    s.memory.oom = s.memory.oomKill;
    s.pids.current = parseLimit(read("pids", "pids.current")).value_or(0);
    s.pids.limit = parseLimit(read("pids", "pids.max")).value_or(0);
    addBlkioV1(s.io, read("blkio", "blkio.throttle.io_service_bytes"), true);
    addBlkioV1(s.io, read("blkio", "blkio.throttle.io_serviced"), false);
    return s;
}

}  // namespace hull::cgroups
