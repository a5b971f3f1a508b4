#pragma once
// One clone for the container's init and for exec'd processes: clone3 with a
// pidfd, straight into the container's cgroup (CLONE_INTO_CGROUP) when it has
// a cgroup v2 directory; else plain clone with CLONE_PIDFD, and the caller
// attaches the child to its cgroup itself. clone3 is missing on kernels before
// 5.3, refused with ENOSYS by seccomp filters that cannot read its flags (ours
// among them, for containers that run hull-runc in turn), and
// CLONE_INTO_CGROUP on kernels before 5.7 (E2BIG: a shorter struct; EINVAL).
#include <sys/types.h>

#include <cstdint>
#include <functional>

namespace hull::runtime {

struct Cloned {
    long pid = -1;            // as fork's: 0 in the child, the child's pid in the parent, -1 on failure
    int pidfd = -1;           // the parent's pidfd of the child (CLONE_PIDFD)
    bool intoCgroup = false;  // the child started in CGROUPFD: no attach needed
    int error = 0;            // errno when pid is -1
};

/// The clone3 system call, replaceable by tests (to see the fallback taken).
using Clone3Fn = std::function<long(void* args, size_t size)>;

/// Clone with FLAGS (namespaces; CLONE_PIDFD and SIGCHLD are added) into
/// CGROUPFD (-1: none). CLONE3: the system call to try first (tests).
Cloned cloneProcess(uint64_t flags, int cgroupFd, const Clone3Fn& clone3 = {});

}  // namespace hull::runtime
