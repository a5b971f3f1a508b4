#pragma once
// Shared helpers for hull's tests: temp dirs, busybox root filesystems, and
// running hull's binaries with captured output.
#include <functional>
#include <string>
#include <vector>

namespace hull::test {

/// A directory under /tmp (or $TMPDIR) removed, recursively, on destruction.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "hull-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

private:
    std::string path_;
};

bool isRoot();
/// In a test case: warn and return unless running as root.
#define REQUIRE_ROOT()                   \
    do {                                 \
        if (!::hull::test::isRoot()) {   \
            WARN("skipped: needs root"); \
            return;                      \
        }                                \
    } while (0)

/// Whether this build runs under AddressSanitizer (scripts/build --sanitize): its allocator
/// keeps its own books, so heap and RSS figures say nothing of hull's.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif
/// In a test case that measures memory: warn and return under AddressSanitizer.
#define SKIP_UNDER_ASAN()                                                           \
    do {                                                                            \
        if (::hull::test::kAddressSanitizer) {                                      \
            WARN("skipped: memory figures mean nothing under AddressSanitizer");    \
            return;                                                                 \
        }                                                                           \
    } while (0)

/// Poll COND every 10 ms until it holds or MS milliseconds have passed; its last answer.
bool waitFor(const std::function<bool()>& cond, int ms = 5000);
/// Path of a built binary: HULL_BIN_DIR/name.
std::string binPath(const std::string& name);
/// An unprivileged user for daemons that need no privilege (the master): nobody's uid and gid.
struct Unprivileged {
    unsigned uid = 65534, gid = 65534;
};
Unprivileged unprivilegedUser();
/// build/bin/NAME where UNPRIVILEGED can run it: a copy in a 0755 directory of this test
/// process's (the build tree may be under a directory only root can enter).
std::string binPathForUnprivileged(const std::string& name);
/// In a child before exec: drop to UNPRIVILEGED (no supplementary groups); false when it cannot.
bool dropToUnprivileged();
/// Where busybox-static lives on this machine ("" when missing).
std::string busyboxPath();

/// Populate DIR as a minimal busybox root: /bin/busybox, applet links for sh and
/// the usual tools, and the empty /proc /sys /dev /tmp /etc directories.
void makeBusyboxRootfs(const std::string& dir);

struct RunResult {
    int status = -1;  // exit code, or 128+signal
    std::string out, err;
};
/// Run argv (argv[0] is a path), stdin from /dev/null, capturing stdout/stderr.
RunResult run(const std::vector<std::string>& argv, const std::string& input = "");

std::string readFileOr(const std::string& path, const std::string& fallback = "");
void writeFileOrThrow(const std::string& path, const std::string& data);

}  // namespace hull::test
