//! OCI image layout import/export and overlay snapshots.
//!
//! [`import`] reads an OCI image layout (a directory or a tarball holding
//! `oci-layout`, `index.json` and `blobs/`), selects one image manifest
//! (platform matching through nested indexes, or a `ref.name` annotation),
//! copies the blobs it needs into the store (each verified against its
//! digest and size), unpacks its layers and records the image. Any failure
//! removes the blobs and layers this import added, so the store is left as
//! it was. [`export`] writes an image back as a layout; [`snapshot`] returns
//! an image's unpacked layer dirs as overlay lowerdirs, top layer first.
//! [`commit_image`] (record an image whose blobs are in the store) is the
//! step an import shares with registry pulls.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::layer::UnpackOptions;
use crate::store::{ImageRecord, Store, StoreError, MAX_METADATA_SIZE};

/// OCI image index media type.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema2 manifest list.
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema2 manifest.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The annotation naming an image in a layout's index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Errors of OCI layout import/export and snapshots.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing a layout file failed.
    #[error("OCI layout {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Not an OCI layout (missing or wrong `oci-layout`).
    #[error("{path}: not an OCI image layout: {reason}")]
    NotALayout {
        /// The layout path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A blob a descriptor points to is absent.
    #[error("blob {digest} ({what}) is missing")]
    MissingBlob {
        /// The digest.
        digest: Digest,
        /// Which descriptor pointed to it.
        what: &'static str,
    },
    /// A manifest, index or config is larger than allowed.
    #[error("{what} {digest} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The kind of document.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// Its (claimed or actual) size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A blob's size differs from its descriptor.
    #[error("blob {digest}: descriptor says {expected} bytes, blob has {actual}")]
    SizeMismatch {
        /// The digest.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The blob's size.
        actual: u64,
    },
    /// A JSON document could not be parsed.
    #[error("{what} {name}: invalid JSON: {source}")]
    Json {
        /// The kind of document.
        what: &'static str,
        /// Its digest or file name.
        name: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A media type barge does not handle where a manifest or index is expected.
    #[error("descriptor {digest}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// The digest.
        digest: Digest,
        /// The media type.
        media_type: String,
    },
    /// No manifest matches the requested platform or name.
    #[error("no image in the layout matches {wanted}; available: {available}")]
    NoMatch {
        /// What was asked for.
        wanted: String,
        /// What the index offers.
        available: String,
    },
    /// Layer count differs from the config's DiffID count.
    #[error("manifest {manifest}: {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCount {
        /// The manifest digest.
        manifest: Digest,
        /// Layers in the manifest.
        layers: usize,
        /// DiffIDs in the config.
        diff_ids: usize,
    },
    /// Nested indexes deeper than allowed.
    #[error("image index nesting deeper than {0}")]
    TooDeep(usize),
}

fn lio(path: &Path) -> impl FnOnce(io::Error) -> LayoutError {
    let path = path.to_path_buf();
    move |source| LayoutError::Io { path, source }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// Content digest.
    pub digest: Digest,
    /// Content size in bytes.
    pub size: u64,
    /// Platform (in indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A platform (OS, architecture, variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (GOARCH names: amd64, arm64, arm, ...).
    pub architecture: String,
    /// Operating system (linux).
    pub os: String,
    /// Architecture variant (v7, v8, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Default for Platform {
    /// linux/amd64.
    fn default() -> Self {
        Self {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            os_version: None,
        }
    }
}

impl Platform {
    /// Whether `other` (from an index) fits this wanted platform. A wanted
    /// variant must match exactly; without one, any variant matches, but
    /// arm64 prefers v8 (see [`Platform::score`]).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match &self.variant {
                Some(v) => {
                    other.variant.as_deref() == Some(v.as_str())
                        || (self.architecture == "arm64" && v == "v8" && other.variant.is_none())
                }
                None => true,
            }
    }

    /// Preference among matching entries (higher is better): an exact
    /// variant, then no variant, then the architecture's default variant.
    fn score(&self, other: &Platform) -> u8 {
        match (&self.variant, &other.variant) {
            (Some(a), Some(b)) if a == b => 3,
            (_, None) => 2,
            (None, Some(v))
                if (self.architecture == "arm64" && v == "v8")
                    || (self.architecture == "arm" && v == "v7") =>
            {
                1
            }
            _ => 0,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image index (also a layout's `index.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// 2.
    pub schema_version: u32,
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Manifests (or nested indexes).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// 2.
    pub schema_version: u32,
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The parts of an image config the store needs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigSummary {
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// Root filesystem.
    #[serde(default)]
    pub rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    /// "layers".
    #[serde(rename = "type", default)]
    pub kind: String,
    /// DiffIDs, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// Import options.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Platform to select from indexes (default linux/amd64).
    pub platform: Platform,
    /// Select the `index.json` entry with this `org.opencontainers.image.ref.name`.
    pub ref_name: Option<String>,
    /// Names to give the imported image.
    pub names: Vec<String>,
    /// Unpack the layers now.
    pub unpack: bool,
    /// Options for unpacking.
    pub unpack_options: UnpackOptions,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            platform: Platform::default(),
            ref_name: None,
            names: Vec::new(),
            unpack: true,
            unpack_options: UnpackOptions::for_current_user(),
        }
    }
}

/// What an import added.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The image record as stored.
    pub image: ImageRecord,
    /// Blobs new in the store.
    pub new_blobs: Vec<Digest>,
    /// Layers newly unpacked.
    pub new_layers: Vec<Digest>,
}

/// Where an import reads blobs from.
enum Source {
    /// A layout directory.
    Dir(PathBuf),
    /// Blobs already streamed into the store from a layout tarball.
    Store,
}

/// Tracks what an import added, to undo it on failure.
struct Txn<'a> {
    store: &'a Store,
    source: Source,
    new_blobs: Vec<Digest>,
    done: bool,
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if !self.done {
            for d in &self.new_blobs {
                let _ = self.store.remove_blob(d);
            }
        }
    }
}

impl Txn<'_> {
    /// Make `desc`'s blob present in the store, verified.
    fn fetch(&mut self, desc: &Descriptor, what: &'static str) -> Result<(), LayoutError> {
        match &self.source {
            Source::Store => {
                if !self.store.has_blob(&desc.digest) {
                    return Err(LayoutError::MissingBlob {
                        digest: desc.digest.clone(),
                        what,
                    });
                }
            }
            Source::Dir(dir) => {
                if self.store.has_blob(&desc.digest) {
                    // Present already: verified when written.
                } else {
                    let path = dir.join("blobs/sha256").join(desc.digest.hex());
                    let f = match File::open(&path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            return Err(LayoutError::MissingBlob {
                                digest: desc.digest.clone(),
                                what,
                            })
                        }
                        Err(e) => return Err(lio(&path)(e)),
                    };
                    // Refuse before copying when the size is wrong, and never
                    // copy more than the descriptor claims.
                    let actual = f.metadata().map_err(lio(&path))?.len();
                    if actual != desc.size {
                        return Err(LayoutError::SizeMismatch {
                            digest: desc.digest.clone(),
                            expected: desc.size,
                            actual,
                        });
                    }
                    let (_, new) = self.store.put_blob(f.take(desc.size), Some(&desc.digest))?;
                    if new {
                        self.new_blobs.push(desc.digest.clone());
                    }
                }
            }
        }
        let actual = self.store.blob_size(&desc.digest)?;
        if actual != desc.size {
            return Err(LayoutError::SizeMismatch {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual,
            });
        }
        Ok(())
    }

    /// Fetch and read a small JSON document (manifest, index, config).
    fn fetch_json(
        &mut self,
        desc: &Descriptor,
        what: &'static str,
    ) -> Result<Vec<u8>, LayoutError> {
        if desc.size > MAX_METADATA_SIZE {
            return Err(LayoutError::TooLarge {
                what,
                digest: desc.digest.clone(),
                size: desc.size,
                limit: MAX_METADATA_SIZE,
            });
        }
        self.fetch(desc, what)?;
        Ok(self.store.read_blob(&desc.digest, MAX_METADATA_SIZE)?)
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    data: &[u8],
    what: &'static str,
    name: String,
) -> Result<T, LayoutError> {
    serde_json::from_slice(data).map_err(|source| LayoutError::Json { what, name, source })
}

fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST
}

fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

fn describe(manifests: &[Descriptor]) -> String {
    if manifests.is_empty() {
        return "nothing".into();
    }
    manifests
        .iter()
        .map(|d| {
            let mut s = d
                .platform
                .as_ref()
                .map_or_else(|| "(no platform)".to_string(), ToString::to_string);
            if let Some(r) = d.annotations.get(ANNOTATION_REF_NAME) {
                s = format!("{s} {r:?}");
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pick the manifest descriptor for `opts` from an index, descending into
/// nested indexes.
fn select(
    txn: &mut Txn<'_>,
    index: &ImageIndex,
    opts: &ImportOptions,
    depth: usize,
) -> Result<Descriptor, LayoutError> {
    if depth > 4 {
        return Err(LayoutError::TooDeep(4));
    }
    let mut candidates: Vec<&Descriptor> = index.manifests.iter().collect();
    if depth == 0 {
        if let Some(r) = &opts.ref_name {
            candidates.retain(|d| d.annotations.get(ANNOTATION_REF_NAME) == Some(r));
            if candidates.is_empty() {
                return Err(LayoutError::NoMatch {
                    wanted: format!("ref.name {r:?}"),
                    available: describe(&index.manifests),
                });
            }
        }
    }
    // Platform-tagged entries that match, best first.
    let mut matching: Vec<&Descriptor> = candidates
        .iter()
        .copied()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| opts.platform.matches(p))
        })
        .collect();
    matching.sort_by_key(|d| {
        std::cmp::Reverse(d.platform.as_ref().map_or(0, |p| opts.platform.score(p)))
    });
    let chosen = if let Some(d) = matching.first() {
        (*d).clone()
    } else {
        // Entries without platform: a single manifest or nested index (the
        // usual shape of a layout's index.json); its config is checked below.
        let untagged: Vec<&Descriptor> = candidates
            .iter()
            .copied()
            .filter(|d| d.platform.is_none())
            .collect();
        match untagged.as_slice() {
            [one] => (*one).clone(),
            _ => {
                return Err(LayoutError::NoMatch {
                    wanted: format!("platform {}", opts.platform),
                    available: describe(&index.manifests),
                })
            }
        }
    };
    if is_index(&chosen.media_type) {
        let data = txn.fetch_json(&chosen, "image index")?;
        let nested: ImageIndex = parse(&data, "image index", chosen.digest.to_string())?;
        return select(txn, &nested, opts, depth + 1);
    }
    if chosen.media_type.is_empty() || is_manifest(&chosen.media_type) {
        Ok(chosen)
    } else {
        Err(LayoutError::UnsupportedMediaType {
            digest: chosen.digest,
            media_type: chosen.media_type,
        })
    }
}

fn read_limited(path: &Path, what: &'static str) -> Result<Vec<u8>, LayoutError> {
    let f = File::open(path).map_err(lio(path))?;
    let mut data = Vec::new();
    f.take(MAX_METADATA_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(lio(path))?;
    if data.len() as u64 > MAX_METADATA_SIZE {
        return Err(LayoutError::TooLarge {
            what,
            digest: Digest::of(&data),
            size: data.len() as u64,
            limit: MAX_METADATA_SIZE,
        });
    }
    Ok(data)
}

fn check_oci_layout(data: &[u8], path: &Path) -> Result<(), LayoutError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct OciLayout {
        image_layout_version: String,
    }
    let l: OciLayout = serde_json::from_slice(data).map_err(|e| LayoutError::NotALayout {
        path: path.to_path_buf(),
        reason: format!("oci-layout: {e}"),
    })?;
    if l.image_layout_version != "1.0.0" {
        return Err(LayoutError::NotALayout {
            path: path.to_path_buf(),
            reason: format!(
                "unsupported imageLayoutVersion {:?}",
                l.image_layout_version
            ),
        });
    }
    Ok(())
}

/// Import an OCI image layout (directory or tarball) into the store.
pub fn import(
    store: &Store,
    layout: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, LayoutError> {
    let _lock = store.lock_shared()?;
    store.clean_temp()?;
    let meta = fs::metadata(layout).map_err(lio(layout))?;
    let mut txn = Txn {
        store,
        source: Source::Store,
        new_blobs: Vec::new(),
        done: false,
    };
    let index_data = if meta.is_dir() {
        let ol = layout.join("oci-layout");
        let data = fs::read(&ol).map_err(|e| LayoutError::NotALayout {
            path: layout.to_path_buf(),
            reason: format!("oci-layout: {e}"),
        })?;
        check_oci_layout(&data, layout)?;
        txn.source = Source::Dir(layout.to_path_buf());
        read_limited(&layout.join("index.json"), "index.json")?
    } else {
        read_layout_tar(&mut txn, layout)?
    };
    let index: ImageIndex = parse(
        &index_data,
        "index.json",
        layout.join("index.json").display().to_string(),
    )?;
    let mdesc = select(&mut txn, &index, opts, 0)?;
    let mdata = txn.fetch_json(&mdesc, "manifest")?;
    let manifest: ImageManifest = parse(&mdata, "manifest", mdesc.digest.to_string())?;
    let cdata = txn.fetch_json(&manifest.config, "config")?;
    let config: ConfigSummary = parse(&cdata, "config", manifest.config.digest.to_string())?;
    if mdesc.platform.is_none() && !config.os.is_empty() {
        let p = Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
            os_version: None,
        };
        if !opts.platform.matches(&p) {
            return Err(LayoutError::NoMatch {
                wanted: format!("platform {}", opts.platform),
                available: p.to_string(),
            });
        }
    }
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(LayoutError::LayerCount {
            manifest: mdesc.digest.clone(),
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    for l in &manifest.layers {
        txn.fetch(l, "layer")?;
    }
    let (image, new_layers) = commit_image(
        store,
        &mdesc,
        &opts.names,
        opts.unpack.then_some(&opts.unpack_options),
    )?;
    txn.done = true;
    Ok(ImportReport {
        image,
        new_blobs: std::mem::take(&mut txn.new_blobs),
        new_layers,
    })
}

/// Record an image whose manifest, config and layer blobs are all in the
/// store already (the last step of an import or a registry pull): the
/// manifest and config are read (verified, size-limited), every layer blob
/// is checked present with its descriptor's size, layers are unpacked when
/// `unpack` is given (DiffIDs checked against the config; layers unpacked
/// here are removed again if a later one fails), and the image record is
/// added with `names`. Returns the record and the newly unpacked DiffIDs.
pub fn commit_image(
    store: &Store,
    manifest_desc: &Descriptor,
    names: &[String],
    unpack: Option<&UnpackOptions>,
) -> Result<(ImageRecord, Vec<Digest>), LayoutError> {
    if manifest_desc.size > MAX_METADATA_SIZE {
        return Err(LayoutError::TooLarge {
            what: "manifest",
            digest: manifest_desc.digest.clone(),
            size: manifest_desc.size,
            limit: MAX_METADATA_SIZE,
        });
    }
    let missing = |what: &'static str| {
        move |e: StoreError| match e {
            StoreError::BlobNotFound(digest) => LayoutError::MissingBlob { digest, what },
            e => e.into(),
        }
    };
    let mdata = store
        .read_blob(&manifest_desc.digest, MAX_METADATA_SIZE)
        .map_err(missing("manifest"))?;
    let manifest: ImageManifest = parse(&mdata, "manifest", manifest_desc.digest.to_string())?;
    let cdata = store
        .read_blob(&manifest.config.digest, MAX_METADATA_SIZE)
        .map_err(missing("config"))?;
    let config: ConfigSummary = parse(&cdata, "config", manifest.config.digest.to_string())?;
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(LayoutError::LayerCount {
            manifest: manifest_desc.digest.clone(),
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    for l in &manifest.layers {
        if !store.has_blob(&l.digest) {
            return Err(LayoutError::MissingBlob {
                digest: l.digest.clone(),
                what: "layer",
            });
        }
        let actual = store.blob_size(&l.digest)?;
        if actual != l.size {
            return Err(LayoutError::SizeMismatch {
                digest: l.digest.clone(),
                expected: l.size,
                actual,
            });
        }
    }
    let mut new_layers: Vec<Digest> = Vec::new();
    if let Some(uopts) = unpack {
        for (l, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            match store.unpack_layer(&l.digest, Some(&l.media_type), Some(diff_id), uopts) {
                Ok((_, true)) => new_layers.push(diff_id.clone()),
                Ok((_, false)) => {}
                Err(e) => {
                    for d in &new_layers {
                        let _ = store.remove_layer(d);
                    }
                    return Err(e.into());
                }
            }
        }
    }
    let record = ImageRecord {
        id: manifest.config.digest.clone(),
        manifest: manifest_desc.digest.clone(),
        manifest_media_type: manifest.media_type.clone().unwrap_or_else(|| {
            if manifest_desc.media_type.is_empty() {
                MEDIA_TYPE_MANIFEST.into()
            } else {
                manifest_desc.media_type.clone()
            }
        }),
        names: names.to_vec(),
        layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        diff_ids: config.rootfs.diff_ids.clone(),
        created: 0,
    };
    if let Err(e) = store.add_image(record) {
        for d in &new_layers {
            let _ = store.remove_layer(d);
        }
        return Err(e.into());
    }
    let image = store.resolve(&manifest_desc.digest.to_string())?;
    Ok((image, new_layers))
}

/// Stream a layout tarball: blobs go straight into the store (verified
/// against their file names), `oci-layout` is checked, `index.json` returned.
fn read_layout_tar(txn: &mut Txn<'_>, path: &Path) -> Result<Vec<u8>, LayoutError> {
    let f = File::open(path).map_err(lio(path))?;
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    let mut index = None;
    let mut seen_layout = false;
    for entry in ar.entries().map_err(lio(path))? {
        let mut entry = entry.map_err(lio(path))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = name.trim_start_matches("./");
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        match name {
            "oci-layout" => {
                let mut data = Vec::new();
                (&mut entry)
                    .take(4096)
                    .read_to_end(&mut data)
                    .map_err(lio(path))?;
                check_oci_layout(&data, path)?;
                seen_layout = true;
            }
            "index.json" => {
                let mut data = Vec::new();
                (&mut entry)
                    .take(MAX_METADATA_SIZE + 1)
                    .read_to_end(&mut data)
                    .map_err(lio(path))?;
                if data.len() as u64 > MAX_METADATA_SIZE {
                    return Err(LayoutError::TooLarge {
                        what: "index.json",
                        digest: Digest::of(&data),
                        size: data.len() as u64,
                        limit: MAX_METADATA_SIZE,
                    });
                }
                index = Some(data);
            }
            n => {
                if let Some(hex) = n.strip_prefix("blobs/sha256/") {
                    let Ok(d) = Digest::from_hex(hex) else {
                        continue;
                    };
                    let (_, new) = txn.store.put_blob(&mut entry, Some(&d))?;
                    if new {
                        txn.new_blobs.push(d);
                    }
                }
            }
        }
    }
    if !seen_layout {
        return Err(LayoutError::NotALayout {
            path: path.to_path_buf(),
            reason: "no oci-layout file in the archive".into(),
        });
    }
    index.ok_or_else(|| LayoutError::NotALayout {
        path: path.to_path_buf(),
        reason: "no index.json in the archive".into(),
    })
}

/// Export image `reference` as an OCI layout directory at `dest` (created
/// if needed; an existing layout there gets the image added to its index).
/// `ref_name` becomes the `org.opencontainers.image.ref.name` annotation.
pub fn export(
    store: &Store,
    reference: &str,
    dest: &Path,
    ref_name: Option<&str>,
) -> Result<Descriptor, LayoutError> {
    let img = store.resolve(reference)?;
    let blobs = dest.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(lio(&blobs))?;
    fs::write(
        dest.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .map_err(lio(dest))?;
    for d in std::iter::once(&img.manifest)
        .chain(std::iter::once(&img.id))
        .chain(&img.layers)
    {
        let out = blobs.join(d.hex());
        if out.exists() {
            continue;
        }
        let tmp = blobs.join(format!(".{}.tmp", d.hex()));
        let mut r = store.open_blob(d)?;
        let mut w = File::create(&tmp).map_err(lio(&tmp))?;
        let copied = io::copy(&mut r, &mut w).and_then(|_| w.sync_all());
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            return Err(lio(&tmp)(e));
        }
        fs::rename(&tmp, &out).map_err(lio(&out))?;
    }
    let mut desc = Descriptor {
        media_type: img.manifest_media_type.clone(),
        digest: img.manifest.clone(),
        size: store.blob_size(&img.manifest)?,
        platform: None,
        annotations: BTreeMap::new(),
    };
    if let Some(r) = ref_name {
        desc.annotations
            .insert(ANNOTATION_REF_NAME.into(), r.into());
    }
    let index_path = dest.join("index.json");
    let mut index = match fs::read(&index_path) {
        Ok(data) => parse::<ImageIndex>(&data, "index.json", index_path.display().to_string())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.into()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        },
        Err(e) => return Err(lio(&index_path)(e)),
    };
    if let Some(r) = ref_name {
        index
            .manifests
            .retain(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(r));
    }
    index.manifests.push(desc.clone());
    let data = serde_json::to_vec_pretty(&index).map_err(|source| LayoutError::Json {
        what: "index.json",
        name: index_path.display().to_string(),
        source,
    })?;
    let tmp = dest.join(".index.json.tmp");
    fs::write(&tmp, data).map_err(lio(&tmp))?;
    fs::rename(&tmp, &index_path).map_err(lio(&index_path))?;
    Ok(desc)
}

/// Export image `reference` as an OCI layout tarball (`oci-archive`)
/// written to `out`: `oci-layout`, `index.json` (one manifest, annotated
/// with `ref_name` when given) and the image's blobs, streamed from the
/// store and verified as they are read.
pub fn export_tar<W: io::Write>(
    store: &Store,
    reference: &str,
    out: W,
    ref_name: Option<&str>,
) -> Result<Descriptor, LayoutError> {
    let img = store.resolve(reference)?;
    let mut desc = Descriptor {
        media_type: img.manifest_media_type.clone(),
        digest: img.manifest.clone(),
        size: store.blob_size(&img.manifest)?,
        platform: None,
        annotations: BTreeMap::new(),
    };
    if let Some(r) = ref_name {
        desc.annotations
            .insert(ANNOTATION_REF_NAME.into(), r.into());
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.into()),
        manifests: vec![desc.clone()],
        annotations: BTreeMap::new(),
    };
    let index_data = serde_json::to_vec(&index).map_err(|source| LayoutError::Json {
        what: "index.json",
        name: "index.json".into(),
        source,
    })?;
    let werr = |source| LayoutError::Io {
        path: PathBuf::from("<oci archive>"),
        source,
    };
    let mut b = tar::Builder::new(out);
    let append = |b: &mut tar::Builder<W>, name: &str, size: u64, data: &mut dyn Read| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if name.ends_with('/') { 0o755 } else { 0o644 });
        h.set_size(size);
        h.set_mtime(0);
        b.append_data(&mut h, name, data)
    };
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append(&mut b, "oci-layout", layout.len() as u64, &mut &layout[..]).map_err(werr)?;
    append(
        &mut b,
        "index.json",
        index_data.len() as u64,
        &mut &index_data[..],
    )
    .map_err(werr)?;
    append(&mut b, "blobs/", 0, &mut io::empty()).map_err(werr)?;
    append(&mut b, "blobs/sha256/", 0, &mut io::empty()).map_err(werr)?;
    let mut seen = std::collections::BTreeSet::new();
    for d in std::iter::once(&img.manifest)
        .chain(std::iter::once(&img.id))
        .chain(&img.layers)
    {
        if !seen.insert(d.clone()) {
            continue;
        }
        let size = store.blob_size(d)?;
        let mut r = store.open_blob(d)?;
        append(&mut b, &format!("blobs/sha256/{}", d.hex()), size, &mut r).map_err(werr)?;
        // The tar builder reads exactly `size` bytes; reach EOF to verify.
        io::copy(&mut r, &mut io::sink()).map_err(werr)?;
    }
    b.into_inner().map_err(werr)?;
    Ok(desc)
}

/// The unpacked layer dirs of image `reference`, top layer first (the
/// order of overlayfs `lowerdir=`), unpacking layers not yet unpacked.
pub fn snapshot(
    store: &Store,
    reference: &str,
    opts: &UnpackOptions,
) -> Result<Vec<PathBuf>, LayoutError> {
    let img = store.resolve(reference)?;
    let mut dirs = Vec::with_capacity(img.layers.len());
    for (blob, diff_id) in img.layers.iter().zip(&img.diff_ids) {
        if !store.has_layer(diff_id) {
            let _lock = store.lock_shared()?;
            store.unpack_layer(blob, None, Some(diff_id), opts)?;
        }
        dirs.push(store.layer_path(diff_id));
    }
    dirs.reverse();
    Ok(dirs)
}
