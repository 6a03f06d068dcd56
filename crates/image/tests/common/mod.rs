//! Helpers building layers and OCI layouts for the tests.
#![allow(dead_code, clippy::unwrap_used, clippy::many_single_char_names)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use barge_image::oci_layout::{
    Descriptor, ImageIndex, ImageManifest, Platform, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
};
use barge_image::Digest;

/// One tar entry; names and link targets are written raw (no validation).
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    /// File with uid/gid and PAX xattrs.
    FileX(&'a str, &'a [u8], u32, u64, Vec<(&'a str, &'a [u8])>),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
}

fn set_raw(h: &mut tar::Header, name: &str, link: &str) {
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname = [0; 100];
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = 3 + key.len() + value.len(); // ' ' '=' '\n'
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len += 1;
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

pub fn tar_layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        let (name, link, data): (&str, &str, &[u8]) = match e {
            E::Dir(n, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*m);
                (n, "", b"")
            }
            E::File(n, d, m) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*m);
                h.set_size(d.len() as u64);
                (n, "", d)
            }
            E::FileX(n, d, m, id, xattrs) => {
                let mut pax = Vec::new();
                for (k, v) in xattrs {
                    pax.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
                }
                let mut ph = tar::Header::new_ustar();
                ph.set_entry_type(tar::EntryType::XHeader);
                ph.set_size(pax.len() as u64);
                set_raw(&mut ph, "PaxHeader", "");
                ph.set_mode(0o644);
                ph.set_cksum();
                b.append(&ph, pax.as_slice()).unwrap();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*m);
                h.set_uid(*id);
                h.set_gid(*id);
                h.set_size(d.len() as u64);
                (n, "", d)
            }
            E::Symlink(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                (n, t, b"")
            }
            E::Hardlink(n, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                (n, t, b"")
            }
            E::Char(n, maj, min) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                (n, "", b"")
            }
            E::Fifo(n) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o644);
                (n, "", b"")
            }
        };
        set_raw(&mut h, name, link);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A layer for [`write_layout`]: the blob as stored, its media type, and the
/// uncompressed tar (for the DiffID).
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    pub tar: Vec<u8>,
}

pub fn plain(tar: Vec<u8>) -> Layer {
    Layer {
        blob: tar.clone(),
        media_type: "application/vnd.oci.image.layer.v1.tar",
        tar,
    }
}
pub fn gz(tar: Vec<u8>) -> Layer {
    Layer {
        blob: gzip(&tar),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        tar,
    }
}
pub fn zst(tar: Vec<u8>) -> Layer {
    Layer {
        blob: zstd(&tar),
        media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
        tar,
    }
}

pub fn put(dir: &Path, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(blobs.join(d.hex()), data).unwrap();
    d
}

pub fn desc(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(data),
        size: data.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

/// Write a single-image OCI layout; returns the manifest descriptor.
/// `platform` puts the manifest behind a nested index with that platform.
pub fn write_layout(dir: &Path, layers: &[Layer], platform: Option<Platform>) -> Descriptor {
    write_layout_with(dir, layers, platform, BTreeMap::new())
}

pub fn write_layout_with(
    dir: &Path,
    layers: &[Layer],
    platform: Option<Platform>,
    manifest_annotations: BTreeMap<String, String>,
) -> Descriptor {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::of(&l.tar).to_string())
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    put(dir, &config);
    let mut mdescs = Vec::new();
    for l in layers {
        put(dir, &l.blob);
        mdescs.push(desc(l.media_type, &l.blob));
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        config: desc(MEDIA_TYPE_CONFIG, &config),
        layers: mdescs,
        annotations: manifest_annotations,
    };
    let mdata = serde_json::to_vec(&manifest).unwrap();
    put(dir, &mdata);
    let mut mdesc = desc(MEDIA_TYPE_MANIFEST, &mdata);
    let top = if let Some(p) = platform {
        mdesc.platform = Some(p);
        let nested = ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.into()),
            manifests: vec![mdesc.clone()],
            annotations: BTreeMap::new(),
        };
        let ndata = serde_json::to_vec(&nested).unwrap();
        put(dir, &ndata);
        desc(MEDIA_TYPE_INDEX, &ndata)
    } else {
        let mut d = mdesc.clone();
        d.annotations
            .insert("org.opencontainers.image.ref.name".into(), "latest".into());
        d
    };
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.into()),
        manifests: vec![top],
        annotations: BTreeMap::new(),
    };
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    mdesc
}

/// Recursive listing of a directory: relative path, file type bits, size.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(fs::DirEntry::file_name);
        for e in entries {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            out.push(format!(
                "{} {:o} {}",
                p.strip_prefix(root).unwrap().display(),
                m.mode() & 0o170_000,
                if m.is_file() { m.len() } else { 0 }
            ));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
