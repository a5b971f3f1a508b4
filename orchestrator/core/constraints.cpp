#include "orchestrator/core/constraints.hpp"

#include <string_view>

namespace hull::orchestrator::core {

namespace {

constexpr std::string_view kLabelPrefix = "node.labels.";

bool isWordChar(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '/' || c == '-';
}

bool isWord(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!isWordChar(c)) return false;
    return true;
}

bool isSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
    while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
    return s;
}

// A left-to-right reader over the constraint's text.
struct Reader {
    std::string_view rest;
    void skipSpace() {
        while (!rest.empty() && isSpace(rest.front())) rest.remove_prefix(1);
    }
    std::string_view word() {
        size_t n = 0;
        while (n < rest.size() && isWordChar(rest[n])) ++n;
        std::string_view w = rest.substr(0, n);
        rest.remove_prefix(n);
        return w;
    }
};

}  // namespace

std::string Constraint::text() const {
    std::string s = attribute == Attribute::Name ? "node.name" : std::string(kLabelPrefix) + key;
    s += op == Op::Equal ? " == " : " != ";
    s += isWord(value) ? value : "\"" + value + "\"";
    return s;
}

Result<Constraint> parseConstraint(const std::string& text) {
    auto bad = [&](const std::string& why) { return failInvalid("constraint \"" + text + "\": " + why); };
    Reader r{trim(text)};
    if (r.rest.empty()) return bad("expected ATTRIBUTE == VALUE or ATTRIBUTE != VALUE");

    Constraint c;
    std::string_view attribute = r.word();
    if (attribute.empty()) return bad("expected an attribute (node.name or node.labels.KEY)");
    if (attribute == "node.name") {
        c.attribute = Constraint::Attribute::Name;
    } else if (attribute.starts_with(kLabelPrefix) && attribute.size() > kLabelPrefix.size()) {
        c.attribute = Constraint::Attribute::Label;
        c.key = attribute.substr(kLabelPrefix.size());
    } else {
        return bad("unknown attribute \"" + std::string(attribute) + "\" (expected node.name or node.labels.KEY)");
    }

    r.skipSpace();
    if (r.rest.starts_with("==")) {
        c.op = Constraint::Op::Equal;
    } else if (r.rest.starts_with("!=")) {
        c.op = Constraint::Op::NotEqual;
    } else {
        return bad("expected == or !=");
    }
    const std::string op(r.rest.substr(0, 2));
    r.rest.remove_prefix(2);

    r.skipSpace();
    if (r.rest.starts_with('"')) {
        size_t close = r.rest.find('"', 1);
        if (close == std::string_view::npos) return bad("unterminated quoted value");
        c.value = r.rest.substr(1, close - 1);
        r.rest.remove_prefix(close + 1);
    } else {
        c.value = r.word();
        if (c.value.empty()) return bad("expected a value after " + op + " ([A-Za-z0-9._/-]+ or \"...\")");
    }
    r.skipSpace();
    if (!r.rest.empty()) return bad("unexpected \"" + std::string(r.rest) + "\" after the value");
    return c;
}

bool matches(const Constraint& c, const NodeInfo& node) {
    bool equal;
    if (c.attribute == Constraint::Attribute::Name) {
        equal = node.name == c.value;
    } else {
        auto it = node.labels.find(c.key);
        equal = it != node.labels.end() && it->second == c.value;
    }
    return c.op == Constraint::Op::Equal ? equal : !equal;
}

Result<std::string> parseSpreadKey(const std::string& text) {
    std::string_view t = trim(text);
    if (t.empty() || t == "node" || t == "node.name") return std::string();
    if (t.starts_with(kLabelPrefix) && isWord(t.substr(kLabelPrefix.size())))
        return std::string(t.substr(kLabelPrefix.size()));
    return failInvalid("spread \"" + text + "\": expected node, node.name or node.labels.KEY");
}

}  // namespace hull::orchestrator::core
