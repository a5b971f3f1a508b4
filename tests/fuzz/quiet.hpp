#pragma once
// hull's log lines ("ignored: …", warnings about odd input) would drown
// libFuzzer's own output: the targets send them nowhere.
#include "sys/log.hpp"

namespace hull::fuzz {
inline void quietLogs() { log::configure("/dev/null", log::Format::Text, false); }
}  // namespace hull::fuzz
