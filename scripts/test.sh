#!/bin/bash
# Everything CI runs: dependencies, release build, the static checker and test
# image, then all unit tests and the root integration suite.
# Env: BARGE_RUNTIME=/path/to/runtime runs the integration suite against another
#      runtime (e.g. $(which runc)); SKIP_DEPS=1 skips scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [ -d "$d" ]; then PATH="$d:$PATH"; fi
done
export PATH
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start ))s] $*"; }

if [ -z "${SKIP_DEPS:-}" ]; then
    step "install dependencies"
    if [ "$(id -u)" -eq 0 ]; then
        scripts/install-deps.sh
    else
        sudo -E scripts/install-deps.sh
    fi
fi

step "cargo build --release --workspace"
cargo build --release --workspace --all-targets

step "static checker + test image"
scripts/build-image.sh build

step "cargo test --release --workspace"
if [ "$(id -u)" -ne 0 ]; then
    echo "note: not root; the integration tests will skip (run as root for the full suite)" >&2
fi
log=$(mktemp)
set +e
cargo test --release --workspace --all-targets --no-fail-fast 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line with the totals over every test binary.
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
if [ "$rc" -ne 0 ]; then
    echo "$passed passed, $failed failed"
    exit "$rc"
fi
step "all tests passed"
echo "$passed passed, $failed failed"
