#pragma once
// A declared service: what `hull apply -f FILE` reads and the node agent keeps
// running. A service file is one flat YAML mapping (JSON is accepted too), like
// one compose service:
//
//   name: web
//   image: hull.local/busybox:latest
//   command: ["httpd", "-f", "-p", "80", "-h", "/www"]     # or a string: "httpd -f …" (split like sh words)
//   env: {GREETING: hello}                                 # or a list: ["GREETING=hello"]
//   replicas: 3
//   resources:
//     requests: {cpus: 0.1, memory: 16m}
//     limits:   {cpus: 0.5, memory: 64m, pids: 64}
//   ports: ["8080:80", "5353:53/udp"]
//   publishMode: ingress                                   # a master's: ingress | local | host
//   networks: [front, back]                                # a master's: who may reach whom (default: [default])
//   volumes: ["/srv/www:/www:ro"]
//   restart: always                                        # always | on-failure | never
//   backoff: {initial: 100ms, factor: 2, max: 10s, resetAfter: 30s}
//   probes:
//     liveness:  {http: {port: 80, path: /healthz}, period: 1s, timeout: 500ms, failureThreshold: 3}
//     readiness: {tcp: {port: 80}, period: 500ms, successThreshold: 1}
//     startup:   {exec: ["cat", "/tmp/ready"], period: 200ms, failureThreshold: 30, initialDelay: 0s}
//   maxAge: 1h                                             # the phoenix cycle; absent = never
//   stopGracePeriod: 10s
//   placement:                                             # a master's only; a standalone agent refuses it
//     constraints: ["node.labels.zone == a", "node.name != n3"]
//     spread: node.labels.zone                             # default: node
//     strategy: spread                                     # or binpack
//   update: {parallelism: 1, order: start-first, delay: 0s, monitor: 5s,   # a master's rolling updates
//            failureAction: rollback, maxFailureRatio: 0}
//   failover: {after: 10s}                                 # a master's: how long a silent node's replicas wait
//
// Parsing is strict: an unknown key, a value of the wrong type or out of range
// is an error naming the key and its line and column ("web.yaml:7:3: replicas:
// must not be negative"). Nothing is applied from a file with any error.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sys/error.hpp"

namespace hull::orchestrator {

using Millis = std::chrono::milliseconds;

struct Probe {
    enum class Kind { Exec, Http, Tcp } kind = Kind::Exec;
    std::vector<std::string> exec;  // Kind::Exec: argv run in the container
    std::string path = "/";         // Kind::Http: GET http://<container ip>:<port><path>, 2xx/3xx is success
    uint16_t port = 0;              // Kind::Http, Kind::Tcp
    Millis period{1000}, timeout{1000}, initialDelay{0};
    int successThreshold = 1, failureThreshold = 3;
    bool operator==(const Probe&) const = default;
};

struct Backoff {
    Millis initial{100}, max{10000}, resetAfter{30000};
    double factor = 2.0;
    bool operator==(const Backoff&) const = default;
};

struct Resources {
    double cpus = 0;      // 0: none
    int64_t memory = 0;   // bytes, 0: none
    int64_t pids = 0;     // 0: none
    bool operator==(const Resources&) const = default;
};

/// Where a master may place a service's replicas (core/scheduler.hpp). The
/// model checks only the shape; the master checks the constraint syntax.
struct Placement {
    std::vector<std::string> constraints;  // "node.name == n1", "node.labels.zone != b"
    std::string spread;                    // "" (or "node"): over nodes; "node.labels.KEY": over its values
    std::string strategy = "spread";       // or "binpack"
    bool operator==(const Placement&) const = default;
};

/// How a master rolls a new generation out (a standalone agent refuses it):
/// PARALLELISM slots at a time, each new container started before its old one
/// stops (start-first) or after (stop-first); a slot is updated once its new
/// container has been ready for MONITOR without exiting, then the next batch
/// waits DELAY. A new container that exits, or is not ready within MONITOR
/// (after its startup probe's budget), is a failure; when failures exceed
/// MAXFAILURERATIO of the replicas, FAILUREACTION: rollback (to the previous
/// generation), pause (until the next apply or `hull rollout undo`) or
/// continue.
struct UpdateConfig {
    int parallelism = 1;  // 0: all at once
    enum class Order { StartFirst, StopFirst } order = Order::StartFirst;
    Millis delay{0}, monitor{5000};
    enum class FailureAction { Rollback, Pause, Continue } failureAction = FailureAction::Rollback;
    double maxFailureRatio = 0;
    bool operator==(const UpdateConfig&) const = default;
};

/// When a master moves a service's replicas off a node it lost (a standalone
/// agent refuses it): AFTER the node was last heard from. Unset: the master's
/// defaults (its node grace when the node's connection was closed, its
/// --failover-after when the node went silent, which may be a passing partition).
struct Failover {
    std::optional<Millis> after;
    bool operator==(const Failover&) const = default;
};

/// How a master scales the service with demand (core/autoscaler.hpp; a
/// standalone agent refuses it): between MIN and MAX replicas, so that each
/// ready replica uses about CPU of its CPU limit (or request; a fraction,
/// "60%" in the file) and/or serves about REQUESTSPERSECOND new connections a
/// second. Up once every sample over SCALEUPAFTER calls for it, down once every
/// sample over SCALEDOWNAFTER does; at most STEP replicas a decision (0: any).
/// `replicas` is where it starts.
struct Autoscale {
    int min = 1, max = 1;
    std::optional<double> cpu, requestsPerSecond;
    Millis scaleUpAfter{0}, scaleDownAfter{60000};
    int step = 0;
    bool operator==(const Autoscale&) const = default;
};

struct Service {
    std::string name;   // [a-z0-9][a-z0-9-]{0,62}: becomes part of container names
    std::string image;
    std::vector<std::string> command;  // empty: the image's
    std::vector<std::string> env;      // KEY=VALUE, in the file's order
    int replicas = 1;
    Resources requests, limits;
    std::vector<std::string> ports;    // as `hull run -p`, validated
    /// On a cluster, where PORTS are published and where they lead: ingress
    /// (every node, to any ready replica: the routing mesh, masqueraded when
    /// the replica is on another node), local (every node, to its own ready
    /// replicas when it has any, else as ingress), host (only nodes that run a
    /// ready replica, to those: the client's address reaches the replica).
    enum class PublishMode { Ingress, Local, Host } publishMode = PublishMode::Ingress;
    /// On a cluster, the networks its containers are on: containers reach each
    /// other (by address, VIP or name) only when they share one. Empty: the
    /// default network, "default" (networksOf). Names as service names, no repeats.
    std::vector<std::string> networks;
    std::vector<std::string> volumes;  // as `hull run -v`, validated
    enum class Restart { Always, OnFailure, Never } restart = Restart::Always;
    Backoff backoff;
    std::optional<Probe> liveness, readiness, startup;
    std::optional<Millis> maxAge;
    Millis stopGracePeriod{10000};
    Placement placement;
    UpdateConfig update;
    Failover failover;
    std::optional<Autoscale> autoscale;
    bool operator==(const Service&) const = default;
};

/// Parse a service file's text (YAML; JSON is YAML). SOURCE names the file in errors.
[[nodiscard]] Result<Service> parseService(const std::string& text, const std::string& source = "<input>");

/// The version of the canonical JSON, written in it as "version". Bump it when
/// a field changes meaning, or is added with a meaning an older hull must not
/// miss; a hull refuses a spec of a version newer than its own.
inline constexpr int kServiceSpecVersion = 1;

/// Canonical JSON of a service (what the stores keep; stable field order, so
/// "re-applying the same file changes nothing" is a string compare): every
/// field, defaults too, "version" first.
std::string serviceJson(const Service& s);
/// And back. A missing field keeps its default (a spec an older hull wrote, or
/// one from before "version", which counts as 1); a version newer than
/// kServiceSpecVersion, a field this hull does not know, a wrong type or range
/// is an error naming it ("service JSON: version 2 is newer than this hull
/// reads (up to 1); upgrade hull").
[[nodiscard]] Result<Service> serviceFromJson(const std::string& json);
/// As much of a stored spec as can be read, for display only (`hull describe`
/// of a spec serviceFromJson refuses): the version and unknown fields are not
/// checked, a field that cannot be read keeps its default, and the name is NAME.
Service serviceFromJsonLenient(const std::string& json, const std::string& name);

/// A and B differ at most in replicas, placement, update, failover and autoscale: the same containers (the node agent's
/// generation, which containers are compared against, changes only when not).
bool sameTemplate(const Service& a, const Service& b);

/// A host port of A that B publishes too ("8080/tcp"), or "": the same
/// protocol and port, on the same host address or on every address. Two
/// services cannot share one (on a cluster, every node publishes both).
std::string portClash(const Service& a, const Service& b);

/// The words a service file uses: "always", "on-failure", "never"; "exec", "http", "tcp".
const char* restartName(Service::Restart r);
const char* probeCheckName(Probe::Kind k);
/// "start-first", "stop-first"; "rollback", "pause", "continue".
const char* orderName(UpdateConfig::Order o);
const char* failureActionName(UpdateConfig::FailureAction a);
/// "ingress", "local", "host".
const char* publishModeName(Service::PublishMode m);
/// The networks S is on: its own, or the default network when it names none.
std::vector<std::string> networksOf(const Service& s);
inline constexpr const char* kDefaultNetwork = "default";
inline constexpr size_t kMaxNetworks = 16;  // per service

/// "100ms", "1s", "1.5s", "2m", "1h" -> milliseconds; nullopt otherwise.
std::optional<Millis> parseDuration(const std::string& s);
/// "64m", "1g", "512k", "1048576" -> bytes; nullopt otherwise.
std::optional<int64_t> parseBytes(const std::string& s);

}  // namespace hull::orchestrator
