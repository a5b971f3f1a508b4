// The eBPF device filter, checked by running it: a small interpreter for the
// instructions compileDeviceFilter emits stands in for the kernel's.
#include <catch2/catch.hpp>
#include <stdexcept>

#include "cgroups/device_filter.hpp"

using namespace hull::cgroups;

namespace {

/// Run PROG on a bpf_cgroup_dev_ctx; returns r0. Throws on anything unexpected,
/// so a malformed program fails the test instead of passing by accident.
int run(const std::vector<bpf_insn>& prog, uint32_t type, uint32_t access, uint32_t major, uint32_t minor) {
    uint32_t ctx[3] = {(access << 16) | type, major, minor};
    uint64_t reg[11] = {};
    size_t pc = 0;
    for (int steps = 0; steps < 10000; ++steps) {
        if (pc >= prog.size()) throw std::runtime_error("fell off the end");
        const bpf_insn& i = prog[pc++];
        uint8_t cls = BPF_CLASS(i.code);
        if (cls == BPF_LDX) {
            if (i.src_reg != BPF_REG_1 || i.off % 4 || i.off < 0 || i.off > 8) throw std::runtime_error("bad load");
            reg[i.dst_reg] = ctx[i.off / 4];
        } else if (cls == BPF_ALU64) {
            uint64_t src = BPF_SRC(i.code) == BPF_X ? reg[i.src_reg] : uint64_t(int64_t(i.imm));
            switch (BPF_OP(i.code)) {
            case BPF_MOV: reg[i.dst_reg] = src; break;
            case BPF_AND: reg[i.dst_reg] &= src; break;
            case BPF_RSH: reg[i.dst_reg] >>= src; break;
            default: throw std::runtime_error("unexpected ALU op");
            }
        } else if (cls == BPF_JMP) {
            if (BPF_OP(i.code) == BPF_EXIT) return int(reg[0]);
            uint64_t imm = uint64_t(int64_t(i.imm));
            bool taken = BPF_OP(i.code) == BPF_JEQ ? reg[i.dst_reg] == imm
                       : BPF_OP(i.code) == BPF_JNE ? reg[i.dst_reg] != imm
                                                   : throw std::runtime_error("unexpected jump");
            if (taken) pc += size_t(i.off);
        } else {
            throw std::runtime_error("unexpected instruction class");
        }
    }
    throw std::runtime_error("no exit");
}

constexpr uint32_t C = BPF_DEVCG_DEV_CHAR, B = BPF_DEVCG_DEV_BLOCK;
constexpr uint32_t R = BPF_DEVCG_ACC_READ, W = BPF_DEVCG_ACC_WRITE, M = BPF_DEVCG_ACC_MKNOD;

}  // namespace

TEST_CASE("device filter: deny all, then allow a few, as podman sends", "[cgroups][devices]") {
    std::vector<DeviceRule> rules = {
        {false, "a", {}, {}, "rwm"},
        {true, "c", {}, {}, "m"},
        {true, "b", {}, {}, "m"},
        {true, "c", 1, 3, "rwm"},     // /dev/null
        {true, "c", 136, {}, "rw"},  // /dev/pts/*
    };
    auto prog = compileDeviceFilter(rules);
    CHECK(run(prog, C, R | W, 1, 3) == 1);
    CHECK(run(prog, C, R, 1, 5) == 0);        // /dev/zero: not listed
    CHECK(run(prog, C, M, 4, 1) == 1);        // mknod of any char device
    CHECK(run(prog, B, M, 8, 0) == 1);        // ... and block device
    CHECK(run(prog, B, R, 8, 0) == 0);        // but not reading a disk
    CHECK(run(prog, C, R | W, 136, 7) == 1);  // any pts
    CHECK(run(prog, C, R | W | M, 136, 7) == 0);  // the pts rule does not grant mknod
}

TEST_CASE("device filter: the last matching rule wins, no match allows", "[cgroups][devices]") {
    auto none = compileDeviceFilter({});
    CHECK(run(none, B, R, 8, 0) == 1);
    std::vector<DeviceRule> rules = {
        {true, "c", 10, 200, "rwm"},
        {false, "c", 10, 200, "w"},  // later deny of write only
    };
    auto prog = compileDeviceFilter(rules);
    CHECK(run(prog, C, R, 10, 200) == 1);
    CHECK(run(prog, C, R | W, 10, 200) == 0);
    CHECK(run(prog, C, W, 10, 201) == 1);  // another minor: nothing matches
    CHECK(run(prog, B, W, 10, 200) == 1);  // another type
}

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.hpp"
#include "support.hpp"
#include "sys/fs.hpp"
#include "sys/scope_exit.hpp"

TEST_CASE("device filter: attached to a real cgroup2 directory, the kernel enforces it", "[root][cgroups][devices]") {
    // Any cgroup2 mount will do, also the nearly empty one of a hybrid host:
    // device filters belong to the v2 hierarchy whatever the controllers.
    std::string mount;
    for (const char* m : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
        struct statfs s;
        if (::statfs(m, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC) mount = m;
    }
    if (!hull::test::isRoot() || mount.empty()) {
        WARN("skipped: needs root and a cgroup2 mount");
        return;
    }
    std::string dir = mount + "/" + hull::test::uniqueCgroupName("devices");
    REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
    hull::ScopeExit cleanup([&] { ::rmdir(dir.c_str()); });
    {
        auto fd = hull::sys::openFile(dir, O_RDONLY | O_DIRECTORY);
        REQUIRE(fd);
        // Deny reading /dev/null (1:3); everything else stays allowed.
        auto r = attachDeviceFilter(fd->get(), compileDeviceFilter({{false, "c", 1, 3, "r"}}));
        INFO((r ? "" : r.error().message()));
        REQUIRE(r);
        // Attaching again replaces the first program instead of stacking a second.
        REQUIRE(attachDeviceFilter(fd->get(), compileDeviceFilter({{false, "c", 1, 3, "r"}})));
    }
    pid_t child = ::fork();
    if (child == 0) {
        if (!hull::sys::writeFile(dir + "/cgroup.procs", "0")) ::_exit(10);
        int null = ::open("/dev/null", O_RDONLY);
        bool nullDenied = null < 0 && errno == EPERM;
        int zero = ::open("/dev/zero", O_RDONLY);
        ::_exit(nullDenied && zero >= 0 ? 0 : 11);
    }
    int st = 0;
    REQUIRE(::waitpid(child, &st, 0) == child);
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
}
