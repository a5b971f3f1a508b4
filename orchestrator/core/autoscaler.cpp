#include "orchestrator/core/autoscaler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace hull::orchestrator::core {

namespace {

constexpr double kEpsilon = 1e-9;  // see Rounding in the header

/// One configured metric of one sample, per ready replica.
struct Reading {
    bool cpu = false;  // else requests a second
    double observed = 0, target = 0;
    bool withinTolerance() const { return std::abs(observed / target - 1) <= kScaleTolerance + kEpsilon; }
};

/// The configured metrics SAMPLE has data for (none without a ready replica).
std::vector<Reading> readings(const AutoscaleSpec& spec, const AutoscaleSample& sample) {
    std::vector<Reading> out;
    if (sample.ready <= 0) return out;
    auto usable = [](const std::optional<double>& v) { return v && std::isfinite(*v); };
    if (spec.cpu && usable(sample.cpu)) out.push_back({true, std::max(0.0, *sample.cpu), *spec.cpu});
    if (spec.requestsPerSecond && usable(sample.rps))
        out.push_back({false, std::max(0.0, *sample.rps) / double(sample.ready), *spec.requestsPerSecond});
    return out;
}

/// recommend() before the clamp to [min, max].
std::optional<int64_t> unclamped(const AutoscaleSpec& spec, int64_t current, const AutoscaleSample& sample) {
    std::optional<int64_t> best;
    for (const Reading& r : readings(spec, sample)) {
        // Capped far above any max before the conversion, so a tiny target cannot overflow it.
        const double want = std::min(double(sample.ready) * r.observed / r.target, 1e12);
        const int64_t n = r.withinTolerance() ? current : int64_t(std::ceil(want - kEpsilon));
        best = std::max(best.value_or(n), n);
    }
    return best;
}

/// V with at most DECIMALS decimals, trailing zeros dropped: "95", "95.3".
std::string number(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
    }
    return s;
}

std::string seconds(int64_t ms) { return number(double(ms) / 1000, 3) + "s"; }

/// What SAMPLE shows, for reasons: "cpu 142% of target 60%, rps 40/replica within 10% of target 38".
std::string describe(const AutoscaleSpec& spec, const AutoscaleSample& sample) {
    if (sample.ready <= 0) return "no ready replica";
    std::string out;
    for (const Reading& r : readings(spec, sample)) {
        if (!out.empty()) out += ", ";
        const std::string tolerance = r.withinTolerance() ? " within " + number(kScaleTolerance * 100, 0) + "%" : "";
        if (r.cpu)
            out += "cpu " + number(r.observed * 100, 0) + "%" + tolerance + " of target " + number(r.target * 100, 0) + "%";
        else
            out += "rps " + number(r.observed, 1) + "/replica" + tolerance + " of target " + number(r.target, 1);
    }
    return out.empty() ? std::string(spec.cpu && spec.requestsPerSecond ? "no data for cpu or rps"
                                     : spec.cpu                         ? "no data for cpu"
                                                                        : "no data for rps")
                       : out;
}

/// The window of WINDOW_MS ending at SAMPLES[LAST] when it is covered (see
/// Windows and gaps in the header) and every sample in it calls for more
/// (UP) or fewer replicas than CURRENT: the least (UP) or most of their
/// recommendations, and how many samples agreed. None otherwise.
struct Agreement {
    int64_t desired = 0;
    size_t samples = 0;
};
std::optional<Agreement> agreement(const AutoscaleSpec& spec, int64_t current, const std::vector<AutoscaleSample>& samples,
                                   size_t last, int64_t windowMs, bool up) {
    const int64_t start = samples[last].atMs - windowMs;
    size_t first = last;
    while (first > 0 && samples[first - 1].atMs >= start) --first;
    if (samples[first].atMs - start > kSampleSlackMs) return std::nullopt;  // the window starts before our samples do
    std::optional<Agreement> out;
    for (size_t i = first; i <= last; ++i) {
        if (i > first && samples[i].atMs - samples[i - 1].atMs > kSampleSlackMs) return std::nullopt;  // a hole
        const auto rec = recommend(spec, current, samples[i]);
        if (!rec || (up ? *rec <= current : *rec >= current)) return std::nullopt;  // no opinion, or another one
        if (!out) out = Agreement{*rec, 0};
        out->desired = up ? std::min(out->desired, *rec) : std::max(out->desired, *rec);
        ++out->samples;
    }
    return out;
}

}  // namespace

std::optional<int64_t> recommend(const AutoscaleSpec& spec, int64_t current, const AutoscaleSample& sample) {
    const auto n = unclamped(spec, current, sample);
    if (!n) return std::nullopt;
    return std::max(spec.min, std::min(spec.max, *n));
}

AutoscaleDecision decideScale(const AutoscaleSpec& spec, int64_t current, const std::vector<AutoscaleSample>& samples,
                              int64_t nowMs) {
    // The bounds win over any sample.
    if (current < spec.min)
        return {spec.min, true, "below min " + std::to_string(spec.min) + ": " + std::to_string(current) + " -> " +
                                    std::to_string(spec.min)};
    if (current > spec.max)
        return {spec.max, true, "above max " + std::to_string(spec.max) + ": " + std::to_string(current) + " -> " +
                                    std::to_string(spec.max)};
    auto stays = [&](const std::string& why) { return AutoscaleDecision{current, false, why}; };

    size_t end = samples.size();  // samples from the future are ignored
    while (end > 0 && samples[end - 1].atMs > nowMs) --end;
    if (end == 0) return stays("no samples yet");
    const size_t last = end - 1;
    const AutoscaleSample& latest = samples[last];
    if (nowMs - latest.atMs > kSampleSlackMs) return stays("no sample for " + seconds(nowMs - latest.atMs));

    const std::string what = describe(spec, latest);
    const auto raw = unclamped(spec, current, latest);
    const auto rec = recommend(spec, current, latest);
    if (!rec) return stays(what);
    if (*rec == current) {
        if (*raw > current) return stays(what + ", at max " + std::to_string(spec.max));
        if (*raw < current) return stays(what + ", at min " + std::to_string(spec.min));
        return stays(what);
    }

    const bool up = *rec > current;
    const int64_t windowMs = up ? spec.scaleUpAfterMs : spec.scaleDownAfterMs;
    const auto agreed = agreement(spec, current, samples, last, windowMs, up);
    if (!agreed)
        return stays(what + ": " + std::to_string(*rec) + " called for, but not over all of the last " +
                     seconds(windowMs));
    int64_t desired = agreed->desired;
    if (spec.step > 0) desired = up ? std::min(desired, current + spec.step) : std::max(desired, current - spec.step);
    std::string reason = what + " over " + std::to_string(agreed->samples) +
                         (agreed->samples == 1 ? " sample: " : " samples: ") + std::to_string(current) + " -> " +
                         std::to_string(desired);
    if (desired != agreed->desired)
        reason += " (step " + std::to_string(spec.step) + "; " + std::to_string(agreed->desired) + " called for)";
    return {desired, true, reason};
}

std::string checkAutoscale(const AutoscaleSpec& spec) {
    auto targetOk = [](const std::optional<double>& t) { return !t || (std::isfinite(*t) && *t > 0); };
    if (spec.min < 0) return "autoscale.min: must not be negative";
    if (spec.min == 0) return "autoscale.min: scale to zero is not supported yet: at least 1";
    if (spec.max < spec.min) return "autoscale.max: must be at least min (" + std::to_string(spec.min) + ")";
    if (!spec.cpu && !spec.requestsPerSecond)
        return "autoscale: needs a target: cpu (\"60%\") or requestsPerSecond, or both";
    if (!targetOk(spec.cpu)) return "autoscale.cpu: must be more than 0";
    if (!targetOk(spec.requestsPerSecond)) return "autoscale.requestsPerSecond: must be more than 0";
    if (spec.scaleUpAfterMs < 0) return "autoscale.scaleUpAfter: must not be negative";
    if (spec.scaleDownAfterMs < 0) return "autoscale.scaleDownAfter: must not be negative";
    if (spec.step < 0) return "autoscale.step: must not be negative";
    return "";
}

}  // namespace hull::orchestrator::core
