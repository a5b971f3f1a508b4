#include "orchestrator/node/store.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <utility>

#include <sqlite3.h>

#include "sys/json.hpp"

namespace hull::orchestrator {

namespace {

// Bump when the schema changes, and add a migration step in migrate().
constexpr int kSchemaVersion = 3;

// Created in one transaction when user_version is 0. No foreign key from
// containers to services: containers outlive a deleted service until the agent
// has stopped them.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS services (
    name       TEXT PRIMARY KEY NOT NULL,
    spec       TEXT NOT NULL,
    generation INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id          TEXT PRIMARY KEY NOT NULL,
    service     TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    state       TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER NOT NULL,
    exit_code   INTEGER,
    restarts    INTEGER NOT NULL,
    ready       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS containers_by_service ON containers(service, slot, started_ms);
CREATE TABLE IF NOT EXISTS events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms   INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    service   TEXT NOT NULL,
    container TEXT NOT NULL,
    message   TEXT NOT NULL
);
PRAGMA user_version = 1;
)sql";

// Version 2: the slots a master assigned to this node (a JSON array of
// integers), NULL for a standalone node's 0..replicas-1.
constexpr const char* kMigrateV2 = R"sql(
ALTER TABLE services ADD COLUMN slots TEXT;
PRAGMA user_version = 2;
)sql";

// Version 3: a master's per-slot generations and incarnations (JSON
// [{"slot", "generation", "incarnation"}]), the specs of the generations they
// name (JSON [{"generation", "spec": "<serviceJson text>"}]) and the order of
// replacements; NULL: none (a standalone service, or none pinned).
constexpr const char* kMigrateV3 = R"sql(
ALTER TABLE services ADD COLUMN pins TEXT;
ALTER TABLE services ADD COLUMN versions TEXT;
ALTER TABLE services ADD COLUMN replace_order TEXT;
PRAGMA user_version = 3;
)sql";

std::optional<std::string> pinsText(const std::vector<SlotPin>& pins) {
    if (pins.empty()) return std::nullopt;
    json::Value v = json::Value::array();
    for (const auto& p : pins) {
        json::Value o = json::Value::object();
        o.set("slot", p.slot);
        o.set("generation", p.generation);
        o.set("incarnation", p.incarnation);
        v.push(std::move(o));
    }
    return v.dump();
}

std::optional<std::string> versionsText(const std::map<int64_t, std::string>& versions) {
    if (versions.empty()) return std::nullopt;
    json::Value v = json::Value::array();
    for (const auto& [g, spec] : versions) {
        json::Value o = json::Value::object();
        o.set("generation", g);
        o.set("spec", spec);
        v.push(std::move(o));
    }
    return v.dump();
}

std::optional<std::string> orderText(const std::string& order) {
    return order.empty() ? std::nullopt : std::optional(order);
}

/// PINS and VERSIONS columns into ROW; what cannot be read (another tool
/// wrote it) is said in row.damaged, and nothing of it is kept.
void readPinsAndVersions(ServiceRow& row, const std::optional<std::string>& pins, const std::optional<std::string>& versions) {
    auto integer = [](const json::Value& o, const char* key, int64_t& out) {
        const json::Value* v = o.find(key);
        return v && v->toInt64(out);
    };
    if (pins) {
        auto v = json::Value::parse(*pins);
        bool good = v && v->isArray();
        for (size_t i = 0; good && i < v->asArray().size(); ++i) {
            const auto& o = v->asArray()[i];
            int64_t slot = 0;
            SlotPin p;
            good = integer(o, "slot", slot) && slot >= 0 && slot <= INT32_MAX && integer(o, "generation", p.generation) &&
                   integer(o, "incarnation", p.incarnation);
            p.slot = int(slot);
            if (good) row.pins.push_back(p);
        }
        if (!good) {
            row.pins.clear();
            row.damaged = "stored pins unreadable: " + *pins;
        }
    }
    if (versions) {
        auto v = json::Value::parse(*versions);
        bool good = v && v->isArray();
        for (size_t i = 0; good && i < v->asArray().size(); ++i) {
            const auto& o = v->asArray()[i];
            int64_t g = 0;
            const json::Value* spec = o.find("spec");
            good = integer(o, "generation", g) && spec && spec->isString();
            if (good) row.versions[g] = spec->asString();
        }
        if (!good) {
            row.versions.clear();
            row.damaged += (row.damaged.empty() ? "" : "; ") + std::string("stored versions unreadable");
        }
    }
}

std::optional<std::string> slotsText(const std::optional<std::vector<int>>& slots) {
    if (!slots) return std::nullopt;
    std::string out = "[";
    for (size_t i = 0; i < slots->size(); ++i) out += (i ? "," : "") + std::to_string((*slots)[i]);
    return out + "]";
}

// A column another tool may have written: what is not a JSON array of integers reads as none.
std::optional<std::vector<int>> slotsFrom(const std::optional<std::string>& text) {
    if (!text) return std::nullopt;
    auto v = json::Value::parse(*text);
    if (!v || !v->isArray()) return std::nullopt;
    std::vector<int> out;
    for (const auto& x : v->asArray()) {
        int64_t i = 0;
        if (!x.toInt64(i) || i < 0 || i > INT32_MAX) return std::nullopt;
        out.push_back(int(i));
    }
    return out;
}

int64_t nowMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// An errno for callers that branch on the code (EBUSY: retry later); the
// message is SQLite's own.
int errnoOf(int rc) {
    switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED: return EBUSY;
        case SQLITE_FULL: return ENOSPC;
        case SQLITE_READONLY: return EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH: return EACCES;
        case SQLITE_CANTOPEN: return ENOENT;
        case SQLITE_NOMEM: return ENOMEM;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: return EBADMSG;
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
        case SQLITE_TOOBIG: return EINVAL;
        default: return EIO;
    }
}

// errmsg must be read right after the failing call, before anything else
// touches the connection.
Error sqlError(sqlite3* db, int rc, const std::string& what) {
    const char* msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return Error::plain(errnoOf(rc), "store: " + what + ": " + (msg ? msg : sqlite3_errstr(rc)));
}

struct StmtDeleter {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// One use of a cached statement: binds, steps, reads columns, and resets the
// statement on scope exit so the next use starts clean (and no read
// transaction is left open by a half-read SELECT).
class Query {
public:
    Query(sqlite3* db, sqlite3_stmt* st, std::string what) : db_(db), st_(st), what_(std::move(what)) {}
    Query(const Query&) = delete;
    Query& operator=(const Query&) = delete;
    Query(Query&& o) noexcept : db_(o.db_), st_(std::exchange(o.st_, nullptr)), what_(std::move(o.what_)) {}
    Query& operator=(Query&&) = delete;
    ~Query() {
        if (st_) {
            sqlite3_reset(st_);
            sqlite3_clear_bindings(st_);
        }
    }

    template <class... A>
    [[nodiscard]] Result<void> bind(const A&... args) {
        int idx = 0, rc = SQLITE_OK;
        // Stop at the first failure so errmsg describes it.
        auto one = [&](const auto& a) {
            if (rc == SQLITE_OK) rc = bindOne(++idx, a);
        };
        (one(args), ...);
        if (rc != SQLITE_OK) return fail(sqlError(db_, rc, what_));
        return {};
    }

    /// true: a row is ready; false: done.
    [[nodiscard]] Result<bool> step() {
        int rc = sqlite3_step(st_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        return fail(sqlError(db_, rc, what_));
    }
    /// Step a statement that returns no rows.
    [[nodiscard]] Result<void> run() {
        TRY(step());
        return {};
    }

    int64_t i64(int col) const { return sqlite3_column_int64(st_, col); }
    bool isNull(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
    std::optional<std::string> optText(int col) const { return isNull(col) ? std::nullopt : std::optional(text(col)); }
    std::string text(int col) const {
        auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
        return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : std::string();
    }
    int changes() const { return sqlite3_changes(db_); }

private:
    int bindOne(int i, const std::string& v) {
        return sqlite3_bind_text64(st_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    int bindOne(int i, int64_t v) { return sqlite3_bind_int64(st_, i, v); }
    int bindOne(int i, int v) { return sqlite3_bind_int(st_, i, v); }
    int bindOne(int i, bool v) { return sqlite3_bind_int(st_, i, v ? 1 : 0); }
    int bindOne(int i, const std::optional<int>& v) {
        return v ? sqlite3_bind_int(st_, i, *v) : sqlite3_bind_null(st_, i);
    }
    int bindOne(int i, const std::optional<std::string>& v) { return v ? bindOne(i, *v) : sqlite3_bind_null(st_, i); }

    sqlite3* db_;
    sqlite3_stmt* st_;
    std::string what_;
};

}  // namespace

// Not thread-safe: cached statements and transaction() are per connection;
// use one Store per thread (FULLMUTEX only keeps misuse from corrupting SQLite).
struct Store::Impl {
    sqlite3* db = nullptr;
    std::map<const char*, StmtPtr> stmts;  // keyed by the SQL literal's address

    ~Impl() {
        stmts.clear();  // statements first: close_v2 would otherwise defer the close
        if (db) sqlite3_close_v2(db);
    }

    Result<Query> query(const char* sql, std::string what) {
        auto it = stmts.find(sql);
        if (it == stmts.end()) {
            sqlite3_stmt* st = nullptr;
            int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
            if (rc != SQLITE_OK) {
                sqlite3_finalize(st);
                return fail(sqlError(db, rc, what));
            }
            it = stmts.emplace(sql, StmtPtr(st)).first;
        }
        return Query(db, it->second.get(), std::move(what));
    }

    Result<void> exec(const char* sql, const std::string& what) {
        int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
        if (rc != SQLITE_OK) return fail(sqlError(db, rc, what));
        return {};
    }

    /// Run F atomically: its own BEGIN IMMEDIATE … COMMIT, or, inside a caller's
    /// transaction(), as part of that (SQLite does not nest BEGIN).
    template <class F>
    auto atomically(const std::string& what, F&& f) -> decltype(f()) {
        if (!sqlite3_get_autocommit(db)) return f();
        // IMMEDIATE takes the write lock up front: a deferred transaction that
        // reads and then writes can fail with SQLITE_BUSY without waiting.
        TRY(exec("BEGIN IMMEDIATE", what));
        auto r = f();
        if (!r) {
            (void)exec("ROLLBACK", what);
            return r;
        }
        if (auto c = exec("COMMIT", what); !c) {
            if (!sqlite3_get_autocommit(db)) (void)exec("ROLLBACK", what);
            return fail(std::move(c).error());
        }
        return r;
    }

    Result<void> configure(const std::string& path) {
        // Before journal_mode: switching to WAL needs a lock another opener may hold.
        int rc = sqlite3_busy_timeout(db, 5000);
        if (rc != SQLITE_OK) return fail(sqlError(db, rc, "open " + path + ": busy timeout"));
        {
            auto q = TRY(query("PRAGMA journal_mode=WAL", "open " + path + ": journal_mode=WAL"));
            std::string mode = TRY(q.step()) ? q.text(0) : "";
            // SQLite answers with the mode it kept (e.g. "memory", or "delete"
            // where WAL cannot work) instead of failing.
            if (mode != "wal")
                return failInvalid("store: open " + path + ": journal_mode is \"" + mode + "\", not wal");
        }
        stmts.clear();  // pragmas are used once; do not keep them
        TRY(exec("PRAGMA synchronous=NORMAL", "open " + path + ": synchronous=NORMAL"));
        TRY(exec("PRAGMA foreign_keys=ON", "open " + path + ": foreign_keys=ON"));
        return migrate(path);
    }

    Result<void> migrate(const std::string& path) {
        const std::string what = "open " + path + ": schema";
        // Read and create under one write lock, so two first openers do not race.
        auto r = atomically(what, [&]() -> Result<void> {
            int version = 0;
            {
                auto q = TRY(query("PRAGMA user_version", what));
                if (TRY(q.step())) version = static_cast<int>(q.i64(0));
            }
            if (version > kSchemaVersion)
                return failInvalid("store: open " + path + ": schema version " + std::to_string(version) +
                                   " is newer than this hull supports (" + std::to_string(kSchemaVersion) +
                                   "); upgrade hull");
            // Each step in turn: a new file goes through them all.
            if (version < 1) TRY(exec(kSchemaV1, what));
            if (version < 2) TRY(exec(kMigrateV2, what));
            if (version < 3) TRY(exec(kMigrateV3, what));
            return {};
        });
        stmts.clear();
        return r;
    }
};

Result<Store> Store::open(const std::string& path) {
    auto impl = std::make_unique<Impl>();
    int rc = sqlite3_open_v2(path.c_str(), &impl->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
    // open_v2 hands back a handle even on failure (for errmsg); Impl closes it.
    if (rc != SQLITE_OK) return fail(sqlError(impl->db, rc, "open " + path));
    sqlite3_extended_result_codes(impl->db, 1);
    TRY(impl->configure(path));
    return Store(impl.release());
}

Store::Store(Store&& o) noexcept : impl_(std::exchange(o.impl_, nullptr)) {}

Store& Store::operator=(Store&& o) noexcept {
    if (this != &o) {
        delete impl_;
        impl_ = std::exchange(o.impl_, nullptr);
    }
    return *this;
}

Store::~Store() { delete impl_; }

Result<void> Store::exec(const std::string& sql) {
    assert(impl_ && "use of a moved-from Store");
    auto r = impl_->exec(sql.c_str(), sql);
    // A failed COMMIT can leave the transaction open; end it so the connection
    // is usable and the next BEGIN does not fail too.
    if (!r && sql == "COMMIT" && !sqlite3_get_autocommit(impl_->db)) (void)impl_->exec("ROLLBACK", "ROLLBACK");
    return r;
}

// --- services ---

Result<int64_t> Store::putService(const std::string& name, const std::string& spec, Generation g,
                                  const std::optional<std::vector<int>>& slots) {
    const std::string what = "put service " + name;
    const std::optional<std::string> slotsCol = slotsText(slots);
    return impl_->atomically(what, [&]() -> Result<int64_t> {
        int64_t generation = 0;
        {
            auto q = TRY(impl_->query("SELECT spec, generation, slots FROM services WHERE name = ?1", what));
            TRY(q.bind(name));
            if (TRY(q.step())) {
                if (q.text(0) == spec && q.optText(2) == slotsCol) return q.i64(1);
                generation = q.i64(1);
            }
        }
        if (g == Generation::Bump || generation == 0) ++generation;
        auto q = TRY(impl_->query("INSERT INTO services(name, spec, generation, updated_ms, slots) VALUES(?1, ?2, ?3, ?4, ?5) "
                                  "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, "
                                  "generation = excluded.generation, updated_ms = excluded.updated_ms, slots = excluded.slots",
                                  what));
        TRY(q.bind(name, spec, generation, nowMs(), slotsCol));
        TRY(q.run());
        return generation;
    });
}

Result<bool> Store::putAssignment(const ServiceRow& r) {
    const std::string what = "put assignment " + r.name;
    std::vector<SlotPin> pins = r.pins;
    std::sort(pins.begin(), pins.end(), [](const SlotPin& a, const SlotPin& b) { return a.slot < b.slot; });
    const auto slotsCol = slotsText(r.slots);
    const auto pinsCol = pinsText(pins);
    const auto versionsCol = versionsText(r.versions);
    const auto orderCol = orderText(r.order);
    return impl_->atomically(what, [&]() -> Result<bool> {
        {
            auto q = TRY(impl_->query("SELECT spec, generation, slots, pins, versions, replace_order FROM services "
                                      "WHERE name = ?1",
                                      what));
            TRY(q.bind(r.name));
            if (TRY(q.step()) && q.text(0) == r.spec && q.i64(1) == r.generation && q.optText(2) == slotsCol &&
                q.optText(3) == pinsCol && q.optText(4) == versionsCol && q.optText(5) == orderCol)
                return false;
        }
        auto q = TRY(impl_->query("INSERT INTO services(name, spec, generation, updated_ms, slots, pins, versions, "
                                  "replace_order) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                                  "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, "
                                  "generation = excluded.generation, updated_ms = excluded.updated_ms, "
                                  "slots = excluded.slots, pins = excluded.pins, versions = excluded.versions, "
                                  "replace_order = excluded.replace_order",
                                  what));
        TRY(q.bind(r.name, r.spec, r.generation, nowMs(), slotsCol, pinsCol, versionsCol, orderCol));
        TRY(q.run());
        return true;
    });
}

namespace {
constexpr const char* kServiceColumns = "name, spec, generation, updated_ms, slots, pins, versions, replace_order";

ServiceRow serviceFrom(const Query& q) {
    ServiceRow r{q.text(0), q.text(1), q.i64(2), q.i64(3), slotsFrom(q.optText(4))};
    readPinsAndVersions(r, q.optText(5), q.optText(6));
    r.order = q.optText(7).value_or("");
    return r;
}

// Static strings: the statement cache is keyed by their addresses.
const std::string kSelectService = std::string("SELECT ") + kServiceColumns + " FROM services WHERE name = ?1";
const std::string kListServices = std::string("SELECT ") + kServiceColumns + " FROM services ORDER BY name";
}  // namespace

Result<std::optional<ServiceRow>> Store::getService(const std::string& name) {
    auto q = TRY(impl_->query(kSelectService.c_str(), "get service " + name));
    TRY(q.bind(name));
    if (!TRY(q.step())) return std::optional<ServiceRow>();
    return serviceFrom(q);
}

Result<std::vector<ServiceRow>> Store::listServices() {
    auto q = TRY(impl_->query(kListServices.c_str(), "list services"));
    std::vector<ServiceRow> out;
    while (TRY(q.step())) out.push_back(serviceFrom(q));
    return out;
}

Result<bool> Store::deleteService(const std::string& name) {
    auto q = TRY(impl_->query("DELETE FROM services WHERE name = ?1", "delete service " + name));
    TRY(q.bind(name));
    TRY(q.run());
    return q.changes() > 0;
}

// --- containers ---

namespace {
constexpr const char* kContainerColumns =
    "id, service, generation, slot, state, started_ms, finished_ms, exit_code, restarts, ready";

ContainerRow containerFrom(const Query& q) {
    ContainerRow c;
    c.id = q.text(0);
    c.service = q.text(1);
    c.generation = q.i64(2);
    c.slot = static_cast<int>(q.i64(3));
    c.state = q.text(4);
    c.startedMs = q.i64(5);
    c.finishedMs = q.i64(6);
    if (!q.isNull(7)) c.exitCode = static_cast<int>(q.i64(7));
    c.restarts = static_cast<int>(q.i64(8));
    c.ready = q.i64(9) != 0;
    return c;
}

// Static strings: the statement cache is keyed by their addresses.
const std::string kSelectContainer =
    std::string("SELECT ") + kContainerColumns + " FROM containers WHERE id = ?1";
const std::string kListContainers =
    std::string("SELECT ") + kContainerColumns + " FROM containers ORDER BY service, slot, started_ms, id";
const std::string kListServiceContainers = std::string("SELECT ") + kContainerColumns +
                                           " FROM containers WHERE service = ?1 ORDER BY slot, started_ms, id";
}  // namespace

Result<void> Store::putContainer(const ContainerRow& c) {
    auto q = TRY(impl_->query("INSERT OR REPLACE INTO containers(id, service, generation, slot, state, started_ms, "
                              "finished_ms, exit_code, restarts, ready) "
                              "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                              "put container " + c.id));
    TRY(q.bind(c.id, c.service, c.generation, c.slot, c.state, c.startedMs, c.finishedMs, c.exitCode, c.restarts,
               c.ready));
    return q.run();
}

Result<std::optional<ContainerRow>> Store::getContainer(const std::string& id) {
    auto q = TRY(impl_->query(kSelectContainer.c_str(), "get container " + id));
    TRY(q.bind(id));
    if (!TRY(q.step())) return std::optional<ContainerRow>();
    return containerFrom(q);
}

Result<std::vector<ContainerRow>> Store::listContainers(const std::string& service) {
    const std::string what = service.empty() ? "list containers" : "list containers of " + service;
    auto q = TRY(impl_->query(service.empty() ? kListContainers.c_str() : kListServiceContainers.c_str(), what));
    if (!service.empty()) TRY(q.bind(service));
    std::vector<ContainerRow> out;
    while (TRY(q.step())) out.push_back(containerFrom(q));
    return out;
}

Result<bool> Store::deleteContainer(const std::string& id) {
    auto q = TRY(impl_->query("DELETE FROM containers WHERE id = ?1", "delete container " + id));
    TRY(q.bind(id));
    TRY(q.run());
    return q.changes() > 0;
}

// --- events ---

Result<int64_t> Store::addEvent(const EventRow& e) {
    // RETURNING rather than last_insert_rowid: the id belongs to this statement.
    auto q = TRY(impl_->query("INSERT INTO events(time_ms, kind, service, container, message) "
                              "VALUES(?1, ?2, ?3, ?4, ?5) RETURNING id",
                              "add event " + e.kind));
    // timeMs 0 means "now", so callers need not read the clock themselves.
    TRY(q.bind(e.timeMs ? e.timeMs : nowMs(), e.kind, e.service, e.container, e.message));
    if (!TRY(q.step())) return failInvalid("store: add event " + e.kind + ": no id returned");
    int64_t id = q.i64(0);
    // The row is written by the first step; stepping to the end surfaces any
    // late error instead of letting reset() swallow it.
    TRY(q.step());
    return id;
}

Result<std::vector<EventRow>> Store::events(int64_t sinceId, size_t limit) {
    auto q = TRY(impl_->query("SELECT id, time_ms, kind, service, container, message FROM events "
                              "WHERE id > ?1 ORDER BY id LIMIT ?2",
                              "read events"));
    const auto max = static_cast<size_t>(std::numeric_limits<int64_t>::max());
    TRY(q.bind(sinceId, static_cast<int64_t>(limit > max ? max : limit)));
    std::vector<EventRow> out;
    while (TRY(q.step())) out.push_back(EventRow{q.i64(0), q.i64(1), q.text(2), q.text(3), q.text(4), q.text(5)});
    return out;
}

Result<std::vector<EventRow>> Store::serviceEvents(const std::string& service, size_t limit) {
    // Newest first to stop at LIMIT, then turned around.
    auto q = TRY(impl_->query("SELECT id, time_ms, kind, service, container, message FROM events "
                              "WHERE service = ?1 ORDER BY id DESC LIMIT ?2",
                              "read events of " + service));
    const auto max = static_cast<size_t>(std::numeric_limits<int64_t>::max());
    TRY(q.bind(service, static_cast<int64_t>(limit > max ? max : limit)));
    std::vector<EventRow> out;
    while (TRY(q.step())) out.push_back(EventRow{q.i64(0), q.i64(1), q.text(2), q.text(3), q.text(4), q.text(5)});
    std::reverse(out.begin(), out.end());
    return out;
}

}  // namespace hull::orchestrator
