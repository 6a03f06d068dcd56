#!/bin/bash
# Build the static, size-optimised barge-monitor (one runs per container, so
# its resident set matters): glibc static, non-PIE, opt-level s, LTO,
# panic=abort (the `monitor` profile in Cargo.toml).
# Output: $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/monitor/barge-monitor
# (default target dir ./target); the path is printed on the last line.
# `cargo build --release` also builds a dynamic barge-monitor that works the
# same, with a larger resident set (docs/monitor.md).
set -euo pipefail
cd "$(dirname "$0")/.."
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# --target keeps RUSTFLAGS off build scripts and proc macros.
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --profile monitor -p barge-monitor --target x86_64-unknown-linux-gnu >&2
OUT="$TARGET_DIR/x86_64-unknown-linux-gnu/monitor/barge-monitor"
if ! file -L "$OUT" | grep -q 'statically linked'; then
    echo "build-monitor: $OUT is not statically linked" >&2
    exit 1
fi
echo "$OUT"
