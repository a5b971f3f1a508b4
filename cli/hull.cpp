// hull: the single-host and cluster CLI. Today: bridge networks and the VXLAN
// overlay (`hull network`, `hull overlay`); images, `hull run` and the node
// agent arrive with their issues. OCI bundles run with hull-runc.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.hpp"
#include "images/store.hpp"
#include "orchestrator/api/client.hpp"
#include "orchestrator/master/master.hpp"
#include "orchestrator/node/agent.hpp"
#include "orchestrator/api/messages.hpp"
#include "runtime/engine.hpp"
#include "runtime/runtime.hpp"
#include "netns/network.hpp"
#include "netns/overlay.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

using namespace hull;
using cli::Args;

namespace {

const char* kUsage = R"(hull: containers on one host without a daemon, and a cluster of hosts: a master, nodes, the CLI

usage: hull [--state-dir DIR] [--run-dir DIR] [--config FILE] [--debug] COMMAND ...

  version
  image pull [--insecure-registry HOST:PORT]... [--credentials FILE] REF   (loopback registries: plain HTTP)
  image import [--name REF] PATH      an OCI layout (dir or tar) or a docker-archive tar
  image ls [--output table|json]
  image inspect IMAGE
  image rm [-f] IMAGE...
  image prune                          blobs and layers no image or container uses
  run [-d] [--name N] [-e K=V] [-p [IP:]HOST:CTR[/udp]] [-v /HOST:/CTR[:ro]] [--memory M] [--cpus C]
      [--pids-limit P] [--user U] [--network NAME|none] [--rm] [-t] [-i] IMAGE [CMD...]
  ps [-a] [--output table|json]
  logs [-f] [--tail N] CONTAINER
  stop [-t SECONDS] CONTAINER...
  kill [-s SIGNAL] CONTAINER...
  rm [-f] CONTAINER...
  exec [-i] [-t] [-e K=V] [--user U] CONTAINER CMD...
  inspect CONTAINER
  node [--socket PATH] [--insecure-registry HOST:PORT]...
       [--join URL --token TOKEN [--name N] [--label K=V]... [--address IP] [--no-overlay]]
                                       the node agent: keeps applied services running (pulling
                                       from those registries over plain HTTP); with --join, what
                                       a master assigns it (URL,URL,...: masters on etcd, tried in turn)
  master [--listen 0.0.0.0:7443] [--advertise ADDR]... [--name N] [--heartbeat 300ms] [--grace 1.2s] [--allow-root]
         [--failover-after 10s] [--cluster-cidr 10.96.0.0/12] [--service-cidr 10.112.0.0/16]
         [--store sqlite|etcd://HOST:PORT,... [--etcd-ca F --etcd-cert F --etcd-key F]]
                                       the cluster's master: STATE/admin.conf and STATE/join-token;
                                       on etcd a standby until it holds the leader key; runs
                                       as an unprivileged user (as root only with --allow-root)
  node ls | drain NODE | activate NODE | label NODE K=V... K- | rm NODE   [--output table|json]   (a master's)
  cluster join-token [--rotate] | status [--output table|json]                          (a master's)
  apply -f FILE [--wait [--timeout 10m]]
                                       declare a service (YAML or JSON) to the agent or the master;
                                       --wait: until its rollout completes (exit 1: rolled back, paused)
  rollout status|history|undo SERVICE [--to-generation N] [--output table|json]        (a master's)
  get services|containers [--output table|json]
  describe SERVICE [--output table|json]   spec, containers and recent events of one service
  scale SERVICE N;  delete SERVICE;  events [--output table|json];  metrics (Prometheus text)
  network create [--name hull] [--bridge hull0] [--subnet CIDR] [--subnet6 CIDR6] [--mtu 1500] [--no-masquerade]
  network ls [--output table|json]
  network attach [--name hull] --id ID --netns PATH [--ifname eth0] [-p [IP:]HOST:CTR[/udp]]...
  network detach [--name hull] --id ID [--ifname IF]
  network gc [--name hull]          free addresses, veths and ports of vanished namespaces
  network rm NAME                   remove the bridge, its NAT entries and its state
  overlay up --subnet CIDR --local IP [--underlay DEV] [--vni 1] [--dev hull.vx] [--port 4789] [--mtu N]
  overlay add-peer [--dev hull.vx] --subnet CIDR --underlay IP --mac MAC
  overlay del-peer [--dev hull.vx] --subnet CIDR --underlay IP --mac MAC
  overlay down [--dev hull.vx]

apply, get, describe, scale, delete, events, metrics, node ls... and cluster go to a master when
--config FILE, $HULL_CONFIG or ~/.config/hull/config names one (a master's admin.conf), else to
the local agent's socket; logs and exec then run on the node that holds the container.
The state directory is --state-dir, else $HULL_STATE_DIR, else /var/lib/hull; runtime
state is under --run-dir, else $HULL_RUN_DIR, else STATE/run when the state dir was moved,
else /run/hull.
)";

int failWith(const std::string& msg) {
    std::fprintf(stderr, "hull: %s\n", msg.c_str());
    return 1;
}

template <class T>
int check(const Result<T>& r) {
    return r ? 0 : failWith(r.error().message());
}

std::string stateDir(const std::string& flag) {
    if (!flag.empty()) return flag;
    const char* env = std::getenv("HULL_STATE_DIR");
    return env && *env ? env : "/var/lib/hull";
}

int networkCmd(const std::string& state, const std::vector<std::string>& rest) {
    if (rest.empty()) return failWith("network: expected create, ls, attach, detach, gc or rm");
    const std::string sub = rest[0];
    std::vector<std::string> argv(rest.begin() + 1, rest.end());
    if (sub == "create") {
        Args a(argv, {"--no-masquerade"}, {"--name", "--bridge", "--subnet", "--subnet6", "--mtu"}, {});
        if (!a.error.empty()) return failWith("network create: " + a.error);
        netns::NetworkConfig c;
        c.name = a.get("--name", "hull");
        c.bridge = a.get("--bridge", c.name == "hull" ? "hull0" : c.name.substr(0, 15));
        if (a.has("--subnet")) {
            auto s = netns::Cidr::parse(a.get("--subnet"));
            if (!s) return failWith("network create: --subnet " + s.error().message());
            c.subnet = *s;
        }
        if (a.has("--subnet6")) {
            auto s = netns::Cidr6::parse(a.get("--subnet6"));
            if (!s) return failWith("network create: --subnet6 " + s.error().message());
            c.subnet6 = *s;
        }
        c.mtu = std::atoi(a.get("--mtu", "1500").c_str());
        c.masquerade = !a.has("--no-masquerade");
        auto n = netns::Network::ensure(state, c);
        if (!n) return failWith(n.error().message());
        std::printf("%s %s %s gateway %s", n->config().name.c_str(), n->config().bridge.c_str(),
                    n->subnet().str().c_str(), n->gateway().str().c_str());
        if (n->subnet6()) std::printf(" %s gateway %s", n->subnet6()->str().c_str(), n->gateway6()->str().c_str());
        std::printf("\n");
        return 0;
    }
    if (sub == "ls") {
        Args a(argv, {}, {"--output"}, {{"-o", "--output"}});
        if (!a.error.empty()) return failWith("network ls: " + a.error);
        json::Value list = json::Value::array();
        std::string dir = sys::joinPath(state, "networks");
        std::printf("%s", a.get("--output", "table") == "json" ? "" : "NAME        BRIDGE           SUBNET             CONTAINERS\n");
        for (const auto& name : sys::listDir(dir)) {
            auto n = netns::Network::load(state, name);
            if (!n) continue;
            auto allocs = n->ipam().list();
            size_t count = allocs ? allocs->size() : 0;
            json::Value v = json::Value::object();
            v.set("name", name);
            v.set("bridge", n->config().bridge);
            v.set("subnet", n->subnet().str());
            v.set("gateway", n->gateway().str());
            if (n->subnet6()) {
                v.set("subnet6", n->subnet6()->str());
                v.set("gateway6", n->gateway6()->str());
            }
            json::Value members = json::Value::array();
            if (allocs)
                for (const auto& al : *allocs) {
                    json::Value m = json::Value::object();
                    m.set("id", al.id);
                    m.set("ifname", al.ifname);
                    m.set("ip", al.ip.str());
                    if (al.ip6) m.set("ip6", al.ip6->str());
                    members.push(m);
                }
            v.set("containers", members);
            list.push(v);
            if (a.get("--output", "table") != "json")
                std::printf("%-11s %-16s %-18s %zu\n", name.c_str(), n->config().bridge.c_str(),
                            (n->subnet().str() + (n->subnet6() ? "," + n->subnet6()->str() : "")).c_str(), count);
        }
        if (a.get("--output", "table") == "json") std::printf("%s\n", list.dump(true).c_str());
        return 0;
    }
    if (sub == "attach") {
        Args a(argv, {}, {"--name", "--id", "--netns", "--ifname", "--publish"}, {{"-p", "--publish"}});
        if (!a.error.empty()) return failWith("network attach: " + a.error);
        if (!a.has("--id") || !a.has("--netns")) return failWith("network attach: --id and --netns are required");
        auto n = netns::Network::load(state, a.get("--name", "hull"));
        if (!n) return failWith(n.error().message() + " (create it with `hull network create`)");
        netns::AttachRequest req{a.get("--id"), a.get("--netns"), a.get("--ifname", "eth0"), {}};
        for (const auto& p : a.all("--publish")) {
            auto m = netns::parsePortMapping(p);
            if (!m) return failWith(m.error().message());
            req.ports.push_back(*m);
        }
        auto at = n->attach(req);
        if (!at) return failWith(at.error().message());
        std::printf("%s\n", at->address.str().c_str());
        if (at->address6) std::printf("%s\n", at->address6->str().c_str());  // dual-stack: a second line
        return 0;
    }
    if (sub == "detach") {
        Args a(argv, {}, {"--name", "--id", "--ifname"}, {});
        if (!a.error.empty()) return failWith("network detach: " + a.error);
        if (!a.has("--id")) return failWith("network detach: --id is required");
        auto n = netns::Network::load(state, a.get("--name", "hull"));
        if (!n) return failWith(n.error().message());
        return check(n->detach(a.get("--id"), a.get("--ifname")));
    }
    if (sub == "gc") {
        Args a(argv, {}, {"--name"}, {});
        if (!a.error.empty()) return failWith("network gc: " + a.error);
        auto n = netns::Network::load(state, a.get("--name", "hull"));
        if (!n) return failWith(n.error().message());
        auto r = n->gc();
        if (!r) return failWith(r.error().message());
        for (const auto& f : r->freed)
            std::printf("freed %s%s%s (%s/%s)\n", f.ip.str().c_str(), f.ip6 ? " " : "", f.ip6 ? f.ip6->str().c_str() : "",
                        f.id.c_str(), f.ifname.c_str());
        return 0;
    }
    if (sub == "rm") {
        if (argv.size() != 1) return failWith("network rm: expected one network name");
        auto n = netns::Network::load(state, argv[0]);
        if (!n) return failWith(n.error().message());
        return check(n->destroy());
    }
    return failWith("network: unknown command \"" + sub + "\"");
}

/// A whole number, or nullopt (so "abc", "12x" and "" are refused, not read as 0).
std::optional<long long> wholeNumber(const std::string& s) {
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno || *end) return std::nullopt;
    return v;
}

std::string human(uint64_t bytes) {
    char b[32];
    if (bytes >= (1u << 30)) std::snprintf(b, sizeof b, "%.1fGB", double(bytes) / double(1u << 30));
    else if (bytes >= (1u << 20)) std::snprintf(b, sizeof b, "%.1fMB", double(bytes) / double(1u << 20));
    else std::snprintf(b, sizeof b, "%.1fkB", double(bytes) / 1024.0);
    return b;
}

json::Value imageJson(const images::ImageRecord& r) {
    json::Value v = json::Value::object();
    v.set("id", r.id.str());
    v.set("manifest", r.manifest.str());
    v.set("names", json::stringArray(r.names));
    json::Value layers = json::Value::array();
    for (const auto& l : r.layers) layers.push(l.str());
    v.set("layers", layers);
    v.set("size", r.size);
    v.set("created", r.created);
    json::Value cfg = json::Value::object();
    auto arr = json::stringArray;
    cfg.set("Entrypoint", arr(r.config.entrypoint));
    cfg.set("Cmd", arr(r.config.cmd));
    cfg.set("Env", arr(r.config.env));
    cfg.set("WorkingDir", r.config.workingDir);
    cfg.set("User", r.config.user);
    cfg.set("ExposedPorts", arr(r.config.exposedPorts));
    cfg.set("Volumes", arr(r.config.volumes));
    cfg.set("StopSignal", r.config.stopSignal);
    v.set("config", cfg);
    v.set("os", r.config.os);
    v.set("architecture", r.config.architecture);
    return v;
}

int imageCmd(const std::string& state, const std::vector<std::string>& rest) {
    if (rest.empty()) return failWith("image: expected pull, import, ls, inspect, rm or prune");
    const std::string sub = rest[0];
    std::vector<std::string> argv(rest.begin() + 1, rest.end());
    auto store = images::Store::open(state + "/images");
    if (!store) return failWith(store.error().message());
    if (sub == "pull") {
        Args a(argv, {}, {"--insecure-registry", "--credentials", "--platform"}, {}, true);
        if (!a.error.empty() || a.positional.size() != 1) return failWith("image pull: expected one image reference");
        auto ref = images::Reference::parse(a.positional[0]);
        if (!ref) return failWith(ref.error().message());
        images::PullOptions o;
        o.ref = *ref;
        o.insecure = a.all("--insecure-registry");
        o.credentialsFile = a.get("--credentials");
        if (a.has("--platform")) {
            auto parts = sys::split(a.get("--platform"), '/');
            if (parts.size() < 2 || parts.size() > 3)
                return failWith("image pull: --platform \"" + a.get("--platform") + "\": expected OS/ARCH[/VARIANT], like linux/arm64");
            o.platform = {parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
        }
        o.tempDir = store->tmpDir();
        bool tty = ::isatty(2);
        o.progress = [tty](const std::string& what, uint64_t done, uint64_t total) {
            // A bar on a terminal, one line per finished blob otherwise.
            if (tty) {
                int width = 30, filled = total ? int(double(done) / double(total) * width) : width;
                std::fprintf(stderr, "\r%-20.20s [%s%s] %s/%s", what.c_str(), std::string(size_t(filled), '#').c_str(),
                             std::string(size_t(width - filled), ' ').c_str(), human(done).c_str(), human(total).c_str());
                if (done >= total) std::fprintf(stderr, "\n");
            } else if (done >= total) {
                std::fprintf(stderr, "%s: %s done\n", what.c_str(), human(total).c_str());
            }
        };
        auto r = images::pullImage(*store, o);
        if (!r) return failWith(r.error().message());
        std::printf("%s\n", r->id.str().c_str());
        return 0;
    }
    if (sub == "import") {
        Args a(argv, {}, {"--name"}, {}, true);
        if (!a.error.empty() || a.positional.size() != 1) return failWith("image import: expected [--name REF] PATH");
        auto r = images::importPath(*store, a.positional[0], a.get("--name"));
        if (!r) return failWith(r.error().message());
        for (const auto& img : *r)
            std::printf("%s %s\n", img.id.str().c_str(), img.names.empty() ? "<none>" : img.names[0].c_str());
        return 0;
    }
    if (sub == "ls") {
        Args a(argv, {}, {"--output"}, {{"-o", "--output"}});
        auto all = store->list();
        if (!all) return failWith(all.error().message());
        if (a.get("--output", "table") == "json") {
            json::Value list = json::Value::array();
            for (const auto& r : *all) list.push(imageJson(r));
            std::printf("%s\n", list.dump(true).c_str());
            return 0;
        }
        std::printf("%-50s %-14s %-22s %s\n", "NAME", "ID", "CREATED", "SIZE");
        for (const auto& r : *all) {
            auto names = r.names.empty() ? std::vector<std::string>{"<none>"} : r.names;
            for (const auto& n : names)
                std::printf("%-50s %-14s %-22s %s\n", n.c_str(), r.id.hex.substr(0, 12).c_str(), r.created.c_str(),
                            human(r.size).c_str());
        }
        return 0;
    }
    if (sub == "inspect") {
        if (argv.size() != 1) return failWith("image inspect: expected one image");
        auto r = store->find(argv[0]);
        if (!r) return failWith(r.error().message());
        std::printf("%s\n", imageJson(*r).dump(true).c_str());
        return 0;
    }
    if (sub == "rm") {
        Args a(argv, {"--force"}, {}, {{"-f", "--force"}}, true);
        if (a.positional.empty()) return failWith("image rm: expected an image");
        int rc = 0;
        for (const auto& n : a.positional)
            if (auto r = store->remove(n, a.has("--force")); !r) rc = failWith(r.error().message());
        return rc;
    }
    if (sub == "prune") {
        // Layers used by containers that still exist stay.
        std::vector<images::Digest> inUse;
        for (const auto& id : sys::listDir(state + "/containers")) {
            auto text = sys::readFile(state + "/containers/" + id + "/container.json");
            if (!text) continue;
            auto v = json::Value::parse(*text);
            if (!v) continue;
            if (const json::Value* ls = v->find("layers"); ls && ls->isArray())
                for (const auto& l : ls->asArray())
                    if (l.isString())
                        if (auto d = images::Digest::parse(l.asString())) inUse.push_back(*d);
        }
        auto r = store->prune(inUse);
        if (!r) return failWith(r.error().message());
        std::printf("removed %zu blobs and %zu layers, %s\n", r->blobs.size(), r->layers.size(), human(r->bytes).c_str());
        return 0;
    }
    return failWith("image: unknown command \"" + sub + "\"");
}

json::Value containerJson(const runtime::ContainerInfo& c) {
    json::Value v = json::Value::object();
    v.set("id", c.id);
    v.set("name", c.name);
    v.set("image", c.image);
    v.set("imageId", c.imageId);
    v.set("command", json::stringArray(c.command));
    v.set("created", c.created);
    v.set("status", c.status);
    if (c.exitCode) v.set("exitCode", int64_t(*c.exitCode));
    if (!c.finished.empty()) v.set("finished", c.finished);
    v.set("pid", int64_t(c.pid));
    v.set("network", c.network);
    v.set("ip", c.ip);
    if (!c.ip6.empty()) v.set("ip6", c.ip6);
    v.set("ports", json::stringArray(c.ports));
    return v;
}

/// `hull logs [-f] [--tail N] CONTAINER`, on one host or through a master.
struct LogsArgs {
    std::string container;
    bool follow = false;
    long tail = -1;  // all
};
Result<LogsArgs> parseLogsArgs(const std::vector<std::string>& argv) {
    Args a(argv, {"--follow"}, {"--tail"}, {{"-f", "--follow"}}, true);
    if (!a.error.empty() || a.positional.size() != 1) return failInvalid("logs: expected one container");
    LogsArgs l{a.positional[0], a.has("--follow"), -1};
    if (a.has("--tail")) {
        auto n = wholeNumber(a.get("--tail"));
        if (!n || *n < 0) return failInvalid("logs: --tail \"" + a.get("--tail") + "\": expected a number of lines");
        l.tail = long(*n);
    }
    return l;
}

int containerCmd(runtime::Engine& e, const std::string& cmd, const std::vector<std::string>& argv) {
    if (cmd == "run") {
        Args a(argv, {"--detach", "--rm", "--tty", "--interactive"},
               {"--name", "--env", "--publish", "--volume", "--memory", "--cpus", "--pids-limit", "--user", "--network",
                "--insecure-registry"},
               {{"-d", "--detach"}, {"-t", "--tty"}, {"-i", "--interactive"}, {"-e", "--env"}, {"-p", "--publish"},
                {"-v", "--volume"}, {"-m", "--memory"}, {"-u", "--user"}});
        if (!a.error.empty()) return failWith("run: " + a.error);
        if (a.positional.empty()) return failWith("run: expected an image");
        runtime::RunOptions o;
        o.image = a.positional[0];
        o.command.assign(a.positional.begin() + 1, a.positional.end());
        o.name = a.get("--name");
        o.env = a.all("--env");
        o.publish = a.all("--publish");
        o.volumes = a.all("--volume");
        o.memory = a.get("--memory");
        if (a.has("--cpus")) {
            char* end = nullptr;
            std::string c = a.get("--cpus");
            o.cpus = std::strtod(c.c_str(), &end);
            if (c.empty() || *end || !(o.cpus > 0) || o.cpus > 1024)
                return failWith("run: --cpus \"" + c + "\": expected a number of CPUs above 0, like 0.5 or 2");
        }
        if (a.has("--pids-limit")) {
            auto n = wholeNumber(a.get("--pids-limit"));
            if (!n || *n < 1) return failWith("run: --pids-limit \"" + a.get("--pids-limit") + "\": expected a number above 0");
            o.pidsLimit = *n;
        }
        o.user = a.get("--user");
        o.network = a.get("--network", "hull");
        o.detach = a.has("--detach");
        o.remove = a.has("--rm");
        o.tty = a.has("--tty");
        o.interactive = a.has("--interactive");
        o.insecureRegistries = a.all("--insecure-registry");
        if (o.detach && o.tty)
            return failWith("run: -t with -d is not supported yet: a detached container's output goes to its log "
                            "(run it in the foreground with -it, or use exec -it on a detached one)");
        if (o.detach && o.remove) {
            // A detached --rm container is removed by its monitor when it ends.
        }
        std::string id;
        auto r = e.run(o, &id);
        if (!r) return failWith(r.error().message());
        if (o.detach) std::printf("%s\n", id.c_str());
        return *r;
    }
    if (cmd == "ps") {
        Args a(argv, {"--all"}, {"--output"}, {{"-a", "--all"}, {"-o", "--output"}});
        if (!a.error.empty()) return failWith("ps: " + a.error);
        auto list = e.list(a.has("--all"));
        if (!list) return failWith(list.error().message());
        if (a.get("--output", "table") == "json") {
            json::Value arr = json::Value::array();
            for (const auto& c : *list) arr.push(containerJson(c));
            std::printf("%s\n", arr.dump(true).c_str());
            return 0;
        }
        std::printf("%-12s %-16s %-30s %-14s %-15s %s\n", "ID", "NAME", "IMAGE", "STATUS", "IP", "PORTS");
        for (const auto& c : *list) {
            std::string status = c.status + (c.exitCode ? " (" + std::to_string(*c.exitCode) + ")" : "");
            std::string ports;
            for (const auto& p : c.ports) ports += (ports.empty() ? "" : ",") + p;
            std::printf("%-12s %-16s %-30s %-14s %-15s %s\n", runtime::shortId(c.id).c_str(), c.name.c_str(),
                        c.image.c_str(), status.c_str(), c.ip.c_str(), ports.c_str());
        }
        return 0;
    }
    if (cmd == "logs") {
        auto l = parseLogsArgs(argv);
        if (!l) return failWith(l.error().message());
        return check(e.logs(l->container, l->follow, l->tail, 1));
    }
    if (cmd == "stop" || cmd == "kill" || cmd == "rm") {
        Args a(argv, {"--force"}, {"--time", "--signal"}, {{"-t", "--time"}, {"-s", "--signal"}, {"-f", "--force"}});
        if (!a.error.empty() || a.positional.empty()) return failWith(cmd + ": expected a container");
        int rc = 0;
        for (const auto& c : a.positional) {
            Result<void> r;
            if (cmd == "stop") r = e.stop(c, std::atoi(a.get("--time", "10").c_str()));
            else if (cmd == "rm") r = e.remove(c, a.has("--force"));
            else {
                int sig = runtime::parseSignal(a.get("--signal", "KILL"));
                if (sig < 0) return failWith("kill: unknown signal \"" + a.get("--signal") + "\"");
                r = e.kill(c, sig);
            }
            if (!r) rc = failWith(r.error().message());
            else std::printf("%s\n", c.c_str());
        }
        return rc;
    }
    if (cmd == "exec") {
        Args a(argv, {"--tty", "--interactive"}, {"--env", "--user"},
               {{"-t", "--tty"}, {"-i", "--interactive"}, {"-e", "--env"}, {"-u", "--user"}});
        if (!a.error.empty() || a.positional.size() < 2) return failWith("exec: expected CONTAINER CMD...");
        std::vector<std::string> args(a.positional.begin() + 1, a.positional.end());
        auto r = e.exec(a.positional[0], args, a.all("--env"), a.get("--user"), a.has("--tty"), a.has("--interactive"));
        if (!r) return failWith(r.error().message());
        return *r;
    }
    if (cmd == "inspect") {
        if (argv.size() != 1) return failWith("inspect: expected one container");
        auto c = e.inspect(argv[0]);
        if (!c) return failWith(c.error().message());
        std::printf("%s\n", containerJson(*c).dump(true).c_str());
        return 0;
    }
    return failWith("unknown command \"" + cmd + "\" (see hull --help)");
}

// ---- hull describe: presentation of the agent's GET /v1/services/NAME ----

std::string textOf(const json::Value& x, const char* key) {
    const json::Value* f = x.isObject() ? x.find(key) : nullptr;
    if (!f || f->isNull()) return "";
    return f->isString() ? f->asString() : f->dump();
}

int64_t intOf(const json::Value& x, const char* key) {
    int64_t v = 0;
    if (const json::Value* f = x.isObject() ? x.find(key) : nullptr) f->toInt64(v);
    return v;
}

std::string joined(const json::Value* arr, const char* sep) {
    std::string out;
    if (arr && arr->isArray())
        for (const auto& x : arr->asArray()) out += (out.empty() ? "" : sep) + (x.isString() ? x.asString() : x.dump());
    return out;
}

/// Milliseconds as a service file writes them: 100ms, 1.5s, 10s, 2m, 1h.
std::string durationText(int64_t ms) {
    char b[32];
    if (ms >= 3600000 && ms % 3600000 == 0) std::snprintf(b, sizeof b, "%lldh", (long long)(ms / 3600000));
    else if (ms >= 60000 && ms % 60000 == 0) std::snprintf(b, sizeof b, "%lldm", (long long)(ms / 60000));
    else if (ms >= 1000) std::snprintf(b, sizeof b, "%gs", double(ms) / 1000);
    else std::snprintf(b, sizeof b, "%lldms", (long long)ms);
    return b;
}

/// How long ago, as kubectl shows ages: 45s, 3m, 5h, 2d.
std::string ageText(int64_t sinceMs, int64_t nowMs) {
    if (sinceMs <= 0) return "-";
    int64_t s = std::max<int64_t>(0, (nowMs - sinceMs) / 1000);
    char b[32];
    if (s < 120) std::snprintf(b, sizeof b, "%llds", (long long)s);
    else if (s < 120 * 60) std::snprintf(b, sizeof b, "%lldm", (long long)(s / 60));
    else if (s < 48 * 3600) std::snprintf(b, sizeof b, "%lldh", (long long)(s / 3600));
    else std::snprintf(b, sizeof b, "%lldd", (long long)(s / 86400));
    return b;
}

std::string bytesText(int64_t n) {
    for (auto [unit, size] : {std::pair{"g", int64_t(1) << 30}, {"m", int64_t(1) << 20}, {"k", int64_t(1) << 10}})
        if (n >= size && n % size == 0) return std::to_string(n / size) + unit;
    return std::to_string(n);
}

std::string probeText(const json::Value& p) {
    std::string kind = textOf(p, "kind"), what;
    if (kind == "exec") what = "exec [" + joined(p.find("exec"), " ") + "]";
    else if (kind == "http") what = "http GET :" + textOf(p, "port") + textOf(p, "path");
    else what = "tcp :" + textOf(p, "port");
    return what + "  period " + durationText(intOf(p, "period")) + ", timeout " + durationText(intOf(p, "timeout")) +
           ", delay " + durationText(intOf(p, "initialDelay")) + ", success " + textOf(p, "successThreshold") +
           ", failure " + textOf(p, "failureThreshold");
}

void printDescribe(const json::Value& v) {
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const json::Value& spec = *v.find("spec");
    auto line = [](const char* key, const std::string& value) { std::printf("%-14s%s\n", key, value.c_str()); };
    line("Name:", textOf(v, "name"));
    line("Image:", textOf(spec, "image"));
    std::string command = joined(spec.find("command"), " ");
    line("Command:", command.empty() ? "(the image's)" : command);
    if (std::string env = joined(spec.find("env"), ", "); !env.empty()) line("Env:", env);
    line("Generation:", textOf(v, "generation") + " (applied " + ageText(intOf(v, "updated"), now) + " ago)");
    const json::Value* replicas = v.find("replicas");
    line("Replicas:", textOf(*replicas, "desired") + " desired, " + textOf(*replicas, "ready") + " ready");
    if (const json::Value* r = v.find("rollout"); r && r->isObject()) {
        std::string text = textOf(*r, "state") + ": generation " + textOf(*r, "from") + " -> " + textOf(*r, "to") + ", " +
                           textOf(*r, "updated") + "/" + textOf(*r, "desired") + " updated";
        if (intOf(*r, "failures") > 0) text += ", " + textOf(*r, "failures") + " failed";
        if (!textOf(*r, "reason").empty()) text += " (" + textOf(*r, "reason") + ")";
        line("Rollout:", text);
    }
    if (const json::Value* a = v.find("autoscale"); a && a->isObject()) {
        const json::Value* as = spec.find("autoscale");
        std::string text = (as ? textOf(*as, "min") + ".." + textOf(*as, "max") : std::string("?")) + " replicas, " +
                           textOf(*a, "desired") + " desired";
        char metric[64];
        if (as && as->find("cpu")) {
            const double cpu = a->find("cpu") && a->find("cpu")->isNumber() ? a->find("cpu")->asDouble() : -1;
            std::snprintf(metric, sizeof metric, "; cpu %s of target %.0f%%", cpu < 0 ? "-" : (std::to_string(int(cpu * 100 + 0.5)) + "%").c_str(),
                          as->find("cpu")->asDouble() * 100);
            text += metric;
        }
        if (as && as->find("requestsPerSecond")) {
            const double rps = a->find("rps") && a->find("rps")->isNumber() ? a->find("rps")->asDouble() : -1;
            std::snprintf(metric, sizeof metric, "; %s conn/s for a target of %g per replica",
                          rps < 0 ? "-" : std::to_string(int(rps + 0.5)).c_str(), as->find("requestsPerSecond")->asDouble());
            text += metric;
        }
        line("Autoscale:", text);
        if (!textOf(*a, "decision").empty()) line("", "now: " + textOf(*a, "decision"));
        if (!textOf(*a, "lastChange").empty())
            line("", "last change: " + textOf(*a, "lastChange") + " (" + durationText(intOf(*a, "lastChangeAgoMs")) + " ago)");
    }
    const json::Value* b = spec.find("backoff");
    char factor[32];
    std::snprintf(factor, sizeof factor, "%g", b->find("factor")->asDouble());
    line("Restart:", textOf(spec, "restart") + "; backoff " + durationText(intOf(*b, "initial")) + " x" + factor +
                         " up to " + durationText(intOf(*b, "max")) + ", reset after " + durationText(intOf(*b, "resetAfter")));
    if (std::string ports = joined(spec.find("ports"), ", "); !ports.empty())
        line("Ports:", ports + (textOf(spec, "publishMode").empty() ? "" : " (publishMode " + textOf(spec, "publishMode") + ")"));
    if (std::string nets = joined(spec.find("networks"), ", "); !nets.empty()) line("Networks:", nets);
    if (std::string vols = joined(spec.find("volumes"), ", "); !vols.empty()) line("Volumes:", vols);
    if (const json::Value* res = spec.find("resources")) {
        const json::Value& l = *res->find("limits");
        std::string limits;
        if (l.find("cpus")->asDouble() > 0) limits += "cpus " + textOf(l, "cpus");
        if (intOf(l, "memory") > 0) limits += std::string(limits.empty() ? "" : ", ") + "memory " + bytesText(intOf(l, "memory"));
        if (intOf(l, "pids") > 0) limits += std::string(limits.empty() ? "" : ", ") + "pids " + textOf(l, "pids");
        line("Limits:", limits.empty() ? "none" : limits);
    }
    const json::Value* maxAge = spec.find("maxAge");
    line("Max age:", maxAge && !maxAge->isNull() ? durationText(intOf(spec, "maxAge")) : "none");
    line("Stop grace:", durationText(intOf(spec, "stopGracePeriod")));
    std::printf("Probes:\n");
    bool anyProbe = false;
    for (const char* kind : {"startup", "readiness", "liveness"}) {
        const json::Value* p = spec.find("probes")->find(kind);
        if (!p || p->isNull()) continue;
        anyProbe = true;
        std::printf("  %-12s%s\n", (std::string(kind) + ":").c_str(), probeText(*p).c_str());
    }
    if (!anyProbe) std::printf("  none\n");
    std::printf("Containers:\n");
    const auto& cs = v.find("containers")->asArray();
    if (cs.empty()) std::printf("  none\n");
    else std::printf("  %-24s %-5s %-9s %-6s %-9s %-15s %s\n", "NAME", "SLOT", "STATUS", "READY", "RESTARTS", "IP", "AGE");
    for (const auto& c : cs)
        std::printf("  %-24s %-5s %-9s %-6s %-9s %-15s %s\n", textOf(c, "name").c_str(), textOf(c, "slot").c_str(),
                    textOf(c, "status").c_str(), textOf(c, "ready").c_str(), textOf(c, "restarts").c_str(),
                    textOf(c, "ip").empty() ? "-" : textOf(c, "ip").c_str(), ageText(intOf(c, "started"), now).c_str());
    std::printf("Events:\n");
    const auto& evs = v.find("events")->asArray();
    if (evs.empty()) std::printf("  none\n");
    else std::printf("  %-6s %-8s %-14s %s\n", "AGE", "KIND", "CONTAINER", "MESSAGE");
    for (const auto& e : evs)
        std::printf("  %-6s %-8s %-14s %s\n", ageText(intOf(e, "time"), now).c_str(), textOf(e, "kind").c_str(),
                    textOf(e, "container").substr(0, 12).c_str(), textOf(e, "message").c_str());
}

/// `--output json` after the positional arguments too (Args stops at the first positional).
std::vector<std::string> outputFlagFirst(const std::vector<std::string>& argv) {
    std::vector<std::string> reordered;
    for (size_t i = 0; i < argv.size(); ++i) {
        if ((argv[i] == "--output" || argv[i] == "-o") && i + 1 < argv.size()) {
            reordered.insert(reordered.begin(), {argv[i], argv[i + 1]});
            ++i;
        } else if (argv[i].rfind("--output=", 0) == 0) {
            reordered.insert(reordered.begin(), argv[i]);
        } else {
            reordered.push_back(argv[i]);
        }
    }
    return reordered;
}

/// The target's answer: its body when 200; else nullopt, its ErrorReply's message on stderr.
std::optional<std::string> call(const orchestrator::api::ApiTarget& t, const std::string& method, const std::string& target,
                                const std::string& body) {
    auto r = orchestrator::api::apiCall(t, method, target, body);
    if (!r) {
        failWith(r.error().message());
        return std::nullopt;
    }
    if (r->first != 200) {
        auto e = orchestrator::decode<orchestrator::ErrorReply>(r->second);
        failWith(e ? e->message
                   : std::string(t.master() ? "master" : "node agent") + ": status " + std::to_string(r->first) + ": " + r->second);
        return std::nullopt;
    }
    return r->second;
}

/// call(), with the reply decoded as a T.
template <class T>
std::optional<T> ask(const orchestrator::api::ApiTarget& t, const std::string& method, const std::string& target,
                     const std::string& body) {
    auto r = call(t, method, target, body);
    if (!r) return std::nullopt;
    auto m = orchestrator::decode<T>(*r);
    if (!m) {
        failWith(std::string(t.master() ? "master" : "node agent") + ": " + m.error().message());
        return std::nullopt;
    }
    return std::move(*m);
}

std::string labelsText(const std::map<std::string, std::string>& labels) {
    std::string out;
    for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
    return out;
}

/// `hull node ls|drain|activate|label`: a master's nodes.
int clusterNodeCmd(const orchestrator::api::ApiTarget& t, const std::string& sub, const std::vector<std::string>& argv) {
    if (!t.master()) return failWith("node " + sub + ": needs a master (--config admin.conf, or $HULL_CONFIG)");
    Args a(outputFlagFirst(argv), {}, {"--output"}, {{"-o", "--output"}});
    if (!a.error.empty()) return failWith("node " + sub + ": " + a.error);
    bool asJson = a.get("--output", "table") == "json";
    auto printNodes = [&](const std::vector<orchestrator::NodeEntry>& nodes) {
        orchestrator::NodeList list{nodes};
        if (asJson) {
            std::printf("%s\n", orchestrator::outputJson(list).dump(true).c_str());
            return;
        }
        std::printf("%-16s %-8s %-16s %-10s %-5s %-9s %s\n", "NAME", "STATUS", "ADDRESS", "CONTAINERS", "CPUS", "MEMORY",
                    "LABELS");
        for (const auto& n : nodes) {
            char cpus[32];
            std::snprintf(cpus, sizeof cpus, "%g", n.cpus);
            std::printf("%-16s %-8s %-16s %-10lld %-5s %-9s %s\n", n.name.c_str(), n.status.c_str(), n.address.c_str(),
                        (long long)n.containers, cpus, bytesText(n.memory).c_str(), labelsText(n.labels).c_str());
        }
    };
    if (sub == "ls") {
        auto m = ask<orchestrator::NodeList>(t, "GET", "/v1/nodes", "");
        if (!m) return 1;
        printNodes(m->nodes);
        return 0;
    }
    if (a.positional.empty()) return failWith("node " + sub + ": expected a node name");
    const std::string name = a.positional[0];
    if (sub == "rm") {
        if (a.positional.size() != 1) return failWith("node rm: expected one node name");
        if (!ask<orchestrator::DeleteReply>(t, "DELETE", "/v1/nodes/" + name, "")) return 1;
        std::printf("node %s removed\n", name.c_str());
        return 0;
    }
    std::optional<orchestrator::NodeReply> r;
    if (sub == "drain" || sub == "activate") {
        if (a.positional.size() != 1) return failWith("node " + sub + ": expected one node name");
        r = ask<orchestrator::NodeReply>(t, "POST", "/v1/nodes/" + name + "/" + sub, "");
    } else {
        orchestrator::NodeLabelRequest req;
        for (size_t i = 1; i < a.positional.size(); ++i) {
            const std::string& kv = a.positional[i];
            auto eq = kv.find('=');
            if (eq != std::string::npos) req.set[kv.substr(0, eq)] = kv.substr(eq + 1);
            else if (!kv.empty() && kv.back() == '-') req.remove.push_back(kv.substr(0, kv.size() - 1));
            else return failWith("node label: expected KEY=VALUE (set) or KEY- (remove), not \"" + kv + "\"");
        }
        if (req.set.empty() && req.remove.empty()) return failWith("node label: expected NAME KEY=VALUE...");
        r = ask<orchestrator::NodeReply>(t, "POST", "/v1/nodes/" + name + "/labels", orchestrator::encode(req));
    }
    if (!r) return 1;
    printNodes({r->node});
    return 0;
}

/// Waits for SERVICE's rollout (or, with none, for every replica to be
/// ready), with one progress line: rewritten in place on a terminal, a line per
/// change when piped. GENERATION: the one an apply just made (0: whatever is
/// current). 0 when it completed, 1 when it rolled back, paused or timed out.
int waitRollout(const orchestrator::api::ApiTarget& t, const std::string& service, int64_t generation,
                std::chrono::milliseconds timeout) {
    if (!t.master()) return failWith("rollout: needs a master (--config admin.conf, or $HULL_CONFIG)");
    const bool tty = ::isatty(STDOUT_FILENO);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last;
    auto show = [&](const std::string& line, bool final) {
        if (line == last && !final) return;
        if (tty) std::printf("\r\033[K%s%s", line.c_str(), final ? "\n" : "");
        else if (line != last) std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        last = line;
    };
    for (;;) {
        auto st = ask<orchestrator::RolloutStatus>(t, "GET", "/v1/services/" + service + "/rollout", "");
        if (!st) return 1;
        // A rollout that ended before this one's apply (a scale, the same file again) is not this one's.
        const bool ours = !generation || st->to == generation || st->generation == generation;
        const std::string state = st->state.empty() || !ours ? "" : st->state;
        char line[256];
        std::snprintf(line, sizeof line, "%s: generation %lld, %lld/%lld updated, %lld/%lld ready%s%s", service.c_str(),
                      (long long)st->generation, (long long)st->updated, (long long)st->desired, (long long)st->ready,
                      (long long)st->desired, state.empty() ? "" : ", ", state.c_str());
        if (state == "rolled-back" || state == "paused") {
            show(line, true);
            return failWith("rollout of " + service + " " + (state == "paused" ? "paused" : "rolled back to generation " +
                                                                                               std::to_string(st->generation)) +
                            ": " + st->reason);
        }
        if ((state.empty() || state == "completed") && st->updated >= st->desired && st->ready >= st->desired) {
            show(line, true);
            std::printf("%s: rollout complete\n", service.c_str());
            return 0;
        }
        show(line, false);
        if (std::chrono::steady_clock::now() >= deadline) {
            if (tty) std::printf("\n");
            return failWith("rollout of " + service + ": not done after " + std::to_string(timeout.count() / 1000) +
                            "s (it goes on; hull rollout status " + service + ")");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
}

/// `hull rollout status|history|undo SERVICE`.
int rolloutCmd(const orchestrator::api::ApiTarget& t, const std::vector<std::string>& argv) {
    if (argv.empty()) return failWith("rollout: expected status, history or undo");
    if (!t.master()) return failWith("rollout: needs a master (--config admin.conf, or $HULL_CONFIG)");
    const std::string sub = argv[0];
    // SERVICE and the options in any order (`rollout undo web --to-generation 2`).
    std::vector<std::string> options, names;
    for (size_t i = 1; i < argv.size(); ++i) {
        const std::string& x = argv[i];
        if (x.size() > 1 && x[0] == '-') {
            options.push_back(x);
            if (x.find('=') == std::string::npos && i + 1 < argv.size()) options.push_back(argv[++i]);
        } else {
            names.push_back(x);
        }
    }
    options.insert(options.end(), names.begin(), names.end());
    Args a(options, {}, {"--output", "--to-generation", "--timeout"}, {{"-o", "--output"}});
    if (!a.error.empty()) return failWith("rollout " + sub + ": " + a.error);
    if (a.positional.size() != 1) return failWith("rollout " + sub + ": expected a service name");
    const std::string name = a.positional[0];
    const bool asJson = a.get("--output", "table") == "json";
    if (sub == "status") {
        auto timeout = orchestrator::parseDuration(a.get("--timeout", "10m"));
        if (!timeout) return failWith("rollout status: --timeout: expected a duration such as 5m");
        if (asJson) {
            auto st = ask<orchestrator::RolloutStatus>(t, "GET", "/v1/services/" + name + "/rollout", "");
            if (!st) return 1;
            std::printf("%s\n", orchestrator::outputJson(*st).dump(true).c_str());
            return st->state == "rolled-back" || st->state == "paused" ? 1 : 0;
        }
        return waitRollout(t, name, 0, *timeout);
    }
    if (sub == "history") {
        auto h = ask<orchestrator::RolloutHistory>(t, "GET", "/v1/services/" + name + "/history", "");
        if (!h) return 1;
        if (asJson) {
            std::printf("%s\n", orchestrator::outputJson(*h).dump(true).c_str());
            return 0;
        }
        std::printf("%-11s %-20s %-9s %-12s %-32s %s\n", "GENERATION", "APPLIED", "CAUSE", "OUTCOME", "IMAGE", "REASON");
        for (const auto& r : h->revisions) {
            char when[32] = "";
            std::time_t secs = std::time_t(r.applied / 1000);
            std::tm tm{};
            if (::localtime_r(&secs, &tm)) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            std::string gen = std::to_string(r.generation) + (r.current ? " *" : "");
            std::printf("%-11s %-20s %-9s %-12s %-32s %s\n", gen.c_str(), when, r.cause.c_str(),
                        r.outcome.empty() ? "-" : r.outcome.c_str(), r.image.c_str(), r.reason.c_str());
        }
        return 0;
    }
    if (sub == "undo") {
        orchestrator::UndoRequest req;
        if (a.has("--to-generation")) {
            auto g = wholeNumber(a.get("--to-generation"));
            if (!g || *g < 1) return failWith("rollout undo: --to-generation: expected a generation number");
            req.toGeneration = *g;
        }
        auto st = ask<orchestrator::RolloutStatus>(t, "POST", "/v1/services/" + name + "/undo", orchestrator::encode(req));
        if (!st) return 1;
        if (asJson) std::printf("%s\n", orchestrator::outputJson(*st).dump(true).c_str());
        else std::printf("service %s: rolling back from generation %lld to %lld\n", name.c_str(), (long long)st->from,
                         (long long)st->to);
        return 0;
    }
    return failWith("rollout: unknown command \"" + sub + "\" (status, history or undo)");
}

/// `hull cluster join-token [--rotate] | status`.
int clusterCmd(const orchestrator::api::ApiTarget& t, const std::vector<std::string>& argv) {
    if (argv.empty()) return failWith("cluster: expected join-token or status");
    if (!t.master()) return failWith("cluster: needs a master (--config admin.conf, or $HULL_CONFIG)");
    Args a(outputFlagFirst(std::vector<std::string>(argv.begin() + 1, argv.end())), {"--rotate"}, {"--output"},
           {{"-o", "--output"}});
    if (!a.error.empty()) return failWith("cluster " + argv[0] + ": " + a.error);
    if (argv[0] == "join-token") {
        auto r = ask<orchestrator::JoinTokenReply>(t, a.has("--rotate") ? "POST" : "GET", "/v1/cluster/join-token", "");
        if (!r) return 1;
        std::printf("%s\n", r->token.c_str());
        return 0;
    }
    if (argv[0] == "status") {
        auto r = ask<orchestrator::ClusterStatus>(t, "GET", "/v1/cluster/status", "");
        if (!r) return 1;
        if (a.get("--output", "table") == "json") {
            std::printf("%s\n", orchestrator::outputJson(*r).dump(true).c_str());
            return 0;
        }
        std::printf("%-16s %-24s %s\n", "MASTER", "ADDRESS", "ROLE");
        for (const auto& m : r->masters) std::printf("%-16s %-24s %s\n", m.name.c_str(), m.address.c_str(), m.role.c_str());
        std::printf("\nleader %s, store %s (%s), %lld nodes, %lld services\n", r->leader.c_str(), r->store.c_str(),
                    r->storeHealth.c_str(), (long long)r->nodes, (long long)r->services);
        if (!r->storeMembers.empty()) {
            std::printf("\n%-32s %-9s %-7s %-9s %-10s %s\n", "STORE MEMBER", "HEALTHY", "LEADER", "VERSION", "DB", "ERROR");
            for (const auto& m : r->storeMembers)
                std::printf("%-32s %-9s %-7s %-9s %-10s %s\n", m.endpoint.c_str(), m.healthy ? "yes" : "no", m.leader ? "yes" : "",
                            m.version.c_str(), m.healthy ? (std::to_string(m.dbSize / 1024) + " KiB").c_str() : "", m.error.c_str());
        }
        return 0;
    }
    return failWith("cluster: unknown command \"" + argv[0] + "\" (join-token or status)");
}

int masterCmd(const std::string& state, const std::vector<std::string>& argv) {
    Args a(argv, {"--allow-root"}, {"--state-dir", "--listen", "--advertise", "--name", "--heartbeat", "--grace", "--failover-after",
                               "--cluster-cidr", "--service-cidr", "--store", "--etcd-ca", "--etcd-cert", "--etcd-key"},
           {});
    if (!a.error.empty() || !a.positional.empty()) return failWith("master: " + (a.error.empty() ? "unexpected " + a.positional[0] : a.error));
    // The master runs no container and touches no kernel state: it needs no privilege, and
    // a flaw in what it parses off the network should not come with root's.
    if (::geteuid() == 0 && !a.has("--allow-root"))
        return failWith("master: refusing to run as root: it needs no privilege; run it as an unprivileged user "
                        "(its systemd unit has DynamicUser=yes; scripts/cluster runs it as the user hull), "
                        "or pass --allow-root");
    orchestrator::master::MasterOptions o;
    o.stateDir = a.get("--state-dir", state);  // `hull master --state-dir D` as well as `hull --state-dir D master`
    o.listen = a.get("--listen", o.listen);
    o.advertise = a.all("--advertise");
    o.name = a.get("--name");
    o.clusterCidr = a.get("--cluster-cidr", o.clusterCidr);
    o.serviceCidr = a.get("--service-cidr", o.serviceCidr);
    o.store = a.get("--store");
    o.etcdCa = a.get("--etcd-ca");
    o.etcdCert = a.get("--etcd-cert");
    o.etcdKey = a.get("--etcd-key");
    for (const char* f : {"--heartbeat", "--grace", "--failover-after"})
        if (a.has(f)) {
            auto d = orchestrator::parseDuration(a.get(f));
            if (!d || d->count() < 10) return failWith(std::string("master: ") + f + ": expected a duration such as 300ms");
            std::string flag = f;
            (flag == "--heartbeat" ? o.heartbeat : flag == "--grace" ? o.grace : o.failoverAfter) = *d;
        }
    // Before it reads a byte off the network (runtime::confineDaemon says what it keeps).
    if (auto confined = runtime::confineDaemon(runtime::DaemonProfile::Master); !confined)
        return failWith("master: " + confined.error().message());
    auto m = orchestrator::master::Master::open(o);
    if (!m) return failWith(m.error().message());
    return check((*m)->run());
}

int clusterLogs(const orchestrator::api::ApiTarget& t, const std::vector<std::string>& argv) {
    auto l = parseLogsArgs(argv);
    if (!l) return failWith(l.error().message());
    auto r = orchestrator::api::streamLogs(t, l->container, l->tail, l->follow, [](std::string_view bytes) {
        std::fwrite(bytes.data(), 1, bytes.size(), stdout);
        std::fflush(stdout);
    });
    return r ? 0 : failWith(r.error().message());
}

int clusterExec(const orchestrator::api::ApiTarget& t, const std::vector<std::string>& argv) {
    Args a(argv, {"--tty", "--interactive"}, {"--env", "--user"},
           {{"-t", "--tty"}, {"-i", "--interactive"}, {"-e", "--env"}, {"-u", "--user"}});
    if (!a.error.empty() || a.positional.size() < 2) return failWith("exec: expected CONTAINER CMD...");
    orchestrator::api::RemoteExec x;
    x.container = a.positional[0];
    x.args.assign(a.positional.begin() + 1, a.positional.end());
    x.env = a.all("--env");
    x.user = a.get("--user");
    x.tty = a.has("--tty");
    x.interactive = a.has("--interactive");
    // As ssh -t does when forced: the command gets its terminal, ours stays as it is.
    if (x.tty && !::isatty(0))
        std::fprintf(stderr, "hull: exec -t: stdin is not a terminal (the command gets one all the same)\n");
    auto r = orchestrator::api::execRemote(t, x);
    if (!r) return failWith(r.error().message());
    return *r;
}

int nodeCmd(const std::string& state, const std::string& runDir, const std::string& config, const std::string& cmd,
            const std::vector<std::string>& argv) {
    std::string socket = state + "/node.sock";
    if (cmd == "master") return masterCmd(state, argv);
    bool nodeSub = cmd == "node" && !argv.empty() && (argv[0] == "ls" || argv[0] == "drain" || argv[0] == "activate" ||
                                                       argv[0] == "label" || argv[0] == "rm");
    if (cmd == "node" && !nodeSub) {
        Args a(argv, {"--no-overlay"}, {"--socket", "--insecure-registry", "--join", "--token", "--name", "--label", "--address"}, {});
        if (!a.error.empty()) return failWith("node: " + a.error);
        orchestrator::AgentOptions o;
        o.stateDir = state;
        o.runDir = runDir;
        o.socketPath = a.get("--socket", socket);
        o.insecureRegistries = a.all("--insecure-registry");
        o.overlay = !a.has("--no-overlay");
        if (a.has("--join")) {
            orchestrator::node::LinkOptions l;
            l.stateDir = state;
            l.masterUrl = a.get("--join");
            while (!l.masterUrl.empty() && l.masterUrl.back() == '/') l.masterUrl.pop_back();
            l.token = a.get("--token");
            l.name = a.get("--name");
            l.address = a.get("--address");
            for (const auto& kv : a.all("--label")) {
                auto eq = kv.find('=');
                if (eq == std::string::npos || eq == 0) return failWith("node: --label " + kv + ": expected KEY=VALUE");
                l.labels[kv.substr(0, eq)] = kv.substr(eq + 1);
            }
            o.join = l;
        } else if (a.has("--token") || a.has("--name") || a.has("--label") || a.has("--address")) {
            return failWith("node: --token, --name, --label and --address go with --join URL");
        }
        // Least privilege: only what the agent and its containers use (runtime::agentCapabilities,
        // README "Least privilege"); hull-spawner, the monitors and dnsmasq inherit no more.
        if (::geteuid() == 0)
            if (auto kept = runtime::keepOnlyCapabilities(runtime::agentCapabilities()); !kept)
                return failWith("node: keep only the capabilities it needs: " + kept.error().message());
        if (auto confined = runtime::confineDaemon(runtime::DaemonProfile::Agent); !confined)
            return failWith("node: " + confined.error().message());
        auto agent = orchestrator::Agent::open(o);
        if (!agent) return failWith(agent.error().message());
        return check((*agent)->run());
    }
    auto target = orchestrator::api::resolveTarget(config, socket);
    if (!target) return failWith(target.error().message());
    const auto& t = *target;
    if (cmd == "node") return clusterNodeCmd(t, argv[0], std::vector<std::string>(argv.begin() + 1, argv.end()));
    if (cmd == "cluster") return clusterCmd(t, argv);
    if (cmd == "rollout") return rolloutCmd(t, argv);
    if (cmd == "apply") {
        Args a(argv, {"--wait"}, {"--file", "--timeout"}, {{"-f", "--file"}}, true);
        if (!a.error.empty() || !a.has("--file")) return failWith("apply: expected -f FILE [--wait [--timeout 10m]]");
        auto timeout = orchestrator::parseDuration(a.get("--timeout", "10m"));
        if (!timeout) return failWith("apply: --timeout: expected a duration such as 5m");
        if (a.has("--wait") && !t.master()) return failWith("apply --wait: needs a master (--config admin.conf, or $HULL_CONFIG)");
        auto text = sys::readFile(a.get("--file"));
        if (!text) return failWith(text.error().message());
        auto r = ask<orchestrator::ApplyReply>(t, "POST", "/v1/services",
                                                          orchestrator::encode(orchestrator::ApplyRequest{a.get("--file"), *text}));
        if (!r) return 1;
        std::printf("service %s applied (generation %lld)\n", r->name.c_str(), (long long)r->generation);
        std::fflush(stdout);
        if (a.has("--wait")) return waitRollout(t, r->name, r->generation, *timeout);
        return 0;
    }
    if (cmd == "get" || cmd == "events") {
        // `get containers --output json` as well as `get --output json containers`.
        Args a(outputFlagFirst(argv), {}, {"--output"}, {{"-o", "--output"}});
        std::string what = cmd == "events" ? "events" : a.positional.empty() ? "" : a.positional[0];
        if (what != "services" && what != "containers" && what != "events")
            return failWith("get: expected services or containers");
        std::optional<json::Value> v;
        if (what == "services") {
            if (auto m = ask<orchestrator::ServiceList>(t, "GET", "/v1/services", "")) v = orchestrator::outputJson(*m);
        } else if (what == "containers") {
            if (auto m = ask<orchestrator::ContainerList>(t, "GET", "/v1/containers", "")) v = orchestrator::outputJson(*m);
        } else {
            if (auto m = ask<orchestrator::EventList>(t, "GET", "/v1/events", "")) v = orchestrator::outputJson(*m);
        }
        if (!v) return 1;
        if (a.get("--output", "table") == "json") {
            std::printf("%s\n", v->dump(true).c_str());
            return 0;
        }
        auto s = [](const json::Value& x, const char* k) {
            const json::Value* f = x.find(k);
            if (!f) return std::string();
            if (f->isString()) return f->asString();
            return f->dump();
        };
        if (what == "services") {
            std::printf("%-20s %-10s %-40s %s\n", "NAME", "GENERATION", "IMAGE", "READY");
            for (const auto& x : v->asArray()) {
                const json::Value* spec = x.find("spec");
                std::printf("%-20s %-10s %-40s %s\n", s(x, "name").c_str(), s(x, "generation").c_str(),
                            spec ? s(*spec, "image").c_str() : "", (s(x, "ready") + "/" + s(x, "replicas")).c_str());
            }
        } else if (what == "containers") {
            // NODE only where there are nodes (a master's answer).
            bool nodes = false;
            for (const auto& x : v->asArray()) nodes |= !s(x, "node").empty();
            std::printf("%-24s %-16s %-5s %s%-9s %-6s %-9s %s\n", "NAME", "SERVICE", "SLOT", nodes ? "NODE         " : "", "STATUS",
                        "READY", "RESTARTS", "IP");
            for (const auto& x : v->asArray()) {
                char node[32] = "";
                if (nodes) std::snprintf(node, sizeof node, "%-12s ", s(x, "node").c_str());
                std::printf("%-24s %-16s %-5s %s%-9s %-6s %-9s %s\n", s(x, "name").c_str(), s(x, "service").c_str(),
                            s(x, "slot").c_str(), node, s(x, "status").c_str(), s(x, "ready").c_str(), s(x, "restarts").c_str(),
                            s(x, "ip").c_str());
            }
        } else {
            for (const auto& x : v->asArray())
                std::printf("%-6s %-8s %-16s %-14s %s\n", s(x, "id").c_str(), s(x, "kind").c_str(), s(x, "service").c_str(),
                            s(x, "container").substr(0, 12).c_str(), s(x, "message").c_str());
        }
        return 0;
    }
    if (cmd == "describe") {
        Args a(outputFlagFirst(argv), {}, {"--output"}, {{"-o", "--output"}});
        if (!a.error.empty() || a.positional.size() != 1) return failWith("describe: expected a service name");
        auto m = ask<orchestrator::DescribeReply>(t, "GET", "/v1/services/" + a.positional[0], "");
        if (!m) return 1;
        json::Value v = orchestrator::outputJson(*m);
        if (a.get("--output", "table") == "json") std::printf("%s\n", v.dump(true).c_str());
        else printDescribe(v);
        return 0;
    }
    if (cmd == "metrics") {
        auto r = call(t, "GET", "/metrics", "");
        if (!r) return 1;
        std::printf("%s", r->c_str());
        return 0;
    }
    if (cmd == "delete") {
        if (argv.size() != 1) return failWith("delete: expected a service name");
        return ask<orchestrator::DeleteReply>(t, "DELETE", "/v1/services/" + argv[0], "") ? 0 : 1;
    }
    if (cmd == "scale") {
        auto n = argv.size() == 2 ? wholeNumber(argv[1]) : std::nullopt;
        if (!n || *n < 0) return failWith("scale: expected SERVICE REPLICAS");
        return ask<orchestrator::ScaleReply>(t, "POST", "/v1/services/" + argv[0] + "/scale",
                                                        orchestrator::encode(orchestrator::ScaleRequest{*n}))
                   ? 0
                   : 1;
    }
    return failWith("unknown command \"" + cmd + "\"");
}

int overlayCmd(const std::vector<std::string>& rest) {
    if (rest.empty()) return failWith("overlay: expected up, add-peer, del-peer or down");
    const std::string sub = rest[0];
    std::vector<std::string> argv(rest.begin() + 1, rest.end());
    if (sub == "up") {
        Args a(argv, {}, {"--dev", "--vni", "--local", "--underlay", "--port", "--mtu", "--subnet"}, {});
        if (!a.error.empty()) return failWith("overlay up: " + a.error);
        netns::VxlanOptions o;
        o.name = a.get("--dev", "hull.vx");
        o.vni = uint32_t(std::strtoul(a.get("--vni", "1").c_str(), nullptr, 10));
        auto local = netns::Ipv4::parse(a.get("--local"));
        if (!local) return failWith("overlay up: --local IP (this host's underlay address) is required");
        o.local = *local;
        o.underlay = a.get("--underlay");
        o.port = uint16_t(std::strtoul(a.get("--port", "4789").c_str(), nullptr, 10));
        o.mtu = std::atoi(a.get("--mtu", "0").c_str());
        auto subnet = netns::Cidr::parse(a.get("--subnet"));
        if (!subnet) return failWith("overlay up: --subnet " + subnet.error().message());
        auto ov = netns::Overlay::ensure(o, *subnet);
        if (!ov) return failWith(ov.error().message());
        auto self = ov->self();
        // What the other hosts pass to `hull overlay add-peer`.
        std::printf("--subnet %s --underlay %s --mac %s\n", self.subnet.str().c_str(), self.underlay.str().c_str(),
                    self.vtepMac.c_str());
        return 0;
    }
    if (sub == "add-peer" || sub == "del-peer") {
        Args a(argv, {}, {"--dev", "--subnet", "--underlay", "--mac"}, {});
        if (!a.error.empty()) return failWith("overlay " + sub + ": " + a.error);
        auto subnet = netns::Cidr::parse(a.get("--subnet"));
        auto underlay = netns::Ipv4::parse(a.get("--underlay"));
        if (!subnet || !underlay || !a.has("--mac"))
            return failWith("overlay " + sub + ": --subnet CIDR, --underlay IP and --mac MAC are required");
        auto ov = netns::Overlay::open(a.get("--dev", "hull.vx"));
        if (!ov) return failWith(ov.error().message());
        netns::OverlayPeer p{*subnet, *underlay, a.get("--mac")};
        return check(sub == "add-peer" ? ov->addPeer(p) : ov->removePeer(p));
    }
    if (sub == "down") {
        Args a(argv, {}, {"--dev"}, {});
        auto ov = netns::Overlay::open(a.get("--dev", "hull.vx"));
        if (!ov) return failWith(ov.error().message());
        return check(ov->destroy());
    }
    return failWith("overlay: unknown command \"" + sub + "\"");
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string state, runDir, config;
    bool debug = false;
    size_t i = 0;
    for (; i < args.size() && args[i].rfind("--", 0) == 0; ++i) {
        if (args[i] == "--debug") debug = true;
        else if (args[i] == "--state-dir" && i + 1 < args.size()) state = args[++i];
        else if (args[i].rfind("--state-dir=", 0) == 0) state = args[i].substr(12);
        else if (args[i] == "--run-dir" && i + 1 < args.size()) runDir = args[++i];
        else if (args[i] == "--config" && i + 1 < args.size()) config = args[++i];
        else if (args[i].rfind("--config=", 0) == 0) config = args[i].substr(9);
        else if (args[i] == "--version") args[i] = "version";
        else if (args[i] == "--help") {
            std::printf("%s", kUsage);
            return 0;
        } else return failWith("unknown option " + args[i] + "\n\n" + kUsage);
        if (args[i] == "version") break;
    }
    log::configure("", log::Format::Text, debug);
    if (i >= args.size()) {
        std::fprintf(stderr, "%s", kUsage);
        return 2;
    }
    const std::string cmd = args[i];
    std::vector<std::string> rest(args.begin() + long(i) + 1, args.end());
    if (cmd == "version") {
        std::printf("hull version 0.1.0\n");
        return 0;
    }
    if (cmd == "network") return networkCmd(stateDir(state), rest);
    if (cmd == "overlay") return overlayCmd(rest);
    if (cmd == "image") return imageCmd(stateDir(state), rest);
    // Runtime state: beside a moved state dir, so tests and agents never share it.
    if (runDir.empty()) {
        const char* env = std::getenv("HULL_RUN_DIR");
        runDir = env && *env ? env : (!state.empty() || std::getenv("HULL_STATE_DIR")) ? stateDir(state) + "/run" : "/run/hull";
    }
    // The agent, the master and the API's verbs need no engine here (a CLI
    // speaking to a master may be on a machine that runs no containers).
    if (cmd == "node" || cmd == "master" || cmd == "cluster" || cmd == "apply" || cmd == "get" || cmd == "describe" ||
        cmd == "events" || cmd == "delete" || cmd == "scale" || cmd == "metrics" || cmd == "rollout")
        return nodeCmd(stateDir(state), runDir, config, cmd, rest);
    // `hull logs` and `hull exec` against a master: on the node that holds the container.
    if (cmd == "logs" || cmd == "exec")
        if (auto t = orchestrator::api::resolveTarget(config, ""); t && t->master())
            return cmd == "logs" ? clusterLogs(*t, rest) : clusterExec(*t, rest);
    auto engine = runtime::Engine::open(stateDir(state), runDir);
    if (!engine) return failWith(engine.error().message());
    if (cmd == "_cleanup") {
        // Run by hull-monitor when a detached container has ended.
        if (rest.size() != 1) return 2;
        return check(engine->cleanup(rest[0]));
    }
    return containerCmd(*engine, cmd, rest);
}
