#include "runtime/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include "sys/fs.hpp"

namespace hull::runtime {

Result<ProcessPlan> planProcess(const Process& p, const std::optional<Seccomp>& seccomp) {
    ProcessPlan plan;
    if (p.args.empty()) return failInvalid("process.args: must not be empty");
    plan.args = p.args;
    plan.env = p.env;
    plan.cwd = p.cwd.empty() ? "/" : p.cwd;
    plan.uid = p.user.uid;
    plan.gid = p.user.gid;
    plan.additionalGids.assign(p.user.additionalGids.begin(), p.user.additionalGids.end());
    // runc's default when the config has none; inheriting the caller's would
    // make files in the container depend on who ran hull-runc.
    plan.umask = p.user.umask ? mode_t(*p.user.umask) : mode_t(022);
    if (p.ioPriority) {
        static const std::pair<const char*, int> kClasses[] = {
            {"IOPRIO_CLASS_RT", 1}, {"IOPRIO_CLASS_BE", 2}, {"IOPRIO_CLASS_IDLE", 3}};
        int cls = 0;
        for (auto& [name, v] : kClasses)
            if (p.ioPriority->ioClass == name) cls = v;
        if (!cls) return failInvalid("process.ioPriority.class: unknown class \"" + p.ioPriority->ioClass + "\"");
        if (p.ioPriority->priority < 0 || p.ioPriority->priority > 7)
            return failInvalid("process.ioPriority.priority: must be 0..7");
        plan.ioPriority = cls << 13 | p.ioPriority->priority;
    }
    if (p.scheduler) {
        static const std::pair<const char*, uint32_t> kPolicies[] = {
            {"SCHED_OTHER", 0}, {"SCHED_FIFO", 1}, {"SCHED_RR", 2}, {"SCHED_BATCH", 3}, {"SCHED_ISO", 4},
            {"SCHED_IDLE", 5}, {"SCHED_DEADLINE", 6}};
        static const std::pair<const char*, uint64_t> kFlags[] = {
            {"SCHED_FLAG_RESET_ON_FORK", 0x01}, {"SCHED_FLAG_RECLAIM", 0x02}, {"SCHED_FLAG_DL_OVERRUN", 0x04},
            {"SCHED_FLAG_KEEP_POLICY", 0x08},   {"SCHED_FLAG_KEEP_PARAMS", 0x10}, {"SCHED_FLAG_UTIL_CLAMP_MIN", 0x20},
            {"SCHED_FLAG_UTIL_CLAMP_MAX", 0x40}};
        ProcessPlan::Sched sc;
        bool known = false;
        for (auto& [name, v] : kPolicies)
            if (p.scheduler->policy == name) sc.policy = v, known = true;
        if (!known) return failInvalid("process.scheduler.policy: unknown policy \"" + p.scheduler->policy + "\"");
        for (size_t i = 0; i < p.scheduler->flags.size(); ++i) {
            bool f = false;
            for (auto& [name, v] : kFlags)
                if (p.scheduler->flags[i] == name) sc.flags |= v, f = true;
            if (!f)
                return failInvalid("process.scheduler.flags[" + std::to_string(i) + "]: unknown flag \"" +
                                   p.scheduler->flags[i] + "\"");
        }
        sc.nice = p.scheduler->nice;
        sc.priority = uint32_t(p.scheduler->priority);
        sc.runtime = p.scheduler->runtime;
        sc.deadline = p.scheduler->deadline;
        sc.period = p.scheduler->period;
        plan.scheduler = sc;
    }
    plan.rlimits = p.rlimits;
    if (p.capabilities) plan.caps = TRY(planCapabilities(*p.capabilities));
    if (seccomp) {
        plan.seccomp = TRY(planSeccomp(*seccomp));
        plan.seccompBpf = TRY_CTX("linux.seccomp", compileSeccomp(*plan.seccomp));
    }
    plan.noNewPrivileges = p.noNewPrivileges;
    plan.oomScoreAdj = p.oomScoreAdj;
    plan.terminal = p.terminal;
    plan.consoleSize = p.consoleSize;
    return plan;
}

static std::string envValue(const std::vector<std::string>& env, std::string_view key) {
    for (auto& e : env)
        if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
            return e.substr(key.size() + 1);
    return {};
}

static bool isExecutableFile(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

Result<std::string> resolveExecutable(const ProcessPlan& p) {
    const std::string& name = p.args[0];
    if (name.find('/') != std::string::npos) {
        std::string path = name[0] == '/' ? name : sys::joinPath(p.cwd, name);
        if (!isExecutableFile(path))
            return fail(Error::plain(ENOENT, "exec: \"" + name + "\": no such executable file"));
        return path;
    }
    std::string pathVar = envValue(p.env, "PATH");
    if (pathVar.empty()) pathVar = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (auto& dir : sys::split(pathVar, ':')) {
        std::string candidate = sys::joinPath(dir, name);
        if (isExecutableFile(candidate)) return candidate;
    }
    return fail(Error::plain(ENOENT, "exec: \"" + name + "\": executable file not found in $PATH"));
}

Result<void> sendFd(int sock, int fd, const std::string& payload) {
    struct msghdr msg{};
    struct iovec iov{const_cast<char*>(payload.data()), payload.size()};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    while (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
        if (errno != EINTR) return failErrno("send file descriptor");
    return {};
}

Result<UniqueFd> recvFd(int sock, std::string* payload) {
    // Payloads are short (a pty path, a spawner request with a few paths); 64 KiB
    // leaves room for long state-dir paths. A datagram longer than that is refused.
    std::vector<char> buf(size_t(1) << 16);
    struct msghdr msg{};
    struct iovec iov{buf.data(), buf.size()};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0)
        if (errno != EINTR) return failErrno("receive file descriptor");
    if (n == 0 && msg.msg_controllen == 0) return fail(Error::plain(EPIPE, "receive file descriptor: the peer closed the socket"));
    // The first descriptor is ours; any more a peer sent are closed, not leaked.
    UniqueFd received;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (!received) received = UniqueFd(fd);
            else ::close(fd);
        }
    }
    if (!received) return fail(Error::plain(EBADMSG, "no file descriptor received"));
    if (msg.msg_flags & MSG_TRUNC) return fail(Error::plain(EMSGSIZE, "receive file descriptor: message too long"));
    if (payload) payload->assign(buf.data(), size_t(n));
    return received;
}

Result<int> setupTerminal(const std::string& ptmx, int consoleSocket, const std::optional<ConsoleSize>& size) {
    auto master = TRY(sys::openFile(ptmx, O_RDWR | O_NOCTTY));
    int unlock = 0, ptyNumber = -1;
    if (::ioctl(master.get(), TIOCSPTLCK, &unlock) < 0) return failErrno("unlock pty");
    if (::ioctl(master.get(), TIOCGPTN, &ptyNumber) < 0) return failErrno("pty number");
    // TIOCGPTPEER opens the peer through the master itself: no path lookup that a
    // container could redirect.
    int slave = ::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) return failErrno("open pty peer");
    UniqueFd slaveFd(slave);
    if (size && size->height && size->width) {
        struct winsize ws{};
        ws.ws_row = static_cast<unsigned short>(size->height);
        ws.ws_col = static_cast<unsigned short>(size->width);
        ::ioctl(slave, TIOCSWINSZ, &ws);
    }
    TRY_CTX("console socket", sendFd(consoleSocket, master.get(), "/dev/pts/" + std::to_string(ptyNumber)));
    if (::setsid() < 0 && errno != EPERM) return failErrno("setsid");
    if (::ioctl(slave, TIOCSCTTY, 0) < 0) return failErrno("set controlling terminal");
    for (int i = 0; i < 3; ++i)
        if (::dup3(slave, i, 0) < 0) return failErrno("dup pty onto stdio");
    return ptyNumber;
}

static Result<void> loadFilter(const ProcessPlan& p) {
    if (!p.seccomp) return {};
    TRY_CTX("seccomp", loadSeccomp(p.seccompBpf, p.noNewPrivileges, *p.seccomp));
    return {};
}

Result<void> finalizeProcess(const ProcessPlan& p) {
    for (auto& r : p.rlimits) {
        struct rlimit rl{r.soft, r.hard};
        if (::setrlimit(r.resource, &rl) < 0) return failErrno("setrlimit " + r.type);
    }
    if (p.oomScoreAdj)
        TRY(sys::writeExisting("/proc/self/oom_score_adj", std::to_string(*p.oomScoreAdj)));
    if (p.ioPriority && ::syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, *p.ioPriority) < 0)
        return failErrno("process.ioPriority: ioprio_set");
    if (p.scheduler) {
        // struct sched_attr (sched_setattr(2)); glibc 2.36 has no wrapper.
        struct {
            uint32_t size, policy;
            uint64_t flags;
            int32_t nice;
            uint32_t priority;
            uint64_t runtime, deadline, period;
        } attr = {48, p.scheduler->policy, p.scheduler->flags, p.scheduler->nice, p.scheduler->priority,
                  p.scheduler->runtime, p.scheduler->deadline, p.scheduler->period};
        if (::syscall(SYS_sched_setattr, 0, &attr, 0) < 0) return failErrno("process.scheduler: sched_setattr");
    }
    if (p.personality >= 0 && ::personality(unsigned(p.personality)) < 0)
        return failErrno("linux.personality");
    // Only stdio and the preserved fds reach the container; everything else
    // we might have inherited is closed by execve.
    ::syscall(SYS_close_range, 3 + p.preserveFds, ~0U, CLOSE_RANGE_CLOEXEC);
    for (unsigned fd = 3; fd < 3 + p.preserveFds; ++fd) ::fcntl(int(fd), F_SETFD, 0);

    // Without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes in now,
    // before the capabilities are dropped.
    if (!p.noNewPrivileges) TRY(loadFilter(p));

    // cwd first, while still root in the container: the user may not be able
    // to reach it later, and then the process finds out itself.
    if (::chdir(p.cwd.c_str()) < 0) return failErrno("chdir " + p.cwd);

    if (::setgroups(p.additionalGids.size(), p.additionalGids.data()) < 0 && errno != EPERM)
        return failErrno("setgroups");
    if (p.caps) {
        TRY(dropBoundingSet(*p.caps));
        if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return failErrno("keep capabilities");
    }
    if (::setresgid(p.gid, p.gid, p.gid) < 0) return failErrno("setgid " + std::to_string(p.gid));
    if (::setresuid(p.uid, p.uid, p.uid) < 0) return failErrno("setuid " + std::to_string(p.uid));
    if (p.caps) {
        ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
        TRY(applyCapabilitySets(*p.caps));
    }
    if (p.umask) ::umask(*p.umask);
    if (p.noNewPrivileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return failErrno("no_new_privs");
    return {};
}

Result<void> execProcess(const ProcessPlan& p, const std::string& path) {
    if (p.noNewPrivileges) TRY(loadFilter(p));
    std::vector<char*> argv, envp;
    for (auto& a : p.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : p.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    ::execve(path.c_str(), argv.data(), envp.data());
    return failErrno("exec " + path);
}

}  // namespace hull::runtime

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

namespace hull::runtime {

int waitForwardingSignals(pid_t pid, int pidfd, int consoleMaster) {
    sigset_t mask, old;
    sigemptyset(&mask);
    for (int sg : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH}) sigaddset(&mask, sg);
    sigprocmask(SIG_BLOCK, &mask, &old);
    UniqueFd sigFd(::signalfd(-1, &mask, SFD_CLOEXEC));
    int status = 0;
    for (;;) {
        struct pollfd p[2] = {{pidfd, POLLIN, 0}, {sigFd.get(), POLLIN, 0}};
        if (::poll(p, sigFd ? 2 : 1, -1) < 0 && errno != EINTR) break;
        if (sigFd && (p[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (::read(sigFd.get(), &si, sizeof si) == sizeof si) {
                struct winsize ws;
                if (si.ssi_signo != SIGWINCH || consoleMaster < 0)
                    ::syscall(SYS_pidfd_send_signal, pidfd, int(si.ssi_signo), nullptr, 0);
                else if (::ioctl(0, TIOCGWINSZ, &ws) == 0)
                    ::ioctl(consoleMaster, TIOCSWINSZ, &ws);
            }
        }
        if (p[0].revents & POLLIN) break;
    }
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    sigprocmask(SIG_SETMASK, &old, nullptr);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Copy our stdin to the pty master and the master to our stdout until the
/// master reports the other side gone (or STOP_FD becomes readable). Our
/// terminal, if stdin is one, is raw meanwhile: the container's line discipline
/// does the echoing and editing, as with runc.
void proxyConsole(int master, int stopFd) {
    // The signals waitForwardingSignals takes are not this thread's: one
    // delivered here would be lost (SIGWINCH) or end us (SIGTERM) unforwarded.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sg : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH}) sigaddset(&mask, sg);
    ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    struct termios saved;
    bool raw = ::isatty(0) && ::tcgetattr(0, &saved) == 0;
    if (raw) {
        struct termios t = saved;
        ::cfmakeraw(&t);
        ::tcsetattr(0, TCSANOW, &t);
        struct winsize ws;
        if (::ioctl(0, TIOCGWINSZ, &ws) == 0) ::ioctl(master, TIOCSWINSZ, &ws);
    }
    bool stdinOpen = true;
    char buf[8192];
    for (;;) {
        struct pollfd p[3] = {{master, POLLIN, 0}, {stopFd, POLLIN, 0}, {stdinOpen ? 0 : -1, POLLIN, 0}};
        if (::poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[0].revents) {
            ssize_t n = ::read(master, buf, sizeof buf);
            if (n <= 0) break;  // EIO: every slave fd is closed
            (void)!::write(1, buf, size_t(n));
        }
        if (p[2].revents) {
            ssize_t n = ::read(0, buf, sizeof buf);
            if (n <= 0) stdinOpen = false;
            else (void)!::write(master, buf, size_t(n));
        }
        if (p[1].revents && !(p[0].revents & POLLIN)) break;
    }
    if (raw) ::tcsetattr(0, TCSANOW, &saved);
}

}  // namespace hull::runtime
