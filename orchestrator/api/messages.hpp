#pragma once
// The node agent's API messages: every request and reply of /v1, as plain
// structs serialised with cereal. The master will speak the same messages.
//
// On the wire: cereal's JSON archive (curl can read it), one message per body,
// under its type's name, each class with the version cereal writes beside its
// fields, and the API's version in the URL (/v1/...):
//
//   {"ApplyReply": {"cereal_class_version": 1, "name": "web", "generation": 3}}
//
// Changing a message: bump its version, and in serialize() read a new field
// only from the versions that write it (fields are found by name, and a missing
// one is an error). A version newer than ours is refused: its fields may mean
// what we cannot know.
//
// cereal reports errors by throwing; encode() and decode() are the only ways in
// and out, and no exception leaves them (decode() returns an Error naming the
// message, the field and the problem).
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "orchestrator/model/service.hpp"
#include "sys/error.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator {

/// The message in TEXT (cereal JSON): a clear Error for anything else (not
/// JSON, another message, a missing field, a wrong type, a version newer than ours).
template <class T>
[[nodiscard]] Result<T> decode(const std::string& text);
/// MESSAGE as cereal JSON.
template <class T>
std::string encode(const T& message);

namespace wire {

/// The fields being read, innermost last; on a failure the innermost one still
/// unwinding records the whole path ("containers.exitCode"), for decode()'s error.
class Trail {
public:
    explicit Trail(const char* field) { stack_.push_back(field); }
    ~Trail() {
        if (std::uncaught_exceptions() > exceptions_ && failedAt_.empty())
            for (const char* f : stack_) failedAt_ += (failedAt_.empty() ? "" : ".") + std::string(f);
        stack_.pop_back();
    }
    Trail(const Trail&) = delete;
    Trail& operator=(const Trail&) = delete;
    static void reset() { failedAt_.clear(); }
    static const std::string& failedAt() { return failedAt_; }

private:
    int exceptions_ = std::uncaught_exceptions();
    static inline thread_local std::vector<const char*> stack_;
    static inline thread_local std::string failedAt_;
};

/// ar(nvp) for each name-value pair, each on the trail.
template <class Archive, class... Nvps>
void fields(Archive& ar, Nvps&&... nvps) {
    auto one = [&ar](auto&& nvp) {
        Trail t(nvp.name);
        ar(std::forward<decltype(nvp)>(nvp));
    };
    (one(std::forward<Nvps>(nvps)), ...);
}

/// The versions of the spec's classes (service.hpp's structs know nothing of cereal).
inline constexpr std::uint32_t kResourcesVersion = 1, kBackoffVersion = 1, kProbeVersion = 1, kServiceVersion = 1;

/// Throws (caught by decode()) when VERSION, as read, is newer than OURS.
void checkVersion(std::uint32_t version, std::uint32_t ours, const char* type);
/// The enums as a service file spells them; throw for an unknown word.
Service::Restart restartFrom(const std::string& word);
Probe::Kind probeCheckFrom(const std::string& word);

}  // namespace wire

/// Any answer other than 200 (and /metrics): 400 bad request or message, 404, 500.
struct ErrorReply {
    static constexpr const char* kName = "ErrorReply";
    static constexpr std::uint32_t kVersion = 1;
    std::string message;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(message));
    }
};

/// POST /v1/services: a service file, parsed by the agent (errors name SOURCE's lines).
struct ApplyRequest {
    static constexpr const char* kName = "ApplyRequest";
    static constexpr std::uint32_t kVersion = 1;
    std::string source;  // the file's name
    std::string text;    // YAML or JSON
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(source), CEREAL_NVP(text));
    }
};

struct ApplyReply {
    static constexpr const char* kName = "ApplyReply";
    static constexpr std::uint32_t kVersion = 1;
    std::string name;
    int64_t generation = 0;  // unchanged when the same spec was applied again
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(name), CEREAL_NVP(generation));
    }
};

/// POST /v1/services/NAME/scale.
struct ScaleRequest {
    static constexpr const char* kName = "ScaleRequest";
    static constexpr std::uint32_t kVersion = 1;
    int64_t replicas = 0;  // 0 to 1000
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(replicas));
    }
};

struct ScaleReply {
    static constexpr const char* kName = "ScaleReply";
    static constexpr std::uint32_t kVersion = 1;
    std::string name;
    int64_t generation = 0;
    int64_t replicas = 0;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(name), CEREAL_NVP(generation), CEREAL_NVP(replicas));
    }
};

/// DELETE /v1/services/NAME.
struct DeleteReply {
    static constexpr const char* kName = "DeleteReply";
    static constexpr std::uint32_t kVersion = 1;
    std::string name;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(name));
    }
};

struct ServiceEntry {
    static constexpr const char* kName = "ServiceEntry";
    static constexpr std::uint32_t kVersion = 1;
    std::string name;
    int64_t generation = 0;
    Service spec;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(name), CEREAL_NVP(generation), CEREAL_NVP(spec));
    }
};

/// GET /v1/services.
struct ServiceList {
    static constexpr const char* kName = "ServiceList";
    static constexpr std::uint32_t kVersion = 1;
    std::vector<ServiceEntry> services;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(services));
    }
};

/// A container of a declared service, as the loop last saw it.
struct ContainerEntry {
    static constexpr const char* kName = "ContainerEntry";
    static constexpr std::uint32_t kVersion = 1;
    std::string id, name, service;
    int slot = 0;
    int64_t generation = 0;       // of the spec it was started from
    int restarts = 0;             // of its slot, when it was started
    std::string status;           // the engine's, or "stopping" (on its way out, no longer counted)
    std::optional<int> exitCode;  // once it has ended and its monitor recorded the status
    bool ready = false;
    std::string ip;
    int64_t started = 0;  // unix ms
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(id), CEREAL_NVP(name), CEREAL_NVP(service), CEREAL_NVP(slot), CEREAL_NVP(generation),
                     CEREAL_NVP(restarts), CEREAL_NVP(status), CEREAL_NVP(exitCode), CEREAL_NVP(ready), CEREAL_NVP(ip),
                     CEREAL_NVP(started));
    }
};

/// GET /v1/containers.
struct ContainerList {
    static constexpr const char* kName = "ContainerList";
    static constexpr std::uint32_t kVersion = 1;
    std::vector<ContainerEntry> containers;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(containers));
    }
};

struct Event {
    static constexpr const char* kName = "Event";
    static constexpr std::uint32_t kVersion = 1;
    int64_t id = 0;
    int64_t time = 0;  // unix ms
    std::string kind, service, container, message;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(id), CEREAL_NVP(time), CEREAL_NVP(kind), CEREAL_NVP(service), CEREAL_NVP(container),
                     CEREAL_NVP(message));
    }
};

/// GET /v1/events[?since=ID]: oldest first.
struct EventList {
    static constexpr const char* kName = "EventList";
    static constexpr std::uint32_t kVersion = 1;
    std::vector<Event> events;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(events));
    }
};

struct Replicas {
    static constexpr const char* kName = "Replicas";
    static constexpr std::uint32_t kVersion = 1;
    int64_t desired = 0, ready = 0;
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(desired), CEREAL_NVP(ready));
    }
};

/// GET /v1/services/NAME (`hull describe`).
struct DescribeReply {
    static constexpr const char* kName = "DescribeReply";
    static constexpr std::uint32_t kVersion = 1;
    std::string name;
    int64_t generation = 0;
    int64_t updated = 0;  // unix ms of the last apply that changed it
    Service spec;
    Replicas replicas;
    std::vector<ContainerEntry> containers;
    std::vector<Event> events;  // its last ones, oldest first
    template <class Archive>
    void serialize(Archive& ar, std::uint32_t version) {
        wire::checkVersion(version, kVersion, kName);
        wire::fields(ar, CEREAL_NVP(name), CEREAL_NVP(generation), CEREAL_NVP(updated), CEREAL_NVP(spec),
                     CEREAL_NVP(replicas), CEREAL_NVP(containers), CEREAL_NVP(events));
    }
};

// What `hull get|events|describe --output json` print: the API's JSON from
// before its messages were cereal's, field for field (scripts read it with jq).
json::Value outputJson(const ServiceList& m);
json::Value outputJson(const ContainerList& m);
json::Value outputJson(const EventList& m);
json::Value outputJson(const DescribeReply& m);

}  // namespace hull::orchestrator

// The service spec travels as its own classes, written beside service.hpp's
// structs (which know nothing of cereal): durations in milliseconds, the
// enums as a service file spells them.
namespace cereal {

template <class Archive>
void save(Archive& ar, const hull::orchestrator::Resources& r, std::uint32_t) {
    hull::orchestrator::wire::fields(ar, make_nvp("cpus", r.cpus), make_nvp("memory", r.memory), make_nvp("pids", r.pids));
}
template <class Archive>
void load(Archive& ar, hull::orchestrator::Resources& r, std::uint32_t version) {
    hull::orchestrator::wire::checkVersion(version, hull::orchestrator::wire::kResourcesVersion, "Resources");
    hull::orchestrator::wire::fields(ar, make_nvp("cpus", r.cpus), make_nvp("memory", r.memory), make_nvp("pids", r.pids));
}

template <class Archive>
void save(Archive& ar, const hull::orchestrator::Backoff& b, std::uint32_t) {
    hull::orchestrator::wire::fields(ar, make_nvp("initial", int64_t(b.initial.count())), make_nvp("factor", b.factor),
                                     make_nvp("max", int64_t(b.max.count())),
                                     make_nvp("resetAfter", int64_t(b.resetAfter.count())));
}
template <class Archive>
void load(Archive& ar, hull::orchestrator::Backoff& b, std::uint32_t version) {
    hull::orchestrator::wire::checkVersion(version, hull::orchestrator::wire::kBackoffVersion, "Backoff");
    int64_t initial = 0, max = 0, resetAfter = 0;
    hull::orchestrator::wire::fields(ar, make_nvp("initial", initial), make_nvp("factor", b.factor), make_nvp("max", max),
                                     make_nvp("resetAfter", resetAfter));
    b.initial = hull::orchestrator::Millis(initial);
    b.max = hull::orchestrator::Millis(max);
    b.resetAfter = hull::orchestrator::Millis(resetAfter);
}

template <class Archive>
void save(Archive& ar, const hull::orchestrator::Probe& p, std::uint32_t) {
    hull::orchestrator::wire::fields(
        ar, make_nvp("kind", std::string(hull::orchestrator::probeCheckName(p.kind))), make_nvp("exec", p.exec),
        make_nvp("path", p.path), make_nvp("port", int(p.port)), make_nvp("period", int64_t(p.period.count())),
        make_nvp("timeout", int64_t(p.timeout.count())), make_nvp("initialDelay", int64_t(p.initialDelay.count())),
        make_nvp("successThreshold", p.successThreshold), make_nvp("failureThreshold", p.failureThreshold));
}
template <class Archive>
void load(Archive& ar, hull::orchestrator::Probe& p, std::uint32_t version) {
    namespace o = hull::orchestrator;
    o::wire::checkVersion(version, o::wire::kProbeVersion, "Probe");
    std::string kind;
    int port = 0;
    int64_t period = 0, timeout = 0, initialDelay = 0;
    o::wire::fields(ar, make_nvp("kind", kind), make_nvp("exec", p.exec), make_nvp("path", p.path), make_nvp("port", port),
                    make_nvp("period", period), make_nvp("timeout", timeout), make_nvp("initialDelay", initialDelay),
                    make_nvp("successThreshold", p.successThreshold), make_nvp("failureThreshold", p.failureThreshold));
    {
        o::wire::Trail t("kind");
        p.kind = o::wire::probeCheckFrom(kind);
    }
    if (port < 0 || port > 65535) {
        o::wire::Trail t("port");
        throw Exception("out of range: " + std::to_string(port));
    }
    p.port = uint16_t(port);
    p.period = o::Millis(period);
    p.timeout = o::Millis(timeout);
    p.initialDelay = o::Millis(initialDelay);
}

template <class Archive>
void save(Archive& ar, const hull::orchestrator::Service& s, std::uint32_t) {
    std::optional<int64_t> maxAge;
    if (s.maxAge) maxAge = s.maxAge->count();
    hull::orchestrator::wire::fields(
        ar, make_nvp("name", s.name), make_nvp("image", s.image), make_nvp("command", s.command), make_nvp("env", s.env),
        make_nvp("replicas", s.replicas), make_nvp("requests", s.requests), make_nvp("limits", s.limits),
        make_nvp("ports", s.ports), make_nvp("volumes", s.volumes),
        make_nvp("restart", std::string(hull::orchestrator::restartName(s.restart))), make_nvp("backoff", s.backoff),
        make_nvp("liveness", s.liveness), make_nvp("readiness", s.readiness), make_nvp("startup", s.startup),
        make_nvp("maxAge", maxAge), make_nvp("stopGracePeriod", int64_t(s.stopGracePeriod.count())));
}
template <class Archive>
void load(Archive& ar, hull::orchestrator::Service& s, std::uint32_t version) {
    namespace o = hull::orchestrator;
    o::wire::checkVersion(version, o::wire::kServiceVersion, "Service");
    std::string restart;
    std::optional<int64_t> maxAge;
    int64_t stopGracePeriod = 0;
    o::wire::fields(ar, make_nvp("name", s.name), make_nvp("image", s.image), make_nvp("command", s.command),
                    make_nvp("env", s.env), make_nvp("replicas", s.replicas), make_nvp("requests", s.requests),
                    make_nvp("limits", s.limits), make_nvp("ports", s.ports), make_nvp("volumes", s.volumes),
                    make_nvp("restart", restart), make_nvp("backoff", s.backoff), make_nvp("liveness", s.liveness),
                    make_nvp("readiness", s.readiness), make_nvp("startup", s.startup), make_nvp("maxAge", maxAge),
                    make_nvp("stopGracePeriod", stopGracePeriod));
    {
        o::wire::Trail t("restart");
        s.restart = o::wire::restartFrom(restart);
    }
    s.maxAge.reset();
    if (maxAge) s.maxAge = o::Millis(*maxAge);
    s.stopGracePeriod = o::Millis(stopGracePeriod);
}

}  // namespace cereal

CEREAL_CLASS_VERSION(hull::orchestrator::Resources, hull::orchestrator::wire::kResourcesVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::Backoff, hull::orchestrator::wire::kBackoffVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::Probe, hull::orchestrator::wire::kProbeVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::Service, hull::orchestrator::wire::kServiceVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ErrorReply, hull::orchestrator::ErrorReply::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ApplyRequest, hull::orchestrator::ApplyRequest::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ApplyReply, hull::orchestrator::ApplyReply::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ScaleRequest, hull::orchestrator::ScaleRequest::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ScaleReply, hull::orchestrator::ScaleReply::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::DeleteReply, hull::orchestrator::DeleteReply::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ServiceEntry, hull::orchestrator::ServiceEntry::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ServiceList, hull::orchestrator::ServiceList::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ContainerEntry, hull::orchestrator::ContainerEntry::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::ContainerList, hull::orchestrator::ContainerList::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::Event, hull::orchestrator::Event::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::EventList, hull::orchestrator::EventList::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::Replicas, hull::orchestrator::Replicas::kVersion)
CEREAL_CLASS_VERSION(hull::orchestrator::DescribeReply, hull::orchestrator::DescribeReply::kVersion)
