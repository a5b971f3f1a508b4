#include "runtime/bundle.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <functional>

#include "sys/fs.hpp"
#include "sys/json.hpp"

namespace hull::test {

static std::string jsonList(const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + json::quote(v[i]);
    return out + "]";
}

std::string configJson(const BundleOptions& o) {
    std::string caps = jsonList(o.caps);
    std::string namespaces = R"([{"type":"pid"},{"type":"mount"},{"type":"uts"},{"type":"ipc"},{"type":"network"})";
    if (o.userNamespace) namespaces += R"(,{"type":"user"})";
    namespaces += "]";
    std::string idmaps;
    if (o.userNamespace) {
        std::string m = "[{\"containerID\":0,\"hostID\":" + std::to_string(kUserNsHostId) + ",\"size\":65536}]";
        idmaps = ",\"uidMappings\":" + m + ",\"gidMappings\":" + m;
    }
    std::string sysMount = o.userNamespace
                               ? R"({"destination":"/sys","type":"bind","source":"/sys","options":["rbind","nosuid","noexec","nodev","ro"]})"
                               : R"({"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]})";
    std::string out = R"({
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": )" + jsonList(o.args) + R"(,
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
    "cwd": "/",
    "capabilities": {"bounding": )" + caps + R"(, "effective": )" + caps + R"(, "permitted": )" + caps +
                      R"(, "inheritable": )" + caps + R"(, "ambient": )" + caps + R"(},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": )" + (o.noNewPrivileges ? "true" : "false") + o.processExtra + R"(
  },
  "root": {"path": "rootfs", "readonly": )" + (o.readonlyRoot ? "true" : "false") + R"(},
  "hostname": )" + json::quote(o.hostname) + R"(,
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    )" + sysMount + o.extraMounts + R"(
  ],
  )" + (o.hooks.empty() ? "" : "\"hooks\": " + o.hooks + ",\n  ") + R"("linux": {
    "namespaces": )" + namespaces + idmaps + R"(,
    )" + (o.seccomp.empty() ? "" : "\"seccomp\": " + o.seccomp + ",\n    ") +
                      (o.resources.empty() ? "" : "\"resources\": " + o.resources + ",\n    ") +
                      (o.cgroupsPath.empty() ? "" : "\"cgroupsPath\": " + json::quote(o.cgroupsPath) + ",\n    ") +
                      R"("maskedPaths": )" +
                      jsonList(o.maskedPaths) + R"(,
    "readonlyPaths": )" + jsonList(o.readonlyPaths) + o.linuxExtra + R"(
  }
})";
    return out;
}

Bundle::Bundle(const BundleOptions& o) : dir_("hull-bundle") {
    makeBusyboxRootfs(dir_ / "rootfs");
    if (o.userNamespace) {
        // The mapped root (an unprivileged host uid) must be able to reach and
        // use the bundle, which mkdtemp made 0700.
        ::chmod(path().c_str(), 0755);
        ::chmod(rootfs().c_str(), 0755);
    }
    writeConfig(o);
}

void Bundle::writeConfig(const BundleOptions& o) { writeFileOrThrow(dir_ / "config.json", configJson(o)); }

HullRunc::HullRunc() : root_("hull-runc-root") {}

HullRunc::~HullRunc() {
    // Whatever a failed test left behind: force-delete it.
    for (auto& id : sys::listDir(root_.path())) run({binPath("hull-runc"), "--root", root_.path(), "delete", "--force", id});
}

RunResult HullRunc::operator()(std::vector<std::string> args, const std::string& input) const {
    args.insert(args.begin(), {binPath("hull-runc"), "--root", root_.path()});
    return run(args, input);
}

static std::string stateField(const HullRunc& rc, const std::string& id, const char* key) {
    auto r = rc({"state", id});
    if (r.status != 0) return "";
    auto v = json::Value::parse(r.out);
    if (!v) return "";
    auto* f = v->find(key);
    if (!f) return "";
    if (f->isString()) return f->asString();
    int64_t n;
    if (f->isNumber() && f->toInt64(n)) return std::to_string(n);
    return "";
}

std::string statusOf(const HullRunc& rc, const std::string& id) { return stateField(rc, id, "status"); }

int pidOf(const HullRunc& rc, const std::string& id) {
    auto s = stateField(rc, id, "pid");
    return s.empty() ? 0 : std::atoi(s.c_str());
}

std::vector<std::string> mountsMentioning(const std::string& needle) {
    std::vector<std::string> out;
    for (auto& line : sys::split(readFileOr("/proc/self/mountinfo"), '\n'))
        if (line.find(needle) != std::string::npos) out.push_back(line);
    return out;
}

std::vector<std::string> cgroupDirsNamed(const std::string& name) {
    std::vector<std::string> out;
    std::function<void(const std::string&, int)> walk = [&](const std::string& dir, int depth) {
        if (depth > 6) return;
        for (auto& e : sys::listDir(dir)) {
            std::string p = dir + "/" + e;
            struct stat st;
            if (::lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
            if (e == name) out.push_back(p);
            walk(p, depth + 1);
        }
    };
    walk("/sys/fs/cgroup", 0);
    return out;
}

}  // namespace hull::test
