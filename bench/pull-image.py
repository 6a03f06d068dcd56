#!/usr/bin/env python3
"""Generate the image bench/pull.sh pulls, as an OCI layout directory.

Usage: bench/pull-image.py OUTDIR [BUSYBOX]

Deterministic: the same generator and the same busybox binary give the same
bytes (fixed seed, mtimes, owners, entry order and gzip headers). Six gzip
layers, ~130 MB compressed, ~190 MB uncompressed, content chosen to look like
a real image rather than to flatter any unpacker:

  1 base    busybox-static, its applet symlinks, /etc files
  2 libs    40 "shared objects" of 0.5-3 MiB: half random, half text-like blocks
  3 tree    8000 small text files (200 B - 8 KiB) in a deep node_modules-like tree
  4 data    3 files of 24 MiB random bytes (do not compress)
  5 assets  300 files of 50-300 KiB, mixed random/text, plus hardlinks
  6 app     a few files, a symlink, a whiteout of a layer-3 file, an opaque dir

Prints the manifest digest and the layer sizes.
"""

import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

SEED = 20261201
MTIME = 1700000000
MIB = 1024 * 1024


class Tee:
    """File-like writer: sha256 of everything written, forwarded to `out`."""

    def __init__(self, out):
        self.out = out
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        if self.out is not None:
            self.out.write(b)
        return len(b)

    def flush(self):
        pass


class Layer:
    """A gzip layer written straight into the layout's blob dir."""

    def __init__(self, blobs):
        self.blobs = blobs
        self.tmp = os.path.join(blobs, ".layer.partial")
        self.out = open(self.tmp, "wb")
        self.compressed = Tee(self.out)
        self.gz = gzip.GzipFile(fileobj=self.compressed, mode="wb", compresslevel=6, mtime=0, filename="")
        self.plain = Tee(self.gz)
        self.tar = tarfile.open(fileobj=self.plain, mode="w|", format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode, size=0):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.size = size
        ti.mtime = MTIME
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    def dir(self, name, mode=0o755):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name, data, mode=0o644):
        self.tar.addfile(self._info(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)

    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE, 0o644)
        ti.linkname = target
        self.tar.addfile(ti)

    def close(self):
        self.tar.close()
        self.gz.close()
        self.out.close()
        digest = self.compressed.h.hexdigest()
        os.replace(self.tmp, os.path.join(self.blobs, digest))
        return {
            "digest": "sha256:" + digest,
            "size": self.compressed.n,
            "diff_id": "sha256:" + self.plain.h.hexdigest(),
            "plain": self.plain.n,
        }


def words(rng):
    syl = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "za", "bre", "cho", "dra",
           "fle", "gno", "pri", "sto", "tra", "qui", "wha", "er", "an", "on", "is", "ul"]
    return ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(3000)]


def text(rng, vocab, n):
    """~n bytes of text-like data (compresses ~3x, like source or docs)."""
    out = []
    size = 0
    while size < n:
        line = " ".join(rng.choices(vocab, k=rng.randint(4, 14)))
        if rng.random() < 0.2:
            line = "    " + line + " {" + str(rng.randint(0, 99999)) + "};"
        out.append(line)
        size += len(line) + 1
    return ("\n".join(out) + "\n").encode()[:n]


def mixed(rng, vocab, n):
    """Binary-like data: 4 KiB blocks, half random, half text (compresses ~1.5x)."""
    out = bytearray()
    while len(out) < n:
        if rng.random() < 0.5:
            out += rng.randbytes(4096)
        else:
            out += text(rng, vocab, 4096)
    return bytes(out[:n])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    busybox = sys.argv[2] if len(sys.argv) > 2 else "/bin/busybox"
    blobs = os.path.join(outdir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    rng = random.Random(SEED)
    vocab = words(rng)
    layers = []

    # 1 base
    l = Layer(blobs)
    for d in ["bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "tmp", "usr",
              "usr/bin", "usr/sbin", "var", "var/log"]:
        l.dir(d, 0o1777 if d == "tmp" else 0o755)
    with open(busybox, "rb") as f:
        l.file("bin/busybox", f.read(), 0o755)
    applets = os.popen(f"{busybox} --list-full").read().split()
    for a in sorted(set(applets)):
        if a != "bin/busybox":
            l.symlink(a, "/bin/busybox")
    l.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    l.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    l.file("etc/hostname", b"bench\n")
    layers.append(("base", l.close()))

    # 2 libs
    l = Layer(blobs)
    l.dir("usr/lib")
    l.dir("usr/lib/bench")
    for i in range(40):
        l.file(f"usr/lib/bench/libbench{i:02d}.so.1", mixed(rng, vocab, rng.randint(MIB // 2, 3 * MIB)), 0o755)
    layers.append(("libs", l.close()))

    # 3 tree of small files
    l = Layer(blobs)
    l.dir("app")
    l.dir("app/node_modules")
    made = set()
    for i in range(8000):
        pkg = f"app/node_modules/{vocab[i % 400]}{i % 400}"
        sub = f"{pkg}/{['lib', 'src', 'dist', 'test'][i % 4]}"
        for d in (pkg, sub):
            if d not in made:
                l.dir(d)
                made.add(d)
        l.file(f"{sub}/{vocab[(i * 7) % len(vocab)]}{i}.js", text(rng, vocab, rng.randint(200, 8192)))
    layers.append(("tree", l.close()))

    # 4 large random files
    l = Layer(blobs)
    l.dir("data")
    for i in range(3):
        l.file(f"data/blob{i}.bin", rng.randbytes(24 * MIB))
    layers.append(("data", l.close()))

    # 5 assets with hardlinks
    l = Layer(blobs)
    l.dir("usr/share")
    l.dir("usr/share/assets")
    for i in range(300):
        l.file(f"usr/share/assets/a{i:03d}.dat", mixed(rng, vocab, rng.randint(50 * 1024, 300 * 1024)))
        if i % 30 == 0:
            l.hardlink(f"usr/share/assets/link{i:03d}.dat", f"usr/share/assets/a{i:03d}.dat")
    layers.append(("assets", l.close()))

    # 6 app: config, a symlink, a whiteout, an opaque dir
    l = Layer(blobs)
    l.dir("app")
    l.file("app/config.json", json.dumps({"name": "bench", "workers": 4}).encode())
    l.file("app/run.sh", b"#!/bin/sh\nexec /bin/sh -c 'echo bench'\n", 0o755)
    l.symlink("app/current", "node_modules")
    first = f"{vocab[0]}0"
    l.dir("app/node_modules")
    l.file(f"app/node_modules/.wh.{first}", b"")
    l.dir("var/log")
    l.file("var/log/.wh..wh..opq", b"")
    l.file("var/log/app.log", text(rng, vocab, 4096))
    layers.append(("app", l.close()))

    config = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/app",
        },
        "rootfs": {"type": "layers", "diff_ids": [x["diff_id"] for _, x in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"bench layer {n}"} for n, _ in layers],
    }

    def put(obj):
        data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return "sha256:" + d, len(data)

    cdigest, csize = put(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": x["digest"],
                    "size": x["size"]} for _, x in layers],
    }
    mdigest, msize = put(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
                       "size": msize, "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    }
    with open(os.path.join(outdir, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(outdir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    total = sum(x["size"] for _, x in layers)
    plain = sum(x["plain"] for _, x in layers)
    print(f"manifest {mdigest}")
    for n, x in layers:
        print(f"  layer {n:7s} {x['size'] / MIB:7.1f} MiB gzip  {x['plain'] / MIB:7.1f} MiB tar  {x['digest']}")
    print(f"  total   {total / MIB:7.1f} MiB gzip  {plain / MIB:7.1f} MiB tar, {len(layers)} layers")


if __name__ == "__main__":
    main()
