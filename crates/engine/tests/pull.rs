//! `images::pull` against a private docker-registry: layers unpack while
//! they download, and a bad layer leaves nothing behind.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::OnceLock;

use barge_engine::images::{self, PullOptions, RegistryOptions, Store};
use barge_registry::manifest::{self, Descriptor, ImageManifest};
use barge_registry::testing::LocalRegistry;
use barge_registry::{Client, ClientOptions, Digest, Reference};

fn registry() -> Option<&'static LocalRegistry> {
    static R: OnceLock<Option<LocalRegistry>> = OnceLock::new();
    R.get_or_init(|| LocalRegistry::start(None).ok()).as_ref()
}

macro_rules! need_registry {
    () => {
        match registry() {
            Some(r) => r,
            None => {
                eprintln!("SKIP: no docker-registry (scripts/install-deps.sh)");
                return;
            }
        }
    };
}

/// A tar of `(name, contents)` regular files; a name may be hostile, so the
/// header name is written raw.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Noise that does not compress, so layers take a while to download.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Pushes an image whose layers are gzips of `tars`; `diff_ids` overrides
/// the config's DiffIDs. Returns the reference.
fn push(
    reg: &LocalRegistry,
    name: &str,
    tars: &[Vec<u8>],
    diff_ids: Option<Vec<String>>,
) -> String {
    let reference = format!("{}/engine/{name}:latest", reg.addr());
    let r = Reference::parse(&reference).unwrap();
    let c = Client::new(ClientOptions::default());
    let put = |data: &[u8], media_type: &str| {
        let digest = Digest::of(data);
        c.push_blob(&r, &digest, data.len() as u64, &mut &data[..], None)
            .unwrap();
        Descriptor {
            media_type: media_type.into(),
            digest,
            size: data.len() as u64,
            platform: None,
            annotations: None,
        }
    };
    let layers: Vec<Descriptor> = tars
        .iter()
        .map(|t| put(&gzip(t), manifest::OCI_LAYER_GZIP))
        .collect();
    let diff_ids =
        diff_ids.unwrap_or_else(|| tars.iter().map(|t| Digest::of(t).to_string()).collect());
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config = put(&config, manifest::OCI_CONFIG);
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest::OCI_MANIFEST.into()),
        config,
        layers,
    };
    c.push_manifest(&r, manifest::OCI_MANIFEST, &serde_json::to_vec(&m).unwrap())
        .unwrap();
    reference
}

fn pull(store: &Store, reference: &str) -> barge_engine::Result<images::PullReport> {
    // No registries.conf (a missing file, no drop-ins): the host's must not
    // redirect the test registry.
    let conf = store.root().join("no-registries.conf");
    images::pull(
        store,
        &PullOptions {
            reference: reference.into(),
            platform: Some("linux/amd64".into()),
            registry: RegistryOptions {
                tls_verify: false,
                registries_conf: Some(images::ConfigPaths::only(conf)),
                ..RegistryOptions::default()
            },
            jobs: 3,
            interactive: false,
        },
        None,
    )
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn pull_unpacks_every_layer() {
    let reg = need_registry!();
    let big = noise(3 << 20, 11);
    let tars = vec![
        tar_of(&[("etc/one", b"1\n")]),
        tar_of(&[("data/big", &big)]),
        tar_of(&[("etc/two", b"2\n"), ("data/small", b"small")]),
    ];
    let reference = push(reg, "good", &tars, None);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let rep = pull(&store, &reference).unwrap();
    assert_eq!(rep.downloaded.len(), 3);
    let img = store.resolve(&reference).unwrap();
    for (t, d) in tars.iter().zip(&img.diff_ids) {
        assert_eq!(&Digest::of(t).to_string(), &d.to_string());
        assert!(store.has_layer(d));
    }
    assert_eq!(
        std::fs::read(store.layer_path(&img.diff_ids[1]).join("data/big")).unwrap(),
        big
    );
    assert!(store.check().unwrap().is_healthy());
    assert!(entries(&store.temp_dir()).is_empty());

    // A second store pulls again; blobs present but layers missing are
    // unpacked from the store.
    for d in &img.diff_ids {
        store.remove_layer(d).unwrap();
    }
    let rep = pull(&store, &reference).unwrap();
    assert_eq!(rep.skipped.len(), 3);
    assert!(img.diff_ids.iter().all(|d| store.has_layer(d)));
}

#[test]
fn bad_layer_content_fails_and_leaves_no_layer() {
    let reg = need_registry!();
    let tars = vec![
        tar_of(&[("data/big", &noise(2 << 20, 5))]),
        tar_of(&[("etc/ok", b"ok"), ("../escape", b"x")]),
    ];
    let reference = push(reg, "escape", &tars, None);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let err = pull(&store, &reference).unwrap_err().to_string();
    assert!(err.contains("escapes the layer root"), "{err}");
    assert!(store.images().unwrap().is_empty());
    // The bad layer's temp dir is gone; nothing unverified became a layer.
    assert!(!store.has_layer(&barge_image::Digest::of(&tars[1])));
    assert!(
        entries(&store.temp_dir()).is_empty(),
        "{:?}",
        entries(&store.temp_dir())
    );
    assert!(store.check().unwrap().is_healthy());
}

#[test]
fn diff_id_mismatch_fails_and_leaves_no_layer() {
    let reg = need_registry!();
    let tars = vec![tar_of(&[("etc/a", b"a")]), tar_of(&[("etc/b", b"b")])];
    let wrong = vec![
        Digest::of(&tars[0]).to_string(),
        Digest::of(b"not the tar").to_string(),
    ];
    let reference = push(reg, "diffid", &tars, Some(wrong));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let err = pull(&store, &reference).unwrap_err().to_string();
    assert!(err.contains("DiffID mismatch"), "{err}");
    assert!(store.images().unwrap().is_empty());
    let layers = entries(&store.root().join("layers"));
    let bad = Digest::of(&tars[1]).hex().to_string();
    assert!(!layers.contains(&bad), "{layers:?}");
    assert!(entries(&store.temp_dir()).is_empty());
}
