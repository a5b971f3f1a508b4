// hull: the single-host and cluster CLI. Images, `hull run`, the node agent and
// the master arrive with their issues; today it reports its version and points
// at hull-runc, which runs OCI bundles.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    if (argc > 1 && (!std::strcmp(argv[1], "version") || !std::strcmp(argv[1], "--version"))) {
        std::printf("hull version 0.1.0\n");
        return 0;
    }
    std::fprintf(stderr,
                 "usage: hull version\n\n"
                 "hull's image, run and node commands are not built yet; run OCI bundles with hull-runc.\n");
    return argc > 1 ? 1 : 0;
}
