// Layer unpacking. Every archive is built here with libarchive's writer, which
// (unlike bsdtar) keeps hostile names such as "../escape" verbatim. Each refused
// layer is checked for the same four things: an error naming the entry, no DEST,
// no ".partial" directory left beside it, and nothing written outside.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "images/tar_writer.hpp"
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "images/unpack.hpp"
#include "support.hpp"
#include "sys/fs.hpp"

using hull::images::unpackLayer;
using hull::images::UnpackStats;
using hull::test::isRoot;
using hull::test::TempDir;
using hull::test::Entry;
using hull::test::Compression;
using hull::test::writeLayer;
using hull::test::file;
using hull::test::dir;
using hull::test::sym;
using hull::test::hard;
using hull::test::node;
using hull::test::kMtime;

namespace {

struct stat lstatOrFail(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) FAIL("lstat " << path << ": " << std::strerror(errno));
    return st;
}

bool exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
}

std::string getXattr(const std::string& path, const std::string& name) {
    char buf[256];
    ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
    return n < 0 ? "<none: " + std::string(std::strerror(errno)) + ">" : std::string(buf, size_t(n));
}

/// Whether DIR's file system stores user.* xattrs (tmpfs only since Linux 6.6).
bool userXattrsWork(const std::string& dir) {
    std::string probe = dir + "/xattr-probe";
    hull::test::writeFileOrThrow(probe, "");
    bool ok = ::setxattr(probe.c_str(), "user.probe", "1", 1, 0) == 0;
    ::unlink(probe.c_str());
    return ok;
}

/// Every path below DIR (relative), recursively; symlinks not followed.
void walk(const std::string& dir, const std::string& rel, std::vector<std::string>& out) {
    for (auto& name : hull::sys::listDir(dir + (rel.empty() ? "" : "/" + rel))) {
        std::string r = rel.empty() ? name : rel + "/" + name;
        out.push_back(r);
        struct stat st;
        if (::lstat((dir + "/" + r).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) walk(dir, r, out);
    }
}
std::vector<std::string> tree(const std::string& dir) {
    std::vector<std::string> out;
    walk(dir, "", out);
    return out;
}

/// The checks every refused layer must pass. WORK holds the layer file and is
/// DEST's parent: afterwards it holds the layer file and nothing else.
void requireRefused(const hull::Result<UnpackStats>& r, const std::string& entry, const TempDir& work,
                    const std::string& dest) {
    REQUIRE_FALSE(r);
    INFO("error: " << r.error().message());
    CHECK_THAT(r.error().message(), Catch::Contains("layer entry \"" + entry + "\""));
    CHECK_FALSE(exists(dest));
    std::vector<std::string> left = hull::sys::listDir(work.path());
    CHECK(left == std::vector<std::string>{"layer.tar"});
}

/// Gives everything below DIR u+rwx on scope exit, so that an unprivileged
/// run can remove the read-only directories a layer made (TempDir cannot).
struct MakeRemovable {
    const TempDir& dir;
    ~MakeRemovable() {
        if (!isRoot()) hull::test::run({"/bin/chmod", "-R", "u+rwx", dir.path()});
    }
};

/// Many ".." (more than any temp path is deep): the kernel stops at "/".
const std::string kUp = "../../../../../../../../../../../../../../../../../../../..";

}  // namespace

TEST_CASE("unpack: a layer with directories, files, modes, owners, links, xattrs and special files", "[unpack]") {
    TempDir work("hull-unpack");
    MakeRemovable removable{work};
    std::string layer = work / "layer.tar", dest = work / "rootfs";
    std::vector<Entry> entries = {
        dir("./"),
        dir("etc/", 0750),
        file("etc/hosts", "127.0.0.1 localhost\n"),
        dir("bin/"),
        file("bin/busybox", std::string(100000, 'b'), 0755),
        hard("bin/hard", "bin/busybox"),
        sym("bin/sh", "/bin/busybox"),  // absolute targets are normal inside an image
        sym("bin/rel", "busybox"),
        file("/abs/file", "leading slash stripped"),
        file("a/../b", "lexical dot-dot inside the root"),
        file("deep/implicit/parents", "x"),
        dir("ro/", 0555),
        file("ro/inside", "made before ro/ turns read-only"),
        dir("sticky/", 01777),
    };
    Entry su = file("bin/su", "setuid", 04755);
    su.uid = 1000;
    su.gid = 1000;
    su.xattrs = {{"user.x", "hello"}};
    entries.push_back(su);
    if (isRoot()) {
        entries.push_back(node("run/fifo", AE_IFIFO));
        entries.push_back(node("dev/null", AE_IFCHR, 1, 3));
        entries.back().perm = 0666;
    }
    writeLayer(layer, entries);

    auto r = unpackLayer(layer, dest);
    INFO((r ? "" : r.error().message()));
    REQUIRE(r);
    CHECK(r->entries == entries.size());
    CHECK(r->bytes == 100000 + 20 + 22 + 31 + 1 + 31 + 6);
    CHECK(r->whiteouts == 0);
    CHECK(hull::sys::listDir(work.path()).size() == 2);  // layer.tar and rootfs: no .partial left

    CHECK((lstatOrFail(dest).st_mode & 07777) == 0755);
    CHECK((lstatOrFail(dest + "/etc").st_mode & 07777) == 0750);
    CHECK(lstatOrFail(dest + "/etc").st_mtime == kMtime);  // set after etc/hosts was made in it
    CHECK(hull::test::readFileOr(dest + "/etc/hosts") == "127.0.0.1 localhost\n");
    CHECK(lstatOrFail(dest + "/etc/hosts").st_mtime == kMtime);

    auto bb = lstatOrFail(dest + "/bin/busybox");
    auto hard = lstatOrFail(dest + "/bin/hard");
    CHECK(bb.st_ino == hard.st_ino);
    CHECK(bb.st_nlink == 2);
    CHECK((bb.st_mode & 07777) == 0755);

    char target[256] = {};
    REQUIRE(::readlink((dest + "/bin/sh").c_str(), target, sizeof target - 1) > 0);
    CHECK(std::string(target) == "/bin/busybox");
    CHECK(S_ISLNK(lstatOrFail(dest + "/bin/rel").st_mode));

    CHECK(hull::test::readFileOr(dest + "/abs/file") == "leading slash stripped");
    CHECK(hull::test::readFileOr(dest + "/b") == "lexical dot-dot inside the root");
    CHECK_FALSE(exists(dest + "/a"));
    CHECK((lstatOrFail(dest + "/deep/implicit").st_mode & 07777) == 0755);
    CHECK((lstatOrFail(dest + "/ro").st_mode & 07777) == 0555);
    CHECK(hull::test::readFileOr(dest + "/ro/inside") == "made before ro/ turns read-only");
    CHECK((lstatOrFail(dest + "/sticky").st_mode & 07777) == 01777);

    auto sust = lstatOrFail(dest + "/bin/su");
    CHECK((sust.st_mode & 07777) == 04755);
    if (userXattrsWork(work.path())) CHECK(getXattr(dest + "/bin/su", "user.x") == "hello");
    else WARN("user.* xattrs unsupported on " << work.path() << ": xattr check skipped");
    if (isRoot()) {
        CHECK(sust.st_uid == 1000);
        CHECK(sust.st_gid == 1000);
        CHECK(S_ISFIFO(lstatOrFail(dest + "/run/fifo").st_mode));
        auto null = lstatOrFail(dest + "/dev/null");
        CHECK(S_ISCHR(null.st_mode));
        CHECK(null.st_rdev == makedev(1, 3));
        CHECK((null.st_mode & 07777) == 0666);
    }
}

TEST_CASE("unpack: gzip and zstd layers are detected from the data", "[unpack]") {
    auto c = GENERATE(Compression::None, Compression::Gzip, Compression::Zstd);
    TempDir work("hull-unpack");
    std::string layer = work / "layer.tar", dest = work / "rootfs";
    writeLayer(layer, {dir("usr/"), file("usr/data", std::string(50000, 'z')), sym("lib", "usr")}, c);
    auto r = unpackLayer(layer, dest);
    INFO((r ? "" : r.error().message()));
    REQUIRE(r);
    CHECK(r->entries == 3);
    CHECK(r->bytes == 50000);
    CHECK(hull::test::readFileOr(dest + "/usr/data") == std::string(50000, 'z'));
    CHECK(S_ISLNK(lstatOrFail(dest + "/lib").st_mode));
}

TEST_CASE("unpack: whiteouts become overlayfs whiteouts and opaque directories", "[unpack][root]") {
    REQUIRE_ROOT();
    TempDir work("hull-unpack");
    std::string layer = work / "layer.tar", dest = work / "rootfs";
    writeLayer(layer, {
                          dir("dir/", 0700),
                          file("dir/.wh..wh..opq", ""),
                          file("dir/keep", "kept"),
                          file(".wh.gone", ""),
                          file("dup", "the same layer's own file"),
                          file(".wh.dup", ""),
                          dir("olddir/"),
                          file("olddir/f", "x"),
                          file(".wh.olddir", ""),
                          file(".wh..wh.plnk", ""),  // aufs metadata: skipped
                          file("sub/.wh.nested", ""),
                      });
    auto r = unpackLayer(layer, dest);
    INFO((r ? "" : r.error().message()));
    REQUIRE(r);
    CHECK(r->whiteouts == 5);
    CHECK(r->entries == 11);
    for (const char* w : {"gone", "dup", "olddir", "sub/nested"}) {
        INFO(w);
        auto st = lstatOrFail(dest + "/" + w);
        CHECK(S_ISCHR(st.st_mode));
        CHECK(st.st_rdev == makedev(0, 0));
    }
    CHECK(getXattr(dest + "/dir", "trusted.overlay.opaque") == "y");
    CHECK((lstatOrFail(dest + "/dir").st_mode & 07777) == 0700);
    CHECK(hull::test::readFileOr(dest + "/dir/keep") == "kept");
    for (auto& p : tree(dest)) {
        INFO(p);
        CHECK(p.find(".wh.") == std::string::npos);
    }
}

TEST_CASE("unpack: a later entry replaces an earlier one, without writing through it", "[unpack]") {
    TempDir work("hull-unpack"), outside("hull-unpack-outside");
    std::string layer = work / "layer.tar", dest = work / "rootfs";
    hull::test::writeFileOrThrow(outside / "target", "host file");
    Entry later = dir("keep/", 0750);
    later.mtime = kMtime + 100;
    writeLayer(layer, {
                          file("x", "one"),
                          file("x", "two"),
                          dir("d/"),
                          file("d/f", "gone with d"),
                          file("d", "now a file"),
                          file("y", "a file first"),
                          dir("y/"),
                          dir("keep/", 0700),
                          file("keep/f", "kept"),
                          later,
                          sym("s", outside / "target"),
                          file("s", "replaces the symlink, not its target"),
                      });
    auto r = unpackLayer(layer, dest);
    INFO((r ? "" : r.error().message()));
    REQUIRE(r);
    CHECK(hull::test::readFileOr(dest + "/x") == "two");
    CHECK(hull::test::readFileOr(dest + "/d") == "now a file");
    CHECK(S_ISDIR(lstatOrFail(dest + "/y").st_mode));
    CHECK(hull::test::readFileOr(dest + "/keep/f") == "kept");
    CHECK((lstatOrFail(dest + "/keep").st_mode & 07777) == 0750);
    CHECK(lstatOrFail(dest + "/keep").st_mtime == kMtime + 100);
    CHECK(S_ISREG(lstatOrFail(dest + "/s").st_mode));
    CHECK(hull::test::readFileOr(dest + "/s") == "replaces the symlink, not its target");
    CHECK(hull::test::readFileOr(outside / "target") == "host file");
}

TEST_CASE("unpack: hostile layers are refused and leave nothing behind", "[unpack]") {
    TempDir work("hull-unpack"), outside("hull-unpack-outside");
    std::string layer = work / "layer.tar", dest = work / "rootfs";
    std::string out = outside.path();  // absolute, e.g. /tmp/hull-unpack-outside-XXXXXX
    std::string outRel = out.substr(1);
    std::string secret = outside / "secret";
    hull::test::writeFileOrThrow(secret, "host secret");
    struct stat shadowBefore {};
    bool haveShadow = ::stat("/etc/shadow", &shadowBefore) == 0;

    std::string refused;  // the entry the error must name
    SECTION("../escape") {
        writeLayer(layer, {file("ok", "fine"), file("../escape", "out")});
        refused = "../escape";
        requireRefused(unpackLayer(layer, dest), refused, work, dest);
    }
    SECTION("an absolute path whose .. climbs out") {
        refused = "/abs/../../" + kUp + out + "/abs-escape";
        writeLayer(layer, {file(refused, "out")});
        requireRefused(unpackLayer(layer, dest), refused, work, dest);
    }
    SECTION("an absolute symlink, then a write through it") {
        writeLayer(layer, {sym("link", out), file("link/owned", "out")});
        refused = "link/owned";
        auto r = unpackLayer(layer, dest);
        requireRefused(r, refused, work, dest);
        CHECK_THAT(r.error().message(), Catch::Contains("a parent is a symlink"));
    }
    SECTION("a relative symlink climbing out, then a write through it") {
        writeLayer(layer, {sym("up", kUp), file("up/" + outRel + "/x", "out")});
        refused = "up/" + outRel + "/x";
        auto r = unpackLayer(layer, dest);
        requireRefused(r, refused, work, dest);
        CHECK_THAT(r.error().message(), Catch::Contains("a parent is a symlink"));
    }
    SECTION("a symlink to a directory inside the layer is not written through either") {
        writeLayer(layer, {dir("usr/lib/"), sym("lib", "usr/lib"), file("lib/x", "in")});
        refused = "lib/x";
        requireRefused(unpackLayer(layer, dest), refused, work, dest);
    }
    SECTION("a symlink deeper in the path, then a directory through it") {
        writeLayer(layer, {dir("a/"), sym("a/b", out), dir("a/b/c/")});
        refused = "a/b/c/";
        requireRefused(unpackLayer(layer, dest), refused, work, dest);
    }
    SECTION("a hardlink to /etc/shadow") {
        writeLayer(layer, {file("ok", "fine"), hard("shadow", "/etc/shadow")});
        refused = "shadow";
        auto r = unpackLayer(layer, dest);
        requireRefused(r, refused, work, dest);
        CHECK_THAT(r.error().message(), Catch::Contains("not in the layer"));
    }
    SECTION("a hardlink to ../../etc/shadow") {
        writeLayer(layer, {hard("shadow", "../../etc/shadow")});
        refused = "shadow";
        requireRefused(unpackLayer(layer, dest), refused, work, dest);
    }
    SECTION("hardlinks to a host file by absolute and by climbing path") {
        for (const std::string& target : {secret, kUp + secret}) {
            INFO(target);
            writeLayer(layer, {hard("stolen", target)});
            requireRefused(unpackLayer(layer, dest), "stolen", work, dest);
        }
    }
    SECTION("a hardlink through a symlinked parent") {
        writeLayer(layer, {sym("o", out), hard("stolen", "o/secret")});
        refused = "stolen";
        auto r = unpackLayer(layer, dest);
        requireRefused(r, refused, work, dest);
        CHECK_THAT(r.error().message(), Catch::Contains("a parent is a symlink"));
    }
    SECTION("a hardlink to an entry that comes later") {
        writeLayer(layer, {hard("early", "late"), file("late", "x")});
        refused = "early";
        requireRefused(unpackLayer(layer, dest), refused, work, dest);
    }
    SECTION("a truncated archive: a header for 1 MiB followed by 10 bytes") {
        writeLayer(layer, {file("big", std::string(1 << 20, 'x'))});
        // ustar, short name, no xattrs: the header is the first 512 bytes.
        REQUIRE(::truncate(layer.c_str(), 512 + 10) == 0);
        refused = "big";
        auto r = unpackLayer(layer, dest);
        requireRefused(r, refused, work, dest);
        CHECK_THAT(r.error().message(), Catch::Contains("runcated"));
    }

    // Nothing landed outside, and no host file gained a link.
    CHECK(tree(out) == std::vector<std::string>{"secret"});
    CHECK(hull::test::readFileOr(secret) == "host secret");
    CHECK(lstatOrFail(secret).st_nlink == 1);
    CHECK_FALSE(exists(work / "escape"));
    if (haveShadow) {
        struct stat after {};
        REQUIRE(::stat("/etc/shadow", &after) == 0);
        CHECK(after.st_nlink == shadowBefore.st_nlink);
    }
}

TEST_CASE("unpack: a cut compressed stream and a non-tar file are refused", "[unpack]") {
    auto c = GENERATE(Compression::Gzip, Compression::Zstd);
    TempDir work("hull-unpack");
    std::string layer = work / "layer.tar", dest = work / "rootfs";
    // Random-ish data so the compressed stream is long enough to cut in the middle.
    std::string data;
    uint32_t x = 12345;
    for (int i = 0; i < (1 << 20); ++i) data += char((x = x * 1103515245 + 12345) >> 24);
    writeLayer(layer, {file("a", "first"), file("big", data)}, c);
    struct stat st = lstatOrFail(layer);
    REQUIRE(::truncate(layer.c_str(), st.st_size / 2) == 0);
    auto r = unpackLayer(layer, dest);
    REQUIRE_FALSE(r);
    INFO(r.error().message());
    CHECK_THAT(r.error().message(), Catch::Contains("big"));
    CHECK_FALSE(exists(dest));
    CHECK(hull::sys::listDir(work.path()) == std::vector<std::string>{"layer.tar"});

    hull::test::writeFileOrThrow(layer, std::string(4096, 'n'));  // not an archive at all
    auto garbage = unpackLayer(layer, dest);
    CHECK_FALSE(garbage);
    CHECK_FALSE(exists(dest));
    CHECK(hull::sys::listDir(work.path()) == std::vector<std::string>{"layer.tar"});
}

TEST_CASE("unpack: DEST must not exist, and the archive must", "[unpack]") {
    TempDir work("hull-unpack");
    std::string layer = work / "layer.tar", dest = work / "rootfs";
    writeLayer(layer, {file("f", "x")});
    REQUIRE(::mkdir(dest.c_str(), 0755) == 0);
    hull::test::writeFileOrThrow(dest + "/mine", "keep");
    auto r = unpackLayer(layer, dest);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::Contains("already exists"));
    CHECK(hull::sys::listDir(dest) == std::vector<std::string>{"mine"});

    auto missing = unpackLayer(work / "nope.tar", work / "other");
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error().message(), Catch::Contains("nope.tar"));
    CHECK_FALSE(exists(work / "other"));
    CHECK(hull::sys::listDir(work.path()).size() == 2);
}

TEST_CASE("unpack: unprivileged, special files are refused by name and read-only directories still fill",
          "[unpack]") {
    // As root, drop to nobody in a child; unprivileged already, run in place.
    TempDir work("hull-unpack");
    MakeRemovable removable{work};
    REQUIRE(::chmod(work.path().c_str(), 0777) == 0);
    std::string fifoLayer = work / "fifo.tar", devLayer = work / "dev.tar", roLayer = work / "ro.tar";
    writeLayer(fifoLayer, {file("ok", "x"), node("run/pipe", AE_IFIFO)});
    writeLayer(devLayer, {node("dev/sda", AE_IFBLK, 8, 0)});
    writeLayer(roLayer, {dir("ro/", 0555), dir("ro/sub/", 0500), file("ro/sub/f", "x", 0444)});

    auto body = [&]() -> std::string {  // "" on success, else what went wrong
        auto f = unpackLayer(fifoLayer, work / "fifo");
        if (f) return "fifo layer unpacked";
        if (f.error().message().find("layer entry \"run/pipe\"") == std::string::npos)
            return "fifo error: " + f.error().message();
        auto d = unpackLayer(devLayer, work / "dev");
        if (d) return "device layer unpacked";
        if (d.error().message().find("layer entry \"dev/sda\"") == std::string::npos)
            return "device error: " + d.error().message();
        auto ro = unpackLayer(roLayer, work / "ro");
        if (!ro) return "read-only layer: " + ro.error().message();
        if (hull::test::readFileOr(work / "ro/ro/sub/f") != "x") return "ro/sub/f missing";
        return "";
    };

    std::string problem;
    if (!isRoot()) {
        problem = body();
    } else {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(fds[0]);
            std::string msg = ::setgroups(0, nullptr) == 0 && ::setresgid(65534, 65534, 65534) == 0 &&
                                      ::setresuid(65534, 65534, 65534) == 0
                                  ? body()
                                  : "cannot become nobody";
            (void)!::write(fds[1], msg.data(), msg.size());
            ::_exit(0);
        }
        ::close(fds[1]);
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fds[0], buf, sizeof buf)) > 0) problem.append(buf, size_t(n));
        ::close(fds[0]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
    }
    CHECK(problem == "");
    CHECK_FALSE(exists(work / "fifo"));
    CHECK_FALSE(exists(work / "dev"));
    for (auto& name : hull::sys::listDir(work.path())) CHECK(name.find(".partial") == std::string::npos);
    CHECK((lstatOrFail(work / "ro/ro").st_mode & 07777) == 0555);
    CHECK((lstatOrFail(work / "ro/ro/sub").st_mode & 07777) == 0500);
}
