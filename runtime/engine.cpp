#include "runtime/engine.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <thread>

#include "images/rootfs.hpp"
#include "images/store.hpp"
#include "netns/network.hpp"
#include "runtime/defaults.hpp"
#include "runtime/process.hpp"
#include "runtime/spawner.hpp"
#include "runtime/spec.hpp"
#include "runtime/runtime.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/size.hpp"
#include "sys/log.hpp"
#include "sys/scope_exit.hpp"
#include "sys/unique_fd.hpp"

namespace hull::runtime {

Engine::Engine(std::string state, std::string run)
    : state_(std::move(state)),
      run_(std::move(run)),
      nets_(std::make_shared<std::map<std::string, netns::Network>>()),
      warmProfiles_(std::make_shared<std::set<std::string>>()),
      monitors_(std::make_shared<std::vector<pid_t>>()) {}

using json::Value;

namespace {

using json::stringArray;
std::string str(const Value& v, std::string_view key) { return json::stringOf(v, key); }
std::vector<std::string> strings(const Value* v) { return json::stringsOf(v); }
std::string nowRfc3339() { return log::timestamp(false); }

Result<std::string> randomId() {
    UniqueFd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
    unsigned char b[32];
    if (!fd || ::read(fd.get(), b, sizeof b) != ssize_t(sizeof b)) return failErrno("read /dev/urandom");
    static const char* hexd = "0123456789abcdef";
    std::string id;
    for (unsigned char c : b) id += hexd[c >> 4], id += hexd[c & 15];
    return id;
}

/// PATH inside ROOTFS, resolved with openat2(RESOLVE_IN_ROOT): a symlink in
/// the image ("etc -> /", "data -> ../../..") can never lead to a host path.
Result<UniqueFd> openInRootfs(const std::string& rootfs, const std::string& path, int flags) {
    UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) return failErrno("open " + rootfs);
    struct open_how how {};
    how.flags = uint64_t(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    std::string rel = path;
    while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
    if (rel.empty()) rel = ".";
    long fd = ::syscall(SYS_openat2, root.get(), rel.c_str(), &how, sizeof how);
    if (fd < 0) return failErrno("open " + path + " in the image");
    return UniqueFd(int(fd));
}

/// A file of the image, read through openInRootfs ("" when it is not there).
std::string readInRootfs(const std::string& rootfs, const std::string& path) {
    auto fd = openInRootfs(rootfs, path, O_RDONLY);
    if (!fd) return "";
    return sys::readFd(fd->get()).value_or("");
}

/// "name" or "name:group" or "uid[:gid]" -> ids, through the image's passwd and group files.
Result<std::pair<uint32_t, uint32_t>> resolveUser(const std::string& rootfs, const std::string& spec) {
    if (spec.empty()) return std::make_pair(0u, 0u);
    auto colon = spec.find(':');
    std::string u = spec.substr(0, colon), g = colon == std::string::npos ? "" : spec.substr(colon + 1);
    auto numeric = [](const std::string& s, uint32_t& out) {
        if (s.empty() || !std::all_of(s.begin(), s.end(), ::isdigit)) return false;
        out = uint32_t(std::strtoul(s.c_str(), nullptr, 10));
        return true;
    };
    uint32_t uid = 0, gid = 0;
    bool gidFromPasswd = false;
    if (!numeric(u, uid)) {
        bool found = false;
        for (const auto& line : sys::split(readInRootfs(rootfs, "/etc/passwd"), '\n')) {
            auto f = sys::split(line, ':', false);
            if (f.size() >= 4 && f[0] == u) {
                uid = uint32_t(std::strtoul(f[2].c_str(), nullptr, 10));
                gid = uint32_t(std::strtoul(f[3].c_str(), nullptr, 10));
                found = gidFromPasswd = true;
                break;
            }
        }
        if (!found) return failInvalid("user \"" + u + "\" is not in the image's /etc/passwd");
    }
    if (!g.empty() && !numeric(g, gid)) {
        bool found = false;
        for (const auto& line : sys::split(readInRootfs(rootfs, "/etc/group"), '\n')) {
            auto f = sys::split(line, ':', false);
            if (f.size() >= 3 && f[0] == g) {
                gid = uint32_t(std::strtoul(f[2].c_str(), nullptr, 10));
                found = true;
                break;
            }
        }
        if (!found) return failInvalid("group \"" + g + "\" is not in the image's /etc/group");
    } else if (g.empty() && !gidFromPasswd) {
        gid = uid == 0 ? 0 : uid;
    }
    return std::make_pair(uid, gid);
}

Value bindMount(const std::string& dst, const std::string& src, bool ro) {
    Value m = Value::object();
    m.set("destination", dst);
    m.set("type", "bind");
    m.set("source", src);
    std::vector<std::string> opts = {"rbind", "rprivate"};
    if (ro) opts.push_back("ro");
    m.set("options", stringArray(opts));
    return m;
}

struct Meta {
    std::string id, name, image, imageId, created, network, ip, ip6;
    std::vector<std::string> command, ports, layers;
    bool remove = false, tty = false;
    std::string stopSignal;
    std::map<std::string, std::string> labels;
};

Value metaJson(const Meta& m) {
    Value v = Value::object();
    v.set("id", m.id);
    v.set("name", m.name);
    v.set("image", m.image);
    v.set("imageId", m.imageId);
    v.set("created", m.created);
    v.set("command", stringArray(m.command));
    v.set("network", m.network);
    v.set("ip", m.ip);
    if (!m.ip6.empty()) v.set("ip6", m.ip6);  // dual-stack networks only
    v.set("ports", stringArray(m.ports));
    v.set("layers", stringArray(m.layers));
    v.set("remove", m.remove);
    v.set("tty", m.tty);
    v.set("stopSignal", m.stopSignal);
    Value labels = Value::object();
    for (const auto& [k, x] : m.labels) labels.set(k, x);
    v.set("labels", labels);
    return v;
}

Result<Meta> readMeta(const std::string& dir) {
    auto v = TRY_CTX(dir, Value::parse(TRY(sys::readFile(dir + "/container.json"))));
    Meta m;
    m.id = str(v, "id");
    m.name = str(v, "name");
    m.image = str(v, "image");
    m.imageId = str(v, "imageId");
    m.created = str(v, "created");
    m.command = strings(v.find("command"));
    m.network = str(v, "network");
    m.ip = str(v, "ip");
    m.ip6 = str(v, "ip6");
    m.ports = strings(v.find("ports"));
    m.layers = strings(v.find("layers"));
    if (const Value* r = v.find("remove"); r && r->isBool()) m.remove = r->asBool();
    if (const Value* t = v.find("tty"); t && t->isBool()) m.tty = t->asBool();
    m.stopSignal = str(v, "stopSignal");
    if (const Value* l = v.find("labels"); l && l->isObject())
        for (const auto& [k, x] : l->asObject())
            if (x.isString()) m.labels[k] = x.asString();
    return m;
}

Result<void> writeMeta(const std::string& dir, const Meta& m) {
    return sys::writeFileAtomic(dir + "/container.json", metaJson(m).dump(true) + "\n", 0600);
}

}  // namespace

std::string shortId(const std::string& id) { return id.substr(0, 12); }

int64_t parseMemory(const std::string& s) { return sys::parseSize(s).value_or(-1); }

Result<Engine> Engine::open(const std::string& stateDir, const std::string& runDir) {
    TRY(sys::mkdirAll(stateDir + "/containers", 0700));
    TRY(sys::mkdirAll(runDir + "/runc", 0700));
    return Engine(stateDir, runDir);
}

namespace {

/// The container's directory for a name, an id or an id prefix.
Result<std::string> findContainer(const std::string& state, const std::string& q) {
    std::string base = state + "/containers";
    // A full id names its directory: no need to read every container's record
    // (list, the agent's loop and the metrics inspect each container by id).
    if (q.size() == 64 && q.find('/') == std::string::npos && sys::exists(base + "/" + q + "/container.json"))
        return base + "/" + q;
    std::vector<std::string> hits;
    for (const auto& id : sys::listDir(base)) {
        auto m = readMeta(base + "/" + id);
        if (!m) continue;
        if (m->name == q || id == q) return base + "/" + id;
        if (q.size() >= 4 && id.rfind(q, 0) == 0) hits.push_back(base + "/" + id);
    }
    if (hits.size() == 1) return hits[0];
    if (hits.size() > 1) return failInvalid("container \"" + q + "\" is ambiguous: give more of its id");
    return fail(Error::plain(ENOENT, "no container \"" + q + "\" (hull ps -a)"));
}

/// Without -i a foreground container or exec gets no stdin of ours (Docker's
/// behaviour): it inherits our fd 0, so that becomes /dev/null.
void stdinFromDevNull() {
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, 0), ::close(null);
}

Result<void> teardown(const std::string& state, const std::string& dir, const Meta& m) {
    if (!m.network.empty() && m.network != "none")
        if (auto net = netns::Network::load(state, m.network)) (void)net->detach(m.id);
    return images::removeRootfs(dir);
}

void writeExit(const std::string& dir, int code) {
    Value v = Value::object();
    v.set("exitCode", int64_t(code));
    v.set("finished", nowRfc3339());
    (void)sys::writeFileAtomic(dir + "/exit.json", v.dump() + "\n", 0600);
}

}  // namespace

namespace {

/// This binary's path. One replaced while we run (an upgrade) reads
/// "…/hull (deleted)": what we hand on (the monitor's cleanup, the spawner)
/// must run the new one at the same path.
Result<std::string> selfExe() {
    char exe[4096];
    ssize_t len = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return failErrno("readlink /proc/self/exe");
    std::string self(exe, size_t(len));
    if (constexpr std::string_view kDeleted = " (deleted)";
        self.size() > kDeleted.size() && self.compare(self.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0)
        self.resize(self.size() - kDeleted.size());
    return self;
}

}  // namespace

struct Engine::Spawner {
    UniqueFd sock;
    pid_t pid = 0;
    /// Hand a request and the caller's end of the readiness pipe over.
    bool send(const std::vector<std::string>& fields, int ready) {
        std::string msg;
        for (const auto& f : fields) msg += f + '\0';
        return bool(sendFd(sock.get(), ready, msg));
    }
};

Result<void> Engine::startSpawner() {
    if (spawner_) return {};
    // hull-spawner beside this binary: it links no image or network code, so
    // it costs less memory than a copy of a big caller would.
    std::string self = TRY(selfExe());
    std::string spawner = self.substr(0, self.rfind('/')) + "/hull-spawner";
    if (::access(spawner.c_str(), X_OK) < 0) return failErrno(spawner);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return failErrno("socketpair");
    UniqueFd ours(sv[0]), theirs(sv[1]);
    pid_t pid = ::fork();
    if (pid < 0) return failErrno("fork");
    if (pid == 0) {
        ::dup2(theirs.get(), 3);  // without O_CLOEXEC: the spawner's socket
        ::close_range(4, ~0U, 0);
        int null = ::open("/dev/null", O_RDONLY);
        ::dup2(null, 0);
        // (The dirs are for ps and pgrep: requests carry every path.)
        ::execl(spawner.c_str(), "hull-spawner", "--state-dir", state_.c_str(), "--run-dir", run_.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    monitors_->push_back(pid);  // reaped like a monitor, should it end
    auto sp = std::make_shared<Spawner>();
    sp->sock = std::move(ours);
    sp->pid = pid;
    spawner_ = std::move(sp);
    return {};
}

namespace {

/// IMAGE from the store, or pulled into it when the name can be a registry reference.
Result<images::ImageRecord> findOrPull(images::Store& store, const std::string& image,
                                       const std::vector<std::string>& insecure) {
    auto rec = store.find(image);
    if (rec) return rec;
    auto ref = images::Reference::parse(image);
    if (!ref) return fail(std::move(rec.error()));
    images::PullOptions po;
    po.ref = *ref;
    po.insecure = insecure;
    po.tempDir = store.tmpDir();
    auto pulled = images::pullImage(store, po);
    if (!pulled) return fail(std::move(pulled.error()).context("image \"" + image + "\" is not in the store and pulling it failed"));
    return pulled;
}

}  // namespace

Result<void> Engine::ensureImage(const std::string& image, const std::vector<std::string>& insecureRegistries) {
    auto store = TRY(images::Store::open(state_ + "/images"));
    TRY(findOrPull(store, image, insecureRegistries));
    return {};
}

Result<int> Engine::run(const RunOptions& o, std::string* idOut) {
    auto store = TRY(images::Store::open(state_ + "/images"));
    auto rec = findOrPull(store, o.image, o.insecureRegistries);
    if (!rec) return fail(std::move(rec.error()));
    const auto& img = rec->config;

    Meta m;
    m.id = TRY(randomId());
    m.name = o.name.empty() ? "hull-" + shortId(m.id).substr(0, 6) : o.name;
    if (findContainer(state_, m.name)) return fail(Error::plain(EEXIST, "a container named \"" + m.name + "\" exists"));
    m.image = o.image;
    m.imageId = rec->id.str();
    m.created = nowRfc3339();
    m.network = o.network;
    m.ports = o.publish;
    m.remove = o.remove;
    m.tty = o.tty;
    m.stopSignal = img.stopSignal;
    m.labels = o.labels;
    std::vector<netns::PortMapping> ports;
    for (const auto& p : o.publish) ports.push_back(TRY(netns::parsePortMapping(p)));
    if (!ports.empty() && o.network == "none") return failInvalid("-p needs a network (not --network none)");
    int64_t memory = -1;
    if (!o.memory.empty() && (memory = parseMemory(o.memory)) <= 0)
        return failInvalid("--memory \"" + o.memory + "\": expected a size like 64m or 1g");
    // Below a few MiB not even the runtime's own setup fits (Docker's floor is 6 MiB).
    if (memory > 0 && memory < (6 << 20)) return failInvalid("--memory \"" + o.memory + "\": the minimum is 6m");
    // A network other than the default must exist: a typo must not make a new bridge.
    if (o.network != "none" && o.network != "hull" && !netns::Network::load(state_, o.network))
        return fail(Error::plain(ENOENT, "network \"" + o.network + "\" does not exist (hull network create --name " +
                                             o.network + ")"));

    std::string dir = state_ + "/containers/" + m.id;
    TRY(sys::mkdirAll(dir, 0700));
    bool keepDir = false;
    ScopeExit rollback([&] {
        if (keepDir) return;
        (void)images::removeRootfs(dir);
        (void)sys::removeAll(dir);
    });

    std::vector<std::string> layerDirs;
    for (const auto& l : rec->layers) {
        layerDirs.push_back(TRY(store.layerDir(l)));
        m.layers.push_back(l.str());
    }
    auto rootfs = TRY(images::makeRootfs(layerDirs, dir));

    // The process: Entrypoint + (our command or the image's Cmd).
    std::vector<std::string> args = img.entrypoint;
    const auto& cmd = o.command.empty() ? img.cmd : o.command;
    args.insert(args.end(), cmd.begin(), cmd.end());
    if (args.empty()) return failInvalid("image " + o.image + " has no Entrypoint or Cmd: give a command");
    m.command = args;
    std::vector<std::string> env = img.env;
    if (std::none_of(env.begin(), env.end(), [](const std::string& e) { return e.rfind("PATH=", 0) == 0; }))
        env.insert(env.begin(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (const auto& e : o.env) {
        auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0) return failInvalid("-e \"" + e + "\": expected KEY=VALUE");
        std::string key = e.substr(0, eq + 1);
        std::erase_if(env, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
        env.push_back(e);
    }
    if (o.tty) env.push_back("TERM=xterm");
    auto [uid, gid] = TRY(resolveUser(rootfs.path, o.user.empty() ? img.user : o.user));

    // config.json: hull's defaults (capabilities, seccomp, devices), then the image and flags.
    Value cfg = defaultConfig(false);
    Value process = *cfg.find("process");
    process.set("terminal", o.tty);
    process.set("args", stringArray(args));
    process.set("env", stringArray(env));
    process.set("cwd", img.workingDir.empty() ? "/" : img.workingDir);
    Value user = Value::object();
    user.set("uid", int64_t(uid));
    user.set("gid", int64_t(gid));
    process.set("user", user);
    cfg.set("process", process);
    Value root = Value::object();
    root.set("path", rootfs.path);
    root.set("readonly", false);
    cfg.set("root", root);
    cfg.set("hostname", shortId(m.id));
    Value mounts = *cfg.find("mounts");
    TRY(sys::mkdirAll(dir + "/etc", 0755));
    for (const char* f : {"hosts", "hostname", "resolv.conf"}) {
        TRY(sys::writeFile(dir + "/etc/" + f, "", 0644));
        mounts.push(bindMount(std::string("/etc/") + f, dir + "/etc/" + f, false));
    }
    for (const auto& v : o.volumes) {
        auto parts = sys::split(v, ':');
        if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[0][0] != '/' || parts[1].empty() ||
            parts[1][0] != '/' || (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw"))
            return failInvalid("-v \"" + v + "\": expected /HOST:/CONTAINER[:ro]");
        if (!sys::exists(parts[0])) return fail(Error::plain(ENOENT, "-v \"" + v + "\": " + parts[0] + " does not exist"));
        mounts.push(bindMount(parts[1], parts[0], parts.size() == 3 && parts[2] == "ro"));
    }
    // The image's Volumes: an anonymous volume each, unless -v covers the path,
    // holding a copy of what the image has there (as Docker does). It lives in
    // the container's directory and goes with `hull rm`.
    for (size_t i = 0; i < img.volumes.size(); ++i) {
        const std::string& path = img.volumes[i];
        if (path.empty() || path[0] != '/' || path.find("..") != std::string::npos) continue;
        bool covered = std::any_of(o.volumes.begin(), o.volumes.end(), [&](const std::string& v) {
            auto parts = sys::split(v, ':');
            return parts.size() >= 2 && sys::cleanPath(parts[1]) == sys::cleanPath(path);
        });
        if (covered) continue;
        std::string vol = dir + "/volumes/" + std::to_string(i);
        TRY(sys::mkdirAll(vol, 0755));
        // Resolved inside the image's root: never a host directory.
        if (auto src = openInRootfs(rootfs.path, path, O_PATH | O_DIRECTORY))
            TRY_CTX("volume " + path, images::copyTree("/proc/self/fd/" + std::to_string(src->get()), vol));
        mounts.push(bindMount(path, vol, false));
    }
    cfg.set("mounts", mounts);
    Value linux = *cfg.find("linux");
    Value resources = *linux.find("resources");
    if (memory > 0) {
        Value mem = Value::object();
        mem.set("limit", memory);
        mem.set("swap", memory);  // a hard cap: no swap beyond it (Docker would allow as much swap again)
        resources.set("memory", mem);
    }
    if (o.cpus > 0) {
        Value cpu = Value::object();
        cpu.set("period", int64_t(100000));
        cpu.set("quota", int64_t(std::llround(o.cpus * 100000)));
        resources.set("cpu", cpu);
    }
    if (o.pidsLimit > 0) {
        Value pids = Value::object();
        pids.set("limit", o.pidsLimit);
        resources.set("pids", pids);
    }
    linux.set("resources", resources);
    linux.set("cgroupsPath", "hull/" + m.id);
    cfg.set("linux", linux);
    TRY(sys::writeFileAtomic(dir + "/config.json", cfg.dump(true) + "\n", 0600));
    TRY(writeMeta(dir, m));
    if (idOut) *idOut = m.id;

    auto attach = [&](pid_t pid) -> Result<void> {
        if (o.network == "none") return {};
        // A long-lived Engine (the node agent) makes sure of a network once: the
        // bridge, sysctls and NAT table cost ~10 ms a time, on every restart.
        auto cached = nets_->find(o.network);
        if (cached == nets_->end()) {
            auto net = TRY(netns::Network::ensure(
                state_, netns::NetworkConfig{o.network, o.network == "hull" ? "hull0" : o.network.substr(0, 15)}));
            cached = nets_->emplace(o.network, std::move(net)).first;
        }
        auto at = cached->second.attach({m.id, "/proc/" + std::to_string(pid) + "/ns/net", "eth0", ports, true, o.isolation});
        if (!at) nets_->erase(o.network);  // made again next time, in case it was removed under us
        TRY(std::move(at));
        m.ip = at->alloc.ip.str();
        if (at->alloc.ip6) m.ip6 = at->alloc.ip6->str();
        TRY(writeMeta(dir, m));
        // A network may name its own resolver (a cluster node's: its DNS for
        // service names, STATE/networks/NAME/resolv.conf); else the host's.
        std::string resolv = state_ + "/networks/" + o.network + "/resolv.conf";
        if (::access(resolv.c_str(), R_OK) != 0) resolv = "/etc/resolv.conf";
        TRY(netns::writeDnsFiles(dir + "/etc", shortId(m.id), at->alloc.ip, resolv, {}, at->alloc.ip6));
        return {};
    };

    if (o.detach) {
        // The container is created here, in a child of ours that then becomes
        // hull-monitor (beside this binary) by exec: the monitor is the init's
        // parent without a runtime binary run in between (an exec of hull-runc
        // costs more than the whole create). We attach the network and start
        // it. The monitor runs `hull _cleanup ID` when the container ends.
        std::string self = TRY(selfExe());
        std::string monitor = self.substr(0, self.rfind('/')) + "/hull-monitor";
        std::string runRoot = run_ + "/runc", pidFile = dir + "/init.pid";
        std::vector<std::string> cleanupArgv = {self, "--state-dir", state_, "--run-dir", run_, "_cleanup", m.id};
        // The seccomp profile is compiled once per process (compileSeccomp keeps
        // it) and the fork that creates the container inherits it.
        const Value* sc = cfg.find("linux") ? cfg.find("linux")->find("seccomp") : nullptr;
        std::string profile = sc ? std::to_string(std::hash<std::string>{}(sc->dump())) : "none";
        reapMonitors();
        int ready[2];
        if (::pipe2(ready, O_CLOEXEC) < 0) return failErrno("pipe");
        // Through the spawner if there is one (startSpawner), else a fork of
        // our own: the monitor is then our child (forking twice to hand it to
        // init costs a second copy of a big caller's page tables), and
        // reapMonitors() collects it once it has ended, at the next run or list.
        std::vector<std::string> request = {dir, m.id, runRoot, pidFile, monitor, profile};
        request.insert(request.end(), cleanupArgv.begin(), cleanupArgv.end());
        if (spawner_ && !spawner_->send(request, ready[1])) {
            log::warnf("engine: the spawner is gone; containers are created by forks of this process from now on");
            spawner_.reset();
        }
        if (!spawner_) {
            if (!warmProfiles_->count(profile)) {
                warmSeccomp(cfg.dump());
                warmProfiles_->insert(profile);
            }
            pid_t pid = ::fork();
            if (pid < 0) return failErrno("fork");
            if (pid == 0) createAndBecomeMonitor(ready[1], dir, m.id, runRoot, pidFile, monitor, cleanupArgv);
            monitors_->push_back(pid);
        }
        ::close(ready[1]);
        // Lines: "cloned PID" as soon as the init exists, "created PID" once it
        // waits to be started, or "error:…". Read a line at a time, not to EOF:
        // the init, waiting to be started, holds the pipe open too.
        std::string pending;
        auto line = [&]() -> std::string {
            char buf[1024];
            ssize_t n;
            while (pending.find('\n') == std::string::npos && (n = ::read(ready[0], buf, sizeof buf)) > 0)
                pending.append(buf, size_t(n));
            auto nl = pending.find('\n');
            std::string l = pending.substr(0, nl);
            pending.erase(0, nl == std::string::npos ? pending.size() : nl + 1);
            return l;
        };
        std::string answer = line();
        // The network is attached while the init mounts its root: on two CPUs
        // the two overlap.
        std::optional<Result<void>> attached;
        if (answer.rfind("cloned ", 0) == 0) {
            attached = attach(pid_t(std::atoi(answer.c_str() + 7)));
            answer = line();
        }
        ::close(ready[0]);
        if (answer.rfind("error:", 0) == 0) {
            // Nothing was created; a network attached to the init that died goes with the record.
            if (attached && *attached) (void)teardown(state_, dir, m);
            return fail(Error::plain(EIO, answer.substr(6)));
        }
        if (answer.rfind("created ", 0) != 0) return fail(Error::plain(EIO, "the container's monitor exited before it was created"));
        pid_t init = pid_t(std::atoi(answer.c_str() + 8));
        keepDir = true;
        Runtime rt(run_ + "/runc");
        auto started = (attached ? std::move(*attached) : attach(init)).and_then([&] { return rt.start(m.id); });
        if (!started) {
            // The monitor sees the init die and cleans up; the record goes too.
            (void)rt.kill(m.id, SIGKILL, true);
            for (int i = 0; i < 300 && !sys::exists(dir + "/exit.json"); ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            (void)rt.remove(m.id, true);
            (void)teardown(state_, dir, m);
            (void)sys::removeAll(dir);
            return fail(std::move(started.error()));
        }
        return 0;
    }

    // Foreground: the container is our child; we attach its network before it starts.
    Runtime rt(run_ + "/runc");
    CreateOptions co;
    co.id = m.id;
    co.bundle = dir;
    co.beforeStart = attach;
    if (!o.interactive && !o.tty) stdinFromDevNull();
    keepDir = true;  // from here on a failure leaves a record `hull rm` can remove
    auto status = rt.run(co, false);
    (void)teardown(state_, dir, m);
    if (!status) {
        writeExit(dir, 127);
        if (o.remove) (void)sys::removeAll(dir);
        return fail(std::move(status.error()));
    }
    writeExit(dir, *status);
    if (o.remove) TRY(sys::removeAll(dir));
    return *status;
}

Result<std::string> Engine::stats(const std::string& q) {
    auto c = TRY(inspect(q));
    Runtime rt(run_ + "/runc");
    return rt.stats(c.id);
}

Result<void> Engine::cleanup(const std::string& id) {
    std::string dir = state_ + "/containers/" + id;
    auto m = TRY(readMeta(dir));
    Runtime rt(run_ + "/runc");
    if (rt.state(id)) TRY(rt.remove(id, true));
    TRY(teardown(state_, dir, m));
    if (m.remove) TRY(sys::removeAll(dir));
    return {};
}

Result<void> Engine::publishBalanced(const std::vector<std::string>& ports, const std::vector<std::string>& ids) {
    std::vector<std::string> addresses;
    for (const auto& id : ids) {
        auto c = inspect(id);
        if (!c) continue;  // gone meanwhile
        addresses.push_back(c->ip.substr(0, c->ip.find('/')));
    }
    return publishBalancedTo(ports, addresses);
}

Result<void> Engine::publishBalancedTo(const std::vector<std::string>& ports, const std::vector<std::string>& addresses) {
    std::vector<netns::Ipv4> backends;
    for (const auto& a : addresses)
        if (auto ip = netns::Ipv4::parse(a)) backends.push_back(*ip);
    for (const auto& p : ports) TRY(netns::publishBalanced(TRY(netns::parsePortMapping(p)), backends));
    return {};
}

Result<std::vector<uint64_t>> Engine::newConnections(const std::vector<Published>& services) {
    std::vector<netns::ConnectionGroup> groups;
    for (const auto& s : services) {
        netns::ConnectionGroup g;
        for (const auto& p : s.ports) g.ports.push_back(TRY(netns::parsePortMapping(p)));
        if (!s.vip.empty()) {
            g.vip = netns::Ipv4::parse(s.vip);
            if (!g.vip) return failInvalid("service address \"" + s.vip + "\": not an IPv4 address");
        }
        groups.push_back(std::move(g));
    }
    return netns::newConnections(groups);
}

Result<void> Engine::unpublishBalanced(const std::vector<std::string>& ports) {
    for (const auto& p : ports) TRY(netns::unpublishBalanced(TRY(netns::parsePortMapping(p))));
    return {};
}

Result<ContainerInfo> Engine::inspect(const std::string& q) {
    std::string dir = TRY(findContainer(state_, q));
    auto m = TRY(readMeta(dir));
    ContainerInfo c;
    c.id = m.id;
    c.name = m.name;
    c.image = m.image;
    c.imageId = m.imageId;
    c.created = m.created;
    c.command = m.command;
    c.ip = m.ip;
    c.ip6 = m.ip6;
    c.network = m.network;
    c.ports = m.ports;
    c.labels = m.labels;
    c.dir = dir;
    if (auto e = sys::readFile(dir + "/exit.json")) {
        auto v = Value::parse(*e);
        c.status = "exited";
        int64_t code = 0;
        if (v && v->find("exitCode") && v->find("exitCode")->toInt64(code)) c.exitCode = int(code);
        if (v) c.finished = str(*v, "finished");
        return c;
    }
    Runtime rt(run_ + "/runc");
    auto st = rt.state(m.id);
    if (!st) {
        c.status = "exited";  // the runtime no longer knows it and nobody recorded how it ended
        return c;
    }
    c.status = st->status == "stopped" ? "exited" : st->status;
    c.pid = st->pid;
    return c;
}

void Engine::reapMonitors() {
    std::erase_if(*monitors_, [](pid_t pid) {
        int r;
        while ((r = ::waitpid(pid, nullptr, WNOHANG)) < 0 && errno == EINTR) {
        }
        return r != 0;  // reaped, or not ours (any more)
    });
}

Result<std::vector<ContainerInfo>> Engine::list(bool all) {
    reapMonitors();
    std::vector<ContainerInfo> out;
    for (const auto& id : sys::listDir(state_ + "/containers")) {
        auto c = inspect(id);
        if (!c) continue;
        if (!all && c->status != "running" && c->status != "paused") continue;
        out.push_back(*c);
    }
    std::sort(out.begin(), out.end(), [](const ContainerInfo& a, const ContainerInfo& b) { return a.created > b.created; });
    return out;
}

Result<void> Engine::kill(const std::string& q, int signal) {
    auto c = TRY(inspect(q));
    if (c.status != "running" && c.status != "paused" && c.status != "created")
        return failInvalid("container " + c.name + " is " + c.status);
    Runtime rt(run_ + "/runc");
    return rt.kill(c.id, signal, false);
}

Result<void> Engine::stop(const std::string& q, int timeoutSeconds) {
    auto c = TRY(inspect(q));
    if (c.status == "exited") return {};
    auto m = TRY(readMeta(c.dir));
    int sig = m.stopSignal.empty() ? SIGTERM : parseSignal(m.stopSignal);
    if (sig <= 0) sig = SIGTERM;
    Runtime rt(run_ + "/runc");
    if (c.status == "paused") (void)rt.resume(c.id);
    (void)rt.kill(c.id, sig, false);
    auto ended = [&] {
        auto now = inspect(c.id);
        return !now || now->status == "exited";
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
    while (!ended() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!ended()) (void)rt.kill(c.id, SIGKILL, true);
    // The monitor records the exit and tears down; wait for it.
    for (int i = 0; i < 500 && !ended(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!ended()) return fail(Error::plain(ETIMEDOUT, "container " + c.name + " did not stop"));
    return {};
}

Result<void> Engine::remove(const std::string& q, bool force) {
    auto c = TRY(inspect(q));
    if (c.status != "exited") {
        if (!force) return failInvalid("container " + c.name + " is " + c.status + ": stop it first, or use -f");
        TRY(stop(c.id, 0));
    }
    auto m = TRY(readMeta(c.dir));
    Runtime rt(run_ + "/runc");
    if (rt.state(c.id)) TRY(rt.remove(c.id, true));
    TRY(teardown(state_, c.dir, m));
    return sys::removeAll(c.dir);
}

LogRead readLog(const std::string& dir) {
    LogRead out{sys::readFile(dir + "/ctr.log.1").value_or(""), 0};
    // ctr.log up to the size seen once: a follow goes on from exactly there, so
    // a line written meanwhile comes once, neither lost nor twice.
    UniqueFd f(::open((dir + "/ctr.log").c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!f || ::fstat(f.get(), &st) != 0 || st.st_size <= 0) return out;
    std::string now(size_t(st.st_size), '\0');
    int64_t got = 0;
    while (got < st.st_size) {
        ssize_t n = ::pread(f.get(), now.data() + got, size_t(st.st_size - got), got);
        if (n <= 0) break;
        got += n;
    }
    now.resize(size_t(got));
    out.text += now;
    out.offset = got;
    return out;
}

std::string tailLines(std::string text, long tail) {
    if (tail < 0) return text;
    size_t pos = text.size();
    long lines = 0;
    if (pos > 0 && text[pos - 1] == '\n') --pos;
    while (pos > 0 && lines < tail) {
        if (text[pos - 1] == '\n') ++lines;
        if (lines < tail) --pos;
    }
    return text.substr(tail == 0 ? text.size() : pos);
}

Result<void> Engine::logs(const std::string& q, bool follow, long tail, int fd) {
    auto c = TRY(inspect(q));
    LogRead log = readLog(c.dir);
    std::string text = tailLines(std::move(log.text), tail);
    (void)!::write(fd, text.data(), text.size());
    if (!follow) return {};
    // Follow ctr.log from where we are until the container has ended and the log stops growing.
    off_t offset = log.offset;
    for (;;) {
        bool done = sys::exists(c.dir + "/exit.json") || !sys::exists(c.dir);
        UniqueFd f(::open((c.dir + "/ctr.log").c_str(), O_RDONLY | O_CLOEXEC));
        if (f) {
            struct stat st;
            if (::fstat(f.get(), &st) == 0 && st.st_size < offset) offset = 0;  // rotated
            ::lseek(f.get(), offset, SEEK_SET);
            char buf[1 << 15];
            ssize_t n;
            while ((n = ::read(f.get(), buf, sizeof buf)) > 0) {
                (void)!::write(fd, buf, size_t(n));
                offset += n;
            }
        }
        if (done) return {};
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

Result<int> Engine::exec(const std::string& q, const std::vector<std::string>& args, const std::vector<std::string>& env,
                         const std::string& user, bool tty, bool interactive) {
    auto c = TRY(inspect(q));
    if (c.status != "running") return failInvalid("container " + c.name + " is " + c.status);
    Runtime rt(run_ + "/runc");
    ExecOptions eo;
    eo.args = args;
    eo.env = env;
    if (!user.empty()) {
        // Names through the container's own passwd and group files, as run does.
        auto [uid, gid] = TRY(resolveUser(c.dir + "/rootfs", user));
        eo.user = std::to_string(uid) + ":" + std::to_string(gid);
    }
    eo.tty = tty;
    if (!interactive && !tty) stdinFromDevNull();
    return rt.exec(c.id, eo);
}

}  // namespace hull::runtime
