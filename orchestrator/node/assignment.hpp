#pragma once
// A master's assignment of one service to this node (one entry of the
// "assignments" message), read and checked; what the store keeps of it; and a
// stored service made into what the planner wants (core/reconcile.hpp).
//
//   {"name": "web", "generation": 7, "spec": {...}, "slots": [0, 3, 4],
//    "pins": [{"slot": 3, "generation": 6, "incarnation": 0}],
//    "versions": [{"generation": 6, "spec": {...}}], "order": "start-first"}
//
// The generations are the master's, used as they are. pins, versions and
// order may be absent (an older master's entry): no pins, start-first.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "orchestrator/core/reconcile.hpp"
#include "orchestrator/model/service.hpp"
#include "orchestrator/node/store.hpp"
#include "sys/error.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator {

struct Assignment {
    std::string name;
    Service spec;  // of `generation`
    int64_t generation = 0;
    std::vector<int> slots;              // ascending, each once
    std::map<int, SlotWant> pins;        // of `slots` only, none that wants (generation, 0)
    std::map<int64_t, Service> versions;  // those the pins name, none other
    ReplaceOrder order = ReplaceOrder::StartFirst;
};

/// ENTRY, checked: a missing or unreadable spec (or another service's), a
/// generation that is not a positive integer, a bad slot, pin, version or
/// order, and a pin whose generation has no spec are errors that say which.
[[nodiscard]] Result<Assignment> parseAssignment(const json::Value& entry);

/// What the store keeps of A (its putAssignment).
ServiceRow assignmentRow(const Assignment& a);

/// ROW as the planner's input: an error when its spec, one of its versions or
/// its pins cannot be read, or a pin names a generation with no spec (the
/// agent then leaves its containers as they are).
[[nodiscard]] Result<DesiredService> desiredFrom(const ServiceRow& row);

/// ROW's assignment in a few words, for its event: "slots 0,3,4, generation 7;
/// slot 3: generation 6; slot 4: incarnation 2; stop-first".
std::string assignmentSummary(const ServiceRow& row);

}  // namespace hull::orchestrator
