#pragma once
// The node's side of a join (orchestrator/README.md, "Join"): the master proves
// itself first (its CA must hash to the token's before the secret leaves this
// host), then a CSR buys a node certificate. The agent's link and
// hull-simnodes both join through this.
#include <string>

#include "sys/error.hpp"

namespace hull::orchestrator::api {

/// What a joined node speaks mutual TLS with (PEM).
struct NodeCredentials {
    std::string ca, cert, key;
};

/// Join the master at URL (https://HOST:PORT) as NAME with TOKEN. Errors say
/// "join URL: ..." (refused, with the master's reason; the CA not the token's).
[[nodiscard]] Result<NodeCredentials> requestJoin(const std::string& url, const std::string& token, const std::string& name);

}  // namespace hull::orchestrator::api
