#pragma once
// The registry's wire formats, parsed without a network: URLs and Location
// headers, WWW-Authenticate challenges, and the manifest documents (an index,
// a manifest and their descriptors). registry.cpp speaks HTTP around them; the
// fuzz targets (tests/fuzz/) and the unit tests call them directly. None of
// them trusts its input: any text gives a value or an error, never a crash.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "images/digest.hpp"
#include "images/registry.hpp"
#include "sys/error.hpp"
#include "sys/json.hpp"

namespace hull::images::wire {

inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";

bool isIndexType(const std::string& t);
bool isManifestType(const std::string& t);
bool isLayerType(const std::string& t);

/// An http or https URL as the registry client dials it.
struct Url {
    bool tls = true;
    std::string host;  // as written; IPv6 in brackets
    std::string port;
    std::string target = "/";  // path and query
    std::string authority() const { return host + ":" + port; }
    std::string hostHeader() const { return port == (tls ? "443" : "80") ? host : authority(); }
    std::string str() const { return (tls ? "https://" : "http://") + hostHeader() + target; }
    std::string bareHost() const {
        return host.size() > 1 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
    }
};

/// "https://host[:port][/path][?query]": no user info kept, no fragment.
[[nodiscard]] Result<Url> parseUrl(const std::string& s);
/// A Location header against the URL it answered: absolute, scheme-relative,
/// absolute-path or relative.
[[nodiscard]] Result<Url> resolveLocation(const Url& base, const std::string& loc);
/// Percent-encoding of everything but RFC 3986's unreserved characters.
std::string urlEncode(std::string_view s);

/// WWW-Authenticate: Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="…"
struct Challenge {
    std::string scheme;  // lowercase
    std::vector<std::pair<std::string, std::string>> params;  // keys lowercase
    std::string param(const std::string& k) const;
};
Challenge parseChallenge(std::string_view s);

/// {mediaType, digest, size} of an index entry, a config or a layer.
struct Descriptor {
    std::string mediaType;
    Digest digest;
    uint64_t size = 0;
};
[[nodiscard]] Result<Descriptor> parseDescriptor(const json::Value& v, const std::string& what);

/// A manifest document's media type: its own mediaType, else CONTENT_TYPE's,
/// else told by its fields (an OCI document may omit it). Docker schema 1 is
/// refused. WHAT names the document in errors.
[[nodiscard]] Result<std::string> manifestMediaType(const json::Value& doc, const std::string& contentType,
                                                    const std::string& what);
/// The entry of an index for WANT ("no manifest for platform …" listing what
/// there is, when none). An arm64 or arm entry without a variant is v8 or v7.
[[nodiscard]] Result<Descriptor> selectPlatform(const json::Value& index, const Platform& want, const std::string& what);

/// A platform manifest's blobs, their media types checked. Errors start with
/// REF ("host/repo:tag"); NAME is the document's ("manifest sha256:…").
struct ManifestBlobs {
    Descriptor config;
    std::vector<Descriptor> layers;  // base first
};
[[nodiscard]] Result<ManifestBlobs> parseManifest(const json::Value& doc, const std::string& ref, const std::string& name);

}  // namespace hull::images::wire
