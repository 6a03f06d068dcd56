#!/bin/sh
# Prepare podman on this host for the barge podman client suite (tests/podman).
#
# Idempotent; needs root. What it does:
#   1. writes /etc/containers/containers.conf (an existing file that is not ours
#      is kept as containers.conf.barge-backup.<time>): runc as default runtime,
#      cgroupfs, file events/k8s-file logs, lowered default_ulimits (root here
#      lacks CAP_SYS_RESOURCE: hard nofile is 20000, podman's default 1048576
#      fails), barge-runtime registered as runtime "barge" and as JSON-capable,
#      and no infra_image, so pods use podman's locally built pause image
#      (catatonit) and never pull from the network;
#   2. checks that podman's storage works (overlay, falling back to vfs);
#   3. imports localhost/barge-busybox:latest from build/bundle/rootfs
#      (scripts/build-image.sh), or from a minimal busybox-static rootfs built
#      here when that bundle does not exist yet. Re-imports only when the
#      rootfs content changed (sha256 kept in a label).
#
# Environment: BARGE_RUNTIME (path registered as runtime "barge"; default
# <repo>/target/release/barge-runtime), BARGE_ROOTFS (rootfs to import),
# PODMAN_SETUP_FORCE=1 (rewrite config and re-import), BARGE_PAUSE_IMAGE=1
# (use the busybox pause image for pods even when catatonit is installed).
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=localhost/barge-busybox:latest
CONF_DIR=/etc/containers
CONF=$CONF_DIR/containers.conf
STORAGE_CONF=$CONF_DIR/storage.conf
MARK="# written by barge scripts/podman-setup.sh"
BARGE_RUNTIME=${BARGE_RUNTIME:-$REPO/target/release/barge-runtime}
FORCE=${PODMAN_SETUP_FORCE:-0}

log() { echo "podman-setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
command -v podman >/dev/null || die "podman not installed (scripts/install-deps.sh)"
command -v runc >/dev/null || die "runc not installed (scripts/install-deps.sh)"
case "$BARGE_RUNTIME" in /*) ;; *) BARGE_RUNTIME=$(pwd)/$BARGE_RUNTIME ;; esac

# Serialize concurrent invocations (several test binaries may call us).
mkdir -p "$CONF_DIR"
exec 9>"$CONF_DIR/.barge-podman-setup.lock"
flock 9

# ---------------------------------------------------------------- config
PAUSE_IMAGE=localhost/barge-pause:latest
if [ "${BARGE_PAUSE_IMAGE:-0}" != 1 ] && { command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ]; }; then
    INFRA_LINES=""; need_pause=0
else
    log "catatonit not installed: pods will use $PAUSE_IMAGE"
    INFRA_LINES="infra_image = \"$PAUSE_IMAGE\"
infra_command = \"/pause\""
    need_pause=1
fi
command -v iptables >/dev/null || log "warning: iptables missing: podman's default bridge network (netavark) will fail"

nofile_hard=$(ulimit -Hn)
nofile=1024; [ "$nofile_hard" != unlimited ] && [ "$nofile_hard" -lt "$nofile" ] && nofile=$nofile_hard

write_conf() {
    cat <<EOF
$MARK
# Settings this host needs (see /work/shared/design-notes.md "Host facts").
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=1000:1000"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
# Pods: with catatonit installed, infra_image is left unset: podman 4.x then
# builds localhost/podman-pause locally from catatonit (no registry pull).
# Without catatonit we point it at localhost/barge-pause, built below.
$INFRA_LINES
# runtimes named here get --log-format=json from podman (the default list
# plus barge; with --runtime /path podman uses the file's basename as name).
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "barge", "barge-runtime"]
runtime_supports_nocgroups = ["crun", "krun"]

[engine.runtimes]
barge = ["$BARGE_RUNTIME"]
EOF
}

new_conf=$(write_conf)
if [ -f "$CONF" ] && ! head -n1 "$CONF" | grep -qF "$MARK"; then
    backup=$CONF.barge-backup.$(date +%Y%m%d%H%M%S)
    cp -p "$CONF" "$backup"
    log "backed up existing $CONF to $backup"
fi
if [ "$FORCE" = 1 ] || [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" > "$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    log "wrote $CONF"
fi

# ---------------------------------------------------------------- storage
driver=$(podman info --format '{{.Store.GraphDriverName}}' 2>/dev/null || true)
if [ "$driver" != overlay ] && [ "$driver" != vfs ]; then
    log "podman storage not usable (driver '${driver}'); switching to vfs"
    [ -f "$STORAGE_CONF" ] && cp -p "$STORAGE_CONF" "$STORAGE_CONF.barge-backup.$(date +%Y%m%d%H%M%S)"
    cat > "$STORAGE_CONF" <<EOF
$MARK
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
    podman system reset --force >/dev/null 2>&1 || true
    driver=$(podman info --format '{{.Store.GraphDriverName}}') || die "podman info fails with vfs storage too"
fi
log "storage driver: $driver"

# ---------------------------------------------------------------- image
tmp=""
cleanup() { [ -n "$tmp" ] && rm -rf "$tmp"; return 0; }
trap cleanup EXIT INT TERM

rootfs=${BARGE_ROOTFS:-$REPO/build/bundle/rootfs}
if [ ! -x "$rootfs/bin/busybox" ] && [ ! -x "$rootfs/bin/sh" ]; then
    # Fallback: a minimal busybox-static rootfs (scripts/build-image.sh not run yet).
    bb=""
    for c in /bin/busybox /usr/bin/busybox; do
        if [ -x "$c" ] && file -L "$c" 2>/dev/null | grep -q 'statically linked'; then bb=$c; break; fi
    done
    [ -n "$bb" ] || die "no static busybox (apt-get install busybox-static) and no $rootfs"
    log "no bundle rootfs at $rootfs; building a minimal one from $bb"
    tmp=$(mktemp -d)
    rootfs=$tmp/rootfs
    mkdir -p "$rootfs/bin" "$rootfs/sbin" "$rootfs/usr/bin" "$rootfs/usr/sbin" \
        "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" \
        "$rootfs/root" "$rootfs/var" "$rootfs/www"
    chmod 1777 "$rootfs/tmp"
    cp "$bb" "$rootfs/bin/busybox"
    for applet in $("$bb" --list-full); do
        [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
fi

# Content hash of the rootfs, independent of mtimes.
sum=$(tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . | sha256sum | cut -d' ' -f1)
have=$(podman image inspect --format '{{index .Config.Labels "barge.rootfs.sha256"}}' "$IMAGE" 2>/dev/null || true)
if [ "$FORCE" = 1 ] || [ "$have" != "$sum" ]; then
    old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    log "importing $IMAGE from $rootfs"
    tar -C "$rootfs" --numeric-owner -cf - . | podman import -q \
        --change "CMD=/bin/sh" \
        --change "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "LABEL=barge.rootfs.sha256=$sum" \
        - "$IMAGE" >/dev/null
    # Drop the superseded image unless a container still uses it.
    [ -n "$old_id" ] && podman rmi "$old_id" >/dev/null 2>&1 || true
else
    log "$IMAGE up to date"
fi
podman image exists "$IMAGE" || die "$IMAGE missing after import"

# Pause image for pod infra containers when catatonit is missing: the test
# rootfs plus a /pause that sleeps until SIGTERM/SIGINT.
if [ "$need_pause" = 1 ]; then
    psum=$(printf '%s-pause-v1' "$sum" | sha256sum | cut -d' ' -f1)
    phave=$(podman image inspect --format '{{index .Config.Labels "barge.rootfs.sha256"}}' "$PAUSE_IMAGE" 2>/dev/null || true)
    if [ "$FORCE" = 1 ] || [ "$phave" != "$psum" ]; then
        [ -n "$tmp" ] || tmp=$(mktemp -d)
        mkdir -p "$tmp/pause"
        printf '#!/bin/sh\ntrap "exit 0" TERM INT\nwhile :; do sleep 3600 & wait; done\n' > "$tmp/pause/pause"
        chmod 755 "$tmp/pause/pause"
        log "importing $PAUSE_IMAGE"
        { tar -C "$rootfs" --numeric-owner -cf - . ; } >"$tmp/pause.tar"
        tar -C "$tmp/pause" --numeric-owner --owner=0 --group=0 -rf "$tmp/pause.tar" pause
        old_id=$(podman image inspect --format '{{.Id}}' "$PAUSE_IMAGE" 2>/dev/null || true)
        podman import -q --change "CMD=/pause" --change "LABEL=barge.rootfs.sha256=$psum" \
            "$tmp/pause.tar" "$PAUSE_IMAGE" >/dev/null
        [ -n "$old_id" ] && podman rmi "$old_id" >/dev/null 2>&1 || true
    fi
fi
log "ready (runtime barge = $BARGE_RUNTIME)"
