// The container lifecycle (runtime.md "Lifecycle"), runc's way:
//   create: plan everything in the parent, clone the init into its namespaces
//           (and cgroup), let it build its root and identity, and leave it
//           blocked on <state>/exec.fifo;
//   start:  write one byte to the fifo: the init runs startContainer hooks and execs;
//   delete: kill what is left, run poststop hooks, remove cgroup and state.
// Parent and child talk over a SOCK_SEQPACKET pair: "go", "hooks", "ready",
// "error:<message>". A child error before "ready" fails create and rolls back.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/ioctl.h>
#include <termios.h>

#include <algorithm>
#include <thread>
#include <cctype>
#include <cstring>
#include <optional>

#include "cgroups/manager.hpp"
#include "netns/loopback.hpp"
#include "runtime/capabilities.hpp"
#include "runtime/clone.hpp"
#include "runtime/defaults.hpp"
#include "runtime/hooks.hpp"
#include "runtime/namespaces.hpp"
#include "runtime/process.hpp"
#include "runtime/rootfs.hpp"
#include "runtime/runtime.hpp"
#include "runtime/spec.hpp"
#include "runtime/state.hpp"
#include "runtime/sync.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"
#include "sys/scope_exit.hpp"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace hull::runtime {
namespace {

constexpr const char* kOciVersion = "1.2.0";


// ---- small helpers -------------------------------------------------------

std::string stateDirOf(const std::string& root, const std::string& id) { return sys::joinPath(root, id); }

std::string absolutePath(const std::string& p) {
    if (!p.empty() && p[0] == '/') return sys::cleanPath(p);
    char cwd[4096];
    if (!::getcwd(cwd, sizeof cwd)) return sys::cleanPath(p);
    return sys::cleanPath(sys::joinPath(cwd, p));
}

std::string hookState(const std::string& id, const char* status, pid_t pid, const std::string& bundle,
                      const std::map<std::string, std::string>& annotations) {
    ContainerState s;
    s.ociVersion = kOciVersion;
    s.id = id;
    s.status = status;
    s.pid = pid;
    s.bundle = bundle;
    s.annotations = annotations;
    return stateJson(s, false);
}


/// linux.resources as applied: a config that restricts devices (podman and
/// Docker send "deny all") still gets the devices every container needs, and
/// those it declares in linux.devices (runtime-spec config-linux.md, "Devices").
cgroups::Resources effectiveResources(const Spec& spec) {
    cgroups::Resources r = *spec.linux.resources;
    if (r.devices.empty()) return r;
    auto allow = [&](const char* type, std::optional<int64_t> major, std::optional<int64_t> minor, const char* access) {
        r.devices.push_back({true, type, major, minor, access});
    };
    allow("c", std::nullopt, std::nullopt, "m");  // mknod of any device is harmless: opening it is what counts
    allow("b", std::nullopt, std::nullopt, "m");
    for (auto [major, minor] : {std::pair{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}})
        allow("c", major, minor, "rwm");  // null zero full random urandom tty console ptmx
    allow("c", 136, std::nullopt, "rwm");   // /dev/pts/*
    for (const auto& d : spec.linux.devices)
        if (d.type != 'p') r.devices.push_back({true, d.type == 'b' ? "b" : "c", d.major, d.minor, "rwm"});
    return r;
}

int waitStatus(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

/// Wait (up to timeoutMs) for a process that need not be our child to exit.
bool waitGone(pid_t pid, int timeoutMs) {
    int pfd = int(::syscall(SYS_pidfd_open, pid, 0));
    if (pfd < 0) return errno == ESRCH;
    UniqueFd fd(pfd);
    struct pollfd p{pfd, POLLIN, 0};
    int r;
    while ((r = ::poll(&p, 1, timeoutMs)) < 0 && errno == EINTR) {
    }
    return r > 0;
}

Result<void> signalProcess(const StoredState& s, int sig) {
    int pfd = int(::syscall(SYS_pidfd_open, s.pid, 0));
    if (pfd < 0) return failErrno("open process " + std::to_string(s.pid));
    UniqueFd fd(pfd);
    // The pidfd pins the process: check it is still ours, then signal through it.
    if (!processAlive(s)) return fail(Error::plain(ESRCH, "container process is gone"));
    if (::syscall(SYS_pidfd_send_signal, pfd, sig, nullptr, 0) < 0) return failErrno("signal");
    return {};
}

// ---- the container's init, between clone and execve ------------------------

struct InitContext {
    const Spec* spec = nullptr;
    std::string id, bundle, rootfs;
    RootfsContext rootfsCtx;
    ProcessPlan proc;
    int syncFd = -1;
    int consoleFd = -1;
    int fifoFd = -1;  // -1: start at once (run)
    int lockFd = -1;  // the parent's flock: our copy would hold it until exec
    std::vector<std::pair<int, int>> joins;  // (fd, CLONE_NEW*) in join order
    int unshareAfterJoin = 0;                // namespaces that must come after joins/placement
    bool newUser = false, newUts = false, newNet = false;
    bool hasUts = false;  // new or joined: the hostname is set there
    bool hooksRoundTrip = false;
    bool noPivot = false;
    bool ownMounts = true;  // a mount namespace of its own (or joined); else chrooted in the runtime's
};

Result<void> setupTimeNamespace(const Spec& spec) {
    if (::unshare(CLONE_NEWTIME) < 0) return failErrno("unshare time namespace");
    std::string offsets;
    for (auto& [clock, off] : spec.linux.timeOffsets)
        offsets += clock + " " + std::to_string(off.secs) + " " + std::to_string(off.nanosecs) + "\n";
    if (!offsets.empty()) TRY(sys::writeExisting("/proc/self/timens_offsets", offsets));
    auto fd = TRY(sys::openFile("/proc/self/ns/time_for_children", O_RDONLY));
    if (::setns(fd.get(), CLONE_NEWTIME) < 0) return failErrno("enter time namespace");
    return {};
}

Result<void> initSetup(InitContext& c) {
    if (c.lockFd >= 0) ::close(c.lockFd);
    auto go = TRY(recvMsg(c.syncFd));
    if (go.rfind("go:", 0) != 0) return fail(Error::plain(EPROTO, "parent went away"));
    pid_t hostPid = pid_t(std::atoi(go.c_str() + 3));

    for (auto& [fd, type] : c.joins) {
        if (::setns(fd, type) < 0) return failErrno("join namespace");
        ::close(fd);
    }
    if (c.newUser) {
        // The parent has written our uid/gid maps; become the mapped root.
        if (::setresgid(0, 0, 0) < 0 || ::setresuid(0, 0, 0) < 0)
            return failErrno("become root in the user namespace (is uid 0 mapped?)");
    }
    if (c.unshareAfterJoin & CLONE_NEWTIME) TRY(setupTimeNamespace(*c.spec));
    // A cgroup namespace is rooted where we are when it is made: after placement.
    if ((c.unshareAfterJoin & ~CLONE_NEWTIME) && ::unshare(c.unshareAfterJoin & ~CLONE_NEWTIME) < 0)
        return failErrno("unshare");

    if (c.newNet) TRY(netns::bringUpLoopback());
    if (c.ownMounts) TRY(prepareRootfs(c.rootfsCtx));
    if (c.proc.terminal) {
        int n = TRY_CTX("terminal", setupTerminal(sys::joinPath(c.rootfs, "dev/pts/ptmx"), c.consoleFd,
                                                  c.proc.consoleSize));
        ::close(c.consoleFd);
        // /dev/console is the pty's peer, as on a real system console.
        std::string console = sys::joinPath(c.rootfs, "dev/console");
        int f = ::open(console.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (f >= 0) ::close(f);
        std::string peer = sys::joinPath(c.rootfs, "dev/pts/" + std::to_string(n));
        if (::mount(peer.c_str(), console.c_str(), nullptr, MS_BIND, nullptr) < 0)
            return failErrno("bind /dev/console");
    }
    if (c.hooksRoundTrip) {
        TRY(sendMsg(c.syncFd, "hooks"));
        auto m = TRY(recvMsg(c.syncFd));
        if (m != "go") return fail(Error::plain(EPROTO, "parent went away"));
    }
    auto& spec = *c.spec;
    if (!spec.hooks.createContainer.empty())
        TRY(runHooks(spec.hooks.createContainer, hookState(c.id, "created", hostPid, c.bundle, spec.annotations),
                     "createContainer"));
    if (!c.ownMounts) {
        // The runtime's mount namespace, as runc and crun do without one: the
        // rootfs is entered with chroot, and nothing is mounted or unmounted.
        if (::chroot(c.rootfs.c_str()) < 0 || ::chdir("/") < 0) return failErrno("chroot " + c.rootfs);
    } else if (c.noPivot) {
        if (::chdir(c.rootfs.c_str()) < 0 || ::mount(c.rootfs.c_str(), "/", nullptr, MS_MOVE, nullptr) < 0 ||
            ::chroot(".") < 0 || ::chdir("/") < 0)
            return failErrno("move into rootfs");
    } else {
        TRY(enterRootfs(c.rootfs));
    }
    if (c.ownMounts) TRY(finishRootfs(spec));
    if (c.hasUts) {
        if (!spec.hostname.empty() && ::sethostname(spec.hostname.data(), spec.hostname.size()) < 0)
            return failErrno("sethostname");
        if (!spec.domainname.empty() && ::setdomainname(spec.domainname.data(), spec.domainname.size()) < 0)
            return failErrno("setdomainname");
    }
    if (c.proc.cwd != "/") (void)sys::mkdirAll(c.proc.cwd, 0755);
    std::string path = TRY(resolveExecutable(c.proc));
    TRY(finalizeProcess(c.proc));
    TRY(sendMsg(c.syncFd, "ready"));
    ::close(c.syncFd);
    c.syncFd = -1;

    if (c.fifoFd >= 0) {
        char b;
        ssize_t n;
        while ((n = ::read(c.fifoFd, &b, 1)) < 0 && errno == EINTR) {
        }
        if (n != 1) ::_exit(1);  // nobody will ever start us
        ::close(c.fifoFd);
    }
    if (!spec.hooks.startContainer.empty())
        TRY(runHooks(spec.hooks.startContainer, hookState(c.id, "running", hostPid, c.bundle, spec.annotations),
                     "startContainer"));
    TRY(execProcess(c.proc, path));
    return {};
}

[[noreturn]] void initMain(InitContext& c) {
    auto r = initSetup(c);
    std::string msg = r ? "exec returned" : r.error().message();
    if (c.syncFd >= 0) {
        (void)sendMsg(c.syncFd, "error:" + msg);
    } else {
        // After "ready" the parent may be gone: the container's stderr is ours.
        dprintf(2, "hull: %s\n", msg.c_str());
    }
    ::_exit(127);
}

// ---- create ---------------------------------------------------------------

struct Created {
    pid_t pid = 0;
    UniqueFd pidfd;
    std::string dir;
    UniqueFd consoleMaster;  // run in the foreground with a terminal: the pty master we proxy
};

Result<void> validateSpec(const Spec& spec) {
    if (!spec.process) return failInvalid("process: required to create a container");
    auto* uts = spec.linux.findNamespace(NamespaceType::Uts);
    // A UTS namespace joined by path is set too, as runc and crun do: it is the
    // container's, not the host's. Without one, the host's name would change.
    if ((!spec.hostname.empty() || !spec.domainname.empty()) && !uts)
        return failInvalid("hostname: setting it needs a uts namespace (linux.namespaces: new, or joined by path)");
    return {};
}

/// OWN_CONSOLE: a foreground `run` of a terminal process without --console-socket
/// (runc's `spec` + `run` in a shell): we take the pty master ourselves.
Result<Created> createContainer(const std::string& root, const CreateOptions& opts, bool startNow,
                                bool ownConsole = false) {
    if (!validContainerId(opts.id))
        return failInvalid("invalid container id \"" + opts.id + "\": use letters, digits, and _ + - .");
    std::string bundle = absolutePath(opts.bundle);
    auto configText = TRY(sys::readFile(sys::joinPath(bundle, "config.json")));
    auto spec = TRY_CTX("config.json", parseSpec(configText));
    TRY(validateSpec(spec));
    std::string rootfs = spec.root.path[0] == '/' ? spec.root.path : sys::joinPath(bundle, spec.root.path);
    rootfs = sys::cleanPath(rootfs);
    struct stat rst;
    if (::stat(rootfs.c_str(), &rst) < 0 || !S_ISDIR(rst.st_mode))
        return fail(Error::fromErrno("root.path: " + rootfs + " is not a directory", errno ? errno : ENOTDIR));

    // Everything that can fail on bad input fails here, before anything exists.
    InitContext c;
    c.spec = &spec;
    c.id = opts.id;
    c.bundle = bundle;
    c.rootfs = rootfs;
    c.noPivot = opts.noPivot;
    c.proc = TRY(planProcess(*spec.process, spec.linux.seccomp));
    if (spec.linux.personality) c.proc.personality = spec.linux.personality->domain == "LINUX32" ? PER_LINUX32 : PER_LINUX;
    c.proc.preserveFds = opts.preserveFds;
    c.rootfsCtx.rootfs = rootfs;
    c.rootfsCtx.mounts = TRY(planMounts(spec));
    // config.md: bind sources are absolute or relative to the bundle.
    for (auto& m : c.rootfsCtx.mounts)
        if (m.bind && !m.source.empty() && m.source[0] != '/') m.source = sys::joinPath(bundle, m.source);
    TRY(validateSysctl(spec));
    for (auto& m : c.rootfsCtx.mounts) {
        if (m.type != "cgroup" || m.bind) continue;
        auto layout = TRY(cgroups::detectLayout());
        c.rootfsCtx.cgroupUnified = layout.kind == cgroups::LayoutKind::Unified;
        c.rootfsCtx.cgroupHybrid = layout.kind == cgroups::LayoutKind::Hybrid;
        // v1Mounts lists a co-mounted hierarchy under each controller: one mount per directory.
        std::map<std::string, std::string> byDir;
        for (auto& [controller, dir] : layout.v1Mounts) {
            auto& opts = byDir[dir];
            opts += (opts.empty() ? "" : ",") + controller;
        }
        for (auto& [dir, opts] : byDir) {
            std::string name = dir.substr(dir.rfind('/') + 1);
            std::string options = opts.rfind("name=", 0) == 0 ? "none," + opts : opts;
            c.rootfsCtx.cgroupHierarchies.push_back({name, options});
        }
        break;
    }
    c.rootfsCtx.spec = &spec;
    if (c.proc.terminal && opts.consoleSocket.empty() && !ownConsole)
        return failInvalid("process.terminal is true: --console-socket is required");

    TRY(sys::mkdirAll(root, 0700));
    std::string dir = stateDirOf(root, opts.id);
    if (::mkdir(dir.c_str(), 0700) < 0) {
        if (errno == EEXIST) return fail(Error::plain(EEXIST, "container \"" + opts.id + "\" already exists"));
        return failErrno("mkdir " + dir);
    }
    std::optional<std::unique_ptr<cgroups::Manager>> cgroup;
    pid_t child = 0;
    ScopeExit rollback([&] {
        if (child > 0) {
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
        }
        if (cgroup && *cgroup) {
            (void)(*cgroup)->killAll(SIGKILL);
            (void)(*cgroup)->destroy();
        }
        (void)sys::removeAll(dir);
    });
    auto lock = TRY(lockDir(dir));
    c.lockFd = lock.get();

    StoredState st;
    st.id = opts.id;
    st.bundle = bundle;
    st.rootfs = rootfs;
    st.created = nowRfc3339();
    st.owner = "root";
    st.cgroupsPath = spec.linux.cgroupsPath;
    st.cgroupOwner = TRY(sys::readFile("/proc/self/cgroup"));
    st.annotations = spec.annotations;
    // Written before anything else exists, so `delete` can clean up after a
    // create that was killed half-way.
    TRY(writeState(dir, st));
    TRY(sys::writeFile(sys::joinPath(dir, kConfigCopy), configText, 0600));

    cgroup = TRY(cgroupFor(st));
    TRY_CTX("cgroup", (*cgroup)->create());
    // Limits are in place before the init exists (it is cloned straight into the cgroup on v2).
    if (spec.linux.resources) TRY_CTX("cgroup " + (*cgroup)->path(), (*cgroup)->apply(effectiveResources(spec)));
    auto cgFd = TRY_CTX("cgroup", (*cgroup)->openForClone());

    UniqueFd fifo;
    if (!startNow) {
        std::string fifoPath = sys::joinPath(dir, kExecFifo);
        if (::mkfifo(fifoPath.c_str(), 0600) < 0) return failErrno("mkfifo " + fifoPath);
        // Read-write, so the init's read() blocks until start writes (and start's
        // non-blocking open finds a reader exactly while the init waits).
        fifo = TRY(sys::openFile(fifoPath, O_RDWR));
        c.fifoFd = fifo.get();
    }
    UniqueFd console, consoleOurs;
    if (c.proc.terminal && opts.consoleSocket.empty() && ownConsole) {
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) return failErrno("console socketpair");
        console.reset(pair[0]);
        consoleOurs.reset(pair[1]);
        c.consoleFd = pair[0];
    } else if (c.proc.terminal && !opts.consoleSocket.empty()) {
        int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) return failErrno("console socket");
        console.reset(s);
        struct sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (opts.consoleSocket.size() >= sizeof addr.sun_path) return failInvalid("--console-socket: path too long");
        std::strcpy(addr.sun_path, opts.consoleSocket.c_str());
        if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
            return failErrno("connect console socket " + opts.consoleSocket);
        c.consoleFd = s;
    }

    // Namespaces: new ones by clone flags, existing ones joined by the child.
    auto ns = TRY(planNamespaces(spec.linux));
    if (!ns.hasMount) TRY(checkSharedMountNamespace(spec));
    c.ownMounts = ns.hasMount;
    uint64_t flags = ns.cloneFlags;
    c.unshareAfterJoin = ns.unshareAfter;
    c.newUser = ns.newUser;
    c.newUts = ns.newUts;
    c.hasUts = spec.linux.findNamespace(NamespaceType::Uts) != nullptr;
    c.newNet = (ns.cloneFlags & CLONE_NEWNET) != 0;
    c.rootfsCtx.inUserNamespace = ns.hasUser;
    std::vector<UniqueFd> joinFds;
    for (auto& j : ns.joins) {
        auto fd = TRY_CTX(std::string("linux.namespaces: ") + namespaceName(j.type), sys::openFile(j.path, O_RDONLY));
        c.joins.push_back({fd.get(), j.flag});
        joinFds.push_back(std::move(fd));
    }
    UniqueFd ownPidNs, targetPidNs;
    if (!ns.pidPath.empty()) targetPidNs = TRY_CTX("linux.namespaces: pid", sys::openFile(ns.pidPath, O_RDONLY));
    c.hooksRoundTrip = !spec.hooks.prestart.empty() || !spec.hooks.createRuntime.empty();

    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) return failErrno("socketpair");
    UniqueFd parentSock(sp[0]), childSock(sp[1]);
    c.syncFd = childSock.get();

    if (targetPidNs) {
        // pid namespaces are joined by our children only: point pid_for_children
        // at the target for the clone, and back afterwards.
        ownPidNs = TRY(sys::openFile("/proc/self/ns/pid", O_RDONLY));
        if (::setns(targetPidNs.get(), CLONE_NEWPID) < 0) return failErrno("join pid namespace " + ns.pidPath);
    }
    Cloned cl = cloneProcess(flags, cgFd ? cgFd.get() : -1);
    if (cl.pid == 0) {
        parentSock.reset();
        initMain(c);
    }
    if (ownPidNs) ::setns(ownPidNs.get(), CLONE_NEWPID);
    if (cl.pid < 0) return failErrno("clone container init", cl.error);
    if (!cl.intoCgroup) cgFd.reset();  // plain clone: attached below
    child = pid_t(cl.pid);
    UniqueFd childPidfd(cl.pidfd);
    childSock.reset();
    fifo.reset();
    console.reset();
    joinFds.clear();

    if (!cgFd) TRY_CTX("cgroup", (*cgroup)->attach(child));
    if (c.newUser) {
        auto mapText = [](const std::vector<IdMapping>& m) {
            std::string out;
            for (auto& e : m)
                out += std::to_string(e.containerID) + " " + std::to_string(e.hostID) + " " + std::to_string(e.size) + "\n";
            return out;
        };
        std::string base = "/proc/" + std::to_string(child);
        if (!spec.linux.uidMappings.empty())
            TRY_CTX("linux.uidMappings", sys::writeExisting(base + "/uid_map", mapText(spec.linux.uidMappings)));
        if (!spec.linux.gidMappings.empty())
            TRY_CTX("linux.gidMappings", sys::writeExisting(base + "/gid_map", mapText(spec.linux.gidMappings)));
    }
    TRY(sendMsg(parentSock.get(), "go:" + std::to_string(child)));
    if (opts.onCloned) opts.onCloned(child);

    st.pid = child;
    // Recorded before any hook runs: `state` then says "creating" with the
    // pid, and a `delete` after a crash here kills the init directly.
    st.startTime = processStartTime(child);
    TRY(writeState(dir, st));
    for (;;) {
        auto m = TRY(recvMsg(parentSock.get()));
        if (m == "ready") break;
        if (m == "hooks") {
            std::string hs = hookState(opts.id, "creating", child, bundle, spec.annotations);
            TRY(runHooks(spec.hooks.prestart, hs, "prestart"));
            TRY(runHooks(spec.hooks.createRuntime, hs, "createRuntime"));
            TRY(sendMsg(parentSock.get(), "go"));
            continue;
        }
        if (m.rfind("error:", 0) == 0) return fail(Error::plain(EINVAL, m.substr(6)));
        int status = 0;
        ::waitpid(child, &status, 0);
        child = 0;
        return fail(Error::plain(ECHILD, "container init exited during setup (status " +
                                             std::to_string(waitStatus(status)) + ")"));
    }

    st.startTime = processStartTime(child);
    st.phase = "created";
    TRY(writeState(dir, st));
    if (!opts.pidFile.empty()) TRY(sys::writeFileAtomic(absolutePath(opts.pidFile), std::to_string(child), 0644));
    Created out;
    if (consoleOurs) out.consoleMaster = TRY_CTX("terminal", recvFd(consoleOurs.get()));
    rollback.dismiss();
    out.pid = child;
    out.pidfd = std::move(childPidfd);
    out.dir = dir;
    return out;
}


std::string computeStatus(const StoredState& s, const std::string& dir, cgroups::Manager* cg) {
    if (s.phase == "creating") return s.pid > 0 && processAlive(s) ? "creating" : "stopped";
    if (!processAlive(s)) return "stopped";
    if (sys::exists(sys::joinPath(dir, kExecFifo))) return "created";
    if (cg) {
        auto f = cg->frozen();
        if (f && *f) return "paused";
    }
    return "running";
}

Result<Spec> storedSpec(const std::string& dir) {
    auto text = TRY(sys::readFile(sys::joinPath(dir, kConfigCopy)));
    return parseSpec(text);
}

}  // namespace

// ---- public API -----------------------------------------------------------

Runtime::Runtime(std::string root) : root_(std::move(root)) {}

bool validContainerId(const std::string& id) {
    if (id.empty() || id == "." || id == ".." || id.size() > 1024) return false;
    for (char ch : id)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '+' || ch == '-' || ch == '.'))
            return false;
    return true;
}

std::string stateJson(const ContainerState& s, bool pretty) {
    json::Value v = json::Value::object();
    v.set("ociVersion", s.ociVersion.empty() ? kOciVersion : s.ociVersion);
    v.set("id", s.id);
    v.set("status", s.status);
    v.set("pid", int64_t(s.pid));
    v.set("bundle", s.bundle);
    if (!s.rootfs.empty()) v.set("rootfs", s.rootfs);
    if (!s.created.empty()) v.set("created", s.created);
    if (!s.owner.empty()) v.set("owner", s.owner);
    json::Value ann = json::Value::object();
    for (auto& [k, val] : s.annotations) ann.set(k, val);
    v.set("annotations", std::move(ann));
    return v.dump(pretty);
}

Result<void> Runtime::create(const CreateOptions& opts) {
    TRY(createContainer(root_, opts, false));
    return {};
}

Result<void> Runtime::start(const std::string& id) {
    if (!validContainerId(id)) return failInvalid("invalid container id \"" + id + "\"");
    std::string dir = stateDirOf(root_, id);
    if (!sys::exists(dir)) return fail(Error::plain(ENOENT, "container \"" + id + "\" does not exist"));
    auto lock = TRY(lockDir(dir));
    auto st = TRY(readState(dir));
    std::string fifoPath = sys::joinPath(dir, kExecFifo);
    if (st.phase != "created" || !sys::exists(fifoPath)) {
        std::string status = computeStatus(st, dir, nullptr);
        return fail(Error::plain(EINVAL, "cannot start a container that is " + status));
    }
    // Non-blocking: if the init is gone there is no reader and we learn it at once.
    int fd = ::open(fifoPath.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENXIO) return fail(Error::plain(ESRCH, "cannot start: the container process has exited"));
        return failErrno("open " + fifoPath);
    }
    UniqueFd f(fd);
    if (!processAlive(st)) return fail(Error::plain(ESRCH, "cannot start: the container process has exited"));
    TRY(sys::writeAll(fd, "0"));
    ::unlink(fifoPath.c_str());
    auto spec = storedSpec(dir);
    if (spec && !spec->hooks.poststart.empty()) {
        std::string hs = hookState(id, "running", st.pid, st.bundle, st.annotations);
        // runtime.md: a failing poststart hook is logged; the container keeps running.
        runHooksLogged(spec->hooks.poststart, hs, "poststart");
    }
    return {};
}

Result<int> Runtime::run(const CreateOptions& opts, bool detach) {
    if (detach) {
        TRY(create(opts));
        TRY(start(opts.id));
        return 0;
    }
    // In the foreground the init is our child: start it at once, forward the
    // usual signals, reap it, then clean up as delete would.
    auto created = TRY(createContainer(root_, opts, !opts.beforeStart, true));
    if (opts.beforeStart) {
        if (auto r = opts.beforeStart(created.pid); !r) {
            (void)remove(opts.id, true);
            return fail(std::move(r.error()));
        }
        if (auto r = start(opts.id); !r) {
            (void)remove(opts.id, true);
            return fail(std::move(r.error()));
        }
    }
    int stop[2] = {-1, -1};
    std::thread proxy;
    if (created.consoleMaster) {
        if (::pipe2(stop, O_CLOEXEC) < 0) return failErrno("pipe");
        proxy = std::thread(proxyConsole, created.consoleMaster.get(), stop[0]);
    }
    ScopeExit joinProxy([&] {
        if (!proxy.joinable()) return;
        (void)!::write(stop[1], "x", 1);
        proxy.join();
        ::close(stop[0]);
        ::close(stop[1]);
    });
    auto spec = storedSpec(created.dir);
    if (!opts.beforeStart && spec && !spec->hooks.poststart.empty()) {  // (start() ran them otherwise)
        auto st = readState(created.dir);
        if (st) {
            std::string hs = hookState(opts.id, "running", created.pid, st->bundle, st->annotations);
            runHooksLogged(spec->hooks.poststart, hs, "poststart");
        }
    }
    int status = waitForwardingSignals(created.pid, created.pidfd.get(),
                                       created.consoleMaster ? created.consoleMaster.get() : -1);
    if (!opts.keep) TRY(remove(opts.id, true));
    return status;
}

Result<ContainerState> Runtime::state(const std::string& id) {
    if (!validContainerId(id)) return failInvalid("invalid container id \"" + id + "\"");
    std::string dir = stateDirOf(root_, id);
    if (!sys::exists(sys::joinPath(dir, kStateFile)))
        return fail(Error::plain(ENOENT, "container \"" + id + "\" does not exist"));
    auto st = TRY(readState(dir));
    auto cg = cgroupFor(st);
    ContainerState out;
    out.ociVersion = kOciVersion;
    out.id = st.id;
    out.status = computeStatus(st, dir, cg ? cg->get() : nullptr);
    out.pid = out.status == "stopped" ? 0 : st.pid;
    out.bundle = st.bundle;
    out.rootfs = st.rootfs;
    out.created = st.created;
    out.owner = st.owner;
    out.annotations = st.annotations;
    return out;
}

Result<std::vector<ContainerState>> Runtime::list() {
    std::vector<ContainerState> out;
    for (auto& name : sys::listDir(root_)) {
        if (!validContainerId(name)) continue;
        auto s = state(name);
        if (s) out.push_back(std::move(*s));
    }
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.created < b.created; });
    return out;
}

Result<void> Runtime::kill(const std::string& id, int signal, bool all) {
    auto s = TRY(state(id));
    std::string dir = stateDirOf(root_, id);
    auto st = TRY(readState(dir));
    if (all) {
        auto cg = TRY(cgroupFor(st));
        return cg->killAll(signal);
    }
    if (s.status == "stopped" || s.status == "creating")
        return fail(Error::plain(ESRCH, "container \"" + id + "\" is not running"));
    return signalProcess(st, signal);
}

Result<void> Runtime::remove(const std::string& id, bool force) {
    if (!validContainerId(id)) return failInvalid("invalid container id \"" + id + "\"");
    std::string dir = stateDirOf(root_, id);
    if (!sys::exists(dir)) return fail(Error::plain(ENOENT, "container \"" + id + "\" does not exist"));
    auto lock = TRY(lockDir(dir));
    auto stR = readState(dir);
    if (!stR) {
        // A create that died before writing its state: nothing else can exist.
        TRY(sys::removeAll(dir));
        return {};
    }
    auto& st = *stR;
    auto cg = cgroupFor(st);
    std::string status = computeStatus(st, dir, cg ? cg->get() : nullptr);
    if ((status == "running" || status == "paused") && !force)
        return fail(Error::plain(EBUSY, "cannot delete container \"" + id + "\" that is " + status +
                                            " (stop it first, or use --force)"));
    if (cg) {
        // Thaw first: a frozen process cannot die of SIGKILL until thawed.
        if (status == "paused") (void)(*cg)->thaw();
        (void)(*cg)->killAll(SIGKILL);
    }
    if (processAlive(st)) {
        (void)signalProcess(st, SIGKILL);
        if (!waitGone(st.pid, 5000)) log::warnf("container %s: process %d did not exit", id.c_str(), st.pid);
    }
    if (auto spec = storedSpec(dir); spec && !spec->hooks.poststop.empty()) {
        std::string hs = hookState(id, "stopped", 0, st.bundle, st.annotations);
        // runtime.md: poststop failures are logged, the delete goes on.
        runHooksLogged(spec->hooks.poststop, hs, "poststop");
    }
    if (cg) TRY_CTX("remove cgroup", (*cg)->destroy());
    TRY(sys::removeAll(dir));
    return {};
}

Result<std::vector<pid_t>> Runtime::pids(const std::string& id) {
    TRY(state(id));
    auto st = TRY(readState(stateDirOf(root_, id)));
    auto cg = TRY(cgroupFor(st));
    return cg->pids();
}

Result<void> Runtime::pause(const std::string& id) {
    auto s = TRY(state(id));
    if (s.status != "running") return fail(Error::plain(EINVAL, "cannot pause a container that is " + s.status));
    auto st = TRY(readState(stateDirOf(root_, id)));
    auto cg = TRY(cgroupFor(st));
    return cg->freeze();
}

Result<void> Runtime::resume(const std::string& id) {
    auto s = TRY(state(id));
    if (s.status != "paused") return fail(Error::plain(EINVAL, "cannot resume a container that is " + s.status));
    auto st = TRY(readState(stateDirOf(root_, id)));
    auto cg = TRY(cgroupFor(st));
    return cg->thaw();
}

Result<void> Runtime::update(const std::string& id, const std::string& resourcesJson) {
    auto s = TRY(state(id));
    if (s.status == "stopped") return fail(Error::plain(EINVAL, "cannot update container \"" + id + "\" that is stopped"));
    auto resources = TRY(parseResources(resourcesJson));
    std::string dir = stateDirOf(root_, id);
    auto lock = TRY(lockDir(dir));
    auto st = TRY(readState(dir));
    auto cg = TRY(cgroupFor(st));
    TRY_CTX("update " + id, cg->apply(resources));
    return {};
}

Result<std::string> Runtime::stats(const std::string& id) {
    TRY(state(id));
    auto st = TRY(readState(stateDirOf(root_, id)));
    auto cg = TRY(cgroupFor(st));
    return cgroups::statsJson(TRY(cg->stats()));
}

Result<uint64_t> Runtime::oomKills(const std::string& id) {
    auto st = TRY(readState(stateDirOf(root_, id)));
    auto cg = TRY(cgroupFor(st));
    return TRY(cg->stats()).memory.oomKill;
}

std::vector<std::string> capabilityNames() {
    std::vector<std::string> out;
    for (int c = 0; c <= lastCapability(); ++c) out.push_back(capabilityName(c));
    return out;
}

std::vector<std::string> agentCapabilities() {
    return {
        "CAP_SYS_ADMIN",         // namespaces, mounts, pivot_root, setns, overlayfs, cgroup device filters
        "CAP_NET_ADMIN",         // veths, bridges, VXLAN, addresses and routes, nftables
        "CAP_SYS_CHROOT",        // a container without a mount namespace; the default container set
        "CAP_SYS_PTRACE",        // /proc/PID/ns and /proc/PID/root of containers' processes (exec, adoption)
        "CAP_SYS_RESOURCE",      // rlimits above the hard limit, a negative oom_score_adj
        "CAP_MKNOD",             // device nodes in rootfs /dev, overlay whiteouts when unpacking layers
        "CAP_CHOWN",             // owners in image layers and volumes
        "CAP_DAC_OVERRIDE",      // state and layers of any owner
        "CAP_DAC_READ_SEARCH",   // walking layers with directories of mode 000
        "CAP_FOWNER",            // modes, times and xattrs on files it does not own
        "CAP_FSETID",            // setuid and setgid bits kept in layers
        "CAP_SETFCAP",           // file capabilities kept in layers
        "CAP_SETUID",            // user namespaces' maps, the container's user
        "CAP_SETGID",
        "CAP_SETPCAP",           // bounding sets of containers, and this very drop
        "CAP_KILL",              // signals to containers' processes of any user
        "CAP_IPC_LOCK",          // BPF programs charged to locked memory (older kernels)
        "CAP_BPF",               // cgroup v2 device filters (kernel 5.8 and later)
        "CAP_NET_BIND_SERVICE",  // the cluster DNS on port 53; default container set
        "CAP_NET_RAW",           // default container set
        "CAP_AUDIT_WRITE",       // default container set
    };
}

Result<void> keepOnlyCapabilities(const std::vector<std::string>& names) {
    uint64_t keep = 0;
    for (const auto& n : names) {
        int cap = capabilityFromName(n);
        if (cap < 0) return failInvalid("unknown capability " + n);
        if (cap <= lastCapability()) keep |= uint64_t(1) << cap;
    }
    // What we hold now (/proc/self/status), so nothing is asked for that we lack.
    auto status = TRY(sys::readFile("/proc/self/status"));
    auto mask = [&](const std::string& key) -> uint64_t {
        auto at = status.find("\n" + key + ":\t");
        return at == std::string::npos ? 0 : std::strtoull(status.c_str() + at + key.size() + 3, nullptr, 16);
    };
    CapabilityPlan plan;
    plan.bounding = keep & mask("CapBnd");
    plan.permitted = plan.effective = keep & mask("CapPrm");
    plan.inheritable = keep & mask("CapInh");
    TRY(dropBoundingSet(plan));
    TRY(applyCapabilitySets(plan));
    return {};
}

std::string specTemplate(bool rootless) { return defaultConfig(rootless).dump(true) + "\n"; }

int parseSignal(const std::string& s) {
    if (s.empty()) return -1;
    if (std::isdigit(static_cast<unsigned char>(s[0]))) {
        char* end;
        long n = std::strtol(s.c_str(), &end, 10);
        return (*end || n < 0 || n > 64) ? -1 : int(n);  // 0: only check that it exists, as kill(1)
    }
    std::string name = s;
    for (auto& ch : name) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    if (name.rfind("SIG", 0) == 0) name = name.substr(3);
    static const std::pair<const char*, int> kSignals[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},       {"TRAP", SIGTRAP},
        {"ABRT", SIGABRT}, {"IOT", SIGIOT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},       {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},
        {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP},
        {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},   {"TTOU", SIGTTOU}, {"URG", SIGURG},       {"XCPU", SIGXCPU},
        {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
        {"POLL", SIGPOLL}, {"PWR", SIGPWR},     {"SYS", SIGSYS},
    };
    for (auto& [n, v] : kSignals)
        if (name == n) return v;
    if (name.rfind("RTMIN", 0) == 0 || name.rfind("RTMAX", 0) == 0) {
        int base = name[2] == 'M' && name[3] == 'I' ? SIGRTMIN : SIGRTMAX;
        if (name.size() == 5) return base;
        int off = std::atoi(name.c_str() + 5);
        return base + off;
    }
    return -1;
}

}  // namespace hull::runtime
