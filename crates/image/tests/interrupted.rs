//! Interrupted writes: leftover temp files are reported by `check`, do not
//! disturb the next import, and are cleaned by it (or by gc); live writers'
//! temp files are left alone.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::Write;
use std::time::{Duration, SystemTime};

use barge_image::oci_layout::{self, ImportOptions};
use barge_image::{Digest, Store, StoreError};
use common::{gz, tar_layer, write_layout, E};

fn age(path: &std::path::Path) {
    let f = fs::File::open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_mins(1))
        .unwrap();
}

#[test]
fn partial_blob_then_import() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let layer = tar_layer(&[E::File("f", &vec![1u8; 100_000], 0o644)]);
    let layout = tmp.path().join("layout");
    let l = gz(layer);
    let blob = l.blob.clone();
    write_layout(&layout, &[l], None);

    // A writer killed halfway through the layer blob left this behind
    // (and a half-unpacked layer dir).
    let partial = store.temp_dir().join("blob-999-0-0.partial");
    fs::write(&partial, &blob[..blob.len() / 2]).unwrap();
    age(&partial);
    let half_layer = store.temp_dir().join("layer-999-1-0");
    fs::create_dir_all(half_layer.join("usr/bin")).unwrap();
    age(&half_layer);

    let report = store.check().unwrap();
    assert!(!report.is_healthy());
    assert_eq!(report.partial, vec![partial.clone(), half_layer.clone()]);
    assert!(report.corrupt.is_empty() && report.missing.is_empty());

    let r = oci_layout::import(&store, &layout, &ImportOptions::default()).unwrap();
    assert_eq!(r.image.layers, vec![Digest::of(&blob)]);
    assert!(!partial.exists() && !half_layer.exists());
    let report = store.check().unwrap();
    assert!(report.is_healthy(), "{report:?}");
}

#[test]
fn gc_cleans_stale_but_not_live_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let stale = store.temp_dir().join("blob-1-1-1.partial");
    fs::write(&stale, b"half").unwrap();
    age(&stale);
    // A live writer: its temp file is flocked.
    let mut live = store.blob_writer(None).unwrap();
    live.write_all(b"in progress").unwrap();
    let live_path = live.temp_path().to_path_buf();
    age(&live_path);
    let gc = store.gc().unwrap();
    assert_eq!(gc.temp, vec![stale.clone()]);
    assert!(live_path.exists());
    let (d, new) = live.commit().unwrap();
    assert!(new);
    assert_eq!(d, Digest::of(b"in progress"));
    assert!(!live_path.exists());
    assert_eq!(store.read_blob(&d, 1024).unwrap(), b"in progress");
}

#[test]
fn blob_writer_mismatch_and_drop_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let expected = Digest::of(b"right");
    let mut w = store.blob_writer(Some(expected.clone())).unwrap();
    w.write_all(b"wrong").unwrap();
    let err = w.commit().unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains(&expected.to_string()) && msg.contains(&Digest::of(b"wrong").to_string()),
        "{msg}"
    );
    let mut w = store.blob_writer(None).unwrap();
    w.write_all(b"abandoned").unwrap();
    drop(w);
    assert_eq!(fs::read_dir(store.temp_dir()).unwrap().count(), 0);
    assert!(store.list_blobs().unwrap().is_empty());

    // Corruption after the write is caught on use and by check.
    let (d, _) = store.put_blob_bytes(b"content", None).unwrap();
    fs::write(store.blob_path(&d), b"CONTENT").unwrap();
    assert!(matches!(
        store.read_blob(&d, 100),
        Err(StoreError::DigestMismatch { .. })
    ));
    let mut r = store.open_blob(&d).unwrap();
    let e = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
    assert!(e.to_string().contains("corrupt"), "{e}");
    let report = store.check().unwrap();
    assert_eq!(report.corrupt, vec![(d.clone(), Digest::of(b"CONTENT"))]);
}

/// A process SIGKILLed while streaming a blob: its temp file is reported by
/// `check` at once, the next import succeeds, and gc removes the leftover.
#[test]
fn writer_killed_mid_blob() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if let Some(root) = std::env::var_os("BARGE_IMAGE_TEST_CHILD_STORE") {
        // Child: write half a blob and wait to be killed.
        let store = Store::open(root).unwrap();
        let mut w = store.blob_writer(None).unwrap();
        w.write_all(&vec![9u8; 1 << 20]).unwrap();
        w.flush().unwrap();
        println!("child-ready");
        std::thread::sleep(Duration::from_mins(1));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writer_killed_mid_blob",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BARGE_IMAGE_TEST_CHILD_STORE", &root)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("child-ready"))),
        "child did not start"
    );
    // While the writer lives, its temp file is not partial.
    assert!(store.check().unwrap().partial.is_empty());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let report = store.check().unwrap();
    assert_eq!(report.partial.len(), 1, "{report:?}");
    let partial = report.partial[0].clone();
    assert_eq!(fs::metadata(&partial).unwrap().len(), 1 << 20);

    let layout = tmp.path().join("layout");
    write_layout(
        &layout,
        &[gz(tar_layer(&[E::File("f", b"x", 0o644)]))],
        None,
    );
    oci_layout::import(&store, &layout, &ImportOptions::default()).unwrap();
    age(&partial);
    let gc = store.gc().unwrap();
    assert_eq!(gc.temp, vec![partial]);
    assert!(store.check().unwrap().is_healthy());
}
