#!/bin/bash
# Runtime benchmark: create + start + wait-for-exit + delete of busybox `true`,
# barge-runtime (A) against runc (B), alternating, in one invocation.
#
# Usage: bench/runtime.sh [--quick] [-n RUNS] [--warmup W] [--csv FILE]
#   --quick      10 runs, 1 warm-up (smoke test)
#   -n RUNS      measured iterations per runtime (default 50)
#   --warmup W   unmeasured iterations per runtime first (default 3)
#   --csv FILE   keep the raw per-iteration numbers (ns)
# Environment:
#   RUNTIME_A  default <repo>/target/release/barge-runtime
#   RUNTIME_B  default runc from PATH
#   BUNDLE     default <repo>/build/bundle (scripts/build-image.sh)
#
# Method (identical for both runtimes; see bench/runtime-driver.c):
#   - The bundle is copied to a temporary directory: config.json with
#     process.args = ["/bin/true"], terminal = false, root.path pointing at
#     the original (read-only) rootfs. Everything else is the bundle's config
#     (new pid/net/ipc/uts/mount namespaces, default mounts, masked paths,
#     device cgroup).
#   - Each runtime gets its own fresh --root state directory on /run (tmpfs).
#   - A small C driver (compiled here with cc) is a child subreaper, as conmon
#     is. Per iteration it fork+execs `R --root S create --bundle B --pid-file
#     P ID` and waits for it, opens a pidfd on the pid in P, runs `R start ID`,
#     waits for the container process to exit by polling the pidfd (no sleep,
#     no `state` polling), reaps it, then runs `R delete ID` (not --force: the
#     container is stopped). The wall time from before create to after delete
#     is one sample (CLOCK_MONOTONIC, ns); the phases are kept too.
#   - Iterations alternate the order: A then B on even iterations, B then A on
#     odd ones, so drift (page cache, CPU frequency, cgroup churn) hits both.
#   - Reported: median and p90 (nearest rank) of the total, phase medians, and
#     the ratio A/B of the medians.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=50
WARMUP=3
CSV=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) RUNS=10; WARMUP=1 ;;
        -n) RUNS=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --csv) CSV=$2; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "runtime.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "runtime.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (creates namespaces and cgroups)"
RUNTIME_A=${RUNTIME_A:-$REPO/target/release/barge-runtime}
RUNTIME_B=${RUNTIME_B:-$(command -v runc || true)}
BUNDLE=${BUNDLE:-$REPO/build/bundle}
abs() { case "$1" in /*) echo "$1" ;; */*) echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" ;; *) command -v "$1" ;; esac; }
RUNTIME_A=$(abs "$RUNTIME_A") || die "runtime A not found"
RUNTIME_B=$(abs "$RUNTIME_B") || die "runtime B not found (runc)"
[ -x "$RUNTIME_A" ] || die "runtime A $RUNTIME_A is not executable (cargo build --release -p barge-runtime)"
[ -x "$RUNTIME_B" ] || die "runtime B $RUNTIME_B is not executable"
[ -f "$BUNDLE/config.json" ] || die "no bundle at $BUNDLE (run scripts/build-image.sh)"
command -v jq >/dev/null || die "jq missing (scripts/install-deps.sh)"
command -v cc >/dev/null || die "cc missing (scripts/install-deps.sh)"
BUNDLE=$(cd "$BUNDLE" && pwd)
rootfs=$(jq -r '.root.path' "$BUNDLE/config.json")
case "$rootfs" in /*) ;; *) rootfs=$BUNDLE/$rootfs ;; esac
[ -x "$rootfs/bin/true" ] || die "$rootfs/bin/true missing"

WORK=$(mktemp -d /run/barge-bench.XXXXXX)
PREFIX=bb$$
cleanup() {
    # Remove whatever an interrupted run left behind.
    for pair in "$RUNTIME_A:$WORK/root-a" "$RUNTIME_B:$WORK/root-b"; do
        r=${pair%%:*}; root=${pair#*:}
        [ -d "$root" ] || continue
        for id in $("$r" --root "$root" list -q 2>/dev/null); do
            "$r" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/bundle" "$WORK/root-a" "$WORK/root-b"
jq --arg rootfs "$rootfs" '.process.args = ["/bin/true"] | .process.terminal = false | .root.path = $rootfs' \
    "$BUNDLE/config.json" > "$WORK/bundle/config.json"
cc -O2 -o "$WORK/driver" "$REPO/bench/runtime-driver.c"

name() { basename "$1"; }
version() { { "$1" --version 2>/dev/null || true; } | head -n1; }
echo "runtime bench: create+start+wait+delete of /bin/true, $RUNS runs each (+$WARMUP warm-up), alternating"
echo "  A: $RUNTIME_A ($(version "$RUNTIME_A"))"
echo "  B: $RUNTIME_B ($(version "$RUNTIME_B"))"
echo "  bundle: $BUNDLE, kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

raw=$WORK/raw.csv
"$WORK/driver" "$RUNS" "$WARMUP" "$WORK/bundle" "$PREFIX" "$WORK/stderr" \
    "$RUNTIME_A" "$WORK/root-a" "$RUNTIME_B" "$WORK/root-b" > "$raw"
if [ -n "$CSV" ]; then
    { echo "runtime,iter,create_ns,start_ns,wait_ns,delete_ns,total_ns,exit_status"; cat "$raw"; } > "$CSV"
fi
bad=$(awk -F, '$8 != 0 && $8 != -1' "$raw" | wc -l)
[ "$bad" = 0 ] || echo "warning: $bad iterations where /bin/true did not exit 0" >&2

# median (interpolated for even n) and nearest-rank p90 of column $2 for label $1, in ms
stat() {
    awk -F, -v l="$1" -v c="$2" '$1 == l { print $c }' "$raw" | sort -n | awk '
        { v[NR] = $1 }
        END {
            n = NR; if (n == 0) { print "nan nan"; exit }
            med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            r = int(0.9 * n); if (r < 0.9 * n) r++; if (r < 1) r = 1
            printf "%.3f %.3f\n", med / 1e6, v[r] / 1e6
        }'
}
read -r a_med a_p90 <<<"$(stat A 7)"
read -r b_med b_p90 <<<"$(stat B 7)"
phase() { stat "$1" "$2" | cut -d' ' -f1; }

echo
printf '%-22s %10s %10s %9s %9s %9s %9s\n' "runtime (ms)" median p90 create start wait delete
printf '%-22s %10s %10s %9s %9s %9s %9s\n' "A $(name "$RUNTIME_A")" "$a_med" "$a_p90" "$(phase A 3)" "$(phase A 4)" "$(phase A 5)" "$(phase A 6)"
printf '%-22s %10s %10s %9s %9s %9s %9s\n' "B $(name "$RUNTIME_B")" "$b_med" "$b_p90" "$(phase B 3)" "$(phase B 4)" "$(phase B 5)" "$(phase B 6)"
ratio=$(awk -v a="$a_med" -v b="$b_med" 'BEGIN { printf "%.3f", a / b }')
echo
echo "ratio A/B (median total): $ratio   (target for barge-runtime vs runc: <= 0.5)"
