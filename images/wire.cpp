#include "images/wire.hpp"

#include <cctype>
#include <optional>

#include "sys/fs.hpp"

namespace hull::images::wire {

bool isIndexType(const std::string& t) { return t == kOciIndex || t == kDockerList; }
bool isManifestType(const std::string& t) { return t == kOciManifest || t == kDockerManifest; }
bool isLayerType(const std::string& t) {
    return t == "application/vnd.oci.image.layer.v1.tar" || t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
           t == "application/vnd.oci.image.layer.v1.tar+zstd" ||
           t == "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

// ---- URLs ---------------------------------------------------------------------

Result<Url> parseUrl(const std::string& s) {
    Url u;
    std::string rest;
    if (s.rfind("https://", 0) == 0) {
        rest = s.substr(8);
    } else if (s.rfind("http://", 0) == 0) {
        u.tls = false;
        rest = s.substr(7);
    } else {
        return failInvalid("URL \"" + s + "\": not http or https");
    }
    auto slash = rest.find_first_of("/?#");
    std::string authority = rest.substr(0, slash);
    if (slash != std::string::npos) {
        u.target = rest.substr(slash);
        if (u.target.front() != '/') u.target = "/" + u.target;
        if (auto hash = u.target.find('#'); hash != std::string::npos) u.target.resize(hash);
    }
    if (auto at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);  // no userinfo
    auto close = authority.rfind(']');
    auto colon = authority.rfind(':');
    if (colon != std::string::npos && (close == std::string::npos || colon > close)) {
        u.host = authority.substr(0, colon);
        u.port = authority.substr(colon + 1);
    } else {
        u.host = authority;
    }
    if (u.port.empty()) u.port = u.tls ? "443" : "80";
    if (u.host.empty()) return failInvalid("URL \"" + s + "\": no host");
    return u;
}

Result<Url> resolveLocation(const Url& base, const std::string& loc) {
    if (loc.rfind("http://", 0) == 0 || loc.rfind("https://", 0) == 0) return parseUrl(loc);
    if (loc.rfind("//", 0) == 0) return parseUrl((base.tls ? "https:" : "http:") + loc);
    Url u = base;
    if (!loc.empty() && loc.front() == '/') {
        u.target = loc;
    } else {
        std::string path = base.target.substr(0, base.target.find('?'));
        u.target = path.substr(0, path.rfind('/') + 1) + loc;
    }
    return u;
}

std::string urlEncode(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
            out += char(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// ---- challenges ---------------------------------------------------------------

std::string Challenge::param(const std::string& k) const {
    for (auto& [pk, v] : params)
        if (pk == k) return v;
    return "";
}

Challenge parseChallenge(std::string_view s) {
    Challenge c;
    size_t i = 0;
    auto skipSpace = [&] {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) ++i;
    };
    skipSpace();
    while (i < s.size() && s[i] != ' ') c.scheme += char(std::tolower(static_cast<unsigned char>(s[i++])));
    for (;;) {
        skipSpace();
        if (i >= s.size()) break;
        std::string key;
        while (i < s.size() && s[i] != '=' && s[i] != ' ' && s[i] != ',') key += char(std::tolower(static_cast<unsigned char>(s[i++])));
        if (i >= s.size() || s[i] != '=') continue;
        ++i;
        std::string value;
        if (i < s.size() && s[i] == '"') {
            for (++i; i < s.size() && s[i] != '"'; ++i) {
                if (s[i] == '\\' && i + 1 < s.size()) ++i;
                value += s[i];
            }
            ++i;
        } else {
            while (i < s.size() && s[i] != ',' && s[i] != ' ') value += s[i++];
        }
        c.params.emplace_back(key, value);
    }
    return c;
}

// ---- manifests ----------------------------------------------------------------

Result<Descriptor> parseDescriptor(const json::Value& v, const std::string& what) {
    if (!v.isObject()) return failInvalid(what + ": not an object");
    Descriptor d;
    auto* mt = v.find("mediaType");
    auto* dg = v.find("digest");
    auto* sz = v.find("size");
    if (mt && mt->isString()) d.mediaType = mt->asString();
    if (!dg || !dg->isString()) return failInvalid(what + ": no digest");
    d.digest = TRY_CTX(what, Digest::parse(dg->asString()));
    if (!sz || !sz->toUint64(d.size)) return failInvalid(what + ": no size");
    return d;
}

Result<std::string> manifestMediaType(const json::Value& doc, const std::string& contentType, const std::string& what) {
    std::string mediaType;
    if (auto* mt = doc.find("mediaType"); mt && mt->isString()) mediaType = mt->asString();
    if (mediaType.empty()) {
        mediaType = sys::trim(contentType.substr(0, contentType.find(';')));
        // An OCI document may omit mediaType and come as plain JSON: tell by its fields.
        if (!isIndexType(mediaType) && !isManifestType(mediaType)) {
            if (doc.find("manifests")) mediaType = kOciIndex;
            else if (doc.find("config") && doc.find("layers")) mediaType = kOciManifest;
        }
    }
    if (auto* sv = doc.find("schemaVersion"); sv) {
        int64_t v = 0;
        if (sv->toInt64(v) && v == 1)
            return fail(Error::plain(ENOTSUP, what + ": Docker schema 1 manifests are not supported"));
    }
    return mediaType;
}

namespace {

std::string platformStr(const std::string& os, const std::string& arch, const std::string& variant) {
    return os + "/" + arch + (variant.empty() ? "" : "/" + variant);
}

// containerd's defaults: arm64 is v8 and arm is v7 unless an index says otherwise.
std::string normVariant(const std::string& arch, const std::string& variant) {
    if (!variant.empty()) return variant;
    if (arch == "arm64") return "v8";
    if (arch == "arm") return "v7";
    return "";
}

}  // namespace

Result<Descriptor> selectPlatform(const json::Value& doc, const Platform& want, const std::string& what) {
    auto* list = doc.find("manifests");
    if (!list || !list->isArray()) return failInvalid(what + " has no manifests");
    std::string wantVariant = normVariant(want.architecture, want.variant);
    std::vector<std::string> available;
    std::optional<Descriptor> chosen, fallback;
    for (auto& e : list->asArray()) {
        auto* p = e.find("platform");
        if (!p || !p->isObject()) continue;
        auto field = [&](const char* k) {
            auto* v = p->find(k);
            return v && v->isString() ? v->asString() : std::string();
        };
        std::string os = field("os"), arch = field("architecture"), variant = field("variant");
        if (os == "unknown") continue;  // BuildKit attestations
        available.push_back(platformStr(os, arch, variant));
        if (os != want.os || arch != want.architecture) continue;
        auto d = TRY(parseDescriptor(e, "index entry"));
        std::string v = normVariant(arch, variant);
        if (v == wantVariant) {
            if (!chosen) chosen = d;
        } else if (want.variant.empty() && !fallback) {
            fallback = d;  // e.g. amd64 "v3" when no variant was asked for
        }
    }
    if (!chosen) chosen = fallback;
    if (!chosen) {
        std::string all;
        for (auto& a : available) all += (all.empty() ? "" : ", ") + a;
        return fail(Error::plain(ENOENT, "no manifest for platform " + platformStr(want.os, want.architecture, want.variant) +
                                             " (available: " + (all.empty() ? "none" : all) + ")"));
    }
    if (!isManifestType(chosen->mediaType) && !chosen->mediaType.empty())
        return fail(Error::plain(ENOTSUP, "index entry " + chosen->digest.str() + " has unsupported media type \"" +
                                              chosen->mediaType + "\""));
    return *chosen;
}

Result<ManifestBlobs> parseManifest(const json::Value& doc, const std::string& ref, const std::string& name) {
    ManifestBlobs out;
    auto* cfg = doc.find("config");
    if (!cfg) return failInvalid(ref + ": " + name + " has no config");
    out.config = TRY_CTX(ref + ": manifest config", parseDescriptor(*cfg, "descriptor"));
    if (out.config.mediaType != kOciConfig && out.config.mediaType != kDockerConfig)
        return fail(Error::plain(ENOTSUP, ref + ": unsupported config media type \"" + out.config.mediaType +
                                              "\" (not a container image)"));
    auto* layers = doc.find("layers");
    if (!layers || !layers->isArray()) return failInvalid(ref + ": " + name + " has no layers");
    for (size_t i = 0; i < layers->asArray().size(); ++i) {
        auto l = TRY_CTX(ref + ": layer " + std::to_string(i), parseDescriptor(layers->asArray()[i], "descriptor"));
        if (!isLayerType(l.mediaType))
            return fail(Error::plain(ENOTSUP, ref + ": layer " + l.digest.str() + " has unsupported media type \"" +
                                                  l.mediaType + "\""));
        out.layers.push_back(std::move(l));
    }
    return out;
}

}  // namespace hull::images::wire
