#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <string>

#include "runtime/spec.hpp"
#include "support.hpp"

using namespace hull::runtime;

namespace {

// `runc spec` (runc 1.1.5), verbatim.
const char* kRuncSpec = R"({
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
})";

// Every field of linux.resources.
const char* kAllResources = R"({
  "ociVersion": "1.1.0",
  "root": {"path": "/var/lib/hull/rootfs"},
  "linux": {
    "cgroupsPath": "/hull/web-1",
    "resources": {
      "devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"},
        {"allow": true, "type": "b", "major": 8, "access": "r"}
      ],
      "memory": {"limit": 536870912, "reservation": 268435456, "swap": -1, "kernel": 0, "kernelTCP": 1048576,
                 "swappiness": 60, "disableOOMKiller": true, "useHierarchy": false, "checkBeforeUpdate": true},
      "cpu": {"shares": 1024, "quota": 50000, "burst": 10000, "period": 100000, "realtimeRuntime": 950000,
              "realtimePeriod": 1000000, "cpus": "0-3", "mems": "0", "idle": 1},
      "pids": {"limit": 32771},
      "blockIO": {
        "weight": 500, "leafWeight": 300,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 700, "leafWeight": 50}, {"major": 8, "minor": 16, "weight": 100}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 104857600}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 1, "rate": 18446744073709551615}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 2, "rate": 1000}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 3, "rate": 300}, {"major": 259, "minor": 0, "rate": 9}]
      },
      "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "1GB", "limit": 0}],
      "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}, {"name": "lo", "priority": 0}]},
      "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1000}},
      "unified": {"io.weight": "default 100", "memory.high": "max"}
    }
  }
})";

// The rest of config.md / config-linux.md beyond what `runc spec` writes.
const char* kEverythingElse = R"({
  "ociVersion": "1.0.0-rc5",
  "root": {"path": "rootfs"},
  "hostname": "web",
  "domainname": "example.org",
  "annotations": {"org.example.key": "value", "empty": ""},
  "someFutureField": {"anything": [1, 2, 3]},
  "process": {
    "consoleSize": {"height": 25, "width": 80},
    "user": {"uid": 1000, "gid": 4294967295, "umask": 18, "additionalGids": [5, 6, 7], "username": "app"},
    "args": ["/bin/app", "--flag"],
    "cwd": "/srv",
    "capabilities": {"bounding": ["CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"], "inheritable": []},
    "rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615},
                {"type": "RLIMIT_RTTIME", "soft": 1, "hard": 2}],
    "oomScoreAdj": -1000,
    "apparmorProfile": "hull-default",
    "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
    "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 7},
    "scheduler": {"policy": "SCHED_DEADLINE", "nice": -20, "priority": 0, "flags": ["SCHED_FLAG_RESET_ON_FORK"],
                  "runtime": 10000000, "deadline": 20000000, "period": 30000000},
    "execCPUAffinity": {"initial": "0"}
  },
  "mounts": [
    {"destination": "data", "type": "bind", "source": "/srv/data", "options": ["rbind", "rw"],
     "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
     "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 1}]},
    {"destination": "/tmp"}
  ],
  "hooks": {
    "prestart": [{"path": "/usr/bin/fix-mounts", "args": ["fix-mounts", "arg1"], "env": ["key1=value1"]}],
    "createRuntime": [{"path": "/usr/bin/netns-setup", "timeout": 5}],
    "createContainer": [{"path": "/bin/cc"}],
    "startContainer": [{"path": "/bin/sc"}],
    "poststart": [{"path": "/bin/ps1"}, {"path": "/bin/ps2"}],
    "poststop": [{"path": "/usr/sbin/cleanup.sh", "args": ["cleanup.sh", "-f"]}]
  },
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/web"}, {"type": "mount"},
                   {"type": "ipc"}, {"type": "uts"}, {"type": "user"}, {"type": "cgroup"}, {"type": "time"}],
    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
    "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
    "timeOffsets": {"monotonic": {"secs": -172800, "nanosecs": 0}, "boottime": {"secs": 1, "nanosecs": 999999999}},
    "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
                {"path": "/dev/fifo", "type": "p"}],
    "rootfsPropagation": "slave",
    "seccomp": {
      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      "flags": ["SECCOMP_FILTER_FLAG_LOG"],
      "listenerPath": "/run/seccomp-agent.socket", "listenerMetadata": "meta",
      "syscalls": [
        {"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                  {"index": 1, "value": 18446744073709551615, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}]}
      ]
    },
    "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
    "maskedPaths": ["/proc/kcore"],
    "readonlyPaths": ["/proc/sys"],
    "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
    "personality": {"domain": "LINUX32", "flags": []},
    "intelRdt": {"closID": "guaranteed_group"}
  }
})";

hull::Result<Spec> parse(const std::string& text) { return parseSpec(text); }

std::string errorOf(const std::string& text) {
    auto r = parseSpec(text);
    INFO(text);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum() == EINVAL);
    return r.error().message();
}

// A valid config with EXTRA appended to its top-level object.
std::string withTop(const std::string& extra) { return R"({"ociVersion":"1.0.2","root":{"path":"rootfs"})" + extra + "}"; }
std::string withProcess(const std::string& fields) {
    return withTop(R"(,"process":{"args":["sh"],"cwd":"/",)" + fields + "}");
}
std::string withLinux(const std::string& fields) { return withTop(R"(,"linux":{)" + fields + "}"); }
std::string withResources(const std::string& fields) { return withLinux(R"("resources":{)" + fields + "}"); }

}  // namespace

TEST_CASE("spec: the config `runc spec` writes", "[spec]") {
    auto r = parse(kRuncSpec);
    if (!r) FAIL(r.error().message());
    const Spec& s = *r;
    CHECK(s.ociVersion == "1.0.2-dev");
    CHECK(s.root.path == "rootfs");
    CHECK(s.root.readonly);
    CHECK(s.hostname == "runc");
    CHECK(s.domainname.empty());

    REQUIRE(s.process);
    const Process& p = *s.process;
    CHECK(p.terminal);
    CHECK_FALSE(p.consoleSize);
    CHECK(p.user.uid == 0);
    CHECK(p.user.gid == 0);
    CHECK_FALSE(p.user.umask);
    CHECK(p.args == std::vector<std::string>{"sh"});
    CHECK(p.env == std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                            "TERM=xterm"});
    CHECK(p.cwd == "/");
    REQUIRE(p.capabilities);
    const std::vector<std::string> caps{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
    CHECK(p.capabilities->bounding == caps);
    CHECK(p.capabilities->effective == caps);
    CHECK(p.capabilities->permitted == caps);
    CHECK(p.capabilities->ambient == caps);
    CHECK(p.capabilities->inheritable.empty());
    REQUIRE(p.rlimits.size() == 1);
    CHECK(p.rlimits[0].type == "RLIMIT_NOFILE");
    CHECK(p.rlimits[0].resource == RLIMIT_NOFILE);
    CHECK(p.rlimits[0].soft == 1024);
    CHECK(p.rlimits[0].hard == 1024);
    CHECK(p.noNewPrivileges);
    CHECK_FALSE(p.oomScoreAdj);
    CHECK_FALSE(p.ioPriority);
    CHECK_FALSE(p.scheduler);

    REQUIRE(s.mounts.size() == 7);
    CHECK(s.mounts[0].destination == "/proc");
    CHECK(s.mounts[0].type == "proc");
    CHECK(s.mounts[0].source == "proc");
    CHECK(s.mounts[0].options.empty());
    CHECK(s.mounts[2].destination == "/dev/pts");
    CHECK(s.mounts[2].options ==
          std::vector<std::string>{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"});
    CHECK(s.mounts[6].destination == "/sys/fs/cgroup");
    CHECK(s.mounts[6].type == "cgroup");
    CHECK(s.mounts[6].options.back() == "ro");

    const Linux& l = s.linux;
    REQUIRE(l.namespaces.size() == 5);
    CHECK(l.namespaces[0].type == NamespaceType::Pid);
    CHECK(l.namespaces[1].type == NamespaceType::Network);
    CHECK(l.namespaces[2].type == NamespaceType::Ipc);
    CHECK(l.namespaces[3].type == NamespaceType::Uts);
    CHECK(l.namespaces[4].type == NamespaceType::Mount);
    CHECK(l.namespaces[4].path.empty());
    CHECK(l.findNamespace(NamespaceType::User) == nullptr);
    REQUIRE(l.resources);
    REQUIRE(l.resources->devices.size() == 1);
    CHECK_FALSE(l.resources->devices[0].allow);
    CHECK(l.resources->devices[0].type.empty());
    CHECK_FALSE(l.resources->devices[0].major);
    CHECK(l.resources->devices[0].access == "rwm");
    CHECK_FALSE(l.resources->memory);
    CHECK_FALSE(l.resources->pidsLimit);
    REQUIRE(l.maskedPaths.size() == 10);
    CHECK(l.maskedPaths[9] == "/proc/scsi");
    CHECK(l.readonlyPaths == std::vector<std::string>{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                      "/proc/sysrq-trigger"});
    CHECK_FALSE(l.seccomp);
    CHECK(l.cgroupsPath.empty());
    CHECK(s.hooks.prestart.empty());
    CHECK(s.annotations.empty());
}

TEST_CASE("spec: every linux.resources field", "[spec]") {
    auto r = parse(kAllResources);
    if (!r) FAIL(r.error().message());
    CHECK(r->ociVersion == "1.1.0");
    CHECK(r->root.path == "/var/lib/hull/rootfs");
    CHECK_FALSE(r->root.readonly);
    CHECK_FALSE(r->process);
    CHECK(r->linux.cgroupsPath == "/hull/web-1");
    REQUIRE(r->linux.resources);
    const auto& res = *r->linux.resources;

    REQUIRE(res.devices.size() == 3);
    CHECK(res.devices[1].allow);
    CHECK(res.devices[1].type == "c");
    CHECK(res.devices[1].major == 10);
    CHECK(res.devices[1].minor == 229);
    CHECK(res.devices[1].access == "rw");
    CHECK(res.devices[2].type == "b");
    CHECK(res.devices[2].major == 8);
    CHECK_FALSE(res.devices[2].minor);

    REQUIRE(res.memory);
    CHECK(res.memory->limit == 536870912);
    CHECK(res.memory->reservation == 268435456);
    CHECK(res.memory->swap == -1);
    CHECK(res.memory->kernel == 0);
    CHECK(res.memory->kernelTCP == 1048576);
    CHECK(res.memory->swappiness == 60u);
    CHECK(res.memory->disableOOMKiller == true);
    CHECK(res.memory->useHierarchy == false);
    CHECK(res.memory->checkBeforeUpdate == true);

    REQUIRE(res.cpu);
    CHECK(res.cpu->shares == 1024u);
    CHECK(res.cpu->quota == 50000);
    CHECK(res.cpu->burst == 10000u);
    CHECK(res.cpu->period == 100000u);
    CHECK(res.cpu->realtimeRuntime == 950000);
    CHECK(res.cpu->realtimePeriod == 1000000u);
    CHECK(res.cpu->cpus == "0-3");
    CHECK(res.cpu->mems == "0");
    CHECK(res.cpu->idle == 1);

    CHECK(res.pidsLimit == 32771);

    REQUIRE(res.blockIO);
    const auto& b = *res.blockIO;
    CHECK(b.weight == 500);
    CHECK(b.leafWeight == 300);
    REQUIRE(b.weightDevice.size() == 2);
    CHECK(b.weightDevice[0].major == 8);
    CHECK(b.weightDevice[0].minor == 0);
    CHECK(b.weightDevice[0].weight == 700);
    CHECK(b.weightDevice[0].leafWeight == 50);
    CHECK(b.weightDevice[1].minor == 16);
    CHECK_FALSE(b.weightDevice[1].leafWeight);
    REQUIRE(b.throttleReadBpsDevice.size() == 1);
    CHECK(b.throttleReadBpsDevice[0].rate == 104857600u);
    REQUIRE(b.throttleWriteBpsDevice.size() == 1);
    CHECK(b.throttleWriteBpsDevice[0].minor == 1);
    CHECK(b.throttleWriteBpsDevice[0].rate == UINT64_MAX);
    REQUIRE(b.throttleReadIOPSDevice.size() == 1);
    CHECK(b.throttleReadIOPSDevice[0].rate == 1000u);
    REQUIRE(b.throttleWriteIOPSDevice.size() == 2);
    CHECK(b.throttleWriteIOPSDevice[1].major == 259);
    CHECK(b.throttleWriteIOPSDevice[1].rate == 9u);

    REQUIRE(res.hugepageLimits.size() == 2);
    CHECK(res.hugepageLimits[0].pageSize == "2MB");
    CHECK(res.hugepageLimits[0].limit == 209715200u);
    CHECK(res.hugepageLimits[1].pageSize == "1GB");

    REQUIRE(res.network);
    CHECK(res.network->classID == 1048577u);
    REQUIRE(res.network->priorities.size() == 2);
    CHECK(res.network->priorities[0].name == "eth0");
    CHECK(res.network->priorities[0].priority == 500u);

    REQUIRE(res.rdma.size() == 2);
    CHECK(res.rdma.at("mlx5_1").hcaHandles == 3u);
    CHECK(res.rdma.at("mlx5_1").hcaObjects == 10000u);
    CHECK_FALSE(res.rdma.at("mlx4_0").hcaHandles);
    CHECK(res.rdma.at("mlx4_0").hcaObjects == 1000u);

    CHECK(res.unified == std::map<std::string, std::string>{{"io.weight", "default 100"}, {"memory.high", "max"}});
}

TEST_CASE("spec: process, mounts, hooks and the rest of linux", "[spec]") {
    auto r = parse(kEverythingElse);
    if (!r) FAIL(r.error().message());
    const Spec& s = *r;
    CHECK(s.hostname == "web");
    CHECK(s.domainname == "example.org");
    CHECK(s.annotations == std::map<std::string, std::string>{{"empty", ""}, {"org.example.key", "value"}});

    REQUIRE(s.process);
    const Process& p = *s.process;
    CHECK_FALSE(p.terminal);
    REQUIRE(p.consoleSize);
    CHECK(p.consoleSize->height == 25u);
    CHECK(p.consoleSize->width == 80u);
    CHECK(p.user.uid == 1000u);
    CHECK(p.user.gid == 4294967295u);
    CHECK(p.user.umask == 18u);
    CHECK(p.user.additionalGids == std::vector<uint32_t>{5, 6, 7});
    CHECK(p.user.username == "app");
    CHECK(p.args == std::vector<std::string>{"/bin/app", "--flag"});
    CHECK(p.env.empty());
    CHECK(p.cwd == "/srv");
    REQUIRE(p.capabilities);
    CHECK(p.capabilities->bounding == std::vector<std::string>{"CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"});
    CHECK(p.capabilities->effective.empty());
    REQUIRE(p.rlimits.size() == 2);
    CHECK(p.rlimits[0].resource == RLIMIT_CORE);
    CHECK(p.rlimits[0].soft == 0u);
    CHECK(p.rlimits[0].hard == UINT64_MAX);
    CHECK(p.rlimits[1].resource == RLIMIT_RTTIME);
    CHECK(p.oomScoreAdj == -1000);
    CHECK(p.apparmorProfile == "hull-default");
    CHECK(p.selinuxLabel == "system_u:system_r:svirt_lxc_net_t:s0:c124,c675");
    REQUIRE(p.ioPriority);
    CHECK(p.ioPriority->ioClass == "IOPRIO_CLASS_BE");
    CHECK(p.ioPriority->priority == 7);
    REQUIRE(p.scheduler);
    CHECK(p.scheduler->policy == "SCHED_DEADLINE");
    CHECK(p.scheduler->nice == -20);
    CHECK(p.scheduler->flags == std::vector<std::string>{"SCHED_FLAG_RESET_ON_FORK"});
    CHECK(p.scheduler->runtime == 10000000u);
    CHECK(p.scheduler->deadline == 20000000u);
    CHECK(p.scheduler->period == 30000000u);

    REQUIRE(s.mounts.size() == 2);
    CHECK(s.mounts[0].destination == "/data");  // relative: made absolute, as runc does
    CHECK(s.mounts[0].type == "bind");
    CHECK(s.mounts[0].source == "/srv/data");
    CHECK(s.mounts[0].options == std::vector<std::string>{"rbind", "rw"});
    REQUIRE(s.mounts[0].uidMappings.size() == 1);
    CHECK(s.mounts[0].uidMappings[0].hostID == 100000u);
    CHECK(s.mounts[0].uidMappings[0].size == 65536u);
    REQUIRE(s.mounts[0].gidMappings.size() == 1);
    CHECK(s.mounts[0].gidMappings[0].hostID == 200000u);
    CHECK(s.mounts[1].destination == "/tmp");
    CHECK(s.mounts[1].type.empty());

    REQUIRE(s.hooks.prestart.size() == 1);
    CHECK(s.hooks.prestart[0].path == "/usr/bin/fix-mounts");
    CHECK(s.hooks.prestart[0].args == std::vector<std::string>{"fix-mounts", "arg1"});
    CHECK(s.hooks.prestart[0].env == std::vector<std::string>{"key1=value1"});
    CHECK_FALSE(s.hooks.prestart[0].timeout);
    REQUIRE(s.hooks.createRuntime.size() == 1);
    CHECK(s.hooks.createRuntime[0].timeout == 5);
    CHECK(s.hooks.createContainer.at(0).path == "/bin/cc");
    CHECK(s.hooks.startContainer.at(0).path == "/bin/sc");
    REQUIRE(s.hooks.poststart.size() == 2);
    CHECK(s.hooks.poststart[1].path == "/bin/ps2");
    CHECK(s.hooks.poststop.at(0).args == std::vector<std::string>{"cleanup.sh", "-f"});

    const Linux& l = s.linux;
    REQUIRE(l.namespaces.size() == 8);
    CHECK(l.namespaces[5].type == NamespaceType::User);
    CHECK(l.namespaces[6].type == NamespaceType::Cgroup);
    CHECK(l.namespaces[7].type == NamespaceType::Time);
    REQUIRE(l.findNamespace(NamespaceType::Network));
    CHECK(l.findNamespace(NamespaceType::Network)->path == "/var/run/netns/web");
    REQUIRE(l.uidMappings.size() == 1);
    CHECK(l.uidMappings[0].containerID == 0u);
    CHECK(l.uidMappings[0].hostID == 1000u);
    CHECK(l.uidMappings[0].size == 32000u);
    CHECK(l.gidMappings.at(0).size == 32000u);
    REQUIRE(l.timeOffsets.size() == 2);
    CHECK(l.timeOffsets.at("monotonic").secs == -172800);
    CHECK(l.timeOffsets.at("boottime").secs == 1);
    CHECK(l.timeOffsets.at("boottime").nanosecs == 999999999u);

    REQUIRE(l.devices.size() == 3);
    CHECK(l.devices[0].path == "/dev/fuse");
    CHECK(l.devices[0].type == 'c');
    CHECK(l.devices[0].major == 10);
    CHECK(l.devices[0].minor == 229);
    CHECK(l.devices[0].fileMode == 0666u);
    CHECK(l.devices[0].uid == 0u);
    CHECK(l.devices[1].type == 'b');
    CHECK_FALSE(l.devices[1].fileMode);
    CHECK(l.devices[2].type == 'p');
    CHECK(l.devices[2].major == 0);

    CHECK(l.rootfsPropagation == "slave");
    REQUIRE(l.seccomp);
    const Seccomp& sc = *l.seccomp;
    CHECK(sc.defaultAction == "SCMP_ACT_ERRNO");
    CHECK(sc.defaultErrnoRet == 38u);
    CHECK(sc.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"});
    CHECK(sc.flags == std::vector<std::string>{"SECCOMP_FILTER_FLAG_LOG"});
    CHECK(sc.listenerPath == "/run/seccomp-agent.socket");
    CHECK(sc.listenerMetadata == "meta");
    REQUIRE(sc.syscalls.size() == 2);
    CHECK(sc.syscalls[0].names == std::vector<std::string>{"getcwd", "chmod"});
    CHECK(sc.syscalls[0].action == "SCMP_ACT_ALLOW");
    CHECK_FALSE(sc.syscalls[0].errnoRet);
    CHECK(sc.syscalls[1].errnoRet == 1u);
    REQUIRE(sc.syscalls[1].args.size() == 2);
    CHECK(sc.syscalls[1].args[0].index == 0u);
    CHECK(sc.syscalls[1].args[0].value == 8u);
    CHECK(sc.syscalls[1].args[0].valueTwo == 0u);
    CHECK(sc.syscalls[1].args[0].op == "SCMP_CMP_EQ");
    CHECK(sc.syscalls[1].args[1].index == 1u);
    CHECK(sc.syscalls[1].args[1].value == UINT64_MAX);
    CHECK(sc.syscalls[1].args[1].valueTwo == 4u);
    CHECK(sc.syscalls[1].args[1].op == "SCMP_CMP_MASKED_EQ");

    CHECK(l.sysctl == std::map<std::string, std::string>{{"net.core.somaxconn", "256"}, {"net.ipv4.ip_forward", "1"}});
    CHECK(l.maskedPaths == std::vector<std::string>{"/proc/kcore"});
    CHECK(l.readonlyPaths == std::vector<std::string>{"/proc/sys"});
    CHECK(l.mountLabel == "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811");
    REQUIRE(l.personality);
    CHECK(l.personality->domain == "LINUX32");
    CHECK(l.personality->flags.empty());
    CHECK_FALSE(l.resources);
}

TEST_CASE("spec: minimal configs, versions, nulls", "[spec]") {
    auto r = parse(withTop(""));
    REQUIRE(r);
    CHECK_FALSE(r->process);
    CHECK(r->mounts.empty());
    CHECK(r->linux.namespaces.empty());

    for (const char* v : {"1.0.0", "1.0.2-dev", "1.2.0", "1.0.0-rc5+dirty", "1.10"}) {
        INFO(v);
        auto ok = parse(R"({"ociVersion":")" + std::string(v) + R"(","root":{"path":"r"}})");
        REQUIRE(ok);
        CHECK(ok->ociVersion == v);
    }

    // A null property is absent, as for the Go structs the spec describes.
    auto n = parse(withTop(R"(,"process":null,"hooks":null,"linux":{"seccomp":null,"resources":null},"mounts":null)"));
    REQUIRE(n);
    CHECK_FALSE(n->process);
    CHECK_FALSE(n->linux.seccomp);
    CHECK_FALSE(n->linux.resources);

    auto user = parse(withProcess(R"("user":{"uid":0,"gid":0},"args":["a","b"])"));  // duplicate key: first wins
    REQUIRE(user);
    CHECK(user->process->args == std::vector<std::string>{"sh"});
}

TEST_CASE("spec: namespaceName", "[spec]") {
    CHECK(std::string(namespaceName(NamespaceType::Pid)) == "pid");
    CHECK(std::string(namespaceName(NamespaceType::Network)) == "network");
    CHECK(std::string(namespaceName(NamespaceType::Mount)) == "mount");
    CHECK(std::string(namespaceName(NamespaceType::Ipc)) == "ipc");
    CHECK(std::string(namespaceName(NamespaceType::Uts)) == "uts");
    CHECK(std::string(namespaceName(NamespaceType::User)) == "user");
    CHECK(std::string(namespaceName(NamespaceType::Cgroup)) == "cgroup");
    CHECK(std::string(namespaceName(NamespaceType::Time)) == "time");
}

TEST_CASE("spec: bad configs name the path of the bad field", "[spec]") {
    struct Case {
        std::string config, error;
    };
    const Case cases[] = {
        // top level
        {"[]", "expected an object"},
        {R"({"root":{"path":"r"}})", "ociVersion: required"},
        {R"({"ociVersion":1,"root":{"path":"r"}})", "ociVersion: expected a string"},
        {R"({"ociVersion":"2.0.0","root":{"path":"r"}})", "ociVersion: unsupported version \"2.0.0\" (hull supports 1.x)"},
        {R"({"ociVersion":"0.9.1","root":{"path":"r"}})", "ociVersion: unsupported version \"0.9.1\" (hull supports 1.x)"},
        {R"({"ociVersion":"latest","root":{"path":"r"}})", "ociVersion: invalid version \"latest\""},
        {R"({"ociVersion":"1","root":{"path":"r"}})", "ociVersion: invalid version \"1\""},
        {R"({"ociVersion":"1.0.0"})", "root: required"},
        {R"({"ociVersion":"1.0.0","root":{}})", "root.path: required"},
        {R"({"ociVersion":"1.0.0","root":{"path":""}})", "root.path: must not be empty"},
        {R"({"ociVersion":"1.0.0","root":"rootfs"})", "root: expected an object"},
        {R"({"ociVersion":"1.0.0","root":{"path":"r","readonly":"yes"}})", "root.readonly: expected a boolean"},
        {withTop(R"(,"hostname":7)"), "hostname: expected a string"},
        {withTop(R"(,"annotations":{"a":"b","c":1})"), "annotations.c: expected a string"},
        {withTop(R"(,"annotations":[])"), "annotations: expected an object"},
        // process
        {withTop(R"(,"process":{"cwd":"/"})"), "process.args: required"},
        {withTop(R"(,"process":{"args":[],"cwd":"/"})"), "process.args: must not be empty"},
        {withTop(R"(,"process":{"args":["sh",1],"cwd":"/"})"), "process.args[1]: expected a string"},
        {withTop(R"(,"process":{"args":"sh","cwd":"/"})"), "process.args: expected an array"},
        {withTop(R"(,"process":{"args":["sh"]})"), "process.cwd: required"},
        {withTop(R"(,"process":{"args":["sh"],"cwd":"srv"})"), "process.cwd: must be an absolute path"},
        {withProcess(R"("env":["A=1",null])"), "process.env[1]: expected a string"},
        {withProcess(R"("terminal":1)"), "process.terminal: expected a boolean"},
        {withProcess(R"("user":{"uid":"0","gid":0})"), "process.user.uid: expected an unsigned integer"},
        {withProcess(R"("user":{"uid":-1,"gid":0})"), "process.user.uid: expected an unsigned integer"},
        {withProcess(R"("user":{"uid":1.5,"gid":0})"), "process.user.uid: expected an unsigned integer"},
        {withProcess(R"("user":{"uid":4294967296,"gid":0})"),
         "process.user.uid: value 4294967296 out of range (0..4294967295)"},
        {withProcess(R"("user":{"uid":0})"), "process.user.gid: required"},
        {withProcess(R"("user":{"uid":0,"gid":0,"additionalGids":[1,-2]})"),
         "process.user.additionalGids[1]: expected an unsigned integer"},
        {withProcess(R"("user":{"uid":0,"gid":0,"umask":"022"})"), "process.user.umask: expected an unsigned integer"},
        {withProcess(R"("consoleSize":{"height":24})"), "process.consoleSize.width: required"},
        {withProcess(R"("rlimits":[{"type":"RLIMIT_FOO","soft":1,"hard":1}])"),
         "process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\""},
        {withProcess(R"("rlimits":[{"type":"RLIMIT_NOFILE","soft":1}])"), "process.rlimits[0].hard: required"},
        {withProcess(R"("rlimits":[{"type":"RLIMIT_NOFILE","soft":-1,"hard":1}])"),
         "process.rlimits[0].soft: expected an unsigned integer"},
        {withProcess(R"("rlimits":[{"type":"RLIMIT_NOFILE","soft":2,"hard":1}])"),
         "process.rlimits[0]: soft limit exceeds hard limit"},
        {withProcess(R"("rlimits":[{"type":"RLIMIT_NPROC","soft":1,"hard":1},{"type":"RLIMIT_CORE","soft":1,"hard":1},)"
                     R"({"type":"RLIMIT_NPROC","soft":2,"hard":2}])"),
         "process.rlimits[2].type: duplicate rlimit \"RLIMIT_NPROC\""},
        {withProcess(R"("capabilities":{"bounding":["CAP_CHOWN","CAP_KILL","CAP_FOO"]})"),
         "process.capabilities.bounding[2]: unknown capability \"CAP_FOO\""},
        {withProcess(R"("capabilities":{"ambient":["cap_chown"]})"),
         "process.capabilities.ambient[0]: unknown capability \"cap_chown\""},
        {withProcess(R"("capabilities":{"permitted":"CAP_KILL"})"), "process.capabilities.permitted: expected an array"},
        {withProcess(R"("oomScoreAdj":1001)"), "process.oomScoreAdj: value 1001 out of range (-1000..1000)"},
        {withProcess(R"("oomScoreAdj":"0")"), "process.oomScoreAdj: expected an integer"},
        {withProcess(R"("noNewPrivileges":"true")"), "process.noNewPrivileges: expected a boolean"},
        {withProcess(R"("ioPriority":{"class":"IOPRIO_CLASS_XX","priority":1})"),
         "process.ioPriority.class: unknown I/O priority class \"IOPRIO_CLASS_XX\""},
        {withProcess(R"("ioPriority":{"class":"IOPRIO_CLASS_RT"})"), "process.ioPriority.priority: required"},
        {withProcess(R"("ioPriority":{"class":"IOPRIO_CLASS_RT","priority":8})"),
         "process.ioPriority.priority: value 8 out of range (0..7)"},
        {withProcess(R"("scheduler":{"policy":"SCHED_FAST"})"),
         "process.scheduler.policy: unknown scheduler policy \"SCHED_FAST\""},
        {withProcess(R"("scheduler":{"nice":1})"), "process.scheduler.policy: required"},
        {withProcess(R"("scheduler":{"policy":"SCHED_OTHER","nice":20})"),
         "process.scheduler.nice: value 20 out of range (-20..19)"},
        {withProcess(R"("scheduler":{"policy":"SCHED_OTHER","flags":["SCHED_FLAG_NOPE"]})"),
         "process.scheduler.flags[0]: unknown scheduler flag \"SCHED_FLAG_NOPE\""},
        {withProcess(R"("scheduler":{"policy":"SCHED_OTHER","runtime":-5})"),
         "process.scheduler.runtime: expected an unsigned integer"},
        // mounts
        {withTop(R"(,"mounts":{})"), "mounts: expected an array"},
        {withTop(R"(,"mounts":[{"destination":"/a"},{"destination":"/b"},{"destination":5}])"),
         "mounts[2].destination: expected a string"},
        {withTop(R"(,"mounts":[{"type":"tmpfs"}])"), "mounts[0].destination: required"},
        {withTop(R"(,"mounts":[{"destination":""}])"), "mounts[0].destination: must not be empty"},
        {withTop(R"(,"mounts":[{"destination":"/a","options":"ro"}])"), "mounts[0].options: expected an array"},
        {withTop(R"(,"mounts":[{"destination":"/a","options":["ro",true]}])"), "mounts[0].options[1]: expected a string"},
        {withTop(R"(,"mounts":[{"destination":"/a","uidMappings":[{"containerID":0,"hostID":1}]}])"),
         "mounts[0].uidMappings[0].size: required"},
        // hooks
        {withTop(R"(,"hooks":{"prestart":[{"args":["x"]}]})"), "hooks.prestart[0].path: required"},
        {withTop(R"(,"hooks":{"poststop":[{"path":"/a"},{"path":"cleanup.sh"}]})"),
         "hooks.poststop[1].path: must be an absolute path"},
        {withTop(R"(,"hooks":{"createRuntime":[{"path":"/a","timeout":0}]})"),
         "hooks.createRuntime[0].timeout: must be greater than zero"},
        {withTop(R"(,"hooks":{"startContainer":[{"path":"/a","timeout":-3}]})"),
         "hooks.startContainer[0].timeout: must be greater than zero"},
        {withTop(R"(,"hooks":{"poststart":[{"path":"/a","env":[1]}]})"), "hooks.poststart[0].env[0]: expected a string"},
        // linux
        {withLinux(R"("namespaces":[{"type":"pid"},{"type":"foo"}])"),
         "linux.namespaces[1].type: unknown namespace type \"foo\""},
        {withLinux(R"("namespaces":[{"type":"pid"},{"type":"net"},{"type":"pid"}])"),
         "linux.namespaces[1].type: unknown namespace type \"net\""},
        {withLinux(R"("namespaces":[{"type":"pid"},{"type":"uts"},{"type":"uts"}])"),
         "linux.namespaces[2].type: duplicate namespace type \"uts\""},
        {withLinux(R"("namespaces":[{"path":"/proc/1/ns/pid"}])"), "linux.namespaces[0].type: required"},
        {withLinux(R"("namespaces":[{"type":"network","path":"netns/web"}])"),
         "linux.namespaces[0].path: must be an absolute path"},
        {withLinux(R"("uidMappings":[{"containerID":0,"hostID":-1,"size":1}])"),
         "linux.uidMappings[0].hostID: expected an unsigned integer"},
        {withLinux(R"("timeOffsets":{"realtime":{"secs":1}})"), "linux.timeOffsets.realtime: unknown clock \"realtime\""},
        {withLinux(R"("timeOffsets":{"monotonic":{"secs":1,"nanosecs":-1}})"),
         "linux.timeOffsets.monotonic.nanosecs: expected an unsigned integer"},
        {withLinux(R"("timeOffsets":{"boottime":{"secs":1,"nanosecs":1000000000}})"),
         "linux.timeOffsets.boottime.nanosecs: value 1000000000 out of range (0..999999999)"},
        {withLinux(R"("devices":[{"path":"/dev/x","type":"x","major":1,"minor":1}])"),
         "linux.devices[0].type: unknown device type \"x\""},
        {withLinux(R"("devices":[{"path":"dev/x","type":"c","major":1,"minor":1}])"),
         "linux.devices[0].path: must be an absolute path"},
        {withLinux(R"("devices":[{"path":"/dev/x","type":"c","minor":1}])"), "linux.devices[0].major: required"},
        {withLinux(R"("devices":[{"path":"/dev/x","type":"b","major":1,"minor":"1"}])"),
         "linux.devices[0].minor: expected an integer"},
        {withLinux(R"("devices":[{"path":"/dev/x","type":"c","major":1,"minor":1,"fileMode":-1}])"),
         "linux.devices[0].fileMode: expected an unsigned integer"},
        {withLinux(R"("cgroupsPath":1)"), "linux.cgroupsPath: expected a string"},
        {withLinux(R"("rootfsPropagation":"sideways")"), "linux.rootfsPropagation: unknown rootfs propagation \"sideways\""},
        {withLinux(R"("sysctl":{"net.ipv4.ip_forward":1})"), "linux.sysctl.net.ipv4.ip_forward: expected a string"},
        {withLinux(R"("maskedPaths":[1])"), "linux.maskedPaths[0]: expected a string"},
        {withLinux(R"("personality":{"domain":"LINUX64"})"), "linux.personality.domain: unknown personality domain \"LINUX64\""},
        // seccomp: shape only
        {withLinux(R"("seccomp":{"architectures":[]})"), "linux.seccomp.defaultAction: required"},
        {withLinux(R"("seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":"read","action":"SCMP_ACT_ALLOW"}]})"),
         "linux.seccomp.syscalls[0].names: expected an array"},
        {withLinux(R"("seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read",2],"action":"X"}]})"),
         "linux.seccomp.syscalls[0].names[1]: expected a string"},
        {withLinux(R"("seccomp":{"defaultAction":"A","syscalls":[{"names":["read"]}]})"),
         "linux.seccomp.syscalls[0].action: required"},
        {withLinux(R"("seccomp":{"defaultAction":"A","syscalls":[{"names":["read"],"action":"B","args":[{"index":-1,"value":0,"op":"SCMP_CMP_EQ"}]}]})"),
         "linux.seccomp.syscalls[0].args[0].index: expected an unsigned integer"},
        {withLinux(R"("seccomp":{"defaultAction":"A","syscalls":[{"names":["read"],"action":"B","args":[{"index":0,"value":18446744073709551616,"op":"SCMP_CMP_EQ"}]}]})"),
         "linux.seccomp.syscalls[0].args[0].value: expected an unsigned integer"},
        {withLinux(R"("seccomp":{"defaultAction":"A","syscalls":[{"names":["read"],"action":"B","args":[{"index":0,"value":1}]}]})"),
         "linux.seccomp.syscalls[0].args[0].op: required"},
        {withLinux(R"("seccomp":{"defaultAction":"A","defaultErrnoRet":-1})"),
         "linux.seccomp.defaultErrnoRet: expected an unsigned integer"},
        // linux.resources
        {withResources(R"("devices":[{"access":"rwm"}])"), "linux.resources.devices[0].allow: required"},
        {withResources(R"("devices":[{"allow":true,"type":"x"}])"), "linux.resources.devices[0].type: unknown device type \"x\""},
        {withResources(R"("devices":[{"allow":true,"access":"rwx"}])"),
         "linux.resources.devices[0].access: invalid access \"rwx\" (expected letters of \"rwm\")"},
        {withResources(R"("memory":{"limit":"1G"})"), "linux.resources.memory.limit: expected an integer"},
        {withResources(R"("memory":{"limit":9223372036854775808})"), "linux.resources.memory.limit: expected an integer"},
        {withResources(R"("memory":{"swappiness":-1})"), "linux.resources.memory.swappiness: expected an unsigned integer"},
        {withResources(R"("memory":{"disableOOMKiller":1})"), "linux.resources.memory.disableOOMKiller: expected a boolean"},
        {withResources(R"("cpu":{"shares":-2})"), "linux.resources.cpu.shares: expected an unsigned integer"},
        {withResources(R"("cpu":{"cpus":[0,1]})"), "linux.resources.cpu.cpus: expected a string"},
        {withResources(R"("pids":{})"), "linux.resources.pids.limit: required"},
        {withResources(R"("pids":{"limit":"max"})"), "linux.resources.pids.limit: expected an integer"},
        {withResources(R"("blockIO":{"weight":65536})"), "linux.resources.blockIO.weight: value 65536 out of range (0..65535)"},
        {withResources(R"("blockIO":{"weightDevice":[{"major":8,"minor":0,"leafWeight":-1}]})"),
         "linux.resources.blockIO.weightDevice[0].leafWeight: expected an unsigned integer"},
        {withResources(R"("blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":0}]})"),
         "linux.resources.blockIO.throttleReadBpsDevice[0].rate: required"},
        {withResources(R"("blockIO":{"throttleWriteBpsDevice":[{"major":8,"rate":1}]})"),
         "linux.resources.blockIO.throttleWriteBpsDevice[0].minor: required"},
        {withResources(R"("blockIO":{"throttleReadIOPSDevice":[{"major":"8","minor":0,"rate":1}]})"),
         "linux.resources.blockIO.throttleReadIOPSDevice[0].major: expected an integer"},
        {withResources(R"("blockIO":{"throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":-1}]})"),
         "linux.resources.blockIO.throttleWriteIOPSDevice[0].rate: expected an unsigned integer"},
        {withResources(R"("hugepageLimits":[{"limit":1}])"), "linux.resources.hugepageLimits[0].pageSize: required"},
        {withResources(R"("hugepageLimits":[{"pageSize":"2MB","limit":-1}])"),
         "linux.resources.hugepageLimits[0].limit: expected an unsigned integer"},
        {withResources(R"("network":{"classID":4294967296})"),
         "linux.resources.network.classID: value 4294967296 out of range (0..4294967295)"},
        {withResources(R"("network":{"priorities":[{"name":"eth0"}]})"),
         "linux.resources.network.priorities[0].priority: required"},
        {withResources(R"("rdma":{"mlx5_1":{"hcaHandles":"3"}})"),
         "linux.resources.rdma.mlx5_1.hcaHandles: expected an unsigned integer"},
        {withResources(R"("rdma":{"mlx5_1":3})"), "linux.resources.rdma.mlx5_1: expected an object"},
        {withResources(R"("unified":{"memory.max":1024})"), "linux.resources.unified.memory.max: expected a string"},
        // JSON syntax errors keep their line and column
        {"{\n  \"ociVersion\": \"1.0.0\"\n  \"root\": {}\n}", "line 3, column 3: unexpected '\"', expected ',' or '}' in object"},
    };
    for (auto& c : cases) {
        INFO(c.config);
        CHECK(errorOf(c.config) == c.error);
    }
}

TEST_CASE("spec: loadSpec reads BUNDLE/config.json", "[spec]") {
    hull::test::TempDir dir("hull-spec");

    auto missing = loadSpec(dir.path());
    REQUIRE_FALSE(missing);
    CHECK(missing.error().errnum() == ENOENT);
    CHECK(missing.error().message().find(dir.path() + "/config.json") != std::string::npos);

    hull::test::writeFileOrThrow(dir / "config.json", kRuncSpec);
    auto ok = loadSpec(dir.path());
    REQUIRE(ok);
    CHECK(ok->hostname == "runc");
    CHECK(ok->process->rlimits.at(0).resource == RLIMIT_NOFILE);

    hull::test::writeFileOrThrow(dir / "config.json", "{\n  \"ociVersion\": \"1.0.0\",\n  \"root\": {\"path\": }\n}");
    auto syntax = loadSpec(dir.path());
    REQUIRE_FALSE(syntax);
    CHECK(syntax.error().message() == "config.json: line 3, column 20: unexpected '}', expected a value");

    hull::test::writeFileOrThrow(dir / "config.json",
                                 withProcess(R"("user":{"uid":"root","gid":0})"));
    auto bad = loadSpec(dir.path());
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message() == "config.json: process.user.uid: expected an unsigned integer");
}
