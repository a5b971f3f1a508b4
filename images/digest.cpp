#include "images/digest.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include "sys/unique_fd.hpp"

namespace hull::images {

Result<Digest> Digest::parse(std::string_view s) {
    auto colon = s.find(':');
    if (colon == std::string_view::npos) return failInvalid("digest \"" + std::string(s) + "\": expected ALGORITHM:HEX");
    Digest d;
    d.algorithm = std::string(s.substr(0, colon));
    d.hex = std::string(s.substr(colon + 1));
    if (d.algorithm != "sha256")
        return failInvalid("digest \"" + std::string(s) + "\": only sha256 is supported");
    if (d.hex.size() != 64) return failInvalid("digest \"" + std::string(s) + "\": sha256 has 64 hex digits");
    for (char c : d.hex)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return failInvalid("digest \"" + std::string(s) + "\": not lowercase hex");
    return d;
}

struct Sha256::Impl {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) { EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr); }
Sha256::~Sha256() = default;
void Sha256::update(const void* data, size_t n) { EVP_DigestUpdate(impl_->ctx, data, n); }

Digest Sha256::finish() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(impl_->ctx, md, &len);
    static const char* hexd = "0123456789abcdef";
    Digest d;
    for (unsigned i = 0; i < len; ++i) {
        d.hex += hexd[md[i] >> 4];
        d.hex += hexd[md[i] & 15];
    }
    return d;
}

Result<std::pair<Digest, uint64_t>> digestFile(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return failErrno("open " + path);
    Sha256 h;
    uint64_t total = 0;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return failErrno("read " + path);
        }
        if (n == 0) break;
        h.update(buf, size_t(n));
        total += uint64_t(n);
    }
    return std::make_pair(h.finish(), total);
}

Digest digestOf(std::string_view data) {
    Sha256 h;
    h.update(data.data(), data.size());
    return h.finish();
}

}  // namespace hull::images
