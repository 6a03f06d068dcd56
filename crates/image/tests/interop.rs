//! Interoperability with skopeo (from Debian, no network): skopeo reads
//! what barge exports, and barge imports what skopeo writes.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use barge_image::oci_layout::{self, ImportOptions};
use barge_image::Store;
use common::{gz, plain, tar_layer, write_layout, zst, E};

#[test]
fn skopeo_round_trip() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skopeo not installed; skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(
        &layout,
        &[
            plain(tar_layer(&[
                E::Dir("etc/", 0o755),
                E::File("etc/a", b"a", 0o644),
            ])),
            gz(tar_layer(&[
                E::File("etc/.wh.a", b"", 0o644),
                E::File("b", b"b", 0o644),
            ])),
            zst(tar_layer(&[E::Symlink("c", "b")])),
        ],
        None,
    );
    let store = Store::open(tmp.path().join("store")).unwrap();
    let ours = oci_layout::import(
        &store,
        &layout,
        &ImportOptions {
            names: vec!["localhost/interop:1".into()],
            ..ImportOptions::default()
        },
    )
    .unwrap();
    let archive = tmp.path().join("ours.tar");
    oci_layout::export_tar(
        &store,
        "localhost/interop:1",
        std::fs::File::create(&archive).unwrap(),
        Some("1"),
    )
    .unwrap();
    let copied = tmp.path().join("copied");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}:1", archive.display()))
        .arg(format!("oci:{}:copied", copied.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo could not read barge's oci-archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store2 = Store::open(tmp.path().join("store2")).unwrap();
    let theirs = oci_layout::import(
        &store2,
        &copied,
        &ImportOptions {
            ref_name: Some("copied".into()),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(theirs.image.diff_ids, ours.image.diff_ids);
    assert_eq!(theirs.image.id, ours.image.id);
    assert!(store2.check().unwrap().is_healthy());
}
