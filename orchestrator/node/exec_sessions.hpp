#pragma once
// `hull exec` against a cluster, the node's side: the master asks over the
// node's session with {"type": "exec", "stream": N, "container", "args": [..],
// "tty", "interactive", "env": [..], "user", "rows", "cols"}; the node runs the
// command as a child process (the agent's own binary as `hull exec`, so the
// container is entered exactly as a local `hull exec` enters it) and relays:
//   node → master  {"type": "exec-data", "stream", "data": BASE64, "stderr": true?}
//                  {"type": "exec-exit", "stream", "code": C, "error": ""}   (once, last)
//   master → node  {"type": "exec-input", "stream", "data": BASE64} or {..., "eof": true}
//                  {"type": "exec-resize", "stream", "rows", "cols"}
//                  {"type": "exec-cancel", "stream"}   (its client went away)
//
// With a tty the child gets a pseudo-terminal (its controlling terminal, in a
// session of its own), else pipes; every end is a descriptor on the agent's
// loop, read at most kChunk bytes a step, and the exit comes through a pidfd:
// nothing here blocks the loop. The agent reaps no child with waitpid(-1) and
// leaves SIGCHLD alone (the spawner that ignores it is another process), so
// the status is ours to collect with waitid(P_PIDFD).
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "sys/error.hpp"
#include "sys/json.hpp"

namespace hull::orchestrator::node {

struct ExecRequest {
    std::string container, user;
    std::vector<std::string> args, env;
    bool tty = false, interactive = false;
    int rows = 0, cols = 0;  // the client's terminal; 0: unknown
};

/// The request of an "exec" message; EINVAL without a container or a command.
[[nodiscard]] Result<ExecRequest> parseExecRequest(const json::Value& m);

class ExecSessions {
public:
    static constexpr size_t kChunk = 64 << 10;
    /// Stdin the command has not read yet, at most: beyond it the exec ends
    /// with an error rather than the agent's heap growing without bound.
    static constexpr size_t kMaxPendingInput = 8 << 20;
    /// A cancelled exec is asked to end (SIGHUP with a tty, else SIGTERM, which
    /// `hull exec` forwards into the container) and killed after this.
    static constexpr auto kKillAfter = std::chrono::seconds(2);
    /// After the child's exit, what it wrote is read until the ends close, or this long at most (a
    /// background process it left may hold them open).
    static constexpr auto kDrainFor = std::chrono::milliseconds(500);

    using Send = std::function<void(std::string)>;
    /// The command line (argv[0] the program) that runs REQUEST.
    using Command = std::function<Result<std::vector<std::string>>(const ExecRequest&)>;

    /// Unsent bytes on the session beyond which the command's output waits
    /// unread (the session's queue has a hard limit that cuts it off).
    static constexpr size_t kMaxBacklog = 1 << 20;
    /// BACKLOG: the session's unsent bytes (none: never wait).
    ExecSessions(boost::asio::io_context& ioc, Send send, Command command, std::function<size_t()> backlog = {});
    /// Kills what still runs and reaps it (a child exits at once on SIGKILL).
    ~ExecSessions();

    /// An exec-* message from the master (false: not one of them).
    bool handle(const std::string& type, const json::Value& m);

    /// Run ARGV (argv[0] is looked up on PATH) for STREAM as REQUEST says (tty, interactive, rows, cols).
    void start(int64_t stream, const ExecRequest& request, const std::vector<std::string>& argv);
    /// The end of STREAM with ERROR, without running anything.
    void refuse(int64_t stream, const std::string& error);
    void input(int64_t stream, std::string bytes);
    void closeInput(int64_t stream);
    void resize(int64_t stream, int rows, int cols);
    /// The client went away: the command is ended, nothing more is sent for it.
    void cancel(int64_t stream);
    /// The session ended: every exec is cancelled.
    void cancelAll();
    /// Execs that still run or drain (cancelled ones included until reaped).
    size_t active() const { return execs_.size(); }

private:
    struct Exec;
    using Desc = boost::asio::posix::stream_descriptor;
    void readFrom(Exec& e, Desc& d, bool isErr);
    /// readFrom once the session has room (a command that writes faster than the link carries waits).
    void readWhenRoom(uint64_t serial, bool isErr);
    void writeInput(Exec& e);
    void exited(Exec& e);
    void maybeFinish(Exec& e);
    void finish(Exec& e, int code, const std::string& error);
    void cancelExec(Exec& e);
    Exec* find(uint64_t serial);
    /// STREAM's exec that is not cancelled.
    Exec* live(int64_t stream);
    void erase(uint64_t serial);
    void sendExit(int64_t stream, int code, const std::string& error);

    boost::asio::io_context& ioc_;
    Send send_;
    Command command_;
    std::function<size_t()> backlog_;
    uint64_t nextSerial_ = 1;
    std::map<uint64_t, std::unique_ptr<Exec>> execs_;  // by serial: a stream id may come again
    /// Handlers hold it weakly: one that completed before our destruction runs into nothing.
    std::shared_ptr<int> life_;
};

}  // namespace hull::orchestrator::node
