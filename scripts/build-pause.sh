#!/bin/bash
# Build the static barge-pause (the process of a pod's infra container,
# docs/pods.md): glibc static, non-PIE, opt-level s, LTO, panic=abort (the
# `monitor` profile in Cargo.toml), so the engine binds only this one file
# into the infra's empty root.
# Output: $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/monitor/barge-pause
# (default target dir ./target); the path is printed on the last line.
# With --install, the binary is also copied beside barge
# ($CARGO_TARGET_DIR/release/barge-pause), where the engine looks first.
# `cargo build --release` also builds a dynamic barge-pause that works the
# same: the engine then binds its loader and libraries (read-only) too.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# --target keeps RUSTFLAGS off build scripts and proc macros.
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --profile monitor -p barge-pause --target x86_64-unknown-linux-gnu >&2
OUT="$TARGET_DIR/x86_64-unknown-linux-gnu/monitor/barge-pause"
if ! file -L "$OUT" | grep -q 'statically linked'; then
    echo "build-pause: $OUT is not statically linked" >&2
    exit 1
fi
if [ "${1:-}" = --install ]; then
    mkdir -p "$TARGET_DIR/release"
    cp "$OUT" "$TARGET_DIR/release/barge-pause.new"
    mv "$TARGET_DIR/release/barge-pause.new" "$TARGET_DIR/release/barge-pause"
fi
echo "$OUT"
