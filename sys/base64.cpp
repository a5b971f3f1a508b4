#include "sys/base64.hpp"

#include <array>

namespace hull::sys {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> decodeTable() {
    std::array<int8_t, 256> t{};
    for (auto& x : t) x = -1;
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = int8_t(i);
    return t;
}
constexpr auto kDecode = decodeTable();

}  // namespace

std::string base64Encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (size_t rest = in.size() - i; rest > 0) {
        uint32_t v = uint32_t(uint8_t(in[i])) << 16 | (rest == 2 ? uint32_t(uint8_t(in[i + 1])) << 8 : 0);
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

Result<std::string> base64Decode(std::string_view in) {
    if (in.size() % 4 != 0) return failInvalid("base64: length " + std::to_string(in.size()) + " is not a multiple of 4");
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (size_t i = 0; i < in.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = in[i + size_t(k)];
            bool last = i + 4 == in.size();
            if (c == '=' && last && k >= 2 && (k == 3 || in[i + 3] == '=')) {
                v[k] = 0;
                ++pad;
                continue;
            }
            v[k] = kDecode[static_cast<unsigned char>(c)];
            if (v[k] < 0 || pad > 0) return failInvalid("base64: bad character at " + std::to_string(i + size_t(k)));
        }
        uint32_t x = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
        out += char(x >> 16);
        if (pad < 2) out += char((x >> 8) & 0xff);
        if (pad < 1) out += char(x & 0xff);
    }
    return out;
}

}  // namespace hull::sys
