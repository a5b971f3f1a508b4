#include "orchestrator/master/standby.hpp"

#include <future>
#include <thread>

#include <boost/asio.hpp>

#include "orchestrator/api/https_client.hpp"
#include "orchestrator/api/https_server.hpp"
#include "orchestrator/api/messages.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator::master {

namespace asio = boost::asio;
using api::Request;
using api::Response;

namespace {

Response unavailable(const std::string& message) {
    Response r;
    r.status = 503;
    r.body = encode(ErrorReply{message});
    r.headers.emplace_back("Retry-After", "1");
    return r;
}

}  // namespace

struct StandbyServer::Impl {
    StandbyOptions o;
    std::string caPem;
    // Shared with the forwarding threads, which may outlive the server: their
    // answer is then posted to a stopped io_context, and dropped.
    std::shared_ptr<asio::io_context> ioc = std::make_shared<asio::io_context>(1);
    std::unique_ptr<api::HttpsServer> server;
    std::thread thread;

    /// "the leader is m1 (https://...)" or why there is none.
    std::string where(const core::LeaderInfo& l) const {
        if (!l.name.empty() && l.name != o.name) return "the leader is " + l.name + " at " + l.url;
        const std::string why = o.why ? o.why() : "";
        return "no leader now" + (why.empty() ? std::string() : " (" + why + ")");
    }

    /// The call, made again to the leader on a thread of its own (the answer may
    /// take as long as the leader does); its answer relayed as it came.
    void forward(const Request& r, std::function<void(Response)> done) {
        const core::LeaderInfo l = o.leader();
        if (l.name.empty() || l.name == o.name || l.url.empty()) {
            done(unavailable("master " + o.name + " is a standby, and " + where(l)));
            return;
        }
        api::ClientOptions co;
        co.caPem = caPem;
        co.bearerToken = r.peer.bearerToken;
        co.timeout = std::chrono::milliseconds(30000);
        std::thread([ioc = ioc, name = o.name, why = o.why, r, l, co, done = std::move(done)] {
            auto res = api::httpsRequest(r.method, l.url + r.target, r.body, co);
            Response out;
            if (!res) {
                // The leader gone (deposed, killed): what this master's own election says, too.
                const std::string election = why ? why() : "";
                out = unavailable("master " + name + " is a standby and could not reach the leader " + l.name + ": " +
                                  res.error().message() + (election.empty() ? "" : "; its election: " + election));
            } else {
                out.status = res->status;
                out.body = std::move(res->body);
                if (r.path() == "/metrics") out.contentType = "text/plain; version=0.0.4";
                out.headers.emplace_back("X-Hull-Forwarded-By", name);
            }
            asio::post(*ioc, [done, out = std::move(out)] { done(out); });
        }).detach();
    }
};

Result<std::unique_ptr<StandbyServer>> StandbyServer::start(const Credentials& creds, StandbyOptions options) {
    auto impl = std::make_unique<Impl>();
    impl->o = std::move(options);
    impl->caPem = creds.ca.cert;
    api::ServerOptions so;
    so.listen = impl->o.listen;
    so.certPem = creds.server.cert;
    so.keyPem = creds.server.key;
    so.caPem = creds.ca.cert;
    impl->server = TRY(api::HttpsServer::create(*impl->ioc, so));
    Impl* p = impl.get();
    for (const char* m : {"GET", "POST", "PUT", "PATCH", "DELETE"})
        p->server->routeAsync(m, "/*", [p](const Request& r, std::function<void(Response)> done) {
            // A join registers the node under the address it comes from: only the leader's own will do.
            if (r.path() == "/v1/join") return done(unavailable("master " + p->o.name + " is a standby: join through the leader; " +
                                                                p->where(p->o.leader())));
            p->forward(r, std::move(done));
        });
    for (const char* ws : {"/v1/node/session", "/v1/logs", "/v1/exec"})
        p->server->webSocket(
            ws, [p](const Request&) -> std::optional<Response> { return unavailable("master " + p->o.name + " is a standby: " + p->where(p->o.leader())); },
            api::WebSocketHandlers{[](std::shared_ptr<api::WebSocketSession>) {},
                                   [](const std::shared_ptr<api::WebSocketSession>&, std::string) {},
                                   [](const std::shared_ptr<api::WebSocketSession>&) {}});
    impl->thread = std::thread([p] {
        auto guard = asio::make_work_guard(*p->ioc);
        p->ioc->run();
    });
    log::infof("master %s: standby serving %s: calls forwarded to the leader", impl->o.name.c_str(), impl->o.listen.c_str());
    return std::unique_ptr<StandbyServer>(new StandbyServer(std::move(impl)));
}

StandbyServer::StandbyServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StandbyServer::~StandbyServer() {
    if (!impl_) return;
    // The server stops on its own thread (the listening socket closes there),
    // and only then does the thread end: the port is free for the leader's server.
    std::promise<void> stopped;
    asio::post(*impl_->ioc, [&] {
        impl_->server->stop();
        stopped.set_value();
    });
    stopped.get_future().wait();
    impl_->ioc->stop();
    if (impl_->thread.joinable()) impl_->thread.join();
    impl_->server.reset();
}

}  // namespace hull::orchestrator::master
