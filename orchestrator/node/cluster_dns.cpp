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

std::string clusterHostsFile(const std::map<std::string, ServiceAddresses>& services) {
    std::string out = "# written by hull: service names of this cluster\n";
    for (const auto& [name, s] : services) {
        if (!s.vip.empty()) out += s.vip + "\t" + name + " " + name + ".hull\n";
        for (const auto& ip : s.backends) out += ip + "\ttasks." + name + " tasks." + name + ".hull\n";
    }
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
    // dnsmasq drops to nobody: its files must be readable by all.
    if (::access((dir_ + "/hosts/services").c_str(), F_OK) != 0)
        TRY(sys::writeFile(dir_ + "/hosts/services", clusterHostsFile({}), 0644));
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
    std::string text = clusterHostsFile(services);
    if (text == written_) return {};
    TRY(sys::mkdirAll(dir_ + "/hosts", 0755));
    // Written beside the directory dnsmasq watches, then renamed into it: it
    // sees a whole file, never half of one, and never the temporary one.
    const std::string path = dir_ + "/hosts/services", tmp = dir_ + "/services.tmp";
    TRY(sys::writeFile(tmp, text, 0644));
    if (::rename(tmp.c_str(), path.c_str()) < 0) return failErrno("dns: rename " + path);
    written_ = std::move(text);
    return {};
}

}  // namespace hull::orchestrator::node
