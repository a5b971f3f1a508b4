#include "support.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "sys/fs.hpp"

namespace hull::test {

TempDir::TempDir(const std::string& prefix) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() { (void)sys::removeAll(path_); }

bool isRoot() { return ::geteuid() == 0; }

bool waitFor(const std::function<bool()>& cond, int ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
}

std::string binPath(const std::string& name) { return std::string(HULL_BIN_DIR) + "/" + name; }

std::string busyboxPath() {
    for (const char* p : {"/bin/busybox", "/usr/bin/busybox"})
        if (::access(p, X_OK) == 0) return p;
    return "";
}

void makeBusyboxRootfs(const std::string& dir) {
    for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "etc", "root", "var"})
        if (!sys::mkdirAll(dir + "/" + d)) throw std::runtime_error("mkdir failed");
    std::string bb = busyboxPath();
    if (bb.empty()) throw std::runtime_error("busybox-static is not installed");
    auto r = run({"/bin/cp", bb, dir + "/bin/busybox"});
    if (r.status != 0) throw std::runtime_error("copy busybox: " + r.err);
    for (const char* a : {"sh", "cat", "echo", "ls", "id", "hostname", "sleep", "true", "false", "ps", "mount",
                          "touch", "grep", "nc", "wc", "kill", "mkdir", "rm", "head", "env", "readlink", "stat",
                          "dd", "pwd", "test", "umask", "ulimit", "cut", "tr", "sed", "cp", "chmod", "find", "timeout", "usleep", "seq", "httpd", "wget"}) {
        std::string link = dir + "/bin/" + a;
        ::unlink(link.c_str());
        if (::symlink("busybox", link.c_str()) < 0) throw std::runtime_error("symlink " + link);
    }
    writeFileOrThrow(dir + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n");
    writeFileOrThrow(dir + "/etc/group", "root:x:0:\nnogroup:x:65534:\n");
}

static void drain(int fd, std::string& into) {
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) into.append(buf, size_t(n));
}

RunResult run(const std::vector<std::string>& argv, const std::string& input) {
    int out[2], err[2], in[2];
    if (::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC) || ::pipe2(in, O_CLOEXEC))
        throw std::runtime_error("pipe");
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    ::close(in[0]);
    if (!input.empty()) (void)!::write(in[1], input.data(), input.size());
    ::close(in[1]);
    RunResult r;
    // Read until EOF on both pipes, or until the child has exited and nothing more is
    // buffered: `create` and `run --detach` hand their stdio to the container, which
    // keeps the pipes open long after hull-runc itself is gone.
    struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open = 2, st = 0;
    bool exited = false;
    while (open > 0) {
        int n = ::poll(fds, 2, exited ? 0 : 50);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (n == 0) {
            if (exited) break;
            pid_t w = ::waitpid(pid, &st, WNOHANG);
            if (w == pid) exited = true;
            continue;
        }
        for (auto& f : fds) {
            if (f.fd < 0 || !f.revents) continue;
            std::string& into = (f.fd == out[0]) ? r.out : r.err;
            size_t before = into.size();
            drain(f.fd, into);
            if (into.size() == before) {
                ::close(f.fd);
                f.fd = -1;
                --open;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) ::close(f.fd);
    if (!exited)
        while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

std::string readFileOr(const std::string& path, const std::string& fallback) {
    auto r = sys::readFile(path);
    return r ? *r : fallback;
}

void writeFileOrThrow(const std::string& path, const std::string& data) {
    if (!sys::writeFile(path, data)) throw std::runtime_error("write " + path);
}

}  // namespace hull::test

namespace hull::test {

Unprivileged unprivilegedUser() {
    Unprivileged u;
    if (const passwd* p = ::getpwnam("nobody")) {
        u.uid = p->pw_uid;
        u.gid = p->pw_gid;
    }
    return u;
}

std::string binPathForUnprivileged(const std::string& name) {
    static TempDir dir("hull-unpriv-bin");
    std::string copy = dir.path() + "/" + name;
    if (::access(copy.c_str(), X_OK) != 0) {
        ::chmod(dir.path().c_str(), 0755);
        std::ifstream in(binPath(name), std::ios::binary);
        std::ofstream out(copy, std::ios::binary);
        out << in.rdbuf();
        out.close();
        ::chmod(copy.c_str(), 0755);
    }
    return copy;
}

bool dropToUnprivileged() {
    Unprivileged u = unprivilegedUser();
    return ::setgroups(0, nullptr) == 0 && ::setgid(u.gid) == 0 && ::setuid(u.uid) == 0;
}

}  // namespace hull::test
