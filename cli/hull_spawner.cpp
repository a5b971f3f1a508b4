// hull-spawner: the node agent's container creator (runtime/spawner.hpp).
// Engine::startSpawner starts it with its socket on fd 3; its arguments
// (--state-dir, --run-dir) only name it for ps and pgrep.
#include "runtime/spawner.hpp"

int main() { return hull::runtime::runSpawner(3); }
