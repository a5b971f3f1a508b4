#pragma once
// The node agent's state: desired services and what it observed (containers it
// started, their restarts, exits, probe results) and an event log, in SQLite
// (WAL mode, synchronous=NORMAL, busy timeout) under STATE/node.db. Every
// change is one transaction, so a crash mid-write leaves the previous state.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sys/error.hpp"

namespace hull::orchestrator {

/// A master's slot that wants another (generation, incarnation) than its
/// service's (generation, 0).
struct SlotPin {
    int slot = 0;
    int64_t generation = 0;
    int64_t incarnation = 0;
    bool operator==(const SlotPin&) const = default;
};

struct ServiceRow {
    std::string name;
    std::string spec;        // serviceJson() of the Service
    // What containers are compared against: standalone, bumped when the spec
    // changes (see putService); a master's, the master's own (putAssignment).
    int64_t generation = 0;
    int64_t updatedMs = 0;   // unix time in ms
    std::optional<std::vector<int>> slots;  // the slots this node runs (a master's assignment); none: 0..replicas-1
    // A master's assignment only (since schema 3):
    std::vector<SlotPin> pins;                // ascending by slot
    std::map<int64_t, std::string> versions;  // the specs (serviceJson) of the other generations pins name
    std::string order;                        // "start-first", "stop-first"; "": start-first
    /// Why pins or versions could not be read ("": they could): another tool
    /// wrote them. The agent leaves such a service as it is.
    std::string damaged;
    bool operator==(const ServiceRow&) const = default;
};

struct ContainerRow {
    std::string id;          // the engine's container id
    std::string service;
    int64_t generation = 0;  // of the service spec it was started from
    int slot = 0;            // replica slot 0..replicas-1
    std::string state;       // "starting", "running", "exited", "stopping", "removed"
    int64_t startedMs = 0, finishedMs = 0;
    std::optional<int> exitCode;
    int restarts = 0;        // of this slot, for backoff
    bool ready = false;
};

struct EventRow {
    int64_t id = 0;
    int64_t timeMs = 0;
    std::string kind;     // "start", "exit", "oom", "probe", "phoenix", "apply", "delete", ...
    std::string service, container;
    std::string message;  // human-readable detail ("exit code 137 (OOM killed)")
};

class Store {
public:
    /// Open or create PATH. Creates the schema, or brings an older one up to
    /// date (versioned with PRAGMA user_version; 2 added services.slots, 3 a
    /// master's pins, versions and order).
    [[nodiscard]] static Result<Store> open(const std::string& path);
    Store(Store&&) noexcept;
    Store& operator=(Store&&) noexcept;
    ~Store();

    /// How putService sets the generation of a changed spec: Bump (a new
    /// template: the containers are replaced), or Keep (only replicas or slots
    /// changed, or the same spec in another form: the containers stay).
    enum class Generation { Bump, Keep };
    // Services. putService stores SPEC and SLOTS under NAME and returns the
    // generation: 1 for a new service; unchanged when SPEC and SLOTS equal what
    // is stored (re-applying the same file changes nothing, not even updatedMs).
    [[nodiscard]] Result<int64_t> putService(const std::string& name, const std::string& spec,
                                             Generation g = Generation::Bump,
                                             const std::optional<std::vector<int>>& slots = std::nullopt);
    /// A master's assignment, stored as it is (name, spec, the master's
    /// generation, slots, pins, versions, order; updatedMs is the store's):
    /// no generation of our own. False when it equals what is stored (then
    /// nothing is written, not even updatedMs).
    [[nodiscard]] Result<bool> putAssignment(const ServiceRow& row);
    [[nodiscard]] Result<std::optional<ServiceRow>> getService(const std::string& name);
    [[nodiscard]] Result<std::vector<ServiceRow>> listServices();
    [[nodiscard]] Result<bool> deleteService(const std::string& name);

    // Containers.
    [[nodiscard]] Result<void> putContainer(const ContainerRow& c);  // insert or replace by id
    [[nodiscard]] Result<std::optional<ContainerRow>> getContainer(const std::string& id);
    [[nodiscard]] Result<std::vector<ContainerRow>> listContainers(const std::string& service = "");
    [[nodiscard]] Result<bool> deleteContainer(const std::string& id);

    // Events: append, and read back newest last (SINCE_ID: only later ones).
    [[nodiscard]] Result<int64_t> addEvent(const EventRow& e);
    [[nodiscard]] Result<std::vector<EventRow>> events(int64_t sinceId = 0, size_t limit = 1000);
    /// The last LIMIT events of SERVICE, newest last (`hull describe`).
    [[nodiscard]] Result<std::vector<EventRow>> serviceEvents(const std::string& service, size_t limit);

    /// Run F inside one transaction (BEGIN IMMEDIATE … COMMIT, rolled back if F fails).
    template <class F>
    [[nodiscard]] Result<void> transaction(F&& f) {
        TRY(exec("BEGIN IMMEDIATE"));
        auto r = f();
        if (!r) {
            (void)exec("ROLLBACK");
            return r;
        }
        return exec("COMMIT");
    }

private:
    struct Impl;
    explicit Store(Impl* impl) : impl_(impl) {}
    [[nodiscard]] Result<void> exec(const std::string& sql);
    Impl* impl_ = nullptr;
};

}  // namespace hull::orchestrator
