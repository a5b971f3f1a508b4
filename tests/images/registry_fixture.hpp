#pragma once
// Registry fixtures for pull tests, all on 127.0.0.1: a real docker-registry
// (Debian's docker-registry, distribution 2.8) with its storage in a temp dir,
// a small two-layer busybox image built offline with umoci and pushed with
// skopeo, and a "front" that puts Bearer token auth and storage redirects in
// front of a registry (docker-registry's own token auth needs a signing CA and
// a token server; its filesystem storage never redirects).
//
// Header-only so that other tests (`hull image pull`) can include it. Needs
// root (umoci unpack keeps owners), docker-registry, umoci, skopeo, busybox.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "images/digest.hpp"
#include "images/registry.hpp"
#include "support.hpp"
#include "sys/fs.hpp"
#include "sys/json.hpp"

namespace hull::test {

inline constexpr const char* kDockerRegistry = "/usr/bin/docker-registry";

/// What the registry fixtures need, or "" when all is there.
inline std::string registryToolsMissing() {
    for (const char* t : {kDockerRegistry, "/usr/bin/umoci", "/usr/bin/skopeo"})
        if (::access(t, X_OK) != 0) return std::string(t) + " is not installed";
    if (busyboxPath().empty()) return "busybox is not installed";
    return "";
}

namespace detail {

/// A free TCP port on 127.0.0.1 (bound and released: a race, which callers retry).
inline int freePort() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) < 0)
        throw std::runtime_error("freePort: no socket");
    ::close(s);
    return ntohs(a.sin_port);
}

inline int connectLoopback(int port) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return s;
    if (s >= 0) ::close(s);
    return -1;
}

inline bool sendAll(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += size_t(n);
    }
    return true;
}

inline std::string recvAll(int fd) {
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return out;
        out.append(buf, size_t(n));
    }
}

/// A plain HTTP/1.0 GET to 127.0.0.1:PORT (the server closes after answering):
/// the whole raw response, "" when nothing answered.
inline std::string rawGet(int port, const std::string& target, const std::vector<std::string>& headers = {}) {
    int s = connectLoopback(port);
    if (s < 0) return "";
    timeval tv{10, 0};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
    for (auto& h : headers) req += h + "\r\n";
    req += "\r\n";
    std::string out = sendAll(s, req) ? recvAll(s) : "";
    ::close(s);
    return out;
}

inline RunResult sh(const std::string& script) { return run({"/bin/sh", "-c", script}); }
inline RunResult shOrThrow(const std::string& script) {
    auto r = sh(script);
    if (r.status != 0) throw std::runtime_error("`" + script + "` failed (" + std::to_string(r.status) + "): " + r.err + r.out);
    return r;
}
inline std::string quoteSh(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

}  // namespace detail

struct RegistryOptions {
    std::string htpasswdFile;   // basic auth (bcrypt entries, see htpasswdLine)
    std::string tlsCert, tlsKey;  // serve HTTPS
    /// Listen on this address too ("0.0.0.0": every one) rather than 127.0.0.1
    /// alone: a registry reached at a non-loopback address (host() stays 127.0.0.1).
    std::string listen;
};

/// docker-registry serving a fresh storage dir on 127.0.0.1:<free port>.
/// Killed (and its storage removed) on destruction; it also dies with the
/// test process (PR_SET_PDEATHSIG), so a crashed test leaves none behind.
class TestRegistry {
public:
    explicit TestRegistry(RegistryOptions opts = {}) : dir_("hull-registry") {
        if (::access(kDockerRegistry, X_OK) != 0) throw std::runtime_error("docker-registry is not installed");
        for (int attempt = 0; attempt < 5; ++attempt) {
            port_ = detail::freePort();
            writeConfig(opts);
            if (start()) return;
            stop();
        }
        throw std::runtime_error("docker-registry did not start: " + readFileOr(dir_ / "registry.log"));
    }
    ~TestRegistry() { stop(); }
    TestRegistry(const TestRegistry&) = delete;
    TestRegistry& operator=(const TestRegistry&) = delete;

    int port() const { return port_; }
    /// "127.0.0.1:PORT", as a reference's registry.
    std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
    std::string storage() const { return dir_ / "storage"; }
    /// The file the registry serves for blob DIGEST ("sha256:…").
    std::string blobPath(const std::string& digest) const {
        std::string hex = digest.substr(digest.find(':') + 1);
        return storage() + "/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
    }
    std::string log() const { return readFileOr(dir_ / "registry.log"); }

private:
    void writeConfig(const RegistryOptions& o) {
        // No storage.cache: a blob corrupted on disk is served as it is now.
        std::string y = "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                        "storage:\n  filesystem:\n    rootdirectory: " + storage() + "\n" +
                        "http:\n  addr: " + (o.listen.empty() ? host() : o.listen + ":" + std::to_string(port_)) + "\n";
        if (!o.tlsCert.empty()) y += "  tls:\n    certificate: " + o.tlsCert + "\n    key: " + o.tlsKey + "\n";
        if (!o.htpasswdFile.empty()) y += "auth:\n  htpasswd:\n    realm: hull-test\n    path: " + o.htpasswdFile + "\n";
        writeFileOrThrow(dir_ / "config.yml", y);
    }

    bool start() {
        std::string logPath = dir_ / "registry.log", cfg = dir_ / "config.yml";
        int logFd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (logFd < 0) throw std::runtime_error("open " + logPath);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            int null = ::open("/dev/null", O_RDONLY);
            ::dup2(null, 0);
            ::dup2(logFd, 1);
            ::dup2(logFd, 2);
            ::execl(kDockerRegistry, "docker-registry", "serve", cfg.c_str(), nullptr);
            ::_exit(127);
        }
        ::close(logFd);
        if (pid_ < 0) throw std::runtime_error("fork");
        // Ready when /v2/ answers anything HTTP (401 with auth, 400 over TLS).
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        while (std::chrono::steady_clock::now() < deadline) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            if (detail::rawGet(port_, "/v2/").rfind("HTTP/", 0) == 0) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
        }
        return false;
    }

    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        for (int i = 0; i < 100; ++i) {
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    TempDir dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

/// An OCI layout at DIR/layout (DIR must exist) holding:
///   "latest": linux/amd64, two gzip layers: busybox with /bin/sh, /etc/motd and
///             /etc/gone; then a layer that deletes /etc/gone (a whiteout) and
///             adds /etc/second;
///   "arm64":  the same layers under a linux/arm64 config;
///   "multi":  an OCI image index of both (amd64, arm64/v8);
///   "odd-layer", "odd-config": "latest" with the second layer's, or the
///             config's, media type unknown (push these without a --format).
/// About 0.3 s.
inline std::string buildTestImage(const std::string& dir) {
    std::string layout = dir + "/layout", b1 = dir + "/bundle1", b2 = dir + "/bundle2";
    using detail::quoteSh;
    const std::string L = quoteSh(layout);
    detail::shOrThrow(
        "set -e; umoci init --layout " + L + "; umoci new --image " + L + ":latest; " +
        "umoci config --image " + L + ":latest --os linux --architecture amd64 --config.cmd sh " +
        "--config.env PATH=/bin --history.comment 'hull test base'; " +
        "umoci unpack --image " + L + ":latest " + quoteSh(b1) + " >/dev/null; " +
        "r=" + quoteSh(b1 + "/rootfs") + "; mkdir -p $r/bin $r/etc $r/tmp; cp " + quoteSh(busyboxPath()) +
        " $r/bin/busybox; ln -s busybox $r/bin/sh; ln -s busybox $r/bin/cat; ln -s busybox $r/bin/ls; "
        "echo hello >$r/etc/motd; echo bye >$r/etc/gone; "
        "umoci repack --image " + L + ":latest " + quoteSh(b1) + "; " +
        // repack diffs against the bundle's unpack-time state: a second layer needs a fresh unpack.
        "umoci unpack --image " + L + ":latest " + quoteSh(b2) + " >/dev/null; " +
        "r=" + quoteSh(b2 + "/rootfs") + "; rm $r/etc/gone; echo two >$r/etc/second; " +
        "umoci repack --image " + L + ":latest " + quoteSh(b2) + "; " +
        "umoci config --image " + L + ":latest --tag arm64 --architecture arm64; " +
        "umoci gc --layout " + L + "; rm -rf " + quoteSh(b1) + " " + quoteSh(b2));

    // umoci makes no index and no odd manifests: they are written here, each
    // blob beside the others and named in index.json.
    auto index = json::Value::parse(readFileOr(layout + "/index.json"));
    if (!index) throw std::runtime_error("index.json: " + index.error().message());
    const json::Array tagged = index->find("manifests")->asArray();
    json::Value all = json::Value::array();
    for (auto& m : tagged) all.push(m);
    auto add = [&](const json::Value& doc, const std::string& mediaType, const std::string& tag) {
        std::string body = doc.dump();
        images::Digest d = images::digestOf(body);
        writeFileOrThrow(layout + "/blobs/sha256/" + d.hex, body);
        json::Value ann = json::Value::object();
        ann.set("org.opencontainers.image.ref.name", tag);
        json::Value entry = json::Value::object();
        entry.set("mediaType", mediaType);
        entry.set("digest", d.str());
        entry.set("size", uint64_t(body.size()));
        entry.set("annotations", ann);
        all.push(entry);
    };
    // A copy of descriptor V (an object) with another media type.
    auto retyped = [](const json::Value& v, const std::string& mediaType) {
        json::Value out = json::Value::object();
        for (auto& [k, x] : v.asObject()) out.set(k, k == "mediaType" ? json::Value(mediaType) : x);
        return out;
    };

    json::Value manifests = json::Value::array();
    const json::Value* latest = nullptr;
    for (auto& m : tagged) {
        std::string tag = m.find("annotations")->find("org.opencontainers.image.ref.name")->asString();
        if (tag == "latest") latest = &m;
        json::Value platform = json::Value::object();
        platform.set("architecture", tag == "arm64" ? "arm64" : "amd64");
        platform.set("os", "linux");
        if (tag == "arm64") platform.set("variant", "v8");
        json::Value d = json::Value::object();
        d.set("mediaType", *m.find("mediaType"));
        d.set("digest", *m.find("digest"));
        d.set("size", *m.find("size"));
        d.set("platform", platform);
        manifests.push(d);
    }
    json::Value idx = json::Value::object();
    idx.set("schemaVersion", 2);
    idx.set("mediaType", "application/vnd.oci.image.index.v1+json");
    idx.set("manifests", manifests);
    add(idx, "application/vnd.oci.image.index.v1+json", "multi");

    // "odd-layer": latest with its second layer of an unknown media type;
    // "odd-config": latest with a config that is no image config (an artifact).
    if (!latest) throw std::runtime_error("buildTestImage: no latest in index.json");
    std::string digest = latest->find("digest")->asString();
    auto man = json::Value::parse(readFileOr(layout + "/blobs/sha256/" + digest.substr(7)));
    if (!man) throw std::runtime_error("manifest: " + man.error().message());
    for (bool oddLayer : {true, false}) {
        json::Value m = json::Value::object();
        m.set("schemaVersion", 2);
        m.set("config", oddLayer ? *man->find("config")
                                 : retyped(*man->find("config"), "application/vnd.example.config.v1+json"));
        json::Value layers = json::Value::array();
        auto& ls = man->find("layers")->asArray();
        for (size_t i = 0; i < ls.size(); ++i)
            layers.push(oddLayer && i == 1 ? retyped(ls[i], "application/vnd.example.unknown") : ls[i]);
        m.set("layers", layers);
        add(m, "application/vnd.oci.image.manifest.v1+json", oddLayer ? "odd-layer" : "odd-config");
    }

    json::Value newIndex = json::Value::object();
    newIndex.set("schemaVersion", 2);
    newIndex.set("manifests", all);
    writeFileOrThrow(layout + "/index.json", newIndex.dump());
    return layout;
}

/// skopeo copy oci:LAYOUT:TAG docker://DEST ("127.0.0.1:PORT/repo:tag"), as
/// FORMAT "oci" or "v2s2" (Docker schema 2; an OCI index becomes a manifest
/// list; "" copies the manifest as it is). --all keeps an index whole.
inline void pushImage(const std::string& layout, const std::string& tag, const std::string& dest,
                      const std::string& format = "oci", const std::string& creds = "") {
    std::string c = creds.empty() ? "" : " --dest-creds " + detail::quoteSh(creds);
    if (!format.empty()) c += " --format " + format;
    detail::shOrThrow("skopeo --insecure-policy copy -q --all --dest-tls-verify=false" + c + " " +
                      detail::quoteSh("oci:" + layout + ":" + tag) + " " + detail::quoteSh("docker://" + dest));
}

/// The manifest bytes the registry serves for SRC ("127.0.0.1:PORT/repo:tag").
inline std::string rawManifest(const std::string& src, const std::string& creds = "") {
    std::string c = creds.empty() ? "" : " --creds " + detail::quoteSh(creds);
    return detail::shOrThrow("skopeo inspect --raw --tls-verify=false" + c + " " + detail::quoteSh("docker://" + src)).out;
}

/// "user:<bcrypt hash>" for an htpasswd file (docker-registry takes bcrypt only;
/// perl's crypt() is libxcrypt's, which makes $2y$). "" when that is unavailable.
inline std::string htpasswdLine(const std::string& user, const std::string& password) {
    auto r = detail::sh("perl -e 'print crypt($ARGV[0], q{$2y$05$} . q{hulltesthulltesthulltu})' " +
                        detail::quoteSh(password));
    if (r.status != 0 || r.out.rfind("$2y$", 0) != 0) return "";
    return user + ":" + r.out + "\n";
}

/// A self-signed certificate for IP 127.0.0.1 (its own CA): DIR/cert.pem, DIR/key.pem.
inline void makeLoopbackCert(const std::string& dir) {
    detail::shOrThrow("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "
                      "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                      detail::quoteSh(dir + "/key.pem") + " -out " + detail::quoteSh(dir + "/cert.pem") + " 2>&1");
}

/// An HTTP front for a registry on 127.0.0.1 that speaks the Docker token
/// protocol and redirects blobs, as Docker Hub does:
///   /v2/… without "Authorization: Bearer <token>" → 401 with a Bearer challenge
///     whose realm is this front's /token;
///   /token → {"token": …}, or 401 if basicAuth is set and not what was sent;
///   /v2/<repo>/blobs/<d> → 307 to http://localhost:<port>/storage/… (another
///     authority, so a client must drop its Authorization there);
///   /storage/…, other /v2/… → proxied to the registry.
/// One connection at a time, HTTP/1.0-style (closed after each answer).
class AuthFront {
public:
    AuthFront(int registryPort, std::string basicAuth = "")
        : registryPort_(registryPort), basicAuth_(std::move(basicAuth)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(fd_, 16) < 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) < 0)
            throw std::runtime_error("AuthFront: listen");
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~AuthFront() {
        stop_ = true;
        int s = detail::connectLoopback(port_);  // wake accept()
        if (s >= 0) ::close(s);
        thread_.join();
        ::close(fd_);
    }
    AuthFront(const AuthFront&) = delete;
    AuthFront& operator=(const AuthFront&) = delete;

    std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
    static constexpr const char* kToken = "hull-test-token";

    std::atomic<int> tokenRequests{0}, challenges{0}, redirects{0}, storageWithAuth{0};
    std::string lastTokenQuery() {
        std::lock_guard l(mu_);
        return lastTokenQuery_;
    }

private:
    static std::string headerValue(const std::string& req, const std::string& name) {
        std::string lower = req;
        for (auto& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
        std::string key = "\r\n" + name + ":";
        auto p = lower.find(key);
        if (p == std::string::npos) return "";
        p += key.size();
        auto e = req.find("\r\n", p);
        return sys::trim(req.substr(p, e - p));
    }
    static std::string respond(int status, const std::string& reason, const std::vector<std::string>& headers,
                               const std::string& body) {
        std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
        for (auto& h : headers) r += h + "\r\n";
        r += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
        return r;
    }

    void serve() {
        for (;;) {
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (stop_) {
                if (c >= 0) ::close(c);
                return;
            }
            if (c < 0) continue;
            timeval tv{10, 0};
            ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            std::string req;
            char buf[4096];
            while (req.find("\r\n\r\n") == std::string::npos) {
                ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                req.append(buf, size_t(n));
            }
            detail::sendAll(c, handle(req));
            ::shutdown(c, SHUT_WR);
            ::close(c);
        }
    }

    std::string handle(const std::string& req) {
        auto sp1 = req.find(' '), sp2 = req.find(' ', sp1 + 1);
        if (sp1 == std::string::npos || sp2 == std::string::npos) return respond(400, "Bad Request", {}, "");
        std::string target = req.substr(sp1 + 1, sp2 - sp1 - 1);
        std::string auth = headerValue(req, "authorization");
        if (target.rfind("/token", 0) == 0) {
            ++tokenRequests;
            {
                std::lock_guard l(mu_);
                lastTokenQuery_ = target.substr(target.find('?') + 1);
            }
            if (!basicAuth_.empty() && auth != "Basic " + basicAuth_)
                return respond(401, "Unauthorized", {"Content-Type: application/json"},
                               R"({"details":"incorrect username or password"})");
            return respond(200, "OK", {"Content-Type: application/json"},
                           std::string(R"({"token":")") + kToken + R"(","expires_in":300})");
        }
        if (target.rfind("/storage/", 0) == 0) {
            if (!auth.empty()) ++storageWithAuth;
            return proxy("/v2/" + target.substr(9), "");
        }
        if (target.rfind("/v2/", 0) != 0) return respond(404, "Not Found", {}, "");
        if (auth != std::string("Bearer ") + kToken) {
            ++challenges;
            // scope from the path: /v2/<repo>/(manifests|blobs|tags)/…
            std::string repo = target.substr(4);
            for (const char* k : {"/manifests/", "/blobs/", "/tags/"})
                if (auto p = repo.find(k); p != std::string::npos) repo.resize(p);
            return respond(401, "Unauthorized",
                           {"Content-Type: application/json",
                            "WWW-Authenticate: Bearer realm=\"http://" + host() +
                                "/token\",service=\"hull-test\",scope=\"repository:" + repo + ":pull\""},
                           R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})");
        }
        if (auto p = target.find("/blobs/"); p != std::string::npos) {
            ++redirects;
            return respond(307, "Temporary Redirect",
                           {"Location: http://localhost:" + std::to_string(port_) + "/storage/" + target.substr(4)}, "");
        }
        return proxy(target, headerValue(req, "accept"));
    }

    /// GET TARGET from the registry; its status, Content-Type, Docker-Content-Digest and body.
    std::string proxy(const std::string& target, const std::string& accept) {
        std::string raw = detail::rawGet(registryPort_, target, accept.empty() ? std::vector<std::string>{}
                                                                                : std::vector<std::string>{"Accept: " + accept});
        auto end = raw.find("\r\n\r\n");
        if (raw.rfind("HTTP/", 0) != 0 || end == std::string::npos) return respond(502, "Bad Gateway", {}, "");
        std::string head = raw.substr(0, end + 2), body = raw.substr(end + 4);
        int status = std::stoi(head.substr(9, 3));
        std::vector<std::string> h;
        for (const char* k : {"content-type", "docker-content-digest"})
            if (auto v = headerValue(head, k); !v.empty()) h.push_back(std::string(k) + ": " + v);
        return respond(status, "Proxied", h, body);
    }

    int registryPort_;
    std::string basicAuth_;
    int fd_ = -1, port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mu_;
    std::string lastTokenQuery_;
};

/// A BlobSink over a directory: DIR/<hex> per blob, renamed in from the pull's
/// temp file; counts what it was given.
class DirSink : public images::BlobSink {
public:
    explicit DirSink(std::string dir) : dir_(std::move(dir)) {}
    bool has(const images::Digest& d) override { return sys::exists(dir_ + "/" + d.hex); }
    Result<void> put(const images::Digest& d, const std::string& path) override {
        std::lock_guard l(mu_);
        puts.push_back(d);
        if (::rename(path.c_str(), (dir_ + "/" + d.hex).c_str()) < 0) return failErrno("rename " + path);
        return {};
    }
    std::string path(const images::Digest& d) const { return dir_ + "/" + d.hex; }
    std::vector<images::Digest> puts;

private:
    std::string dir_;
    std::mutex mu_;
};

}  // namespace hull::test
