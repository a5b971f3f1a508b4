#pragma once
// Unpacking one image layer (a tar, gzip- or zstd-compressed or plain) into a
// directory, safely: nothing is ever written outside DEST. The layer is first
// unpacked into a fresh directory and only then renamed into place, so a
// refused or broken layer leaves nothing behind.
//
// OCI image-spec "layer.md" semantics are kept as overlayfs needs them when
// the layers are later stacked as lowerdirs:
//   - a whiteout ".wh.NAME" becomes a 0:0 character device NAME (overlayfs's
//     whiteout); an opaque marker ".wh..wh..opq" sets the xattr
//     "trusted.overlay.opaque" = "y" on its directory;
//   - hardlinks, symlinks, owners (numeric uid/gid), modes (incl. setuid, sticky),
//     mtimes and xattrs are kept; device nodes and fifos are made only when the
//     caller may (root; CAP_MKNOD), else refused with the entry's name.
// Refused, with an error naming the entry, and DEST left untouched:
//   - a path with ".." that leaves the root, or an absolute path (a leading "/"
//     is stripped, as tar does, and then checked like any other);
//   - any write through a symlink: every parent directory of an entry is opened
//     with O_NOFOLLOW (or openat2 RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS), so a
//     symlink planted by an earlier entry (absolute or relative, pointing out)
//     cannot redirect a later write;
//   - a hardlink whose target is outside the layer root or not yet in the layer;
//   - a truncated or corrupt archive (e.g. a header that declares more data than
//     the stream holds).
#include <cstdint>
#include <string>

#include "sys/error.hpp"

namespace hull::images {

struct UnpackStats {
    uint64_t entries = 0;
    uint64_t bytes = 0;      // regular file contents written
    uint64_t whiteouts = 0;  // .wh. entries turned into overlay whiteouts (incl. opaque markers)
};

/// Unpack the layer at ARCHIVE (compression detected from the data) into DEST,
/// which must not exist yet; its parent must. On any error DEST does not exist
/// afterwards.
[[nodiscard]] Result<UnpackStats> unpackLayer(const std::string& archive, const std::string& dest);

}  // namespace hull::images
