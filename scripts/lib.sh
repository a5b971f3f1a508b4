# shellcheck shell=bash
# Shared helpers for hull's scripts; sourced, never run.
# Sets HULL_ROOT (the repository root) and cds there.

HULL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HULL_ROOT" || exit 1

_hull_prog="$(basename "${0}")"
log() { printf '[%s] %s\n' "$_hull_prog" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$_hull_prog" "$*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (try: sudo $0 $*)"
}

# Cleanup actions run in reverse order at exit (EXIT trap; INT/TERM exit first).
_hull_cleanups=()
on_exit() { _hull_cleanups+=("$*"); }
_hull_run_cleanups() {
    local rc=$? i
    trap - EXIT
    for ((i = ${#_hull_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${_hull_cleanups[i]}" || true
    done
    exit "$rc"
}
trap _hull_run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Poll until a command succeeds: wait_until SECONDS CMD [ARGS...]. Runs CMD every
# 0.2 s (its output is the caller's to silence); returns 1 when SECONDS pass first.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# The unprivileged user hull's daemons that need no privilege (the master) run as, made once
# (a system user without a home or a shell), and the command line that runs ARGV as it:
# no supplementary groups, no capabilities in any set, and no way to gain one.
HULL_USER=${HULL_USER:-hull}
ensure_hull_user() {
    id -u "$HULL_USER" >/dev/null 2>&1 && return 0
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$HULL_USER" ||
        die "cannot add the system user $HULL_USER (useradd)"
}
as_hull_user=(setpriv --reuid="$HULL_USER" --regid="$HULL_USER" --clear-groups --no-new-privs
    --inh-caps=-all --bounding-set=-all --)
