// RFC 8259 JSON: a recursive-descent parser with line/column errors and a writer.
#include "sys/json.hpp"

#include <cassert>
#include <charconv>
#include <cmath>
#include <limits>

namespace hull::json {

const char* describe(Type t) {
    switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
    }
    return "a value";
}

// ---------------------------------------------------------------------------
// Parser

namespace {
constexpr int kMaxDepth = 512;

std::string showChar(char c) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
    static const char* hex = "0123456789abcdef";
    return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
}

void appendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    } else {
        out += char(0xf0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3f));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    }
}

// Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 when it is malformed.
size_t utf8Length(std::string_view s) {
    auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xc0) == 0x80; };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (!cont(1) || !cont(2)) return 0;
        if (c == 0xe0 && b(1) < 0xa0) return 0;   // overlong
        if (c == 0xed && b(1) >= 0xa0) return 0;  // UTF-16 surrogate
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        if (c == 0xf0 && b(1) < 0x90) return 0;   // overlong
        if (c == 0xf4 && b(1) >= 0x90) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}
}  // namespace

class Parser {
public:
    explicit Parser(std::string_view text) : s_(text) {}

    Result<Value> document() {
        skipWs();
        Value v = TRY(value(0));
        skipWs();
        if (pos_ < s_.size()) return errorAt(pos_, "unexpected " + showChar(s_[pos_]) + " after the JSON value");
        return v;
    }

private:
    std::string_view s_;
    size_t pos_ = 0;

    tl::unexpected<Error> errorAt(size_t at, const std::string& what) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < s_.size(); ++i) {
            if (s_[i] == '\n') {
                ++line;
                col = 1;
            } else if ((static_cast<unsigned char>(s_[i]) & 0xc0) != 0x80) {
                ++col;  // count characters, not UTF-8 continuation bytes
            }
        }
        return failInvalid("line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what);
    }
    tl::unexpected<Error> unexpected(const std::string& expected) const {
        if (pos_ >= s_.size()) return errorAt(pos_, "unexpected end of input, " + expected);
        return errorAt(pos_, "unexpected " + showChar(s_[pos_]) + ", " + expected);
    }

    bool atEnd() const { return pos_ >= s_.size(); }
    char peek() const { return atEnd() ? '\0' : s_[pos_]; }

    void skipWs() {
        while (!atEnd() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
    }

    Result<Value> value(int depth) {
        if (atEnd()) return unexpected("expected a value");
        switch (s_[pos_]) {
        case '{': return object(depth + 1);
        case '[': return array(depth + 1);
        case '"': return Value(TRY(string()));
        case 't': return literal("true", Value(true));
        case 'f': return literal("false", Value(false));
        case 'n': return literal("null", Value());
        default:
            if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) return number();
            return unexpected("expected a value");
        }
    }

    Result<Value> literal(std::string_view word, Value v) {
        if (s_.substr(pos_, word.size()) != word) return errorAt(pos_, "invalid literal, expected '" + std::string(word) + "'");
        pos_ += word.size();
        return v;
    }

    Result<Value> object(int depth) {
        if (depth > kMaxDepth) return errorAt(pos_, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
        ++pos_;  // '{'
        Object obj;
        skipWs();
        if (peek() == '}') {
            ++pos_;
            return Value(std::move(obj));
        }
        for (;;) {
            skipWs();
            if (peek() != '"') return unexpected("expected a string as object key");
            std::string key = TRY(string());
            skipWs();
            if (peek() != ':') return unexpected("expected ':' after object key");
            ++pos_;
            skipWs();
            Value v = TRY(value(depth));
            obj.emplace_back(std::move(key), std::move(v));
            skipWs();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == '}') {
                ++pos_;
                return Value(std::move(obj));
            }
            return unexpected("expected ',' or '}' in object");
        }
    }

    Result<Value> array(int depth) {
        if (depth > kMaxDepth) return errorAt(pos_, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
        ++pos_;  // '['
        Array arr;
        skipWs();
        if (peek() == ']') {
            ++pos_;
            return Value(std::move(arr));
        }
        for (;;) {
            skipWs();
            arr.push_back(TRY(value(depth)));
            skipWs();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == ']') {
                ++pos_;
                return Value(std::move(arr));
            }
            return unexpected("expected ',' or ']' in array");
        }
    }

    Result<uint32_t> hex4() {
        if (pos_ + 4 > s_.size()) return errorAt(pos_, "truncated \\u escape");
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = s_[pos_ + i];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
            else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
            else return errorAt(pos_ + i, "invalid hex digit " + showChar(c) + " in \\u escape");
        }
        pos_ += 4;
        return v;
    }

    Result<std::string> string() {
        ++pos_;  // opening quote
        std::string out;
        for (;;) {
            if (atEnd()) return errorAt(pos_, "unterminated string");
            char c = s_[pos_];
            auto u = static_cast<unsigned char>(c);
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (u < 0x20) return errorAt(pos_, "control character " + showChar(c) + " in string (must be escaped)");
            if (c != '\\') {
                size_t n = utf8Length(s_.substr(pos_));
                if (n == 0) return errorAt(pos_, "invalid UTF-8 in string");
                out.append(s_.substr(pos_, n));
                pos_ += n;
                continue;
            }
            size_t escAt = pos_;
            ++pos_;
            if (atEnd()) return errorAt(pos_, "unterminated string");
            char e = s_[pos_++];
            switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                uint32_t cp = TRY(hex4());
                if (cp >= 0xdc00 && cp <= 0xdfff) return errorAt(escAt, "lone low surrogate in \\u escape");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (s_.substr(pos_, 2) != "\\u")
                        return errorAt(escAt, "high surrogate not followed by a low surrogate");
                    size_t lowAt = pos_;
                    pos_ += 2;
                    uint32_t lo = TRY(hex4());
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return errorAt(lowAt, "high surrogate not followed by a low surrogate");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                appendUtf8(out, cp);
                break;
            }
            default: return errorAt(escAt, "invalid escape '\\" + std::string(1, e) + "'");
            }
        }
    }

    Result<Value> number() {
        size_t start = pos_;
        auto digits = [&] {
            size_t n = 0;
            while (!atEnd() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_, ++n;
            return n;
        };
        bool neg = peek() == '-';
        if (neg) ++pos_;
        if (peek() == '0') {
            ++pos_;
            if (peek() >= '0' && peek() <= '9') return errorAt(pos_ - 1, "leading zeros are not allowed in numbers");
        } else if (digits() == 0) {
            return unexpected("expected a digit");
        }
        bool integral = true;
        if (peek() == '.') {
            ++pos_;
            integral = false;
            if (digits() == 0) return unexpected("expected a digit after '.'");
        }
        if (peek() == 'e' || peek() == 'E') {
            ++pos_;
            integral = false;
            if (peek() == '+' || peek() == '-') ++pos_;
            if (digits() == 0) return unexpected("expected a digit in exponent");
        }
        const char* b = s_.data() + start;
        const char* e = s_.data() + pos_;
        if (integral) {
            // Exact when it fits: int64 for negatives, int64 then uint64 otherwise.
            int64_t i = 0;
            if (auto r = std::from_chars(b, e, i); r.ec == std::errc() && r.ptr == e) return Value(i);
            uint64_t u = 0;
            if (!neg)
                if (auto r = std::from_chars(b, e, u); r.ec == std::errc() && r.ptr == e) return Value(u);
        }
        double d = 0;
        auto r = std::from_chars(b, e, d);
        if (r.ptr != e || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range))
            return errorAt(start, "invalid number");
        if (r.ec == std::errc::result_out_of_range || !std::isfinite(d)) return errorAt(start, "number out of range");
        return Value(d);
    }
};

Result<Value> Value::parse(std::string_view text) { return Parser(text).document(); }

// ---------------------------------------------------------------------------
// Access

Type Value::type() const {
    switch (v_.index()) {
    case 0: return Type::Null;
    case 1: return Type::Bool;
    case 2: return Type::Number;
    case 3: return Type::String;
    case 4: return Type::Array;
    default: return Type::Object;
    }
}

bool Value::asBool() const {
    assert(isBool());
    return std::get<bool>(v_);
}
const std::string& Value::asString() const {
    assert(isString());
    return std::get<std::string>(v_);
}
const Array& Value::asArray() const {
    assert(isArray());
    return *std::get<std::shared_ptr<Array>>(v_);
}
const Object& Value::asObject() const {
    assert(isObject());
    return *std::get<std::shared_ptr<Object>>(v_);
}
double Value::asDouble() const {
    assert(isNumber());
    const Number& n = std::get<Number>(v_);
    switch (n.kind) {
    case Number::Int: return double(n.i);
    case Number::Uint: return double(n.u);
    case Number::Double: return n.d;
    }
    return 0;
}

bool Value::toInt64(int64_t& out) const {
    if (!isNumber()) return false;
    const Number& n = std::get<Number>(v_);
    if (n.kind == Number::Int) {
        out = n.i;
        return true;
    }
    if (n.kind == Number::Uint && n.u <= uint64_t(std::numeric_limits<int64_t>::max())) {
        out = int64_t(n.u);
        return true;
    }
    return false;
}

bool Value::toUint64(uint64_t& out) const {
    if (!isNumber()) return false;
    const Number& n = std::get<Number>(v_);
    if (n.kind == Number::Uint) {
        out = n.u;
        return true;
    }
    if (n.kind == Number::Int && n.i >= 0) {
        out = uint64_t(n.i);
        return true;
    }
    return false;
}

const Value* Value::find(std::string_view key) const {
    if (!isObject()) return nullptr;
    for (auto& [k, v] : asObject())
        if (k == key) return &v;
    return nullptr;
}

Value& Value::set(std::string key, Value v) {
    if (isNull()) v_ = std::make_shared<Object>();
    assert(isObject());
    auto& obj = *std::get<std::shared_ptr<Object>>(v_);
    for (auto& [k, old] : obj)
        if (k == key) {
            old = std::move(v);
            return *this;
        }
    obj.emplace_back(std::move(key), std::move(v));
    return *this;
}

Value& Value::push(Value v) {
    if (isNull()) v_ = std::make_shared<Array>();
    assert(isArray());
    std::get<std::shared_ptr<Array>>(v_)->push_back(std::move(v));
    return *this;
}

// ---------------------------------------------------------------------------
// Writer

size_t firstInvalidUtf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8Length(s.substr(i));
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

std::string quote(std::string_view s) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        auto u = static_cast<unsigned char>(c);
        if (u >= 0x80) {
            // Well-formed UTF-8 passes through as is; a byte that is not becomes U+FFFD, so
            // that what we write is always a document our parser (and any other) reads back.
            size_t n = utf8Length(s.substr(i));
            if (n == 0) {
                out += "\xef\xbf\xbd";
            } else {
                out.append(s.substr(i, n));
                i += n - 1;
            }
            continue;
        }
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (u < 0x20 || u == 0x7f) {
                out += "\\u00";
                out += hex[u >> 4];
                out += hex[u & 15];
            } else {
                out += c;
            }
        }
    }
    out += '"';
    return out;
}

namespace {
std::string formatDouble(double d) {
    if (!std::isfinite(d)) return "null";  // JSON has no NaN or infinity
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    std::string s(buf, r.ptr);
    // Keep the number a double when read back: "1" would come back as an integer.
    if (s.find_first_of(".eE") == std::string::npos) s += ".0";
    return s;
}
}  // namespace

namespace {
void dumpTo(const Value& v, std::string& out, bool pretty, int indent);

void newline(std::string& out, bool pretty, int indent) {
    if (!pretty) return;
    out += '\n';
    out.append(size_t(indent) * 2, ' ');
}

void dumpTo(const Value& v, std::string& out, bool pretty, int indent) {
    switch (v.type()) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += v.asBool() ? "true" : "false"; break;
    case Type::Number: {
        int64_t i;
        uint64_t u;
        if (v.toInt64(i)) out += std::to_string(i);
        else if (v.toUint64(u)) out += std::to_string(u);
        else out += formatDouble(v.asDouble());
        break;
    }
    case Type::String: out += quote(v.asString()); break;
    case Type::Array: {
        const Array& a = v.asArray();
        if (a.empty()) {
            out += "[]";
            break;
        }
        out += '[';
        for (size_t i = 0; i < a.size(); ++i) {
            if (i) out += ',';
            newline(out, pretty, indent + 1);
            dumpTo(a[i], out, pretty, indent + 1);
        }
        newline(out, pretty, indent);
        out += ']';
        break;
    }
    case Type::Object: {
        const Object& o = v.asObject();
        if (o.empty()) {
            out += "{}";
            break;
        }
        out += '{';
        for (size_t i = 0; i < o.size(); ++i) {
            if (i) out += ',';
            newline(out, pretty, indent + 1);
            out += quote(o[i].first);
            out += pretty ? ": " : ":";
            dumpTo(o[i].second, out, pretty, indent + 1);
        }
        newline(out, pretty, indent);
        out += '}';
        break;
    }
    }
}
}  // namespace

std::string Value::dump(bool pretty) const {
    std::string out;
    dumpTo(*this, out, pretty, 0);
    return out;
}

std::string stringOf(const Value& obj, std::string_view key, const std::string& def) {
    const Value* f = obj.find(key);
    return f && f->isString() ? f->asString() : def;
}

std::vector<std::string> stringsOf(const Value* array) {
    std::vector<std::string> out;
    if (array && array->isArray())
        for (const auto& x : array->asArray())
            if (x.isString()) out.push_back(x.asString());
    return out;
}

Value stringArray(const std::vector<std::string>& items) {
    Value a = Value::array();
    for (const auto& s : items) a.push(s);
    return a;
}

}  // namespace hull::json
