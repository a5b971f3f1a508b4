// The autoscaler's rule, with made-up clocks and loads: samples once a second,
// decisions as the master would ask for them.
#include <catch2/catch.hpp>

#include <cstdint>

#include "orchestrator/core/autoscaler.hpp"

using namespace hull::orchestrator::core;

namespace {

AutoscaleSpec cpuSpec(int64_t min, int64_t max, double target = 0.6) {
    AutoscaleSpec s;
    s.min = min, s.max = max, s.cpu = target;
    return s;
}

AutoscaleSample cpuAt(int64_t atMs, int64_t ready, double cpu) { return {atMs, ready, cpu, std::nullopt}; }

/// One sample a second over [FROM, TO] ms, READY replicas at CPU each.
void addSteady(std::vector<AutoscaleSample>& out, int64_t from, int64_t to, int64_t ready, double cpu) {
    for (int64_t t = from; t <= to; t += 1000) out.push_back(cpuAt(t, ready, cpu));
}

/// The samples at or before NOW (the ones a master would have then).
std::vector<AutoscaleSample> until(const std::vector<AutoscaleSample>& all, int64_t nowMs) {
    std::vector<AutoscaleSample> out;
    for (const auto& s : all)
        if (s.atMs <= nowMs) out.push_back(s);
    return out;
}

/// A made-up, reproducible noise in [-1, 1].
struct Noise {
    uint64_t state = 12345;
    double next() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return double(state >> 11) / double(1ull << 53) * 2 - 1;
    }
};

}  // namespace

TEST_CASE("autoscale: a load over target scales up on its first sample to ceil(ready x observed / target)", "[autoscale]") {
    const auto spec = cpuSpec(1, 10);
    std::vector<AutoscaleSample> samples;
    addSteady(samples, 0, 9000, 2, 0.6);
    auto d = decideScale(spec, 2, samples, 9500);
    CHECK_FALSE(d.changed);
    CHECK(d.desired == 2);
    CHECK(d.reason == "cpu 60% within 10% of target 60%");

    samples.push_back(cpuAt(10000, 2, 1.2));  // 2 x 1.2 / 0.6 = 4 exactly: not 5 by rounding
    CHECK(recommend(spec, 2, samples.back()) == 4);
    CHECK(recommend(spec, 2, cpuAt(0, 2, 2.1)) == 7);  // 7.000000000000001 in floating point
    d = decideScale(spec, 2, samples, 10000);
    CHECK(d.changed);
    CHECK(d.desired == 4);
    CHECK(d.reason == "cpu 120% of target 60% over 1 sample: 2 -> 4");

    samples.back().cpu = 1.42;  // ceil(4.73)
    d = decideScale(spec, 2, samples, 10300);
    CHECK(d.desired == 5);
    CHECK(d.reason == "cpu 142% of target 60% over 1 sample: 2 -> 5");
}

TEST_CASE("autoscale: with scaleUpAfter every sample of the window must call for more, and the least of them is taken", "[autoscale]") {
    auto spec = cpuSpec(1, 10);
    spec.scaleUpAfterMs = 3000;
    std::vector<AutoscaleSample> samples;
    addSteady(samples, 0, 9000, 2, 0.6);
    samples.push_back(cpuAt(10000, 2, 1.2));  // calls for 4
    samples.push_back(cpuAt(11000, 2, 0.9));  // 3
    samples.push_back(cpuAt(12000, 2, 1.5));  // 5
    samples.push_back(cpuAt(13000, 2, 1.8));  // 6
    auto d = decideScale(spec, 2, until(samples, 12000), 12000);  // the window still holds 9000's sample
    CHECK_FALSE(d.changed);
    CHECK(d.reason == "cpu 150% of target 60%: 5 called for, but not over all of the last 3s");
    d = decideScale(spec, 2, until(samples, 13000), 13400);
    CHECK(d.changed);
    CHECK(d.desired == 3);
    CHECK(d.reason == "cpu 180% of target 60% over 4 samples: 2 -> 3");
}

TEST_CASE("autoscale: step limits how many replicas one decision adds or removes", "[autoscale]") {
    auto spec = cpuSpec(1, 10);
    spec.step = 2;
    // A 4x load: 8 replicas are called for and reached in steps of 2, each applied
    // and served before the next sample.
    std::vector<AutoscaleSample> samples;
    addSteady(samples, 0, 9000, 2, 0.6);
    int64_t current = 2;
    std::vector<int64_t> path;
    for (int64_t t = 10000; t <= 15000; t += 1000) {
        samples.push_back(cpuAt(t, current, 0.6 * 4 * 2 / double(current)));
        auto d = decideScale(spec, current, samples, t);
        if (t == 10000) CHECK(d.reason == "cpu 240% of target 60% over 1 sample: 2 -> 4 (step 2; 8 called for)");
        if (d.changed) path.push_back(current = d.desired);
    }
    CHECK(path == std::vector<int64_t>{4, 6, 8});

    // Down the same way: 8 replicas nearly idle call for 2, and lose 2.
    samples.clear();
    addSteady(samples, 0, 60000, 8, 0.15);
    auto d = decideScale(spec, 8, samples, 60000);
    CHECK(d.changed);
    CHECK(d.desired == 6);
    spec.step = 0;
    CHECK(decideScale(spec, 8, samples, 60000).desired == 2);
}

TEST_CASE("autoscale: scale down only once every sample of scaleDownAfter agrees, to the most they call for", "[autoscale]") {
    const auto spec = cpuSpec(1, 10);  // scaleDownAfter 60 s
    std::vector<AutoscaleSample> samples;
    addSteady(samples, 0, 99000, 4, 0.6);
    addSteady(samples, 100000, 200000, 4, 0.3);  // calls for 2
    samples[130].cpu = 0.42;                     // at 130 s: calls for 3
    REQUIRE(samples[130].atMs == 130000);
    CHECK(recommend(spec, 4, samples[130]) == 3);

    for (int64_t now = 100000; now < 160000; now += 1000) {
        auto d = decideScale(spec, 4, until(samples, now), now);
        INFO("at " << now);
        CHECK_FALSE(d.changed);
        CHECK(d.desired == 4);
    }
    CHECK(decideScale(spec, 4, until(samples, 159000), 159900).reason ==
          "cpu 30% of target 60%: 2 called for, but not over all of the last 60s");
    auto d = decideScale(spec, 4, until(samples, 160000), 160000);  // [100 s, 160 s] all low
    CHECK(d.changed);
    CHECK(d.desired == 3);  // the window's peak, not the latest sample's 2
    CHECK(d.reason == "cpu 30% of target 60% over 61 samples: 4 -> 3");
    // The peak is kept while it is in the window, then 2 are called for.
    CHECK(decideScale(spec, 4, until(samples, 190000), 190000).desired == 3);  // [130 s, 190 s]
    CHECK(decideScale(spec, 4, until(samples, 191000), 191000).desired == 2);  // [131 s, 191 s]
}

TEST_CASE("autoscale: a metric within 10% of its target changes nothing", "[autoscale]") {
    const auto spec = cpuSpec(1, 20);
    std::vector<AutoscaleSample> samples;
    addSteady(samples, 0, 120000, 4, 0.61);
    auto d = decideScale(spec, 4, samples, 120000);
    CHECK_FALSE(d.changed);
    CHECK(d.reason == "cpu 61% within 10% of target 60%");
    samples.back().cpu = 0.66;  // exactly 10% over
    CHECK_FALSE(decideScale(spec, 4, samples, 120000).changed);
    samples.back().cpu = 0.67;
    d = decideScale(spec, 4, samples, 120000);
    CHECK(d.changed);
    CHECK(d.desired == 5);  // ceil(4 x 1.117)
    // Below the target alike: 10 replicas at 54% stay 10, at 53% call for 9.
    CHECK(recommend(spec, 10, cpuAt(0, 10, 0.54)) == 10);
    CHECK(recommend(spec, 10, cpuAt(0, 10, 0.53)) == 9);
}

TEST_CASE("autoscale: min and max always win, also over a current count outside them", "[autoscale]") {
    const auto spec = cpuSpec(2, 5);
    std::vector<AutoscaleSample> busy, idle;
    addSteady(busy, 0, 70000, 2, 3.0);  // calls for 10
    addSteady(idle, 0, 70000, 2, 0.01);

    auto d = decideScale(spec, 1, {}, 0);  // with no samples at all
    CHECK(d.changed);
    CHECK(d.desired == 2);
    CHECK(d.reason == "below min 2: 1 -> 2");
    d = decideScale(spec, 7, busy, 70000);  // however busy
    CHECK(d.changed);
    CHECK(d.desired == 5);
    CHECK(d.reason == "above max 5: 7 -> 5");
    CHECK(decideScale(spec, 1, idle, 70000).desired == 2);

    CHECK(recommend(spec, 2, busy.back()) == 5);
    CHECK(recommend(spec, 5, idle.back()) == 2);
    d = decideScale(spec, 5, busy, 70000);
    CHECK_FALSE(d.changed);
    CHECK(d.reason == "cpu 300% of target 60%, at max 5");
    d = decideScale(spec, 2, idle, 70000);
    CHECK_FALSE(d.changed);
    CHECK(d.reason == "cpu 1% of target 60%, at min 2");
    CHECK(decideScale(spec, 4, busy, 70000).desired == 5);
}

TEST_CASE("autoscale: replicas that are not ready are not capacity", "[autoscale]") {
    const auto spec = cpuSpec(1, 10, 0.5);
    // 4 desired, 2 ready at twice the target: 4 are called for, which are coming.
    const auto half = cpuAt(10000, 2, 1.0);
    CHECK(recommend(spec, 4, half) == 4);
    auto d = decideScale(spec, 4, {half}, 10000);
    CHECK_FALSE(d.changed);
    CHECK(d.desired == 4);
    // Three times the target on 2 ready: 6, not 12.
    d = decideScale(spec, 4, {cpuAt(10000, 2, 1.5)}, 10000);
    CHECK(d.desired == 6);
    // None ready: no opinion, even at a busy cpu figure.
    CHECK_FALSE(recommend(spec, 4, cpuAt(10000, 0, 1.5)));
    d = decideScale(spec, 4, {cpuAt(10000, 0, 1.5)}, 10000);
    CHECK_FALSE(d.changed);
    CHECK(d.reason == "no ready replica");
    // Requests a second are per ready replica too: 300 rps on 2 ready at 100 each call for 3.
    AutoscaleSpec rps;
    rps.min = 1, rps.max = 10, rps.requestsPerSecond = 100;
    CHECK(recommend(rps, 4, {0, 2, std::nullopt, 300.0}) == 3);
    CHECK(recommend(rps, 4, {0, 3, std::nullopt, 300.0}) == 4);  // 100 each: at target, stays
}

TEST_CASE("autoscale: with several metrics the largest wins, and one without data leaves the other", "[autoscale]") {
    AutoscaleSpec spec = cpuSpec(1, 20);
    spec.requestsPerSecond = 100;
    const AutoscaleSample both{10000, 2, 0.9, 800.0};  // cpu calls for 3, rps (400 a replica) for 8
    CHECK(recommend(spec, 2, both) == 8);
    auto d = decideScale(spec, 2, {both}, 10000);
    CHECK(d.desired == 8);
    CHECK(d.reason == "cpu 90% of target 60%, rps 400/replica of target 100 over 1 sample: 2 -> 8");
    CHECK(recommend(spec, 2, {10000, 2, 3.0, 800.0}) == 10);  // now cpu is the larger

    CHECK(recommend(spec, 2, {10000, 2, std::nullopt, 800.0}) == 8);
    CHECK(recommend(spec, 2, {10000, 2, 0.9, std::nullopt}) == 3);
    CHECK_FALSE(recommend(spec, 2, {10000, 2, std::nullopt, std::nullopt}));
    d = decideScale(spec, 2, {{10000, 2, std::nullopt, std::nullopt}}, 10000);
    CHECK_FALSE(d.changed);
    CHECK(d.reason == "no data for cpu or rps");

    // A metric the spec does not name is not looked at.
    CHECK(recommend(cpuSpec(1, 20), 2, {10000, 2, 0.6, 5000.0}) == 2);
    // One within tolerance does not hold back another over its target.
    CHECK(recommend(spec, 2, {10000, 2, 0.62, 600.0}) == 6);
}

TEST_CASE("autoscale: no flapping on a noisy steady load", "[autoscale]") {
    // A load worth 4 replicas at the 60% target, its cpu wobbling +-8% at
    // random, 10 minutes of samples, a decision every second, applied.
    auto run = [](double wobble, int64_t& ups, int64_t& downs) {
        const auto spec = cpuSpec(1, 20);
        Noise noise;
        std::vector<AutoscaleSample> samples;
        int64_t current = 4;
        for (int64_t t = 0; t < 600000; t += 1000) {
            const double load = 0.6 * 4 * (1 + wobble * noise.next());  // in replicas' worth
            samples.push_back(cpuAt(t, current, load / double(current)));
            if (samples.size() > 300) samples.erase(samples.begin());  // a few minutes of them
            const auto d = decideScale(spec, current, samples, t + 200);
            if (!d.changed) continue;
            (d.desired > current ? ups : downs)++;
            current = d.desired;
        }
        return current;
    };
    int64_t ups = 0, downs = 0;
    CHECK(run(0.08, ups, downs) == 4);
    CHECK(ups == 0);
    CHECK(downs == 0);
    // A wobble of +-15% crosses the tolerance: one step up to 5, where the
    // noise stays within it or calls for 4 too briefly to come back down.
    ups = downs = 0;
    CHECK(run(0.15, ups, downs) == 5);
    CHECK(ups == 1);
    CHECK(downs == 0);
}

TEST_CASE("autoscale: a load step from idle to 4x is answered on its first sample", "[autoscale]") {
    const auto spec = cpuSpec(2, 20);  // scaleUpAfter 0
    std::vector<AutoscaleSample> samples;
    int64_t current = 2, changedAt = -1;
    for (int64_t t = 0; t <= 40000; t += 1000) {
        const double load = t < 30000 ? 0.05 : 0.6 * 4 * 2;  // in replicas' worth: idle, then 4x what 2 can serve
        samples.push_back(cpuAt(t, current, load / double(current)));
        const auto d = decideScale(spec, current, samples, t);
        if (!d.changed) continue;
        if (changedAt < 0) {
            changedAt = t;
            CHECK(d.desired == 8);
            CHECK(d.reason == "cpu 240% of target 60% over 1 sample: 2 -> 8");
        }
        current = d.desired;
    }
    CHECK(changedAt == 30000);
    CHECK(current == 8);  // and it holds: 8 replicas at the target
}

TEST_CASE("autoscale: a gap in the samples blocks scale down", "[autoscale]") {
    const auto spec = cpuSpec(1, 10);
    SECTION("a sample without data") {
        std::vector<AutoscaleSample> samples;
        addSteady(samples, 0, 200000, 4, 0.3);  // calls for 2 throughout
        samples[130].cpu.reset();
        REQUIRE(samples[130].atMs == 130000);
        CHECK(decideScale(spec, 4, until(samples, 129000), 129000).desired == 2);  // before it: down
        for (int64_t now = 130000; now <= 190000; now += 1000) {
            INFO("at " << now);
            CHECK_FALSE(decideScale(spec, 4, until(samples, now), now).changed);
        }
        CHECK(decideScale(spec, 4, until(samples, 130000), 130000).reason == "no data for cpu");
        CHECK(decideScale(spec, 4, until(samples, 191000), 191000).desired == 2);  // [131 s, 191 s]
    }
    SECTION("samples missing") {
        std::vector<AutoscaleSample> samples;
        addSteady(samples, 0, 129000, 4, 0.3);
        addSteady(samples, 131000, 200000, 4, 0.3);  // none at 130 s: a 2 s hole
        CHECK(decideScale(spec, 4, until(samples, 129000), 129000).desired == 2);
        for (int64_t now = 131000; now <= 189000; now += 1000) {
            INFO("at " << now);
            CHECK_FALSE(decideScale(spec, 4, until(samples, now), now).changed);
        }
        // [130 s, 190 s] starts 1 s before its oldest sample (131 s): covered.
        CHECK(decideScale(spec, 4, until(samples, 190000), 190000).desired == 2);
    }
    SECTION("a sampler that has just started") {
        std::vector<AutoscaleSample> samples;
        addSteady(samples, 100000, 200000, 4, 0.3);
        CHECK_FALSE(decideScale(spec, 4, until(samples, 158000), 158000).changed);  // oldest 100 s > 98 s + 1.5 s
        CHECK(decideScale(spec, 4, until(samples, 159000), 159000).changed);        // oldest 100 s <= 99 s + 1.5 s
    }
}

TEST_CASE("autoscale: samples from the future are ignored, and a stalled sampler decides nothing", "[autoscale]") {
    const auto spec = cpuSpec(1, 10);
    std::vector<AutoscaleSample> samples;
    addSteady(samples, 0, 10000, 2, 0.6);
    samples.push_back(cpuAt(11000, 2, 3.0));  // after now
    auto d = decideScale(spec, 2, samples, 10500);
    CHECK_FALSE(d.changed);
    CHECK(d.reason == "cpu 60% within 10% of target 60%");
    CHECK(decideScale(spec, 2, samples, 11000).desired == 10);

    CHECK(decideScale(spec, 2, samples, 12500).changed);  // 1.5 s old: still fresh
    d = decideScale(spec, 2, samples, 12600);
    CHECK_FALSE(d.changed);
    CHECK(d.reason == "no sample for 1.6s");
    CHECK(decideScale(spec, 2, {}, 0).reason == "no samples yet");
}

TEST_CASE("autoscale: checkAutoscale refuses what a service file must not say", "[autoscale]") {
    AutoscaleSpec ok = cpuSpec(2, 5);
    CHECK(checkAutoscale(ok) == "");
    auto with = [&](auto change) {
        AutoscaleSpec s = ok;
        change(s);
        return checkAutoscale(s);
    };
    CHECK(with([](AutoscaleSpec& s) { s.min = -1; }) == "autoscale.min: must not be negative");
    CHECK(with([](AutoscaleSpec& s) { s.min = 0; }) == "autoscale.min: scale to zero is not supported yet: at least 1");
    CHECK(with([](AutoscaleSpec& s) { s.max = 1; }) == "autoscale.max: must be at least min (2)");
    CHECK(with([](AutoscaleSpec& s) { s.cpu.reset(); }) ==
          "autoscale: needs a target: cpu (\"60%\") or requestsPerSecond, or both");
    CHECK(with([](AutoscaleSpec& s) { s.cpu.reset(), s.requestsPerSecond = 50; }) == "");
    CHECK(with([](AutoscaleSpec& s) { s.cpu = 0; }) == "autoscale.cpu: must be more than 0");
    CHECK(with([](AutoscaleSpec& s) { s.requestsPerSecond = -3; }) == "autoscale.requestsPerSecond: must be more than 0");
    CHECK(with([](AutoscaleSpec& s) { s.scaleUpAfterMs = -1; }) == "autoscale.scaleUpAfter: must not be negative");
    CHECK(with([](AutoscaleSpec& s) { s.scaleDownAfterMs = -1; }) == "autoscale.scaleDownAfter: must not be negative");
    CHECK(with([](AutoscaleSpec& s) { s.step = -1; }) == "autoscale.step: must not be negative");
    CHECK(with([](AutoscaleSpec& s) { s.step = 3, s.scaleUpAfterMs = 0, s.min = 1, s.max = 1; }) == "");
}
