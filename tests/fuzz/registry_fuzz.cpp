// The registry client's small parsers: image references (from the command line
// and service files), digests, URLs, redirects' Location headers against the
// URL they answered, and WWW-Authenticate challenges. Input: up to three lines.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "images/registry.hpp"
#include "images/wire.hpp"
#include "quiet.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    hull::fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace hull::images;
    std::string text(reinterpret_cast<const char*>(data), size);
    std::string parts[3];
    for (size_t i = 0, at = 0; i < 3 && at <= text.size(); ++i) {
        size_t nl = text.find('\n', at);
        parts[i] = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        if (nl == std::string::npos) break;
        at = nl + 1;
    }
    if (auto ref = Reference::parse(parts[0])) {
        // The canonical form names the same image.
        auto again = Reference::parse(ref->str());
        if (!again || again->str() != ref->str()) {
            fprintf(stderr, "reference \"%s\" -> \"%s\" does not parse back the same\n", parts[0].c_str(), ref->str().c_str());
            abort();
        }
        (void)isLoopbackRegistry(ref->registry);
    }
    (void)Digest::parse(parts[0]);
    if (auto base = wire::parseUrl(parts[0])) {
        if (auto loc = wire::resolveLocation(*base, parts[1])) (void)loc->str();
    }
    auto c = wire::parseChallenge(parts[2]);
    (void)wire::urlEncode(c.param("scope"));
    return 0;
}
