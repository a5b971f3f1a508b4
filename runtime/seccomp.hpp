#pragma once
// linux.seccomp -> a seccomp filter through libseccomp. The plan is computed
// (and its errors reported with JSON paths) in the parent; the child only loads it.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/spec.hpp"
#include "sys/error.hpp"

namespace hull::runtime {

struct SeccompArgCmp {
    unsigned index = 0;
    int op = 0;  // enum scmp_compare
    uint64_t datumA = 0, datumB = 0;
};

struct SeccompRule {
    std::string name;  // for messages
    int syscall = 0;   // resolved number (native arch)
    uint32_t action = 0;  // SCMP_ACT_* including the errno/trace data
    std::vector<SeccompArgCmp> args;
};

struct SeccompPlan {
    uint32_t defaultAction = 0;
    std::vector<uint32_t> architectures;  // SCMP_ARCH_* tokens
    std::vector<SeccompRule> rules;
    bool flagLog = false, flagSpecAllow = false, flagWaitKillable = false;
    std::vector<std::string> skipped;  // syscall names unknown to libseccomp
};

/// Resolve names, actions, operators and architectures. Unknown syscall names are
/// skipped (listed in `skipped`, logged at debug); a bad action, operator or
/// architecture is an error naming its field: "linux.seccomp.syscalls[3].action: ...".
[[nodiscard]] Result<SeccompPlan> planSeccomp(const Seccomp& spec);

/// Compile the plan to a BPF program (done in the parent, so the child's work
/// between clone and exec is one syscall).
[[nodiscard]] Result<std::string> compileSeccomp(const SeccompPlan& plan);

/// Load a compiled program into the calling thread. noNewPrivileges=false loads
/// without PR_SET_NO_NEW_PRIVS, which needs CAP_SYS_ADMIN at that moment.
[[nodiscard]] Result<void> loadSeccomp(const std::string& bpf, bool noNewPrivileges, const SeccompPlan& plan);

}  // namespace hull::runtime
