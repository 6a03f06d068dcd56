#!/bin/bash
# Pod benchmark: barge against podman (Debian's, on runc), in one run.
#
# Usage: bench/pod.sh [--quick] [-n RUNS]
#   --quick    3 runs (smoke test)
#   -n RUNS    measured iterations per tool (default 10)
#
# One sample is the wall time of
#   pod create --name P
#   run -d --pod P IMAGE sleep 1000
#   run -d --pod P IMAGE sleep 1000
# i.e. a pod with its infra and two members running (default network,
# infra with the default pause: barge's static barge-pause, podman's
# catatonit pause image built locally). The pod is removed (`pod rm -f`)
# after each sample, outside the timing. barge and podman alternate the
# order on every iteration. Prints the medians and the ratio barge/podman
# (target <= 0.2).
#
# Both tools use private stores in a temporary directory; the image is the
# busybox-static test image (scripts/build-image.sh), imported into barge
# and loaded into podman from barge's docker-archive.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=10
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) RUNS=3 ;;
        -n) RUNS=$2; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "pod.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "pod.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done
command -v podman >/dev/null || die "podman is not installed (scripts/install-deps.sh)"

cd "$REPO"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p barge -p barge-runtime -p barge-monitor -p barge-pause >&2
fi
# The static pause (one file bound into the infra's root; the dynamic one
# of `cargo build` needs its loader and libraries bound too).
if [ -z "${BARGE_PAUSE:-}" ]; then
    BARGE_PAUSE=$(scripts/build-static.sh barge-pause | tail -1)
fi
export BARGE_PAUSE
[ -d build/bundle/rootfs ] || scripts/build-image.sh build >&2
scripts/podman-setup.sh >/dev/null

WORK=$(mktemp -d /tmp/barge-podbench.XXXXXX)
BARGE=("$TARGET_DIR/release/barge" --root "$WORK/b/root" --runroot "$WORK/b/run")
PODMAN=(podman --root "$WORK/p/root" --runroot "$WORK/p/run" --cgroup-manager cgroupfs --events-backend none)
cleanup() {
    set +e
    "${BARGE[@]}" pod rm -f -a >/dev/null 2>&1
    "${BARGE[@]}" rm -f -a >/dev/null 2>&1
    "${PODMAN[@]}" pod rm -f -a >/dev/null 2>&1
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
quiet() { "$@" >/dev/null 2>&1 || die "failed: $*"; }
# sample TOOL...: one pod with two running members, wall time in ns
# (total, then each of the three commands).
sample() {
    local t0 t1 t2 t3 pod=bench$RANDOM$RANDOM
    t0=$(now)
    quiet "$@" pod create --name "$pod"
    t1=$(now)
    quiet "$@" run -d --pod "$pod" localhost/bench sleep 1000
    t2=$(now)
    quiet "$@" run -d --pod "$pod" localhost/bench sleep 1000
    t3=$(now)
    [ "$("$@" ps -q --filter "pod=$("$@" pod inspect --format '{{.Id}}' "$pod")" 2>/dev/null | wc -l)" = 3 ] \
        || die "$1: the pod does not run 3 containers"
    quiet "$@" pod rm -f -t 0 "$pod"
    echo "$((t3 - t0)) $((t1 - t0)) $((t2 - t1)) $((t3 - t2))"
}

# Warm-up: pause image (podman builds it on first use), network, firewall.
sample "${BARGE[@]}" >/dev/null
sample "${PODMAN[@]}" >/dev/null

echo "== pod create + 2 x run -d --pod ($RUNS runs each, alternating)" >&2
: > "$WORK/pod.b"; : > "$WORK/pod.p"
for i in $(seq "$RUNS"); do
    if [ $((i % 2)) = 0 ]; then
        sample "${BARGE[@]}" >> "$WORK/pod.b"
        sample "${PODMAN[@]}" >> "$WORK/pod.p"
    else
        sample "${PODMAN[@]}" >> "$WORK/pod.p"
        sample "${BARGE[@]}" >> "$WORK/pod.b"
    fi
done

col() { awk -v c="$1" '{print $c}' "$2" | median; }
B=$(col 1 "$WORK/pod.b"); P=$(col 1 "$WORK/pod.p")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}'; }
echo
echo "barge $("${BARGE[@]}" --version | awk '{print $2}') ($("$TARGET_DIR/release/barge-runtime" --version | head -1)) vs $(podman --version) on $(runc --version | head -1)"
echo "$(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs each, medians"
printf '%-40s %10s %10s %8s %s\n' "" barge podman ratio target
printf '%-40s %8s ms %7s ms %8s %s\n' "pod create + 2 x run -d --pod" "$B" "$P" "$(ratio "$B" "$P")" "<= 0.2"
for i in 2 3 4; do
    case $i in 2) what="  pod create" ;; 3) what="  1st run -d --pod (infra + member)" ;; 4) what="  2nd run -d --pod" ;; esac
    b=$(col $i "$WORK/pod.b"); p=$(col $i "$WORK/pod.p")
    printf '%-40s %8s ms %7s ms %8s\n' "$what" "$b" "$p" "$(ratio "$b" "$p")"
done
