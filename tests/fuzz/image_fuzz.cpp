// What a registry or an image archive serves: manifests, indexes (the platform
// chosen from them) and image configs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "images/store.hpp"
#include "images/wire.hpp"
#include "quiet.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    hull::fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace hull::images;
    std::string text(reinterpret_cast<const char*>(data), size);
    (void)parseImageConfig(text);
    auto doc = hull::json::Value::parse(text);
    if (!doc) return 0;
    auto type = wire::manifestMediaType(*doc, "application/json", "fuzz");
    (void)wire::parseManifest(*doc, "fuzz", "manifest");
    for (const Platform& p : {Platform{}, Platform{"linux", "arm64", ""}, Platform{"linux", "arm", "v6"}})
        (void)wire::selectPlatform(*doc, p, "index");
    if (type) (void)wire::isIndexType(*type);
    return 0;
}
