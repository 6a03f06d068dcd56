//! The container's filesystem: rootfs propagation, the spec's mounts (with
//! symlink-safe target resolution), cgroup views, devices, pivot_root,
//! masked and readonly paths.
//!
//! Targets are always resolved with `openat2(RESOLVE_IN_ROOT)` relative to
//! the rootfs and mounted through `/proc/self/fd/N`, so a symlink in an
//! image can never redirect a mount outside the container's root.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{Context, RuntimeError};

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_NOSUID: u64 = libc::MS_NOSUID;
const MS_NODEV: u64 = libc::MS_NODEV;
const MS_NOEXEC: u64 = libc::MS_NOEXEC;
const MS_REMOUNT: u64 = libc::MS_REMOUNT;
const MS_BIND: u64 = libc::MS_BIND;
const MS_REC: u64 = libc::MS_REC;
const MS_PRIVATE: u64 = libc::MS_PRIVATE;
const MS_SLAVE: u64 = libc::MS_SLAVE;
const MS_SHARED: u64 = libc::MS_SHARED;
const MS_UNBINDABLE: u64 = libc::MS_UNBINDABLE;
const MS_MOVE: u64 = libc::MS_MOVE;
const MS_NOSYMFOLLOW: u64 = 256;

/// A mount's options split into what `mount(2)` needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set on the mount.
    pub flags: u64,
    /// Propagation changes to apply afterwards, in order.
    pub propagation: Vec<u64>,
    /// Filesystem-specific options (`mode=755,size=64k`).
    pub data: String,
    pub tmpcopyup: bool,
    /// `idmap` / `ridmap`: (requested, recursive).
    pub idmap: Option<bool>,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags & MS_BIND != 0
    }
}

/// Parse OCI mount options. Unknown words are passed to the filesystem as
/// data, like runc does.
pub fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        let (set, clear): (u64, u64) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" | "rro" => (MS_RDONLY, 0),
            "rw" | "rrw" => (0, MS_RDONLY),
            "suid" | "rsuid" => (0, MS_NOSUID),
            "nosuid" | "rnosuid" => (MS_NOSUID, 0),
            "dev" | "rdev" => (0, MS_NODEV),
            "nodev" | "rnodev" => (MS_NODEV, 0),
            "exec" | "rexec" => (0, MS_NOEXEC),
            "noexec" | "rnoexec" => (MS_NOEXEC, 0),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" | "ratime" => (0, libc::MS_NOATIME),
            "noatime" | "rnoatime" => (libc::MS_NOATIME, 0),
            "diratime" | "rdiratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" | "rnodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" | "rrelatime" => (libc::MS_RELATIME, 0),
            "norelatime" | "rnorelatime" => (0, libc::MS_RELATIME),
            "strictatime" | "rstrictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" | "rnostrictatime" => (0, libc::MS_STRICTATIME),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "nosymfollow" | "rnosymfollow" => (MS_NOSYMFOLLOW, 0),
            "symfollow" | "rsymfollow" => (0, MS_NOSYMFOLLOW),
            "bind" => (MS_BIND, 0),
            "rbind" => (MS_BIND | MS_REC, 0),
            "private" => {
                o.propagation.push(MS_PRIVATE);
                (0, 0)
            }
            "rprivate" => {
                o.propagation.push(MS_PRIVATE | MS_REC);
                (0, 0)
            }
            "shared" => {
                o.propagation.push(MS_SHARED);
                (0, 0)
            }
            "rshared" => {
                o.propagation.push(MS_SHARED | MS_REC);
                (0, 0)
            }
            "slave" => {
                o.propagation.push(MS_SLAVE);
                (0, 0)
            }
            "rslave" => {
                o.propagation.push(MS_SLAVE | MS_REC);
                (0, 0)
            }
            "unbindable" => {
                o.propagation.push(MS_UNBINDABLE);
                (0, 0)
            }
            "runbindable" => {
                o.propagation.push(MS_UNBINDABLE | MS_REC);
                (0, 0)
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                (0, 0)
            }
            "idmap" => {
                o.idmap = Some(false);
                (0, 0)
            }
            "ridmap" => {
                o.idmap = Some(true);
                (0, 0)
            }
            other => {
                data.push(other.to_string());
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o.data = data.join(",");
    o
}

/// `mount(2)` with raw flags.
pub fn sys_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: &str,
) -> Result<(), RuntimeError> {
    let data_c = std::ffi::CString::new(data).map_err(|_| {
        RuntimeError::Other(format!("mount data for {} contains NUL", target.display()))
    })?;
    let src = source.unwrap_or(Path::new("none"));
    rustix::mount::mount(
        src,
        target,
        fstype.unwrap_or(""),
        MountFlags::from_bits_retain(flags as _),
        if data.is_empty() {
            None
        } else {
            Some(data_c.as_c_str())
        },
    )
    .ctx(|| {
        format!(
            "mounting {} on {} (type {}, flags {:#x}, data {:?})",
            src.display(),
            target.display(),
            fstype.unwrap_or("none"),
            flags,
            data
        )
    })
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// Open `rel` (absolute inside the container) under `root` without ever
/// leaving it, as an O_PATH fd.
pub fn open_in_root(root: &OwnedFd, rel: &Path) -> rustix::io::Result<OwnedFd> {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    loop {
        match rustix::fs::openat2(
            root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            other => return other,
        }
    }
}

/// Make sure `dest` exists inside `root` (creating missing directories, and
/// the last component as a directory or an empty file) and return an O_PATH
/// fd to it.
pub fn ensure_target(root: &OwnedFd, dest: &Path, file: bool) -> Result<OwnedFd, RuntimeError> {
    let comps: Vec<&std::ffi::OsStr> = dest
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if dest.components().any(|c| c == Component::ParentDir) {
        return Err(RuntimeError::Other(format!(
            "mount destination {} must not contain '..'",
            dest.display()
        )));
    }
    let mut prefix = PathBuf::from("/");
    for (i, comp) in comps.iter().enumerate() {
        let parent = prefix.clone();
        prefix.push(comp);
        if open_in_root(root, &prefix).is_ok() {
            continue;
        }
        let parent_fd = open_in_root(root, &parent)
            .ctx(|| format!("resolving {} in the rootfs", parent.display()))?;
        let last = i + 1 == comps.len();
        let res = if last && file {
            rustix::fs::openat(
                &parent_fd,
                *comp,
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(&parent_fd, *comp, Mode::from_raw_mode(0o755))
        };
        match res {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(RuntimeError::io(
                    format!("creating {} in the rootfs", prefix.display()),
                    e.into(),
                ))
            }
        }
    }
    open_in_root(root, dest).ctx(|| format!("resolving {} in the rootfs", dest.display()))
}

/// Enter the working directory `cwd` resolved inside the current root
/// (never through a magic link such as `/proc/self/fd/N`, which could name a
/// directory outside it), and check that the result is reachable from the
/// root (CVE-2024-21626).
pub fn chdir_in_root(cwd: &Path) -> Result<(), RuntimeError> {
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "opening /".to_string())?;
    let rel = cwd.strip_prefix("/").unwrap_or(cwd);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let dir = rustix::fs::openat2(
        &root,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ctx(|| format!("chdir to cwd {}", cwd.display()))?;
    rustix::process::fchdir(&dir).ctx(|| format!("chdir to cwd {}", cwd.display()))?;
    let now = rustix::process::getcwd(Vec::new()).ctx(|| "getcwd".to_string())?;
    if !now.to_bytes().starts_with(b"/") {
        return Err(RuntimeError::Other(format!(
            "cwd {} is outside the container's root",
            cwd.display()
        )));
    }
    Ok(())
}

/// Flags of the mount at `path` that an unprivileged user namespace may not
/// clear on a bind remount (the kernel "locks" them).
pub fn locked_flags(path: &Path) -> u64 {
    let Ok(st) = rustix::fs::statvfs(path) else {
        return 0;
    };
    let f = st.f_flag;
    let mut out = 0;
    for (st_flag, ms) in [
        (rustix::fs::StatVfsMountFlags::NOSUID, MS_NOSUID),
        (rustix::fs::StatVfsMountFlags::NODEV, MS_NODEV),
        (rustix::fs::StatVfsMountFlags::NOEXEC, MS_NOEXEC),
        (rustix::fs::StatVfsMountFlags::NOATIME, libc::MS_NOATIME),
        (
            rustix::fs::StatVfsMountFlags::NODIRATIME,
            libc::MS_NODIRATIME,
        ),
        (rustix::fs::StatVfsMountFlags::RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(st_flag) {
            out |= ms;
        }
    }
    out
}

/// Set the propagation of `/` before anything is mounted (default rslave so
/// container mounts do not leak to the host, but host mounts still arrive).
pub fn prepare_root(propagation: Option<&str>) -> Result<(), RuntimeError> {
    let flags = match propagation.unwrap_or("") {
        "shared" => MS_SHARED,
        "rshared" => MS_SHARED | MS_REC,
        "slave" => MS_SLAVE,
        "private" => MS_PRIVATE,
        "rprivate" => MS_PRIVATE | MS_REC,
        "unbindable" => MS_UNBINDABLE,
        "runbindable" => MS_UNBINDABLE | MS_REC,
        _ => MS_SLAVE | MS_REC,
    };
    sys_mount(None, Path::new("/"), None, flags, "")
}

/// Make the rootfs a mount point of its own (pivot_root needs one).
pub fn bind_rootfs(rootfs: &Path) -> Result<(), RuntimeError> {
    sys_mount(Some(rootfs), rootfs, None, MS_BIND | MS_REC, "")?;
    // The parent of the new root must not be shared for pivot_root.
    sys_mount(None, rootfs, None, MS_PRIVATE, "")
}

/// Everything the mount step needs to know about the container.
#[derive(Debug)]
pub struct MountContext<'a> {
    pub rootfs: &'a Path,
    pub root_fd: OwnedFd,
    pub in_user_ns: bool,
    pub new_cgroup_ns: bool,
    /// (name under /sys/fs/cgroup, host directory of the container's cgroup
    /// in that hierarchy, is cgroup2).
    pub cgroup_views: Vec<(String, PathBuf, bool)>,
    /// Pre-built idmapped mounts, by destination.
    pub idmapped: Vec<(PathBuf, OwnedFd)>,
}

/// Perform one spec mount.
pub fn mount_one(ctx: &MountContext<'_>, m: &Mount) -> Result<(), RuntimeError> {
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, dest, &opts);
    }
    if opts.idmap.is_some() {
        if let Some((_, fd)) = ctx.idmapped.iter().find(|(d, _)| d == dest) {
            let target = ensure_target(&ctx.root_fd, dest, !source_is_dir(m))?;
            rustix::mount::move_mount(
                fd,
                "",
                &target,
                "",
                rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                    | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
            )
            .ctx(|| format!("attaching the idmapped mount at {}", dest.display()))?;
            return apply_after(ctx, dest, &opts, opts.flags & !MS_BIND, true);
        }
        return Err(RuntimeError::Other(format!(
            "idmapped mount at {} needs a new user namespace",
            dest.display()
        )));
    }
    if opts.is_bind() || typ == "bind" {
        let source = m.source().as_deref().ok_or_else(|| {
            RuntimeError::Other(format!("bind mount at {} has no source", dest.display()))
        })?;
        std::fs::metadata(source).ctx(|| format!("bind mount source {}", source.display()))?;
        let target = ensure_target(&ctx.root_fd, dest, !source.is_dir())?;
        let rec = opts.flags & MS_REC;
        sys_mount(Some(source), &fd_path(&target), None, MS_BIND | rec, "")?;
        let extra = opts.flags & !(MS_BIND | MS_REC | MS_REMOUNT);
        let locked = if ctx.in_user_ns {
            locked_flags(source)
        } else {
            0
        };
        return apply_after(ctx, dest, &opts, extra | locked, extra != 0);
    }
    let target = ensure_target(&ctx.root_fd, dest, false)?;
    let copy_from = if opts.tmpcopyup {
        Some(crate::rootfs::snapshot_dir(&target)?)
    } else {
        None
    };
    let src = m.source().as_deref();
    sys_mount(
        src,
        &fd_path(&target),
        Some(if typ.is_empty() { "none" } else { typ }),
        opts.flags & !(MS_BIND | MS_REC),
        &opts.data,
    )?;
    if let Some(snapshot) = copy_from {
        let fresh =
            open_in_root(&ctx.root_fd, dest).ctx(|| format!("reopening {}", dest.display()))?;
        restore_dir(&snapshot, &fd_path(&fresh))?;
    }
    apply_after(ctx, dest, &opts, 0, false)
}

fn source_is_dir(m: &Mount) -> bool {
    m.source().as_deref().is_none_or(Path::is_dir)
}

/// After mounting: bind remount with the wanted flags, then propagation.
fn apply_after(
    ctx: &MountContext<'_>,
    dest: &Path,
    opts: &MountOptions,
    remount_flags: u64,
    remount: bool,
) -> Result<(), RuntimeError> {
    if remount {
        let fresh =
            open_in_root(&ctx.root_fd, dest).ctx(|| format!("reopening {}", dest.display()))?;
        sys_mount(
            None,
            &fd_path(&fresh),
            None,
            MS_BIND | MS_REMOUNT | remount_flags,
            "",
        )?;
    }
    for p in &opts.propagation {
        let fresh =
            open_in_root(&ctx.root_fd, dest).ctx(|| format!("reopening {}", dest.display()))?;
        sys_mount(None, &fd_path(&fresh), None, *p, "")?;
    }
    Ok(())
}

/// `/sys/fs/cgroup` inside the container: cgroup2 itself on pure v2 with a
/// cgroup namespace, otherwise a tmpfs with one bind mount per hierarchy of
/// the container's own cgroup directories.
fn mount_cgroup(
    ctx: &MountContext<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), RuntimeError> {
    let ro = opts.flags & MS_RDONLY;
    let base = opts.flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
    let target = ensure_target(&ctx.root_fd, dest, false)?;
    let pure_v2 =
        ctx.cgroup_views.len() == 1 && ctx.cgroup_views[0].2 && ctx.cgroup_views[0].0.is_empty();
    if pure_v2 {
        if ctx.new_cgroup_ns {
            return sys_mount(
                Some(Path::new("cgroup2")),
                &fd_path(&target),
                Some("cgroup2"),
                base | ro,
                "",
            );
        }
        let host = &ctx.cgroup_views[0].1;
        sys_mount(Some(host), &fd_path(&target), None, MS_BIND | MS_REC, "")?;
        let fresh =
            open_in_root(&ctx.root_fd, dest).ctx(|| format!("reopening {}", dest.display()))?;
        return sys_mount(
            None,
            &fd_path(&fresh),
            None,
            MS_BIND | MS_REMOUNT | base | ro | locked_flags(host),
            "",
        );
    }
    sys_mount(
        Some(Path::new("tmpfs")),
        &fd_path(&target),
        Some("tmpfs"),
        base,
        "mode=755",
    )?;
    for (name, host, _) in &ctx.cgroup_views {
        if name.is_empty() {
            continue;
        }
        let sub = dest.join(name);
        let t = ensure_target(&ctx.root_fd, &sub, false)?;
        if host.is_dir() {
            sys_mount(Some(host), &fd_path(&t), None, MS_BIND | MS_REC, "")?;
            let fresh =
                open_in_root(&ctx.root_fd, &sub).ctx(|| format!("reopening {}", sub.display()))?;
            sys_mount(
                None,
                &fd_path(&fresh),
                None,
                MS_BIND | MS_REMOUNT | base | ro | locked_flags(host),
                "",
            )?;
        }
        // Co-mounted controllers ("cpu,cpuacct") also get their single names.
        if name.contains(',') {
            let dir =
                open_in_root(&ctx.root_fd, dest).ctx(|| format!("reopening {}", dest.display()))?;
            for single in name.split(',') {
                match rustix::fs::symlinkat(name.as_str(), &dir, single) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(RuntimeError::io(
                            format!("symlink {}/{single}", dest.display()),
                            e.into(),
                        ))
                    }
                }
            }
        }
    }
    if ro != 0 {
        let fresh =
            open_in_root(&ctx.root_fd, dest).ctx(|| format!("reopening {}", dest.display()))?;
        sys_mount(
            None,
            &fd_path(&fresh),
            None,
            MS_REMOUNT | MS_RDONLY | base,
            "mode=755",
        )?;
    }
    Ok(())
}

/// Copy a directory's contents to a temporary directory (for `tmpcopyup`).
fn snapshot_dir(dir: &OwnedFd) -> Result<PathBuf, RuntimeError> {
    // A fresh directory that did not exist before (mkdir fails on anything
    // already there, symlinks included), mode 0700: nobody can redirect or
    // race the copy.
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut tmp = None;
    for i in 0..100u32 {
        let candidate = base.join(format!(
            "barge-tmpcopyup-{}-{nanos:x}-{i}",
            std::process::id()
        ));
        match rustix::fs::mkdir(&candidate, Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                tmp = Some(candidate);
                break;
            }
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(RuntimeError::io(
                    format!("creating {}", candidate.display()),
                    e.into(),
                ))
            }
        }
    }
    let tmp = tmp.ok_or_else(|| RuntimeError::Other("no free tmpcopyup directory name".into()))?;
    copy_tree(&fd_path(dir), &tmp)?;
    Ok(tmp)
}

fn restore_dir(snapshot: &Path, to: &Path) -> Result<(), RuntimeError> {
    copy_tree(snapshot, to)?;
    let _ = std::fs::remove_dir_all(snapshot);
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let entries = std::fs::read_dir(from).ctx(|| format!("reading {}", from.display()))?;
    for e in entries.filter_map(Result::ok) {
        let src = e.path();
        let dst = to.join(e.file_name());
        let meta = std::fs::symlink_metadata(&src).ctx(|| format!("stat {}", src.display()))?;
        if meta.is_dir() {
            std::fs::create_dir_all(&dst).ctx(|| format!("creating {}", dst.display()))?;
            copy_tree(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&src).ctx(|| format!("readlink {}", src.display()))?;
            let _ = std::os::unix::fs::symlink(link, &dst);
            continue;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).ctx(|| format!("copying {}", src.display()))?;
        }
        let _ =
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777));
        let _ = rustix::fs::chown(
            &dst,
            Some(rustix::fs::Uid::from_raw(meta.uid())),
            Some(rustix::fs::Gid::from_raw(meta.gid())),
        );
    }
    Ok(())
}

/// The devices every container gets.
pub fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

/// Create one device node (or, in a user namespace where mknod is refused,
/// bind-mount the host's node onto an empty file).
#[allow(clippy::too_many_arguments)]
fn create_device(
    root: &OwnedFd,
    path: &Path,
    typ: LinuxDeviceType,
    major: u64,
    minor: u64,
    mode: u32,
    owner: Option<(u32, u32)>,
    in_user_ns: bool,
) -> Result<(), RuntimeError> {
    if in_user_ns {
        // mknod is refused in a user namespace: bind the host's node, which
        // must be the device the spec names.
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(path).ctx(|| format!("host device {}", path.display()))?;
        let kind_ok = match typ {
            LinuxDeviceType::B => meta.file_type().is_block_device(),
            LinuxDeviceType::P => meta.file_type().is_fifo(),
            _ => meta.file_type().is_char_device(),
        };
        let rdev_ok = typ == LinuxDeviceType::P
            || (rustix::fs::major(meta.rdev()) as u64 == major
                && rustix::fs::minor(meta.rdev()) as u64 == minor);
        if !kind_ok || !rdev_ok {
            return Err(RuntimeError::Other(format!(
                "device {}: the host node is not {typ:?} {major}:{minor}, so it cannot be bound in a user namespace",
                path.display()
            )));
        }
        let target = ensure_target(root, path, true)?;
        return sys_mount(Some(path), &fd_path(&target), None, MS_BIND, "");
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or_else(|| {
        RuntimeError::Other(format!("device path {} has no name", path.display()))
    })?;
    let dir = ensure_target(root, parent, false)?;
    let kind = match typ {
        LinuxDeviceType::B => rustix::fs::FileType::BlockDevice,
        LinuxDeviceType::P => rustix::fs::FileType::Fifo,
        _ => rustix::fs::FileType::CharacterDevice,
    };
    let dev = rustix::fs::makedev(major as u32, minor as u32);
    // Replace whatever is there (an image may ship its own /dev entries).
    let _ = rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty());
    let old = rustix::process::umask(Mode::empty());
    let res = rustix::fs::mknodat(&dir, name, kind, Mode::from_raw_mode(mode & 0o7777), dev);
    rustix::process::umask(old);
    res.ctx(|| format!("mknod {} ({major}:{minor})", path.display()))?;
    if let Some((uid, gid)) = owner {
        rustix::fs::chownat(
            &dir,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// Create the default devices, the spec's devices and the standard /dev
/// symlinks.
pub fn setup_dev(
    root: &OwnedFd,
    devices: &[LinuxDevice],
    in_user_ns: bool,
    dev_pts: bool,
) -> Result<(), RuntimeError> {
    for (path, major, minor) in default_devices() {
        if devices.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        create_device(
            root,
            Path::new(path),
            LinuxDeviceType::C,
            major,
            minor,
            0o666,
            Some((0, 0)),
            in_user_ns,
        )?;
    }
    for d in devices {
        let uid = d.uid().unwrap_or(0);
        let gid = d.gid().unwrap_or(0);
        create_device(
            root,
            d.path(),
            d.typ(),
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            Some((uid, gid)),
            in_user_ns,
        )?;
    }
    let dev = ensure_target(root, Path::new("/dev"), false)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    if dev_pts {
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        if name == "ptmx" {
            let _ = rustix::fs::unlinkat(&dev, name, rustix::fs::AtFlags::empty());
        }
        match rustix::fs::symlinkat(target, &dev, name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(RuntimeError::io(
                    format!("symlink /dev/{name} -> {target}"),
                    e.into(),
                ))
            }
        }
    }
    Ok(())
}

/// Bind the console's pty slave onto `/dev/console`.
pub fn bind_console(root: &OwnedFd, rootfs: &Path, slave_name: &str) -> Result<(), RuntimeError> {
    let target = ensure_target(root, Path::new("/dev/console"), true)?;
    let source = rootfs.join(slave_name.trim_start_matches('/'));
    sys_mount(Some(&source), &fd_path(&target), None, MS_BIND, "")
}

/// Switch the root to `rootfs`: pivot_root (old root detached) or, with
/// `no_pivot`, MS_MOVE + chroot.
pub fn switch_root(rootfs: &Path, no_pivot: bool) -> Result<(), RuntimeError> {
    if no_pivot {
        rustix::process::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
        sys_mount(Some(rootfs), Path::new("/"), None, MS_MOVE, "")?;
        rustix::process::chroot(".").ctx(|| "chroot".to_string())?;
        return rustix::process::chdir("/").ctx(|| "chdir /".to_string());
    }
    let old = rustix::fs::open(
        "/",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "opening the old root".to_string())?;
    let new = rustix::fs::open(
        rootfs,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening {}", rootfs.display()))?;
    rustix::process::fchdir(&new).ctx(|| format!("chdir {}", rootfs.display()))?;
    rustix::process::pivot_root(".", ".").ctx(|| format!("pivot_root to {}", rootfs.display()))?;
    rustix::process::fchdir(&old).ctx(|| "chdir to the old root".to_string())?;
    // Keep unmount events of the old root from reaching the host.
    sys_mount(None, Path::new("."), None, MS_SLAVE | MS_REC, "")?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .ctx(|| "detaching the old root".to_string())?;
    rustix::process::chdir("/").ctx(|| "chdir /".to_string())
}

/// Hide paths: directories get a read-only empty tmpfs, files /dev/null.
pub fn mask_paths(paths: &[String]) -> Result<(), RuntimeError> {
    for p in paths {
        let path = Path::new(p);
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io(format!("masking {p}"), e)),
            Ok(meta) if meta.is_dir() => {
                sys_mount(Some(Path::new("tmpfs")), path, Some("tmpfs"), MS_RDONLY, "")?;
            }
            Ok(_) => sys_mount(Some(Path::new("/dev/null")), path, None, MS_BIND, "")?,
        }
    }
    Ok(())
}

/// Make paths read-only (bind onto themselves, remount read-only).
pub fn readonly_paths(paths: &[String]) -> Result<(), RuntimeError> {
    for p in paths {
        let path = Path::new(p);
        if let Err(e) = std::fs::symlink_metadata(path) {
            if e.kind() == std::io::ErrorKind::NotFound {
                continue;
            }
            return Err(RuntimeError::io(format!("making {p} read-only"), e));
        }
        sys_mount(Some(path), path, None, MS_BIND | MS_REC, "")?;
        let locked = locked_flags(path);
        sys_mount(
            None,
            path,
            None,
            MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | locked,
            "",
        )?;
    }
    Ok(())
}

/// Remount the (new) root read-only.
pub fn readonly_root() -> Result<(), RuntimeError> {
    let locked = locked_flags(Path::new("/"));
    sys_mount(
        None,
        Path::new("/"),
        None,
        MS_BIND | MS_REMOUNT | MS_RDONLY | locked,
        "",
    )
}

/// How the container's cgroups appear under `/sys/fs/cgroup`: (name of the
/// entry, host directory, is cgroup2). On a pure v2 host the single entry
/// has an empty name (it is the mount itself).
pub fn cgroup_views(cg: &barge_cgroups::Cgroup) -> Vec<(String, PathBuf, bool)> {
    let mut out = Vec::new();
    if cg.is_disabled() {
        return out;
    }
    for h in cg.v1_hierarchies() {
        if let Some(name) = h.mount_point.file_name() {
            out.push((name.to_string_lossy().into_owned(), h.path.clone(), false));
        }
    }
    if let Some(path) = cg.unified_path() {
        let name = if matches!(cg.mode(), barge_cgroups::Mode::V2) {
            String::new()
        } else {
            "unified".to_string()
        };
        out.push((name, path.to_path_buf(), true));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse_options(&list.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn option_parsing() {
        let o = opts(&["nosuid", "noexec", "mode=755", "size=65536k", "ro"]);
        assert_eq!(o.flags, MS_NOSUID | MS_NOEXEC | MS_RDONLY);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = opts(&["rbind", "rslave", "ro", "rw"]);
        assert_eq!(o.flags, MS_BIND | MS_REC);
        assert_eq!(o.propagation, vec![MS_SLAVE | MS_REC]);
        assert!(opts(&["bind"]).is_bind());
        assert_eq!(opts(&["idmap"]).idmap, Some(false));
        assert!(opts(&["tmpcopyup"]).tmpcopyup);
    }

    #[test]
    fn ensure_target_stays_in_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // A hostile absolute symlink pointing outside the root.
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        let root_fd =
            rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        // A dangling (in-root) symlink component is refused, never followed
        // out of the root.
        assert!(ensure_target(&root_fd, Path::new("/evil/x/y"), false).is_err());
        assert!(!outside.join("x").exists(), "created outside the root");
        // Once the symlink's in-root target exists, it is followed there.
        std::fs::create_dir_all(root.join(outside.strip_prefix("/").unwrap())).unwrap();
        ensure_target(&root_fd, Path::new("/evil/x/y"), false).unwrap();
        assert!(!outside.join("x").exists(), "created outside the root");
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("x/y")
            .is_dir());
        ensure_target(&root_fd, Path::new("/a/file"), true).unwrap();
        assert!(root.join("a/file").is_file());
        assert!(ensure_target(&root_fd, Path::new("/a/../../etc"), false).is_err());
    }
}
