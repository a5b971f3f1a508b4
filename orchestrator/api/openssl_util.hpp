#pragma once
// Internal to hull_api (pki, https_server, https_client): RAII owners for
// OpenSSL's objects, PEM in and out, and chain verification. Not for callers
// outside orchestrator/api: they speak PEM strings (pki.hpp).
#include <memory>
#include <optional>
#include <string>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sys/error.hpp"

namespace hull::orchestrator::api::ossl {

template <auto Free>
struct Deleter {
    template <class T>
    void operator()(T* p) const { Free(p); }
};
struct CertStackDeleter {
    void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Req = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BigNum = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using GeneralNames = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using CertStack = std::unique_ptr<STACK_OF(X509), CertStackDeleter>;

/// OpenSSL's error queue as text ("reason; reason"), emptied; FALLBACK when it is empty.
std::string drainErrors(const std::string& fallback = "unknown OpenSSL error");

/// The first certificate in PEM; WHAT names it in the error ("CA certificate: no PEM certificate").
[[nodiscard]] Result<Cert> readCert(const std::string& pem, const std::string& what);
/// The private key in PEM (PKCS#8 or traditional).
[[nodiscard]] Result<PKey> readKey(const std::string& pem, const std::string& what);
std::string certToPem(X509* cert);
std::string keyToPem(EVP_PKEY* key);

/// sha256 of CERT's DER, lowercase hex.
std::string fingerprint(X509* cert);
/// The subject's entry NID (NID_commonName, NID_organizationName) as UTF-8.
std::optional<std::string> subjectEntry(X509* cert, int nid);

/// Whether LEAF chains to the one trusted CA (through UNTRUSTED, may be null).
/// HOST, when not empty, must be one of the leaf's IP or DNS SANs (never its
/// CN: a node certificate's CN is a name the node chose); PURPOSE is an
/// X509_PURPOSE_* or 0 for any. Errors read "certificate verify failed: <why>".
[[nodiscard]] Result<void> verifyChain(X509* ca, X509* leaf, STACK_OF(X509) * untrusted, const std::string& host,
                                       int purpose);

/// Whether TEXT is an IPv4 or IPv6 address literal (no brackets).
bool isIpAddress(const std::string& text);

}  // namespace hull::orchestrator::api::ossl
