// Service files, YAML or JSON (orchestrator::parseService), and the stored form
// (serviceFromJson). What parseService accepts must come back the same through
// serviceJson and serviceFromJson, the form the master stores and sends to nodes:
// a service that could be applied but not read back would be lost.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "orchestrator/model/service.hpp"
#include "quiet.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    hull::fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace hull::orchestrator;
    std::string text(reinterpret_cast<const char*>(data), size);
    // The stored form read back, as the master and the agents read their stores (and
    // for display, leniently): any text gives a service or an error.
    (void)serviceFromJson(text);
    (void)serviceFromJsonLenient(text, "fuzz");
    auto s = parseService(text, "fuzz.yaml");
    if (!s) return 0;
    std::string once = serviceJson(*s);
    auto again = serviceFromJson(once);
    if (!again) {
        fprintf(stderr, "serviceJson of an accepted service is refused by serviceFromJson: %s\n%s\n",
                again.error().message().c_str(), once.c_str());
        abort();
    }
    if (!(*again == *s) || serviceJson(*again) != once) {
        fprintf(stderr, "serviceJson does not come back the same:\n%s\n%s\n", once.c_str(), serviceJson(*again).c_str());
        abort();
    }
    return 0;
}
