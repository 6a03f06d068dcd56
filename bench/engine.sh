#!/bin/bash
# Engine benchmark: barge against podman (Debian's, on runc), in one run.
#
# Usage: bench/engine.sh [--quick] [-n RUNS] [--ps-count N]
#   --quick        5 runs, 50 containers for ps (smoke test)
#   -n RUNS        measured iterations per tool (default 20)
#   --ps-count N   containers listed by `ps -a` (default 200)
#
# Measures, alternating barge and podman on every iteration:
#   1. `run --rm IMAGE true` (default network for both: barge's bridge
#      `barge`, podman's netavark bridge `podman`), wall time of the CLI.
#   2. `exec CTR true` into a running container.
#   3. `ps -a` with N created containers.
#   4. VmRSS of the per-container monitor (barge-monitor / conmon) holding
#      an idle container (`sleep`), pipes and a k8s-file log.
# Prints medians and the ratios barge/podman (targets: run --rm <= 0.1,
# exec <= 0.2, monitor RSS <= 1 MiB).
#
# Both tools use private stores in a temporary directory (never the system
# ones); the image is Debian's busybox-static (scripts/build-image.sh),
# imported into barge and loaded into podman from barge's docker-archive.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=20
PSN=200
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) RUNS=5; PSN=50 ;;
        -n) RUNS=$2; shift ;;
        --ps-count) PSN=$2; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "engine.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "engine.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done
command -v podman >/dev/null || die "podman is not installed (scripts/install-deps.sh)"

cd "$REPO"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p barge -p barge-runtime -p barge-monitor >&2
fi
[ -d build/bundle/rootfs ] || scripts/build-image.sh build >&2
scripts/podman-setup.sh >/dev/null

WORK=$(mktemp -d /tmp/barge-bench.XXXXXX)
BARGE=("$TARGET_DIR/release/barge" --root "$WORK/b/root" --runroot "$WORK/b/run")
PODMAN=(podman --root "$WORK/p/root" --runroot "$WORK/p/run" --cgroup-manager cgroupfs --events-backend none)
cleanup() {
    set +e
    "${BARGE[@]}" rm -f -a >/dev/null 2>&1
    "${PODMAN[@]}" rm -f -a >/dev/null 2>&1
    "${PODMAN[@]}" system reset -f >/dev/null 2>&1
    umount -R "$WORK"/b/root/containers/*/rootfs 2>/dev/null
    rm -rf "$WORK" 2>/dev/null
}
trap cleanup EXIT

echo "== preparing images" >&2
tar -C build/bundle/rootfs -c . | "${BARGE[@]}" import - localhost/bench >/dev/null
"${BARGE[@]}" save -o "$WORK/img.tar" localhost/bench
"${PODMAN[@]}" load -i "$WORK/img.tar" >/dev/null 2>&1

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print 0; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1e6}'; }
# time_ms CMD...: wall time of one command in ns (its output discarded).
time_ns() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1 || die "failed: $*"; t1=$(now); echo $((t1 - t0)); }

# A warm-up of each (image unpack, network and firewall creation).
"${BARGE[@]}" run --rm localhost/bench true >/dev/null
"${PODMAN[@]}" run --rm localhost/bench true >/dev/null

echo "== 1. run --rm IMAGE true ($RUNS runs each, alternating)" >&2
: > "$WORK/run.b"; : > "$WORK/run.p"
for i in $(seq "$RUNS"); do
    if [ $((i % 2)) = 0 ]; then
        time_ns "${BARGE[@]}" run --rm localhost/bench true >> "$WORK/run.b"
        time_ns "${PODMAN[@]}" run --rm localhost/bench true >> "$WORK/run.p"
    else
        time_ns "${PODMAN[@]}" run --rm localhost/bench true >> "$WORK/run.p"
        time_ns "${BARGE[@]}" run --rm localhost/bench true >> "$WORK/run.b"
    fi
done

echo "== 2. exec CTR true ($RUNS runs each)" >&2
"${BARGE[@]}" run -d --name bexec localhost/bench sleep 1000 >/dev/null
"${PODMAN[@]}" run -d --name pexec localhost/bench sleep 1000 >/dev/null
: > "$WORK/exec.b"; : > "$WORK/exec.p"
for i in $(seq "$RUNS"); do
    time_ns "${BARGE[@]}" exec bexec true >> "$WORK/exec.b"
    time_ns "${PODMAN[@]}" exec pexec true >> "$WORK/exec.p"
done

echo "== 3. monitor RSS (idle container)" >&2
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
BMON=$("${BARGE[@]}" inspect --format '{{.State.ConmonPid}}' bexec)
PMON=$("${PODMAN[@]}" inspect --format '{{.State.ConmonPid}}' pexec)
BRSS=$(rss "$BMON"); PRSS=$(rss "$PMON")
"${BARGE[@]}" rm -f bexec >/dev/null
"${PODMAN[@]}" rm -f -t 0 pexec >/dev/null

echo "== 4. ps -a with $PSN containers" >&2
for i in $(seq "$PSN"); do
    "${BARGE[@]}" create --network none localhost/bench true >/dev/null
    "${PODMAN[@]}" create --network none localhost/bench true >/dev/null
done
: > "$WORK/ps.b"; : > "$WORK/ps.p"
for i in $(seq "$RUNS"); do
    time_ns "${BARGE[@]}" ps -a >> "$WORK/ps.b"
    time_ns "${PODMAN[@]}" ps -a >> "$WORK/ps.p"
done
[ "$("${BARGE[@]}" ps -a -q | wc -l)" = "$PSN" ] || die "barge ps -a does not list $PSN containers"

RB=$(median < "$WORK/run.b"); RP=$(median < "$WORK/run.p")
EB=$(median < "$WORK/exec.b"); EP=$(median < "$WORK/exec.p")
PB=$(median < "$WORK/ps.b"); PP=$(median < "$WORK/ps.p")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}'; }
echo
echo "barge $("${BARGE[@]}" --version | awk '{print $2}') ($("$TARGET_DIR/release/barge-runtime" --version | head -1)) vs $(podman --version) on $(runc --version | head -1)"
echo "$(nproc) CPUs, kernel $(uname -r), $RUNS runs each, medians"
printf '%-28s %10s %10s %8s %s\n' "" barge podman ratio target
printf '%-28s %8s ms %7s ms %8s %s\n' "run --rm IMAGE true" "$RB" "$RP" "$(ratio "$RB" "$RP")" "<= 0.1"
printf '%-28s %8s ms %7s ms %8s %s\n' "exec CTR true" "$EB" "$EP" "$(ratio "$EB" "$EP")" "<= 0.2"
printf '%-28s %8s ms %7s ms %8s %s\n' "ps -a ($PSN containers)" "$PB" "$PP" "$(ratio "$PB" "$PP")" ""
printf '%-28s %7s KiB %6s KiB %8s %s\n' "monitor VmRSS (idle)" "$BRSS" "$PRSS" "$(ratio "$BRSS" "$PRSS")" "<= 1024 KiB"
