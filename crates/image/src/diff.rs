//! Directory trees to tar streams, and overlayfs upper directories to OCI
//! layers and change lists (for `barge export`, `commit` and `diff`).
//!
//! * [`tar_directory`]: a deterministic tar of a whole tree (entries sorted
//!   bytewise by name, no root entry, numeric ids only, mtimes in whole
//!   seconds), keeping ownership, modes, symlinks, hardlinks, device nodes,
//!   fifos and xattrs (as `SCHILY.xattr.*` PAX records). Symlinks are
//!   archived as links and never followed; sockets are left out.
//! * [`diff_from_overlay_upper`]: the same for an overlayfs upper directory,
//!   turned into an OCI layer: a whiteout (character device 0:0) becomes an
//!   empty `.wh.NAME` file, an opaque directory (`trusted.overlay.opaque=y`
//!   or `user.overlay.opaque=y`) gets a `.wh..wh..opq` entry.
//! * [`changes_from_overlay_upper`]: the `A`/`C`/`D` list `barge diff`
//!   prints, deciding "changed" against the lower layers.
//!
//! Overlay's own xattrs (`trusted.overlay.*`, `user.overlay.*`) are never
//! archived. Upper directories written with `redirect_dir=on` or
//! `metacopy=on` cannot be converted (their content lives partly in the
//! lower layers) and are refused, naming the entry. The tree must not
//! change while it is read (stop or pause the container first).

use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs as rfs;

/// Errors of tree archiving and overlay diffs; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Reading the tree failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing the tar stream failed.
    #[error("writing tar entry for {path}: {source}")]
    Write {
        /// The entry's path in the tree.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The upper directory uses an overlay feature that cannot be turned into a layer.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// What is not supported.
        reason: &'static str,
    },
    /// A file changed while it was archived.
    #[error("{path}: changed while being archived")]
    Changed {
        /// The path.
        path: PathBuf,
    },
}

fn ioe(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DiffError {
    let path = path.to_path_buf();
    move |source| DiffError::Io { op, path, source }
}

/// The prefix of OCI whiteout files.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// The xattrs of `path` (not following a symlink), sorted by name,
/// overlay's own left out. Filesystems without xattr support give none.
fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, DiffError> {
    let err = |op| {
        let path = path.to_path_buf();
        move |e: rustix::io::Errno| DiffError::Io {
            op,
            path,
            source: e.into(),
        }
    };
    let mut names = Vec::new();
    loop {
        let n = match rfs::llistxattr_query(path) {
            Ok(n) => n,
            Err(rustix::io::Errno::NOTSUP | rustix::io::Errno::PERM) => return Ok(Vec::new()),
            Err(e) => return Err(err("list xattrs of")(e)),
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        names.resize(n, 0);
        match rfs::llistxattr(path, &mut names[..]) {
            Ok(got) => {
                names.truncate(got);
                break;
            }
            Err(rustix::io::Errno::RANGE) => {}
            Err(e) => return Err(err("list xattrs of")(e)),
        }
    }
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if is_overlay_xattr(name) {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let value = loop {
            let n = match rfs::lgetxattr_query(path, name) {
                Ok(n) => n,
                // Removed meanwhile, or not readable by us (trusted.* as non-root).
                Err(rustix::io::Errno::NODATA | rustix::io::Errno::PERM) => break None,
                Err(e) => return Err(err("read xattr of")(e)),
            };
            let mut v = vec![0u8; n];
            match rfs::lgetxattr(path, name, &mut v[..]) {
                Ok(got) => {
                    v.truncate(got);
                    break Some(v);
                }
                Err(rustix::io::Errno::RANGE) => {}
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(err("read xattr of")(e)),
            }
        };
        if let Some(v) = value {
            out.push((name.to_string(), v));
        }
    }
    out.sort();
    Ok(out)
}

/// The value of one xattr, if set.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    rfs::lgetxattr(path, name, &mut buf[..])
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// Whether an upper-dir directory is opaque (root or rootless overlay).
fn is_opaque(path: &Path) -> bool {
    xattr(path, "trusted.overlay.opaque").as_deref() == Some(b"y")
        || xattr(path, "user.overlay.opaque").as_deref() == Some(b"y")
}

/// Whether `meta` is an overlay whiteout (a character device 0:0).
fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Entries of a directory, sorted bytewise by name.
fn sorted_entries(dir: &Path) -> Result<Vec<OsString>, DiffError> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir).map_err(ioe("read directory", dir))? {
        names.push(e.map_err(ioe("read directory", dir))?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Writes tar entries for a tree, remembering hardlinks.
struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    /// (dev, ino) of multiply-linked files → the first archive name.
    links: HashMap<(u64, u64), PathBuf>,
}

fn base_header(meta: &Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    h.set_size(0);
    h
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        Self {
            builder,
            links: HashMap::new(),
        }
    }

    fn werr(name: &Path) -> impl FnOnce(io::Error) -> DiffError {
        let path = name.to_path_buf();
        move |source| DiffError::Write { path, source }
    }

    fn pax(&mut self, name: &Path, xattrs: &[(String, Vec<u8>)]) -> Result<(), DiffError> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let keys: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        self.builder
            .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(Self::werr(name))
    }

    /// Archive the entry at `path` (already lstat-ed as `meta`) as `name`.
    fn entry(&mut self, path: &Path, name: &Path, meta: &Metadata) -> Result<(), DiffError> {
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        let xa = xattrs(path)?;
        if ft.is_dir() {
            self.pax(name, &xa)?;
            let mut h = base_header(meta, tar::EntryType::Directory);
            let mut dname = name.as_os_str().to_os_string();
            dname.push("/");
            return self
                .builder
                .append_data(&mut h, Path::new(&dname), io::empty())
                .map_err(Self::werr(name));
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = base_header(meta, tar::EntryType::Link);
                return self
                    .builder
                    .append_link(&mut h, name, &first)
                    .map_err(Self::werr(name));
            }
            self.links.insert(key, name.to_path_buf());
        }
        self.pax(name, &xa)?;
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(ioe("read symlink", path))?;
            let mut h = base_header(meta, tar::EntryType::Symlink);
            return self
                .builder
                .append_link(&mut h, name, &target)
                .map_err(Self::werr(name));
        }
        if ft.is_file() {
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc_o_nofollow())
                .open(path)
                .map_err(ioe("open", path))?;
            let fmeta = f.metadata().map_err(ioe("stat", path))?;
            if fmeta.ino() != meta.ino() || fmeta.dev() != meta.dev() || fmeta.len() != meta.len() {
                return Err(DiffError::Changed {
                    path: path.to_path_buf(),
                });
            }
            let mut h = base_header(meta, tar::EntryType::Regular);
            h.set_size(meta.len());
            let mut data = LenCheck {
                inner: f,
                left: meta.len(),
            };
            return self
                .builder
                .append_data(&mut h, name, &mut data)
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        DiffError::Changed {
                            path: path.to_path_buf(),
                        }
                    } else {
                        Self::werr(name)(e)
                    }
                });
        }
        let (kind, dev) = if ft.is_char_device() {
            (tar::EntryType::Char, true)
        } else if ft.is_block_device() {
            (tar::EntryType::Block, true)
        } else if ft.is_fifo() {
            (tar::EntryType::Fifo, false)
        } else {
            return Ok(());
        };
        let mut h = base_header(meta, kind);
        if dev {
            let rdev = meta.rdev();
            h.set_device_major(rfs::major(rdev))
                .map_err(Self::werr(name))?;
            h.set_device_minor(rfs::minor(rdev))
                .map_err(Self::werr(name))?;
        }
        self.builder
            .append_data(&mut h, name, io::empty())
            .map_err(Self::werr(name))
    }

    /// An empty regular file (whiteouts and opaque markers).
    fn marker(&mut self, name: &Path, meta: &Metadata, mode: u32) -> Result<(), DiffError> {
        let mut h = base_header(meta, tar::EntryType::Regular);
        h.set_mode(mode);
        self.builder
            .append_data(&mut h, name, io::empty())
            .map_err(Self::werr(name))
    }

    fn finish(self) -> Result<W, DiffError> {
        self.builder
            .into_inner()
            .map_err(Self::werr(Path::new("<end of archive>")))
    }
}

const fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// A reader that yields exactly `left` bytes or fails (a file that shrank
/// while archived must not produce a corrupt tar).
struct LenCheck<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for LenCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Write a deterministic tar of the tree under `dir` to `out` (see the
/// module docs). Entry names are relative (`etc/`, `etc/passwd`); the root
/// directory itself is not an entry. Returns `out` after the tar trailer.
pub fn tar_directory<W: Write>(dir: &Path, out: W) -> Result<W, DiffError> {
    let meta = fs::symlink_metadata(dir).map_err(ioe("stat", dir))?;
    if !meta.is_dir() {
        return Err(DiffError::Io {
            op: "archive",
            path: dir.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut w = TarWriter::new(out);
    walk(&mut w, dir, Path::new(""), false)?;
    w.finish()
}

/// Write the overlayfs upper directory `upper` as an OCI layer tar to
/// `out` (see the module docs). Returns `out` after the tar trailer.
pub fn diff_from_overlay_upper<W: Write>(upper: &Path, out: W) -> Result<W, DiffError> {
    let meta = fs::symlink_metadata(upper).map_err(ioe("stat", upper))?;
    if !meta.is_dir() {
        return Err(DiffError::Io {
            op: "archive",
            path: upper.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut w = TarWriter::new(out);
    walk(&mut w, upper, Path::new(""), true)?;
    w.finish()
}

fn check_overlay_features(path: &Path, meta: &Metadata) -> Result<(), DiffError> {
    for prefix in ["trusted.overlay.", "user.overlay."] {
        if meta.is_dir() && xattr(path, &format!("{prefix}redirect")).is_some() {
            return Err(DiffError::Unsupported {
                path: path.to_path_buf(),
                reason: "renamed directory (overlay redirect_dir=on) cannot be turned into a layer; mount with redirect_dir=off",
            });
        }
        if meta.is_file() && xattr(path, &format!("{prefix}metacopy")).is_some() {
            return Err(DiffError::Unsupported {
                path: path.to_path_buf(),
                reason: "metadata-only copy-up (overlay metacopy=on) cannot be turned into a layer; mount with metacopy=off",
            });
        }
    }
    Ok(())
}

fn walk<W: Write>(
    w: &mut TarWriter<W>,
    dir: &Path,
    rel: &Path,
    overlay: bool,
) -> Result<(), DiffError> {
    for name in sorted_entries(dir)? {
        let path = dir.join(&name);
        let rel_name = rel.join(&name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Removed while we walk: leave it out.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ioe("stat", &path)(e)),
        };
        if overlay {
            check_overlay_features(&path, &meta)?;
            if is_whiteout(&meta) {
                let mut wh = OsString::from(WHITEOUT_PREFIX);
                wh.push(&name);
                w.marker(&rel.join(wh), &meta, 0o600)?;
                continue;
            }
        }
        w.entry(&path, &rel_name, &meta)?;
        if meta.is_dir() {
            if overlay && is_opaque(&path) {
                w.marker(&rel_name.join(WHITEOUT_OPAQUE), &meta, 0o600)?;
            }
            walk(w, &path, &rel_name, overlay)?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ changes

/// What happened to a path, as `podman diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// `A`: not in the lower layers.
    Added,
    /// `C`: in the lower layers and in the upper directory.
    Changed,
    /// `D`: in the lower layers, removed in the upper directory.
    Deleted,
}

impl ChangeKind {
    /// `A`, `C` or `D`.
    pub fn letter(self) -> char {
        match self {
            Self::Added => 'A',
            Self::Changed => 'C',
            Self::Deleted => 'D',
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The absolute path inside the container (`/etc/passwd`).
    pub path: PathBuf,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path.display())
    }
}

/// Looks paths up in a stack of overlay lower layers (top layer first),
/// honouring the whiteouts and opaque directories inside those layers.
#[derive(Debug, Clone)]
pub struct LowerLayers {
    dirs: Vec<PathBuf>,
}

impl LowerLayers {
    /// Layers top first (the order of overlayfs `lowerdir=`).
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// Whether `rel` (relative to the root) exists in the merged lower view.
    pub fn exists(&self, rel: &Path) -> bool {
        let comps: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        if comps.is_empty() {
            return true;
        }
        'layers: for layer in &self.dirs {
            let mut cur = layer.clone();
            let mut stop_below = false;
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                let Ok(meta) = fs::symlink_metadata(&cur) else {
                    if stop_below {
                        return false;
                    }
                    continue 'layers;
                };
                if is_whiteout(&meta) {
                    return false;
                }
                if i + 1 == comps.len() {
                    return true;
                }
                if !meta.is_dir() {
                    // A non-directory hides everything below it.
                    return false;
                }
                if is_opaque(&cur) {
                    stop_below = true;
                }
            }
        }
        false
    }

    /// Names in directory `rel` of the merged lower view.
    fn list(&self, rel: &Path) -> BTreeSet<OsString> {
        let mut out = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        if !self.exists(rel) {
            return out;
        }
        for layer in &self.dirs {
            let dir = layer.join(rel);
            let Ok(meta) = fs::symlink_metadata(&dir) else {
                continue;
            };
            if !meta.is_dir() {
                break;
            }
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let n = e.file_name();
                    if hidden.contains(&n) {
                        continue;
                    }
                    let whiteout = e.path().symlink_metadata().is_ok_and(|m| is_whiteout(&m));
                    if whiteout {
                        hidden.insert(n);
                    } else if n.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
                        // An unconverted OCI whiteout: not a visible name.
                    } else {
                        hidden.insert(n.clone());
                        out.insert(n);
                    }
                }
            }
            if is_opaque(&dir) {
                break;
            }
        }
        out
    }
}

/// The changes an overlayfs upper directory makes to `lowers` (top layer
/// first, as in `lowerdir=`), sorted by path: a whiteout is `D`; an entry
/// that exists in the lower layers is `C` (directories too, as podman
/// reports the parents of changed files); anything else is `A`, including
/// everything below an added directory. An opaque directory also reports
/// `D` for each lower entry it hides that the upper does not recreate.
pub fn changes_from_overlay_upper(
    upper: &Path,
    lowers: &LowerLayers,
) -> Result<Vec<Change>, DiffError> {
    let mut out = Vec::new();
    changes_walk(upper, Path::new(""), lowers, false, &mut out)?;
    out.sort_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    Ok(out)
}

fn changes_walk(
    dir: &Path,
    rel: &Path,
    lowers: &LowerLayers,
    all_added: bool,
    out: &mut Vec<Change>,
) -> Result<(), DiffError> {
    let names = sorted_entries(dir)?;
    for name in &names {
        let path = dir.join(name);
        let rel_name = rel.join(name);
        let abs = Path::new("/").join(&rel_name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ioe("stat", &path)(e)),
        };
        if is_whiteout(&meta) {
            if !all_added && lowers.exists(&rel_name) {
                out.push(Change {
                    kind: ChangeKind::Deleted,
                    path: abs,
                });
            }
            continue;
        }
        let in_lower = !all_added && lowers.exists(&rel_name);
        out.push(Change {
            kind: if in_lower {
                ChangeKind::Changed
            } else {
                ChangeKind::Added
            },
            path: abs.clone(),
        });
        if meta.is_dir() {
            if in_lower && is_opaque(&path) {
                let upper_names: BTreeSet<OsString> = sorted_entries(&path)?.into_iter().collect();
                for hidden in lowers.list(&rel_name) {
                    if !upper_names.contains(&hidden) {
                        out.push(Change {
                            kind: ChangeKind::Deleted,
                            path: abs.join(&hidden),
                        });
                    }
                }
                // Entries recreated inside an opaque dir replace the lower ones.
                changes_walk(&path, &rel_name, lowers, false, out)?;
            } else {
                changes_walk(&path, &rel_name, lowers, !in_lower, out)?;
            }
        }
    }
    Ok(())
}
