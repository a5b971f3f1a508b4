#pragma once
// A fake cgroup tree in a temp dir. Control files exist only where a test makes
// them: the managers never create files, so a missing controller fails as it
// would on the kernel.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string>

#include "support.hpp"
#include "sys/fs.hpp"

namespace hull::test {

class Fixture {
public:
    Fixture() : tmp_("hull-cgroup-fixture") {}
    const std::string& root() const { return tmp_.path(); }
    std::string path(const std::string& rel) const { return rel.empty() ? root() : root() + "/" + rel; }

    /// mkdir -p ROOT/REL; returns the absolute path.
    std::string makeDir(const std::string& rel) const;
    /// Create ROOT/REL (and its directory) holding CONTENT.
    std::string makeFile(const std::string& rel, const std::string& content = "") const;
    /// A cgroup directory with the files every cgroup has (cgroup.procs).
    std::string makeCgroup(const std::string& rel) const;
    std::string read(const std::string& rel) const { return readFileOr(path(rel), "<missing>"); }
    bool exists(const std::string& rel) const;

private:
    TempDir tmp_;
};

inline std::string Fixture::makeDir(const std::string& rel) const {
    std::string p = path(rel);
    if (!sys::mkdirAll(p)) throw std::runtime_error("mkdir " + p);
    return p;
}

inline std::string Fixture::makeFile(const std::string& rel, const std::string& content) const {
    std::string p = path(rel);
    auto slash = p.find_last_of('/');
    if (!sys::mkdirAll(p.substr(0, slash))) throw std::runtime_error("mkdir for " + p);
    writeFileOrThrow(p, content);
    return p;
}

inline std::string Fixture::makeCgroup(const std::string& rel) const {
    makeFile(rel + "/cgroup.procs");
    return path(rel);
}

inline bool Fixture::exists(const std::string& rel) const { return ::access(path(rel).c_str(), F_OK) == 0; }

/// A `sleep 1000` child for tests (fork + exec). Returns once the child has
/// exec'd: until then it runs with Catch's signal handlers, and a signal sent in
/// that window would make the child report a test failure of its own.
inline pid_t spawnSleep() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw std::runtime_error("pipe2");
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork");
    if (pid == 0) {
        ::close(fds[0]);
        ::execl("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(fds[1]);
    char c;
    while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::close(fds[0]);
    return pid;
}

/// Kill (if still there) and reap PID; returns the wait status, -1 when already reaped.
inline int killAndReap(pid_t pid, int sig = SIGKILL) {
    if (pid <= 0) return -1;
    ::kill(pid, sig);
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    return status;
}

/// The state letter of /proc/PID/stat ('S', 'R', 'D', ...); '?' when unreadable.
inline char procState(pid_t pid) {
    std::string stat = readFileOr("/proc/" + std::to_string(pid) + "/stat");
    auto paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '?';
}

/// PID's path in the hierarchy whose /proc/PID/cgroup controller field is FIELD
/// ("memory", "" for cgroup2); "<none>" when absent.
inline std::string procCgroupPath(pid_t pid, const std::string& field) {
    std::string text = readFileOr("/proc/" + std::to_string(pid) + "/cgroup");
    for (const auto& line : sys::split(text, '\n')) {
        auto a = line.find(':');
        auto b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        auto controllers = sys::split(line.substr(a + 1, b - a - 1), ',');
        bool match = field.empty() ? b == a + 1
                                   : std::find(controllers.begin(), controllers.end(), field) != controllers.end();
        if (match) return line.substr(b + 1);
    }
    return "<none>";
}

/// A name no other test run uses.
inline std::string uniqueCgroupName(const std::string& what) {
    static int counter = 0;
    return "hull-test-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

}  // namespace hull::test
