#pragma once
// The master's credentials, made on its first start under STATE/pki/ and read
// back on every later one: the cluster CA, the master's server certificate, the
// admin token and the join secret; STATE/admin.conf (0600: the API's URL, the CA
// and the admin token, what the CLI reads) and STATE/join-token (0600: the
// token nodes join with, HULL1.<sha256 of the CA>.<secret>).
#include <string>
#include <vector>

#include "orchestrator/api/pki.hpp"
#include "sys/error.hpp"

namespace hull::orchestrator::master {

struct Credentials {
    api::Pem ca;            // the cluster CA (key included: the master signs node certificates)
    api::Pem server;        // the master's TLS certificate, signed by the CA
    std::string adminToken;
    std::string joinSecret;
    std::string joinToken() const { return api::makeJoinToken(ca.cert, joinSecret); }
};

/// Load STATE/pki, or make it (and admin.conf and join-token) when absent.
/// SANS go into a newly made server certificate (the addresses nodes and the
/// CLI dial); URL is what admin.conf names as the server.
[[nodiscard]] Result<Credentials> loadOrMakeCredentials(const std::string& stateDir, const std::vector<std::string>& sans,
                                                        const std::string& url);

/// A new join secret, kept in STATE/pki and STATE/join-token (`hull cluster join-token --rotate`).
[[nodiscard]] Result<void> rotateJoinSecret(const std::string& stateDir, Credentials& c);

}  // namespace hull::orchestrator::master
