#pragma once
// A client for the OCI distribution API (Docker Registry HTTP API v2): resolve
// a reference to a manifest for one platform and fetch its blobs, verifying
// every digest before handing a blob over. Boost.Beast over Boost.Asio, TLS with
// OpenSSL; plain HTTP only for registries named insecure.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "images/digest.hpp"
#include "sys/error.hpp"

namespace hull::images {

/// Whether REGISTRY (host[:port]) is on loopback: pulled over plain HTTP without being named insecure.
bool isLoopbackRegistry(const std::string& registry);

/// "registry.example:5000/team/app:1.2", "127.0.0.1:5000/busybox@sha256:…",
/// "busybox" (Docker Hub: "registry-1.docker.io", "library/busybox", "latest").
struct Reference {
    std::string registry;    // host[:port]
    std::string repository;  // "library/busybox"
    std::string tag;         // "latest" unless a digest is given
    std::optional<Digest> digest;
    [[nodiscard]] static Result<Reference> parse(const std::string& s);
    std::string str() const;  // canonical form
};

struct Platform {
    std::string os = "linux", architecture = "amd64", variant;
};

/// Where pulled blobs go: the image store implements it.
class BlobSink {
public:
    virtual ~BlobSink() = default;
    /// Already have it: the pull skips the download.
    virtual bool has(const Digest& d) = 0;
    /// A downloaded file whose sha256 and size were verified against D and the
    /// descriptor: take it (move it into the store). PATH is a temp file the
    /// sink may rename.
    [[nodiscard]] virtual Result<void> put(const Digest& d, const std::string& path) = 0;
};

struct PullOptions {
    Reference ref;
    Platform platform;                      // default: the host's (linux/amd64)
    /// Registries (host[:port]) spoken to over plain HTTP. A registry on loopback
    /// (127.0.0.0/8, localhost, [::1]) is too, always, as Docker does: the traffic
    /// never leaves the host.
    std::vector<std::string> insecure;
    std::string credentialsFile;            // JSON {"auths": {"host:port": {"auth": base64("user:pass")}}} ("" = none)
    std::string tempDir;                    // where downloads are written before put()
    int parallel = 3;                       // concurrent blob downloads
    /// Progress: one call per event (bytes so far of a blob, or done); the CLI
    /// draws bars on a terminal and plain lines otherwise.
    std::function<void(const std::string& what, uint64_t done, uint64_t total)> progress;
};

struct PulledImage {
    Digest manifest;            // the platform manifest's digest (not the index's)
    std::string manifestJson;   // as served (its sha256 is MANIFEST)
    std::string mediaType;      // OCI or Docker v2 schema 2 manifest media type
    Digest config;              // the config blob (also put() into the sink)
    std::vector<Digest> layers; // in order, base first (all put() into the sink or already there)
    std::vector<std::string> layerMediaTypes;
};

/// Pull REF: manifest (through an index/manifest list when there is one),
/// config and layers. Errors say what failed, in words a user can act on:
/// "127.0.0.1:5000/nope:latest: repository not found", "... tag \"x\" not found",
/// "authentication failed (401) for ...", "cannot connect to 127.0.0.1:5000: Connection refused",
/// "blob sha256:… does not match its digest".
[[nodiscard]] Result<PulledImage> pull(const PullOptions& o, BlobSink& sink);

}  // namespace hull::images
