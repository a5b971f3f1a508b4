// A leader cut off from etcd, on a real etcd (three members from Debian): it
// steps down before another master can lead, and a write it attempts with its
// old term afterwards is refused by etcd itself (the fence), changing nothing.
// The cut is a TCP relay between the leader and etcd that the test blackholes:
// bytes stop flowing both ways and the connections stay open, as in a
// partition (nothing is refused, calls just hang).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/core/election.hpp"
#include "orchestrator/master/leadership.hpp"
#include "orchestrator/state/etcd_store.hpp"
#include "orchestrator/state/etcd_support.hpp"
#include "orchestrator/state/fenced_store.hpp"
#include "support.hpp"

using namespace hull;
using namespace hull::test;
using namespace hull::orchestrator;
using hull::orchestrator::master::Leadership;
using hull::orchestrator::master::LeadershipOptions;

namespace {

/// A TCP relay on 127.0.0.1 to TARGET_PORT, one thread per connection. cut():
/// no byte moves any more, either way, on old or new connections (they are
/// accepted and left hanging); heal(): bytes flow again.
class Relay {
public:
    explicit Relay(int targetPort) : target_(targetPort) {
        listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listen_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        socklen_t len = sizeof sa;
        REQUIRE(::getsockname(listen_, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
        port_ = ntohs(sa.sin_port);
        REQUIRE(::listen(listen_, 64) == 0);
        accept_ = std::thread([this] { acceptLoop(); });
    }
    ~Relay() {
        stop_ = true;
        ::shutdown(listen_, SHUT_RDWR);
        accept_.join();  // no more pumps from here
        for (auto& t : pumps_) t.join();
        ::close(listen_);
    }
    int port() const { return port_; }
    void cut() { cut_ = true; }
    void heal() { cut_ = false; }

private:
    void acceptLoop() {
        while (!stop_) {
            pollfd p{listen_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            int in = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
            if (in < 0) continue;
            int out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in sa{};
            sa.sin_family = AF_INET;
            sa.sin_port = htons(uint16_t(target_));
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (::connect(out, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
                ::close(in);
                ::close(out);
                continue;
            }
            pumps_.emplace_back([this, in, out] { pump(in, out); });
        }
    }
    void pump(int a, int b) {
        char buf[16384];
        while (!stop_) {
            if (cut_) {  // hold everything: nothing read, nothing sent
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
            if (::poll(p, 2, 50) <= 0) continue;
            bool done = false;
            for (int i = 0; i < 2 && !done; ++i) {
                if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t n = ::read(p[i].fd, buf, sizeof buf);
                if (n <= 0) {
                    done = true;
                    break;
                }
                for (ssize_t off = 0; off < n;) {
                    ssize_t w = ::write(p[1 - i].fd, buf + off, size_t(n - off));
                    if (w <= 0) {
                        done = true;
                        break;
                    }
                    off += w;
                }
            }
            if (done) break;
        }
        ::close(a);
        ::close(b);
    }

    int target_, port_ = 0, listen_ = -1;
    std::atomic<bool> stop_{false}, cut_{false};
    std::thread accept_;
    std::vector<std::thread> pumps_;  // the accept loop's only, until it has ended
};

std::unique_ptr<state::Store> etcdAt(const std::vector<std::string>& endpoints) {
    state::EtcdOptions o;
    o.endpoints = endpoints;
    o.timeout = std::chrono::milliseconds(2000);
    auto s = state::openEtcd(o);
    REQUIRE(s);
    return std::move(*s);
}

int64_t msSince(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("election on etcd: a leader cut off from etcd steps down before another leads, and its write with the old "
          "term is refused by etcd",
          "[leadership][etcd]") {
    EtcdCluster etcd({.members = 3});
    // m1 reaches etcd through the relay only (one member: the cut is total);
    // m2 directly, every member.
    const std::string ep0 = etcd.endpoint(0);
    Relay relay(std::stoi(ep0.substr(ep0.rfind(':') + 1)));
    auto s1 = etcdAt({"http://127.0.0.1:" + std::to_string(relay.port())});
    auto s2 = etcdAt({etcd.endpoint(0), etcd.endpoint(1), etcd.endpoint(2)});

    std::atomic<int> deposed{0};
    LeadershipOptions o1;
    o1.self = {"m1", "https://127.0.0.1:7001"};
    o1.onDeposed = [&](const std::string&) { ++deposed; };
    auto m1 = std::make_unique<Leadership>(*s1, o1);
    m1->start();
    REQUIRE(waitFor([&] { return m1->isLeader(); }, 10000));
    const int64_t oldTerm = m1->fencingRevision();
    REQUIRE(oldTerm > 0);
    // m1's writes go through while it leads.
    state::FencedStore stale(*s1, core::kLeaderKey, [oldTerm] { return oldTerm; });
    REQUIRE(stale.put("/hull/test/before", "m1"));

    LeadershipOptions o2;
    o2.self = {"m2", "https://127.0.0.1:7002"};
    auto m2 = std::make_unique<Leadership>(*s2, o2);
    m2->start();
    REQUIRE(waitFor([&] { return m2->leaderName() == "m1"; }, 10000));
    CHECK_FALSE(m2->isLeader());

    // The partition. Timeline on one clock: m1 steps down, then m2 leads.
    const auto cut = std::chrono::steady_clock::now();
    relay.cut();
    int64_t m1Down = -1, m2Up = -1;
    bool both = false;
    while (msSince(cut) < 15000 && (m1Down < 0 || m2Up < 0)) {
        const bool l1 = m1->isLeader(), l2 = m2->isLeader();
        both |= l1 && l2;
        if (!l1 && m1Down < 0) m1Down = msSince(cut);
        if (l2 && m2Up < 0) m2Up = msSince(cut);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    INFO("m1 stepped down " << m1Down << " ms after the cut, m2 led " << m2Up << " ms after it");
    REQUIRE(m1Down >= 0);
    REQUIRE(m2Up >= 0);
    CHECK_FALSE(both);
    CHECK(m1Down < m2Up);
    CHECK(m1Down <= 1000);  // within its lease's TTL, whatever the hanging call
    CHECK(deposed >= 1);

    // The deposed leader's write, carrying its old term, once it reaches etcd
    // again: refused by etcd's compare, nothing changed.
    relay.heal();
    auto late = stale.put("/hull/test/after", "m1");
    REQUIRE_FALSE(late);
    CHECK(late.error().errnum() == state::kNotLeader);
    INFO(late.error().message());
    CHECK(late.error().message().find("m2") != std::string::npos);
    auto after = s2->range("/hull/test/after");
    REQUIRE(after);
    CHECK(after->kvs.empty());
    CHECK(m2->isLeader());
    m2.reset();
    m1.reset();
}
