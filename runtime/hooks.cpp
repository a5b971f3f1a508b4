#include "runtime/hooks.hpp"

#include <algorithm>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::runtime {
namespace {

std::vector<char*> cstrings(const std::vector<std::string>& v) {
    std::vector<char*> out;
    out.reserve(v.size() + 1);
    for (auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

int64_t nowMs() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

Result<void> runHook(const Hook& hook, const std::string& stateJson, const char* kind) {
    std::string what = std::string(kind) + " hook " + hook.path;
    int in[2], err[2];
    if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) return failErrno(what + ": pipe");
    UniqueFd inR(in[0]), inW(in[1]), errR(err[0]), errW(err[1]);

    // args[0] is argv[0] as written; no args means argv[0] = path (spec: args has
    // the same semantics as IEEE Std 1003.1-2008 execv's argv).
    std::vector<std::string> args = hook.args.empty() ? std::vector<std::string>{hook.path} : hook.args;
    auto argv = cstrings(args);
    auto envp = cstrings(hook.env);
    pid_t pid = ::fork();
    if (pid < 0) return failErrno(what + ": fork");
    if (pid == 0) {
        ::dup2(inR.get(), 0);
        int devnull = ::open("/dev/null", O_WRONLY);
        ::dup2(devnull >= 0 ? devnull : errW.get(), 1);
        ::dup2(errW.get(), 2);
        ::execve(hook.path.c_str(), argv.data(), envp.data());
        dprintf(2, "exec: %s", strerror(errno));
        ::_exit(127);
    }
    inR.reset();
    errW.reset();
    // The state is small (well under a pipe buffer); a hook that never reads it
    // must not block us, so write without blocking and ignore EPIPE.
    ::fcntl(inW.get(), F_SETFL, O_NONBLOCK);
    struct sigaction ign{}, old{};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, &old);
    (void)!::write(inW.get(), stateJson.data(), stateJson.size());
    ::sigaction(SIGPIPE, &old, nullptr);
    inW.reset();

    int pidfd = int(::syscall(SYS_pidfd_open, pid, 0));
    UniqueFd pfd(pidfd);
    int64_t deadline = hook.timeout ? nowMs() + int64_t(*hook.timeout) * 1000 : -1;
    std::string errText;
    bool timedOut = false;
    for (;;) {
        struct pollfd fds[2] = {{pfd.get(), POLLIN, 0}, {errR.get(), POLLIN, 0}};
        int timeout = deadline < 0 ? -1 : int(std::max<int64_t>(0, deadline - nowMs()));
        int n = ::poll(fds, errR ? 2 : 1, timeout);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) {
            timedOut = true;
            ::kill(pid, SIGKILL);
            break;
        }
        if (errR && fds[1].revents) {
            char buf[1024];
            ssize_t r = ::read(errR.get(), buf, sizeof buf);
            if (r > 0 && errText.size() < 4096) errText.append(buf, size_t(r));
            if (r <= 0) errR.reset();
        }
        if (fds[0].revents) break;
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    errText = sys::trim(errText);
    if (timedOut) return fail(Error::plain(ETIMEDOUT, what + ": timed out after " + std::to_string(*hook.timeout) + "s"));
    if (WIFSIGNALED(st)) return fail(Error::plain(ECHILD, what + ": killed by signal " + std::to_string(WTERMSIG(st))));
    if (WEXITSTATUS(st) != 0)
        return fail(Error::plain(ECHILD, what + ": exited with status " + std::to_string(WEXITSTATUS(st)) +
                                             (errText.empty() ? "" : ": " + errText)));
    log::debugf("%s: ok", what.c_str());
    return {};
}

Result<void> runHooks(const std::vector<Hook>& hooks, const std::string& stateJson, const char* kind) {
    for (auto& h : hooks) TRY(runHook(h, stateJson, kind));
    return {};
}

void runHooksLogged(const std::vector<Hook>& hooks, const std::string& stateJson, const char* kind) {
    for (const auto& h : hooks)
        if (auto r = runHook(h, stateJson, kind); !r) log::warnf("%s", r.error().message().c_str());
}

}  // namespace hull::runtime
