#pragma once
// The parent<->child channel used between clone and exec: one SOCK_SEQPACKET
// message per step ("go:<pid>", "hooks", "ready", "error:<message>").
#include <sys/socket.h>

#include <string>

#include "sys/error.hpp"

namespace hull::runtime {

inline Result<void> sendMsg(int fd, const std::string& m) {
    while (::send(fd, m.data(), m.size(), MSG_NOSIGNAL) < 0)
        if (errno != EINTR) return failErrno("sync send");
    return {};
}

/// One message; "" on EOF (the peer exited).
inline Result<std::string> recvMsg(int fd) {
    char buf[8192];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) < 0)
        if (errno != EINTR) return failErrno("sync receive");
    return std::string(buf, size_t(n));
}

}  // namespace hull::runtime
