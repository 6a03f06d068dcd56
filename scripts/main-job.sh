#!/bin/bash
# The main job: build barge, build the test image/bundle (Debian's
# busybox-static, no network), then
#   1. with the OCI runtime alone: a container, then a second container that
#      joins the first one's network namespace by path (a "pod" of two);
#   2. with the engine: the busybox image imported into a private store, a
#      container run from it, a web server published on 127.0.0.1 and
#      fetched from the host, two containers on a user network reaching each
#      other by name, exec and logs, then everything removed;
#   3. (step 4 in the output) rootless: the unprivileged user barge-rootless imports the image and
#      runs a container and a pod from it.
# Env: RUNTIME=path (default target/release/barge-runtime; any runc-compatible
#      runtime works, e.g. RUNTIME=runc), SKIP_BUILD=1 to reuse existing builds.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done

if [ "$(id -u)" -ne 0 ]; then
    echo "main-job.sh: containers need root here (try: sudo $0)" >&2
    exit 1
fi

TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== building the workspace (release)"
    cargo build --release --workspace
    echo "== building the test image"
    scripts/build-image.sh build
elif [ ! -d build/bundle/rootfs ]; then
    scripts/build-image.sh build
fi

RUNTIME="${RUNTIME:-$TARGET_DIR/release/barge-runtime}"
if ! command -v "$RUNTIME" >/dev/null 2>&1; then
    echo "main-job.sh: runtime $RUNTIME not found" >&2
    exit 1
fi
RUNTIME="$(command -v "$RUNTIME")"
ROOTFS="$PWD/build/bundle/rootfs"
WORK="$(mktemp -d /tmp/barge-main-job.XXXXXX)"
STATE="$WORK/state"
POD="mainjob-$$"
cleanup() {
    set +e
    for c in "$POD-app" "$POD-infra"; do
        "$RUNTIME" --root "$STATE" delete --force "$c" >/dev/null 2>&1
    done
    if [ -n "${BARGE:-}" ]; then
        "$BARGE" --root "$WORK/store" --runroot "$WORK/run" rm -f -a >/dev/null 2>&1
        "$BARGE" --root "$WORK/store" --runroot "$WORK/run" network rm -f mainjob >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# bundle DIR ARGS_JSON [NETNS_PATH]: a bundle over the shared read-only rootfs.
bundle() {
    local dir="$1" args="$2" netns="${3:-}"
    mkdir -p "$dir"
    jq --arg root "$ROOTFS" --argjson args "$args" --arg netns "$netns" '
        .root.path = $root | .process.args = $args | .hostname = "barge"
        | if $netns != "" then
            .linux.namespaces |= map(if .type == "network" then . + {path: $netns} else . end)
          else . end' build/bundle/config.json > "$dir/config.json"
}

echo "== runtime: $RUNTIME"
echo "== 1. one container, attached"
bundle "$WORK/hello" '["sh","-c","echo hello from a barge container: $(hostname), pid $$; barge-check ids"]'
"$RUNTIME" --root "$STATE" run --bundle "$WORK/hello" "$POD-hello"

echo "== 2. a pod: an infra container and an app container sharing its network namespace"
bundle "$WORK/infra" '["barge-check","signal-wait"]'
"$RUNTIME" --root "$STATE" run --detach --bundle "$WORK/infra" "$POD-infra" \
    > "$WORK/infra.out" 2>&1 </dev/null
INFRA_PID="$("$RUNTIME" --root "$STATE" state "$POD-infra" | jq -r .pid)"
INFRA_NET="$(readlink "/proc/$INFRA_PID/ns/net")"
echo "infra container pid $INFRA_PID, network namespace $INFRA_NET"

bundle "$WORK/app" '["barge-check","ns"]' "/proc/$INFRA_PID/ns/net"
APP_OUT="$("$RUNTIME" --root "$STATE" run --bundle "$WORK/app" "$POD-app")"
echo "app container sees: $APP_OUT"
APP_NET="$(echo "$APP_OUT" | jq -r .net)"
if [ "$APP_NET" != "$INFRA_NET" ]; then
    echo "main-job: FAIL: app netns $APP_NET != infra netns $INFRA_NET" >&2
    exit 1
fi
"$RUNTIME" --root "$STATE" list
"$RUNTIME" --root "$STATE" kill "$POD-infra" TERM
for _ in $(seq 50); do
    st="$("$RUNTIME" --root "$STATE" state "$POD-infra" | jq -r .status)"
    [ "$st" = stopped ] && break
    sleep 0.1
done
"$RUNTIME" --root "$STATE" delete "$POD-infra"
echo "== main job OK: both containers shared network namespace $INFRA_NET"

echo "== 3. the engine: barge run from an image made of busybox-static"
BARGE="$TARGET_DIR/release/barge"
B=("$BARGE" --root "$WORK/store" --runroot "$WORK/run")
tar -C "$ROOTFS" -c . | "${B[@]}" import - localhost/busybox >/dev/null
"${B[@]}" images
"${B[@]}" run --rm localhost/busybox sh -c 'echo "hello from barge run: $(hostname), $(ip -4 -o addr show eth0 | awk "{print \$4}")"'
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${B[@]}" run -d --name web -p "127.0.0.1:$PORT:80" localhost/busybox \
    sh -c 'mkdir -p /www && echo "served by busybox httpd in barge" > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
"${B[@]}" ps
PAGE=""
for _ in $(seq 50); do
    PAGE=$(wget -q -O - "http://127.0.0.1:$PORT/" 2>/dev/null || true)
    [ -n "$PAGE" ] && break
    sleep 0.1
done
echo "host fetched: $PAGE"
[ -n "$PAGE" ] || { echo "main-job: FAIL: no page from the published port" >&2; exit 1; }
"${B[@]}" exec web sh -c 'echo "exec in web: pid 1 is $(cat /proc/1/comm)"'
if "${B[@]}" network create mainjob >/dev/null 2>&1; then
    "${B[@]}" run -d --name db --network mainjob localhost/busybox \
        sh -c 'mkdir -p /www && echo "db answers by name" > /www/index.html && exec httpd -f -p 8080 -h /www' >/dev/null
    "${B[@]}" run --rm --network mainjob localhost/busybox wget -q -O - http://db:8080/
fi
"${B[@]}" logs web || true
"${B[@]}" rm -f -a >/dev/null
"${B[@]}" network rm -f mainjob >/dev/null 2>&1 || true

echo "== 4. rootless: the same image, a container and a pod run by the unprivileged user barge-rootless"
if id -u barge-rootless >/dev/null 2>&1; then
    RL_HOME=$(getent passwd barge-rootless | cut -d: -f6)
    mkdir -p "$WORK/rootless"
    chown barge-rootless: "$WORK/rootless"
    chmod 0755 "$WORK"
    RL=(setpriv --reuid=barge-rootless --regid=barge-rootless --init-groups
        env HOME="$RL_HOME" XDG_RUNTIME_DIR="$WORK/rootless/xdg"
        "$BARGE" --root "$WORK/rootless/store" --runroot "$WORK/rootless/run")
    install -d -o barge-rootless -m 0700 "$WORK/rootless/xdg"
    tar -C "$ROOTFS" -c . | "${RL[@]}" import - localhost/busybox >/dev/null
    "${RL[@]}" run --rm --network none localhost/busybox sh -c 'echo "rootless container: I am $(id -un), uid_map: $(cat /proc/self/uid_map | tr -s " " | head -1)"'
    "${RL[@]}" pod create --name rlpod >/dev/null
    "${RL[@]}" run -d --pod rlpod --name rlweb localhost/busybox sleep 60 >/dev/null
    "${RL[@]}" pod ps
    "${RL[@]}" pod rm -f rlpod >/dev/null
    "${RL[@]}" system reset -f >/dev/null 2>&1 || true
    kill "$(cut -d' ' -f1 "$WORK/rootless/xdg/barge/pause.pid")" 2>/dev/null || true
else
    echo "(no user barge-rootless: scripts/install-deps.sh creates it)"
fi
echo "== main job OK"
