#include "cgroups/v2_manager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "cgroups/device_filter.hpp"
#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::cgroups {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Result<std::string> V2Manager::resolvePath(const std::string& unifiedMount, const std::string& cgroupsPath,
                                           const std::vector<std::pair<std::string, std::string>>& own,
                                           const std::string& mountRoot) {
    if (unifiedMount.empty()) return failInvalid("no cgroup2 hierarchy mounted");
    auto sub = TRY(util::cleanCgroupsPath(cgroupsPath));
    std::string base = "/";
    if (cgroupsPath.front() != '/') {
        base = util::placementBelowMount(util::ownPlacement(own, {""}), mountRoot);
        base = base == "/" ? base : base.substr(0, base.rfind('/') + 1);
    }
    return sys::joinPath(unifiedMount, sys::cleanPath(base + sub));
}

Result<void> V2Manager::create() {
    TRY_CTX("create cgroup " + dir_, sys::mkdirAll(dir_));
    enableControllers();
    log::debugf("cgroup: created %s", dir_.c_str());
    return {};
}

void V2Manager::enableControllers() {
    if (dir_.size() <= mount_.size() || dir_.compare(0, mount_.size(), mount_) != 0) return;
    std::string at = mount_;
    for (const auto& part : sys::split(std::string_view(dir_).substr(mount_.size()), '/')) {
        auto offered = util::readControl(at, "cgroup.controllers");
        auto enabled = util::readControl(at, "cgroup.subtree_control");
        if (offered && enabled) {
            auto on = sys::split(sys::trim(*enabled), ' ');
            for (const auto& c : sys::split(sys::trim(*offered), ' ')) {
                if (std::find(on.begin(), on.end(), c) != on.end()) continue;
                // One at a time: a write naming several fails whole when one is refused.
                auto r = util::writeControl(at, "cgroup.subtree_control", "+" + c);
                if (!r) log::debugf("cgroup: enable %s in %s: %s", c.c_str(), at.c_str(), r.error().message().c_str());
            }
        }
        at = sys::joinPath(at, part);
    }
}

Result<void> V2Manager::apply(const Resources& r) {
    auto plan = TRY(planV2(r));
    for (const auto& n : plan.notes) {
        if (n.fatal) return failInvalid(n.field + ": " + n.message);
        log::warnf("%s: %s", n.field.c_str(), n.message.c_str());
    }
    for (auto w : plan.writes) {
        // cpu.max holds quota and period together: an update giving one keeps
        // the other as it is (v1 keeps them in two files and gets that for free).
        if (w.file == "cpu.max" && r.cpu && (!r.cpu->quota || !r.cpu->period)) {
            auto cur = sys::split(sys::trim(util::readControl(dir_, "cpu.max").value_or("")), ' ');
            if (cur.size() == 2) {
                auto parts = sys::split(w.value, ' ');
                w.value = (r.cpu->quota ? parts[0] : cur[0]) + " " + (r.cpu->period ? parts[1] : cur[1]);
            }
        }
        auto res = util::writeControl(dir_, w.file, w.value);
        if (res) continue;
        if (res.error().errnum() == ENOENT) {
            auto offered = util::readControl(dir_, "cgroup.controllers").value_or("");
            return failInvalid("linux.resources: " + sys::joinPath(dir_, w.file) + " does not exist: the " +
                               w.controller + " controller is not enabled for this cgroup (enabled: " +
                               (sys::trim(offered).empty() ? "none" : sys::trim(offered)) + ")");
        }
        return fail(std::move(res.error()).context("linux.resources: set " + w.file + " to \"" + w.value + "\""));
    }
    if (!r.devices.empty()) {
        auto fd = TRY_CTX("linux.resources.devices", sys::openFile(dir_, O_RDONLY | O_DIRECTORY));
        TRY_CTX("linux.resources.devices", attachDeviceFilter(fd.get(), compileDeviceFilter(r.devices)));
    }
    return {};
}

Result<Stats> V2Manager::stats() {
    if (!sys::exists(dir_)) return fail(Error::plain(ENOENT, "cgroup " + dir_ + " does not exist"));
    Stats s;
    auto read = [&](const char* file) { return util::readControl(dir_, file).value_or(""); };
    auto cpu = parseFlatKeyed(read("cpu.stat"));
    s.cpu.usageUsec = cpu["usage_usec"];
    s.cpu.userUsec = cpu["user_usec"];
    s.cpu.systemUsec = cpu["system_usec"];
    s.cpu.periods = cpu["nr_periods"];
    s.cpu.throttledPeriods = cpu["nr_throttled"];
    s.cpu.throttledUsec = cpu["throttled_usec"];
    s.memory.usage = parseLimit(read("memory.current")).value_or(0);
    s.memory.maxUsage = parseLimit(read("memory.peak")).value_or(0);
    s.memory.limit = parseLimit(read("memory.max")).value_or(0);
    s.memory.swapUsage = parseLimit(read("memory.swap.current")).value_or(0);
    s.memory.swapLimit = parseLimit(read("memory.swap.max")).value_or(0);
    s.memory.raw = parseFlatKeyed(read("memory.stat"));
    auto events = parseFlatKeyed(read("memory.events"));
    s.memory.oom = events["oom"];
    s.memory.oomKill = events["oom_kill"];
    s.pids.current = parseLimit(read("pids.current")).value_or(0);
    s.pids.limit = parseLimit(read("pids.max")).value_or(0);
    s.io = parseIoStat(read("io.stat"));
    return s;
}

Result<void> V2Manager::attach(pid_t pid) {
    TRY_CTX("attach pid " + std::to_string(pid) + " to cgroup " + dir_,
            util::writeControl(dir_, "cgroup.procs", std::to_string(pid)));
    return {};
}

Result<UniqueFd> V2Manager::openForClone() {
    // A real read-only directory fd: CLONE_INTO_CGROUP wants the cgroup itself.
    return sys::openFile(dir_, O_RDONLY | O_DIRECTORY).or_else([&](Error e) -> Result<UniqueFd> {
        return fail(std::move(e).context("open cgroup for clone"));
    });
}

Result<std::vector<pid_t>> V2Manager::pids() { return util::readPidsRecursive(dir_); }

Result<void> V2Manager::killAll(int signal) {
    // cgroup.kill (5.14) kills the whole subtree atomically, forks included.
    if (signal == SIGKILL && sys::exists(sys::joinPath(dir_, "cgroup.kill"))) {
        TRY_CTX("kill cgroup " + dir_, util::writeControl(dir_, "cgroup.kill", "1"));
        log::debugf("cgroup: killed %s via cgroup.kill", dir_.c_str());
        return {};
    }
    TRY_CTX("kill cgroup " + dir_, util::signalUntilStable([this] { return pids(); }, signal));
    return {};
}

Result<bool> V2Manager::frozen() {
    auto text = TRY(util::readControl(dir_, "cgroup.events"));
    auto v = util::keyedValue(text, "frozen");
    if (!v) return failInvalid(sys::joinPath(dir_, "cgroup.events") + " has no \"frozen\" entry");
    return *v == "1";
}

Result<void> V2Manager::setFrozen(bool on) {
    const std::string what = std::string(on ? "freeze" : "thaw") + " cgroup " + dir_;
    const std::string want = on ? "1" : "0";
    TRY_CTX(what, util::writeControl(dir_, "cgroup.freeze", want));
    // Freezing is asynchronous: cgroup.events says when every task has stopped.
    // kernfs wakes poll() with POLLPRI when the file changes; the 50 ms cap keeps
    // us correct where it does not (a fixture's regular file never wakes it).
    const std::string events = sys::joinPath(dir_, "cgroup.events");
    auto fd = TRY_CTX(what, sys::openFile(events, O_RDONLY));
    const auto deadline = Clock::now() + timeout_;
    for (;;) {
        if (::lseek(fd.get(), 0, SEEK_SET) < 0) return fail(Error::fromErrno("seek " + events).context(what));
        auto text = TRY_CTX(what + ": read " + events, sys::readFd(fd.get()));
        auto v = util::keyedValue(text, "frozen");
        if (!v) return failInvalid(what + ": " + events + " has no \"frozen\" entry");
        if (*v == want) {
            log::debugf("cgroup: %s done", what.c_str());
            return {};
        }
        auto now = Clock::now();
        if (now >= deadline)
            return fail(Error::plain(ETIMEDOUT, what + ": timed out after " + std::to_string(timeout_.count()) +
                                                    " ms waiting for \"frozen " + want + "\" in " + events));
        struct pollfd p = {fd.get(), POLLPRI, 0};
        auto left = std::chrono::ceil<milliseconds>(deadline - now);
        int n = ::poll(&p, 1, int(std::min<long>(left.count(), 50)));
        if (n < 0 && errno != EINTR) return fail(Error::fromErrno("poll " + events).context(what));
        if (n > 0 && !(p.revents & (POLLPRI | POLLERR))) std::this_thread::sleep_for(milliseconds(10));
    }
}

Result<void> V2Manager::destroy() { return util::removeCgroupDir(dir_); }

}  // namespace hull::cgroups
