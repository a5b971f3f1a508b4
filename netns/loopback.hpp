#pragma once
#include "sys/error.hpp"

namespace hull::netns {

/// Bring "lo" up in the calling process's network namespace. A new network
/// namespace starts with lo down; runc and crun bring it up, and so do we.
/// One ioctl pair on a throwaway socket: this runs in every container start,
/// between clone and exec, where a netlink round trip through libnl would cost more.
[[nodiscard]] Result<void> bringUpLoopback();

}  // namespace hull::netns
