#include "orchestrator/api/pki.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "orchestrator/api/openssl_util.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator::api {

namespace {

constexpr int kCaDays = 10 * 365 + 2;
constexpr int kServerDays = 2 * 365;
constexpr int kNodeDays = 365;
// Certificates start a few minutes in the past: a node whose clock runs a
// little behind the master's must not refuse a certificate issued "in the future".
constexpr long kBackdateSeconds = 5 * 60;
constexpr size_t kMaxCommonName = 64;  // RFC 5280's ub-common-name

Result<ossl::PKey> newKey() {
    ossl::PKey key(EVP_EC_gen("P-256"));
    if (!key) return fail(Error::plain(EIO, "generating a P-256 key: " + ossl::drainErrors()));
    return key;
}

Result<void> checkCommonName(const std::string& cn, const std::string& what) {
    if (cn.empty()) return failInvalid(what + ": empty name");
    if (cn.size() > kMaxCommonName)
        return failInvalid(what + ": name \"" + cn + "\" longer than " + std::to_string(kMaxCommonName) + " characters");
    for (unsigned char c : cn)
        if (c < 0x20 || c == 0x7f) return failInvalid(what + ": name \"" + cn + "\" has control characters");
    return {};
}

/// What an issued certificate says besides its key.
struct Profile {
    std::string commonName, organization;
    int days = 0;
    /// (nid, OpenSSL config value) in order; SKID/AKID come after.
    std::vector<std::pair<int, const char*>> extensions;
    ossl::GeneralNames sans;  // may be null
};

Result<void> addExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
    ossl::Extension ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
        return fail(Error::plain(EIO, std::string("certificate extension ") + OBJ_nid2sn(nid) + "=" + value + ": " +
                                          ossl::drainErrors()));
    return {};
}

Result<void> addName(X509_NAME* name, const char* field, const std::string& value) {
    if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                   int(value.size()), -1, 0) != 1)
        return fail(Error::plain(EINVAL, std::string("certificate subject ") + field + "=" + value + ": " +
                                             ossl::drainErrors()));
    return {};
}

/// A certificate for SUBJECT_KEY per PROFILE, signed by ISSUER_KEY; ISSUER null: self-signed.
Result<ossl::Cert> issue(EVP_PKEY* subjectKey, X509* issuer, EVP_PKEY* issuerKey, const Profile& p) {
    ossl::Cert cert(X509_new());
    if (!cert) return fail(Error::plain(ENOMEM, "new certificate: " + ossl::drainErrors()));
    X509* x = cert.get();
    if (X509_set_version(x, X509_VERSION_3) != 1) return fail(Error::plain(EIO, "certificate version: " + ossl::drainErrors()));

    // A random positive serial of 127 bits: unique without a counter to keep.
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return fail(Error::plain(EIO, "certificate serial: " + ossl::drainErrors()));
    raw[0] = (raw[0] & 0x7f) | 0x40;
    ossl::BigNum bn(BN_bin2bn(raw, sizeof raw, nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)))
        return fail(Error::plain(EIO, "certificate serial: " + ossl::drainErrors()));

    if (!X509_gmtime_adj(X509_getm_notBefore(x), -kBackdateSeconds) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), p.days, 0, nullptr))
        return fail(Error::plain(EIO, "certificate validity: " + ossl::drainErrors()));

    X509_NAME* subject = X509_get_subject_name(x);
    TRY(addName(subject, "CN", p.commonName));
    if (!p.organization.empty()) TRY(addName(subject, "O", p.organization));
    if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) != 1 ||
        X509_set_pubkey(x, subjectKey) != 1)
        return fail(Error::plain(EIO, "certificate subject: " + ossl::drainErrors()));

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
    for (auto [nid, value] : p.extensions) TRY(addExtension(x, &ctx, nid, value));
    if (p.sans && X509_add1_ext_i2d(x, NID_subject_alt_name, p.sans.get(), 0, X509V3_ADD_DEFAULT) != 1)
        return fail(Error::plain(EIO, "certificate subjectAltName: " + ossl::drainErrors()));
    TRY(addExtension(x, &ctx, NID_subject_key_identifier, "hash"));
    TRY(addExtension(x, &ctx, NID_authority_key_identifier, "keyid:always"));

    if (X509_sign(x, issuerKey, EVP_sha256()) <= 0)
        return fail(Error::plain(EIO, "signing the certificate: " + ossl::drainErrors()));
    return cert;
}

/// SANS as GENERAL_NAMES: IP literals (brackets allowed) as IP, the rest as DNS names.
Result<ossl::GeneralNames> subjectAltNames(const std::vector<std::string>& sans) {
    ossl::GeneralNames names(sk_GENERAL_NAME_new_null());
    if (!names) return fail(Error::plain(ENOMEM, "subjectAltName: " + ossl::drainErrors()));
    for (std::string san : sans) {
        if (san.size() > 2 && san.front() == '[' && san.back() == ']') san = san.substr(1, san.size() - 2);
        GENERAL_NAME* gen = GENERAL_NAME_new();
        if (!gen) return fail(Error::plain(ENOMEM, "subjectAltName: " + ossl::drainErrors()));
        if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(san.c_str())) {
            GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
        } else {
            ERR_clear_error();
            bool ok = !san.empty() && san.size() <= 253;
            for (unsigned char c : san) ok = ok && (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '*');
            ASN1_IA5STRING* dns = ok ? ASN1_IA5STRING_new() : nullptr;
            if (!dns || ASN1_STRING_set(dns, san.data(), int(san.size())) != 1) {
                ASN1_IA5STRING_free(dns);
                GENERAL_NAME_free(gen);
                return failInvalid("subjectAltName \"" + san + "\": neither an IP address nor a DNS name");
            }
            GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
        }
        if (sk_GENERAL_NAME_push(names.get(), gen) <= 0) {
            GENERAL_NAME_free(gen);
            return fail(Error::plain(ENOMEM, "subjectAltName: " + ossl::drainErrors()));
        }
    }
    return names;
}

struct LoadedCa {
    ossl::Cert cert;
    ossl::PKey key;
};

Result<LoadedCa> loadCa(const Pem& ca) {
    LoadedCa out{TRY(ossl::readCert(ca.cert, "CA certificate")), TRY(ossl::readKey(ca.key, "CA key"))};
    if (X509_check_private_key(out.cert.get(), out.key.get()) != 1) {
        ERR_clear_error();
        return failInvalid("CA: the key does not belong to the certificate");
    }
    if (X509_check_ca(out.cert.get()) == 0) return failInvalid("CA: the certificate is not a CA");
    return out;
}

std::string toHex(const unsigned char* p, size_t n) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
        out += hex[p[i] >> 4];
        out += hex[p[i] & 15];
    }
    return out;
}

}  // namespace

Result<Pem> makeCa(const std::string& commonName) {
    TRY(checkCommonName(commonName, "CA"));
    ossl::PKey key = TRY(newKey());
    Profile p;
    p.commonName = commonName;
    p.days = kCaDays;
    // pathlen:0: the cluster CA signs leaves only, never another CA.
    p.extensions = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                    {NID_key_usage, "critical,keyCertSign,cRLSign"}};
    ossl::Cert cert = TRY_CTX("CA", issue(key.get(), nullptr, key.get(), p));
    return Pem{ossl::certToPem(cert.get()), ossl::keyToPem(key.get())};
}

Result<Pem> makeServerCert(const Pem& ca, const std::string& commonName, const std::vector<std::string>& sans) {
    TRY(checkCommonName(commonName, "server certificate"));
    LoadedCa issuer = TRY(loadCa(ca));
    ossl::PKey key = TRY(newKey());
    Profile p;
    p.commonName = commonName;
    p.days = kServerDays;
    p.extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                    {NID_key_usage, "critical,digitalSignature"},
                    {NID_ext_key_usage, "serverAuth"}};
    if (!sans.empty()) p.sans = TRY_CTX("server certificate", subjectAltNames(sans));
    ossl::Cert cert = TRY_CTX("server certificate", issue(key.get(), issuer.cert.get(), issuer.key.get(), p));
    return Pem{ossl::certToPem(cert.get()), ossl::keyToPem(key.get())};
}

Result<std::string> makeKeyAndCsr(const std::string& commonName, std::string& keyPemOut) {
    TRY(checkCommonName(commonName, "certificate request"));
    ossl::PKey key = TRY(newKey());
    ossl::Req req(X509_REQ_new());
    if (!req) return fail(Error::plain(ENOMEM, "certificate request: " + ossl::drainErrors()));
    TRY_CTX("certificate request", addName(X509_REQ_get_subject_name(req.get()), "CN", commonName));
    if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 || X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
        X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0)
        return fail(Error::plain(EIO, "certificate request: " + ossl::drainErrors()));
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1)
        return fail(Error::plain(EIO, "certificate request: " + ossl::drainErrors()));
    BUF_MEM* mem = nullptr;
    BIO_get_mem_ptr(bio.get(), &mem);
    keyPemOut = ossl::keyToPem(key.get());
    return std::string(mem->data, mem->length);
}

Result<std::string> signNodeCsr(const Pem& ca, const std::string& csrPem, const std::string& nodeName) {
    const std::string what = "node certificate for \"" + nodeName + "\"";
    TRY(checkCommonName(nodeName, what));
    LoadedCa issuer = TRY_CTX(what, loadCa(ca));
    ossl::Bio bio(BIO_new_mem_buf(csrPem.data(), int(std::min<size_t>(csrPem.size(), INT_MAX))));
    ossl::Req req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!req) return failInvalid(what + ": no PEM certificate request (" + ossl::drainErrors() + ")");
    EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
    // The signature proves the sender holds the key it asks us to certify.
    if (!key || X509_REQ_verify(req.get(), key) != 1) {
        ERR_clear_error();
        return failInvalid(what + ": the request's signature does not verify");
    }
    if (EVP_PKEY_get_security_bits(key) < 112)
        return failInvalid(what + ": the request's key is too weak (" + std::to_string(EVP_PKEY_get_security_bits(key)) +
                           " bits of security; 112 at least)");
    Profile p;
    p.commonName = nodeName;
    p.organization = kNodeOrganization;
    p.days = kNodeDays;
    // serverAuth too: a node may serve its own endpoints (logs, exec) under the same identity.
    p.extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                    {NID_key_usage, "critical,digitalSignature"},
                    {NID_ext_key_usage, "clientAuth,serverAuth"}};
    ossl::Cert cert = TRY_CTX(what, issue(key, issuer.cert.get(), issuer.key.get(), p));
    return ossl::certToPem(cert.get());
}

Result<void> verifyCertificate(const std::string& caPem, const std::string& certPem) {
    ossl::Cert ca = TRY(ossl::readCert(caPem, "CA certificate"));
    ossl::Cert cert = TRY(ossl::readCert(certPem, "certificate"));
    return ossl::verifyChain(ca.get(), cert.get(), nullptr, "", 0);
}

Result<std::string> certFingerprint(const std::string& certPem) {
    ossl::Cert cert = TRY(ossl::readCert(certPem, "certificate"));
    std::string fp = ossl::fingerprint(cert.get());
    if (fp.empty()) return fail(Error::plain(EIO, "certificate fingerprint: " + ossl::drainErrors()));
    return fp;
}

Result<std::string> certCommonName(const std::string& certPem) {
    ossl::Cert cert = TRY(ossl::readCert(certPem, "certificate"));
    auto cn = ossl::subjectEntry(cert.get(), NID_commonName);
    if (!cn) return failInvalid("certificate: no common name in the subject");
    return *cn;
}

Result<std::string> certOrganization(const std::string& certPem) {
    ossl::Cert cert = TRY(ossl::readCert(certPem, "certificate"));
    auto o = ossl::subjectEntry(cert.get(), NID_organizationName);
    if (!o) return failInvalid("certificate: no organization in the subject");
    return *o;
}

std::string makeJoinToken(const std::string& caPem, const std::string& secret) {
    auto fp = certFingerprint(caPem);
    if (!fp) return {};
    return "HULL1." + *fp + "." + secret;
}

Result<JoinToken> parseJoinToken(const std::string& token) {
    static const std::string kShape = "join token: expected HULL1.<64 hex>.<secret>";
    // Tokens are pasted from terminals and files: surrounding blanks are no part of them.
    size_t b = token.find_first_not_of(" \t\r\n"), e = token.find_last_not_of(" \t\r\n");
    std::string t = b == std::string::npos ? std::string() : token.substr(b, e - b + 1);
    if (t.rfind("HULL1.", 0) != 0) return failInvalid(kShape + " (it does not start with HULL1.)");
    size_t dot = t.find('.', 6);
    if (dot == std::string::npos) return failInvalid(kShape + " (no secret after the CA hash)");
    JoinToken out{t.substr(6, dot - 6), t.substr(dot + 1)};
    bool hex = out.caHash.size() == 64;
    for (char& c : out.caHash) {
        hex = hex && std::isxdigit(static_cast<unsigned char>(c));
        c = char(std::tolower(static_cast<unsigned char>(c)));
    }
    if (!hex) return failInvalid(kShape + " (the CA hash is not 64 hex digits)");
    if (out.secret.empty()) return failInvalid(kShape + " (the secret is empty)");
    for (unsigned char c : out.secret)
        if (c <= 0x20 || c >= 0x7f) return failInvalid(kShape + " (the secret has blanks or non-ASCII characters)");
    return out;
}

std::string randomSecret(size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    if (bytes > 0 && RAND_bytes(raw.data(), int(bytes)) != 1) {
        // A secret we cannot make random must not be made at all: the system's
        // random source is broken, and nothing hull does is safe without it.
        log::errorf("api: RAND_bytes failed: %s", ossl::drainErrors().c_str());
        std::abort();
    }
    return toHex(raw.data(), raw.size());
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
    // The lengths are public (tokens have a fixed shape); only the contents are compared in constant time.
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace hull::orchestrator::api
