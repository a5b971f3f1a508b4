#pragma once
// Content addresses: "sha256:<64 hex>", and sha256 of files and streams (OpenSSL).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "sys/error.hpp"

namespace hull::images {

struct Digest {
    std::string algorithm = "sha256";
    std::string hex;  // lowercase, 64 characters for sha256
    /// "sha256:abc…"; anything else (other algorithms, bad hex, wrong length) is an error naming it.
    [[nodiscard]] static Result<Digest> parse(std::string_view s);
    std::string str() const { return algorithm + ":" + hex; }
    bool operator==(const Digest&) const = default;
    bool operator<(const Digest& o) const { return hex < o.hex; }
};

/// Incremental sha256.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, size_t n);
    Digest finish();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// sha256 of a whole file, and its size.
[[nodiscard]] Result<std::pair<Digest, uint64_t>> digestFile(const std::string& path);
Digest digestOf(std::string_view data);

}  // namespace hull::images
