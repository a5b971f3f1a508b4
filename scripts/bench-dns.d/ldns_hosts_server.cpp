// The libldns alternative to dnsmasq that scripts/bench-dns measures, built for the
// measurement only (not part of hull's CMake build):
//
//   ldns-hosts-server ADDRESS PORT HOSTSDIR
//
// Answers A queries over UDP on ADDRESS:PORT from an in-memory table read from the hosts
// files in HOSTSDIR (the files hull's ClusterDns writes), and reads the directory again
// when a file in it changes, as dnsmasq --hostsdir does (inotify on the directory:
// close-after-write, moved in or out, deleted). Every DNS packet is parsed and built by
// libldns; this file holds no wire format.
//
// What a product version would add and this prototype leaves out: forwarding of other
// names upstream (they get REFUSED here; names under .hull that are not in the table get
// NXDOMAIN, as dnsmasq's --local=/hull/ gives), TCP, AAAA records (IPv6 lines are
// skipped), answer truncation.
#include <arpa/inet.h>
#include <dirent.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

// A name (lower case, with the root's dot, as ldns_rdf2str writes it) -> its IPv4 addresses.
using Table = std::unordered_map<std::string, std::vector<in_addr>>;

struct PktFree {
    void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct RdfFree {
    void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
struct CFree {
    void operator()(void* p) const { std::free(p); }
};
using Pkt = std::unique_ptr<ldns_pkt, PktFree>;
using Rdf = std::unique_ptr<ldns_rdf, RdfFree>;

class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

std::string lower(std::string s) {
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return s;
}

// One hosts file into TABLE: "ADDRESS NAME..." lines, '#' to the end of a line a comment.
void readHostsFile(const std::string& path, Table& table) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        std::istringstream words(line);
        std::string address, name;
        if (!(words >> address)) continue;
        in_addr a{};
        if (::inet_pton(AF_INET, address.c_str(), &a) != 1) continue;  // IPv6 or junk: not served here
        while (words >> name) {
            name = lower(name);
            if (name.back() != '.') name += '.';
            table[name].push_back(a);
        }
    }
}

// Every file in DIR, as dnsmasq reads a hostsdir: dot files and editor backups skipped.
Table readHostsDir(const std::string& dir) {
    Table table;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) {
        std::fprintf(stderr, "ldns-hosts-server: opendir %s: %s\n", dir.c_str(), std::strerror(errno));
        return table;
    }
    while (dirent* e = ::readdir(d.get())) {
        std::string name = e->d_name;
        if (name.empty() || name[0] == '.' || name.back() == '~') continue;
        readHostsFile(dir + "/" + name, table);
    }
    return table;
}

ldns_rr* aRecord(const ldns_rdf* owner, const in_addr& a) {
    ldns_rr* rr = ldns_rr_new();
    ldns_rr_set_owner(rr, ldns_rdf_clone(owner));
    ldns_rr_set_type(rr, LDNS_RR_TYPE_A);
    ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
    ldns_rr_set_ttl(rr, 1);  // dnsmasq's --local-ttl=1 in ClusterDns
    ldns_rr_push_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, sizeof a, &a));
    return rr;
}

// The answer to the query QUERY from TABLE, or null when there is nothing to answer.
Pkt answer(const ldns_pkt* query, const Table& table) {
    if (ldns_pkt_qr(query)) return nullptr;  // a response sent to us: never answered
    Pkt reply(ldns_pkt_new());
    ldns_pkt_set_id(reply.get(), ldns_pkt_id(query));
    ldns_pkt_set_qr(reply.get(), true);
    ldns_pkt_set_opcode(reply.get(), ldns_pkt_get_opcode(query));
    ldns_pkt_set_rd(reply.get(), ldns_pkt_rd(query));
    ldns_pkt_set_ra(reply.get(), true);
    ldns_rr_list* questions = ldns_pkt_question(query);
    if (ldns_pkt_get_opcode(query) != LDNS_PACKET_QUERY || ldns_rr_list_rr_count(questions) != 1) {
        ldns_pkt_set_rcode(reply.get(), LDNS_RCODE_NOTIMPL);
        return reply;
    }
    const ldns_rr* q = ldns_rr_list_rr(questions, 0);
    ldns_pkt_push_rr(reply.get(), LDNS_SECTION_QUESTION, ldns_rr_clone(q));
    Rdf canonical(ldns_rdf_clone(ldns_rr_owner(q)));
    ldns_dname2canonical(canonical.get());
    std::unique_ptr<char, CFree> text(ldns_rdf2str(canonical.get()));
    const std::string name = text ? text.get() : "";
    auto it = table.find(name);
    if (it == table.end()) {
        const bool ours = name == "hull." || (name.size() > 6 && name.compare(name.size() - 6, 6, ".hull.") == 0);
        ldns_pkt_set_rcode(reply.get(), ours ? LDNS_RCODE_NXDOMAIN : LDNS_RCODE_REFUSED);
        return reply;
    }
    ldns_pkt_set_aa(reply.get(), true);
    ldns_pkt_set_rcode(reply.get(), LDNS_RCODE_NOERROR);
    const ldns_rr_type type = ldns_rr_get_type(q);
    if (ldns_rr_get_class(q) == LDNS_RR_CLASS_IN && (type == LDNS_RR_TYPE_A || type == LDNS_RR_TYPE_ANY))
        for (const auto& a : it->second) ldns_pkt_push_rr(reply.get(), LDNS_SECTION_ANSWER, aRecord(ldns_rr_owner(q), a));
    return reply;  // another type of a name we have: no data, no error
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: ldns-hosts-server ADDRESS PORT HOSTSDIR\n");
        return 2;
    }
    const std::string dir = argv[3];
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(std::atoi(argv[2])));
    if (::inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        std::fprintf(stderr, "ldns-hosts-server: bad address %s\n", argv[1]);
        return 2;
    }
    Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (udp.get() < 0 || ::bind(udp.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        std::fprintf(stderr, "ldns-hosts-server: bind %s:%s: %s\n", argv[1], argv[2], std::strerror(errno));
        return 1;
    }
    // Watched before the first read: a change between the two is not lost.
    Fd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (watch.get() < 0 ||
        ::inotify_add_watch(watch.get(), dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) < 0) {
        std::fprintf(stderr, "ldns-hosts-server: inotify on %s: %s\n", dir.c_str(), std::strerror(errno));
        return 1;
    }
    Table table = readHostsDir(dir);

    std::vector<uint8_t> buf(65536);
    alignas(inotify_event) char events[4096];
    pollfd fds[2] = {{watch.get(), POLLIN, 0}, {udp.get(), POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            std::perror("ldns-hosts-server: poll");
            return 1;
        }
        // Changes first: a query that came with them gets the new table.
        if (fds[0].revents & POLLIN) {
            bool changed = false;
            while (::read(watch.get(), events, sizeof events) > 0) changed = true;
            if (changed) {
                table = readHostsDir(dir);
                // The old table's nodes went back to malloc while the new one was built
                // beside them: hand the freed pages back, or RSS keeps the high-water
                // mark of two tables.
                ::malloc_trim(0);
            }
        }
        if (!(fds[1].revents & POLLIN)) continue;
        for (;;) {
            sockaddr_storage from{};
            socklen_t fromLen = sizeof from;
            ssize_t n = ::recvfrom(udp.get(), buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from),
                                   &fromLen);
            if (n < 0) break;
            ldns_pkt* raw = nullptr;
            if (ldns_wire2pkt(&raw, buf.data(), size_t(n)) != LDNS_STATUS_OK) continue;  // not DNS: dropped
            Pkt query(raw);
            Pkt reply = answer(query.get(), table);
            if (!reply) continue;
            uint8_t* wire = nullptr;
            size_t size = 0;
            if (ldns_pkt2wire(&wire, reply.get(), &size) != LDNS_STATUS_OK) continue;
            std::unique_ptr<uint8_t, CFree> owned(wire);
            ::sendto(udp.get(), wire, size, 0, reinterpret_cast<sockaddr*>(&from), fromLen);
        }
    }
}
