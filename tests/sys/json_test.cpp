#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "sys/json.hpp"

using hull::json::Type;
using hull::json::Value;

namespace {
Value parseOk(std::string_view text) {
    auto r = Value::parse(text);
    INFO(text);
    if (!r) FAIL("parse failed: " << r.error().message());
    return *r;
}
std::string parseErr(std::string_view text) {
    auto r = Value::parse(text);
    INFO(text);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == EINVAL);
    return r.error().message();
}
}  // namespace

TEST_CASE("json: scalars parse to the right types", "[json]") {
    CHECK(parseOk("null").isNull());
    CHECK(parseOk("true").asBool() == true);
    CHECK(parseOk("false").asBool() == false);
    CHECK(parseOk(" \t\r\n\"x\" \n").asString() == "x");
    CHECK(parseOk("1.5").asDouble() == 1.5);
    CHECK(parseOk("-0.25e2").asDouble() == -25.0);
    CHECK(parseOk("1E+2").asDouble() == 100.0);
    CHECK(parseOk("[]").asArray().empty());
    CHECK(parseOk("{}").asObject().empty());
    CHECK(hull::json::describe(Type::Object) == std::string("an object"));
    CHECK(hull::json::describe(parseOk("\"s\"").type()) == std::string("a string"));
}

TEST_CASE("json: integers stay exact over the whole 64-bit range", "[json]") {
    int64_t i = 0;
    uint64_t u = 0;

    Value min = parseOk("-9223372036854775808");
    REQUIRE(min.toInt64(i));
    CHECK(i == INT64_MIN);
    CHECK_FALSE(min.toUint64(u));

    Value two63 = parseOk("9223372036854775808");  // 2^63: no int64, exact uint64
    CHECK_FALSE(two63.toInt64(i));
    REQUIRE(two63.toUint64(u));
    CHECK(u == 9223372036854775808ULL);

    Value max = parseOk("18446744073709551615");  // 2^64-1
    REQUIRE(max.toUint64(u));
    CHECK(u == UINT64_MAX);
    CHECK(max.dump() == "18446744073709551615");
    CHECK(two63.dump() == "9223372036854775808");
    CHECK(min.dump() == "-9223372036854775808");

    // One past uint64 becomes a double, no longer an integer.
    Value over = parseOk("18446744073709551616");
    CHECK_FALSE(over.toUint64(u));
    CHECK(over.asDouble() == 18446744073709551616.0);

    Value neg = parseOk("-1");
    REQUIRE(neg.toInt64(i));
    CHECK(i == -1);
    CHECK_FALSE(neg.toUint64(u));

    CHECK_FALSE(parseOk("1.0").toInt64(i));
    CHECK_FALSE(parseOk("1e3").toUint64(u));
    CHECK(parseOk("0").toUint64(u));
    CHECK(u == 0);
    CHECK(parseOk("-0").toInt64(i));
    CHECK(i == 0);
}

TEST_CASE("json: string escapes and surrogate pairs decode to UTF-8", "[json]") {
    CHECK(parseOk(R"("a\"b\\c\/d\b\f\n\r\t")").asString() == "a\"b\\c/d\b\f\n\r\t");
    CHECK(parseOk(R"("\u0041\u00e9\u20AC")").asString() == "A\xc3\xa9\xe2\x82\xac");
    CHECK(parseOk(R"("\u0000")").asString() == std::string("\0", 1));
    // U+1F600 as a surrogate pair.
    CHECK(parseOk(R"("\ud83d\ude00")").asString() == "\xf0\x9f\x98\x80");
    // U+10FFFF, the highest code point.
    CHECK(parseOk(R"("\uDBFF\uDFFF")").asString() == "\xf4\x8f\xbf\xbf");
    // Raw UTF-8 passes through.
    CHECK(parseOk("\"h\xc3\xa9llo \xf0\x9f\x98\x80\"").asString() == "h\xc3\xa9llo \xf0\x9f\x98\x80");
}

TEST_CASE("json: objects keep order, find returns the first match, set replaces", "[json]") {
    Value v = parseOk(R"({"b": 1, "a": [true, null, "x"], "b": 2})");
    REQUIRE(v.isObject());
    REQUIRE(v.asObject().size() == 3);
    CHECK(v.asObject()[0].first == "b");
    CHECK(v.asObject()[1].first == "a");
    int64_t i = 0;
    REQUIRE(v.find("b"));
    REQUIRE(v.find("b")->toInt64(i));
    CHECK(i == 1);
    CHECK(v.find("missing") == nullptr);
    CHECK(parseOk("[1]").find("a") == nullptr);
    const Value* a = v.find("a");
    REQUIRE(a);
    REQUIRE(a->asArray().size() == 3);
    CHECK(a->asArray()[2].asString() == "x");

    Value o = Value::object();
    o.set("x", 1).set("y", "two");
    o.set("x", false);
    CHECK(o.dump() == R"({"x":false,"y":"two"})");
    Value arr = Value::array();
    arr.push(1).push(Value(uint64_t(UINT64_MAX))).push(-2);
    CHECK(arr.dump() == "[1,18446744073709551615,-2]");
}

TEST_CASE("json: dump writes valid JSON that round-trips", "[json]") {
    const std::string doc =
        R"({"s":"q\"b\\ \n\t\u0001 é","n":[0,-5,1.5,18446744073709551615],"o":{"e":{},"a":[]},"t":true,"z":null})";
    Value v = parseOk(doc);
    std::string compact = v.dump();
    CHECK(compact ==
          "{\"s\":\"q\\\"b\\\\ \\n\\t\\u0001 \xc3\xa9\",\"n\":[0,-5,1.5,18446744073709551615],"
          "\"o\":{\"e\":{},\"a\":[]},\"t\":true,\"z\":null}");
    CHECK(parseOk(compact).dump() == compact);

    std::string pretty = v.dump(true);
    CHECK(pretty.find("\n  \"s\": ") != std::string::npos);
    CHECK(pretty.find("\n    \"e\": {},") != std::string::npos);
    CHECK(parseOk(pretty).dump() == compact);

    CHECK(Value(1.0).dump() == "1.0");  // stays a double when read back
    CHECK(parseOk(Value(0.1).dump()).asDouble() == 0.1);
    CHECK(Value(std::nan("")).dump() == "null");
}

TEST_CASE("json: quote escapes control characters and keeps UTF-8", "[json]") {
    CHECK(hull::json::quote("plain") == "\"plain\"");
    CHECK(hull::json::quote("a\"b\\c") == R"("a\"b\\c")");
    CHECK(hull::json::quote("l1\nl2\r\t") == R"("l1\nl2\r\t")");
    CHECK(hull::json::quote(std::string("\x01\x1f\0", 3)) == R"("\u0001\u001f\u0000")");
    CHECK(hull::json::quote("\xc3\xa9") == "\"\xc3\xa9\"");
}

TEST_CASE("json: errors carry line and column", "[json]") {
    CHECK(parseErr("{\n  \"a\": 1,\n  \"b\"   1\n}") == "line 3, column 9: unexpected '1', expected ':' after object key");
    CHECK(parseErr("[1, 2,]") == "line 1, column 7: unexpected ']', expected a value");
    CHECK(parseErr("") == "line 1, column 1: unexpected end of input, expected a value");
    CHECK(parseErr("{\"a\":1") == "line 1, column 7: unexpected end of input, expected ',' or '}' in object");
    CHECK(parseErr("{a:1}") == "line 1, column 2: unexpected 'a', expected a string as object key");
    CHECK(parseErr("[1 2]") == "line 1, column 4: unexpected '2', expected ',' or ']' in array");
    CHECK(parseErr("tru") == "line 1, column 1: invalid literal, expected 'true'");
    CHECK(parseErr("\"abc") == "line 1, column 5: unterminated string");
    CHECK(parseErr("\"a\tb\"") == "line 1, column 3: control character byte 0x09 in string (must be escaped)");
    CHECK(parseErr(R"("\x")") == "line 1, column 2: invalid escape '\\x'");
    CHECK(parseErr(R"("\u12g4")") == "line 1, column 6: invalid hex digit 'g' in \\u escape");
    CHECK(parseErr(R"("\ud83d")") == "line 1, column 2: high surrogate not followed by a low surrogate");
    CHECK(parseErr(R"("\ud83d\u0041")") == "line 1, column 8: high surrogate not followed by a low surrogate");
    CHECK(parseErr(R"("\ude00")") == "line 1, column 2: lone low surrogate in \\u escape");
    CHECK(parseErr("\"\xff\"") == "line 1, column 2: invalid UTF-8 in string");
    CHECK(parseErr("\"\xc0\xaf\"") == "line 1, column 2: invalid UTF-8 in string");  // overlong '/'
    CHECK(parseErr("012") == "line 1, column 1: leading zeros are not allowed in numbers");
    CHECK(parseErr("-") == "line 1, column 2: unexpected end of input, expected a digit");
    CHECK(parseErr("1.") == "line 1, column 3: unexpected end of input, expected a digit after '.'");
    CHECK(parseErr("1e+") == "line 1, column 4: unexpected end of input, expected a digit in exponent");
    CHECK(parseErr("+1") == "line 1, column 1: unexpected '+', expected a value");
    CHECK(parseErr("1e999") == "line 1, column 1: number out of range");
    CHECK(parseErr("NaN") == "line 1, column 1: unexpected 'N', expected a value");
    // Columns count characters, not bytes.
    CHECK(parseErr("[\"\xc3\xa9\xc3\xa9\" x]") == "line 1, column 7: unexpected 'x', expected ',' or ']' in array");
}

TEST_CASE("json: trailing garbage is rejected", "[json]") {
    CHECK(parseErr("{} x") == "line 1, column 4: unexpected 'x' after the JSON value");
    CHECK(parseErr("1 2") == "line 1, column 3: unexpected '2' after the JSON value");
    CHECK(parseErr("[]\n]") == "line 2, column 1: unexpected ']' after the JSON value");
    CHECK(parseErr(std::string("null\0", 5)) == "line 1, column 5: unexpected byte 0x00 after the JSON value");
}

TEST_CASE("json: nesting is limited to 512 levels", "[json]") {
    auto nested = [](int n) { return std::string(size_t(n), '[') + std::string(size_t(n), ']'); };
    Value ok = parseOk(nested(512));
    const Value* p = &ok;
    int depth = 0;
    while (p->isArray() && !p->asArray().empty()) p = &p->asArray()[0], ++depth;
    CHECK(depth == 511);
    CHECK(parseErr(nested(513)) == "line 1, column 513: nesting deeper than 512 levels");
    std::string objs;
    for (int i = 0; i < 600; ++i) objs += "{\"a\":";
    CHECK(parseErr(objs).find("nesting deeper than 512 levels") != std::string::npos);
    // Far too deep input must fail cleanly, not blow the stack.
    CHECK(parseErr(std::string(100000, '[')).find("nesting deeper") != std::string::npos);
}

TEST_CASE("json: bytes that are not UTF-8 are written as U+FFFD, so every document written parses back", "[json]") {
    using hull::json::Value;
    Value v = Value::object();
    v.set("s", std::string("ok \xe9 then \xc3\xa9 and \xed\xa0\x80 end"));
    const std::string text = v.dump();
    CHECK(text == "{\"s\":\"ok \xef\xbf\xbd then \xc3\xa9 and \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end\"}");
    auto back = Value::parse(text);
    REQUIRE(back);
    CHECK(hull::json::firstInvalidUtf8(text) == std::string::npos);
    CHECK(hull::json::firstInvalidUtf8("ab\xe9") == 2);
}
