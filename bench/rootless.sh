#!/bin/bash
# Rootless benchmark: barge run by an unprivileged user against barge run
# by root, in one run, then rootless network throughput through pasta and
# slirp4netns (bench/netns-throughput.sh --user).
#
# Usage: bench/rootless.sh [--quick] [-n RUNS] [--user NAME] [--no-net]
#   --quick      5 runs
#   -n RUNS      measured iterations per mode (default 20)
#   --user NAME  the unprivileged user (default barge-rootless, created by
#                scripts/install-deps.sh with /etc/subuid and /etc/subgid ranges)
#   --no-net     skip the throughput part
#
# Measures, alternating root and the user on every iteration, the wall time
# of `barge run --rm IMAGE true` with `--network none` and with each one's
# default network (root: the `barge` bridge; rootless: pasta), and prints
# medians and the ratios rootless/rootful.
#
# Both use private stores in a temporary directory (the user's owned by
# the user, with its own XDG_RUNTIME_DIR and so its own pause process,
# which is stopped at the end); the image is Debian's busybox-static
# (scripts/build-image.sh).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=20
USERNAME=barge-rootless
NET=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) RUNS=5 ;;
        -n) RUNS=$2; shift ;;
        --user) USERNAME=$2; shift ;;
        --no-net) NET= ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "rootless.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "rootless.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (it runs barge as root and as --user)"
id -u "$USERNAME" >/dev/null 2>&1 || die "no user $USERNAME (scripts/install-deps.sh creates it)"
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done

cd "$REPO"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p barge -p barge-runtime -p barge-monitor -p barge-pause >&2
fi
[ -d build/bundle/rootfs ] || scripts/build-image.sh build >&2

WORK=$(mktemp -d /tmp/barge-rlbench.XXXXXX)
chmod 0755 "$WORK"
mkdir -p "$WORK/u/xdg"
chown -R "$USERNAME:" "$WORK/u"
chmod 0700 "$WORK/u/xdg"
UHOME=$(getent passwd "$USERNAME" | cut -d: -f6)
B="$TARGET_DIR/release/barge"
ROOT=("$B" --root "$WORK/r/root" --runroot "$WORK/r/run")
USER_=(setpriv --reuid="$USERNAME" --regid="$USERNAME" --init-groups
       env HOME="$UHOME" XDG_RUNTIME_DIR="$WORK/u/xdg"
       "$B" --root "$WORK/u/root" --runroot "$WORK/u/run")
cleanup() {
    set +e
    "${ROOT[@]}" rm -f -a >/dev/null 2>&1
    "${USER_[@]}" rm -f -a >/dev/null 2>&1
    "${USER_[@]}" system reset -f >/dev/null 2>&1
    if [ -f "$WORK/u/xdg/barge/pause.pid" ]; then
        kill "$(cut -d' ' -f1 "$WORK/u/xdg/barge/pause.pid")" 2>/dev/null
    fi
    umount -R "$WORK"/r/root/containers/*/rootfs 2>/dev/null
    rm -rf "$WORK" 2>/dev/null
}
trap cleanup EXIT

echo "== preparing images" >&2
tar -C build/bundle/rootfs -c . | "${ROOT[@]}" import - localhost/bench >/dev/null
tar -C build/bundle/rootfs -c . | "${USER_[@]}" import - localhost/bench >/dev/null

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print 0; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1e6}'; }
time_ns() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1 || die "failed: $*"; t1=$(now); echo $((t1 - t0)); }

# Warm-ups: the user's pause process, both stores' unpacked layers, the
# bridge and firewall, pasta.
for net in none default; do
    a=(); [ "$net" = none ] && a=(--network none)
    "${ROOT[@]}" run --rm "${a[@]}" localhost/bench true >/dev/null
    "${USER_[@]}" run --rm "${a[@]}" localhost/bench true >/dev/null
done

declare -A MED
for net in none default; do
    a=(); [ "$net" = none ] && a=(--network none)
    echo "== run --rm --network $net ($RUNS runs each, alternating)" >&2
    : > "$WORK/r.$net"; : > "$WORK/u.$net"
    for _ in $(seq "$RUNS"); do
        time_ns "${ROOT[@]}" run --rm "${a[@]}" localhost/bench true >> "$WORK/r.$net"
        time_ns "${USER_[@]}" run --rm "${a[@]}" localhost/bench true >> "$WORK/u.$net"
    done
    MED[r.$net]=$(median < "$WORK/r.$net")
    MED[u.$net]=$(median < "$WORK/u.$net")
done

echo
printf '%-32s %12s %12s %8s\n' "run --rm (median ms)" rootful rootless ratio
for net in none default; do
    ratio=$(awk -v u="${MED[u.$net]}" -v r="${MED[r.$net]}" 'BEGIN {printf "%.2f", u / r}')
    label="--network $net"
    [ "$net" = default ] && label="default (bridge / pasta)"
    printf '%-32s %12s %12s %8s\n' "$label" "${MED[r.$net]}" "${MED[u.$net]}" "$ratio"
done

if [ -n "$NET" ]; then
    if [ -x bench/netns-throughput.sh ]; then
        echo
        SKIP_BUILD=1 bench/netns-throughput.sh --user "$USERNAME"
    else
        echo "rootless.sh: bench/netns-throughput.sh missing; no throughput figures" >&2
    fi
fi
