//! Hostile images: each is rejected with an error naming the problem, and
//! the store is left exactly as it was.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use barge_image::layer::{DevicePolicy, UnpackOptions};
use barge_image::oci_layout::{self, ImportOptions, Platform};
use barge_image::Store;
use common::{gz, listing, plain, tar_layer, write_layout, write_layout_with, zst, Layer, E};

/// A store holding one good image (so lock files, images.json, blobs and
/// layers all exist before the hostile import).
fn seeded_store(tmp: &Path) -> Store {
    let good = tmp.join("good");
    write_layout(
        &good,
        &[plain(tar_layer(&[E::File("ok", b"ok", 0o644)]))],
        None,
    );
    let store = Store::open(tmp.join("store")).unwrap();
    let opts = ImportOptions {
        names: vec!["good:latest".into()],
        ..ImportOptions::default()
    };
    oci_layout::import(&store, &good, &opts).unwrap();
    store
}

/// Import `layout` (prepared by `prepare`) and expect an error containing
/// every string in `needles`; the store listing must not change.
fn expect_rejected(
    name: &str,
    prepare: impl FnOnce(&Path),
    opts: &ImportOptions,
    needles: &[&str],
) {
    let tmp = tempfile::tempdir().unwrap();
    let store = seeded_store(tmp.path());
    let layout = tmp.path().join("hostile");
    prepare(&layout);
    let before = listing(store.root());
    let images_before = fs::read(store.root().join("images.json")).unwrap();
    let err = oci_layout::import(&store, &layout, opts).expect_err(name);
    let msg = error_chain(&err);
    for n in needles {
        assert!(
            msg.contains(n),
            "{name}: error {msg:?} does not mention {n:?}"
        );
    }
    assert_eq!(listing(store.root()), before, "{name}: store changed");
    assert_eq!(
        fs::read(store.root().join("images.json")).unwrap(),
        images_before
    );
    let health = store.check().unwrap();
    assert!(health.is_healthy(), "{name}: {health:?}");
    // The host outside the layer dirs is untouched.
    assert!(
        !tmp.path().join("escaped").exists(),
        "{name}: wrote outside"
    );
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

fn layer_case(name: &str, layers: Vec<Layer>, needles: &[&str]) {
    expect_rejected(
        name,
        |dir| {
            write_layout(dir, &layers, None);
        },
        &ImportOptions::default(),
        needles,
    );
}

#[test]
fn dotdot_escape() {
    layer_case(
        "dotdot",
        vec![plain(tar_layer(&[E::File(
            "../../../escaped",
            b"x",
            0o644,
        )]))],
        &["../../../escaped", "escapes the layer root"],
    );
    layer_case(
        "dotdot-inner",
        vec![gz(tar_layer(&[
            E::Dir("a/", 0o755),
            E::File("a/../../escaped", b"x", 0o644),
        ]))],
        &["a/../../escaped", "escapes the layer root"],
    );
}

#[test]
fn absolute_path() {
    layer_case(
        "absolute",
        vec![plain(tar_layer(&[E::File("/tmp/escaped", b"x", 0o644)]))],
        &["/tmp/escaped", "absolute path"],
    );
}

#[test]
fn write_through_symlink() {
    layer_case(
        "symlink-etc",
        vec![plain(tar_layer(&[
            E::Symlink("a", "/etc"),
            E::File("a/passwd", b"root::0:0::/:/bin/sh\n", 0o644),
        ]))],
        &["a/passwd", "parent \"a\" is a symlink"],
    );
    // Directory symlink chains climbing with "..".
    layer_case(
        "symlink-dotdot-chain",
        vec![zst(tar_layer(&[
            E::Dir("d/", 0o755),
            E::Symlink("d/up", ".."),
            E::Symlink("d/up2", "up/../.."),
            E::File("d/up2/escaped", b"x", 0o644),
        ]))],
        &["d/up2/escaped", "is a symlink"],
    );
    // A directory entry through a symlink, and a whiteout through one.
    layer_case(
        "symlink-dir",
        vec![plain(tar_layer(&[
            E::Symlink("s", "/"),
            E::Dir("s/tmp/", 0o755),
        ]))],
        &["s/tmp/", "is a symlink"],
    );
    layer_case(
        "symlink-whiteout",
        vec![plain(tar_layer(&[
            E::Symlink("s", "/etc"),
            E::File("s/.wh.passwd", b"", 0o644),
        ]))],
        &["s/.wh.passwd", "is a symlink"],
    );
}

/// The unpacker reuses the last parent directory it opened; an entry that
/// replaces that directory (or an ancestor) must make the next entry walk
/// the path again and meet what is there now.
#[test]
fn replaced_parent_is_not_reused() {
    // "a" is opened for its opaque marker (so it stays empty), replaced by
    // a symlink, then written through.
    layer_case(
        "dir-replaced-by-symlink",
        vec![plain(tar_layer(&[
            E::Dir("a/", 0o755),
            E::File("a/.wh..wh..opq", b"", 0o644),
            E::Symlink("a", "/tmp"),
            E::File("a/evil", b"x", 0o644),
        ]))],
        &["a/evil", "parent \"a\" is a symlink"],
    );
    // "d/e" is whited out by its parent's whiteout entry, then written into.
    layer_case(
        "dir-whited-out",
        vec![plain(tar_layer(&[
            E::Dir("d/", 0o755),
            E::Dir("d/e/", 0o755),
            E::File("d/e/.wh..wh..opq", b"", 0o644),
            E::File("d/.wh.e", b"", 0o644),
            E::File("d/e/f", b"x", 0o644),
        ]))],
        &["d/e/f", "is not a directory"],
    );
}

#[test]
fn hardlink_outside() {
    layer_case(
        "hardlink-dotdot",
        vec![plain(tar_layer(&[E::Hardlink("pw", "../../etc/passwd")]))],
        &["pw", "../../etc/passwd", "escapes the layer root"],
    );
    layer_case(
        "hardlink-absolute",
        vec![plain(tar_layer(&[E::Hardlink("pw", "/etc/passwd")]))],
        &["pw", "absolute path"],
    );
    layer_case(
        "hardlink-through-symlink",
        vec![plain(tar_layer(&[
            E::Symlink("s", "/etc"),
            E::Hardlink("pw", "s/passwd"),
        ]))],
        &["pw", "is a symlink"],
    );
    layer_case(
        "hardlink-missing",
        vec![plain(tar_layer(&[E::Hardlink("pw", "nothing")]))],
        &["pw", "\"nothing\" does not exist in this layer"],
    );
}

#[test]
fn device_not_allowed() {
    let layers = vec![plain(tar_layer(&[E::Char("kmem", 1, 2)]))];
    expect_rejected(
        "device",
        |dir| {
            write_layout(dir, &layers, None);
        },
        &ImportOptions {
            unpack_options: UnpackOptions {
                devices: DevicePolicy::Reject,
                ..UnpackOptions::for_current_user()
            },
            ..ImportOptions::default()
        },
        &["kmem", "device nodes are not allowed"],
    );
}

#[test]
fn blob_digest_mismatch() {
    let tarball = tar_layer(&[E::File("f", b"original", 0o644)]);
    let mut name = String::new();
    expect_rejected(
        "digest-mismatch",
        |dir| {
            let m = write_layout(dir, &[plain(tarball.clone())], None);
            let _ = m;
            // Replace the layer blob's content (same size) keeping its name.
            let blob = dir
                .join("blobs/sha256")
                .join(barge_image::Digest::of(&tarball).hex());
            let mut data = fs::read(&blob).unwrap();
            let pos = data.windows(8).position(|w| w == b"original").unwrap();
            data[pos..pos + 8].copy_from_slice(b"tampered");
            fs::write(&blob, &data).unwrap();
            name = barge_image::Digest::of(&data).to_string();
        },
        &ImportOptions::default(),
        &[
            "digest mismatch",
            &barge_image::Digest::of(&tarball).to_string(),
        ],
    );
    assert!(name.starts_with("sha256:"));
}

#[test]
fn truncated_gzip() {
    let full = tar_layer(&[
        E::File("big", &vec![7u8; 200_000], 0o644),
        E::File("after", b"a", 0o644),
    ]);
    let gzipped = common::gzip(&full);
    let cut = gzipped[..gzipped.len() / 2].to_vec();
    layer_case(
        "truncated-gzip",
        vec![Layer {
            blob: cut,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            tar: full,
        }],
        &["truncated or corrupt (gzip)"],
    );
    // Missing just the gzip trailer (CRC and size) is caught too.
    let full = tar_layer(&[E::File("f", b"data", 0o644)]);
    let gzipped = common::gzip(&full);
    layer_case(
        "gzip-no-trailer",
        vec![Layer {
            blob: gzipped[..gzipped.len() - 8].to_vec(),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            tar: full,
        }],
        &["truncated or corrupt (gzip)"],
    );
}

#[test]
fn corrupt_zstd() {
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i % 251) as u8 ^ (i / 7) as u8)
        .collect();
    let full = tar_layer(&[E::File("big", &data, 0o644)]);
    let mut z = common::zstd(&full);
    let mid = z.len() / 2;
    for b in &mut z[mid..mid + 64] {
        *b ^= 0x5a;
    }
    layer_case(
        "corrupt-zstd",
        vec![Layer {
            blob: z,
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
            tar: full.clone(),
        }],
        &["truncated or corrupt (zstd)"],
    );
    let z = common::zstd(&full);
    layer_case(
        "truncated-zstd",
        vec![Layer {
            blob: z[..z.len() - 10].to_vec(),
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
            tar: full,
        }],
        &["truncated or corrupt (zstd)"],
    );
}

#[test]
fn diff_id_mismatch() {
    let real = tar_layer(&[E::File("f", b"one", 0o644)]);
    let claimed = tar_layer(&[E::File("f", b"two", 0o644)]);
    layer_case(
        "diffid",
        vec![Layer {
            blob: common::gzip(&real),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            tar: claimed,
        }],
        &["DiffID mismatch"],
    );
}

#[test]
fn manifest_points_to_missing_blob() {
    let tarball = tar_layer(&[E::File("f", b"x", 0o644)]);
    let digest = barge_image::Digest::of(&tarball);
    expect_rejected(
        "missing-blob",
        |dir| {
            write_layout(dir, &[plain(tarball.clone())], None);
            fs::remove_file(dir.join("blobs/sha256").join(digest.hex())).unwrap();
        },
        &ImportOptions::default(),
        &[&digest.to_string(), "(layer) is missing"],
    );
}

#[test]
fn oversized_manifest() {
    let mut ann = BTreeMap::new();
    ann.insert("pad".to_string(), "x".repeat(4 * 1024 * 1024 + 10));
    expect_rejected(
        "oversized-manifest",
        |dir| {
            write_layout_with(
                dir,
                &[plain(tar_layer(&[E::File("f", b"x", 0o644)]))],
                None,
                ann,
            );
        },
        &ImportOptions::default(),
        &["manifest", "over the 4194304-byte limit"],
    );
}

#[test]
fn no_matching_platform() {
    expect_rejected(
        "platform",
        |dir| {
            write_layout(
                dir,
                &[plain(tar_layer(&[E::File("f", b"x", 0o644)]))],
                Some(Platform {
                    architecture: "s390x".into(),
                    os: "linux".into(),
                    variant: None,
                    os_version: None,
                }),
            );
        },
        &ImportOptions::default(),
        &[
            "no image in the layout matches platform linux/amd64",
            "linux/s390x",
        ],
    );
}

/// A hostile layout tarball: blobs streamed into the store before the
/// failure are removed again.
#[test]
fn hostile_tarball_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let store = seeded_store(tmp.path());
    let layout = tmp.path().join("layout");
    write_layout(
        &layout,
        &[gz(tar_layer(&[E::File("../escaped", b"x", 0o644)]))],
        None,
    );
    let tarball = tmp.path().join("layout.tar");
    let mut b = tar::Builder::new(fs::File::create(&tarball).unwrap());
    b.append_dir_all(".", &layout).unwrap();
    b.finish().unwrap();
    drop(b);
    let before = listing(store.root());
    let err = oci_layout::import(&store, &tarball, &ImportOptions::default()).unwrap_err();
    assert!(
        error_chain(&err).contains("escapes the layer root"),
        "{err}"
    );
    assert_eq!(listing(store.root()), before);
}
