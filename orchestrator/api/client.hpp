#pragma once
// Where the CLI sends its requests: a master (HTTPS with the admin token of an
// admin.conf-shaped file) or the local node agent's unix socket.
//
// The target is, in order: --config FILE, $HULL_CONFIG, ~/.config/hull/config
// (when it exists), else the agent's socket (standalone).
#include <functional>
#include <string>
#include <vector>
#include <string_view>
#include <utility>

#include "sys/error.hpp"

namespace hull::orchestrator::api {

struct ApiTarget {
    std::string socket;           // standalone: the agent's unix socket
    std::string url, ca, token;   // a master: its URL, CA (PEM) and the admin token
    /// Several masters (admin.conf's "server": "https://m1:7443,https://m2:7443"):
    /// a request goes to the first that answers (a standby does not); url is the first.
    std::vector<std::string> urls;
    std::string config;           // the file they came from
    bool master() const { return !url.empty(); }
};

/// CONFIG_FLAG: --config's value ("" when not given). SOCKET: the agent's socket.
[[nodiscard]] Result<ApiTarget> resolveTarget(const std::string& configFlag, const std::string& socket);

/// One request; the status and body. Errors say which target could not be reached.
[[nodiscard]] Result<std::pair<int, std::string>> apiCall(const ApiTarget& t, const std::string& method,
                                                          const std::string& target, const std::string& body = "");

/// A request over a unix socket (the node agent's API).
[[nodiscard]] Result<std::pair<int, std::string>> unixRequest(const std::string& socketPath, const std::string& method,
                                                              const std::string& target, const std::string& body = "");

/// `hull logs` against a master T: the container QUERY's (id, unique id prefix
/// or name) last TAIL lines (all when negative) and, with FOLLOW, what it
/// writes until it ends; each piece to OUT as it comes. The master relays them
/// from the node that holds the container (WebSocket /v1/logs).
[[nodiscard]] Result<void> streamLogs(const ApiTarget& t, const std::string& query, long tail, bool follow,
                                      const std::function<void(std::string_view)>& out);

/// `hull exec` against a master T.
struct RemoteExec {
    std::string container;  // id, unique id prefix or name
    std::vector<std::string> args, env;
    std::string user;
    bool tty = false, interactive = false;
};

/// Runs X on the node that holds its container (WebSocket /v1/exec, relayed
/// over that node's session): with X.interactive our stdin goes to the
/// command, its output comes to our stdout (and, without a tty, its stderr to
/// ours). With X.tty and a terminal on stdin, that terminal is raw meanwhile
/// (restored on every way out, SIGINT, SIGTERM and SIGHUP included, which end
/// the command) and its size follows SIGWINCH. The command's exit code; an
/// error when it could not run (unknown container, one that does not run, its
/// node away).
[[nodiscard]] Result<int> execRemote(const ApiTarget& t, const RemoteExec& x);

}  // namespace hull::orchestrator::api
