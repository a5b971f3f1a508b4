#pragma once
// The node agent's HTTP API on its unix socket, served asynchronously on the
// agent's io_context, between reconcile rounds: a client never holds up
// supervision. Each connection carries one request and gets one answer; it
// must send the whole request within the request deadline and take the answer
// within as long again, or it is closed (the time the agent takes to answer is
// not counted). Beyond the cap on connections, a new one is closed at once.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

#include <boost/asio/io_context.hpp>

#include "sys/error.hpp"

namespace hull::orchestrator {

struct ApiReply {
    int status = 200;
    std::string body;
    std::string contentType = "application/json";
};

struct ApiLimits {
    std::chrono::milliseconds deadline{5000};  // to send the request (headers and body), and to take the answer
    size_t maxConnections = 64;                // open at once; more are closed as soon as accepted
};

/// The gid of the group NAME in GROUPFILE (the format of /etc/group), read
/// directly, without NSS; nullopt when it is not there or cannot be read.
[[nodiscard]] std::optional<gid_t> groupIdInFile(const std::string& groupFile, const std::string& name);
/// The gid of the group NAME as `getent group NAME` prints it: NSS's answer,
/// from a child, so that NSS's modules are loaded there and not here.
[[nodiscard]] std::optional<gid_t> groupIdFromGetent(const std::string& name);

class ApiServer {
public:
    /// Sends the answer to a request: at once, or later (from the io_context's
    /// thread) for one that waits for something, such as a pull. Dropped
    /// without a call, the connection is closed.
    using Respond = std::function<void(ApiReply)>;
    /// Runs on the io_context's thread, between everything else it runs: it must not block.
    using Handler = std::function<void(const std::string& method, const std::string& target, const std::string& body,
                                       Respond respond)>;

    /// Listen on the unix socket PATH (a stale socket file there is replaced),
    /// mode 0660, group "hull" when there is one; serve with HANDLER on IOC.
    [[nodiscard]] static Result<std::unique_ptr<ApiServer>> listen(boost::asio::io_context& ioc, const std::string& path,
                                                                   Handler handler, ApiLimits limits = {});
    /// Stops accepting and removes the socket file; connections still open end
    /// with the io_context (they hold nothing of this object).
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    /// Connections open now.
    size_t connections() const;

    struct Impl;  // shared with the connections

private:
    explicit ApiServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<Impl> impl_;
};

}  // namespace hull::orchestrator
