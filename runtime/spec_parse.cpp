// config.json -> Spec. OCI runtime-spec 1.x, config.md and config-linux.md.
//
// One overloaded read() per type, each given a Field (a JSON value plus the path
// that names it), so every error says where it is: "process.user.uid: expected
// an unsigned integer". Unknown properties are ignored (config.md: runtimes MUST
// ignore unknown properties), and a null property counts as absent, as it does
// for the Go structs the spec is written against.
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <concepts>
#include <limits>
#include <set>
#include <string_view>

#include "runtime/capabilities.hpp"
#include "runtime/spec.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

namespace hull::runtime {

const char* namespaceName(NamespaceType t) {
    switch (t) {
    case NamespaceType::Pid: return "pid";
    case NamespaceType::Network: return "network";
    case NamespaceType::Mount: return "mount";
    case NamespaceType::Ipc: return "ipc";
    case NamespaceType::Uts: return "uts";
    case NamespaceType::User: return "user";
    case NamespaceType::Cgroup: return "cgroup";
    case NamespaceType::Time: return "time";
    }
    return "?";
}

namespace {

using json::Value;
using Names = std::initializer_list<std::string_view>;


struct RlimitName {
    std::string_view name;
    int resource;
};
constexpr RlimitName kRlimits[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_FSIZE", RLIMIT_FSIZE},     {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_STACK", RLIMIT_STACK},     {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},   {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_LOCKS", RLIMIT_LOCKS},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},     {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

constexpr std::pair<std::string_view, NamespaceType> kNamespaces[] = {
    {"pid", NamespaceType::Pid},   {"network", NamespaceType::Network}, {"mount", NamespaceType::Mount},
    {"ipc", NamespaceType::Ipc},   {"uts", NamespaceType::Uts},         {"user", NamespaceType::User},
    {"cgroup", NamespaceType::Cgroup}, {"time", NamespaceType::Time},
};

bool isAbsolute(std::string_view p) { return !p.empty() && p[0] == '/'; }
bool oneOf(std::string_view s, Names names) { return std::find(names.begin(), names.end(), s) != names.end(); }

/// A JSON value and the path that names it in errors.
class Field {
public:
    Field(const Value& v, std::string path) : v_(&v), path_(std::move(path)) {}

    const Value& value() const { return *v_; }
    const std::string& path() const { return path_; }

    tl::unexpected<Error> fail(const std::string& what) const {
        return failInvalid(path_.empty() ? what : path_ + ": " + what);
    }
    /// fail("unknown namespace type \"foo\"") from what + the quoted string value.
    tl::unexpected<Error> failValue(const std::string& what, std::string_view v) const {
        return fail(what + " " + json::quote(v));
    }

    /// A property of this object; nullopt when absent or null.
    std::optional<Field> get(std::string_view key) const {
        const Value* c = v_->find(key);
        if (!c || c->isNull()) return std::nullopt;
        return Field(*c, childPath(key));
    }
    std::string childPath(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }
    Field element(size_t i) const { return Field(v_->asArray()[i], path_ + "[" + std::to_string(i) + "]"); }

private:
    const Value* v_;
    std::string path_;
};

/// The readers. Members of one class so that each overload sees every other one,
/// whatever their order.
struct Reader {
    // ---- building blocks -------------------------------------------------------

    static Result<void> expectObject(const Field& f) {
        if (!f.value().isObject()) return f.fail("expected an object");
        return {};
    }

    /// Optional property: OUT is left as is when absent.
    template <class T>
    static Result<void> opt(const Field& obj, std::string_view key, T& out) {
        if (auto f = obj.get(key)) return read(*f, out);
        return {};
    }
    template <class T>
    static Result<void> req(const Field& obj, std::string_view key, T& out) {
        auto f = obj.get(key);
        if (!f) return failInvalid(obj.childPath(key) + ": required");
        return read(*f, out);
    }

    static Result<void> read(const Field& f, std::string& out) {
        if (!f.value().isString()) return f.fail("expected a string");
        out = f.value().asString();
        return {};
    }
    static Result<void> read(const Field& f, bool& out) {
        if (!f.value().isBool()) return f.fail("expected a boolean");
        out = f.value().asBool();
        return {};
    }
    template <class T>
        requires std::integral<T> && (!std::same_as<T, bool>)
    static Result<void> read(const Field& f, T& out) {
        using L = std::numeric_limits<T>;
        if constexpr (std::is_unsigned_v<T>) {
            uint64_t u = 0;
            if (!f.value().toUint64(u)) return f.fail("expected an unsigned integer");
            if (u > L::max()) return outOfRange(f, std::to_string(u), 0, L::max());
            out = T(u);
        } else {
            int64_t i = 0;
            if (!f.value().toInt64(i)) return f.fail("expected an integer");
            if (i < L::min() || i > L::max()) return outOfRange(f, std::to_string(i), L::min(), L::max());
            out = T(i);
        }
        return {};
    }
    template <class T>
    static Result<void> read(const Field& f, std::optional<T>& out) {
        T v{};
        TRY(read(f, v));
        out = std::move(v);
        return {};
    }
    template <class T>
    static Result<void> read(const Field& f, std::vector<T>& out) {
        if (!f.value().isArray()) return f.fail("expected an array");
        out.clear();
        for (size_t i = 0; i < f.value().asArray().size(); ++i) TRY(read(f.element(i), out.emplace_back()));
        return {};
    }
    template <class T>
    static Result<void> read(const Field& f, std::map<std::string, T>& out) {
        TRY(expectObject(f));
        out.clear();
        for (auto& [key, v] : f.value().asObject()) TRY(read(Field(v, f.childPath(key)), out[key]));
        return {};
    }

    template <class A, class B>
    static tl::unexpected<Error> outOfRange(const Field& f, const std::string& v, A lo, B hi) {
        return f.fail("value " + v + " out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
    }
    /// A signed property that must lie in [lo, hi] (narrower than its C++ type).
    template <class T>
    static Result<void> optRange(const Field& obj, std::string_view key, T& out, int64_t lo, int64_t hi) {
        auto f = obj.get(key);
        if (!f) return {};
        int64_t v = 0;
        TRY(read(*f, v));
        if (v < lo || v > hi) return outOfRange(*f, std::to_string(v), lo, hi);
        out = int(v);  // every caller's range fits an int
        return {};
    }
    /// A string property that must be one of NAMES.
    static Result<void> optEnum(const Field& obj, std::string_view key, std::string& out, Names names,
                                const char* what) {
        auto f = obj.get(key);
        if (!f) return {};
        TRY(read(*f, out));
        if (!oneOf(out, names)) return f->failValue(std::string("unknown ") + what, out);
        return {};
    }
    static Result<void> reqEnum(const Field& obj, std::string_view key, std::string& out, Names names,
                                const char* what) {
        if (!obj.get(key)) return failInvalid(obj.childPath(key) + ": required");
        return optEnum(obj, key, out, names, what);
    }
    /// An array of strings, each one of NAMES.
    static Result<void> optEnumList(const Field& obj, std::string_view key, std::vector<std::string>& out, Names names,
                                    const char* what) {
        auto f = obj.get(key);
        if (!f) return {};
        TRY(read(*f, out));
        for (size_t i = 0; i < out.size(); ++i)
            if (!oneOf(out[i], names)) return f->element(i).failValue(std::string("unknown ") + what, out[i]);
        return {};
    }
    static Result<void> optAbsolute(const Field& obj, std::string_view key, std::string& out) {
        auto f = obj.get(key);
        if (!f) return {};
        TRY(read(*f, out));
        if (!isAbsolute(out)) return f->fail("must be an absolute path");
        return {};
    }
    static Result<void> reqAbsolute(const Field& obj, std::string_view key, std::string& out) {
        if (!obj.get(key)) return failInvalid(obj.childPath(key) + ": required");
        return optAbsolute(obj, key, out);
    }

    // ---- top level and process -----------------------------------------------

    static Result<void> read(const Field& f, Spec& s) {
        TRY(expectObject(f));
        TRY(req(f, "ociVersion", s.ociVersion));
        TRY(checkVersion(*f.get("ociVersion"), s.ociVersion));
        TRY(req(f, "root", s.root));
        TRY(opt(f, "mounts", s.mounts));
        TRY(opt(f, "process", s.process));
        TRY(opt(f, "hostname", s.hostname));
        TRY(opt(f, "domainname", s.domainname));
        TRY(opt(f, "hooks", s.hooks));
        TRY(opt(f, "annotations", s.annotations));
        TRY(opt(f, "linux", s.linux));
        return {};
    }

    // config.md: ociVersion is SemVer; we implement 1.x, any minor, pre-releases included.
    static Result<void> checkVersion(const Field& f, const std::string& v) {
        size_t dot = v.find('.');
        std::string_view major = std::string_view(v).substr(0, dot);
        bool digits = !major.empty() && std::all_of(major.begin(), major.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits || dot == std::string::npos || dot + 1 >= v.size()) return f.failValue("invalid version", v);
        if (major != "1") return f.fail("unsupported version " + json::quote(v) + " (hull supports 1.x)");
        return {};
    }

    static Result<void> read(const Field& f, Root& r) {
        TRY(expectObject(f));
        TRY(req(f, "path", r.path));
        if (r.path.empty()) return f.get("path")->fail("must not be empty");
        TRY(opt(f, "readonly", r.readonly));
        return {};
    }

    static Result<void> read(const Field& f, Process& p) {
        TRY(expectObject(f));
        TRY(opt(f, "terminal", p.terminal));
        TRY(opt(f, "consoleSize", p.consoleSize));
        TRY(opt(f, "user", p.user));
        TRY(req(f, "args", p.args));
        if (p.args.empty()) return f.get("args")->fail("must not be empty");
        TRY(opt(f, "env", p.env));
        TRY(reqAbsolute(f, "cwd", p.cwd));
        TRY(opt(f, "capabilities", p.capabilities));
        TRY(opt(f, "rlimits", p.rlimits));
        std::set<int> seen;
        for (size_t i = 0; i < p.rlimits.size(); ++i)
            if (!seen.insert(p.rlimits[i].resource).second)
                return failInvalid(f.childPath("rlimits") + "[" + std::to_string(i) + "].type: duplicate rlimit " +
                                   json::quote(p.rlimits[i].type));
        TRY(opt(f, "noNewPrivileges", p.noNewPrivileges));
        TRY(optRange(f, "oomScoreAdj", p.oomScoreAdj, -1000, 1000));
        TRY(opt(f, "apparmorProfile", p.apparmorProfile));
        TRY(opt(f, "selinuxLabel", p.selinuxLabel));
        TRY(opt(f, "ioPriority", p.ioPriority));
        TRY(opt(f, "scheduler", p.scheduler));
        return {};
    }

    static Result<void> read(const Field& f, ConsoleSize& c) {
        TRY(expectObject(f));
        TRY(req(f, "height", c.height));
        TRY(req(f, "width", c.width));
        return {};
    }

    static Result<void> read(const Field& f, User& u) {
        TRY(expectObject(f));
        TRY(req(f, "uid", u.uid));
        TRY(req(f, "gid", u.gid));
        TRY(opt(f, "umask", u.umask));
        TRY(opt(f, "additionalGids", u.additionalGids));
        TRY(opt(f, "username", u.username));
        return {};
    }

    static Result<void> read(const Field& f, Capabilities& c) {
        TRY(expectObject(f));
        for (auto [key, set] : {std::pair{"bounding", &c.bounding}, std::pair{"effective", &c.effective},
                                std::pair{"inheritable", &c.inheritable}, std::pair{"permitted", &c.permitted},
                                std::pair{"ambient", &c.ambient}}) {
            TRY(opt(f, key, *set));
            for (size_t i = 0; i < set->size(); ++i)
                if (!isCapabilityName((*set)[i]))  // the one table: runtime/capabilities.cpp
                    return f.get(key)->element(i).failValue("unknown capability", (*set)[i]);
        }
        return {};
    }

    static Result<void> read(const Field& f, Rlimit& r) {
        TRY(expectObject(f));
        TRY(req(f, "type", r.type));
        auto it = std::find_if(std::begin(kRlimits), std::end(kRlimits), [&](auto& l) { return l.name == r.type; });
        if (it == std::end(kRlimits)) return f.get("type")->failValue("unknown rlimit", r.type);
        r.resource = it->resource;
        TRY(req(f, "soft", r.soft));
        TRY(req(f, "hard", r.hard));
        // setrlimit(2) refuses it with a bare EINVAL; say which entry is wrong.
        if (r.soft > r.hard) return f.fail("soft limit exceeds hard limit");
        return {};
    }

    static Result<void> read(const Field& f, IoPriority& io) {
        TRY(expectObject(f));
        TRY(reqEnum(f, "class", io.ioClass, {"IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"},
                    "I/O priority class"));
        if (!f.get("priority")) return failInvalid(f.childPath("priority") + ": required");
        return optRange(f, "priority", io.priority, 0, 7);  // ioprio_set(2): levels 0 (highest) to 7
    }

    static Result<void> read(const Field& f, Scheduler& s) {
        TRY(expectObject(f));
        TRY(reqEnum(f, "policy", s.policy,
                    {"SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE",
                     "SCHED_DEADLINE"},
                    "scheduler policy"));
        TRY(optRange(f, "nice", s.nice, -20, 19));
        TRY(opt(f, "priority", s.priority));
        TRY(optEnumList(f, "flags", s.flags,
                        {"SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
                         "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
                         "SCHED_FLAG_UTIL_CLAMP_MAX"},
                        "scheduler flag"));
        TRY(opt(f, "runtime", s.runtime));
        TRY(opt(f, "deadline", s.deadline));
        TRY(opt(f, "period", s.period));
        return {};
    }

    // ---- mounts and hooks -------------------------------------------------------

    static Result<void> read(const Field& f, IdMapping& m) {
        TRY(expectObject(f));
        TRY(req(f, "containerID", m.containerID));
        TRY(req(f, "hostID", m.hostID));
        TRY(req(f, "size", m.size));
        return {};
    }

    static Result<void> read(const Field& f, Mount& m) {
        TRY(expectObject(f));
        TRY(req(f, "destination", m.destination));
        if (m.destination.empty()) return f.get("destination")->fail("must not be empty");
        // config.md asks for an absolute destination; runc takes a relative one as
        // relative to the container's root, and so do we.
        if (!isAbsolute(m.destination)) m.destination = "/" + m.destination;
        TRY(opt(f, "type", m.type));
        TRY(opt(f, "source", m.source));
        TRY(opt(f, "options", m.options));
        TRY(opt(f, "uidMappings", m.uidMappings));
        TRY(opt(f, "gidMappings", m.gidMappings));
        return {};
    }

    static Result<void> read(const Field& f, Hook& h) {
        TRY(expectObject(f));
        TRY(reqAbsolute(f, "path", h.path));
        TRY(opt(f, "args", h.args));
        TRY(opt(f, "env", h.env));
        TRY(opt(f, "timeout", h.timeout));
        if (h.timeout && *h.timeout <= 0) return f.get("timeout")->fail("must be greater than zero");
        return {};
    }

    static Result<void> read(const Field& f, Hooks& h) {
        TRY(expectObject(f));
        TRY(opt(f, "prestart", h.prestart));
        TRY(opt(f, "createRuntime", h.createRuntime));
        TRY(opt(f, "createContainer", h.createContainer));
        TRY(opt(f, "startContainer", h.startContainer));
        TRY(opt(f, "poststart", h.poststart));
        TRY(opt(f, "poststop", h.poststop));
        return {};
    }

    // ---- linux ------------------------------------------------------------------

    static Result<void> read(const Field& f, Linux& l) {
        TRY(expectObject(f));
        TRY(opt(f, "namespaces", l.namespaces));
        for (size_t i = 0; i < l.namespaces.size(); ++i)
            for (size_t j = 0; j < i; ++j)
                if (l.namespaces[j].type == l.namespaces[i].type)
                    return f.get("namespaces")->element(i).get("type")->failValue("duplicate namespace type",
                                                                                   namespaceName(l.namespaces[i].type));
        TRY(opt(f, "uidMappings", l.uidMappings));
        TRY(opt(f, "gidMappings", l.gidMappings));
        TRY(opt(f, "timeOffsets", l.timeOffsets));
        for (auto& [clock, off] : l.timeOffsets)
            if (clock != "monotonic" && clock != "boottime")
                return failInvalid(f.childPath("timeOffsets") + "." + clock + ": unknown clock " + json::quote(clock));
        TRY(opt(f, "devices", l.devices));
        TRY(opt(f, "cgroupsPath", l.cgroupsPath));
        TRY(opt(f, "resources", l.resources));
        TRY(optEnum(f, "rootfsPropagation", l.rootfsPropagation,
                    {"shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"},
                    "rootfs propagation"));
        TRY(opt(f, "seccomp", l.seccomp));
        TRY(opt(f, "sysctl", l.sysctl));
        TRY(opt(f, "maskedPaths", l.maskedPaths));
        TRY(opt(f, "readonlyPaths", l.readonlyPaths));
        TRY(opt(f, "mountLabel", l.mountLabel));
        TRY(opt(f, "personality", l.personality));
        return {};
    }

    static Result<void> read(const Field& f, Namespace& n) {
        TRY(expectObject(f));
        std::string type;
        TRY(req(f, "type", type));
        auto it = std::find_if(std::begin(kNamespaces), std::end(kNamespaces), [&](auto& e) { return e.first == type; });
        if (it == std::end(kNamespaces)) return f.get("type")->failValue("unknown namespace type", type);
        n.type = it->second;
        TRY(optAbsolute(f, "path", n.path));
        return {};
    }

    static Result<void> read(const Field& f, TimeOffset& t) {
        TRY(expectObject(f));
        TRY(opt(f, "secs", t.secs));
        TRY(opt(f, "nanosecs", t.nanosecs));
        // /proc/PID/timens_offsets refuses a second's worth of nanoseconds or more.
        if (t.nanosecs >= 1000000000u) return outOfRange(*f.get("nanosecs"), std::to_string(t.nanosecs), 0, 999999999);
        return {};
    }

    static Result<void> read(const Field& f, Device& d) {
        TRY(expectObject(f));
        TRY(reqAbsolute(f, "path", d.path));
        std::string type;
        TRY(req(f, "type", type));
        if (type != "c" && type != "b" && type != "u" && type != "p")
            return f.get("type")->failValue("unknown device type", type);
        d.type = type[0];
        // config-linux.md: major and minor are required unless the type is p (a FIFO).
        if (d.type == 'p') {
            TRY(opt(f, "major", d.major));
            TRY(opt(f, "minor", d.minor));
        } else {
            TRY(req(f, "major", d.major));
            TRY(req(f, "minor", d.minor));
        }
        TRY(opt(f, "fileMode", d.fileMode));
        TRY(opt(f, "uid", d.uid));
        TRY(opt(f, "gid", d.gid));
        return {};
    }

    // Action, architecture, flag and operator names are checked by the seccomp
    // planner, which knows what libseccomp supports; here only the shape.
    static Result<void> read(const Field& f, Seccomp& s) {
        TRY(expectObject(f));
        TRY(req(f, "defaultAction", s.defaultAction));
        TRY(opt(f, "defaultErrnoRet", s.defaultErrnoRet));
        TRY(opt(f, "architectures", s.architectures));
        TRY(opt(f, "flags", s.flags));
        TRY(opt(f, "listenerPath", s.listenerPath));
        TRY(opt(f, "listenerMetadata", s.listenerMetadata));
        TRY(opt(f, "syscalls", s.syscalls));
        return {};
    }
    static Result<void> read(const Field& f, SeccompSyscall& s) {
        TRY(expectObject(f));
        TRY(req(f, "names", s.names));
        TRY(req(f, "action", s.action));
        TRY(opt(f, "errnoRet", s.errnoRet));
        TRY(opt(f, "args", s.args));
        return {};
    }
    static Result<void> read(const Field& f, SeccompArg& a) {
        TRY(expectObject(f));
        TRY(req(f, "index", a.index));
        TRY(req(f, "value", a.value));
        TRY(opt(f, "valueTwo", a.valueTwo));
        TRY(req(f, "op", a.op));
        return {};
    }

    static Result<void> read(const Field& f, Personality& p) {
        TRY(expectObject(f));
        TRY(reqEnum(f, "domain", p.domain, {"LINUX", "LINUX32"}, "personality domain"));
        TRY(opt(f, "flags", p.flags));
        return {};
    }

    // ---- linux.resources --------------------------------------------------------

    static Result<void> read(const Field& f, cgroups::Resources& r) {
        TRY(expectObject(f));
        TRY(opt(f, "devices", r.devices));
        TRY(opt(f, "memory", r.memory));
        TRY(opt(f, "cpu", r.cpu));
        if (auto pids = f.get("pids")) {
            TRY(expectObject(*pids));
            int64_t limit = 0;
            TRY(req(*pids, "limit", limit));
            r.pidsLimit = limit;
        }
        TRY(opt(f, "blockIO", r.blockIO));
        TRY(opt(f, "hugepageLimits", r.hugepageLimits));
        TRY(opt(f, "network", r.network));
        TRY(opt(f, "rdma", r.rdma));
        TRY(opt(f, "unified", r.unified));
        return {};
    }

    static Result<void> read(const Field& f, cgroups::DeviceRule& d) {
        TRY(expectObject(f));
        TRY(req(f, "allow", d.allow));
        TRY(optEnum(f, "type", d.type, {"a", "c", "b"}, "device type"));
        TRY(opt(f, "major", d.major));
        TRY(opt(f, "minor", d.minor));
        TRY(opt(f, "access", d.access));
        if (d.access.find_first_not_of("rwm") != std::string::npos)
            return f.get("access")->fail("invalid access " + json::quote(d.access) + " (expected letters of \"rwm\")");
        return {};
    }

    static Result<void> read(const Field& f, cgroups::MemoryLimits& m) {
        TRY(expectObject(f));
        TRY(opt(f, "limit", m.limit));
        TRY(opt(f, "reservation", m.reservation));
        TRY(opt(f, "swap", m.swap));
        TRY(opt(f, "kernel", m.kernel));
        TRY(opt(f, "kernelTCP", m.kernelTCP));
        TRY(opt(f, "swappiness", m.swappiness));
        TRY(opt(f, "disableOOMKiller", m.disableOOMKiller));
        TRY(opt(f, "useHierarchy", m.useHierarchy));
        TRY(opt(f, "checkBeforeUpdate", m.checkBeforeUpdate));
        return {};
    }

    static Result<void> read(const Field& f, cgroups::CpuLimits& c) {
        TRY(expectObject(f));
        TRY(opt(f, "shares", c.shares));
        TRY(opt(f, "quota", c.quota));
        TRY(opt(f, "burst", c.burst));
        TRY(opt(f, "period", c.period));
        TRY(opt(f, "realtimeRuntime", c.realtimeRuntime));
        TRY(opt(f, "realtimePeriod", c.realtimePeriod));
        TRY(opt(f, "cpus", c.cpus));
        TRY(opt(f, "mems", c.mems));
        TRY(opt(f, "idle", c.idle));
        return {};
    }

    static Result<void> read(const Field& f, cgroups::BlockIoLimits& b) {
        TRY(expectObject(f));
        TRY(opt(f, "weight", b.weight));
        TRY(opt(f, "leafWeight", b.leafWeight));
        TRY(opt(f, "weightDevice", b.weightDevice));
        TRY(opt(f, "throttleReadBpsDevice", b.throttleReadBpsDevice));
        TRY(opt(f, "throttleWriteBpsDevice", b.throttleWriteBpsDevice));
        TRY(opt(f, "throttleReadIOPSDevice", b.throttleReadIOPSDevice));
        TRY(opt(f, "throttleWriteIOPSDevice", b.throttleWriteIOPSDevice));
        return {};
    }
    static Result<void> read(const Field& f, cgroups::WeightDevice& w) {
        TRY(expectObject(f));
        TRY(req(f, "major", w.major));
        TRY(req(f, "minor", w.minor));
        TRY(opt(f, "weight", w.weight));
        TRY(opt(f, "leafWeight", w.leafWeight));
        return {};
    }
    static Result<void> read(const Field& f, cgroups::ThrottleDevice& t) {
        TRY(expectObject(f));
        TRY(req(f, "major", t.major));
        TRY(req(f, "minor", t.minor));
        TRY(req(f, "rate", t.rate));
        return {};
    }

    static Result<void> read(const Field& f, cgroups::HugepageLimit& h) {
        TRY(expectObject(f));
        TRY(req(f, "pageSize", h.pageSize));
        TRY(req(f, "limit", h.limit));
        return {};
    }

    static Result<void> read(const Field& f, cgroups::NetworkLimits& n) {
        TRY(expectObject(f));
        TRY(opt(f, "classID", n.classID));
        TRY(opt(f, "priorities", n.priorities));
        return {};
    }
    static Result<void> read(const Field& f, cgroups::NetworkPriority& p) {
        TRY(expectObject(f));
        TRY(req(f, "name", p.name));
        TRY(req(f, "priority", p.priority));
        return {};
    }

    static Result<void> read(const Field& f, cgroups::RdmaLimit& r) {
        TRY(expectObject(f));
        TRY(opt(f, "hcaHandles", r.hcaHandles));
        TRY(opt(f, "hcaObjects", r.hcaObjects));
        return {};
    }
};

}  // namespace

Result<Spec> parseSpec(std::string_view text) {
    Value doc = TRY(Value::parse(text));
    Spec spec;
    TRY(Reader::read(Field(doc, ""), spec));
    return spec;
}

Result<cgroups::Resources> parseResources(std::string_view text, const std::string& path) {
    Value doc = TRY(Value::parse(text));
    cgroups::Resources r;
    TRY(Reader::read(Field(doc, path), r));
    return r;
}

Result<Spec> loadSpec(const std::string& bundleDir) {
    std::string text = TRY(sys::readFile(sys::joinPath(bundleDir, "config.json")));
    return TRY_CTX("config.json", parseSpec(text));
}

}  // namespace hull::runtime
