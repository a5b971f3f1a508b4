// runtime::cloneProcess: clone3 first, plain clone where clone3 is refused
// (ENOSYS: an old kernel, or a seccomp filter such as the one hull puts on
// containers), and the error itself for anything else. Real processes; the
// refusal is a stand-in for the system call.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>

#include "runtime/clone.hpp"

using hull::runtime::Cloned;
using hull::runtime::cloneProcess;

namespace {

/// The child's exit status, reaped.
int reap(const Cloned& c) {
    int status = 0;
    REQUIRE(::waitpid(pid_t(c.pid), &status, 0) == pid_t(c.pid));
    if (c.pidfd >= 0) ::close(c.pidfd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("clone: clone3 refused with ENOSYS falls back to clone, with a pidfd and no cgroup", "[clone]") {
    int tried = 0;
    Cloned c = cloneProcess(0, -1, [&](void*, size_t) -> long {
        ++tried;
        errno = ENOSYS;
        return -1;
    });
    if (c.pid == 0) ::_exit(7);  // the child
    CHECK(tried == 1);
    REQUIRE(c.pid > 0);
    CHECK(c.pidfd >= 0);
    CHECK_FALSE(c.intoCgroup);
    CHECK(reap(c) == 7);
    // E2BIG (a kernel whose clone_args is shorter) too.
    Cloned d = cloneProcess(0, -1, [](void*, size_t) -> long {
        errno = E2BIG;
        return -1;
    });
    if (d.pid == 0) ::_exit(8);
    REQUIRE(d.pid > 0);
    CHECK(reap(d) == 8);
}

TEST_CASE("clone: any other refusal of clone3 is the error, with no second try", "[clone]") {
    Cloned c = cloneProcess(0, -1, [](void*, size_t) -> long {
        errno = EPERM;
        return -1;
    });
    if (c.pid == 0) ::_exit(0);  // must not happen: the test would see two processes return
    CHECK(c.pid == -1);
    CHECK(c.error == EPERM);
    // EINVAL without a cgroup is not the CLONE_INTO_CGROUP case: no fallback either.
    Cloned d = cloneProcess(0, -1, [](void*, size_t) -> long {
        errno = EINVAL;
        return -1;
    });
    if (d.pid == 0) ::_exit(0);
    CHECK(d.pid == -1);
    CHECK(d.error == EINVAL);
}

TEST_CASE("clone: the real clone3 gives a child and its pidfd", "[clone]") {
    Cloned c = cloneProcess(0, -1);
    if (c.pid == 0) ::_exit(9);
    REQUIRE(c.pid > 0);
    CHECK(c.pidfd >= 0);
    CHECK(reap(c) == 9);
}
