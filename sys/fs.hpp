#pragma once
// Small, fallible file-system helpers. All descriptors are O_CLOEXEC.
#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "sys/error.hpp"
#include "sys/unique_fd.hpp"

namespace hull::sys {

[[nodiscard]] Result<UniqueFd> openFile(const std::string& path, int flags, mode_t mode = 0);
[[nodiscard]] Result<UniqueFd> openAt(int dirfd, const std::string& path, int flags, mode_t mode = 0);
/// Whole file; errors name the path.
[[nodiscard]] Result<std::string> readFile(const std::string& path);
[[nodiscard]] Result<std::string> readFd(int fd);
/// Write without O_CREAT|O_TRUNC surprises: for control files (proc, cgroupfs).
[[nodiscard]] Result<void> writeExisting(const std::string& path, std::string_view data);
/// Create or truncate, then write.
[[nodiscard]] Result<void> writeFile(const std::string& path, std::string_view data, mode_t mode = 0644);
/// Write to PATH.tmp, fsync-free rename over PATH: readers see old or new, never half.
[[nodiscard]] Result<void> writeFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0644);
/// As writeFileAtomic, and on disk when it returns: the file fsynced before the
/// rename, its directory after. For what a power cut must not take back
/// (credentials issued, keys): slower, so not for per-container state.
[[nodiscard]] Result<void> writeFileDurable(const std::string& path, std::string_view data, mode_t mode = 0644);
[[nodiscard]] Result<void> writeAll(int fd, std::string_view data);
/// mkdir -p; existing directories are fine.
[[nodiscard]] Result<void> mkdirAll(const std::string& path, mode_t mode = 0755);
/// rm -rf, without following symlinks; a missing path is fine.
[[nodiscard]] Result<void> removeAll(const std::string& path);
bool exists(const std::string& path);
std::vector<std::string> listDir(const std::string& path);  // names, no "." "..", empty on error

std::string joinPath(std::string_view a, std::string_view b);
/// Lexically clean: collapse "//", ".", "..", never climbing above "/".
std::string cleanPath(std::string_view p);

std::vector<std::string> split(std::string_view s, char sep, bool skipEmpty = true);
std::string trim(std::string_view s);

}  // namespace hull::sys
