#!/bin/bash
# Install everything barge needs to build and test on a fresh Debian 12 machine.
# Idempotent; must run as root; never prompts.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: must run as root (try: sudo $0)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    build-essential pkg-config libseccomp-dev file
    busybox-static runc podman uidmap
    hyperfine jq iproute2 skopeo procps util-linux mount
    ca-certificates curl docker-registry
    catatonit netavark aardvark-dns iptables conmon golang-github-containers-common
    bsdutils gzip zstd
    nftables passt slirp4netns iperf3
    python3 e2fsprogs wget
    sqlite3
    passt slirp4netns iperf3
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    # Only refresh the package lists when they are missing or older than a day.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null | head -n1)" ]; then
        apt-get update -q
    fi
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
else
    echo "install-deps: all packages present"
fi

# Rootless networking (pasta/slirp4netns) and fuse need these world-accessible,
# as on stock distributions.
for dev in /dev/net/tun /dev/fuse; do
    if [ -e "$dev" ]; then chmod 0666 "$dev"; fi
done

# The unprivileged user the rootless suites run barge as, with subordinate
# id ranges for its user namespace (the runtime's rootless test uses the
# same user and range).
ROOTLESS_USER=barge-rootless
if ! id -u "$ROOTLESS_USER" >/dev/null 2>&1; then
    useradd --create-home --home-dir "/home/$ROOTLESS_USER" --shell /bin/sh "$ROOTLESS_USER"
elif [ ! -d "/home/$ROOTLESS_USER" ]; then
    # An earlier test run created it as a system user without a home.
    mkdir -p "/home/$ROOTLESS_USER"
    usermod --home "/home/$ROOTLESS_USER" "$ROOTLESS_USER"
    chown "$ROOTLESS_USER:" "/home/$ROOTLESS_USER"
fi
for f in /etc/subuid /etc/subgid; do
    touch "$f"
    grep -q "^$ROOTLESS_USER:" "$f" || echo "$ROOTLESS_USER:300000:65536" >> "$f"
done

# podman here must use runc (crun refuses hybrid cgroups) and lower default
# ulimits: root lacks CAP_SYS_RESOURCE (hard nofile 20000).
# An existing containers.conf (e.g. one written by a podman test setup) is kept.
if [ ! -e /etc/containers/containers.conf ]; then
    mkdir -p /etc/containers
    cat > /etc/containers/containers.conf <<'CONF'
# barge: install-deps (hybrid cgroups, no CAP_SYS_RESOURCE on this host kind)
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
runtime = "runc"
CONF
fi

# Rust toolchain: cargo is preinstalled under ~/.cargo/bin on CI machines.
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -x "$d/cargo" ]; then export PATH="$d:$PATH"; break; fi
done
if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo not found; installing rustup toolchain" >&2
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
fi
rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-gnu \
    || rustup target add x86_64-unknown-linux-gnu 2>/dev/null || true
echo "install-deps: $(cargo --version)"
