#pragma once
// Helpers shared by the v1 and v2 managers: control files read and written in
// place (never O_CREAT: a missing controller fails as on the kernel), recursive
// pid listing, depth-first removal, and signalling until nothing new appears.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sys/error.hpp"

namespace hull::cgroups::util {

/// How long freeze/thaw wait for the kernel to report the state reached.
inline constexpr std::chrono::milliseconds kDefaultStateTimeout{5000};

/// DIR/FILE's content; errors name the file.
[[nodiscard]] Result<std::string> readControl(const std::string& dir, const std::string& file);
/// Write VALUE to the existing DIR/FILE in one write(); errors name the file.
[[nodiscard]] Result<void> writeControl(const std::string& dir, const std::string& file, std::string_view value);

/// "key value" lines (cgroup.events, memory.stat): the value of KEY.
std::optional<std::string> keyedValue(std::string_view text, std::string_view key);
/// One pid per line (cgroup.procs, tasks).
std::vector<pid_t> parsePids(std::string_view text);

/// Pids in DIR/cgroup.procs and every sub-cgroup's, sorted and unique. A missing
/// DIR is an empty cgroup; a missing cgroup.procs in an existing one is an error.
[[nodiscard]] Result<std::vector<pid_t>> readPidsRecursive(const std::string& dir);

/// rmdir DIR's sub-cgroups depth-first, then DIR; EBUSY (tasks still exiting) is
/// retried with short sleeps. A missing DIR is success.
[[nodiscard]] Result<void> removeCgroupDir(const std::string& dir);

/// Send SIG to every pid LIST returns, listing again until a round finds no pid
/// not yet signalled (processes fork while we walk). Vanished pids are fine.
[[nodiscard]] Result<void> signalUntilStable(const std::function<Result<std::vector<pid_t>>()>& list, int sig);

/// A container's cgroupsPath as a clean absolute path below its base ("/hull/web-1"),
/// whether given absolute or relative. Empty paths, "..", and paths naming the
/// base itself are refused: a container never gets the caller's own cgroup.
[[nodiscard]] Result<std::string> cleanCgroupsPath(const std::string& cgroupsPath);

/// The caller's placement (parseProcCgroup output) in the hierarchy holding any of
/// CONTROLLERS ("" = the unified one); "/" when the hierarchy is not listed.
std::string ownPlacement(const std::vector<std::pair<std::string, std::string>>& own,
                         const std::vector<std::string>& controllers);

/// PLACEMENT (a path in the hierarchy) as seen below a mount of MOUNT_ROOT (the
/// hierarchy directory mounted, from Layout::mountRoots; "" or "/" = all of it).
std::string placementBelowMount(const std::string& placement, const std::string& mountRoot);
/// Layout::mountRoots' entry for MOUNT, "/" when it has none.
std::string mountRootOf(const std::vector<std::pair<std::string, std::string>>& mountRoots,
                        const std::string& mount);

/// Sub-directory names of DIR (cgroups below it); empty when DIR is missing.
std::vector<std::string> subdirs(const std::string& dir);

}  // namespace hull::cgroups::util
