#pragma once
// Tar layers built in tests, entry by entry (libarchive's writer), including
// the hostile ones no ordinary tool would write.
#include <archive.h>
#include <archive_entry.h>
#include <sys/types.h>

#include <ctime>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace hull::test {

inline constexpr time_t kMtime = 1700000000;

struct Entry {
    std::string path;
    mode_t type = AE_IFREG;
    mode_t perm = 0644;
    std::string data;
    std::string symlink;   // AE_IFLNK target
    std::string hardlink;  // makes this entry a hardlink
    int64_t uid = 0, gid = 0;
    unsigned major = 0, minor = 0;
    std::vector<std::pair<std::string, std::string>> xattrs;
    time_t mtime = kMtime;
};

inline Entry file(std::string path, std::string data, mode_t perm = 0644) {
    Entry e;
    e.path = std::move(path);
    e.data = std::move(data);
    e.perm = perm;
    return e;
}
inline Entry dir(std::string path, mode_t perm = 0755) {
    Entry e;
    e.path = std::move(path);
    e.type = AE_IFDIR;
    e.perm = perm;
    return e;
}
inline Entry sym(std::string path, std::string target) {
    Entry e;
    e.path = std::move(path);
    e.type = AE_IFLNK;
    e.perm = 0777;
    e.symlink = std::move(target);
    return e;
}
inline Entry hard(std::string path, std::string target) {
    Entry e;
    e.path = std::move(path);
    e.hardlink = std::move(target);
    return e;
}
inline Entry node(std::string path, mode_t type, unsigned major = 0, unsigned minor = 0) {
    Entry e;
    e.path = std::move(path);
    e.type = type;
    e.major = major;
    e.minor = minor;
    return e;
}

enum class Compression { None, Gzip, Zstd };

/// Write ENTRIES as a pax tar (compressed as asked) to FILE.
inline void writeLayer(const std::string& path, const std::vector<Entry>& entries, Compression c = Compression::None) {
    archive* a = archive_write_new();
    auto check = [&](int r, const char* what) {
        if (r < ARCHIVE_WARN) {
            std::string msg = std::string(what) + ": " + (archive_error_string(a) ? archive_error_string(a) : "?");
            archive_write_free(a);
            throw std::runtime_error(msg);
        }
    };
    check(archive_write_set_format_pax_restricted(a), "format");
    if (c == Compression::Gzip) check(archive_write_add_filter_gzip(a), "gzip");
    if (c == Compression::Zstd) check(archive_write_add_filter_zstd(a), "zstd");
    check(archive_write_open_filename(a, path.c_str()), "open");
    for (const Entry& e : entries) {
        archive_entry* ae = archive_entry_new();
        archive_entry_set_pathname(ae, e.path.c_str());
        archive_entry_set_filetype(ae, e.hardlink.empty() ? e.type : AE_IFREG);
        archive_entry_set_perm(ae, e.perm);
        archive_entry_set_uid(ae, e.uid);
        archive_entry_set_gid(ae, e.gid);
        archive_entry_set_mtime(ae, e.mtime, 0);
        if (!e.symlink.empty()) archive_entry_set_symlink(ae, e.symlink.c_str());
        if (!e.hardlink.empty()) archive_entry_set_hardlink(ae, e.hardlink.c_str());
        if (e.type == AE_IFCHR || e.type == AE_IFBLK) {
            archive_entry_set_rdevmajor(ae, e.major);
            archive_entry_set_rdevminor(ae, e.minor);
        }
        for (auto& [k, v] : e.xattrs) archive_entry_xattr_add_entry(ae, k.c_str(), v.data(), v.size());
        archive_entry_set_size(ae, e.type == AE_IFREG && e.hardlink.empty() ? la_int64_t(e.data.size()) : 0);
        int r = archive_write_header(a, ae);
        archive_entry_free(ae);
        check(r, "header");
        if (!e.data.empty() && archive_write_data(a, e.data.data(), e.data.size()) < 0) check(ARCHIVE_FATAL, "data");
    }
    check(archive_write_close(a), "close");
    archive_write_free(a);
}

}  // namespace hull::test
