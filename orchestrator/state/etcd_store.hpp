#pragma once
// The etcd store: store.hpp's interface on an etcd cluster (3.4 or later),
// spoken through etcd's v3 JSON gateway (grpc-gateway, on the client port)
// with Boost.Beast over HTTP/1.1 and OpenSSL: no gRPC, no generated code.
//
// How it differs from the SQLite store, for callers:
// - Other clients write too: revision() is the newest revision this object has
//   heard of (in any reply's header or watch response), not etcd's at this moment.
// - Compaction is the caller's job: etcd 3.4 compacts nothing by default
//   (--auto-compaction-retention 0), so history grows until compact() is
//   called. compact() is etcd's logical compaction (physical: false): reads
//   below the revision fail at once; etcd drops the old rows in the background,
//   and with them a tombstone at exactly the compacted revision, so a watch from
//   that revision may or may not see that one delete.
// - Leases are etcd's: it expires them itself, so expireLeases() returns 0.
//   etcd raises a TTL below its minimum (1.5 election timeouts, rounded up to
//   whole seconds) to that minimum; keepAlive returns the TTL granted.
// - etcd bounds a txn to --max-txn-ops operations (128 by default) and a
//   request to --max-request-bytes (1.5 MiB): larger ones fail with EINVAL.
//   Callers writing more split their writes (or run etcd with higher limits).
//
// Errors: etcd's own map onto store.hpp's errnos (kCompacted, kFutureRevision,
// kLeaseNotFound, EINVAL, EACCES for etcd's auth); when no endpoint answers,
// or none has a leader, kUnavailable, with a message naming each endpoint and
// what went wrong: "etcd http://10.0.0.1:2379: cannot connect: Connection
// refused; etcd http://10.0.0.2:2379: timed out after 5 s (no quorum?)".
//
// Endpoints: calls go to the endpoint that last answered and move on to the
// next one when it cannot be reached, or says it has no leader (every request
// carries grpc-gateway's "hasleader" metadata, so a member cut off from the
// quorum says so at once instead of hanging). Reads and lease renewals are
// also retried on the next endpoint after a timeout or any unavailability (so
// a call may take a timeout per endpoint); writes (put,
// deleteRange, txn, compact, lease grant and revoke) only when they cannot have
// reached etcd, since a write that timed out may still be applied: then the
// call fails with kUnavailable and the write's outcome is unknown (a txn
// comparing revisions makes a retry safe).
//
// Threading: calls may come from any thread, concurrently; each runs on the
// calling thread, on a kept-alive connection (a few idle ones are kept per
// store). Each watch has a connection and a thread of its own. Callbacks run
// on their watch's thread, one at a time across all the store's watches, one
// response per revision, each watch's in revision order. watch() returns once
// etcd has created the watch, so a write made after it returns is delivered
// (a fromRevision of 0 means after the revision etcd created it at). A
// watch whose connection breaks reconnects by itself, to any endpoint, from
// the revision after the last it delivered, so callbacks see no gap and no
// repeat; if that revision was compacted meanwhile, the watch ends with the
// canceled response carrying compactRevision, and the caller re-lists and
// watches again. Callbacks may call anything, writes and cancelWatch
// included; a slow one holds back every other watch's callbacks meanwhile.
// cancelWatch waits for that watch's callback running on another thread: do
// not cancel while holding a lock the callback takes. A dead etcd host is
// noticed on a watch's connection by TCP keepalive, within about 30 s. Destroy
// the store only when no call and no callback is running: the destructor ends
// and joins the watch threads.
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "orchestrator/state/store.hpp"
#include "sys/json.hpp"

namespace hull::state {

/// No endpoint could answer: unreachable, timed out, or without a leader (or
/// too busy: gRPC's Unavailable, DeadlineExceeded, ResourceExhausted).
constexpr int kUnavailable = EAGAIN;

struct EtcdOptions {
    /// Client URLs: "http://127.0.0.1:2379", "https://etcd-1.example:2379",
    /// "https://[fd00::1]:2379". Tried in order, starting from the last that answered.
    std::vector<std::string> endpoints;
    /// For https endpoints: the CA that signs etcd's server certificates (PEM;
    /// empty: the system's trusted CAs), and a client certificate with its key
    /// (PEM) for etcd's --client-cert-auth (empty: none). The server
    /// certificate must name the endpoint's host (IP or DNS SAN).
    std::string caPem, certPem, keyPem;
    /// One request to one endpoint: connect, TLS, request and answer.
    std::chrono::milliseconds timeout{5000};
    /// Connecting (TCP and TLS) to one endpoint, within the timeout above: a
    /// dead host costs this much before the next endpoint is tried.
    std::chrono::milliseconds dialTimeout{2000};
};

/// A store on the etcd cluster at OPTIONS.endpoints. Fails when the options
/// are malformed (EINVAL: a bad URL, unreadable PEM) or when no endpoint
/// answers a (linearizable) read at once (kUnavailable): a cluster without
/// quorum is refused here, not at the first write.
[[nodiscard]] Result<std::unique_ptr<Store>> openEtcd(const EtcdOptions& options);

/// The wire format's pure parts, exposed for tests.
namespace etcd {

/// The error of a gateway reply that is not a 200: etcd 3.4's shape
/// ({"error": "etcdserver: ...", "code": 11, "message": "etcdserver: ..."}),
/// 3.5's and later ({"code": 11, "message": "...", "details": []}), a stream's
/// ({"error": {"grpc_code": 14, "http_code": 503, "message": "..."}}), or
/// anything else (HTTP STATUS and the start of BODY). Its errno follows the
/// message and gRPC code (see the top of this file); its message is etcd's.
Error replyError(int httpStatus, std::string_view body);

/// A KeyValue as the gateway writes it: key and value base64, int64 fields as
/// strings (numbers accepted), fields with zero values absent.
[[nodiscard]] Result<KeyValue> decodeKeyValue(const json::Value& kv);

/// A watch response's events (RESULT: the "result" of one stream message),
/// grouped into one WatchResponse per revision, in order: etcd sends several
/// revisions in one message when a watcher catches up.
[[nodiscard]] Result<std::vector<WatchResponse>> eventsByRevision(const json::Value& result);

/// Splits the body of a streamed reply (/v3/watch, /v3/lease/keepalive): a
/// sequence of JSON objects, in chunks that need not end where objects do.
class JsonStream {
public:
    void feed(std::string_view bytes);
    /// The next complete top-level object into OUT, if one has arrived.
    bool next(std::string& out);
    /// Bytes received that do not yet make up an object (whitespace aside).
    bool pending() const;

private:
    std::string buf_;
    size_t scanned_ = 0;  // bytes of buf_ already scanned for the current object
    int depth_ = 0;
    bool inString_ = false, escaped_ = false;
};

}  // namespace etcd

}  // namespace hull::state
