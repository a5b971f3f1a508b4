#include <catch2/catch.hpp>

#include "sys/base64.hpp"

using namespace hull;

TEST_CASE("base64: RFC 4648's vectors both ways, any bytes, and bad input refused", "[sys][base64]") {
    const std::pair<std::string, std::string> vectors[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, coded] : vectors) {
        CHECK(sys::base64Encode(plain) == coded);
        auto back = sys::base64Decode(coded);
        REQUIRE(back);
        CHECK(*back == plain);
    }
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes += char(i);
    auto back = sys::base64Decode(sys::base64Encode(bytes));
    REQUIRE(back);
    CHECK(*back == bytes);
    CHECK_FALSE(sys::base64Decode("Zm9"));
    CHECK_FALSE(sys::base64Decode("Zm9v!A=="));
    CHECK_FALSE(sys::base64Decode("Z===").has_value());
    CHECK_FALSE(sys::base64Decode("Zg==Zg==").has_value());
}
