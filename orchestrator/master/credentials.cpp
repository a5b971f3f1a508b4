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

Result<void> rotateJoinSecret(const std::string& stateDir, Credentials& c) {
    std::string secret = api::randomSecret(16);
    TRY(writeSecret(stateDir + "/pki/join-secret", secret));
    c.joinSecret = secret;
    return writeSecret(stateDir + "/join-token", c.joinToken());
}

}  // namespace hull::orchestrator::master
