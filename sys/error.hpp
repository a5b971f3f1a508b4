#pragma once
// Errors without exceptions: much of hull runs between clone() and execve(),
// where throwing is not an option. Result<T> is tl::expected<T, Error>; use only
// and_then/or_else/value/error so a later switch to std::expected is one line.
#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include <tl/expected.hpp>

namespace hull {

/// An error code plus a human chain of context, outermost first:
/// "create cgroup /sys/fs/cgroup/hull/web-1: Permission denied".
class Error {
public:
    Error() = default;
    Error(std::error_code code, std::string what, bool showCode = true)
        : code_(code), what_(std::move(what)), showCode_(showCode) {}

    /// errno-based error; the message gets strerror appended.
    static Error fromErrno(std::string what, int err = errno) {
        return Error(std::error_code(err, std::generic_category()), std::move(what));
    }
    /// A validation error: EINVAL, the message stands alone.
    static Error invalid(std::string what) {
        return Error(std::make_error_code(std::errc::invalid_argument), std::move(what), false);
    }
    /// Any other errno with a message that stands alone.
    static Error plain(int err, std::string what) {
        return Error(std::error_code(err, std::generic_category()), std::move(what), false);
    }

    /// Prepend context: "ctx: <previous message>".
    Error& context(const std::string& ctx) & {
        what_ = what_.empty() ? ctx : ctx + ": " + what_;
        return *this;
    }
    Error&& context(const std::string& ctx) && { return std::move(context(ctx)); }

    const std::error_code& code() const { return code_; }
    /// The errno value, or 0 when the code is not an errno.
    int errnum() const { return code_.category() == std::generic_category() ? code_.value() : 0; }
    std::string message() const {
        if (!showCode_ || !code_) return what_;
        return what_.empty() ? code_.message() : what_ + ": " + code_.message();
    }

private:
    std::error_code code_;
    std::string what_;
    bool showCode_ = true;
};

template <class T = void>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(Error e) { return tl::unexpected<Error>(std::move(e)); }
inline tl::unexpected<Error> failErrno(std::string what, int err = errno) {
    return fail(Error::fromErrno(std::move(what), err));
}
inline tl::unexpected<Error> failInvalid(std::string what) { return fail(Error::invalid(std::move(what))); }

namespace detail {
// tl::expected 1.0 has no value() for void; TRY needs one spelling for both.
template <class T>
T unwrap(tl::expected<T, Error>&& r) { return std::move(*r); }
inline void unwrap(tl::expected<void, Error>&&) {}
template <class T>
T unwrap(tl::expected<T, Error>& r) { return std::move(*r); }
inline void unwrap(tl::expected<void, Error>&) {}
}  // namespace detail

}  // namespace hull

/// Unwrap a Result or return its error from the enclosing function.
/// Works for Result<void> too (the expression then has type void).
#define TRY(...)                                                              \
    ({                                                                        \
        auto&& hull_try_r_ = (__VA_ARGS__);                                   \
        if (!hull_try_r_) return ::hull::fail(std::move(hull_try_r_).error()); \
        ::hull::detail::unwrap(hull_try_r_);                                   \
    })

/// Like TRY, adding context to the error on the way out.
#define TRY_CTX(ctx, ...)                                                                  \
    ({                                                                                     \
        auto&& hull_try_r_ = (__VA_ARGS__);                                                \
        if (!hull_try_r_) return ::hull::fail(std::move(hull_try_r_).error().context(ctx)); \
        ::hull::detail::unwrap(hull_try_r_);                                               \
    })
