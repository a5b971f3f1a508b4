#pragma once
// One parser for sizes, wherever users write them (a service's resources,
// `hull run --memory`, `hull-runc update --memory`): "1024", "64m", "64MB",
// "64MiB", "1.5g" (units b, k, m, g, t, p, any case, powers of 1024, with an
// optional "b" or "ib"). Plain digits with at most one decimal point: no sign,
// no exponent ("1e30" is refused), and nothing that does not fit an int64.
#include <cstdint>
#include <optional>
#include <string_view>

namespace hull::sys {

/// Bytes, rounded down; nullopt for anything else.
std::optional<int64_t> parseSize(std::string_view text);

}  // namespace hull::sys
