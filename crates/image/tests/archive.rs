//! docker-archive export/import round trips, archive detection (plain,
//! gzip, zstd), one-layer images built with `commit_image` (with config
//! changes, on top of a base), and hostile docker-archives: each rejected
//! with a clear error and the store left exactly as it was.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use barge_image::commit::{commit_image, CommitOptions};
use barge_image::docker_archive::{self, ArchiveFile, ArchiveKind, ExportImage, ImportOptions};
use barge_image::oci_layout;
use barge_image::UnpackOptions;
use barge_image::{Digest, Store};
use common::{listing, tar_layer, E};
use serde_json::{json, Value};

fn config_of(store: &Store, id: &Digest) -> Value {
    serde_json::from_slice(&store.read_blob(id, 1 << 20).unwrap()).unwrap()
}

/// A store with a two-layer image `localhost/two:1` (also `localhost/two:2`).
fn two_layer_store(dir: &Path) -> (Store, Digest) {
    let store = Store::open(dir.join("store")).unwrap();
    commit_image(
        &store,
        None,
        &tar_layer(&[
            E::Dir("etc/", 0o755),
            E::File("etc/os", b"barge\n", 0o644),
            E::Symlink("etc/link", "os"),
        ])[..],
        &CommitOptions {
            changes: vec!["CMD [\"/bin/sh\"]".into()],
            names: vec!["localhost/base:1".into()],
            ..CommitOptions::default()
        },
    )
    .unwrap();
    let top = commit_image(
        &store,
        Some("localhost/base:1"),
        &common::gzip(&tar_layer(&[
            E::Dir("etc/", 0o755),
            E::File("etc/top", b"top\n", 0o600),
            E::File("etc/.wh.os", b"", 0o644),
        ]))[..],
        &CommitOptions {
            changes: vec!["ENV A=1".into(), "LABEL x=y".into()],
            message: Some("second".into()),
            author: Some("tester".into()),
            created_by: Some("barge commit".into()),
            names: vec!["localhost/two:1".into(), "localhost/two:2".into()],
            ..CommitOptions::default()
        },
    )
    .unwrap();
    (store, top.image.id)
}

#[test]
fn commit_on_base_writes_config_history_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, id) = two_layer_store(tmp.path());
    let img = store.resolve("localhost/two:2").unwrap();
    assert_eq!(img.id, id);
    assert_eq!(img.layers.len(), 2);
    // Layers are stored uncompressed: blob digest = DiffID.
    assert_eq!(img.layers, img.diff_ids);
    let c = config_of(&store, &id);
    assert_eq!(c["config"]["Cmd"], json!(["/bin/sh"]));
    assert_eq!(c["config"]["Env"], json!(["A=1"]));
    assert_eq!(c["config"]["Labels"], json!({"x": "y"}));
    assert_eq!(c["author"], json!("tester"));
    let h = c["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert!(h[0]["created_by"]
        .as_str()
        .unwrap()
        .starts_with("/bin/sh -c #(nop) ADD file:"));
    assert_eq!(h[1]["created_by"], json!("barge commit"));
    assert_eq!(h[1]["comment"], json!("second"));
    assert_eq!(h[1]["author"], json!("tester"));
    assert_eq!(
        c["rootfs"]["diff_ids"],
        json!(img
            .diff_ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>())
    );
    let m: Value =
        serde_json::from_slice(&store.read_blob(&img.manifest, 1 << 20).unwrap()).unwrap();
    assert_eq!(m["config"]["digest"], json!(id.to_string()));
    assert_eq!(
        m["layers"][1]["mediaType"],
        json!("application/vnd.oci.image.layer.v1.tar")
    );
    // The layers are unpacked; the top one has the whiteout.
    let dirs = oci_layout::snapshot(&store, "localhost/two:1", &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(dirs[0].join("etc/top")).unwrap(), b"top\n");
    assert_eq!(fs::read(dirs[1].join("etc/os")).unwrap(), b"barge\n");
    assert!(store.check().unwrap().is_healthy());
}

#[test]
fn commit_failure_leaves_store_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = two_layer_store(tmp.path());
    let before = listing(store.root());
    let images = fs::read(store.root().join("images.json")).unwrap();
    // A hostile tarball: the unpacker refuses it after the blob was written.
    let bad = tar_layer(&[E::File("../escape", b"x", 0o644)]);
    let err = commit_image(&store, None, &bad[..], &CommitOptions::default()).unwrap_err();
    assert!(err.to_string().contains("escapes the layer root"), "{err}");
    // An unknown instruction is refused before anything is written.
    let err = commit_image(
        &store,
        None,
        &tar_layer(&[E::File("ok", b"x", 0o644)])[..],
        &CommitOptions {
            changes: vec!["RUN rm -rf /".into()],
            ..CommitOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown instruction RUN"), "{err}");
    // A missing base.
    let err = commit_image(&store, Some("nope"), &b""[..], &CommitOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(listing(store.root()), before);
    assert_eq!(fs::read(store.root().join("images.json")).unwrap(), images);
}

fn export_to(store: &Store, images: &[ExportImage], path: &Path) {
    let f = fs::File::create(path).unwrap();
    let mut f = docker_archive::export(store, images, f).unwrap();
    f.flush().unwrap();
}

fn tar_names(path: &Path) -> Vec<String> {
    let mut ar = tar::Archive::new(fs::File::open(path).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn docker_archive_round_trip_plain_gzip_zstd() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, id) = two_layer_store(tmp.path());
    let img = store.resolve(&id.to_string()).unwrap();
    let archive = tmp.path().join("da.tar");
    export_to(
        &store,
        &[ExportImage {
            reference: "localhost/two:1".into(),
            tags: vec!["localhost/two:1".into(), "localhost/two:2".into()],
        }],
        &archive,
    );
    let names = tar_names(&archive);
    for want in [
        format!("{}.tar", img.diff_ids[0].hex()),
        format!("{}.tar", img.diff_ids[1].hex()),
        format!("{}.json", id.hex()),
        "manifest.json".into(),
        "repositories".into(),
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // Deterministic: the same export twice gives the same bytes.
    let again = tmp.path().join("again.tar");
    export_to(
        &store,
        &[ExportImage {
            reference: "localhost/two:1".into(),
            tags: vec!["localhost/two:1".into(), "localhost/two:2".into()],
        }],
        &again,
    );
    assert_eq!(fs::read(&archive).unwrap(), fs::read(&again).unwrap());

    let raw = fs::read(&archive).unwrap();
    let gz = tmp.path().join("da.tar.gz");
    fs::write(&gz, common::gzip(&raw)).unwrap();
    let zs = tmp.path().join("da.tar.zst");
    fs::write(&zs, common::zstd(&raw)).unwrap();
    for (n, input) in [&archive, &gz, &zs].into_iter().enumerate() {
        let dest = Store::open(tmp.path().join(format!("dest{n}"))).unwrap();
        let file = ArchiveFile::open(&dest, input).unwrap();
        assert_eq!(file.kind(), ArchiveKind::DockerArchive);
        let rep = docker_archive::import(&dest, file.path(), &ImportOptions::default()).unwrap();
        drop(file);
        assert_eq!(rep.images.len(), 1);
        let got = &rep.images[0];
        assert_eq!(got.image.id, id);
        assert_eq!(got.image.diff_ids, img.diff_ids);
        assert_eq!(got.names, ["localhost/two:1", "localhost/two:2"]);
        assert_eq!(dest.resolve("localhost/two:2").unwrap().id, id);
        let dirs = oci_layout::snapshot(&dest, &id.to_string(), &UnpackOptions::default()).unwrap();
        assert_eq!(fs::read(dirs[0].join("etc/top")).unwrap(), b"top\n");
        // Legacy v1 files are not kept as blobs; the temp copy is gone.
        let health = dest.check().unwrap();
        assert!(health.is_healthy(), "{health:?}");
        assert_eq!(dest.gc().unwrap().blobs, Vec::<Digest>::new());
        assert_eq!(fs::read_dir(dest.temp_dir()).unwrap().count(), 0);
        // Export again from the new store: identical archive.
        let back = tmp.path().join(format!("back{n}.tar"));
        export_to(
            &dest,
            &[ExportImage {
                reference: id.to_string(),
                tags: vec!["localhost/two:1".into(), "localhost/two:2".into()],
            }],
            &back,
        );
        assert_eq!(fs::read(&back).unwrap(), raw);
    }

    // An OCI archive is told apart.
    let oci = tmp.path().join("oci.tar");
    oci_layout::export_tar(
        &store,
        &id.to_string(),
        fs::File::create(&oci).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(
        ArchiveFile::open(&store, &oci).unwrap().kind(),
        ArchiveKind::OciArchive
    );
    let junk = tmp.path().join("junk");
    fs::write(&junk, b"hello").unwrap();
    let err = ArchiveFile::open(&store, &junk).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a docker-archive or OCI archive"),
        "{err}"
    );
}

#[test]
fn multi_image_archive_and_docker_style_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, id) = two_layer_store(tmp.path());
    let base = store.resolve("localhost/base:1").unwrap();
    let archive = tmp.path().join("multi.tar");
    export_to(
        &store,
        &[
            ExportImage {
                reference: "localhost/two:1".into(),
                tags: vec!["localhost/two:1".into()],
            },
            ExportImage {
                reference: "localhost/base:1".into(),
                tags: vec![],
            },
        ],
        &archive,
    );
    let dest = Store::open(tmp.path().join("dest")).unwrap();
    let rep = docker_archive::import(&dest, &archive, &ImportOptions::default()).unwrap();
    let ids: Vec<_> = rep.images.iter().map(|i| i.image.id.clone()).collect();
    assert_eq!(ids, [id, base.id.clone()]);
    assert!(rep.images[1].names.is_empty());

    // Docker < 25 style: <v1>/layer.tar regular files, short names, a
    // hardlink, normalized by the caller's function.
    let layer = tar_layer(&[E::File("hello", b"hi\n", 0o644)]);
    let diff_id = Digest::of(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!([{
        "Config": "./cfg.json",
        "RepoTags": ["busybox:foo", "busybox:foo"],
        "Layers": ["abc/layer.tar"],
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("abc/real.tar", &layer[..]),
        ("cfg.json", &config[..]),
        ("manifest.json", &manifest[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "abc/layer.tar", "abc/real.tar")
        .unwrap();
    let old = tmp.path().join("old.tar");
    fs::write(&old, b.into_inner().unwrap()).unwrap();
    let opts = ImportOptions {
        normalize_name: |n| Ok(format!("localhost/{n}")),
        ..ImportOptions::default()
    };
    let rep = docker_archive::import(&dest, &old, &opts).unwrap();
    assert_eq!(rep.images[0].names, ["localhost/busybox:foo"]);
    assert_eq!(rep.images[0].image.id, Digest::of(&config));
    assert!(dest.check().unwrap().is_healthy());
}

/// Build a docker-archive from (name, data, symlink target) entries.
fn archive_of(entries: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        if let Some(t) = link {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, name, t).unwrap();
        } else {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_docker_archives_leave_store_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = two_layer_store(tmp.path());
    store.gc().unwrap();
    let layer = tar_layer(&[E::File("f", b"data", 0o644)]);
    let other = tar_layer(&[E::File("g", b"other", 0o644)]);
    let good_diff = Digest::of(&layer).to_string();
    let config = |diffs: &[&str]| {
        serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diffs},
        }))
        .unwrap()
    };
    let cfg = config(&[&good_diff]);
    let manifest = |c: &str, layers: &[&str]| {
        serde_json::to_vec(&json!([{"Config": c, "RepoTags": ["x:1"], "Layers": layers}])).unwrap()
    };
    let evil_layer = tar_layer(&[E::Symlink("l", "/"), E::File("l/etc/pwned", b"x", 0o644)]);
    let evil_cfg = config(&[&Digest::of(&evil_layer).to_string()]);
    let gz_other = common::gzip(&other);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot layer",
            archive_of(&[
                ("c.json", &cfg, None),
                ("manifest.json", &manifest("c.json", &["../l.tar"]), None),
            ]),
            "layer path \"../l.tar\" escapes the archive",
        ),
        (
            "absolute config",
            archive_of(&[("manifest.json", &manifest("/etc/passwd", &[]), None)]),
            "config path \"/etc/passwd\" escapes the archive",
        ),
        (
            "missing layer",
            archive_of(&[
                ("c.json", &cfg, None),
                ("manifest.json", &manifest("c.json", &["gone.tar"]), None),
            ]),
            "layer \"gone.tar\" is not in the archive",
        ),
        (
            "missing config",
            archive_of(&[
                ("l.tar", &layer, None),
                ("manifest.json", &manifest("c.json", &["l.tar"]), None),
            ]),
            "config \"c.json\" is not in the archive",
        ),
        (
            "diffid mismatch (plain)",
            archive_of(&[
                ("l.tar", &other, None),
                ("c.json", &cfg, None),
                ("manifest.json", &manifest("c.json", &["l.tar"]), None),
            ]),
            "content is sha256:",
        ),
        (
            "diffid mismatch (gzip)",
            archive_of(&[
                ("l.tar", &gz_other, None),
                ("c.json", &cfg, None),
                ("manifest.json", &manifest("c.json", &["l.tar"]), None),
            ]),
            "but the config's DiffID is",
        ),
        (
            "symlink escape",
            archive_of(&[
                ("c.json", &cfg, None),
                ("d/l.tar", b"", Some("../../outside.tar")),
                ("manifest.json", &manifest("c.json", &["d/l.tar"]), None),
            ]),
            "symlink path \"d/l.tar -> ../../outside.tar\" escapes",
        ),
        (
            "symlink loop",
            archive_of(&[
                ("c.json", &cfg, None),
                ("a", b"", Some("b")),
                ("b", b"", Some("a")),
                ("manifest.json", &manifest("c.json", &["a"]), None),
            ]),
            "layer \"a\" is not in the archive",
        ),
        (
            "layer count",
            archive_of(&[
                ("l.tar", &layer, None),
                ("c.json", &cfg, None),
                (
                    "manifest.json",
                    &manifest("c.json", &["l.tar", "l.tar"]),
                    None,
                ),
            ]),
            "lists 1 diff_ids but manifest.json lists 2 layers",
        ),
        (
            "bad manifest json",
            archive_of(&[("manifest.json", b"{not json", None)]),
            "docker-archive manifest.json:",
        ),
        (
            "empty manifest",
            archive_of(&[("manifest.json", b"[]", None)]),
            "lists no images",
        ),
        (
            "bad config json",
            archive_of(&[
                ("c.json", b"[1,2", None),
                ("manifest.json", &manifest("c.json", &[]), None),
            ]),
            "docker-archive config \"c.json\"",
        ),
        (
            "hostile layer content",
            archive_of(&[
                ("l.tar", &evil_layer, None),
                ("c.json", &evil_cfg, None),
                ("manifest.json", &manifest("c.json", &["l.tar"]), None),
            ]),
            "is a symlink; refusing to write through it",
        ),
    ];
    for (name, data, want) in cases {
        let path = tmp.path().join("hostile.tar");
        fs::write(&path, &data).unwrap();
        let before = listing(store.root());
        let images = fs::read(store.root().join("images.json")).unwrap();
        let err = docker_archive::import(&store, &path, &ImportOptions::default()).expect_err(name);
        let mut msg = err.to_string();
        let mut src = std::error::Error::source(&err);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        assert!(msg.contains(want), "{name}: {msg:?} lacks {want:?}");
        assert_eq!(listing(store.root()), before, "{name}: store changed");
        assert_eq!(fs::read(store.root().join("images.json")).unwrap(), images);
        assert!(!tmp.path().join("etc/pwned").exists());
    }
    assert!(store.check().unwrap().is_healthy());
}
