#pragma once
// Process-wide logging, as runc's clients expect it: --log FILE, --log-format
// text|json, --debug. Without a file, messages go to stderr.
#include <string>

namespace hull::log {

enum class Level { Debug, Info, Warn, Error };
enum class Format { Text, Json };

/// Configure once, early. An unopenable file falls back to stderr.
void configure(const std::string& file, Format format, bool debug);
bool debugEnabled();
/// The fd messages go to (kept open across fork, closed on exec).
int fd();

void write(Level level, const std::string& msg);
/// UTC now in RFC 3339: "2026-11-23T09:26:31Z", or with NANOSECONDS
/// "2026-11-23T09:26:31.606667120Z" (runc's "created", our log lines).
std::string timestamp(bool nanoseconds = true);
void debugf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void infof(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void warnf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void errorf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace hull::log
