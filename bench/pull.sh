#!/bin/bash
# Image pull benchmark: `barge pull` (A) against `podman pull` (B) of the same
# generated image from a private local registry, cold store each time,
# alternating, in one invocation.
#
# Usage: bench/pull.sh [--quick] [-n ROUNDS] [--csv FILE]
#   --quick      2 rounds (smoke test)
#   -n ROUNDS    measured rounds, each one pull by each tool (default 5;
#                env PULL_ROUNDS)
#   --csv FILE   keep the raw per-pull numbers (ns)
# Environment:
#   BARGE        default: built here with `cargo build --release -p barge`
#                (CARGO_TARGET_DIR honoured) and taken from the target dir
#   PODMAN       default podman from PATH
#   PULL_IMAGE_CACHE  where the generated OCI layout is kept between runs
#                (default <repo>/build/pull-image); regenerated when
#                bench/pull-image.py or the busybox binary changes
#   STORE_DIR    put the stores in a temp dir under this directory instead
#                of on a fresh loop-mounted ext4 (see Method)
#
# Method (identical for both tools):
#   - Debian's docker-registry serves 127.0.0.1:<free port> from a temp dir
#     (plain HTTP; both tools get --tls-verify=false). The generated image
#     (bench/pull-image.py: 6 gzip layers, ~174 MiB compressed, ~237 MiB of
#     tar, busybox base + small-file tree + large random files + hardlinks,
#     a whiteout and an opaque dir) is pushed once with skopeo.
#   - Stores live on a fresh ext4 filesystem (default options, so with a
#     journal, as on a stock host) made for this run on a loop device with
#     direct I/O over a sparse file in /var/tmp; STORE_DIR=<dir> uses a
#     directory of an existing filesystem instead. A fresh fs keeps earlier
#     runs out of the figures: ext4 *without* a journal (this VM's root fs)
#     skips inodes freed in the last 5 s (300 s while their inode-table
#     block is dirty) when allocating, and deleting one store's ~9000
#     files right before the next pull made that pull 3x slower.
#   - Every pull goes into a brand-new store: barge --root <fresh dir>;
#     podman --root <fresh dir> --runroot <fresh dir> (the system podman
#     store is never touched). The stores are kept until the end (~0.7 GB
#     a round; nothing is deleted between samples) and go with the fs.
#     `sync` runs before every timed pull so one tool's writeback never
#     lands in the other's sample. Both tools unpack every layer during the
#     pull (podman into overlay diff dirs, barge into layers/<diffid>), so
#     both end with the image stored and ready to run.
#   - One sample is the wall time of the pull command (date +%s%N around
#     it). After each pull the image is checked to be there (barge: `images
#     -q` and six unpacked layers; podman: `image exists`).
#   - Rounds alternate the order: A then B on even rounds, B then A on odd
#     ones. The page cache is not dropped (the registry's blobs stay cached
#     for both); both stores start empty every time.
#   - Reported: median, min and max per tool in seconds and the ratio A/B of
#     the medians. Target: barge <= 0.5 x podman.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${PULL_ROUNDS:-5}
CSV=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) ROUNDS=2 ;;
        -n) ROUNDS=$2; shift ;;
        --csv) CSV=$2; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "pull.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "pull.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (podman's overlay store, device nodes in layers)"
for t in docker-registry skopeo python3 curl; do
    command -v "$t" >/dev/null || die "$t missing (scripts/install-deps.sh)"
done
PODMAN=${PODMAN:-$(command -v podman || true)}
[ -n "$PODMAN" ] || die "podman missing (scripts/install-deps.sh)"

if [ -z "${BARGE:-}" ]; then
    echo "building barge (cargo build --release -p barge)..."
    (cd "$REPO" && cargo build --release -q -p barge) || die "cargo build failed"
    BARGE=${CARGO_TARGET_DIR:-$REPO/target}/release/barge
fi
[ -x "$BARGE" ] || die "barge binary $BARGE is not executable"
# podman must be set up for this host (runc, cgroupfs, ulimits).
"$REPO/scripts/podman-setup.sh" >/dev/null 2>&1 || die "scripts/podman-setup.sh failed"

WORK=$(mktemp -d /var/tmp/barge-pullbench.XXXXXX)
REG_PID=""
LOOP=""
STORES=""
cleanup() {
    if [ -n "$REG_PID" ]; then
        kill "$REG_PID" 2>/dev/null || true
        wait "$REG_PID" 2>/dev/null || true
    fi
    # podman's overlay driver may leave its home bind-mounted: unmount
    # anything below WORK or STORES (deepest first, the store fs last).
    awk -v w="$WORK/" -v s="${STORES:-$WORK}/" 'index($5, w) == 1 || index($5, s) == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
    [ -n "$STORES" ] && rm -rf "$STORES"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------- the store fs
if [ -n "${STORE_DIR:-}" ]; then
    mkdir -p "$STORE_DIR"
    STORES=$(mktemp -d "$STORE_DIR/barge-pullbench.XXXXXX")
else
    command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing (e2fsprogs)"
    truncate -s $((2 + ROUNDS))G "$WORK/store.img"
    mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$WORK/store.img" ||
        die "mkfs.ext4 failed"
    LOOP=$(losetup -f --show --direct-io=on "$WORK/store.img") || die "losetup failed (no loop devices?)"
    mkdir -p "$WORK/stores"
    mount "$LOOP" "$WORK/stores" || die "mounting $LOOP failed"
    STORES=$WORK/stores
fi

# ------------------------------------------------------------- the image
CACHE=${PULL_IMAGE_CACHE:-$REPO/build/pull-image}
key=$(cat "$REPO/bench/pull-image.py" /bin/busybox | sha256sum | cut -c1-16)
LAYOUT=$CACHE/$key
if [ ! -f "$LAYOUT/index.json" ]; then
    echo "generating the image into $LAYOUT (once)..."
    rm -rf "$CACHE"
    mkdir -p "$LAYOUT.partial"
    python3 "$REPO/bench/pull-image.py" "$LAYOUT.partial" /bin/busybox > "$LAYOUT.partial/summary.txt"
    mv "$LAYOUT.partial" "$LAYOUT"
fi

# ------------------------------------------------------------- the registry
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
mkdir -p "$WORK/registry/data"
cat > "$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$WORK/registry/config.yml" </dev/null >"$WORK/registry/log" 2>&1 &
REG_PID=$!
for _ in $(seq 150); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/" 2>/dev/null && break
    kill -0 "$REG_PID" 2>/dev/null || die "docker-registry exited: $(cat "$WORK/registry/log")"
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/" || die "docker-registry did not come up on port $PORT"
REF=127.0.0.1:$PORT/bench/big:latest
skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:latest" "docker://$REF" ||
    die "skopeo copy to $REF failed"

# ------------------------------------------------------------- the pulls
raw=$WORK/raw.csv
: > "$raw"
now() { date +%s%N; }

pull_a() {
    local root=$STORES/a-$1 t0 t1 n
    mkdir -p "$root"
    sync
    t0=$(now)
    "$BARGE" --root "$root" pull -q --tls-verify=false "$REF" >/dev/null 2>"$WORK/err" ||
        die "barge pull failed: $(cat "$WORK/err")"
    t1=$(now)
    [ -n "$("$BARGE" --root "$root" images -q)" ] || die "barge: image missing after pull"
    n=$(find "$root/layers" -mindepth 1 -maxdepth 1 -type d | wc -l)
    [ "$n" = 6 ] || die "barge: $n unpacked layers after pull, want 6"
    echo "A,$1,$((t1 - t0))" >> "$raw"
}

pull_b() {
    local root=$STORES/b-$1 run=$STORES/b-run-$1 t0 t1
    mkdir -p "$root" "$run"
    local p=("$PODMAN" --root "$root" --runroot "$run")
    sync
    t0=$(now)
    "${p[@]}" pull -q --tls-verify=false "$REF" >/dev/null 2>"$WORK/err" ||
        die "podman pull failed: $(cat "$WORK/err")"
    t1=$(now)
    "${p[@]}" image exists "$REF" || die "podman: image missing after pull"
    echo "B,$1,$((t1 - t0))" >> "$raw"
}

version_a=$("$BARGE" --version 2>/dev/null | head -n1 || true)
version_b=$("$PODMAN" --version 2>/dev/null | head -n1 || true)
echo "pull bench: $ROUNDS rounds, one cold-store pull by each tool per round, alternating"
echo "  A: $BARGE ($version_a)"
echo "  B: $PODMAN ($version_b, storage driver $("$PODMAN" info --format '{{.Store.GraphDriverName}}' 2>/dev/null || echo '?'))"
echo "  image: $REF from $LAYOUT"
sed 's/^/    /' "$LAYOUT/summary.txt"
echo "  kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), stores on ${STORE_DIR:-a fresh ext4 (loop, direct I/O) of $((2 + ROUNDS)) GiB}"

for i in $(seq 0 $((ROUNDS - 1))); do
    if [ $((i % 2)) = 0 ]; then pull_a "$i"; pull_b "$i"; else pull_b "$i"; pull_a "$i"; fi
    awk -F, -v i="$i" '$2 == i { printf "  round %d %s %.2f s\n", i, $1, $3 / 1e9 }' "$raw"
done
if [ -n "$CSV" ]; then
    { echo "tool,round,ns"; cat "$raw"; } > "$CSV"
fi

# median (interpolated for even n), min, max of label $1, in s
stat() {
    awk -F, -v l="$1" '$1 == l { print $3 }' "$raw" | sort -n | awk '
        { v[NR] = $1 }
        END {
            n = NR; if (n == 0) { print "nan nan nan"; exit }
            med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "%.3f %.3f %.3f\n", med / 1e9, v[1] / 1e9, v[n] / 1e9
        }'
}
read -r a_med a_min a_max <<<"$(stat A)"
read -r b_med b_min b_max <<<"$(stat B)"
echo
printf '%-10s %10s %10s %10s\n' "tool (s)" median min max
printf '%-10s %10s %10s %10s\n' "A barge" "$a_med" "$a_min" "$a_max"
printf '%-10s %10s %10s %10s\n' "B podman" "$b_med" "$b_min" "$b_max"
ratio=$(awk -v a="$a_med" -v b="$b_med" 'BEGIN { printf "%.3f", a / b }')
echo
echo "ratio A/B (median): $ratio   (target for barge vs podman: <= 0.5)"
