#!/bin/bash
# Syscall supervisor benchmark: the round trip of an intercepted syscall
# (seccomp user notification → barge-supervisor → answer) against the same
# syscall unintercepted, in one invocation.
#
# Usage: bench/supervisor.sh [-n CALLS] [--cpu N] [--rounds R]
#   -n CALLS   calls per measurement (default 200000)
#   --cpu N    the CPU the caller and the supervisor are pinned to (default 0)
#   --rounds R measurements per case; the median is reported (default 5)
# Environment:
#   TARGET_DIR  default $CARGO_TARGET_DIR or <repo>/target (release binaries:
#               barge-runtime, barge-supervisor)
#   BUNDLE      default <repo>/build/bundle (scripts/build-image.sh: barge-check)
#
# Method:
#   - One user-namespaced container (root mapped to host 100000, the test
#     image's rootfs read-only) runs `barge-check bench-mknod KIND CALLS CPU`:
#     it pins itself to CPU, makes 1000 warm-up calls, then CALLS calls of
#     mknodat(AT_FDCWD, "/nonexistent-barge-bench/x", mode, 8:0) and prints
#     the mean ns per call (CLOCK_MONOTONIC around the loop).
#   - baseline: no notify rule; the kernel fails the call (ENOENT).
#   - refuse: mknodat is SCMP_ACT_NOTIFY; the mode is a block device, which
#     the supervisor refuses (EPERM) from the registers alone: the pure
#     notification round trip (poll, NOTIF_RECV, decide, NOTIF_SEND).
#   - continue: a fifo, answered SECCOMP_USER_NOTIF_FLAG_CONTINUE; the
#     kernel then runs the call (ENOENT).
#   - Intercepted cases run with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (the
#     default) and once without (`refuse-nosync`), the supervisor pinned to
#     the same CPU as the caller (`--cpu`).
#   - Each case runs ROUNDS containers; the median of their means is
#     reported, with the overhead and the ratio to the baseline.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CALLS=200000
CPU=0
ROUNDS=5
while [ $# -gt 0 ]; do
    case "$1" in
        -n) CALLS=$2; shift ;;
        --cpu) CPU=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "supervisor.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-$REPO/target}}
RT=$TARGET_DIR/release/barge-runtime
SUP=$TARGET_DIR/release/barge-supervisor
BUNDLE=${BUNDLE:-$REPO/build/bundle}
for f in "$RT" "$SUP" "$BUNDLE/config.json" "$BUNDLE/rootfs/usr/bin/barge-check"; do
    [ -e "$f" ] || { echo "supervisor.sh: $f missing (cargo build --release; scripts/build-image.sh)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "supervisor.sh: needs root" >&2; exit 1; }

WORK=$(mktemp -d /tmp/barge-supbench.XXXXXX)
chmod 755 "$WORK"
SUP_PID=""
cleanup() {
    [ -n "$SUP_PID" ] && kill "$SUP_PID" 2>/dev/null || true
    "$RT" --root "$WORK/state" delete --force supbench >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# config.json: the image's config, user namespace, no cgroup mount, the
# process given as arguments; $1 = seccomp object (or null).
config() {
    local seccomp=$1; shift
    local args; args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
    jq --arg root "$BUNDLE/rootfs" --argjson args "$args" --argjson sc "$seccomp" '
        .root = {path: $root, readonly: true}
        | .process.terminal = false
        | .process.args = $args
        | .linux.namespaces += [{type: "user"}]
        | .linux.uidMappings = [{containerID: 0, hostID: 100000, size: 65536}]
        | .linux.gidMappings = [{containerID: 0, hostID: 100000, size: 65536}]
        | .mounts |= map(select(.destination != "/sys/fs/cgroup"))
        | if $sc == null then del(.linux.seccomp) else .linux.seccomp = $sc end
    ' "$BUNDLE/config.json" > "$WORK/bundle/config.json"
}

# run_case KIND SECCOMP → prints ns per call (median of ROUNDS)
run_case() {
    local kind=$1 seccomp=$2 i out vals=()
    for i in $(seq "$ROUNDS"); do
        config "$seccomp" barge-check bench-mknod "$kind" "$CALLS" "$CPU"
        out=$("$RT" --root "$WORK/state" run --bundle "$WORK/bundle" supbench)
        vals+=("$(echo "$out" | jq -r .ns_per_call)")
        errno=$(echo "$out" | jq -r .errno_name)
    done
    printf '%s\n' "${vals[@]}" | sort -g | awk -v e="$errno" '{a[NR]=$1} END {printf "%s %s\n", a[int((NR+1)/2)], e}'
}

start_sup() {
    rm -f "$WORK/s.sock"
    "$SUP" --socket "$WORK/s.sock" --cpu "$CPU" --log-level warn "$@" &
    SUP_PID=$!
    for _ in $(seq 200); do [ -S "$WORK/s.sock" ] && return; sleep 0.01; done
    echo "supervisor.sh: the supervisor did not start" >&2; exit 1
}

mkdir -p "$WORK/bundle" "$WORK/state"
NOTIFY=$(jq -n --arg p "$WORK/s.sock" '{defaultAction: "SCMP_ACT_ALLOW", listenerPath: $p,
    syscalls: [{names: ["mknodat"], action: "SCMP_ACT_NOTIFY"}]}')

read -r BASE BASE_E < <(run_case refuse null)
# One supervisor per container, as the engine runs it.
results=()
for c in "refuse:" "continue:" "refuse-nosync:--no-sync-wake-up"; do
    kind=${c%%:*}; flag=${c#*:}
    sum=0; vals=()
    for i in $(seq "$ROUNDS"); do
        start_sup $flag
        config "$NOTIFY" barge-check bench-mknod "${kind%-nosync}" "$CALLS" "$CPU"
        out=$("$RT" --root "$WORK/state" run --bundle "$WORK/bundle" supbench)
        wait "$SUP_PID" 2>/dev/null || true
        SUP_PID=""
        vals+=("$(echo "$out" | jq -r .ns_per_call)")
        e=$(echo "$out" | jq -r .errno_name)
    done
    med=$(printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    results+=("$kind $med $e")
done

echo "supervisor round trip, $CALLS calls x $ROUNDS rounds, caller and supervisor on CPU $CPU ($(uname -r), $(nproc) CPUs)"
printf '%-15s %10s %10s %8s  %s\n' case "us/call" "overhead" ratio errno
awk -v b="$BASE" -v be="$BASE_E" 'BEGIN {printf "%-15s %10.2f %10s %8s  %s\n", "baseline", b/1000, "-", "1.0", be}'
for r in "${results[@]}"; do
    set -- $r
    awk -v k="$1" -v v="$2" -v b="$BASE" -v e="$3" 'BEGIN {printf "%-15s %10.2f %10.2f %8.1f  %s\n", k, v/1000, (v-b)/1000, v/b, e}'
done
