#pragma once
// What a standby master serves while another leads (masters on etcd): the
// same HTTPS port and certificate, every API call forwarded to the leader and
// its answer relayed, so a CLI or script that names any master works. A
// standby keeps no state of its own: a read is the leader's answer too, never
// a stale copy. What cannot be forwarded is refused with 503 and where the
// leader is: a node's join (the leader must see the node's own address) and
// the WebSockets (a node's session, `logs -f`, `exec`), whose clients move on
// through their list of masters by themselves. With no leader known (an
// election, or etcd without quorum), every call gets 503 and why.
#include <functional>
#include <memory>
#include <string>

#include "orchestrator/core/election.hpp"
#include "orchestrator/master/credentials.hpp"
#include "sys/error.hpp"

namespace hull::orchestrator::master {

struct StandbyOptions {
    std::string name;    // this master
    std::string listen;  // HOST:PORT, as the master will serve when it leads
    /// The leader as known now ({} when none), and why there is none.
    std::function<core::LeaderInfo()> leader;
    std::function<std::string()> why;
};

class StandbyServer {
public:
    /// Serves on a thread of its own from now until destroyed.
    [[nodiscard]] static Result<std::unique_ptr<StandbyServer>> start(const Credentials& creds, StandbyOptions options);
    /// Stops serving (calls being forwarded are cut) and frees the port.
    ~StandbyServer();
    StandbyServer(const StandbyServer&) = delete;
    StandbyServer& operator=(const StandbyServer&) = delete;

    struct Impl;

private:
    explicit StandbyServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace hull::orchestrator::master
