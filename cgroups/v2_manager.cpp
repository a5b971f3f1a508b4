#include "cgroups/v2_manager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

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
    std::string base =
        cgroupsPath.front() == '/' ? "/" : util::placementBelowMount(util::ownPlacement(own, {""}), mountRoot);
    return sys::joinPath(unifiedMount, sys::cleanPath(base + sub));
}

Result<void> V2Manager::create() {
    TRY_CTX("create cgroup " + dir_, sys::mkdirAll(dir_));
    log::debugf("cgroup: created %s", dir_.c_str());
    return {};
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
