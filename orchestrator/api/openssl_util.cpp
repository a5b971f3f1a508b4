#include "orchestrator/api/openssl_util.hpp"

#include <climits>

#include <openssl/err.h>
#include <openssl/pem.h>

namespace hull::orchestrator::api::ossl {

std::string drainErrors(const std::string& fallback) {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        const char* reason = ERR_reason_error_string(e);
        std::string r = reason ? reason : "error " + std::to_string(ERR_GET_REASON(e));
        if (out.find(r) == std::string::npos) out += (out.empty() ? "" : "; ") + r;
    }
    return out.empty() ? fallback : out;
}

namespace {

Result<Bio> memBio(const std::string& pem, const std::string& what) {
    if (pem.size() > INT_MAX) return failInvalid(what + ": too large");
    Bio bio(BIO_new_mem_buf(pem.data(), int(pem.size())));
    if (!bio) return failInvalid(what + ": " + drainErrors("out of memory"));
    return bio;
}

std::string bioText(BIO* bio) {
    BUF_MEM* mem = nullptr;
    BIO_get_mem_ptr(bio, &mem);
    return mem ? std::string(mem->data, mem->length) : std::string();
}

}  // namespace

Result<Cert> readCert(const std::string& pem, const std::string& what) {
    Bio bio = TRY(memBio(pem, what));
    Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) return failInvalid(what + ": no PEM certificate (" + drainErrors() + ")");
    return cert;
}

Result<PKey> readKey(const std::string& pem, const std::string& what) {
    Bio bio = TRY(memBio(pem, what));
    // No passphrase callback: our keys are never encrypted, and OpenSSL's
    // default one would prompt on the terminal.
    PKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
    if (!key) return failInvalid(what + ": no PEM private key (" + drainErrors() + ")");
    return key;
}

std::string certToPem(X509* cert) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
    return bioText(bio.get());
}

std::string keyToPem(EVP_PKEY* key) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) return {};
    return bioText(bio.get());
}

std::string fingerprint(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1) return {};
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

std::optional<std::string> subjectEntry(X509* cert, int nid) {
    X509_NAME* name = X509_get_subject_name(cert);
    int idx = name ? X509_NAME_get_index_by_NID(name, nid, -1) : -1;
    if (idx < 0) return std::nullopt;
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n < 0) return std::nullopt;
    std::string out(reinterpret_cast<char*>(utf8), size_t(n));
    OPENSSL_free(utf8);
    return out;
}

Result<void> verifyChain(X509* ca, X509* leaf, STACK_OF(X509) * untrusted, const std::string& host, int purpose) {
    Store store(X509_STORE_new());
    StoreCtx ctx(X509_STORE_CTX_new());
    if (!store || !ctx || X509_STORE_add_cert(store.get(), ca) != 1 ||
        X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted) != 1)
        return fail(Error::plain(EIO, "certificate verify failed: " + drainErrors()));
    if (purpose && X509_STORE_CTX_set_purpose(ctx.get(), purpose) != 1)
        return fail(Error::plain(EIO, "certificate verify failed: " + drainErrors()));
    if (!host.empty()) {
        X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        int ok = isIpAddress(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                                   : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
        if (ok != 1) return fail(Error::plain(EINVAL, "certificate verify failed: bad host name \"" + host + "\""));
    }
    if (X509_verify_cert(ctx.get()) != 1) {
        int err = X509_STORE_CTX_get_error(ctx.get());
        ERR_clear_error();
        return fail(Error::plain(EPERM, std::string("certificate verify failed: ") + X509_verify_cert_error_string(err)));
    }
    return {};
}

bool isIpAddress(const std::string& text) {
    ASN1_OCTET_STRING* ip = a2i_IPADDRESS(text.c_str());
    if (!ip) {
        ERR_clear_error();
        return false;
    }
    ASN1_OCTET_STRING_free(ip);
    return true;
}

}  // namespace hull::orchestrator::api::ossl
