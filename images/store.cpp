#include "images/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "images/unpack.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"
#include "sys/scope_exit.hpp"

namespace hull::images {

using json::Value;

namespace {

std::string str(const Value& v, std::string_view key) { return json::stringOf(v, key); }
std::vector<std::string> strings(const Value* v) { return json::stringsOf(v); }

std::vector<std::string> keys(const Value* v) {
    std::vector<std::string> out;
    if (v && v->isObject())
        for (const auto& [k, _] : v->asObject()) out.push_back(k);
    return out;
}

std::string nowRfc3339() { return log::timestamp(false); }

std::string uniqueTemp(const std::string& dir, const std::string& what) {
    static int counter = 0;
    return dir + "/" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

/// A descriptor ({mediaType, digest, size}) of a manifest, config or layer.
struct Descriptor {
    std::string mediaType;
    Digest digest;
    int64_t size = -1;
};

Result<Descriptor> descriptor(const Value& v, const std::string& where) {
    if (!v.isObject()) return failInvalid(where + ": expected an object");
    Descriptor d;
    d.mediaType = str(v, "mediaType");
    d.digest = TRY_CTX(where + ".digest", Digest::parse(str(v, "digest")));
    if (const Value* s = v.find("size"); s) {
        int64_t n = 0;
        if (!s->toInt64(n) || n < 0) return failInvalid(where + ".size: expected a non-negative integer");
        d.size = n;
    }
    return d;
}

bool isIndex(const std::string& mt) {
    return mt == "application/vnd.oci.image.index.v1+json" ||
           mt == "application/vnd.docker.distribution.manifest.list.v2+json";
}

}  // namespace

// ---- config -------------------------------------------------------------------

Result<ImageConfig> parseImageConfig(const std::string& text) {
    auto v = TRY_CTX("image config", Value::parse(text));
    if (!v.isObject()) return failInvalid("image config: expected an object");
    ImageConfig c;
    if (auto os = str(v, "os"); !os.empty()) c.os = os;
    if (auto arch = str(v, "architecture"); !arch.empty()) c.architecture = arch;
    const Value* cfg = v.find("config");
    if (cfg && cfg->isObject()) {
        c.entrypoint = strings(cfg->find("Entrypoint"));
        c.cmd = strings(cfg->find("Cmd"));
        c.env = strings(cfg->find("Env"));
        c.workingDir = str(*cfg, "WorkingDir");
        c.user = str(*cfg, "User");
        c.stopSignal = str(*cfg, "StopSignal");
        c.exposedPorts = keys(cfg->find("ExposedPorts"));
        c.volumes = keys(cfg->find("Volumes"));
        if (const Value* l = cfg->find("Labels"); l && l->isObject())
            for (const auto& [k, x] : l->asObject())
                if (x.isString()) c.labels[k] = x.asString();
    }
    return c;
}

// ---- store --------------------------------------------------------------------

Result<Store> Store::open(const std::string& root) {
    for (const char* d : {"blobs/sha256", "layers/sha256", "images", "tmp"})
        TRY(sys::mkdirAll(root + "/" + d, 0700));
    return Store(root);
}

Result<UniqueFd> Store::lock() {
    std::string path = root_ + "/lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return failErrno("open " + path);
    while (::flock(fd.get(), LOCK_EX) < 0)
        if (errno != EINTR) return failErrno("lock " + path);
    return fd;
}

std::string Store::blobPath(const Digest& d) const { return root_ + "/blobs/sha256/" + d.hex; }

bool Store::has(const Digest& d) { return sys::exists(blobPath(d)); }

Result<void> Store::put(const Digest& d, const std::string& path) {
    auto [got, size] = TRY(digestFile(path));
    (void)size;
    if (!(got == d)) return failInvalid("blob " + d.str() + " does not match its digest (got " + got.str() + ")");
    if (::rename(path.c_str(), blobPath(d).c_str()) == 0) return {};
    if (errno != EXDEV) return failErrno("store blob " + d.str());
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return failErrno("open " + path);
    return putFromFd(d, fd.get(), -1);
}

Result<void> Store::putFromFd(const Digest& d, int fd, int64_t size) {
    if (has(d)) return {};
    std::string tmp = uniqueTemp(tmpDir(), "blob");
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out) return failErrno("create " + tmp);
    ScopeExit cleanup([&] { ::unlink(tmp.c_str()); });
    Sha256 h;
    int64_t total = 0;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return failErrno("read blob " + d.str());
        }
        if (n == 0) break;
        h.update(buf, size_t(n));
        total += n;
        if (size >= 0 && total > size)
            return failInvalid("blob " + d.str() + " is larger than its descriptor's " + std::to_string(size) + " bytes");
        for (ssize_t off = 0; off < n;) {
            ssize_t w = ::write(out.get(), buf + off, size_t(n - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                return failErrno("write " + tmp);
            }
            off += w;
        }
    }
    if (size >= 0 && total != size)
        return failInvalid("blob " + d.str() + " has " + std::to_string(total) + " bytes, its descriptor says " +
                           std::to_string(size));
    Digest got = h.finish();
    if (!(got == d)) return failInvalid("blob " + d.str() + " does not match its digest (got " + got.str() + ")");
    if (::fsync(out.get()) < 0) return failErrno("fsync " + tmp);
    if (::rename(tmp.c_str(), blobPath(d).c_str()) < 0) return failErrno("store blob " + d.str());
    cleanup.dismiss();
    return {};
}

Result<Digest> Store::putBytes(const std::string& data) {
    Digest d = digestOf(data);
    if (has(d)) return d;
    std::string tmp = uniqueTemp(tmpDir(), "bytes");
    TRY(sys::writeFile(tmp, data, 0600));
    ScopeExit cleanup([&] { ::unlink(tmp.c_str()); });
    if (::rename(tmp.c_str(), blobPath(d).c_str()) < 0) return failErrno("store blob " + d.str());
    cleanup.dismiss();
    return d;
}

Result<std::string> Store::readBlob(const Digest& d) const {
    return TRY_CTX("blob " + d.str(), sys::readFile(blobPath(d)));
}

Result<std::string> Store::layerDir(const Digest& d) {
    std::string dir = root_ + "/layers/sha256/" + d.hex;
    if (sys::exists(dir)) return dir;
    if (!has(d)) return fail(Error::plain(ENOENT, "layer " + d.str() + " is not in the store"));
    // Unpacked beside the store's layers, then renamed: a half-unpacked layer
    // never appears under layers/, and two unpackers racing both succeed.
    std::string tmp = uniqueTemp(tmpDir(), "layer");
    auto stats = TRY_CTX("layer " + d.str(), unpackLayer(blobPath(d), tmp));
    if (::rename(tmp.c_str(), dir.c_str()) < 0) {
        int e = errno;
        (void)sys::removeAll(tmp);
        if (e != EEXIST && e != ENOTEMPTY) return failErrno("store layer " + d.str(), e);
    }
    log::debugf("images: unpacked layer %s: %llu entries, %llu bytes", d.hex.substr(0, 12).c_str(),
                (unsigned long long)stats.entries, (unsigned long long)stats.bytes);
    return dir;
}

// ---- image records ------------------------------------------------------------

namespace {

std::string recordJson(const ImageRecord& r) {
    Value v = Value::object();
    v.set("id", r.id.str());
    v.set("manifest", r.manifest.str());
    Value layers = Value::array();
    for (const auto& l : r.layers) layers.push(l.str());
    v.set("layers", layers);
    v.set("names", json::stringArray(r.names));
    v.set("created", r.created);
    v.set("size", r.size);
    return v.dump(true) + "\n";
}

}  // namespace

Result<void> Store::writeRecord(const ImageRecord& r) {
    return sys::writeFileAtomic(root_ + "/images/" + r.id.hex + ".json", recordJson(r), 0600);
}

Result<std::vector<ImageRecord>> Store::listLocked(bool withConfig) {
    std::vector<ImageRecord> out;
    for (const auto& name : sys::listDir(root_ + "/images")) {
        if (name.size() != 69 || name.compare(64, 5, ".json") != 0) continue;
        auto text = sys::readFile(root_ + "/images/" + name);
        if (!text) continue;
        auto v = Value::parse(*text);
        if (!v) continue;
        ImageRecord r;
        auto id = Digest::parse(str(*v, "id"));
        auto manifest = Digest::parse(str(*v, "manifest"));
        if (!id || !manifest) continue;
        r.id = *id;
        r.manifest = *manifest;
        for (const auto& l : strings(v->find("layers")))
            if (auto d = Digest::parse(l)) r.layers.push_back(*d);
        r.names = strings(v->find("names"));
        r.created = str(*v, "created");
        if (const Value* s = v->find("size")) s->toUint64(r.size);
        if (withConfig)
            if (auto cfg = readBlob(r.id))
                if (auto c = parseImageConfig(*cfg)) r.config = *c;
        out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(), [](const ImageRecord& a, const ImageRecord& b) { return a.created > b.created; });
    return out;
}

Result<std::vector<ImageRecord>> Store::list() {
    auto l = TRY(lock());
    return listLocked(true);
}

Result<ImageRecord> Store::commit(const Digest& manifest, const std::string& name) {
    auto text = TRY(readBlob(manifest));
    auto m = TRY_CTX("manifest " + manifest.str(), Value::parse(text));
    if (isIndex(str(m, "mediaType")))
        return failInvalid("manifest " + manifest.str() + " is an index: commit its platform manifest");
    const Value* cfg = m.find("config");
    if (!cfg) return failInvalid("manifest " + manifest.str() + ": no config");
    auto config = TRY_CTX("manifest " + manifest.str(), descriptor(*cfg, "config"));
    ImageRecord r;
    r.id = config.digest;
    r.manifest = manifest;
    const Value* layers = m.find("layers");
    if (!layers || !layers->isArray()) return failInvalid("manifest " + manifest.str() + ": no layers");
    for (size_t i = 0; i < layers->asArray().size(); ++i) {
        auto l = TRY_CTX("manifest " + manifest.str(),
                         descriptor(layers->asArray()[i], "layers[" + std::to_string(i) + "]"));
        if (!has(l.digest)) return fail(Error::plain(ENOENT, "layer " + l.digest.str() + " is missing"));
        // Unpacked now, not at the first run: a hostile or broken layer is refused
        // before the image exists, and its blob does not stay in the store.
        if (auto dir = layerDir(l.digest); !dir) {
            ::unlink(blobPath(l.digest).c_str());
            return fail(std::move(dir.error()));
        }
        r.layers.push_back(l.digest);
        r.size += uint64_t(std::max<int64_t>(l.size, 0));
    }
    r.config = TRY(parseImageConfig(TRY(readBlob(config.digest))));
    r.created = nowRfc3339();

    auto l = TRY(lock());
    auto all = TRY(listLocked(false));
    for (auto& other : all) {
        if (other.id == r.id) {
            r.names = other.names;
            r.created = other.created;
            continue;
        }
        // A name belongs to one image: the new one takes it.
        auto it = std::find(other.names.begin(), other.names.end(), name);
        if (name.empty() || it == other.names.end()) continue;
        other.names.erase(it);
        TRY(writeRecord(other));
    }
    if (!name.empty() && std::find(r.names.begin(), r.names.end(), name) == r.names.end()) r.names.push_back(name);
    TRY(writeRecord(r));
    return r;
}

namespace {

/// "busybox" matches ".../busybox:latest"; "busybox:1" matches ".../busybox:1";
/// a full name matches itself.
bool nameMatches(const std::string& full, const std::string& q) {
    if (full == q) return true;
    std::string want = q.find(':') == std::string::npos || q.rfind(':') < q.rfind('/') ? q + ":latest" : q;
    if (full == want) return true;
    return full.size() > want.size() && full.compare(full.size() - want.size(), want.size(), want) == 0 &&
           full[full.size() - want.size() - 1] == '/';
}

}  // namespace

Result<ImageRecord> Store::find(const std::string& q) {
    std::vector<ImageRecord> all;
    {
        auto l = TRY(lock());
        all = TRY(listLocked(false));
    }
    // Only the image returned needs its config read and parsed.
    auto withConfig = [&](const ImageRecord& r) -> Result<ImageRecord> {
        ImageRecord out = r;
        if (auto cfg = readBlob(r.id))
            if (auto c = parseImageConfig(*cfg)) out.config = *c;
        return out;
    };
    std::vector<const ImageRecord*> hits;
    for (const auto& r : all) {
        bool hit = r.id.str() == q || (q.size() >= 12 && r.id.hex.rfind(q.rfind("sha256:", 0) == 0 ? q.substr(7) : q, 0) == 0);
        for (const auto& n : r.names) hit |= nameMatches(n, q);
        if (hit) hits.push_back(&r);
    }
    if (hits.empty()) return fail(Error::plain(ENOENT, "image \"" + q + "\" is not in the store (hull image ls)"));
    if (hits.size() > 1) {
        // An exact name wins over short-name matches.
        for (const auto* h : hits)
            if (std::find(h->names.begin(), h->names.end(), q) != h->names.end()) return withConfig(*h);
        return failInvalid("image \"" + q + "\" is ambiguous: give its full name or id");
    }
    return withConfig(*hits[0]);
}

Result<void> Store::remove(const std::string& q, bool force) {
    auto r = TRY(find(q));
    auto l = TRY(lock());
    auto it = std::find(r.names.begin(), r.names.end(), q);
    if (!force && it == r.names.end()) {
        for (auto n = r.names.begin(); n != r.names.end(); ++n)
            if (nameMatches(*n, q)) it = n;
    }
    if (!force && it != r.names.end() && r.names.size() > 1) {
        r.names.erase(it);
        return writeRecord(r);
    }
    if (::unlink((root_ + "/images/" + r.id.hex + ".json").c_str()) < 0) return failErrno("remove image " + r.id.str());
    return {};
}

Result<Store::PruneReport> Store::prune(const std::vector<Digest>& inUse) {
    auto l = TRY(lock());
    std::set<std::string> keepBlobs, keepLayers;
    for (const auto& r : TRY(listLocked(false))) {
        keepBlobs.insert(r.id.hex);
        keepBlobs.insert(r.manifest.hex);
        for (const auto& d : r.layers) keepBlobs.insert(d.hex), keepLayers.insert(d.hex);
    }
    for (const auto& d : inUse) keepBlobs.insert(d.hex), keepLayers.insert(d.hex);
    PruneReport rep;
    for (const auto& name : sys::listDir(root_ + "/blobs/sha256")) {
        if (keepBlobs.count(name)) continue;
        std::string p = root_ + "/blobs/sha256/" + name;
        struct stat st;
        if (::stat(p.c_str(), &st) == 0) rep.bytes += uint64_t(st.st_size);
        if (::unlink(p.c_str()) == 0)
            if (auto d = Digest::parse("sha256:" + name)) rep.blobs.push_back(*d);
    }
    for (const auto& name : sys::listDir(root_ + "/layers/sha256")) {
        if (keepLayers.count(name)) continue;
        TRY(sys::removeAll(root_ + "/layers/sha256/" + name));
        if (auto d = Digest::parse("sha256:" + name)) rep.layers.push_back(*d);
    }
    // Leftovers of interrupted pulls and unpacks.
    for (const auto& name : sys::listDir(tmpDir())) (void)sys::removeAll(tmpDir() + "/" + name);
    return rep;
}

// ---- import -------------------------------------------------------------------

namespace {

Result<void> putFromFile(Store& s, const std::string& path, const Digest& d, int64_t size) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return failErrno("open " + path);
    TRY_CTX(path, s.putFromFd(d, fd.get(), size));
    return {};
}

/// Store one manifest of an OCI layout (and its config and layers) and commit it.
Result<ImageRecord> importOciManifest(Store& s, const std::string& layout, const Descriptor& desc,
                                      const std::string& name) {
    auto blob = [&](const Digest& d) { return layout + "/blobs/sha256/" + d.hex; };
    TRY(putFromFile(s, blob(desc.digest), desc.digest, desc.size));
    auto text = TRY(s.readBlob(desc.digest));
    auto m = TRY_CTX("manifest " + desc.digest.str(), Value::parse(text));
    const Value* cfg = m.find("config");
    const Value* layers = m.find("layers");
    if (!cfg || !layers || !layers->isArray())
        return failInvalid("manifest " + desc.digest.str() + ": expected config and layers");
    auto c = TRY_CTX("manifest " + desc.digest.str(), descriptor(*cfg, "config"));
    TRY(putFromFile(s, blob(c.digest), c.digest, c.size));
    for (size_t i = 0; i < layers->asArray().size(); ++i) {
        auto l = TRY_CTX("manifest " + desc.digest.str(), descriptor(layers->asArray()[i], "layers[" + std::to_string(i) + "]"));
        TRY(putFromFile(s, blob(l.digest), l.digest, l.size));
    }
    return s.commit(desc.digest, name);
}

Result<std::vector<ImageRecord>> importOciLayout(Store& s, const std::string& dir, const std::string& name) {
    auto layoutText = TRY_CTX("OCI layout " + dir, sys::readFile(dir + "/oci-layout"));
    (void)layoutText;
    auto index = TRY_CTX(dir + "/index.json", Value::parse(TRY(sys::readFile(dir + "/index.json"))));
    const Value* manifests = index.find("manifests");
    if (!manifests || !manifests->isArray() || manifests->asArray().empty())
        return failInvalid(dir + "/index.json: no manifests");
    std::vector<ImageRecord> out;
    for (size_t i = 0; i < manifests->asArray().size(); ++i) {
        const Value& m = manifests->asArray()[i];
        auto d = TRY_CTX(dir + "/index.json", descriptor(m, "manifests[" + std::to_string(i) + "]"));
        if (isIndex(d.mediaType)) {
            log::warnf("%s: manifests[%zu] is a nested index; skipped", dir.c_str(), i);
            continue;
        }
        std::string ref;
        if (const Value* a = m.find("annotations"); a && a->isObject()) ref = str(*a, "org.opencontainers.image.ref.name");
        std::string n = name;
        if (n.empty() && !ref.empty()) {
            // A bare tag ("latest") names nothing on its own; a full reference is kept.
            n = ref.find('/') != std::string::npos || ref.find(':') != std::string::npos ? ref : "";
        }
        out.push_back(TRY(importOciManifest(s, dir, d, n)));
    }
    return out;
}

Result<std::vector<ImageRecord>> importDockerArchive(Store& s, const std::string& dir, const std::string& name) {
    auto manifest = TRY_CTX(dir + "/manifest.json", Value::parse(TRY(sys::readFile(dir + "/manifest.json"))));
    if (!manifest.isArray() || manifest.asArray().empty()) return failInvalid("docker-archive: manifest.json lists no image");
    std::vector<ImageRecord> out;
    for (size_t i = 0; i < manifest.asArray().size(); ++i) {
        const Value& e = manifest.asArray()[i];
        std::string where = "docker-archive manifest.json[" + std::to_string(i) + "]";
        std::string cfgName = str(e, "Config");
        if (cfgName.empty() || cfgName.find("..") != std::string::npos) return failInvalid(where + ".Config: bad path");
        // The config's file name is its digest ("<hex>.json" or "blobs/sha256/<hex>"): verified.
        std::string base = cfgName.substr(cfgName.rfind('/') + 1);
        if (base.size() > 5 && base.compare(base.size() - 5, 5, ".json") == 0) base.resize(base.size() - 5);
        auto cfgDigest = TRY_CTX(where + ".Config", Digest::parse("sha256:" + base));
        TRY(putFromFile(s, dir + "/" + cfgName, cfgDigest, -1));
        auto cfgText = TRY(s.readBlob(cfgDigest));
        auto cfg = TRY_CTX("image config", Value::parse(cfgText));
        std::vector<std::string> diffIds;
        if (const Value* rootfs = cfg.find("rootfs"); rootfs && rootfs->isObject()) diffIds = strings(rootfs->find("diff_ids"));
        auto layers = strings(e.find("Layers"));
        if (layers.size() != diffIds.size())
            return failInvalid(where + ": " + std::to_string(layers.size()) + " layers but the config lists " +
                               std::to_string(diffIds.size()) + " diff_ids");
        Value ls = Value::array();
        for (size_t j = 0; j < layers.size(); ++j) {
            if (layers[j].find("..") != std::string::npos) return failInvalid(where + ".Layers: bad path");
            // docker-archive layers are uncompressed: their digest is the diff_id the config names.
            auto diffId = TRY_CTX(where + " diff_ids[" + std::to_string(j) + "]", Digest::parse(diffIds[j]));
            std::string path = dir + "/" + layers[j];
            TRY(putFromFile(s, path, diffId, -1));
            struct stat st;
            if (::stat(s.blobPath(diffId).c_str(), &st) < 0) return failErrno("stat layer");
            Value d = Value::object();
            d.set("mediaType", "application/vnd.docker.image.rootfs.diff.tar");
            d.set("digest", diffId.str());
            d.set("size", int64_t(st.st_size));
            ls.push(d);
        }
        // The registry manifest docker-archive does not carry, made as v2s2.
        Value m = Value::object();
        m.set("schemaVersion", int64_t(2));
        m.set("mediaType", "application/vnd.docker.distribution.manifest.v2+json");
        Value c = Value::object();
        c.set("mediaType", "application/vnd.docker.container.image.v1+json");
        c.set("digest", cfgDigest.str());
        c.set("size", int64_t(cfgText.size()));
        m.set("config", c);
        m.set("layers", ls);
        auto md = TRY(s.putBytes(m.dump()));
        auto tags = strings(e.find("RepoTags"));
        out.push_back(TRY(s.commit(md, !name.empty() ? name : tags.empty() ? "" : tags[0])));
        for (size_t t = 1; name.empty() && t < tags.size(); ++t) out.back() = TRY(s.commit(md, tags[t]));
    }
    return out;
}

}  // namespace

Result<std::vector<ImageRecord>> importPath(Store& store, const std::string& path, const std::string& name) {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) return failErrno("import " + path);
    std::string dir = path;
    std::string tmp;
    ScopeExit cleanup([&] {
        if (!tmp.empty()) (void)sys::removeAll(tmp);
    });
    if (!S_ISDIR(st.st_mode)) {
        // An archive: unpacked with the layer unpacker, which refuses anything
        // that would land outside its directory.
        tmp = uniqueTemp(store.tmpDir(), "import");
        TRY_CTX("import " + path, unpackLayer(path, tmp));
        dir = tmp;
    }
    if (sys::exists(dir + "/oci-layout")) return TRY_CTX("import " + path, importOciLayout(store, dir, name));
    if (sys::exists(dir + "/manifest.json")) return TRY_CTX("import " + path, importDockerArchive(store, dir, name));
    return failInvalid("import " + path + ": neither an OCI layout (no oci-layout file) nor a docker-archive (no manifest.json)");
}

Result<ImageRecord> pullImage(Store& store, const PullOptions& o) {
    auto pulled = TRY(pull(o, store));
    auto d = TRY(store.putBytes(pulled.manifestJson));
    if (!(d == pulled.manifest))
        return failInvalid("manifest of " + o.ref.str() + " does not match its digest " + pulled.manifest.str());
    return store.commit(pulled.manifest, o.ref.str());
}

}  // namespace hull::images
