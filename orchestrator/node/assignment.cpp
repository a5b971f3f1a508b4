#include "orchestrator/node/assignment.hpp"

#include <algorithm>
#include <set>

namespace hull::orchestrator {

namespace {

constexpr int64_t kMaxSlot = 999999;  // as many as a master could ever place

/// ENTRY's integer KEY within [MIN, MAX], or an error naming WHERE.
Result<int64_t> integerOf(const json::Value& entry, const char* key, int64_t min, int64_t max, const std::string& where) {
    const json::Value* v = entry.find(key);
    int64_t out = 0;
    if (!v || !v->toInt64(out) || out < min || out > max)
        return failInvalid(where + key + ": expected an integer from " + std::to_string(min) +
                           (max == INT64_MAX ? std::string(" up") : " to " + std::to_string(max)));
    return out;
}

/// A spec of service NAME from JSON V (an object, as the master sends it).
Result<Service> specOf(const json::Value* v, const std::string& name, const std::string& where) {
    if (!v) return failInvalid(where + "spec: missing");
    auto s = serviceFromJson(v->dump());
    if (!s) return failInvalid(where + "spec: " + s.error().message());
    if (s->name != name) return failInvalid(where + "spec: of service \"" + s->name + "\", not \"" + name + "\"");
    return s;
}

}  // namespace

Result<Assignment> parseAssignment(const json::Value& entry) {
    Assignment a;
    if (!entry.isObject()) return failInvalid("expected an object");
    a.name = json::stringOf(entry, "name");
    if (a.name.empty()) return failInvalid("name: missing");
    a.generation = TRY(integerOf(entry, "generation", 1, INT64_MAX, ""));
    a.spec = TRY(specOf(entry.find("spec"), a.name, ""));

    const json::Value* slots = entry.find("slots");
    if (slots && !slots->isNull()) {
        if (!slots->isArray()) return failInvalid("slots: expected an array");
        for (size_t i = 0; i < slots->asArray().size(); ++i) {
            int64_t slot = -1;
            if (!slots->asArray()[i].toInt64(slot) || slot < 0 || slot > kMaxSlot)
                return failInvalid("slots[" + std::to_string(i) + "]: expected an integer from 0 to " +
                                   std::to_string(kMaxSlot));
            a.slots.push_back(int(slot));
        }
    }
    std::sort(a.slots.begin(), a.slots.end());
    a.slots.erase(std::unique(a.slots.begin(), a.slots.end()), a.slots.end());

    std::map<int64_t, Service> versions;
    if (const json::Value* list = entry.find("versions"); list && !list->isNull()) {
        if (!list->isArray()) return failInvalid("versions: expected an array");
        for (size_t i = 0; i < list->asArray().size(); ++i) {
            const auto& v = list->asArray()[i];
            std::string where = "versions[" + std::to_string(i) + "].";
            if (!v.isObject()) return failInvalid("versions[" + std::to_string(i) + "]: expected an object");
            int64_t g = TRY(integerOf(v, "generation", 1, INT64_MAX, where));
            if (g == a.generation || versions.count(g))
                return failInvalid(where + "generation: " + std::to_string(g) + " has a spec already");
            versions[g] = TRY(specOf(v.find("spec"), a.name, where));
        }
    }

    if (const json::Value* list = entry.find("pins"); list && !list->isNull()) {
        if (!list->isArray()) return failInvalid("pins: expected an array");
        std::set<int> seen;
        for (size_t i = 0; i < list->asArray().size(); ++i) {
            const auto& p = list->asArray()[i];
            std::string where = "pins[" + std::to_string(i) + "].";
            if (!p.isObject()) return failInvalid("pins[" + std::to_string(i) + "]: expected an object");
            int slot = int(TRY(integerOf(p, "slot", 0, kMaxSlot, where)));
            SlotWant w;
            w.generation = TRY(integerOf(p, "generation", 1, INT64_MAX, where));
            w.incarnation = TRY(integerOf(p, "incarnation", 0, INT64_MAX, where));
            if (!seen.insert(slot).second) return failInvalid(where + "slot: " + std::to_string(slot) + " is pinned twice");
            if (w.generation != a.generation && !versions.count(w.generation))
                return failInvalid(where + "generation: slot " + std::to_string(slot) + " is pinned to generation " +
                                   std::to_string(w.generation) + ", whose spec is neither the entry's nor in versions");
            // Kept only where it says something: a slot of this node, wanting other than (generation, 0).
            if (!std::binary_search(a.slots.begin(), a.slots.end(), slot)) continue;
            if (w == SlotWant{a.generation, 0}) continue;
            a.pins[slot] = w;
            if (w.generation != a.generation) a.versions[w.generation] = versions.at(w.generation);
        }
    }

    if (const json::Value* o = entry.find("order"); o && !o->isNull()) {
        std::string order = o->isString() ? o->asString() : "";
        if (order == "start-first") a.order = ReplaceOrder::StartFirst;
        else if (order == "stop-first") a.order = ReplaceOrder::StopFirst;
        else return failInvalid("order: expected \"start-first\" or \"stop-first\"");
    }
    return a;
}

ServiceRow assignmentRow(const Assignment& a) {
    ServiceRow r;
    r.name = a.name;
    r.spec = serviceJson(a.spec);
    r.generation = a.generation;
    r.slots = a.slots;
    for (const auto& [slot, w] : a.pins) r.pins.push_back({slot, w.generation, w.incarnation});
    for (const auto& [g, s] : a.versions) r.versions[g] = serviceJson(s);
    // Start-first is the default, stored as none: an older master's entry and a new one's say the same.
    r.order = a.order == ReplaceOrder::StopFirst ? "stop-first" : "";
    return r;
}

Result<DesiredService> desiredFrom(const ServiceRow& row) {
    if (!row.damaged.empty()) return failInvalid(row.damaged);
    DesiredService d;
    d.spec = TRY(serviceFromJson(row.spec));
    d.generation = row.generation;
    d.slots = row.slots;
    for (const auto& [g, text] : row.versions) {
        auto s = serviceFromJson(text);
        if (!s) return failInvalid("generation " + std::to_string(g) + ": " + s.error().message());
        d.versions[g] = std::move(*s);
    }
    for (const auto& p : row.pins) {
        if (!d.specOf(p.generation))
            return failInvalid("slot " + std::to_string(p.slot) + " is pinned to generation " +
                               std::to_string(p.generation) + ", whose spec is not stored");
        d.pins[p.slot] = {p.generation, p.incarnation};
    }
    if (row.order == "stop-first") d.order = ReplaceOrder::StopFirst;
    else if (!row.order.empty() && row.order != "start-first")
        return failInvalid("stored order \"" + row.order + "\" unknown");
    return d;
}

std::string assignmentSummary(const ServiceRow& row) {
    std::string list;
    for (int s : row.slots.value_or(std::vector<int>{})) list += (list.empty() ? "" : ",") + std::to_string(s);
    std::string out = "slots " + (list.empty() ? "none" : list) + ", generation " + std::to_string(row.generation);
    for (const auto& p : row.pins) {
        out += "; slot " + std::to_string(p.slot) + ":";
        if (p.generation != row.generation) out += " generation " + std::to_string(p.generation);
        if (p.incarnation) out += std::string(p.generation != row.generation ? "," : "") + " incarnation " +
                                  std::to_string(p.incarnation);
    }
    if (!row.order.empty()) out += "; " + row.order;
    return out;
}

}  // namespace hull::orchestrator
