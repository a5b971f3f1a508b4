// linux.resources -> control files, and control files -> stats: the pure
// formulas, then both managers applying and reading them on fixture trees.
#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "cgroups/limits.hpp"
#include "cgroups/v1_manager.hpp"
#include "cgroups/v2_manager.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::cgroups;
using hull::test::Fixture;

namespace {

std::vector<std::string> files(const Plan& p) {
    std::vector<std::string> out;
    for (const auto& w : p.writes) out.push_back(w.file + "=" + w.value);
    return out;
}

Resources everything() {
    Resources r;
    MemoryLimits m;
    m.limit = 32 << 20;
    m.reservation = 16 << 20;
    m.swap = 64 << 20;
    r.memory = m;
    CpuLimits c;
    c.shares = 1024;
    c.quota = 10000;
    c.period = 100000;
    c.cpus = "0-1";
    c.mems = "0";
    r.cpu = c;
    r.pidsLimit = 16;
    BlockIoLimits b;
    b.weight = 500;
    b.throttleReadBpsDevice = {{8, 0, 1048576}};
    b.throttleWriteIOPSDevice = {{8, 16, 100}};
    r.blockIO = b;
    r.hugepageLimits = {{"2MB", 4194304}};
    r.unified = {{"memory.high", "48M"}};
    return r;
}

}  // namespace

TEST_CASE("limits: v1 -> v2 conversions", "[cgroups][limits]") {
    CHECK(cpuWeightFromShares(0) == 0);
    CHECK(cpuWeightFromShares(2) == 1);
    CHECK(cpuWeightFromShares(1024) == 39);  // the default share is weight ~39, as runc and crun compute
    CHECK(cpuWeightFromShares(262144) == 10000);
    CHECK(cpuWeightFromShares(1u << 30) == 10000);  // clamped
    CHECK(ioWeightFromBlkioWeight(10) == 1);
    CHECK(ioWeightFromBlkioWeight(500) == 4950);
    CHECK(ioWeightFromBlkioWeight(1000) == 10000);
    CHECK(limitValue(-1) == "max");
    CHECK(limitValue(4096) == "4096");
    CHECK(swapMaxV2(32 << 20, 64 << 20) == std::optional<std::string>("33554432"));
    CHECK(swapMaxV2(32 << 20, 32 << 20) == std::optional<std::string>("0"));
    CHECK(swapMaxV2(32 << 20, -1) == std::optional<std::string>("max"));
    CHECK_FALSE(swapMaxV2(std::nullopt, 64 << 20));
    CHECK(cpuMaxValue(10000, 100000) == "10000 100000");
    CHECK(cpuMaxValue(-1, 50000) == "max 50000");
    CHECK(cpuMaxValue(20000, std::nullopt) == "20000 100000");
}

TEST_CASE("limits: the v2 plan writes every field to its file", "[cgroups][limits]") {
    auto p = planV2(everything());
    REQUIRE(p);
    CHECK(files(*p) == std::vector<std::string>{
                           "memory.low=16777216", "memory.max=33554432", "memory.swap.max=33554432",
                           "cpu.weight=39", "cpu.max=10000 100000", "cpuset.cpus=0-1", "cpuset.mems=0",
                           "pids.max=16", "io.weight=default 4950", "io.max=8:0 rbps=1048576",
                           "io.max=8:16 wiops=100", "hugetlb.2MB.max=4194304", "memory.high=48M"});
    CHECK(p->notes.empty());
    CHECK(p->writes.back().controller == "memory");
}

TEST_CASE("limits: the v1 plan keeps the kernel's order and names", "[cgroups][limits]") {
    Resources r = everything();
    r.unified.clear();
    r.devices = {{false, "a", {}, {}, "rwm"}, {true, "c", 1, 3, "rwm"}, {true, "c", 136, {}, "rw"}};
    auto p = planV1(r);
    REQUIRE(p);
    CHECK(files(*p) == std::vector<std::string>{
                           "devices.deny=a", "devices.allow=c 1:3 rwm", "devices.allow=c 136:* rw",
                           "memory.limit_in_bytes=33554432", "memory.memsw.limit_in_bytes=67108864",
                           "memory.soft_limit_in_bytes=16777216", "cpu.shares=1024", "cpu.cfs_period_us=100000",
                           "cpu.cfs_quota_us=10000", "cpuset.cpus=0-1", "cpuset.mems=0", "pids.max=16",
                           "blkio.weight=500", "blkio.throttle.read_bps_device=8:0 1048576",
                           "blkio.throttle.write_iops_device=8:16 100", "hugetlb.2MB.limit_in_bytes=4194304"});
}

TEST_CASE("limits: unlimited values", "[cgroups][limits]") {
    Resources r;
    r.pidsLimit = -1;
    MemoryLimits m;
    m.limit = -1;
    r.memory = m;
    CpuLimits c;
    c.quota = -1;
    r.cpu = c;
    CHECK(files(*planV2(r)) == std::vector<std::string>{"memory.max=max", "cpu.max=max 100000", "pids.max=max"});
    CHECK(files(*planV1(r)) ==
          std::vector<std::string>{"memory.limit_in_bytes=-1", "cpu.cfs_quota_us=-1", "pids.max=max"});
}

TEST_CASE("limits: what a version cannot do is noted, or refused with the field", "[cgroups][limits]") {
    Resources r;
    CpuLimits c;
    c.realtimeRuntime = 950000;
    r.cpu = c;
    MemoryLimits m;
    m.disableOOMKiller = true;
    r.memory = m;
    auto v2 = planV2(r);
    REQUIRE(v2);
    REQUIRE(v2->notes.size() == 2);
    CHECK_FALSE(v2->notes[0].fatal);
    CHECK(v2->notes[0].field == "linux.resources.memory.disableOOMKiller");
    CHECK(v2->notes[1].fatal);
    CHECK(v2->notes[1].field == "linux.resources.cpu.realtimeRuntime");
    auto v1 = planV1(r);
    REQUIRE(v1);
    CHECK(files(*v1) == std::vector<std::string>{"memory.oom_control=1", "cpu.rt_runtime_us=950000"});

    Resources u;
    u.unified = {{"memory.high", "1G"}};
    auto refused = planV1(u);
    REQUIRE(refused);
    REQUIRE(refused->notes.size() == 1);
    CHECK(refused->notes[0].fatal);
}

TEST_CASE("limits: bad values are refused naming the field", "[cgroups][limits]") {
    Resources swapBelow;
    MemoryLimits m;
    m.limit = 64 << 20;
    m.swap = 32 << 20;
    swapBelow.memory = m;
    auto a = planV2(swapBelow);
    REQUIRE_FALSE(a);
    CHECK(a.error().message().find("linux.resources.memory.swap:") == 0);
    REQUIRE_FALSE(planV1(swapBelow));

    for (const char* key : {"../cgroup.procs", "cgroup.procs", "memory", "a/b.c", ""}) {
        Resources r;
        r.unified = {{key, "1"}};
        auto p = planV2(r);
        INFO(key);
        REQUIRE_FALSE(p);
        CHECK(p.error().message().find("linux.resources.unified: key") == 0);
    }
    Resources huge;
    huge.hugepageLimits = {{"2MB/../../x", 1}};
    auto h = planV2(huge);
    REQUIRE_FALSE(h);
    CHECK(h.error().message().find("linux.resources.hugepageLimits[0].pageSize") == 0);
}

TEST_CASE("limits: stat files parse", "[cgroups][limits]") {
    auto kv = parseFlatKeyed("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nbad x\n\nnr_throttled 7\n");
    CHECK(kv.size() == 4);
    CHECK(kv["usage_usec"] == 1500);
    CHECK(kv["nr_throttled"] == 7);
    CHECK(parseLimit("max\n") == std::optional<uint64_t>(0));
    CHECK(parseLimit("33554432\n") == std::optional<uint64_t>(33554432));
    CHECK(parseLimit("9223372036854771712\n") == std::optional<uint64_t>(0));  // v1 "unlimited"
    CHECK_FALSE(parseLimit("12ab"));
    auto io = parseIoStat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n254:16 rbytes=1 wbytes=0 rios=1 wios=0\n");
    REQUIRE(io.size() == 2);
    CHECK(io[0].major == 8);
    CHECK(io[0].wbytes == 8192);
    CHECK(io[1].minor == 16);
    std::vector<Stats::IoDevice> v1;
    addBlkioV1(v1, "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\nTotal 4608\n", true);
    addBlkioV1(v1, "8:0 Read 3\n8:0 Write 1\n", false);
    REQUIRE(v1.size() == 1);
    CHECK(v1[0].rbytes == 4096);
    CHECK(v1[0].wbytes == 512);
    CHECK(v1[0].rios == 3);
    CHECK(v1[0].wios == 1);
}

TEST_CASE("limits: stats JSON has runc's shape", "[cgroups][limits]") {
    Stats s;
    s.cpu.usageUsec = 2;
    s.memory.usage = 4096;
    s.memory.oomKill = 1;
    s.pids.current = 3;
    auto v = json::Value::parse(statsJson(s));
    REQUIRE(v);
    uint64_t n = 0;
    REQUIRE(v->find("cpu")->find("usage")->find("total")->toUint64(n));
    CHECK(n == 2000);  // ns
    REQUIRE(v->find("memory")->find("usage")->find("usage")->toUint64(n));
    CHECK(n == 4096);
    REQUIRE(v->find("memory")->find("events")->find("oom_kill")->toUint64(n));
    CHECK(n == 1);
    REQUIRE(v->find("pids")->find("current")->toUint64(n));
    CHECK(n == 3);
}

TEST_CASE("limits: v2 apply writes the files, and a missing one names its controller", "[cgroups][limits]") {
    Fixture fx;
    std::string dir = fx.makeCgroup("hull/c");
    for (const char* f : {"memory.max", "memory.low", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight"})
        fx.makeFile(std::string("hull/c/") + f, "");  // writes do not truncate (kernel files need not)
    fx.makeFile("hull/c/cgroup.controllers", "cpu memory pids\n");
    V2Manager m(fx.root(), dir);
    Resources r;
    MemoryLimits mem;
    mem.limit = 32 << 20;
    r.memory = mem;
    r.pidsLimit = 16;
    REQUIRE(m.apply(r));
    CHECK(fx.read("hull/c/memory.max") == "33554432");
    CHECK(fx.read("hull/c/pids.max") == "16");
    CHECK(fx.read("hull/c/memory.low").empty());  // not in the config: untouched

    Resources io;
    io.blockIO = BlockIoLimits{};
    io.blockIO->weight = 100;
    auto e = m.apply(io);
    REQUIRE_FALSE(e);
    CHECK(e.error().message().find("the io controller is not enabled") != std::string::npos);
    CHECK(e.error().message().find("(enabled: cpu memory pids)") != std::string::npos);
    CHECK_FALSE(fx.exists("hull/c/io.weight"));
}

TEST_CASE("limits: v2 stats read every file", "[cgroups][limits]") {
    Fixture fx;
    std::string dir = fx.makeCgroup("c");
    fx.makeFile("c/cpu.stat", "usage_usec 900\nuser_usec 600\nsystem_usec 300\nnr_periods 10\nnr_throttled 4\nthrottled_usec 77\n");
    fx.makeFile("c/memory.current", "1048576\n");
    fx.makeFile("c/memory.max", "33554432\n");
    fx.makeFile("c/memory.stat", "anon 4096\nfile 0\n");
    fx.makeFile("c/memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n");
    fx.makeFile("c/pids.current", "3\n");
    fx.makeFile("c/pids.max", "max\n");
    V2Manager m(fx.root(), dir);
    auto s = m.stats();
    REQUIRE(s);
    CHECK(s->cpu.usageUsec == 900);
    CHECK(s->cpu.throttledPeriods == 4);
    CHECK(s->memory.usage == 1048576);
    CHECK(s->memory.limit == 33554432);
    CHECK(s->memory.raw["anon"] == 4096);
    CHECK(s->memory.oom == 2);
    CHECK(s->memory.oomKill == 1);
    CHECK(s->pids.current == 3);
    CHECK(s->pids.limit == 0);
    CHECK_FALSE(V2Manager(fx.root(), fx.path("gone")).stats());
}

TEST_CASE("limits: v1 apply goes to each controller's hierarchy", "[cgroups][limits]") {
    Fixture fx;
    std::vector<V1Hierarchy> hs = {
        {{"memory"}, false, fx.path("memory"), fx.makeCgroup("memory/c")},
        {{"pids"}, false, fx.path("pids"), fx.makeCgroup("pids/c")},
        {{"cpu", "cpuacct"}, false, fx.path("cpu,cpuacct"), fx.makeCgroup("cpu,cpuacct/c")},
    };
    for (const char* f : {"memory/c/memory.limit_in_bytes", "memory/c/memory.memsw.limit_in_bytes",
                          "pids/c/pids.max", "cpu,cpuacct/c/cpu.cfs_quota_us", "cpu,cpuacct/c/cpu.cfs_period_us"})
        fx.makeFile(f, "");
    V1Manager m(hs);
    Resources r;
    MemoryLimits mem;
    mem.limit = 32 << 20;
    mem.swap = 32 << 20;
    r.memory = mem;
    r.pidsLimit = 16;
    CpuLimits c;
    c.quota = 10000;
    c.period = 100000;
    r.cpu = c;
    REQUIRE(m.apply(r));
    CHECK(fx.read("memory/c/memory.limit_in_bytes") == "33554432");
    CHECK(fx.read("memory/c/memory.memsw.limit_in_bytes") == "33554432");
    CHECK(fx.read("pids/c/pids.max") == "16");
    CHECK(fx.read("cpu,cpuacct/c/cpu.cfs_quota_us") == "10000");

    Resources net;
    net.network = NetworkLimits{};
    net.network->classID = 7;
    auto e = m.apply(net);
    REQUIRE_FALSE(e);
    CHECK(e.error().message() == "linux.resources: net_cls.classid: no cgroup v1 hierarchy with the net_cls controller is mounted");
}

TEST_CASE("limits: v2 keeps the half of cpu.max an update does not give", "[cgroups][limits]") {
    Fixture fx;
    std::string dir = fx.makeCgroup("c");
    fx.makeFile("c/cpu.max", "20000 50000");
    V2Manager m(fx.root(), dir);
    Resources period;
    period.cpu = CpuLimits{};
    period.cpu->period = 200000;
    REQUIRE(m.apply(period));
    CHECK(fx.read("c/cpu.max") == "20000 200000");
    Resources quota;
    quota.cpu = CpuLimits{};
    quota.cpu->quota = 30000;
    REQUIRE(m.apply(quota));
    CHECK(fx.read("c/cpu.max") == "30000 200000");
}
