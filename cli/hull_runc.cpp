// hull-runc: runc's command line over hull's runtime, so that podman, containerd
// and other OCI clients can use hull in runc's place.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "runtime/runtime.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/size.hpp"
#include "sys/log.hpp"

using namespace hull;
using runtime::Runtime;
using cli::Args;

namespace {

constexpr const char* kVersion = "0.1.0";

const char* kUsage = R"(hull-runc: run OCI containers (runc-compatible command line)

usage: hull-runc [global options] COMMAND [options] ARGS

global options:
  --root DIR            state directory (default /run/hull/runc)
  --log FILE            write log messages to FILE
  --log-format FORMAT   text (default) or json
  --debug               log debug messages
  --systemd-cgroup      (refused: hull manages cgroupfs paths itself)
  -v, --version         print the version

commands:
  create [--bundle DIR] [--pid-file F] [--console-socket S] [--preserve-fds N] [--no-pivot] ID
  start ID              run the user process of a created container
  run [create options] [--detach] ID
  state ID              print the container state as JSON
  kill [--all] ID [SIGNAL]   (default SIGTERM)
  delete [--force] ID
  exec [--process F | ARGS...] [-e K=V] [--cwd D] [--tty] [--user U[:G]] [--cap C]
       [--detach] [--pid-file F] [--console-socket S] [--no-new-privs] [--preserve-fds N] ID
  ps [--format table|json] ID [ps options]
  list [--format table|json] [--quiet]
  pause ID | resume ID
  spec [--bundle DIR] [--rootless]   write a default config.json
  features              print the supported features as JSON
  update [-r FILE|-] [--memory M] [--memory-swap M] [--memory-reservation M] [--cpu-quota N]
         [--cpu-period N] [--cpu-share N] [--cpu-rt-runtime N] [--cpu-rt-period N]
         [--cpuset-cpus L] [--cpuset-mems L] [--pids-limit N] [--blkio-weight N] ID
                        change the limits of a running container (sizes: 32m, 1g, -1)
  events [--stats] [--interval 5s] ID
                        stream OOM and stats events as JSON lines; --stats prints one and exits
)";


int failWith(const std::string& msg) {
    log::errorf("%s", msg.c_str());
    if (log::fd() != 2) fprintf(stderr, "hull-runc: %s\n", msg.c_str());
    return 1;
}

template <class T>
int check(const Result<T>& r) {
    return r ? 0 : failWith(r.error().message());
}

std::string needId(const Args& a, const char* cmd) {
    if (a.positional.empty()) return {};
    (void)cmd;
    return a.positional[0];
}

unsigned parseUnsigned(const std::string& s) { return unsigned(std::strtoul(s.c_str(), nullptr, 10)); }

const std::vector<std::string> kCreateBools = {"--no-pivot", "--no-new-keyring", "--detach", "--keep",
                                               "--no-subreaper"};
const std::vector<std::string> kCreateValues = {"--bundle", "--pid-file", "--console-socket", "--preserve-fds"};
const std::map<std::string, std::string> kCreateAliases = {{"-b", "--bundle"}, {"-d", "--detach"}};

runtime::CreateOptions createOptions(const Args& a) {
    runtime::CreateOptions o;
    o.id = a.positional.empty() ? "" : a.positional[0];
    o.bundle = a.get("--bundle", ".");
    o.pidFile = a.get("--pid-file");
    o.consoleSocket = a.get("--console-socket");
    o.preserveFds = parseUnsigned(a.get("--preserve-fds", "0"));
    o.noPivot = a.has("--no-pivot");
    return o;
}

int cmdPs(Runtime& rt, const Args& a) {
    std::string id = needId(a, "ps");
    if (id.empty()) return failWith("ps: container id required");
    auto pids = rt.pids(id);
    if (!pids) return failWith(pids.error().message());
    std::string format = a.get("--format", "table");
    if (a.get("--output") == "json") format = "json";
    if (format == "json") {
        json::Value arr = json::Value::array();
        for (pid_t p : *pids) arr.push(int64_t(p));
        printf("%s\n", arr.dump().c_str());
        return 0;
    }
    // Like runc: run the host's ps with the caller's options and keep the
    // header and the container's rows.
    std::vector<std::string> psArgs = {"ps"};
    if (a.positional.size() > 1) psArgs.insert(psArgs.end(), a.positional.begin() + 1, a.positional.end());
    else psArgs.push_back("-ef");
    int pipefd[2];
    if (::pipe(pipefd) < 0) return failWith("pipe failed");
    pid_t child = ::fork();
    if (child == 0) {
        ::dup2(pipefd[1], 1);
        std::vector<char*> argv;
        for (auto& s : psArgs) argv.push_back(s.data());
        argv.push_back(nullptr);
        ::execvp("ps", argv.data());
        ::_exit(127);
    }
    ::close(pipefd[1]);
    auto out = sys::readFd(pipefd[0]);
    ::close(pipefd[0]);
    int st = 0;
    ::waitpid(child, &st, 0);
    if (!out || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return failWith("ps failed");
    auto lines = sys::split(*out, '\n');
    if (lines.empty()) return 0;
    auto header = sys::split(lines[0], ' ');
    size_t pidCol = 0;
    for (; pidCol < header.size(); ++pidCol)
        if (header[pidCol] == "PID") break;
    if (pidCol == header.size()) return failWith("ps output has no PID column");
    printf("%s\n", lines[0].c_str());
    for (size_t i = 1; i < lines.size(); ++i) {
        auto cols = sys::split(lines[i], ' ');
        if (cols.size() <= pidCol) continue;
        pid_t p = pid_t(std::atoi(cols[pidCol].c_str()));
        for (pid_t q : *pids)
            if (p == q) printf("%s\n", lines[i].c_str());
    }
    return 0;
}

int cmdList(Runtime& rt, const Args& a) {
    auto list = rt.list();
    if (!list) return failWith(list.error().message());
    std::string format = a.get("--format", "table");
    if (a.get("--output") == "json") format = "json";
    if (a.has("--quiet")) {
        for (auto& s : *list) printf("%s\n", s.id.c_str());
        return 0;
    }
    if (format == "json") {
        json::Value arr = json::Value::array();
        for (auto& s : *list) {
            auto v = json::Value::parse(runtime::stateJson(s, false));
            if (v) arr.push(std::move(*v));
        }
        printf("%s\n", arr.dump().c_str());
        return 0;
    }
    printf("%-20s %-8s %-10s %-50s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
    for (auto& s : *list)
        printf("%-20s %-8d %-10s %-50s %-30s %s\n", s.id.c_str(), s.pid, s.status.c_str(), s.bundle.c_str(),
               s.created.c_str(), s.owner.c_str());
    return 0;
}

int cmdSpec(const Args& a) {
    std::string dir = a.get("--bundle", ".");
    std::string path = sys::joinPath(dir, "config.json");
    if (sys::exists(path)) return failWith("spec: " + path + " already exists; remove it first");
    auto r = sys::writeFile(path, runtime::specTemplate(a.has("--rootless")), 0644);
    return check(r);
}

/// runc's sizes (docker/go-units RAMInBytes): "1024", "32m", "32MB", "32MiB", "1g"; -1 is unlimited.
std::optional<int64_t> parseSize(const std::string& s) {
    if (s == "-1") return -1;
    return sys::parseSize(s);
}

int cmdUpdate(Runtime& rt, const Args& a) {
    std::string id = a.positional.empty() ? "" : a.positional[0];
    if (id.empty()) return failWith("update: container id required");
    json::Value doc = json::Value::object();
    if (a.has("--resources")) {
        std::string path = a.get("--resources");
        auto text = path == "-" ? sys::readFd(0) : sys::readFile(path);
        if (!text) return failWith("update: " + text.error().message());
        auto parsed = json::Value::parse(*text);
        if (!parsed) return failWith("update: " + path + ": " + parsed.error().message());
        if (!parsed->isObject()) return failWith("update: " + path + ": expected a linux.resources object");
        doc = *parsed;
    }
    // Flags override the file, each into its linux.resources field.
    auto section = [&](const char* name) {
        const json::Value* v = doc.find(name);
        json::Value sub = v && v->isObject() ? *v : json::Value::object();
        return sub;
    };
    struct Flag {
        const char* flag;
        const char* section;
        const char* field;
        enum { Size, Int, Text } kind;
    };
    const Flag flags[] = {
        {"--memory", "memory", "limit", Flag::Size},
        {"--memory-swap", "memory", "swap", Flag::Size},
        {"--memory-reservation", "memory", "reservation", Flag::Size},
        {"--kernel-memory", "memory", "kernel", Flag::Size},
        {"--kernel-memory-tcp", "memory", "kernelTCP", Flag::Size},
        {"--cpu-quota", "cpu", "quota", Flag::Int},
        {"--cpu-period", "cpu", "period", Flag::Int},
        {"--cpu-share", "cpu", "shares", Flag::Int},
        {"--cpu-rt-runtime", "cpu", "realtimeRuntime", Flag::Int},
        {"--cpu-rt-period", "cpu", "realtimePeriod", Flag::Int},
        {"--cpuset-cpus", "cpu", "cpus", Flag::Text},
        {"--cpuset-mems", "cpu", "mems", Flag::Text},
        {"--pids-limit", "pids", "limit", Flag::Int},
        {"--blkio-weight", "blockIO", "weight", Flag::Int},
    };
    for (const auto& f : flags) {
        if (!a.has(f.flag)) continue;
        std::string raw = a.get(f.flag);
        json::Value sub = section(f.section);
        if (f.kind == Flag::Text) {
            sub.set(f.field, raw);
        } else {
            std::optional<int64_t> n;
            if (f.kind == Flag::Size) {
                n = parseSize(raw);
            } else {
                char* end = nullptr;
                long long v = std::strtoll(raw.c_str(), &end, 10);
                if (!raw.empty() && end && *end == '\0') n = v;
            }
            if (!n) return failWith(std::string("update: ") + f.flag + ": invalid value \"" + raw + "\"");
            sub.set(f.field, *n);
        }
        doc.set(f.section, std::move(sub));
    }
    return check(rt.update(id, doc.dump()));
}

volatile sig_atomic_t gStopEvents = 0;

int cmdEvents(Runtime& rt, const Args& a) {
    std::string id = a.positional.empty() ? "" : a.positional[0];
    if (id.empty()) return failWith("events: container id required");
    auto statsEvent = [&]() -> std::optional<std::string> {
        auto data = rt.stats(id);
        if (!data) return std::nullopt;
        return "{\"type\":\"stats\",\"id\":" + json::quote(id) + ",\"data\":" + *data + "}";
    };
    if (a.has("--stats")) {
        auto ev = statsEvent();
        if (!ev) return failWith(rt.stats(id).error().message());
        printf("%s\n", ev->c_str());
        return 0;
    }
    // "5s", "500ms", "1m" (Go durations, as runc takes them).
    std::string iv = a.get("--interval", "5s");
    char* end = nullptr;
    double n = std::strtod(iv.c_str(), &end);
    std::string unit = end ? end : "";
    double ms = unit == "ms" ? n : unit == "s" ? n * 1000 : unit == "m" ? n * 60000 : -1;
    if (ms <= 0) return failWith("events: --interval: invalid duration \"" + iv + "\"");
    auto st = rt.state(id);
    if (!st) return failWith(st.error().message());
    uint64_t ooms = rt.oomKills(id).value_or(0);
    // OOM kills are polled every 100 ms from the cgroup's own counters, which
    // works alike on v1 and v2 and cannot miss a kill between two polls.
    struct sigaction sa = {};
    sa.sa_handler = [](int) { gStopEvents = 1; };
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    const long tick = 100;
    long sinceStats = 0;
    while (!gStopEvents) {
        ::usleep(tick * 1000);
        sinceStats += tick;
        auto s = rt.state(id);
        if (!s || s->status == "stopped") break;
        if (auto now = rt.oomKills(id); now && *now > ooms) {
            for (uint64_t i = ooms; i < *now; ++i) printf("{\"type\":\"oom\",\"id\":%s}\n", json::quote(id).c_str());
            ooms = *now;
            fflush(stdout);
        }
        if (sinceStats >= long(ms)) {
            sinceStats = 0;
            if (auto ev = statsEvent()) {
                printf("%s\n", ev->c_str());
                fflush(stdout);
            }
        }
    }
    return 0;
}

int cmdFeatures() {
    json::Value f = json::Value::object();
    f.set("ociVersionMin", "1.0.0");
    f.set("ociVersionMax", "1.2.0");
    json::Value hooks = json::Value::array();
    for (auto h : {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"})
        hooks.push(h);
    f.set("hooks", std::move(hooks));
    json::Value opts = json::Value::array();
    for (auto o : {"async",   "atime",     "bind",       "defaults", "dev",          "diratime", "dirsync",
                   "exec",    "mand",      "noatime",    "nodev",    "nodiratime",   "noexec",   "nomand",
                   "norelatime", "nostrictatime", "nosuid", "private", "rbind",     "relatime", "remount",
                   "ro",      "rprivate",  "rshared",    "rslave",   "runbindable",  "rw",       "shared",
                   "slave",   "strictatime", "suid",     "sync",     "unbindable"})
        opts.push(o);
    f.set("mountOptions", std::move(opts));
    json::Value linux = json::Value::object();
    json::Value ns = json::Value::array();
    for (auto n : {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}) ns.push(n);
    linux.set("namespaces", std::move(ns));
    json::Value caps = json::Value::array();
    for (const auto& c : runtime::capabilityNames()) caps.push(c);
    linux.set("capabilities", std::move(caps));
    json::Value cg = json::Value::object();
    cg.set("v1", true);
    cg.set("v2", true);
    cg.set("systemd", false);
    cg.set("systemdUser", false);
    linux.set("cgroup", std::move(cg));
    json::Value sc = json::Value::object();
    sc.set("enabled", true);
    json::Value actions = json::Value::array();
    for (auto x : {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                   "SCMP_ACT_LOG", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"})
        actions.push(x);
    sc.set("actions", std::move(actions));
    json::Value ops = json::Value::array();
    for (auto x : {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
                   "SCMP_CMP_NE"})
        ops.push(x);
    sc.set("operators", std::move(ops));
    // The architectures hull compiles filters for (its own x86 family; the
    // parser knows every SCMP_ARCH_* name and refuses the others clearly).
    json::Value archs = json::Value::array();
    for (auto x : {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"}) archs.push(x);
    sc.set("archs", std::move(archs));
    json::Value known = json::Value::array(), supported = json::Value::array();
    for (auto x : {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                   "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"})
        known.push(x);
    for (auto x : {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}) supported.push(x);
    sc.set("knownFlags", std::move(known));
    sc.set("supportedFlags", std::move(supported));
    linux.set("seccomp", std::move(sc));
    json::Value off = json::Value::object();
    off.set("enabled", false);
    linux.set("apparmor", off);
    linux.set("selinux", off);
    f.set("linux", std::move(linux));
    printf("%s\n", f.dump(true).c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> all(argv + 1, argv + argc);
    // Global options come before the command.
    std::string root = runtime::kDefaultRoot, logFile, logFormat = "text";
    bool debug = false, systemdCgroup = false;
    size_t i = 0;
    for (; i < all.size(); ++i) {
        std::string a = all[i];
        std::string name = a, value;
        bool hasValue = false;
        if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
            name = a.substr(0, eq);
            value = a.substr(eq + 1);
            hasValue = true;
        }
        auto takeValue = [&]() -> bool {
            if (hasValue) return true;
            if (i + 1 >= all.size()) return false;
            value = all[++i];
            return true;
        };
        if (name == "--root") {
            if (!takeValue()) return failWith("--root needs a value");
            root = value;
        } else if (name == "--log") {
            if (!takeValue()) return failWith("--log needs a value");
            logFile = value;
        } else if (name == "--log-format") {
            if (!takeValue()) return failWith("--log-format needs a value");
            logFormat = value;
        } else if (name == "--criu" || name == "--rootless") {
            if (!takeValue()) return failWith(name + " needs a value");
        } else if (name == "--debug") {
            debug = true;
        } else if (name == "--systemd-cgroup") {
            systemdCgroup = true;
        } else if (name == "-v" || name == "--version" || name == "version") {
            printf("hull-runc version %s\nspec: 1.2.0\n", kVersion);
            return 0;
        } else if (name == "-h" || name == "--help" || name == "help") {
            fputs(kUsage, stdout);
            return 0;
        } else {
            break;
        }
    }
    if (logFormat != "text" && logFormat != "json") return failWith("--log-format: expected text or json");
    log::configure(logFile, logFormat == "json" ? log::Format::Json : log::Format::Text, debug);
    if (i >= all.size()) {
        fputs(kUsage, stderr);
        return 1;
    }
    std::string cmd = all[i];
    std::vector<std::string> rest(all.begin() + long(i) + 1, all.end());
    if (systemdCgroup && (cmd == "create" || cmd == "run"))
        return failWith("--systemd-cgroup is not supported: hull creates cgroupfs paths itself");
    Runtime rt(root);
    auto needsId = [&](const Args& a) -> std::string {
        if (!a.error.empty()) return "";
        return a.positional.empty() ? "" : a.positional[0];
    };

    if (cmd == "create" || cmd == "run") {
        Args a(rest, kCreateBools, kCreateValues, kCreateAliases);
        if (!a.error.empty()) return failWith(cmd + ": " + a.error);
        auto o = createOptions(a);
        if (o.id.empty()) return failWith(cmd + ": container id required");
        if (cmd == "create") return check(rt.create(o));
        o.keep = a.has("--keep");
        auto r = rt.run(o, a.has("--detach"));
        if (!r) return failWith(r.error().message());
        return *r;
    }
    if (cmd == "start" || cmd == "state" || cmd == "pause" || cmd == "resume") {
        Args a(rest, {}, {}, {});
        std::string id = needsId(a);
        if (id.empty()) return failWith(cmd + ": container id required" + (a.error.empty() ? "" : ": " + a.error));
        if (cmd == "start") return check(rt.start(id));
        if (cmd == "pause") return check(rt.pause(id));
        if (cmd == "resume") return check(rt.resume(id));
        auto s = rt.state(id);
        if (!s) return failWith(s.error().message());
        printf("%s\n", runtime::stateJson(*s).c_str());
        return 0;
    }
    if (cmd == "kill") {
        Args a(rest, {"--all"}, {}, {{"-a", "--all"}});
        std::string id = needsId(a);
        if (id.empty()) return failWith("kill: container id required" + (a.error.empty() ? "" : ": " + a.error));
        std::string sigName = a.positional.size() > 1 ? a.positional[1] : "SIGTERM";
        int sig = runtime::parseSignal(sigName);
        if (sig < 0) return failWith("kill: unknown signal \"" + sigName + "\"");
        return check(rt.kill(id, sig, a.has("--all")));
    }
    if (cmd == "delete") {
        Args a(rest, {"--force"}, {}, {{"-f", "--force"}});
        std::string id = needsId(a);
        if (id.empty()) return failWith("delete: container id required" + (a.error.empty() ? "" : ": " + a.error));
        return check(rt.remove(id, a.has("--force")));
    }
    if (cmd == "exec") {
        Args a(rest, {"--tty", "--detach", "--no-new-privs", "--ignore-paused"},
               {"--process", "--console-socket", "--cwd", "--env", "--user", "--additional-gids", "--cap",
                "--pid-file", "--preserve-fds", "--process-label", "--apparmor", "--cgroup"},
               {{"-t", "--tty"}, {"-d", "--detach"}, {"-p", "--process"}, {"-e", "--env"}, {"-u", "--user"},
                {"-c", "--cap"}, {"-g", "--additional-gids"}});
        if (!a.error.empty()) return failWith("exec: " + a.error);
        std::string id = needsId(a);
        if (id.empty()) return failWith("exec: container id required");
        runtime::ExecOptions o;
        if (a.has("--process")) {
            auto text = sys::readFile(a.get("--process"));
            if (!text) return failWith(text.error().message());
            o.processJson = *text;
        }
        o.args.assign(a.positional.begin() + 1, a.positional.end());
        o.env = a.all("--env");
        o.cwd = a.get("--cwd");
        o.user = a.get("--user");
        o.consoleSocket = a.get("--console-socket");
        o.pidFile = a.get("--pid-file");
        o.tty = a.has("--tty");
        o.detach = a.has("--detach");
        o.noNewPrivs = a.has("--no-new-privs");
        o.addCaps = a.all("--cap");
        for (const auto& g : a.all("--additional-gids"))
            for (const auto& one : sys::split(g, ',')) o.additionalGids.push_back(one);
        o.preserveFds = parseUnsigned(a.get("--preserve-fds", "0"));
        auto r = rt.exec(id, o);
        if (!r) return failWith(r.error().message());
        return *r;
    }
    if (cmd == "ps") {
        Args a(rest, {}, {"--format", "--output"}, {{"-f", "--format"}, {"-o", "--output"}});
        if (!a.error.empty()) return failWith("ps: " + a.error);
        return cmdPs(rt, a);
    }
    if (cmd == "list") {
        Args a(rest, {"--quiet"}, {"--format", "--output"}, {{"-f", "--format"}, {"-q", "--quiet"}, {"-o", "--output"}});
        if (!a.error.empty()) return failWith("list: " + a.error);
        return cmdList(rt, a);
    }
    if (cmd == "spec") {
        Args a(rest, {"--rootless"}, {"--bundle"}, {{"-b", "--bundle"}});
        if (!a.error.empty()) return failWith("spec: " + a.error);
        return cmdSpec(a);
    }
    if (cmd == "features") return cmdFeatures();
    if (cmd == "update") {
        Args a(rest, {},
               {"--resources", "--memory", "--memory-swap", "--memory-reservation", "--kernel-memory",
                "--kernel-memory-tcp", "--cpu-quota", "--cpu-period", "--cpu-share", "--cpu-rt-runtime",
                "--cpu-rt-period", "--cpuset-cpus", "--cpuset-mems", "--pids-limit", "--blkio-weight",
                "--l3-cache-schema", "--mem-bw-schema"},
               {{"-r", "--resources"}, {"-m", "--memory"}});
        if (!a.error.empty()) return failWith("update: " + a.error);
        if (a.has("--l3-cache-schema") || a.has("--mem-bw-schema"))
            return failWith("update: Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported");
        return cmdUpdate(rt, a);
    }
    if (cmd == "events") {
        Args a(rest, {"--stats"}, {"--interval"}, {});
        if (!a.error.empty()) return failWith("events: " + a.error);
        return cmdEvents(rt, a);
    }
    if (cmd == "checkpoint" || cmd == "restore")
        return failWith(cmd + ": not implemented yet in hull-runc");
    return failWith("unknown command \"" + cmd + "\" (see hull-runc --help)");
}
