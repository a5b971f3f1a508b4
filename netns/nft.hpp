#pragma once
// libnftables, for the netns library's own files (portmap, isolation): one
// script per call, run as one transaction (all of it or nothing).
#include <string>

#include "sys/error.hpp"

namespace hull::netns {

/// Run an nft script and return what it printed (JSON: in nft's JSON form);
/// errors carry nft's own message, after WHAT.
[[nodiscard]] Result<std::string> nftOutput(const std::string& script, const std::string& what, bool json = false);
[[nodiscard]] Result<void> runNft(const std::string& script, const std::string& what);
/// An error of nft's that says the table (or chain, set, element) is not there.
bool nftMissing(const Error& e);

}  // namespace hull::netns
