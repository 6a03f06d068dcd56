//! A container's files: `cp` (both directions, tar streams), `diff`,
//! `commit` and `export`.
//!
//! Paths inside a container are always resolved inside its root: every
//! lookup is an `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative
//! to a file descriptor of the container's root, every entry is created,
//! read and chowned relative to its parent directory's descriptor with
//! `O_NOFOLLOW`, so neither a symlink in the container (`/x -> /etc/shadow`,
//! `../../x`) nor a rename racing the copy can lead to a host file.
//!
//! The root of a running container is `/proc/PID/root` of its init: its
//! mount namespace, so copies into volumes, bind mounts and tmpfs land in
//! them (as podman does by joining the mount namespace). A stopped
//! container's overlay is mounted for the operation only, detached
//! (`fsmount`, never attached to the host's tree) and under the container's
//! lock; its volumes are not mounted then (a copy under a volume's mount
//! point lands in the rootfs beneath it).

use super::lifecycle::resolve_user;
use super::{alive, ContainerRecord, Engine, Status};
use crate::error::EngineError;
use crate::Result;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use serde::Serialize;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// A container's root file system, open for the duration of an operation.
pub struct ContainerRoot {
    fd: OwnedFd,
    /// Held while a stopped container's overlay is mounted.
    _lock: Option<super::lifecycle::ContainerLock>,
    /// The container's record.
    pub record: ContainerRecord,
    /// Whether this is a running container's root (its mount namespace).
    pub running: bool,
}

impl ContainerRoot {
    /// The root directory's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A path naming the root through `/proc/self/fd` (for code taking
    /// paths; it must resolve inside the root itself).
    pub fn proc_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd as _;
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> EngineError {
    let context = context.into();
    move |e| EngineError::Io {
        context,
        source: e.into(),
    }
}

/// Where one side of a copy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEnd {
    /// A host path.
    Host(PathBuf),
    /// `CONTAINER:PATH`.
    Container {
        /// Name or id.
        name: String,
        /// Path inside it.
        path: String,
    },
    /// `-`: a tar stream on stdin or stdout.
    Stream,
}

impl CopyEnd {
    /// Parses a `podman cp` argument: `-`, `CTR:PATH` or a host path (a
    /// path containing `/` before the first `:` is a host path, as in
    /// podman; `./a:b` names a host file).
    pub fn parse(s: &str) -> Result<Self> {
        if s == "-" {
            return Ok(Self::Stream);
        }
        if s.is_empty() {
            return Err(EngineError::Invalid("empty path".into()));
        }
        match s.split_once(':') {
            Some((c, p)) if !c.contains('/') && !c.is_empty() => Ok(Self::Container {
                name: c.to_string(),
                path: if p.is_empty() { "/".into() } else { p.into() },
            }),
            Some(("", _)) => Err(EngineError::Invalid(format!(
                "invalid path {s:?}: empty container name before ':'"
            ))),
            _ => Ok(Self::Host(PathBuf::from(s))),
        }
    }
}

/// Options of [`Engine::copy`].
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// podman's `--archive` (default true): files copied into a container
    /// are owned by its primary uid/gid; false keeps the source's owners.
    pub archive: bool,
    /// Replace a directory with a non-directory and vice versa.
    pub overwrite: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            archive: true,
            overwrite: false,
        }
    }
}

/// One change, for `diff --format json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffReport {
    /// Changed paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Added paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// Deleted paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
}

/// Options of [`Engine::commit`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The new image's name (none: an untagged image).
    pub image: Option<String>,
    /// `--change` instructions.
    pub changes: Vec<String>,
    /// `--message`.
    pub message: Option<String>,
    /// `--author`.
    pub author: Option<String>,
}

impl Engine {
    /// Opens a container's root: a running container's through its init
    /// (`/proc/PID/root`, volumes included); a stopped one's overlay is
    /// mounted detached and the container stays locked until the returned
    /// value is dropped.
    pub fn open_root(&mut self, name: &str) -> Result<ContainerRoot> {
        let rec = self.refresh(self.lookup(name)?)?;
        if let Some(fd) = running_root(&rec) {
            return Ok(ContainerRoot {
                fd,
                _lock: None,
                record: rec,
                running: true,
            });
        }
        let lock = self.lock(&rec.id)?;
        let rec: ContainerRecord = self
            .db
            .get(crate::db::Table::Containers, &rec.id)?
            .ok_or_else(|| EngineError::NoSuchContainer(name.to_string()))?;
        if rec.state.prepared {
            // Started meanwhile (or half-way): use the running root.
            drop(lock);
            if let Some(fd) = running_root(&rec) {
                return Ok(ContainerRoot {
                    fd,
                    _lock: None,
                    record: rec,
                    running: true,
                });
            }
            return Err(EngineError::Invalid(format!(
                "container {} is being started or cleaned up: try again",
                rec.name
            )));
        }
        let fd = self.mount_detached(&rec)?;
        Ok(ContainerRoot {
            fd,
            _lock: Some(lock),
            record: rec,
            running: false,
        })
    }

    /// The overlay lower directories of a container's image (top first).
    fn lowers(&self, rec: &ContainerRecord) -> Result<Vec<PathBuf>> {
        Ok(barge_image::snapshot(
            &self.store,
            &rec.image_id,
            &barge_image::UnpackOptions::for_current_user(),
        )?)
    }

    /// Mounts the container's overlay without attaching it anywhere: the
    /// mount lives as long as the returned descriptor.
    fn mount_detached(&self, rec: &ContainerRecord) -> Result<OwnedFd> {
        use rustix::mount as m;
        let cdir = self.paths.container_dir(&rec.id);
        let upper = cdir.join("upper");
        let work = cdir.join("work");
        for d in [&upper, &work] {
            std::fs::create_dir_all(d)
                .map_err(EngineError::io(format!("creating {}", d.display())))?;
        }
        let lower = self
            .lowers(rec)?
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let ctx = || format!("mounting the overlay of container {}", rec.id);
        let fs = m::fsopen("overlay", m::FsOpenFlags::FSOPEN_CLOEXEC).map_err(io_err(ctx()))?;
        let upper_s = upper.display().to_string();
        let work_s = work.display().to_string();
        for (k, v) in [
            ("lowerdir", lower.as_str()),
            ("upperdir", upper_s.as_str()),
            ("workdir", work_s.as_str()),
        ] {
            m::fsconfig_set_string(&fs, k, v).map_err(io_err(format!("{}: {k}={v}", ctx())))?;
        }
        for opt in super::lifecycle::overlay_extra_options().split(',') {
            match opt.split_once('=') {
                Some((k, v)) => m::fsconfig_set_string(&fs, k, v),
                None => m::fsconfig_set_flag(&fs, opt),
            }
            .map_err(io_err(format!("{}: {opt}", ctx())))?;
        }
        m::fsconfig_create(&fs).map_err(io_err(ctx()))?;
        m::fsmount(
            &fs,
            m::FsMountFlags::FSMOUNT_CLOEXEC,
            m::MountAttrFlags::empty(),
        )
        .map_err(io_err(ctx()))
    }

    /// `podman cp`: copies between a container and the host (or a tar
    /// stream: `input` for `- CTR:DIR`, `output` for `CTR:PATH -`).
    pub fn copy(
        &mut self,
        src: &CopyEnd,
        dst: &CopyEnd,
        opts: CopyOptions,
        input: &mut dyn Read,
        output: &mut dyn Write,
    ) -> Result<()> {
        match (src, dst) {
            (CopyEnd::Container { name, path }, CopyEnd::Host(host)) => {
                let root = self.open_root(name)?;
                let host_root = open_host_root()?;
                let host_s = host.to_string_lossy().into_owned();
                let host_abs = absolute_host(host)?;
                let (tar_name, src_kind) = source_in(
                    root.fd(),
                    path,
                    path,
                    &format!("on container {}", root.record.name),
                )?;
                let target = plan_destination(
                    host_root.as_fd(),
                    &host_abs,
                    &host_s,
                    src_kind,
                    opts.overwrite,
                    "on the host",
                )?;
                // Streamed through a pipe: the writer walks the container,
                // the reader extracts on the host.
                stream_copy(
                    |w| write_tar(root.fd(), path, &tar_name, w),
                    |r| extract_tar(host_root.as_fd(), &target, r, None, opts.overwrite),
                )
            }
            (CopyEnd::Host(host), CopyEnd::Container { name, path }) => {
                let root = self.open_root(name)?;
                let host_root = open_host_root()?;
                let host_abs = absolute_host(host)?;
                let host_rel = host_abs.to_string_lossy().into_owned();
                let (tar_name, src_kind) = source_in(
                    host_root.as_fd(),
                    &host_rel,
                    &host.to_string_lossy(),
                    "on the host",
                )?;
                let target = plan_destination(
                    root.fd(),
                    Path::new(path),
                    path,
                    src_kind,
                    opts.overwrite,
                    &format!("on container {}", root.record.name),
                )?;
                let owner = Self::owner_for(&root, opts)?;
                stream_copy(
                    |w| write_tar(host_root.as_fd(), &host_rel, &tar_name, w),
                    |r| extract_tar(root.fd(), &target, r, owner, opts.overwrite),
                )
            }
            (CopyEnd::Container { name, path }, CopyEnd::Stream) => {
                let root = self.open_root(name)?;
                let (tar_name, _) = source_in(
                    root.fd(),
                    path,
                    path,
                    &format!("on container {}", root.record.name),
                )?;
                write_tar(root.fd(), path, &tar_name, output)?;
                Ok(())
            }
            (CopyEnd::Stream, CopyEnd::Container { name, path }) => {
                let root = self.open_root(name)?;
                let where_ = format!("on container {}", root.record.name);
                let comps = clean(Path::new(path));
                let dir = open_in(root.fd(), &comps, true).map_err(|_| not_found(path, &where_))?;
                let st = rustix::fs::fstat(&dir).map_err(io_err(format!("stat {path}")))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    return Err(EngineError::Invalid(format!(
                        "destination {path:?} must be a directory when copying from stdin"
                    )));
                }
                let target = Target {
                    dir: comps,
                    first: First::Keep,
                };
                let owner = Self::owner_for(&root, opts)?;
                extract_tar(root.fd(), &target, input, owner, opts.overwrite)
            }
            (CopyEnd::Container { .. }, CopyEnd::Container { .. }) => Err(EngineError::Invalid(
                "copying between containers is not supported".into(),
            )),
            (CopyEnd::Stream, CopyEnd::Stream) => Err(EngineError::Invalid(
                "invalid arguments -, -: you must specify at least one container".into(),
            )),
            (CopyEnd::Host(_) | CopyEnd::Stream, CopyEnd::Host(_) | CopyEnd::Stream) => {
                Err(EngineError::Invalid(
                    "invalid arguments: you must specify one container (CONTAINER:PATH)".into(),
                ))
            }
        }
    }

    /// The owner of files copied into a container: its primary uid/gid
    /// with `--archive` (podman's default), else the archive's.
    fn owner_for(root: &ContainerRoot, opts: CopyOptions) -> Result<Option<(u32, u32)>> {
        if !opts.archive {
            return Ok(None);
        }
        let (uid, gid, _) = resolve_user(&root.proc_path(), &root.record.config.user)?;
        Ok(Some((uid, gid)))
    }

    /// `podman diff`: what the container changed, sorted by path.
    pub fn diff(&mut self, name: &str) -> Result<Vec<barge_image::diff::Change>> {
        let rec = self.lookup(name)?;
        let upper = self.paths.container_dir(&rec.id).join("upper");
        if !upper.is_dir() {
            return Ok(Vec::new());
        }
        let lowers = barge_image::diff::LowerLayers::new(self.lowers(&rec)?);
        barge_image::diff::changes_from_overlay_upper(&upper, &lowers).map_err(diff_err)
    }

    /// `podman commit`: the container's changes as a new layer over its
    /// image, its configuration (command, entrypoint, environment, working
    /// directory, user, labels, stop signal) with `opts.changes` applied.
    /// A running container is paused while its changes are read (a
    /// running container could otherwise swap a directory for a symlink
    /// under the reader).
    pub fn commit(
        &mut self,
        name: &str,
        opts: &CommitOptions,
    ) -> Result<barge_image::commit::CommitReport> {
        barge_image::commit::validate_changes(&opts.changes)?;
        let rec = self.refresh(self.lookup(name)?)?;
        let paused = if rec.state.status == Status::Running {
            self.pause(&rec.id)?;
            true
        } else {
            false
        };
        let result = self.commit_paused(&rec, opts);
        if paused {
            if let Err(e) = self.unpause(&rec.id) {
                tracing::warn!(id = %rec.id, "unpausing after commit: {e}");
            }
        }
        result
    }

    fn commit_paused(
        &mut self,
        rec: &ContainerRecord,
        opts: &CommitOptions,
    ) -> Result<barge_image::commit::CommitReport> {
        let cdir = self.paths.container_dir(&rec.id);
        let upper = cdir.join("upper");
        std::fs::create_dir_all(&upper)
            .map_err(EngineError::io(format!("creating {}", upper.display())))?;
        let tmp = tempfile::tempfile_in(&self.paths.root).map_err(EngineError::io(format!(
            "creating a temporary file in {}",
            self.paths.root.display()
        )))?;
        let mut tmp = barge_image::diff::diff_from_overlay_upper(&upper, tmp).map_err(diff_err)?;
        tmp.flush()
            .and_then(|()| io::Seek::seek(&mut tmp, io::SeekFrom::Start(0)).map(|_| ()))
            .map_err(EngineError::io("rewinding the layer"))?;
        let mut changes = config_changes(rec);
        changes.extend(opts.changes.iter().cloned());
        let copts = barge_image::commit::CommitOptions {
            changes,
            message: opts.message.clone(),
            author: opts.author.clone(),
            created_by: None,
            names: opts
                .image
                .iter()
                .map(|n| crate::images::normalize_local_name(n))
                .collect::<Result<_>>()?,
            ..Default::default()
        };
        Ok(barge_image::commit::commit_image(
            &self.store,
            Some(&rec.image_id),
            io::BufReader::new(tmp),
            &copts,
        )?)
    }

    /// `podman export`: a tar of the container's file system (its rootfs,
    /// without volumes) to `out`.
    pub fn export(&mut self, name: &str, out: &mut dyn Write) -> Result<()> {
        let rec = self.refresh(self.lookup(name)?)?;
        if rec.state.prepared {
            // Running: the host-side merged mount, walked by descriptors
            // (the container may rename things under us).
            let rootfs = self.paths.container_dir(&rec.id).join("rootfs");
            let fd = rustix::fs::open(
                &rootfs,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(format!("opening {}", rootfs.display())))?;
            let mut b = tar::Builder::new(out);
            b.mode(tar::HeaderMode::Complete);
            let dir = rustix::fs::openat(
                &fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(format!("opening {}", rootfs.display())))?;
            let mut links = std::collections::HashMap::new();
            tar_children(&mut b, &dir, Path::new(""), &mut links)?;
            b.finish()
                .map_err(EngineError::io("writing the tar stream"))?;
            return Ok(());
        }
        let root = self.open_root(name)?;
        // `FD/.`: the magic link itself is not a directory, what it leads
        // to is (nothing else changes the tree: the container is locked).
        barge_image::diff::tar_directory(&root.proc_path().join("."), out).map_err(diff_err)?;
        Ok(())
    }
}

fn diff_err(e: barge_image::diff::DiffError) -> EngineError {
    EngineError::Invalid(e.to_string())
}

/// The container's configuration as commit changes (podman keeps it in
/// the committed image).
fn config_changes(rec: &ContainerRecord) -> Vec<String> {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let c = &rec.config;
    let mut out = Vec::new();
    if !c.entrypoint.is_empty() {
        out.push(format!(
            "ENTRYPOINT {}",
            serde_json::to_string(&c.entrypoint).unwrap_or_default()
        ));
    }
    if !c.cmd.is_empty() {
        out.push(format!(
            "CMD {}",
            serde_json::to_string(&c.cmd).unwrap_or_default()
        ));
    }
    for e in &c.env {
        if let Some((k, v)) = e.split_once('=') {
            if !k.is_empty() && !k.contains(char::is_whitespace) {
                out.push(format!("ENV {k}={}", q(v)));
            }
        }
    }
    for (k, v) in &c.labels {
        if !k.is_empty() && !k.contains(char::is_whitespace) && !k.contains('"') {
            out.push(format!("LABEL {}={}", q(k), q(v)));
        }
    }
    if !c.workdir.is_empty() {
        out.push(format!("WORKDIR {}", c.workdir));
    }
    if !c.user.is_empty() {
        out.push(format!("USER {}", c.user));
    }
    if !c.stop_signal.is_empty() && c.stop_signal != "SIGTERM" {
        out.push(format!("STOPSIGNAL {}", c.stop_signal));
    }
    out
}

/// The running container's root, if its init is alive.
fn running_root(rec: &ContainerRecord) -> Option<OwnedFd> {
    if rec.state.pid <= 0 || !alive(rec.state.pid, rec.state.pid_start) {
        return None;
    }
    let fd = rustix::fs::open(
        format!("/proc/{}/root", rec.state.pid),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    // The pid may have been reused between the check and the open.
    alive(rec.state.pid, rec.state.pid_start).then_some(fd)
}

fn open_host_root() -> Result<OwnedFd> {
    rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("opening /"))
}

fn absolute_host(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(EngineError::io(format!("{}", p.display())))?;
    // Keep a trailing slash: it means "a directory".
    let s = p.as_os_str().as_bytes();
    if s.ends_with(b"/") && !abs.as_os_str().as_bytes().ends_with(b"/") {
        let mut v = abs.into_os_string().into_vec();
        v.push(b'/');
        return Ok(PathBuf::from(OsString::from_vec(v)));
    }
    Ok(abs)
}

/// A path's components inside a root: `..` at the root stays at the root
/// (as the kernel's `RESOLVE_IN_ROOT` does), `.` and empty ones vanish.
pub fn clean(p: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn join(comps: &[OsString]) -> PathBuf {
    if comps.is_empty() {
        return PathBuf::from(".");
    }
    comps.iter().collect()
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens a directory (following symlinks, inside the root); with
/// `follow` false a final symlink is not followed (O_PATH).
fn open_in(root: BorrowedFd<'_>, comps: &[OsString], follow: bool) -> rustix::io::Result<OwnedFd> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat2(root, join(comps), flags, Mode::empty(), IN_ROOT)
}

/// Opens a directory for reading entries / creating in it.
fn open_dir(root: BorrowedFd<'_>, comps: &[OsString]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        join(comps),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
}

/// Opens directory `comps` in `root`, creating missing ones (0755).
fn ensure_dir(root: BorrowedFd<'_>, comps: &[OsString]) -> rustix::io::Result<OwnedFd> {
    match open_dir(root, comps) {
        Err(rustix::io::Errno::NOENT) if !comps.is_empty() => {
            let (last, parent) = comps.split_last().ok_or(rustix::io::Errno::NOENT)?;
            let p = ensure_dir(root, parent)?;
            match rustix::fs::mkdirat(&p, last.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                // Made meanwhile, or a symlink (followed inside the root).
                Err(rustix::io::Errno::EXIST) => return open_dir(root, comps),
                Err(e) => return Err(e),
            }
            rustix::fs::openat(
                &p,
                last.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        }
        r => r,
    }
}

fn not_found(path: &str, where_: &str) -> EngineError {
    EngineError::Invalid(format!(
        "{path:?} could not be found {where_}: no such file or directory"
    ))
}

/// What a copy's source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    File,
    Dir,
    /// A directory whose contents are copied (`SRC/.`).
    DirContents,
}

/// Checks a copy source inside `root` (the final symlink is followed,
/// inside the root) and names its archive root entry.
fn source_in(
    root: BorrowedFd<'_>,
    path: &str,
    shown: &str,
    where_: &str,
) -> Result<(OsString, SourceKind)> {
    let comps = clean(Path::new(path));
    let fd = open_in(root, &comps, true).map_err(|_| not_found(shown, where_))?;
    let st = rustix::fs::fstat(&fd).map_err(io_err(format!("stat {path}")))?;
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    // The caller's spelling decides (an absolute host path lost its `/.`).
    let contents = shown.ends_with("/.") || shown == ".";
    if !is_dir && (shown.ends_with('/') || contents) {
        return Err(EngineError::Invalid(format!(
            "{shown:?} is not a directory {where_}"
        )));
    }
    let name = comps.last().cloned().unwrap_or_else(|| OsString::from("."));
    let kind = match (is_dir, contents) {
        (false, _) => SourceKind::File,
        (true, false) => SourceKind::Dir,
        (true, true) => SourceKind::DirContents,
    };
    Ok((name, kind))
}

/// What to do with an archive's first path component.
#[derive(Debug, Clone, PartialEq, Eq)]
enum First {
    Keep,
    Rename(OsString),
    Strip,
}

/// Where an archive is extracted: directory `dir` (inside the root).
#[derive(Debug, Clone)]
struct Target {
    dir: Vec<OsString>,
    first: First,
}

/// podman's (and docker's) destination rules.
fn plan_destination(
    root: BorrowedFd<'_>,
    dest: &Path,
    shown: &str,
    src: SourceKind,
    overwrite: bool,
    where_: &str,
) -> Result<Target> {
    let comps = clean(dest);
    let wants_dir = shown.ends_with('/') || shown.ends_with("/.");
    match open_in(root, &comps, true) {
        Ok(fd) => {
            let st = rustix::fs::fstat(&fd).map_err(io_err(format!("stat {shown}")))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Ok(Target {
                    dir: comps,
                    first: if src == SourceKind::DirContents {
                        First::Strip
                    } else {
                        First::Keep
                    },
                });
            }
            if src != SourceKind::File && !overwrite {
                return Err(EngineError::Invalid(format!(
                    "cannot copy a directory to non-directory {shown:?} {where_} (use --overwrite)"
                )));
            }
            if wants_dir {
                return Err(EngineError::Invalid(format!(
                    "{shown:?} is not a directory {where_}"
                )));
            }
        }
        Err(rustix::io::Errno::NOENT) => {
            if wants_dir && src == SourceKind::File {
                return Err(EngineError::Invalid(format!(
                    "{shown:?} could not be found {where_}: no such directory"
                )));
            }
        }
        Err(_) => return Err(not_found(shown, where_)),
    }
    let Some((last, parent)) = comps.split_last() else {
        return Err(EngineError::Invalid(format!(
            "cannot replace the root directory {where_}"
        )));
    };
    match open_dir(root, parent) {
        Ok(_) => Ok(Target {
            dir: parent.to_vec(),
            first: First::Rename(last.clone()),
        }),
        Err(_) => Err(not_found(shown, where_)),
    }
}

// ------------------------------------------------------------ tar writing

/// Pads a reader that came up short (a file truncated while read) and
/// stops at `left` bytes, so a tar entry always has its header's size.
struct Exact<R> {
    inner: R,
    left: u64,
    eof: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = if self.eof {
            0
        } else {
            self.inner.read(&mut buf[..max])?
        };
        let n = if n == 0 {
            self.eof = true;
            buf[..max].fill(0);
            max
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

type Links = std::collections::HashMap<(u64, u64), PathBuf>;

fn header_for(st: &rustix::fs::Stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// Writes a tar of `path` inside `root` to `out`, its root entry named
/// `name` (the last component of `path`; for `SRC/.`, the directory).
fn write_tar(root: BorrowedFd<'_>, path: &str, name: &OsStr, out: impl Write) -> Result<()> {
    let comps = clean(Path::new(path));
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let mut links = Links::new();
    // The final component is followed inside the root: open its parent and
    // then the entry itself by name would not follow it; a resolved
    // descriptor is used instead.
    let fd = open_in(root, &comps, true).map_err(io_err(format!("opening {path}")))?;
    tar_fd(&mut b, &fd, Path::new(name), &mut links)?;
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(EngineError::io("writing the tar stream"))?;
    Ok(())
}

fn wr(path: &Path) -> impl FnOnce(io::Error) -> EngineError + '_ {
    move |e| EngineError::Io {
        context: format!("writing tar entry {}", path.display()),
        source: e,
    }
}

/// Archives the object open as `fd` (an O_PATH descriptor) as `name`.
fn tar_fd<W: Write>(
    b: &mut tar::Builder<W>,
    fd: &OwnedFd,
    name: &Path,
    links: &mut Links,
) -> Result<()> {
    let st = rustix::fs::fstat(fd).map_err(io_err(format!("stat {}", name.display())))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let mut h = header_for(&st);
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, dir_name(name), io::empty())
                .map_err(wr(name))?;
            let dir = rustix::fs::openat(
                fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(format!("opening {}", name.display())))?;
            tar_children(b, &dir, name, links)
        }
        FileType::RegularFile => {
            // The O_PATH descriptor is reopened through /proc: the magic
            // link leads to exactly this file, whatever its path now.
            use std::os::fd::AsRawFd as _;
            let f = rustix::fs::open(
                format!("/proc/self/fd/{}", fd.as_raw_fd()),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(format!("opening {}", name.display())))?;
            tar_file(b, f, &st, name, links)
        }
        _ => Err(EngineError::Invalid(format!(
            "{} is not a regular file or directory",
            name.display()
        ))),
    }
}

fn dir_name(p: &Path) -> PathBuf {
    let mut v = p.as_os_str().as_bytes().to_vec();
    if !v.ends_with(b"/") {
        v.push(b'/');
    }
    PathBuf::from(OsString::from_vec(v))
}

fn tar_file<W: Write>(
    b: &mut tar::Builder<W>,
    f: OwnedFd,
    st: &rustix::fs::Stat,
    name: &Path,
    links: &mut Links,
) -> Result<()> {
    let mut h = header_for(st);
    if st.st_nlink > 1 {
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = links.get(&key) {
            h.set_entry_type(tar::EntryType::Link);
            b.append_link(&mut h, name, first).map_err(wr(name))?;
            return Ok(());
        }
        links.insert(key, name.to_path_buf());
    }
    h.set_entry_type(tar::EntryType::Regular);
    let size = u64::try_from(st.st_size).unwrap_or(0);
    h.set_size(size);
    let r = Exact {
        inner: std::fs::File::from(f),
        left: size,
        eof: false,
    };
    b.append_data(&mut h, name, r).map_err(wr(name))
}

/// Archives the entries of directory `dir` under `prefix`, sorted by name,
/// each opened relative to `dir` without following symlinks.
fn tar_children<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &OwnedFd,
    prefix: &Path,
    links: &mut Links,
) -> Result<()> {
    let mut names: Vec<OsString> = Vec::new();
    let entries = rustix::fs::Dir::read_from(dir)
        .map_err(io_err(format!("reading directory {}", prefix.display())))?;
    for e in entries {
        let e = e.map_err(io_err(format!("reading directory {}", prefix.display())))?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(OsString::from_vec(n.to_vec()));
    }
    names.sort();
    for n in names {
        let name = prefix.join(&n);
        let st = match rustix::fs::statat(dir, n.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(io_err(format!("stat {}", name.display()))(e)),
        };
        let mut h = header_for(&st);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let sub = match rustix::fs::openat(
                    dir,
                    n.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(f) => f,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(io_err(format!("opening {}", name.display()))(e)),
                };
                let st =
                    rustix::fs::fstat(&sub).map_err(io_err(format!("stat {}", name.display())))?;
                let mut h = header_for(&st);
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, dir_name(&name), io::empty())
                    .map_err(wr(&name))?;
                tar_children(b, &sub, &name, links)?;
            }
            FileType::RegularFile => {
                let f = match rustix::fs::openat(
                    dir,
                    n.as_os_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(f) => f,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(io_err(format!("opening {}", name.display()))(e)),
                };
                let st =
                    rustix::fs::fstat(&f).map_err(io_err(format!("stat {}", name.display())))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    continue;
                }
                tar_file(b, f, &st, &name, links)?;
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(dir, n.as_os_str(), Vec::new()) {
                    Ok(t) => t,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(io_err(format!("reading link {}", name.display()))(e)),
                };
                h.set_entry_type(tar::EntryType::Symlink);
                let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
                b.append_link(&mut h, &name, &target).map_err(wr(&name))?;
            }
            t @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                h.set_entry_type(match t {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                if t != FileType::Fifo {
                    let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
                    let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
                }
                b.append_data(&mut h, &name, io::empty())
                    .map_err(wr(&name))?;
            }
            // Sockets and unknown types are left out.
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------- tar extraction

fn ext_err(name: &Path) -> impl FnOnce(rustix::io::Errno) -> EngineError + '_ {
    move |e| EngineError::Io {
        context: format!("extracting {}", name.display()),
        source: e.into(),
    }
}

/// Removes `name` in `dir` (a whole tree for a directory), never following
/// symlinks.
fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for e in rustix::fs::Dir::read_from(&sub)? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsString::from_vec(n.to_vec()));
            }
        }
        for n in names {
            remove_at(sub.as_fd(), &n)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
    }
}

/// Extracts the tar stream `input` into `target` inside `root`. Entry
/// names are cleaned (`..` cannot climb above the root) and every parent
/// is resolved inside the root, so a hostile archive cannot write outside
/// it. `owner` overrides the archive's owners.
fn extract_tar(
    root: BorrowedFd<'_>,
    target: &Target,
    input: impl Read,
    owner: Option<(u32, u32)>,
    overwrite: bool,
) -> Result<()> {
    let mut ar = tar::Archive::new(input);
    let entries = ar
        .entries()
        .map_err(EngineError::io("reading the tar stream"))?;
    for entry in entries {
        let mut entry = entry.map_err(EngineError::io("reading the tar stream"))?;
        let raw = entry
            .path()
            .map_err(EngineError::io("reading the tar stream"))?
            .into_owned();
        let mut comps = clean(&raw);
        match &target.first {
            First::Keep => {}
            First::Rename(n) => {
                if let Some(c) = comps.first_mut() {
                    c.clone_from(n);
                }
            }
            First::Strip => {
                if !comps.is_empty() {
                    comps.remove(0);
                }
            }
        }
        let Some((last, parent)) = comps.split_last() else {
            // The target directory itself: leave it as it is.
            continue;
        };
        let mut full = target.dir.clone();
        full.extend(parent.iter().cloned());
        let shown = join(&[target.dir.clone(), comps.clone()].concat());
        let dir = ensure_dir(root, &full).map_err(ext_err(&shown))?;
        let h = entry.header().clone();
        let kind = h.entry_type();
        let existing = rustix::fs::statat(&dir, last.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_dir =
            existing.is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
        let mode = Mode::from_raw_mode(h.mode().unwrap_or(0o644) & 0o7777);
        match kind {
            tar::EntryType::Directory => {
                if existing.is_some() && !existing_dir {
                    if !overwrite {
                        return Err(EngineError::Invalid(format!(
                            "cannot overwrite non-directory {:?} with a directory (use --overwrite)",
                            Path::new("/").join(&shown)
                        )));
                    }
                    remove_at(dir.as_fd(), last).map_err(ext_err(&shown))?;
                }
                if !existing_dir {
                    rustix::fs::mkdirat(&dir, last.as_os_str(), Mode::from_raw_mode(0o700))
                        .map_err(ext_err(&shown))?;
                }
                let d = rustix::fs::openat(
                    &dir,
                    last.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(ext_err(&shown))?;
                set_owner_mode(&d, &h, owner, Some(mode)).map_err(ext_err(&shown))?;
                continue;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            _ => {}
        }
        if existing_dir && !overwrite {
            return Err(EngineError::Invalid(format!(
                "cannot overwrite directory {:?} with a non-directory (use --overwrite)",
                Path::new("/").join(&shown)
            )));
        }
        if existing.is_some() {
            remove_at(dir.as_fd(), last).map_err(ext_err(&shown))?;
        }
        let (uid, gid) = owner.unwrap_or((
            h.uid().map_or(0, |u| u32::try_from(u).unwrap_or(0)),
            h.gid().map_or(0, |g| u32::try_from(g).unwrap_or(0)),
        ));
        let mtime = h.mtime().unwrap_or(0);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let f = rustix::fs::openat(
                    &dir,
                    last.as_os_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(ext_err(&shown))?;
                let mut file = std::fs::File::from(f);
                io::copy(&mut entry, &mut file).map_err(|e| EngineError::Io {
                    context: format!("extracting {}", shown.display()),
                    source: e,
                })?;
                set_owner_mode(&file, &h, owner, Some(mode)).map_err(ext_err(&shown))?;
                let ts = timestamps(mtime);
                rustix::fs::futimens(&file, &ts).map_err(ext_err(&shown))?;
            }
            tar::EntryType::Symlink => {
                let target_link = entry
                    .link_name()
                    .map_err(EngineError::io("reading the tar stream"))?
                    .ok_or_else(|| {
                        EngineError::Invalid(format!("symlink {} has no target", shown.display()))
                    })?
                    .into_owned();
                rustix::fs::symlinkat(&target_link, &dir, last.as_os_str())
                    .map_err(ext_err(&shown))?;
                rustix::fs::chownat(
                    &dir,
                    last.as_os_str(),
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(ext_err(&shown))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(EngineError::io("reading the tar stream"))?
                    .ok_or_else(|| {
                        EngineError::Invalid(format!("hard link {} has no target", shown.display()))
                    })?
                    .into_owned();
                let mut lc = clean(&link);
                match &target.first {
                    First::Keep => {}
                    First::Rename(n) => {
                        if let Some(c) = lc.first_mut() {
                            c.clone_from(n);
                        }
                    }
                    First::Strip => {
                        if !lc.is_empty() {
                            lc.remove(0);
                        }
                    }
                }
                let Some((lname, lparent)) = lc.split_last() else {
                    return Err(EngineError::Invalid(format!(
                        "hard link {} has an empty target",
                        shown.display()
                    )));
                };
                let mut lfull = target.dir.clone();
                lfull.extend(lparent.iter().cloned());
                let ldir = open_dir(root, &lfull).map_err(ext_err(&shown))?;
                rustix::fs::linkat(
                    &ldir,
                    lname.as_os_str(),
                    &dir,
                    last.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(ext_err(&shown))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(&dir, last.as_os_str(), ft, mode, dev)
                    .map_err(ext_err(&shown))?;
                rustix::fs::chownat(
                    &dir,
                    last.as_os_str(),
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(ext_err(&shown))?;
            }
            other => {
                return Err(EngineError::Invalid(format!(
                    "{}: unsupported tar entry type {other:?}",
                    shown.display()
                )))
            }
        }
    }
    Ok(())
}

fn timestamps(mtime: u64) -> rustix::fs::Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn set_owner_mode(
    fd: impl AsFd,
    h: &tar::Header,
    owner: Option<(u32, u32)>,
    mode: Option<Mode>,
) -> rustix::io::Result<()> {
    let (uid, gid) = owner.unwrap_or((
        h.uid().map_or(0, |u| u32::try_from(u).unwrap_or(0)),
        h.gid().map_or(0, |g| u32::try_from(g).unwrap_or(0)),
    ));
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )?;
    // chown clears set-id bits: the mode goes last.
    if let Some(m) = mode {
        rustix::fs::fchmod(&fd, m)?;
    }
    Ok(())
}

// ------------------------------------------------------------- streaming

/// Runs a tar producer and a consumer connected by a pipe, the producer on
/// a scoped thread. The producer's error wins (the consumer then saw a
/// truncated stream).
fn stream_copy(
    produce: impl FnOnce(&mut dyn Write) -> Result<()> + Send,
    consume: impl FnOnce(&mut dyn Read) -> Result<()>,
) -> Result<()> {
    let (mut r, w) = io::pipe().map_err(EngineError::io("creating a pipe"))?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut w = w;
            produce(&mut w)
        });
        let consumed = consume(&mut r);
        // Drain so the producer never blocks, then close.
        let _ = io::copy(&mut r, &mut io::sink());
        drop(r);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(EngineError::Invalid("the copy thread panicked".into())));
        produced.and(consumed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ends() {
        assert_eq!(CopyEnd::parse("-").unwrap(), CopyEnd::Stream);
        assert_eq!(
            CopyEnd::parse("c1:/etc").unwrap(),
            CopyEnd::Container {
                name: "c1".into(),
                path: "/etc".into()
            }
        );
        assert_eq!(
            CopyEnd::parse("./a:b").unwrap(),
            CopyEnd::Host("./a:b".into())
        );
        assert_eq!(CopyEnd::parse("/x").unwrap(), CopyEnd::Host("/x".into()));
        assert!(CopyEnd::parse(":x").is_err());
        assert!(CopyEnd::parse("").is_err());
    }

    #[test]
    fn clean_stays_in_root() {
        assert_eq!(clean(Path::new("../../x")), vec![OsString::from("x")]);
        assert_eq!(
            clean(Path::new("/a/./b/../c")),
            vec![OsString::from("a"), OsString::from("c")]
        );
        assert!(clean(Path::new("/")).is_empty());
    }

    fn root_of(d: &Path) -> OwnedFd {
        rustix::fs::open(d, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn round_trip_and_symlinks_stay_inside() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("d/sub")).unwrap();
        std::fs::write(src.path().join("d/sub/f"), b"hello").unwrap();
        std::fs::hard_link(src.path().join("d/sub/f"), src.path().join("d/h")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", src.path().join("d/evil")).unwrap();
        let sroot = root_of(src.path());
        let droot = root_of(dst.path());
        let mut buf = Vec::new();
        write_tar(sroot.as_fd(), "d", OsStr::new("d"), &mut buf).unwrap();
        let t = Target {
            dir: vec![],
            first: First::Rename("copy".into()),
        };
        extract_tar(droot.as_fd(), &t, &buf[..], None, false).unwrap();
        assert_eq!(
            std::fs::read(dst.path().join("copy/sub/f")).unwrap(),
            b"hello"
        );
        assert_eq!(std::fs::read(dst.path().join("copy/h")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_link(dst.path().join("copy/evil")).unwrap(),
            Path::new("/etc/shadow")
        );
        // A source that is a symlink out of the root resolves inside it.
        std::os::unix::fs::symlink("../../../etc/shadow", src.path().join("top")).unwrap();
        assert!(source_in(sroot.as_fd(), "top", "top", "here").is_err());
        std::fs::create_dir(src.path().join("etc")).unwrap();
        std::fs::write(src.path().join("etc/shadow"), b"inside").unwrap();
        let (name, kind) = source_in(sroot.as_fd(), "top", "top", "here").unwrap();
        assert_eq!(
            (name.as_os_str(), kind),
            (OsStr::new("top"), SourceKind::File)
        );
        let mut buf = Vec::new();
        write_tar(sroot.as_fd(), "top", &name, &mut buf).unwrap();
        extract_tar(
            droot.as_fd(),
            &Target {
                dir: vec![],
                first: First::Keep,
            },
            &buf[..],
            None,
            false,
        )
        .unwrap();
        assert_eq!(std::fs::read(dst.path().join("top")).unwrap(), b"inside");
    }

    /// A raw one-entry tar (the tar crate refuses to write `..` names).
    fn raw_tar(name: &[u8], data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        out
    }

    #[test]
    fn hostile_archive_cannot_escape() {
        let outside = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let root = dst.path().join("root");
        std::fs::create_dir(&root).unwrap();
        // A symlink to outside the root, then a file written through it.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", outside.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "link/pwned", &b"bad"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let r = root_of(&root);
        let t = Target {
            dir: vec![],
            first: First::Keep,
        };
        // Either refused or written inside the root: never outside.
        let _ = extract_tar(r.as_fd(), &t, &data[..], None, false);
        assert!(!outside.path().join("pwned").exists());
        extract_tar(
            r.as_fd(),
            &t,
            &raw_tar(b"../../../escape", b"bad")[..],
            None,
            false,
        )
        .unwrap();
        assert!(!dst.path().join("escape").exists());
        assert_eq!(std::fs::read(root.join("escape")).unwrap(), b"bad");
        extract_tar(r.as_fd(), &t, &raw_tar(b"/abs", b"bad")[..], None, false).unwrap();
        assert!(root.join("abs").exists());
    }

    #[test]
    fn commit_config_changes_parse() {
        let mut rec = ContainerRecord {
            id: "0".repeat(64),
            name: "n".into(),
            image_id: String::new(),
            image_name: String::new(),
            created: 0,
            config: super::super::ContainerConfig::default(),
            state: super::super::State::default(),
            pod: None,
        };
        rec.config.env = vec!["A=has space \"q\" \\ end".into(), "B=".into()];
        rec.config.cmd = vec!["sh".into(), "-c".into(), "echo hi".into()];
        rec.config.labels.insert("l".into(), "v w".into());
        let mut cfg = serde_json::json!({});
        for c in config_changes(&rec) {
            barge_image::commit::apply_change(&mut cfg, &c).unwrap();
        }
        assert_eq!(cfg["config"]["Env"][0], "A=has space \"q\" \\ end");
        assert_eq!(cfg["config"]["Env"][1], "B=");
        assert_eq!(cfg["config"]["Cmd"][2], "echo hi");
        assert_eq!(cfg["config"]["Labels"]["l"], "v w");
    }
}
