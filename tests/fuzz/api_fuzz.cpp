// Every message the master and the node accept: the API's messages (requests
// from the CLI, replies and reports from nodes), a node's assignment from the
// master, and a node's usage report to the master. The first byte chooses
// which; the rest is the text. A message that decodes must encode and decode
// back to the same text: what one side accepts, the other can send.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "orchestrator/api/messages.hpp"
#include "orchestrator/master/autoscaling.hpp"
#include "orchestrator/node/assignment.hpp"
#include "quiet.hpp"

using namespace hull;
using namespace hull::orchestrator;

namespace {

template <class T>
void roundTrip(const std::string& text) {
    auto m = decode<T>(text);
    if (!m) return;
    std::string once = encode(*m);
    auto again = decode<T>(once);
    if (!again || encode(*again) != once) {
        fprintf(stderr, "%s: decoded, encoded as\n%s\nbut that %s\n", T::kName, once.c_str(),
                again ? ("encodes as\n" + encode(*again)).c_str() : ("is refused: " + again.error().message()).c_str());
        abort();
    }
}

void usage(const std::string& text) {
    // Two reports a second apart, as a node sends them, then what the master derives.
    size_t nl = text.find('\n');
    auto first = json::Value::parse(text.substr(0, nl));
    auto second = json::Value::parse(nl == std::string::npos ? std::string() : text.substr(nl + 1));
    master::Autoscaling a;
    if (first) a.usage("node-1", *first, 1000);
    if (second) a.usage("node-1", *second, 2000);
    (void)a.sample("web", {"c1", "c2"}, 0.5, true, 2000);
    (void)a.metrics(2000);
}

// HULL_FUZZ_WRITE_SEEDS=DIR: write each message, as encode() writes a default
// one, behind its selector byte (how tests/fuzz/corpus/api was seeded).
template <class T>
void seed(const std::string& dir, int selector) {
    std::string text = std::string(1, char(selector)) + encode(T{});
    if (FILE* f = fopen((dir + "/" + T::kName).c_str(), "w")) {
        fwrite(text.data(), 1, text.size(), f);
        fclose(f);
    }
}

void writeSeeds(const std::string& d) {
    seed<ErrorReply>(d, 0), seed<ApplyRequest>(d, 1), seed<ApplyReply>(d, 2), seed<ScaleRequest>(d, 3);
    seed<ScaleReply>(d, 4), seed<DeleteReply>(d, 5), seed<ServiceEntry>(d, 6), seed<ServiceList>(d, 7);
    seed<ContainerEntry>(d, 8), seed<ContainerList>(d, 9), seed<Event>(d, 10), seed<EventList>(d, 11);
    seed<Replicas>(d, 12), seed<PendingReplica>(d, 13), seed<DescribeReply>(d, 14), seed<NodeEntry>(d, 15);
    seed<NodeList>(d, 16), seed<NodeLabelRequest>(d, 17), seed<NodeReply>(d, 18), seed<JoinTokenReply>(d, 19);
    seed<MasterEntry>(d, 20), seed<StoreMemberEntry>(d, 21), seed<AutoscaleView>(d, 22), seed<ClusterStatus>(d, 23);
    seed<StatusReport>(d, 24), seed<RolloutStatus>(d, 25), seed<RevisionEntry>(d, 26), seed<RolloutHistory>(d, 27);
    seed<UndoRequest>(d, 28);
    // An assignment of two slots, one pinned to the generation before.
    if (auto svc = parseService("name: web\nimage: busybox\nreplicas: 2\n")) {
        auto spec = json::Value::parse(serviceJson(*svc));
        auto v = json::Value::parse(
            R"({"name": "web", "generation": 2, "slots": [0, 1], "pins": [{"slot": 1, "generation": 1, "incarnation": 0}],
                "order": "start-first"})");
        if (spec && v) {
            v->set("spec", *spec);
            auto versions = json::Value::array();
            auto one = json::Value::object();
            one.set("generation", int64_t(1));
            one.set("spec", *spec);
            versions.push(one);
            v->set("versions", versions);
            std::string text = std::string(1, char(29)) + v->dump();
            if (FILE* f = fopen((d + "/assignment").c_str(), "w")) {
                fwrite(text.data(), 1, text.size(), f);
                fclose(f);
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    hull::fuzz::quietLogs();
    if (const char* dir = getenv("HULL_FUZZ_WRITE_SEEDS")) writeSeeds(dir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 32) {
        case 0: roundTrip<ErrorReply>(text); break;
        case 1: roundTrip<ApplyRequest>(text); break;
        case 2: roundTrip<ApplyReply>(text); break;
        case 3: roundTrip<ScaleRequest>(text); break;
        case 4: roundTrip<ScaleReply>(text); break;
        case 5: roundTrip<DeleteReply>(text); break;
        case 6: roundTrip<ServiceEntry>(text); break;
        case 7: roundTrip<ServiceList>(text); break;
        case 8: roundTrip<ContainerEntry>(text); break;
        case 9: roundTrip<ContainerList>(text); break;
        case 10: roundTrip<Event>(text); break;
        case 11: roundTrip<EventList>(text); break;
        case 12: roundTrip<Replicas>(text); break;
        case 13: roundTrip<PendingReplica>(text); break;
        case 14: roundTrip<DescribeReply>(text); break;
        case 15: roundTrip<NodeEntry>(text); break;
        case 16: roundTrip<NodeList>(text); break;
        case 17: roundTrip<NodeLabelRequest>(text); break;
        case 18: roundTrip<NodeReply>(text); break;
        case 19: roundTrip<JoinTokenReply>(text); break;
        case 20: roundTrip<MasterEntry>(text); break;
        case 21: roundTrip<StoreMemberEntry>(text); break;
        case 22: roundTrip<AutoscaleView>(text); break;
        case 23: roundTrip<ClusterStatus>(text); break;
        case 24: roundTrip<StatusReport>(text); break;
        case 25: roundTrip<RolloutStatus>(text); break;
        case 26: roundTrip<RevisionEntry>(text); break;
        case 27: roundTrip<RolloutHistory>(text); break;
        case 28: roundTrip<UndoRequest>(text); break;
        case 29:
            if (auto v = json::Value::parse(text))
                if (auto a = parseAssignment(*v)) (void)desiredFrom(assignmentRow(*a));
            break;
        case 30: usage(text); break;
        default:
            (void)json::Value::parse(text);
            break;
    }
    return 0;
}
