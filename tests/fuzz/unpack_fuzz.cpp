// Image layers: images::unpackLayer on any bytes (tar, gzip- or zstd-compressed).
// After each input the target checks what unpack.hpp promises:
//   - nothing was written outside DEST: the work directory holds only the layer,
//     DEST and the trap directory, the trap's canary is untouched, and the
//     absolute trap /tmp/hull-fuzz-trap (the seeds' symlinks point at it and at
//     ../trap) is still empty;
//   - a refused layer leaves no DEST and no temporary directory behind.
// Run as root (scripts/fuzz is), so owners, device nodes and xattrs are made too.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "images/unpack.hpp"
#include "quiet.hpp"

namespace {

const char* const kAbsoluteTrap = "/tmp/hull-fuzz-trap";
const std::string kCanary = "the canary\n";
std::string work;  // /tmp/hull-fuzz-unpack-XXXXXX

[[noreturn]] void broken(const std::string& what) {
    fprintf(stderr, "unpack: %s\n", what.c_str());
    abort();
}

std::set<std::string> entries(const std::string& dir) {
    std::set<std::string> out;
    DIR* d = opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = readdir(d))
        if (std::string n = e->d_name; n != "." && n != "..") out.insert(n);
    closedir(d);
    return out;
}

int removeOne(const char* path, const struct stat*, int flag, struct FTW*) {
    if (flag == FTW_DP) return rmdir(path) == 0 ? 0 : -1;
    return unlink(path) == 0 ? 0 : -1;
}

void removeTree(const std::string& path) {
    // Depth first, never following a symlink: the layer may have planted any.
    if (access(path.c_str(), F_OK) == 0 || errno != ENOENT) {
        chmod(path.c_str(), 0700);
        if (nftw(path.c_str(), removeOne, 16, FTW_DEPTH | FTW_PHYS) != 0 && access(path.c_str(), F_OK) == 0)
            broken("cannot remove " + path);
    }
}

std::string readCanary() {
    int fd = open((work + "/trap/canary").c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return "";
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n > 0 ? std::string(buf, size_t(n)) : "";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    hull::fuzz::quietLogs();
    char tmpl[] = "/tmp/hull-fuzz-unpack-XXXXXX";
    if (!mkdtemp(tmpl)) broken("mkdtemp");
    work = tmpl;
    mkdir((work + "/trap").c_str(), 0755);
    int fd = open((work + "/trap/canary").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, kCanary.data(), kCanary.size()) != ssize_t(kCanary.size())) broken("write the canary");
    close(fd);
    mkdir(kAbsoluteTrap, 0755);
    if (!entries(kAbsoluteTrap).empty()) broken(std::string(kAbsoluteTrap) + " is not empty before the first input");
    atexit([] { removeTree(work); });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string layer = work + "/layer", dest = work + "/dest";
    int fd = open(layer.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data, size) != ssize_t(size)) broken("write the layer");
    close(fd);

    auto r = hull::images::unpackLayer(layer, dest);

    std::set<std::string> want{"layer", "trap"};
    if (r) want.insert("dest");
    if (auto got = entries(work); got != want) {
        std::string list;
        for (auto& n : got) list += " " + n;
        broken("after a layer that was " + std::string(r ? "unpacked" : "refused (" + r.error().message() + ")") +
               ", the work directory holds:" + list);
    }
    if (entries(work + "/trap") != std::set<std::string>{"canary"} || readCanary() != kCanary)
        broken("the trap directory beside DEST was written to");
    if (!entries(kAbsoluteTrap).empty()) broken(std::string("something was written to ") + kAbsoluteTrap);
    if (r) removeTree(dest);
    return 0;
}
