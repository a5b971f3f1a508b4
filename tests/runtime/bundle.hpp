#pragma once
// Busybox bundles for the runtime's integration tests, and a hull-runc driver
// with a private --root per test.
#include <string>
#include <vector>

#include "support.hpp"

namespace hull::test {

struct BundleOptions {
    std::vector<std::string> args = {"/bin/sh", "-c", "true"};
    std::string hostname = "hull-test";
    bool readonlyRoot = false;
    bool userNamespace = false;        // map container 0 -> host kUserNsHostId
    std::vector<std::string> caps = {"CAP_CHOWN", "CAP_KILL"};  // all five sets
    bool noNewPrivileges = true;
    std::string seccomp;               // raw JSON object for linux.seccomp ("" = none)
    std::string hooks;                 // raw JSON object for hooks ("" = none)
    // /proc/kcore and /proc/sysrq-trigger are absent on some kernels (this VM's):
    // missing paths are skipped, and /proc/keys stands in as a file that exists.
    std::vector<std::string> maskedPaths = {"/proc/kcore", "/proc/keys", "/proc/acpi", "/sys/firmware"};
    std::vector<std::string> readonlyPaths = {"/proc/sys", "/proc/sysrq-trigger"};
    std::string extraMounts;           // raw JSON objects appended to mounts (",{...}")
    std::string resources;             // raw JSON object for linux.resources ("" = none)
    std::string cgroupsPath;           // linux.cgroupsPath ("" = the default, hull/<id>)
    std::string processExtra;          // raw JSON members added to process (",\"k\":v")
    std::string linuxExtra;            // raw JSON members added to linux (",\"k\":v")
};

inline constexpr unsigned kUserNsHostId = 200000;

std::string configJson(const BundleOptions& o);

/// A bundle in a temp dir: rootfs/ with busybox, and config.json.
class Bundle {
public:
    explicit Bundle(const BundleOptions& o = {});
    const std::string& path() const { return dir_.path(); }
    std::string rootfs() const { return dir_ / "rootfs"; }
    void writeConfig(const BundleOptions& o);

private:
    TempDir dir_;
};

/// hull-runc with --root in its own temp dir; deletes what tests leave.
class HullRunc {
public:
    HullRunc();
    ~HullRunc();
    RunResult operator()(std::vector<std::string> args, const std::string& input = "") const;
    const std::string& root() const { return root_.path(); }

private:
    TempDir root_;
};

/// The "status" of `state ID` ("" when state fails).
std::string statusOf(const HullRunc& rc, const std::string& id);
/// The "pid" of `state ID` (0 when state fails).
int pidOf(const HullRunc& rc, const std::string& id);
/// Lines of /proc/self/mountinfo that mention `needle`.
std::vector<std::string> mountsMentioning(const std::string& needle);
/// Cgroup directories named `name` anywhere under /sys/fs/cgroup (depth-limited).
std::vector<std::string> cgroupDirsNamed(const std::string& name);

}  // namespace hull::test
