//! `docker save` archives (`docker-archive`): export and import, and
//! telling them from OCI archives.
//!
//! Layout written by [`export`] (what podman 4 writes):
//!
//! ```text
//! <diffid hex>.tar          each layer, uncompressed
//! <config hex>.json         each image config
//! <v1 id>/layer.tar         symlink to ../<diffid hex>.tar   } legacy v1
//! <v1 id>/VERSION, json     "1.0", a v1 layer config          } entries
//! manifest.json             [{"Config", "RepoTags", "Layers"}], one per image
//! repositories              {"repo": {"tag": "<top v1 id>"}}
//! ```
//!
//! [`import`] reads such an archive in one pass: every regular file is
//! streamed into the store as a blob (hashed while written), symlinks and
//! hardlinks are remembered; then `manifest.json` is resolved against that
//! (paths that are absolute or climb out with `..` are refused, symlinks
//! are followed only inside the archive), configs and layers are checked
//! (an uncompressed layer must hash to its config's DiffID; compressed ones
//! are checked while unpacking), all layers are unpacked, and only then are
//! the images recorded. Any failure removes every blob and layer the import
//! added; blobs the archive carried but no image uses (legacy files) are
//! removed at the end.
//!
//! [`ArchiveFile::open`] accepts plain, gzip and zstd tarballs (compressed
//! ones are decompressed into the store's temp dir first) and says whether
//! it holds a docker-archive (`manifest.json`) or an OCI layout
//! (`oci-layout`/`index.json`); an archive with both (Docker 25+) counts as
//! docker-archive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashingReader};
use crate::layer::{Compression, LayerError, UnpackOptions};
use crate::oci_layout::{self, ConfigSummary, Descriptor, ImageManifest, LayoutError};
use crate::store::{ImageRecord, Store, StoreError, MAX_METADATA_SIZE};

/// Docker schema2 image config media type.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer media type.
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer media type.
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Most symlinks followed to resolve one path in an archive.
const MAX_LINK_HOPS: usize = 16;

/// Errors of docker-archive import/export and archive detection.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recording an image failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Reading or writing the archive failed.
    #[error("{path}: {source}")]
    Io {
        /// The archive (or `<output>`).
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Neither a docker-archive nor an OCI archive.
    #[error("{path}: not a docker-archive or OCI archive: {reason}")]
    NotAnArchive {
        /// The archive.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `manifest.json` is malformed or empty.
    #[error("docker-archive manifest.json: {0}")]
    Manifest(String),
    /// A path in `manifest.json` (or a symlink in the archive) leads outside it.
    #[error("docker-archive manifest.json: {what} path {path:?} escapes the archive")]
    PathEscapes {
        /// Config, layer or symlink.
        what: &'static str,
        /// The path as written.
        path: String,
    },
    /// A file `manifest.json` names is not in the archive.
    #[error("docker-archive manifest.json: {what} {path:?} is not in the archive")]
    MissingFile {
        /// Config or layer.
        what: &'static str,
        /// The path as written.
        path: String,
    },
    /// An image config is invalid.
    #[error("docker-archive config {path:?}: {reason}")]
    Config {
        /// The config's path in the archive.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer's content differs from its config's DiffID.
    #[error(
        "docker-archive layer {path:?}: content is {actual} but the config's DiffID is {expected}"
    )]
    DiffIdMismatch {
        /// The layer's path in the archive.
        path: String,
        /// The DiffID in the config.
        expected: Digest,
        /// The digest of the layer's content.
        actual: Digest,
    },
    /// An image name in `RepoTags` is invalid.
    #[error("docker-archive manifest.json: invalid image name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}

fn aio(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io { path, source }
}

/// One `manifest.json` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestItem {
    /// Path of the config file.
    #[serde(rename = "Config")]
    pub config: String,
    /// Names (`repo:tag`).
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars, bottom first.
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

// --------------------------------------------------------------- detection

/// The kind of an image archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `docker save` layout (`manifest.json`).
    DockerArchive,
    /// OCI image layout tarball (`oci-layout`, `index.json`).
    OciArchive,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A flocked temp file in the store's temp dir, removed on drop (a killed
/// process leaves it unlocked, so the store's `clean_temp` removes it).
#[derive(Debug)]
pub struct StoreTempFile {
    path: PathBuf,
    file: File,
}

impl StoreTempFile {
    /// Create one in `store`'s temp dir.
    pub fn new(store: &Store, what: &str) -> Result<Self, ArchiveError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = store
            .temp_dir()
            .join(format!("{what}-{}-{n}-{t:x}.partial", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(aio(&path))?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| ArchiveError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(Self { path, file })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (read/write).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }
}

impl Drop for StoreTempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// An archive ready to read: the file itself, or its decompressed copy.
#[derive(Debug)]
pub struct ArchiveFile {
    path: PathBuf,
    kind: ArchiveKind,
    _temp: Option<StoreTempFile>,
}

fn decompressor<'a>(
    compression: Compression,
    r: impl BufRead + 'a,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

impl ArchiveFile {
    /// Open `path`, decompressing a gzip or zstd tarball into `store`'s
    /// temp dir, and detect what it holds.
    pub fn open(store: &Store, path: &Path) -> Result<Self, ArchiveError> {
        let f = File::open(path).map_err(aio(path))?;
        let mut r = BufReader::with_capacity(256 * 1024, f);
        let magic = r.fill_buf().map_err(aio(path))?;
        let compression = Compression::detect(magic).map_err(|e| ArchiveError::NotAnArchive {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let (plain, temp) = if compression == Compression::None {
            (path.to_path_buf(), None)
        } else {
            let mut t = StoreTempFile::new(store, "archive")?;
            let mut d = decompressor(compression, r).map_err(aio(path))?;
            io::copy(&mut d, t.file()).map_err(aio(path))?;
            (t.path().to_path_buf(), Some(t))
        };
        let kind = detect(&plain)?;
        Ok(Self {
            path: plain,
            kind,
            _temp: temp,
        })
    }

    /// The plain tar to read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What it holds.
    pub fn kind(&self) -> ArchiveKind {
        self.kind
    }
}

/// Normalize a path inside an archive: `./` and empty components dropped,
/// `..` applied; `None` when absolute or climbing out.
fn normalize(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// Whether a plain tar holds a docker-archive or an OCI layout.
fn detect(path: &Path) -> Result<ArchiveKind, ArchiveError> {
    let f = File::open(path).map_err(aio(path))?;
    let mut ar = tar::Archive::new(f);
    let mut oci = false;
    let mut entries = 0usize;
    let not = |reason: String| ArchiveError::NotAnArchive {
        path: path.to_path_buf(),
        reason,
    };
    for e in ar
        .entries_with_seek()
        .map_err(|e| not(format!("not a tar archive: {e}")))?
    {
        let e = e.map_err(|e| not(format!("not a tar archive: {e}")))?;
        entries += 1;
        let name = normalize(&String::from_utf8_lossy(&e.path_bytes())).unwrap_or_default();
        match name.as_str() {
            "manifest.json" => return Ok(ArchiveKind::DockerArchive),
            "oci-layout" | "index.json" => oci = true,
            _ => {}
        }
    }
    if oci {
        Ok(ArchiveKind::OciArchive)
    } else if entries == 0 {
        Err(not("empty or not a tar archive".into()))
    } else {
        Err(not(
            "no manifest.json, oci-layout or index.json in it".into()
        ))
    }
}

// ------------------------------------------------------------------ import

/// Options of [`import`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Turns a `RepoTags` entry into the stored name (e.g. adding
    /// `localhost/`); an `Err` rejects the archive naming the tag.
    pub normalize_name: fn(&str) -> Result<String, String>,
    /// How to unpack layers.
    pub unpack: UnpackOptions,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            normalize_name: |n| Ok(n.to_string()),
            unpack: UnpackOptions::for_current_user(),
        }
    }
}

/// One image an import recorded.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The record as stored.
    pub image: ImageRecord,
    /// The names it got from `RepoTags` (normalized), in archive order.
    pub names: Vec<String>,
}

/// What [`import`] did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// The images, in `manifest.json` order.
    pub images: Vec<LoadedImage>,
    /// Blobs new in the store.
    pub new_blobs: Vec<Digest>,
    /// Layers newly unpacked (DiffIDs).
    pub new_layers: Vec<Digest>,
}

/// What the archive held: regular files (as blobs) and links.
#[derive(Default)]
struct Contents {
    files: HashMap<String, (Digest, u64)>,
    symlinks: HashMap<String, String>,
    hardlinks: HashMap<String, String>,
    manifest: Option<Vec<u8>>,
}

impl Contents {
    /// The blob of the file at `path` (as written in manifest.json).
    fn resolve(&self, what: &'static str, path: &str) -> Result<(Digest, u64), ArchiveError> {
        let escapes = || ArchiveError::PathEscapes {
            what,
            path: path.to_string(),
        };
        let mut cur = normalize(path).ok_or_else(escapes)?;
        for _ in 0..MAX_LINK_HOPS {
            if let Some(f) = self.files.get(&cur) {
                return Ok(f.clone());
            }
            if let Some(t) = self.hardlinks.get(&cur) {
                cur = normalize(t).ok_or_else(escapes)?;
                continue;
            }
            if let Some(t) = self.symlinks.get(&cur) {
                let dir = cur.rsplit_once('/').map_or("", |(d, _)| d);
                if t.starts_with('/') {
                    return Err(ArchiveError::PathEscapes {
                        what: "symlink",
                        path: format!("{cur} -> {t}"),
                    });
                }
                let joined = if dir.is_empty() {
                    t.clone()
                } else {
                    format!("{dir}/{t}")
                };
                cur = normalize(&joined).ok_or_else(|| ArchiveError::PathEscapes {
                    what: "symlink",
                    path: format!("{cur} -> {t}"),
                })?;
                continue;
            }
            break;
        }
        Err(ArchiveError::MissingFile {
            what,
            path: path.to_string(),
        })
    }
}

/// Undoes an import's additions unless it completed.
struct Undo<'a> {
    store: &'a Store,
    blobs: BTreeSet<Digest>,
    layers: Vec<Digest>,
    done: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.done {
            for d in &self.layers {
                let _ = self.store.remove_layer(d);
            }
            for d in &self.blobs {
                let _ = self.store.remove_blob(d);
            }
        }
    }
}

fn read_contents(
    store: &Store,
    path: &Path,
    undo: &mut Undo<'_>,
) -> Result<Contents, ArchiveError> {
    let f = File::open(path).map_err(aio(path))?;
    let mut ar = tar::Archive::new(BufReader::with_capacity(256 * 1024, f));
    let mut c = Contents::default();
    for entry in ar.entries().map_err(aio(path))? {
        let mut entry = entry.map_err(aio(path))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        // Unreachable names (absolute, climbing out) can never be referenced.
        let Some(name) = normalize(&raw) else {
            continue;
        };
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default()
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                c.symlinks.remove(&name);
                c.hardlinks.remove(&name);
                if name == "manifest.json" {
                    let mut data = Vec::new();
                    (&mut entry)
                        .take(MAX_METADATA_SIZE + 1)
                        .read_to_end(&mut data)
                        .map_err(aio(path))?;
                    if data.len() as u64 > MAX_METADATA_SIZE {
                        return Err(ArchiveError::Manifest(format!(
                            "larger than {MAX_METADATA_SIZE} bytes"
                        )));
                    }
                    c.manifest = Some(data);
                    continue;
                }
                let mut w = store.blob_writer(None)?;
                io::copy(&mut entry, &mut w).map_err(aio(path))?;
                let size = w.written();
                let (digest, new) = w.commit()?;
                if new {
                    undo.blobs.insert(digest.clone());
                }
                c.files.insert(name, (digest, size));
            }
            tar::EntryType::Symlink => {
                let t = link();
                c.files.remove(&name);
                c.symlinks.insert(name, t);
            }
            tar::EntryType::Link => {
                let t = link();
                c.files.remove(&name);
                c.hardlinks.insert(name, t);
            }
            _ => {}
        }
    }
    Ok(c)
}

/// Compression of a stored blob, from its first bytes.
fn blob_compression(store: &Store, digest: &Digest) -> Result<Compression, ArchiveError> {
    let mut r = store.open_blob(digest)?;
    let mut magic = [0u8; 8];
    let mut n = 0;
    while n < magic.len() {
        let got = r.read(&mut magic[n..]).map_err(|source| ArchiveError::Io {
            path: store.blob_path(digest),
            source,
        })?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Compression::detect(&magic[..n]).map_err(|e| ArchiveError::Config {
        path: digest.to_string(),
        reason: e.to_string(),
    })
}

/// One image of the archive, checked and ready to record.
struct Planned {
    config: Descriptor,
    layers: Vec<Descriptor>,
    diff_ids: Vec<Digest>,
    names: Vec<String>,
}

/// Import the docker-archive `path` (a plain tar; see [`ArchiveFile`])
/// into the store (see the module docs).
pub fn import(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, ArchiveError> {
    let _lock = store.lock_shared()?;
    store.clean_temp()?;
    let mut undo = Undo {
        store,
        blobs: BTreeSet::new(),
        layers: Vec::new(),
        done: false,
    };
    let contents = read_contents(store, path, &mut undo)?;
    let Some(mdata) = &contents.manifest else {
        return Err(ArchiveError::NotAnArchive {
            path: path.to_path_buf(),
            reason: "no manifest.json in it".into(),
        });
    };
    let items: Vec<ManifestItem> =
        serde_json::from_slice(mdata).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    if items.is_empty() {
        return Err(ArchiveError::Manifest("lists no images".into()));
    }

    // Check everything before changing anything visible.
    let mut plans = Vec::new();
    for item in &items {
        let (cdigest, csize) = contents.resolve("config", &item.config)?;
        if csize > MAX_METADATA_SIZE {
            return Err(ArchiveError::Config {
                path: item.config.clone(),
                reason: format!("larger than {MAX_METADATA_SIZE} bytes"),
            });
        }
        let cdata = store.read_blob(&cdigest, MAX_METADATA_SIZE)?;
        let config: ConfigSummary =
            serde_json::from_slice(&cdata).map_err(|e| ArchiveError::Config {
                path: item.config.clone(),
                reason: e.to_string(),
            })?;
        if config.rootfs.diff_ids.len() != item.layers.len() {
            return Err(ArchiveError::Config {
                path: item.config.clone(),
                reason: format!(
                    "lists {} diff_ids but manifest.json lists {} layers",
                    config.rootfs.diff_ids.len(),
                    item.layers.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (lpath, diff_id) in item.layers.iter().zip(&config.rootfs.diff_ids) {
            let (digest, size) = contents.resolve("layer", lpath)?;
            let compression = blob_compression(store, &digest)?;
            if compression == Compression::None && &digest != diff_id {
                return Err(ArchiveError::DiffIdMismatch {
                    path: lpath.clone(),
                    expected: diff_id.clone(),
                    actual: digest,
                });
            }
            let media_type = match compression {
                Compression::None => MEDIA_TYPE_DOCKER_LAYER,
                Compression::Gzip => MEDIA_TYPE_DOCKER_LAYER_GZIP,
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            layers.push(Descriptor {
                media_type: media_type.into(),
                digest,
                size,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }
        let mut names = Vec::new();
        for t in item.repo_tags.iter().flatten() {
            let n = (opts.normalize_name)(t).map_err(|reason| ArchiveError::InvalidName {
                name: t.clone(),
                reason,
            })?;
            if !names.contains(&n) {
                names.push(n);
            }
        }
        plans.push(Planned {
            config: Descriptor {
                media_type: MEDIA_TYPE_DOCKER_CONFIG.into(),
                digest: cdigest,
                size: csize,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers,
            diff_ids: config.rootfs.diff_ids,
            names,
        });
    }

    // Unpack every layer (compressed ones are checked against their DiffID here).
    for (plan, item) in plans.iter().zip(&items) {
        for ((l, diff_id), lpath) in plan.layers.iter().zip(&plan.diff_ids).zip(&item.layers) {
            match store.unpack_layer(&l.digest, Some(&l.media_type), Some(diff_id), &opts.unpack) {
                Ok((_, true)) => undo.layers.push(diff_id.clone()),
                Ok((_, false)) => {}
                Err(StoreError::DiffIdMismatch {
                    expected, actual, ..
                }) => {
                    return Err(ArchiveError::DiffIdMismatch {
                        path: lpath.clone(),
                        expected,
                        actual,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    // Write manifests, then record the images.
    let mut manifests = Vec::new();
    for plan in &plans {
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(oci_layout::MEDIA_TYPE_DOCKER_MANIFEST.into()),
            config: plan.config.clone(),
            layers: plan.layers.clone(),
            annotations: BTreeMap::new(),
        };
        let data = serde_json::to_vec(&manifest)
            .map_err(|e| ArchiveError::Manifest(format!("encoding image manifest: {e}")))?;
        let (digest, new) = store.put_blob_bytes(&data, None)?;
        if new {
            undo.blobs.insert(digest.clone());
        }
        manifests.push(Descriptor {
            media_type: oci_layout::MEDIA_TYPE_DOCKER_MANIFEST.into(),
            digest,
            size: data.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        });
    }
    let mut report = ImportReport::default();
    for (plan, mdesc) in plans.iter().zip(&manifests) {
        let (image, _) = oci_layout::commit_image(store, mdesc, &plan.names, Some(&opts.unpack))?;
        report.images.push(LoadedImage {
            image,
            names: plan.names.clone(),
        });
    }
    undo.done = true;

    // Drop blobs the archive carried that no image uses (legacy v1 files).
    let used: BTreeSet<&Digest> = manifests
        .iter()
        .map(|m| &m.digest)
        .chain(plans.iter().map(|p| &p.config.digest))
        .chain(
            plans
                .iter()
                .flat_map(|p| p.layers.iter().map(|l| &l.digest)),
        )
        .collect();
    for d in &undo.blobs {
        if used.contains(d) {
            report.new_blobs.push(d.clone());
        } else {
            let _ = store.remove_blob(d);
        }
    }
    report.new_layers = std::mem::take(&mut undo.layers);
    Ok(report)
}

// ------------------------------------------------------------------ export

/// One image to put in a docker-archive.
#[derive(Debug, Clone)]
pub struct ExportImage {
    /// Name, id or digest of the image in the store.
    pub reference: String,
    /// `RepoTags` to record (may be empty).
    pub tags: Vec<String>,
}

fn tar_header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o444
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// The legacy v1 id of a layer: a hash of its parent's id, its DiffID and,
/// for an image's top layer, the config digest.
fn v1_id(parent: Option<&str>, diff_id: &Digest, config: Option<&Digest>) -> String {
    let mut s = format!("{}\n{diff_id}", parent.unwrap_or(""));
    if let Some(c) = config {
        s.push('\n');
        s.push_str(&c.to_string());
    }
    Digest::of(s.as_bytes()).hex().to_string()
}

/// Split `repo:tag` (a digest reference has no tag: `None`).
fn split_tag(name: &str) -> Option<(&str, &str)> {
    if name.contains('@') {
        return None;
    }
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let colon = name[slash..].rfind(':')? + slash;
    Some((&name[..colon], &name[colon + 1..]))
}

/// Write `images` as a docker-archive to `out` (see the module docs).
/// Layers are written uncompressed: a compressed layer blob is
/// decompressed into the store's temp dir first (and checked against its
/// DiffID). Blobs are verified as they are read. Returns `out`.
pub fn export<W: Write>(store: &Store, images: &[ExportImage], out: W) -> Result<W, ArchiveError> {
    let werr = |source| ArchiveError::Io {
        path: PathBuf::from("<docker-archive output>"),
        source,
    };
    let mut b = tar::Builder::new(out);
    let mut written_layers: BTreeSet<Digest> = BTreeSet::new();
    let mut written_v1: BTreeSet<String> = BTreeSet::new();
    let mut written_configs: BTreeSet<Digest> = BTreeSet::new();
    let mut items = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        let rec = store.resolve(&img.reference)?;
        let cdata = store.read_blob(&rec.id, MAX_METADATA_SIZE)?;
        let config: serde_json::Value =
            serde_json::from_slice(&cdata).map_err(|e| ArchiveError::Config {
                path: rec.id.to_string(),
                reason: e.to_string(),
            })?;
        let mut layer_names = Vec::new();
        let mut parent: Option<String> = None;
        for (i, (blob, diff_id)) in rec.layers.iter().zip(&rec.diff_ids).enumerate() {
            let lname = format!("{}.tar", diff_id.hex());
            if written_layers.insert(diff_id.clone()) {
                write_layer(store, &mut b, &lname, blob, diff_id)?;
            }
            let top = i + 1 == rec.layers.len();
            let id = v1_id(parent.as_deref(), diff_id, top.then_some(&rec.id));
            if written_v1.insert(id.clone()) {
                let mut v1 = serde_json::json!({
                    "id": id,
                    "created": "1970-01-01T00:00:00Z",
                    "os": config.get("os").cloned().unwrap_or_else(|| "linux".into()),
                });
                if let Some(p) = &parent {
                    v1["parent"] = serde_json::json!(p);
                }
                if top {
                    for k in ["architecture", "config", "created"] {
                        if let Some(v) = config.get(k) {
                            v1[k] = v.clone();
                        }
                    }
                }
                let v1data =
                    serde_json::to_vec(&v1).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
                let mut h = tar_header(tar::EntryType::Directory, 0);
                b.append_data(&mut h, format!("{id}/"), io::empty())
                    .map_err(werr)?;
                let mut h = tar_header(tar::EntryType::Regular, 3);
                b.append_data(&mut h, format!("{id}/VERSION"), &b"1.0"[..])
                    .map_err(werr)?;
                let mut h = tar_header(tar::EntryType::Regular, v1data.len() as u64);
                b.append_data(&mut h, format!("{id}/json"), v1data.as_slice())
                    .map_err(werr)?;
                let mut h = tar_header(tar::EntryType::Symlink, 0);
                b.append_link(&mut h, format!("{id}/layer.tar"), format!("../{lname}"))
                    .map_err(werr)?;
            }
            parent = Some(id);
            layer_names.push(lname);
        }
        let cname = format!("{}.json", rec.id.hex());
        if written_configs.insert(rec.id.clone()) {
            let mut h = tar_header(tar::EntryType::Regular, cdata.len() as u64);
            b.append_data(&mut h, &cname, cdata.as_slice())
                .map_err(werr)?;
        }
        for t in &img.tags {
            if let (Some((repo, tag)), Some(top)) = (split_tag(t), &parent) {
                repositories
                    .entry(repo.to_string())
                    .or_default()
                    .insert(tag.to_string(), top.clone());
            }
        }
        items.push(ManifestItem {
            config: cname,
            repo_tags: Some(img.tags.clone()),
            layers: layer_names,
        });
    }
    let mdata = serde_json::to_vec(&items).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    let mut h = tar_header(tar::EntryType::Regular, mdata.len() as u64);
    b.append_data(&mut h, "manifest.json", mdata.as_slice())
        .map_err(werr)?;
    let rdata =
        serde_json::to_vec(&repositories).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    let mut h = tar_header(tar::EntryType::Regular, rdata.len() as u64);
    b.append_data(&mut h, "repositories", rdata.as_slice())
        .map_err(werr)?;
    b.into_inner().map_err(werr)
}

/// Append one layer, uncompressed, as `name`.
fn write_layer<W: Write>(
    store: &Store,
    builder: &mut tar::Builder<W>,
    name: &str,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<(), ArchiveError> {
    let werr = |source| ArchiveError::Io {
        path: PathBuf::from("<docker-archive output>"),
        source,
    };
    let bpath = store.blob_path(blob);
    if blob == diff_id {
        // Stored uncompressed: stream it, verified at EOF.
        let size = store.blob_size(blob)?;
        let mut reader = store.open_blob(blob)?;
        let mut h = tar_header(tar::EntryType::Regular, size);
        builder
            .append_data(&mut h, name, &mut reader)
            .map_err(werr)?;
        io::copy(&mut reader, &mut io::sink()).map_err(aio(&bpath))?;
        return Ok(());
    }
    let compression = blob_compression(store, blob)?;
    let blob_reader = BufReader::new(store.open_blob(blob)?);
    let mut tmp = StoreTempFile::new(store, "layer-export")?;
    let mut decoded =
        HashingReader::new(decompressor(compression, blob_reader).map_err(aio(&bpath))?);
    io::copy(&mut decoded, tmp.file()).map_err(|source| ArchiveError::Io {
        path: bpath.clone(),
        source: io::Error::new(
            source.kind(),
            format!(
                "decompressing layer: {}",
                LayerError::Stream {
                    compression: "blob",
                    source
                }
            ),
        ),
    })?;
    let size = decoded.len();
    let (actual, _) = decoded.finish();
    if &actual != diff_id {
        return Err(ArchiveError::DiffIdMismatch {
            path: blob.to_string(),
            expected: diff_id.clone(),
            actual,
        });
    }
    let spooled = File::open(tmp.path()).map_err(aio(tmp.path()))?;
    let mut h = tar_header(tar::EntryType::Regular, size);
    builder.append_data(&mut h, name, spooled).map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_and_tags() {
        assert_eq!(normalize("./a/b/../c.tar").as_deref(), Some("a/c.tar"));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("a/../../x"), None);
        assert_eq!(normalize("/etc/passwd"), None);
        assert_eq!(split_tag("localhost/x:1"), Some(("localhost/x", "1")));
        assert_eq!(split_tag("reg:5000/a/b:tag"), Some(("reg:5000/a/b", "tag")));
        assert_eq!(split_tag("reg:5000/a/b"), None);
        assert_eq!(split_tag("a/b@sha256:00"), None);
    }
}
