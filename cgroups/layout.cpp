// Which cgroup layout the host has, and where we sit in it.
#include <linux/magic.h>
#include <sys/statfs.h>

#include <algorithm>

#include "cgroups/manager.hpp"
#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::cgroups {

const char* layoutName(LayoutKind k) {
    switch (k) {
        case LayoutKind::Unified: return "unified";
        case LayoutKind::Hybrid: return "hybrid";
        case LayoutKind::Legacy: return "legacy";
    }
    return "unknown";
}

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo (proc(5)).
std::string unescapeMountField(std::string_view s) {
    auto oct = [](char c) { return c >= '0' && c <= '7'; };
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
            out += char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

// v1 super options that are flags of the mount, not controllers.
bool isV1Controller(const std::string& opt) {
    static const char* const kFlags[] = {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode",
                                         "favordynmods", "none"};
    for (const char* f : kFlags)
        if (opt == f) return false;
    if (opt.rfind("name=", 0) == 0) return true;
    return opt.find('=') == std::string::npos;  // release_agent=... and the like
}

}  // namespace

std::vector<CgroupMount> parseCgroupMounts(const std::string& mountinfo) {
    std::vector<CgroupMount> out;
    for (const auto& line : sys::split(mountinfo, '\n')) {
        // id parent maj:min root mountpoint options [optional...] - fstype source superoptions
        auto f = sys::split(line, ' ');
        size_t dash = 0;
        for (size_t i = 6; i < f.size(); ++i)
            if (f[i] == "-") {
                dash = i;
                break;
            }
        if (dash == 0 || dash + 1 >= f.size()) continue;
        const std::string& fstype = f[dash + 1];
        if (fstype != "cgroup" && fstype != "cgroup2") continue;
        CgroupMount m;
        m.root = unescapeMountField(f[3]);
        m.mountPoint = unescapeMountField(f[4]);
        m.v2 = fstype == "cgroup2";
        if (!m.v2 && dash + 3 < f.size())
            for (auto& opt : sys::split(f[dash + 3], ','))
                if (isV1Controller(opt)) m.controllers.push_back(opt);
        out.push_back(std::move(m));
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> v1MountsBelow(const std::vector<CgroupMount>& mounts,
                                                               const std::string& root) {
    std::string prefix = sys::cleanPath(root);
    if (prefix.back() != '/') prefix += '/';
    // Mount points directly below root, in order; a later mount on the same
    // point hides the earlier one.
    std::vector<const CgroupMount*> visible;
    for (const auto& m : mounts) {
        std::string mp = sys::cleanPath(m.mountPoint);
        if (mp.rfind(prefix, 0) != 0 || mp.size() == prefix.size() || mp.find('/', prefix.size()) != std::string::npos)
            continue;
        auto it = std::find_if(visible.begin(), visible.end(),
                               [&](const CgroupMount* v) { return sys::cleanPath(v->mountPoint) == mp; });
        if (it != visible.end()) *it = &m;
        else visible.push_back(&m);
    }
    std::vector<std::pair<std::string, std::string>> out;
    for (const CgroupMount* m : visible) {
        if (m->v2) continue;
        if (m->root != "/")
            log::debugf("cgroup: %s mounts hierarchy directory %s, not its root", m->mountPoint.c_str(),
                        m->root.c_str());
        // A hierarchy mounted twice below root: the first mount point serves.
        for (const auto& c : m->controllers)
            if (std::none_of(out.begin(), out.end(), [&](auto& e) { return e.first == c; }))
                out.emplace_back(c, sys::cleanPath(m->mountPoint));
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> parseProcCgroup(const std::string& text) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& line : sys::split(text, '\n')) {
        // hierarchy-id:controller-list:path; the path may itself hold ':'.
        auto a = line.find(':');
        if (a == std::string::npos) continue;
        auto b = line.find(':', a + 1);
        if (b == std::string::npos) continue;
        std::string controllers = line.substr(a + 1, b - a - 1);
        std::string path = line.substr(b + 1);
        if (controllers.empty()) {
            out.emplace_back("", path);
            continue;
        }
        for (auto& c : sys::split(controllers, ',')) out.emplace_back(c, path);
    }
    return out;
}

Result<Layout> layoutFromProbe(const std::string& root, const LayoutProbe& probe, const std::string& mountinfo) {
    Layout l;
    l.root = root;
    auto mounts = parseCgroupMounts(mountinfo);
    std::string top = sys::cleanPath(root);
    for (const auto& m : mounts) {
        std::string mp = sys::cleanPath(m.mountPoint);
        if (mp != top && mp.substr(0, mp.find_last_of('/')) != top) continue;
        std::erase_if(l.mountRoots, [&](auto& e) { return e.first == mp; });  // the later mount hides it
        if (m.root != "/") l.mountRoots.emplace_back(mp, m.root);
    }
    if (probe.rootMagic == CGROUP2_SUPER_MAGIC) {
        l.kind = LayoutKind::Unified;
        l.unifiedMount = root;
        return l;
    }
    if (probe.rootMagic != TMPFS_MAGIC && probe.rootMagic != CGROUP_SUPER_MAGIC)
        return failInvalid("cgroup root " + root + " is neither cgroup2 nor a tmpfs of v1 hierarchies");
    l.v1Mounts = v1MountsBelow(mounts, root);
    if (l.v1Mounts.empty()) return fail(Error::plain(ENOENT, "no cgroup v1 hierarchies mounted below " + root));
    if (probe.unifiedMagic == CGROUP2_SUPER_MAGIC) {
        l.kind = LayoutKind::Hybrid;
        l.unifiedMount = sys::joinPath(root, "unified");
    } else {
        l.kind = LayoutKind::Legacy;
    }
    return l;
}

Result<Layout> detectLayout(const std::string& root) {
    LayoutProbe probe;
    struct statfs st;
    if (::statfs(root.c_str(), &st) < 0) return failErrno("statfs " + root);
    probe.rootMagic = long(st.f_type);
    std::string unified = sys::joinPath(root, "unified");
    if (::statfs(unified.c_str(), &st) == 0) probe.unifiedMagic = long(st.f_type);
    auto mountinfo = TRY(sys::readFile("/proc/self/mountinfo"));
    auto l = TRY(layoutFromProbe(root, probe, mountinfo));
    log::debugf("cgroup: %s layout at %s (%zu v1 controllers, unified %s)", layoutName(l.kind), root.c_str(),
                l.v1Mounts.size(), l.unifiedMount.empty() ? "-" : l.unifiedMount.c_str());
    return l;
}

}  // namespace hull::cgroups
