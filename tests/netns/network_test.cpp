// Container networking against the real kernel, as root. Every test builds its
// own "host" network namespace (the bridge, the NAT table and ip_forward live
// there, not on this machine) and sends traffic only to addresses inside the
// namespaces it made.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "netns/netlink.hpp"
#include "netns/network.hpp"
#include "netns/overlay.hpp"
#include "netns/netns_support.hpp"
#include <fcntl.h>
#include <sys/mount.h>
#include "runtime/bundle.hpp"
#include "sys/fs.hpp"

using namespace hull;
using namespace hull::netns;
using namespace hull::test;

namespace {

/// A hull-runc container created (waiting for start) with its own network namespace.
struct Box {
    Box(const HullRunc& rc, const std::string& id, std::vector<std::string> args) : rc_(rc), id_(id) {
        BundleOptions o;
        o.args = std::move(args);
        o.caps = {"CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_NET_RAW"};
        bundle_ = std::make_unique<Bundle>(o);
        auto c = rc({"create", "--bundle", bundle_->path(), id});
        if (c.status != 0) throw std::runtime_error("create " + id + ": " + c.err);
        pid_ = pidOf(rc, id);
    }
    ~Box() { rc_({"delete", "--force", id_}); }
    std::string netns() const { return "/proc/" + std::to_string(pid_) + "/ns/net"; }
    std::string rootfs() const { return bundle_->rootfs(); }
    void start() const {
        auto r = rc_({"start", id_});
        if (r.status != 0) throw std::runtime_error("start " + id_ + ": " + r.err);
    }
    RunResult exec(const std::string& cmd) const { return rc_({"exec", id_, "/bin/sh", "-c", cmd}); }

    const HullRunc& rc_;
    std::string id_;
    std::unique_ptr<Bundle> bundle_;
    int pid_ = 0;
};

/// A busybox httpd container (created, not started) serving TEXT as /index.html on port 80.
std::unique_ptr<Box> httpdBox(const HullRunc& rc, const std::string& id, const std::string& text) {
    auto b = std::make_unique<Box>(rc, id, std::vector<std::string>{"/bin/httpd", "-f", "-p", "80", "-h", "/www"});
    if (!sys::mkdirAll(b->rootfs() + "/www")) throw std::runtime_error("mkdir /www");
    writeFileOrThrow(b->rootfs() + "/www/index.html", text);
    return b;
}

/// Host veths (hull*) in the calling thread's namespace.
std::set<std::string> hostVeths(const TestNetns& ns) {
    std::set<std::string> out;
    auto r = ns.sh("ls /sys/class/net");
    for (const auto& n : sys::split(r.out, '\n'))
        if (n.rfind("hull", 0) == 0 && n != "hull0") out.insert(n);
    return out;
}

std::string natElements(const TestNetns& ns) {
    return ns.sh("nft list map ip hull tcp_ports; nft list map ip hull udp_ports; nft list map ip hull tcp_addr_ports; "
                 "nft list map ip hull udp_addr_ports").out;
}

}  // namespace

TEST_CASE("net: two containers on the bridge talk TCP, delete leaves nothing", "[root][net]") {
    REQUIRE_ROOT();
    TestNetns host("br");
    TempDir state("hull-net-state");
    HullRunc rc;
    InNetns in(host.path());
    auto net = Network::ensure(state.path(), {"test", "hull0", *Cidr::parse("10.89.0.0/24"), 1500, true});
    REQUIRE(net);

    Box server(rc, "srv", {"/bin/sh", "-c", "nc -l -p 5000 > /tmp/got"});
    Box client(rc, "cli", {"/bin/sleep", "300"});
    auto a = net->attach({"srv", server.netns(), "eth0", {}});
    INFO((a ? "" : a.error().message()));
    REQUIRE(a);
    auto b = net->attach({"cli", client.netns(), "eth0", {}});
    REQUIRE(b);
    CHECK(a->address.str() == "10.89.0.2/24");
    CHECK(b->address.str() == "10.89.0.3/24");
    CHECK(a->gateway.str() == "10.89.0.1");
    CHECK(hostVeths(host).size() == 2);
    server.start();
    client.start();

    auto ip = client.exec("ip=$(cat /sys/class/net/eth0/address); echo $ip");
    CHECK(sys::trim(ip.out) == b->mac);
    auto sent = client.exec("echo hello over the bridge | nc -w 3 " + a->alloc.ip.str() + " 5000");
    INFO(sent.err);
    CHECK(waitFor([&] { return readFileOr(server.rootfs() + "/tmp/got") == "hello over the bridge\n"; }));

    REQUIRE(net->detach("srv"));
    REQUIRE(net->detach("cli"));
    CHECK(hostVeths(host).empty());
    CHECK(net->ipam().list()->empty());
    // A second DEL is fine (CNI requires it).
    CHECK(net->detach("cli"));
}

TEST_CASE("net: a published port answers on 127.0.0.1 and from a second host", "[root][net]") {
    REQUIRE_ROOT();
    TestNetns host("pub"), other("peer");
    linkNamespaces(host, "uplink", "10.250.7.1/24", other, "uplink", "10.250.7.2/24");
    TempDir state("hull-net-state");
    HullRunc rc;
    InNetns in(host.path());
    auto net = Network::ensure(state.path(), {"test", "hull0", *Cidr::parse("10.89.1.0/24"), 1500, true});
    REQUIRE(net);

    Box web(rc, "web", {"/bin/httpd", "-f", "-p", "80", "-h", "/www"});
    REQUIRE(sys::mkdirAll(web.rootfs() + "/www"));
    writeFileOrThrow(web.rootfs() + "/www/index.html", "hello from hull\n");
    auto at = net->attach({"web", web.netns(), "eth0", {{8080, 80, "tcp"}}});
    INFO((at ? "" : at.error().message()));
    REQUIRE(at);
    web.start();

    // (busybox-static's wget crashes in glibc's static resolver: plain HTTP over nc.)
    const std::string get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ";
    auto local = host.sh(get + "127.0.0.1 8080");
    INFO(local.err);
    CHECK(local.out.find("200 OK") != std::string::npos);
    CHECK(local.out.find("\r\n\r\nhello from hull\n") != std::string::npos);
    auto remote = other.sh(get + "10.250.7.1 8080");
    INFO(remote.err);
    CHECK(remote.out.find("\r\n\r\nhello from hull\n") != std::string::npos);
    // The same host port cannot be published twice.
    Box second(rc, "web2", {"/bin/sleep", "300"});
    auto clash = net->attach({"web2", second.netns(), "eth0", {{8080, 80, "tcp"}}});
    REQUIRE_FALSE(clash);
    CHECK(clash.error().message().find("already published") != std::string::npos);
    CHECK(net->ipam().list()->size() == 1);  // the failed attach was rolled back
    CHECK(hostVeths(host).size() == 1);

    // Outbound: the container reaches the other host, which sees this host's
    // address (masquerade), not the container's.
    auto listener = run({"/usr/sbin/ip", "netns", "exec", other.name(), "/bin/sh", "-c",
                         "busybox nc -l -p 7777 >/dev/null & sleep 0.2; echo started"});
    REQUIRE(listener.out == "started\n");
    auto out = web.exec("(echo hi; sleep 2) | nc 10.250.7.2 7777 & sleep 0.5; echo sent");
    CHECK(out.out.find("sent") != std::string::npos);
    // The listener's side (busybox listens on a dual-stack socket: tcp6, v4-mapped):
    // the peer of the connection on :7777 (1E61), in hex.
    auto tcp = other.sh("cat /proc/net/tcp /proc/net/tcp6");
    INFO(tcp.out);
    bool fromHost = false, fromContainer = false;
    for (const auto& line : sys::split(tcp.out, '\n')) {
        if (line.find(":1E61 ") == std::string::npos) continue;
        fromHost |= line.find("0107FA0A:") != std::string::npos;       // 10.250.7.1
        fromContainer |= line.find("0201590A:") != std::string::npos;  // 10.89.1.2
    }
    CHECK(fromHost);
    CHECK_FALSE(fromContainer);
    REQUIRE(net->detach("web"));
    CHECK(natElements(host).find("8080") == std::string::npos);
    CHECK(hostVeths(host).empty());
    auto gone = other.sh(get + "10.250.7.1 8080");
    CHECK(gone.out.find("hello from hull") == std::string::npos);
}

TEST_CASE("net: a port published on one host address answers on that address only", "[root][net]") {
    REQUIRE_ROOT();
    TestNetns host("pubip"), other("peerip");
    linkNamespaces(host, "uplink", "10.250.8.1/24", other, "uplink", "10.250.8.2/24");
    TempDir state("hull-net-state");
    HullRunc rc;
    InNetns in(host.path());
    auto net = Network::ensure(state.path(), {"test", "hull0", *Cidr::parse("10.89.3.0/24"), 1500, true});
    REQUIRE(net);
    auto web = [&](const std::string& id, const std::string& text) { return httpdBox(rc, id, text); };
    const std::string get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 ";
    auto loop = web("loop", "loopback only\n");
    auto at = net->attach({"loop", loop->netns(), "eth0", {*parsePortMapping("127.0.0.1:8080:80")}});
    INFO((at ? "" : at.error().message()));
    REQUIRE(at);
    loop->start();
    CHECK(host.sh(get + "127.0.0.1 8080").out.find("loopback only") != std::string::npos);
    CHECK(other.sh(get + "10.250.8.1 8080").out.find("loopback only") == std::string::npos);

    // The same host port on another address of the host is another container's.
    auto up = web("up", "uplink\n");
    REQUIRE(net->attach({"up", up->netns(), "eth0", {*parsePortMapping("10.250.8.1:8080:80")}}));
    up->start();
    CHECK(other.sh(get + "10.250.8.1 8080").out.find("uplink") != std::string::npos);
    CHECK(host.sh(get + "127.0.0.1 8080").out.find("loopback only") != std::string::npos);

    // Refused, and rolled back: the port on every address, and an address the host does not have.
    Box third(rc, "third", {"/bin/sleep", "300"});
    auto all = net->attach({"third", third.netns(), "eth0", {{8080, 80, "tcp"}}});
    REQUIRE_FALSE(all);
    CHECK(all.error().message().find("host port 8080/tcp is already published on ") != std::string::npos);
    CHECK(all.error().message().find("127.0.0.1") != std::string::npos);
    CHECK(all.error().message().find("10.250.8.1") != std::string::npos);
    auto foreign = net->attach({"third", third.netns(), "eth0", {*parsePortMapping("10.250.9.9:8080:80")}});
    REQUIRE_FALSE(foreign);
    CHECK(foreign.error().message().find("10.250.9.9 is not an address of this host") != std::string::npos);
    CHECK(net->ipam().list()->size() == 2);
    // And the other way round: a port on every address blocks it on one.
    REQUIRE(net->attach({"third", third.netns(), "eth0", {{9090, 80, "tcp"}}}));
    Box fourth(rc, "fourth", {"/bin/sleep", "300"});
    auto one = net->attach({"fourth", fourth.netns(), "eth0", {*parsePortMapping("127.0.0.1:9090:80")}});
    REQUIRE_FALSE(one);
    CHECK(one.error().message().find("host port 9090/tcp is already published on every address") != std::string::npos);

    for (const char* id : {"loop", "up", "third"}) REQUIRE(net->detach(id));
    CHECK(natElements(host).find("8080") == std::string::npos);
    CHECK(natElements(host).find("9090") == std::string::npos);
    CHECK(hostVeths(host).empty());
}

TEST_CASE("net: a host port balanced over several containers reaches each, follows the list, and goes", "[root][net]") {
    REQUIRE_ROOT();
    TestNetns host("bal"), other("peerbal");
    linkNamespaces(host, "uplink", "10.250.9.1/24", other, "uplink", "10.250.9.2/24");
    TempDir state("hull-net-state");
    HullRunc rc;
    InNetns in(host.path());
    auto net = Network::ensure(state.path(), {"test", "hull0", *Cidr::parse("10.89.4.0/24"), 1500, true});
    REQUIRE(net);
    std::vector<std::unique_ptr<Box>> boxes;
    std::vector<Ipv4> ips;
    for (const char* id : {"b1", "b2"}) {
        auto b = httpdBox(rc, id, std::string("backend ") + id + "\n");
        auto at = net->attach({id, b->netns(), "eth0", {}});
        REQUIRE(at);
        ips.push_back(at->address.addr);
        b->start();
        boxes.push_back(std::move(b));
    }
    // 20 connections from the other host and from the host itself, each answered by one of the two.
    auto hits = [&](const TestNetns& from, const std::string& addr) {
        auto r = from.sh("for i in $(seq 20); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 " + addr +
                         " 8080 | tail -n 1; done");
        std::map<std::string, int> n;
        for (const auto& line : sys::split(r.out, '\n'))
            if (!line.empty()) ++n[line];
        return n;
    };
    PortMapping port{8080, 80, "tcp"};
    REQUIRE(publishBalanced(port, ips));
    auto both = hits(other, "10.250.9.1");
    INFO(both.size());
    CHECK(both["backend b1"] > 0);
    CHECK(both["backend b2"] > 0);
    CHECK(both["backend b1"] + both["backend b2"] == 20);
    auto local = hits(host, "127.0.0.1");
    CHECK(local["backend b1"] + local["backend b2"] == 20);
    CHECK(host.sh("nft list map ip hull tcp_bal").out.find("8080 : goto bal_tcp_8080") != std::string::npos);
    // The list shrinks: only b2 answers.
    REQUIRE(publishBalanced(port, {ips[1]}));
    auto one = hits(other, "10.250.9.1");
    CHECK(one["backend b2"] == 20);
    // Every new connection counted once, across the change of backends (the
    // counter outlives the rule it is in).
    auto counted = newConnections({{{port}, {}}, {{*parsePortMapping("9999:80")}, {}}});
    REQUIRE(counted);
    CHECK((*counted)[0] == 60);
    CHECK((*counted)[1] == 0);  // not published: nothing
    // A port published otherwise is refused both ways.
    auto single = publishPorts({{8080, 80, "tcp"}}, ips[0]);
    REQUIRE_FALSE(single);
    CHECK(single.error().message().find("already published on every address") != std::string::npos);
    auto onAddr = publishBalanced(*parsePortMapping("127.0.0.1:8080:80"), ips);
    REQUIRE_FALSE(onAddr);
    CHECK(onAddr.error().message().find("already published on every address") != std::string::npos);
    // No backend: the port stays, and its packets are dropped (not handed to the
    // host: a listener of the host's own on 8080 gets nothing).
    REQUIRE(publishBalanced(port, {}));
    auto listener = host.sh("(busybox nc -l -p 8080 > " + state.path() + "/got & echo $! > " + state.path() +
                            "/nc.pid); sleep 0.2");
    auto none = other.sh("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 1 10.250.9.1 8080");
    CHECK(none.out.empty());
    CHECK(test::readFileOr(state.path() + "/got").empty());
    host.sh("kill $(cat " + state.path() + "/nc.pid)");
    // Refused connections are demand too: counted.
    CHECK(newConnections({{{port}, {}}}).value_or(std::vector<uint64_t>{0})[0] > 60);
    REQUIRE(unpublishBalanced(port));
    CHECK(unpublishBalanced(port));  // gone already
    CHECK(host.sh("nft list counters table ip hull").out.find("bal_tcp_8080_n") == std::string::npos);
    CHECK(newConnections({{{port}, {}}}).value_or(std::vector<uint64_t>{1})[0] == 0);
    CHECK(host.sh("nft list map ip hull tcp_bal").out.find("8080") == std::string::npos);
    CHECK(host.sh("nft list chains ip hull").out.find("bal_tcp_8080") == std::string::npos);
    for (const char* id : {"b1", "b2"}) REQUIRE(net->detach(id));
}

TEST_CASE("net: gc frees what a crashed setup and vanished containers left", "[root][net]") {
    REQUIRE_ROOT();
    TestNetns host("gc");
    TempDir state("hull-net-state");
    HullRunc rc;
    InNetns in(host.path());
    auto net = Network::ensure(state.path(), {"test", "hull0", *Cidr::parse("10.89.2.0/24"), 1500, true});
    REQUIRE(net);

    // 1. A container attached, then killed and deleted without DEL.
    {
        Box gone(rc, "gone", {"/bin/sleep", "300"});
        REQUIRE(net->attach({"gone", gone.netns(), "eth0", {{9090, 90, "tcp"}}}));
    }
    // 2. A setup that crashed half-way: address recorded and veth made, then the
    //    process died (a child that _exits without any cleanup).
    TestNetns victim("victim");
    pid_t child = ::fork();
    if (child == 0) {
        Ipam ipam(net->ipam().dir(), net->subnet(), net->gateway());
        Allocation a;
        a.id = "crashed";
        a.ifname = "eth0";
        a.netns = victim.path();
        a.hostVeth = hostVethName("crashed/eth0");
        auto got = ipam.allocate(a);
        auto nl = Netlink::open();
        UniqueFd ns(::open(victim.path().c_str(), O_RDONLY | O_CLOEXEC));
        bool ok = got && nl && nl->createVeth(a.hostVeth, "eth0", ns.get(), 1500);
        ::_exit(ok ? 0 : 1);  // no rollback: as if killed here
    }
    int st = 0;
    REQUIRE(::waitpid(child, &st, 0) == child);
    REQUIRE(WEXITSTATUS(st) == 0);
    CHECK(net->ipam().list()->size() == 2);
    // The dead container's veth goes with its namespace (the kernel tears that down asynchronously).
    CHECK(waitFor([&] { return hostVeths(host).size() == 1; }));

    // The victim's namespace is still there: gc keeps its address.
    auto keep = net->gc();
    REQUIRE(keep);
    CHECK(keep->freed.size() == 1);
    CHECK(keep->freed[0].id == "gone");
    CHECK(natElements(host).find("9090") == std::string::npos);
    CHECK(net->ipam().list()->size() == 1);

    // Once the namespace is gone too, gc frees the rest.
    ::umount2(victim.path().c_str(), MNT_DETACH);
    victim.sh("true");  // (the path is now a plain file)
    run({"/usr/sbin/ip", "netns", "del", victim.name()});
    auto rest = net->gc();
    REQUIRE(rest);
    CHECK(rest->freed.size() == 1);
    CHECK(net->ipam().list()->empty());
    CHECK(waitFor([&] { return hostVeths(host).empty(); }));
}

TEST_CASE("ipam: 200 concurrent allocations get 200 distinct addresses, and all come back", "[root][net][ipam]") {
    REQUIRE_ROOT();
    TempDir state("hull-ipam");
    auto subnet = *Cidr::parse("10.89.8.0/22");
    std::string dir = state / "networks/test";
    constexpr int kN = 200;
    std::vector<std::pair<pid_t, int>> children;
    for (int i = 0; i < kN; ++i) {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid_t p = ::fork();
        if (p == 0) {
            ::close(fds[0]);
            Ipam ipam(dir, subnet, subnet.firstHost());
            Allocation a;
            a.id = "c" + std::to_string(i);
            a.ifname = "eth0";
            auto got = ipam.allocate(a);
            std::string out = got ? got->ip.str() : "error: " + got.error().message();
            (void)!::write(fds[1], out.data(), out.size());
            ::_exit(got ? 0 : 1);
        }
        ::close(fds[1]);
        children.push_back({p, fds[0]});
    }
    std::set<std::string> ips;
    for (auto& [pid, fd] : children) {
        std::string out;
        char buf[128];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
        ::close(fd);
        int st = 0;
        ::waitpid(pid, &st, 0);
        INFO(out);
        CHECK(WEXITSTATUS(st) == 0);
        CHECK(subnet.contains(*Ipv4::parse(out)));
        ips.insert(out);
    }
    CHECK(ips.size() == size_t(kN));
    CHECK(ips.count(subnet.firstHost().str()) == 0);  // the gateway is never handed out

    Ipam ipam(dir, subnet, subnet.firstHost());
    CHECK(ipam.list()->size() == size_t(kN));
    std::vector<pid_t> dels;
    for (int i = 0; i < kN; ++i) {
        pid_t p = ::fork();
        if (p == 0) {
            Ipam mine(dir, subnet, subnet.firstHost());
            auto r = mine.release("c" + std::to_string(i));
            ::_exit(r && r->size() == 1 ? 0 : 1);
        }
        dels.push_back(p);
    }
    for (pid_t p : dels) {
        int st = 0;
        ::waitpid(p, &st, 0);
        CHECK(WEXITSTATUS(st) == 0);
    }
    CHECK(ipam.list()->empty());
}

TEST_CASE("overlay: containers on two hosts reach each other over VXLAN, removing the entries cuts them off",
          "[root][net][overlay]") {
    REQUIRE_ROOT();
    TestNetns hostA("ova"), hostB("ovb");
    linkNamespaces(hostA, "underlay", "10.251.0.1/24", hostB, "underlay", "10.251.0.2/24");
    TempDir stateA("hull-ov-a"), stateB("hull-ov-b");
    HullRunc rc;
    VxlanOptions vx;
    vx.name = "hull.vx";
    vx.vni = 42;
    vx.underlay = "underlay";

    // Host A: its bridge, subnet and VTEP, and a listening container.
    std::optional<Overlay> ovA, ovB;
    std::optional<Network> netA, netB;
    std::unique_ptr<Box> server, client;
    {
        InNetns in(hostA.path());
        netA.emplace(*Network::ensure(stateA.path(), {"a", "hull0", *Cidr::parse("10.90.1.0/24"), 1450, true}));
        vx.local = *Ipv4::parse("10.251.0.1");
        auto o = Overlay::ensure(vx, netA->subnet());
        INFO((o ? "" : o.error().message()));
        REQUIRE(o);
        ovA.emplace(std::move(*o));
        server = std::make_unique<Box>(rc, "ovsrv", std::vector<std::string>{"/bin/sh", "-c",
                                                                              "while :; do nc -l -p 6000 >> /tmp/got; done"});
        REQUIRE(netA->attach({"ovsrv", server->netns(), "eth0", {}}));
        server->start();
    }
    {
        InNetns in(hostB.path());
        netB.emplace(*Network::ensure(stateB.path(), {"b", "hull0", *Cidr::parse("10.90.2.0/24"), 1450, true}));
        vx.local = *Ipv4::parse("10.251.0.2");
        auto o = Overlay::ensure(vx, netB->subnet());
        REQUIRE(o);
        ovB.emplace(std::move(*o));
        client = std::make_unique<Box>(rc, "ovcli", std::vector<std::string>{"/bin/sleep", "300"});
        REQUIRE(netB->attach({"ovcli", client->netns(), "eth0", {}}));
        client->start();
    }
    auto send = [&](const std::string& text) {
        return client->exec("echo " + text + " | nc -w 2 10.90.1.2 6000");
    };
    auto got = [&] { return readFileOr(server->rootfs() + "/tmp/got"); };

    // Without the entries there is no way across.
    send("before");
    CHECK(got().empty());

    {
        InNetns in(hostA.path());
        auto r = ovA->addPeer(ovB->self());
        INFO((r ? "" : r.error().message()));
        REQUIRE(r);
    }
    {
        InNetns in(hostB.path());
        REQUIRE(ovB->addPeer(ovA->self()));
        // Exactly one route, one neighbour and one FDB entry for the peer.
        CHECK(hostB.sh("ip route show dev hull.vx").out == "10.90.1.0/24 via 10.90.1.0 proto static onlink \n");
        CHECK(hostB.sh("ip neigh show dev hull.vx").out.find("10.90.1.0 lladdr " + ovA->self().vtepMac + " PERMANENT") !=
              std::string::npos);
        CHECK(hostB.sh("bridge fdb show dev hull.vx | grep -c dst").out == "1\n");
    }
    auto s = send("across");
    INFO(s.err);
    CHECK(waitFor([&] { return got() == "across\n"; }));
    // No masquerade inside the cluster: the peer's subnet is in the NAT table's own set.
    CHECK(hostA.sh("nft get element ip hull subnets { 10.90.2.7 }").status == 0);  // (adjacent ranges merge)

    {
        InNetns in(hostB.path());
        REQUIRE(ovB->removePeer(ovA->self()));
        CHECK(hostB.sh("ip route show dev hull.vx").out.empty());
        REQUIRE(ovB->removePeer(ovA->self()));  // idempotent
    }
    std::string before = got();
    send("after");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(got() == before);

    {
        InNetns in(hostA.path());
        REQUIRE(netA->detach("ovsrv"));
        REQUIRE(ovA->destroy());
    }
    {
        InNetns in(hostB.path());
        REQUIRE(netB->detach("ovcli"));
        REQUIRE(ovB->destroy());
    }
}

TEST_CASE("net: a network without masquerade keeps the container's source address", "[root][net]") {
    REQUIRE_ROOT();
    TestNetns host("nomasq"), other("nmpeer");
    linkNamespaces(host, "uplink", "10.250.8.1/24", other, "uplink", "10.250.8.2/24");
    other.sh("ip route add 10.89.3.0/24 via 10.250.8.1");
    // Without masquerade hull leaves ip_forward alone, and a new netns copies the
    // machine's IPv4 settings: the test's host routes only if told to here.
    host.sh("echo 1 > /proc/sys/net/ipv4/ip_forward");
    TempDir state("hull-net-state");
    HullRunc rc;
    InNetns in(host.path());
    auto net = Network::ensure(state.path(), {"test", "hull0", *Cidr::parse("10.89.3.0/24"), 1500, false});
    REQUIRE(net);
    Box box(rc, "nm", {"/bin/sleep", "300"});
    REQUIRE(net->attach({"nm", box.netns(), "eth0", {}}));
    box.start();
    auto listener = run({"/usr/sbin/ip", "netns", "exec", other.name(), "/bin/sh", "-c",
                         "busybox nc -l -p 7777 >/dev/null & sleep 0.2; echo started"});
    REQUIRE(listener.out == "started\n");
    box.exec("(echo hi; sleep 2) | nc 10.250.8.2 7777 & sleep 0.5");
    auto tcp = other.sh("cat /proc/net/tcp /proc/net/tcp6");
    INFO(tcp.out);
    bool fromContainer = false, fromHost = false;
    for (const auto& line : sys::split(tcp.out, '\n')) {
        if (line.find(":1E61 ") == std::string::npos) continue;
        fromContainer |= line.find("0203590A:") != std::string::npos;  // 10.89.3.2
        fromHost |= line.find("0108FA0A:") != std::string::npos;       // 10.250.8.1
    }
    CHECK(fromContainer);
    CHECK_FALSE(fromHost);
    REQUIRE(net->detach("nm"));
}

TEST_CASE("net: a dual-stack network: two containers talk TCP over IPv6, delete leaves nothing", "[root][net]") {
    REQUIRE_ROOT();
    TestNetns host("dual", "h6-");
    TempDir state("hull-net6-state");
    HullRunc rc;
    InNetns in(host.path());
    NetworkConfig cfg{"test", "hull0", *Cidr::parse("10.89.4.0/24"), 1500, true};
    cfg.subnet6 = *Cidr6::parse("fd00:89:4::/64");
    auto net = Network::ensure(state.path(), cfg);
    INFO((net ? "" : net.error().message()));
    REQUIRE(net);
    CHECK(readFileOr(state / "networks/test/network.json").find(R"("subnet6": "fd00:89:4::/64")") != std::string::npos);
    // The bridge's address is usable at once (no DAD), the container's too.
    auto bridge = host.sh("ip -6 addr show dev hull0 scope global").out;
    CHECK(bridge.find("inet6 fd00:89:4::1/64") != std::string::npos);
    CHECK(bridge.find("tentative") == std::string::npos);

    Box server(rc, "srv6", {"/bin/sh", "-c", "nc -l -p 5000 > /tmp/got"});
    Box client(rc, "cli6", {"/bin/sleep", "300"});
    auto a = net->attach({"srv6", server.netns(), "eth0", {}});
    INFO((a ? "" : a.error().message()));
    REQUIRE(a);
    auto b = net->attach({"cli6", client.netns(), "eth0", {}});
    REQUIRE(b);
    CHECK(a->address.str() == "10.89.4.2/24");
    REQUIRE(a->address6);
    REQUIRE(b->address6);
    CHECK(a->address6->str() == "fd00:89:4::2/64");
    CHECK(b->address6->str() == "fd00:89:4::3/64");
    CHECK(a->gateway6->str() == "fd00:89:4::1");
    CHECK(sys::listDir(state / "networks/test/ips").size() == 4);  // two records per container
    auto inside = shIn(client.netns(), "ip -6 addr show dev eth0 scope global; ip -6 route show default");
    CHECK(inside.out.find("inet6 fd00:89:4::3/64") != std::string::npos);
    CHECK(inside.out.find("tentative") == std::string::npos);
    CHECK(inside.out.find("default via fd00:89:4::1 dev eth0") != std::string::npos);
    server.start();
    client.start();

    // The server may not listen yet on a busy machine: sent again until it got it.
    std::string err;
    CHECK(waitFor([&] {
        if (readFileOr(server.rootfs() + "/tmp/got") == "hello over ipv6\n") return true;
        err = client.exec("echo hello over ipv6 | nc -w 3 fd00:89:4::2 5000").err;
        return readFileOr(server.rootfs() + "/tmp/got") == "hello over ipv6\n";
    }));
    INFO(err);
    // And the host reaches a container at its IPv6 address through the bridge.
    CHECK(host.sh("busybox ping -6 -c 1 -W 2 fd00:89:4::3").status == 0);

    REQUIRE(net->detach("srv6"));
    REQUIRE(net->detach("cli6"));
    CHECK(hostVeths(host).empty());
    CHECK(net->ipam().list()->empty());
    CHECK(sys::listDir(state / "networks/test/ips").empty());
    // The next container gets the next address, not a released one at once.
    Box third(rc, "third6", {"/bin/sleep", "300"});
    auto c = net->attach({"third6", third.netns(), "eth0", {}});
    REQUIRE(c);
    CHECK(c->address6->str() == "fd00:89:4::4/64");
    REQUIRE(net->detach("third6"));
    CHECK(sys::listDir(state / "networks/test/ips").empty());
    // A container that vanished without DEL: gc frees both of its records.
    {
        Box gone(rc, "gone6", {"/bin/sleep", "300"});
        REQUIRE(net->attach({"gone6", gone.netns(), "eth0", {}}));
    }
    auto gc = net->gc();
    REQUIRE(gc);
    REQUIRE(gc->freed.size() == 1);
    CHECK(gc->freed[0].ip6->str() == "fd00:89:4::5");
    CHECK(sys::listDir(state / "networks/test/ips").empty());

    // The IPv6 subnet is kept with the network and cannot change under it.
    auto same = Network::ensure(state.path(), {"test", "hull0"});
    REQUIRE(same);
    CHECK(same->subnet6() == cfg.subnet6);
    NetworkConfig other = cfg;
    other.subnet6 = *Cidr6::parse("fd00:89:5::/64");
    auto changed = Network::ensure(state.path(), other);
    REQUIRE_FALSE(changed);
    CHECK(changed.error().message().find("exists with IPv6 subnet fd00:89:4::/64") != std::string::npos);
    REQUIRE(net->destroy());
}

TEST_CASE("net: an IPv4-only network gives containers no IPv6 address", "[root][net]") {
    REQUIRE_ROOT();
    TestNetns host("v4only", "h6-");
    TempDir state("hull-net6-state");
    HullRunc rc;
    InNetns in(host.path());
    auto net = Network::ensure(state.path(), {"test", "hull0", *Cidr::parse("10.89.5.0/24"), 1500, true});
    REQUIRE(net);
    CHECK_FALSE(net->subnet6());
    CHECK(readFileOr(state / "networks/test/network.json").find("subnet6") == std::string::npos);
    Box box(rc, "v4", {"/bin/sleep", "300"});
    auto at = net->attach({"v4", box.netns(), "eth0", {}});
    REQUIRE(at);
    CHECK_FALSE(at->address6);
    CHECK_FALSE(at->alloc.ip6);
    CHECK(shIn(box.netns(), "ip -6 addr show scope global").out.empty());
    CHECK(shIn(box.netns(), "ip -6 route show default").out.empty());
    CHECK(host.sh("ip -6 addr show dev hull0 scope global").out.empty());
    CHECK(sys::listDir(state / "networks/test/ips") == std::vector<std::string>{"10.89.5.2"});
    CHECK_FALSE(sys::exists(state / "networks/test/last6"));
    // An IPv6 subnet cannot be added to it afterwards, nor a reserved one made.
    NetworkConfig dual{"test", "hull0"};
    dual.subnet6 = *Cidr6::parse("fd00:89:5::/64");
    auto added = Network::ensure(state.path(), dual);
    REQUIRE_FALSE(added);
    CHECK(added.error().message().find("exists without an IPv6 subnet") != std::string::npos);
    NetworkConfig linkLocal{"ll", "hullll0", *Cidr::parse("10.89.6.0/24")};
    linkLocal.subnet6 = *Cidr6::parse("fe80:1::/64");
    auto refused = Network::ensure(state.path(), linkLocal);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message().find("overlaps fe80::/10") != std::string::npos);
    REQUIRE(net->detach("v4"));
    REQUIRE(net->destroy());
}
