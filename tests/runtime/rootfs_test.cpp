#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

#include "runtime/rootfs.hpp"
#include "support.hpp"
#include "sys/fs.hpp"

using namespace hull::runtime;
using hull::test::TempDir;

namespace {

Mount mountOf(std::string destination, std::string type, std::string source, std::vector<std::string> options) {
    Mount m;
    m.destination = std::move(destination);
    m.type = std::move(type);
    m.source = std::move(source);
    m.options = std::move(options);
    return m;
}

Spec specWith(std::vector<Mount> mounts) {
    Spec s;
    s.mounts = std::move(mounts);
    return s;
}

MountOp planOne(const Mount& m) {
    auto ops = planMounts(specWith({m}));
    REQUIRE(ops);
    REQUIRE(ops->size() == 1);
    return (*ops)[0];
}

std::string planError(std::vector<Mount> mounts) {
    auto ops = planMounts(specWith(std::move(mounts)));
    REQUIRE_FALSE(ops);
    return ops.error().message();
}

}  // namespace

// ---- planMounts -------------------------------------------------------------

TEST_CASE("mount options become MS_ flags, the rest is file-system data", "[rootfs]") {
    auto op = planOne(mountOf("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
    CHECK(op.destination == "/dev");
    CHECK(op.type == "tmpfs");
    CHECK(op.source == "tmpfs");
    CHECK(op.flags == (MS_NOSUID | MS_STRICTATIME));
    CHECK(op.data == "mode=755,size=65536k");
    CHECK_FALSE(op.bind);
    CHECK_FALSE(op.needsRemount);

    auto pts = planOne(mountOf("/dev/pts", "devpts", "devpts",
                               {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
    CHECK(pts.flags == (MS_NOSUID | MS_NOEXEC));
    CHECK(pts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5");
}

TEST_CASE("every flag option sets or clears its flag", "[rootfs]") {
    struct Row {
        const char* name;
        unsigned long flag;
        bool clear;
    };
    const Row rows[] = {
        {"ro", MS_RDONLY, false},           {"rw", MS_RDONLY, true},
        {"nosuid", MS_NOSUID, false},       {"suid", MS_NOSUID, true},
        {"nodev", MS_NODEV, false},         {"dev", MS_NODEV, true},
        {"noexec", MS_NOEXEC, false},       {"exec", MS_NOEXEC, true},
        {"sync", MS_SYNCHRONOUS, false},    {"async", MS_SYNCHRONOUS, true},
        {"dirsync", MS_DIRSYNC, false},     {"remount", MS_REMOUNT, false},
        {"mand", MS_MANDLOCK, false},       {"nomand", MS_MANDLOCK, true},
        {"noatime", MS_NOATIME, false},     {"atime", MS_NOATIME, true},
        {"nodiratime", MS_NODIRATIME, false}, {"diratime", MS_NODIRATIME, true},
        {"relatime", MS_RELATIME, false},   {"norelatime", MS_RELATIME, true},
        {"strictatime", MS_STRICTATIME, false}, {"nostrictatime", MS_STRICTATIME, true},
    };
    for (auto& r : rows) {
        INFO(r.name);
        auto op = planOne(mountOf("/mnt", "tmpfs", "tmpfs", {r.name}));
        CHECK(op.data.empty());
        if (r.clear) {
            CHECK(op.flags == 0);
            CHECK(op.clearFlags == r.flag);
        } else {
            CHECK(op.flags == r.flag);
            CHECK(op.clearFlags == 0);
        }
    }
}

TEST_CASE("a later option overrides an earlier one", "[rootfs]") {
    auto op = planOne(mountOf("/mnt", "tmpfs", "tmpfs", {"ro", "nosuid", "rw"}));
    CHECK(op.flags == MS_NOSUID);
    CHECK(op.clearFlags == MS_RDONLY);
    auto op2 = planOne(mountOf("/mnt", "tmpfs", "tmpfs", {"rw", "ro"}));
    CHECK(op2.flags == MS_RDONLY);
    CHECK(op2.clearFlags == 0);
}

TEST_CASE("bind mounts: type bind or a bind option, ro and friends need a remount", "[rootfs]") {
    auto ro = planOne(mountOf("/data", "bind", "/srv/data", {"rbind", "ro", "nosuid"}));
    CHECK(ro.bind);
    CHECK(ro.recursive);
    CHECK(ro.type == "bind");
    CHECK(ro.source == "/srv/data");
    CHECK(ro.flags == (MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID));
    CHECK(ro.needsRemount);

    auto plain = planOne(mountOf("/data", "none", "/srv/data", {"bind"}));
    CHECK(plain.bind);
    CHECK_FALSE(plain.recursive);
    CHECK(plain.type == "bind");
    CHECK(plain.flags == MS_BIND);
    CHECK_FALSE(plain.needsRemount);

    auto typeOnly = planOne(mountOf("/data", "bind", "/srv/data", {}));
    CHECK(typeOnly.bind);
    CHECK_FALSE(typeOnly.recursive);
    CHECK(typeOnly.flags == MS_BIND);

    auto rw = planOne(mountOf("/data", "bind", "/srv/data", {"rbind", "rw"}));
    CHECK_FALSE(rw.needsRemount);
    CHECK(rw.clearFlags == MS_RDONLY);

    for (const char* opt : {"nodev", "noexec", "nosuid", "ro"}) {
        INFO(opt);
        CHECK(planOne(mountOf("/d", "bind", "/s", {"bind", opt})).needsRemount);
    }
}

TEST_CASE("propagation options are kept apart from the flags", "[rootfs]") {
    struct Row {
        const char* name;
        unsigned long flags;
    };
    const Row rows[] = {{"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
                        {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
                        {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
                        {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC}};
    for (auto& r : rows) {
        INFO(r.name);
        auto op = planOne(mountOf("/data", "bind", "/srv", {"bind", r.name}));
        CHECK(op.propagation == r.flags);
        CHECK(op.flags == MS_BIND);
    }
    auto last = planOne(mountOf("/data", "bind", "/srv", {"rbind", "rshared", "rprivate"}));
    CHECK(last.propagation == (MS_PRIVATE | MS_REC));
}

TEST_CASE("destinations are cleaned and made absolute", "[rootfs]") {
    CHECK(planOne(mountOf("dev//shm/", "tmpfs", "shm", {})).destination == "/dev/shm");
    CHECK(planOne(mountOf("relative/x", "tmpfs", "t", {})).destination == "/relative/x");
    CHECK(planOne(mountOf("/a/./b/../c", "tmpfs", "t", {})).destination == "/a/c");
    // ".." cannot climb out of the container's root, even lexically.
    CHECK(planOne(mountOf("/../../etc", "tmpfs", "t", {})).destination == "/etc");
}

TEST_CASE("mounts keep their order, and a missing source takes the type's name", "[rootfs]") {
    auto ops = planMounts(specWith({mountOf("/proc", "proc", "", {}), mountOf("/dev", "tmpfs", "tmpfs", {}),
                                    mountOf("/dev/pts", "devpts", "devpts", {})}));
    REQUIRE(ops);
    REQUIRE(ops->size() == 3);
    CHECK((*ops)[0].destination == "/proc");
    CHECK((*ops)[0].source == "proc");
    CHECK((*ops)[1].destination == "/dev");
    CHECK((*ops)[2].destination == "/dev/pts");
}

TEST_CASE("tmpcopyup is understood on tmpfs only", "[rootfs]") {
    auto op = planOne(mountOf("/etc", "tmpfs", "tmpfs", {"tmpcopyup", "mode=755"}));
    CHECK(op.copyUp);
    CHECK(op.data == "mode=755");
    CHECK(planError({mountOf("/etc", "bind", "/srv", {"bind", "tmpcopyup"})}) ==
          "mounts[0].options: tmpcopyup needs a tmpfs, not a bind mount");
    CHECK(planError({mountOf("/etc", "proc", "proc", {"tmpcopyup"})}) == "mounts[0].options: tmpcopyup needs a tmpfs");
}

TEST_CASE("mount errors name the field", "[rootfs]") {
    auto ok = mountOf("/proc", "proc", "proc", {});
    CHECK(planError({ok, mountOf("/data", "bind", "/srv", {"rbind", "ro", "idmap"})}) ==
          "mounts[1].options[2]: id-mapped mounts (\"idmap\") are not supported yet");
    CHECK(planError({mountOf("/data", "bind", "/srv", {"ridmap"})}) ==
          "mounts[0].options[0]: id-mapped mounts (\"ridmap\") are not supported yet");
    // File-system data on a bind mount (mode=755, or a typo): ignored with a
    // warning in the log, as runc and crun ignore it.
    auto ignored = planMounts(specWith({ok, mountOf("/data", "bind", "/srv", {"rbind", "rox", "mode=755"})}));
    REQUIRE(ignored);
    REQUIRE(ignored->size() >= 2);
    CHECK(ignored->back().bind);
    CHECK(ignored->back().data.empty());
    CHECK(planError({mountOf("/m", "tmpfs", "t", {"ro", ""})}) == "mounts[0].options[1]: empty option");
    CHECK(planError({mountOf("/m", "tmpfs", "t", {"ro,exec"})}) ==
          "mounts[0].options[0]: one option per entry, found a comma");
    CHECK(planError({ok, mountOf("", "tmpfs", "t", {})}) == "mounts[1].destination: required");
    CHECK(planError({mountOf("/", "tmpfs", "t", {})}) == "mounts[0].destination: cannot mount over the container's root");
    CHECK(planError({mountOf("/m", "", "t", {"ro"})}) == "mounts[0].type: required for a mount that is not a bind");
    CHECK(planError({mountOf("/m", "bind", "", {"rbind"})}) == "mounts[0].source: required for a bind mount");
    auto mapped = mountOf("/m", "bind", "/srv", {"bind"});
    mapped.uidMappings.push_back({0, 1000, 1});
    CHECK(planError({mapped}) == "mounts[0].uidMappings: id-mapped mounts are not supported yet");
}

// ---- rootPropagation, validateSysctl -------------------------------------------

TEST_CASE("rootfsPropagation values", "[rootfs]") {
    CHECK(*rootPropagation("") == (MS_SLAVE | MS_REC));  // runc's default
    CHECK(*rootPropagation("slave") == (MS_SLAVE | MS_REC));
    CHECK(*rootPropagation("private") == (MS_PRIVATE | MS_REC));
    CHECK(*rootPropagation("shared") == (MS_SHARED | MS_REC));
    CHECK(*rootPropagation("unbindable") == (MS_UNBINDABLE | MS_REC));
    CHECK(*rootPropagation("rshared") == (MS_SHARED | MS_REC));
    auto bad = rootPropagation("sharde");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message() ==
          "linux.rootfsPropagation: unknown value \"sharde\" (expected shared, slave, private or unbindable)");
}

TEST_CASE("sysctls must be namespaced and the namespace must be the container's", "[rootfs]") {
    Spec s;
    s.linux.namespaces = {{NamespaceType::Mount, ""}, {NamespaceType::Ipc, ""}, {NamespaceType::Network, ""},
                          {NamespaceType::Uts, ""}};
    s.linux.sysctl = {{"kernel.shmmax", "1"},        {"kernel.msgmnb", "1"},          {"kernel.sem", "1 2 3 4"},
                      {"fs.mqueue.msg_max", "10"},   {"net.ipv4.ip_forward", "1"},    {"kernel.hostname", "x"},
                      {"net/ipv4/conf/eth0.100/forwarding", "1"}};
    CHECK(validateSysctl(s));

    auto errorOf = [](const Spec& spec) {
        auto r = validateSysctl(spec);
        REQUIRE_FALSE(r);
        return r.error().message();
    };
    Spec host = s;
    host.linux.sysctl = {{"vm.swappiness", "10"}};
    CHECK(errorOf(host) == "linux.sysctl[\"vm.swappiness\"]: not namespaced; setting it would change the host");
    host.linux.sysctl = {{"kernel.panic", "1"}};
    CHECK(errorOf(host) == "linux.sysctl[\"kernel.panic\"]: not namespaced; setting it would change the host");

    Spec noNet;
    noNet.linux.namespaces = {{NamespaceType::Mount, ""}};
    noNet.linux.sysctl = {{"net.ipv4.ip_forward", "1"}};
    CHECK(errorOf(noNet) == "linux.sysctl[\"net.ipv4.ip_forward\"]: needs the container's own network namespace");
    noNet.linux.sysctl = {{"kernel.shmmni", "1"}};
    CHECK(errorOf(noNet) == "linux.sysctl[\"kernel.shmmni\"]: needs the container's own ipc namespace");
    noNet.linux.sysctl = {{"kernel.domainname", "x"}};
    CHECK(errorOf(noNet) == "linux.sysctl[\"kernel.domainname\"]: needs the container's own uts namespace");

    Spec malformed = s;
    malformed.linux.sysctl = {{"net..ipv4", "1"}};
    CHECK(errorOf(malformed) == "linux.sysctl[\"net..ipv4\"]: malformed key");
    malformed.linux.sysctl = {{"net/../../kernel/core_pattern", "|x"}};
    CHECK(errorOf(malformed) == "linux.sysctl[\"net/../../kernel/core_pattern\"]: malformed key");
}

// ---- against the kernel, as root ------------------------------------------------

namespace {

using Report = std::map<std::string, std::string>;

/// Run FN in a forked child that has unshared FLAGS (always a new mount
/// namespace, so nothing it mounts reaches this process), and collect the
/// "key=value" lines it writes.
Report inChild(std::function<void(Report&)> fn, std::function<bool()> enterNamespaces) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(p[0]);
        Report r;
        try {
            if (!enterNamespaces()) r["error"] = std::string("unshare: ") + std::strerror(errno);
            else fn(r);
        } catch (const std::exception& e) {
            r["error"] = e.what();
        }
        std::string out;
        for (auto& [k, v] : r) out += k + "=" + v + "\n";
        (void)hull::sys::writeAll(p[1], out);
        ::_exit(0);
    }
    ::close(p[1]);
    hull::UniqueFd rd(p[0]);
    auto text = hull::sys::readFd(rd.get());
    int st = 0;
    ::waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st));
    Report r;
    if (!text) return r;
    for (auto& line : hull::sys::split(*text, '\n')) {
        auto eq = line.find('=');
        if (eq != std::string::npos) r[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return r;
}

std::string outcome(const hull::Result<void>& r) { return r ? "ok" : r.error().message(); }

/// errno of opening PATH for writing (creating it), or "ok".
std::string writeErrno(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return std::to_string(errno);
    ::close(fd);
    return "ok";
}

std::string nodeOf(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) return "missing";
    char type = S_ISCHR(st.st_mode) ? 'c' : S_ISBLK(st.st_mode) ? 'b' : S_ISLNK(st.st_mode) ? 'l' : S_ISDIR(st.st_mode) ? 'd' : 'f';
    char buf[96];
    std::snprintf(buf, sizeof buf, "%c %u:%u %o %u:%u", type, major(st.st_rdev), minor(st.st_rdev),
                  unsigned(st.st_mode & 07777), unsigned(st.st_uid), unsigned(st.st_gid));
    return buf;
}

std::string linkOf(const std::string& path) {
    char buf[256];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    return n < 0 ? "none" : std::string(buf, size_t(n));
}

bool hostMountsMention(const std::string& path) {
    return hull::test::readFileOr("/proc/self/mountinfo").find(path) != std::string::npos;
}

}  // namespace

TEST_CASE("a full rootfs: mounts, /dev, masks, read-only paths, pivot_root", "[root][rootfs]") {
    REQUIRE_ROOT();
    TempDir dir("hull-rootfs");
    std::string root = dir / "rootfs";
    hull::test::makeBusyboxRootfs(root);
    REQUIRE(hull::sys::mkdirAll(root + "/secret"));
    hull::test::writeFileOrThrow(root + "/secret/key", "hidden");
    REQUIRE(hull::sys::mkdirAll(root + "/etc/conf.d"));
    hull::test::writeFileOrThrow(root + "/etc/conf.d/app", "setting=1");
    REQUIRE(::symlink("/usr/share/zoneinfo/UTC", (root + "/etc/localtime").c_str()) == 0);
    TempDir hostData("hull-rootfs-data");
    hull::test::writeFileOrThrow(hostData / "hello", "from the host");

    Spec spec;
    spec.root.path = root;
    spec.root.readonly = true;
    spec.mounts = {mountOf("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
                   mountOf("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
                   mountOf("/dev/pts", "devpts", "devpts",
                           {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}),
                   mountOf("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
                   mountOf("/data", "bind", hostData.path(), {"rbind", "ro"}),
                   mountOf("/etc", "tmpfs", "tmpfs", {"tmpcopyup", "mode=755"})};
    spec.linux.namespaces = {{NamespaceType::Mount, ""}, {NamespaceType::Ipc, ""}};
    spec.linux.sysctl = {{"kernel.shmmni", "1234"}};
    // /proc/kcore (kernel memory) is the classic masked path, but kernels built
    // without CONFIG_PROC_KCORE lack it; /proc/version is always there.
    spec.linux.maskedPaths = {"/proc/kcore", "/proc/version", "/secret", "/does/not/exist"};
    spec.linux.readonlyPaths = {"/proc/sys", "/nor/this"};
    Device fuse;
    fuse.path = "/dev/fuse";
    fuse.type = 'c';
    fuse.major = 10;
    fuse.minor = 229;
    fuse.fileMode = 0640;
    fuse.uid = 1;
    fuse.gid = 2;
    spec.linux.devices = {fuse};

    auto r = inChild(
        [&](Report& out) {
            RootfsContext ctx;
            ctx.rootfs = root;
            ctx.mounts = *planMounts(spec);
            ctx.spec = &spec;
            out["prepare"] = outcome(prepareRootfs(ctx));
            if (out["prepare"] != "ok") return;
            out["enter"] = outcome(enterRootfs(root));
            if (out["enter"] != "ok") return;
            out["finish"] = outcome(finishRootfs(spec));
            out["busybox"] = hull::sys::exists("/bin/busybox") ? "yes" : "no";
            out["rootWrite"] = writeErrno("/written");
            out["kcore"] = hull::test::readFileOr("/proc/kcore", "missing");
            out["version"] = hull::test::readFileOr("/proc/version", "missing");
            out["versionNode"] = nodeOf("/proc/version");
            out["secret"] = std::to_string(hull::sys::listDir("/secret").size());
            out["secretWrite"] = writeErrno("/secret/new");
            out["null"] = nodeOf("/dev/null");
            out["tty"] = nodeOf("/dev/tty");
            out["fuse"] = nodeOf("/dev/fuse");
            out["ptmx"] = linkOf("/dev/ptmx");
            out["ptsPtmx"] = hull::sys::exists("/dev/pts/ptmx") ? "yes" : "no";
            out["fd"] = linkOf("/dev/fd");
            out["stderr"] = linkOf("/dev/stderr");
            out["shm"] = nodeOf("/dev/shm");
            out["dataRead"] = hull::test::readFileOr("/data/hello", "unreadable");
            out["dataWrite"] = writeErrno("/data/new");
            out["devWrite"] = writeErrno("/dev/scratch");  // the /dev tmpfs stays writable
            out["etcPasswd"] = hull::test::readFileOr("/etc/passwd").substr(0, 10);
            out["etcApp"] = hull::test::readFileOr("/etc/conf.d/app", "missing");
            out["etcLink"] = linkOf("/etc/localtime");
            out["etcWrite"] = writeErrno("/etc/new");  // a writable tmpfs over a read-only root
            out["shmmni"] = hull::sys::trim(hull::test::readFileOr("/proc/sys/kernel/shmmni"));
            int fd = ::open("/proc/sys/kernel/shmmni", O_WRONLY | O_CLOEXEC);  // open only, never write
            out["procSysWrite"] = fd < 0 ? std::to_string(errno) : "ok";
            if (fd >= 0) ::close(fd);
        },
        [] { return ::unshare(CLONE_NEWNS | CLONE_NEWIPC) == 0; });

    CHECK(r["error"] == "");
    REQUIRE(r["prepare"] == "ok");
    REQUIRE(r["enter"] == "ok");
    REQUIRE(r["finish"] == "ok");
    CHECK(r["busybox"] == "yes");
    CHECK(r["rootWrite"] == std::to_string(EROFS));
    CHECK(r["kcore"] == (hull::sys::exists("/proc/kcore") ? "" : "missing"));
    CHECK(r["version"] == "");
    CHECK(r["versionNode"] == "c 1:3 666 0:0");
    CHECK(r["secret"] == "0");
    CHECK(r["secretWrite"] == std::to_string(EROFS));
    CHECK(r["null"] == "c 1:3 666 0:0");
    CHECK(r["tty"] == "c 5:0 666 0:0");
    CHECK(r["fuse"] == "c 10:229 640 1:2");
    CHECK(r["ptmx"] == "pts/ptmx");
    CHECK(r["ptsPtmx"] == "yes");
    CHECK(r["fd"] == "/proc/self/fd");
    CHECK(r["stderr"] == "/proc/self/fd/2");
    CHECK(r["shm"].rfind("d ", 0) == 0);
    CHECK(r["dataRead"] == "from the host");
    CHECK(r["dataWrite"] == std::to_string(EROFS));
    CHECK(r["devWrite"] == "ok");
    CHECK(r["etcPasswd"] == "root:x:0:0");
    CHECK(r["etcApp"] == "setting=1");
    CHECK(r["etcLink"] == "/usr/share/zoneinfo/UTC");
    CHECK(r["etcWrite"] == "ok");
    CHECK(r["shmmni"] == "1234");
    CHECK(r["procSysWrite"] == std::to_string(EROFS));

    // Nothing leaked to the host: no mounts, no files.
    CHECK_FALSE(hostMountsMention(dir.path()));
    CHECK_FALSE(hostMountsMention(hostData.path()));
    CHECK_FALSE(hull::sys::exists(root + "/written"));
    CHECK_FALSE(hull::sys::exists(hostData / "new"));
    CHECK_FALSE(hull::sys::exists(root + "/etc/new"));
    CHECK(hull::sys::listDir(root + "/secret").size() == 1);
}

TEST_CASE("a symlink in the image cannot lead a mount outside the rootfs", "[root][rootfs]") {
    REQUIRE_ROOT();
    TempDir dir("hull-rootfs-evil");
    TempDir outside("hull-outside");  // exists on the host: a naive runtime would mount into it
    std::string root = dir / "rootfs";
    hull::test::makeBusyboxRootfs(root);
    REQUIRE(::symlink(outside.path().c_str(), (root + "/evil").c_str()) == 0);
    REQUIRE(::symlink(("../../../../../../.." + outside.path()).c_str(), (root + "/tmp/climb").c_str()) == 0);
    TempDir hostData("hull-rootfs-data");
    hull::test::writeFileOrThrow(hostData / "file", "data");

    Spec spec;
    spec.root.path = root;
    spec.mounts = {mountOf("/evil/x", "tmpfs", "tmpfs", {}),
                   mountOf("/tmp/climb/y", "tmpfs", "tmpfs", {}),
                   mountOf("/evil/z/file", "bind", hostData / "file", {"bind", "ro"})};

    auto r = inChild(
        [&](Report& out) {
            RootfsContext ctx;
            ctx.rootfs = root;
            ctx.mounts = *planMounts(spec);
            ctx.spec = &spec;
            out["prepare"] = outcome(prepareRootfs(ctx));
            // Resolved inside the rootfs: ROOT/<outside path>/x, a mount point.
            struct stat top, x;
            std::string inside = root + outside.path();
            out["x"] = ::stat(root.c_str(), &top) == 0 && ::stat((inside + "/x").c_str(), &x) == 0 &&
                               top.st_dev != x.st_dev
                           ? "mounted inside"
                           : "missing";
            out["y"] = hull::sys::exists(inside + "/y") ? "inside" : "missing";
            out["file"] = hull::test::readFileOr(inside + "/z/file", "missing");
            out["outsideInChild"] = std::to_string(hull::sys::listDir(outside.path()).size());
        },
        [] { return ::unshare(CLONE_NEWNS) == 0; });

    CHECK(r["error"] == "");
    CHECK(r["prepare"] == "ok");
    CHECK(r["x"] == "mounted inside");
    CHECK(r["y"] == "inside");
    CHECK(r["file"] == "data");
    CHECK(r["outsideInChild"] == "0");
    CHECK(hull::sys::listDir(outside.path()).empty());
    CHECK_FALSE(hostMountsMention(outside.path()));
    CHECK_FALSE(hostMountsMention(dir.path()));
}

TEST_CASE("in a user namespace, device nodes are the host's, bind-mounted", "[root][rootfs]") {
    REQUIRE_ROOT();
    TempDir dir("hull-rootfs-userns");
    std::string root = dir / "rootfs";
    hull::test::makeBusyboxRootfs(root);
    Spec spec;
    spec.root.path = root;
    spec.mounts = {mountOf("/dev", "tmpfs", "tmpfs", {"nosuid", "mode=755"})};

    struct stat hostNull;
    REQUIRE(::stat("/dev/null", &hostNull) == 0);
    auto r = inChild(
        [&](Report& out) {
            RootfsContext ctx;
            ctx.rootfs = root;
            ctx.mounts = *planMounts(spec);
            ctx.spec = &spec;
            ctx.inUserNamespace = true;
            // The kernel refuses mknod here: the reason for the bind mounts.
            out["mknod"] = ::mknod((root + "/tmp/n").c_str(), S_IFCHR | 0666, makedev(1, 3)) < 0
                               ? std::to_string(errno) : "ok";
            out["prepare"] = outcome(prepareRootfs(ctx));
            struct stat st;
            bool same = ::stat((root + "/dev/null").c_str(), &st) == 0 && st.st_dev == hostNull.st_dev &&
                        st.st_ino == hostNull.st_ino;
            out["null"] = same ? "host node" : nodeOf(root + "/dev/null");
            out["nullWrite"] = writeErrno(root + "/dev/null");
            out["urandom"] = nodeOf(root + "/dev/urandom").substr(0, 5);
        },
        [] {
            if (::unshare(CLONE_NEWUSER) < 0) return false;
            // Map our own root: allowed for the process itself, after setgroups=deny.
            if (!hull::sys::writeExisting("/proc/self/setgroups", "deny") ||
                !hull::sys::writeExisting("/proc/self/uid_map", "0 0 1") ||
                !hull::sys::writeExisting("/proc/self/gid_map", "0 0 1"))
                return false;
            return ::unshare(CLONE_NEWNS) == 0;
        });

    CHECK(r["error"] == "");
    CHECK(r["mknod"] == std::to_string(EPERM));
    CHECK(r["prepare"] == "ok");
    CHECK(r["null"] == "host node");
    CHECK(r["nullWrite"] == "ok");
    CHECK(r["urandom"] == "c 1:9");
    CHECK_FALSE(hostMountsMention(dir.path()));
}

TEST_CASE("errors while applying name the mount or device", "[root][rootfs]") {
    REQUIRE_ROOT();
    TempDir dir("hull-rootfs-errors");
    std::string root = dir / "rootfs";
    hull::test::makeBusyboxRootfs(root);
    auto prepare = [&](const Spec& spec) {
        auto r = inChild(
            [&](Report& out) {
                RootfsContext ctx;
                ctx.rootfs = root;
                ctx.mounts = *planMounts(spec);
                ctx.spec = &spec;
                out["prepare"] = outcome(prepareRootfs(ctx));
            },
            [] { return ::unshare(CLONE_NEWNS) == 0; });
        CHECK(r["error"] == "");
        return r["prepare"];
    };

    Spec missing;
    missing.mounts = {mountOf("/proc", "proc", "proc", {}), mountOf("/data", "bind", dir / "nope", {"rbind"})};
    CHECK(prepare(missing) == "mounts[1] /data: bind source " + dir / "nope" + ": No such file or directory");

    // config-linux.md "Devices": a file at `path` that is not the device is an error.
    hull::test::writeFileOrThrow(root + "/lib-fuse", "");
    Spec conflict;
    Device d;
    d.path = "/lib-fuse";
    d.major = 10;
    d.minor = 229;
    conflict.linux.devices = {d};
    CHECK(prepare(conflict) == "device /lib-fuse: exists and is not the requested device");

    CHECK_FALSE(hostMountsMention(dir.path()));
}
