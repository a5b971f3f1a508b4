#pragma once
// cgroup v2 has no devices.allow/deny: device access is decided by an eBPF
// program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup. We
// compile the OCI device rules into one (pure, unit-tested by interpreting
// it), then load and attach it.
#include <linux/bpf.h>

#include <vector>

#include "cgroups/resources.hpp"
#include "sys/error.hpp"

namespace hull::cgroups {

/// The rules as a program: the last rule that matches a request decides it, as
/// with v1's devices.allow/deny written in order; a request no rule matches is
/// allowed (a v1 child cgroup starts with its parent's allow-all). An allow
/// rule matches when it grants every requested access; a deny rule when it
/// names any of them. Types: "a" (all), "c", "b"; absent major/minor match any.
std::vector<bpf_insn> compileDeviceFilter(const std::vector<DeviceRule>& rules);

/// Load PROGRAM and attach it to the cgroup directory CGROUP_FD, then detach
/// programs that were attached before (so `update` replaces, never stacks).
[[nodiscard]] Result<void> attachDeviceFilter(int cgroupFd, const std::vector<bpf_insn>& program);

}  // namespace hull::cgroups
