#include "orchestrator/api/client.hpp"

#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <optional>

#include "orchestrator/api/https_client.hpp"
#include "sys/base64.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Result<ApiTarget> resolveTarget(const std::string& configFlag, const std::string& socket) {
    std::string file = configFlag;
    if (file.empty())
        if (const char* env = std::getenv("HULL_CONFIG"); env && *env) file = env;
    if (file.empty())
        if (const char* home = std::getenv("HOME"); home && *home) {
            std::string def = std::string(home) + "/.config/hull/config";
            if (::access(def.c_str(), F_OK) == 0) file = def;
        }
    ApiTarget t;
    if (file.empty()) {
        t.socket = socket;
        return t;
    }
    auto text = sys::readFile(file);
    if (!text) return fail(std::move(text).error().context("config"));
    auto v = json::Value::parse(*text);
    if (!v) return fail(std::move(v).error().context("config " + file));
    t.config = file;
    t.url = json::stringOf(*v, "server");
    t.ca = json::stringOf(*v, "ca");
    t.token = json::stringOf(*v, "token");
    if (t.url.empty() || t.ca.empty() || t.token.empty())
        return failInvalid("config " + file + ": expected \"server\", \"ca\" and \"token\" (the shape of a master's admin.conf)");
    while (!t.url.empty() && t.url.back() == '/') t.url.pop_back();
    return t;
}

Result<std::pair<int, std::string>> apiCall(const ApiTarget& t, const std::string& method, const std::string& target,
                                            const std::string& body) {
    if (!t.master()) return unixRequest(t.socket, method, target, body);
    ClientOptions o;
    o.caPem = t.ca;
    o.bearerToken = t.token;
    auto r = httpsRequest(method, t.url + target, body, o);
    if (!r) return fail(std::move(r).error().context("cannot reach the master (" + t.config + ")"));
    return std::make_pair(r->status, r->body);
}

Result<std::pair<int, std::string>> unixRequest(const std::string& socketPath, const std::string& method,
                                                const std::string& target, const std::string& body) {
    asio::io_context ioc;
    asio::local::stream_protocol::socket sock(ioc);
    beast::error_code ec;
    sock.connect(asio::local::stream_protocol::endpoint(socketPath), ec);
    if (ec)
        return fail(Error::plain(ECONNREFUSED, "cannot reach the node agent at " + socketPath + ": " + ec.message() +
                                                   " (is `hull node` running? For a cluster: --config admin.conf or $HULL_CONFIG)"));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "hull-node");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(sock, req, ec);
    if (ec) return fail(Error::plain(EIO, "node agent: " + ec.message()));
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res, ec);
    if (ec && ec != http::error::end_of_stream) return fail(Error::plain(EIO, "node agent: " + ec.message()));
    return std::make_pair(int(res.result_int()), res.body());
}

Result<void> streamLogs(const ApiTarget& t, const std::string& query, long tail, bool follow,
                        const std::function<void(std::string_view)>& out) {
    if (!t.master()) return failInvalid("logs: not a master target");
    ClientOptions o;
    o.caPem = t.ca;
    o.bearerToken = t.token;
    // A master that dies while a follow is quiet is noticed within seconds.
    o.wsPingEvery = std::chrono::milliseconds(5000);
    std::string url = t.url;
    url.replace(0, url.find("://"), "wss");
    asio::io_context ioc;
    std::optional<Error> failure;
    bool ended = false;
    std::shared_ptr<WebSocketClient> ws;
    ws = WebSocketClient::create(
        ioc, url + "/v1/logs", o,
        {[&] {
             json::Value req = json::Value::object();
             req.set("container", query);
             req.set("tail", int64_t(tail));
             req.set("follow", follow);
             ws->send(req.dump());
         },
         [&](std::string text) {
             auto m = json::Value::parse(text);
             if (!m || !m->isObject()) return;
             if (const json::Value* d = m->find("data"); d && d->isString()) {
                 auto bytes = sys::base64Decode(d->asString());
                 if (bytes) out(*bytes);
                 else failure = Error::plain(EPROTO, "logs: the master sent bad data: " + bytes.error().message());
                 return;
             }
             if (const json::Value* e = m->find("end"); e && e->isBool()) {
                 ended = true;
                 if (std::string why = json::stringOf(*m, "error"); !why.empty()) failure = Error::plain(ENOENT, why);
                 ws->close();
             }
         },
         [&](const std::string& why) {
             if (!ended && !failure)
                 failure = Error::plain(EIO, "logs: the stream ended early: " + why + " (" + t.config + ")");
         }});
    ws->connect();
    ioc.run();
    ws.reset();
    if (failure) return fail(*failure);
    return {};
}

}  // namespace hull::orchestrator::api
