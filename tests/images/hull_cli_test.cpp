// `hull` on one host, as a user drives it: import images, run them in the
// foreground and detached, publish a port, read logs, stop, remove, and find
// nothing left. Every test runs hull inside a network namespace of its own
// (the bridge, NAT table and ip_forward live there) with a temp state dir.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "images/digest.hpp"
#include "images/registry_fixture.hpp"
#include "images/tar_writer.hpp"
#include "netns/netns_support.hpp"
#include "runtime/bundle.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::test;

namespace {

/// The offline busybox image (scripts/make-busybox-image; cached in build/images).
std::string busyboxImages() {
    std::string dir = std::string(HULL_BIN_DIR) + "/../images/busybox";
    auto r = run({std::string(HULL_SOURCE_DIR) + "/scripts/make-busybox-image", dir});
    if (r.status != 0) throw std::runtime_error("make-busybox-image: " + r.err);
    return dir;
}

struct Hull {
    TempDir state{"hull-cli-state"};
    RunResult operator()(std::vector<std::string> args) const {
        args.insert(args.begin(), {binPath("hull"), "--state-dir", state.path()});
        return run(args);
    }
};

}  // namespace

TEST_CASE("hull: images imported from an oci-archive and a docker-archive run", "[root][net][images][cli]") {
    REQUIRE_ROOT();
    std::string images = busyboxImages();
    TestNetns host("cli1");
    InNetns in(host.path());
    Hull hull;
    auto a = hull({"image", "import", images + "/busybox.oci.tar"});
    INFO(a.err);
    REQUIRE(a.status == 0);
    CHECK(a.out.find("hull.local/busybox:latest") != std::string::npos);
    auto b = hull({"image", "import", "--name", "hull.local/from-docker:1", images + "/busybox.docker.tar"});
    INFO(b.err);
    REQUIRE(b.status == 0);
    auto ls = hull({"image", "ls", "--output", "json"});
    auto v = json::Value::parse(ls.out);
    REQUIRE(v);
    // Both archives carry the same config, so they are one image (its id is the
    // config's digest) with two names.
    std::string all = ls.out;
    CHECK(all.find("hull.local/busybox:latest") != std::string::npos);
    CHECK(all.find("hull.local/from-docker:1") != std::string::npos);
    // Options after the path work too, as in other CLIs.
    auto after = hull({"image", "import", images + "/busybox.docker.tar", "--name", "hull.local/named-after:2"});
    INFO(after.err);
    CHECK(after.status == 0);
    CHECK(hull({"image", "ls"}).out.find("hull.local/named-after") != std::string::npos);
    // The help no longer says hull is only a single host's.
    CHECK(hull({"--help"}).out.find("a cluster of hosts") != std::string::npos);

    for (const char* image : {"hull.local/busybox", "hull.local/from-docker:1"}) {
        auto r = hull({"run", "--rm", image, "sh", "-c", "echo hi from $(hostname); id -u"});
        INFO(image << ": " << r.err);
        CHECK(r.status == 0);
        CHECK(r.out.find("hi from ") == 0);
        CHECK(r.out.find("\n0\n") != std::string::npos);
    }
    // The exit status is the container's; --rm leaves no record.
    CHECK(hull({"run", "--rm", "hull.local/busybox", "sh", "-c", "exit 3"}).status == 3);
    CHECK(hull({"ps", "-a", "--output", "json"}).out == "[]\n");
    // A user from the image's /etc/passwd.
    auto u = hull({"run", "--rm", "--user", "nobody", "hull.local/busybox", "id", "-u"});
    CHECK(u.out == "65534\n");
    CHECK(hull({"image", "rm", "hull.local/from-docker:1"}).status == 0);
    auto pruned = hull({"image", "prune"});
    CHECK(pruned.status == 0);
}

TEST_CASE("hull: a detached httpd answers on a published port, logs, stop and rm leave nothing",
          "[root][net][images][cli]") {
    REQUIRE_ROOT();
    std::string images = busyboxImages();
    TestNetns host("cli2");
    InNetns in(host.path());
    Hull hull;
    REQUIRE(hull({"image", "import", images + "/busybox.oci.tar"}).status == 0);
    TempDir www("hull-www");
    writeFileOrThrow(www / "index.html", "hello from a hull container\n");
    auto r = hull({"run", "-d", "--name", "web", "-p", "8080:80", "-v", www.path() + ":/www:ro", "hull.local/busybox",
                   "httpd", "-f", "-v", "-p", "80", "-h", "/www"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    std::string id = sys::trim(r.out);
    CHECK(id.size() == 64);
    auto get = host.sh("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 127.0.0.1 8080");
    CHECK(get.out.find("hello from a hull container") != std::string::npos);
    auto ps = json::Value::parse(hull({"ps", "--output", "json"}).out);
    REQUIRE(ps);
    REQUIRE(ps->asArray().size() == 1);
    CHECK(ps->asArray()[0].find("status")->asString() == "running");
    CHECK(waitFor([&] { return hull({"logs", "web"}).out.find("response:200") != std::string::npos; }));
    CHECK(hull({"logs", "--tail", "1", "web"}).out.find("response:200") != std::string::npos);

    // exec joins it; -it under script(1) gets a pty that hull proxies itself.
    auto ex = hull({"exec", "web", "sh", "-c", "cat /www/index.html"});
    CHECK(ex.out == "hello from a hull container\n");
    auto tty = run({"/usr/bin/script", "-qec",
                    binPath("hull") + " --state-dir " + hull.state.path() + " exec -it web tty", "/dev/null"});
    CHECK(tty.out.find("/dev/pts/") != std::string::npos);
    REQUIRE(hull({"stop", "-t", "1", "web"}).status == 0);
    auto after = json::Value::parse(hull({"inspect", "web"}).out);
    REQUIRE(after);
    CHECK(after->find("status")->asString() == "exited");
    REQUIRE(hull({"rm", "web"}).status == 0);
    CHECK(hull({"ps", "-a", "--output", "json"}).out == "[]\n");
    // No mount, veth, cgroup, runtime state or address left.
    CHECK(mountsMentioning(id).empty());
    CHECK(waitFor([&] { return host.sh("ls /sys/class/net").out.find("hull") == host.sh("ls /sys/class/net").out.find("hull0"); }));
    CHECK(cgroupDirsNamed(id).empty());
    CHECK(sys::listDir(hull.state.path() + "/run/runc").empty());
    CHECK(sys::listDir(hull.state.path() + "/networks/hull/ips").empty());
}

TEST_CASE("hull: --memory is enforced and bad flags are refused", "[root][net][images][cli]") {
    REQUIRE_ROOT();
    std::string images = busyboxImages();
    TestNetns host("cli3");
    InNetns in(host.path());
    Hull hull;
    REQUIRE(hull({"image", "import", images + "/busybox.oci.tar"}).status == 0);
    auto oom = hull({"run", "--rm", "--memory", "32m", "hull.local/busybox", "sh", "-c",
                     "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo rc=$?"});
    CHECK(oom.out == "rc=137\n");
    auto fits = hull({"run", "--rm", "--memory", "128m", "hull.local/busybox", "sh", "-c",
                      "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo rc=$?"});
    CHECK(fits.out == "rc=0\n");
    auto bad = hull({"run", "--rm", "--memory", "lots", "hull.local/busybox", "true"});
    CHECK(bad.status != 0);
    CHECK(bad.err.find("--memory \"lots\"") != std::string::npos);
    auto missing = hull({"run", "--rm", "no-such-image-here", "true"});
    CHECK(missing.status != 0);
    CHECK(hull({"ps", "-a", "--output", "json"}).out == "[]\n");
}

TEST_CASE("hull: run on a dual-stack network: the container has its IPv6 address, inspect shows it",
          "[root][net][images][cli]") {
    REQUIRE_ROOT();
    std::string images = busyboxImages();
    TestNetns host("cli6", "h6-");
    InNetns in(host.path());
    Hull hull;
    REQUIRE(hull({"image", "import", images + "/busybox.oci.tar"}).status == 0);
    auto created = hull({"network", "create", "--name", "dual", "--subnet", "10.89.9.0/24", "--subnet6", "fd00:89:9::/64"});
    INFO(created.err);
    REQUIRE(created.status == 0);
    CHECK(created.out == "dual dual 10.89.9.0/24 gateway 10.89.9.1 fd00:89:9::/64 gateway fd00:89:9::1\n");
    auto ls = json::Value::parse(hull({"network", "ls", "--output", "json"}).out);
    REQUIRE(ls);
    CHECK(ls->asArray().at(0).find("subnet6")->asString() == "fd00:89:9::/64");

    TempDir www("hull-www6");
    writeFileOrThrow(www / "index.html", "hello over ipv6\n");
    auto r = hull({"run", "-d", "--name", "web6", "--network", "dual", "-v", www.path() + ":/www:ro",
                   "hull.local/busybox", "httpd", "-f", "-p", "80", "-h", "/www"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto web = json::Value::parse(hull({"inspect", "web6"}).out);
    REQUIRE(web);
    CHECK(web->find("ip")->asString() == "10.89.9.2");
    REQUIRE(web->find("ip6"));
    CHECK(web->find("ip6")->asString() == "fd00:89:9::2");
    // A second container sees its own IPv6 address (fd00:89:9::3 in /proc/net/if_inet6's
    // hex), finds it in /etc/hosts, and fetches the first one's page over IPv6.
    auto client = hull({"run", "--rm", "--network", "dual", "hull.local/busybox", "sh", "-c",
                        "cat /proc/net/if_inet6; cat /etc/hosts; "
                        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 fd00:89:9::2 80"});
    INFO(client.out << client.err);
    CHECK(client.status == 0);
    CHECK(client.out.find("fd000089000900000000000000000003") != std::string::npos);
    CHECK(client.out.find("fd00:89:9::3\t") != std::string::npos);
    CHECK(client.out.find("\r\n\r\nhello over ipv6\n") != std::string::npos);

    // The default network stays IPv4-only: no global IPv6 address, no ip6 field.
    auto plain = hull({"run", "--rm", "hull.local/busybox", "cat", "/proc/net/if_inet6"});
    CHECK(plain.status == 0);
    for (const auto& line : sys::split(plain.out, '\n')) CHECK((line.rfind("fe80", 0) == 0 || line.rfind("0000", 0) == 0));
    REQUIRE(hull({"run", "-d", "--name", "v4", "hull.local/busybox", "sleep", "30"}).status == 0);
    auto v4 = json::Value::parse(hull({"inspect", "v4"}).out);
    REQUIRE(v4);
    CHECK_FALSE(v4->find("ip6"));
    REQUIRE(hull({"rm", "-f", "v4"}).status == 0);

    REQUIRE(hull({"rm", "-f", "web6"}).status == 0);
    CHECK(sys::listDir(hull.state.path() + "/networks/dual/ips").empty());
    CHECK(sys::listDir(hull.state.path() + "/networks/hull/ips").empty());
    REQUIRE(hull({"network", "rm", "dual"}).status == 0);
}

namespace {

/// An OCI layout with one image whose single layer is LAYER (a tar file);
/// CORRUPT_DIGEST names the layer with a digest that is not its sha256.
std::string ociLayoutWith(const TempDir& at, const std::string& layer, bool corruptDigest = false,
                          const std::string& config = R"({"Cmd":["sh"]})") {
    std::string dir = at / "layout";
    REQUIRE(sys::mkdirAll(dir + "/blobs/sha256"));
    auto put = [&](const std::string& data) {
        auto d = images::digestOf(data);
        writeFileOrThrow(dir + "/blobs/sha256/" + d.hex, data);
        return d;
    };
    std::string layerData = readFileOr(layer);
    auto ld = put(layerData);
    std::string layerDigest = ld.str();
    if (corruptDigest) {
        // The blob file named after a digest that is not its content's.
        std::string fake(64, 'a');
        writeFileOrThrow(dir + "/blobs/sha256/" + fake, layerData);
        layerDigest = "sha256:" + fake;
    }
    auto cfg = put(R"({"architecture":"amd64","os":"linux","config":)" + config +
                   R"(,"rootfs":{"type":"layers","diff_ids":[")" + ld.str() + R"("]}})");
    std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                           cfg.str() + R"(","size":)" + std::to_string(readFileOr(dir + "/blobs/sha256/" + cfg.hex).size()) +
                           R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
                           layerDigest + R"(","size":)" + std::to_string(layerData.size()) + "}]}";
    auto md = put(manifest);
    writeFileOrThrow(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    writeFileOrThrow(dir + "/index.json", R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                                              md.str() + R"(","size":)" + std::to_string(manifest.size()) +
                                              R"(,"annotations":{"org.opencontainers.image.ref.name":"hull.local/hostile:1"}}]})");
    return dir;
}

}  // namespace

TEST_CASE("hull image import refuses hostile layers and bad digests, nothing lands outside or in the store",
          "[root][images][cli]") {
    REQUIRE_ROOT();
    TempDir work("hull-hostile");
    std::string victim = work / "victim";
    REQUIRE(sys::mkdirAll(victim));
    // (The VM harness's initramfs has no /etc/shadow: the link count is then not checked.)
    struct stat shadow{};
    bool haveShadow = ::stat("/etc/shadow", &shadow) == 0;
    struct Case {
        const char* what;
        std::vector<Entry> entries;
        const char* names;  // in the error
    };
    std::vector<Case> cases = {
        {"path traversal", {file("../../../../" + victim.substr(1) + "/dotdot", "x")}, "dotdot"},
        {"absolute symlink, then a write through it", {sym("etc", victim), file("etc/owned", "x")}, "etc/owned"},
        {"hardlink to the host's /etc/shadow", {hard("shadow", "/etc/shadow")}, "shadow"},
        {"hardlink escaping with ..", {hard("shadow2", "../../../../etc/shadow")}, "shadow2"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        Hull hull;
        TempDir t("hull-hostile-case");
        std::string layer = t / "layer.tar";
        writeLayer(layer, c.entries);
        auto r = hull({"image", "import", ociLayoutWith(t, layer)});
        CHECK(r.status != 0);
        CHECK(r.err.find(c.names) != std::string::npos);
        CHECK(hull({"image", "ls", "--output", "json"}).out == "[]\n");
        CHECK(sys::listDir(victim).empty());
        CHECK(sys::listDir(hull.state.path() + "/images/layers/sha256").empty());
        struct stat now{};
        if (haveShadow) {
            REQUIRE(::stat("/etc/shadow", &now) == 0);
            CHECK(now.st_nlink == shadow.st_nlink);
        }
    }
    {
        INFO("a declared size larger than the data");
        Hull hull;
        TempDir t("hull-hostile-case");
        std::string layer = t / "layer.tar";
        writeLayer(layer, {file("big", std::string(4096, 'x'))});
        std::string data = readFileOr(layer);
        writeFileOrThrow(layer, data.substr(0, 512 + 100));  // the header says 4096 bytes, 100 follow
        auto r = hull({"image", "import", ociLayoutWith(t, layer)});
        CHECK(r.status != 0);
        CHECK(r.err.find("big") != std::string::npos);
        CHECK(hull({"image", "ls", "--output", "json"}).out == "[]\n");
    }
    {
        INFO("a blob whose digest does not match");
        Hull hull;
        TempDir t("hull-hostile-case");
        std::string layer = t / "layer.tar";
        writeLayer(layer, {file("ok", "fine")});
        auto r = hull({"image", "import", ociLayoutWith(t, layer, true)});
        CHECK(r.status != 0);
        CHECK(r.err.find("does not match its digest") != std::string::npos);
        CHECK(hull({"image", "ls", "--output", "json"}).out == "[]\n");
        CHECK_FALSE(sys::exists(hull.state.path() + "/images/blobs/sha256/" + std::string(64, 'a')));
    }
}

TEST_CASE("hull image pull from a real registry, OCI and v2s2, then run: the deleted file is gone",
          "[root][net][images][cli][registry]") {
    REQUIRE_ROOT();
    if (auto missing = registryToolsMissing(); !missing.empty()) {
        WARN("skipped: " << missing);
        return;
    }
    TempDir work("hull-pull-run");
    std::string layout = buildTestImage(work.path());
    TestRegistry reg;
    std::string base = "127.0.0.1:" + std::to_string(reg.port()) + "/test/busybox";
    pushImage(layout, "latest", base + ":oci", "oci");
    pushImage(layout, "latest", base + ":v2s2", "v2s2");
    pushImage(layout, "multi", base + ":multi", "oci");
    // The registry listens on this namespace's loopback: no private namespace here,
    // and the containers run with --network none.
    Hull hull;
    std::string insecure = "127.0.0.1:" + std::to_string(reg.port());
    for (const char* tag : {"oci", "v2s2", "multi"}) {
        INFO(tag);
        auto p = hull({"image", "pull", "--insecure-registry", insecure, base + ":" + tag});
        INFO(p.err);
        REQUIRE(p.status == 0);
        auto r = hull({"run", "--rm", "--network", "none", base + ":" + tag, "sh", "-c",
                       "cat /etc/motd /etc/second; ls /etc/gone 2>&1; echo done"});
        INFO(r.err);
        CHECK(r.status == 0);
        CHECK(r.out.find("hello\ntwo\n") == 0);
        CHECK(r.out.find("No such file") != std::string::npos);  // deleted by the second layer's whiteout
    }
    // Clear errors for what is not there.
    auto unknown = hull({"image", "pull", "--insecure-registry", insecure, "127.0.0.1:" + std::to_string(reg.port()) + "/nope/none:1"});
    CHECK(unknown.status != 0);
    CHECK(unknown.err.find("repository not found") != std::string::npos);
    auto tag = hull({"image", "pull", "--insecure-registry", insecure, base + ":nope"});
    CHECK(tag.err.find("tag \"nope\" not found") != std::string::npos);
}

TEST_CASE("hull run: an image's Volumes get an anonymous volume seeded from the image", "[root][images][cli]") {
    REQUIRE_ROOT();
    TempDir t("hull-volume");
    std::string layer = t / "layer.tar";
    writeLayer(layer, {dir("bin"), file("bin/busybox", readFileOr(busyboxPath()), 0755), sym("bin/sh", "busybox"),
                       sym("bin/cat", "busybox"), dir("data"), file("data/seed", "from the image\n")});
    std::string layout = ociLayoutWith(t, layer, false,
                                       R"({"Cmd":["sh","-c","cat /data/seed; echo added >> /data/seed"],"Volumes":{"/data":{}}})");
    Hull hull;
    REQUIRE(hull({"image", "import", layout}).status == 0);
    auto r = hull({"run", "--network", "none", "--name", "vol", "hull.local/hostile:1"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out == "from the image\n");
    auto c = json::Value::parse(hull({"inspect", "vol"}).out);
    REQUIRE(c);
    std::string id = c->find("id")->asString();
    CHECK(readFileOr(hull.state.path() + "/containers/" + id + "/volumes/0/seed") == "from the image\nadded\n");
    CHECK(readFileOr(hull.state.path() + "/images/layers/sha256/" +
                     sys::listDir(hull.state.path() + "/images/layers/sha256").at(0) + "/data/seed") == "from the image\n");
    REQUIRE(hull({"rm", "vol"}).status == 0);
    CHECK_FALSE(sys::exists(hull.state.path() + "/containers/" + id));
    // -v over the same path: the host directory, no anonymous volume.
    TempDir host("hull-volume-host");
    writeFileOrThrow(host / "seed", "from the host\n");
    auto v = hull({"run", "--rm", "--network", "none", "-v", host.path() + ":/data", "hull.local/hostile:1"});
    CHECK(v.out == "from the host\n");
    CHECK(readFileOr(host / "seed") == "from the host\nadded\n");
}

namespace {
/// A one-layer busybox image with CONFIG and extra ENTRIES, imported as hull.local/hostile:1.
void importBusybox(const Hull& hull, const TempDir& t, const std::string& config, std::vector<Entry> extra = {}) {
    std::string layer = t / "layer.tar";
    std::vector<Entry> entries = {dir("bin"), file("bin/busybox", readFileOr(busyboxPath()), 0755),
                                  sym("bin/sh", "busybox"), sym("bin/sleep", "busybox"), sym("bin/ls", "busybox")};
    entries.insert(entries.end(), extra.begin(), extra.end());
    writeLayer(layer, entries);
    auto r = hull({"image", "import", ociLayoutWith(t, layer, false, config)});
    INFO(r.err);
    REQUIRE(r.status == 0);
}
}  // namespace

TEST_CASE("hull run: a Volume behind a symlink in the image never copies host files", "[root][images][cli]") {
    REQUIRE_ROOT();
    TempDir t("hull-volume-escape");
    Hull hull;
    importBusybox(hull, t, R"({"Cmd":["sh","-c","ls /esc/etc | wc -l"],"Volumes":{"/esc/etc":{}}})", {sym("esc", "/")});
    auto r = hull({"run", "--network", "none", "--name", "esc", "hull.local/hostile:1"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto c = json::Value::parse(hull({"inspect", "esc"}).out);
    REQUIRE(c);
    std::string vol = hull.state.path() + "/containers/" + c->find("id")->asString() + "/volumes/0";
    CHECK(sys::listDir(vol).empty());  // the image has no /etc: nothing to seed, and nothing of the host's
    CHECK_FALSE(sys::exists(vol + "/shadow"));
    REQUIRE(hull({"rm", "esc"}).status == 0);
}

TEST_CASE("hull run -d: the container gets SIGTERM from stop (no signal left ignored)", "[root][images][cli]") {
    REQUIRE_ROOT();
    TempDir t("hull-stop-signal");
    Hull hull;
    importBusybox(hull, t, R"({"Cmd":["sh","-c","trap 'exit 3' TERM; while :; do sleep 0.1; done"]})");
    REQUIRE(hull({"run", "-d", "--network", "none", "--name", "trap", "hull.local/hostile:1"}).status == 0);
    auto start = std::chrono::steady_clock::now();
    REQUIRE(hull({"stop", "-t", "10", "trap"}).status == 0);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < std::chrono::seconds(5));  // the trap ran; no SIGKILL after the grace period
    auto c = json::Value::parse(hull({"inspect", "trap"}).out);
    REQUIRE(c);
    int64_t code = -1;
    REQUIRE(c->find("exitCode"));
    REQUIRE(c->find("exitCode")->toInt64(code));
    CHECK(code == 3);
    REQUIRE(hull({"rm", "trap"}).status == 0);
}
