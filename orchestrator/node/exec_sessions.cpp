#include "orchestrator/node/exec_sessions.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "sys/base64.hpp"
#include "sys/scope_exit.hpp"
#include "sys/unique_fd.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace hull::orchestrator::node {

namespace asio = boost::asio;
using json::Value;

Result<ExecRequest> parseExecRequest(const Value& m) {
    ExecRequest r;
    r.container = json::stringOf(m, "container");
    r.user = json::stringOf(m, "user");
    auto strings = [&](const char* key, std::vector<std::string>& out) {
        if (const Value* a = m.find(key); a && a->isArray())
            for (const auto& v : a->asArray())
                if (v.isString()) out.push_back(v.asString());
    };
    strings("args", r.args);
    strings("env", r.env);
    auto flag = [&](const char* key) {
        const Value* v = m.find(key);
        return v && v->isBool() && v->asBool();
    };
    r.tty = flag("tty");
    r.interactive = flag("interactive");
    int64_t n = 0;
    if (const Value* v = m.find("rows"); v && v->toInt64(n) && n > 0 && n < 65536) r.rows = int(n);
    if (const Value* v = m.find("cols"); v && v->toInt64(n) && n > 0 && n < 65536) r.cols = int(n);
    if (r.container.empty()) return failInvalid("exec: no container named");
    if (r.args.empty()) return failInvalid("exec: no command given");
    return r;
}

namespace {

/// A write that returns EPIPE rather than raising SIGPIPE, which would end the
/// agent (it leaves SIGPIPE at its default: an ignored disposition would pass
/// on to everything it starts): SIGPIPE is blocked in this thread around the
/// write and a SIGPIPE it raised is taken back before unblocking.
ssize_t writeNoSigpipe(int fd, const char* p, size_t n) {
    sigset_t pipeSet, old, pending;
    sigemptyset(&pipeSet);
    sigaddset(&pipeSet, SIGPIPE);
    sigpending(&pending);
    bool wasPending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipeSet, &old);
    ssize_t r = ::write(fd, p, n);
    int err = errno;
    if (r < 0 && err == EPIPE && !wasPending) {
        struct timespec zero {};
        while (::sigtimedwait(&pipeSet, nullptr, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = err;
    return r;
}

/// ARG0 as execve wants it: as is with a slash, else the first executable on PATH.
std::string lookPath(const std::string& arg0, const std::string& path) {
    if (arg0.find('/') != std::string::npos) return arg0;
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find(':', start);
        if (end == std::string::npos) end = path.size();
        std::string dir = path.substr(start, end - start);
        std::string full = (dir.empty() ? "." : dir) + "/" + arg0;
        if (::access(full.c_str(), X_OK) == 0) return full;
        start = end + 1;
    }
    return arg0;  // execve fails with ENOENT, as it should
}

struct Spawned {
    pid_t pid = -1;
    UniqueFd pidfd, in, out, err;  // with a tty: out is the pty master, in and err are unused
};

// The child's environment: a fixed PATH and nothing of the agent's (no
// HULL_CONFIG nor HOME: `hull exec` must run here, not go back to a master).
constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

Result<Spawned> spawn(const std::vector<std::string>& argv, const ExecRequest& r) {
    if (argv.empty()) return failInvalid("exec: no command");
    std::string file = lookPath(argv[0], kPath);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::string pathEnv = std::string("PATH=") + kPath;
    char* envp[] = {pathEnv.data(), nullptr};

    Spawned s;
    UniqueFd childIn, childOut, childErr;  // the child's 0, 1, 2 (with a tty: our own fd of the slave)
    std::string slaveName;
    if (r.tty) {
        int m = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0) return failErrno("exec: open a pseudo-terminal");
        s.out.reset(m);
        char name[128];
        if (::grantpt(m) < 0 || ::unlockpt(m) < 0 || ::ptsname_r(m, name, sizeof name) != 0)
            return failErrno("exec: set up the pseudo-terminal");
        slaveName = name;
        // Held until the child has it: the pty stays as set up here.
        childIn.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
        if (!childIn) return failErrno(std::string("exec: open ") + name);
        // Raw from the start: the terminal the user typed on is raw too, and
        // the line discipline that echoes and edits is the container's own
        // (`hull exec -t` proxies into a pty of the container's).
        struct termios t {};
        if (::tcgetattr(childIn.get(), &t) == 0) {
            ::cfmakeraw(&t);
            ::tcsetattr(childIn.get(), TCSANOW, &t);
        }
        if (r.rows > 0 && r.cols > 0) {
            struct winsize ws {};
            ws.ws_row = (unsigned short)r.rows;
            ws.ws_col = (unsigned short)r.cols;
            ::ioctl(m, TIOCSWINSZ, &ws);
        }
    } else {
        int p[2];
        if (r.interactive) {
            if (::pipe2(p, O_CLOEXEC) < 0) return failErrno("exec: pipe");
            childIn.reset(p[0]);
            s.in.reset(p[1]);
        } else {
            childIn.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
            if (!childIn) return failErrno("exec: open /dev/null");
        }
        if (::pipe2(p, O_CLOEXEC) < 0) return failErrno("exec: pipe");
        s.out.reset(p[0]);
        childOut.reset(p[1]);
        if (::pipe2(p, O_CLOEXEC) < 0) return failErrno("exec: pipe");
        s.err.reset(p[0]);
        childErr.reset(p[1]);
    }
    // posix_spawn rather than fork: glibc's clone(CLONE_VM | CLONE_VFORK)
    // copies none of the agent's address space, and the child runs nothing of
    // ours between the clone and the execve (the agent has other threads).
    struct Spawn {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        Spawn() {
            posix_spawn_file_actions_init(&fa);
            posix_spawnattr_init(&at);
        }
        ~Spawn() {
            posix_spawn_file_actions_destroy(&fa);
            posix_spawnattr_destroy(&at);
        }
    } sp;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGWINCH}) sigaddset(&dfl, sig);
    posix_spawnattr_setsigmask(&sp.at, &none);
    posix_spawnattr_setsigdefault(&sp.at, &dfl);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (r.tty) {
        // A session of its own, in which the slave, opened without O_NOCTTY,
        // becomes the controlling terminal: SIGWINCH on resizes, SIGHUP when
        // the master goes.
        flags |= POSIX_SPAWN_SETSID;
        posix_spawn_file_actions_addopen(&sp.fa, 0, slaveName.c_str(), O_RDWR, 0);
        posix_spawn_file_actions_adddup2(&sp.fa, 0, 1);
        posix_spawn_file_actions_adddup2(&sp.fa, 0, 2);
    } else {
        flags |= POSIX_SPAWN_SETPGROUP;  // a group of its own: a cancel kills what it started too
        posix_spawnattr_setpgroup(&sp.at, 0);
        posix_spawn_file_actions_adddup2(&sp.fa, childIn.get(), 0);
        posix_spawn_file_actions_adddup2(&sp.fa, childOut.get(), 1);
        posix_spawn_file_actions_adddup2(&sp.fa, childErr.get(), 2);
    }
    posix_spawnattr_setflags(&sp.at, flags);
    pid_t pid = -1;
    if (int rc = ::posix_spawn(&pid, file.c_str(), &sp.fa, &sp.at, args.data(), envp); rc != 0)
        return failErrno("exec: run " + argv[0], rc);
    s.pid = pid;
    // Unreaped, the pid cannot be reused, and nothing in the agent reaps other
    // children than its own by pid: the pidfd is this child's.
    int pfd = int(::syscall(SYS_pidfd_open, pid, 0));
    if (pfd < 0) {
        int err = errno;
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        return failErrno("exec: pidfd_open", err);
    }
    s.pidfd.reset(pfd);
    for (const UniqueFd* f : {&s.in, &s.out, &s.err})
        if (*f) ::fcntl(f->get(), F_SETFL, ::fcntl(f->get(), F_GETFL) | O_NONBLOCK);
    return s;
}

}  // namespace

struct ExecSessions::Exec {
    explicit Exec(asio::io_context& ioc) : in(ioc), out(ioc), err(ioc), pidfd(ioc), timer(ioc) {}
    uint64_t serial = 0;
    int64_t stream = 0;
    bool tty = false, interactive = false;
    pid_t pid = -1;
    bool reaped = false, exited = false, cancelled = false;
    bool outOpen = false, errOpen = false;
    bool writing = false, eof = false;
    int code = 0;
    Desc in, out, err, pidfd;  // with a tty, out is the pty master (both ways)
    asio::steady_timer timer;  // the drain after the exit, or the kill after a cancel
    std::string pending;       // stdin not written yet
    std::string outBuf, errBuf;
    Desc& writer() { return tty ? out : in; }
};

ExecSessions::ExecSessions(asio::io_context& ioc, Send send, Command command, std::function<size_t()> backlog)
    : ioc_(ioc), send_(std::move(send)), command_(std::move(command)), backlog_(std::move(backlog)),
      life_(std::make_shared<int>(0)) {}

ExecSessions::~ExecSessions() {
    life_.reset();
    for (auto& [serial, e] : execs_) {
        if (e->reaped) continue;
        ::kill(-e->pid, SIGKILL);
        ::kill(e->pid, SIGKILL);
        // Blocking: asio may have made the pidfd non-blocking, and waitid on such a pidfd says EAGAIN.
        int fd = e->pidfd.native_handle();
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        siginfo_t si{};
        while (::waitid(idtype_t(P_PIDFD), id_t(fd), &si, WEXITED) < 0 && errno == EINTR) {
        }
    }
}

bool ExecSessions::handle(const std::string& type, const Value& m) {
    if (type != "exec" && type != "exec-input" && type != "exec-resize" && type != "exec-cancel") return false;
    int64_t stream = 0;
    if (const Value* v = m.find("stream"); !v || !v->toInt64(stream)) return true;
    if (type == "exec") {
        auto req = parseExecRequest(m);
        if (!req) {
            refuse(stream, req.error().message());
            return true;
        }
        auto argv = command_ ? command_(*req) : Result<std::vector<std::string>>(failInvalid("this node runs no exec"));
        if (!argv) refuse(stream, argv.error().message());
        else start(stream, *req, *argv);
    } else if (type == "exec-input") {
        if (const Value* d = m.find("data"); d && d->isString()) {
            auto bytes = sys::base64Decode(d->asString());
            if (bytes) input(stream, std::move(*bytes));
        }
        if (const Value* e = m.find("eof"); e && e->isBool() && e->asBool()) closeInput(stream);
    } else if (type == "exec-resize") {
        int64_t rows = 0, cols = 0;
        const Value* r = m.find("rows");
        const Value* c = m.find("cols");
        if (r && c && r->toInt64(rows) && c->toInt64(cols)) resize(stream, int(rows), int(cols));
    } else {
        cancel(stream);
    }
    return true;
}

ExecSessions::Exec* ExecSessions::find(uint64_t serial) {
    auto it = execs_.find(serial);
    return it == execs_.end() ? nullptr : it->second.get();
}

ExecSessions::Exec* ExecSessions::live(int64_t stream) {
    for (auto& [serial, e] : execs_)
        if (e->stream == stream && !e->cancelled) return e.get();
    return nullptr;
}

void ExecSessions::start(int64_t stream, const ExecRequest& request, const std::vector<std::string>& argv) {
    cancel(stream);
    auto s = spawn(argv, request);
    if (!s) return refuse(stream, s.error().message());
    auto e = std::make_unique<Exec>(ioc_);
    e->serial = nextSerial_++;
    e->stream = stream;
    e->tty = request.tty;
    e->interactive = request.interactive;
    e->pid = s->pid;
    e->pidfd.assign(s->pidfd.release());
    e->out.assign(s->out.release());
    e->outOpen = true;
    if (s->err) {
        e->err.assign(s->err.release());
        e->errOpen = true;
    }
    if (s->in) e->in.assign(s->in.release());
    Exec& x = *e;
    execs_[x.serial] = std::move(e);
    readFrom(x, x.out, false);
    if (x.errOpen) readFrom(x, x.err, true);
    std::weak_ptr<int> life = life_;
    x.pidfd.async_wait(Desc::wait_read, [this, life, serial = x.serial](boost::system::error_code ec) {
        if (ec || !life.lock()) return;
        if (Exec* e = find(serial)) exited(*e);
    });
}

void ExecSessions::refuse(int64_t stream, const std::string& error) { sendExit(stream, -1, error); }

void ExecSessions::sendExit(int64_t stream, int code, const std::string& error) {
    Value m = Value::object();
    m.set("type", "exec-exit");
    m.set("stream", stream);
    m.set("code", int64_t(code));
    m.set("error", error);
    send_(m.dump());
}

void ExecSessions::readFrom(Exec& e, Desc& d, bool isErr) {
    std::string& buf = isErr ? e.errBuf : e.outBuf;
    buf.resize(kChunk);
    std::weak_ptr<int> life = life_;
    d.async_read_some(asio::buffer(buf), [this, life, serial = e.serial, isErr](boost::system::error_code ec, size_t n) {
        if (ec == asio::error::operation_aborted || !life.lock()) return;
        Exec* e = find(serial);
        if (!e) return;
        if (n > 0 && !e->cancelled) {
            Value m = Value::object();
            m.set("type", "exec-data");
            m.set("stream", e->stream);
            m.set("data", sys::base64Encode(std::string_view(isErr ? e->errBuf : e->outBuf).substr(0, n)));
            if (isErr) m.set("stderr", true);
            send_(m.dump());
            if (!(e = find(serial)) || e->cancelled) return;  // what send_ did may have ended it
        }
        if (ec) {
            // EOF on a pipe, EIO on the pty master once no one holds the slave: that end is done.
            (isErr ? e->errOpen : e->outOpen) = false;
            return maybeFinish(*e);
        }
        readWhenRoom(serial, isErr);
    });
}

void ExecSessions::readWhenRoom(uint64_t serial, bool isErr) {
    Exec* e = find(serial);
    if (!e || e->cancelled) return;
    if (!backlog_ || backlog_() <= kMaxBacklog) return readFrom(*e, isErr ? e->err : e->out, isErr);
    // Its output waits in the pipe (and the command, once that is full) until the session catches up.
    auto wait = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(20));
    std::weak_ptr<int> life = life_;
    wait->async_wait([this, life, wait, serial, isErr](boost::system::error_code ec) {
        if (!ec && life.lock()) readWhenRoom(serial, isErr);
    });
}

void ExecSessions::input(int64_t stream, std::string bytes) {
    Exec* e = live(stream);
    if (!e || e->exited || e->eof || (!e->interactive) || !e->writer().is_open()) return;
    e->pending += bytes;
    if (e->pending.size() > kMaxPendingInput) {
        finish(*e, -1, "exec: the command does not read its input as fast as it comes (over 8 MiB waiting)");
        return;
    }
    writeInput(*e);
}

void ExecSessions::closeInput(int64_t stream) {
    Exec* e = live(stream);
    if (!e || e->eof || !e->interactive) return;
    // A pipe is closed; a terminal gets its EOF character (^D), which the
    // container's own terminal, in canonical mode, turns into an end of input.
    if (e->tty) e->pending += '\x04';
    e->eof = true;
    writeInput(*e);
}

void ExecSessions::writeInput(Exec& e) {
    if (e.writing || !e.writer().is_open()) return;
    // What the command took (or what was dropped after it closed its input) is
    // credited back: the client sends at most a window ahead of it.
    size_t taken = 0;
    auto credit = [&] {
        if (taken == 0 || e.cancelled) return;
        Value m = Value::object();
        m.set("type", "exec-credit");
        m.set("stream", e.stream);
        m.set("bytes", int64_t(taken));
        send_(m.dump());
        taken = 0;
    };
    ScopeExit sendCredit([&] { credit(); });
    while (!e.pending.empty()) {
        ssize_t n = writeNoSigpipe(e.writer().native_handle(), e.pending.data(), std::min(e.pending.size(), kChunk));
        if (n > 0) {
            e.pending.erase(0, size_t(n));
            taken += size_t(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            e.writing = true;
            std::weak_ptr<int> life = life_;
            e.writer().async_wait(Desc::wait_write, [this, life, serial = e.serial](boost::system::error_code ec) {
                if (ec == asio::error::operation_aborted || !life.lock()) return;
                if (Exec* e = find(serial)) {
                    e->writing = false;
                    writeInput(*e);
                }
            });
            return;
        }
        // EPIPE: the command closed its input; what is left is dropped.
        taken += e.pending.size();
        e.pending.clear();
        if (!e.tty) e.in.close();
        return;
    }
    if (e.eof && !e.tty && e.in.is_open()) e.in.close();
}

void ExecSessions::resize(int64_t stream, int rows, int cols) {
    Exec* e = live(stream);
    if (!e || !e->tty || !e->out.is_open() || rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535) return;
    struct winsize ws {};
    ws.ws_row = (unsigned short)rows;
    ws.ws_col = (unsigned short)cols;
    ::ioctl(e->out.native_handle(), TIOCSWINSZ, &ws);  // the kernel sends SIGWINCH to the terminal's foreground
}

void ExecSessions::exited(Exec& e) {
    siginfo_t si{};
    int r;
    while ((r = ::waitid(idtype_t(P_PIDFD), id_t(e.pidfd.native_handle()), &si, WEXITED)) < 0 && errno == EINTR) {
    }
    e.reaped = true;
    e.exited = true;
    if (r < 0) {
        // Only if someone reaped it behind our back: say so rather than make up a code.
        e.code = -1;
        if (e.cancelled) return erase(e.serial);
        return finish(e, -1, std::string("exec: the command's exit status was lost: ") + std::strerror(errno));
    }
    e.code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    if (e.cancelled) return erase(e.serial);
    e.in.close();
    e.pending.clear();
    // What it wrote last is read until the ends close (a pty passes its last
    // bytes on asynchronously), for a short while at most.
    e.timer.expires_after(kDrainFor);
    std::weak_ptr<int> life = life_;
    e.timer.async_wait([this, life, serial = e.serial](boost::system::error_code ec) {
        if (ec || !life.lock()) return;
        if (Exec* e = find(serial)) finish(*e, e->code, "");
    });
    maybeFinish(e);
}

void ExecSessions::maybeFinish(Exec& e) {
    if (e.exited && !e.outOpen && !e.errOpen) finish(e, e.code, "");
}

void ExecSessions::finish(Exec& e, int code, const std::string& error) {
    bool tell = !e.cancelled;
    int64_t stream = e.stream;
    // Reaped: gone now. Still running (an error ended it early): ended as a cancelled one is.
    cancelExec(e);
    if (tell) sendExit(stream, code, error);
}

void ExecSessions::cancel(int64_t stream) {
    if (Exec* e = live(stream)) cancelExec(*e);
}

void ExecSessions::cancelAll() {
    std::vector<Exec*> all;
    for (auto& [serial, e] : execs_)
        if (!e->cancelled) all.push_back(e.get());
    for (Exec* e : all) cancelExec(*e);
}

void ExecSessions::cancelExec(Exec& e) {
    e.cancelled = true;
    if (e.reaped) return erase(e.serial);
    // Asked first, the child's whole group (it leads it: unreaped, its id is
    // still ours): `hull exec` passes SIGHUP and SIGTERM on into the
    // container, where the command's own process runs.
    int sig = e.tty ? SIGHUP : SIGTERM;
    ::kill(-e.pid, sig);
    ::syscall(SYS_pidfd_send_signal, e.pidfd.native_handle(), sig, nullptr, 0);
    e.in.close();
    e.out.close();
    e.err.close();
    e.outOpen = e.errOpen = false;
    e.pending.clear();
    e.timer.cancel();
    e.timer.expires_after(kKillAfter);
    std::weak_ptr<int> life = life_;
    e.timer.async_wait([this, life, serial = e.serial](boost::system::error_code ec) {
        if (ec || !life.lock()) return;
        if (Exec* e = find(serial); e && !e->reaped) {
            ::kill(-e->pid, SIGKILL);  // unreaped, its pid (and so its group's id) is still ours
            ::syscall(SYS_pidfd_send_signal, e->pidfd.native_handle(), SIGKILL, nullptr, 0);
        }
    });
}

void ExecSessions::erase(uint64_t serial) {
    auto it = execs_.find(serial);
    if (it == execs_.end()) return;
    Exec& e = *it->second;
    boost::system::error_code ignored;
    for (Desc* d : {&e.in, &e.out, &e.err, &e.pidfd}) d->close(ignored);
    e.timer.cancel();
    execs_.erase(it);
}

}  // namespace hull::orchestrator::node
