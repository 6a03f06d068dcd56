//! Rootless mode: an unprivileged user's barge runs inside a user namespace
//! that maps the user to root and the user's `/etc/subuid`/`/etc/subgid`
//! ranges to ids 1…N, together with a mount namespace owned by it (so the
//! engine can mount overlay and bind mounts there).
//!
//! One long-lived process per user holds both namespaces (podman's "pause
//! process"): `barge-pause` started by the first `barge` command, its pid
//! and start time in `RUNDIR/pause.pid` (`RUNDIR` is
//! `$XDG_RUNTIME_DIR/barge`, else `/run/user/UID/barge` when that exists,
//! else `/tmp/barge-run-UID`). Every `barge` command of the user joins
//! them first ([`enter`]), while still single-threaded, and from then on is
//! root in the namespace: the engine code is the same as for root, with
//! per-user paths ([`default_root`], [`run_dir`]) and without cgroups
//! where the host delegates none.
//!
//! Child processes (the monitor, the runtime, hooks, exit cleanup) inherit
//! the namespaces and find the user's uid in `_BARGE_ROOTLESS_UID`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Set (to the user's uid) in every process that runs inside the user's
/// namespace on behalf of an unprivileged user.
pub const ROOTLESS_UID_ENV: &str = "_BARGE_ROOTLESS_UID";

/// Set (to the user's gid) beside [`ROOTLESS_UID_ENV`].
pub const ROOTLESS_GID_ENV: &str = "_BARGE_ROOTLESS_GID";

/// Entering the user's namespaces failed.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// No subordinate id range for the user.
    #[error(
        "no subordinate {kind} range for user {user} (uid {uid}) in {file}: rootless barge needs one \
         (as root: usermod --add-sub{kind}s 100000-165535 {user})"
    )]
    NoSubIds {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The file read.
        file: PathBuf,
        /// The user's name (or uid when unnamed).
        user: String,
        /// The user's uid.
        uid: u32,
    },
    /// newuidmap/newgidmap failed or is missing.
    #[error("{helper} for pid {pid}: {detail}")]
    IdMapHelper {
        /// The helper.
        helper: &'static str,
        /// The namespace's process.
        pid: i32,
        /// What went wrong.
        detail: String,
    },
    /// A system call or file operation failed.
    #[error("rootless: {what}: {source}")]
    Io {
        /// What was done, on which path or pid.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RootlessError {
    let what = what.into();
    move |source| RootlessError::Io { what, source }
}

fn errno(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> RootlessError {
    let what = what.into();
    move |e| RootlessError::Io {
        what,
        source: e.into(),
    }
}

/// The unprivileged user barge works for, or `None` for real root.
pub fn rootless_uid() -> Option<u32> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Some(euid.as_raw());
    }
    std::env::var(ROOTLESS_UID_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The unprivileged user's primary gid (inside its namespace too).
pub fn rootless_gid() -> Option<u32> {
    rootless_uid()?;
    let egid = rustix::process::getegid();
    if !rustix::process::geteuid().is_root() {
        return Some(egid.as_raw());
    }
    std::env::var(ROOTLESS_GID_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
}

/// Whether barge works for an unprivileged user (inside or outside its
/// namespace).
pub fn is_rootless() -> bool {
    rootless_uid().is_some()
}

/// Whether containers get cgroups (limits, `pause`, `stats`): not a
/// rootless user's. The engine does not place them under a cgroup the
/// user's systemd delegated (and cgroup v1 hierarchies, as on hosts in
/// hybrid mode, are never delegated), so their runtime has none to use.
pub fn uses_cgroups() -> bool {
    !is_rootless()
}

/// The user's volatile directory for barge (see the module docs).
pub fn run_dir(uid: u32) -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("barge");
    }
    let user_run = PathBuf::from(format!("/run/user/{uid}"));
    if owned_by(&user_run, uid) {
        return user_run.join("barge");
    }
    PathBuf::from(format!("/tmp/barge-run-{uid}"))
}

fn owned_by(p: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == uid)
}

/// The user's persistent storage root: `$XDG_DATA_HOME/barge/storage`
/// (default `~/.local/share/barge/storage`).
pub fn user_storage_root() -> PathBuf {
    barge_image::Store::user_root()
}

/// The default storage root: root's `/var/lib/barge/storage` or the
/// user's [`user_storage_root`].
pub fn default_root() -> PathBuf {
    if is_rootless() {
        user_storage_root()
    } else {
        PathBuf::from("/var/lib/barge/storage")
    }
}

/// A subordinate id range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIdRange {
    /// First host id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// The first range for `user` (by name or by uid) in `/etc/subuid`-style
/// text.
pub fn parse_subids(text: &str, user: &str, uid: u32) -> Option<SubIdRange> {
    let uid = uid.to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let who = f.next()?;
            let start = f.next()?.trim().parse().ok()?;
            let count = f.next()?.trim().parse().ok()?;
            (who == user || who == uid).then_some(SubIdRange { start, count })
        })
        .find(|r| r.count > 0)
}

/// The user name of `uid` from `/etc/passwd` (the uid as text if none).
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// The user's range in `file`, or the error naming the missing entry.
pub fn subid_range(
    file: &Path,
    kind: &'static str,
    user: &str,
    uid: u32,
) -> Result<SubIdRange, RootlessError> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    parse_subids(&text, user, uid).ok_or_else(|| RootlessError::NoSubIds {
        kind,
        file: file.to_path_buf(),
        user: user.to_string(),
        uid,
    })
}

/// The id mapping of the user's namespace: `0 → id`, `1… → range`.
pub fn id_mapping(id: u32, range: SubIdRange) -> Vec<(u32, u32, u32)> {
    vec![(0, id, 1), (1, range.start, range.count)]
}

/// Joins (creating when needed) the user's namespaces; a no-op for root
/// and inside them. Must run while the process is single-threaded.
pub fn enter() -> Result<(), RootlessError> {
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        return Ok(());
    }
    let uid = euid.as_raw();
    let gid = rustix::process::getegid().as_raw();
    let dir = run_dir(uid);
    create_private_dir(&dir)?;
    let lock_path = dir.join("pause.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(format!("opening {}", lock_path.display())))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(errno(format!("locking {}", lock_path.display())))?;
    let pid_file = dir.join("pause.pid");
    let pid = if let Some(pid) = live_pause(&pid_file) {
        pid
    } else {
        let pid = start_pause(uid)?;
        let start = start_time(pid).unwrap_or(0);
        std::fs::write(&pid_file, format!("{pid} {start}\n"))
            .map_err(io_err(format!("writing {}", pid_file.display())))?;
        pid
    };
    join(pid)?;
    drop(lock);
    // Still single-threaded: children and later code see the user's ids.
    std::env::set_var(ROOTLESS_UID_ENV, uid.to_string());
    std::env::set_var(ROOTLESS_GID_ENV, gid.to_string());
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), RootlessError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(io_err(format!("creating {}", dir.display()))(e)),
    }
}

/// The pause process recorded in `pid_file` when it still runs.
fn live_pause(pid_file: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    (start_time(pid) == Some(start) && start != 0).then_some(pid)
}

/// Field 22 of `/proc/PID/stat`.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Forks the pause process: it unshares a user and a mount namespace, waits
/// for its id maps, then execs `barge-pause` (sleeping in place if that is
/// missing). Returns its pid.
fn start_pause(uid: u32) -> Result<i32, RootlessError> {
    let gid = rustix::process::getegid().as_raw();
    let user = user_name(uid);
    let subuid = subid_range(Path::new("/etc/subuid"), "uid", &user, uid)?;
    let subgid = subid_range(Path::new("/etc/subgid"), "gid", &user, uid)?;
    let pause = crate::containers::find_binary("barge-pause");
    let (up_r, up_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(errno("creating a pipe"))?;
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(errno("creating a pipe"))?;
    match barge_sys::fork().map_err(io_err("fork of the pause process"))? {
        barge_sys::Fork::Child => {
            drop(up_r);
            drop(go_w);
            pause_child(up_w, go_r, &pause)
        }
        barge_sys::Fork::Parent(child) => {
            drop(up_w);
            drop(go_r);
            let pid = child.as_raw_nonzero().get();
            let mut up = std::fs::File::from(up_r);
            let mut buf = Vec::new();
            let _ = up.read_to_end(&mut buf);
            let mapped = if buf == b"ok" {
                map_ids(pid, "newuidmap", uid, subuid)
                    .and_then(|()| map_ids(pid, "newgidmap", gid, subgid))
            } else {
                Err(RootlessError::Io {
                    what: "unshare(CLONE_NEWUSER|CLONE_NEWNS) in the pause process".into(),
                    source: std::io::Error::from_raw_os_error(
                        std::str::from_utf8(&buf)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(libc::EPERM),
                    ),
                })
            };
            if let Err(e) = mapped {
                let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
                let _ =
                    rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
                return Err(e);
            }
            let mut go = std::fs::File::from(go_w);
            go.write_all(b"g")
                .map_err(io_err(format!("releasing pause process {pid}")))?;
            Ok(pid)
        }
    }
}

/// The forked child: never returns.
fn pause_child(up: OwnedFd, go: OwnedFd, pause: &Path) -> ! {
    use std::os::unix::process::CommandExt;
    let mut up = std::fs::File::from(up);
    if let Err(e) = barge_sys::unshare_namespaces((libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as u32)
    {
        let _ = up.write_all(
            e.raw_os_error()
                .unwrap_or(libc::EPERM)
                .to_string()
                .as_bytes(),
        );
        barge_sys::exit_now(1);
    }
    let _ = up.write_all(b"ok");
    drop(up);
    let mut go = std::fs::File::from(go);
    let mut b = [0u8; 1];
    if go.read_exact(&mut b).is_err() {
        barge_sys::exit_now(1);
    }
    drop(go);
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(null.as_fd());
        let _ = rustix::stdio::dup2_stdout(null.as_fd());
        let _ = rustix::stdio::dup2_stderr(null.as_fd());
    }
    let _ = std::process::Command::new(pause)
        .arg0("barge-rootless-pause")
        .env_clear()
        .exec();
    loop {
        std::thread::sleep(std::time::Duration::from_hours(1));
    }
}

fn map_ids(
    pid: i32,
    helper: &'static str,
    id: u32,
    range: SubIdRange,
) -> Result<(), RootlessError> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for (inner, outer, count) in id_mapping(id, range) {
        cmd.args([inner.to_string(), outer.to_string(), count.to_string()]);
    }
    let out = cmd.output().map_err(|e| RootlessError::IdMapHelper {
        helper,
        pid,
        detail: format!("{e} (install the uidmap package)"),
    })?;
    if !out.status.success() {
        return Err(RootlessError::IdMapHelper {
            helper,
            pid,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Joins the user and mount namespaces of `pid`, keeping the working
/// directory.
fn join(pid: i32) -> Result<(), RootlessError> {
    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
    let cwd = std::env::current_dir().ok();
    let open = |ns: &str| {
        let p = format!("/proc/{pid}/ns/{ns}");
        std::fs::File::open(&p).map_err(io_err(format!("opening {p}")))
    };
    let user = open("user")?;
    let mnt = open("mnt")?;
    move_into_link_name_space(user.as_fd(), Some(LinkNameSpaceType::User)).map_err(errno(
        format!("joining the user namespace of pause process {pid}"),
    ))?;
    move_into_link_name_space(mnt.as_fd(), Some(LinkNameSpaceType::Mount)).map_err(errno(
        format!("joining the mount namespace of pause process {pid}"),
    ))?;
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    Ok(())
}

/// The network namespace of a rootless user's bridges (one per user,
/// `RUNDIR/netns/rootless`): the host's namespace is not the user's to
/// change, so bridges, veths and firewall rules of user networks live
/// there, and containers on them reach each other (and resolve each other
/// through their hosts files) as on root's bridges. `pasta` links it to
/// the host for outbound traffic when it is installed.
pub fn user_netns(uid: u32) -> Result<PathBuf, crate::error::EngineError> {
    use crate::error::EngineError;
    let dir = run_dir(uid).join("netns");
    let path = dir.join("rootless");
    // The mount, not just the file: another command may have created the
    // file and not yet bound the namespace on it.
    if is_netns_mount(&path) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir)
        .map_err(EngineError::io(format!("creating {}", dir.display())))?;
    let lock_path = dir.join("rootless.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(EngineError::io(format!("opening {}", lock_path.display())))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| EngineError::io(format!("locking {}", lock_path.display()))(e.into()))?;
    if is_netns_mount(&path) {
        return Ok(path);
    }
    let _ = barge_net::Netns::remove(&path);
    barge_net::Netns::create(&path)?;
    start_uplink(&path, &dir.join("rootless.pasta.pid"));
    Ok(path)
}

/// Whether `path` is a bound namespace file (nsfs), not merely a file.
fn is_netns_mount(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == NSFS_MAGIC)
}

/// Links the user's bridge namespace to the host through pasta (outbound
/// only; published ports use [`crate::networks`]' forwarders). Best
/// effort: without pasta, containers on user networks still reach each
/// other.
fn start_uplink(netns: &Path, pid_file: &Path) {
    let started = std::process::Command::new("pasta")
        .args([
            "--config-net",
            "--quiet",
            "-t",
            "none",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
        ])
        .arg("--pid")
        .arg(pid_file)
        .arg("--netns")
        .arg(netns)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    match started {
        Ok(o) if o.status.success() => {}
        Ok(o) => tracing::warn!(
            stderr = %String::from_utf8_lossy(&o.stderr).trim(),
            "rootless: pasta for the bridge namespace failed; user networks have no outbound access"
        ),
        Err(e) => {
            tracing::debug!(error = %e, "rootless: no pasta; user networks have no outbound access");
        }
    }
}

/// Why a rootless container runs without resource limits (`None` for
/// root): the note printed once when a limit flag is given.
pub fn limits_note() -> Option<String> {
    let uid = rootless_uid()?;
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    Some(if v2 {
        format!(
            "rootless: resource limits are ignored (barge does not yet create containers in a cgroup v2 subtree delegated to uid {uid})"
        )
    } else {
        format!(
            "rootless: resource limits are ignored (this host has cgroup v1 controllers, which are never delegated to uid {uid})"
        )
    })
}

/// Stops the pasta of the user's bridge namespace (`system reset`).
pub fn stop_uplink(uid: u32) {
    let file = run_dir(uid).join("netns/rootless.pasta.pid");
    if let Some(pid) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid.as_raw_nonzero()))
            .unwrap_or_default();
        if comm.trim() == "pasta" {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let _ = std::fs::remove_file(file);
}

/// Runs `f` where the bridges are: for a rootless user on a thread inside
/// [`user_netns`], for root right here (bridges are the host's).
pub fn in_bridge_netns<T: Send>(
    f: impl FnOnce() -> Result<T, crate::error::EngineError> + Send,
) -> Result<T, crate::error::EngineError> {
    match rootless_uid() {
        None => f(),
        Some(uid) => barge_net::Netns::run_in(user_netns(uid)?, f)?,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subids_by_name_or_uid() {
        let text = "# c\nalice:100000:65536\n1001:200000:1000\nbob:300000:0\nbob:400000:10\n";
        assert_eq!(
            parse_subids(text, "alice", 1000),
            Some(SubIdRange {
                start: 100_000,
                count: 65536
            })
        );
        assert_eq!(
            parse_subids(text, "carol", 1001),
            Some(SubIdRange {
                start: 200_000,
                count: 1000
            })
        );
        assert_eq!(
            parse_subids(text, "bob", 7),
            Some(SubIdRange {
                start: 400_000,
                count: 10
            })
        );
        assert_eq!(parse_subids(text, "dave", 5), None);
    }

    #[test]
    fn missing_entry_names_file_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        std::fs::write(&f, "other:1:2\n").unwrap();
        let e = subid_range(&f, "uid", "alice", 1000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("alice") && e.contains("uid 1000") && e.contains("subuid"),
            "{e}"
        );
    }

    #[test]
    fn mapping_puts_the_user_at_root() {
        let m = id_mapping(
            1000,
            SubIdRange {
                start: 100_000,
                count: 65536,
            },
        );
        assert_eq!(m, vec![(0, 1000, 1), (1, 100_000, 65536)]);
    }
}
