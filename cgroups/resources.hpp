#pragma once
// linux.resources of the OCI runtime spec (config-linux.md "Control groups"),
// owned by the cgroups library: it knows limits, not containers.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hull::cgroups {

struct DeviceRule {
    bool allow = false;
    std::string type;  // "a", "c", "b" (empty = all)
    std::optional<int64_t> major, minor;
    std::string access;  // subset of "rwm"
};

struct MemoryLimits {
    std::optional<int64_t> limit, reservation, swap, kernel, kernelTCP;
    std::optional<uint64_t> swappiness;
    std::optional<bool> disableOOMKiller, useHierarchy, checkBeforeUpdate;
};

struct CpuLimits {
    std::optional<uint64_t> shares;
    std::optional<int64_t> quota;
    std::optional<uint64_t> burst, period;
    std::optional<int64_t> realtimeRuntime;
    std::optional<uint64_t> realtimePeriod;
    std::string cpus, mems;
    std::optional<int64_t> idle;
};

struct WeightDevice {
    int64_t major = 0, minor = 0;
    std::optional<uint16_t> weight, leafWeight;
};
struct ThrottleDevice {
    int64_t major = 0, minor = 0;
    uint64_t rate = 0;
};
struct BlockIoLimits {
    std::optional<uint16_t> weight, leafWeight;
    std::vector<WeightDevice> weightDevice;
    std::vector<ThrottleDevice> throttleReadBpsDevice, throttleWriteBpsDevice, throttleReadIOPSDevice,
        throttleWriteIOPSDevice;
};

struct HugepageLimit {
    std::string pageSize;  // "2MB", "1GB"
    uint64_t limit = 0;
};

struct NetworkPriority {
    std::string name;
    uint32_t priority = 0;
};
struct NetworkLimits {
    std::optional<uint32_t> classID;
    std::vector<NetworkPriority> priorities;
};

struct RdmaLimit {
    std::optional<uint32_t> hcaHandles, hcaObjects;
};

struct Resources {
    std::vector<DeviceRule> devices;
    std::optional<MemoryLimits> memory;
    std::optional<CpuLimits> cpu;
    std::optional<int64_t> pidsLimit;
    std::optional<BlockIoLimits> blockIO;
    std::vector<HugepageLimit> hugepageLimits;
    std::optional<NetworkLimits> network;
    std::map<std::string, RdmaLimit> rdma;
    std::map<std::string, std::string> unified;
};

}  // namespace hull::cgroups
