#pragma once
// The autoscaler's rule, as pure functions: no I/O, no clock read; every time
// is passed in as int64 ms. The master samples each autoscaled service once a
// second (cluster-wide: ready replicas, their mean CPU use, new connections a
// second), keeps a few minutes of samples, and asks decideScale() what the
// service's desired replicas should be.
//
// The rule (Kubernetes' HPA, kept simpler):
//  - one sample recommends ceil(ready x observed / target) per metric, where
//    observed is per ready replica (the cpu as sampled, or rps / ready), and the
//    largest wins: the service is scaled for its busiest dimension. A metric
//    within 10% of its target (|observed/target - 1| <= 0.1) recommends the
//    current count: noise around the target moves nothing.
//  - READY, not the current desired count, is the capacity that served the
//    sample: replicas still starting served nothing. 4 desired, 2 ready at
//    twice a 50% target recommends 4, not 8 (nothing to do: they are coming).
//    No ready replica, or no data for any configured metric: no opinion.
//  - the recommendation is clamped to [min, max]; a current count outside them
//    is brought back at once, whatever the samples say.
//  - up: every sample of the last scaleUpAfter calls for more (0: the latest
//    alone, so a load step is answered on its first sample), and the service
//    gets the LEAST of their recommendations: no more than the whole window
//    has asked for.
//  - down: every sample of the last scaleDownAfter (60 s by default) calls for
//    fewer, and the service gets the MOST of their recommendations: a minute's
//    peak is kept, so a load that comes and goes does not flap.
//  - either way, at most `step` replicas a decision (0: no limit).
//
// Windows and gaps. A window ends at the latest sample, which must be fresh
// (at most kSampleSlackMs before now: samples come once a second, so an older
// latest one means the sampler stalled, and nothing is decided on stale data).
// A window of W holds the samples in [latest - W, latest] and counts only when
// it is covered: no hole longer than kSampleSlackMs in it, i.e. its oldest
// sample is at most 1.5 s after latest - W and consecutive samples are at most
// 1.5 s apart. 1.5 s lets a sample come half a second late without breaking
// anything, while one sample missed (a 2 s hole) does: a window over a hole,
// like one holding a sample without data, does not agree, as we do not know
// what happened then. With steady samples, a 60 s window needs 61 of them; a
// sampler that has just started needs 58.5 s of them. Samples after NOW and
// samples before any window are ignored.
//
// Rounding. ceil() of a product like 2 x 0.9/0.6 must not turn 3.0000000001
// into 4: values within 1e-9 of an integer count as that integer, and the 10%
// tolerance gets the same 1e-9 (0.66 against 0.6 is within it).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hull::orchestrator::core {

/// The longest hole a covered window may have, and the oldest a latest sample may be.
inline constexpr int64_t kSampleSlackMs = 1500;
/// A metric within this fraction of its target recommends no change.
inline constexpr double kScaleTolerance = 0.1;

/// The service file's `autoscale:` mapping.
struct AutoscaleSpec {
    int64_t min = 1, max = 1;
    std::optional<double> cpu;                // target CPU use per ready replica, a fraction of its CPU limit (0.6 = 60%)
    std::optional<double> requestsPerSecond;  // target new connections per second per ready replica
    int64_t scaleUpAfterMs = 0;               // every sample over this window must call for more (0: the latest alone)
    int64_t scaleDownAfterMs = 60000;         // every sample over this window must call for fewer
    int64_t step = 0;                         // most replicas added or removed by one decision; 0: no limit
    bool operator==(const AutoscaleSpec&) const = default;
};

/// One sample of a service, cluster-wide (the master makes one a second).
struct AutoscaleSample {
    int64_t atMs = 0;
    int64_t ready = 0;          // ready replicas: the capacity that served the sample
    std::optional<double> cpu;  // mean CPU use of the ready replicas, fraction of their limit (1.42 = 142%); none without data
    std::optional<double> rps;  // new connections per second to the whole service; none without data
};

struct AutoscaleDecision {
    int64_t desired = 0;  // == current when nothing changes
    bool changed = false;
    std::string reason;   // for the event and `hull describe`: "cpu 142% of target 60% over 3 samples: 2 -> 4",
                          // or why nothing changed ("cpu 61% within 10% of target 60%")
};

/// What replica count the samples call for. CURRENT: the service's desired
/// replicas now. SAMPLES: oldest first, at most a few minutes of them. NOW_MS:
/// the clock the samples' atMs are on.
AutoscaleDecision decideScale(const AutoscaleSpec& spec, int64_t current, const std::vector<AutoscaleSample>& samples,
                              int64_t nowMs);

/// The recommendation of ONE sample: the max over metrics with data of
/// ceil(ready x observed / target), observed being the sample's cpu (per
/// replica) or rps / ready; a metric within 10% of its target recommends
/// CURRENT; clamped to [min, max]. No metric with data, or ready == 0: none (no
/// opinion). Exposed for tests and describe.
std::optional<int64_t> recommend(const AutoscaleSpec& spec, int64_t current, const AutoscaleSample& sample);

/// Checks a spec from a service file: min >= 1 (0 is refused: scale to zero is
/// not supported yet), max >= min, a target (cpu or requestsPerSecond, each
/// > 0), windows and step not negative. "" when fine, else the message
/// ("autoscale.max: must be at least min (2)").
std::string checkAutoscale(const AutoscaleSpec& spec);

}  // namespace hull::orchestrator::core
