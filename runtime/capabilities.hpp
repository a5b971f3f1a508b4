#pragma once
// process.capabilities -> the five capability sets, applied with libcap.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/spec.hpp"
#include "sys/error.hpp"

namespace hull::runtime {

/// Capability number for "CAP_NET_ADMIN" (case-insensitive, prefix optional); -1 if unknown.
int capabilityFromName(const std::string& name);
/// "CAP_NET_ADMIN" for 12.
std::string capabilityName(int cap);
/// Whether NAME is a capability's name exactly as the runtime spec writes it
/// ("CAP_NET_ADMIN": upper case, with its prefix): config.json's rule.
bool isCapabilityName(std::string_view name);
/// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
int lastCapability();

struct CapabilityPlan {
    // Bit masks over capability numbers (cap < 64).
    uint64_t bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
};

/// Names -> masks. Unknown names are an error naming the field:
/// "process.capabilities.bounding[2]: unknown capability CAP_FOO". Capabilities
/// newer than the running kernel are dropped silently (as runc does).
[[nodiscard]] Result<CapabilityPlan> planCapabilities(const Capabilities& caps);

/// Step 1, while still privileged (before setuid): drop everything not in the
/// bounding set (PR_CAPBSET_DROP).
[[nodiscard]] Result<void> dropBoundingSet(const CapabilityPlan& plan);
/// Step 2, after setuid with PR_SET_KEEPCAPS: set effective/permitted/inheritable
/// (capset via libcap), then raise the ambient set.
[[nodiscard]] Result<void> applyCapabilitySets(const CapabilityPlan& plan);

}  // namespace hull::runtime
