# shellcheck shell=bash
# Docker Swarm hosts as network namespaces on this machine, fully contained, for the benchmarks
# that set hull against Swarm in the same run (scripts/bench-failover, scripts/bench-net).
# Sourced after lib.sh, never run. Set before sourcing (the defaults are bench-failover's):
#   SW_NAME      hull-swarm: the dirs /var/lib/NAME and /run/NAME, the cgroup NAME, the lock
#                /run/lock/NAME.lock (one run of each NAME at a time)
#   SW_PREFIX    hsw: netns PREFIX-m1 (the manager, drained) and PREFIX-w1... (workers), bridge
#                PREFIX-br, host-side veths PREFIX-m1h...
#   SW_NET       10.253.0: the hosts' /24 (the manager .1, workers .11 on, the bridge .254)
#   SW_NWORKERS  3
# sw_up makes the hosts, starts their daemons, imports the image and joins the swarm (sw_down, run
# at exit, removes all of it); sw_leftovers says what is left; fw_hash fingerprints the host's
# own rule sets, to show that they did not change.

# ------------------------------------------------------------------ cgroups
# Every cgroup hierarchy mounted directly below /sys/fs/cgroup, at this process's own
# placement in it (here / but /process_api/<id> for memory): the levels above are not ours.
# The same reading of /proc/self/mountinfo and /proc/PID/cgroup as scripts/cluster's.
cg_own_dirs() {
    awk -v cgfile="/proc/$$/cgroup" '
        BEGIN {
            while ((getline line < cgfile) > 0) {
                i = index(line, ":"); rest = substr(line, i + 1); j = index(rest, ":")
                own[substr(rest, 1, j - 1)] = substr(rest, j + 1)
            }
        }
        {
            for (k = 7; k <= NF && $k != "-"; k++) ;
            fstype = $(k + 1); if (fstype != "cgroup" && fstype != "cgroup2") next
            mp = $5; root = $4
            if (mp != "/sys/fs/cgroup" && mp !~ /^\/sys\/fs\/cgroup\/[^\/]+$/) next
            key = ""
            if (fstype == "cgroup") {
                n = split($(k + 3), opts, ",")
                for (o = 1; o <= n; o++) {
                    if (opts[o] ~ /^(rw|ro|noprefix|clone_children|xattr|cpuset_v2_mode|favordynmods|none)$/ || (opts[o] ~ /=/ && opts[o] !~ /^name=/)) continue
                    key = key == "" ? opts[o] : key "," opts[o]
                }
            }
            if (seen[mp]++ || (key in done)) next
            done[key] = 1
            p = (key in own) ? own[key] : "/"
            if (root != "/") p = (index(p, root) == 1) ? substr(p, length(root) + 1) : "/"
            if (p == "") p = "/"
            print (p == "/" ? mp : mp p)
        }' /proc/self/mountinfo
}
cg_mkdir() { # one level at a time: a new v1 cpuset takes no task until cpus and mems are set
    local d=$1 parent f
    [[ -d $d ]] && return 0
    parent=$(dirname "$d")
    cg_mkdir "$parent"
    mkdir "$d"
    for f in cpuset.cpus cpuset.mems; do
        [[ -f $d/$f && -z $(<"$d/$f") ]] && cat "$parent/$f" >"$d/$f"
    done
    return 0
}
cg_pids() { # processes in the cgroups DIRS and below
    local d
    for d in "$@"; do [[ -d $d ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -un
    return 0
}
# SIGKILL everything in DIRS and below: cgroup.kill (v2), a v1 freezer kill (nothing forks
# while we signal), then SIGKILL what cgroup.procs still lists until nothing does.
cg_kill_dirs() {
    local dirs=() d pids=() _
    for d in "$@"; do [[ -d $d ]] && dirs+=("$d"); done
    ((${#dirs[@]})) || return 0
    for d in "${dirs[@]}"; do [[ -f $d/cgroup.kill ]] && { echo 1 >"$d/cgroup.kill" 2>/dev/null || true; }; done
    for d in "${dirs[@]}"; do
        [[ -f $d/freezer.state ]] || continue
        echo FROZEN >"$d/freezer.state" 2>/dev/null || continue
        wait_until 2 grep -qx FROZEN "$d/freezer.state" || true
        mapfile -t pids < <(cg_pids "$d")
        ((${#pids[@]} == 0)) || kill -9 "${pids[@]}" 2>/dev/null || true
        find "$d" -name freezer.state -exec sh -c 'for f; do echo THAWED >"$f"; done' sh {} + 2>/dev/null || true
    done
    for _ in $(seq 100); do
        mapfile -t pids < <(cg_pids "${dirs[@]}")
        ((${#pids[@]})) || return 0
        kill -9 "${pids[@]}" 2>/dev/null || true
        sleep 0.1
    done
    log "warning: still running after 10 s of SIGKILL: ${pids[*]}"
    return 1
}
cg_rmdirs() { # remove DIRS and below, deepest first
    local d _
    for d in "$@"; do
        for _ in $(seq 50); do
            [[ -d $d ]] || break
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -d $d ]] && sleep 0.1
        done
        [[ ! -d $d ]] || log "warning: could not remove cgroup $d"
    done
    return 0
}
mounts_under() { awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
unmount_under() {
    local m
    for m in $(mounts_under "$1"); do umount -l "$m" 2>/dev/null || log "warning: could not unmount $m"; done
    return 0
}
netns_remove() { # SIGKILL what still runs in netns NS, then remove it
    local ns=$1 _ pids=()
    [[ -e /run/netns/$ns ]] || return 0
    for _ in $(seq 50); do
        mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
        ((${#pids[@]})) || break
        kill -9 "${pids[@]}" 2>/dev/null || true
        sleep 0.1
    done
    ip netns del "$ns" 2>/dev/null || log "warning: could not remove netns $ns"
}

# ================================================================== the swarm's hosts
# One containerd and one dockerd per host, each host a netns on bridge PREFIX-br:
# PREFIX-m1 (.1, the manager, drained) and PREFIX-w1.. (.11.., workers). Per host:
#   /var/lib/NAME/HOST         its disk: docker's --data-root, containerd's root, logs, configs
#   /run/NAME/HOST             its tmpfs: docker.sock, --exec-root, --pidfile, containerd's state
#                              and sockets (gone when the host is killed)
#   CG/NAME/HOST/daemons       both daemons, in every hierarchy at our own placement CG
#   --cgroup-parent PREFIX-containers-W (W: m1, w1...), relative: runc puts a container in
#                              CG/NAME/HOST/daemons/PREFIX-containers-W/ID in the v1
#                              hierarchies (relative to its own cgroup, the daemons') but in
#                              CG2/PREFIX-containers-W/ID in the cgroup2 one (CG2 its mount point,
#                              /sys/fs/cgroup/unified here): both go with the host
SW_NAME=${SW_NAME:-hull-swarm} SW_PREFIX=${SW_PREFIX:-hsw} SW_NET=${SW_NET:-10.253.0} SW_NWORKERS=${SW_NWORKERS:-3}
SW_BR=$SW_PREFIX-br SW_MANAGER=$SW_PREFIX-m1
SW_DATA=/var/lib/$SW_NAME SW_RUN=/run/$SW_NAME
SW_WORKERS=()
declare -A SW_IP=([$SW_MANAGER]=$SW_NET.1)
for ((_sw_i = 1; _sw_i <= SW_NWORKERS; _sw_i++)); do
    SW_WORKERS+=("$SW_PREFIX-w$_sw_i")
    SW_IP[$SW_PREFIX-w$_sw_i]=$SW_NET.$((10 + _sw_i))
done
SW_HOSTS=("$SW_MANAGER" "${SW_WORKERS[@]}")
declare -A NODEID=()
SW_IMAGE=$SW_PREFIX.local/busybox:latest
DOCKER=/usr/bin/docker DOCKERD=/usr/sbin/dockerd CONTAINERD=/usr/bin/containerd
SW_CGROOTS=() SW_CG2=

sw_cgdirs() { local r; for r in "${SW_CGROOTS[@]}"; do echo "$r/$SW_NAME${1:+/$1}"; done; }
sw_cgparent() { echo "$SW_PREFIX-containers-${1#"$SW_PREFIX"-}"; }
# Where the cgroup2 hierarchy is mounted (the unified one of a hybrid host), or nothing.
cg2_mount() { awk '{ for (k = 7; $k != "-"; k++); if ($(k + 1) == "cgroup2") { print $5; exit } }' /proc/self/mountinfo; }
sw_host_cgdirs() { # every cgroup of HOST: its tree in each hierarchy and its containers' in cgroup2
    sw_cgdirs "$1"
    [[ -z $SW_CG2 ]] || echo "$SW_CG2/$(sw_cgparent "$1")"
}
sw_sock() { echo "$SW_RUN/$1/docker.sock"; }
D() { # HOST ARGS...: Debian's docker CLI against HOST's dockerd
    local h=$1
    shift
    DOCKER_CONFIG=$SW_DATA/cli timeout 60 "$DOCKER" -H "unix://$(sw_sock "$h")" "$@"
}
api() { # HOST PATH [CURL ARGS...]: the Engine API over HOST's socket
    local h=$1 p=$2
    shift 2
    curl -sf --max-time 5 --unix-socket "$(sw_sock "$h")" "$@" "http://docker/v1.41$p"
}
tail_of() { [[ -s $1 ]] && { echo "---- last lines of $1"; tail -n 15 "$1"; echo "----"; }; return 0; }

sw_host_start() { # HOST: its netns on the bridge, then containerd and dockerd in it
    local h=$1 d=$SW_DATA/$1 r=$SW_RUN/$1 c
    ip link del "${h}h" 2>/dev/null || true
    ip netns add "$h"
    ip -n "$h" link set lo up
    ip link add "${h}h" type veth peer name eth0 netns "$h"
    ip link set "${h}h" master "$SW_BR"
    ip link set "${h}h" up
    ip -n "$h" addr add "${SW_IP[$h]}/24" dev eth0
    ip -n "$h" link set eth0 up
    # No default route: the only way out of the host is the /24 of the other hosts.
    mkdir -p "$d" "$r"
    for c in $(sw_cgdirs "$h/daemons"); do cg_mkdir "$c"; done
    cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd"
state = "$r/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$r/containerd/containerd.sock"
[ttrpc]
  address = "$r/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
EOF
    # An empty daemon.json of its own, so that /etc/docker/daemon.json is not read.
    echo '{}' >"$d/daemon.json"
    sw_spawn "$h" containerd "$CONTAINERD" --config "$d/containerd.toml"
    wait_until 20 test -S "$r/containerd/containerd.sock" ||
        die "containerd of $h did not make its socket in 20 s$(tail_of "$d/containerd.log")"
    # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: a task's image is used as found, never pulled
    # (swarm's executor otherwise tries a pull before every task, even of a local image).
    sw_spawn "$h" dockerd env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 "$DOCKERD" \
        --config-file "$d/daemon.json" --data-root "$d/docker" --exec-root "$r/docker" \
        --pidfile "$r/docker.pid" -H "unix://$r/docker.sock" --containerd "$r/containerd/containerd.sock" \
        --cgroup-parent "$(sw_cgparent "$h")" --userland-proxy=false --log-level warn
    wait_until 60 api "$h" /_ping -o /dev/null ||
        die "dockerd of $h did not answer on $r/docker.sock in 60 s$(tail_of "$d/dockerd.log")"
}
sw_spawn() { # HOST NAME ARGV...: detached, in HOST's netns and its daemons cgroup
    local h=$1 name=$2 c
    shift 2
    (
        for c in $(sw_cgdirs "$h/daemons"); do echo "$BASHPID" >"$c/cgroup.procs"; done
        # 8 is our lock: a daemon that kept it would hold every later run.
        exec setsid nsenter --net="/run/netns/$h" "$@" </dev/null >>"$SW_DATA/$h/$name.log" 2>&1 8>&-
    ) &
    disown $!
}
# A crashed host: every process of it SIGKILLed (daemons, shims, containers), its netns gone,
# the mounts under its dirs unmounted, its run dir gone (a tmpfs), its cgroups gone; its
# disk (SW_DATA/HOST) stays.
sw_host_off() {
    local h=$1 f
    local dirs=()
    mapfile -t dirs < <(sw_host_cgdirs "$h")
    cg_kill_dirs "${dirs[@]}" || true
    for f in $(sw_shim_sockets "$h"); do rm -f "$f"; done
    netns_remove "$h"
    ip link del "${h}h" 2>/dev/null || true
    unmount_under "$SW_DATA/$h"
    unmount_under "$SW_RUN/$h"
    rm -rf --one-file-system "${SW_RUN:?}/$h"
    cg_rmdirs "${dirs[@]}"
}
# The shim sockets containerd 1.6 keeps in /run/containerd/s (a fixed place, not its state
# dir), named sha256(<containerd address>/<namespace>/<container id>): one per container of
# HOST... (all hosts without arguments), left there when the host is killed. They go with
# the host, as its /run would; by the time it boots again its dockerd forgets those containers.
sw_shim_sockets() {
    local h id hosts=("$@")
    ((${#hosts[@]})) || hosts=("${SW_HOSTS[@]}")
    for h in "${hosts[@]}"; do
        [[ -d $SW_DATA/$h/docker/containers ]] || continue
        for id in "$SW_DATA/$h/docker/containers"/*; do
            [[ -d $id ]] || continue
            id=${id##*/}
            echo "/run/containerd/s/$(printf '%s' "$SW_RUN/$h/containerd/containerd.sock/moby/$id" | sha256sum | cut -c1-64)"
        done
    done
}
sw_down() {
    local h f dirs=() any=0
    [[ -d $SW_DATA || -d $SW_RUN ]] && any=1
    ip link show "$SW_BR" >/dev/null 2>&1 && any=1
    for h in "${SW_HOSTS[@]}"; do [[ -e /run/netns/$h ]] && any=1; done
    for f in $(sw_cgdirs "") ${SW_CG2:+"$SW_CG2/$SW_PREFIX"-containers-*}; do [[ -d $f ]] && any=1; done
    ((any)) || return 0
    log "swarm: removing hosts ${SW_HOSTS[*]}, bridge $SW_BR, $SW_DATA, $SW_RUN"
    for h in "${SW_HOSTS[@]}"; do sw_host_off "$h"; done
    for f in $(sw_shim_sockets); do rm -f "$f"; done
    ip link del "$SW_BR" 2>/dev/null || true
    mapfile -t dirs < <(sw_cgdirs "")
    cg_rmdirs "${dirs[@]}"
    # What dockerd makes in fixed places: its trust key and plugin dir; ours only when
    # they were not there before the first daemon started.
    if [[ -f $SW_DATA/made ]]; then
        while read -r f; do rm -rf --one-file-system "$f"; done <"$SW_DATA/made"
    fi
    unmount_under "$SW_DATA"
    unmount_under "$SW_RUN"
    rm -rf --one-file-system "$SW_DATA" "$SW_RUN"
}

# One swarm on this machine at a time, whatever its name (they share the fixed places
# dockerd and containerd use, such as /run/containerd/s); the leftovers of a run of this
# name that was SIGKILLed go first.
sw_lock_and_clean() {
    mapfile -t SW_CGROOTS < <(cg_own_dirs)
    ((${#SW_CGROOTS[@]})) || die "no cgroup hierarchy mounted below /sys/fs/cgroup"
    SW_CG2=$(cg2_mount)
    exec 8>/run/lock/hull-swarm.lock
    flock -n 8 || die "another benchmark runs its swarm (/run/lock/hull-swarm.lock)"
    sw_down
}

# Debian's docker.io, installed when missing, its daemons kept off this machine's own init.
sw_install() {
    local have_dockerd
    have_dockerd=$(pgrep -x dockerd || true)
    if [[ ! -x $DOCKERD || ! -x $DOCKER ]]; then
        log "swarm: installing Debian's docker.io (apt-get install -y docker.io)"
        local before after
        before=$(pgrep -x 'dockerd|containerd' | sort || true)
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >&2 ||
            die "apt-get install docker.io failed"
        after=$(pgrep -x 'dockerd|containerd' | sort || true)
        # The package's postinst starts docker.service where services may start (no
        # /usr/sbin/policy-rc.d saying 101, or systemd as PID 1): stop it, and keep it off.
        local started
        started=$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')
        if [[ -n ${started// /} ]]; then
            log "swarm: the package install started $started: stopping them"
            if [[ $(cat /proc/1/comm) == systemd ]]; then
                systemctl stop docker.socket docker.service containerd.service || true
                systemctl mask docker.socket docker.service containerd.service || true
            fi
            # shellcheck disable=SC2086
            kill $started 2>/dev/null || true
        else
            log "swarm: the install started no daemon (policy-rc.d: $(sh /usr/sbin/policy-rc.d >/dev/null 2>&1; echo $?))"
        fi
    fi
    [[ -x $DOCKERD && -x $DOCKER && -x $CONTAINERD ]] || die "docker.io installed, but $DOCKERD, $DOCKER or $CONTAINERD is missing"
    [[ -z $have_dockerd ]] || log "swarm: a dockerd runs on this machine already (pids $have_dockerd); ours do not use its sockets or dirs"
    command -v busybox >/dev/null || die "busybox missing (busybox-static)"
}

# The whole swarm: its hosts and daemons, the image SW_IMAGE (busybox-static's /bin/busybox and
# its applets) on every host, the manager's swarm joined by the workers, the manager drained.
# NODEID[HOST] is each host's node id. Removed at exit.
sw_up() {
    local h f token
    sw_install
    sw_lock_and_clean
    if ip -4 -o addr show | awk '{print $4}' | grep -q "^${SW_NET//./\\.}\."; then
        die "$SW_NET.0/24 is in use on this machine (ip -4 addr)"
    fi
    on_exit sw_down
    mkdir -p "$SW_DATA/cli" "$SW_RUN"
    : >"$SW_DATA/made"
    for f in /etc/docker/key.json /run/docker /run/containerd; do [[ -e $f ]] || echo "$f" >>"$SW_DATA/made"; done
    for f in /run/containerd/s /run/containerd/fifo; do [[ -e /run/containerd && ! -e $f ]] && echo "$f" >>"$SW_DATA/made"; done

    ip link add "$SW_BR" type bridge
    ip addr add "$SW_NET.254/24" dev "$SW_BR"
    ip link set "$SW_BR" up
    log "swarm: starting containerd + dockerd on ${SW_HOSTS[*]} ($SW_NET.0/24 on $SW_BR)"
    for h in "${SW_HOSTS[@]}"; do sw_host_start "$h"; done
    for h in "${SW_WORKERS[@]}"; do
        wait_until 3 ip netns exec "$SW_MANAGER" busybox ping -c 1 -W 1 "${SW_IP[$h]}" >/dev/null 2>&1 ||
            die "$SW_MANAGER cannot reach $h at ${SW_IP[$h]} over $SW_BR (the host's FORWARD chain with br_netfilter?)"
    done

    local rootfs=$SW_DATA/rootfs
    mkdir -p "$rootfs/bin"
    cp /bin/busybox "$rootfs/bin/busybox"
    for f in $("$rootfs/bin/busybox" --list); do [[ $f == busybox ]] || ln -sf busybox "$rootfs/bin/$f"; done
    tar -C "$rootfs" -cf "$SW_DATA/busybox.tar" .
    for h in "${SW_HOSTS[@]}"; do
        D "$h" import --change 'CMD ["sleep", "3600"]' "$SW_DATA/busybox.tar" "$SW_IMAGE" >/dev/null ||
            die "docker import on $h failed"
    done

    log "swarm: init on $SW_MANAGER, join ${SW_WORKERS[*]}"
    D "$SW_MANAGER" swarm init --advertise-addr "${SW_IP[$SW_MANAGER]}" --listen-addr "${SW_IP[$SW_MANAGER]}:2377" >/dev/null ||
        die "docker swarm init failed$(tail_of "$SW_DATA/$SW_MANAGER/dockerd.log")"
    token=$(D "$SW_MANAGER" swarm join-token -q worker)
    for h in "${SW_WORKERS[@]}"; do
        D "$h" swarm join --token "$token" --advertise-addr "${SW_IP[$h]}" --listen-addr "${SW_IP[$h]}:2377" \
            "${SW_IP[$SW_MANAGER]}:2377" >/dev/null || die "docker swarm join on $h failed$(tail_of "$SW_DATA/$h/dockerd.log")"
    done
    for h in "${SW_HOSTS[@]}"; do
        NODEID[$h]=$(api "$h" /info | jq -r '.Swarm.NodeID')
    done
    D "$SW_MANAGER" node update --availability drain "${NODEID[$SW_MANAGER]}" >/dev/null
}

# What is left of the swarm (nothing: no output): netns, daemons, mounts, cgroups, the bridge,
# shim sockets new since BEFORE (a file listing /run/containerd/s, when given), the dirs.
sw_leftovers() {
    local before=${1:-} x
    x=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$SW_PREFIX-" || true)
    [[ -z $x ]] || echo "netns: $x"
    for x in $(pgrep -x dockerd || true) $(pgrep -x containerd || true); do
        tr '\0' ' ' <"/proc/$x/cmdline" 2>/dev/null | grep -q "$SW_NAME/" && echo "process $x: $(tr '\0' ' ' <"/proc/$x/cmdline")"
    done
    x=$(mount | grep -E "$SW_PREFIX|$SW_NAME/" || true)
    [[ -z $x ]] || echo "mounts: $x"
    x=$(find /sys/fs/cgroup \( -name "*$SW_PREFIX-*" -o -name "$SW_NAME" \) 2>/dev/null || true)
    [[ -z $x ]] || echo "cgroups: $x"
    ip link show "$SW_BR" >/dev/null 2>&1 && echo "link $SW_BR"
    if [[ -n $before && -f $before ]]; then
        x=$(find /run/containerd/s -mindepth 1 -printf "%f\n" 2>/dev/null | sort | comm -13 "$before" - | wc -l)
        ((x == 0)) || echo "$x new shim sockets in /run/containerd/s"
    fi
    [[ ! -e $SW_DATA && ! -e $SW_RUN ]] || echo "dirs: $SW_DATA $SW_RUN"
    return 0
}
sw_shims_list() { find /run/containerd/s -mindepth 1 -printf "%f\n" 2>/dev/null | sort; return 0; }

# Run the calling script's swarm side in a process of its own, "$0" --internal-swarm
# DIR/swarm.json ARGS..., its messages to stderr and DIR/swarm.log. When it fails, its last
# words say why and its own exit trap has removed what it made; Ctrl-C and TERM end this
# script too. Sets SW_RC, SW_RESULT (its JSON, or null), SW_ERROR (null, or the last lines of
# its log that do not match SKIP, as a JSON string), SW_FW_BEFORE and SW_FW_AFTER (fw_hash),
# and leaves DIR/shim-sockets.before for sw_leftovers.
# shellcheck disable=SC2034 # the SW_ results are the caller's
sw_run_side() { # DIR SKIP ARGS...
    local dir=$1 skip=$2
    shift 2
    SW_FW_BEFORE=$(fw_hash) SW_RESULT=null SW_ERROR=null SW_RC=0
    sw_shims_list >"$dir/shim-sockets.before"
    # tee ignores Ctrl-C and TERM: it outlives the swarm side, which reports its cleanup.
    "$0" --internal-swarm "$dir/swarm.json" "$@" 2> >(trap '' INT TERM; exec tee "$dir/swarm.log" >&2) || SW_RC=$?
    sleep 1 # tee has written the last lines
    if ((SW_RC == 0)); then
        SW_RESULT=$(<"$dir/swarm.json")
    else
        ((SW_RC != 130 && SW_RC != 143)) || exit "$SW_RC"
        SW_ERROR=$(grep -v -- "$skip" "$dir/swarm.log" | tail -n 20 | jq -Rs .)
    fi
    SW_FW_AFTER=$(fw_hash)
}

# The host's own rule sets (counters and dates left out), to compare before and after a swarm ran:
# "IPT-MD5 IPT-LINES NFT-MD5 NFT-LINES", iptables and ip6tables of the nft and legacy backends.
fw_hash() {
    local t ipt nft
    ipt=$(for t in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
        command -v $t >/dev/null && $t 2>/dev/null
    done | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//g' || true)
    nft=$(nft -s list ruleset 2>/dev/null || true)
    echo "$(md5sum <<<"$ipt" | cut -c1-32) $(grep -c . <<<"$ipt") $(md5sum <<<"$nft" | cut -c1-32) $(grep -c . <<<"$nft")"
}
