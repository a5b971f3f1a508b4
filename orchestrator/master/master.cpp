#include "orchestrator/master/master.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>

#include "orchestrator/api/https_server.hpp"
#include "orchestrator/api/messages.hpp"
#include "orchestrator/master/cluster.hpp"
#include "orchestrator/master/credentials.hpp"
#include "orchestrator/master/leadership.hpp"
#include "orchestrator/master/records.hpp"
#include "orchestrator/master/standby.hpp"
#include "orchestrator/state/etcd_store.hpp"
#include "orchestrator/state/fenced_store.hpp"
#include "orchestrator/state/store.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator::master {

namespace asio = boost::asio;
using api::Request;
using api::Response;
using json::Value;

namespace {

/// The cluster's clock for heartbeats and grace periods: monotonic, so an NTP
/// step on an edge host marks no node down (dates come from ClusterOptions::wallMs).
int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Response reply(int status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}
Response error(int status, const std::string& msg) { return reply(status, encode(ErrorReply{msg})); }
template <class T>
Response ok(const T& m) {
    return reply(200, encode(m));
}


/// "[a-z0-9][a-z0-9.-]{0,62}": node names become file and label values.
bool validNodeName(const std::string& n) {
    if (n.empty() || n.size() > 63 || !(std::isalnum((unsigned char)n[0]) && !std::isupper((unsigned char)n[0]))) return false;
    for (char c : n)
        if (!(std::islower((unsigned char)c) || std::isdigit((unsigned char)c) || c == '-' || c == '.')) return false;
    return true;
}

std::string hostName() {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    return buf;
}

/// The name of the path's last segment after PREFIX ("/v1/nodes/n1/drain" -> "n1", "drain").
std::pair<std::string, std::string> splitRest(const std::string& target, const std::string& prefix) {
    std::string rest = target.substr(prefix.size());
    if (auto q = rest.find('?'); q != std::string::npos) rest.resize(q);
    auto slash = rest.find('/');
    if (slash == std::string::npos) return {rest, ""};
    return {rest.substr(0, slash), rest.substr(slash + 1)};
}

/// Why this master stopped leading (set from the leadership's thread), and
/// whether it is shutting down anyway (its own resign is no news).
struct Deposition {
    std::mutex mu;
    std::string why;
    std::atomic<bool> stopping{false};
};
Deposition& deposition() {
    static Deposition d;
    return d;
}

/// "etcd://h1:2379,h2:2379" -> the endpoints, https when TLS is on.
Result<std::vector<std::string>> etcdEndpoints(const std::string& store, bool tls) {
    std::vector<std::string> out;
    for (const auto& hp : sys::split(store.substr(7), ',', false)) {
        if (hp.empty() || hp.find('/') != std::string::npos || hp.rfind(':') == std::string::npos)
            return failInvalid("--store " + store + ": expected etcd://HOST:PORT[,HOST:PORT...]");
        out.push_back((tls ? "https://" : "http://") + hp);
    }
    if (out.empty()) return failInvalid("--store " + store + ": expected etcd://HOST:PORT[,HOST:PORT...]");
    return out;
}

class MasterImpl final : public Master {
public:
    MasterImpl(MasterOptions o, Credentials c, std::unique_ptr<state::Store> inner, std::unique_ptr<Leadership> leadership,
               std::unique_ptr<Cluster> cluster, state::Store* shared)
        : o_(std::move(o)),
          creds_(std::move(c)),
          inner_(std::move(inner)),
          leadership_(std::move(leadership)),
          cluster_(std::move(cluster)),
          shared_(shared) {}

    Result<void> run() override {
        api::ServerOptions so;
        so.listen = o_.listen;
        so.certPem = creds_.server.cert;
        so.keyPem = creds_.server.key;
        so.caPem = creds_.ca.cert;
        // Nodes heartbeat every few hundred ms; a session silent for 2 s is
        // pinged, for 4 s closed (its node is down by then anyway).
        so.wsPingEvery = std::chrono::milliseconds(2000);
        auto server = TRY(api::HttpsServer::create(ioc_, so));
        routes(*server);
        asio::signal_set signals(ioc_, SIGINT, SIGTERM);
        signals.async_wait([&](auto, int) { ioc_.stop(); });
        asio::steady_timer timer(ioc_);
        std::function<void()> tick = [&] {
            cluster_->reconcile(nowMs());
            timer.expires_after(std::chrono::milliseconds(100));
            timer.async_wait([&](auto ec) {
                if (!ec) tick();
            });
        };
        log::infof("master: serving https://%s, state in %s", o_.listen.c_str(), o_.stateDir.c_str());
        tick();
        ioc_.run();
        // Stopped: the sessions' close handlers run now, while the server and
        // the cluster that hold them still exist.
        timer.cancel();
        server->stop();
        ioc_.restart();
        ioc_.poll();
        if (leadership_) {
            Deposition& d = deposition();
            d.stopping = true;
            std::lock_guard lock(d.mu);
            if (!d.why.empty()) return fail(Error::plain(EPERM, "master " + o_.name + ": no longer the leader (" + d.why +
                                                                   "): stopped; started again, it follows the new leader"));
            // A clean stop: the lease goes now, and a standby takes over at once.
            leadership_->resign();
        }
        return {};
    }

private:
    /// Every route but the join and the node session wants the admin token.
    std::optional<Response> admin(const Request& r) const {
        if (!r.peer.bearerToken.empty() && api::constantTimeEqual(r.peer.bearerToken, creds_.adminToken)) return std::nullopt;
        if (r.peer.certOrganization && *r.peer.certOrganization == "hull:node")
            return error(403, "forbidden: a node certificate may only hold its node's session");
        if (!r.peer.bearerToken.empty()) return error(401, "unauthorized: wrong token");
        return error(401, "unauthorized: send the admin token of admin.conf (Authorization: Bearer TOKEN)");
    }

    /// ROUTE for admins: HANDLER runs only with the admin token.
    /// METHODS: one, or several separated by '|' ("GET|POST|DELETE").
    void adminRoute(api::HttpsServer& s, const std::string& methods, const std::string& path,
                    std::function<Response(const Request&)> handler) {
        size_t start = 0;
        while (start <= methods.size()) {
            size_t bar = methods.find('|', start);
            std::string m = methods.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
            s.route(m, path, [this, handler](const Request& r) {
                if (auto refused = admin(r)) return *refused;
                auto res = handler(r);
                kick();
                return res;
            });
            if (bar == std::string::npos) break;
            start = bar + 1;
        }
    }

    void routes(api::HttpsServer& s) {
        Cluster& c = *cluster_;
        auto now = [] { return nowMs(); };
        adminRoute(s, "GET", "/v1/services", [&](const Request&) { return ok(c.serviceList()); });
        adminRoute(s, "POST", "/v1/services", [&, now](const Request& r) {
            auto req = decode<ApplyRequest>(r.body);
            if (!req) return error(400, req.error().message());
            auto res = c.apply(req->source.empty() ? "<input>" : req->source, req->text, now());
            if (!res) return error(res.error().errnum() == EIO ? 500 : 400, res.error().message());
            return ok(*res);
        });
        adminRoute(s, "GET|POST|DELETE", "/v1/services/*", [&, now](const Request& r) {
            auto [name, verb] = splitRest(r.target, "/v1/services/");
            if (r.method == "GET" && verb.empty()) {
                auto d = c.describe(name);
                return d ? ok(*d) : error(404, d.error().message());
            }
            if (r.method == "DELETE" && verb.empty()) {
                auto d = c.remove(name, now());
                if (!d) return error(d.error().errnum() == ENOENT ? 404 : 500, d.error().message());
                return ok(DeleteReply{name});
            }
            if (r.method == "GET" && verb == "rollout") {
                auto st = c.rolloutStatus(name);
                return st ? ok(*st) : error(404, st.error().message());
            }
            if (r.method == "GET" && verb == "history") {
                auto h = c.rolloutHistory(name);
                return h ? ok(*h) : error(404, h.error().message());
            }
            if (r.method == "POST" && verb == "undo") {
                auto req = decode<UndoRequest>(r.body);
                if (!req) return error(400, req.error().message());
                auto st = c.undo(name, req->toGeneration, now());
                if (!st) return error(st.error().errnum() == ENOENT ? 404 : st.error().errnum() == EINVAL ? 400 : 500,
                                      st.error().message());
                return ok(*st);
            }
            if (r.method == "POST" && verb == "scale") {
                auto req = decode<ScaleRequest>(r.body);
                if (!req) return error(400, req.error().message());
                auto res = c.scale(name, req->replicas, now());
                if (!res)
                    return error(res.error().errnum() == ENOENT ? 404 : res.error().errnum() == EBUSY ? 409 : 400,
                                 res.error().message());
                return ok(*res);
            }
            return error(404, "no such endpoint: " + r.method + " " + r.target);
        });
        adminRoute(s, "GET", "/v1/containers", [&](const Request&) { return ok(c.containers("")); });
        adminRoute(s, "GET", "/v1/events", [&](const Request& r) {
            int64_t since = 0;
            if (auto q = r.target.find("since="); q != std::string::npos) since = std::atoll(r.target.c_str() + q + 6);
            return ok(c.events(since));
        });
        adminRoute(s, "GET", "/v1/nodes", [&](const Request&) { return ok(c.nodeList(nowMs())); });
        adminRoute(s, "POST|DELETE", "/v1/nodes/*", [&, now](const Request& r) {
            auto [name, verb] = splitRest(r.target, "/v1/nodes/");
            if (r.method == "DELETE" && verb.empty()) {
                auto d = c.removeNode(name, now());
                if (!d)
                    return error(d.error().errnum() == ENOENT ? 404 : d.error().errnum() == EBUSY ? 409 : 500, d.error().message());
                return ok(DeleteReply{name});
            }
            Result<NodeEntry> res = fail(Error::plain(ENOENT, ""));
            if (r.method == "POST" && verb == "drain") res = c.drain(name, true, now());
            else if (r.method == "POST" && verb == "activate") res = c.drain(name, false, now());
            else if (r.method == "POST" && verb == "labels") {
                auto req = decode<NodeLabelRequest>(r.body);
                if (!req) return error(400, req.error().message());
                res = c.label(name, req->set, req->remove, now());
            } else {
                return error(404, "no such endpoint: " + r.method + " " + r.target);
            }
            if (!res) return error(res.error().errnum() == ENOENT ? 404 : res.error().errnum() == EINVAL ? 400 : 500,
                                   res.error().message());
            return ok(NodeReply{*res});
        });
        adminRoute(s, "GET", "/v1/cluster/status", [&](const Request&) {
            ClusterStatus st;
            std::string addr = o_.advertise.empty() ? o_.listen : o_.advertise[0];
            if (addr.find(':') == std::string::npos) addr += o_.listen.substr(o_.listen.rfind(':'));
            st.masters.push_back({o_.name, addr, "leader"});
            st.leader = o_.name;
            st.store = leadership_ ? o_.store : "sqlite:" + o_.stateDir + "/state.db";
            st.storeHealth = "healthy";
            if (leadership_) {
                // The others: every master whose lease is alive has its entry.
                if (auto list = inner_->range(core::kMastersPrefix, state::prefixEnd(core::kMastersPrefix)); list) {
                    for (const auto& kv : list->kvs) {
                        core::LeaderInfo m = core::parseLeaderValue(kv.value);
                        if (m.name == o_.name) continue;
                        std::string a = m.url;
                        if (auto at = a.find("://"); at != std::string::npos) a = a.substr(at + 3);
                        st.masters.push_back({m.name, a, "standby"});
                    }
                }
                size_t healthy = 0;
                for (auto& m : inner_->members()) {
                    healthy += m.healthy;
                    st.storeMembers.push_back({m.endpoint, m.healthy, m.leader, m.version, m.dbSize, m.error});
                }
                if (healthy < st.storeMembers.size())
                    st.storeHealth = std::to_string(healthy) + " of " + std::to_string(st.storeMembers.size()) +
                                     " etcd members answer with a leader" +
                                     (healthy * 2 > st.storeMembers.size() ? "" : ": no quorum, writes fail");
            }
            st.nodes = int64_t(c.nodeCount());
            st.services = int64_t(c.serviceCount());
            return ok(st);
        });
        adminRoute(s, "GET", "/v1/cluster/join-token", [&](const Request&) { return ok(JoinTokenReply{creds_.joinToken()}); });
        adminRoute(s, "POST", "/v1/cluster/join-token", [&, now](const Request&) {
            if (auto r = rotateJoinSecret(o_.stateDir, creds_, shared_); !r) return error(500, r.error().message());
            c.event("join-token", "", "", "join token rotated", now());
            return ok(JoinTokenReply{creds_.joinToken()});
        });
        adminRoute(s, "GET", "/metrics", [&](const Request&) {
            Response res = reply(200, c.metrics(nowMs()));
            res.contentType = "text/plain; version=0.0.4";
            return res;
        });
        // The join: the token's secret buys a node certificate. No admin token,
        // and no client certificate yet.
        s.route("POST", "/v1/join", [&, now](const Request& r) { return join(r, now()); });
        s.webSocket(
            "/v1/node/session",
            [](const Request& r) -> std::optional<Response> {
                if (!r.peer.certCommonName || !r.peer.certOrganization || *r.peer.certOrganization != "hull:node")
                    return error(403, "forbidden: the node session needs a node certificate (hull node --join)");
                return std::nullopt;
            },
            api::WebSocketHandlers{
                [&](std::shared_ptr<api::WebSocketSession>) {},
                [&](const std::shared_ptr<api::WebSocketSession>& s, std::string text) {
                    c.sessionMessage(s, text, nowMs());
                    kick();
                },
                [&](const std::shared_ptr<api::WebSocketSession>& s) {
                    // Streams end with the node's session, not with a session refused or replaced.
                    if (c.sessionClosed(s, nowMs()) && s->peer().certCommonName) endStreamsOf(*s->peer().certCommonName);
                },
            });
        // `hull logs`: the client's WebSocket, relayed to and from the node
        // that holds the container over that node's session.
        c.onRelay([this](const std::string& node, const Value& m) { relay(node, m); });
        s.webSocket("/v1/logs", [this](const Request& r) { return admin(r); },
                    api::WebSocketHandlers{
                        [](std::shared_ptr<api::WebSocketSession>) {},
                        [this](const std::shared_ptr<api::WebSocketSession>& client, std::string text) { openStream(client, text); },
                        [this](const std::shared_ptr<api::WebSocketSession>& client) { closeStream(client); },
                    });
        // `hull exec`: likewise, both ways (stdin, resizes in; output, the exit out).
        s.webSocket("/v1/exec", [this](const Request& r) { return admin(r); },
                    api::WebSocketHandlers{
                        [](std::shared_ptr<api::WebSocketSession>) {},
                        [this](const std::shared_ptr<api::WebSocketSession>& client, std::string text) { execMessage(client, text); },
                        [this](const std::shared_ptr<api::WebSocketSession>& client) { closeStream(client); },
                    });
    }

    // ---- log streams ----

    /// The last message of CLIENT's stream, {"end": true, "error": WHY}, and the close.
    static void endClient(const std::shared_ptr<api::WebSocketSession>& client, const std::string& why) {
        Value v = Value::object();
        v.set("end", true);
        v.set("error", why);
        client->send(v.dump());
        client->close();
    }

    /// CLIENT's first message: {"container": Q, "tail": N, "follow": B}.
    void openStream(const std::shared_ptr<api::WebSocketSession>& client, const std::string& text) {
        if (streamOf_.count(client.get())) return;  // one request per session
        auto refuse = [&](const std::string& why) { endClient(client, why); };
        auto req = Value::parse(text);
        if (!req || !req->isObject()) return refuse("logs: expected {\"container\": ..., \"tail\": N, \"follow\": BOOL}");
        auto where = cluster_->locate(json::stringOf(*req, "container"));
        if (!where) return refuse(where.error().message());
        int64_t tail = -1;
        if (const Value* t = req->find("tail")) t->toInt64(tail);
        const Value* follow = req->find("follow");
        Value ask = Value::object();
        ask.set("tail", tail);
        ask.set("follow", follow && follow->isBool() && follow->asBool());
        startStream(client, *where, "logs", std::move(ask), "its logs cannot be read now");
    }

    /// ASK, of TYPE, to the node that holds the container WHERE names, under a
    /// new stream number for CLIENT; refused (UNREACHABLE said) when that node
    /// has no session.
    void startStream(const std::shared_ptr<api::WebSocketSession>& client, const std::pair<std::string, std::string>& where,
                     const char* type, Value ask, const std::string& unreachable) {
        int64_t id = nextStream_++;
        ask.set("type", type);
        ask.set("stream", id);
        ask.set("container", where.second);  // the full id
        if (!cluster_->sendToNode(where.first, ask.dump()))
            return endClient(client, "node " + where.first + " is not connected: " + unreachable);
        streams_[id] = {client, where.first, std::string(type) == "exec"};
        streamOf_[client.get()] = id;
    }

    /// An exec CLIENT's message: the first {"container", "args": [..], "tty", "interactive", "env": [..],
    /// "user", "rows", "cols"}; then {"stdin": BASE64}, {"eof": true}, {"resize": [rows, cols]}.
    void execMessage(const std::shared_ptr<api::WebSocketSession>& client, const std::string& text) {
        auto req = Value::parse(text);
        if (auto it = streamOf_.find(client.get()); it != streamOf_.end()) {
            auto s = streams_.find(it->second);
            if (!req || !req->isObject() || s == streams_.end()) return;
            Value out = Value::object();
            out.set("stream", it->second);
            if (const Value* d = req->find("stdin"); d && d->isString()) {
                out.set("type", "exec-input");
                out.set("data", d->asString());
            } else if (const Value* e = req->find("eof"); e && e->isBool()) {
                out.set("type", "exec-input");
                out.set("eof", e->asBool());
            } else if (const Value* r = req->find("resize"); r && r->isArray() && r->asArray().size() == 2) {
                out.set("type", "exec-resize");
                out.set("rows", r->asArray()[0]);
                out.set("cols", r->asArray()[1]);
            } else {
                return;
            }
            cluster_->sendToNode(s->second.node, out.dump());
            return;
        }
        auto refuse = [&](const std::string& why) { endClient(client, why); };
        if (!req || !req->isObject() || !req->find("args"))
            return refuse("exec: expected {\"container\": ..., \"args\": [...], \"tty\": BOOL, \"interactive\": BOOL}");
        auto where = cluster_->locate(json::stringOf(*req, "container"));
        if (!where) return refuse(where.error().message());
        // As the client asked, with the container's full id and our stream's.
        startStream(client, *where, "exec", *req, "cannot exec there now");
    }

    /// The client went away: the node stops reading (or ends the exec).
    void closeStream(const std::shared_ptr<api::WebSocketSession>& client) {
        auto it = streamOf_.find(client.get());
        if (it == streamOf_.end()) return;
        int64_t id = it->second;
        streamOf_.erase(it);
        auto s = streams_.find(id);
        if (s == streams_.end()) return;
        Value cancel = Value::object();
        cancel.set("type", s->second.exec ? "exec-cancel" : "logs-cancel");
        cancel.set("stream", id);
        cluster_->sendToNode(s->second.node, cancel.dump());
        streams_.erase(s);
    }

    /// A node's logs-data, logs-end, exec-data or exec-exit, for the client of its
    /// stream (a node feeds only its own streams).
    void relay(const std::string& node, const Value& m) {
        int64_t id = 0;
        if (const Value* v = m.find("stream"); !v || !v->toInt64(id)) return;
        auto s = streams_.find(id);
        if (s == streams_.end() || s->second.node != node) return;
        std::string type = json::stringOf(m, "type");
        Value out = Value::object();
        if (type == "exec-credit") {  // the command took BYTES of stdin: the client may send as many more
            out.set("credit", m.find("bytes") ? *m.find("bytes") : Value(int64_t(0)));
            s->second.client->send(out.dump());
            return;
        }
        if (type == "logs-data" || type == "exec-data") {
            const Value* e = m.find("stderr");
            out.set(e && e->isBool() && e->asBool() ? "stderr" : "data", json::stringOf(m, "data"));
            s->second.client->send(out.dump());
            return;
        }
        int64_t code = 0;
        const Value* c = m.find("code");
        std::string error = json::stringOf(m, "error");
        if (type == "exec-exit" && error.empty() && c && c->toInt64(code)) {
            out.set("exit", code);
        } else {
            out.set("end", true);
            out.set("error", error);
        }
        auto client = s->second.client;
        streamOf_.erase(client.get());
        streams_.erase(s);
        client->send(out.dump());
        client->close();
    }

    /// NODE's session ended: its streams end with that said.
    void endStreamsOf(const std::string& node) {
        for (auto it = streams_.begin(); it != streams_.end();) {
            if (it->second.node != node) {
                ++it;
                continue;
            }
            auto client = it->second.client;
            streamOf_.erase(client.get());
            it = streams_.erase(it);
            endClient(client, "node " + node + " went away");
        }
    }

    Response join(const Request& r, int64_t now) {
        auto body = Value::parse(r.body);
        if (!body || !body->isObject()) return error(400, "join: expected a JSON object {token, name, csr}");
        auto token = api::parseJoinToken(json::stringOf(*body, "token"));
        if (!token) return error(400, token.error().message());
        auto ours = api::certFingerprint(creds_.ca.cert);
        if (!ours) return error(500, ours.error().message());
        if (token->caHash != *ours) return error(401, "join: the token is for another cluster (its CA hash is not ours)");
        if (!api::constantTimeEqual(token->secret, creds_.joinSecret)) return error(401, "join: wrong or rotated join token");
        std::string name = json::stringOf(*body, "name");
        if (!validNodeName(name))
            return error(400, "join: node name \"" + name + "\": expected [a-z0-9][a-z0-9.-]{0,62}");
        auto cert = api::signNodeCsr(creds_.ca, json::stringOf(*body, "csr"), name);
        if (!cert) return error(400, "join: " + cert.error().message());
        auto fp = api::certFingerprint(*cert);
        if (!fp) return error(500, fp.error().message());
        if (auto reg = cluster_->registerNode(name, r.peer.address, now, *fp); !reg)
            return error(reg.error().errnum() == EEXIST ? 409 : 500, reg.error().message());
        Value v = Value::object();
        v.set("certificate", *cert);
        v.set("ca", creds_.ca.cert);
        return reply(200, v.dump());
    }

    /// A round as soon as the loop is free when something changed (an apply,
    /// a drain, a node's report): placements need not wait for the tick. Many
    /// changes in a burst share one round.
    void kick() {
        if (kicked_ || !cluster_->changed()) return;
        kicked_ = true;
        asio::post(ioc_, [this] {
            kicked_ = false;
            cluster_->reconcile(nowMs());
        });
    }

    // First: destroyed last, after everything that holds sockets or sessions on it.
    asio::io_context ioc_;
    bool kicked_ = false;
    struct LogStream {
        std::shared_ptr<api::WebSocketSession> client;
        std::string node;
        bool exec = false;  // a `hull exec` (else `hull logs`)
    };
    std::map<int64_t, LogStream> streams_;
    std::map<const api::WebSocketSession*, int64_t> streamOf_;
    int64_t nextStream_ = 1;
    MasterOptions o_;
    Credentials creds_;
    // The store and the leadership outlive the cluster that writes through them.
    std::unique_ptr<state::Store> inner_;     // etcd: the unfenced store the leadership campaigns on
    std::unique_ptr<Leadership> leadership_;  // etcd only
    std::unique_ptr<Cluster> cluster_;
    state::Store* shared_ = nullptr;  // etcd: the (fenced) store the masters share their credentials in
};

}  // namespace

Result<std::unique_ptr<Master>> Master::open(const MasterOptions& opts) {
    MasterOptions o = opts;
    if (o.name.empty()) o.name = hostName();
    TRY(sys::mkdirAll(o.stateDir, 0700));
    // The addresses the certificate must name: the listen address (unless it is
    // every address), those given, and the loopback names.
    std::string host = o.listen.substr(0, o.listen.rfind(':'));
    std::string port = o.listen.substr(o.listen.rfind(':') + 1);
    std::vector<std::string> sans = o.advertise;
    if (host != "0.0.0.0" && host != "::" && !host.empty()) sans.push_back(host);
    for (const char* n : {"127.0.0.1", "localhost"}) sans.push_back(n);
    sans.push_back(hostName());
    std::string url = "https://" + (o.advertise.empty() ? (host == "0.0.0.0" || host.empty() ? std::string("127.0.0.1") : host)
                                                        : o.advertise[0]) +
                      ":" + port;
    Credentials creds;
    ClusterOptions co;
    // The address plan, checked before anything is made: ranges that overlap
    // each other or a route of this host would send containers' traffic astray.
    co.clusterCidr = TRY_CTX("--cluster-cidr", netns::Cidr::parse(o.clusterCidr));
    co.serviceCidr = TRY_CTX("--service-cidr", netns::Cidr::parse(o.serviceCidr));
    TRY(core::checkAddressPlan(co.clusterCidr, co.serviceCidr, core::parseProcRoutes(sys::readFile("/proc/net/route").value_or(""))));
    std::unique_ptr<state::Store> store, inner;
    std::unique_ptr<Leadership> leadership;
    if (o.store.empty() || o.store == "sqlite") {
        creds = TRY(loadOrMakeCredentials(o.stateDir, sans, url));
        store = TRY(state::openSqlite(o.stateDir + "/state.db"));
    } else if (o.store.rfind("etcd://", 0) == 0) {
        state::EtcdOptions eo;
        const bool tls = !o.etcdCa.empty() || !o.etcdCert.empty();
        eo.endpoints = TRY(etcdEndpoints(o.store, tls));
        if (!o.etcdCa.empty()) eo.caPem = TRY_CTX("--etcd-ca", sys::readFile(o.etcdCa));
        if (!o.etcdCert.empty()) eo.certPem = TRY_CTX("--etcd-cert", sys::readFile(o.etcdCert));
        if (!o.etcdKey.empty()) eo.keyPem = TRY_CTX("--etcd-key", sys::readFile(o.etcdKey));
        // etcd not answering yet (booting with this host, no quorum, a link
        // that just came back) is waited for: a master started with its
        // cluster comes up as a standby when etcd does. Bad options fail at once.
        for (std::string said;;) {
            auto opened = state::openEtcd(eo);
            if (opened) {
                inner = std::move(*opened);
                break;
            }
            if (opened.error().errnum() != state::kUnavailable) return fail(std::move(opened).error());
            if (opened.error().message() != said)
                log::warnf("master %s: waiting for etcd: %s", o.name.c_str(), (said = opened.error().message()).c_str());
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
        LeadershipOptions lo;
        lo.self = {o.name, url};
        lo.onDeposed = [](const std::string& why) {
            Deposition& d = deposition();
            if (d.stopping) return;
            {
                std::lock_guard lock(d.mu);
                d.why = why;
            }
            log::errorf("master: no longer the leader (%s): stopping", why.c_str());
            ::kill(::getpid(), SIGTERM);  // the loop stops; run() returns the error
        };
        leadership = std::make_unique<Leadership>(*inner, lo);
        leadership->start();
        // A standby holds no state: it forwards the API to the leader
        // (master/standby.hpp) with the cluster's credentials, read from etcd
        // (made there by the first master), and loads the cluster's state only
        // once it leads, so that it is the latest.
        std::string said;
        std::unique_ptr<StandbyServer> standby;
        auto nextTry = std::chrono::steady_clock::now();
        Leadership* l = leadership.get();
        while (!leadership->isLeader()) {
            std::string now = leadership->leaderName().empty() ? "no leader yet" : "the leader is " + leadership->leaderName() +
                                                                                       " (" + leadership->leaderUrl() + ")";
            if (!leadership->lastError().empty()) now += "; " + leadership->lastError();
            if (now != said) log::infof("master %s: standby on %s: %s", o.name.c_str(), o.store.c_str(), (said = now).c_str());
            if (!standby && std::chrono::steady_clock::now() >= nextTry) {
                nextTry = std::chrono::steady_clock::now() + std::chrono::seconds(2);
                auto shared = loadOrMakeSharedCredentials(*inner, o.stateDir, sans, url);
                auto started = shared ? StandbyServer::start(*shared, StandbyOptions{o.name, o.listen,
                                                                                     [l] { return core::LeaderInfo{l->leaderName(), l->leaderUrl()}; },
                                                                                     [l] { return l->lastError(); }})
                                      : Result<std::unique_ptr<StandbyServer>>(fail(std::move(shared).error()));
                if (started) standby = std::move(*started);
                else log::warnf("master %s: standby: cannot serve yet (%s); retrying", o.name.c_str(), started.error().message().c_str());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        standby.reset();  // the port is the leader's server's from here
        log::infof("master %s: leading (term at revision %lld)", o.name.c_str(), (long long)leadership->fencingRevision());
        co.maxTxnOps = 100;  // etcd's --max-txn-ops is 128 by default
        store = std::make_unique<state::FencedStore>(*inner, core::kLeaderKey,
                                                     [l = leadership.get()] { return l->fencingRevision(); });
        // Read once it leads: the join secret may have been rotated meanwhile.
        creds = TRY(loadOrMakeSharedCredentials(*store, o.stateDir, sans, url));
    } else {
        return failInvalid("--store " + o.store + ": expected sqlite or etcd://HOST:PORT[,HOST:PORT...]");
    }
    co.heartbeat = o.heartbeat;
    co.grace = o.grace;
    co.failoverSilent = o.failoverAfter;
    state::Store* shared = leadership ? store.get() : nullptr;  // owned by the cluster from here
    auto cluster = TRY(Cluster::open(std::move(store), co, nowMs()));
    return std::unique_ptr<Master>(
        new MasterImpl(o, std::move(creds), std::move(inner), std::move(leadership), std::move(cluster), shared));
}

}  // namespace hull::orchestrator::master
