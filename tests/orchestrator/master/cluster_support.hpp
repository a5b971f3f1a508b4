#pragma once
// The cluster as a user sees it, for the tests that drive one: a master and N
// nodes built by scripts/cluster out of network namespaces on this machine (real
// agents, real containers, images pulled from the registry in the master's
// namespace), driven through `hull` with the master's admin.conf.
//
// Each test case brings up its own cluster (named hct, underlay 10.252.0.0/24)
// and takes it down again; ctest runs them one at a time (RESOURCE_LOCK cluster).
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "support.hpp"

namespace hull::test::cluster {

using json::Value;

inline const std::string kName = "hct";
inline const std::string kNet = "10.252.0";
inline const std::string kDir = "/var/lib/hull-cluster/" + kName;
inline const std::string kRun = "/run/hull-cluster/" + kName;

inline RunResult clusterScript(std::vector<std::string> args) {
    args.insert(args.begin(), std::string(HULL_SOURCE_DIR) + "/scripts/cluster");
    ::setenv("HULL_CLUSTER", kName.c_str(), 1);
    ::setenv("HULL_CLUSTER_NET", kNet.c_str(), 1);
    ::setenv("HULL_BIN", binPath("hull").c_str(), 1);
    return run(args);
}

/// A cluster for the length of a test case.
struct Cluster {
    /// EXTRA: more options of `scripts/cluster up` ("--masters", "3", "--store", "etcd").
    explicit Cluster(int nodes = 3, std::vector<std::string> extra = {}) {
        (void)clusterScript({"down"});  // a leftover of an interrupted run
        std::vector<std::string> args{"up", "--nodes", std::to_string(nodes)};
        for (size_t i = 0; i < extra.size(); ++i) {
            args.push_back(extra[i]);
            if (extra[i] == "--masters" && i + 1 < extra.size() && extra[i + 1] != "1") masters = std::atoi(extra[i + 1].c_str());
        }
        auto up = clusterScript(args);
        INFO(up.out << up.err);
        REQUIRE(up.status == 0);
        for (const auto& line : split(clusterScript({"env"}).out))
            if (auto eq = line.find("HULL_CLUSTER_IMAGE="); eq != std::string::npos) image = unquote(line.substr(eq + 19));
        REQUIRE(!image.empty());
    }
    ~Cluster() {
        auto down = clusterScript({"down"});
        if (down.status != 0) WARN("scripts/cluster down: " << down.out << down.err);
    }
    static std::vector<std::string> split(const std::string& s) {
        std::vector<std::string> out;
        size_t start = 0;
        while (start < s.size()) {
            size_t nl = s.find('\n', start);
            out.push_back(s.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
        return out;
    }
    static std::string unquote(std::string s) {
        if (s.size() >= 2 && (s[0] == '\'' || s[0] == '"')) s = s.substr(1, s.size() - 2);
        return s;
    }
    /// The admin.conf users take: with several masters, the one naming them all.
    std::string config() const { return masters > 1 ? kDir + "/admin.conf" : kDir + "/m1/admin.conf"; }
    RunResult hull(std::vector<std::string> args) const {
        args.insert(args.begin(), {binPath("hull"), "--config", config()});
        return run(args);
    }
    Value json(std::vector<std::string> args) const {
        args.push_back("--output");
        args.push_back("json");
        auto r = hull(args);
        auto v = Value::parse(r.out);
        return v ? *v : Value();
    }
    /// Apply a service file made of LINES (the image line is added).
    RunResult apply(const std::string& name, const std::string& lines) const {
        TempDir d("hull-svc");
        writeFileOrThrow(d / (name + ".yaml"), "name: " + name + "\nimage: " + image + "\n" + lines);
        return hull({"apply", "-f", d / (name + ".yaml")});
    }
    /// The running, ready containers of SERVICE.
    std::vector<Value> ready(const std::string& service) const {
        std::vector<Value> out;
        auto cs = json({"get", "containers"});
        if (cs.isArray())
            for (const auto& c : cs.asArray())
                if (json::stringOf(c, "service") == service && json::stringOf(c, "status") == "running" && c.find("ready") &&
                    c.find("ready")->isBool() && c.find("ready")->asBool())
                    out.push_back(c);
        return out;
    }
    std::map<std::string, int> perNode(const std::string& service) const {
        std::map<std::string, int> out;
        for (const auto& c : ready(service)) ++out[json::stringOf(c, "node")];
        return out;
    }
    /// slot -> container id of SERVICE's ready containers.
    std::map<int64_t, std::string> idsBySlot(const std::string& service) const {
        std::map<int64_t, std::string> out;
        for (const auto& c : ready(service)) {
            int64_t slot = -1;
            c.find("slot")->toInt64(slot);
            out[slot] = json::stringOf(c, "id");
        }
        return out;
    }
    /// FIELD of node NAME as `hull node ls` has it ("" when there is no such node).
    std::string node(const std::string& name, const char* field) const {
        const Value nodes = json({"node", "ls"});  // kept: a range-for over a temporary's member dangles
        if (nodes.isArray())
            for (const auto& n : nodes.asArray())
                if (json::stringOf(n, "name") == name) return json::stringOf(n, field);
        return "";
    }
    pid_t pidOf(const std::string& host, const std::string& kind) const {
        return pid_t(std::atoi(readFileOr(kRun + "/" + host + "-" + kind + ".pid", "0").c_str()));
    }
    std::string image;
    int masters = 1;
};

inline bool eventually(const std::function<bool()>& cond, int ms = 30000) { return waitFor(cond, ms); }

inline const char* kSleep = "command: [sleep, \"100000\"]\nstopGracePeriod: 1s\n";

}  // namespace hull::test::cluster

namespace hull::test::cluster {

/// What NODE's own agent runs, asked over its unix socket (the master's view
/// is not what is checked): SERVICE's running containers there.
inline std::vector<json::Value> onNode(const std::string& node, const std::string& service) {
    auto r = run({binPath("hull"), "--state-dir", kDir + "/" + node, "get", "containers", "--output", "json"});
    std::vector<json::Value> out;
    auto v = json::Value::parse(r.out);
    if (r.status != 0 || !v || !v->isArray()) return out;
    for (const auto& c : v->asArray())
        if (json::stringOf(c, "service") == service && json::stringOf(c, "status") == "running") out.push_back(c);
    return out;
}

/// Slot -> how many running containers of SERVICE hold it, over every node's own listing.
inline std::map<int64_t, int> slotsEverywhere(const std::vector<std::string>& nodes, const std::string& service) {
    std::map<int64_t, int> out;
    for (const auto& n : nodes)
        for (const auto& c : onNode(n, service)) {
            int64_t slot = -1;
            c.find("slot")->toInt64(slot);
            ++out[slot];
        }
    return out;
}

inline int64_t intField(const json::Value& v, const char* key) {
    int64_t n = 0;
    if (const json::Value* f = v.find(key)) f->toInt64(n);
    return n;
}

}  // namespace hull::test::cluster
