#pragma once
// The image store under STATE/images: content-addressed blobs, unpacked layers
// shared by every image and container that uses them, and image records with
// their names. Every blob's sha256 (and size, where a descriptor gives one) is
// checked before it is committed with a rename, so nothing corrupt is stored.
//
//   blobs/sha256/<hex>          verified blobs (manifests, configs, layers)
//   layers/sha256/<blob hex>/   a layer blob unpacked once (images/unpack.hpp)
//   images/<config hex>.json    one record per image: manifest, config, layers, names
//   tmp/                        downloads and unpacks in progress
//   lock                        flock for every change
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "images/digest.hpp"
#include "images/registry.hpp"
#include "sys/error.hpp"
#include "sys/unique_fd.hpp"

namespace hull::images {

/// The parts of an image config ("config" in image-spec config.md) a runtime uses.
struct ImageConfig {
    std::vector<std::string> entrypoint, cmd, env;
    std::string workingDir, user, stopSignal;
    std::vector<std::string> exposedPorts;  // "80/tcp"
    std::vector<std::string> volumes;       // "/data"
    std::map<std::string, std::string> labels;
    std::string os = "linux", architecture = "amd64";
};
/// Parse a config blob; errors name the field.
[[nodiscard]] Result<ImageConfig> parseImageConfig(const std::string& json);

struct ImageRecord {
    Digest id;        // the config blob's digest, as Docker and podman name images
    Digest manifest;  // the (platform) manifest's digest
    std::vector<Digest> layers;
    std::vector<std::string> names;  // "127.0.0.1:5000/test/busybox:latest", "hull.local/busybox:latest"
    std::string created;             // RFC 3339, when stored here
    uint64_t size = 0;               // sum of the layer blobs
    ImageConfig config;
};

class Store : public BlobSink {
public:
    /// Open (creating if need be) the store at ROOT (STATE/images).
    [[nodiscard]] static Result<Store> open(const std::string& root);

    // ---- blobs
    bool has(const Digest& d) override;
    /// Move the file at PATH into the store after checking its sha256 is D.
    [[nodiscard]] Result<void> put(const Digest& d, const std::string& path) override;
    /// Copy from FD (a layout or an archive member) and commit, checking D and SIZE (-1 = unknown).
    [[nodiscard]] Result<void> putFromFd(const Digest& d, int fd, int64_t size);
    /// Store DATA; returns its digest.
    [[nodiscard]] Result<Digest> putBytes(const std::string& data);
    std::string blobPath(const Digest& d) const;
    [[nodiscard]] Result<std::string> readBlob(const Digest& d) const;

    // ---- layers
    /// The unpacked directory of layer blob D, unpacking it on first use.
    [[nodiscard]] Result<std::string> layerDir(const Digest& d);

    // ---- images
    /// Record an image from its manifest (already stored with its config and
    /// layers) and give it NAME ("" = none); a name moves from any image that had it.
    [[nodiscard]] Result<ImageRecord> commit(const Digest& manifest, const std::string& name);
    /// An image by name ("busybox" matches "…/busybox:latest" when unique),
    /// by id, or by an id prefix of at least 12 hex digits.
    [[nodiscard]] Result<ImageRecord> find(const std::string& nameOrId);
    [[nodiscard]] Result<std::vector<ImageRecord>> list();
    /// Remove a name; the image goes when its last name does (FORCE: the image
    /// with all its names). Blobs and layers stay until prune.
    [[nodiscard]] Result<void> remove(const std::string& nameOrId, bool force = false);
    struct PruneReport {
        std::vector<Digest> blobs, layers;
        uint64_t bytes = 0;
    };
    /// Delete blobs and unpacked layers that no image references and no
    /// container uses (IN_USE: layer digests of existing containers).
    [[nodiscard]] Result<PruneReport> prune(const std::vector<Digest>& inUse = {});

    const std::string& root() const { return root_; }
    std::string tmpDir() const { return root_ + "/tmp"; }

private:
    explicit Store(std::string root) : root_(std::move(root)) {}
    [[nodiscard]] Result<UniqueFd> lock();
    /// WITH_CONFIG: also read and parse each image's config blob (only `list`
    /// needs every one; `find` reads the one it returns).
    [[nodiscard]] Result<std::vector<ImageRecord>> listLocked(bool withConfig);
    [[nodiscard]] Result<void> writeRecord(const ImageRecord& r);
    std::string root_;
};

/// Import an OCI image layout (a directory, or a tar of one: skopeo's
/// oci-archive) or a docker-archive tar (`docker save`, skopeo docker-archive:).
/// NAME overrides the name in the archive ("" = keep; an OCI layout's
/// org.opencontainers.image.ref.name becomes hull.local/<name> unless it is a
/// full reference). Returns the images imported.
[[nodiscard]] Result<std::vector<ImageRecord>> importPath(Store& store, const std::string& path,
                                                         const std::string& name);

/// `hull image pull`: pull REF into the store and name it.
[[nodiscard]] Result<ImageRecord> pullImage(Store& store, const PullOptions& o);

}  // namespace hull::images
