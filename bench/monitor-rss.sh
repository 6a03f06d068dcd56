#!/bin/bash
# Idle resident set of barge-monitor against conmon, each holding one running
# container (busybox `sleep 1000`, stdin/stdout/stderr pipes, a k8s-file log).
#
# Usage: bench/monitor-rss.sh [--limit KIB]
#   --limit KIB  fail (exit 1) when barge-monitor's VmRSS exceeds KIB
#                (default 1024, the target)
# Environment:
#   MONITOR  default: built by scripts/build-static.sh barge-monitor (static, no_main)
#   RUNTIME  OCI runtime both monitors drive; default
#            $CARGO_TARGET_DIR/release/barge-runtime (else <repo>/target/...),
#            falling back to runc
#   BUNDLE   default <repo>/build/bundle (scripts/build-image.sh)
#
# Method: each monitor creates the container through RUNTIME (conmon with
# `--api-version 1 -i -l k8s-file:...`, daemonized as podman runs it;
# barge-monitor with `--stdin --log-driver k8s-file`), the script runs
# `RUNTIME start`, waits 1 s, then reads VmRSS, RssAnon, RssFile from
# /proc/PID/status and Pss from /proc/PID/smaps_rollup of the monitor
# process. Then the container is killed, the monitor exits, the container is
# deleted and every file is removed. RssFile is mostly the monitor's own
# executable (and, for conmon, glib and libc), pages shared by every monitor
# on the host; RssAnon is what each further container costs.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
LIMIT=1024
while [ $# -gt 0 ]; do
    case "$1" in
        --limit) LIMIT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
die() { echo "monitor-rss: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
command -v jq >/dev/null || die "jq missing (scripts/install-deps.sh)"

TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac
if [ -z "${MONITOR:-}" ]; then
    MONITOR=$(scripts/build-static.sh barge-monitor | tail -1)
fi
if [ -z "${RUNTIME:-}" ]; then
    RUNTIME="$TARGET_DIR/release/barge-runtime"
    [ -x "$RUNTIME" ] || RUNTIME=$(command -v runc || true)
fi
[ -x "$RUNTIME" ] || die "no runtime (build barge-runtime or set RUNTIME)"
BUNDLE="${BUNDLE:-$REPO/build/bundle}"
[ -f "$BUNDLE/config.json" ] || die "no bundle at $BUNDLE (scripts/build-image.sh)"
CONMON=$(command -v conmon || true)

tmp=$(mktemp -d /run/barge-monitor-rss.XXXXXX)
ids=()
cleanup() {
    for id in "${ids[@]}"; do
        "$RUNTIME" --root "$tmp/state" delete --force "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/bundle" "$tmp/state"
rootfs=$(jq -r '.root.path' "$BUNDLE/config.json")
case "$rootfs" in /*) ;; *) rootfs="$BUNDLE/$rootfs" ;; esac
jq --arg rootfs "$rootfs" \
    '.process.args = ["sleep", "1000"] | .process.terminal = false | .root.path = $rootfs | .root.readonly = true' \
    "$BUNDLE/config.json" > "$tmp/bundle/config.json"

wait_file() { # FILE
    for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
    die "timed out waiting for $1"
}
# measure NAME MONITOR_PID ID: start the container, print one table row.
measure() {
    local name=$1 mpid=$2 id=$3
    "$RUNTIME" --root "$tmp/state" start "$id"
    sleep 1
    [ -d "/proc/$mpid" ] || die "$name (pid $mpid) is gone"
    local rss anon file pss
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$mpid/status")
    anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$mpid/status")
    file=$(awk '/^RssFile:/ {print $2}' "/proc/$mpid/status")
    pss=$(awk '/^Pss:/ {print $2}' "/proc/$mpid/smaps_rollup")
    printf '%-14s %9s %9s %9s %9s\n' "$name" "$rss" "$anon" "$file" "$pss"
    eval "${name//-/_}_rss=$rss"
    "$RUNTIME" --root "$tmp/state" kill "$id" KILL
    for _ in $(seq 200); do [ -d "/proc/$mpid" ] || break; sleep 0.05; done
    [ -d "/proc/$mpid" ] && die "$name (pid $mpid) did not exit after the container"
    "$RUNTIME" --root "$tmp/state" delete "$id" >/dev/null 2>&1 || true
}

echo "runtime: $RUNTIME"
echo "monitor: $MONITOR ($(stat -c %s "$MONITOR") bytes)"
printf '%-14s %9s %9s %9s %9s\n' monitor "VmRSS kB" "anon kB" "file kB" "Pss kB"

# barge-monitor
id="rss-barge-$$"; ids+=("$id")
d="$tmp/barge"; mkdir -p "$d"
# The sync fd is a pipe (a FIFO here): read until EOF, as the engine does.
mkfifo "$tmp/sync"
cat "$tmp/sync" > "$tmp/barge.sync" &
reader=$!
exec 9>"$tmp/sync"
"$MONITOR" --id "$id" --runtime "$RUNTIME" \
    --runtime-arg --root --runtime-arg "$tmp/state" \
    --bundle "$tmp/bundle" --dir "$d" --stdin \
    --log-driver k8s-file --log-path "$d/ctr.log" --sync-fd 9
exec 9>&-
wait "$reader"
grep -q '"pid"' "$tmp/barge.sync" || die "barge-monitor failed: $(cat "$tmp/barge.sync")"
measure barge-monitor "$(cat "$d/monitor.pid")" "$id"

# conmon
if [ -n "$CONMON" ]; then
    id="rss-conmon-$$"; ids+=("$id")
    d="$tmp/conmon"; mkdir -p "$d/exits" "$d/sock"
    "$CONMON" --api-version 1 -c "$id" -u "$id" -n "$id" -r "$RUNTIME" \
        --runtime-arg --root --runtime-arg "$tmp/state" \
        -b "$tmp/bundle" -p "$d/pidfile" -P "$d/conmon.pid" -i \
        -l "k8s-file:$d/ctr.log" --exit-dir "$d/exits" --socket-dir-path "$d/sock" \
        --log-level error </dev/null >/dev/null 2>"$tmp/conmon.err" \
        || die "conmon failed: $(cat "$tmp/conmon.err")"
    wait_file "$d/pidfile"
    wait_file "$d/conmon.pid"
    measure conmon "$(cat "$d/conmon.pid")" "$id"
else
    echo "conmon not installed: skipped"
fi

if [ "${barge_monitor_rss:-0}" -gt "$LIMIT" ]; then
    echo "FAIL: barge-monitor VmRSS ${barge_monitor_rss} kB > ${LIMIT} kB" >&2
    exit 1
fi
