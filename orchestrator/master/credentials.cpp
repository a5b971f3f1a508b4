#include "orchestrator/master/credentials.hpp"

#include <unistd.h>

#include "sys/fs.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator::master {

namespace {

/// A file's text without its trailing newline.
Result<std::string> readTrimmed(const std::string& path) {
    auto text = TRY(sys::readFile(path));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

Result<void> writeSecret(const std::string& path, const std::string& text) {
    return sys::writeFileDurable(path, text + "\n", 0600);
}

Result<void> writeAdminConf(const std::string& stateDir, const Credentials& c, const std::string& url) {
    json::Value v = json::Value::object();
    v.set("server", url);
    v.set("ca", c.ca.cert);
    v.set("token", c.adminToken);
    return writeSecret(stateDir + "/admin.conf", v.dump(true));
}

}  // namespace

Result<Credentials> loadOrMakeCredentials(const std::string& stateDir, const std::vector<std::string>& sans,
                                          const std::string& url) {
    const std::string pki = stateDir + "/pki";
    TRY(sys::mkdirAll(pki, 0700));
    Credentials c;
    if (::access((pki + "/ca.pem").c_str(), F_OK) == 0) {
        c.ca = {TRY(sys::readFile(pki + "/ca.pem")), TRY(sys::readFile(pki + "/ca.key"))};
        // The server certificate is made anew at every start, for the addresses
        // given this time (a master moved to another address needs no manual step).
        c.server = TRY(api::makeServerCert(c.ca, "hull master", sans));
        TRY(sys::writeFileDurable(pki + "/server.pem", c.server.cert, 0644));
        TRY(writeSecret(pki + "/server.key", c.server.key));
        c.adminToken = TRY(readTrimmed(pki + "/admin-token"));
        c.joinSecret = TRY(readTrimmed(pki + "/join-secret"));
        return c;
    }
    // First start. Everything is written before ca.pem, the file whose presence
    // says "made": a crash halfway makes it all again on the next start.
    c.ca = TRY(api::makeCa("hull cluster CA"));
    c.server = TRY(api::makeServerCert(c.ca, "hull master", sans));
    c.adminToken = api::randomSecret(32);
    c.joinSecret = api::randomSecret(16);
    TRY(writeSecret(pki + "/ca.key", c.ca.key));
    TRY(sys::writeFileDurable(pki + "/server.pem", c.server.cert, 0644));
    TRY(writeSecret(pki + "/server.key", c.server.key));
    TRY(writeSecret(pki + "/admin-token", c.adminToken));
    TRY(writeSecret(pki + "/join-secret", c.joinSecret));
    TRY(writeAdminConf(stateDir, c, url));
    TRY(writeSecret(stateDir + "/join-token", c.joinToken()));
    TRY(sys::writeFileDurable(pki + "/ca.pem", c.ca.cert, 0644));
    log::infof("master: made a cluster CA, %s/admin.conf and a join token", stateDir.c_str());
    return c;
}

namespace {

std::string sharedJson(const Credentials& c) {
    json::Value v = json::Value::object();
    v.set("ca", c.ca.cert);
    v.set("caKey", c.ca.key);
    v.set("adminToken", c.adminToken);
    v.set("joinSecret", c.joinSecret);
    return v.dump();
}

}  // namespace

Result<Credentials> loadOrMakeSharedCredentials(state::Store& store, const std::string& stateDir,
                                                const std::vector<std::string>& sans, const std::string& url) {
    const std::string pki = stateDir + "/pki";
    TRY(sys::mkdirAll(pki, 0700));
    Credentials c;
    auto got = TRY(store.range(kSharedPki));
    if (got.kvs.empty()) {
        // The first master: made here, kept only if no other master's came first.
        c.ca = TRY(api::makeCa("hull cluster CA"));
        c.adminToken = api::randomSecret(32);
        c.joinSecret = api::randomSecret(16);
        auto t = TRY(store.txn({state::Compare::createRevision(kSharedPki, state::Compare::Op::Equal, 0)},
                               {state::Op::put(kSharedPki, sharedJson(c))}, {state::Op::get(kSharedPki)}));
        if (t.succeeded) log::infof("master: made the cluster's CA and tokens, shared in the store (%s)", kSharedPki);
        else if (!t.ranges.empty()) got = t.ranges[0];
    }
    if (!got.kvs.empty()) {
        auto v = json::Value::parse(got.kvs[0].value);
        if (!v || !v->isObject()) return fail(Error::plain(EIO, std::string(kSharedPki) + " in the store is damaged"));
        c.ca = {json::stringOf(*v, "ca"), json::stringOf(*v, "caKey")};
        c.adminToken = json::stringOf(*v, "adminToken");
        c.joinSecret = json::stringOf(*v, "joinSecret");
        if (c.ca.cert.empty() || c.ca.key.empty() || c.adminToken.empty() || c.joinSecret.empty())
            return fail(Error::plain(EIO, std::string(kSharedPki) + " in the store lacks a field"));
    }
    c.server = TRY(api::makeServerCert(c.ca, "hull master", sans));
    TRY(writeSecret(pki + "/ca.key", c.ca.key));
    TRY(sys::writeFileDurable(pki + "/server.pem", c.server.cert, 0644));
    TRY(writeSecret(pki + "/server.key", c.server.key));
    TRY(writeSecret(pki + "/admin-token", c.adminToken));
    TRY(writeSecret(pki + "/join-secret", c.joinSecret));
    TRY(writeAdminConf(stateDir, c, url));
    TRY(writeSecret(stateDir + "/join-token", c.joinToken()));
    TRY(sys::writeFileDurable(pki + "/ca.pem", c.ca.cert, 0644));
    return c;
}

Result<void> rotateJoinSecret(const std::string& stateDir, Credentials& c, state::Store* shared) {
    std::string secret = api::randomSecret(16);
    if (shared) {
        Credentials next = c;
        next.joinSecret = secret;
        TRY(shared->put(kSharedPki, sharedJson(next)));
    }
    TRY(writeSecret(stateDir + "/pki/join-secret", secret));
    c.joinSecret = secret;
    return writeSecret(stateDir + "/join-token", c.joinToken());
}

}  // namespace hull::orchestrator::master
