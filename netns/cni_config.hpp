#pragma once
// hull-cni's network configuration (CNI 1.0 stdin), parsed without the kernel:
// the plugin's fields, host-local's "ipam" ranges and routes in hull's terms,
// and the "portMappings" capability. cli/hull_cni.cpp documents the fields;
// tests/fuzz/cni_fuzz.cpp feeds it any bytes.
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "netns/network.hpp"
#include "netns/port_spec.hpp"
#include "sys/json.hpp"

namespace hull::netns::cni {

inline constexpr const char* kVersion = "1.0.0";
inline constexpr const char* kSupported[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};

// CNI spec "Error": well-known codes.
enum Code {
    kIncompatibleVersion = 1,
    kUnsupportedField = 2,
    kUnknownContainer = 3,
    kInvalidEnv = 4,
    kIoFailure = 5,
    kDecodeFailure = 6,
    kInvalidConfig = 7,
    kTryAgainLater = 11,
};

/// What the plugin prints as its CNI error.
struct CniError {
    int code = 0;
    std::string msg, details;
};

struct Config {
    std::string cniVersion, name;
    std::string stateDir;
    NetworkConfig net;
    bool defaultRoute6 = true;
    std::vector<PortMapping> ports;
    json::Value prevResult;
};

/// Parse the network configuration. DEFAULT_STATE_DIR is used when it names none.
[[nodiscard]] tl::expected<Config, CniError> parseConfig(const std::string& text, const std::string& defaultStateDir);

}  // namespace hull::netns::cni
