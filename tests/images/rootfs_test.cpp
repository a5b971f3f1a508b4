// Root filesystems from unpacked layers: overlayfs, and the copy fallback,
// which must give the same view (whiteouts and opaque directories applied).
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "images/rootfs.hpp"
#include "support.hpp"
#include "sys/fs.hpp"

using namespace hull;
using namespace hull::test;

namespace {

/// Two layers as the unpacker leaves them: the upper one whites out a file
/// and makes a directory opaque.
std::vector<std::string> makeLayers(const TempDir& t) {
    std::string l1 = t / "l1", l2 = t / "l2";
    REQUIRE(sys::mkdirAll(l1 + "/etc"));
    REQUIRE(sys::mkdirAll(l1 + "/data/old"));
    writeFileOrThrow(l1 + "/etc/keep", "keep\n");
    writeFileOrThrow(l1 + "/etc/gone", "gone\n");
    writeFileOrThrow(l1 + "/data/old/file", "old\n");
    REQUIRE(::symlink("etc/keep", (l1 + "/link").c_str()) == 0);
    REQUIRE(sys::mkdirAll(l2 + "/etc"));
    REQUIRE(sys::mkdirAll(l2 + "/data"));
    writeFileOrThrow(l2 + "/etc/new", "new\n");
    writeFileOrThrow(l2 + "/data/fresh", "fresh\n");
    REQUIRE(::mknod((l2 + "/etc/gone").c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0);
    REQUIRE(::setxattr((l2 + "/data").c_str(), "trusted.overlay.opaque", "y", 1, 0) == 0);
    return {l1, l2};
}

void checkView(const std::string& root) {
    CHECK(readFileOr(root + "/etc/keep") == "keep\n");
    CHECK(readFileOr(root + "/etc/new") == "new\n");
    CHECK_FALSE(sys::exists(root + "/etc/gone"));
    CHECK(readFileOr(root + "/data/fresh") == "fresh\n");
    CHECK_FALSE(sys::exists(root + "/data/old"));  // the opaque directory hides the lower one's content
    CHECK(readFileOr(root + "/link") == "keep\n");
}

}  // namespace

TEST_CASE("rootfs: overlay and the copy fallback show the same layers", "[root][images][rootfs]") {
    REQUIRE_ROOT();
    TempDir t("hull-rootfs");
    auto layers = makeLayers(t);
    for (bool overlay : {true, false}) {
        INFO((overlay ? "overlay" : "copy"));
        std::string dir = t / (overlay ? "c-overlay" : "c-copy");
        REQUIRE(sys::mkdirAll(dir));
        auto r = images::makeRootfs(layers, dir, overlay);
        REQUIRE(r);
        checkView(r->path);
        // Writes land in the container's own dir, never in a layer.
        writeFileOrThrow(r->path + "/etc/keep", "changed\n");
        CHECK(readFileOr(layers[0] + "/etc/keep") == "keep\n");
        REQUIRE(images::removeRootfs(dir));
        CHECK_FALSE(sys::exists(dir + "/rootfs"));
        CHECK_FALSE(sys::exists(dir + "/upper"));
        CHECK(images::removeRootfs(dir));  // idempotent
    }
}
