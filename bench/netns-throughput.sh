#!/bin/bash
# Throughput of user-mode networking: iperf3 through a port published with
# `--network pasta` against one published with `--network slirp4netns`.
#
# Usage: bench/netns-throughput.sh [--user NAME] [-t SECONDS] [--quick]
#   --user NAME  run every barge command (and the iperf3 client) as the
#                unprivileged user NAME (setpriv --reuid/--regid
#                --init-groups, HOME and XDG_RUNTIME_DIR set), i.e. with
#                rootless barge; default: as root
#   -t SECONDS   length of each iperf3 run (default 5)
#   --quick      -t 1 (smoke test)
#
# A tiny image holds /usr/bin/iperf3 and its shared libraries (ldd),
# imported with `barge import`. For each mode a container runs `iperf3 -s`
# with `-p 127.0.0.1:PORT:5201`, and the host runs `iperf3 -c 127.0.0.1 -p
# PORT -t SECONDS -J` (host to container: the helper's forwarding path).
# Prints the received Gbit/s of each mode and the ratio pasta/slirp4netns.
# Only loopback traffic. The store is private, in a temporary directory.
set -euo pipefail
shopt -s inherit_errexit

REPO=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_RUN=5
RUN_AS=
while [ $# -gt 0 ]; do
    case "$1" in
        --user) RUN_AS=$2; shift ;;
        -t) SECONDS_PER_RUN=$2; shift ;;
        --quick) SECONDS_PER_RUN=1 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "netns-throughput.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "netns-throughput.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (use --user NAME for rootless barge)"
for tool in iperf3 pasta slirp4netns jq ldd setpriv; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps.sh)"
done
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done

cd "$REPO"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p barge -p barge-runtime -p barge-monitor >&2
fi
BARGE_BIN="$TARGET_DIR/release/barge"
[ -x "$BARGE_BIN" ] || die "$BARGE_BIN missing"

WORK=$(mktemp -d /tmp/nbench.XXXXXX)
chmod 755 "$WORK"
# As root: run the command. With --user: as that user, in its login
# environment (HOME, XDG_RUNTIME_DIR), without root's groups.
if [ -n "$RUN_AS" ]; then
    uid=$(id -u "$RUN_AS") || die "no user $RUN_AS"
    gid=$(id -g "$RUN_AS")
    home=$(getent passwd "$RUN_AS" | cut -d: -f6)
    # A private run directory: this run's own pause process (holding the
    # user's namespaces), stopped again at exit.
    chown "$uid:$gid" "$WORK"
    xdg=$WORK/xdg
    install -d -m 700 -o "$uid" -g "$gid" "$xdg"
    as_user() {
        setpriv --reuid="$uid" --regid="$gid" --init-groups -- \
            env -i PATH="$PATH" HOME="$home" USER="$RUN_AS" LOGNAME="$RUN_AS" \
            XDG_RUNTIME_DIR="$xdg" "$@"
    }
    # The user must reach the binaries (barge finds its runtime and
    # monitor beside itself).
    as_user test -x "$BARGE_BIN" || die "$RUN_AS cannot execute $BARGE_BIN"
else
    as_user() { "$@"; }
fi
BARGE=("$BARGE_BIN" --root "$WORK/s" --runroot "$WORK/r")
barge() { as_user "${BARGE[@]}" "$@"; }

cleanup() {
    set +e
    barge rm -f -t 0 nbench-pasta nbench-slirp4netns >/dev/null 2>&1
    if [ -n "${xdg:-}" ] && [ -f "$xdg/barge/pause.pid" ]; then
        kill "$(cut -d' ' -f1 "$xdg/barge/pause.pid")" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The image: iperf3, its libraries and loader, /tmp.
IMG_DIR="$WORK/image"
mkdir -p "$IMG_DIR/usr/bin" "$IMG_DIR/tmp" "$IMG_DIR/etc"
chmod 1777 "$IMG_DIR/tmp"
cp -L /usr/bin/iperf3 "$IMG_DIR/usr/bin/"
for lib in $(ldd /usr/bin/iperf3 | grep -o '/[^ ]*'); do
    cp -L --parents "$lib" "$IMG_DIR/"
done
echo "root:x:0:0:root:/:/usr/bin/iperf3" > "$IMG_DIR/etc/passwd"
echo "root:x:0:" > "$IMG_DIR/etc/group"
chmod -R a+rX "$IMG_DIR"
tar -C "$IMG_DIR" -c . | as_user "${BARGE[@]}" import - localhost/iperf3 >/dev/null

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Gbit/s received through MODE's published port.
measure() {
    local mode=$1 port json pid
    port=$(free_port)
    barge run -d --name "nbench-$mode" --network "$mode" -p "127.0.0.1:$port:5201" \
        localhost/iperf3 iperf3 -s >/dev/null
    # The helper accepts on the host at once, whether or not the server
    # listens yet: wait for its listening socket (port 5201 = 0x1451,
    # state 0A) in the container's namespace.
    pid=$(barge inspect --format '{{.State.Pid}}' "nbench-$mode")
    for _ in $(seq 200); do
        if cat "/proc/$pid/net/tcp" "/proc/$pid/net/tcp6" 2>/dev/null |
            awk '$2 ~ /:1451$/ && $4 == "0A" { f = 1 } END { exit !f }'; then
            break
        fi
        sleep 0.05
    done
    json=$(as_user iperf3 -c 127.0.0.1 -p "$port" -t "$SECONDS_PER_RUN" -J) ||
        die "iperf3 through $mode failed: $(echo "$json" | jq -r '.error // empty')"
    barge rm -f -t 0 "nbench-$mode" >/dev/null
    echo "$json" | jq -r '.end.sum_received.bits_per_second / 1e9'
}

who=${RUN_AS:-root}
echo "iperf3 host -> container through the published port, ${SECONDS_PER_RUN}s each, barge as $who"
pasta_gbps=$(measure pasta)
printf '  pasta:       %6.2f Gbit/s\n' "$pasta_gbps"
slirp_gbps=$(measure slirp4netns)
printf '  slirp4netns: %6.2f Gbit/s\n' "$slirp_gbps"
printf '  ratio pasta/slirp4netns: %.2f\n' "$(echo "$pasta_gbps $slirp_gbps" | awk '{ if ($2 > 0) print $1 / $2; else print 0 }')"
