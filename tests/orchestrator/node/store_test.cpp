#include "orchestrator/node/store.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include <sqlite3.h>

#include "support.hpp"

using namespace hull;
using namespace hull::orchestrator;

namespace {

Store openOrFail(const std::string& path) {
    auto s = Store::open(path);
    if (!s) FAIL("open " << path << ": " << s.error().message());
    return std::move(*s);
}

template <class T>
T ok(Result<T> r) {
    if (!r) FAIL(r.error().message());
    if constexpr (!std::is_void_v<T>) return std::move(*r);
}

// A raw connection, to look at the file the way another tool would.
struct RawDb {
    sqlite3* db = nullptr;
    explicit RawDb(const std::string& path) { REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK); }
    ~RawDb() { sqlite3_close_v2(db); }
    std::string scalar(const char* sql) {
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK);
        std::string out;
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return out;
    }
    void exec(const char* sql) { REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK); }
};

std::string cid(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "c%06d", i);
    return buf;
}

// Every field derives from I, so a half-written row would not match.
ContainerRow rowFor(int i) {
    ContainerRow c;
    c.id = cid(i);
    c.service = i % 2 ? "web" : "db";
    c.generation = i + 1;
    c.slot = i % 7;
    c.state = i % 3 ? "running" : "exited";
    c.startedMs = 1000000 + i;
    c.finishedMs = i % 3 ? 0 : 2000000 + i;
    if (i % 3 == 0) c.exitCode = i % 256;
    c.restarts = i % 5;
    c.ready = i % 2 == 0;
    return c;
}

void checkRow(const ContainerRow& got, int i) {
    ContainerRow want = rowFor(i);
    CHECK(got.id == want.id);
    CHECK(got.service == want.service);
    CHECK(got.generation == want.generation);
    CHECK(got.slot == want.slot);
    CHECK(got.state == want.state);
    CHECK(got.startedMs == want.startedMs);
    CHECK(got.finishedMs == want.finishedMs);
    CHECK(got.exitCode == want.exitCode);
    CHECK(got.restarts == want.restarts);
    CHECK(got.ready == want.ready);
}

}  // namespace

TEST_CASE("store: schema is created, WAL is on, data persists across opens", "[store]") {
    test::TempDir dir("hull-store");
    const std::string path = dir / "node.db";
    {
        Store s = openOrFail(path);
        CHECK(ok(s.putService("web", "{\"image\":\"a\"}")) == 1);
        ok(s.putContainer(rowFor(1)));
        CHECK(ok(s.addEvent({0, 0, "apply", "web", "", "applied"})) == 1);
        CHECK(access((path + "-wal").c_str(), F_OK) == 0);
    }
    {
        RawDb raw(path);
        CHECK(raw.scalar("PRAGMA journal_mode") == "wal");
        CHECK(raw.scalar("PRAGMA user_version") == "3");
    }
    // Moves keep the one connection.
    Store s = openOrFail(path);
    Store moved(std::move(s));
    s = std::move(moved);
    auto svc = ok(s.getService("web"));
    REQUIRE(svc);
    CHECK(svc->spec == "{\"image\":\"a\"}");
    CHECK(svc->generation == 1);
    CHECK(svc->updatedMs > 0);
    auto c = ok(s.getContainer(cid(1)));
    REQUIRE(c);
    checkRow(*c, 1);
    auto ev = ok(s.events());
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == "apply");
    CHECK(ev[0].timeMs > 0);  // 0 means now
}

TEST_CASE("store: putService generations", "[store]") {
    test::TempDir dir("hull-store");
    Store s = openOrFail(dir / "node.db");
    CHECK(ok(s.putService("web", "A")) == 1);
    CHECK(ok(s.putService("web", "A")) == 1);  // same spec: nothing changes
    CHECK(ok(s.putService("web", "B")) == 2);
    CHECK(ok(s.putService("web", "B")) == 2);
    CHECK(ok(s.putService("api", "X")) == 1);
    // Values go in as parameters, quotes and all.
    CHECK(ok(s.putService("o'brien", "'); DROP TABLE services; --")) == 1);

    auto all = ok(s.listServices());
    REQUIRE(all.size() == 3);
    CHECK(all[0].name == "api");
    CHECK(all[1].name == "o'brien");
    CHECK(all[1].spec == "'); DROP TABLE services; --");
    CHECK(all[2].name == "web");
    CHECK(all[2].generation == 2);
    CHECK(all[2].spec == "B");

    CHECK(ok(s.deleteService("web")));
    CHECK_FALSE(ok(s.deleteService("web")));
    CHECK_FALSE(ok(s.getService("web")).has_value());
    CHECK(ok(s.putService("web", "B")) == 1);  // a new service again
}

TEST_CASE("store: a spec changed only in replicas keeps its generation, slots are kept with it", "[store]") {
    test::TempDir dir("hull-store");
    Store s = openOrFail(dir / "node.db");
    using G = Store::Generation;
    CHECK(ok(s.putService("web", "A3", G::Keep)) == 1);  // a new service starts at 1 either way
    CHECK(ok(s.putService("web", "A5", G::Keep)) == 1);  // stored, generation kept
    CHECK(ok(s.getService("web"))->spec == "A5");
    CHECK(ok(s.putService("web", "B5", G::Bump)) == 2);
    CHECK_FALSE(ok(s.getService("web"))->slots.has_value());
    // Slots: stored as given, their change alone is a change (kept generation), the same ones are none.
    CHECK(ok(s.putService("web", "B5", G::Keep, std::vector<int>{5, 9})) == 2);
    auto row = ok(s.getService("web"));
    REQUIRE(row);
    REQUIRE(row->slots);
    CHECK(*row->slots == std::vector<int>{5, 9});
    int64_t updated = row->updatedMs;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(ok(s.putService("web", "B5", G::Bump, std::vector<int>{5, 9})) == 2);  // nothing changed: no bump
    CHECK(ok(s.getService("web"))->updatedMs == updated);
    CHECK(ok(s.putService("web", "B5", G::Keep, std::vector<int>{})) == 2);
    CHECK(ok(s.listServices())[0].slots == std::optional<std::vector<int>>(std::vector<int>{}));
    CHECK(ok(s.putService("web", "B5", G::Keep)) == 2);
    CHECK_FALSE(ok(s.listServices())[0].slots.has_value());
}

TEST_CASE("store: a version-1 file is migrated, its rows intact", "[store]") {
    test::TempDir dir("hull-store");
    const std::string path = dir / "node.db";
    {
        // The schema as the first release wrote it, with a service and an event in it.
        RawDb raw(path);
        raw.exec("PRAGMA journal_mode=WAL");
        raw.exec(R"sql(
CREATE TABLE services (name TEXT PRIMARY KEY NOT NULL, spec TEXT NOT NULL, generation INTEGER NOT NULL,
                       updated_ms INTEGER NOT NULL);
CREATE TABLE containers (id TEXT PRIMARY KEY NOT NULL, service TEXT NOT NULL, generation INTEGER NOT NULL,
                         slot INTEGER NOT NULL, state TEXT NOT NULL, started_ms INTEGER NOT NULL,
                         finished_ms INTEGER NOT NULL, exit_code INTEGER, restarts INTEGER NOT NULL,
                         ready INTEGER NOT NULL);
CREATE INDEX containers_by_service ON containers(service, slot, started_ms);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,
                     service TEXT NOT NULL, container TEXT NOT NULL, message TEXT NOT NULL);
INSERT INTO services VALUES ('web', '{"name":"web","image":"b"}', 4, 1234);
INSERT INTO events(time_ms, kind, service, container, message) VALUES (1, 'apply', 'web', '', 'generation 4');
PRAGMA user_version = 1;
)sql");
    }
    {
        Store s = openOrFail(path);
        auto row = ok(s.getService("web"));
        REQUIRE(row);
        CHECK(row->spec == R"({"name":"web","image":"b"})");
        CHECK(row->generation == 4);
        CHECK(row->updatedMs == 1234);
        CHECK_FALSE(row->slots.has_value());
        CHECK(ok(s.events()).size() == 1);
        CHECK(ok(s.putService("web", R"({"name":"web","image":"b"})", Store::Generation::Keep, std::vector<int>{3})) == 4);
    }
    RawDb raw(path);
    CHECK(raw.scalar("PRAGMA user_version") == "3");
    CHECK(raw.scalar("SELECT slots FROM services WHERE name = 'web'") == "[3]");
    // A slots column another tool damaged reads as none, not as an error.
    raw.exec("UPDATE services SET slots = 'five' WHERE name = 'web'");
    Store s = openOrFail(path);
    CHECK_FALSE(ok(s.getService("web"))->slots.has_value());
}

TEST_CASE("store: a version-2 file is migrated to 3, its rows intact and no pins", "[store]") {
    test::TempDir dir("hull-store");
    const std::string path = dir / "node.db";
    {
        // The schema as version 2 wrote it: a master's service with its slots.
        RawDb raw(path);
        raw.exec("PRAGMA journal_mode=WAL");
        raw.exec(R"sql(
CREATE TABLE services (name TEXT PRIMARY KEY NOT NULL, spec TEXT NOT NULL, generation INTEGER NOT NULL,
                       updated_ms INTEGER NOT NULL, slots TEXT);
CREATE TABLE containers (id TEXT PRIMARY KEY NOT NULL, service TEXT NOT NULL, generation INTEGER NOT NULL,
                         slot INTEGER NOT NULL, state TEXT NOT NULL, started_ms INTEGER NOT NULL,
                         finished_ms INTEGER NOT NULL, exit_code INTEGER, restarts INTEGER NOT NULL,
                         ready INTEGER NOT NULL);
CREATE INDEX containers_by_service ON containers(service, slot, started_ms);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,
                     service TEXT NOT NULL, container TEXT NOT NULL, message TEXT NOT NULL);
INSERT INTO services VALUES ('web', '{"name":"web","image":"b"}', 4, 1234, '[0,3]');
INSERT INTO services VALUES ('db', '{"name":"db","image":"d"}', 2, 99, NULL);
PRAGMA user_version = 2;
)sql");
    }
    {
        Store s = openOrFail(path);
        auto rows = ok(s.listServices());
        REQUIRE(rows.size() == 2);
        CHECK((rows[0].name == "db" && rows[0].generation == 2 && !rows[0].slots));
        CHECK((rows[1].name == "web" && rows[1].generation == 4 && rows[1].updatedMs == 1234));
        CHECK(rows[1].slots == std::optional<std::vector<int>>(std::vector<int>{0, 3}));
        CHECK((rows[1].pins.empty() && rows[1].versions.empty() && rows[1].order.empty() && rows[1].damaged.empty()));
        // The master's entry with the same generation, spec and slots and no pins: nothing to write.
        ServiceRow same = rows[1];
        CHECK_FALSE(ok(s.putAssignment(same)));
        CHECK(ok(s.getService("web"))->updatedMs == 1234);
    }
    RawDb raw(path);
    CHECK(raw.scalar("PRAGMA user_version") == "3");
    CHECK(raw.scalar("SELECT count(*) FROM services WHERE pins IS NULL AND versions IS NULL AND replace_order IS NULL") ==
          "2");
}

TEST_CASE("store: a master's assignment is stored as it is: its generation, pins, versions and order", "[store]") {
    test::TempDir dir("hull-store");
    const std::string path = dir / "node.db";
    ServiceRow r;
    r.name = "web";
    r.spec = "SPEC7";
    r.generation = 7;
    r.slots = std::vector<int>{0, 3, 4};
    r.pins = {{4, 7, 2}, {3, 6, 0}};  // sorted by slot when stored
    r.versions = {{6, "SPEC6"}};
    r.order = "stop-first";
    {
        Store s = openOrFail(path);
        CHECK(ok(s.putAssignment(r)));
        auto got = ok(s.getService("web"));
        REQUIRE(got);
        CHECK(got->generation == 7);
        CHECK(got->pins == std::vector<SlotPin>{{3, 6, 0}, {4, 7, 2}});
        CHECK(got->versions == std::map<int64_t, std::string>{{6, "SPEC6"}});
        CHECK(got->order == "stop-first");
        CHECK(got->damaged.empty());
        int64_t updated = got->updatedMs;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        CHECK_FALSE(ok(s.putAssignment(r)));  // the same again: nothing written
        CHECK(ok(s.getService("web"))->updatedMs == updated);
        // A rollback: an older generation number, as it is (no bump of our own).
        ServiceRow back = r;
        back.spec = "SPEC6";
        back.generation = 6;
        back.pins.clear();
        back.versions.clear();
        back.order.clear();
        CHECK(ok(s.putAssignment(back)));
        auto rolled = ok(s.getService("web"));
        CHECK((rolled->generation == 6 && rolled->spec == "SPEC6" && rolled->pins.empty() && rolled->versions.empty()));
        CHECK(rolled->order.empty());
        // A changed incarnation alone is a change.
        back.pins = {{0, 6, 1}};
        CHECK(ok(s.putAssignment(back)));
        CHECK(ok(s.getService("web"))->pins == std::vector<SlotPin>{{0, 6, 1}});
        CHECK(ok(s.putAssignment(r)));
    }
    // Survives a reopen (an agent restarted while cut off from its master).
    {
        Store s = openOrFail(path);
        auto got = ok(s.getService("web"));
        REQUIRE(got);
        CHECK((got->generation == 7 && got->pins.size() == 2 && got->versions.size() == 1 && got->order == "stop-first"));
    }
    // Columns another tool damaged: said in damaged, and nothing of them kept.
    RawDb raw(path);
    raw.exec("UPDATE services SET pins = '[{\"slot\": \"three\"}]', versions = 'nope' WHERE name = 'web'");
    Store s = openOrFail(path);
    auto got = ok(s.getService("web"));
    REQUIRE(got);
    CHECK((got->pins.empty() && got->versions.empty()));
    CHECK(got->damaged.find("stored pins unreadable") != std::string::npos);
    CHECK(got->damaged.find("stored versions unreadable") != std::string::npos);
}

TEST_CASE("store: containers put, replace, list, filter, delete", "[store]") {
    test::TempDir dir("hull-store");
    Store s = openOrFail(dir / "node.db");
    CHECK_FALSE(ok(s.getContainer("nope")).has_value());

    ContainerRow a{"a", "web", 1, 1, "running", 300, 0, std::nullopt, 0, true};
    ContainerRow b{"b", "web", 1, 0, "exited", 200, 250, 0, 2, false};
    ContainerRow c{"c", "db", 3, 0, "starting", 100, 0, std::nullopt, 0, false};
    ContainerRow d{"d", "web", 2, 1, "running", 100, 0, std::nullopt, 0, false};
    for (auto* r : {&a, &b, &c, &d}) ok(s.putContainer(*r));

    // NULL and 0 are different exit codes.
    auto gotA = ok(s.getContainer("a"));
    auto gotB = ok(s.getContainer("b"));
    REQUIRE(gotA);
    REQUIRE(gotB);
    CHECK_FALSE(gotA->exitCode.has_value());
    REQUIRE(gotB->exitCode.has_value());
    CHECK(*gotB->exitCode == 0);
    CHECK(gotA->ready);
    CHECK(gotB->restarts == 2);

    // Ordered by service, slot, started.
    auto all = ok(s.listContainers());
    REQUIRE(all.size() == 4);
    CHECK(all[0].id == "c");
    CHECK(all[1].id == "b");
    CHECK(all[2].id == "d");
    CHECK(all[3].id == "a");
    auto web = ok(s.listContainers("web"));
    REQUIRE(web.size() == 3);
    CHECK(web[0].id == "b");
    CHECK(web[1].id == "d");
    CHECK(web[2].id == "a");
    CHECK(ok(s.listContainers("none")).empty());

    // Replace by id.
    a.state = "exited";
    a.exitCode = 137;
    a.finishedMs = 400;
    a.ready = false;
    ok(s.putContainer(a));
    gotA = ok(s.getContainer("a"));
    REQUIRE(gotA);
    CHECK(gotA->state == "exited");
    CHECK(gotA->exitCode == std::optional<int>(137));
    CHECK(gotA->finishedMs == 400);
    CHECK_FALSE(gotA->ready);
    CHECK(ok(s.listContainers()).size() == 4);

    CHECK(ok(s.deleteContainer("a")));
    CHECK_FALSE(ok(s.deleteContainer("a")));
    CHECK_FALSE(ok(s.getContainer("a")).has_value());
    CHECK(ok(s.listContainers("web")).size() == 2);
}

TEST_CASE("store: events append and read since an id", "[store]") {
    test::TempDir dir("hull-store");
    Store s = openOrFail(dir / "node.db");
    CHECK(ok(s.events()).empty());
    std::vector<int64_t> ids;
    for (int i = 0; i < 10; ++i)
        ids.push_back(ok(s.addEvent({0, 1000 + i, "exit", "web", cid(i), "exit code " + std::to_string(i)})));
    for (size_t i = 1; i < ids.size(); ++i) CHECK(ids[i] > ids[i - 1]);

    auto all = ok(s.events());
    REQUIRE(all.size() == 10);
    CHECK(all[0].id == ids[0]);
    CHECK(all[0].timeMs == 1000);
    CHECK(all[9].message == "exit code 9");
    CHECK(all[9].container == cid(9));
    CHECK(all[9].service == "web");

    auto later = ok(s.events(ids[3], 4));
    REQUIRE(later.size() == 4);
    CHECK(later[0].id == ids[4]);
    CHECK(later[3].id == ids[7]);
    CHECK(ok(s.events(ids[9])).empty());
    CHECK(ok(s.events(0, 0)).empty());
}

TEST_CASE("store: the last events of one service, newest last", "[store]") {
    test::TempDir dir("hull-store");
    Store s = openOrFail(dir / "node.db");
    CHECK(ok(s.serviceEvents("web", 20)).empty());
    for (int i = 0; i < 30; ++i) (void)ok(s.addEvent({0, 1000 + i, "start", i % 3 ? "web" : "db", cid(i), std::to_string(i)}));
    auto web = ok(s.serviceEvents("web", 5));
    REQUIRE(web.size() == 5);
    // web has 1, 2, 4, 5, ... 28, 29 (not the multiples of 3): its last five are 23 25 26 28 29.
    CHECK(web[0].message == "23");
    CHECK(web[4].message == "29");
    for (size_t i = 1; i < web.size(); ++i) CHECK(web[i].id > web[i - 1].id);
    for (const auto& e : web) CHECK(e.service == "web");
    CHECK(ok(s.serviceEvents("db", 100)).size() == 10);
    CHECK(ok(s.serviceEvents("nope", 100)).empty());
}

TEST_CASE("store: a failed transaction leaves nothing", "[store]") {
    test::TempDir dir("hull-store");
    Store s = openOrFail(dir / "node.db");
    auto r = s.transaction([&]() -> Result<void> {
        TRY(s.putContainer(rowFor(1)));
        TRY(s.putService("web", "A"));  // nests into this transaction
        TRY(s.addEvent({0, 0, "start", "web", cid(1), ""}));
        return failInvalid("boom");
    });
    REQUIRE_FALSE(r);
    CHECK(r.error().message() == "boom");
    CHECK_FALSE(ok(s.getContainer(cid(1))).has_value());
    CHECK_FALSE(ok(s.getService("web")).has_value());
    CHECK(ok(s.events()).empty());

    // And a good one commits all of it; the connection is usable after the rollback.
    ok(s.transaction([&]() -> Result<void> {
        TRY(s.putContainer(rowFor(1)));
        TRY(s.putService("web", "A"));
        TRY(s.addEvent({0, 0, "start", "web", cid(1), ""}));
        return {};
    }));
    CHECK(ok(s.getContainer(cid(1))).has_value());
    CHECK(ok(s.getService("web"))->generation == 1);
    CHECK(ok(s.events()).size() == 1);
}

TEST_CASE("store: two connections writing at once lose nothing", "[store]") {
    test::TempDir dir("hull-store");
    const std::string path = dir / "node.db";
    { Store init = openOrFail(path); }
    constexpr int kPerWriter = 300;
    std::string errors[2];
    auto writer = [&](int w) {
        auto s = Store::open(path);
        if (!s) {
            errors[w] = s.error().message();
            return;
        }
        for (int i = 0; i < kPerWriter; ++i) {
            ContainerRow c = rowFor(i);
            c.id = std::to_string(w) + "-" + c.id;
            auto r = s->transaction([&]() -> Result<void> {
                TRY(s->putContainer(c));
                TRY(s->putService("svc" + std::to_string(w), std::to_string(i)));
                TRY(s->addEvent({0, 0, "start", "", c.id, ""}));
                return {};
            });
            if (!r) {
                errors[w] = r.error().message();
                return;
            }
        }
    };
    std::thread t0(writer, 0), t1(writer, 1);
    t0.join();
    t1.join();
    CHECK(errors[0].empty());
    CHECK(errors[1].empty());
    INFO(errors[0] << " / " << errors[1]);

    Store s = openOrFail(path);
    CHECK(ok(s.listContainers()).size() == 2 * kPerWriter);
    CHECK(ok(s.events(0, 10000)).size() == 2 * kPerWriter);
    CHECK(ok(s.getService("svc0"))->generation == kPerWriter);
    CHECK(ok(s.getService("svc1"))->generation == kPerWriter);
}

TEST_CASE("store: SIGKILL mid-write leaves a consistent prefix", "[store]") {
    std::mt19937 rng(std::random_device{}());
    for (int round = 0; round < 4; ++round) {
        test::TempDir dir("hull-store");
        const std::string path = dir / "node.db";
        constexpr int kMax = 200000;
        int pipeFds[2];
        REQUIRE(pipe(pipeFds) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            // The child: no Catch2, no destructors; _exit only.
            close(pipeFds[0]);
            auto s = Store::open(path);
            if (!s) _exit(2);
            for (int i = 0; i < kMax; ++i) {
                auto r = s->transaction([&]() -> Result<void> {
                    TRY(s->putContainer(rowFor(i)));
                    TRY(s->addEvent({0, i + 1, "start", "", cid(i), std::to_string(i)}));
                    return {};
                });
                if (!r) _exit(3);
                if (i == 10) {
                    char x = 1;
                    if (write(pipeFds[1], &x, 1) != 1) _exit(4);
                }
            }
            _exit(0);
        }
        close(pipeFds[1]);
        char x = 0;
        REQUIRE(read(pipeFds[0], &x, 1) == 1);  // writing has begun
        close(pipeFds[0]);
        std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 80000)(rng)));
        REQUIRE(kill(pid, SIGKILL) == 0);
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        INFO("round " << round << ", child status " << status);
        REQUIRE(WIFSIGNALED(status));  // killed mid-run, not finished or failed

        Store s = openOrFail(path);
        {
            RawDb raw(path);
            CHECK(raw.scalar("PRAGMA integrity_check") == "ok");
        }
        auto rows = ok(s.listContainers());
        std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.id < b.id; });
        const int k = static_cast<int>(rows.size());
        INFO("rows committed: " << k);
        CHECK(k > 10);
        for (int i = 0; i < k; ++i) checkRow(rows[static_cast<size_t>(i)], i);
        // The event of each transaction is there iff its container is.
        auto ev = ok(s.events(0, kMax));
        REQUIRE(static_cast<int>(ev.size()) == k);
        for (int i = 0; i < k; ++i) {
            CHECK(ev[static_cast<size_t>(i)].container == cid(i));
            CHECK(ev[static_cast<size_t>(i)].timeMs == i + 1);
        }
        // And it takes writes again.
        ok(s.putContainer(rowFor(k)));
        CHECK(ok(s.getContainer(cid(k))).has_value());
    }
}

TEST_CASE("store: a newer schema is refused", "[store]") {
    test::TempDir dir("hull-store");
    const std::string path = dir / "node.db";
    { Store s = openOrFail(path); }
    {
        RawDb raw(path);
        raw.exec("PRAGMA user_version = 99");
    }
    auto s = Store::open(path);
    REQUIRE_FALSE(s);
    INFO(s.error().message());
    CHECK(s.error().message().find(path) != std::string::npos);
    CHECK(s.error().message().find("schema version 99 is newer") != std::string::npos);
}

TEST_CASE("store: open errors name the path", "[store]") {
    test::TempDir dir("hull-store");
    const std::string path = dir / "missing/node.db";
    auto s = Store::open(path);
    REQUIRE_FALSE(s);
    CHECK(s.error().message().find("store: open " + path + ": ") == 0);
}
