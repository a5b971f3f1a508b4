#include <catch2/catch.hpp>

#include <stdlib.h>

#include <map>
#include <string>

#include "images/digest.hpp"
#include "images/registry.hpp"
#include "images/registry_fixture.hpp"
#include "support.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

using hull::images::Digest;
using hull::images::PulledImage;
using hull::images::PullOptions;
using hull::images::Reference;
namespace t = hull::test;

namespace {

const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

Reference parseOk(const std::string& s) {
    auto r = Reference::parse(s);
    INFO(s);
    if (!r) FAIL("parse failed: " << r.error().message());
    return *r;
}

std::string parseErr(const std::string& s) {
    auto r = Reference::parse(s);
    INFO(s);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == EINVAL);
    return r.error().message();
}

}  // namespace

TEST_CASE("registry: references follow Docker's rules", "[registry]") {
    auto r = parseOk("busybox");
    CHECK(r.registry == "registry-1.docker.io");
    CHECK(r.repository == "library/busybox");
    CHECK(r.tag == "latest");
    CHECK_FALSE(r.digest);
    CHECK(r.str() == "registry-1.docker.io/library/busybox:latest");

    r = parseOk("user/app:1.2");
    CHECK(r.registry == "registry-1.docker.io");
    CHECK(r.repository == "user/app");
    CHECK(r.tag == "1.2");

    for (const char* hub : {"docker.io/library/busybox:1.36", "index.docker.io/library/busybox:1.36",
                            "docker.io/busybox:1.36"}) {
        r = parseOk(hub);
        CHECK(r.registry == "registry-1.docker.io");
        CHECK(r.repository == "library/busybox");
        CHECK(r.tag == "1.36");
    }

    r = parseOk("localhost/app");
    CHECK(r.registry == "localhost");
    CHECK(r.repository == "app");  // "library/" is Docker Hub's only

    r = parseOk("localhost:5000/team/app:v1");
    CHECK(r.registry == "localhost:5000");
    CHECK(r.repository == "team/app");
    CHECK(r.tag == "v1");

    r = parseOk("registry.example.com/a/b/c");
    CHECK(r.registry == "registry.example.com");
    CHECK(r.repository == "a/b/c");
    CHECK(r.tag == "latest");

    r = parseOk("127.0.0.1:5000/busybox@sha256:" + kHex);
    CHECK(r.registry == "127.0.0.1:5000");
    CHECK(r.repository == "busybox");
    CHECK(r.tag.empty());
    REQUIRE(r.digest);
    CHECK(r.digest->hex == kHex);
    CHECK(r.str() == "127.0.0.1:5000/busybox@sha256:" + kHex);

    r = parseOk("registry.example.com:443/team/app:v2@sha256:" + kHex);  // both: the digest decides
    CHECK(r.tag == "v2");
    REQUIRE(r.digest);
    CHECK(r.str() == "registry.example.com:443/team/app:v2@sha256:" + kHex);

    r = parseOk("Registry/app");  // capitals: a host, never a repository
    CHECK(r.registry == "Registry");
    CHECK(r.repository == "app");

    r = parseOk("a.b-c/x__y.z--w_v:Tag_1.x-Y");
    CHECK(r.repository == "x__y.z--w_v");
    CHECK(r.tag == "Tag_1.x-Y");

    r = parseOk("[::1]:5000/app");
    CHECK(r.registry == "[::1]:5000");

    // str() is canonical: it parses back to itself.
    for (const char* s : {"busybox", "user/app:1", "localhost:5000/a/b@sha256:" /* + hex below */}) {
        std::string in = s;
        if (in.back() == ':') in += kHex;
        auto a = parseOk(in);
        auto b = parseOk(a.str());
        CHECK(b.str() == a.str());
        CHECK(b.registry == a.registry);
        CHECK(b.repository == a.repository);
    }
}

TEST_CASE("registry: bad references are refused with the reason", "[registry]") {
    CHECK_THAT(parseErr(""), Catch::Contains("empty"));
    CHECK_THAT(parseErr("Busybox"), Catch::Contains("lowercase"));
    CHECK_THAT(parseErr("example.com/Team/app"), Catch::Contains("lowercase"));
    CHECK_THAT(parseErr("busybox:"), Catch::Contains("tag"));
    CHECK_THAT(parseErr("busybox:-x"), Catch::Contains("tag"));
    CHECK_THAT(parseErr("busybox:a b"), Catch::Contains("tag"));
    CHECK_THAT(parseErr("busybox:" + std::string(129, 'a')), Catch::Contains("tag"));
    CHECK_THAT(parseErr("busybox@sha256:abc"), Catch::Contains("64 hex"));
    CHECK_THAT(parseErr("busybox@md5:" + kHex), Catch::Contains("sha256"));
    CHECK_THAT(parseErr("busybox@"), Catch::Contains("digest"));
    CHECK_THAT(parseErr("a//b"), Catch::Contains("repository component"));
    CHECK_THAT(parseErr("example.com/-a"), Catch::Contains("repository component"));
    CHECK_THAT(parseErr("example.com/a_"), Catch::Contains("repository component"));
    CHECK_THAT(parseErr("example.com/a___b"), Catch::Contains("repository component"));
    CHECK_THAT(parseErr("busybox/"), Catch::Contains("repository component"));
    CHECK_THAT(parseErr("example.com/"), Catch::Contains("no repository"));
    CHECK_THAT(parseErr("example.com:99999/app"), Catch::Contains("registry"));
    CHECK_THAT(parseErr("exa_mple.com/app"), Catch::Contains("registry"));
    CHECK_THAT(parseErr("-example.com/app"), Catch::Contains("registry"));
    CHECK_THAT(parseErr("example.com:/app"), Catch::Contains("registry"));
    CHECK_THAT(parseErr("example.com/" + std::string(256, 'a')), Catch::Contains("255"));
    // The input is named.
    CHECK_THAT(parseErr("Busybox"), Catch::Contains("\"Busybox\""));
}

// ---------------------------------------------------------------------------
// Against a real registry on 127.0.0.1.

namespace {

/// A registry with the test image pushed four ways (built once per process).
struct Env {
    t::TempDir dir{"hull-regtest"};
    t::TestRegistry reg;
    std::string layout;
    std::string repo() const { return reg.host() + "/test/busybox"; }
    Env() {
        layout = t::buildTestImage(dir.path());
        t::pushImage(layout, "latest", repo() + ":latest");
        t::pushImage(layout, "latest", repo() + ":v2s2", "v2s2");
        t::pushImage(layout, "multi", repo() + ":multi");
        t::pushImage(layout, "multi", repo() + ":multi-v2s2", "v2s2");
    }
};

Env& env() {
    static Env e;
    return e;
}

#define REQUIRE_REGISTRY_TOOLS()                                             \
    do {                                                                    \
        if (!t::isRoot()) {                                                 \
            WARN("skipped: needs root (umoci unpack)");                     \
            return;                                                         \
        }                                                                   \
        if (auto missing = t::registryToolsMissing(); !missing.empty()) {   \
            WARN("skipped: " << missing);                                   \
            return;                                                         \
        }                                                                   \
    } while (0)

PullOptions options(const std::string& ref, const std::string& tempDir, const std::string& insecure) {
    PullOptions o;
    auto r = Reference::parse(ref);
    if (!r) throw std::runtime_error(r.error().message());
    o.ref = *r;
    o.tempDir = tempDir;
    if (!insecure.empty()) o.insecure = {insecure};
    return o;
}

/// Pull REF from the env's registry into SINK; temp files under TMP.
hull::Result<PulledImage> pullFrom(const std::string& ref, t::DirSink& sink, const std::string& tmp,
                                   const std::string& insecure, hull::images::Platform platform = {}) {
    auto o = options(ref, tmp, insecure);
    o.platform = platform;
    return hull::images::pull(o, sink);
}

/// What the sink holds is what the descriptors say.
void checkStored(const t::DirSink& sink, const Digest& d) {
    INFO(d.str());
    auto got = hull::images::digestFile(sink.path(d));
    REQUIRE(got);
    CHECK(got->first == d);
}

std::string base64(const std::string& s) {
    static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < s.size(); i += 3) {
        uint32_t n = uint32_t(uint8_t(s[i])) << 16;
        if (i + 1 < s.size()) n |= uint32_t(uint8_t(s[i + 1])) << 8;
        if (i + 2 < s.size()) n |= uint8_t(s[i + 2]);
        out += tbl[(n >> 18) & 63];
        out += tbl[(n >> 12) & 63];
        out += i + 1 < s.size() ? tbl[(n >> 6) & 63] : '=';
        out += i + 2 < s.size() ? tbl[n & 63] : '=';
    }
    return out;
}

/// A Docker config.json with one basic entry.
std::string writeCredentials(const std::string& dir, const std::string& registry, const std::string& userPass) {
    std::string path = dir + "/config.json";
    t::writeFileOrThrow(path, R"({"auths":{")" + registry + R"(":{"auth":")" + base64(userPass) + R"("}}})");
    return path;
}

}  // namespace

TEST_CASE("registry: pull an OCI image: manifest, config and layers verified, has() skips", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    Env& e = env();
    t::TempDir store("hull-regstore"), tmp("hull-regtmp");
    t::DirSink sink(store.path());

    std::map<std::string, std::pair<uint64_t, uint64_t>> last;  // what → (done, total)
    int calls = 0;
    auto o = options(e.repo() + ":latest", tmp.path(), e.reg.host());
    o.parallel = 2;
    o.progress = [&](const std::string& what, uint64_t done, uint64_t total) {
        ++calls;
        CHECK(done <= total);
        last[what] = {done, total};
    };
    auto img = hull::images::pull(o, sink);
    REQUIRE(img);

    std::string raw = t::rawManifest(e.repo() + ":latest");
    CHECK(img->manifestJson == raw);
    CHECK(img->manifest == hull::images::digestOf(raw));
    CHECK(img->mediaType == "application/vnd.oci.image.manifest.v1+json");
    REQUIRE(img->layers.size() == 2);
    REQUIRE(img->layerMediaTypes.size() == 2);
    for (auto& mt : img->layerMediaTypes) CHECK(mt == "application/vnd.oci.image.layer.v1.tar+gzip");

    // The manifest's own descriptors, read independently.
    auto doc = hull::json::Value::parse(raw);
    REQUIRE(doc);
    CHECK(img->config.str() == doc->find("config")->find("digest")->asString());
    for (size_t i = 0; i < 2; ++i)
        CHECK(img->layers[i].str() == doc->find("layers")->asArray()[i].find("digest")->asString());

    checkStored(sink, img->config);
    for (auto& l : img->layers) checkStored(sink, l);
    CHECK(sink.puts.size() == 3);
    CHECK(hull::sys::listDir(tmp.path()).empty());  // no temp file left behind

    // Progress: every blob reported complete.
    CHECK(calls >= 3);
    CHECK(last.size() == 3);
    for (auto& [what, p] : last) {
        INFO(what);
        CHECK(p.first == p.second);
    }

    // Everything is there now: a second pull downloads nothing.
    auto again = hull::images::pull(o, sink);
    REQUIRE(again);
    CHECK(sink.puts.size() == 3);
    CHECK(again->manifest == img->manifest);
    CHECK(again->layers == img->layers);

    // The config the sink holds is the image's (linux/amd64, two diff_ids).
    auto cfg = hull::json::Value::parse(t::readFileOr(sink.path(img->config)));
    REQUIRE(cfg);
    CHECK(cfg->find("architecture")->asString() == "amd64");
    CHECK(cfg->find("rootfs")->find("diff_ids")->asArray().size() == 2);

    // By digest: the same image.
    t::TempDir store2("hull-regstore");
    t::DirSink sink2(store2.path());
    auto byDigest = pullFrom(e.repo() + "@" + img->manifest.str(), sink2, tmp.path(), e.reg.host());
    REQUIRE(byDigest);
    CHECK(byDigest->manifest == img->manifest);
    CHECK(sink2.puts.size() == 3);
}

TEST_CASE("registry: pull a Docker v2 schema 2 image", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    Env& e = env();
    t::TempDir store("hull-regstore"), tmp("hull-regtmp");
    t::DirSink sink(store.path());
    auto img = pullFrom(e.repo() + ":v2s2", sink, tmp.path(), e.reg.host());
    REQUIRE(img);
    std::string raw = t::rawManifest(e.repo() + ":v2s2");
    CHECK(img->manifest == hull::images::digestOf(raw));
    CHECK(img->manifestJson == raw);
    CHECK(img->mediaType == "application/vnd.docker.distribution.manifest.v2+json");
    REQUIRE(img->layers.size() == 2);
    for (auto& mt : img->layerMediaTypes) CHECK(mt == "application/vnd.docker.image.rootfs.diff.tar.gzip");
    checkStored(sink, img->config);
    for (auto& l : img->layers) checkStored(sink, l);
    CHECK(sink.puts.size() == 3);
}

TEST_CASE("registry: an index or manifest list resolves to the platform's manifest", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    Env& e = env();
    t::TempDir tmp("hull-regtmp");

    for (const char* tag : {"multi", "multi-v2s2"}) {
        INFO(tag);
        auto index = hull::json::Value::parse(t::rawManifest(e.repo() + ":" + tag));
        REQUIRE(index);
        std::map<std::string, std::string> byArch;
        for (auto& m : index->find("manifests")->asArray())
            byArch[m.find("platform")->find("architecture")->asString()] = m.find("digest")->asString();
        REQUIRE(byArch.size() == 2);

        t::TempDir store("hull-regstore");
        t::DirSink sink(store.path());
        auto amd = pullFrom(e.repo() + ":" + tag, sink, tmp.path(), e.reg.host());
        REQUIRE(amd);
        CHECK(amd->manifest.str() == byArch["amd64"]);  // the platform manifest, not the index
        CHECK(amd->layers.size() == 2);
        auto cfg = hull::json::Value::parse(t::readFileOr(sink.path(amd->config)));
        REQUIRE(cfg);
        CHECK(cfg->find("architecture")->asString() == "amd64");

        auto arm = pullFrom(e.repo() + ":" + tag, sink, tmp.path(), e.reg.host(), {"linux", "arm64", ""});
        REQUIRE(arm);
        CHECK(arm->manifest.str() == byArch["arm64"]);  // "" matches arm64's v8
        CHECK(arm->layers == amd->layers);
        CHECK(arm->config != amd->config);

        auto none = pullFrom(e.repo() + ":" + tag, sink, tmp.path(), e.reg.host(), {"linux", "s390x", ""});
        REQUIRE_FALSE(none);
        CHECK(none.error().errnum() == ENOENT);
        CHECK_THAT(none.error().message(), Catch::Contains("no manifest for platform linux/s390x") &&
                                               Catch::Contains("linux/amd64") && Catch::Contains("linux/arm64/v8"));
        auto v9 = pullFrom(e.repo() + ":" + tag, sink, tmp.path(), e.reg.host(), {"linux", "arm64", "v9"});
        REQUIRE_FALSE(v9);
        CHECK_THAT(v9.error().message(), Catch::Contains("linux/arm64/v9"));
    }
    CHECK(hull::sys::listDir(tmp.path()).empty());
}

TEST_CASE("registry: errors name what is missing or unreachable", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    Env& e = env();
    t::TempDir store("hull-regstore"), tmp("hull-regtmp");
    t::DirSink sink(store.path());
    const std::string host = e.reg.host();

    auto r = pullFrom(host + "/nope:latest", sink, tmp.path(), host);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == ENOENT);
    CHECK(r.error().message() == host + "/nope:latest: repository not found");

    r = pullFrom(e.repo() + ":nope", sink, tmp.path(), host);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == ENOENT);
    CHECK(r.error().message() == e.repo() + ": tag \"nope\" not found");

    r = pullFrom(e.repo() + "@sha256:" + kHex, sink, tmp.path(), host);
    REQUIRE_FALSE(r);
    CHECK(r.error().message() == e.repo() + ": manifest sha256:" + kHex + " not found");

    // A port with nothing listening.
    int port = t::detail::freePort();
    std::string dead = "127.0.0.1:" + std::to_string(port);
    r = pullFrom(dead + "/test/busybox:latest", sink, tmp.path(), dead);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == ECONNREFUSED);
    CHECK(r.error().message() == "cannot connect to " + dead + ": Connection refused");

    // (HTTPS, the default, to a plain-HTTP registry that is not on loopback fails
    // its TLS handshake: the node agent's --insecure-registry test shows it.)

    // Media types hull cannot use, found before any blob is downloaded.
    t::pushImage(e.layout, "odd-layer", e.repo() + ":odd-layer", "");
    t::pushImage(e.layout, "odd-config", e.repo() + ":odd-config", "");
    r = pullFrom(e.repo() + ":odd-layer", sink, tmp.path(), host);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == ENOTSUP);
    CHECK_THAT(r.error().message(), Catch::StartsWith(e.repo() + ":odd-layer: layer sha256:") &&
                                        Catch::EndsWith("has unsupported media type \"application/vnd.example.unknown\""));
    r = pullFrom(e.repo() + ":odd-config", sink, tmp.path(), host);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == ENOTSUP);
    CHECK(r.error().message() == e.repo() + ":odd-config: unsupported config media type "
                                            "\"application/vnd.example.config.v1+json\" (not a container image)");

    // A credentials file that is not there is an error, not anonymous access.
    auto o = options(e.repo() + ":latest", tmp.path(), host);
    o.credentialsFile = tmp / "missing.json";
    auto c = hull::images::pull(o, sink);
    REQUIRE_FALSE(c);
    CHECK_THAT(c.error().message(), Catch::Contains("missing.json"));

    CHECK(sink.puts.empty());
    CHECK(hull::sys::listDir(tmp.path()).empty());
}

TEST_CASE("registry: a blob corrupted in the registry is refused, never put()", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    Env& e = env();
    // A registry of its own: the corruption must not leak into the other tests.
    t::TestRegistry reg;
    std::string repo = reg.host() + "/test/corrupt";
    t::pushImage(e.layout, "latest", repo + ":latest");
    auto doc = hull::json::Value::parse(t::rawManifest(repo + ":latest"));
    REQUIRE(doc);
    auto layer = *Digest::parse(doc->find("layers")->asArray()[1].find("digest")->asString());
    std::string data = reg.blobPath(layer.str());
    std::string good = t::readFileOr(data);
    REQUIRE(good.size() > 10);

    t::TempDir store("hull-regstore"), tmp("hull-regtmp");
    t::DirSink sink(store.path());
    auto putLayer = [&] {
        for (auto& d : sink.puts)
            if (d == layer) return true;
        return false;
    };

    SECTION("same size, one byte flipped: digest mismatch") {
        std::string bad = good;
        bad[bad.size() / 2] ^= 0x55;
        t::writeFileOrThrow(data, bad);
        auto r = pullFrom(repo + ":latest", sink, tmp.path(), reg.host());
        REQUIRE_FALSE(r);
        CHECK(r.error().errnum() == EBADMSG);
        CHECK_THAT(r.error().message(), Catch::Contains("blob " + layer.str()) &&
                                            Catch::Contains("does not match its digest"));
        CHECK_FALSE(putLayer());
        CHECK_FALSE(sink.has(layer));
    }
    SECTION("longer than its descriptor: size mismatch") {
        t::writeFileOrThrow(data, good + "trailing garbage");
        auto r = pullFrom(repo + ":latest", sink, tmp.path(), reg.host());
        REQUIRE_FALSE(r);
        CHECK(r.error().errnum() == EBADMSG);
        CHECK_THAT(r.error().message(), Catch::Contains("blob " + layer.str()) && Catch::Contains("wrong size"));
        CHECK_FALSE(putLayer());
    }
    CHECK(hull::sys::listDir(tmp.path()).empty());

    // Repaired, the same sink completes the image.
    t::writeFileOrThrow(data, good);
    auto r = pullFrom(repo + ":latest", sink, tmp.path(), reg.host());
    REQUIRE(r);
    checkStored(sink, layer);
}

TEST_CASE("registry: Bearer tokens from the challenge's realm, redirects without the token", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    Env& e = env();
    t::TempDir store("hull-regstore"), tmp("hull-regtmp");
    std::string direct = t::rawManifest(e.repo() + ":latest");

    SECTION("anonymous token") {
        t::AuthFront front(e.reg.port());
        t::DirSink sink(store.path());
        auto img = pullFrom(front.host() + "/test/busybox:latest", sink, tmp.path(), front.host());
        REQUIRE(img);
        CHECK(img->manifest == hull::images::digestOf(direct));
        CHECK(sink.puts.size() == 3);
        checkStored(sink, img->config);
        for (auto& l : img->layers) checkStored(sink, l);
        CHECK(front.challenges >= 1);
        CHECK(front.tokenRequests == 1);  // one token serves the manifest and every blob
        CHECK(front.redirects == 3);
        CHECK(front.storageWithAuth == 0);  // the token stayed with the registry's host
        CHECK_THAT(front.lastTokenQuery(),
                   Catch::Contains("service=hull-test") && Catch::Contains("scope=repository%3Atest%2Fbusybox%3Apull"));
    }
    SECTION("the token service wants credentials") {
        t::AuthFront front(e.reg.port(), base64("alice:s3cret"));
        t::DirSink sink(store.path());
        auto r = pullFrom(front.host() + "/test/busybox:latest", sink, tmp.path(), front.host());
        REQUIRE_FALSE(r);
        CHECK(r.error().errnum() == EACCES);
        CHECK_THAT(r.error().message(), Catch::StartsWith("authentication failed (401) for " + front.host() +
                                                          "/test/busybox") &&
                                            Catch::Contains("anonymous"));

        auto o = options(front.host() + "/test/busybox:latest", tmp.path(), front.host());
        t::TempDir wrong("hull-regcreds");
        o.credentialsFile = writeCredentials(wrong.path(), front.host(), "alice:wrong");
        r = hull::images::pull(o, sink);
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error().message(), Catch::StartsWith("authentication failed (401)") && Catch::Contains("refused the credentials"));

        t::TempDir creds("hull-regcreds");
        o.credentialsFile = writeCredentials(creds.path(), front.host(), "alice:s3cret");
        auto img = hull::images::pull(o, sink);
        REQUIRE(img);
        CHECK(img->manifest == hull::images::digestOf(direct));
        CHECK(front.storageWithAuth == 0);
    }
    CHECK(hull::sys::listDir(tmp.path()).empty());
}

TEST_CASE("registry: Basic auth from the credentials file (htpasswd registry)", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    std::string line = t::htpasswdLine("alice", "s3cret");
    if (line.empty()) {
        WARN("skipped: no bcrypt (perl's crypt) to write an htpasswd file");
        return;
    }
    Env& e = env();
    t::TempDir dir("hull-regauth"), store("hull-regstore"), tmp("hull-regtmp");
    t::writeFileOrThrow(dir / "htpasswd", line);
    t::RegistryOptions ro;
    ro.htpasswdFile = dir / "htpasswd";
    t::TestRegistry reg(ro);
    std::string repo = reg.host() + "/test/private";
    t::pushImage(e.layout, "latest", repo + ":latest", "oci", "alice:s3cret");
    t::DirSink sink(store.path());

    auto r = pullFrom(repo + ":latest", sink, tmp.path(), reg.host());
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == EACCES);
    CHECK_THAT(r.error().message(), Catch::StartsWith("authentication required (401) for " + repo) &&
                                        Catch::Contains("no credentials for " + reg.host()));

    auto o = options(repo + ":latest", tmp.path(), reg.host());
    o.credentialsFile = writeCredentials(dir.path(), reg.host(), "alice:wrong");
    r = hull::images::pull(o, sink);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == EACCES);
    CHECK_THAT(r.error().message(), Catch::StartsWith("authentication failed (401) for " + repo));

    // Docker's spelling of the key, with a scheme, is found too.
    o.credentialsFile = writeCredentials(dir.path(), "http://" + reg.host(), "alice:s3cret");
    auto img = hull::images::pull(o, sink);
    REQUIRE(img);
    CHECK(img->manifest == hull::images::digestOf(t::rawManifest(repo + ":latest", "alice:s3cret")));
    CHECK(sink.puts.size() == 3);
    CHECK(hull::sys::listDir(tmp.path()).empty());
}

TEST_CASE("registry: HTTPS verifies the registry's certificate", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    Env& e = env();
    t::TempDir dir("hull-regtls"), store("hull-regstore"), tmp("hull-regtmp");
    t::makeLoopbackCert(dir.path());
    t::RegistryOptions ro;
    ro.tlsCert = dir / "cert.pem";
    ro.tlsKey = dir / "key.pem";
    t::TestRegistry reg(ro);
    std::string repo = reg.host() + "/test/tls";
    t::pushImage(e.layout, "latest", repo + ":latest");
    t::DirSink sink(store.path());

    // Not in the system store: refused, saying why.
    auto r = pullFrom(repo + ":latest", sink, tmp.path(), "");
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::StartsWith("TLS handshake with " + reg.host() + " failed: certificate not trusted"));
    CHECK(sink.puts.empty());

    // Trusted (OpenSSL's SSL_CERT_FILE replaces the system store for this process): pulled.
    const char* old = ::getenv("SSL_CERT_FILE");
    std::string saved = old ? old : "";
    ::setenv("SSL_CERT_FILE", ro.tlsCert.c_str(), 1);
    auto img = pullFrom(repo + ":latest", sink, tmp.path(), "");
    if (old)
        ::setenv("SSL_CERT_FILE", saved.c_str(), 1);
    else
        ::unsetenv("SSL_CERT_FILE");
    REQUIRE(img);
    CHECK(img->layers.size() == 2);
    CHECK(sink.puts.size() == 3);
}

TEST_CASE("registry: a plain-HTTP registry on loopback is pulled from without being named insecure", "[registry][root]") {
    REQUIRE_REGISTRY_TOOLS();
    using hull::images::isLoopbackRegistry;
    for (const char* yes : {"127.0.0.1:5000", "127.1.2.3", "localhost:5000", "localhost", "[::1]:5000"}) {
        INFO(yes);
        CHECK(isLoopbackRegistry(yes));
    }
    for (const char* no : {"10.0.0.1:5000", "128.0.0.1", "localhost.example:5000", "127.0.0.1.nip.io", "docker.io", "[::2]:5000",
                           "127.0.0.256"}) {
        INFO(no);
        CHECK_FALSE(isLoopbackRegistry(no));
    }
    Env& e = env();
    REQUIRE(e.reg.host().rfind("127.", 0) == 0);
    t::TempDir store("hull-regstore"), tmp("hull-regtmp");
    t::DirSink sink(store.path());
    auto img = pullFrom(e.repo() + ":latest", sink, tmp.path(), "");  // no --insecure-registry
    INFO((img ? "" : img.error().message()));
    REQUIRE(img);
    CHECK(img->layers.size() == 2);
}
