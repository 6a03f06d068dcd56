//! Performing an allowed call on the caller's behalf.
//!
//! Each emulated call runs in a short-lived **worker** process forked from
//! the (single-threaded) supervisor. The worker itself forks a
//! **resolver**, which becomes a copy of the caller as far as permission
//! checks go: the caller's groups, uids, gids and fs ids, then its user
//! namespace, its mount namespace, its root (`chroot`), its working
//! directory (or the `dirfd` it passed), its umask and finally its
//! capability sets. The resolver looks up every path of the call there
//! (so a path means what it means to the caller, symlinks and `..` never
//! leave the caller's root, and every permission the kernel would check for
//! the caller is checked by the kernel), checks write access where the call
//! needs it, and hands the resulting fds back over a socketpair.
//!
//! The worker (still in the supervisor's user namespace, as root) then does
//! only the privileged step on those fds: `mknodat` with `CAP_MKNOD`,
//! `setxattr` with `CAP_SYS_ADMIN`, or `fsopen`…`move_mount` inside the
//! caller's mount namespace (and pid namespace for `proc`). New files are
//! owned by the caller's fs ids and get its umask.
//!
//! The worker's exit status carries the outcome: 0 done, an errno, or
//! [`EXIT_CONTINUE`] (let the kernel run the call after all).

use std::ffi::CString;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use barge_sys::Fork;
use rustix::fs::{FileType, Mode, OFlags, CWD};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::{Gid, Pid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets, LinkNameSpaceType};

use crate::policy::ms;
use crate::target::Creds;

/// Worker exit status: the call should continue in the kernel.
pub const EXIT_CONTINUE: i32 = 254;
/// Worker exit status: the worker failed in an unexpected way.
pub const EXIT_INTERNAL: i32 = 255;

/// Overlay layer options given as fds (Linux 6.13 `FSCONFIG_SET_FD`).
const MAX_LAYERS: usize = 128;

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded (returns 0).
    Done,
    /// The call fails with this errno.
    Errno(i32),
    /// The call runs in the kernel with the caller's own privileges.
    Continue,
}

impl Outcome {
    /// The worker's exit code for this outcome.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Done => 0,
            Outcome::Errno(e) => e.clamp(1, 253),
            Outcome::Continue => EXIT_CONTINUE,
        }
    }

    /// The outcome a worker's exit code means.
    pub fn from_exit_code(code: i32) -> Self {
        match code {
            0 => Outcome::Done,
            EXIT_CONTINUE => Outcome::Continue,
            1..=253 => Outcome::Errno(code),
            _ => Outcome::Errno(libc::EIO),
        }
    }
}

/// Where relative paths start for the resolver.
#[derive(Debug)]
pub enum Start {
    /// A directory: the caller's cwd, its `dirfd`, or its root.
    Dir(OwnedFd),
    /// The file of an `fsetxattr` (no path is looked up).
    File(OwnedFd),
}

/// One mount option from the data string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOption {
    /// `key` alone.
    Flag(String),
    /// `key=value`.
    Value(String, Vec<u8>),
}

/// A new mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountJob {
    /// Filesystem type.
    pub fstype: String,
    /// The source (`none`, `tmpfs`, `overlay`…), if given.
    pub source: Option<Vec<u8>>,
    /// Where to mount, as the caller wrote it.
    pub target: Vec<u8>,
    /// `MS_*` flags (only those of a new mount).
    pub flags: u64,
    /// Options without path meaning.
    pub options: Vec<MountOption>,
    /// Directories the filesystem uses (overlay layers): fsconfig key and
    /// the caller's path; `true` when it must be writable.
    pub layers: Vec<Layer>,
    /// Add `nosuid`.
    pub force_nosuid: bool,
}

/// What the worker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// `mknodat(parent, name, mode, makedev(major, minor))`.
    Mknod {
        /// The parent directory as the caller wrote it (empty: start dir).
        parent: Vec<u8>,
        /// The last component.
        name: Vec<u8>,
        /// Type and permission bits.
        mode: u32,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// `setxattr` / `lsetxattr` / `fsetxattr`.
    Setxattr {
        /// The path (None for `fsetxattr`: the file is [`Start::File`]).
        path: Option<Vec<u8>>,
        /// Follow a final symlink.
        follow: bool,
        /// Attribute name.
        name: Vec<u8>,
        /// Value.
        value: Vec<u8>,
        /// `XATTR_CREATE` / `XATTR_REPLACE`.
        flags: i32,
    },
    /// A new mount.
    Mount(MountJob),
}

/// Everything a worker needs, gathered by the supervisor from `/proc/PID`
/// while the notification was known to be pending.
#[derive(Debug)]
pub struct Job {
    /// What to do.
    pub kind: JobKind,
    /// The caller's credentials (host ids).
    pub creds: Creds,
    /// The caller's root directory.
    pub root: OwnedFd,
    /// Where relative paths start.
    pub start: Start,
    /// The caller's user namespace, unless it is the supervisor's.
    pub userns: Option<OwnedFd>,
    /// The caller's mount namespace, unless it is the supervisor's.
    pub mntns: Option<OwnedFd>,
    /// The caller's pid namespace (for `proc` mounts).
    pub pidns: Option<OwnedFd>,
    /// Test knob: sleep this long before acting.
    pub delay: Duration,
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    /// Its pid.
    pub pid: Pid,
    /// A pidfd, readable when it exits.
    pub pidfd: OwnedFd,
}

/// Fork a worker for `job`. Call only from a single-threaded process.
pub fn spawn(job: &Job) -> std::io::Result<Worker> {
    let parent = rustix::process::getpid();
    match barge_sys::fork()? {
        Fork::Child => {
            let code = match die_with(Some(parent)) {
                Ok(()) => worker_main(job).exit_code(),
                Err(()) => EXIT_INTERNAL,
            };
            barge_sys::exit_now(code)
        }
        Fork::Parent(pid) => {
            let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                    return Err(e.into());
                }
            };
            Ok(Worker { pid, pidfd })
        }
    }
}

/// SIGKILL when the parent dies (workers must never outlive the
/// supervisor, resolvers never their worker). `parent` is checked when it
/// is visible (not for a child in another pid namespace, whose parent
/// waits for it anyway).
fn die_with(parent: Option<Pid>) -> Result<(), ()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|_| ())?;
    if let Some(p) = parent {
        if rustix::process::getppid() != Some(p) {
            return Err(());
        }
    }
    Ok(())
}

fn errno(e: rustix::io::Errno) -> Outcome {
    Outcome::Errno(e.raw_os_error())
}

fn io_errno(e: &std::io::Error) -> Outcome {
    Outcome::Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

fn worker_main(job: &Job) -> Outcome {
    let fds = match resolve(job) {
        Ok(fds) => fds,
        Err(o) => return o,
    };
    if !job.delay.is_zero() {
        std::thread::sleep(job.delay);
    }
    let out = match &job.kind {
        JobKind::Mknod {
            name,
            mode,
            major,
            minor,
            ..
        } => act_mknod(job, &fds, name, *mode, *major, *minor),
        JobKind::Setxattr {
            name, value, flags, ..
        } => act_setxattr(&fds, name, value, *flags),
        JobKind::Mount(m) => act_mount(job, &fds, m),
    };
    tracing::debug!(outcome = ?out, "supervisor worker done");
    out
}

// ---- the resolver -------------------------------------------------------

/// Run the resolver and collect its fds.
fn resolve(job: &Job) -> Result<Vec<OwnedFd>, Outcome> {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(errno)?;
    let me = rustix::process::getpid();
    match barge_sys::fork().map_err(|e| io_errno(&e))? {
        Fork::Child => {
            drop(ours);
            let res = match die_with(Some(me)) {
                Ok(()) => resolver_main(job),
                Err(()) => Err(Outcome::Errno(libc::EIO)),
            };
            let code = send_result(&theirs, &res);
            barge_sys::exit_now(code)
        }
        Fork::Parent(pid) => {
            drop(theirs);
            let got = recv_result(&ours);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            got
        }
    }
}

fn send_result(sock: &OwnedFd, res: &Result<Vec<OwnedFd>, Outcome>) -> i32 {
    let (tag, err, fds): (u8, i32, Vec<BorrowedFd<'_>>) = match res {
        Ok(fds) => (0, 0, fds.iter().map(AsFd::as_fd).collect()),
        Err(Outcome::Continue) => (2, 0, Vec::new()),
        Err(Outcome::Errno(e)) => (1, *e, Vec::new()),
        Err(Outcome::Done) => (1, libc::EIO, Vec::new()),
    };
    let mut msg = [0u8; 5];
    msg[0] = tag;
    msg[1..].copy_from_slice(&err.to_le_bytes());
    let mut space =
        vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_LAYERS + 1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return EXIT_INTERNAL;
    }
    match rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&msg)],
        &mut control,
        SendFlags::NOSIGNAL,
    ) {
        Ok(_) => 0,
        Err(_) => EXIT_INTERNAL,
    }
}

fn recv_result(sock: &OwnedFd) -> Result<Vec<OwnedFd>, Outcome> {
    let mut msg = [0u8; 5];
    let mut space =
        vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_LAYERS + 1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let r = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut msg)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            other => break other,
        }
    };
    let r = r.map_err(errno)?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = m {
            fds.extend(got);
        }
    }
    if r.bytes != msg.len() {
        // The resolver died before answering.
        return Err(Outcome::Errno(libc::EIO));
    }
    let err = i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
    match msg[0] {
        0 => Ok(fds),
        2 => Err(Outcome::Continue),
        _ => Err(Outcome::Errno(err)),
    }
}

fn caps(bits: u64) -> CapabilitySet {
    CapabilitySet::from_bits_retain(bits)
}

/// Make every permitted capability effective.
fn raise_all() -> Result<(), Outcome> {
    let mut c = rustix::thread::capabilities(None).map_err(errno)?;
    c.effective = c.permitted;
    rustix::thread::set_capabilities(None, c).map_err(errno)
}

/// Become the caller for permission checks (see the module docs).
fn enter_caller(job: &Job) -> Result<(), Outcome> {
    let c = &job.creds;
    let groups: Vec<Gid> = c.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    rustix::thread::set_thread_groups(&groups).map_err(errno)?;
    rustix::thread::set_keep_capabilities(true).map_err(errno)?;
    rustix::thread::set_thread_res_gid(
        Gid::from_raw(c.gid[0]),
        Gid::from_raw(c.gid[1]),
        Gid::from_raw(c.gid[2]),
    )
    .map_err(errno)?;
    barge_sys::notify::set_fsgid(c.gid[3]).map_err(|e| io_errno(&e))?;
    rustix::thread::set_thread_res_uid(
        Uid::from_raw(c.uid[0]),
        Uid::from_raw(c.uid[1]),
        Uid::from_raw(c.uid[2]),
    )
    .map_err(errno)?;
    // Changing the uids cleared the effective set; the permitted set was
    // kept for the namespace changes below.
    raise_all()?;
    barge_sys::notify::set_fsuid(c.uid[3]).map_err(|e| io_errno(&e))?;
    if let Some(ns) = &job.userns {
        rustix::thread::move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::User))
            .map_err(errno)?;
    }
    if let Some(ns) = &job.mntns {
        rustix::thread::move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Mount))
            .map_err(errno)?;
    }
    rustix::process::fchdir(&job.root).map_err(errno)?;
    rustix::process::chroot(".").map_err(errno)?;
    if let Start::Dir(d) = &job.start {
        rustix::process::fchdir(d).map_err(errno)?;
    }
    rustix::process::umask(Mode::from_raw_mode(c.umask));
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: caps(c.cap_eff),
            permitted: caps(c.cap_prm),
            inheritable: caps(c.cap_inh),
        },
    )
    .map_err(errno)?;
    Ok(())
}

fn open_as_caller(path: &[u8], flags: OFlags) -> Result<OwnedFd, Outcome> {
    rustix::fs::openat(CWD, path, flags | OFlags::CLOEXEC, Mode::empty()).map_err(errno)
}

fn check_access(fd: BorrowedFd<'_>, mode: i32) -> Result<(), Outcome> {
    barge_sys::notify::faccessat2(fd, c"", mode, libc::AT_EACCESS | libc::AT_EMPTY_PATH)
        .map_err(|e| io_errno(&e))
}

fn resolver_main(job: &Job) -> Result<Vec<OwnedFd>, Outcome> {
    // Taking the caller's uids would make us dumpable again for a
    // moment if suid_dumpable allowed it: be explicit.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(errno)?;
    enter_caller(job)?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(errno)?;
    match &job.kind {
        JobKind::Mknod { parent, .. } => {
            let p: &[u8] = if parent.is_empty() { b"." } else { parent };
            let dir = open_as_caller(p, OFlags::PATH | OFlags::DIRECTORY)?;
            check_access(dir.as_fd(), libc::W_OK | libc::X_OK)?;
            Ok(vec![dir])
        }
        JobKind::Setxattr { path, follow, .. } => {
            let fd = match (path, &job.start) {
                (Some(p), _) => {
                    let nofollow = if *follow {
                        OFlags::empty()
                    } else {
                        OFlags::NOFOLLOW
                    };
                    open_as_caller(p, OFlags::PATH | nofollow)?
                }
                (None, Start::File(f)) => f.try_clone().map_err(|e| io_errno(&e))?,
                (None, Start::Dir(_)) => return Err(Outcome::Errno(libc::EBADF)),
            };
            let st = rustix::fs::fstat(&fd).map_err(errno)?;
            let ft = FileType::from_raw_mode(st.st_mode);
            if ft != FileType::RegularFile && ft != FileType::Directory {
                // Symlinks, devices, fifos: the kernel decides.
                return Err(Outcome::Continue);
            }
            check_access(fd.as_fd(), libc::W_OK)?;
            Ok(vec![fd])
        }
        JobKind::Mount(m) => {
            let mut fds = vec![open_as_caller(&m.target, OFlags::PATH)?];
            for (_, path, writable) in &m.layers {
                let fd = open_as_caller(path, OFlags::RDONLY | OFlags::DIRECTORY)?;
                if *writable {
                    check_access(fd.as_fd(), libc::W_OK | libc::X_OK)?;
                }
                fds.push(fd);
            }
            Ok(fds)
        }
    }
}

// ---- the privileged step ------------------------------------------------

fn act_mknod(
    job: &Job,
    fds: &[OwnedFd],
    name: &[u8],
    mode: u32,
    major: u32,
    minor: u32,
) -> Outcome {
    let Some(dir) = fds.first() else {
        return Outcome::Errno(libc::EIO);
    };
    let c = &job.creds;
    rustix::process::umask(Mode::from_raw_mode(c.umask));
    // Owned by the caller: its fs ids (which drops the fs capabilities
    // from the effective set; the two needed are raised again).
    if let Err(e) = barge_sys::notify::set_fsgid(c.gid[3]) {
        return io_errno(&e);
    }
    if let Err(e) = barge_sys::notify::set_fsuid(c.uid[3]) {
        return io_errno(&e);
    }
    let permitted = match rustix::thread::capabilities(None) {
        Ok(c) => c.permitted,
        Err(e) => return errno(e),
    };
    let need = CapabilitySet::MKNOD | CapabilitySet::DAC_OVERRIDE;
    if let Err(e) = rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: need & permitted,
            permitted,
            inheritable: CapabilitySet::empty(),
        },
    ) {
        return errno(e);
    }
    let ft = if mode & 0o170_000 == 0o060_000 {
        FileType::BlockDevice
    } else {
        FileType::CharacterDevice
    };
    match rustix::fs::mknodat(
        dir,
        name,
        ft,
        Mode::from_raw_mode(mode & 0o7777),
        rustix::fs::makedev(major, minor),
    ) {
        Ok(()) => Outcome::Done,
        Err(e) => errno(e),
    }
}

fn act_setxattr(fds: &[OwnedFd], name: &[u8], value: &[u8], flags: i32) -> Outcome {
    let Some(fd) = fds.first() else {
        return Outcome::Errno(libc::EIO);
    };
    let Ok(name) = CString::new(name) else {
        return Outcome::Errno(libc::EINVAL);
    };
    // Through our own /proc (the worker stays in the supervisor's mount
    // namespace): the magic link names exactly the resolver's inode.
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let flags = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
    match rustix::fs::setxattr(path.as_str(), name.as_c_str(), value, flags) {
        Ok(()) => Outcome::Done,
        Err(e) => errno(e),
    }
}

fn act_mount(job: &Job, fds: &[OwnedFd], m: &MountJob) -> Outcome {
    if fds.len() != m.layers.len() + 1 {
        return Outcome::Errno(libc::EIO);
    }
    // The host's /dev/null, to mask files of a new procfs (opened before
    // entering the caller's mount namespace).
    // Detached binds of the host's /dev/null, one per masked /proc file
    // (clones can only be made here, in the supervisor's mount namespace).
    let mut devnull = Vec::new();
    if m.fstype == "proc" {
        use rustix::mount::OpenTreeFlags;
        for _ in PROC_MASKED {
            match rustix::mount::open_tree(
                CWD,
                "/dev/null",
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            ) {
                Ok(fd) => devnull.push(fd),
                Err(e) => return errno(e),
            }
        }
    }
    if let Some(ns) = &job.mntns {
        if let Err(e) =
            rustix::thread::move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Mount))
        {
            return errno(e);
        }
    }
    if let Err(e) = rustix::process::fchdir(&job.root).and_then(|()| rustix::process::chroot(".")) {
        return errno(e);
    }
    if m.fstype == "proc" {
        // procfs shows the pid namespace of the process that creates it:
        // one more fork, inside the caller's pid namespace.
        let Some(ns) = &job.pidns else {
            return Outcome::Errno(libc::EPERM);
        };
        if let Err(e) = rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(LinkNameSpaceType::ProcessID),
        ) {
            return errno(e);
        }
        return match barge_sys::fork() {
            Err(e) => io_errno(&e),
            Ok(Fork::Child) => {
                let code = match die_with(None) {
                    Ok(()) => do_mount(job, fds, m, &mut devnull).exit_code(),
                    Err(()) => EXIT_INTERNAL,
                };
                barge_sys::exit_now(code)
            }
            Ok(Fork::Parent(pid)) => {
                match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
                    Ok(Some((_, st))) => st
                        .exit_status()
                        .map_or(Outcome::Errno(libc::EIO), Outcome::from_exit_code),
                    _ => Outcome::Errno(libc::EIO),
                }
            }
        };
    }
    do_mount(job, fds, m, &mut devnull)
}

/// The filesystem's own error messages (`fsopen` log), for the debug log.
fn fs_log(fs: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    for _ in 0..8 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                out.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            _ => break,
        }
    }
    out
}

/// What runtimes mask in a container's `/proc` (runc's defaults); an
/// emulated procfs gets the same before it becomes visible.
const PROC_MASKED: &[&str] = &[
    "acpi",
    "asound",
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "scsi",
];

/// Cover the masked entries of a detached procfs: files with the host's
/// `/dev/null` (detached binds made beforehand), directories with an empty
/// read-only tmpfs.
fn mask_proc(mnt: &OwnedFd, devnull: &mut Vec<OwnedFd>) -> Result<(), rustix::io::Errno> {
    for name in PROC_MASKED {
        let at = match rustix::fs::openat(
            mnt,
            *name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(e),
        };
        let st = rustix::fs::fstat(&at)?;
        let cover = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
            rustix::mount::fsconfig_set_flag(&fs, "ro")?;
            rustix::mount::fsconfig_create(&fs)?;
            rustix::mount::fsmount(
                &fs,
                FsMountFlags::FSMOUNT_CLOEXEC,
                MountAttrFlags::MOUNT_ATTR_RDONLY
                    | MountAttrFlags::MOUNT_ATTR_NOSUID
                    | MountAttrFlags::MOUNT_ATTR_NODEV
                    | MountAttrFlags::MOUNT_ATTR_NOEXEC,
            )?
        } else {
            devnull.pop().ok_or(rustix::io::Errno::NOMEM)?
        };
        rustix::mount::move_mount(
            &cover,
            "",
            &at,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )?;
    }
    Ok(())
}

fn do_mount(job: &Job, fds: &[OwnedFd], m: &MountJob, devnull: &mut Vec<OwnedFd>) -> Outcome {
    let c = &job.creds;
    // New superblocks (tmpfs's root) belong to the caller, as if it had
    // mounted them in its own namespace.
    if let Err(e) = barge_sys::notify::set_fsgid(c.gid[3]) {
        return io_errno(&e);
    }
    if let Err(e) = barge_sys::notify::set_fsuid(c.uid[3]) {
        return io_errno(&e);
    }
    if let Err(o) = raise_all() {
        return o;
    }
    let fs = match rustix::mount::fsopen(m.fstype.as_str(), FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fs) => fs,
        Err(e) => return errno(e),
    };
    let fail = |what: &str, e: rustix::io::Errno| {
        tracing::debug!(fstype = %m.fstype, step = what, error = %e, log = %fs_log(&fs),
                        "supervisor: emulated mount failed");
        errno(e)
    };
    if let Some(src) = &m.source {
        if let Err(e) = rustix::mount::fsconfig_set_string(&fs, "source", src.as_slice()) {
            return fail("source", e);
        }
    }
    for o in &m.options {
        let r = match o {
            MountOption::Flag(k) => rustix::mount::fsconfig_set_flag(&fs, k.as_str()),
            MountOption::Value(k, v) => {
                rustix::mount::fsconfig_set_string(&fs, k.as_str(), v.as_slice())
            }
        };
        if let Err(e) = r {
            return fail("option", e);
        }
    }
    for ((key, _, _), fd) in m.layers.iter().zip(&fds[1..]) {
        if let Err(e) = rustix::mount::fsconfig_set_fd(&fs, key.as_str(), fd) {
            return fail("layer", e);
        }
    }
    for (bit, flag) in [
        (ms::RDONLY, "ro"),
        (ms::SYNCHRONOUS, "sync"),
        (ms::DIRSYNC, "dirsync"),
        (ms::LAZYTIME, "lazytime"),
    ] {
        if m.flags & bit != 0 {
            if let Err(e) = rustix::mount::fsconfig_set_flag(&fs, flag) {
                return fail(flag, e);
            }
        }
    }
    if let Err(e) = rustix::mount::fsconfig_create(&fs) {
        return fail("create", e);
    }
    let mut attrs = MountAttrFlags::empty();
    for (bit, attr) in [
        (ms::RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        (ms::NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        (ms::NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        (ms::NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
        (ms::NOSYMFOLLOW, MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW),
        (ms::NODIRATIME, MountAttrFlags::MOUNT_ATTR_NODIRATIME),
    ] {
        if m.flags & bit != 0 {
            attrs |= attr;
        }
    }
    if m.flags & ms::NOATIME != 0 {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOATIME;
    } else if m.flags & ms::STRICTATIME != 0 {
        attrs |= MountAttrFlags::MOUNT_ATTR_STRICTATIME;
    }
    if m.force_nosuid {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
    }
    let mnt = match rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs) {
        Ok(mnt) => mnt,
        Err(e) => return fail("fsmount", e),
    };
    if m.fstype == "proc" {
        if let Err(e) = mask_proc(&mnt, devnull) {
            return fail("masking /proc entries", e);
        }
    }
    match rustix::mount::move_mount(
        &mnt,
        "",
        &fds[0],
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    ) {
        Ok(()) => Outcome::Done,
        Err(e) => fail("move_mount", e),
    }
}

// ---- mount data ---------------------------------------------------------

/// Split a legacy mount data string into options. Overlay escapes commas
/// (and colons in layer lists) with a backslash; other filesystems split
/// on every comma.
pub fn parse_mount_data(data: &[u8], escapes: bool) -> Vec<MountOption> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut it = data.iter().copied();
    let mut push = |cur: &mut Vec<u8>| {
        if cur.is_empty() {
            return;
        }
        let item = std::mem::take(cur);
        match item.iter().position(|&b| b == b'=') {
            Some(i) => out.push(MountOption::Value(
                String::from_utf8_lossy(&item[..i]).into_owned(),
                item[i + 1..].to_vec(),
            )),
            None => out.push(MountOption::Flag(
                String::from_utf8_lossy(&item).into_owned(),
            )),
        }
    };
    while let Some(b) = it.next() {
        match b {
            b'\\' if escapes => {
                // Keep the escape: layer lists are split on unescaped ':'.
                cur.push(b);
                if let Some(n) = it.next() {
                    cur.push(n);
                }
            }
            b',' => push(&mut cur),
            _ => cur.push(b),
        }
    }
    push(&mut cur);
    out
}

/// Split an overlay layer list (`a:b::c`) on unescaped colons into
/// (path, is_data_layer), removing the escapes.
pub fn split_layers(list: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut data = false;
    let mut i = 0;
    while i < list.len() {
        match list[i] {
            b'\\' if i + 1 < list.len() => {
                cur.push(list[i + 1]);
                i += 2;
                continue;
            }
            b':' => {
                if !cur.is_empty() {
                    out.push((std::mem::take(&mut cur), data));
                }
                if list.get(i + 1) == Some(&b':') {
                    data = true;
                    i += 1;
                }
            }
            b => cur.push(b),
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push((cur, data));
    }
    out
}

fn unescape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 1 < v.len() {
            out.push(v[i + 1]);
            i += 2;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

/// An overlay layer: fsconfig key, the caller's path, whether it must be
/// writable.
pub type Layer = (String, Vec<u8>, bool);

/// Overlay's directory options become layers (opened by the resolver as
/// the caller and passed by fd); everything else stays an option.
/// Returns `Err(errno)` for options that cannot be honoured.
pub fn overlay_layers(options: Vec<MountOption>) -> Result<(Vec<MountOption>, Vec<Layer>), i32> {
    let mut rest = Vec::new();
    let mut layers = Vec::new();
    for o in options {
        match o {
            MountOption::Value(k, v) if k == "lowerdir" || k == "lowerdir+" || k == "datadir+" => {
                let parts = if k == "lowerdir" {
                    split_layers(&v)
                } else {
                    vec![(unescape(&v), k == "datadir+")]
                };
                if parts.is_empty() {
                    return Err(libc::EINVAL);
                }
                for (p, data) in parts {
                    let key = if data { "datadir+" } else { "lowerdir+" };
                    layers.push((key.to_string(), p, false));
                }
            }
            MountOption::Value(k, v) if k == "upperdir" || k == "workdir" => {
                layers.push((k, unescape(&v), true));
            }
            MountOption::Value(k, _) | MountOption::Flag(k)
                if k == "lowerdir" || k == "upperdir" || k == "workdir" =>
            {
                return Err(libc::EINVAL);
            }
            other => rest.push(other),
        }
    }
    if layers.len() > MAX_LAYERS {
        return Err(libc::E2BIG);
    }
    // Overlay wants upper before work and lower layers before data layers;
    // keep the caller's order otherwise.
    layers.sort_by_key(|(k, _, _)| match k.as_str() {
        "lowerdir+" => 0,
        "datadir+" => 1,
        "upperdir" => 2,
        _ => 3,
    });
    Ok((rest, layers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(k: &str, val: &str) -> MountOption {
        MountOption::Value(k.into(), val.as_bytes().to_vec())
    }

    #[test]
    fn mount_data() {
        assert_eq!(
            parse_mount_data(b"size=10m,mode=1777,,noswap", false),
            [
                v("size", "10m"),
                v("mode", "1777"),
                MountOption::Flag("noswap".into())
            ]
        );
        assert_eq!(
            parse_mount_data(b"lowerdir=/a\\,b:/c,upperdir=/u,workdir=/w,userxattr", true),
            [
                v("lowerdir", "/a\\,b:/c"),
                v("upperdir", "/u"),
                v("workdir", "/w"),
                MountOption::Flag("userxattr".into())
            ]
        );
        assert!(parse_mount_data(b"", false).is_empty());
    }

    #[test]
    fn overlay_layer_lists() {
        assert_eq!(
            split_layers(b"/a:/b\\:c::/d"),
            [
                (b"/a".to_vec(), false),
                (b"/b:c".to_vec(), false),
                (b"/d".to_vec(), true)
            ]
        );
        let (rest, layers) = overlay_layers(parse_mount_data(
            b"workdir=/w,upperdir=/u,lowerdir=/l1:/l2,index=off",
            true,
        ))
        .expect("layers");
        assert_eq!(rest, [v("index", "off")]);
        let keys: Vec<_> = layers
            .iter()
            .map(|(k, p, w)| (k.as_str(), p.clone(), *w))
            .collect();
        assert_eq!(
            keys,
            [
                ("lowerdir+", b"/l1".to_vec(), false),
                ("lowerdir+", b"/l2".to_vec(), false),
                ("upperdir", b"/u".to_vec(), true),
                ("workdir", b"/w".to_vec(), true)
            ]
        );
        assert_eq!(overlay_layers(vec![v("lowerdir", "")]), Err(libc::EINVAL));
        assert_eq!(
            overlay_layers(vec![MountOption::Flag("upperdir".into())]),
            Err(libc::EINVAL)
        );
        let many = (0..200)
            .map(|i| format!("/l{i}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(overlay_layers(vec![v("lowerdir", &many)]), Err(libc::E2BIG));
    }

    #[test]
    fn exit_codes_roundtrip() {
        for o in [
            Outcome::Done,
            Outcome::Continue,
            Outcome::Errno(libc::EPERM),
            Outcome::Errno(libc::EEXIST),
        ] {
            assert_eq!(Outcome::from_exit_code(o.exit_code()), o);
        }
        assert_eq!(
            Outcome::from_exit_code(EXIT_INTERNAL),
            Outcome::Errno(libc::EIO)
        );
        assert_eq!(Outcome::from_exit_code(-1), Outcome::Errno(libc::EIO));
    }
}
