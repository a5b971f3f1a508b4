#include "cgroups/device_filter.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "sys/fs.hpp"
#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

namespace hull::cgroups {

namespace {

// The few instruction forms the filter needs (linux/bpf_common.h encodings).
bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn i;
    std::memset(&i, 0, sizeof i);
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
}
bpf_insn loadWord(uint8_t dst, int16_t off) { return insn(BPF_LDX | BPF_MEM | BPF_W, dst, BPF_REG_1, off, 0); }
bpf_insn movReg(uint8_t dst, uint8_t src) { return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn movImm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
bpf_insn andImm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm); }
bpf_insn rshImm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, imm); }
bpf_insn jumpIf(uint8_t op, uint8_t dst, int32_t imm, int16_t off) { return insn(BPF_JMP | op | BPF_K, dst, 0, off, imm); }
bpf_insn exitInsn() { return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

// Registers: r2 type, r3 access, r4 major, r5 minor, r6 scratch.
constexpr uint8_t kType = BPF_REG_2, kAccess = BPF_REG_3, kMajor = BPF_REG_4, kMinor = BPF_REG_5,
                  kScratch = BPF_REG_6;

int32_t accessMask(const std::string& access) {
    int32_t m = 0;
    for (char c : access.empty() ? std::string("rwm") : access) {
        if (c == 'm') m |= BPF_DEVCG_ACC_MKNOD;
        if (c == 'r') m |= BPF_DEVCG_ACC_READ;
        if (c == 'w') m |= BPF_DEVCG_ACC_WRITE;
    }
    return m;
}

long bpf(int cmd, bpf_attr& attr) { return ::syscall(SYS_bpf, cmd, &attr, sizeof attr); }

}  // namespace

std::vector<bpf_insn> compileDeviceFilter(const std::vector<DeviceRule>& rules) {
    std::vector<bpf_insn> prog = {
        // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
        loadWord(kType, 0),  movReg(kAccess, kType), andImm(kType, 0xffff), rshImm(kAccess, 16),
        loadWord(kMajor, 4), loadWord(kMinor, 8),
    };
    // Last match wins: test the rules from the last to the first.
    for (auto it = rules.rbegin(); it != rules.rend(); ++it) {
        const DeviceRule& r = *it;
        // Each test jumps to the end of this rule's block when it does not match;
        // the offsets are filled in once the block's length is known.
        std::vector<bpf_insn> block;
        std::vector<size_t> exits;
        if (!r.type.empty() && r.type != "a") {
            exits.push_back(block.size());
            block.push_back(jumpIf(BPF_JNE, kType, r.type == "b" ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, 0));
        }
        int32_t mask = accessMask(r.access);
        block.push_back(movReg(kScratch, kAccess));
        if (r.allow) {
            block.push_back(andImm(kScratch, ~mask & 0x7));  // requests beyond the rule: no match
            exits.push_back(block.size());
            block.push_back(jumpIf(BPF_JNE, kScratch, 0, 0));
        } else {
            block.push_back(andImm(kScratch, mask));  // no requested access named: no match
            exits.push_back(block.size());
            block.push_back(jumpIf(BPF_JEQ, kScratch, 0, 0));
        }
        bool anyDevice = r.type.empty() || r.type == "a";
        if (!anyDevice && r.major && *r.major >= 0) {
            exits.push_back(block.size());
            block.push_back(jumpIf(BPF_JNE, kMajor, int32_t(*r.major), 0));
        }
        if (!anyDevice && r.minor && *r.minor >= 0) {
            exits.push_back(block.size());
            block.push_back(jumpIf(BPF_JNE, kMinor, int32_t(*r.minor), 0));
        }
        block.push_back(movImm(BPF_REG_0, r.allow ? 1 : 0));
        block.push_back(exitInsn());
        for (size_t e : exits) block[e].off = int16_t(block.size() - e - 1);
        prog.insert(prog.end(), block.begin(), block.end());
    }
    prog.push_back(movImm(BPF_REG_0, 1));
    prog.push_back(exitInsn());
    return prog;
}

Result<void> attachDeviceFilter(int cgroupFd, const std::vector<bpf_insn>& program) {
    // What is attached now, to detach once ours is in place (no gap without a filter).
    uint32_t oldIds[64] = {};
    bpf_attr q;
    std::memset(&q, 0, sizeof q);
    q.query.target_fd = uint32_t(cgroupFd);
    q.query.attach_type = BPF_CGROUP_DEVICE;
    q.query.prog_ids = reinterpret_cast<uint64_t>(oldIds);
    q.query.prog_cnt = 64;
    uint32_t oldCount = bpf(BPF_PROG_QUERY, q) == 0 ? q.query.prog_cnt : 0;

    static const char kLicense[] = "Apache-2.0";
    auto load = [&](char* log, uint32_t logSize) {
        bpf_attr a;
        std::memset(&a, 0, sizeof a);
        a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        a.insns = reinterpret_cast<uint64_t>(program.data());
        a.insn_cnt = uint32_t(program.size());
        a.license = reinterpret_cast<uint64_t>(kLicense);
        if (log) {
            a.log_buf = reinterpret_cast<uint64_t>(log);
            a.log_size = logSize;
            a.log_level = 1;
        }
        return bpf(BPF_PROG_LOAD, a);
    };
    long progFd = load(nullptr, 0);
    if (progFd < 0) {
        // Again with the verifier's log, whose last lines say what it refused.
        int e = errno;
        std::vector<char> log(1 << 20);
        (void)load(log.data(), uint32_t(log.size()));
        auto lines = sys::split(std::string(log.data()), '\n');
        std::string tail;
        for (size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i) tail += " | " + lines[i];
        return fail(Error::fromErrno("load the eBPF device filter (" + std::to_string(program.size()) +
                                     " instructions)" + tail, e));
    }
    UniqueFd prog{static_cast<int>(progFd)};

    bpf_attr attach;
    std::memset(&attach, 0, sizeof attach);
    attach.target_fd = uint32_t(cgroupFd);
    attach.attach_bpf_fd = uint32_t(prog.get());
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    if (bpf(BPF_PROG_ATTACH, attach) < 0) return failErrno("attach the eBPF device filter to the cgroup");

    for (uint32_t i = 0; i < oldCount && i < 64; ++i) {
        bpf_attr get;
        std::memset(&get, 0, sizeof get);
        get.prog_id = oldIds[i];
        long fd = bpf(BPF_PROG_GET_FD_BY_ID, get);
        if (fd < 0) continue;
        UniqueFd old{static_cast<int>(fd)};
        bpf_attr detach;
        std::memset(&detach, 0, sizeof detach);
        detach.target_fd = uint32_t(cgroupFd);
        detach.attach_bpf_fd = uint32_t(old.get());
        detach.attach_type = BPF_CGROUP_DEVICE;
        if (bpf(BPF_PROG_DETACH, detach) < 0)
            log::warnf("cgroup: detach the previous device filter (id %u): %s", oldIds[i], std::strerror(errno));
    }
    log::debugf("cgroup: device filter of %zu instructions attached", program.size());
    return {};
}

}  // namespace hull::cgroups
