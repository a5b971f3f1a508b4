#include "orchestrator/api/messages.hpp"

#include <cassert>
#include <limits>

namespace hull::orchestrator {

namespace wire {

void Io::fail(const std::string& path, const std::string& problem) {
    if (failure_->failed) return;  // the first problem is the one to fix
    failure_->failed = true;
    failure_->message = path.empty() ? problem : path + ": " + problem;
}

int Io::readVersion(const json::Value& j, const char* type, int ours, const std::string& path) {
    if (!j.isObject()) {
        fail(path, "expected an object");
        return 0;
    }
    const json::Value* v = j.find(kVersionKey);
    if (!v) {
        if (j.find("cereal_class_version"))
            fail(path, std::string(type) + " from an older hull (cereal's encoding, with cereal_class_version, not " +
                           kVersionKey + "); upgrade the hull that sent it");
        else
            fail(join(path, kVersionKey), "missing");
        return 0;
    }
    int64_t n = 0;
    uint64_t huge = 0;
    if (!v->toInt64(n)) {
        if (!v->toUint64(huge)) {
            fail(join(path, kVersionKey), "expected an integer");
            return 0;
        }
        n = std::numeric_limits<int64_t>::max();  // above int64: newer than anything we know
    }
    const std::string number = huge ? std::to_string(huge) : std::to_string(n);
    if (n > ours) {
        fail(path, std::string(type) + " version " + number + " is newer than this hull reads (up to " +
                       std::to_string(ours) + "); upgrade hull");
        return 0;
    }
    if (n < kFirstVersion) {
        fail(path, std::string(type) + " version " + number + " is older than this hull reads (" +
                       std::to_string(kFirstVersion) + " and up); upgrade the hull that sent it");
        return 0;
    }
    return int(n);
}

json::Value Io::write(const std::optional<int>& v) { return v ? json::Value(*v) : json::Value(); }

json::Value Io::write(const std::map<std::string, std::string>& v) {
    json::Value out = json::Value::object();
    for (const auto& [key, value] : v) out.set(key, value);
    return out;
}

json::Value Io::write(const Service& v) {
    auto spec = json::Value::parse(serviceJson(v));
    assert(spec);  // our own writer's output
    return spec ? *spec : json::Value();
}

void Io::read(const json::Value& j, std::string& v, const std::string& path) {
    if (!j.isString()) return fail(path, "expected a string");
    v = j.asString();
}

void Io::read(const json::Value& j, bool& v, const std::string& path) {
    if (!j.isBool()) return fail(path, "expected true or false");
    v = j.asBool();
}

void Io::read(const json::Value& j, int64_t& v, const std::string& path) {
    uint64_t u = 0;
    if (!j.toInt64(v)) return fail(path, j.toUint64(u) ? "out of range (a 64-bit integer)" : "expected an integer");
}

void Io::read(const json::Value& j, int& v, const std::string& path) {
    int64_t wide = 0;
    read(j, wide, path);
    if (failure_->failed) return;
    if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max())
        return fail(path, "out of range (a 32-bit integer)");
    v = int(wide);
}

void Io::read(const json::Value& j, double& v, const std::string& path) {
    if (!j.isNumber()) return fail(path, "expected a number");
    v = j.asDouble();
}

void Io::read(const json::Value& j, std::optional<int>& v, const std::string& path) {
    v.reset();
    if (j.isNull()) return;
    if (!j.isNumber()) return fail(path, "expected an integer or null");
    read(j, v.emplace(), path);
}

void Io::read(const json::Value& j, std::map<std::string, std::string>& v, const std::string& path) {
    if (!j.isObject()) return fail(path, "expected an object");
    v.clear();
    for (const auto& [key, value] : j.asObject()) {
        read(value, v[key], join(path, key));
        if (failure_->failed) return;
    }
}

void Io::read(const json::Value& j, Service& v, const std::string& path) {
    if (!j.isObject()) return fail(path, "expected an object");
    auto spec = serviceFromJson(j.dump());
    if (!spec) {
        // "service JSON: resources.requests.cpus: must be a number, not a string": the path within the spec.
        std::string why = spec.error().message();
        const std::string prefix = "service JSON: ";
        if (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
        return fail(path, why);
    }
    v = std::move(*spec);
}

}  // namespace wire

template <class T>
std::string encode(const T& message) {
    json::Value doc = json::Value::object();
    doc.set(T::kName, wire::Io::write(message));
    return doc.dump() + "\n";  // for curl and friends
}

template <class T>
Result<T> decode(const std::string& text) {
    const std::string what = std::string("bad ") + T::kName + " message: ";
    auto doc = json::Value::parse(text);
    if (!doc) return fail(Error::invalid(what + "not JSON: " + doc.error().message()));
    if (!doc->isObject()) return fail(Error::invalid(what + "expected an object, {\"" + T::kName + "\": {...}}"));
    const json::Value* body = doc->find(T::kName);
    if (!body) {
        if (doc->asObject().empty()) return fail(Error::invalid(what + "an empty object, not {\"" + T::kName + "\": ...}"));
        return fail(Error::invalid(what + "its key is \"" + doc->asObject().front().first + "\", not \"" + T::kName + "\""));
    }
    T message;
    if (std::string wrong = wire::Io::readBody(*body, message); !wrong.empty()) return fail(Error::invalid(what + wrong));
    return message;
}

template <class T>
json::Value encodeBody(const T& message) {
    return wire::Io::write(message);
}

template <class T>
Result<T> decodeBody(const json::Value& body) {
    T message;
    if (std::string wrong = wire::Io::readBody(body, message); !wrong.empty())
        return fail(Error::invalid(std::string("bad ") + T::kName + " message: " + wrong));
    return message;
}

#define HULL_WIRE(T)                                  \
    template std::string encode(const T&);            \
    template Result<T> decode(const std::string&);    \
    template json::Value encodeBody(const T&);        \
    template Result<T> decodeBody(const json::Value&);
HULL_WIRE(ErrorReply)
HULL_WIRE(ApplyRequest)
HULL_WIRE(ApplyReply)
HULL_WIRE(ScaleRequest)
HULL_WIRE(ScaleReply)
HULL_WIRE(DeleteReply)
HULL_WIRE(ServiceEntry)
HULL_WIRE(ServiceList)
HULL_WIRE(ContainerEntry)
HULL_WIRE(ContainerList)
HULL_WIRE(Event)
HULL_WIRE(EventList)
HULL_WIRE(Replicas)
HULL_WIRE(PendingReplica)
HULL_WIRE(DescribeReply)
HULL_WIRE(NodeEntry)
HULL_WIRE(NodeList)
HULL_WIRE(NodeLabelRequest)
HULL_WIRE(NodeReply)
HULL_WIRE(JoinTokenReply)
HULL_WIRE(MasterEntry)
HULL_WIRE(StoreMemberEntry)
HULL_WIRE(AutoscaleView)
HULL_WIRE(ClusterStatus)
HULL_WIRE(StatusReport)
HULL_WIRE(RolloutStatus)
HULL_WIRE(RevisionEntry)
HULL_WIRE(RolloutHistory)
HULL_WIRE(UndoRequest)
#undef HULL_WIRE

// ---- the CLI's JSON ----

namespace {

/// A message's body as it travels, without its version: what scripts read.
template <class T>
json::Value plainJson(const T& m) {
    json::Value v = encodeBody(m);
    json::Value out = json::Value::object();
    for (const auto& [k, x] : v.asObject())
        if (k != wire::kVersionKey) out.set(k, x);
    return out;
}

json::Value specJson(const Service& s) {
    auto v = json::Value::parse(serviceJson(s));
    return v ? *v : json::Value();
}

json::Value containerJson(const ContainerEntry& c) {
    json::Value v = json::Value::object();
    v.set("id", c.id);
    v.set("name", c.name);
    v.set("service", c.service);
    v.set("slot", c.slot);
    v.set("node", c.node);
    v.set("generation", c.generation);
    v.set("incarnation", c.incarnation);
    v.set("restarts", c.restarts);
    v.set("status", c.status);
    if (c.exitCode) v.set("exitCode", *c.exitCode);
    v.set("ready", c.ready);
    v.set("ip", c.ip);
    v.set("started", c.started);
    return v;
}

json::Value eventJson(const Event& e, bool withService) {
    json::Value v = json::Value::object();
    v.set("id", e.id);
    v.set("time", e.time);
    v.set("kind", e.kind);
    if (withService) v.set("service", e.service);
    v.set("container", e.container);
    v.set("message", e.message);
    return v;
}

json::Value labelsJson(const std::map<std::string, std::string>& labels) {
    json::Value v = json::Value::object();
    for (const auto& [key, value] : labels) v.set(key, value);
    return v;
}

}  // namespace

json::Value outputJson(const ServiceList& m) {
    json::Value arr = json::Value::array();
    for (const auto& s : m.services) {
        json::Value v = json::Value::object();
        v.set("name", s.name);
        v.set("generation", s.generation);
        v.set("replicas", s.desired);
        v.set("ready", s.ready);
        if (!s.vip.empty()) v.set("vip", s.vip);
        v.set("spec", specJson(s.spec));
        arr.push(v);
    }
    return arr;
}

json::Value outputJson(const RolloutStatus& m) { return plainJson(m); }

json::Value outputJson(const RolloutHistory& m) {
    json::Value v = json::Value::object();
    v.set("name", m.name);
    json::Value list = json::Value::array();
    for (const auto& r : m.revisions) list.push(plainJson(r));
    v.set("revisions", list);
    return v;
}

json::Value outputJson(const ContainerList& m) {
    json::Value arr = json::Value::array();
    for (const auto& c : m.containers) arr.push(containerJson(c));
    return arr;
}

json::Value outputJson(const EventList& m) {
    json::Value arr = json::Value::array();
    for (const auto& e : m.events) arr.push(eventJson(e, true));
    return arr;
}

json::Value outputJson(const DescribeReply& m) {
    json::Value v = json::Value::object();
    v.set("name", m.name);
    v.set("generation", m.generation);
    v.set("updated", m.updated);
    v.set("spec", specJson(m.spec));
    json::Value replicas = json::Value::object();
    replicas.set("desired", m.replicas.desired);
    replicas.set("ready", m.replicas.ready);
    v.set("replicas", replicas);
    json::Value cs = json::Value::array();
    for (const auto& c : m.containers) cs.push(containerJson(c));
    v.set("containers", cs);
    json::Value pending = json::Value::array();
    for (const auto& p : m.pending) {
        json::Value one = json::Value::object();
        one.set("slot", p.slot);
        one.set("reason", p.reason);
        pending.push(one);
    }
    v.set("pending", pending);
    json::Value evs = json::Value::array();
    for (const auto& e : m.events) evs.push(eventJson(e, false));  // all of one service: no "service"
    v.set("events", evs);
    if (!m.rollout.state.empty()) v.set("rollout", plainJson(m.rollout));
    if (m.autoscale.active) v.set("autoscale", plainJson(m.autoscale));
    return v;
}

json::Value outputJson(const NodeList& m) {
    json::Value arr = json::Value::array();
    for (const auto& n : m.nodes) {
        json::Value v = json::Value::object();
        v.set("name", n.name);
        v.set("status", n.status);
        v.set("address", n.address);
        v.set("labels", labelsJson(n.labels));
        v.set("containers", n.containers);
        v.set("cpus", n.cpus);
        v.set("memory", n.memory);
        arr.push(v);
    }
    return arr;
}

json::Value outputJson(const ClusterStatus& m) {
    json::Value v = json::Value::object();
    json::Value masters = json::Value::array();
    for (const auto& master : m.masters) {
        json::Value one = json::Value::object();
        one.set("name", master.name);
        one.set("address", master.address);
        one.set("role", master.role);
        masters.push(one);
    }
    v.set("masters", masters);
    v.set("leader", m.leader);
    v.set("store", m.store);
    v.set("storeHealth", m.storeHealth);
    json::Value members = json::Value::array();
    for (const auto& s : m.storeMembers) {
        json::Value one = json::Value::object();
        one.set("endpoint", s.endpoint);
        one.set("healthy", s.healthy);
        one.set("leader", s.leader);
        one.set("version", s.version);
        one.set("dbSize", s.dbSize);
        one.set("error", s.error);
        members.push(one);
    }
    v.set("storeMembers", members);
    v.set("nodes", m.nodes);
    v.set("services", m.services);
    return v;
}

}  // namespace hull::orchestrator
