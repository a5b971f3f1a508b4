#pragma once
// The master's credentials, made on its first start under STATE/pki/ and read
// back on every later one: the cluster CA, the master's server certificate, the
// admin token and the join secret; STATE/admin.conf (0600: the API's URL, the CA
// and the admin token, what the CLI reads) and STATE/join-token (0600: the
// token nodes join with, HULL1.<sha256 of the CA>.<secret>).
#include <string>
#include <vector>

#include "orchestrator/api/pki.hpp"
#include "orchestrator/state/store.hpp"
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

/// Masters sharing a store (etcd) share the cluster's credentials: the CA (its
/// key too: any leader signs node certificates), the admin token and the join
/// secret live in the store under kSharedPki, made by whichever master comes
/// first (create if absent). Each master makes its own server certificate from
/// that CA for SANS, and writes STATE/pki, STATE/admin.conf (URL) and
/// STATE/join-token as loadOrMakeCredentials does: one admin.conf, or one
/// join token, works with every master. The CA key is as safe as the store:
/// give etcd TLS with client certificates.
inline constexpr const char* kSharedPki = "/hull/pki";
[[nodiscard]] Result<Credentials> loadOrMakeSharedCredentials(state::Store& store, const std::string& stateDir,
                                                              const std::vector<std::string>& sans, const std::string& url);

/// A new join secret, kept in STATE/pki and STATE/join-token (`hull cluster join-token --rotate`),
/// and in SHARED (kSharedPki) when the masters share a store.
[[nodiscard]] Result<void> rotateJoinSecret(const std::string& stateDir, Credentials& c, state::Store* shared = nullptr);

}  // namespace hull::orchestrator::master
