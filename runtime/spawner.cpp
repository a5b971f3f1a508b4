#include "runtime/spawner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "runtime/process.hpp"
#include "runtime/runtime.hpp"
#include "runtime/spec.hpp"
#include "sys/fs.hpp"

namespace hull::runtime {

// The container is created in this child, which then execs hull-monitor: the
// monitor is the init's parent without a runtime binary run in between.
[[noreturn]] void createAndBecomeMonitor(int ready, const std::string& dir, const std::string& id,
                                         const std::string& runRoot, const std::string& pidFile,
                                         const std::string& monitor, const std::vector<std::string>& cleanup) {
    ::setsid();
    auto say = [&](const std::string& msg) { (void)!::write(ready, msg.data(), msg.size()); };
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) {
        say("error:pipe: " + std::string(std::strerror(errno)) + "\n");
        ::_exit(1);
    }
    // Fixed descriptors for the monitor: 3 and 4 read the init's stdout and
    // stderr, 5 reports to our caller. Moved above 10 first so no dup2 below
    // closes one still needed.
    int fds[] = {out[0], err[0], ready, out[1], err[1]};
    for (int& fd : fds) fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    null = ::fcntl(null, F_DUPFD_CLOEXEC, 10);
    ::dup2(null, 0);
    ::dup2(fds[3], 1);  // the init inherits these
    ::dup2(fds[4], 2);
    ::dup2(fds[0], 3);
    ::dup2(fds[1], 4);
    ::dup2(fds[2], 5);
    ::fcntl(5, F_SETFD, FD_CLOEXEC);  // EOF for our caller once the monitor runs
    // Whatever our caller had open (the agent's sockets, its store) stays out
    // of the container and the monitor.
    ::close_range(6, ~0U, 0);
    ready = 5;
    Runtime rt(runRoot);
    CreateOptions co;
    co.id = id;
    co.bundle = dir;
    co.pidFile = pidFile;
    co.onCloned = [&](pid_t pid) { say("cloned " + std::to_string(pid) + "\n"); };
    auto created = rt.create(co);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 1);  // only the init holds the pipes' write ends now
    ::dup2(devnull, 2);
    if (devnull > 5) ::close(devnull);
    if (!created) {
        say("error:" + created.error().message() + "\n");
        ::_exit(1);
    }
    auto pidText = sys::readFile(pidFile);
    pid_t init = pidText ? pid_t(std::atoi(pidText->c_str())) : 0;
    if (init <= 0) {
        say("error:no pid file after create\n");
        ::_exit(1);
    }
    // The monitor holds the init's mount and network namespaces (fds 6 and 7)
    // until it has written exit.json: the kernel then tears them down (every
    // mount of the container, its veth) after the exit is reported, not in
    // the init's exit, which the node agent is waiting on to restart it.
    for (auto [ns, fd] : {std::pair{"mnt", 6}, std::pair{"net", 7}}) {
        int nsfd = ::open(("/proc/" + std::to_string(init) + "/ns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd >= 0 && nsfd != fd) {
            ::dup2(nsfd, fd);  // without O_CLOEXEC: the monitor inherits it
            ::close(nsfd);
        }
    }
    std::string initText = std::to_string(init);
    say("created " + initText + "\n");
    std::vector<const char*> argv = {"hull-monitor", dir.c_str(), id.c_str(), initText.c_str()};
    for (const auto& a : cleanup) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    ::execv(monitor.c_str(), const_cast<char* const*>(argv.data()));
    int execErr = errno;
    ::kill(init, SIGKILL);  // no one would reap it: `start` then fails and the caller cleans up
    say("error:exec " + monitor + ": " + std::strerror(execErr) + "\n");
    ::_exit(127);
}


void warmSeccomp(const std::string& configText) {
    if (auto spec = parseSpec(configText); spec && spec->process) (void)planProcess(*spec->process, spec->linux.seccomp);
}


int runSpawner(int sock) {
    // Gone with the caller that started it; the monitors it made stay.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) return 0;
    ::signal(SIGCHLD, SIG_IGN);  // the kernel reaps our children (each becomes a monitor)
    std::set<std::string> warm;
    for (;;) {
        std::string msg;
        auto received = recvFd(sock, &msg);
        if (!received) {
            // Our caller is gone (EOF) or the socket broke; a message without a
            // descriptor or too long is dropped (its sender's read sees EOF).
            int e = received.error().errnum();
            if (e == EBADMSG || e == EMSGSIZE) continue;
            return 0;
        }
        int ready = received->release();
        std::vector<std::string> f;
        for (size_t at = 0; at < msg.size();) {
            size_t end = msg.find('\0', at);
            if (end == std::string::npos) end = msg.size();
            f.emplace_back(msg, at, end - at);
            at = end + 1;
        }
        // dir, id, run root, pid file, monitor, seccomp profile key, cleanup argv...
        if (ready < 0 || f.size() < 7) {
            if (ready >= 0) ::close(ready);
            continue;
        }
        if (warm.insert(f[5]).second)
            if (auto text = sys::readFile(f[0] + "/config.json")) warmSeccomp(*text);
        pid_t pid = ::fork();
        if (pid == 0) {
            ::signal(SIGCHLD, SIG_DFL);  // the monitor must reap its init itself
            ::prctl(PR_SET_PDEATHSIG, 0);
            createAndBecomeMonitor(ready, f[0], f[1], f[2], f[3], f[4], {f.begin() + 6, f.end()});
        }
        if (pid < 0) {
            std::string err = "error:fork: " + std::string(std::strerror(errno)) + "\n";
            (void)!::write(ready, err.data(), err.size());
        }
        ::close(ready);
    }
}

}  // namespace hull::runtime
