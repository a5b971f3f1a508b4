#pragma once
// The API's messages: every request and reply of /v1, of the node agent and of
// the master, as plain structs written and read with sys/json.
//
// On the wire: JSON (curl and jq read it), one message per body, under its
// type's name, each struct with its schema version beside its fields, and the
// API's version in the URL (/v1/...):
//
//   {"ApplyReply": {"schemaVersion": 2, "name": "web", "generation": 3}}
//
// Each struct lists its fields once, in fields(), which both encode() and
// decode() go through. Every field is written, and a field that is not there is
// an error; fields nobody knows are ignored.
//
// Changing a struct: bump its kVersion, and read a new field only from the
// versions that write it, so that a message from an older hull still decodes:
//
//   if (io.version() >= 3) io.field("zone", zone);  // an older one keeps the default
//
// A version newer than ours is refused (its fields may mean what we cannot
// know). Version 1 was cereal's encoding (with "cereal_class_version"): such a
// body is refused too, naming the hull that sent it as the older one.
//
// decode() never throws and never trusts its input: any text gives the message
// or an Error naming the message, the field's path and the problem
// ("bad DescribeReply message: containers[1].exitCode: expected an integer").
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/model/service.hpp"
#include "sys/error.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator {

/// The message in TEXT: a clear Error for anything else (not JSON, another
/// message, a missing field, a wrong type, a version newer than ours).
template <class T>
[[nodiscard]] Result<T> decode(const std::string& text);
/// MESSAGE as JSON, one line.
template <class T>
std::string encode(const T& message);
/// The message's body alone ({"schemaVersion": 2, ...}, without its name), as
/// one part of a larger document; and back, checked as decode() checks.
template <class T>
json::Value encodeBody(const T& message);
template <class T>
[[nodiscard]] Result<T> decodeBody(const json::Value& body);

namespace wire {

/// Where each struct keeps its version, and the first version of this encoding.
inline constexpr const char* kVersionKey = "schemaVersion";
inline constexpr int kFirstVersion = 2;

class Io;
/// A struct that travels: a name, a version, and its fields.
template <class T>
concept Message = requires(T& m, Io& io) {
    T::kName;
    T::kVersion;
    m.fields(io);
};

/// Writes a struct's fields into a JSON object, or reads them back from one,
/// checking each; the first problem found is kept, with its path, and from then
/// on nothing more is read.
class Io {
public:
    /// The version of the struct at hand: ours when writing, the body's when reading.
    int version() const { return version_; }

    /// field() for each NAME, VALUE pair in turn.
    template <class T, class... More>
    void fields(const char* name, T& value, More&... more) {
        field(name, value);
        if constexpr (sizeof...(more) > 0) fields(more...);
    }

    /// VALUE under NAME: written, or read and checked.
    template <class T>
    void field(const char* name, T& value) {
        if (failure_->failed) return;
        if (out_) {
            out_->set(name, write(value));
            return;
        }
        std::string path = join(path_, name);
        const json::Value* v = in_->find(name);
        if (!v) return fail(path, "missing");
        read(*v, value, path);
    }

    /// M as a JSON object, its version first.
    template <Message T>
    static json::Value write(const T& m) {
        json::Value out = json::Value::object();
        out.set(kVersionKey, T::kVersion);
        Failure unused;
        Io io(&out, nullptr, T::kVersion, "", &unused);
        const_cast<T&>(m).fields(io);  // writing only reads M's fields
        return out;
    }
    /// BODY into M: "" or what is wrong with it ("containers[1].exitCode: expected an integer").
    template <Message T>
    static std::string readBody(const json::Value& body, T& m) {
        Failure failure;
        Io io(nullptr, nullptr, 0, "", &failure);
        io.read(body, m, "");
        return failure.message;
    }

private:
    struct Failure {
        bool failed = false;
        std::string message;
    };
    Io(json::Value* out, const json::Value* in, int version, std::string path, Failure* failure)
        : out_(out), in_(in), version_(version), path_(std::move(path)), failure_(failure) {}

    static std::string join(const std::string& path, const std::string& name) {
        return path.empty() ? name : path + "." + name;
    }
    void fail(const std::string& path, const std::string& problem);

    // The types a field may have: each written, and read back into V or failed at PATH.
    static json::Value write(const std::string& v) { return v; }
    static json::Value write(bool v) { return v; }
    static json::Value write(int v) { return v; }
    static json::Value write(int64_t v) { return v; }
    static json::Value write(double v) { return v; }
    static json::Value write(const std::optional<int>& v);      // null when absent
    static json::Value write(const std::map<std::string, std::string>& v);  // an object of strings
    static json::Value write(const Service& v);  // serviceJson(): one definition of a spec's JSON
    void read(const json::Value& j, std::string& v, const std::string& path);
    void read(const json::Value& j, bool& v, const std::string& path);
    void read(const json::Value& j, int& v, const std::string& path);
    void read(const json::Value& j, int64_t& v, const std::string& path);
    void read(const json::Value& j, double& v, const std::string& path);
    void read(const json::Value& j, std::optional<int>& v, const std::string& path);
    void read(const json::Value& j, std::map<std::string, std::string>& v, const std::string& path);
    void read(const json::Value& j, Service& v, const std::string& path);

    template <class T>
    static json::Value write(const std::vector<T>& v) {
        json::Value out = json::Value::array();
        for (const auto& x : v) out.push(write(x));
        return out;
    }
    template <class T>
    void read(const json::Value& j, std::vector<T>& v, const std::string& path) {
        if (!j.isArray()) return fail(path, "expected an array");
        v.clear();
        for (const auto& x : j.asArray()) {
            std::string at = path + "[" + std::to_string(v.size()) + "]";
            read(x, v.emplace_back(), at);
            if (failure_->failed) return;
        }
    }

    template <Message T>
    void read(const json::Value& j, T& m, const std::string& path) {
        int version = readVersion(j, T::kName, T::kVersion, path);
        if (version == 0) return;
        Io io(nullptr, &j, version, path, failure_);
        m.fields(io);
    }
    /// J's version, checked against OURS for TYPE; 0 when failed.
    int readVersion(const json::Value& j, const char* type, int ours, const std::string& path);

    json::Value* out_;       // writing
    const json::Value* in_;  // reading
    int version_;
    std::string path_;  // of the struct at hand, "" at the top
    Failure* failure_;
};

}  // namespace wire

/// Any answer other than 200 (and /metrics): 400 bad request or message, 401, 403, 404, 500.
struct ErrorReply {
    static constexpr const char* kName = "ErrorReply";
    static constexpr int kVersion = 2;
    std::string message;
    void fields(wire::Io& io) { io.fields("message", message); }
};

/// POST /v1/services: a service file, parsed by the agent (errors name SOURCE's lines).
struct ApplyRequest {
    static constexpr const char* kName = "ApplyRequest";
    static constexpr int kVersion = 2;
    std::string source;  // the file's name
    std::string text;    // YAML or JSON
    void fields(wire::Io& io) { io.fields("source", source, "text", text); }
};

struct ApplyReply {
    static constexpr const char* kName = "ApplyReply";
    static constexpr int kVersion = 2;
    std::string name;
    int64_t generation = 0;  // unchanged when the same spec was applied again
    void fields(wire::Io& io) { io.fields("name", name, "generation", generation); }
};

/// POST /v1/services/NAME/scale.
struct ScaleRequest {
    static constexpr const char* kName = "ScaleRequest";
    static constexpr int kVersion = 2;
    int64_t replicas = 0;  // 0 to 1000
    void fields(wire::Io& io) { io.fields("replicas", replicas); }
};

struct ScaleReply {
    static constexpr const char* kName = "ScaleReply";
    static constexpr int kVersion = 2;
    std::string name;
    int64_t generation = 0;
    int64_t replicas = 0;
    void fields(wire::Io& io) { io.fields("name", name, "generation", generation, "replicas", replicas); }
};

/// DELETE /v1/services/NAME.
struct DeleteReply {
    static constexpr const char* kName = "DeleteReply";
    static constexpr int kVersion = 2;
    std::string name;
    void fields(wire::Io& io) { io.fields("name", name); }
};

/// The spec travels as serviceJson() writes it (durations in milliseconds, the
/// enums as a service file spells them).
struct ServiceEntry {
    static constexpr const char* kName = "ServiceEntry";
    static constexpr int kVersion = 3;
    std::string name;
    int64_t generation = 0;
    Service spec;
    int64_t ready = 0;    // containers of this generation that are ready
    int64_t desired = 0;  // the replicas it should have
    std::string vip;      // a master's: its virtual IP ("" on a standalone agent); since 3
    void fields(wire::Io& io) {
        io.fields("name", name, "generation", generation, "spec", spec, "ready", ready, "desired", desired);
        if (io.version() >= 3) io.field("vip", vip);
    }
};

/// GET /v1/services.
struct ServiceList {
    static constexpr const char* kName = "ServiceList";
    static constexpr int kVersion = 2;
    std::vector<ServiceEntry> services;
    void fields(wire::Io& io) { io.fields("services", services); }
};

/// A container of a declared service, as the loop last saw it.
struct ContainerEntry {
    static constexpr const char* kName = "ContainerEntry";
    static constexpr int kVersion = 3;
    std::string id, name, service;
    int slot = 0;
    std::string node;             // the node it runs on; "" on a standalone agent
    int64_t generation = 0;       // of the spec it was started from
    int64_t incarnation = 0;      // of its slot, as the master asked (a fresh copy of the same generation); since 3
    int restarts = 0;             // of its slot, when it was started
    std::string status;           // the engine's, or "stopping" (on its way out, no longer counted)
    std::optional<int> exitCode;  // once it has ended and its monitor recorded the status
    bool ready = false;
    std::string ip;
    int64_t started = 0;  // unix ms
    void fields(wire::Io& io) {
        io.fields("id", id, "name", name, "service", service, "slot", slot, "node", node, "generation", generation,
                  "restarts", restarts, "status", status, "exitCode", exitCode, "ready", ready, "ip", ip, "started",
                  started);
        if (io.version() >= 3) io.field("incarnation", incarnation);  // an older one's: 0
    }
    bool operator==(const ContainerEntry&) const = default;
};

/// GET /v1/containers.
struct ContainerList {
    static constexpr const char* kName = "ContainerList";
    static constexpr int kVersion = 2;
    std::vector<ContainerEntry> containers;
    void fields(wire::Io& io) { io.fields("containers", containers); }
};

/// A node's containers, over its session to the master ({"type": "status",
/// "report": {...}}): every one on a new session (full), then only those whose
/// entry changed and the ids of those gone. The session is ordered and a new
/// one starts with a full report, so the master's copy never drifts.
struct StatusReport {
    static constexpr const char* kName = "StatusReport";
    static constexpr int kVersion = 2;
    bool full = true;
    std::vector<ContainerEntry> containers;  // full: all; else the new and the changed
    std::vector<std::string> gone;           // ids no longer there (never with full)
    void fields(wire::Io& io) { io.fields("full", full, "containers", containers, "gone", gone); }
};

struct Event {
    static constexpr const char* kName = "Event";
    static constexpr int kVersion = 2;
    int64_t id = 0;
    int64_t time = 0;  // unix ms
    std::string kind, service, container, message;
    void fields(wire::Io& io) {
        io.fields("id", id, "time", time, "kind", kind, "service", service, "container", container, "message",
                  message);
    }
};

/// GET /v1/events[?since=ID]: oldest first.
struct EventList {
    static constexpr const char* kName = "EventList";
    static constexpr int kVersion = 2;
    std::vector<Event> events;
    void fields(wire::Io& io) { io.fields("events", events); }
};

struct Replicas {
    static constexpr const char* kName = "Replicas";
    static constexpr int kVersion = 2;
    int64_t desired = 0, ready = 0;
    void fields(wire::Io& io) { io.fields("desired", desired, "ready", ready); }
};

/// A replica the master could not place, and why ("no node matches node.labels.zone == a").
struct PendingReplica {
    static constexpr const char* kName = "PendingReplica";
    static constexpr int kVersion = 2;
    int slot = 0;
    std::string reason;
    void fields(wire::Io& io) { io.fields("slot", slot, "reason", reason); }
};

/// GET /v1/services/NAME/rollout (`hull rollout status`, `hull apply --wait`),
/// POST /v1/services/NAME/undo's answer.
struct RolloutStatus {
    static constexpr const char* kName = "RolloutStatus";
    static constexpr int kVersion = 2;
    std::string name;
    int64_t generation = 0;  // the service's now
    std::string state;       // "updating", "paused", "completed", "rolled-back"; "" before any rollout
    int64_t from = 0, to = 0;
    int64_t started = 0, finished = 0;  // unix ms
    int64_t failures = 0;
    std::string reason;
    int64_t desired = 0;
    int64_t ready = 0;    // slots with a ready replica, of any generation
    int64_t updated = 0;  // slots whose own replica runs the current generation and is ready
    void fields(wire::Io& io) {
        io.fields("name", name, "generation", generation, "state", state, "from", from, "to", to, "started", started,
                  "finished", finished, "failures", failures, "reason", reason, "desired", desired, "ready", ready,
                  "updated", updated);
    }
};

/// GET /v1/services/NAME (`hull describe`).
/// An autoscaled service's state on the master (`hull describe`).
struct AutoscaleView {
    static constexpr const char* kName = "AutoscaleView";
    static constexpr int kVersion = 2;
    bool active = false;    // the service is autoscaled
    double cpu = -1;        // the last sample's mean CPU of the ready replicas, of their limit (-1: none)
    double rps = -1;        // the last sample's new connections per second (-1: none)
    int64_t ready = 0;      // the last sample's ready replicas
    int64_t desired = 0;    // what the last decision called for
    std::string decision;   // its reason
    std::string lastChange;  // the last change's reason ("" : none since the master started)
    int64_t lastChangeAgoMs = -1;
    void fields(wire::Io& io) {
        io.fields("active", active, "cpu", cpu, "rps", rps, "ready", ready, "desired", desired, "decision", decision,
                  "lastChange", lastChange, "lastChangeAgoMs", lastChangeAgoMs);
    }
};

struct DescribeReply {
    static constexpr const char* kName = "DescribeReply";
    static constexpr int kVersion = 4;
    std::string name;
    int64_t generation = 0;
    int64_t updated = 0;  // unix ms of the last apply that changed it
    Service spec;
    Replicas replicas;
    std::vector<ContainerEntry> containers;
    std::vector<PendingReplica> pending;  // none on a standalone agent
    std::vector<Event> events;            // its last ones, oldest first
    RolloutStatus rollout;  // a master's: its last rollout (state "": none, or a standalone agent's)
    AutoscaleView autoscale;  // a master's, for an autoscaled service
    void fields(wire::Io& io) {
        io.fields("name", name, "generation", generation, "updated", updated, "spec", spec, "replicas", replicas,
                  "containers", containers, "pending", pending, "events", events);
        if (io.version() >= 3) io.field("rollout", rollout);
        if (io.version() >= 4) io.field("autoscale", autoscale);
    }
};

// ---- the cluster (the master's API) ----

/// One generation in GET /v1/services/NAME/history.
struct RevisionEntry {
    static constexpr const char* kName = "RevisionEntry";
    static constexpr int kVersion = 2;
    int64_t generation = 0;
    int64_t applied = 0;  // unix ms
    std::string cause;    // "apply", "undo", "rollback"
    std::string outcome;  // of the rollout to it
    std::string reason;
    std::string image;
    bool current = false;
    void fields(wire::Io& io) {
        io.fields("generation", generation, "applied", applied, "cause", cause, "outcome", outcome, "reason", reason,
                  "image", image, "current", current);
    }
};

struct RolloutHistory {
    static constexpr const char* kName = "RolloutHistory";
    static constexpr int kVersion = 2;
    std::string name;
    std::vector<RevisionEntry> revisions;  // oldest first
    void fields(wire::Io& io) { io.fields("name", name, "revisions", revisions); }
};

/// POST /v1/services/NAME/undo (`hull rollout undo`): 0 is the generation before the current one.
struct UndoRequest {
    static constexpr const char* kName = "UndoRequest";
    static constexpr int kVersion = 2;
    int64_t toGeneration = 0;
    void fields(wire::Io& io) { io.fields("toGeneration", toGeneration); }
};

/// A node as the master sees it.
struct NodeEntry {
    static constexpr const char* kName = "NodeEntry";
    static constexpr int kVersion = 2;
    std::string name;
    std::string status;  // "ready", "down" (missed its heartbeats) or "drained"
    std::string address;
    std::map<std::string, std::string> labels;
    int64_t containers = 0;  // placed on it
    double cpus = 0;
    int64_t memory = 0;    // bytes
    std::string version;   // the agent's hull version
    int64_t lastSeen = 0;  // unix ms of its last heartbeat
    void fields(wire::Io& io) {
        io.fields("name", name, "status", status, "address", address, "labels", labels, "containers", containers,
                  "cpus", cpus, "memory", memory, "version", version, "lastSeen", lastSeen);
    }
};

/// GET /v1/nodes.
struct NodeList {
    static constexpr const char* kName = "NodeList";
    static constexpr int kVersion = 2;
    std::vector<NodeEntry> nodes;
    void fields(wire::Io& io) { io.fields("nodes", nodes); }
};

/// POST /v1/nodes/NAME/labels: labels to set (or change) and to remove.
struct NodeLabelRequest {
    static constexpr const char* kName = "NodeLabelRequest";
    static constexpr int kVersion = 2;
    std::map<std::string, std::string> set;
    std::vector<std::string> remove;
    void fields(wire::Io& io) { io.fields("set", set, "remove", remove); }
};

/// The node after POST /v1/nodes/NAME/drain, /activate or /labels.
struct NodeReply {
    static constexpr const char* kName = "NodeReply";
    static constexpr int kVersion = 2;
    NodeEntry node;
    void fields(wire::Io& io) { io.fields("node", node); }
};

/// GET (or POST, to rotate) /v1/cluster/join-token.
struct JoinTokenReply {
    static constexpr const char* kName = "JoinTokenReply";
    static constexpr int kVersion = 2;
    std::string token;  // HULL1.<sha256 of the CA certificate>.<secret>
    void fields(wire::Io& io) { io.fields("token", token); }
};

struct MasterEntry {
    static constexpr const char* kName = "MasterEntry";
    static constexpr int kVersion = 2;
    std::string name, address;
    std::string role;  // "leader" or "standby"
    void fields(wire::Io& io) { io.fields("name", name, "address", address, "role", role); }
};

/// One member of the master's store (etcd), as the leader sees it.
struct StoreMemberEntry {
    static constexpr const char* kName = "StoreMemberEntry";
    static constexpr int kVersion = 2;
    std::string endpoint;
    bool healthy = false, leader = false;
    std::string version;
    int64_t dbSize = 0;
    std::string error;
    void fields(wire::Io& io) {
        io.fields("endpoint", endpoint, "healthy", healthy, "leader", leader, "version", version, "dbSize", dbSize, "error",
                  error);
    }
};

/// GET /v1/cluster (`hull cluster status`).
struct ClusterStatus {
    static constexpr const char* kName = "ClusterStatus";
    static constexpr int kVersion = 3;
    std::vector<MasterEntry> masters;  // on etcd: every master whose lease is alive, the leader first
    std::string leader;                // a master's name
    std::string store;                 // "sqlite:/var/lib/hull/master/state.db", "etcd://10.250.0.1:2379,..."
    std::string storeHealth;           // "healthy", or what is wrong ("2 of 3 etcd members answer")
    std::vector<StoreMemberEntry> storeMembers;  // etcd's members, each asked now; none on SQLite
    int64_t nodes = 0, services = 0;
    void fields(wire::Io& io) {
        io.fields("masters", masters, "leader", leader, "store", store, "nodes", nodes, "services", services);
        if (io.version() >= 3) io.fields("storeHealth", storeHealth, "storeMembers", storeMembers);
    }
};

// What `hull get|events|describe|node ls|cluster status --output json` print
// (scripts read it with jq): plain arrays and objects, no versions. The service,
// container and event fields are the API's JSON from before its messages were
// versioned, field for field, with the cluster's fields added.
json::Value outputJson(const ServiceList& m);
json::Value outputJson(const ContainerList& m);
json::Value outputJson(const EventList& m);
json::Value outputJson(const DescribeReply& m);
json::Value outputJson(const NodeList& m);
json::Value outputJson(const ClusterStatus& m);
json::Value outputJson(const RolloutStatus& m);
json::Value outputJson(const RolloutHistory& m);

}  // namespace hull::orchestrator
