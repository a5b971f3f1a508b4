#include "netns/loopback.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "sys/unique_fd.hpp"

namespace hull::netns {

Result<void> bringUpLoopback() {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) return failErrno("socket for loopback");
    struct ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return failErrno("get flags of lo");
    if (ifr.ifr_flags & IFF_UP) return {};
    ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) < 0) return failErrno("bring lo up");
    return {};
}

}  // namespace hull::netns
