// Exec sessions on a real loop with real child processes (sh in place of
// `hull exec`, which the agent's command builder would give); what would go to
// the master is collected.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fstream>

#include "orchestrator/node/exec_sessions.hpp"
#include "support.hpp"
#include "sys/base64.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::orchestrator;

namespace {

struct Collected {
    std::string out, err, error;
    int exits = 0;
    int64_t credited = 0;  // stdin bytes the command took, as credited back
    int64_t code = -100;
    std::function<void()> onData;
    void take(const std::string& text) {
        auto m = json::Value::parse(text);
        REQUIRE(m);
        int64_t stream = 0;
        REQUIRE((m->find("stream") && m->find("stream")->toInt64(stream)));
        std::string type = json::stringOf(*m, "type");
        if (type == "exec-data") {
            auto bytes = sys::base64Decode(json::stringOf(*m, "data"));
            REQUIRE(bytes);
            const json::Value* e = m->find("stderr");
            (e && e->isBool() && e->asBool() ? err : out) += *bytes;
            if (onData) onData();
        } else if (type == "exec-credit") {
            int64_t n = 0;
            REQUIRE((m->find("bytes") && m->find("bytes")->toInt64(n)));
            REQUIRE(n > 0);
            credited += n;
        } else {
            REQUIRE(type == "exec-exit");
            ++exits;
            error = json::stringOf(*m, "error");
            REQUIRE(m->find("code"));
            REQUIRE(m->find("code")->toInt64(code));
        }
    }
};

node::ExecRequest request(bool tty, bool interactive, int rows = 0, int cols = 0) {
    node::ExecRequest r;
    r.container = "c1";
    r.args = {"unused"};
    r.tty = tty;
    r.interactive = interactive;
    r.rows = rows;
    r.cols = cols;
    return r;
}

/// PID has exited and was reaped (by us or, for an orphan, by whoever reaps orphans).
bool goneOrZombie(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return true;
    auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

}  // namespace

TEST_CASE("exec sessions: stdout and stderr apart, then the exit code", "[node][exec]") {
    boost::asio::io_context ioc;
    Collected got;
    node::ExecSessions execs(ioc, [&](std::string t) { got.take(t); }, nullptr);
    execs.start(7, request(false, false), {"sh", "-c", "echo out; echo err >&2; read x || echo no-stdin; exit 3"});
    ioc.run();
    CHECK(got.out == "out\nno-stdin\n");
    CHECK(got.err == "err\n");
    CHECK(got.exits == 1);
    CHECK(got.code == 3);
    CHECK(got.error.empty());
    CHECK(execs.active() == 0);
}

TEST_CASE("exec sessions: stdin relayed in, its end closes the command's input", "[node][exec]") {
    boost::asio::io_context ioc;
    Collected got;
    node::ExecSessions execs(ioc, [&](std::string t) { got.take(t); }, nullptr);
    execs.start(1, request(false, true), {"sh", "-c", "cat; echo done"});
    std::string big(300 << 10, 'y');  // more than a pipe holds: written as the command reads
    execs.input(1, "hello\n");
    execs.input(1, big);
    execs.closeInput(1);
    execs.input(1, "after the end: dropped");
    ioc.run();
    CHECK(got.out.size() == 6 + big.size() + 5);
    CHECK(got.out == "hello\n" + big + "done\n");
    CHECK(got.code == 0);
    CHECK(got.exits == 1);
    // Every byte the command took was credited back (the client's window moves on).
    CHECK(got.credited == int64_t(6 + big.size()));
}

TEST_CASE("exec sessions: messages from the master, through the command builder", "[node][exec]") {
    boost::asio::io_context ioc;
    Collected got;
    std::vector<std::string> asked;
    node::ExecSessions execs(ioc, [&](std::string t) { got.take(t); },
                             [&](const node::ExecRequest& r) -> Result<std::vector<std::string>> {
                                 if (r.container != "web-1") return failInvalid("no such container: " + r.container);
                                 asked = r.args;
                                 std::vector<std::string> argv{"sh", "-c", "tr a-z A-Z; exit 5"};
                                 return argv;
                             });
    auto msg = [](const std::string& text) {
        auto m = json::Value::parse(text);
        REQUIRE(m);
        return *m;
    };
    CHECK(execs.handle("exec", msg(R"({"stream": 3, "container": "web-1", "args": ["cat"], "interactive": true})")));
    CHECK(execs.handle("exec-input", msg(R"({"stream": 3, "data": ")" + sys::base64Encode("abc\n") + R"("})")));
    CHECK(execs.handle("exec-input", msg(R"({"stream": 3, "eof": true})")));
    CHECK_FALSE(execs.handle("logs", msg(R"({"stream": 3})")));
    ioc.run();
    CHECK(asked == std::vector<std::string>{"cat"});
    CHECK(got.out == "ABC\n");
    CHECK(got.code == 5);

    Collected refused;
    node::ExecSessions other(ioc, [&](std::string t) { refused.take(t); },
                             [](const node::ExecRequest& r) -> Result<std::vector<std::string>> {
                                 return failInvalid("no such container: " + r.container);
                             });
    CHECK(other.handle("exec", msg(R"({"stream": 4, "container": "nope", "args": ["sh"]})")));
    CHECK(refused.exits == 1);
    CHECK(refused.error == "no such container: nope");
    CHECK(other.handle("exec", msg(R"({"stream": 5, "container": "nope"})")));
    CHECK(refused.exits == 2);
    CHECK(refused.error == "exec: no command given");
    CHECK(other.active() == 0);
}

TEST_CASE("exec sessions: a command that cannot run is an error that says so", "[node][exec]") {
    boost::asio::io_context ioc;
    Collected got;
    node::ExecSessions execs(ioc, [&](std::string t) { got.take(t); }, nullptr);
    execs.start(1, request(false, false), {"/nonexistent/hull-no-such-command"});
    ioc.run();
    CHECK(got.exits == 1);
    CHECK(got.error.find("/nonexistent/hull-no-such-command") != std::string::npos);
    CHECK(got.error.find("No such file") != std::string::npos);
    CHECK(execs.active() == 0);
}

TEST_CASE("exec sessions: a tty is the command's controlling terminal, its size follows", "[node][exec]") {
    boost::asio::io_context ioc;
    Collected got;
    node::ExecSessions execs(ioc, [&](std::string t) { got.take(t); }, nullptr);
    execs.start(1, request(true, false, 30, 100),
                {"sh", "-c", "test -t 0 && test -t 1 && test -t 2 && tty && stty size"});
    ioc.run();
    CHECK(got.out.find("/dev/pts/") != std::string::npos);
    CHECK(got.out.find("30 100") != std::string::npos);
    CHECK(got.err.empty());  // a tty has one stream
    CHECK(got.code == 0);

    // A resize while it runs: the kernel's SIGWINCH, and the new size.
    Collected resized;
    bool asked = false;
    node::ExecSessions* running = nullptr;
    resized.onData = [&] {
        if (!asked && resized.out.find("ready") != std::string::npos) {
            asked = true;
            running->resize(2, 40, 120);
            running->input(2, "go\n");
        }
    };
    node::ExecSessions more(ioc, [&](std::string t) { resized.take(t); }, nullptr);
    running = &more;
    more.start(2, request(true, true, 24, 80), {"sh", "-c", "trap 'echo winch' WINCH; echo ready; read x; stty size"});
    ioc.restart();
    ioc.run();
    CHECK(resized.out.find("winch") != std::string::npos);
    CHECK(resized.out.find("40 120") != std::string::npos);
    CHECK(resized.code == 0);
}

TEST_CASE("exec sessions: a cancel ends the command and what it started, and nothing more is sent", "[node][exec]") {
    for (bool tty : {false, true}) {
        DYNAMIC_SECTION("tty " << tty) {
            boost::asio::io_context ioc;
            Collected got;
            pid_t sleeper = 0;
            node::ExecSessions* self = nullptr;
            got.onData = [&] {
                if (auto nl = got.out.find('\n'); nl != std::string::npos && !sleeper) {
                    sleeper = pid_t(std::stol(got.out.substr(0, nl)));
                    self->cancel(1);
                }
            };
            node::ExecSessions execs(ioc, [&](std::string t) { got.take(t); }, nullptr);
            self = &execs;
            execs.start(1, request(tty, true), {"sh", "-c", "sleep 60 & echo $!; wait; echo never"});
            ioc.run();
            REQUIRE(sleeper > 0);
            CHECK(got.exits == 0);
            CHECK(got.out.find("never") == std::string::npos);
            CHECK(execs.active() == 0);
            CHECK(hull::test::waitFor([&] { return goneOrZombie(sleeper); }));
        }
    }
}

TEST_CASE("exec sessions: the session's end cancels all, and destruction kills and reaps", "[node][exec]") {
    boost::asio::io_context ioc;
    Collected got;
    pid_t pid = 0;
    {
        node::ExecSessions execs(ioc, [&](std::string t) { got.take(t); }, nullptr);
        execs.start(1, request(false, false), {"sh", "-c", "echo $$; exec sleep 60"});
        CHECK(hull::test::waitFor([&] {
            ioc.run_one_for(std::chrono::milliseconds(10));
            return got.out.find('\n') != std::string::npos;
        }));
        pid = pid_t(std::stol(got.out));
        CHECK(execs.active() == 1);
    }
    // Our child, reaped by the destructor: no zombie left.
    INFO(hull::test::readFileOr("/proc/" + std::to_string(pid) + "/stat", "gone"));
    CHECK(::kill(pid, 0) == -1);
    CHECK(errno == ESRCH);
    CHECK(got.exits == 0);
    ioc.restart();
    ioc.run();  // the aborted handlers run into nothing

    Collected all;
    node::ExecSessions execs(ioc, [&](std::string t) { all.take(t); }, nullptr);
    execs.start(1, request(false, false), {"sleep", "60"});
    execs.start(2, request(true, false), {"sleep", "60"});
    CHECK(execs.active() == 2);
    boost::asio::post(ioc, [&] { execs.cancelAll(); });
    ioc.restart();
    ioc.run();
    CHECK(execs.active() == 0);
    CHECK(all.exits == 0);
}
