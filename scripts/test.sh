#!/bin/bash
# Everything CI runs: dependencies, release build, the static checker and test
# image, then all unit tests and the root integration suite, then the engine
# suite again as the rootless user barge-rootless.
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
rl_log=$(mktemp)
set +e
cargo test --release --workspace --all-targets --no-fail-fast 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

# The engine suite again with every barge command run as the unprivileged
# user barge-rootless (scripts/install-deps.sh creates it); tests of what a
# rootless user cannot have here print `SKIP (rootless): TEST: REASON`.
rl_rc=0
if [ "$(id -u)" -eq 0 ] && id -u barge-rootless >/dev/null 2>&1; then
    step "engine suite as the rootless user barge-rootless"
    set +e
    BARGE_TEST_ROOTLESS=barge-rootless cargo test --release -p barge-integration \
        --test engine --no-fail-fast 2>&1 | tee "$rl_log"
    rl_rc=${PIPESTATUS[0]}
    set -e
    # The user's pause process and bridge-namespace uplink outlive the
    # suite by design (one per test build's run directory): stop them.
    for d in /tmp/barge-test-run-"$(id -u barge-rootless)"-*/barge; do
        [ -d "$d" ] || continue
        for f in "$d/netns/rootless.pasta.pid" "$d/pause.pid"; do
            if [ -f "$f" ]; then kill "$(cut -d' ' -f1 "$f")" 2>/dev/null || true; fi
        done
    done
else
    echo "note: the rootless rerun of the engine suite needs root and the user barge-rootless" >&2
fi

# One closing line with the totals over every test binary (both runs), after
# the list of rootless skips.
passed=$(cat "$log" "$rl_log" | grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' | awk '{s+=$4} END {print s+0}')
failed=$(cat "$log" "$rl_log" | grep -Eo '[0-9]+ failed;' | awk '{s+=$1} END {print s+0}')
skips=$(grep -Eo 'SKIP \(rootless\): .*' "$rl_log" | sort || true)
nskips=$(printf '%s' "$skips" | grep -c . || true)
echo "rootless skips: $nskips"
if [ -n "$skips" ]; then printf '%s\n' "$skips" | sed 's/^SKIP (rootless): /  /'; fi
rm -f "$log" "$rl_log"
if [ "$rc" -ne 0 ] || [ "$rl_rc" -ne 0 ]; then
    echo "$passed passed, $failed failed"
    if [ "$rc" -ne 0 ]; then exit "$rc"; fi
    exit "$rl_rc"
fi
step "all tests passed"
echo "$passed passed, $failed failed"
