// hull-simnodes: N simulated nodes for scale tests and benchmarks. Each joins
// the master with the token (the real join: CA pinning, a CSR, a node
// certificate), holds the real node session over mutual TLS, heartbeats, and
// reports every assigned replica running and ready (at its next heartbeat,
// as a real node reports changes), without starting anything.
//
//   hull-simnodes --join URL --token TOKEN --count N [--prefix sim-] [--cpus 64] [--memory 256g]
//
// Nodes are named sim-1..sim-N and labelled sim=true. Runs until SIGINT/SIGTERM.
#include <signal.h>

#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "orchestrator/api/https_client.hpp"
#include "orchestrator/api/join.hpp"
#include "orchestrator/api/messages.hpp"
#include "orchestrator/api/status_report.hpp"
#include "orchestrator/model/service.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

using namespace hull;
using namespace hull::orchestrator;
namespace asio = boost::asio;
using json::Value;

namespace {

int failWith(const std::string& msg) {
    std::fprintf(stderr, "hull-simnodes: %s\n", msg.c_str());
    return 1;
}

struct SimOptions {
    std::string url, token, prefix = "sim-";
    double cpus = 64;
    int64_t memory = int64_t(256) << 30;
    std::chrono::milliseconds heartbeat{300};
};

/// The node certificate, as a real node gets it.
Result<api::ClientOptions> join(const SimOptions& o, const std::string& name) {
    auto creds = TRY(api::requestJoin(o.url, o.token, name));
    api::ClientOptions c;
    c.caPem = creds.ca;
    c.certPem = creds.cert;
    c.keyPem = creds.key;
    return c;
}

class SimNode : public std::enable_shared_from_this<SimNode> {
public:
    SimNode(asio::io_context& ioc, const SimOptions& o, std::string name, api::ClientOptions creds)
        : ioc_(ioc), o_(o), name_(std::move(name)), creds_(std::move(creds)), timer_(ioc) {}

    void connect() {
        std::string url = o_.url;
        url.replace(0, url.find("://"), "wss");
        std::weak_ptr<SimNode> self = shared_from_this();
        ws_ = api::WebSocketClient::create(ioc_, url + "/v1/node/session", creds_,
                                           {[self] {
                                                if (auto s = self.lock()) s->opened();
                                            },
                                            [self](std::string t) {
                                                if (auto s = self.lock()) s->message(t);
                                            },
                                            [self](const std::string& why) {
                                                if (auto s = self.lock()) s->closed(why);
                                            }});
        ws_->connect();
    }

private:
    void opened() {
        open_ = true;
        Value m = Value::object();
        m.set("type", "hello");
        m.set("name", name_);
        m.set("address", "0.0.0.0");
        m.set("cpus", o_.cpus);
        m.set("memory", o_.memory);
        Value labels = Value::object();
        labels.set("sim", "true");
        m.set("labels", labels);
        m.set("version", "sim");
        ws_->send(m.dump());
        reporter_.reset();
        changed_ = true;  // the first report: every container (none yet)
        beat();
    }

    void message(const std::string& text) {
        auto m = Value::parse(text);
        if (!m || json::stringOf(*m, "type") != "assignments") return;
        // The whole set, or the services whose part changed and those removed.
        const Value* full = m->find("full");
        if (!full || !full->isBool() || full->asBool()) assigned_.clear();
        for (const auto& name : json::stringsOf(m->find("removed"))) assigned_.erase(name);
        if (const Value* svcs = m->find("services"); svcs && svcs->isArray())
            for (const auto& s : svcs->asArray()) {
                auto& a = assigned_[json::stringOf(s, "name")];
                a.slots.clear();
                if (const Value* g = s.find("generation")) g->toInt64(a.generation);
                if (const Value* slots = s.find("slots"); slots && slots->isArray())
                    for (const auto& x : slots->asArray()) {
                        int64_t slot = 0;
                        if (x.toInt64(slot)) a.slots.push_back(int(slot));
                    }
            }
        changed_ = true;
    }

    /// Every assigned slot runs and is ready, at once: reported at most once
    /// per heartbeat, as a real node does (a burst of assignments, one report
    /// of what changed).
    void report() {
        std::vector<ContainerEntry> list;
        for (const auto& [svc, a] : assigned_)
            for (int slot : a.slots) {
                ContainerEntry c;
                c.id = name_ + "-" + svc + "-" + std::to_string(slot);
                c.name = svc + "-" + std::to_string(slot);
                c.service = svc;
                c.slot = slot;
                c.generation = a.generation;
                c.status = "running";
                c.ready = true;
                list.push_back(std::move(c));
            }
        if (auto r = reporter_.next(list)) ws_->send(api::statusMessage(*r));
        else ws_->send(R"({"type":"heartbeat"})");
        changed_ = false;
    }

    void closed(const std::string& why) {
        if (open_) std::fprintf(stderr, "hull-simnodes: %s: %s; reconnecting\n", name_.c_str(), why.c_str());
        open_ = false;
        timer_.expires_after(std::chrono::milliseconds(500));
        std::weak_ptr<SimNode> self = shared_from_this();
        timer_.async_wait([self](auto ec) {
            if (auto s = self.lock(); s && !ec) s->connect();
        });
    }

    void beat() {
        if (!open_) return;
        if (changed_) report();
        else ws_->send(R"({"type":"heartbeat"})");
        timer_.expires_after(o_.heartbeat);
        std::weak_ptr<SimNode> self = shared_from_this();
        timer_.async_wait([self](auto ec) {
            if (auto s = self.lock(); s && !ec) s->beat();
        });
    }

    asio::io_context& ioc_;
    const SimOptions& o_;
    std::string name_;
    api::ClientOptions creds_;
    asio::steady_timer timer_;
    std::shared_ptr<api::WebSocketClient> ws_;
    bool open_ = false, changed_ = false;
    struct Assigned {
        int64_t generation = 0;
        std::vector<int> slots;
    };
    std::map<std::string, Assigned> assigned_;  // what the master assigned this node
    api::StatusReporter reporter_;
};

}  // namespace

int main(int argc, char** argv) {
    cli::Args a(std::vector<std::string>(argv + 1, argv + argc), {}, {"--join", "--token", "--count", "--prefix", "--cpus", "--memory"},
                {});
    if (!a.error.empty() || !a.has("--join") || !a.has("--token") || !a.has("--count"))
        return failWith("usage: hull-simnodes --join URL --token TOKEN --count N [--prefix sim-] [--cpus 64] [--memory 256g]");
    SimOptions o;
    o.url = a.get("--join");
    o.token = a.get("--token");
    o.prefix = a.get("--prefix", "sim-");
    o.cpus = std::atof(a.get("--cpus", "64").c_str());
    if (a.has("--memory")) {
        auto m = parseBytes(a.get("--memory"));
        if (!m) return failWith("--memory: expected a size such as 256g");
        o.memory = *m;
    }
    int count = std::atoi(a.get("--count").c_str());
    if (count < 1 || count > 100000) return failWith("--count: expected 1 to 100000");
    log::configure("", log::Format::Text, false);
    ::signal(SIGPIPE, SIG_IGN);
    asio::io_context ioc;
    std::vector<std::shared_ptr<SimNode>> nodes;
    for (int i = 1; i <= count; ++i) {
        std::string name = o.prefix + std::to_string(i);
        auto creds = join(o, name);
        if (!creds) return failWith(creds.error().message());
        nodes.push_back(std::make_shared<SimNode>(ioc, o, name, std::move(*creds)));
        nodes.back()->connect();
    }
    std::fprintf(stderr, "hull-simnodes: %d nodes joined %s\n", count, o.url.c_str());
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](auto, int) { ioc.stop(); });
    ioc.run();
    return 0;
}
