#pragma once
#include <utility>

namespace hull {

/// Runs a function on scope exit unless dismissed: the rollback of a half-made
/// container (cgroup, state dir, child process) is a stack of these.
template <class F>
class ScopeExit {
public:
    explicit ScopeExit(F f) : f_(std::move(f)) {}
    ScopeExit(ScopeExit&& o) noexcept : f_(std::move(o.f_)), active_(std::exchange(o.active_, false)) {}
    ScopeExit(const ScopeExit&) = delete;
    ScopeExit& operator=(const ScopeExit&) = delete;
    ~ScopeExit() {
        if (active_) f_();
    }
    void dismiss() { active_ = false; }

private:
    F f_;
    bool active_ = true;
};

}  // namespace hull
