#include "runtime/state.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <time.h>

#include <cstdio>
#include <cstring>

#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

namespace hull::runtime {

Result<void> writeState(const std::string& dir, const StoredState& s) {
    json::Value v = json::Value::object();
    v.set("id", s.id);
    v.set("phase", s.phase);
    v.set("pid", int64_t(s.pid));
    v.set("startTime", s.startTime);
    v.set("bundle", s.bundle);
    v.set("rootfs", s.rootfs);
    v.set("created", s.created);
    v.set("owner", s.owner);
    v.set("cgroupsPath", s.cgroupsPath);
    v.set("cgroupOwner", s.cgroupOwner);
    json::Value ann = json::Value::object();
    for (auto& [k, val] : s.annotations) ann.set(k, val);
    v.set("annotations", std::move(ann));
    return sys::writeFileAtomic(sys::joinPath(dir, kStateFile), v.dump(), 0600);
}

Result<StoredState> readState(const std::string& dir) {
    std::string path = sys::joinPath(dir, kStateFile);
    auto text = TRY(sys::readFile(path));
    auto v = TRY_CTX(path, json::Value::parse(text));
    StoredState s;
    auto str = [&](const char* key) { return json::stringOf(v, key); };
    s.id = str("id");
    s.phase = str("phase");
    s.bundle = str("bundle");
    s.rootfs = str("rootfs");
    s.created = str("created");
    s.owner = str("owner");
    s.cgroupsPath = str("cgroupsPath");
    s.cgroupOwner = str("cgroupOwner");
    int64_t pid = 0;
    uint64_t st = 0;
    if (auto* f = v.find("pid"); f && f->isNumber() && f->toInt64(pid)) s.pid = pid_t(pid);
    if (auto* f = v.find("startTime"); f && f->isNumber() && f->toUint64(st)) s.startTime = st;
    if (auto* a = v.find("annotations"); a && a->isObject())
        for (auto& [k, val] : a->asObject())
            if (val.isString()) s.annotations[k] = val.asString();
    return s;
}

uint64_t processStartTime(pid_t pid) {
    if (pid <= 0) return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    auto text = sys::readFile(path);
    if (!text) return 0;
    // comm (field 2) may contain spaces and parentheses: parse after the last ')'.
    auto close = text->rfind(')');
    if (close == std::string::npos) return 0;
    auto fields = sys::split(std::string_view(*text).substr(close + 2), ' ');
    // fields[0] is field 3 (state); starttime is field 22 -> fields[19].
    if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return 0;
    return std::strtoull(fields[19].c_str(), nullptr, 10);
}

bool processAlive(const StoredState& s) {
    if (s.pid <= 0) return false;
    uint64_t t = processStartTime(s.pid);
    return t != 0 && (s.startTime == 0 || t == s.startTime);
}

Result<UniqueFd> lockDir(const std::string& dir) {
    auto fd = TRY(sys::openFile(dir, O_RDONLY | O_DIRECTORY));
    while (::flock(fd.get(), LOCK_EX) < 0) {
        if (errno != EINTR) return failErrno("lock " + dir);
    }
    return fd;
}

std::string nowRfc3339() { return log::timestamp(true); }

Result<std::unique_ptr<cgroups::Manager>> cgroupFor(const StoredState& s) {
    std::string path = s.cgroupsPath.empty() ? "hull/" + s.id : s.cgroupsPath;
    if (s.cgroupOwner.empty()) return cgroups::openHostManager(path);  // state from before the field existed
    auto layout = TRY(cgroups::detectLayout());
    return cgroups::makeManager(layout, path, s.cgroupOwner);
}

}  // namespace hull::runtime
