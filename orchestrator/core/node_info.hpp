#pragma once
// A node as the master's decisions see it: its name, labels, whether it takes
// new replicas, and what it can hold.
#include <cstdint>
#include <map>
#include <string>

namespace hull::orchestrator::core {

/// One node of the cluster. Names are unique (the master keys nodes by name).
struct NodeInfo {
    std::string name;
    std::map<std::string, std::string> labels;
    bool schedulable = true;  // ready and not drained
    double cpus = 0;          // allocatable capacity; 0: takes only replicas that request none
    int64_t memory = 0;       // bytes, likewise
};

}  // namespace hull::orchestrator::core
