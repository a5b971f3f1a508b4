#pragma once
// Placement constraints and the spread key, in Swarm's words:
//
//   node.name == n1            node.labels.zone == a
//   node.name != n3            node.labels.ssd != "true"
//
// Only == and !=, and only the attributes node.name and node.labels.KEY. Values
// are [A-Za-z0-9._/-]+ or a double-quoted string ("..." holds anything but a
// double quote). Whitespace around the operator is optional.
#include <string>

#include "orchestrator/core/node_info.hpp"
#include "sys/error.hpp"

namespace hull::orchestrator::core {

struct Constraint {
    enum class Attribute { Name, Label } attribute = Attribute::Name;
    std::string key;  // Attribute::Label: the label's key
    enum class Op { Equal, NotEqual } op = Op::Equal;
    std::string value;
    bool operator==(const Constraint&) const = default;

    /// Canonical text: `node.labels.zone == a` (the value quoted when it needs it).
    std::string text() const;
};

/// Errors name the text and what was expected:
/// `constraint "node.zone == a": unknown attribute "node.zone" (expected node.name or node.labels.KEY)`.
[[nodiscard]] Result<Constraint> parseConstraint(const std::string& text);

/// Whether NODE satisfies C. A label the node lacks equals nothing: `==` on it
/// does not match and `!=` on it does.
bool matches(const Constraint& c, const NodeInfo& node);

/// The spread key of a service: "" for `node` (also the empty text and
/// `node.name`: every node its own domain), or KEY for `node.labels.KEY`.
[[nodiscard]] Result<std::string> parseSpreadKey(const std::string& text);

}  // namespace hull::orchestrator::core
