#include "orchestrator/node/link.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <chrono>

#include "orchestrator/api/https_client.hpp"
#include "orchestrator/api/join.hpp"
#include "orchestrator/api/status_report.hpp"
#include "orchestrator/node/log_streams.hpp"
#include "sys/fs.hpp"
#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

namespace hull::orchestrator::node {

namespace asio = boost::asio;
using json::Value;

namespace {

std::string hostName() {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    return buf;
}

/// The local address the kernel would use to reach HOST (a connected UDP
/// socket sends nothing): what the master and other nodes dial.
std::string addressTowards(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), "7443", &hints, &res) != 0 || !res) return "";
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    std::string out;
    if (fd && ::connect(fd.get(), res->ai_addr, res->ai_addrlen) == 0) {
        sockaddr_in local{};
        socklen_t len = sizeof local;
        char text[INET_ADDRSTRLEN] = {};
        if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
            ::inet_ntop(AF_INET, &local.sin_addr, text, sizeof text))
            out = text;
    }
    ::freeaddrinfo(res);
    return out;
}


}  // namespace

/// The masters of a --join list, each checked.
Result<std::vector<std::string>> masterUrls(const std::string& list) {
    std::vector<std::string> out;
    for (const auto& u : sys::split(list, ',', false)) {
        TRY(api::parseUrl(u));
        out.push_back(u);
    }
    if (out.empty()) return failInvalid("node: --join: expected a master's URL (https://HOST:PORT[,https://HOST:PORT...])");
    return out;
}

Result<NodeCredentials> ensureJoined(LinkOptions& o) {
    if (o.name.empty()) o.name = hostName();
    const auto urls = TRY(masterUrls(o.masterUrl));
    auto url = TRY(api::parseUrl(urls[0]));
    if (o.address.empty()) o.address = addressTowards(url.host);
    const std::string dir = o.stateDir + "/cluster";
    // Joined before (to this master, under this name): the files say so.
    if (auto m = sys::readFile(dir + "/master.json")) {
        auto v = Value::parse(*m);
        if (v && json::stringOf(*v, "url") == o.masterUrl && json::stringOf(*v, "name") == o.name)
            return NodeCredentials{TRY(sys::readFile(dir + "/ca.pem")), TRY(sys::readFile(dir + "/node.pem")),
                                   TRY(sys::readFile(dir + "/node.key"))};
    }
    if (o.token.empty())
        return failInvalid("node: not joined to " + o.masterUrl + " yet: --token TOKEN is needed (hull cluster join-token on the master)");
    // The masters in turn: a standby answers nothing, the leader signs.
    auto joined = api::requestJoin(urls[0], o.token, o.name);
    for (size_t i = 1; i < urls.size() && !joined && joined.error().errnum() != EINVAL; ++i)
        joined = api::requestJoin(urls[i], o.token, o.name);
    if (!joined) return fail(std::move(joined).error().context("node"));
    const NodeCredentials& c = *joined;
    TRY(sys::mkdirAll(dir, 0700));
    TRY(sys::writeFileDurable(dir + "/ca.pem", c.ca, 0644));
    TRY(sys::writeFileDurable(dir + "/node.key", c.key, 0600));
    TRY(sys::writeFileDurable(dir + "/node.pem", c.cert, 0644));
    Value m = Value::object();
    m.set("url", o.masterUrl);
    m.set("name", o.name);
    TRY(sys::writeFileDurable(dir + "/master.json", m.dump(true) + "\n", 0644));
    log::infof("node: joined %s as %s", o.masterUrl.c_str(), o.name.c_str());
    return c;
}

namespace {

class Link final : public MasterLink, public std::enable_shared_from_this<Link> {
public:
    Link(asio::io_context& ioc, LinkOptions o, NodeCredentials c, Hooks h)
        : ioc_(ioc), o_(std::move(o)), c_(std::move(c)), h_(std::move(h)), timer_(ioc), retry_(ioc),
          logs_(ioc, [this](std::string text) {
              if (open_ && ws_) ws_->send(std::move(text));
          }, [this] { return backlog(); }),
          execs_(ioc, [this](std::string text) {
              if (open_ && ws_) ws_->send(std::move(text));
          }, h_.execCommand, [this] { return backlog(); }) {}

    void begin() {
        connect();
        tick();
    }

    void poke() override {
        if (open_) report();
    }

    void stop() override {
        stopped_ = true;
        timer_.cancel();
        retry_.cancel();
        logs_.cancelAll();
        execs_.cancelAll();
        if (ws_) ws_->close();
    }

    bool connected() const override { return open_; }

private:
    std::string masterNow() const { return urls_.empty() ? o_.masterUrl : urls_[current_ % urls_.size()]; }

    /// What the session has not written yet: log and exec output wait above a
    /// MiB of it, so that status and heartbeats are never stuck behind them.
    size_t backlog() const { return ws_ ? ws_->queuedBytes() : 0; }

    void connect() {
        if (stopped_) return;
        api::ClientOptions co;
        co.caPem = c_.ca;
        co.certPem = c_.cert;
        co.keyPem = c_.key;
        // A half-open session (a partition the TCP stack has not noticed) is
        // found within two seconds and replaced: pinged after 1 s of silence.
        co.wsPingEvery = std::chrono::milliseconds(1000);
        // The next master of the list after one that closed or never answered.
        std::string url = urls_.empty() ? o_.masterUrl : urls_[current_ % urls_.size()];
        url.replace(0, url.find("://"), "wss");
        std::weak_ptr<Link> self = shared_from_this();
        ws_ = api::WebSocketClient::create(
            ioc_, url + "/v1/node/session", co,
            {[self] {
                 if (auto s = self.lock()) s->opened();
             },
             [self](std::string text) {
                 if (auto s = self.lock()) s->message(text);
             },
             [self](const std::string& why) {
                 if (auto s = self.lock()) s->closed(why);
             }});
        ws_->connect();
    }

    void opened() {
        open_ = true;
        backoff_ = std::chrono::milliseconds(200);
        log::infof("node: connected to %s", masterNow().c_str());
        Value m = Value::object();
        m.set("type", "hello");
        m.set("name", o_.name);
        m.set("address", o_.address);
        m.set("cpus", int64_t(::sysconf(_SC_NPROCESSORS_ONLN)));
        struct sysinfo si {};
        ::sysinfo(&si);
        m.set("memory", int64_t(si.totalram) * int64_t(si.mem_unit));
        Value labels = Value::object();
        for (const auto& [k, v] : o_.labels) labels.set(k, v);
        m.set("labels", labels);
        m.set("version", "0.1.0");
        ws_->send(m.dump());
        reporter_.reset();  // a new session starts with every container
        report();
    }

    void message(const std::string& text) {
        auto m = Value::parse(text);
        if (!m || !m->isObject()) return;
        std::string type = json::stringOf(*m, "type");
        if (type == "welcome") {
            int64_t hb = 0;
            if (const Value* v = m->find("heartbeatMs"); v && v->toInt64(hb) && hb >= 50 && hb <= 60000)
                heartbeat_ = std::chrono::milliseconds(hb);
            std::string subnet = json::stringOf(*m, "subnet");
            if (!subnet.empty() && h_.network)
                if (std::string mac = h_.network(subnet, json::stringOf(*m, "clusterCidr"), json::stringOf(*m, "serviceCidr"), o_.address); !mac.empty()) {
                    Value o = Value::object();
                    o.set("type", "overlay");
                    o.set("mac", mac);
                    ws_->send(o.dump());
                }
        } else if (type == "peers") {
            if (h_.peers) h_.peers(*m);
        } else if (type == "endpoints") {
            if (h_.endpoints) h_.endpoints(*m);
        } else if (type == "assignments") {
            h_.assign(*m);
        } else if (type == "logs" || type == "logs-cancel") {
            int64_t stream = 0;
            if (const Value* v = m->find("stream"); !v || !v->toInt64(stream)) return;
            if (type == "logs-cancel") return logs_.cancel(stream);
            int64_t tail = -1;
            if (const Value* v = m->find("tail")) v->toInt64(tail);
            const Value* follow = m->find("follow");
            auto dir = h_.containerDir ? h_.containerDir(json::stringOf(*m, "container"))
                                       : Result<std::string>(failInvalid("this node serves no logs"));
            if (!dir) return logs_.refuse(stream, dir.error().message());
            logs_.start(stream, *dir, long(tail), follow && follow->isBool() && follow->asBool());
        } else {
            execs_.handle(type, *m);  // exec, exec-input, exec-resize, exec-cancel
        }
    }

    void closed(const std::string& why) {
        bool was = open_;
        open_ = false;
        logs_.cancelAll();  // their readers were on that session
        execs_.cancelAll();
        if (stopped_) return;
        if (was || !said_) log::warnf("node: link to %s: %s; retrying (running what it has)", masterNow().c_str(), why.c_str());
        said_ = true;
        ++current_;  // another master next (one only: the same)
        // Capped backoff: a master that is away is not hammered, one that is back is found within a second
        // (well within the master's restartGrace).
        retry_.expires_after(backoff_);
        backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(1000));
        std::weak_ptr<Link> self = shared_from_this();
        retry_.async_wait([self](auto ec) {
            if (auto s = self.lock(); s && !ec) s->connect();
        });
    }

    /// What changed in the containers, when something did; otherwise a
    /// heartbeat when one is due (any message is one to the master).
    void report() {
        auto now = std::chrono::steady_clock::now();
        if (auto r = reporter_.next(h_.containers().containers)) {
            ws_->send(api::statusMessage(*r));
            lastSent_ = now;
        } else if (now - lastSent_ >= heartbeat_ / 2) {  // half: a tick a little early skips no beat
            ws_->send(R"({"type":"heartbeat"})");
            lastSent_ = now;
        }
        // Usage about once a second (ticks come every heartbeat, 300 ms by default).
        if (h_.usage && now - lastUsage_ >= std::chrono::milliseconds(850)) {
            lastUsage_ = now;
            if (std::string u = h_.usage(); !u.empty()) {
                ws_->send(std::move(u));
                lastSent_ = now;
            }
        }
    }

    void tick() {
        if (stopped_) return;
        if (open_) report();
        // Status changes are seen within a heartbeat period (sooner when the
        // agent pokes), and a status report is a heartbeat too.
        timer_.expires_after(heartbeat_);
        std::weak_ptr<Link> self = shared_from_this();
        timer_.async_wait([self](auto ec) {
            if (auto s = self.lock(); s && !ec) s->tick();
        });
    }

    asio::io_context& ioc_;
    LinkOptions o_;
    std::vector<std::string> urls_ = sys::split(o_.masterUrl, ',', false);  // the masters, in turn
    size_t current_ = 0;                                                    // the one tried now
    NodeCredentials c_;
    Hooks h_;
    asio::steady_timer timer_, retry_;
    std::shared_ptr<api::WebSocketClient> ws_;
    bool open_ = false, stopped_ = false, said_ = false;
    std::chrono::milliseconds heartbeat_{300}, backoff_{200};
    std::chrono::steady_clock::time_point lastUsage_{};
    api::StatusReporter reporter_;
    LogStreams logs_;
    ExecSessions execs_;
    std::chrono::steady_clock::time_point lastSent_{};
};

}  // namespace

std::shared_ptr<MasterLink> MasterLink::start(asio::io_context& ioc, LinkOptions o, NodeCredentials c, Hooks h) {
    auto link = std::make_shared<Link>(ioc, std::move(o), std::move(c), std::move(h));
    link->begin();
    return link;
}

}  // namespace hull::orchestrator::node
