#pragma once
// The container process, planned in the parent and finished in the child
// between clone and execve. Shared by a container's init and by `exec`.
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "runtime/capabilities.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/spec.hpp"
#include "sys/error.hpp"
#include "sys/unique_fd.hpp"

namespace hull::runtime {

struct ProcessPlan {
    std::vector<std::string> args, env;
    std::string cwd = "/";
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> additionalGids;
    std::optional<mode_t> umask;
    std::vector<Rlimit> rlimits;
    std::optional<CapabilityPlan> caps;
    std::optional<SeccompPlan> seccomp;
    std::string seccompBpf;
    bool noNewPrivileges = false;
    std::optional<int> oomScoreAdj;
    std::optional<int> ioPriority;  // ioprio_set value: class << 13 | level
    struct Sched {
        uint32_t policy = 0;
        uint64_t flags = 0;
        int nice = 0;
        uint32_t priority = 0;
        uint64_t runtime = 0, deadline = 0, period = 0;
    };
    std::optional<Sched> scheduler;
    int personality = -1;  // linux.personality (PER_LINUX, PER_LINUX32); -1: leave as is
    bool terminal = false;
    std::optional<ConsoleSize> consoleSize;
    unsigned preserveFds = 0;
};

/// Everything that can fail on bad input fails here, in the parent, with field paths.
[[nodiscard]] Result<ProcessPlan> planProcess(const Process& p, const std::optional<Seccomp>& seccomp);

/// Find the executable as execvp would, in the container's PATH (from env);
/// "exec: \"foo\": executable file not found in $PATH".
[[nodiscard]] Result<std::string> resolveExecutable(const ProcessPlan& p);

/// Open a pty master from `ptmx`, make its peer our controlling terminal on
/// fds 0-2, and send the master through the console socket (runc's protocol:
/// SCM_RIGHTS with the pty name as payload). Returns the pty number.
[[nodiscard]] Result<int> setupTerminal(const std::string& ptmx, int consoleSocket,
                                        const std::optional<ConsoleSize>& size);

/// rlimits, oom_score_adj, fd hygiene (close-on-exec past the preserved fds),
/// seccomp when it must load while still privileged, groups/uid/gid with the
/// capability sets, umask, no_new_privs, cwd. Runs in the child.
[[nodiscard]] Result<void> finalizeProcess(const ProcessPlan& p);

/// The last steps: seccomp (when no_new_privs allows it late) and execve.
/// Returns only on failure.
[[nodiscard]] Result<void> execProcess(const ProcessPlan& p, const std::string& path);

/// SCM_RIGHTS helpers on a unix socket.
[[nodiscard]] Result<void> sendFd(int sock, int fd, const std::string& payload);
[[nodiscard]] Result<UniqueFd> recvFd(int sock, std::string* payload = nullptr);
/// A terminal process run from the foreground without --console-socket: copy
/// our stdin to the pty MASTER and the master to our stdout (our terminal raw
/// meanwhile) until the last slave closes or STOP_FD becomes readable.
void proxyConsole(int master, int stopFd);

}  // namespace hull::runtime

namespace hull::runtime {
/// Wait for our child, forwarding SIGINT/TERM/HUP/QUIT/USR1/USR2/WINCH to it;
/// returns its exit status (128+signal when killed). With CONSOLE_MASTER (a
/// pty we proxy to our stdin), SIGWINCH copies our terminal's size to it
/// instead: the kernel then signals the child's terminal itself, and the
/// child reads the new size there.
int waitForwardingSignals(pid_t pid, int pidfd, int consoleMaster = -1);
}  // namespace hull::runtime
