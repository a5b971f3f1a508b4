#include "sys/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>

#include "sys/json.hpp"

namespace hull::log {
namespace {
int g_fd = 2;
Format g_format = Format::Text;
bool g_debug = false;

const char* levelName(Level l) {
    switch (l) {
        case Level::Debug: return "debug";
        case Level::Info: return "info";
        case Level::Warn: return "warning";
        case Level::Error: return "error";
    }
    return "info";
}

void vlog(Level level, const char* fmt, va_list ap) {
    if (level == Level::Debug && !g_debug) return;
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    write(level, buf);
}
}  // namespace

void configure(const std::string& file, Format format, bool debug) {
    g_format = format;
    g_debug = debug;
    if (!file.empty()) {
        int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) g_fd = fd;
    }
}

bool debugEnabled() { return g_debug; }
int fd() { return g_fd; }

std::string timestamp(bool nanoseconds) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nanoseconds) snprintf(buf + n, sizeof buf - n, ".%09ldZ", now.tv_nsec);
    else snprintf(buf + n, sizeof buf - n, "Z");
    return buf;
}

void write(Level level, const std::string& msg) {
    if (level == Level::Debug && !g_debug) return;
    std::string ts = timestamp();
    std::string line;
    if (g_format == Format::Json) {
        line = "{\"level\":" + json::quote(levelName(level)) + ",\"msg\":" + json::quote(msg) +
               ",\"time\":" + json::quote(ts) + "}\n";
    } else {
        line = ts + " " + levelName(level) + " hull: " + msg + "\n";
    }
    (void)!::write(g_fd, line.data(), line.size());
}

#define HULL_DEFINE_LOG(name, level) \
    void name(const char* fmt, ...) { \
        va_list ap;                   \
        va_start(ap, fmt);            \
        vlog(level, fmt, ap);         \
        va_end(ap);                   \
    }
HULL_DEFINE_LOG(debugf, Level::Debug)
HULL_DEFINE_LOG(infof, Level::Info)
HULL_DEFINE_LOG(warnf, Level::Warn)
HULL_DEFINE_LOG(errorf, Level::Error)

}  // namespace hull::log
