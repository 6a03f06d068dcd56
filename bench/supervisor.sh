#!/bin/bash
# Syscall supervisor benchmark: the round trip of an intercepted syscall
# (seccomp user notification → barge-supervisor → answer) against the same
# syscall unintercepted, in one invocation.
#
# Usage: bench/supervisor.sh [-n CALLS] [--cpu N] [--rounds R]
#   -n CALLS   calls per measurement (default 200000)
#   --cpu N    the CPU the caller and the supervisor are pinned to (default 0)
#   --rounds R measurements per case; the median is reported (default 5)
#   --nice     run the supervisor and the container at nice -20,
#              so other processes on a shared machine do not take the CPU
#              between the hand-offs (measures the round trip itself)
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
#   - barge-check also times every call on its own (CLOCK_MONOTONIC before
#     and after, ~0.05 us) and reports the median (p50) and p90: on a shared
#     machine the mean includes the time slices other processes get while
#     the caller and the supervisor hand the CPU to each other; the median
#     is the round trip itself.
#   - pipe-pingpong (reference): `barge-check bench-pingpong`, a byte sent
#     back and forth between two processes over pipes on the same CPU: the
#     two context switches every supervised call needs, without seccomp.
#   - Each case runs ROUNDS containers; the medians over the rounds of the
#     mean, p50 and p90 are reported, with the overhead and the ratio of the
#     p50 to the baseline's.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CALLS=200000
CPU=0
ROUNDS=5
RT_PRIO=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) CALLS=$2; shift ;;
        --cpu) CPU=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --nice) RT_PRIO=(nice -n -20) ;;
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

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# one_run KIND SECCOMP → appends "mean p50 p90 errno" to $WORK/runs
one_run() {
    config "$2" barge-check bench-mknod "$1" "$CALLS" "$CPU"
    "${RT_PRIO[@]}" "$RT" --root "$WORK/state" run --bundle "$WORK/bundle" supbench \
        | jq -r '"\(.ns_per_call) \(.p50_ns) \(.p90_ns) \(.errno_name)"' >> "$WORK/runs"
}

# summary NAME → "NAME mean p50 p90 errno" (medians over the rounds)
summary() {
    local m p q e
    m=$(cut -d' ' -f1 "$WORK/runs" | median)
    p=$(cut -d' ' -f2 "$WORK/runs" | median)
    q=$(cut -d' ' -f3 "$WORK/runs" | median)
    e=$(tail -1 "$WORK/runs" | cut -d' ' -f4)
    rm -f "$WORK/runs"
    echo "$1 $m $p $q $e"
}

start_sup() {
    rm -f "$WORK/s.sock"
    "${RT_PRIO[@]}" "$SUP" --socket "$WORK/s.sock" --cpu "$CPU" --log-level warn "$@" &
    SUP_PID=$!
    for _ in $(seq 200); do [ -S "$WORK/s.sock" ] && return; sleep 0.01; done
    echo "supervisor.sh: the supervisor did not start" >&2; exit 1
}

mkdir -p "$WORK/bundle" "$WORK/state"
NOTIFY=$(jq -n --arg p "$WORK/s.sock" '{defaultAction: "SCMP_ACT_ALLOW", listenerPath: $p,
    syscalls: [{names: ["mknodat"], action: "SCMP_ACT_NOTIFY"}]}')

rm -f "$WORK/runs"
for i in $(seq "$ROUNDS"); do one_run refuse null; done
results=("$(summary baseline)")
# The floor of any two-process hand-off on one CPU, for reference.
for i in $(seq "$ROUNDS"); do
    config null barge-check bench-pingpong "$CALLS" "$CPU"
    "${RT_PRIO[@]}" "$RT" --root "$WORK/state" run --bundle "$WORK/bundle" supbench \
        | jq -r '"\(.ns_per_call) \(.p50_ns) \(.p90_ns) -"' >> "$WORK/runs"
done
PINGPONG=$(summary pipe-pingpong)
# One supervisor per container, as the engine runs it.
for c in "refuse:" "continue:" "refuse-nosync:--no-sync-wake-up"; do
    kind=${c%%:*}; flag=${c#*:}
    for i in $(seq "$ROUNDS"); do
        start_sup $flag
        one_run "${kind%-nosync}" "$NOTIFY"
        wait "$SUP_PID" 2>/dev/null || true
        SUP_PID=""
    done
    results+=("$(summary "$kind")")
done

echo "supervisor round trip, $CALLS calls x $ROUNDS rounds, caller and supervisor on CPU $CPU${RT_PRIO:+ (nice -20)} ($(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
echo "per call in us: median over the rounds of each round's mean / median (p50) / p90; overhead and ratio of the p50 against the baseline's p50"
printf '%-15s %8s %8s %8s %9s %6s  %s\n' case mean p50 p90 overhead ratio errno
set -- ${results[0]}
BASE=$3
for r in "${results[@]}"; do
    set -- $r
    awk -v k="$1" -v m="$2" -v p="$3" -v q="$4" -v e="$5" -v b="$BASE" 'BEGIN {
        printf "%-15s %8.2f %8.2f %8.2f %9.2f %6.1f  %s\n", k, m/1000, p/1000, q/1000, (p-b)/1000, p/b, e }'
done
set -- $PINGPONG
awk -v k="$1" -v m="$2" -v p="$3" -v q="$4" 'BEGIN {
    printf "%-15s %8.2f %8.2f %8.2f  (reference: the two-process hand-off floor)\n", k, m/1000, p/1000, q/1000 }'
