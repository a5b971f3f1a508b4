#include "orchestrator/master/records.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "sys/json.hpp"

namespace hull::orchestrator::master {

using json::Value;

namespace {

/// The record's object, its version checked.
Result<Value> open(const std::string& text, const char* what) {
    auto v = json::Value::parse(text);
    if (!v) return fail(std::move(v).error().context(what));
    if (!v->isObject()) return failInvalid(std::string(what) + ": not an object");
    int64_t version = 0;
    if (const Value* ver = v->find("version"); !ver || !ver->toInt64(version) || version < 1)
        return failInvalid(std::string(what) + ": no version");
    if (version > kRecordVersion)
        return failInvalid(std::string(what) + ": version " + std::to_string(version) + " is newer than this hull reads (up to " +
                           std::to_string(kRecordVersion) + "); upgrade hull");
    return std::move(*v);
}

int64_t intOf(const Value& o, const char* key) {
    int64_t n = 0;
    if (const Value* f = o.find(key)) f->toInt64(n);
    return n;
}

}  // namespace

std::string encodeService(const ServiceRecord& r) {
    Value v = Value::object();
    v.set("version", kRecordVersion);
    v.set("generation", r.generation);
    v.set("updated", r.updated);
    v.set("spec", *Value::parse(serviceJson(r.spec)));
    if (r.lastGeneration > r.generation) v.set("lastGeneration", r.lastGeneration);
    if (!r.vip.empty()) v.set("vip", r.vip);
    if (!(r.rollout == RolloutRecord{})) {
        Value o = Value::object();
        o.set("state", r.rollout.state);
        o.set("from", r.rollout.from);
        o.set("to", r.rollout.to);
        o.set("started", r.rollout.started);
        o.set("finished", r.rollout.finished);
        o.set("failures", r.rollout.failures);
        o.set("reason", r.rollout.reason);
        v.set("rollout", o);
    }
    return v.dump();
}

Result<ServiceRecord> decodeService(const std::string& text) {
    Value v = TRY(open(text, "service record"));
    const Value* spec = v.find("spec");
    if (!spec || !spec->isObject()) return failInvalid("service record: no spec");
    ServiceRecord r;
    r.spec = TRY(serviceFromJson(spec->dump()));
    r.generation = intOf(v, "generation");
    r.updated = intOf(v, "updated");
    r.lastGeneration = std::max(r.generation, intOf(v, "lastGeneration"));  // absent in older records
    r.vip = json::stringOf(v, "vip");  // likewise: given one at the next round
    if (const Value* o = v.find("rollout"); o && o->isObject()) {
        r.rollout.state = json::stringOf(*o, "state");
        r.rollout.from = intOf(*o, "from");
        r.rollout.to = intOf(*o, "to");
        r.rollout.started = intOf(*o, "started");
        r.rollout.finished = intOf(*o, "finished");
        r.rollout.failures = intOf(*o, "failures");
        r.rollout.reason = json::stringOf(*o, "reason");
    }
    return r;
}

std::string keys::history(const std::string& service, int64_t generation) {
    char gen[24];
    std::snprintf(gen, sizeof gen, "%012lld", static_cast<long long>(generation));
    return kHistory + service + "/" + gen;
}

std::string encodeHistory(const HistoryRecord& r) {
    Value v = Value::object();
    v.set("version", kRecordVersion);
    v.set("generation", r.generation);
    v.set("applied", r.applied);
    v.set("outcome", r.outcome);
    v.set("reason", r.reason);
    v.set("cause", r.cause);
    v.set("spec", *Value::parse(serviceJson(r.spec)));
    return v.dump();
}

Result<HistoryRecord> decodeHistory(const std::string& text) {
    Value v = TRY(open(text, "history record"));
    const Value* spec = v.find("spec");
    if (!spec || !spec->isObject()) return failInvalid("history record: no spec");
    HistoryRecord r;
    r.spec = TRY(serviceFromJson(spec->dump()));
    r.generation = intOf(v, "generation");
    if (r.generation < 1) return failInvalid("history record: no generation");
    r.applied = intOf(v, "applied");
    r.outcome = json::stringOf(v, "outcome");
    r.reason = json::stringOf(v, "reason");
    r.cause = json::stringOf(v, "cause");
    return r;
}

std::string encodeNode(const NodeRecord& r) {
    Value v = Value::object();
    v.set("version", kRecordVersion);
    v.set("name", r.name);
    v.set("address", r.address);
    v.set("agentVersion", r.version);
    Value labels = Value::object();
    for (const auto& [k, val] : r.labels) labels.set(k, val);
    v.set("labels", labels);
    v.set("cpus", r.cpus);
    v.set("memory", r.memory);
    v.set("drained", r.drained);
    v.set("joined", r.joined);
    v.set("certSha256", r.certSha256);
    v.set("subnet", r.subnet);
    v.set("vtepMac", r.vtepMac);
    return v.dump();
}

Result<NodeRecord> decodeNode(const std::string& text) {
    Value v = TRY(open(text, "node record"));
    NodeRecord r;
    r.name = json::stringOf(v, "name");
    if (r.name.empty()) return failInvalid("node record: no name");
    r.address = json::stringOf(v, "address");
    r.version = json::stringOf(v, "agentVersion");
    if (const Value* l = v.find("labels"); l && l->isObject())
        for (const auto& [k, val] : l->asObject())
            if (val.isString()) r.labels[k] = val.asString();
    if (const Value* c = v.find("cpus"); c && c->isNumber()) r.cpus = c->asDouble();
    r.memory = intOf(v, "memory");
    if (const Value* d = v.find("drained"); d && d->isBool()) r.drained = d->asBool();
    r.joined = intOf(v, "joined");
    r.certSha256 = json::stringOf(v, "certSha256");  // absent in an older hull's records
    r.subnet = json::stringOf(v, "subnet");          // likewise: leased at its next hello
    r.vtepMac = json::stringOf(v, "vtepMac");
    return r;
}

std::string encodePlacement(const core::SlotPlacement& p) {
    Value v = Value::object();
    v.set("version", kRecordVersion);
    v.set("node", p.node);
    v.set("generation", p.generation);
    if (p.incarnation) v.set("incarnation", p.incarnation);
    if (!p.retiring.empty()) {
        Value list = Value::array();
        for (const auto& c : p.retiring) {
            Value o = Value::object();
            o.set("node", c.node);
            o.set("generation", c.generation);
            if (c.incarnation) o.set("incarnation", c.incarnation);
            list.push(std::move(o));
        }
        v.set("retiring", std::move(list));
    }
    return v.dump();
}

Result<core::SlotPlacement> decodePlacement(const std::string& text) {
    Value v = TRY(open(text, "placement record"));
    core::SlotPlacement p;
    p.node = json::stringOf(v, "node");
    p.generation = intOf(v, "generation");  // 0 in an older hull's records: the service's
    p.incarnation = intOf(v, "incarnation");
    if (const Value* list = v.find("retiring"); list && list->isArray())
        for (const auto& c : list->asArray()) {
            if (c.isString()) {  // an older hull's: a node name
                p.retiring.push_back({c.asString(), 0, 0});
            } else if (c.isObject()) {
                core::Copy copy{json::stringOf(c, "node"), intOf(c, "generation"), intOf(c, "incarnation")};
                if (copy.node.empty()) return failInvalid("placement record: a retiring copy without a node");
                p.retiring.push_back(std::move(copy));
            } else {
                return failInvalid("placement record: retiring: not a node");
            }
        }
    return p;
}

Result<std::pair<std::string, int>> placementKey(const std::string& key) {
    if (key.rfind(keys::kPlacements, 0) != 0) return failInvalid("not a placement key: " + key);
    std::string rest = key.substr(keys::kPlacements.size());
    auto slash = rest.rfind('/');
    int slot = -1;
    if (slash == std::string::npos ||
        std::from_chars(rest.data() + slash + 1, rest.data() + rest.size(), slot).ec != std::errc() || slot < 0)
        return failInvalid("not a placement key: " + key);
    return std::make_pair(rest.substr(0, slash), slot);
}


}  // namespace hull::orchestrator::master
