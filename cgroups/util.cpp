#include "cgroups/util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>

#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::cgroups::util {

Result<std::string> readControl(const std::string& dir, const std::string& file) {
    return sys::readFile(sys::joinPath(dir, file));
}

Result<void> writeControl(const std::string& dir, const std::string& file, std::string_view value) {
    return sys::writeExisting(sys::joinPath(dir, file), value);
}

std::optional<std::string> keyedValue(std::string_view text, std::string_view key) {
    for (const auto& line : sys::split(text, '\n')) {
        auto sp = line.find(' ');
        if (sp != std::string::npos && std::string_view(line).substr(0, sp) == key) return sys::trim(line.substr(sp + 1));
    }
    return std::nullopt;
}

std::vector<pid_t> parsePids(std::string_view text) {
    std::vector<pid_t> out;
    for (const auto& line : sys::split(text, '\n')) {
        auto t = sys::trim(line);
        if (t.empty()) continue;
        char* end = nullptr;
        long v = std::strtol(t.c_str(), &end, 10);
        if (end && *end == '\0' && v > 0) out.push_back(pid_t(v));
    }
    return out;
}

std::vector<std::string> subdirs(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return out;
    while (auto* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n == "." || n == "..") continue;
        bool isDir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            isDir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        if (isDir) out.emplace_back(n);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

static Result<void> collectPids(const std::string& dir, std::vector<pid_t>& out) {
    auto text = TRY(readControl(dir, "cgroup.procs"));
    auto pids = parsePids(text);
    out.insert(out.end(), pids.begin(), pids.end());
    for (const auto& sub : subdirs(dir)) {
        auto r = collectPids(sys::joinPath(dir, sub), out);
        // A sub-cgroup removed while we walk is not an error.
        if (!r && !(r.error().errnum() == ENOENT && !sys::exists(sys::joinPath(dir, sub)))) return r;
    }
    return {};
}

Result<std::vector<pid_t>> readPidsRecursive(const std::string& dir) {
    std::vector<pid_t> out;
    if (!sys::exists(dir)) return out;
    TRY_CTX("list processes of cgroup " + dir, collectPids(dir, out));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

Result<void> removeCgroupDir(const std::string& dir) {
    // Processes killed a moment ago still hold the cgroup until the kernel has
    // finished their exit; ~2 s of backoff covers that without hiding a real leak.
    constexpr int kAttempts = 25;
    auto delay = std::chrono::milliseconds(2);
    for (int attempt = 1;; ++attempt) {
        // The common case, a leaf with no tasks, is one rmdir; sub-cgroups
        // (ENOTEMPTY) are walked only when there are any.
        if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) {
            log::debugf("cgroup: removed %s", dir.c_str());
            return {};
        }
        if (errno == ENOTEMPTY) {
            for (const auto& sub : subdirs(dir)) TRY(removeCgroupDir(sys::joinPath(dir, sub)));
            if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) {
                log::debugf("cgroup: removed %s", dir.c_str());
                return {};
            }
        }
        if (errno != EBUSY) return failErrno("remove cgroup " + dir);
        if (attempt == kAttempts) return failErrno("remove cgroup " + dir + " (still busy after retries)", EBUSY);
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, std::chrono::milliseconds(100));
    }
}

Result<void> signalUntilStable(const std::function<Result<std::vector<pid_t>>()>& list, int sig) {
    // Bounded: a fork bomb outrunning us must end in an error, not a hang.
    constexpr int kMaxRounds = 200;
    std::set<pid_t> signalled;
    for (int round = 0; round < kMaxRounds; ++round) {
        auto pids = TRY(list());
        bool fresh = false;
        for (pid_t p : pids) {
            if (!signalled.insert(p).second) continue;
            fresh = true;
            if (::kill(p, sig) < 0 && errno != ESRCH) return failErrno("kill " + std::to_string(p));
        }
        if (!fresh) {
            log::debugf("cgroup: sent signal %d to %zu processes", sig, signalled.size());
            return {};
        }
    }
    return fail(Error::plain(EAGAIN, "signal cgroup: new processes keep appearing after " +
                                         std::to_string(kMaxRounds) + " rounds"));
}

Result<std::string> cleanCgroupsPath(const std::string& cgroupsPath) {
    if (cgroupsPath.empty()) return failInvalid("cgroupsPath is empty");
    for (const auto& part : sys::split(cgroupsPath, '/'))
        if (part == "..") return failInvalid("cgroupsPath " + cgroupsPath + " must not contain \"..\"");
    std::string clean = sys::cleanPath("/" + cgroupsPath);
    if (clean == "/") return failInvalid("cgroupsPath " + cgroupsPath + " names no cgroup below its parent");
    return clean;
}

std::string ownPlacement(const std::vector<std::pair<std::string, std::string>>& own,
                         const std::vector<std::string>& controllers) {
    for (const auto& [name, path] : own)
        if (std::find(controllers.begin(), controllers.end(), name) != controllers.end())
            return path.empty() ? "/" : path;
    return "/";
}

std::string placementBelowMount(const std::string& placement, const std::string& mountRoot) {
    std::string root = sys::cleanPath(mountRoot.empty() ? "/" : mountRoot);
    std::string p = sys::cleanPath(placement.empty() ? "/" : placement);
    if (root == "/") return p;
    if (p == root) return "/";
    if (p.rfind(root + "/", 0) == 0) return p.substr(root.size());
    // Our cgroup is outside what is mounted: nothing better than the mount's top.
    log::debugf("cgroup: own placement %s is not below the mounted %s", p.c_str(), root.c_str());
    return "/";
}

std::string mountRootOf(const std::vector<std::pair<std::string, std::string>>& mountRoots,
                        const std::string& mount) {
    std::string m = sys::cleanPath(mount);
    for (const auto& [mp, root] : mountRoots)
        if (mp == m) return root;
    return "/";
}

}  // namespace hull::cgroups::util
