#include "orchestrator/model/service.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string_view>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "runtime/net.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/size.hpp"

namespace hull::orchestrator {

const char* restartName(Service::Restart r) {
    switch (r) {
    case Service::Restart::Always: return "always";
    case Service::Restart::OnFailure: return "on-failure";
    case Service::Restart::Never: return "never";
    }
    return "always";
}

const char* probeCheckName(Probe::Kind k) {
    switch (k) {
    case Probe::Kind::Exec: return "exec";
    case Probe::Kind::Http: return "http";
    case Probe::Kind::Tcp: return "tcp";
    }
    return "exec";
}

namespace {

// The words of the enums a service file names, in one place each: the
// *Name() functions below. Both readers (YAML, canonical JSON) look words up
// here, and errors list them.
constexpr UpdateConfig::Order kOrders[] = {UpdateConfig::Order::StartFirst, UpdateConfig::Order::StopFirst};
constexpr UpdateConfig::FailureAction kFailureActions[] = {
    UpdateConfig::FailureAction::Rollback, UpdateConfig::FailureAction::Pause, UpdateConfig::FailureAction::Continue};
constexpr Service::PublishMode kPublishModes[] = {Service::PublishMode::Ingress, Service::PublishMode::Local,
                                                  Service::PublishMode::Host};

template <class E, size_t N>
std::optional<E> byName(std::string_view word, const E (&all)[N], const char* (*name)(E)) {
    for (E e : all)
        if (word == name(e)) return e;
    return std::nullopt;
}

/// "\"WORD\" is not one of a, b, c".
template <class E, size_t N>
std::string notOneOf(const std::string& word, const E (&all)[N], const char* (*name)(E)) {
    std::string out = "\"" + word + "\" is not one of ";
    for (size_t i = 0; i < N; ++i) out += std::string(i ? ", " : "") + name(all[i]);
    return out;
}

constexpr int kMaxReplicas = 1000;
// Durations above this (about 31 years) are typos, and keeping them small keeps
// every arithmetic on them (deadlines, backoff products) far from overflow.
constexpr double kMaxDurationMs = 1e12;

std::string join(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

size_t editDistance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            size_t sub = diag + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, sub});
            diag = up;
        }
    }
    return row[b.size()];
}

bool validName(const std::string& s) {
    if (s.empty() || s.size() > 63) return false;
    auto ok = [](char c, bool first) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (!first && c == '-');
    };
    for (size_t i = 0; i < s.size(); ++i)
        if (!ok(s[i], i == 0)) return false;
    return true;
}

/// Split like sh splits words: blanks separate, '…' is literal, "…" knows only
/// \" \\ \$ \` and \newline, a bare backslash quotes the next character. No
/// expansion of any kind ($VAR, globs, ~) and no comments: the result is argv.
Result<std::vector<std::string>> shellWords(const std::string& s) {
    std::vector<std::string> words;
    std::string cur;
    bool inWord = false;  // "" is a word, so emptiness of cur does not tell
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (inWord) words.push_back(std::move(cur));
            cur.clear();
            inWord = false;
        } else if (c == '\'') {
            size_t end = s.find('\'', i + 1);
            if (end == std::string::npos) return failInvalid("unterminated single quote");
            cur.append(s, i + 1, end - i - 1);
            inWord = true;
            i = end;
        } else if (c == '"') {
            size_t j = i + 1;
            for (;; ++j) {
                if (j >= s.size()) return failInvalid("unterminated double quote");
                if (s[j] == '"') break;
                if (s[j] == '\\' && j + 1 < s.size() && std::string_view("\"\\$`\n").find(s[j + 1]) != std::string_view::npos) {
                    if (s[j + 1] != '\n') cur += s[j + 1];
                    ++j;
                } else {
                    cur += s[j];
                }
            }
            inWord = true;
            i = j;
        } else if (c == '\\') {
            if (i + 1 >= s.size()) return failInvalid("trailing backslash");
            ++i;
            if (s[i] == '\n') continue;  // line continuation
            cur += s[i];
            inWord = true;
        } else {
            cur += c;
            inWord = true;
        }
    }
    if (inWord) words.push_back(std::move(cur));
    return words;
}

const char* describe(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
    }
}

// A plain (unquoted, untagged) scalar: only these may be numbers, so that
// "replicas: \"3\"" (or "3" in JSON) is refused like any other string.
bool isPlain(const YAML::Node& n) { return n.IsScalar() && n.Tag() == "?"; }

class Parser {
public:
    explicit Parser(std::string source) : source_(std::move(source)) {}

    Result<Service> service(const YAML::Node& root) {
        Service s;
        if (!root.IsMap()) return fail(err(root, "", std::string("a service file must be a mapping, not ") + describe(root)));
        TRY(checkKeys(root, "", {"name", "image", "command", "env", "replicas", "resources", "ports", "volumes",
                                 "restart", "backoff", "probes", "maxAge", "stopGracePeriod", "placement", "update",
                                 "failover", "publishMode", "networks", "autoscale"}));
        auto name = TRY(required(root, "", "name"));
        s.name = TRY(string(name, "name"));
        if (!validName(s.name))
            return fail(err(name, "name", "\"" + s.name + "\" is not a valid name ([a-z0-9][a-z0-9-]{0,62})"));
        auto image = TRY(required(root, "", "image"));
        s.image = TRY(string(image, "image"));
        if (s.image.empty() || s.image.find_first_of(" \t\n") != std::string::npos)
            return fail(err(image, "image", "\"" + s.image + "\" is not an image reference"));
        if (auto n = root["command"]) s.command = TRY(argv(n, "command", false));
        if (auto n = root["env"]) s.env = TRY(env(n, "env"));
        if (auto n = root["replicas"]) s.replicas = int(TRY(integer(n, "replicas", 0, kMaxReplicas)));
        if (auto n = root["resources"]) TRY(resources(n, "resources", s));
        if (auto n = root["ports"]) {
            auto items = TRY(list(n, "ports"));
            for (const auto& item : items) {
                auto p = TRY(string(item, "ports"));
                if (auto m = netns::parsePortMapping(p); !m) return fail(err(item, "ports", m.error().message()));
                s.ports.push_back(p);
            }
        }
        if (auto n = root["volumes"]) {
            auto items = TRY(list(n, "volumes"));
            for (const auto& item : items) {
                auto v = TRY(string(item, "volumes"));
                auto parts = sys::split(v, ':', false);
                if (parts.size() < 2 || parts.size() > 3 || parts[0].size() < 2 || parts[0][0] != '/' ||
                    parts[1].size() < 2 || parts[1][0] != '/' ||
                    (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw"))
                    return fail(err(item, "volumes", "\"" + v + "\" is not /HOST:/CONTAINER[:ro|:rw]"));
                s.volumes.push_back(v);
            }
        }
        if (auto n = root["restart"]) {
            auto r = TRY(string(n, "restart"));
            if (r == "always") s.restart = Service::Restart::Always;
            else if (r == "on-failure") s.restart = Service::Restart::OnFailure;
            else if (r == "never") s.restart = Service::Restart::Never;
            else return fail(err(n, "restart", "\"" + r + "\" is not one of always, on-failure, never"));
        }
        if (auto n = root["backoff"]) s.backoff = TRY(backoff(n, "backoff"));
        if (auto n = root["probes"]) {
            TRY(checkKeys(n, "probes", {"liveness", "readiness", "startup"}));
            if (auto p = n["liveness"]) s.liveness = TRY(probe(p, "probes.liveness"));
            if (auto p = n["readiness"]) s.readiness = TRY(probe(p, "probes.readiness"));
            if (auto p = n["startup"]) s.startup = TRY(probe(p, "probes.startup"));
        }
        if (auto n = root["maxAge"]) {
            s.maxAge = TRY(duration(n, "maxAge"));
            if (s.maxAge->count() == 0) return fail(err(n, "maxAge", "must be more than 0 (omit it for never)"));
        }
        if (auto n = root["stopGracePeriod"]) s.stopGracePeriod = TRY(duration(n, "stopGracePeriod"));
        if (auto n = root["placement"]) {
            TRY(checkKeys(n, "placement", {"constraints", "spread", "strategy"}));
            if (auto c = n["constraints"])
                for (const auto& item : TRY(list(c, "placement.constraints")))
                    s.placement.constraints.push_back(TRY(string(item, "placement.constraints")));
            if (auto sp = n["spread"]) s.placement.spread = TRY(string(sp, "placement.spread"));
            if (auto st = n["strategy"]) {
                s.placement.strategy = TRY(string(st, "placement.strategy"));
                if (s.placement.strategy != "spread" && s.placement.strategy != "binpack")
                    return fail(err(st, "placement.strategy", "\"" + s.placement.strategy + "\" is not one of spread, binpack"));
            }
        }
        if (auto n = root["update"]) {
            TRY(checkKeys(n, "update", {"parallelism", "order", "delay", "monitor", "failureAction", "maxFailureRatio"}));
            auto& u = s.update;
            if (auto v = n["parallelism"]) u.parallelism = int(TRY(integer(v, "update.parallelism", 0, kMaxReplicas)));
            if (auto v = n["order"]) {
                auto o = TRY(string(v, "update.order"));
                auto order = byName(o, kOrders, orderName);
                if (!order) return fail(err(v, "update.order", notOneOf(o, kOrders, orderName)));
                u.order = *order;
            }
            if (auto v = n["delay"]) u.delay = TRY(duration(v, "update.delay"));
            if (auto v = n["monitor"]) u.monitor = TRY(duration(v, "update.monitor"));
            if (auto v = n["failureAction"]) {
                auto a = TRY(string(v, "update.failureAction"));
                auto action = byName(a, kFailureActions, failureActionName);
                if (!action) return fail(err(v, "update.failureAction", notOneOf(a, kFailureActions, failureActionName)));
                u.failureAction = *action;
            }
            if (auto v = n["maxFailureRatio"]) {
                u.maxFailureRatio = TRY(number(v, "update.maxFailureRatio", 0));
                if (u.maxFailureRatio > 1) return fail(err(v, "update.maxFailureRatio", "must be at most 1"));
            }
        }
        if (auto n = root["publishMode"]) {
            auto m = TRY(string(n, "publishMode"));
            auto mode = byName(m, kPublishModes, publishModeName);
            if (!mode) return fail(err(n, "publishMode", notOneOf(m, kPublishModes, publishModeName)));
            s.publishMode = *mode;
        }
        if (auto n = root["networks"]) {
            for (const auto& item : TRY(list(n, "networks"))) {
                auto net = TRY(string(item, "networks"));
                if (!validName(net))
                    return fail(err(item, "networks", "\"" + net + "\" is not a valid name ([a-z0-9][a-z0-9-]{0,62})"));
                if (std::find(s.networks.begin(), s.networks.end(), net) != s.networks.end())
                    return fail(err(item, "networks", "\"" + net + "\" is listed twice"));
                if (s.networks.size() == kMaxNetworks)
                    return fail(err(item, "networks", "at most " + std::to_string(kMaxNetworks) + " networks"));
                s.networks.push_back(net);
            }
        }
        if (auto n = root["failover"]) {
            TRY(checkKeys(n, "failover", {"after"}));
            if (auto v = n["after"]) s.failover.after = TRY(duration(v, "failover.after"));
        }
        if (auto n = root["autoscale"]) {
            TRY(checkKeys(n, "autoscale", {"min", "max", "cpu", "requestsPerSecond", "scaleUpAfter", "scaleDownAfter", "step"}));
            Autoscale a;
            auto min = TRY(required(n, "autoscale", "min"));
            a.min = int(TRY(integer(min, "autoscale.min", 0, kMaxReplicas)));
            if (a.min == 0) return fail(err(min, "autoscale.min", "scale to zero is not supported yet: at least 1"));
            auto max = TRY(required(n, "autoscale", "max"));
            a.max = int(TRY(integer(max, "autoscale.max", 1, kMaxReplicas)));
            if (a.max < a.min) return fail(err(max, "autoscale.max", "must be at least min (" + std::to_string(a.min) + ")"));
            if (auto v = n["cpu"]) {
                a.cpu = TRY(percentage(v, "autoscale.cpu"));
                if (s.limits.cpus <= 0 && s.requests.cpus <= 0)
                    return fail(err(v, "autoscale.cpu", "is a percentage of the replicas' CPU limit or request: set "
                                                        "resources.limits.cpus (or resources.requests.cpus)"));
            }
            if (auto v = n["requestsPerSecond"]) {
                a.requestsPerSecond = TRY(number(v, "autoscale.requestsPerSecond", 0));
                if (*a.requestsPerSecond <= 0) return fail(err(v, "autoscale.requestsPerSecond", "must be more than 0"));
                if (s.ports.empty())
                    return fail(err(v, "autoscale.requestsPerSecond", "counts connections to the service's published ports "
                                                                      "and its address: it needs ports"));
            }
            if (!a.cpu && !a.requestsPerSecond)
                return fail(err(n, "autoscale", "needs a target: cpu (\"60%\") or requestsPerSecond, or both"));
            if (auto v = n["scaleUpAfter"]) a.scaleUpAfter = TRY(duration(v, "autoscale.scaleUpAfter"));
            if (auto v = n["scaleDownAfter"]) a.scaleDownAfter = TRY(duration(v, "autoscale.scaleDownAfter"));
            if (auto v = n["step"]) a.step = int(TRY(integer(v, "autoscale.step", 0, kMaxReplicas)));
            // `replicas` is the starting point, within the bounds.
            if (!root["replicas"]) s.replicas = a.min;
            if (s.replicas < a.min || s.replicas > a.max)
                return fail(err(root["replicas"], "replicas", std::to_string(s.replicas) + " is outside autoscale's " +
                                                                  std::to_string(a.min) + ".." + std::to_string(a.max)));
            s.autoscale = a;
        }
        return s;
    }

private:
    std::string source_;

    // yaml-cpp marks an empty value ("image:") where the next token starts,
    // often the next line; its key's position is the one a reader looks for.
    std::vector<std::pair<YAML::Node, YAML::Mark>> nullValues_;

    Error err(const YAML::Node& n, const std::string& path, const std::string& msg) const {
        if (n.IsNull())
            for (const auto& [v, keyMark] : nullValues_)
                if (v.is(n)) return err(keyMark, path, msg);
        return err(n.Mark(), path, msg);
    }
    Error err(const YAML::Mark& m, const std::string& path, const std::string& msg) const {
        std::string where = source_;
        if (m.line >= 0) where += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
        return Error::invalid(where + ": " + (path.empty() ? msg : path + ": " + msg));
    }

    /// N must be a mapping of scalar keys, each in ALLOWED and each once.
    Result<void> checkKeys(const YAML::Node& n, const std::string& path, std::initializer_list<std::string_view> allowed) {
        if (!n.IsMap()) return fail(err(n, path, std::string("must be a mapping, not ") + describe(n)));
        std::set<std::string> seen;
        for (auto it = n.begin(); it != n.end(); ++it) {
            YAML::Node k = it->first;  // a copy: it->first is a temporary proxy
            if (!k.IsScalar()) return fail(err(k, path, std::string("keys must be strings, not ") + describe(k)));
            const std::string& key = k.Scalar();
            if (it->second.IsNull()) nullValues_.emplace_back(it->second, k.Mark());
            // yaml-cpp keeps both pairs of a repeated key and lookups see the
            // first, so a later correction in the file would be silently lost.
            if (!seen.insert(key).second) return fail(err(k, join(path, key), "duplicate field"));
            if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
            std::string msg = "unknown field";
            std::string_view best;
            size_t bestDist = 3;
            for (auto a : allowed) {
                size_t d = editDistance(key, a);
                if (d < bestDist && d <= std::max<size_t>(1, a.size() / 3)) best = a, bestDist = d;
            }
            if (!best.empty()) msg += " (did you mean " + std::string(best) + "?)";
            return fail(err(k, join(path, key), msg));
        }
        return {};
    }

    Result<YAML::Node> required(const YAML::Node& map, const std::string& path, const std::string& key) {
        YAML::Node n = map[key];
        if (!n) return fail(err(map, join(path, key), "required field missing"));
        return n;
    }

    Result<std::string> string(const YAML::Node& n, const std::string& path) {
        if (!n.IsScalar()) return fail(err(n, path, std::string("must be a string, not ") + describe(n)));
        return n.Scalar();
    }

    Result<std::vector<YAML::Node>> list(const YAML::Node& n, const std::string& path) {
        if (!n.IsSequence()) return fail(err(n, path, std::string("must be a list, not ") + describe(n)));
        std::vector<YAML::Node> out;
        for (auto it = n.begin(); it != n.end(); ++it) out.push_back(*it);
        return out;
    }

    Result<int64_t> integer(const YAML::Node& n, const std::string& path, int64_t min, int64_t max) {
        if (!n.IsScalar()) return fail(err(n, path, std::string("must be an integer, not ") + describe(n)));
        const std::string& s = n.Scalar();
        int64_t v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (!isPlain(n) || ec != std::errc() || end != s.data() + s.size())
            return fail(err(n, path, "\"" + s + "\" is not an integer"));
        if (v < min) return fail(err(n, path, min == 0 ? "must not be negative" : "must be at least " + std::to_string(min)));
        if (v > max) return fail(err(n, path, "must be at most " + std::to_string(max)));
        return v;
    }

    /// "60%": 0.6. A percentage above 0, written with its sign (a bare 60 or
    /// 0.6 would be ambiguous).
    Result<double> percentage(const YAML::Node& n, const std::string& path) {
        if (!n.IsScalar()) return fail(err(n, path, std::string("expected a percentage such as 60%, not ") + describe(n)));
        const std::string t = n.Scalar();
        if (t.size() < 2 || t.back() != '%')
            return fail(err(n, path, "\"" + t + "\" is not a percentage: write it with % (60%)"));
        double v = 0;
        const char* end = t.data() + t.size() - 1;
        auto [ptr, ec] = std::from_chars(t.data(), end, v);
        if (ec != std::errc() || ptr != end || !(v > 0) || v > 100000)
            return fail(err(n, path, "\"" + t + "\" is not a percentage above 0%"));
        return v / 100;
    }
    Result<double> number(const YAML::Node& n, const std::string& path, double min) {
        if (!n.IsScalar()) return fail(err(n, path, std::string("must be a number, not ") + describe(n)));
        const std::string& s = n.Scalar();
        double v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (!isPlain(n) || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
            return fail(err(n, path, "\"" + s + "\" is not a number"));
        if (v < min) return fail(err(n, path, min == 0 ? "must not be negative" : "must be at least " + formatNumber(min)));
        return v;
    }
    static std::string formatNumber(double d) {
        char buf[32];
        auto r = std::to_chars(buf, buf + sizeof buf, d);
        return std::string(buf, r.ptr);
    }

    Result<Millis> duration(const YAML::Node& n, const std::string& path, int64_t minMs = 0) {
        if (!n.IsScalar()) return fail(err(n, path, std::string("must be a duration, not ") + describe(n)));
        auto d = parseDuration(n.Scalar());
        if (!d) return fail(err(n, path, "\"" + n.Scalar() + "\" is not a duration (like 250ms, 1.5s, 2m, 1h)"));
        if (d->count() < minMs) return fail(err(n, path, "must be at least " + std::to_string(minMs) + "ms"));
        return *d;
    }

    Result<int64_t> bytes(const YAML::Node& n, const std::string& path) {
        if (!n.IsScalar()) return fail(err(n, path, std::string("must be a size, not ") + describe(n)));
        auto b = parseBytes(n.Scalar());
        if (!b) return fail(err(n, path, "\"" + n.Scalar() + "\" is not a size (like 1048576, 512k, 64m, 1g)"));
        return *b;
    }

    /// A list of strings, or one string split into words like sh.
    Result<std::vector<std::string>> argv(const YAML::Node& n, const std::string& path, bool nonEmpty) {
        std::vector<std::string> out;
        if (n.IsScalar()) {
            auto words = shellWords(n.Scalar());
            if (!words) return fail(err(n, path, words.error().message()));
            out = std::move(*words);
        } else if (n.IsSequence()) {
            for (auto it = n.begin(); it != n.end(); ++it) out.push_back(TRY(string(*it, path)));
        } else {
            return fail(err(n, path, std::string("must be a list of strings or a string, not ") + describe(n)));
        }
        if (nonEmpty && out.empty()) return fail(err(n, path, "must not be empty"));
        return out;
    }

    Result<std::vector<std::string>> env(const YAML::Node& n, const std::string& path) {
        std::vector<std::string> out;
        auto checkKey = [&](const YAML::Node& at, const std::string& key) -> Result<void> {
            if (key.empty() || key.find('=') != std::string::npos)
                return fail(err(at, path, "\"" + key + "\" is not a variable name"));
            return {};
        };
        if (n.IsMap()) {
            std::set<std::string> seen;
            // Iteration follows the file: yaml-cpp keeps a mapping's pairs in order.
            for (auto it = n.begin(); it != n.end(); ++it) {
                auto key = TRY(string(it->first, path));
                if (it->second.IsNull()) nullValues_.emplace_back(it->second, it->first.Mark());
                TRY(checkKey(it->first, key));
                if (!seen.insert(key).second) return fail(err(it->first, join(path, key), "duplicate field"));
                if (!it->second.IsScalar())
                    return fail(err(it->second, join(path, key),
                                    std::string("must be a string, not ") + describe(it->second) +
                                        (it->second.IsNull() ? " (write \"\" for an empty value)" : "")));
                out.push_back(key + "=" + it->second.Scalar());
            }
        } else if (n.IsSequence()) {
            for (auto it = n.begin(); it != n.end(); ++it) {
                auto kv = TRY(string(*it, path));
                size_t eq = kv.find('=');
                if (eq == std::string::npos) return fail(err(*it, path, "\"" + kv + "\" is not KEY=VALUE"));
                TRY(checkKey(*it, kv.substr(0, eq)));
                out.push_back(kv);
            }
        } else {
            return fail(err(n, path, std::string("must be a mapping or a list of KEY=VALUE, not ") + describe(n)));
        }
        return out;
    }

    Result<void> resources(const YAML::Node& n, const std::string& path, Service& s) {
        TRY(checkKeys(n, path, {"requests", "limits"}));
        auto one = [&](const YAML::Node& r, const std::string& p) -> Result<Resources> {
            Resources out;
            TRY(checkKeys(r, p, {"cpus", "memory", "pids"}));
            if (auto v = r["cpus"]) out.cpus = TRY(number(v, join(p, "cpus"), 0));
            if (auto v = r["memory"]) out.memory = TRY(bytes(v, join(p, "memory")));
            if (auto v = r["pids"]) out.pids = TRY(integer(v, join(p, "pids"), 0, INT64_MAX));
            return out;
        };
        const YAML::Node req = n["requests"], lim = n["limits"];
        if (req) s.requests = TRY(one(req, join(path, "requests")));
        if (lim) s.limits = TRY(one(lim, join(path, "limits")));
        if (!req || !lim) return {};
        // A request above its limit can never be met: the scheduler would place
        // a container the cgroup then throttles or kills below what it reserved.
        auto over = [&]<class T>(const char* key, T Resources::*field) -> Result<void> {
            auto r = s.requests.*field, l = s.limits.*field;
            if (r <= 0 || l <= 0 || r <= l) return {};
            return fail(err(req[key], join(path, std::string("requests.") + key),
                            req[key].Scalar() + " is more than limits." + key + " (" + lim[key].Scalar() + ")"));
        };
        TRY(over("cpus", &Resources::cpus));
        TRY(over("memory", &Resources::memory));
        TRY(over("pids", &Resources::pids));
        return {};
    }

    Result<Backoff> backoff(const YAML::Node& n, const std::string& path) {
        Backoff b;
        TRY(checkKeys(n, path, {"initial", "factor", "max", "resetAfter"}));
        if (auto v = n["initial"]) b.initial = TRY(duration(v, join(path, "initial"), 1));
        if (auto v = n["factor"]) b.factor = TRY(number(v, join(path, "factor"), 1));
        if (auto v = n["max"]) b.max = TRY(duration(v, join(path, "max"), 1));
        if (auto v = n["resetAfter"]) b.resetAfter = TRY(duration(v, join(path, "resetAfter")));
        if (b.max < b.initial) {
            YAML::Node at = n["max"] ? n["max"] : n["initial"];
            return fail(err(at, join(path, "max"), "must not be less than " + path + ".initial (" +
                                                       std::to_string(b.initial.count()) + "ms)"));
        }
        return b;
    }

    Result<uint16_t> port(const YAML::Node& n, const std::string& path) {
        return uint16_t(TRY(integer(n, path, 1, 65535)));
    }

    Result<Probe> probe(const YAML::Node& n, const std::string& path) {
        Probe p;
        TRY(checkKeys(n, path, {"exec", "http", "tcp", "period", "timeout", "initialDelay", "successThreshold",
                                "failureThreshold"}));
        int kinds = int(bool(n["exec"])) + int(bool(n["http"])) + int(bool(n["tcp"]));
        if (kinds != 1)
            return fail(err(n, path, kinds == 0 ? "needs one of exec, http, tcp" : "has more than one of exec, http, tcp"));
        if (auto v = n["exec"]) {
            p.kind = Probe::Kind::Exec;
            p.exec = TRY(argv(v, join(path, "exec"), true));
        } else if (auto v = n["http"]) {
            p.kind = Probe::Kind::Http;
            std::string hp = join(path, "http");
            TRY(checkKeys(v, hp, {"port", "path"}));
            p.port = TRY(port(TRY(required(v, hp, "port")), join(hp, "port")));
            if (auto q = v["path"]) {
                p.path = TRY(string(q, join(hp, "path")));
                if (p.path.empty() || p.path[0] != '/' || p.path.find_first_of(" \t\r\n") != std::string::npos)
                    return fail(err(q, join(hp, "path"), "\"" + p.path + "\" is not an absolute URL path"));
            }
        } else if (auto v = n["tcp"]) {
            p.kind = Probe::Kind::Tcp;
            std::string tp = join(path, "tcp");
            TRY(checkKeys(v, tp, {"port"}));
            p.port = TRY(port(TRY(required(v, tp, "port")), join(tp, "port")));
        }
        if (auto v = n["period"]) p.period = TRY(duration(v, join(path, "period"), 1));
        if (auto v = n["timeout"]) p.timeout = TRY(duration(v, join(path, "timeout"), 1));
        if (auto v = n["initialDelay"]) p.initialDelay = TRY(duration(v, join(path, "initialDelay")));
        if (auto v = n["successThreshold"]) p.successThreshold = int(TRY(integer(v, join(path, "successThreshold"), 1, 1000000)));
        if (auto v = n["failureThreshold"]) p.failureThreshold = int(TRY(integer(v, join(path, "failureThreshold"), 1, 1000000)));
        return p;
    }
};

// ---- canonical JSON ----

json::Value strings(const std::vector<std::string>& v) { return json::stringArray(v); }

json::Value ms(Millis m) { return json::Value(int64_t(m.count())); }

json::Value resourcesJson(const Resources& r) {
    json::Value o = json::Value::object();
    o.set("cpus", r.cpus);
    o.set("memory", r.memory);
    o.set("pids", r.pids);
    return o;
}

json::Value probeJson(const std::optional<Probe>& p) {
    if (!p) return json::Value();
    json::Value o = json::Value::object();
    o.set("kind", probeCheckName(p->kind));
    o.set("exec", strings(p->exec));
    o.set("path", p->path);
    o.set("port", int(p->port));
    o.set("period", ms(p->period));
    o.set("timeout", ms(p->timeout));
    o.set("initialDelay", ms(p->initialDelay));
    o.set("successThreshold", p->successThreshold);
    o.set("failureThreshold", p->failureThreshold);
    return o;
}

// Reading back. A missing field keeps its default, so a spec an older hull
// wrote (before a field existed) reads as it meant then. Anything else that
// cannot be read is an error in strict mode (the first one is kept), and keeps
// the default in lenient mode (for display only).
class JsonReader {
public:
    explicit JsonReader(bool strict) : strict_(strict) {}

    /// The first error met, strict mode only.
    Result<void> result() const {
        if (error_) return fail(*error_);
        return {};
    }
    void problem(const std::string& path, const std::string& what) {
        if (strict_ && !error_) error_ = Error::invalid("service JSON: " + path + ": " + what);
    }
    /// Keys of O that are not in KNOWN: an error (strict), never silently dropped,
    /// since a field this hull does not know may change what the spec means.
    void known(const json::Value& o, const std::string& path, std::initializer_list<std::string_view> known) {
        for (const auto& [k, v] : o.asObject())
            if (std::find(known.begin(), known.end(), k) == known.end())
                problem(join(path, k), "unknown field (written by a newer hull?)");
    }
    /// O's KEY when it is there with type T; nullptr when missing (its default
    /// stands) or of another type (a problem).
    const json::Value* get(const json::Value& o, const std::string& path, std::string_view key, json::Type t) {
        const json::Value* v = o.find(key);
        if (v && v->type() != t) {
            problem(join(path, key), std::string("must be ") + json::describe(t) + ", not " + json::describe(v->type()));
            return nullptr;
        }
        return v;
    }
    /// An object member that must be there (name and image have no default).
    const json::Value* required(const json::Value& o, const std::string& path, std::string_view key, json::Type t) {
        if (!o.find(key)) problem(join(path, key), "missing");
        return get(o, path, key, t);
    }
    template <class Int>
    void integer(const json::Value& o, const std::string& path, std::string_view key, int64_t min, int64_t max, Int& out) {
        const json::Value* v = get(o, path, key, json::Type::Number);
        int64_t i = 0;
        if (!v) return;
        if (!v->toInt64(i) || i < min || i > max) return problem(join(path, key), "out of range or not an integer");
        out = Int(i);
    }
    void number(const json::Value& o, const std::string& path, std::string_view key, double& out) {
        if (const json::Value* v = get(o, path, key, json::Type::Number)) out = v->asDouble();
    }
    void millis(const json::Value& o, const std::string& path, std::string_view key, Millis& out) {
        int64_t ms = out.count();
        integer(o, path, key, 0, INT64_MAX, ms);
        out = Millis(ms);
    }
    void string(const json::Value& o, const std::string& path, std::string_view key, std::string& out) {
        if (const json::Value* v = get(o, path, key, json::Type::String)) out = v->asString();
    }
    void strings(const json::Value& o, const std::string& path, std::string_view key, std::vector<std::string>& out) {
        const json::Value* v = get(o, path, key, json::Type::Array);
        if (!v) return;
        std::vector<std::string> items;
        for (const auto& item : v->asArray()) {
            if (!item.isString()) return problem(join(path, key), "items must be strings");
            items.push_back(item.asString());
        }
        out = std::move(items);
    }
    void resources(const json::Value& o, const std::string& path, std::string_view key, Resources& out) {
        const json::Value* v = get(o, path, key, json::Type::Object);
        if (!v) return;
        std::string p = join(path, key);
        known(*v, p, {"cpus", "memory", "pids"});
        number(*v, p, "cpus", out.cpus);
        integer(*v, p, "memory", 0, INT64_MAX, out.memory);
        integer(*v, p, "pids", 0, INT64_MAX, out.pids);
    }
    void probe(const json::Value& o, const std::string& path, std::string_view key, std::optional<Probe>& out) {
        const json::Value* v = o.find(key);
        if (!v || v->isNull()) return;  // none
        v = get(o, path, key, json::Type::Object);
        if (!v) return;
        std::string p = join(path, key);
        known(*v, p, {"kind", "exec", "path", "port", "period", "timeout", "initialDelay", "successThreshold",
                      "failureThreshold"});
        Probe pr;
        // A probe's kind has no default: a probe without one is not a probe.
        const json::Value* kind = required(*v, p, "kind", json::Type::String);
        if (!kind) return;
        if (kind->asString() == "exec") pr.kind = Probe::Kind::Exec;
        else if (kind->asString() == "http") pr.kind = Probe::Kind::Http;
        else if (kind->asString() == "tcp") pr.kind = Probe::Kind::Tcp;
        else return problem(join(p, "kind"), "unknown \"" + kind->asString() + "\"");
        strings(*v, p, "exec", pr.exec);
        string(*v, p, "path", pr.path);
        integer(*v, p, "port", 0, 65535, pr.port);
        millis(*v, p, "period", pr.period);
        millis(*v, p, "timeout", pr.timeout);
        millis(*v, p, "initialDelay", pr.initialDelay);
        integer(*v, p, "successThreshold", 1, INT32_MAX, pr.successThreshold);
        integer(*v, p, "failureThreshold", 1, INT32_MAX, pr.failureThreshold);
        out = std::move(pr);
    }

    /// The whole service from the canonical JSON O.
    Service service(const json::Value& o) {
        Service s;
        int64_t version = 1;  // specs from before the version was written are version 1
        integer(o, "", "version", 1, INT64_MAX, version);
        if (version > kServiceSpecVersion) {
            problem("version", std::to_string(version) + " is newer than this hull reads (up to " +
                                   std::to_string(kServiceSpecVersion) + "); upgrade hull");
            if (strict_) return s;
        }
        known(o, "", {"version", "name", "image", "command", "env", "replicas", "resources", "ports", "volumes", "restart",
                      "backoff", "probes", "maxAge", "stopGracePeriod", "placement", "update", "failover", "publishMode",
                      "networks", "autoscale"});
        if (const json::Value* v = required(o, "", "name", json::Type::String)) s.name = v->asString();
        if (const json::Value* v = required(o, "", "image", json::Type::String)) s.image = v->asString();
        strings(o, "", "command", s.command);
        strings(o, "", "env", s.env);
        integer(o, "", "replicas", 0, kMaxReplicas, s.replicas);
        if (const json::Value* res = get(o, "", "resources", json::Type::Object)) {
            known(*res, "resources", {"requests", "limits"});
            resources(*res, "resources", "requests", s.requests);
            resources(*res, "resources", "limits", s.limits);
        }
        strings(o, "", "ports", s.ports);
        strings(o, "", "volumes", s.volumes);
        if (const json::Value* r = get(o, "", "restart", json::Type::String)) {
            if (r->asString() == "always") s.restart = Service::Restart::Always;
            else if (r->asString() == "on-failure") s.restart = Service::Restart::OnFailure;
            else if (r->asString() == "never") s.restart = Service::Restart::Never;
            else problem("restart", "unknown \"" + r->asString() + "\"");
        }
        if (const json::Value* b = get(o, "", "backoff", json::Type::Object)) {
            known(*b, "backoff", {"initial", "factor", "max", "resetAfter"});
            millis(*b, "backoff", "initial", s.backoff.initial);
            number(*b, "backoff", "factor", s.backoff.factor);
            millis(*b, "backoff", "max", s.backoff.max);
            millis(*b, "backoff", "resetAfter", s.backoff.resetAfter);
        }
        if (const json::Value* p = get(o, "", "probes", json::Type::Object)) {
            known(*p, "probes", {"liveness", "readiness", "startup"});
            probe(*p, "probes", "liveness", s.liveness);
            probe(*p, "probes", "readiness", s.readiness);
            probe(*p, "probes", "startup", s.startup);
        }
        if (const json::Value* m = o.find("maxAge"); m && !m->isNull()) {
            Millis age{0};
            millis(o, "", "maxAge", age);
            if (m->isNumber()) s.maxAge = age;
        }
        millis(o, "", "stopGracePeriod", s.stopGracePeriod);
        if (const json::Value* p = get(o, "", "placement", json::Type::Object)) {
            known(*p, "placement", {"constraints", "spread", "strategy"});
            strings(*p, "placement", "constraints", s.placement.constraints);
            if (const json::Value* v = get(*p, "placement", "spread", json::Type::String)) s.placement.spread = v->asString();
            if (const json::Value* v = get(*p, "placement", "strategy", json::Type::String)) s.placement.strategy = v->asString();
        }
        if (const json::Value* u = get(o, "", "update", json::Type::Object)) {
            known(*u, "update", {"parallelism", "order", "delay", "monitor", "failureAction", "maxFailureRatio"});
            integer(*u, "update", "parallelism", 0, kMaxReplicas, s.update.parallelism);
            if (const json::Value* v = get(*u, "update", "order", json::Type::String)) {
                if (auto order = byName(v->asString(), kOrders, orderName)) s.update.order = *order;
                else problem("update.order", "unknown \"" + v->asString() + "\"");
            }
            millis(*u, "update", "delay", s.update.delay);
            millis(*u, "update", "monitor", s.update.monitor);
            if (const json::Value* v = get(*u, "update", "failureAction", json::Type::String)) {
                if (auto action = byName(v->asString(), kFailureActions, failureActionName)) s.update.failureAction = *action;
                else problem("update.failureAction", "unknown \"" + v->asString() + "\"");
            }
            number(*u, "update", "maxFailureRatio", s.update.maxFailureRatio);
        }
        strings(o, "", "networks", s.networks);
        if (const json::Value* m = get(o, "", "publishMode", json::Type::String)) {
            if (auto mode = byName(m->asString(), kPublishModes, publishModeName)) s.publishMode = *mode;
            else problem("publishMode", "unknown \"" + m->asString() + "\"");
        }
        if (const json::Value* a = get(o, "", "autoscale", json::Type::Object)) {
            known(*a, "autoscale", {"min", "max", "cpu", "requestsPerSecond", "scaleUpAfter", "scaleDownAfter", "step"});
            Autoscale as;
            integer(*a, "autoscale", "min", 1, kMaxReplicas, as.min);
            integer(*a, "autoscale", "max", 1, kMaxReplicas, as.max);
            if (const json::Value* v = a->find("cpu"); v && !v->isNull()) {
                double d = 0;
                number(*a, "autoscale", "cpu", d);
                as.cpu = d;
            }
            if (const json::Value* v = a->find("requestsPerSecond"); v && !v->isNull()) {
                double d = 0;
                number(*a, "autoscale", "requestsPerSecond", d);
                as.requestsPerSecond = d;
            }
            millis(*a, "autoscale", "scaleUpAfter", as.scaleUpAfter);
            millis(*a, "autoscale", "scaleDownAfter", as.scaleDownAfter);
            integer(*a, "autoscale", "step", 0, kMaxReplicas, as.step);
            s.autoscale = as;
        }
        if (const json::Value* f = get(o, "", "failover", json::Type::Object)) {
            known(*f, "failover", {"after"});
            if (const json::Value* a = f->find("after"); a && !a->isNull()) {
                Millis after{0};
                millis(*f, "failover", "after", after);
                if (a->isNumber()) s.failover.after = after;
            }
        }
        return s;
    }

private:
    bool strict_;
    std::optional<Error> error_;
};

}  // namespace

namespace {

// Counts a stream's documents as the parser meets them, building nothing.
class DocumentCounter : public YAML::EventHandler {
public:
    int documents = 0;
    YAML::Mark second;  // where the second one starts
    void OnDocumentStart(const YAML::Mark& m) override {
        if (++documents == 2) second = m;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

}  // namespace

Result<Service> parseService(const std::string& text, const std::string& source) {
    // YAML is Unicode text; yaml-cpp passes bytes that are not UTF-8 through, and a
    // service with them could be applied but not stored (JSON is UTF-8).
    if (size_t bad = json::firstInvalidUtf8(text); bad != std::string::npos) {
        size_t line = 1 + size_t(std::count(text.begin(), text.begin() + long(bad), '\n'));
        size_t lineStart = text.rfind('\n', bad == 0 ? 0 : bad - 1);
        size_t col = lineStart == std::string::npos || bad == 0 ? bad + 1 : bad - lineStart;
        return failInvalid(source + ":" + std::to_string(line) + ":" + std::to_string(col) +
                           ": not UTF-8 (a service file is UTF-8 text)");
    }
    // yaml-cpp reports errors by throwing; none of that may leave this function.
    try {
        // Not YAML::LoadAll: on a stream whose document starts with "," (yaml-cpp 0.7) it
        // never ends, adding null documents until memory runs out; found by fuzz-service.
        // The documents are counted first, two at most, then the first one loaded.
        std::istringstream in(text);
        YAML::Parser parser(in);
        DocumentCounter counter;
        for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
        }
        if (counter.documents > 1)
            return failInvalid(source + ":" + std::to_string(counter.second.line + 1) + ":" +
                               std::to_string(counter.second.column + 1) +
                               ": a second document (after \"---\", or text after the first one's end); a service file is one");
        if (counter.documents == 0) return failInvalid(source + ": empty (a service file is a mapping)");
        return Parser(source).service(YAML::Load(text));
    } catch (const YAML::Exception& e) {
        std::string where = source;
        if (e.mark.line >= 0) where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
        return failInvalid(where + ": " + e.msg);
    } catch (const std::exception& e) {
        return failInvalid(source + ": " + e.what());
    }
}

std::string serviceJson(const Service& s) {
    // Every field, defaults too, in one fixed order: equal services give equal strings.
    json::Value o = json::Value::object();
    o.set("version", kServiceSpecVersion);
    o.set("name", s.name);
    o.set("image", s.image);
    o.set("command", strings(s.command));
    o.set("env", strings(s.env));
    o.set("replicas", s.replicas);
    json::Value res = json::Value::object();
    res.set("requests", resourcesJson(s.requests));
    res.set("limits", resourcesJson(s.limits));
    o.set("resources", res);
    o.set("ports", strings(s.ports));
    o.set("volumes", strings(s.volumes));
    o.set("restart", restartName(s.restart));
    json::Value b = json::Value::object();
    b.set("initial", ms(s.backoff.initial));
    b.set("factor", s.backoff.factor);
    b.set("max", ms(s.backoff.max));
    b.set("resetAfter", ms(s.backoff.resetAfter));
    o.set("backoff", b);
    json::Value probes = json::Value::object();
    probes.set("liveness", probeJson(s.liveness));
    probes.set("readiness", probeJson(s.readiness));
    probes.set("startup", probeJson(s.startup));
    o.set("probes", probes);
    o.set("maxAge", s.maxAge ? ms(*s.maxAge) : json::Value());
    o.set("stopGracePeriod", ms(s.stopGracePeriod));
    // Written only when set: the canonical JSON of a spec without placement is
    // what it was before placement existed (stored specs compare equal).
    if (!(s.placement == Placement{})) {
        json::Value p = json::Value::object();
        p.set("constraints", strings(s.placement.constraints));
        p.set("spread", s.placement.spread);
        p.set("strategy", s.placement.strategy);
        o.set("placement", p);
    }
    // Likewise: written only when not the defaults.
    if (!(s.update == UpdateConfig{})) {
        json::Value u = json::Value::object();
        u.set("parallelism", s.update.parallelism);
        u.set("order", orderName(s.update.order));
        u.set("delay", ms(s.update.delay));
        u.set("monitor", ms(s.update.monitor));
        u.set("failureAction", failureActionName(s.update.failureAction));
        u.set("maxFailureRatio", s.update.maxFailureRatio);
        o.set("update", u);
    }
    if (s.publishMode != Service::PublishMode::Ingress) o.set("publishMode", publishModeName(s.publishMode));
    if (!s.networks.empty()) o.set("networks", strings(s.networks));
    if (s.failover.after) {
        json::Value f = json::Value::object();
        f.set("after", ms(*s.failover.after));
        o.set("failover", f);
    }
    if (s.autoscale) {
        const Autoscale& a = *s.autoscale;
        json::Value v = json::Value::object();
        v.set("min", a.min);
        v.set("max", a.max);
        if (a.cpu) v.set("cpu", *a.cpu);
        if (a.requestsPerSecond) v.set("requestsPerSecond", *a.requestsPerSecond);
        v.set("scaleUpAfter", ms(a.scaleUpAfter));
        v.set("scaleDownAfter", ms(a.scaleDownAfter));
        v.set("step", a.step);
        o.set("autoscale", v);
    }
    return o.dump();
}

Result<Service> serviceFromJson(const std::string& text) {
    auto doc = json::Value::parse(text);
    if (!doc) return fail(std::move(doc).error().context("service JSON"));
    if (!doc->isObject()) return failInvalid("service JSON: must be an object");
    JsonReader r(true);
    Service s = r.service(*doc);
    TRY(r.result());
    return s;
}

Service serviceFromJsonLenient(const std::string& text, const std::string& name) {
    auto doc = json::Value::parse(text);
    Service s;
    if (doc && doc->isObject()) s = JsonReader(false).service(*doc);
    s.name = name;
    return s;
}

std::string portClash(const Service& a, const Service& b) {
    for (const auto& x : a.ports)
        for (const auto& y : b.ports) {
            auto p = netns::parsePortMapping(x), q = netns::parsePortMapping(y);
            if (p && q && p->protocol == q->protocol && p->hostPort == q->hostPort &&
                (!p->hostIp || !q->hostIp || p->hostIp == q->hostIp))
                return std::to_string(p->hostPort) + "/" + p->protocol;
        }
    return "";
}

bool sameTemplate(const Service& a, const Service& b) {
    Service c = b;
    c.replicas = a.replicas;
    c.placement = a.placement;  // where replicas run, not what they are
    c.update = a.update;        // how a new generation rolls out
    c.failover = a.failover;    // when replicas leave a lost node
    c.autoscale = a.autoscale;  // how many, as demand goes
    c.publishMode = a.publishMode;  // where its ports lead
    return a == c;
}

std::vector<std::string> networksOf(const Service& s) {
    return s.networks.empty() ? std::vector<std::string>{kDefaultNetwork} : s.networks;
}

const char* publishModeName(Service::PublishMode m) {
    switch (m) {
    case Service::PublishMode::Local: return "local";
    case Service::PublishMode::Host: return "host";
    case Service::PublishMode::Ingress: break;
    }
    return "ingress";
}

const char* orderName(UpdateConfig::Order o) { return o == UpdateConfig::Order::StopFirst ? "stop-first" : "start-first"; }

const char* failureActionName(UpdateConfig::FailureAction a) {
    switch (a) {
    case UpdateConfig::FailureAction::Pause: return "pause";
    case UpdateConfig::FailureAction::Continue: return "continue";
    case UpdateConfig::FailureAction::Rollback: break;
    }
    return "rollback";
}

std::optional<Millis> parseDuration(const std::string& s) {
    // A number (digits, an optional fraction) and a unit; parsed by hand since
    // from_chars would also take "inf", "1e3" and a sign.
    size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    size_t intDigits = i;
    if (i < s.size() && s[i] == '.') {
        ++i;
        size_t fracStart = i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        if (i == fracStart) return std::nullopt;
    }
    if (intDigits == 0) return std::nullopt;
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + i, v);
    if (ec != std::errc() || end != s.data() + i) return std::nullopt;
    std::string_view unit = std::string_view(s).substr(i);
    double scale = 0;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60 * 1000;
    else if (unit == "h") scale = 3600 * 1000;
    else return std::nullopt;
    double msv = std::round(v * scale);
    if (msv > kMaxDurationMs) return std::nullopt;
    return Millis(int64_t(msv));
}

std::optional<int64_t> parseBytes(const std::string& s) { return sys::parseSize(s); }

}  // namespace hull::orchestrator
