#pragma once
// hull's defaults for its own containers: a capability set and a seccomp
// profile, written by us in the spirit of Docker's. `hull-runc spec` writes them
// into the default config.json and later `hull run` uses them.
#include <string>
#include <vector>

#include "runtime/spec.hpp"
#include "sys/json.hpp"

namespace hull::runtime {

/// One row of the blocked-syscall table: why a group is refused, and how.
struct BlockedGroup {
    const char* group;   // "kernel modules"
    const char* reason;  // "loading code into the shared kernel is a host takeover"
    std::vector<const char*> syscalls;
    int errnoRet;  // EPERM, or ENOSYS where callers must fall back (clone3)
};

const std::vector<BlockedGroup>& blockedSyscallTable();
/// The capability names hull grants by default (Docker's 14).
const std::vector<std::string>& defaultCapabilities();
/// The default profile as a spec fragment: allow by default, the table's groups denied,
/// clone/unshare with namespace flags denied by argument.
Seccomp defaultSeccomp();
/// The config.json `hull-runc spec` writes (rootless: user namespace, no net).
json::Value defaultConfig(bool rootless);

}  // namespace hull::runtime
