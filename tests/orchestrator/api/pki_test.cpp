#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <string>

#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "orchestrator/api/openssl_util.hpp"
#include "orchestrator/api/pki.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::orchestrator::api;

namespace {

ossl::Cert parse(const std::string& pem) {
    auto c = ossl::readCert(pem, "test");
    REQUIRE(c);
    return std::move(*c);
}

/// The certificate's SANs as "IP:1.2.3.4" / "DNS:name" (IPv6 as 16 raw bytes' length).
std::set<std::string> sansOf(X509* x) {
    std::set<std::string> out;
    auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
        GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
        int type = 0;
        auto* v = static_cast<ASN1_STRING*>(GENERAL_NAME_get0_value(g, &type));
        std::string data(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)), size_t(ASN1_STRING_length(v)));
        if (type == GEN_DNS) out.insert("DNS:" + data);
        if (type == GEN_IPADD && data.size() == 4)
            out.insert("IP:" + std::to_string(uint8_t(data[0])) + "." + std::to_string(uint8_t(data[1])) + "." +
                       std::to_string(uint8_t(data[2])) + "." + std::to_string(uint8_t(data[3])));
        if (type == GEN_IPADD && data.size() == 16) out.insert("IP6:" + std::to_string(uint8_t(data[15])));
    }
    GENERAL_NAMES_free(names);
    return out;
}

/// A CSR that asks for more than a node may have: O=hull:admin and CA:TRUE.
std::string greedyCsr(std::string& keyPem) {
    ossl::PKey key(EVP_EC_gen("P-256"));
    REQUIRE(key);
    keyPem = ossl::keyToPem(key.get());
    ossl::Req req(X509_REQ_new());
    X509_NAME* n = X509_REQ_get_subject_name(req.get());
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("admin"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("hull:admin"), -1, -1, 0);
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE"));
    REQUIRE(X509_REQ_add_extensions(req.get(), exts) == 1);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_set_pubkey(req.get(), key.get());
    REQUIRE(X509_REQ_sign(req.get(), key.get(), EVP_sha256()) > 0);
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509_REQ(bio.get(), req.get());
    BUF_MEM* mem = nullptr;
    BIO_get_mem_ptr(bio.get(), &mem);
    return std::string(mem->data, mem->length);
}

/// Days from now until the certificate expires.
int daysLeft(X509* x) {
    int days = 0, secs = 0;
    REQUIRE(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(x)) == 1);
    return days;
}

}  // namespace

TEST_CASE("pki: a CA signs a server and a node certificate that verify against it only", "[tls]") {
    auto ca = makeCa("hull cluster CA");
    REQUIRE(ca);
    auto other = makeCa("another CA");
    REQUIRE(other);

    auto caX = parse(ca->cert);
    CHECK(X509_check_ca(caX.get()) == 1);
    CHECK((X509_get_key_usage(caX.get()) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    CHECK(X509_get0_subject_key_id(caX.get()) != nullptr);
    CHECK(daysLeft(caX.get()) >= 3650);
    {
        int crit = -1;
        auto* bc = static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(caX.get(), NID_basic_constraints, &crit, nullptr));
        REQUIRE(bc);
        CHECK(bc->ca);
        CHECK(crit == 1);
        BASIC_CONSTRAINTS_free(bc);
    }
    ossl::PKey caKey = *ossl::readKey(ca->key, "test");
    CHECK(EVP_PKEY_is_a(caKey.get(), "EC"));
    CHECK(EVP_PKEY_get_bits(caKey.get()) == 256);

    auto server = makeServerCert(*ca, "master-1", {"10.250.0.1", "::1", "[fd00::5]", "localhost", "master-1.example"});
    REQUIRE(server);
    auto sx = parse(server->cert);
    CHECK(sansOf(sx.get()) ==
          std::set<std::string>{"IP:10.250.0.1", "IP6:1", "IP6:5", "DNS:localhost", "DNS:master-1.example"});
    CHECK((X509_get_extended_key_usage(sx.get()) & XKU_SSL_SERVER) != 0);
    CHECK((X509_get_extended_key_usage(sx.get()) & XKU_SSL_CLIENT) == 0);
    CHECK(X509_check_ca(sx.get()) == 0);
    CHECK(daysLeft(sx.get()) >= 2 * 365 - 1);
    CHECK(daysLeft(sx.get()) < 2 * 365 + 1);
    CHECK(*certCommonName(server->cert) == "master-1");
    CHECK(X509_check_private_key(sx.get(), ossl::readKey(server->key, "test")->get()) == 1);
    // Two certificates never share a serial.
    auto server2 = makeServerCert(*ca, "master-1", {"10.250.0.1"});
    REQUIRE(server2);
    CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(sx.get()), X509_get0_serialNumber(parse(server2->cert).get())) != 0);

    std::string nodeKey;
    auto csr = makeKeyAndCsr("n1", nodeKey);
    REQUIRE(csr);
    auto node = signNodeCsr(*ca, *csr, "n1");
    REQUIRE(node);
    auto nx = parse(*node);
    CHECK(*certCommonName(*node) == "n1");
    CHECK(*certOrganization(*node) == kNodeOrganization);
    CHECK((X509_get_extended_key_usage(nx.get()) & (XKU_SSL_CLIENT | XKU_SSL_SERVER)) == (XKU_SSL_CLIENT | XKU_SSL_SERVER));
    CHECK(daysLeft(nx.get()) >= 364);
    CHECK(daysLeft(nx.get()) < 366);
    CHECK(X509_check_private_key(nx.get(), ossl::readKey(nodeKey, "test")->get()) == 1);

    CHECK(verifyCertificate(ca->cert, ca->cert));
    CHECK(verifyCertificate(ca->cert, server->cert));
    CHECK(verifyCertificate(ca->cert, *node));
    auto wrong = verifyCertificate(other->cert, server->cert);
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().message() == "certificate verify failed: unable to get local issuer certificate");
    CHECK_FALSE(verifyCertificate(other->cert, *node));
    CHECK_FALSE(certOrganization(server->cert));  // only node certificates carry one
}

TEST_CASE("pki: a node certificate ignores the CSR's subject and extensions", "[tls]") {
    auto ca = makeCa("hull cluster CA");
    REQUIRE(ca);
    std::string key;
    std::string csr = greedyCsr(key);
    auto cert = signNodeCsr(*ca, csr, "n7");
    REQUIRE(cert);
    CHECK(*certCommonName(*cert) == "n7");
    CHECK(*certOrganization(*cert) == "hull:node");
    auto x = parse(*cert);
    CHECK(X509_check_ca(x.get()) == 0);
    CHECK(X509_NAME_entry_count(X509_get_subject_name(x.get())) == 2);
    CHECK(X509_check_private_key(x.get(), ossl::readKey(key, "test")->get()) == 1);

    SECTION("a CSR whose signature does not verify is refused") {
        // Flip one character inside the base64 body (the signature sits at its end).
        std::string bad = csr;
        size_t pos = bad.find("-----END") - 8;
        while (bad[pos] == '\n' || bad[pos] == '=') --pos;
        bad[pos] = bad[pos] == 'A' ? 'B' : 'A';
        auto r = signNodeCsr(*ca, bad, "n7");
        REQUIRE_FALSE(r);
        CHECK(r.error().message() == "node certificate for \"n7\": the request's signature does not verify");
    }
    SECTION("not a CSR, an empty name, a CA without its key") {
        CHECK(signNodeCsr(*ca, "hello", "n7").error().message().find("no PEM certificate request") != std::string::npos);
        CHECK_FALSE(signNodeCsr(*ca, csr, ""));
        CHECK_FALSE(signNodeCsr(*ca, csr, std::string(65, 'a')));
        auto other = makeCa("other");
        Pem mixed{ca->cert, other->key};
        CHECK(signNodeCsr(mixed, csr, "n7").error().message().find("the key does not belong") != std::string::npos);
        auto server = makeServerCert(*ca, "m", {"127.0.0.1"});
        CHECK(signNodeCsr(*server, csr, "n7").error().message().find("not a CA") != std::string::npos);
    }
}

TEST_CASE("pki: the fingerprint is stable and matches openssl x509 | sha256sum", "[tls]") {
    auto ca = makeCa("hull cluster CA");
    REQUIRE(ca);
    auto fp = certFingerprint(ca->cert);
    REQUIRE(fp);
    CHECK(fp->size() == 64);
    CHECK(fp->find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(*certFingerprint(ca->cert) == *fp);
    CHECK(*certFingerprint(makeCa("hull cluster CA")->cert) != *fp);  // a new key, a new CA
    CHECK_FALSE(certFingerprint("not a certificate"));

    std::string openssl;
    for (const char* p : {"/usr/bin/openssl", "/bin/openssl", "/usr/local/bin/openssl"})
        if (::access(p, X_OK) == 0) openssl = p;
    if (openssl.empty()) {
        WARN("no openssl CLI: the comparison with it is skipped");
        return;
    }
    test::TempDir dir("hull-pki");
    std::ofstream(dir / "ca.pem") << ca->cert;
    auto r = test::run({"/bin/sh", "-c", openssl + " x509 -in " + (dir / "ca.pem") + " -outform der | sha256sum"});
    REQUIRE(r.status == 0);
    CHECK(r.out.substr(0, 64) == *fp);
}

TEST_CASE("pki: join tokens", "[tls]") {
    auto ca = makeCa("hull cluster CA");
    REQUIRE(ca);
    std::string secret = randomSecret();
    CHECK(secret.size() == 32);
    CHECK(secret.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(randomSecret() != secret);
    CHECK(randomSecret(32).size() == 64);

    std::string token = makeJoinToken(ca->cert, secret);
    CHECK(token == "HULL1." + *certFingerprint(ca->cert) + "." + secret);
    auto t = parseJoinToken(token);
    REQUIRE(t);
    CHECK(t->caHash == *certFingerprint(ca->cert));
    CHECK(t->secret == secret);
    // Pasted with a newline, or with the hash in capitals: the same token.
    std::string upper = token;
    for (size_t i = 6; i < 70; ++i) upper[i] = char(std::toupper(static_cast<unsigned char>(upper[i])));
    CHECK(parseJoinToken(" " + upper + "\n")->caHash == t->caHash);
    CHECK(makeJoinToken("not a cert", secret).empty());

    std::string hash = t->caHash;
    const std::string shape = "join token: expected HULL1.<64 hex>.<secret>";
    struct Bad {
        std::string token, why;
    };
    for (const Bad& b : std::vector<Bad>{
             {"", "(it does not start with HULL1.)"},
             {"HULL2." + hash + ".s", "(it does not start with HULL1.)"},
             {"hull1." + hash + ".s", "(it does not start with HULL1.)"},
             {"HULL1." + hash, "(no secret after the CA hash)"},
             {"HULL1." + hash + ".", "(the secret is empty)"},
             {"HULL1." + hash.substr(1) + ".s", "(the CA hash is not 64 hex digits)"},
             {"HULL1." + hash + "0.s", "(the CA hash is not 64 hex digits)"},
             {"HULL1." + hash.substr(1) + "g.s", "(the CA hash is not 64 hex digits)"},
             {"HULL1." + hash + ".a b", "(the secret has blanks or non-ASCII characters)"},
         }) {
        INFO(b.token);
        auto r = parseJoinToken(b.token);
        REQUIRE_FALSE(r);
        CHECK(r.error().message() == shape + " " + b.why);
    }
}

TEST_CASE("pki: constant-time comparison", "[tls]") {
    CHECK(constantTimeEqual("abc", "abc"));
    CHECK(constantTimeEqual("", ""));
    CHECK_FALSE(constantTimeEqual("abc", "abd"));
    CHECK_FALSE(constantTimeEqual("abc", "abcd"));
    CHECK_FALSE(constantTimeEqual("", "a"));
}
