//! The content-addressed local image store.
//!
//! Layout under the root (e.g. `/var/lib/barge/storage`, rootless
//! `~/.local/share/barge/storage`):
//!
//! ```text
//! storage.lock        flock: shared for writers, exclusive for gc
//! images.lock         flock: exclusive while images.json is rewritten
//! images.json         image records (names -> manifest, config, layers)
//! blobs/sha256/<hex>  verified blobs (layers, manifests, configs, indexes)
//! layers/<hex>/       unpacked layers in overlayfs format, by DiffID
//! tmp/                temp blobs (*.partial) and temp layer dirs (layer-*)
//! ```
//!
//! Every write goes to `tmp/` first (flocked by its writer while in
//! progress), is fsynced and verified, then renamed into place, so a killed
//! process leaves only unlocked temp entries, which [`Store::check`] reports
//! and [`Store::clean_temp`] (called by imports and gc) removes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hasher};
use crate::layer::{self, LayerError, UnpackOptions};

/// Largest manifest, index or config the store will read into memory.
pub const MAX_METADATA_SIZE: u64 = 4 * 1024 * 1024;

/// Temp entries younger than this are never treated as stale (a writer
/// creates its temp file and flocks it right after).
const TEMP_GRACE: Duration = Duration::from_secs(2);

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation on a store path failed.
    #[error("image store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The store's root is another user's (no read, write or search
    /// permission).
    #[error(
        "storage root {path}: {source}: it is another user's store (every user has their own; --root chooses one)"
    )]
    NotAccessible {
        /// The root.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Content did not hash to the digest it was stored or requested under.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// A blob is not in the store.
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    /// A blob exceeded the size the caller allows.
    #[error("blob {digest} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// The limit in bytes.
        limit: u64,
    },
    /// No image has this name, id or digest.
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    /// An id prefix matches several images.
    #[error("image reference {0:?} is ambiguous")]
    Ambiguous(String),
    /// `images.json` could not be parsed.
    #[error("image index {path}: {source}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Unpacking a layer blob failed.
    #[error("layer {digest}: {source}")]
    Layer {
        /// The layer blob's digest.
        digest: Digest,
        /// What went wrong.
        #[source]
        source: LayerError,
    },
    /// A layer's uncompressed content does not match the config's DiffID.
    #[error("layer {digest}: DiffID mismatch: config says {expected}, content is {actual}")]
    DiffIdMismatch {
        /// The layer blob's digest.
        digest: Digest,
        /// The DiffID from the image config.
        expected: Digest,
        /// The sha256 of the uncompressed tar.
        actual: Digest,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// One image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image id: the config blob's digest.
    pub id: Digest,
    /// The manifest blob's digest.
    pub manifest: Digest,
    /// The manifest's media type.
    #[serde(default)]
    pub manifest_media_type: String,
    /// Names (e.g. `docker.io/library/busybox:latest`); a name belongs to one image.
    #[serde(default)]
    pub names: Vec<String>,
    /// Layer blob digests, bottom layer first.
    pub layers: Vec<Digest>,
    /// The layers' DiffIDs (sha256 of the uncompressed tar), bottom first.
    pub diff_ids: Vec<Digest>,
    /// Seconds since the epoch when the image was added.
    #[serde(default)]
    pub created: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ImagesFile {
    images: Vec<ImageRecord>,
}

/// What [`Store::check`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Blobs that hash correctly.
    pub ok: usize,
    /// Blobs whose content does not match their name: (name, actual digest).
    pub corrupt: Vec<(Digest, Digest)>,
    /// Blobs referenced by an image but absent.
    pub missing: Vec<Digest>,
    /// Leftover temp files/dirs of interrupted writes.
    pub partial: Vec<PathBuf>,
    /// Files in `blobs/sha256` whose name is not a digest.
    pub stray: Vec<PathBuf>,
}

impl CheckReport {
    /// No corrupt, missing, partial or stray entries.
    pub fn is_healthy(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.partial.is_empty()
            && self.stray.is_empty()
    }
}

/// What [`Store::gc`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Unreferenced blobs removed.
    pub blobs: Vec<Digest>,
    /// Unreferenced layer dirs removed (by DiffID).
    pub layers: Vec<Digest>,
    /// Stale temp entries removed.
    pub temp: Vec<PathBuf>,
}

/// A held flock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _fd: OwnedFd,
}

/// A content-addressed image store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name(prefix: &str, suffix: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}{}-{n}-{t:x}{suffix}", std::process::id())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `remove_dir_all` that also copes with read-only directories inside the
/// tree (an unprivileged user cannot delete from a 0555 directory of a
/// layer): on EACCES, give every directory u+rwx and retry.
fn remove_tree(path: &Path) -> io::Result<()> {
    fn make_writable(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::symlink_metadata(dir) else {
            return;
        };
        if !meta.is_dir() {
            return;
        }
        let mode = meta.permissions().mode();
        if mode & 0o700 != 0o700 {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700));
        }
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    make_writable(&e.path());
                }
            }
        }
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
        r => r,
    }
}

fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    let d = File::open(path).map_err(io_err("open directory", path))?;
    d.sync_all().map_err(io_err("fsync directory", path))
}

impl Store {
    /// Open (creating if needed) a store rooted at `root`.
    /// The root is mode 0700: unpacked layers hold setuid files and device
    /// nodes, and the engine's database beside them the containers'
    /// configurations (environment included), that only the store's owner
    /// may reach. A root of ours that others may list or write (barge
    /// created it 0755 before) is closed to them; search permission alone
    /// (0711, what the engine gives user-namespaced containers) stays.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let root = root.into();
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => {
                use rustix::fs::Access;
                // Another user's (a read-only file system is not refused).
                let rwx = Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK;
                match rustix::fs::access(&root, rwx) {
                    Err(e) if e == rustix::io::Errno::ACCESS || e == rustix::io::Errno::PERM => {
                        return Err(StoreError::NotAccessible {
                            path: root,
                            source: e.into(),
                        });
                    }
                    _ => {}
                }
                let mode = m.permissions().mode() & 0o7777;
                if mode & 0o066 != 0 && m.uid() == rustix::process::geteuid().as_raw() {
                    // Best effort: a read-only store stays readable.
                    let _ = fs::set_permissions(&root, fs::Permissions::from_mode(mode & 0o7700));
                }
            }
            _ => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&root)
                    .map_err(io_err("create directory", &root))?;
            }
        }
        for sub in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(sub);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&p)
                .map_err(io_err("create directory", &p))?;
        }
        Ok(Self { root })
    }

    /// The default store root: `/var/lib/barge/storage` for root, else
    /// [`Store::user_root`]. (A rootless engine, root inside the user's
    /// namespace, picks the user's root itself: see barge-engine's
    /// `rootless::default_root`.)
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/barge/storage");
        }
        Self::user_root()
    }

    /// An unprivileged user's store root: `$XDG_DATA_HOME/barge/storage`,
    /// default `~/.local/share/barge/storage`.
    pub fn user_root() -> PathBuf {
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        data.join("barge/storage")
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory for temp entries (same filesystem as blobs and layers).
    pub fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn lock_file(&self, name: &str, op: FlockOperation) -> Result<StoreLock, StoreError> {
        let path = self.root.join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        let fd: OwnedFd = f.into();
        flock(&fd, op).map_err(|e| StoreError::Io {
            op: "flock",
            path,
            source: e.into(),
        })?;
        Ok(StoreLock { _fd: fd })
    }

    /// Shared store lock: held by writers (imports, pulls) so gc waits for them.
    pub fn lock_shared(&self) -> Result<StoreLock, StoreError> {
        self.lock_file("storage.lock", FlockOperation::LockShared)
    }

    /// Exclusive store lock: held by gc.
    pub fn lock_exclusive(&self) -> Result<StoreLock, StoreError> {
        self.lock_file("storage.lock", FlockOperation::LockExclusive)
    }

    // ---------------------------------------------------------------- blobs

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present (not verified).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size of a present blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64, StoreError> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(io_err("stat", &self.blob_path(digest))(e)),
        }
    }

    /// Start writing a blob. `expected`, when known, is checked on commit.
    pub fn blob_writer(&self, expected: Option<Digest>) -> Result<BlobWriter, StoreError> {
        let path = self.temp_dir().join(temp_name("blob-", ".partial"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create temp blob", &path))?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| StoreError::Io {
            op: "flock",
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(file),
            path,
            hasher: Hasher::new(),
            expected,
        })
    }

    /// Copy `reader` into the store as a blob; with `expected` the content
    /// must hash to it. Returns the digest and whether the blob is new.
    pub fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, bool), StoreError> {
        if let Some(d) = expected {
            if self.has_blob(d) {
                return Ok((d.clone(), false));
            }
        }
        let mut w = self.blob_writer(expected.cloned())?;
        let tmp = w.path.clone();
        io::copy(&mut reader, &mut w).map_err(io_err("write temp blob", &tmp))?;
        w.commit()
    }

    /// Store bytes as a blob.
    pub fn put_blob_bytes(
        &self,
        data: &[u8],
        expected: Option<&Digest>,
    ) -> Result<(Digest, bool), StoreError> {
        self.put_blob(data, expected)
    }

    /// Open a blob for reading; the reader verifies the digest when it
    /// reaches the end (an `InvalidData` error on mismatch).
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifyingReader<File>, StoreError> {
        let path = self.blob_path(digest);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobNotFound(digest.clone()))
            }
            Err(e) => return Err(io_err("open blob", &path)(e)),
        };
        Ok(VerifyingReader {
            inner: f,
            hasher: Some(Hasher::new()),
            expected: digest.clone(),
        })
    }

    /// Read a whole blob of at most `limit` bytes, verified.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let size = self.blob_size(digest)?;
        if size > limit {
            return Err(StoreError::TooLarge {
                digest: digest.clone(),
                limit,
            });
        }
        let path = self.blob_path(digest);
        let data = fs::read(&path).map_err(io_err("read blob", &path))?;
        let actual = Digest::of(&data);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Remove a blob (no reference check; see [`Store::gc`]).
    pub fn remove_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let p = self.blob_path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove blob", &p)(e)),
        }
    }

    /// All blob digests present.
    pub fn list_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        Ok(self.scan_blobs()?.0)
    }

    fn scan_blobs(&self) -> Result<(Vec<Digest>, Vec<PathBuf>), StoreError> {
        let dir = self.root.join("blobs/sha256");
        let mut good = Vec::new();
        let mut stray = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let e = e.map_err(io_err("read directory", &dir))?;
            match e.file_name().to_str().map(Digest::from_hex) {
                Some(Ok(d)) => good.push(d),
                _ => stray.push(e.path()),
            }
        }
        good.sort();
        stray.sort();
        Ok((good, stray))
    }

    // --------------------------------------------------------------- layers

    /// Where the unpacked layer with this DiffID lives (an overlay lowerdir).
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// Whether the layer is unpacked.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).is_dir()
    }

    /// Unpack layer blob `blob` into `layers/<diffid>` unless already there.
    /// The blob is verified while read, the DiffID computed while unpacking
    /// and checked against `expected_diff_id`; the layer is built in a temp
    /// dir and renamed into place only on success.
    /// Returns the DiffID and whether the layer dir is new.
    pub fn unpack_layer(
        &self,
        blob: &Digest,
        media_type: Option<&str>,
        expected_diff_id: Option<&Digest>,
        opts: &UnpackOptions,
    ) -> Result<(Digest, bool), StoreError> {
        if let Some(d) = expected_diff_id {
            if self.has_layer(d) {
                return Ok((d.clone(), false));
            }
        }
        let reader = self.open_blob(blob)?;
        self.unpack_layer_from(reader, blob, media_type, expected_diff_id, opts)
    }

    /// [`Store::unpack_layer`] from a stream of the layer blob `blob` (e.g.
    /// a download in progress) rather than from the stored blob. The layer
    /// is renamed into place only after `reader` reached its end without
    /// error and the DiffID matched: a reader that checks the blob's digest
    /// must report a mismatch as an error instead of its end (the store's
    /// own blob reader does), so unverified content never becomes a layer.
    pub fn unpack_layer_from(
        &self,
        mut reader: impl Read,
        blob: &Digest,
        media_type: Option<&str>,
        expected_diff_id: Option<&Digest>,
        opts: &UnpackOptions,
    ) -> Result<(Digest, bool), StoreError> {
        let tmp = self.temp_dir().join(temp_name("layer-", ""));
        fs::create_dir(&tmp).map_err(io_err("create temp layer dir", &tmp))?;
        let guard = TempDir::new(tmp.clone())?;
        let report = layer::unpack(&mut reader, &tmp, media_type, opts).map_err(|source| {
            StoreError::Layer {
                digest: blob.clone(),
                source,
            }
        })?;
        // Finish reading the blob so its digest is verified.
        io::copy(&mut reader, &mut io::sink()).map_err(|source| StoreError::Layer {
            digest: blob.clone(),
            source: LayerError::Stream {
                compression: "blob",
                source,
            },
        })?;
        if let Some(expected) = expected_diff_id {
            if expected != &report.diff_id {
                return Err(StoreError::DiffIdMismatch {
                    digest: blob.clone(),
                    expected: expected.clone(),
                    actual: report.diff_id,
                });
            }
        }
        let dest = self.layer_path(&report.diff_id);
        if dest.is_dir() {
            return Ok((report.diff_id, false));
        }
        if let Err(e) = fs::rename(&tmp, &dest) {
            // Another process unpacked the same layer meanwhile: keep theirs.
            if dest.is_dir() {
                return Ok((report.diff_id, false));
            }
            return Err(io_err("rename layer into place", &dest)(e));
        }
        guard.disarm();
        fsync_dir(&self.root.join("layers"))?;
        Ok((report.diff_id, true))
    }

    /// Remove an unpacked layer dir.
    pub fn remove_layer(&self, diff_id: &Digest) -> Result<(), StoreError> {
        let p = self.layer_path(diff_id);
        match remove_tree(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove layer", &p)(e)),
        }
    }

    /// DiffIDs of all unpacked layers.
    pub fn list_layers(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.root.join("layers");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let e = e.map_err(io_err("read directory", &dir))?;
            if let Some(Ok(d)) = e.file_name().to_str().map(Digest::from_hex) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    // --------------------------------------------------------------- images

    fn images_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn load_images(&self) -> Result<ImagesFile, StoreError> {
        let path = self.images_path();
        match fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data).map_err(|source| StoreError::Index { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ImagesFile::default()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn save_images(&self, images: &ImagesFile) -> Result<(), StoreError> {
        let path = self.images_path();
        let tmp = self.temp_dir().join(temp_name("images-", ".json.partial"));
        let data = serde_json::to_vec_pretty(images).map_err(|source| StoreError::Index {
            path: path.clone(),
            source,
        })?;
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        let r = f
            .write_all(&data)
            .and_then(|()| f.sync_all())
            .map_err(io_err("write", &tmp))
            .and_then(|()| fs::rename(&tmp, &path).map_err(io_err("rename", &path)));
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r?;
        fsync_dir(&self.root)
    }

    fn update_images<T>(
        &self,
        f: impl FnOnce(&mut ImagesFile) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _lock = self.lock_file("images.lock", FlockOperation::LockExclusive)?;
        let mut images = self.load_images()?;
        let out = f(&mut images)?;
        self.save_images(&images)?;
        Ok(out)
    }

    /// All images.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        Ok(self.load_images()?.images)
    }

    /// Add (or update) an image record by id; its names are taken away from
    /// any other image. Blobs must already be in the store.
    pub fn add_image(&self, mut record: ImageRecord) -> Result<(), StoreError> {
        if record.created == 0 {
            record.created = now_secs();
        }
        self.update_images(|f| {
            for img in &mut f.images {
                if img.id != record.id {
                    img.names.retain(|n| !record.names.contains(n));
                }
            }
            if let Some(existing) = f.images.iter_mut().find(|i| i.id == record.id) {
                let mut names = existing.names.clone();
                for n in record.names.drain(..) {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                record.names = names;
                record.created = existing.created;
                *existing = record;
            } else {
                f.images.push(record);
            }
            Ok(())
        })
    }

    fn find<'a>(
        images: &'a mut [ImageRecord],
        reference: &str,
    ) -> Result<&'a mut ImageRecord, StoreError> {
        let idx = Self::find_index(images, reference)?;
        Ok(&mut images[idx])
    }

    fn find_index(images: &[ImageRecord], reference: &str) -> Result<usize, StoreError> {
        let with_tag = if reference
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':') || last.contains('@'))
        {
            None
        } else {
            Some(format!("{reference}:latest"))
        };
        if let Some(i) = images.iter().position(|i| {
            i.names
                .iter()
                .any(|n| n == reference || Some(n) == with_tag.as_ref())
        }) {
            return Ok(i);
        }
        if let Ok(d) = Digest::parse(reference) {
            if let Some(i) = images.iter().position(|i| i.id == d || i.manifest == d) {
                return Ok(i);
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 3 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<usize> = images
                .iter()
                .enumerate()
                .filter(|(_, i)| i.id.hex().starts_with(hex))
                .map(|(n, _)| n)
                .collect();
            match matches.len() {
                1 => return Ok(matches[0]),
                0 => {}
                _ => return Err(StoreError::Ambiguous(reference.to_string())),
            }
        }
        Err(StoreError::ImageNotFound(reference.to_string()))
    }

    /// Find an image by name (`name` also matches `name:latest`), id,
    /// manifest digest or id prefix (≥ 3 hex digits).
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord, StoreError> {
        let images = self.load_images()?.images;
        let i = Self::find_index(&images, reference)?;
        Ok(images[i].clone())
    }

    /// Give the image `reference` the additional name `name`.
    pub fn tag(&self, reference: &str, name: &str) -> Result<(), StoreError> {
        self.update_images(|f| {
            let id = Self::find(&mut f.images, reference)?.id.clone();
            for img in &mut f.images {
                if img.id == id {
                    if !img.names.iter().any(|n| n == name) {
                        img.names.push(name.to_string());
                    }
                } else {
                    img.names.retain(|n| n != name);
                }
            }
            Ok(())
        })
    }

    /// Remove the name `name` from whichever image has it.
    pub fn untag(&self, name: &str) -> Result<(), StoreError> {
        self.update_images(|f| {
            let before: usize = f.images.iter().map(|i| i.names.len()).sum();
            for img in &mut f.images {
                img.names.retain(|n| n != name);
            }
            let after: usize = f.images.iter().map(|i| i.names.len()).sum();
            if before == after {
                return Err(StoreError::ImageNotFound(name.to_string()));
            }
            Ok(())
        })
    }

    /// Remove an image record (its blobs and layers go at the next gc).
    pub fn remove_image(&self, reference: &str) -> Result<ImageRecord, StoreError> {
        self.update_images(|f| {
            let i = Self::find_index(&f.images, reference)?;
            Ok(f.images.remove(i))
        })
    }

    // ------------------------------------------------------ maintenance

    fn temp_entries(&self) -> Result<Vec<(PathBuf, bool)>, StoreError> {
        let dir = self.temp_dir();
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("read directory", &dir)(e)),
        };
        for e in rd {
            let e = e.map_err(io_err("read directory", &dir))?;
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            out.push((e.path(), is_dir));
        }
        out.sort();
        Ok(out)
    }

    /// Whether a temp entry is stale: at least `min_age` old and not
    /// flocked by a writer.
    fn temp_is_stale(path: &Path, min_age: Duration) -> bool {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return false;
        };
        let young = !min_age.is_zero()
            && meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_none_or(|age| age < min_age);
        if young {
            return false;
        }
        if meta.file_type().is_symlink() {
            return true;
        }
        let Ok(f) = File::open(path) else {
            return false;
        };
        flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok()
    }

    /// Remove temp entries left by interrupted writers (not those of live ones).
    pub fn clean_temp(&self) -> Result<Vec<PathBuf>, StoreError> {
        let mut removed = Vec::new();
        for (path, is_dir) in self.temp_entries()? {
            if !Self::temp_is_stale(&path, TEMP_GRACE) {
                continue;
            }
            let r = if is_dir {
                remove_tree(&path)
            } else {
                fs::remove_file(&path)
            };
            match r {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove temp entry", &path)(e)),
            }
        }
        Ok(removed)
    }

    /// Re-hash every blob; report corrupt, missing (referenced but absent),
    /// partial (stale temp entries) and stray files.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        let (blobs, stray) = self.scan_blobs()?;
        report.stray = stray;
        for d in &blobs {
            let path = self.blob_path(d);
            let mut f = File::open(&path).map_err(io_err("open blob", &path))?;
            let mut h = Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf).map_err(io_err("read blob", &path))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let actual = h.finish();
            if &actual == d {
                report.ok += 1;
            } else {
                report.corrupt.push((d.clone(), actual));
            }
        }
        let present: BTreeSet<&Digest> = blobs.iter().collect();
        let mut missing = BTreeSet::new();
        for img in self.images()? {
            for d in std::iter::once(&img.manifest)
                .chain(std::iter::once(&img.id))
                .chain(&img.layers)
            {
                if !present.contains(d) {
                    missing.insert(d.clone());
                }
            }
        }
        report.missing = missing.into_iter().collect();
        report.partial = self
            .temp_entries()?
            .into_iter()
            .filter(|(p, _)| Self::temp_is_stale(p, Duration::ZERO))
            .map(|(p, _)| p)
            .collect();
        Ok(report)
    }

    /// Remove blobs and layers no image references, and stale temp entries.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _lock = self.lock_exclusive()?;
        let mut report = GcReport {
            temp: self.clean_temp()?,
            ..GcReport::default()
        };
        let images = self.images()?;
        let mut blobs: BTreeSet<Digest> = BTreeSet::new();
        let mut layers: BTreeSet<Digest> = BTreeSet::new();
        for img in &images {
            blobs.insert(img.manifest.clone());
            blobs.insert(img.id.clone());
            blobs.extend(img.layers.iter().cloned());
            layers.extend(img.diff_ids.iter().cloned());
        }
        for d in self.list_blobs()? {
            if !blobs.contains(&d) {
                self.remove_blob(&d)?;
                report.blobs.push(d);
            }
        }
        for d in self.list_layers()? {
            if !layers.contains(&d) {
                self.remove_layer(&d)?;
                report.layers.push(d);
            }
        }
        Ok(report)
    }

    /// Names per image id (for listings).
    pub fn names(&self) -> Result<BTreeMap<Digest, Vec<String>>, StoreError> {
        Ok(self
            .images()?
            .into_iter()
            .map(|i| (i.id, i.names))
            .collect())
    }
}

/// Removes a temp dir on drop unless disarmed.
struct TempDir {
    path: PathBuf,
    armed: bool,
    _lock: File,
}

impl TempDir {
    fn new(path: PathBuf) -> Result<Self, StoreError> {
        let f = File::open(&path).map_err(io_err("open temp dir", &path))?;
        flock(&f, FlockOperation::LockExclusive).map_err(|e| StoreError::Io {
            op: "flock",
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(Self {
            path,
            armed: true,
            _lock: f,
        })
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Streams a blob into the store: hashes while writing, then
/// [`BlobWriter::commit`] fsyncs, verifies and renames it into place.
/// Dropping it without commit removes the temp file.
#[derive(Debug)]
pub struct BlobWriter {
    store: Store,
    file: Option<File>,
    path: PathBuf,
    hasher: Hasher,
    expected: Option<Digest>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// The temp file path (for diagnostics).
    pub fn temp_path(&self) -> &Path {
        &self.path
    }

    /// Finish: fsync, verify against the expected digest (a mismatch
    /// removes the temp file), rename into `blobs/sha256/<hex>`.
    /// Returns the digest and whether the blob is new in the store.
    pub fn commit(mut self) -> Result<(Digest, bool), StoreError> {
        let file = self.file.take();
        let actual = std::mem::take(&mut self.hasher).finish();
        if let Some(expected) = &self.expected {
            if expected != &actual {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        if let Some(f) = &file {
            f.sync_all()
                .map_err(io_err("fsync temp blob", &self.path))?;
        }
        let dest = self.store.blob_path(&actual);
        if dest.exists() {
            return Ok((actual, false));
        }
        fs::rename(&self.path, &dest).map_err(io_err("rename blob into place", &dest))?;
        self.path = PathBuf::new();
        fsync_dir(&self.store.root.join("blobs/sha256"))?;
        drop(file);
        Ok((actual, true))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already committed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Reads a blob and checks its digest at end of stream.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(h) = self.hasher.take() {
                let actual = h.finish();
                if actual != self.expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "stored blob is corrupt: expected {}, content hashes to {actual}",
                            self.expected
                        ),
                    ));
                }
            }
        } else if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn root_is_closed_to_others() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let fresh = dir.path().join("a/b");
        Store::open(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        Store::open(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
        // Search permission alone (for user-namespaced containers) stays.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o711)).unwrap();
        Store::open(&open).unwrap();
        assert_eq!(mode(&open), 0o711);
    }

    #[test]
    fn another_users_root_is_named() {
        // The refusal itself needs another user: tests/engine/rootless.rs.
        let e = StoreError::NotAccessible {
            path: PathBuf::from("/var/lib/barge/storage"),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        }
        .to_string();
        assert!(
            e.contains("/var/lib/barge/storage") && e.contains("another user's store"),
            "{e}"
        );
    }
}
