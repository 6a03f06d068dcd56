//! Safe unpacking of layer tarballs (plain tar, gzip, zstd) into a directory
//! in overlayfs format.
//!
//! * OCI whiteouts `.wh.<name>` become character devices 0:0; opaque
//!   markers `.wh..wh..opq` become the `trusted.overlay.opaque=y` xattr (or
//!   `user.overlay.opaque` with [`WhiteoutFormat::UserXattr`], for rootless
//!   overlay mounts with `userxattr`).
//! * Entry names are resolved lexically inside the layer root: absolute
//!   names and `..` that climbs out of the root are rejected, and every
//!   parent directory is opened one component at a time with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so an entry can never
//!   be written through a symlink (a layer that would need that is
//!   rejected, naming the entry and the symlink).
//! * Hardlink targets are resolved the same way and must already exist in
//!   this layer.
//! * The DiffID (sha256 of the uncompressed tar) is computed while unpacking.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;

use crate::digest::{Digest, HashingReader};

/// Errors unpacking a layer; every variant names the entry concerned.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The (decompressed) stream could not be read: truncated or corrupt data.
    #[error("layer stream is truncated or corrupt ({compression}): {source}")]
    Stream {
        /// The compression detected.
        compression: &'static str,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The stream is compressed with something not supported.
    #[error("unsupported layer compression: {0}")]
    UnsupportedCompression(String),
    /// An entry name is absolute.
    #[error("entry {entry:?}: absolute path in layer")]
    AbsolutePath {
        /// The entry name.
        entry: String,
    },
    /// An entry name (or hardlink target) climbs out of the layer root.
    #[error("entry {entry:?}: path {path:?} escapes the layer root")]
    EscapesRoot {
        /// The entry name.
        entry: String,
        /// The offending path (the name or the link target).
        path: String,
    },
    /// A parent of the entry is a symlink: writing through it is refused.
    #[error("entry {entry:?}: parent {component:?} is a symlink; refusing to write through it")]
    ThroughSymlink {
        /// The entry name.
        entry: String,
        /// The parent path that is a symlink.
        component: String,
    },
    /// A parent of the entry is not a directory.
    #[error("entry {entry:?}: parent {component:?} is not a directory")]
    NotADirectory {
        /// The entry name.
        entry: String,
        /// The parent path.
        component: String,
    },
    /// A hardlink target is missing or a directory.
    #[error("entry {entry:?}: hardlink target {target:?} {problem}")]
    BadHardlink {
        /// The entry name.
        entry: String,
        /// The link target.
        target: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A device node in a layer when the options forbid them.
    #[error("entry {entry:?}: device nodes are not allowed in this unpack")]
    DeviceNotAllowed {
        /// The entry name.
        entry: String,
    },
    /// An entry type barge does not unpack.
    #[error("entry {entry:?}: unsupported tar entry type {kind}")]
    Unsupported {
        /// The entry name.
        entry: String,
        /// The tar type byte.
        kind: String,
    },
    /// A uid/gid not covered by the id map.
    #[error("entry {entry:?}: {what} {id} is not in the id map")]
    Unmapped {
        /// The entry name.
        entry: String,
        /// "uid" or "gid".
        what: &'static str,
        /// The id.
        id: u64,
    },
    /// A filesystem operation for an entry failed.
    #[error("entry {entry:?}: {op}: {source}")]
    Io {
        /// The entry name.
        entry: String,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Layer stream compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Detect from the first bytes; `Err` names a known-but-unsupported format.
    pub fn detect(magic: &[u8]) -> Result<Self, LayerError> {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Ok(Self::Gzip)
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Self::Zstd)
        } else if magic.starts_with(b"BZh") {
            Err(LayerError::UnsupportedCompression("bzip2".into()))
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err(LayerError::UnsupportedCompression("xz".into()))
        } else {
            Ok(Self::None)
        }
    }

    /// The compression a layer media type names, if it names one.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
            Some(Self::Gzip)
        } else if media_type.ends_with("+zstd") {
            Some(Self::Zstd)
        } else if media_type.rsplit(['.', '/']).next() == Some("tar") {
            Some(Self::None)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "tar",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// How whiteouts and opaque dirs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutFormat {
    /// Char device 0:0 and `trusted.overlay.opaque` (root overlay mounts).
    Overlay,
    /// Char device 0:0 and `user.overlay.opaque` (overlay with `userxattr`, rootless).
    UserXattr,
}

/// What to do with block/char device entries (fifos are always created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePolicy {
    /// mknod them (needs CAP_MKNOD).
    Create,
    /// Leave them out silently (counted in the report).
    Skip,
    /// Fail naming the entry.
    Reject,
}

/// A contiguous id mapping: container ids `container..container+size` map to
/// `host..host+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id in the layer.
    pub container: u64,
    /// First id on disk.
    pub host: u64,
    /// Number of ids.
    pub size: u64,
}

/// Whether this process runs in a user namespace other than the initial
/// one (its uid map is not the identity over all ids).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

fn map_id(map: &[IdRange], id: u64) -> Option<u64> {
    if map.is_empty() {
        return Some(id);
    }
    map.iter()
        .find(|r| id >= r.container && id - r.container < r.size)
        .map(|r| r.host + (id - r.container))
}

/// Unpack options.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Whiteout/opaque format.
    pub whiteouts: WhiteoutFormat,
    /// Device node handling.
    pub devices: DevicePolicy,
    /// chown entries to their (mapped) uid/gid.
    pub chown: bool,
    /// uid map (empty: identity).
    pub uid_map: Vec<IdRange>,
    /// gid map (empty: identity).
    pub gid_map: Vec<IdRange>,
    /// Apply `SCHILY.xattr.*` PAX records (overlay xattrs are never applied).
    pub xattrs: bool,
}

impl Default for UnpackOptions {
    /// The root profile: overlay whiteouts, devices created, ownership kept.
    fn default() -> Self {
        Self {
            whiteouts: WhiteoutFormat::Overlay,
            devices: DevicePolicy::Create,
            chown: true,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            xattrs: true,
        }
    }
}

impl UnpackOptions {
    /// Options fitting the current user: the root profile for root on the
    /// host; root in a user namespace (a rootless engine) gets `userxattr`
    /// whiteouts, skipped devices and chown within its mapping; any other
    /// user `userxattr` whiteouts, devices skipped, no chown.
    pub fn for_current_user() -> Self {
        if rustix::process::geteuid().is_root() {
            if in_user_namespace() {
                Self {
                    whiteouts: WhiteoutFormat::UserXattr,
                    devices: DevicePolicy::Skip,
                    ..Self::default()
                }
            } else {
                Self::default()
            }
        } else {
            Self {
                whiteouts: WhiteoutFormat::UserXattr,
                devices: DevicePolicy::Skip,
                chown: false,
                ..Self::default()
            }
        }
    }

    fn opaque_xattr(&self) -> &'static str {
        match self.whiteouts {
            WhiteoutFormat::Overlay => "trusted.overlay.opaque",
            WhiteoutFormat::UserXattr => "user.overlay.opaque",
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Compression detected.
    pub compression: Compression,
    /// Entries processed.
    pub entries: u64,
    /// Device entries skipped by [`DevicePolicy::Skip`].
    pub skipped_devices: u64,
}

struct Ctx<'a> {
    root: OwnedFd,
    opts: &'a UnpackOptions,
    entry: String,
    /// Who owns what this unpack creates, when that is certain (no
    /// set-group-ID directory above): a chown to it is skipped.
    creator: Option<(rfs::Uid, rfs::Gid)>,
}

impl Ctx<'_> {
    fn io(&self, op: &'static str) -> impl FnOnce(Errno) -> LayerError + '_ {
        move |e| LayerError::Io {
            entry: self.entry.clone(),
            op,
            source: e.into(),
        }
    }

    /// Normalize a name inside the root: no absolute paths, `..` may not climb out.
    fn components(&self, raw: &[u8]) -> Result<Vec<Vec<u8>>, LayerError> {
        if raw.starts_with(b"/") {
            return Err(LayerError::AbsolutePath {
                entry: self.entry.clone(),
            });
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if out.pop().is_none() {
                        return Err(LayerError::EscapesRoot {
                            entry: self.entry.clone(),
                            path: String::from_utf8_lossy(raw).into_owned(),
                        });
                    }
                }
                c => out.push(c.to_vec()),
            }
        }
        Ok(out)
    }

    /// Open the directory `comps` below the root without following any
    /// symlink, creating missing directories when `create`.
    fn open_dir(&self, comps: &[Vec<u8>], create: bool) -> Result<OwnedFd, LayerError> {
        let mut cur: Option<OwnedFd> = None;
        for (i, c) in comps.iter().enumerate() {
            let name = OsStr::from_bytes(c);
            let dirfd = cur.as_ref().map_or(self.root.as_fd(), AsFd::as_fd);
            let open = |d: BorrowedFd<'_>| {
                rfs::openat2(
                    d,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
                )
            };
            let so_far = || {
                comps[..=i]
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            };
            let fd = match open(dirfd) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(dirfd, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.io("create parent directory")(e)),
                    }
                    open(dirfd).map_err(self.io("open parent directory"))?
                }
                Err(Errno::LOOP | Errno::XDEV) => {
                    return Err(LayerError::ThroughSymlink {
                        entry: self.entry.clone(),
                        component: so_far(),
                    })
                }
                Err(Errno::NOTDIR) => {
                    // O_DIRECTORY|O_NOFOLLOW on a symlink fails ENOTDIR too.
                    let is_symlink = rfs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                    return Err(if is_symlink {
                        LayerError::ThroughSymlink {
                            entry: self.entry.clone(),
                            component: so_far(),
                        }
                    } else {
                        LayerError::NotADirectory {
                            entry: self.entry.clone(),
                            component: so_far(),
                        }
                    });
                }
                Err(e) => return Err(self.io("open parent directory")(e)),
            };
            cur = Some(fd);
        }
        match cur {
            Some(fd) => Ok(fd),
            None => rustix::io::dup(&self.root).map_err(self.io("dup root")),
        }
    }

    /// Remove whatever is at `name` in `dir` so a new entry can take its
    /// place; an existing directory is kept when the new entry is one.
    fn clear(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        new_is_dir: bool,
    ) -> Result<bool, LayerError> {
        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.io("stat existing")(e)),
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && new_is_dir {
                    return Ok(true);
                }
                let flags = if is_dir {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                rfs::unlinkat(dir, name, flags).map_err(self.io("replace existing entry"))?;
                Ok(false)
            }
        }
    }

    /// Runs `create` for `name` in `dir`; if something is in the way,
    /// removes it ([`Ctx::clear`]) and runs `create` again. Cheaper than
    /// looking first, since layers mostly add new names.
    fn create<T>(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        op: &'static str,
        create: impl Fn() -> Result<T, Errno>,
    ) -> Result<T, LayerError> {
        match create() {
            Err(Errno::EXIST) => {
                self.clear(dir, name, false)?;
                create().map_err(self.io(op))
            }
            r => r.map_err(self.io(op)),
        }
    }

    fn owner(&self, uid: u64, gid: u64) -> Result<(rfs::Uid, rfs::Gid), LayerError> {
        let u = map_id(&self.opts.uid_map, uid).ok_or_else(|| LayerError::Unmapped {
            entry: self.entry.clone(),
            what: "uid",
            id: uid,
        })?;
        let g = map_id(&self.opts.gid_map, gid).ok_or_else(|| LayerError::Unmapped {
            entry: self.entry.clone(),
            what: "gid",
            id: gid,
        })?;
        Ok((
            rfs::Uid::from_raw(u32::try_from(u).unwrap_or(u32::MAX)),
            rfs::Gid::from_raw(u32::try_from(g).unwrap_or(u32::MAX)),
        ))
    }
}

/// Per-entry metadata gathered from the header and PAX records.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

/// A directory whose mode and mtime are applied after all entries.
struct DeferredDir {
    comps: Vec<Vec<u8>>,
    mode: u32,
    mtime: i64,
}

/// Unpack the layer stream `reader` into the existing directory `dest`.
/// The compression is detected from magic bytes (`media_type` is only a
/// fallback hint when the stream is empty).
pub fn unpack(
    reader: impl Read,
    dest: &Path,
    media_type: Option<&str>,
    opts: &UnpackOptions,
) -> Result<UnpackReport, LayerError> {
    let root = rfs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Io {
        entry: dest.display().to_string(),
        op: "open layer directory",
        source: e.into(),
    })?;
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let magic = buffered.fill_buf().map_err(|source| LayerError::Stream {
        compression: "unknown",
        source,
    })?;
    let compression = if magic.is_empty() {
        media_type
            .and_then(Compression::from_media_type)
            .unwrap_or(Compression::None)
    } else {
        Compression::detect(magic)?
    };
    let stream: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(
            |source| LayerError::Stream {
                compression: "zstd",
                source,
            },
        )?),
    };
    let mut hashing = HashingReader::new(stream);
    // New entries belong to our fs ids unless a set-group-ID directory
    // makes them inherit its group; below the root, directories get their
    // modes only at the end, so only the root can be one.
    let root_setgid = rfs::fstat(&root).map_or(true, |st| st.st_mode & 0o2000 != 0);
    let creator = (!root_setgid).then(|| (rustix::process::geteuid(), rustix::process::getegid()));
    let mut ctx = Ctx {
        root,
        opts,
        entry: String::new(),
        creator,
    };
    let stream_err = |source| LayerError::Stream {
        compression: compression.name(),
        source,
    };
    let mut entries = 0u64;
    let mut skipped_devices = 0u64;
    let mut dirs: Vec<DeferredDir> = Vec::new();
    let mut copy_buf = vec![0u8; COPY_BUF];
    // The last parent directory opened, by its components: tar entries
    // come grouped by directory, so most entries reuse it instead of
    // walking from the root again. It always is what a fresh walk would
    // open: only an entry naming the directory itself or an ancestor (or
    // whiting one out) can replace it, and such an entry's parent is a
    // shorter path, so it has replaced the cache before it acts. Paths are
    // lexical and symlink-free (open_dir refuses symlinks), so no other
    // path reaches the same directory.
    let mut parent_cache: Option<(Vec<Vec<u8>>, OwnedFd)> = None;
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries().map_err(stream_err)? {
            let mut entry = entry.map_err(stream_err)?;
            entries += 1;
            ctx.entry = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            if matches!(kind, tar::EntryType::XGlobalHeader) {
                continue;
            }
            let meta = entry_meta(&mut entry).map_err(stream_err)?;
            let comps = ctx.components(&entry.path_bytes())?;
            let Some((name, parent)) = comps.split_last() else {
                // The root itself ("./"): its ownership, xattrs, mode and
                // mtime become the layer root's.
                if kind == tar::EntryType::Directory {
                    apply_fd_meta(&ctx, &ctx.root, &meta, false, false)?;
                    dirs.push(DeferredDir {
                        comps: Vec::new(),
                        mode: meta.mode,
                        mtime: meta.mtime,
                    });
                }
                continue;
            };
            let dir = match &parent_cache {
                Some((p, fd)) if p.as_slice() == parent => fd,
                _ => {
                    &parent_cache
                        .insert((parent.to_vec(), ctx.open_dir(parent, true)?))
                        .1
                }
            };
            let name = OsStr::from_bytes(name);
            let dir = dir.as_fd();

            // Whiteouts.
            if let Some(target) = name.as_bytes().strip_prefix(b".wh.") {
                if target == b".wh..opq" {
                    rfs::fsetxattr(dir, ctx.opts.opaque_xattr(), b"y", XattrFlags::empty())
                        .map_err(ctx.io("set opaque xattr"))?;
                } else if target.starts_with(b".wh.") {
                    // AUFS metadata (.wh..wh.plnk etc.): not for overlay.
                } else if target.is_empty()
                    || target == b"."
                    || target == b".."
                    || target.contains(&b'/')
                {
                    return Err(LayerError::EscapesRoot {
                        entry: ctx.entry.clone(),
                        path: String::from_utf8_lossy(target).into_owned(),
                    });
                } else {
                    let target = OsStr::from_bytes(target);
                    ctx.create(dir, target, "create whiteout device", || {
                        rfs::mknodat(
                            dir,
                            target,
                            FileType::CharacterDevice,
                            Mode::empty(),
                            rfs::makedev(0, 0),
                        )
                    })?;
                }
                continue;
            }

            match kind {
                tar::EntryType::Directory => {
                    let fresh = match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                        Ok(()) => true,
                        // An existing directory stays (and keeps its
                        // content); anything else there is replaced.
                        Err(Errno::EXIST) if ctx.clear(dir, name, true)? => false,
                        Err(Errno::EXIST) => {
                            rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                                .map_err(ctx.io("mkdir"))?;
                            true
                        }
                        Err(e) => return Err(ctx.io("mkdir")(e)),
                    };
                    let fd = rfs::openat(
                        dir,
                        name,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(ctx.io("open directory"))?;
                    apply_fd_meta(&ctx, &fd, &meta, false, fresh)?;
                    dirs.push(DeferredDir {
                        comps: comps.clone(),
                        mode: meta.mode,
                        mtime: meta.mtime,
                    });
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    let fd = ctx.create(dir, name, "create file", || {
                        rfs::openat(
                            dir,
                            name,
                            OFlags::WRONLY
                                | OFlags::CREATE
                                | OFlags::EXCL
                                | OFlags::NOFOLLOW
                                | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o600),
                        )
                    })?;
                    let mut file = File::from(fd);
                    copy_entry(&mut entry, &mut file, &mut copy_buf).map_err(|e| match e {
                        CopyError::Read(e) => stream_err(e),
                        CopyError::Write(e) => LayerError::Io {
                            entry: ctx.entry.clone(),
                            op: "write file",
                            source: e,
                        },
                    })?;
                    apply_fd_meta(&ctx, file.as_fd(), &meta, true, true)?;
                }
                tar::EntryType::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    ctx.create(dir, name, "create symlink", || {
                        rfs::symlinkat(OsStr::from_bytes(&target), dir, name)
                    })?;
                    apply_at_meta(&ctx, dir, name, &meta, false)?;
                }
                tar::EntryType::Link => {
                    let raw = entry.link_name_bytes().unwrap_or_default().into_owned();
                    let target_str = String::from_utf8_lossy(&raw).into_owned();
                    let tcomps = ctx.components(&raw)?;
                    let Some((tname, tparent)) = tcomps.split_last() else {
                        return Err(LayerError::BadHardlink {
                            entry: ctx.entry.clone(),
                            target: target_str,
                            problem: "is the layer root",
                        });
                    };
                    let tdir = ctx.open_dir(tparent, false).map_err(|e| match e {
                        LayerError::Io { source, .. }
                            if source.kind() == io::ErrorKind::NotFound =>
                        {
                            LayerError::BadHardlink {
                                entry: ctx.entry.clone(),
                                target: target_str.clone(),
                                problem: "does not exist in this layer",
                            }
                        }
                        e => e,
                    })?;
                    let tname = OsStr::from_bytes(tname);
                    match rfs::statat(&tdir, tname, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                            return Err(LayerError::BadHardlink {
                                entry: ctx.entry.clone(),
                                target: target_str,
                                problem: "is a directory",
                            })
                        }
                        Ok(_) => {}
                        Err(_) => {
                            return Err(LayerError::BadHardlink {
                                entry: ctx.entry.clone(),
                                target: target_str,
                                problem: "does not exist in this layer",
                            })
                        }
                    }
                    ctx.create(dir, name, "create hardlink", || {
                        rfs::linkat(&tdir, tname, dir, name, AtFlags::empty())
                    })?;
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    match ctx.opts.devices {
                        DevicePolicy::Skip => {
                            skipped_devices += 1;
                            continue;
                        }
                        DevicePolicy::Reject => {
                            return Err(LayerError::DeviceNotAllowed {
                                entry: ctx.entry.clone(),
                            })
                        }
                        DevicePolicy::Create => {}
                    }
                    let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                    let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                    let ft = if kind == tar::EntryType::Char {
                        FileType::CharacterDevice
                    } else {
                        FileType::BlockDevice
                    };
                    ctx.create(dir, name, "mknod device", || {
                        rfs::mknodat(
                            dir,
                            name,
                            ft,
                            Mode::from_raw_mode(0o600),
                            rfs::makedev(major, minor),
                        )
                    })?;
                    apply_at_meta(&ctx, dir, name, &meta, true)?;
                }
                tar::EntryType::Fifo => {
                    ctx.create(dir, name, "mkfifo", || {
                        rfs::mknodat(dir, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    })?;
                    apply_at_meta(&ctx, dir, name, &meta, true)?;
                }
                other => {
                    return Err(LayerError::Unsupported {
                        entry: ctx.entry.clone(),
                        kind: format!("{:?} ({:?})", other, char::from(other.as_byte())),
                    })
                }
            }
        }
    }
    // Read the rest of the stream (tar padding, compression trailer) so
    // truncation is detected and the DiffID covers everything.
    io::copy(&mut hashing, &mut io::sink()).map_err(stream_err)?;
    let size = hashing.len();
    let (diff_id, _) = hashing.finish();

    // Directory modes and mtimes last, deepest first.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.comps.len()));
    for d in dirs {
        ctx.entry = d
            .comps
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let fd = match ctx.open_dir(&d.comps, false) {
            Ok(fd) => fd,
            // A later entry replaced the directory with a non-directory.
            Err(LayerError::NotADirectory { .. } | LayerError::ThroughSymlink { .. }) => continue,
            Err(e) => return Err(e),
        };
        rfs::fchmod(&fd, Mode::from_raw_mode(d.mode & 0o7777))
            .map_err(ctx.io("chmod directory"))?;
        rfs::futimens(&fd, &times(d.mtime)).map_err(ctx.io("set directory mtime"))?;
    }
    Ok(UnpackReport {
        diff_id,
        size,
        compression,
        entries,
        skipped_devices,
    })
}

/// Buffer for copying file contents out of the tar stream: large enough
/// that a big file costs few read and write calls.
const COPY_BUF: usize = 256 * 1024;

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `from` to `to` through `buf`, telling read errors (the layer
/// stream) from write errors (the disk) apart.
fn copy_entry(from: &mut impl Read, to: &mut File, buf: &mut [u8]) -> Result<u64, CopyError> {
    use std::io::Write as _;
    let mut total = 0u64;
    loop {
        // Fill the buffer as far as the stream gives before writing, so a
        // file is written in few large chunks.
        let mut n = 0;
        while n < buf.len() {
            match from.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
        if n < buf.len() {
            return Ok(total);
        }
    }
}

fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode()?,
        uid: h.uid()?,
        gid: h.gid()?,
        mtime: i64::try_from(h.mtime()?).unwrap_or(0),
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let num = || {
                std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs
                    .push((name.to_string(), ext.value_bytes().to_vec()));
            } else if key == "uid" {
                meta.uid = num().unwrap_or(meta.uid);
            } else if key == "gid" {
                meta.gid = num().unwrap_or(meta.gid);
            } else if key == "mtime" {
                if let Some(secs) = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.split('.').next())
                    .and_then(|v| v.parse::<i64>().ok())
                {
                    meta.mtime = secs;
                }
            }
        }
    }
    Ok(meta)
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// chown, xattrs, chmod (after chown, which clears setuid) and mtime on an open fd.
/// Ownership, xattrs and (with `mode_and_time`) mode and mtime of an
/// opened entry; `fresh`: this unpack just created it (so it belongs to
/// [`Ctx::creator`] and a chown to that is skipped).
fn apply_fd_meta(
    ctx: &Ctx<'_>,
    fd: impl AsFd,
    meta: &Meta,
    mode_and_time: bool,
    fresh: bool,
) -> Result<(), LayerError> {
    let fd = fd.as_fd();
    if ctx.opts.chown {
        let owner = ctx.owner(meta.uid, meta.gid)?;
        if !(fresh && ctx.creator == Some(owner)) {
            rfs::fchown(fd, Some(owner.0), Some(owner.1)).map_err(ctx.io("chown"))?;
        }
    }
    if ctx.opts.xattrs {
        for (name, value) in &meta.xattrs {
            if is_overlay_xattr(name) {
                continue;
            }
            rfs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()).map_err(|e| {
                LayerError::Io {
                    entry: ctx.entry.clone(),
                    op: "set xattr",
                    source: io::Error::new(io::Error::from(e).kind(), format!("{name}: {e}")),
                }
            })?;
        }
    }
    if mode_and_time {
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(ctx.io("chmod"))?;
        rfs::futimens(fd, &times(meta.mtime)).map_err(ctx.io("set mtime"))?;
    }
    Ok(())
}

/// Metadata for entries that cannot be opened (symlinks, devices, fifos),
/// all just created by this unpack (a chown to [`Ctx::creator`] is skipped).
fn apply_at_meta(
    ctx: &Ctx<'_>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Meta,
    chmod: bool,
) -> Result<(), LayerError> {
    if ctx.opts.chown {
        let owner = ctx.owner(meta.uid, meta.gid)?;
        if ctx.creator != Some(owner) {
            rfs::chownat(
                dir,
                name,
                Some(owner.0),
                Some(owner.1),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(ctx.io("chown"))?;
        }
    }
    if chmod {
        // The entry was just created by us and is not a symlink.
        rfs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(meta.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(ctx.io("chmod"))?;
    }
    rfs::utimensat(dir, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(ctx.io("set mtime"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    fn header(name: &str, kind: tar::EntryType, mode: u32, uid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(size);
        h.set_mtime(1_000_000);
        h.set_cksum();
        h
    }

    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append(
            &header("./", tar::EntryType::Directory, 0o751, 0, 0),
            &[][..],
        )
        .unwrap();
        b.append(
            &header("d/", tar::EntryType::Directory, 0o755, 5, 0),
            &[][..],
        )
        .unwrap();
        b.append(
            &header("d/.wh..wh..opq", tar::EntryType::Regular, 0o644, 0, 0),
            &[][..],
        )
        .unwrap();
        b.append(
            &header("d/.wh.x", tar::EntryType::Regular, 0o644, 0, 0),
            &[][..],
        )
        .unwrap();
        b.append(
            &header("d/f", tar::EntryType::Regular, 0o600, 7, 2),
            &b"hi"[..],
        )
        .unwrap();
        let mut dev = header("null", tar::EntryType::Char, 0o666, 0, 0);
        dev.set_device_major(1).unwrap();
        dev.set_device_minor(3).unwrap();
        dev.set_cksum();
        b.append(&dev, &[][..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn userxattr_idmap_skip_devices() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let data = sample();
        let opts = UnpackOptions {
            whiteouts: WhiteoutFormat::UserXattr,
            devices: DevicePolicy::Skip,
            chown: true,
            uid_map: vec![IdRange {
                container: 0,
                host: 100_000,
                size: 65536,
            }],
            gid_map: vec![IdRange {
                container: 0,
                host: 200_000,
                size: 65536,
            }],
            xattrs: true,
        };
        let r = unpack(&data[..], tmp.path(), None, &opts).unwrap();
        assert_eq!(r.diff_id, Digest::of(&data));
        assert_eq!(r.compression, Compression::None);
        assert_eq!(r.skipped_devices, 1);
        assert!(!tmp.path().join("null").exists());
        let f = fs::symlink_metadata(tmp.path().join("d/f")).unwrap();
        assert_eq!((f.uid(), f.gid()), (100_007, 200_007));
        let d = fs::symlink_metadata(tmp.path().join("d")).unwrap();
        assert_eq!((d.uid(), d.gid(), d.mtime()), (100_005, 200_005, 1_000_000));
        let root = fs::symlink_metadata(tmp.path()).unwrap();
        assert_eq!((root.mode() & 0o7777, root.uid()), (0o751, 100_000));
        let mut buf = [0u8; 8];
        let n = rfs::lgetxattr(tmp.path().join("d"), "user.overlay.opaque", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"y");
        assert!(rfs::lgetxattr(tmp.path().join("d"), "trusted.overlay.opaque", &mut buf).is_err());
        let wh = fs::symlink_metadata(tmp.path().join("d/x")).unwrap();
        assert_eq!((wh.mode() & 0o170_000, wh.rdev()), (0o020_000, 0));

        // A uid outside the map is an error naming the entry.
        let tmp2 = tempfile::tempdir().unwrap();
        let narrow = UnpackOptions {
            uid_map: vec![IdRange {
                container: 0,
                host: 100_000,
                size: 6,
            }],
            ..opts
        };
        let err = unpack(&data[..], tmp2.path(), None, &narrow).unwrap_err();
        assert!(
            err.to_string()
                .contains("\"d/f\": uid 7 is not in the id map"),
            "{err}"
        );
    }

    /// The chown that matches the creator is skipped only for entries this
    /// unpack just created, and not below a set-group-ID root.
    #[test]
    fn ownership_of_fresh_and_existing_entries() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, uid) in [
            ("d/", tar::EntryType::Directory, 5),
            ("d/", tar::EntryType::Directory, 0),
            ("e/", tar::EntryType::Directory, 6),
            ("f", tar::EntryType::Regular, 0),
            ("g", tar::EntryType::Regular, 9),
            ("g", tar::EntryType::Regular, 0),
        ] {
            b.append(&header(name, kind, 0o755, uid, 0), &[][..])
                .unwrap();
        }
        let data = b.into_inner().unwrap();
        let owner = |p: &Path| {
            let m = fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        let tmp = tempfile::tempdir().unwrap();
        unpack(&data[..], tmp.path(), None, &UnpackOptions::default()).unwrap();
        assert_eq!(owner(&tmp.path().join("d")), (0, 0));
        assert_eq!(owner(&tmp.path().join("e")), (6, 6));
        assert_eq!(owner(&tmp.path().join("f")), (0, 0));
        assert_eq!(owner(&tmp.path().join("g")), (0, 0));

        // Below a set-group-ID root new entries inherit its group: gid 0
        // must still be set.
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        rfs::chown(&root, None, Some(rfs::Gid::from_raw(4321))).unwrap();
        rfs::chmod(&root, Mode::from_raw_mode(0o2755)).unwrap();
        unpack(&data[..], &root, None, &UnpackOptions::default()).unwrap();
        assert_eq!(owner(&root.join("f")), (0, 0));
        assert_eq!(owner(&root.join("d")), (0, 0));
    }

    #[test]
    fn compression_detection() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 8]).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            Compression::detect(b"etc/passwd\0").unwrap(),
            Compression::None
        );
        assert!(Compression::detect(b"BZh91AY").is_err());
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        // An empty stream is an empty layer (the DiffID of nothing).
        let tmp = tempfile::tempdir().unwrap();
        let r = unpack(
            &[][..],
            tmp.path(),
            Some("application/vnd.oci.image.layer.v1.tar"),
            &UnpackOptions::default(),
        )
        .unwrap();
        assert_eq!(r.diff_id, Digest::of(b""));
    }
}
