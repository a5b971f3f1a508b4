#include "sys/size.hpp"

#include <cctype>
#include <cmath>
#include <string>

namespace hull::sys {

std::optional<int64_t> parseSize(std::string_view s) {
    size_t i = 0, digits = 0, dots = 0;
    for (; i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.'); ++i)
        (s[i] == '.' ? dots : digits)++;
    if (digits == 0 || dots > 1 || digits > 30) return std::nullopt;
    std::string unit;
    for (char c : s.substr(i)) unit += char(std::tolower(static_cast<unsigned char>(c)));
    int shift = 0;
    if (unit.empty() || unit == "b") {
        shift = 0;
    } else {
        // "MB", "MiB": the unit's letter, then an optional "i", then "b".
        if (unit.back() == 'b') unit.pop_back();
        if (unit.size() == 2 && unit.back() == 'i') unit.pop_back();
        if (unit == "k") shift = 10;
        else if (unit == "m") shift = 20;
        else if (unit == "g") shift = 30;
        else if (unit == "t") shift = 40;
        else if (unit == "p") shift = 50;
        else return std::nullopt;
    }
    // The number in long double (64-bit mantissa: exact for any int64 of bytes
    // a whole number of units makes), checked against int64 before the cast.
    const long double v = std::strtold(std::string(s.substr(0, i)).c_str(), nullptr) * std::ldexp(1.0L, shift);
    if (!(v >= 0) || v >= 9223372036854775807.0L) return std::nullopt;
    return int64_t(v);
}

}  // namespace hull::sys
