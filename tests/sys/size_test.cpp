// sys::parseSize: the one size parser (service files, hull run --memory, hull-runc update).
#include <catch2/catch.hpp>

#include "sys/size.hpp"

using hull::sys::parseSize;

TEST_CASE("size: units, cases and suffixes are powers of 1024", "[size]") {
    CHECK(parseSize("1024") == 1024);
    CHECK(parseSize("0") == 0);
    CHECK(parseSize("7b") == 7);
    CHECK(parseSize("1k") == 1024);
    CHECK(parseSize("64m") == 64 << 20);
    CHECK(parseSize("64M") == 64 << 20);
    CHECK(parseSize("64MB") == 64 << 20);
    CHECK(parseSize("64MiB") == 64 << 20);
    CHECK(parseSize("64mib") == 64 << 20);
    CHECK(parseSize("2g") == int64_t(2) << 30);
    CHECK(parseSize("3t") == int64_t(3) << 40);
    CHECK(parseSize("5p") == int64_t(5) << 50);
    CHECK(parseSize("1.5g") == int64_t(3) << 29);
    CHECK(parseSize("0.5k") == 512);
    CHECK(parseSize("1.0001k") == 1024);  // rounded down
}

TEST_CASE("size: anything else is refused, overflow included", "[size]") {
    for (const char* bad : {"", "m", "-1", "-5m", "+5m", "1e30", "1e3", "5 m", " 5m", "5mm", "5x", "5bb", "5ib", "5iib", "5mbb", "1.2.3k", ".", "0x10", "inf",
                            "nan", "8192p", "9223372036854775808", "99999999999999999999999999999999"}) {
        INFO(bad);
        CHECK_FALSE(parseSize(bad));
    }
    // The largest that fits: 8191 PiB and a bit.
    CHECK(parseSize("8191p") == int64_t(8191) << 50);
    CHECK(parseSize("9223372036854774784") == int64_t(9223372036854774784LL));
}
