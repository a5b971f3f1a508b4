#pragma once
// Base64 (RFC 4648, with padding): bytes through JSON strings, which must be
// valid UTF-8 (container logs are any bytes).
#include <string>
#include <string_view>

#include "sys/error.hpp"

namespace hull::sys {

std::string base64Encode(std::string_view bytes);
/// TEXT decoded; EINVAL for a character outside the alphabet or a bad length.
[[nodiscard]] Result<std::string> base64Decode(std::string_view text);

}  // namespace hull::sys
