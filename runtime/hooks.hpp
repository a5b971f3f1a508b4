#pragma once
// OCI hooks (config.md "POSIX-platform Hooks"): each hook gets the container
// state on stdin and must finish within its timeout.
#include <string>
#include <vector>

#include "runtime/spec.hpp"
#include "sys/error.hpp"

namespace hull::runtime {

/// Run one hook to completion. Errors name the hook: "createRuntime hook
/// /usr/bin/x: exited with status 3: <its stderr>".
[[nodiscard]] Result<void> runHook(const Hook& hook, const std::string& stateJson, const char* kind);
/// Run a list in order, stopping at the first failure.
[[nodiscard]] Result<void> runHooks(const std::vector<Hook>& hooks, const std::string& stateJson, const char* kind);
/// Run every hook of a list whatever the others do, logging each failure as a
/// warning (runtime.md: poststart and poststop failures do not stop the rest).
void runHooksLogged(const std::vector<Hook>& hooks, const std::string& stateJson, const char* kind);

}  // namespace hull::runtime
