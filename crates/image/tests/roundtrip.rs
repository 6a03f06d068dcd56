//! Round trip: a 3-layer image (plain, gzip, zstd) written as an OCI
//! layout, imported, unpacked, checked in overlay format, mounted (as root),
//! exported and re-imported.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use barge_image::layer::UnpackOptions;
use barge_image::oci_layout::{self, ImportOptions};
use barge_image::{snapshot, Digest, Store};
use common::{gz, plain, tar_layer, write_layout, zst, E};

fn layers() -> Vec<common::Layer> {
    let l1 = tar_layer(&[
        E::Dir("etc/", 0o755),
        E::FileX(
            "etc/keep",
            b"keep\n",
            0o640,
            0,
            vec![("user.test", b"hello")],
        ),
        E::File("etc/gone", b"gone\n", 0o644),
        E::Dir("opq/", 0o755),
        E::File("opq/old", b"old\n", 0o644),
        E::Dir("bin/", 0o755),
        E::FileX("bin/sh", b"#!shell\n", 0o4755, 1000, vec![]),
        E::Hardlink("bin/link", "bin/sh"),
        E::Symlink("lnk", "etc/keep"),
        E::Symlink("abs", "/etc/passwd"),
        E::Fifo("fifo"),
        E::File("implicit/parent/file", b"x", 0o600),
        E::Dir("ro/", 0o555),
        E::File("ro/inside", b"in", 0o444),
    ]);
    let l2 = tar_layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/.wh.gone", b"", 0o644),
        E::File("etc/new", b"new\n", 0o644),
    ]);
    let l3 = tar_layer(&[
        E::Dir("opq/", 0o755),
        E::File("opq/.wh..wh..opq", b"", 0o644),
        E::File("opq/fresh", b"fresh\n", 0o644),
        E::Char("dev-null", 1, 3),
    ]);
    vec![plain(l1), gz(l2), zst(l3)]
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    rustix::fs::lgetxattr(path, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

#[test]
fn three_layer_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let mdesc = write_layout(&layout, &layers(), None);
    let store = Store::open(tmp.path().join("store")).unwrap();
    let opts = ImportOptions {
        names: vec!["localhost/test:latest".into()],
        ..ImportOptions::default()
    };
    let report = oci_layout::import(&store, &layout, &opts).unwrap();
    assert_eq!(report.image.manifest, mdesc.digest);
    assert_eq!(report.new_layers.len(), 3);
    assert_eq!(report.new_blobs.len(), 5);
    assert_eq!(
        store.resolve("localhost/test").unwrap().manifest,
        mdesc.digest
    );

    let dirs = snapshot(
        &store,
        "localhost/test:latest",
        &UnpackOptions::for_current_user(),
    )
    .unwrap();
    assert_eq!(dirs.len(), 3);
    let (top, mid, bottom) = (&dirs[0], &dirs[1], &dirs[2]);

    // Layer 1: files, modes, ownership, links, xattrs.
    let sh = fs::symlink_metadata(bottom.join("bin/sh")).unwrap();
    assert_eq!(sh.mode() & 0o7777, 0o4755);
    assert_eq!(fs::read(bottom.join("bin/sh")).unwrap(), b"#!shell\n");
    assert_eq!(sh.mtime(), 1_600_000_000);
    assert_eq!(
        fs::symlink_metadata(bottom.join("bin/link")).unwrap().ino(),
        sh.ino()
    );
    assert_eq!(
        fs::read_link(bottom.join("lnk")).unwrap(),
        Path::new("etc/keep")
    );
    assert_eq!(
        fs::read_link(bottom.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(fs::symlink_metadata(bottom.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::read(bottom.join("implicit/parent/file")).unwrap(), b"x");
    assert_eq!(
        fs::symlink_metadata(bottom.join("ro")).unwrap().mode() & 0o7777,
        0o555
    );
    assert_eq!(
        fs::symlink_metadata(bottom.join("etc")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        xattr(&bottom.join("etc/keep"), "user.test").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        fs::symlink_metadata(bottom.join("etc/keep"))
            .unwrap()
            .mode()
            & 0o7777,
        0o640
    );
    if common::is_root() {
        assert_eq!(sh.uid(), 1000);
        assert_eq!(sh.gid(), 1000);
    }

    // Layer 2: whiteout char device 0:0.
    let wh = fs::symlink_metadata(mid.join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!mid.join("etc/.wh.gone").exists());

    // Layer 3: opaque dir.
    let opaque_name = if common::is_root() {
        "trusted.overlay.opaque"
    } else {
        "user.overlay.opaque"
    };
    assert_eq!(
        xattr(&top.join("opq"), opaque_name).as_deref(),
        Some(&b"y"[..])
    );
    assert!(!top.join("opq/.wh..wh..opq").exists());
    if common::is_root() {
        let dev = fs::symlink_metadata(top.join("dev-null")).unwrap();
        assert!(dev.file_type().is_char_device());
        assert_eq!(dev.rdev(), rustix::fs::makedev(1, 3));
    }

    // As root: mount overlayfs over the lowerdirs and check the merged view.
    if common::is_root() {
        let merged = tmp.path().join("merged");
        fs::create_dir(&merged).unwrap();
        let lower = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let st = Command::new("mount")
            .args([
                "-t",
                "overlay",
                "overlay",
                "-o",
                &format!("lowerdir={lower}"),
            ])
            .arg(&merged)
            .status()
            .unwrap();
        assert!(st.success(), "mount overlay failed");
        let check = || {
            assert!(
                !merged.join("etc/gone").exists(),
                "whiteout did not hide etc/gone"
            );
            assert_eq!(fs::read(merged.join("etc/keep")).unwrap(), b"keep\n");
            assert_eq!(fs::read(merged.join("etc/new")).unwrap(), b"new\n");
            assert!(
                !merged.join("opq/old").exists(),
                "opaque dir did not hide opq/old"
            );
            assert_eq!(fs::read(merged.join("opq/fresh")).unwrap(), b"fresh\n");
            assert_eq!(fs::read(merged.join("lnk")).unwrap(), b"keep\n");
            let mut names: Vec<_> = fs::read_dir(merged.join("opq"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            assert_eq!(names, vec![std::ffi::OsString::from("fresh")]);
        };
        let r = std::panic::catch_unwind(check);
        let _ = Command::new("umount").arg(&merged).status();
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }

    let health = store.check().unwrap();
    assert!(health.is_healthy(), "{health:?}");
    assert_eq!(health.ok, 5);

    // Export, then import into a fresh store: same image.
    let out = tmp.path().join("exported");
    oci_layout::export(&store, "localhost/test", &out, Some("v1")).unwrap();
    let store2 = Store::open(tmp.path().join("store2")).unwrap();
    let r2 = oci_layout::import(
        &store2,
        &out,
        &ImportOptions {
            ref_name: Some("v1".into()),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r2.image.manifest, mdesc.digest);
    assert_eq!(r2.image.diff_ids, report.image.diff_ids);

    // And as an oci-archive tarball.
    let archive = tmp.path().join("image.tar");
    oci_layout::export_tar(
        &store,
        "localhost/test",
        fs::File::create(&archive).unwrap(),
        Some("v2"),
    )
    .unwrap();
    let store3 = Store::open(tmp.path().join("store3")).unwrap();
    let r3 = oci_layout::import(
        &store3,
        &archive,
        &ImportOptions {
            ref_name: Some("v2".into()),
            unpack: false,
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r3.image.manifest, mdesc.digest);
    assert_eq!(r3.new_blobs.len(), 5);
    assert!(store3.list_layers().unwrap().is_empty());
    assert_eq!(
        snapshot(
            &store3,
            &mdesc.digest.to_string(),
            &UnpackOptions::for_current_user()
        )
        .unwrap()
        .len(),
        3
    );

    // Re-import is a no-op; gc keeps everything referenced.
    let again = oci_layout::import(&store, &layout, &opts).unwrap();
    assert!(again.new_blobs.is_empty() && again.new_layers.is_empty());
    let gc = store.gc().unwrap();
    assert!(gc.blobs.is_empty() && gc.layers.is_empty(), "{gc:?}");

    // tag / untag / remove, then gc empties the store.
    store.tag("localhost/test", "localhost/other:1").unwrap();
    assert_eq!(
        store.resolve("localhost/other:1").unwrap().id,
        report.image.id
    );
    store.untag("localhost/test:latest").unwrap();
    assert!(store.resolve("localhost/test").is_err());
    assert!(store.untag("localhost/test:latest").is_err());
    let id = report.image.id.to_string();
    assert_eq!(store.resolve(&id[7..19]).unwrap().id, report.image.id);
    store.remove_image(&id).unwrap();
    let gc = store.gc().unwrap();
    assert_eq!(gc.blobs.len(), 5);
    assert_eq!(gc.layers.len(), 3);
    assert!(store.list_blobs().unwrap().is_empty());
    assert!(store.list_layers().unwrap().is_empty());
}

/// A layout tarball (and a nested index with platforms) imports the same way.
#[test]
fn layout_tarball_and_platform_index() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let platform = barge_image::oci_layout::Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: Some("v8".into()),
        os_version: None,
    };
    let mdesc = write_layout(&layout, &layers(), Some(platform.clone()));
    let tarball = tmp.path().join("layout.tar");
    let mut b = tar::Builder::new(fs::File::create(&tarball).unwrap());
    b.append_dir_all(".", &layout).unwrap();
    b.finish().unwrap();
    drop(b);
    let store = Store::open(tmp.path().join("store")).unwrap();
    // Default platform linux/amd64 is not offered.
    let err = oci_layout::import(&store, &tarball, &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("linux/arm64/v8"), "{err}");
    assert!(
        store.list_blobs().unwrap().is_empty(),
        "failed import left blobs"
    );
    // arm64 without variant matches v8.
    let opts = ImportOptions {
        platform: barge_image::oci_layout::Platform {
            variant: None,
            ..platform
        },
        ..ImportOptions::default()
    };
    let r = oci_layout::import(&store, &tarball, &opts).unwrap();
    assert_eq!(r.image.manifest, mdesc.digest);
    let diff: Vec<Digest> = layers().iter().map(|l| Digest::of(&l.tar)).collect();
    assert_eq!(r.image.diff_ids, diff);
    assert!(store.check().unwrap().is_healthy());
}

/// The registry-pull path: blobs streamed in with `BlobWriter`, then
/// `commit_image`.
#[test]
fn commit_image_from_streamed_blobs() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let mdesc = write_layout(&layout, &layers(), None);
    let store = Store::open(tmp.path().join("store")).unwrap();
    // The manifest alone first: committing must fail naming a missing blob.
    let mdata = fs::read(layout.join("blobs/sha256").join(mdesc.digest.hex())).unwrap();
    store.put_blob_bytes(&mdata, Some(&mdesc.digest)).unwrap();
    let err = barge_image::commit_image(&store, &mdesc, &[], None).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let d = Digest::from_hex(e.file_name().to_str().unwrap()).unwrap();
        let mut w = store.blob_writer(Some(d)).unwrap();
        for chunk in fs::read(e.path()).unwrap().chunks(1000) {
            w.write_all(chunk).unwrap();
        }
        w.commit().unwrap();
    }
    let opts = UnpackOptions::for_current_user();
    let (img, new_layers) =
        barge_image::commit_image(&store, &mdesc, &["pulled:1".into()], Some(&opts)).unwrap();
    assert_eq!(new_layers.len(), 3);
    assert_eq!(store.resolve("pulled:1").unwrap(), img);
    assert_eq!(snapshot(&store, "pulled:1", &opts).unwrap().len(), 3);
}

/// The rootless format (`user.overlay.*` xattrs, no chown, devices skipped)
/// mounts with `userxattr` inside a user namespace and gives the same view.
#[test]
fn userxattr_layers_mount_in_user_namespace() {
    if !common::is_root() || Command::new("unshare").arg("--version").output().is_err() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, &layers(), None);
    let store = Store::open(tmp.path().join("store")).unwrap();
    let unpack_options = UnpackOptions {
        whiteouts: barge_image::layer::WhiteoutFormat::UserXattr,
        devices: barge_image::layer::DevicePolicy::Skip,
        chown: false,
        ..UnpackOptions::default()
    };
    let opts = ImportOptions {
        names: vec!["rootless:latest".into()],
        unpack_options: unpack_options.clone(),
        ..ImportOptions::default()
    };
    oci_layout::import(&store, &layout, &opts).unwrap();
    let dirs = snapshot(&store, "rootless", &unpack_options).unwrap();
    assert!(xattr(&dirs[0].join("opq"), "trusted.overlay.opaque").is_none());
    assert!(!dirs[0].join("dev-null").exists());
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lower = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let script = format!(
        "mount -t overlay overlay -o userxattr,lowerdir={lower} {m} && \
         test ! -e {m}/etc/gone && test -e {m}/etc/keep && test -e {m}/etc/new && \
         test ! -e {m}/opq/old && test -e {m}/opq/fresh && echo merged-ok",
        m = merged.display()
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("merged-ok"),
        "userxattr overlay in a user namespace: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
