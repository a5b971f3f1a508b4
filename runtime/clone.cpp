#include "runtime/clone.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL  // Linux 5.7; glibc 2.36's <sched.h> lacks it
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace hull::runtime {
namespace {

// struct clone_args (include/uapi/linux/sched.h), spelled out so we need not
// mix <linux/sched.h> with glibc's <sched.h>.
struct CloneArgs {
    uint64_t flags = 0, pidfd = 0, child_tid = 0, parent_tid = 0, exit_signal = 0, stack = 0, stack_size = 0, tls = 0,
             set_tid = 0, set_tid_size = 0, cgroup = 0;
};

}  // namespace

Cloned cloneProcess(uint64_t flags, int cgroupFd, const Clone3Fn& clone3) {
    Cloned out;
    CloneArgs args;
    args.flags = flags | CLONE_PIDFD;
    args.pidfd = uint64_t(uintptr_t(&out.pidfd));
    args.exit_signal = SIGCHLD;
    if (cgroupFd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = uint64_t(cgroupFd);
    }
    long r = clone3 ? clone3(&args, sizeof args) : ::syscall(SYS_clone3, &args, sizeof args);
    if (r >= 0) {
        out.pid = r;
        out.intoCgroup = cgroupFd >= 0;
        return out;
    }
    if (errno != ENOSYS && errno != E2BIG && !(cgroupFd >= 0 && errno == EINVAL)) {
        out.error = errno;
        return out;
    }
    // Plain clone: no cgroup at birth, the caller attaches. (x86-64's argument
    // order: flags, stack, parent_tid (the pidfd with CLONE_PIDFD), child_tid, tls.)
    out.pidfd = -1;
    r = ::syscall(SYS_clone, (unsigned long)(flags | CLONE_PIDFD | SIGCHLD), nullptr, &out.pidfd, nullptr, 0);
    if (r < 0) {
        out.error = errno;
        return out;
    }
    out.pid = r;
    return out;
}

}  // namespace hull::runtime
