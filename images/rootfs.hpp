#pragma once
// A container's root filesystem from image layers: overlayfs with the layers
// as lowerdirs (top layer first) and an upper and work dir of its own, or,
// where overlay cannot be mounted, a private copy of the layers stacked with
// their whiteouts applied.
#include <string>
#include <vector>

#include "sys/error.hpp"

namespace hull::images {

struct Rootfs {
    std::string path;   // DIR/rootfs: what config.json's root.path names
    bool overlay = true;
};

/// Make DIR/rootfs from LAYERS (bottom first, as a manifest lists them).
/// Creates DIR/upper and DIR/work for overlay (or copies into DIR/rootfs).
/// OVERLAY false: copy even where overlay would mount (tests of the fallback).
[[nodiscard]] Result<Rootfs> makeRootfs(const std::vector<std::string>& layers, const std::string& dir,
                                        bool overlay = true);
/// Unmount (if mounted) and remove DIR/rootfs, DIR/upper and DIR/work. Idempotent.
[[nodiscard]] Result<void> removeRootfs(const std::string& dir);

/// Copy the tree SRC into the directory DST (owners, modes, symlinks, devices
/// kept; overlay whiteouts in SRC remove what DST has at their place).
[[nodiscard]] Result<void> copyTree(const std::string& src, const std::string& dst);

/// The overlay mount options for LAYERS (pure; lowerdir is top first).
std::string overlayOptions(const std::vector<std::string>& layers, const std::string& dir);

}  // namespace hull::images
