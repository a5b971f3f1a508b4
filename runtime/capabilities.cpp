#include "runtime/capabilities.hpp"

#include <sys/capability.h>
#include <sys/prctl.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <charconv>
#include <memory>
#include <string_view>

#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::runtime {
namespace {

// Indexed by capability number (linux/capability.h). Our own table rather than
// cap_from_name: libcap also accepts numbers and "all", which a config must not.
constexpr std::array<std::string_view, 41> kNames = {
    "CAP_CHOWN",            "CAP_DAC_OVERRIDE",   "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",           "CAP_KILL",           "CAP_SETGID",          "CAP_SETUID",
    "CAP_SETPCAP",          "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",        "CAP_NET_RAW",        "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",       "CAP_SYS_RAWIO",      "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",        "CAP_SYS_ADMIN",      "CAP_SYS_BOOT",        "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",     "CAP_SYS_TIME",       "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
    "CAP_LEASE",            "CAP_AUDIT_WRITE",    "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",     "CAP_MAC_ADMIN",      "CAP_SYSLOG",          "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",    "CAP_AUDIT_READ",     "CAP_PERFMON",         "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

int probeLastCapability() {
    if (auto text = sys::readFile("/proc/sys/kernel/cap_last_cap")) {
        std::string t = sys::trim(*text);
        int n = -1;
        auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
        if (ec == std::errc() && end == t.data() + t.size() && n >= 0 && n < 64) return n;
    }
    // No /proc (yet): the bounding-set query fails with EINVAL past the last cap.
    int cap = 0;
    while (cap < 63 && ::prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0) ++cap;
    return cap;
}

struct CapDeleter {
    void operator()(_cap_struct* c) const { cap_free(c); }
};
using CapPtr = std::unique_ptr<_cap_struct, CapDeleter>;

constexpr bool has(uint64_t mask, int cap) { return (mask >> cap) & 1; }

}  // namespace

int capabilityFromName(const std::string& name) {
    std::string_view n = name;
    std::string full;
    if (n.size() < 4 || !equalsIgnoreCase(n.substr(0, 4), "CAP_")) {
        full = "CAP_" + name;
        n = full;
    }
    for (size_t i = 0; i < kNames.size(); ++i)
        if (equalsIgnoreCase(kNames[i], n)) return int(i);
    return -1;
}

bool isCapabilityName(std::string_view name) { return std::find(kNames.begin(), kNames.end(), name) != kNames.end(); }

std::string capabilityName(int cap) {
    if (cap >= 0 && size_t(cap) < kNames.size()) return std::string(kNames[size_t(cap)]);
    return "CAP_" + std::to_string(cap);
}

int lastCapability() {
    // The kernel does not change under us; read it once (before any chroot).
    static const int last = probeLastCapability();
    return last;
}

Result<CapabilityPlan> planCapabilities(const Capabilities& caps) {
    CapabilityPlan plan;
    const int last = lastCapability();
    const std::pair<const char*, std::pair<const std::vector<std::string>*, uint64_t*>> sets[] = {
        {"bounding", {&caps.bounding, &plan.bounding}},
        {"effective", {&caps.effective, &plan.effective}},
        {"inheritable", {&caps.inheritable, &plan.inheritable}},
        {"permitted", {&caps.permitted, &plan.permitted}},
        {"ambient", {&caps.ambient, &plan.ambient}},
    };
    for (auto& [key, set] : sets) {
        auto& [names, mask] = set;
        for (size_t i = 0; i < names->size(); ++i) {
            int cap = capabilityFromName((*names)[i]);
            if (cap < 0)
                return failInvalid("process.capabilities." + std::string(key) + "[" + std::to_string(i) +
                                   "]: unknown capability \"" + (*names)[i] + "\"");
            // A capability this kernel does not have cannot be granted; runc drops
            // it quietly so one config works across kernels.
            if (cap > last) continue;
            *mask |= uint64_t(1) << cap;
        }
    }
    // The kernel raises an ambient capability only when it is both permitted and
    // inheritable. runc's own default spec lists ambient capabilities with no
    // inheritable set, and runc and crun warn and go on; so do we.
    uint64_t unraisable = plan.ambient & ~(plan.permitted & plan.inheritable);
    for (int cap = 0; cap <= last && unraisable; ++cap) {
        if (!has(unraisable, cap)) continue;
        log::debugf("process.capabilities.ambient: %s is not both permitted and inheritable; not raised",
                   capabilityName(cap).c_str());
    }
    plan.ambient &= ~unraisable;
    return plan;
}

Result<void> dropBoundingSet(const CapabilityPlan& plan) {
    const int last = lastCapability();
    for (int cap = 0; cap <= last; ++cap) {
        if (has(plan.bounding, cap)) continue;
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return failErrno("drop " + capabilityName(cap) + " from the bounding set");
    }
    return {};
}

Result<void> applyCapabilitySets(const CapabilityPlan& plan) {
    const int last = lastCapability();
    // planCapabilities keeps only raisable ambient capabilities; a plan made
    // otherwise is a bug, and the kernel would refuse it with a bare EPERM.
    assert((plan.ambient & ~(plan.permitted & plan.inheritable)) == 0);

    CapPtr state(cap_init());
    if (!state) return failErrno("cap_init");
    for (int cap = 0; cap <= last; ++cap) {
        cap_value_t v[1] = {cap};
        if (has(plan.effective, cap) && cap_set_flag(state.get(), CAP_EFFECTIVE, 1, v, CAP_SET) < 0)
            return failErrno("set effective " + capabilityName(cap));
        if (has(plan.permitted, cap) && cap_set_flag(state.get(), CAP_PERMITTED, 1, v, CAP_SET) < 0)
            return failErrno("set permitted " + capabilityName(cap));
        if (has(plan.inheritable, cap) && cap_set_flag(state.get(), CAP_INHERITABLE, 1, v, CAP_SET) < 0)
            return failErrno("set inheritable " + capabilityName(cap));
    }
    if (cap_set_proc(state.get()) < 0) return failErrno("set capabilities");

    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) return failErrno("clear ambient capabilities");
    for (int cap = 0; cap <= last; ++cap) {
        if (!has(plan.ambient, cap)) continue;
        if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return failErrno("raise ambient " + capabilityName(cap));
    }
    return {};
}

}  // namespace hull::runtime
