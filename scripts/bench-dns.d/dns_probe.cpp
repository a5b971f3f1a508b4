// The client side of scripts/bench-dns (built for the measurement only):
//
//   dns-probe write DIR N                       the hosts files of N services into DIR/hosts
//   dns-probe wait SERVER N                     until SERVER answers (10 s at most)
//   dns-probe check SERVER N                    every name of N services once: answers as written?
//   dns-probe update SERVER DIR N TRIALS SEED DEADLINE_MS
//                                               TRIALS updates of one replica address each
//
// The hosts files are the ones hull's ClusterDns writes (serviceHostsFile, cluster_dns.cpp),
// one per service: service svcNNNN has its VIP and 3 replicas; each is written beside
// DIR/hosts and renamed into it, as ClusterDns::update does. An update replaces one replica of a random
// service with an address never used before; the time runs from just before the rename
// to the first answer for tasks.SERVICE that carries the new address (and to the first
// that is exactly the new set), polling as fast as the server answers, for DEADLINE_MS
// at most (null past it). One JSON line per trial; "lost" counts the queries that got
// no answer within 200 ms (the server busy) and were asked again. Queries are built and answers parsed by libldns.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

constexpr int kReplicas = 3;

struct Service {
    std::string vip;
    std::vector<std::string> backends;
};
using Services = std::map<std::string, Service>;

std::string ipv4(unsigned a, unsigned b, unsigned c, unsigned d) {
    return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." + std::to_string(d);
}

Services initial(int n) {
    Services s;
    for (int i = 0; i < n; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "svc%04d", i);
        Service& svc = s[name];
        svc.vip = ipv4(10, 112, unsigned(i) >> 8, unsigned(i) & 255);
        for (int j = 0; j < kReplicas; ++j) {
            unsigned k = unsigned(i * kReplicas + j);
            svc.backends.push_back(ipv4(10, 96, k >> 8, k & 255));
        }
    }
    return s;
}

// serviceHostsFile of orchestrator/node/cluster_dns.cpp, line for line.
std::string hostsFile(const std::string& name, const Service& s) {
    std::string out = "# written by hull: the names of service " + name + "\n";
    if (!s.vip.empty()) out += s.vip + "\t" + name + " " + name + ".hull\n";
    for (const auto& ip : s.backends) out += ip + "\ttasks." + name + " tasks." + name + ".hull\n";
    return out;
}

double nowMs() {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
}

// ClusterDns::update's way: DIR/NAME.tmp written (no fsync), then renamed to
// DIR/hosts/NAME (one file per service). Returns the time just before the rename.
double writeHosts(const std::string& dir, const std::string& name, const std::string& text) {
    const std::string tmp = dir + "/" + name + ".tmp", path = dir + "/hosts/" + name;
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        std::perror(("dns-probe: open " + tmp).c_str());
        std::exit(1);
    }
    ::fchmod(fd, 0644);  // dnsmasq reads it as nobody, whatever our umask
    size_t off = 0;
    while (off < text.size()) {
        ssize_t w = ::write(fd, text.data() + off, text.size() - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            std::perror("dns-probe: write");
            std::exit(1);
        }
        off += size_t(w);
    }
    ::close(fd);
    const double t0 = nowMs();
    if (::rename(tmp.c_str(), path.c_str()) < 0) {
        std::perror(("dns-probe: rename " + path).c_str());
        std::exit(1);
    }
    return t0;
}

struct PktFree {
    void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
using Pkt = std::unique_ptr<ldns_pkt, PktFree>;

class Client {
public:
    explicit Client(const std::string& server) {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(53);
        if (::inet_pton(AF_INET, server.c_str(), &sa.sin_addr) != 1) {
            std::fprintf(stderr, "dns-probe: bad server address %s\n", server.c_str());
            std::exit(2);
        }
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        // Connected: the kernel drops datagrams from anyone but the server.
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
            std::perror("dns-probe: socket");
            std::exit(1);
        }
    }
    ~Client() { ::close(fd_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // The answer's rcode and, in OUT, its A addresses sorted; -1 when none came in TIMEOUT_MS.
    int query(const std::string& name, int timeoutMs, std::vector<std::string>& out) {
        out.clear();
        ldns_rdf* owner = ldns_dname_new_frm_str(name.c_str());
        if (!owner) return -1;
        Pkt q(ldns_pkt_query_new(owner, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD));
        const uint16_t id = uint16_t(rng_());
        ldns_pkt_set_id(q.get(), id);
        uint8_t* wire = nullptr;
        size_t size = 0;
        if (ldns_pkt2wire(&wire, q.get(), &size) != LDNS_STATUS_OK) return -1;
        ssize_t sent = ::send(fd_, wire, size, 0);
        std::free(wire);
        if (sent < 0) return -1;
        const double deadline = nowMs() + timeoutMs;
        uint8_t buf[4096];
        for (;;) {
            int left = int(deadline - nowMs());
            if (left < 0) return -1;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, left) <= 0) continue;
            ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) continue;
            ldns_pkt* raw = nullptr;
            if (ldns_wire2pkt(&raw, buf, size_t(n)) != LDNS_STATUS_OK) continue;
            Pkt r(raw);
            if (ldns_pkt_id(r.get()) != id || !ldns_pkt_qr(r.get())) continue;  // a late answer to an earlier try
            ldns_rr_list* answers = ldns_pkt_answer(r.get());
            for (size_t i = 0; i < ldns_rr_list_rr_count(answers); ++i) {
                ldns_rr* rr = ldns_rr_list_rr(answers, i);
                if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_A) continue;
                char* text = ldns_rdf2str(ldns_rr_a_address(rr));
                if (text) out.emplace_back(text);
                std::free(text);
            }
            std::sort(out.begin(), out.end());
            return ldns_pkt_get_rcode(r.get());
        }
    }

private:
    int fd_ = -1;
    std::mt19937 rng_{std::random_device{}()};
};

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

int check(const std::string& server, int n) {
    Client c(server);
    int queries = 0, wrong = 0;
    const double t0 = nowMs();
    std::vector<std::string> got;
    for (const auto& [name, s] : initial(n)) {
        const std::pair<std::string, std::vector<std::string>> expect[] = {
            {name, {s.vip}}, {name + ".hull", {s.vip}}, {"tasks." + name, sorted(s.backends)},
            {"tasks." + name + ".hull", sorted(s.backends)}};
        for (const auto& [q, want] : expect) {
            ++queries;
            if (c.query(q, 1000, got) != LDNS_RCODE_NOERROR || got != want) {
                if (wrong < 3) std::fprintf(stderr, "dns-probe: %s: wrong or no answer (%zu addresses)\n", q.c_str(), got.size());
                ++wrong;
            }
        }
    }
    std::printf("{\"queries\": %d, \"wrong\": %d, \"ms\": %.3f}\n", queries, wrong, nowMs() - t0);
    return wrong == 0 ? 0 : 1;
}

// Until SERVER answers: svc0000 with its VIP, or with no services any answer at all.
int wait(const std::string& server, int n) {
    Client c(server);
    std::vector<std::string> got;
    const double deadline = nowMs() + 10000;
    while (nowMs() < deadline) {
        const int rcode = c.query(n > 0 ? "svc0000" : "nothing.hull", 100, got);
        if (n > 0 ? rcode == LDNS_RCODE_NOERROR && got.size() == 1 : rcode >= 0) return 0;
        ::usleep(20000);
    }
    std::fprintf(stderr, "dns-probe: %s gave no answer in 10 s\n", server.c_str());
    return 1;
}

int update(const std::string& server, const std::string& dir, int n, int trials, unsigned seed, double deadlineMs) {
    Services services = initial(n);
    std::vector<std::string> names;
    for (const auto& [name, s] : services) names.push_back(name);
    std::mt19937 rng(seed);
    Client c(server);
    std::vector<std::string> got;
    unsigned fresh = 0;
    for (int t = 0; t < trials; ++t) {
        // The server idle when the change comes, as between two rounds of the agent.
        ::usleep(useconds_t(20000 + rng() % 40000));
        const std::string& name = names[rng() % names.size()];
        Service& s = services[name];
        const std::string old = s.backends[rng() % kReplicas];
        const std::string added = ipv4(10, 100 + (fresh >> 16), (fresh >> 8) & 255, fresh & 255);
        ++fresh;
        std::replace(s.backends.begin(), s.backends.end(), old, added);
        const std::vector<std::string> want = sorted(s.backends);
        const std::string qname = "tasks." + name;
        const double t0 = writeHosts(dir, name, hostsFile(name, s));
        double first = -1, exact = -1;
        int queries = 0, lost = 0;
        while (nowMs() - t0 < deadlineMs) {
            ++queries;
            if (c.query(qname, 200, got) != LDNS_RCODE_NOERROR) {
                ++lost;
                continue;
            }
            const double t1 = nowMs();
            if (first < 0 && std::find(got.begin(), got.end(), added) != got.end()) first = t1 - t0;
            if (got == want) {
                exact = t1 - t0;
                break;
            }
        }
        auto ms = [](double v) { return v < 0 ? std::string("null") : std::to_string(v); };
        std::printf("{\"service\": \"%s\", \"ms\": %s, \"exact_ms\": %s, \"queries\": %d, \"lost\": %d}\n", name.c_str(),
                    ms(first).c_str(), ms(exact).c_str(), queries, lost);
        std::fflush(stdout);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "write" && argc == 4) {
        for (const auto& [name, s] : initial(std::atoi(argv[3]))) writeHosts(argv[2], name, hostsFile(name, s));
        return 0;
    }
    if (mode == "wait" && argc == 4) return wait(argv[2], std::atoi(argv[3]));
    if (mode == "check" && argc == 4) return check(argv[2], std::atoi(argv[3]));
    if (mode == "update" && argc == 8)
        return update(argv[2], argv[3], std::atoi(argv[4]), std::atoi(argv[5]), unsigned(std::strtoul(argv[6], nullptr, 10)),
                      std::atof(argv[7]));
    std::fprintf(stderr,
                 "usage: dns-probe write DIR N | wait SERVER N | check SERVER N | update SERVER DIR N TRIALS SEED DEADLINE_MS\n");
    return 2;
}
