#pragma once
// A real etcd for the store tests: Debian's etcd-server (/usr/bin/etcd),
// started by the test on loopback ports of its own with its data on tmpfs,
// and killed and removed when the fixture goes (a failing test included).
// Header-only: the test build compiles *_test.cpp files only.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/state/etcd_store.hpp"
#include "support.hpp"
#include "sys/fs.hpp"

namespace hull::test {

inline constexpr const char* kEtcdBinary = "/usr/bin/etcd";

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// with the openssl command line (ECDSA P-256, valid two days) in DIR.
struct EtcdCerts {
    std::string dir;
    std::string caPem, serverCertPem, serverKeyPem, clientCertPem, clientKeyPem;
    std::string path(const std::string& name) const { return dir + "/" + name; }

    static EtcdCerts make(const std::string& dir) {
        const std::string openssl = "/usr/bin/openssl";
        auto sh = [&](const std::vector<std::string>& argv) {
            auto r = run(argv);
            INFO(r.err);
            REQUIRE(r.status == 0);
        };
        auto key = [&](const std::string& name) {
            sh({openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", dir + "/" + name});
        };
        auto serial = [] {
            std::random_device rd;
            return std::to_string(1 + rd() % 1000000000u);
        };
        key("ca.key");
        sh({openssl, "req", "-x509", "-new", "-key", dir + "/ca.key", "-out", dir + "/ca.crt", "-days", "2", "-subj",
            "/CN=hull test etcd CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign"});
        // etcd's gateway dials etcd's own gRPC server with the server
        // certificate: with --client-cert-auth it must be good for clientAuth too.
        auto issue = [&](const std::string& name, const std::string& cn, const std::string& ext) {
            key(name + ".key");
            sh({openssl, "req", "-new", "-key", dir + "/" + name + ".key", "-out", dir + "/" + name + ".csr", "-subj",
                "/CN=" + cn});
            writeFileOrThrow(dir + "/" + name + ".ext", ext);
            sh({openssl, "x509", "-req", "-in", dir + "/" + name + ".csr", "-CA", dir + "/ca.crt", "-CAkey",
                dir + "/ca.key", "-set_serial", serial(), "-days", "2", "-out", dir + "/" + name + ".crt", "-extfile",
                dir + "/" + name + ".ext"});
        };
        issue("server", "etcd",
              "subjectAltName=IP:127.0.0.1\nkeyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=serverAuth,clientAuth\n");
        issue("client", "hull-master", "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n");
        EtcdCerts c;
        c.dir = dir;
        c.caPem = readFileOr(dir + "/ca.crt");
        c.serverCertPem = readFileOr(dir + "/server.crt");
        c.serverKeyPem = readFileOr(dir + "/server.key");
        c.clientCertPem = readFileOr(dir + "/client.crt");
        c.clientKeyPem = readFileOr(dir + "/client.key");
        return c;
    }
};

/// One etcd cluster of MEMBERS members on 127.0.0.1. Short heartbeat and
/// election timeouts: for tests only, as is the data on tmpfs (/dev/shm),
/// where an fsync costs nothing (etcd 3.5's --unsafe-no-fsync, which 3.4 lacks,
/// is added when the binary has it).
class EtcdCluster {
public:
    struct Options {
        int members = 1;
        /// Clients speak https, with client certificates (--client-cert-auth).
        bool tls = false;
    };

    explicit EtcdCluster(Options o) : o_(o) {
        if (::access(kEtcdBinary, X_OK) != 0)
            FAIL(std::string(kEtcdBinary) + " is missing: install etcd-server (scripts/deps test)");
        std::string tmpl = "/dev/shm/hull-etcd-XXXXXX";
        if (::access("/dev/shm", W_OK) != 0) tmpl = "/tmp/hull-etcd-XXXXXX";
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        dir_ = tmpl;
        try {
            start();
        } catch (...) {
            // No destructor for a half-made object: leave nothing behind here.
            stopAll();
            throw;
        }
    }
    EtcdCluster() : EtcdCluster(Options{}) {}

    ~EtcdCluster() { stopAll(); }
    EtcdCluster(const EtcdCluster&) = delete;
    EtcdCluster& operator=(const EtcdCluster&) = delete;

    /// Member I's client URL.
    std::string endpoint(size_t i = 0) const {
        return std::string(o_.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(members_[i].clientPort);
    }
    std::vector<std::string> endpoints() const {
        std::vector<std::string> out;
        for (size_t i = 0; i < members_.size(); ++i) out.push_back(endpoint(i));
        return out;
    }
    /// Options for openEtcd: every member, and with TLS the CA and the client certificate.
    state::EtcdOptions options() const {
        state::EtcdOptions o;
        o.endpoints = endpoints();
        o.caPem = certs_.caPem;
        o.certPem = certs_.clientCertPem;
        o.keyPem = certs_.clientKeyPem;
        o.timeout = std::chrono::milliseconds(3000);
        o.dialTimeout = std::chrono::milliseconds(1000);
        return o;
    }
    const EtcdCerts& certs() const { return certs_; }
    const std::string& dir() const { return dir_; }

    /// SIGKILL member I (a crash) and reap it.
    void kill(size_t i) {
        Member& m = members_[i];
        if (m.pid <= 0) return;
        ::kill(m.pid, SIGKILL);
        int st = 0;
        while (::waitpid(m.pid, &st, 0) < 0 && errno == EINTR) {
        }
        m.pid = -1;
    }
    /// Start member I again, on its data and ports. With AWAIT, until it answers (it needs a quorum to).
    void start(size_t i, bool await = true) {
        spawn(i);
        std::string why;
        bool taken = false;
        if (await && !waitReady(i, why, taken)) FAIL("etcd member " << i << " did not come back: " << why);
    }
    bool running(size_t i) const { return members_[i].pid > 0; }

private:
    void start() {
        if (o_.tls) {
            REQUIRE(::mkdir((dir_ + "/pki").c_str(), 0700) == 0);
            certs_ = EtcdCerts::make(dir_ + "/pki");
        }
        members_.resize(size_t(o_.members));
        // Free ports are only known by trying: etcd says when one is taken.
        for (int attempt = 0;; ++attempt) {
            pickPorts();
            for (size_t i = 0; i < members_.size(); ++i) spawn(i);
            std::string why;
            bool taken = false, up = true;
            for (size_t i = 0; i < members_.size() && up; ++i) up = waitReady(i, why, taken);
            if (up) return;
            for (size_t i = 0; i < members_.size(); ++i) kill(i);
            if (!taken || attempt == 4) FAIL("etcd did not start: " << why);
            for (size_t i = 0; i < members_.size(); ++i) (void)sys::removeAll(memberDir(i));
        }
    }

    void stopAll() {
        for (size_t i = 0; i < members_.size(); ++i) kill(i);
        (void)sys::removeAll(dir_);
    }

    struct Member {
        int clientPort = 0, peerPort = 0;
        pid_t pid = -1;
    };

    std::string memberDir(size_t i) const { return dir_ + "/m" + std::to_string(i); }
    std::string logPath(size_t i) const { return dir_ + "/m" + std::to_string(i) + ".log"; }

    static bool portFree(int port) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
    }

    /// Random ports below the kernel's ephemeral range (32768 on), so outgoing connections do not take them.
    void pickPorts() {
        static std::mt19937 rng(std::random_device{}());
        std::uniform_int_distribution<int> dist(20000, 32000);
        std::vector<int> used;
        auto next = [&] {
            while (true) {
                int p = dist(rng);
                if (std::find(used.begin(), used.end(), p) == used.end() && portFree(p)) {
                    used.push_back(p);
                    return p;
                }
            }
        };
        for (auto& m : members_) {
            m.clientPort = next();
            m.peerPort = next();
        }
    }

    static bool hasUnsafeNoFsync() {
        static const bool has = [] {
            auto r = run({kEtcdBinary, "--help"});
            return (r.out + r.err).find("--unsafe-no-fsync") != std::string::npos;
        }();
        return has;
    }

    std::vector<std::string> argv(size_t i) const {
        auto peer = [&](size_t j) { return "http://127.0.0.1:" + std::to_string(members_[j].peerPort); };
        const bool multi = members_.size() > 1;
        std::string cluster;
        for (size_t j = 0; j < members_.size(); ++j)
            cluster += (j ? "," : "") + ("m" + std::to_string(j) + "=" + peer(j));
        std::vector<std::string> a = {kEtcdBinary,
                                      "--name=m" + std::to_string(i),
                                      "--data-dir=" + memberDir(i),
                                      "--listen-client-urls=" + endpoint(i),
                                      "--advertise-client-urls=" + endpoint(i),
                                      "--listen-peer-urls=" + peer(i),
                                      "--initial-advertise-peer-urls=" + peer(i),
                                      "--initial-cluster=" + cluster,
                                      "--initial-cluster-token=" + dir_,
                                      "--initial-cluster-state=new",
                                      // Tests only: elections in a fifth of a second (etcd's
                                      // defaults are 100 ms and 1 s), leases from 1 s. Several
                                      // members get half a second, so that a busy machine
                                      // stalling one does not make it call an election.
                                      "--heartbeat-interval=" + std::string(multi ? "50" : "20"),
                                      "--election-timeout=" + std::string(multi ? "500" : "200"),
                                      "--logger=zap",
                                      "--log-outputs=stderr",
                                      "--log-level=warn"};
        if (hasUnsafeNoFsync()) a.push_back("--unsafe-no-fsync");  // tests only: the data goes with the test
        if (o_.tls) {
            a.push_back("--cert-file=" + certs_.path("server.crt"));
            a.push_back("--key-file=" + certs_.path("server.key"));
            a.push_back("--trusted-ca-file=" + certs_.path("ca.crt"));
            a.push_back("--client-cert-auth");
        }
        return a;
    }

    void spawn(size_t i) {
        const std::vector<std::string> args = argv(i);
        std::vector<char*> cargs;
        for (const auto& s : args) cargs.push_back(const_cast<char*>(s.c_str()));
        cargs.push_back(nullptr);
        int log = ::open(logPath(i).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        REQUIRE(log >= 0);
        const pid_t parent = ::getpid();
        pid_t pid = ::fork();
        if (pid == 0) {
            // Only async-signal-safe calls here. etcd dies with the test
            // process, however that ends (a crash, a CI timeout).
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(126);
            int devnull = ::open("/dev/null", O_RDONLY);
            ::dup2(devnull, 0);
            ::dup2(log, 1);
            ::dup2(log, 2);
            ::execv(cargs[0], cargs.data());
            ::_exit(127);
        }
        ::close(log);
        REQUIRE(pid > 0);
        members_[i].pid = pid;
    }

    /// Until member I answers a linearizable read; false (with WHY, and TAKEN
    /// if a port was in use) when it exited or took over 15 s.
    bool waitReady(size_t i, std::string& why, bool& taken) {
        state::EtcdOptions o = options();
        o.endpoints = {endpoint(i)};
        o.timeout = std::chrono::milliseconds(1000);
        o.dialTimeout = std::chrono::milliseconds(200);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        std::string last;
        while (std::chrono::steady_clock::now() < deadline) {
            int st = 0;
            if (::waitpid(members_[i].pid, &st, WNOHANG) == members_[i].pid) {
                members_[i].pid = -1;
                std::string log = readFileOr(logPath(i));
                taken = log.find("address already in use") != std::string::npos;
                why = "member " + std::to_string(i) + " exited: " + log.substr(log.size() > 2000 ? log.size() - 2000 : 0);
                return false;
            }
            auto s = state::openEtcd(o);
            if (s) return true;
            last = s.error().message();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        why = "member " + std::to_string(i) + " did not answer within 15 s: " + last;
        return false;
    }

    Options o_;
    std::string dir_;
    EtcdCerts certs_;
    std::vector<Member> members_;
};

}  // namespace hull::test
