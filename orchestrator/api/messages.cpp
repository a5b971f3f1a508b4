#include "orchestrator/api/messages.hpp"

#include <sstream>

#include <cereal/archives/json.hpp>

namespace hull::orchestrator {

namespace wire {

void checkVersion(std::uint32_t version, std::uint32_t ours, const char* type) {
    if (version > ours)
        throw cereal::Exception(std::string(type) + " version " + std::to_string(version) +
                                " is newer than this hull reads (up to " + std::to_string(ours) + "); upgrade hull");
}

Service::Restart restartFrom(const std::string& word) {
    for (auto r : {Service::Restart::Always, Service::Restart::OnFailure, Service::Restart::Never})
        if (word == restartName(r)) return r;
    throw cereal::Exception("unknown \"" + word + "\" (always, on-failure or never)");
}

Probe::Kind probeCheckFrom(const std::string& word) {
    for (auto k : {Probe::Kind::Exec, Probe::Kind::Http, Probe::Kind::Tcp})
        if (word == probeCheckName(k)) return k;
    throw cereal::Exception("unknown \"" + word + "\" (exec, http or tcp)");
}

}  // namespace wire

namespace {

/// cereal's and rapidjson's words for what went wrong at WHERE (a field path), in ours.
std::string explain(const std::string& where, const std::string& what) {
    const std::string missing = "JSON Parsing failed - provided NVP (";
    if (what.rfind(missing, 0) == 0) {
        std::string field = what.substr(missing.size(), what.find(')', missing.size()) - missing.size());
        if (field == "cereal_class_version") return "no cereal_class_version (an unversioned message)";
        // The field being read is the one missing ("text: missing"), or one cereal reads within it.
        bool itself = where == field || (where.size() > field.size() && where.ends_with("." + field));
        return itself ? "missing" : "missing \"" + field + "\"";
    }
    const std::string assertion = "rapidjson internal assertion failure: ";
    if (what.rfind(assertion, 0) == 0) {
        std::string check = what.substr(assertion.size());
        static const std::pair<const char*, const char*> kExpected[] = {
            {"IsString()", "a string"},
            {"IsBool()", "true or false"},
            {"IsObject()", "an object"},
            {"IsArray()", "an array"},
            {"IsNumber()", "a number"},
            {"data_.f.flags & kIntFlag", "a 32-bit integer"},
            {"data_.f.flags & kUintFlag", "a 32-bit unsigned integer"},
            {"data_.f.flags & kInt64Flag", "an integer"},
            {"data_.f.flags & kUint64Flag", "an unsigned integer"},
        };
        for (const auto& [c, expected] : kExpected)
            if (check == c) return std::string("expected ") + expected;
        return "malformed (" + check + ")";
    }
    return what;
}

}  // namespace

template <class T>
std::string encode(const T& message) {
    std::ostringstream out;
    {
        cereal::JSONOutputArchive ar(out, cereal::JSONOutputArchive::Options::Default());
        ar(cereal::make_nvp(T::kName, message));
    }  // the archive closes its objects when it goes
    out << '\n';  // for curl and friends
    return out.str();
}

template <class T>
Result<T> decode(const std::string& text) {
    const std::string what = std::string("bad ") + T::kName + " message: ";
    // Our parser first: its errors have a line and a column, and rapidjson's
    // (within cereal) would reach us as an assertion on an empty document.
    auto doc = json::Value::parse(text);
    if (!doc) return fail(Error::invalid(what + "not JSON: " + doc.error().message()));
    if (!doc->isObject()) return fail(Error::invalid(what + "expected an object, {\"" + T::kName + "\": {...}}"));
    if (!doc->find(T::kName)) {
        if (doc->asObject().empty()) return fail(Error::invalid(what + "an empty object, not {\"" + T::kName + "\": ...}"));
        return fail(Error::invalid(what + "its key is \"" + doc->asObject().front().first + "\", not \"" + T::kName + "\""));
    }
    T message;
    wire::Trail::reset();
    try {
        std::istringstream in(text);
        cereal::JSONInputArchive ar(in);
        ar(cereal::make_nvp(T::kName, message));
    } catch (const std::exception& e) {
        std::string where = wire::Trail::failedAt();
        return fail(Error::invalid(what + (where.empty() ? "" : where + ": ") + explain(where, e.what())));
    }
    return message;
}

#define HULL_WIRE(T)                         \
    template std::string encode(const T&);   \
    template Result<T> decode(const std::string&);
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
HULL_WIRE(DescribeReply)
#undef HULL_WIRE

// ---- the CLI's JSON ----

namespace {

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
    v.set("generation", c.generation);
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

}  // namespace

json::Value outputJson(const ServiceList& m) {
    json::Value arr = json::Value::array();
    for (const auto& s : m.services) {
        json::Value v = json::Value::object();
        v.set("name", s.name);
        v.set("generation", s.generation);
        v.set("spec", specJson(s.spec));
        arr.push(v);
    }
    return arr;
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
    json::Value evs = json::Value::array();
    for (const auto& e : m.events) evs.push(eventJson(e, false));  // all of one service: no "service"
    v.set("events", evs);
    return v;
}

}  // namespace hull::orchestrator
