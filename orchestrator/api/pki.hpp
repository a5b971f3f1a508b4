#pragma once
// The cluster's PKI (orchestrator/README.md, "The cluster protocol"): one CA
// (ECDSA P-256), the master's server certificate, node certificates issued on
// join, and the join token that pins the CA.
//
// Everything is PEM in std::string: the master keeps these under STATE/pki/,
// the node under STATE/cluster/, and the JSON messages carry them as strings.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "sys/error.hpp"

namespace hull::orchestrator::api {

/// A certificate and its private key (PKCS#8), both PEM.
struct Pem {
    std::string cert, key;
};

/// The organisation of every node certificate: a client certificate with it is a node.
inline constexpr const char* kNodeOrganization = "hull:node";

/// A self-signed CA: ECDSA P-256, valid 10 years, basicConstraints CA:TRUE
/// (critical), keyUsage keyCertSign + cRLSign, a subject key identifier.
[[nodiscard]] Result<Pem> makeCa(const std::string& commonName);

/// A server certificate signed by CA, valid 2 years, extendedKeyUsage serverAuth.
/// Each of SANS that reads as an IPv4 or IPv6 address becomes an IP SAN, any
/// other a DNS SAN. Random 128-bit serial.
[[nodiscard]] Result<Pem> makeServerCert(const Pem& ca, const std::string& commonName,
                                         const std::vector<std::string>& sans);

/// The node's side of a join: a fresh P-256 key (into KEY_PEM_OUT) and a CSR
/// for it (returned, PEM) with CN=COMMON_NAME.
[[nodiscard]] Result<std::string> makeKeyAndCsr(const std::string& commonName, std::string& keyPemOut);

/// The master's side of a join: a node certificate for the key in CSR_PEM.
/// The CSR must carry a valid signature (proof that its sender holds the key),
/// and a key of at least 112 bits of strength; its subject and requested
/// extensions are ignored: the certificate says CN=NODE_NAME, O=hull:node,
/// extendedKeyUsage clientAuth + serverAuth, valid 1 year.
[[nodiscard]] Result<std::string> signNodeCsr(const Pem& ca, const std::string& csrPem, const std::string& nodeName);

/// Whether CERT_PEM chains to CA_PEM (OpenSSL's verification, at the current time).
/// The error says why not ("certificate verify failed: unable to get local issuer certificate").
[[nodiscard]] Result<void> verifyCertificate(const std::string& caPem, const std::string& certPem);

/// sha256 of the certificate's DER, lowercase hex (`openssl x509 -outform der | sha256sum`).
[[nodiscard]] Result<std::string> certFingerprint(const std::string& certPem);
/// The subject's commonName; an error when the certificate has none.
[[nodiscard]] Result<std::string> certCommonName(const std::string& certPem);
/// The subject's organizationName; an error when the certificate has none.
[[nodiscard]] Result<std::string> certOrganization(const std::string& certPem);

/// A join token: `HULL1.<certFingerprint(CA)>.<secret>`. An empty string when
/// CA_PEM is no certificate (the master made it itself: a bug).
std::string makeJoinToken(const std::string& caPem, const std::string& secret);

struct JoinToken {
    std::string caHash;  // 64 lowercase hex digits
    std::string secret;
};
/// TOKEN split into its parts; "join token: expected HULL1.<64 hex>.<secret>" and
/// a word on what is wrong for anything else. Uppercase hex is accepted and lowered.
[[nodiscard]] Result<JoinToken> parseJoinToken(const std::string& token);

/// BYTES random bytes (RAND_bytes) as lowercase hex: secrets, admin tokens.
std::string randomSecret(size_t bytes = 16);

/// Equality of two secrets in time that depends only on their lengths (CRYPTO_memcmp):
/// an attacker timing the comparison of a token learns nothing of its prefix.
bool constantTimeEqual(std::string_view a, std::string_view b);

}  // namespace hull::orchestrator::api
