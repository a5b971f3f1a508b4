#include "orchestrator/state/store.hpp"

#include <algorithm>
#include <string_view>

namespace hull::state {

std::string prefixEnd(const std::string& prefix) {
    std::string end = prefix;
    while (!end.empty()) {
        auto& last = reinterpret_cast<unsigned char&>(end.back());
        if (last < 0xff) {
            ++last;
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');
}

bool inRange(const std::string& key, const std::string& from, const std::string& rangeEnd) {
    if (rangeEnd.empty()) return key == from;
    if (key < from) return false;
    return rangeEnd == std::string(1, '\0') || key < rangeEnd;
}

namespace {
template <class T>
bool holds(Compare::Op op, const T& have, const T& want) {
    switch (op) {
        case Compare::Op::Equal: return have == want;
        case Compare::Op::NotEqual: return have != want;
        case Compare::Op::Less: return have < want;
        case Compare::Op::Greater: return have > want;
    }
    return false;
}
}  // namespace

bool compareMatches(const Compare& c, const KeyValue* kv) {
    // etcd compares a missing key as the zero KeyValue, except for values: there
    // "missing" and "" cannot be told apart on the wire, so etcd fails them all.
    static const KeyValue kMissing;
    if (!kv) {
        if (c.target == Compare::Target::Value) return false;
        kv = &kMissing;
    }
    switch (c.target) {
        case Compare::Target::Version: return holds(c.op, kv->version, c.number);
        case Compare::Target::CreateRevision: return holds(c.op, kv->createRevision, c.number);
        case Compare::Target::ModRevision: return holds(c.op, kv->modRevision, c.number);
        case Compare::Target::Lease: return holds(c.op, kv->lease, c.number);
        case Compare::Target::Value: return holds(c.op, kv->value, c.value);  // std::string: bytewise
    }
    return false;
}

Result<void> validateOps(const std::vector<Op>& ops) {
    // etcd's checkIntervals: a txn may not put one key twice, nor put a key that
    // one of its deletes covers (whichever comes first), since the outcome would
    // hang on the order of ops that share one revision. Overlapping deletes are
    // fine. The store's history relies on this too: one row per key and revision.
    // Sorted views, not a set: the master puts 100,000 keys in one txn.
    std::vector<std::string_view> puts;
    for (const auto& op : ops) {
        if (op.key.empty()) return failInvalid("state: txn: key is not provided");
        if (op.kind == Op::Kind::Range && op.limit < 0) return failInvalid("state: txn: negative limit");
        if (op.kind == Op::Kind::Put) puts.emplace_back(op.key);
    }
    std::sort(puts.begin(), puts.end());
    if (auto dup = std::adjacent_find(puts.begin(), puts.end()); dup != puts.end())
        return failInvalid("state: txn: duplicate key given in txn request: " + std::string(*dup));
    for (const auto& op : ops) {
        if (op.kind != Op::Kind::Delete) continue;
        auto it = std::lower_bound(puts.begin(), puts.end(), std::string_view(op.key));
        if (it != puts.end() && inRange(std::string(*it), op.key, op.rangeEnd))
            return failInvalid("state: txn: duplicate key given in txn request: " + std::string(*it) +
                               " is put and deleted");
    }
    return {};
}

}  // namespace hull::state
