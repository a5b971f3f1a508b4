#pragma once
// Network namespaces for tests: "hosts" made with `ip netns add` (test set-up
// may use ip(8); the library never does), and a guard that moves the test
// thread into one and back. Everything is removed on destruction.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "support.hpp"

namespace hull::test {

class TestNetns {
public:
    /// PREFIX-TAG-PID; PREFIX tells whose tests left a namespace behind.
    explicit TestNetns(const std::string& tag, const std::string& prefix = "hullt-")
        : name_(prefix + tag + "-" + std::to_string(::getpid())) {
        run({"/usr/sbin/ip", "netns", "del", name_});
        auto r = run({"/usr/sbin/ip", "netns", "add", name_});
        if (r.status != 0) throw std::runtime_error("ip netns add " + name_ + ": " + r.err);
        sh("ip link set lo up");
    }
    ~TestNetns() { run({"/usr/sbin/ip", "netns", "del", name_}); }
    TestNetns(const TestNetns&) = delete;
    TestNetns& operator=(const TestNetns&) = delete;

    const std::string& name() const { return name_; }
    std::string path() const { return "/run/netns/" + name_; }
    /// A shell command inside this namespace.
    RunResult sh(const std::string& cmd) const {
        return run({"/usr/sbin/ip", "netns", "exec", name_, "/bin/sh", "-c", cmd});
    }

private:
    std::string name_;
};

/// The calling thread in another network namespace for the guard's lifetime.
class InNetns {
public:
    explicit InNetns(const std::string& path) {
        self_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (self_ < 0 || fd < 0 || ::setns(fd, CLONE_NEWNET) < 0) throw std::runtime_error("setns " + path);
        ::close(fd);
    }
    ~InNetns() {
        ::setns(self_, CLONE_NEWNET);
        ::close(self_);
    }
    InNetns(const InNetns&) = delete;
    InNetns& operator=(const InNetns&) = delete;

private:
    int self_ = -1;
};

/// Connect two namespaces with a veth pair: A_ADDR on A's end, B_ADDR on B's (CIDR text).
inline void linkNamespaces(const TestNetns& a, const std::string& aDev, const std::string& aAddr, const TestNetns& b,
                           const std::string& bDev, const std::string& bAddr) {
    auto r = run({"/usr/sbin/ip", "link", "add", aDev, "netns", a.name(), "type", "veth", "peer", "name", bDev,
                  "netns", b.name()});
    if (r.status != 0) throw std::runtime_error("ip link add: " + r.err);
    a.sh("ip addr add " + aAddr + " dev " + aDev + " && ip link set " + aDev + " up");
    b.sh("ip addr add " + bAddr + " dev " + bDev + " && ip link set " + bDev + " up");
}

}  // namespace hull::test
