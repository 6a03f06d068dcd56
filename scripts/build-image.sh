#!/bin/bash
# Build the tiny test image and OCI bundle with no network access:
#   OUTDIR/bundle/config.json   runc-spec-style defaults, args ["sh"], terminal false
#   OUTDIR/bundle/rootfs/       busybox-static + /usr/bin/barge-check (static)
# Usage: scripts/build-image.sh [OUTDIR]   (default: ./build)
# Env: BARGE_CHECK=/path/to/static/barge-check skips building the checker.
set -euo pipefail

cd "$(dirname "$0")/.."
OUTDIR="${1:-build}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done

BUSYBOX=/bin/busybox
if ! file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked'; then
    echo "build-image: $BUSYBOX is not a static busybox; install busybox-static (scripts/install-deps.sh)" >&2
    exit 1
fi

# 1. The static checker.
if [ -z "${BARGE_CHECK:-}" ]; then
    TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release -p barge-check --target x86_64-unknown-linux-gnu
    BARGE_CHECK="$TARGET_DIR/x86_64-unknown-linux-gnu/release/barge-check"
fi
if ! file -L "$BARGE_CHECK" | grep -Eq 'statically linked|static-pie linked'; then
    echo "build-image: $BARGE_CHECK is not statically linked" >&2
    file -L "$BARGE_CHECK" >&2
    exit 1
fi

# 2. The rootfs (rebuilt from scratch each time, into a temp dir then renamed).
BUNDLE="$OUTDIR/bundle"
mkdir -p "$BUNDLE"
NEW="$BUNDLE/rootfs.new.$$"
rm -rf "$NEW"
mkdir -p "$NEW"
(
    cd "$NEW"
    mkdir -p bin sbin usr/bin usr/sbin etc root home/user tmp var/tmp var/run run \
        proc sys dev mnt \
        mnt/a mnt/b mnt/c mnt/d mnt/e mnt/ro mnt/rw mnt/hooks mnt/masked mnt/tmp
    chmod 1777 tmp var/tmp
    chmod 0700 root
    install -m 0755 "$BUSYBOX" bin/busybox
    # One symlink per applet (what `busybox --install -s` would create).
    for applet in $("$BUSYBOX" --list-full); do
        case "$applet" in */busybox | linuxrc) continue ;; esac
        if [ ! -e "$applet" ] && [ ! -L "$applet" ]; then
            mkdir -p "$(dirname "$applet")"
            ln -s /bin/busybox "$applet"
        fi
    done
    [ -e bin/sh ] || ln -s busybox bin/sh
    install -m 0755 "$BARGE_CHECK" usr/bin/barge-check
    cat > etc/passwd <<'P'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
    cat > etc/group <<'G'
root:x:0:
tty:x:5:
users:x:100:user
user:x:1000:
nogroup:x:65534:
G
    chown 1000:1000 home/user
    echo barge > etc/hostname
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > etc/hosts
    : > etc/resolv.conf
    # Fixtures used by the integration tests (masked/readonly paths).
    echo secret > mnt/masked/secret
    echo data > mnt/ro/file
)
rm -rf "$BUNDLE/rootfs"
mv "$NEW" "$BUNDLE/rootfs"

# 3. config.json: what `runc spec` writes, with terminal false.
cat > "$BUNDLE/config.json" <<'JSON'
{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": false,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}
JSON

if command -v runc >/dev/null 2>&1; then
    # Sanity: our defaults are exactly `runc spec` with terminal=false.
    tmp="$(mktemp -d)"
    (cd "$tmp" && runc spec)
    if command -v jq >/dev/null 2>&1 && \
       ! diff <(jq -S '.process.terminal=false' "$tmp/config.json") <(jq -S . "$BUNDLE/config.json") >/dev/null; then
        echo "build-image: note: config.json differs from this runc's 'runc spec' output" >&2
    fi
    rm -rf "$tmp"
fi

echo "build-image: bundle at $BUNDLE ($(du -sh "$BUNDLE/rootfs" | cut -f1) rootfs)"
