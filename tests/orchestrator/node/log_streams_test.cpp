// Log streams on a real loop over files in a temp dir, as a container's
// directory holds them; what would go to the master is collected.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include "orchestrator/node/log_streams.hpp"
#include "support.hpp"
#include "sys/base64.hpp"
#include "sys/json.hpp"

using namespace hull;
using namespace hull::orchestrator;
using hull::test::TempDir;

namespace {

struct Collected {
    std::string data, error;
    int ends = 0, messages = 0;
    void take(const std::string& text) {
        auto m = json::Value::parse(text);
        REQUIRE(m);
        ++messages;
        if (json::stringOf(*m, "type") == "logs-data") {
            auto bytes = sys::base64Decode(json::stringOf(*m, "data"));
            REQUIRE(bytes);
            data += *bytes;
        } else {
            REQUIRE(json::stringOf(*m, "type") == "logs-end");
            ++ends;
            error = json::stringOf(*m, "error");
        }
    }
};

void appendFile(const std::string& path, const std::string& text) {
    auto old = hull::test::readFileOr(path, "");
    hull::test::writeFileOrThrow(path, old + text);
}

}  // namespace

TEST_CASE("log streams: the tail of the rotated and current log, in chunks, then the end", "[node][logs]") {
    TempDir dir("hull-logs");
    hull::test::writeFileOrThrow(dir / "ctr.log.1", "one\ntwo\n");
    std::string big(200 << 10, 'x');
    hull::test::writeFileOrThrow(dir / "ctr.log", "three\n" + big + "\nfour\n");
    boost::asio::io_context ioc;
    Collected got;
    node::LogStreams streams(ioc, [&](std::string t) { got.take(t); });
    streams.start(1, dir.path(), -1, false);
    ioc.run();
    CHECK(got.data == "one\ntwo\nthree\n" + big + "\nfour\n");
    CHECK(got.ends == 1);
    CHECK(got.error.empty());
    CHECK(got.messages >= 5);  // 200 KiB in chunks of 64 KiB, and the end
    CHECK(streams.active() == 0);

    Collected tail;
    node::LogStreams two(ioc, [&](std::string t) { tail.take(t); });
    two.start(2, dir.path(), 2, false);
    ioc.restart();
    ioc.run();
    CHECK(tail.data == big + "\nfour\n");
    two.refuse(3, "no container \"x\"");
    CHECK(tail.error == "no container \"x\"");
}

TEST_CASE("log streams: a follow sends what is appended and ends with the container, a cancel stops it", "[node][logs]") {
    TempDir dir("hull-logs");
    hull::test::writeFileOrThrow(dir / "ctr.log", "old\n");
    boost::asio::io_context ioc;
    Collected got;
    node::LogStreams streams(ioc, [&](std::string t) { got.take(t); });
    streams.start(7, dir.path(), 0, true);
    boost::asio::steady_timer t(ioc);
    t.expires_after(std::chrono::milliseconds(250));
    t.async_wait([&](auto) {
        appendFile(dir / "ctr.log", "new 1\n");
        t.expires_after(std::chrono::milliseconds(250));
        t.async_wait([&](auto) {
            appendFile(dir / "ctr.log", "new 2\n");
            hull::test::writeFileOrThrow(dir / "exit.json", "{}");  // it ended: what it wrote is read, then the end
        });
    });
    ioc.run_for(std::chrono::seconds(5));
    CHECK(got.data == "new 1\nnew 2\n");
    CHECK(got.ends == 1);
    CHECK(streams.active() == 0);

    // Cancelled: nothing more, no end (the master asked for it to stop).
    std::remove((dir / "exit.json").c_str());
    Collected cancelled;
    node::LogStreams more(ioc, [&](std::string t) { cancelled.take(t); });
    more.start(8, dir.path(), 0, true);
    more.cancel(8);
    appendFile(dir / "ctr.log", "after\n");
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(400));
    CHECK(cancelled.messages == 0);
    CHECK(more.active() == 0);
}

TEST_CASE("log streams: nothing is sent while the session is behind, and all of it once it catches up", "[node][logs]") {
    TempDir dir("hull-logs");
    hull::test::writeFileOrThrow(dir / "ctr.log", std::string(300 << 10, 'y'));
    boost::asio::io_context ioc;
    Collected got;
    size_t backlog = 2 << 20;  // the session has 2 MiB unsent
    node::LogStreams streams(ioc, [&](std::string t) { got.take(t); }, [&] { return backlog; });
    streams.start(1, dir.path(), -1, false);
    ioc.run_for(std::chrono::milliseconds(350));
    CHECK(got.messages == 0);
    CHECK(streams.active() == 1);
    backlog = 0;
    ioc.restart();
    ioc.run_for(std::chrono::seconds(2));
    CHECK(got.data == std::string(300 << 10, 'y'));
    CHECK(got.ends == 1);
}
