// config.json from any OCI client: runtime::parseSpec, and the resources part
// alone as `hull-runc update --resources` reads it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/spec.hpp"
#include "quiet.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    hull::fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto spec = hull::runtime::parseSpec(text);
    if (!spec) (void)spec.error().message().size();
    (void)hull::runtime::parseResources(text);
    return 0;
}
