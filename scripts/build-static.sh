#!/bin/bash
# Build a small static helper binary: barge-monitor (one runs per container,
# so its resident set matters, docs/monitor.md) or barge-pause (the process
# of a pod's infra container, docs/pods.md, bound alone into the infra's
# empty root). glibc static, non-PIE, opt-level s, LTO, panic=abort (the
# `monitor` profile in Cargo.toml).
# Usage: scripts/build-static.sh barge-monitor|barge-pause [--install]
# Output: $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/monitor/PACKAGE
# (default target dir ./target); the path is printed on the last line.
# With --install, the binary is also copied beside barge
# ($CARGO_TARGET_DIR/release/PACKAGE), where the engine looks first.
# `cargo build --release` also builds dynamic ones that work the same (the
# monitor with a larger resident set; for the pause binary the engine then
# binds its loader and libraries read-only too).
set -euo pipefail
cd "$(dirname "$0")/.."
PKG="${1:-}"
case "$PKG" in
    barge-monitor|barge-pause) ;;
    *) echo "usage: scripts/build-static.sh barge-monitor|barge-pause [--install]" >&2; exit 2 ;;
esac
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# --target keeps RUSTFLAGS off build scripts and proc macros.
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --profile monitor -p "$PKG" --target x86_64-unknown-linux-gnu >&2
OUT="$TARGET_DIR/x86_64-unknown-linux-gnu/monitor/$PKG"
if ! file -L "$OUT" | grep -q 'statically linked'; then
    echo "build-static: $OUT is not statically linked" >&2
    exit 1
fi
if [ "${2:-}" = --install ]; then
    mkdir -p "$TARGET_DIR/release"
    cp "$OUT" "$TARGET_DIR/release/$PKG.new"
    mv "$TARGET_DIR/release/$PKG.new" "$TARGET_DIR/release/$PKG"
fi
echo "$OUT"
