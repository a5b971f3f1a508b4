// What a user of hull-runc sees: real containers, as root, on this kernel.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "runtime/bundle.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

using namespace hull::test;

namespace {

std::string field(const std::string& status, const std::string& key) {
    for (auto& line : hull::sys::split(status, '\n'))
        if (line.rfind(key + ":", 0) == 0) return hull::sys::trim(line.substr(key.size() + 1));
    return "";
}

std::string hostNs(int pid, const char* ns) {
    char buf[256] = {};
    std::string p = "/proc/" + std::to_string(pid) + "/ns/" + ns;
    ssize_t n = ::readlink(p.c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, size_t(n)) : "";
}

bool processGoneOrZombie(int pid) {
    auto stat = readFileOr("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    return stat.empty() || (close != std::string::npos && stat.compare(close, 4, ") Z ") == 0);
}

}  // namespace

TEST_CASE("run: the process is PID 1, host processes are invisible, the hostname is set", "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.args = {"/bin/sh", "-c", "echo pid=$$; hostname; ls /proc | grep -c '^[0-9]'; cat /sys/class/net/lo/flags"};
    Bundle b(o);
    HullRunc rc;
    auto r = rc({"run", "--bundle", b.path(), "pid1"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto lines = hull::sys::split(r.out, '\n');
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "pid=1");
    CHECK(lines[1] == "hull-test");
    // sh, and ls/grep of the pipeline: nothing from the host.
    CHECK(std::atoi(lines[2].c_str()) <= 3);
    CHECK(lines[3] == "0x9");  // IFF_UP | IFF_LOOPBACK: lo is up in the new network namespace
    CHECK(statusOf(rc, "pid1").empty());  // run deletes the container afterwards
}

TEST_CASE("run: the exit status of the container is hull-runc's", "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.args = {"/bin/sh", "-c", "exit 7"};
    Bundle b(o);
    HullRunc rc;
    CHECK(rc({"run", "--bundle", b.path(), "exit7"}).status == 7);
}

TEST_CASE("capabilities are exactly the configured set and seccomp denies with the configured errno",
          "[root][runtime][seccomp][caps]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.caps = {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
    o.seccomp = R"({"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                   "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                               {"names":["no_such_syscall_hull"],"action":"SCMP_ACT_ERRNO"}]})";
    o.args = {"/bin/sh", "-c", "cat /proc/self/status; mkdir /tmp/denied 2>&1; echo mkdir=$?"};
    Bundle b(o);
    HullRunc rc;
    auto r = rc({"run", "--bundle", b.path(), "caps"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    // CAP_CHOWN (0) | CAP_KILL (5) | CAP_NET_BIND_SERVICE (10)
    CHECK(field(r.out, "CapEff") == "0000000000000421");
    CHECK(field(r.out, "CapPrm") == "0000000000000421");
    CHECK(field(r.out, "CapBnd") == "0000000000000421");
    CHECK(field(r.out, "CapAmb") == "0000000000000421");
    CHECK(field(r.out, "Seccomp") == "2");
    CHECK(field(r.out, "NoNewPrivs") == "1");
    CHECK(r.out.find("Function not implemented") != std::string::npos);  // errno 38
    CHECK(r.out.find("mkdir=1") != std::string::npos);
}

TEST_CASE("a read-only root refuses writes, masked paths read empty, /dev is populated", "[root][runtime][rootfs]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.readonlyRoot = true;
    o.args = {"/bin/sh", "-c",
              "touch /rootfile 2>&1; echo touch=$?; echo keys=$(wc -c < /proc/keys); "
              "echo acpi=$(ls /proc/acpi | wc -l); echo firmware=$(ls /sys/firmware | wc -l); echo tmpwrite=$(echo x > /dev/shm/x && echo ok); "
              "echo shmmni=$(echo 4096 > /proc/sys/kernel/shmmni 2>&1; echo $?); "
              "ls -l /dev/null /dev/zero /dev/urandom | cut -c1; readlink /dev/ptmx; readlink /dev/fd"};
    Bundle b(o);
    HullRunc rc;
    auto r = rc({"run", "--bundle", b.path(), "ro"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("Read-only file system") != std::string::npos);
    CHECK(r.out.find("touch=1") != std::string::npos);
    CHECK(r.out.find("keys=0") != std::string::npos);
    // Both directories have entries on this host (checked below), none in the container.
    CHECK(r.out.find("acpi=0") != std::string::npos);
    CHECK(r.out.find("firmware=0") != std::string::npos);
    CHECK_FALSE(hull::sys::listDir("/sys/firmware").empty());
    CHECK(r.out.find("tmpwrite=ok") != std::string::npos);
    CHECK(r.out.find("shmmni=1") != std::string::npos);  // /proc/sys is read-only
    CHECK(r.out.find("c\nc\nc\n") != std::string::npos);
    CHECK(r.out.find("pts/ptmx") != std::string::npos);
    CHECK(r.out.find("/proc/self/fd") != std::string::npos);
    // The bundle's rootfs on the host is untouched.
    CHECK_FALSE(hull::sys::exists(b.rootfs() + "/rootfile"));
}

TEST_CASE("a user-namespaced container's root is the configured host uid", "[root][runtime][userns]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.userNamespace = true;
    o.args = {"/bin/sh", "-c", "id -u; cat /proc/self/uid_map; sleep 30"};
    Bundle b(o);
    HullRunc rc;
    auto c = rc({"create", "--bundle", b.path(), "userns"});
    INFO(c.err);
    REQUIRE(c.status == 0);
    int pid = pidOf(rc, "userns");
    REQUIRE(pid > 0);
    auto status = readFileOr("/proc/" + std::to_string(pid) + "/status");
    // Uid: real effective saved fs — all the mapped host uid.
    auto uid = hull::sys::split(field(status, "Uid"), '\t');
    REQUIRE(uid.size() == 4);
    CHECK(uid[0] == std::to_string(kUserNsHostId));
    CHECK(uid[1] == std::to_string(kUserNsHostId));
    CHECK(hostNs(pid, "user") != hostNs(int(::getpid()), "user"));
    auto uidMap = readFileOr("/proc/" + std::to_string(pid) + "/uid_map");
    CHECK(hull::sys::split(hull::sys::trim(uidMap), ' ').size() >= 3);
    CHECK(uidMap.find(std::to_string(kUserNsHostId)) != std::string::npos);
    CHECK(rc({"delete", "--force", "userns"}).status == 0);
}

TEST_CASE("create, start, exec, pause, kill and delete, with nothing left behind", "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.args = {"/bin/sh", "-c", "echo started > /tmp/marker; exec sleep 300"};
    Bundle b(o);
    HullRunc rc;
    TempDir pidDir("hull-pid");
    std::string pidFile = pidDir / "init.pid";

    auto c = rc({"create", "--bundle", b.path(), "--pid-file", pidFile, "life"});
    INFO(c.err);
    REQUIRE(c.status == 0);
    CHECK(statusOf(rc, "life") == "created");
    int pid = pidOf(rc, "life");
    REQUIRE(pid > 0);
    CHECK(readFileOr(pidFile) == std::to_string(pid));
    CHECK(rc({"create", "--bundle", b.path(), "life"}).status != 0);  // the id is taken

    REQUIRE(rc({"start", "life"}).status == 0);
    CHECK(waitFor([&] { return readFileOr("/proc/" + std::to_string(pid) + "/cmdline").rfind("sleep", 0) == 0; }));
    CHECK(statusOf(rc, "life") == "running");
    CHECK(rc({"start", "life"}).status != 0);  // already started

    SECTION("exec joins every namespace of the container") {
        auto e = rc({"exec", "life", "/bin/sh", "-c",
                     "for n in pid mnt net uts ipc; do readlink /proc/self/ns/$n; done; "
                     "hostname; cat /tmp/marker"});
        INFO(e.err);
        REQUIRE(e.status == 0);
        auto lines = hull::sys::split(e.out, '\n');
        REQUIRE(lines.size() == 7);
        CHECK(lines[0] == hostNs(pid, "pid"));
        CHECK(lines[1] == hostNs(pid, "mnt"));
        CHECK(lines[2] == hostNs(pid, "net"));
        CHECK(lines[3] == hostNs(pid, "uts"));
        CHECK(lines[4] == hostNs(pid, "ipc"));
        CHECK(lines[5] == "hull-test");
        CHECK(lines[6] == "started");
        CHECK(rc({"exec", "life", "/bin/sh", "-c", "exit 3"}).status == 3);
        auto missing = rc({"exec", "life", "no-such-binary"});
        CHECK(missing.status != 0);
        CHECK(missing.err.find("executable file not found") != std::string::npos);
    }
    SECTION("ps and list see the container") {
        auto ps = rc({"ps", "--format", "json", "life"});
        REQUIRE(ps.status == 0);
        auto v = hull::json::Value::parse(ps.out);
        REQUIRE(v);
        REQUIRE(v->isArray());
        CHECK(v->asArray().size() == 1);
        auto ls = rc({"list", "--format", "json"});
        CHECK(ls.out.find("\"life\"") != std::string::npos);
    }
    SECTION("pause freezes and resume thaws") {
        REQUIRE(rc({"pause", "life"}).status == 0);
        CHECK(statusOf(rc, "life") == "paused");
        REQUIRE(rc({"resume", "life"}).status == 0);
        CHECK(statusOf(rc, "life") == "running");
    }

    CHECK(rc({"delete", "life"}).status != 0);  // running: refused without --force
    REQUIRE(rc({"kill", "life", "KILL"}).status == 0);
    CHECK(waitFor([&] { return statusOf(rc, "life") == "stopped"; }));
    REQUIRE(rc({"delete", "life"}).status == 0);
    // The init was reparented when `create` exited; a zombie waiting for the host's
    // PID 1 to reap it is no longer a process of the container.
    CHECK(waitFor([&] { return processGoneOrZombie(pid); }));
    CHECK_FALSE(hull::sys::exists(rc.root() + "/life"));
    CHECK(mountsMentioning(b.rootfs()).empty());
    CHECK(cgroupDirsNamed("life").empty());
    CHECK(rc({"state", "life"}).status != 0);
}

TEST_CASE("hooks run in order with the state on stdin", "[root][runtime][hooks]") {
    REQUIRE_ROOT();
    TempDir out("hull-hooks");
    auto hook = [&](const std::string& name) {
        return R"({"path":"/bin/sh","args":["sh","-c","cat > )" + out.path() + "/" + name + R"(.json"]})";
    };
    BundleOptions o;
    o.args = {"/bin/sh", "-c", "sleep 300"};
    o.hooks = "{\"prestart\":[" + hook("prestart") + "],\"createRuntime\":[" + hook("createRuntime") +
              "],\"poststart\":[" + hook("poststart") + "],\"poststop\":[" + hook("poststop") + "]}";
    Bundle b(o);
    HullRunc rc;
    auto c = rc({"create", "--bundle", b.path(), "hooks"});
    INFO(c.err);
    REQUIRE(c.status == 0);
    int pid = pidOf(rc, "hooks");
    auto created = hull::json::Value::parse(readFileOr(out / "createRuntime.json"));
    REQUIRE(created);
    CHECK(created->find("id")->asString() == "hooks");
    int64_t hookPid = 0;
    REQUIRE(created->find("pid")->toInt64(hookPid));
    CHECK(hookPid == pid);
    CHECK(hull::sys::exists(out / "prestart.json"));
    CHECK_FALSE(hull::sys::exists(out / "poststart.json"));
    REQUIRE(rc({"start", "hooks"}).status == 0);
    CHECK(readFileOr(out / "poststart.json").find("\"running\"") != std::string::npos);
    REQUIRE(rc({"delete", "--force", "hooks"}).status == 0);
    CHECK(readFileOr(out / "poststop.json").find("\"stopped\"") != std::string::npos);
}

TEST_CASE("a failing hook fails create and rolls everything back", "[root][runtime][hooks]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.hooks = R"({"createRuntime":[{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}]})";
    Bundle b(o);
    HullRunc rc;
    auto c = rc({"create", "--bundle", b.path(), "badhook"});
    CHECK(c.status != 0);
    CHECK(c.err.find("createRuntime hook /bin/sh: exited with status 3: nope") != std::string::npos);
    CHECK_FALSE(hull::sys::exists(rc.root() + "/badhook"));
    CHECK(cgroupDirsNamed("badhook").empty());
    CHECK(mountsMentioning(b.rootfs()).empty());
}

TEST_CASE("hull-runc killed in the middle of create: delete still cleans everything up", "[root][runtime]") {
    REQUIRE_ROOT();
    TempDir out("hull-midway");
    BundleOptions o;
    // The hook signals that create is half-way, then hangs until killed.
    o.hooks = R"({"createRuntime":[{"path":"/bin/sh","args":["sh","-c","touch )" + out.path() +
              R"(/reached; exec sleep 60"]}]})";
    Bundle b(o);
    HullRunc rc;
    pid_t creator = ::fork();
    if (creator == 0) {
        ::setpgid(0, 0);  // so the test can reap the orphaned hook afterwards
        ::execl(binPath("hull-runc").c_str(), "hull-runc", "--root", rc.root().c_str(), "create", "--bundle",
                b.path().c_str(), "midway", nullptr);
        ::_exit(127);
    }
    REQUIRE(waitFor([&] { return hull::sys::exists(out / "reached"); }));
    ::kill(creator, SIGKILL);
    ::waitpid(creator, nullptr, 0);
    CHECK(hull::sys::exists(rc.root() + "/midway"));
    CHECK_FALSE(cgroupDirsNamed("midway").empty());

    auto d = rc({"delete", "midway"});
    INFO(d.err);
    CHECK(d.status == 0);
    CHECK_FALSE(hull::sys::exists(rc.root() + "/midway"));
    CHECK(waitFor([] { return cgroupDirsNamed("midway").empty(); }));
    CHECK(mountsMentioning(b.rootfs()).empty());
    ::kill(-creator, SIGKILL);  // the hook's sleep, orphaned by the kill
}

TEST_CASE("a malformed config.json names the bad field and leaves nothing", "[root][runtime]") {
    REQUIRE_ROOT();
    Bundle b;
    auto text = readFileOr(b.path() + "/config.json");
    auto pos = text.find("\"uid\": 0");
    REQUIRE(pos != std::string::npos);
    text.replace(pos, 8, "\"uid\": \"root\"");
    writeFileOrThrow(b.path() + "/config.json", text);
    HullRunc rc;
    auto c = rc({"create", "--bundle", b.path(), "bad"});
    CHECK(c.status != 0);
    CHECK(c.err.find("process.user.uid") != std::string::npos);
    CHECK_FALSE(hull::sys::exists(rc.root() + "/bad"));
}

TEST_CASE("a missing executable fails create, not start", "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.args = {"not-there"};
    Bundle b(o);
    HullRunc rc;
    auto c = rc({"create", "--bundle", b.path(), "noexe"});
    CHECK(c.status != 0);
    CHECK(c.err.find("exec: \"not-there\": executable file not found in $PATH") != std::string::npos);
    CHECK_FALSE(hull::sys::exists(rc.root() + "/noexe"));
    CHECK(cgroupDirsNamed("noexe").empty());
}

TEST_CASE("exec and delete from another cgroup find the container's cgroup", "[root][runtime][cgroups]") {
    REQUIRE_ROOT();
    // A sibling cgroup for the second caller: in the pids hierarchy (v1) or the unified one (v2).
    std::string base, own;
    for (auto& line : hull::sys::split(readFileOr("/proc/self/cgroup"), '\n')) {
        auto parts = hull::sys::split(line, ':', false);
        if (parts.size() != 3) continue;
        if (parts[1] == "pids" && hull::sys::exists("/sys/fs/cgroup/pids")) base = "/sys/fs/cgroup/pids", own = parts[2];
        if (parts[1].empty() && base.empty() && hull::sys::exists("/sys/fs/cgroup/cgroup.procs"))
            base = "/sys/fs/cgroup", own = parts[2];
    }
    REQUIRE_FALSE(base.empty());
    std::string other = base + hull::sys::cleanPath(own + "/hull-other-" + std::to_string(::getpid()));
    REQUIRE(::mkdir(other.c_str(), 0755) == 0);
    BundleOptions o;
    o.args = {"/bin/sleep", "300"};
    Bundle b(o);
    HullRunc rc;
    REQUIRE(rc({"run", "--detach", "--bundle", b.path(), "elsewhere"}).status == 0);
    auto fromOther = [&](std::vector<std::string> args) {
        // sh moves itself into the other cgroup, then becomes hull-runc.
        std::string cmd = "echo $$ > " + other + "/cgroup.procs && exec " + binPath("hull-runc") + " --root " + rc.root();
        for (auto& a : args) cmd += " '" + a + "'";
        return run({"/bin/sh", "-c", cmd});
    };
    auto e = fromOther({"exec", "elsewhere", "/bin/sh", "-c", "echo in"});
    INFO(e.err);
    CHECK(e.status == 0);
    CHECK(e.out == "in\n");
    auto d = fromOther({"delete", "--force", "elsewhere"});
    INFO(d.err);
    CHECK(d.status == 0);
    CHECK(waitFor([&] { return cgroupDirsNamed("elsewhere").empty(); }));
    ::rmdir(other.c_str());
}

TEST_CASE("process: umask defaults to 0022, scheduler, ioPriority and personality are applied", "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.processExtra = R"(,"scheduler":{"policy":"SCHED_BATCH","nice":5},"ioPriority":{"class":"IOPRIO_CLASS_IDLE","priority":0})";
    o.linuxExtra = R"(,"personality":{"domain":"LINUX32"})";
    o.args = {"/bin/sh", "-c", "umask; uname -m; cut -d' ' -f19,41 /proc/self/stat"};
    Bundle b(o);
    HullRunc rc;
    // Whatever umask the caller has, the container's is the spec's default.
    auto r = run({"/bin/sh", "-c", "umask 077; exec " + binPath("hull-runc") + " --root " + rc.root() +
                                       " run --bundle " + b.path() + " sched"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto lines = hull::sys::split(r.out, '\n');
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "0022");
    CHECK(lines[1] != "x86_64");  // LINUX32: i686
    CHECK(lines[2] == "5 3");     // nice 5, policy 3 (SCHED_BATCH)

    BundleOptions bad;
    bad.processExtra = R"(,"scheduler":{"policy":"SCHED_NOPE"})";
    Bundle b2(bad);
    auto e = rc({"run", "--bundle", b2.path(), "badsched"});
    CHECK(e.status != 0);
    CHECK(e.err.find("process.scheduler.policy: unknown scheduler policy \"SCHED_NOPE\"") != std::string::npos);
}

TEST_CASE("exec --process without capabilities keeps the container's, and run allocates a pty itself",
          "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.args = {"/bin/sleep", "300"};
    o.caps = {"CAP_KILL"};
    Bundle b(o);
    HullRunc rc;
    REQUIRE(rc({"run", "--detach", "--bundle", b.path(), "procjson"}).status == 0);
    TempDir d("hull-proc");
    writeFileOrThrow(d / "p.json", R"({"args":["/bin/sh","-c","grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"],"cwd":"/","user":{"uid":0,"gid":0}})");
    auto e = rc({"exec", "--process", d / "p.json", "procjson"});
    INFO(e.err);
    REQUIRE(e.status == 0);
    CHECK(e.out.find("CapEff:\t0000000000000020") != std::string::npos);  // CAP_KILL only
    CHECK(e.out.find("NoNewPrivs:\t1") != std::string::npos);
    REQUIRE(rc({"delete", "--force", "procjson"}).status == 0);

    // terminal: true and no --console-socket, as after `hull-runc spec`: run proxies a pty of its own.
    BundleOptions t;
    t.args = {"/bin/sh", "-c", "tty"};
    Bundle tb(t);
    auto cfg = readFileOr(tb.path() + "/config.json");
    auto pos = cfg.find("\"terminal\": false");
    REQUIRE(pos != std::string::npos);
    cfg.replace(pos, 17, "\"terminal\": true");
    writeFileOrThrow(tb.path() + "/config.json", cfg);
    auto tty = rc({"run", "--bundle", tb.path(), "ownpty"});
    INFO(tty.err);
    CHECK(tty.status == 0);
    CHECK(tty.out.find("/dev/pts/0") != std::string::npos);
}

TEST_CASE("a namespace given by path is joined, kill --all reaches every process", "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions first;
    first.args = {"/bin/sleep", "300"};
    Bundle a(first);
    HullRunc rc;
    REQUIRE(rc({"run", "--detach", "--bundle", a.path(), "nsowner"}).status == 0);
    int owner = pidOf(rc, "nsowner");
    REQUIRE(owner > 0);
    // A second container joins the first one's network and uts namespaces, as a pod does.
    BundleOptions second;
    second.args = {"/bin/sh", "-c", "sleep 300 & sleep 300 & wait"};
    Bundle b(second);
    auto cfg = readFileOr(b.path() + "/config.json");
    std::string from = R"({"type":"network"})";
    auto pos = cfg.find(from);
    REQUIRE(pos != std::string::npos);
    cfg.replace(pos, from.size(), R"({"type":"network","path":"/proc/)" + std::to_string(owner) + R"(/ns/net"})");
    writeFileOrThrow(b.path() + "/config.json", cfg);
    auto r = rc({"run", "--detach", "--bundle", b.path(), "joiner"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    int joiner = pidOf(rc, "joiner");
    CHECK(hostNs(joiner, "net") == hostNs(owner, "net"));
    CHECK(hostNs(joiner, "pid") != hostNs(owner, "pid"));
    CHECK(waitFor([&] {
        auto ps = rc({"ps", "--format", "json", "joiner"});
        auto v = hull::json::Value::parse(ps.out);
        return v && v->isArray() && v->asArray().size() == 3;
    }));
    auto pids = hull::json::Value::parse(rc({"ps", "--format", "json", "joiner"}).out);
    REQUIRE(pids);
    REQUIRE(rc({"kill", "--all", "joiner", "KILL"}).status == 0);
    for (const auto& p : pids->asArray()) {
        int64_t pid = 0;
        REQUIRE(p.toInt64(pid));
        CHECK(waitFor([&] { return processGoneOrZombie(int(pid)); }));
    }
    CHECK(rc({"delete", "--force", "joiner"}).status == 0);
    CHECK(rc({"delete", "--force", "nsowner"}).status == 0);
}

TEST_CASE("a hostname is set in a uts namespace joined by path, as runc and crun do", "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions first;
    first.args = {"/bin/sleep", "300"};
    Bundle a(first);
    HullRunc rc;
    REQUIRE(rc({"run", "--detach", "--bundle", a.path(), "utsowner"}).status == 0);
    int owner = pidOf(rc, "utsowner");
    REQUIRE(owner > 0);
    BundleOptions second;
    second.args = {"/bin/sleep", "300"};
    second.hostname = "joined-uts";
    Bundle b(second);
    auto cfg = readFileOr(b.path() + "/config.json");
    std::string from = R"({"type":"uts"})";
    auto pos = cfg.find(from);
    REQUIRE(pos != std::string::npos);
    cfg.replace(pos, from.size(), R"({"type":"uts","path":"/proc/)" + std::to_string(owner) + R"(/ns/uts"})");
    writeFileOrThrow(b.path() + "/config.json", cfg);
    auto r = rc({"run", "--detach", "--bundle", b.path(), "utsjoiner"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    // The owner's namespace has the joiner's name now; the host's has not changed.
    auto name = run({"/usr/bin/nsenter", "--target", std::to_string(owner), "--uts", "/bin/uname", "-n"});
    INFO("nsenter: status " << name.status << ": " << name.err);
    CHECK(name.out == "joined-uts\n");
    CHECK(readFileOr("/proc/sys/kernel/hostname") != "joined-uts\n");
    CHECK(rc({"delete", "--force", "utsjoiner"}).status == 0);
    CHECK(rc({"delete", "--force", "utsowner"}).status == 0);
    // Without any uts namespace, a hostname would be the host's: refused, saying so.
    BundleOptions none;
    none.args = {"/bin/true"};
    Bundle c(none);
    auto cfg2 = readFileOr(c.path() + "/config.json");
    cfg2.replace(cfg2.find(from), from.size() + 1, "");  // the entry and its comma
    writeFileOrThrow(c.path() + "/config.json", cfg2);
    auto refused = rc({"run", "--bundle", c.path(), "noutsns"});
    CHECK(refused.status != 0);
    CHECK(refused.err.find("hostname: setting it needs a uts namespace") != std::string::npos);
    (void)rc({"delete", "--force", "noutsns"});
}

namespace {

// V without the members named in DROP (an object's, in order).
hull::json::Value withoutKeys(const hull::json::Value& v, const std::vector<std::string>& drop) {
    auto out = hull::json::Value::object();
    for (const auto& [k, x] : v.asObject())
        if (std::find(drop.begin(), drop.end(), k) == drop.end()) out.set(k, x);
    return out;
}

// The bundle's config.json with no mount namespace; with KEEP_MOUNTS, its mounts stay.
void dropMountNamespace(const Bundle& b, bool keepMounts) {
    auto cfg = hull::json::Value::parse(readFileOr(b.path() + "/config.json"));
    REQUIRE(cfg);
    auto linux = withoutKeys(*cfg->find("linux"), {"namespaces", "maskedPaths", "readonlyPaths", "devices", "sysctl"});
    auto namespaces = hull::json::Value::array();
    for (const auto& ns : cfg->find("linux")->find("namespaces")->asArray())
        if (hull::json::stringOf(ns, "type") != "mount") namespaces.push(ns);
    linux.set("namespaces", namespaces);
    auto out = withoutKeys(*cfg, keepMounts ? std::vector<std::string>{} : std::vector<std::string>{"mounts"});
    out.set("linux", linux);
    writeFileOrThrow(b.path() + "/config.json", out.dump(true));
}

}  // namespace

TEST_CASE("without a mount namespace a container runs chrooted in the runtime's, as runc and crun run it, and exec enters its root", "[root][runtime]") {
    REQUIRE_ROOT();
    BundleOptions o;
    o.args = {"/bin/sleep", "300"};
    Bundle b(o);
    dropMountNamespace(b, false);
    writeFileOrThrow(b.rootfs() + "/marker", "inside the rootfs\n");
    auto mountsBefore = readFileOr("/proc/self/mountinfo");
    HullRunc rc;
    auto r = rc({"run", "--detach", "--bundle", b.path(), "nomntns"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    int pid = pidOf(rc, "nomntns");
    REQUIRE(pid > 0);
    // The host's mount namespace, nothing mounted in it, and its root is the rootfs.
    CHECK(hostNs(pid, "mnt") == hostNs(int(::getpid()), "mnt"));
    CHECK(readFileOr("/proc/self/mountinfo") == mountsBefore);
    char root[4096] = {};
    REQUIRE(::readlink(("/proc/" + std::to_string(pid) + "/root").c_str(), root, sizeof root - 1) > 0);
    CHECK(std::string(root) == b.rootfs());
    // exec lands in the same root, not the host's.
    auto e = rc({"exec", "nomntns", "/bin/cat", "/marker"});
    INFO(e.err);
    CHECK(e.status == 0);
    CHECK(e.out == "inside the rootfs\n");
    CHECK(rc({"delete", "--force", "nomntns"}).status == 0);
    CHECK(readFileOr("/proc/self/mountinfo") == mountsBefore);

    // Mounts without a mount namespace would be the host's: refused before anything runs, naming the field.
    BundleOptions m;
    m.args = {"/bin/true"};
    Bundle withMounts(m);
    dropMountNamespace(withMounts, true);
    auto refused = rc({"run", "--bundle", withMounts.path(), "nomntns2"});
    CHECK(refused.status != 0);
    CHECK_THAT(refused.err, Catch::Contains("mounts[0] (/proc): needs the container's own mount namespace, "
                                            "and linux.namespaces has no \"mount\""));
    CHECK(readFileOr("/proc/self/mountinfo") == mountsBefore);
    (void)rc({"delete", "--force", "nomntns2"});
}
