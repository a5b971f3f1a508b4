#pragma once
// The phoenix cycle across a cluster, as a pure function: which slot of a
// service is replaced next because its container is older than maxAge. The
// master then has the scheduler place the replacement afresh (so a service
// that has become unbalanced evens out over one cycle) and the old copy runs
// on until the new one is ready (start-first: the ready count never drops).
//
// Rules:
//  - one replacement at a time per service: none while a slot's own copy is
//    not ready or an old copy still retires, none while fewer slots than
//    replicas are ready, none during a rollout;
//  - each slot's maxAge is shortened by up to a tenth, by a hash of the
//    service, slot, generation and incarnation: replicas started together do
//    not all come due together, and the same slot's next copy gets another
//    share;
//  - the slot most overdue goes first.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hull::orchestrator::core {

struct AgedSlot {
    int slot = 0;
    int64_t generation = 0, incarnation = 0;
    bool ready = false;     // its own copy is ready
    bool retiring = false;  // an old copy of it still runs elsewhere
    int64_t startedMs = 0;  // its own copy's start, wall clock (0: unknown)
};

struct PhoenixDue {
    int slot = 0;
    std::string why;  // "age 5.2s, maxAge 5s (4.6s with jitter)"
};

/// The maxAge SLOT's current copy gets, jitter included.
int64_t jitteredMaxAgeMs(const std::string& service, const AgedSlot& slot, int64_t maxAgeMs);

/// The slot to replace now, if any; NEXTMS (when given) gets the wall time the
/// next one comes due (0: none can).
std::optional<PhoenixDue> phoenixDue(const std::string& service, int64_t maxAgeMs, int replicas, int64_t readySlots,
                                     const std::vector<AgedSlot>& slots, int64_t wallNowMs, int64_t* nextMs = nullptr);

}  // namespace hull::orchestrator::core
