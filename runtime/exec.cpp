// `exec`: a new process inside a running container. It joins every namespace
// the init is in (one setns() on the init's pidfd), lands in its cgroup at clone
// time where the kernel allows, and is set up exactly like an init: rlimits,
// identity, capabilities, seccomp.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "cgroups/manager.hpp"
#include "runtime/clone.hpp"
#include "runtime/process.hpp"
#include "runtime/runtime.hpp"
#include "runtime/spec.hpp"
#include "runtime/state.hpp"
#include "runtime/sync.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

namespace hull::runtime {
namespace {


/// The namespaces the init is in that we are not: compare /proc/*/ns inodes.
int namespacesToJoin(pid_t pid) {
    static const std::pair<const char*, int> kNs[] = {
        {"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},   {"pid", CLONE_NEWPID},       {"net", CLONE_NEWNET},
        {"ipc", CLONE_NEWIPC},   {"uts", CLONE_NEWUTS},  {"cgroup", CLONE_NEWCGROUP}, {"time", 0x00000080},
    };
    int flags = 0;
    for (auto& [name, flag] : kNs) {
        struct stat theirs, ours;
        std::string p = "/proc/" + std::to_string(pid) + "/ns/" + name;
        std::string q = std::string("/proc/self/ns/") + name;
        if (::stat(p.c_str(), &theirs) == 0 && ::stat(q.c_str(), &ours) == 0 && theirs.st_ino != ours.st_ino)
            flags |= flag;
    }
    return flags;
}

Result<Process> execProcessSpec(const ExecOptions& o, const Spec& spec) {
    if (!o.processJson.empty()) {
        // Parse it as the process of a minimal config, so errors carry the same
        // "process.args: ..." paths as config.json's.
        auto s = TRY_CTX("--process", parseSpec("{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"/\"},\"process\":" +
                                                o.processJson + "}"));
        Process p = *s.process;
        // As runc: what the process JSON leaves out comes from the container's own
        // process, so an exec never has more privilege than the container.
        auto raw = TRY_CTX("--process", json::Value::parse(o.processJson));
        if (spec.process) {
            if (!raw.find("capabilities")) p.capabilities = spec.process->capabilities;
            if (!raw.find("noNewPrivileges")) p.noNewPrivileges = spec.process->noNewPrivileges;
            if (!raw.find("rlimits")) p.rlimits = spec.process->rlimits;
            if (!raw.find("oomScoreAdj")) p.oomScoreAdj = spec.process->oomScoreAdj;
        }
        return p;
    }
    if (o.args.empty()) return failInvalid("exec: no command given");
    Process p = spec.process ? *spec.process : Process{};
    p.args = o.args;
    p.terminal = o.tty;
    p.consoleSize.reset();
    if (!o.cwd.empty()) p.cwd = o.cwd;
    for (auto& e : o.env) {
        auto eq = e.find('=');
        std::string key = e.substr(0, eq);
        std::erase_if(p.env, [&](const std::string& x) { return x.compare(0, key.size() + 1, key + "=") == 0; });
        p.env.push_back(e);
    }
    if (!o.user.empty()) {
        auto parts = sys::split(o.user, ':');
        char* end = nullptr;
        p.user.uid = uint32_t(std::strtoul(parts[0].c_str(), &end, 10));
        if (*end) return failInvalid("--user: expected UID[:GID], got \"" + o.user + "\"");
        p.user.gid = parts.size() > 1 ? uint32_t(std::strtoul(parts[1].c_str(), nullptr, 10)) : 0;
    }
    for (auto& g : o.additionalGids) {
        char* end = nullptr;
        unsigned long v = std::strtoul(g.c_str(), &end, 10);
        if (g.empty() || *end) return failInvalid("--additional-gids: expected a number, got \"" + g + "\"");
        p.user.additionalGids.push_back(uint32_t(v));
    }
    if (o.noNewPrivs) p.noNewPrivileges = true;
    if (!o.addCaps.empty()) {
        if (!p.capabilities) p.capabilities = Capabilities{};
        // Every set, as runc does: without inheritable and ambient a non-root user would not keep it.
        for (auto& c : o.addCaps)
            for (auto* set : {&p.capabilities->bounding, &p.capabilities->effective, &p.capabilities->permitted,
                              &p.capabilities->inheritable, &p.capabilities->ambient})
                set->push_back(c);
    }
    return p;
}

struct ExecChild {
    int syncFd = -1, initPidfd = -1, nsFlags = 0, consoleFd = -1;
    int rootFd = -1;  // the init's root, when it shares our mount namespace (chrooted into it)
    ProcessPlan proc;
};

Result<void> execChildSetup(ExecChild& c) {
    auto go = TRY(recvMsg(c.syncFd));
    if (go != "go") return fail(Error::plain(EPROTO, "parent went away"));
    // pid is already ours through pid_for_children; the rest in one step.
    int rest = c.nsFlags & ~CLONE_NEWPID;
    if (rest && ::setns(c.initPidfd, rest) < 0) return failErrno("join the container's namespaces");
    ::close(c.initPidfd);
    if (c.rootFd >= 0) {
        // A container without a mount namespace of its own: its root is a chroot.
        if (::fchdir(c.rootFd) < 0 || ::chroot(".") < 0 || ::chdir("/") < 0) return failErrno("enter the container's root");
        ::close(c.rootFd);
    }
    if (c.proc.terminal) {
        TRY_CTX("terminal", setupTerminal("/dev/ptmx", c.consoleFd, c.proc.consoleSize));
        ::close(c.consoleFd);
    }
    std::string path = TRY(resolveExecutable(c.proc));
    TRY(finalizeProcess(c.proc));
    TRY(sendMsg(c.syncFd, "ready"));
    ::close(c.syncFd);
    c.syncFd = -1;
    TRY(execProcess(c.proc, path));
    return {};
}

[[noreturn]] void execChildMain(ExecChild& c) {
    auto r = execChildSetup(c);
    std::string msg = r ? "exec returned" : r.error().message();
    if (c.syncFd >= 0) (void)sendMsg(c.syncFd, "error:" + msg);
    else dprintf(2, "hull: %s\n", msg.c_str());
    ::_exit(127);
}

Result<UniqueFd> connectConsole(const std::string& path) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return failErrno("console socket");
    UniqueFd fd(s);
    struct sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return failInvalid("--console-socket: path too long");
    std::strcpy(addr.sun_path, path.c_str());
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        return failErrno("connect console socket " + path);
    return fd;
}

}  // namespace

Result<int> Runtime::exec(const std::string& id, const ExecOptions& o) {
    auto s = TRY(state(id));
    if (s.status != "running" && s.status != "created")
        return fail(Error::plain(EINVAL, "cannot exec in a container that is " + s.status));
    std::string dir = sys::joinPath(root_, id);
    auto st = TRY(readState(dir));
    auto specText = TRY(sys::readFile(sys::joinPath(dir, kConfigCopy)));
    auto spec = TRY(parseSpec(specText));
    auto proc = TRY(execProcessSpec(o, spec));

    ExecChild c;
    c.proc = TRY(planProcess(proc, spec.linux.seccomp));
    c.proc.preserveFds = o.preserveFds;
    UniqueFd console, consoleOurs;
    if (c.proc.terminal) {
        if (!o.consoleSocket.empty()) {
            console = TRY(connectConsole(o.consoleSocket));
        } else if (!o.detach) {
            // In the foreground without a console socket (`hull exec -it`): the
            // pty master comes back to us and we proxy it, as `run` does.
            int pair[2];
            if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) return failErrno("console socketpair");
            console.reset(pair[0]);
            consoleOurs.reset(pair[1]);
        } else {
            return failInvalid("exec --tty --detach: --console-socket is required");
        }
        c.consoleFd = console.get();
    }
    int pfd = int(::syscall(SYS_pidfd_open, st.pid, 0));
    if (pfd < 0) return failErrno("open container process");
    UniqueFd initPidfd(pfd);
    if (!processAlive(st)) return fail(Error::plain(ESRCH, "container process is gone"));
    c.initPidfd = pfd;
    c.nsFlags = namespacesToJoin(st.pid);
    UniqueFd initRoot;
    if (!(c.nsFlags & CLONE_NEWNS)) {
        // Our mount namespace: setns() leaves our root as it is, so take the init's.
        initRoot.reset(::open(("/proc/" + std::to_string(st.pid) + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!initRoot) return failErrno("open the container's root");
        c.rootFd = initRoot.get();
    }

    auto cg = TRY(cgroupFor(st));
    auto cgFd = TRY(cg->openForClone());

    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) return failErrno("socketpair");
    UniqueFd parentSock(sp[0]), childSock(sp[1]);
    c.syncFd = childSock.get();

    UniqueFd ownPidNs;
    if (c.nsFlags & CLONE_NEWPID) {
        ownPidNs = TRY(sys::openFile("/proc/self/ns/pid", O_RDONLY));
        if (::setns(pfd, CLONE_NEWPID) < 0) return failErrno("join the container's pid namespace");
    }
    // The same clone as the init's (runtime/clone.hpp), with its fallback where
    // clone3 is refused.
    Cloned cl = cloneProcess(0, cgFd ? cgFd.get() : -1);
    if (cl.pid == 0) {
        parentSock.reset();
        execChildMain(c);
    }
    if (ownPidNs) ::setns(ownPidNs.get(), CLONE_NEWPID);
    if (cl.pid < 0) return failErrno("clone exec process", cl.error);
    if (!cl.intoCgroup) cgFd.reset();  // plain clone: attached below
    pid_t child = pid_t(cl.pid);
    UniqueFd childFd(cl.pidfd);
    childSock.reset();
    console.reset();
    auto killChild = [&] {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
    };
    if (!cgFd) {
        if (auto a = cg->attach(child); !a) {
            killChild();
            return fail(std::move(a).error().context("cgroup"));
        }
    }
    if (auto g = sendMsg(parentSock.get(), "go"); !g) {
        killChild();
        return fail(std::move(g).error());
    }
    auto m = recvMsg(parentSock.get());
    if (!m || *m != "ready") {
        std::string why = m && m->rfind("error:", 0) == 0 ? m->substr(6) : "exec process exited during setup";
        killChild();
        return fail(Error::plain(EINVAL, why));
    }
    if (!o.pidFile.empty()) TRY(sys::writeFileAtomic(o.pidFile, std::to_string(child), 0644));
    if (o.detach) return 0;
    if (!consoleOurs) return waitForwardingSignals(child, childFd.get());
    auto master = TRY_CTX("terminal", recvFd(consoleOurs.get()));
    int stop[2];
    if (::pipe2(stop, O_CLOEXEC) < 0) return failErrno("pipe");
    std::thread proxy(proxyConsole, master.get(), stop[0]);
    int status = waitForwardingSignals(child, childFd.get(), master.get());
    (void)!::write(stop[1], "x", 1);
    proxy.join();
    ::close(stop[0]);
    ::close(stop[1]);
    return status;
}

}  // namespace hull::runtime
