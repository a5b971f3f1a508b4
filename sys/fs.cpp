#include "sys/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hull::sys {

Result<UniqueFd> openFile(const std::string& path, int flags, mode_t mode) {
    return openAt(AT_FDCWD, path, flags, mode);
}

Result<UniqueFd> openAt(int dirfd, const std::string& path, int flags, mode_t mode) {
    int fd;
    do fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return failErrno("open " + path);
    return UniqueFd(fd);
}

Result<std::string> readFd(int fd) {
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("read");
        if (n == 0) break;
        out.append(buf, size_t(n));
    }
    return out;
}

Result<std::string> readFile(const std::string& path) {
    auto fd = TRY(openFile(path, O_RDONLY));
    auto r = readFd(fd.get());
    if (!r) return fail(std::move(r).error().context(path));
    return r;
}

Result<void> writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("write");
        data.remove_prefix(size_t(n));
    }
    return {};
}

Result<void> writeExisting(const std::string& path, std::string_view data) {
    auto fd = TRY(openFile(path, O_WRONLY));
    // Control files take one write(); a short or split write changes meaning.
    ssize_t n;
    do n = ::write(fd.get(), data.data(), data.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) return failErrno("write " + path);
    return {};
}

Result<void> writeFile(const std::string& path, std::string_view data, mode_t mode) {
    auto fd = TRY(openFile(path, O_WRONLY | O_CREAT | O_TRUNC, mode));
    TRY_CTX("write " + path, writeAll(fd.get(), data));
    return {};
}

Result<void> writeFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
    std::string tmp = path + ".tmp";
    TRY(writeFile(tmp, data, mode));
    if (::rename(tmp.c_str(), path.c_str()) < 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return failErrno("rename " + tmp, e);
    }
    return {};
}

Result<void> writeFileDurable(const std::string& path, std::string_view data, mode_t mode) {
    std::string tmp = path + ".tmp";
    {
        auto fd = TRY(openFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode));
        TRY_CTX("write " + tmp, writeAll(fd.get(), data));
        if (::fsync(fd.get()) < 0) {
            int e = errno;
            ::unlink(tmp.c_str());
            return failErrno("fsync " + tmp, e);
        }
    }
    if (::rename(tmp.c_str(), path.c_str()) < 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return failErrno("rename " + tmp, e);
    }
    auto slash = path.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    auto d = TRY(openFile(dir, O_RDONLY | O_DIRECTORY));
    if (::fsync(d.get()) < 0) return failErrno("fsync " + dir);
    return {};
}

Result<void> mkdirAll(const std::string& path, mode_t mode) {
    if (path.empty()) return {};
    if (::mkdir(path.c_str(), mode) == 0 || errno == EEXIST) {
        if (errno == EEXIST) {
            struct stat st;
            if (::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
                return fail(Error::plain(ENOTDIR, "mkdir " + path + ": exists and is not a directory"));
        }
        return {};
    }
    if (errno != ENOENT) return failErrno("mkdir " + path);
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos || slash == 0) return failErrno("mkdir " + path);
    TRY(mkdirAll(path.substr(0, slash), mode));
    if (::mkdir(path.c_str(), mode) < 0 && errno != EEXIST) return failErrno("mkdir " + path);
    return {};
}

static Result<void> removeAt(int dirfd, const char* name, const std::string& shown) {
    if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return {};
    if (errno != EISDIR && errno != EPERM) return failErrno("remove " + shown);
    int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? Result<void>{} : failErrno("open " + shown);
    DIR* d = ::fdopendir(fd);
    if (!d) {
        ::close(fd);
        return failErrno("opendir " + shown);
    }
    Result<void> r;
    while (auto* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n == "." || n == "..") continue;
        r = removeAt(::dirfd(d), e->d_name, shown + "/" + e->d_name);
        if (!r) break;
    }
    ::closedir(d);
    if (!r) return r;
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) return failErrno("rmdir " + shown);
    return {};
}

Result<void> removeAll(const std::string& path) { return removeAt(AT_FDCWD, path.c_str(), path); }

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::vector<std::string> listDir(const std::string& path) {
    std::vector<std::string> out;
    DIR* d = ::opendir(path.c_str());
    if (!d) return out;
    while (auto* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") out.emplace_back(n);
    }
    ::closedir(d);
    return out;
}

std::string joinPath(std::string_view a, std::string_view b) {
    if (a.empty()) return std::string(b);
    if (b.empty()) return std::string(a);
    std::string out(a);
    if (out.back() != '/') out += '/';
    while (!b.empty() && b.front() == '/') b.remove_prefix(1);
    out += b;
    return out;
}

std::string cleanPath(std::string_view p) {
    bool abs = !p.empty() && p.front() == '/';
    std::vector<std::string_view> parts;
    for (size_t i = 0; i <= p.size();) {
        size_t j = p.find('/', i);
        if (j == std::string_view::npos) j = p.size();
        auto part = p.substr(i, j - i);
        if (part == "..") {
            if (!parts.empty() && parts.back() != "..") parts.pop_back();
            else if (!abs) parts.push_back(part);
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        i = j + 1;
    }
    std::string out = abs ? "/" : "";
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i) out += '/';
        out += parts[i];
    }
    return out.empty() ? "." : out;
}

std::vector<std::string> split(std::string_view s, char sep, bool skipEmpty) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find(sep, i);
        if (j == std::string_view::npos) j = s.size();
        if (!skipEmpty || j > i) out.emplace_back(s.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

}  // namespace hull::sys
