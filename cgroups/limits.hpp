#pragma once
// linux.resources -> control file writes (pure), and control file text -> Stats
// (pure). The managers only carry out the writes and read the files, so every
// formula and parser here is unit-tested without a kernel.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroups/resources.hpp"
#include "sys/error.hpp"

namespace hull::cgroups {

/// One write to a control file. CONTROLLER names the v1 hierarchy it goes to
/// ("memory", "cpu", ...); on v2 every file is in the one directory and
/// CONTROLLER says which controller must be enabled for the file to exist.
struct ControlWrite {
    std::string controller;
    std::string file;
    std::string value;
    bool operator==(const ControlWrite&) const = default;
};

/// What a plan cannot express on this cgroup version, e.g. realtime CPU
/// limits on v2. The runtime logs these; FATAL ones refuse the container.
struct PlanNote {
    std::string field;  // "linux.resources.cpu.realtimeRuntime"
    std::string message;
    bool fatal = false;
};

struct Plan {
    std::vector<ControlWrite> writes;
    std::vector<PlanNote> notes;
};

// ---- conversions between v1 values and v2 files (as runc and crun do them) ----

/// cpu.shares [2, 262144] -> cpu.weight [1, 10000]; 0 (unset) -> 0.
uint64_t cpuWeightFromShares(uint64_t shares);
/// blkio.weight [10, 1000] -> io.weight [1, 10000]; 0 (unset) -> 0.
uint64_t ioWeightFromBlkioWeight(uint64_t weight);
/// "max" for a negative limit (unlimited), the decimal number otherwise.
std::string limitValue(int64_t v);
/// v1's swap is memory+swap; v2's memory.swap.max is swap alone: swap - limit.
/// nullopt when LIMIT is unlimited and SWAP is not (there is no v2 equivalent).
std::optional<std::string> swapMaxV2(std::optional<int64_t> limit, int64_t swap);
/// "quota period" for cpu.max; quota <= 0 is "max". Period defaults to 100000.
std::string cpuMaxValue(std::optional<int64_t> quota, std::optional<uint64_t> period);

/// The writes for cgroup v2, in order. Errors name the field
/// ("linux.resources.unified: key \"../x\" is not a control file name").
[[nodiscard]] Result<Plan> planV2(const Resources& r);
/// The writes for cgroup v1, in order (period before quota, memsw after memory).
[[nodiscard]] Result<Plan> planV1(const Resources& r);

// ---- statistics --------------------------------------------------------------

struct Stats {
    struct Cpu {
        uint64_t usageUsec = 0, userUsec = 0, systemUsec = 0;
        uint64_t periods = 0, throttledPeriods = 0, throttledUsec = 0;
    } cpu;
    struct Memory {
        uint64_t usage = 0, maxUsage = 0, limit = 0;  // limit 0: unlimited
        uint64_t swapUsage = 0, swapLimit = 0;
        uint64_t oom = 0, oomKill = 0;  // memory.events (v2), memory.oom_control (v1)
        std::map<std::string, uint64_t> raw;  // memory.stat
    } memory;
    struct Pids {
        uint64_t current = 0, limit = 0;  // limit 0: unlimited
    } pids;
    struct IoDevice {
        uint64_t major = 0, minor = 0;
        uint64_t rbytes = 0, wbytes = 0, rios = 0, wios = 0;
    };
    std::vector<IoDevice> io;
};

/// "key value" lines (memory.stat, cpu.stat, memory.events) -> numbers; lines
/// whose value is not a number are skipped.
std::map<std::string, uint64_t> parseFlatKeyed(std::string_view text);
/// A single-number file ("max" -> 0 meaning unlimited; v1's huge "unlimited" too).
std::optional<uint64_t> parseLimit(std::string_view text);
/// io.stat lines: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
std::vector<Stats::IoDevice> parseIoStat(std::string_view text);
/// v1 blkio.throttle.io_service_bytes / io_serviced: "8:0 Read 123" lines.
void addBlkioV1(std::vector<Stats::IoDevice>& into, std::string_view text, bool bytes);

/// runc's `events --stats` JSON object for STATS ({"cpu":...,"memory":...,...}).
std::string statsJson(const Stats& s);

}  // namespace hull::cgroups
