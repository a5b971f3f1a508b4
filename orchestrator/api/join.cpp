#include "orchestrator/api/join.hpp"

#include "orchestrator/api/https_client.hpp"
#include "orchestrator/api/messages.hpp"
#include "orchestrator/api/pki.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator::api {

using json::Value;

Result<NodeCredentials> requestJoin(const std::string& url, const std::string& token, const std::string& name) {
    auto parsed = TRY(parseJoinToken(token));
    std::string key;
    std::string csr = TRY(makeKeyAndCsr(name, key));
    ClientOptions co;
    co.pinCaSha256 = parsed.caHash;
    Value body = Value::object();
    body.set("token", token);
    body.set("name", name);
    body.set("csr", csr);
    auto r = httpsRequest("POST", url + "/v1/join", body.dump(), co);
    if (!r) return fail(std::move(r).error().context("join " + url));
    if (r->status == 503) {  // a standby master (or one without its store): another may take the join
        auto e = decode<ErrorReply>(r->body);
        return fail(Error::plain(EAGAIN, "join " + url + ": unavailable: " + (e ? e->message : r->body)));
    }
    if (r->status != 200) {
        auto e = decode<ErrorReply>(r->body);
        return failInvalid("join " + url + ": refused: " + (e ? e->message : r->body));
    }
    auto reply = Value::parse(r->body);
    if (!reply || !reply->isObject()) return failInvalid("join " + url + ": the master's answer is not JSON");
    NodeCredentials c{json::stringOf(*reply, "ca"), json::stringOf(*reply, "certificate"), key};
    if (c.cert.empty() || c.ca.empty()) return failInvalid("join " + url + ": the master's answer has no certificate");
    if (TRY(certFingerprint(c.ca)) != parsed.caHash)
        return failInvalid("join " + url + ": the master sent another CA than the token's");
    return c;
}

}  // namespace hull::orchestrator::api
