// hull-monitor: what stays behind a detached container, and nothing more.
//
//   hull-monitor DIR ID INIT_PID [CLEANUP...]
//   (fds 3 and 4: the init's stdout and stderr; 6 and 7, if open: its mount
//   and network namespaces, held until the exit is reported)
//
// The engine creates the container in a child of its own, which then execs
// this: so we are the init's parent, reap it and learn its exit status, which
// no other process can. We are also a child subreaper, for an init that shares
// the host's pid namespace and leaves orphans. Meanwhile we copy the two pipes
// into DIR/ctr.log (rotated to ctr.log.1 past 10 MiB). When the init is gone
// and the pipes are drained we write DIR/exit.json and exec CLEANUP (hull's
// network and rootfs teardown).
//
// Plain libc, no threads, no allocations in the loop: one of these lives per
// container, so its private memory is what counts (see README, "hull run").
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <initializer_list>

namespace {

constexpr off_t kLogCap = 10 << 20;
char gDir[4096];
int gLog = -1;
off_t gLogSize = 0;

void pathOf(char* out, size_t n, const char* name) { snprintf(out, n, "%s/%s", gDir, name); }

void openLog() {
    char p[4200];
    pathOf(p, sizeof p, "ctr.log");
    gLog = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct stat st;
    gLogSize = gLog >= 0 && fstat(gLog, &st) == 0 ? st.st_size : 0;
}

void appendLog(const char* data, size_t n) {
    if (gLog < 0 || gLogSize + off_t(n) > kLogCap) {
        if (gLog >= 0) {
            close(gLog);
            char a[4200], b[4200];
            pathOf(a, sizeof a, "ctr.log");
            pathOf(b, sizeof b, "ctr.log.1");
            rename(a, b);
        }
        openLog();
    }
    if (gLog >= 0 && write(gLog, data, n) > 0) gLogSize += off_t(n);
}

int exitCodeOf(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: hull-monitor DIR ID INIT_PID [CLEANUP...] (fds 3, 4: the init's stdout, stderr)\n");
        return 2;
    }
    snprintf(gDir, sizeof gDir, "%s", argv[1]);
    pid_t init = pid_t(atoi(argv[3]));
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    // SIGCHLD through a signalfd; the rest of the usual signals are ignored:
    // the monitor must not die with the terminal or the agent that started it.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (sfd < 0 || init <= 0) return 1;
    // 3, 4: the pipes; 6, 7: the init's mount and network namespaces, held until
    // exit.json is written (their teardown is not on the path of a restart).
    for (int fd : {3, 4, 6, 7}) fcntl(fd, F_SETFD, FD_CLOEXEC);

    openLog();
    struct pollfd p[3] = {{3, POLLIN, 0}, {4, POLLIN, 0}, {sfd, POLLIN, 0}};
    int openPipes = 2;
    bool initDone = false;
    int code = 0;
    // Reap everything re-parented to us; only the init's status matters.
    auto reap = [&] {
        pid_t w;
        int s = 0;
        while ((w = waitpid(-1, &s, WNOHANG)) > 0)
            if (w == init) {
                initDone = true;
                code = exitCodeOf(s);
            }
    };
    // An init that ended before the signalfd existed sent its SIGCHLD to no one.
    reap();
    static char buf[1 << 15];
    while (openPipes > 0 || !initDone) {
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (p[i].fd < 0 || !p[i].revents) continue;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n > 0) {
                appendLog(buf, size_t(n));
            } else if (n == 0 || errno != EINTR) {
                close(p[i].fd);
                p[i].fd = -1;
                --openPipes;
            }
        }
        if (p[2].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {
            }
            reap();
        }
    }
    if (gLog >= 0) close(gLog);

    char exitPath[4200], tmp[4300];
    pathOf(exitPath, sizeof exitPath, "exit.json");
    snprintf(tmp, sizeof tmp, "%s.tmp", exitPath);
    char when[32];
    time_t now = time(nullptr);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (FILE* f = fopen(tmp, "w")) {
        fprintf(f, "{\"exitCode\":%d,\"finished\":\"%s\"}\n", code, when);
        fclose(f);
        rename(tmp, exitPath);
    }
    if (argc > 4) {
        // The teardown is not urgent, and a replacement may be starting beside
        // it (the node agent restarts at once): it yields the CPUs to that.
        setpriority(PRIO_PROCESS, 0, 10);
        for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGPIPE}) signal(sig, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &mask, nullptr);
        execv(argv[4], argv + 4);
    }
    return 0;
}
