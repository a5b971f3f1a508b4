// Placement constraints and spread keys: parsing and matching.
#include <catch2/catch.hpp>

#include "orchestrator/core/constraints.hpp"

using namespace hull::orchestrator::core;

namespace {

Constraint parsed(const std::string& text) {
    auto c = parseConstraint(text);
    INFO(text << ": " << (c ? "" : c.error().message()));
    REQUIRE(c);
    return *c;
}

}  // namespace

TEST_CASE("constraints parse node.name and node.labels.KEY with == and !=", "[scheduler]") {
    Constraint c = parsed("node.name == n1");
    CHECK(c.attribute == Constraint::Attribute::Name);
    CHECK(c.op == Constraint::Op::Equal);
    CHECK(c.value == "n1");
    CHECK(c.text() == "node.name == n1");

    c = parsed("node.labels.zone!=eu-west/1a");
    CHECK(c.attribute == Constraint::Attribute::Label);
    CHECK(c.key == "zone");
    CHECK(c.op == Constraint::Op::NotEqual);
    CHECK(c.value == "eu-west/1a");
    CHECK(c.text() == "node.labels.zone != eu-west/1a");

    // Whitespace is optional, and may be tabs or more than one.
    CHECK(parsed("  node.labels.ssd\t==  true ") == parsed("node.labels.ssd==true"));
    // A quoted value holds what a bare one cannot; the text quotes it back.
    c = parsed("node.labels.rack == \"row 3\"");
    CHECK(c.value == "row 3");
    CHECK(c.text() == "node.labels.rack == \"row 3\"");
    CHECK(parsed("node.labels.k.with.dots == \"\"").value.empty());
    CHECK(parsed("node.labels.k.with.dots == \"\"").key == "k.with.dots");
    // Round trip through the canonical text.
    for (const char* t : {"node.name != n3", "node.labels.zone == a", "node.labels.x == \"a b\""})
        CHECK(parsed(parsed(t).text()) == parsed(t));
}

TEST_CASE("bad constraints name the text and what was expected", "[scheduler]") {
    struct Case {
        const char* text;
        const char* error;
    };
    const Case cases[] = {
        {"node.zone == a",
         "constraint \"node.zone == a\": unknown attribute \"node.zone\" (expected node.name or node.labels.KEY)"},
        {"node.name = a", "constraint \"node.name = a\": expected == or !="},
        {"node.name", "constraint \"node.name\": expected == or !="},
        {"node.name < a", "constraint \"node.name < a\": expected == or !="},
        {"node.labels. == a", "constraint \"node.labels. == a\": unknown attribute \"node.labels.\" (expected "
                              "node.name or node.labels.KEY)"},
        {"engine.labels.x == a", "constraint \"engine.labels.x == a\": unknown attribute \"engine.labels.x\" "
                                 "(expected node.name or node.labels.KEY)"},
        {"== a", "constraint \"== a\": expected an attribute (node.name or node.labels.KEY)"},
        {"", "constraint \"\": expected ATTRIBUTE == VALUE or ATTRIBUTE != VALUE"},
        {"node.name ==", "constraint \"node.name ==\": expected a value after == ([A-Za-z0-9._/-]+ or \"...\")"},
        {"node.name === a", "constraint \"node.name === a\": expected a value after == ([A-Za-z0-9._/-]+ or \"...\")"},
        {"node.name == a b", "constraint \"node.name == a b\": unexpected \"b\" after the value"},
        {"node.name == a,b", "constraint \"node.name == a,b\": unexpected \",b\" after the value"},
        {"node.name == \"a", "constraint \"node.name == \"a\": unterminated quoted value"},
    };
    for (const Case& c : cases) {
        auto r = parseConstraint(c.text);
        INFO(c.text);
        REQUIRE_FALSE(r);
        CHECK(r.error().message() == c.error);
    }
}

TEST_CASE("constraints match names and labels, a missing label equals nothing", "[scheduler]") {
    NodeInfo n{"n1", {{"zone", "a"}, {"ssd", "true"}}};
    CHECK(matches(parsed("node.name == n1"), n));
    CHECK_FALSE(matches(parsed("node.name != n1"), n));
    CHECK_FALSE(matches(parsed("node.name == n2"), n));
    CHECK(matches(parsed("node.name != n3"), n));
    CHECK(matches(parsed("node.labels.zone == a"), n));
    CHECK_FALSE(matches(parsed("node.labels.zone == b"), n));
    CHECK(matches(parsed("node.labels.zone != b"), n));
    CHECK_FALSE(matches(parsed("node.labels.ssd != true"), n));
    // A label the node lacks: == never matches (not even the empty value), != always does.
    CHECK_FALSE(matches(parsed("node.labels.gpu == yes"), n));
    CHECK_FALSE(matches(parsed("node.labels.gpu == \"\""), n));
    CHECK(matches(parsed("node.labels.gpu != yes"), n));
    // Labels are not names, nor names labels.
    CHECK_FALSE(matches(parsed("node.labels.name == n1"), n));
}

TEST_CASE("spread keys: node, node.name or node.labels.KEY", "[scheduler]") {
    for (const char* t : {"", "node", "node.name", "  node  "}) {
        auto k = parseSpreadKey(t);
        INFO(t);
        REQUIRE(k);
        CHECK(k->empty());
    }
    auto k = parseSpreadKey("node.labels.zone");
    REQUIRE(k);
    CHECK(*k == "zone");
    for (const char* t : {"zone", "node.labels.", "node.labels.a b", "node.zone", "labels.zone"}) {
        auto bad = parseSpreadKey(t);
        INFO(t);
        REQUIRE_FALSE(bad);
        CHECK(bad.error().message() ==
              "spread \"" + std::string(t) + "\": expected node, node.name or node.labels.KEY");
    }
}
