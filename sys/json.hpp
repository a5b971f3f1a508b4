#pragma once
// A small JSON DOM: parse with line/column errors, build, and write.
// Objects keep insertion order (state files and `spec` output stay readable),
// and numbers keep 64-bit integers exact (cgroup limits overflow a double).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "sys/error.hpp"

namespace hull::json {

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;

enum class Type { Null, Bool, Number, String, Array, Object };

/// Name of a type as used in error messages: "null", "a boolean", "a number",
/// "a string", "an array", "an object".
const char* describe(Type t);

class Value {
public:
    Value() = default;                       // null
    Value(std::nullptr_t) {}
    Value(bool b) : v_(b) {}
    Value(int i) : v_(Number::ofInt(i)) {}
    Value(int64_t i) : v_(Number::ofInt(i)) {}
    Value(uint32_t u) : v_(Number::ofUint(u)) {}
    Value(uint64_t u) : v_(Number::ofUint(u)) {}
    Value(double d) : v_(Number::ofDouble(d)) {}
    Value(const char* s) : v_(std::string(s)) {}
    Value(std::string s) : v_(std::move(s)) {}
    Value(std::string_view s) : v_(std::string(s)) {}
    Value(Array a) : v_(std::make_shared<Array>(std::move(a))) {}
    Value(Object o) : v_(std::make_shared<Object>(std::move(o))) {}

    static Value array() { return Value(Array{}); }
    static Value object() { return Value(Object{}); }

    /// Parse a whole document. Errors read "line 3, column 14: expected ':'".
    [[nodiscard]] static Result<Value> parse(std::string_view text);
    /// Compact (pretty=false) or indented with two spaces.
    std::string dump(bool pretty = false) const;

    Type type() const;
    bool isNull() const { return type() == Type::Null; }
    bool isBool() const { return type() == Type::Bool; }
    bool isNumber() const { return type() == Type::Number; }
    bool isString() const { return type() == Type::String; }
    bool isArray() const { return type() == Type::Array; }
    bool isObject() const { return type() == Type::Object; }

    // Unchecked accessors: the caller has checked the type (asserts otherwise).
    bool asBool() const;
    const std::string& asString() const;
    const Array& asArray() const;
    const Object& asObject() const;
    double asDouble() const;

    /// Integer views of a number: nullopt-like failure when the number is not an
    /// integer or does not fit. "1.0" is not an integer; "-1" is no uint64.
    bool toInt64(int64_t& out) const;
    bool toUint64(uint64_t& out) const;

    /// Object lookup; nullptr when absent or when this is not an object.
    const Value* find(std::string_view key) const;

    // Builders (copy-on-write is not needed: values are built, then written).
    Value& set(std::string key, Value v);     // object: replace or append
    Value& push(Value v);                     // array: append

private:
    struct Number {
        enum Kind { Int, Uint, Double } kind = Int;
        int64_t i = 0;
        uint64_t u = 0;
        double d = 0;
        static Number ofInt(int64_t v) { Number n; n.kind = Int; n.i = v; return n; }
        static Number ofUint(uint64_t v) { Number n; n.kind = Uint; n.u = v; return n; }
        static Number ofDouble(double v) { Number n; n.kind = Double; n.d = v; return n; }
    };
    friend class Parser;
    std::variant<std::monostate, bool, Number, std::string, std::shared_ptr<Array>, std::shared_ptr<Object>> v_;
};

/// Escape a string as a JSON string literal, quotes included. Bytes that are not
/// well-formed UTF-8 are written as U+FFFD: what is written always parses back.
std::string quote(std::string_view s);
/// The offset of the first byte of S that is not well-formed UTF-8 (RFC 3629), or npos.
size_t firstInvalidUtf8(std::string_view s);

/// OBJ's member KEY when it is a string; DEF when it is absent, null or not a string.
std::string stringOf(const Value& obj, std::string_view key, const std::string& def = "");
/// The string elements of ARRAY (others skipped); none when ARRAY is null or not an array.
std::vector<std::string> stringsOf(const Value* array);
/// ITEMS as an array of strings.
Value stringArray(const std::vector<std::string>& items);

}  // namespace hull::json
