#include "orchestrator/node/cluster_dns.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "sys/fs.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator::node {

namespace {
constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";
}

std::string serviceHostsFile(const std::string& name, const ServiceAddresses& s) {
    std::string out = "# written by hull: the names of service " + name + "\n";
    if (!s.vip.empty()) out += s.vip + "\t" + name + " " + name + ".hull\n";
    for (const auto& ip : s.backends) out += ip + "\ttasks." + name + " tasks." + name + ".hull\n";
    return out;
}

ClusterDns::~ClusterDns() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
    }
}

Result<void> ClusterDns::ensureRunning() {
    if (pid_ > 0) {
        pid_t w = ::waitpid(pid_, nullptr, WNOHANG);
        if (w == 0) return {};
        log::warnf("node: dns: dnsmasq (pid %d) ended; starting it again", int(pid_));
        pid_ = -1;
    }
    if (::access(kDnsmasq, X_OK) != 0)
        return failInvalid(std::string("dns: ") + kDnsmasq + " missing (install dnsmasq-base): containers get no service names");
    TRY(sys::mkdirAll(dir_ + "/hosts", 0755));
    // An earlier agent's files go before the first start: update() writes
    // what is true now (the names are missing until the master's first word).
    if (!pruned_) {
        for (const auto& f : sys::listDir(dir_ + "/hosts"))
            if (::unlink((dir_ + "/hosts/" + f).c_str()) < 0 && errno != ENOENT) return failErrno("dns: remove " + f);
        written_.clear();
        pruned_ = true;
    }
    const std::string hostsdir = "--hostsdir=" + dir_ + "/hosts", listen = "--listen-address=" + listen_;
    std::vector<std::string> args{kDnsmasq,
                                  "--keep-in-foreground",
                                  "--conf-file=/dev/null",
                                  "--no-hosts",
                                  hostsdir,
                                  listen,
                                  "--bind-interfaces",
                                  "--port=53",
                                  "--resolv-file=/etc/resolv.conf",
                                  "--local=/hull/",  // names under .hull are ours alone
                                  "--local-ttl=1",   // a replica set changes: clients ask again within a second
                                  "--no-negcache",
                                  "--pid-file=",
                                  "--log-facility=-",
                                  "--quiet-dhcp"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return failErrno("dns: fork");
    if (pid == 0) {
        // Dies with the agent: a restarted agent starts its own on the same address.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(1);
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, 0);
            ::dup2(null, 1);
        }
        for (int fd = 3; fd < 1024; ++fd) ::close(fd);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execv(kDnsmasq, argv.data());
        ::_exit(127);
    }
    pid_ = pid;
    log::infof("node: dns: dnsmasq (pid %d) on %s:53 for service names", int(pid), listen_.c_str());
    return {};
}

Result<void> ClusterDns::update(const std::map<std::string, ServiceAddresses>& services) {
    TRY(sys::mkdirAll(dir_ + "/hosts", 0755));
    // One file per service: dnsmasq rereads a changed file in time that grows
    // with the square of its length (scripts/bench-dns), so a change costs
    // what one service's names cost, not the whole cluster's. Written beside
    // the directory dnsmasq watches, then renamed into it: it sees a whole
    // file, never half of one, and never the temporary one. A service gone
    // leaves an empty file (dnsmasq forgets a changed file's old entries; a
    // deleted file's it would keep until a reload).
    auto write = [&](const std::string& name, std::string text) -> Result<void> {
        auto had = written_.find(name);
        if (had != written_.end() && had->second == text) return {};
        const std::string path = dir_ + "/hosts/" + name, tmp = dir_ + "/" + name + ".tmp";
        // dnsmasq drops to nobody: its files must be readable by all.
        TRY(sys::writeFile(tmp, text, 0644));
        if (::rename(tmp.c_str(), path.c_str()) < 0) return failErrno("dns: rename " + path);
        written_[name] = std::move(text);
        return {};
    };
    for (const auto& [name, s] : services) TRY(write(name, serviceHostsFile(name, s)));
    std::vector<std::string> gone;
    for (const auto& [name, text] : written_)
        if (!services.count(name) && text != serviceHostsFile(name, {})) gone.push_back(name);
    for (const auto& name : gone) TRY(write(name, serviceHostsFile(name, {})));
    return {};
}

}  // namespace hull::orchestrator::node
