// hull-monitor: what stays behind a detached container, and nothing more.
//
//   hull-monitor DIR ID RUNTIME RUNTIME_ROOT [CLEANUP...]
//
// It becomes a child subreaper, runs `RUNTIME --root RUNTIME_ROOT create
// --bundle DIR --pid-file DIR/init.pid ID` with the container's stdout and
// stderr on two pipes, and reports "created PID" (or "error:MSG") on fd 3. The
// runtime exits once the init waits for `start`, so the init is re-parented to
// us: we reap it and so learn its exit status, which no other process can.
// Meanwhile we copy the pipes into DIR/ctr.log (rotated to ctr.log.1 past
// 10 MiB). When the init is gone and the pipes are drained we write
// DIR/exit.json and exec CLEANUP (hull's network and rootfs teardown).
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

void say(const char* msg) {
    if (write(3, msg, strlen(msg)) < 0) {
    }
    close(3);
}

int exitCodeOf(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: hull-monitor DIR ID RUNTIME RUNTIME_ROOT [CLEANUP...]\n");
        return 2;
    }
    snprintf(gDir, sizeof gDir, "%s", argv[1]);
    const char* id = argv[2];
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

    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || sfd < 0) {
        say("error:monitor: pipe failed");
        return 1;
    }
    char pidFile[4200], runtimeLog[4200];
    pathOf(pidFile, sizeof pidFile, "init.pid");
    pathOf(runtimeLog, sizeof runtimeLog, "runtime.log");
    unlink(pidFile);
    pid_t create = fork();
    if (create == 0) {
        // The container must not inherit our ignored signals: dispositions
        // set to SIG_IGN survive exec, and a container that ignores SIGTERM
        // cannot be stopped gracefully.
        for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGPIPE}) signal(sig, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &mask, nullptr);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(3);
        execl(argv[3], argv[3], "--root", argv[4], "--log", runtimeLog, "--log-format", "text", "create", "--bundle",
              gDir, "--pid-file", pidFile, id, static_cast<char*>(nullptr));
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    if (create < 0) {
        say("error:monitor: fork failed");
        return 1;
    }
    int st = 0;
    while (waitpid(create, &st, 0) < 0 && errno == EINTR) {
    }
    pid_t init = 0;
    if (FILE* f = fopen(pidFile, "r")) {
        if (fscanf(f, "%d", &init) != 1) init = 0;
        fclose(f);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || init <= 0) {
        char msg[600] = "error:";
        if (FILE* f = fopen(runtimeLog, "r")) {
            // The runtime's last message says why.
            char line[512];
            while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = 0;
                // "2026-…Z error hull: MESSAGE": the message is what the user needs.
                const char* text = strstr(line, " hull: ");
                snprintf(msg, sizeof msg, "error:%s", text ? text + 7 : line);
            }
            fclose(f);
        }
        if (strcmp(msg, "error:") == 0) snprintf(msg, sizeof msg, "error:%s create exited %d", argv[3], exitCodeOf(st));
        say(msg);
        return 1;
    }
    char ok[64];
    snprintf(ok, sizeof ok, "created %d", init);
    say(ok);

    openLog();
    struct pollfd p[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {sfd, POLLIN, 0}};
    int openPipes = 2;
    bool initDone = false;
    int code = 0;
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
            // Reap everything re-parented to us; only the init's status matters.
            pid_t w;
            int s = 0;
            while ((w = waitpid(-1, &s, WNOHANG)) > 0)
                if (w == init) {
                    initDone = true;
                    code = exitCodeOf(s);
                }
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
    if (argc > 5) {
        for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGPIPE}) signal(sig, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &mask, nullptr);
        execv(argv[5], argv + 5);
    }
    return 0;
}
