// hull-cni's stdin: the network configuration any CNI runtime sends.
#include <cstddef>
#include <cstdint>
#include <string>

#include "netns/cni_config.hpp"
#include "quiet.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    hull::fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    auto c = hull::netns::cni::parseConfig(text, "/var/lib/hull");
    if (c) (void)c->net.bridge.size();
    return 0;
}
