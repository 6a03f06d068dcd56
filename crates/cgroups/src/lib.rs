//! cgroup management for barge: cgroup v1, pure v2 and hybrid hosts behind
//! one [`Cgroup`] type.
//!
//! * **v1**: one directory per mounted hierarchy (every controller mount,
//!   co-mounted ones such as `cpu,cpuacct` once, and named hierarchies such as
//!   `name=systemd`).
//! * **v2**: one directory in the unified hierarchy; devices are controlled by
//!   an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program.
//! * **hybrid**: the v1 directories for the limits, plus a node in the cgroup2
//!   mount (normally `/sys/fs/cgroup/unified`) for `CLONE_INTO_CGROUP`, BPF
//!   programs and whatever controllers live there (hugetlb on this host).
//!
//! Paths follow runc: an absolute `cgroupsPath` is relative to each
//! hierarchy's root, a relative one to the runtime process's own cgroup in
//! that hierarchy, and an empty one means `/barge/<container id>`.
//!
//! With `systemd: true` the `slice:prefix:name` syntax is accepted, but no
//! systemd D-Bus is used (barge also runs where PID 1 is not systemd): the
//! path is mapped to the cgroupfs path systemd would use,
//! `<expanded slice>/<prefix>-<name>.scope` (e.g. `system.slice:barge:abc` →
//! `/system.slice/barge-abc.scope`, `a-b.slice:p:n` →
//! `/a.slice/a-b.slice/p-n.scope`), and managed like any other path.

#![forbid(unsafe_code)]

mod devices;
mod error;
mod mountinfo;
mod resources;
mod stats;
mod util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use devices::{
    attached_device_programs, compile_device_filter, default_allowed_devices, rules_for_devices,
    DEVICE_PROG_NAME,
};
pub use error::CgroupError;
pub use mountinfo::{
    detect_mode, host_mounts, mode_from_mounts, parse_mountinfo, parse_proc_cgroup, CgroupMount,
    Mode, MountKind, ProcCgroup,
};
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryEntry, MemoryStats, PidsStats,
    Stats, Throttling,
};
pub use util::hugepage_sizes;

/// Which cgroup to create for a container.
#[derive(Debug, Clone, Copy)]
pub struct CgroupConfig<'a> {
    /// OCI `linux.cgroupsPath`; may be empty.
    pub path: &'a str,
    /// The container id (used for the default path).
    pub container_id: &'a str,
    /// `--systemd-cgroup`: accept `slice:prefix:name` (mapped to cgroupfs).
    pub systemd: bool,
    /// Rootless: permission errors disable cgroups instead of failing.
    pub rootless: bool,
}

/// One hierarchy's directory for the container.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 controllers of this hierarchy (`name=systemd` for named ones);
    /// empty for cgroup2.
    pub controllers: Vec<String>,
    /// The hierarchy's mount point.
    pub mount_point: PathBuf,
    /// The container's directory.
    pub path: PathBuf,
    /// Directories `create` made (outermost first); `destroy` removes these.
    pub created: Vec<PathBuf>,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// A container's cgroup in every hierarchy. Serializable so the runtime can
/// keep it in its state file and act on it from later invocations.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Cgroup {
    mode: Mode,
    disabled: bool,
    v1: Vec<Hierarchy>,
    unified: Option<Hierarchy>,
}

const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Expand a systemd slice name into its cgroup path ("a-b.slice" →
/// "/a.slice/a-b.slice").
fn expand_slice(slice: &str) -> Result<String, CgroupError> {
    let bad = || CgroupError::InvalidConfig(format!("invalid systemd slice name {slice:?}"));
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if stem == "-" || stem.is_empty() {
        return Ok(String::new());
    }
    if stem.contains('/') {
        return Err(bad());
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

/// Map `slice:prefix:name` to the cgroupfs path systemd would use.
fn systemd_path(path: &str, id: &str, rootless: bool) -> Result<String, CgroupError> {
    let default_slice = if rootless {
        "user.slice"
    } else {
        "system.slice"
    };
    if path.is_empty() {
        return Ok(format!("{}/barge-{id}.scope", expand_slice(default_slice)?));
    }
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(CgroupError::InvalidConfig(format!(
            "cgroupsPath {path:?} must be of the form slice:prefix:name with systemd cgroups"
        )));
    };
    let slice = if slice.is_empty() {
        default_slice
    } else {
        slice
    };
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        return Err(CgroupError::InvalidConfig(format!(
            "invalid systemd cgroupsPath {path:?}"
        )));
    }
    let unit = if std::path::Path::new(name)
        .extension()
        .is_some_and(|e| e == "slice")
    {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(format!("{}/{unit}", expand_slice(slice)?))
}

/// Join a cgroup path below a directory, refusing `..`.
fn join_cgroup(base: &Path, rel: &str) -> Result<PathBuf, CgroupError> {
    let mut out = base.to_path_buf();
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            return Err(CgroupError::InvalidConfig(format!(
                "cgroupsPath must not contain \"..\": {rel:?}"
            )));
        }
        out.push(comp);
    }
    Ok(out)
}

/// The directory of this process's own cgroup in a hierarchy.
fn own_dir(mount: &CgroupMount, own: &[ProcCgroup]) -> PathBuf {
    let entry = own.iter().find(|p| match &mount.kind {
        MountKind::V2 => p.id == 0 && p.controllers.is_empty(),
        MountKind::V1(c) => {
            p.controllers.len() == c.len() && c.iter().all(|x| p.controllers.contains(x))
        }
    });
    let Some(entry) = entry else {
        return mount.mount_point.clone();
    };
    let root = mount.root.trim_end_matches('/');
    let rel = entry
        .path
        .strip_prefix(root)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .unwrap_or(if mount.root == "/" { &entry.path } else { "" });
    join_cgroup(&mount.mount_point, rel).unwrap_or_else(|_| mount.mount_point.clone())
}

fn is_permission(e: &CgroupError) -> bool {
    e.io_error()
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|c| c == libc::EACCES || c == libc::EPERM || c == libc::EROFS)
}

impl Cgroup {
    /// A no-op cgroup (rootless without delegation): every operation
    /// succeeds and reports nothing.
    pub fn disabled() -> Cgroup {
        Cgroup {
            mode: Mode::V2,
            disabled: true,
            v1: Vec::new(),
            unified: None,
        }
    }

    /// Create the container's cgroup in every hierarchy.
    pub fn create(cfg: &CgroupConfig) -> Result<Cgroup, CgroupError> {
        match Self::create_inner(cfg) {
            Ok(cg) => Ok(cg),
            Err(e) if cfg.rootless && is_permission(&e) => {
                tracing::debug!(error = %e, "rootless: no cgroup delegation, cgroups disabled");
                Ok(Cgroup::disabled())
            }
            Err(e) => Err(e),
        }
    }

    fn create_inner(cfg: &CgroupConfig) -> Result<Cgroup, CgroupError> {
        let mounts = host_mounts()?;
        let own = parse_proc_cgroup(&mountinfo::read_proc("/proc/self/cgroup")?);
        Self::create_from(cfg, &mounts, &own)
    }

    /// [`Cgroup::create`] with the mounts and own cgroups given (tests use
    /// this with a fake hierarchy).
    pub(crate) fn create_from(
        cfg: &CgroupConfig,
        mounts: &[CgroupMount],
        own: &[ProcCgroup],
    ) -> Result<Cgroup, CgroupError> {
        let mode = mode_from_mounts(mounts)?;
        let path = if cfg.systemd && (cfg.path.is_empty() || cfg.path.contains(':')) {
            systemd_path(cfg.path, cfg.container_id, cfg.rootless)?
        } else if cfg.path.is_empty() {
            if cfg.container_id.is_empty() || cfg.container_id.contains('/') {
                return Err(CgroupError::InvalidConfig(format!(
                    "invalid container id {:?} for a cgroup path",
                    cfg.container_id
                )));
            }
            format!("/barge/{}", cfg.container_id)
        } else {
            cfg.path.to_string()
        };
        let mut cg = Cgroup {
            mode,
            disabled: false,
            v1: Vec::new(),
            unified: None,
        };
        for m in mounts {
            let base = if path.starts_with('/') {
                m.mount_point.clone()
            } else {
                own_dir(m, own)
            };
            let dir = join_cgroup(&base, &path)?;
            if dir == m.mount_point {
                return Err(CgroupError::InvalidConfig(format!(
                    "cgroupsPath {path:?} resolves to the root of {}",
                    m.mount_point.display()
                )));
            }
            let h = Hierarchy {
                controllers: match &m.kind {
                    MountKind::V1(c) => c.clone(),
                    MountKind::V2 => Vec::new(),
                },
                mount_point: m.mount_point.clone(),
                path: dir,
                created: Vec::new(),
            };
            match m.kind {
                MountKind::V1(_) => cg.v1.push(h),
                MountKind::V2 => cg.unified = Some(h),
            }
        }
        // Create the directories; on failure remove what we made so far.
        let mut result = Ok(());
        for h in cg.v1.iter_mut().chain(cg.unified.iter_mut()) {
            if let Err(e) = mkdir_hierarchy(h) {
                result = Err(e);
                break;
            }
        }
        if let Err(e) = result {
            if let Err(e2) = cg.destroy() {
                tracing::warn!(error = %e2, "cleaning up after a failed cgroup create");
            }
            return Err(e);
        }
        Ok(cg)
    }

    /// The host's cgroup mode this cgroup was created for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether this is the no-op [`Cgroup::disabled`] cgroup.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The v1 hierarchy directories.
    pub fn v1_hierarchies(&self) -> &[Hierarchy] {
        &self.v1
    }

    /// The cgroup2 directory (pure v2, or the unified node on hybrid).
    pub fn unified_path(&self) -> Option<&Path> {
        self.unified.as_ref().map(|h| h.path.as_path())
    }

    /// The directory of a v1 controller (`"memory"`, `"name=systemd"`, ...).
    pub fn v1_path(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|h| h.has(controller))
            .map(|h| h.path.as_path())
    }

    /// Every directory of the container, v1 first.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.v1
            .iter()
            .chain(self.unified.iter())
            .map(|h| h.path.clone())
            .collect()
    }

    /// An `O_PATH|O_DIRECTORY|O_CLOEXEC` fd of the cgroup2 node for clone3's
    /// `CLONE_INTO_CGROUP`; `None` when there is none (or it cannot be opened).
    pub fn clone_into_fd(&self) -> Option<std::os::fd::OwnedFd> {
        if self.disabled {
            return None;
        }
        let h = self.unified.as_ref()?;
        use rustix::fs::{Mode as FMode, OFlags};
        match rustix::fs::open(
            &h.path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            FMode::empty(),
        ) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(path = %h.path.display(), error = %e, "cannot open cgroup2 node");
                None
            }
        }
    }

    /// Move `pid` into the container's cgroup in every hierarchy. Set
    /// `skip_cgroup2` when the process was already cloned into the cgroup2
    /// node.
    pub fn add_task(&self, pid: i32, skip_cgroup2: bool) -> Result<(), CgroupError> {
        if self.disabled {
            return Ok(());
        }
        let value = pid.to_string();
        for h in &self.v1 {
            util::write(&h.path, "cgroup.procs", &value)?;
        }
        self.add_task_unified(pid, skip_cgroup2)
    }

    /// Opens the `tasks` file of every v1 hierarchy for writing, for
    /// [`TaskFiles::join_self`] in a freshly forked, single-threaded child.
    ///
    /// Moving another process (`cgroup.procs`, or any pid other than 0)
    /// takes the kernel's global threadgroup rwsem for writing, which
    /// waits for an RCU grace period (~8 ms on this VM, for every
    /// container start and exec). A thread that moves itself by writing
    /// `0` to `tasks` skips that lock; for a single-threaded process that
    /// moves the whole process. The opener's credentials are the ones
    /// checked, so a child that already left our user namespace can still
    /// use them.
    pub fn v1_task_files(&self) -> Result<TaskFiles, CgroupError> {
        if self.disabled {
            return Ok(TaskFiles(Vec::new()));
        }
        let mut files = Vec::with_capacity(self.v1.len());
        for h in &self.v1 {
            let path = h.path.join("tasks");
            let fd = rustix::fs::open(
                &path,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| CgroupError::Open {
                path: path.clone(),
                source: e.into(),
            })?;
            files.push((path, fd));
        }
        Ok(TaskFiles(files))
    }

    /// Moves `pid` into the cgroup2 node only (unless it was cloned into
    /// it): the v1 hierarchies were joined with [`TaskFiles::join_self`].
    pub fn add_task_unified(&self, pid: i32, cloned_into: bool) -> Result<(), CgroupError> {
        if self.disabled || cloned_into {
            return Ok(());
        }
        if let Some(h) = &self.unified {
            util::write(&h.path, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Apply the resource limits of a new container.
    pub fn apply(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        if self.disabled {
            return Ok(());
        }
        resources::apply(self, r, false)
    }

    /// Change the limits of a running container (devices included).
    pub fn update(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        if self.disabled {
            return Ok(());
        }
        resources::apply(self, r, true)
    }

    /// The directory used for listing processes and freezing.
    fn procs_dir(&self) -> Option<&Path> {
        if self.mode == Mode::V2 {
            return self.unified_path();
        }
        ["pids", "freezer", "memory", "cpu", "devices"]
            .iter()
            .find_map(|c| self.v1_path(c))
            .or_else(|| self.v1.first().map(|h| h.path.as_path()))
            .or_else(|| self.unified_path())
    }

    /// All pids in the container's cgroup, including sub-cgroups.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        if self.disabled {
            return Ok(Vec::new());
        }
        let Some(dir) = self.procs_dir() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        collect_pids(dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn v1_freezer(&self) -> Option<&Path> {
        if self.mode == Mode::V2 {
            None
        } else {
            self.v1_path("freezer")
        }
    }

    fn freezer_v2(&self) -> Result<&Path, CgroupError> {
        self.unified_path()
            .filter(|p| p.join("cgroup.freeze").exists())
            .ok_or_else(|| CgroupError::MissingController("freezer".into()))
    }

    /// Freeze every process; returns once the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        if self.disabled {
            return Ok(());
        }
        if let Some(dir) = self.v1_freezer() {
            let state = dir.join("freezer.state");
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut n = 0u32;
            loop {
                if n == 0 {
                    // (Re)request freezing now and then: tasks forked while
                    // FREEZING may otherwise keep it from completing.
                    util::write_path(&state, "FROZEN")?;
                    n = 50;
                }
                n -= 1;
                if util::read_path(&state)?.trim() == "FROZEN" {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = util::write_path(&state, "THAWED");
                    return Err(CgroupError::FreezeTimeout {
                        path: state,
                        state: "FROZEN".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let dir = self.freezer_v2()?;
        util::write(dir, "cgroup.freeze", "1")?;
        wait_events_frozen(dir, true)
    }

    /// Thaw the processes frozen by [`Cgroup::freeze`].
    pub fn thaw(&self) -> Result<(), CgroupError> {
        if self.disabled {
            return Ok(());
        }
        if let Some(dir) = self.v1_freezer() {
            let state = dir.join("freezer.state");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                util::write_path(&state, "THAWED")?;
                if util::read_path(&state)?.trim() == "THAWED" {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(CgroupError::FreezeTimeout {
                        path: state,
                        state: "THAWED".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let dir = self.freezer_v2()?;
        util::write(dir, "cgroup.freeze", "0")?;
        wait_events_frozen(dir, false)
    }

    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        if self.disabled {
            return Ok(false);
        }
        if let Some(dir) = self.v1_freezer() {
            return Ok(util::read(dir, "freezer.state")?.trim() == "FROZEN");
        }
        let dir = self.freezer_v2()?;
        Ok(util::read_flat_keyed(dir, "cgroup.events")?.get("frozen") == Some(&1))
    }

    /// Send `signal` to every process: freeze, signal each pid, thaw (so no
    /// process can fork away meanwhile). On v2 `SIGKILL` uses `cgroup.kill`.
    /// A cgroup that was already frozen (paused) is left frozen unless the
    /// signal is `SIGKILL`. Processes that exit meanwhile are ignored.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if self.disabled {
            return Ok(());
        }
        if signal == libc::SIGKILL && self.mode == Mode::V2 {
            if let Some(dir) = self.unified_path() {
                if dir.join("cgroup.kill").exists() {
                    return util::write(dir, "cgroup.kill", "1");
                }
            }
        }
        let sig = rustix::process::Signal::from_named_raw(signal).ok_or_else(|| {
            CgroupError::InvalidConfig(format!("unsupported signal number {signal}"))
        })?;
        // A paused container stays paused (except for SIGKILL, whose
        // victims must run to die).
        let was_frozen = self.is_frozen().unwrap_or(false);
        // Freezing keeps forks from escaping the signal; if it fails (a task
        // stuck in D state), signal anyway rather than not at all.
        let frozen = match self.freeze() {
            Ok(()) => true,
            Err(CgroupError::MissingController(_)) => false,
            Err(e) => {
                tracing::warn!(error = %e, "freezing before signalling failed; signalling anyway");
                let _ = self.thaw();
                false
            }
        };
        let mut result = Ok(());
        match self.pids() {
            Ok(pids) => {
                for pid in pids {
                    let Some(p) = rustix::process::Pid::from_raw(pid) else {
                        continue;
                    };
                    match rustix::process::kill_process(p, sig) {
                        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                        Err(e) => {
                            result = Err(CgroupError::Signal {
                                pid,
                                signal,
                                source: e.into(),
                            });
                        }
                    }
                }
            }
            Err(e) => result = Err(e),
        }
        if frozen && (!was_frozen || signal == libc::SIGKILL) {
            self.thaw()?;
        }
        result
    }

    /// Resource usage in runc's `events --stats` shape.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        if self.disabled {
            return Ok(Stats::default());
        }
        stats::collect(self)
    }

    /// How many times the OOM killer killed a process in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        if self.disabled {
            return Ok(0);
        }
        if self.mode != Mode::V2 {
            if let Some(dir) = self.v1_path("memory") {
                return Ok(util::read_flat_keyed(dir, "memory.oom_control")?
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0));
            }
        }
        match self.unified_path() {
            Some(dir) if dir.join("memory.events").exists() => {
                Ok(util::read_flat_keyed(dir, "memory.events")?
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0))
            }
            _ => Err(CgroupError::MissingController("memory".into())),
        }
    }

    /// Remove the directories `create` made, leaf first (sub-cgroups the
    /// container made are removed too). Already-gone directories are fine;
    /// a busy leaf is retried for about a second.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        if self.disabled {
            return Ok(());
        }
        let mut first_err = None;
        for h in self.v1.iter().chain(self.unified.iter()) {
            let Some(leaf) = h.created.last() else {
                continue;
            };
            if let Err(e) = remove_tree(leaf) {
                first_err.get_or_insert(e);
                continue;
            }
            // Parents we created: remove them if nobody else uses them.
            for dir in h.created.iter().rev().skip(1) {
                match std::fs::remove_dir(dir) {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::debug!(path = %dir.display(), error = %e, "keeping parent cgroup");
                        break;
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn wait_events_frozen(dir: &Path, want: bool) -> Result<(), CgroupError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let want_v = u64::from(want);
    loop {
        if util::read_flat_keyed(dir, "cgroup.events")?.get("frozen") == Some(&want_v) {
            return Ok(());
        }
        if Instant::now() > deadline {
            if want {
                let _ = util::write(dir, "cgroup.freeze", "0");
            }
            return Err(CgroupError::FreezeTimeout {
                path: dir.join("cgroup.events"),
                state: format!("frozen {want_v}"),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    let text = match std::fs::read_to_string(&procs) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: procs,
                source,
            })
        }
    };
    for line in text.lines() {
        let pid = line.trim().parse().map_err(|_| CgroupError::Parse {
            path: procs.clone(),
            content: line.to_string(),
            reason: "not a pid".into(),
        })?;
        out.push(pid);
    }
    for sub in subdirs(dir) {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Open `tasks` files of a container's v1 cgroups (see
/// [`Cgroup::v1_task_files`]).
#[derive(Debug)]
pub struct TaskFiles(Vec<(PathBuf, std::os::fd::OwnedFd)>);

impl TaskFiles {
    /// Moves the calling thread into every cgroup, without the global
    /// lock that moving another task takes. Call it only from a
    /// single-threaded process (a fresh fork), where the thread is the
    /// whole process.
    pub fn join_self(self) -> Result<(), CgroupError> {
        for (path, fd) in self.0 {
            rustix::io::write(&fd, b"0").map_err(|e| CgroupError::Write {
                path,
                value: "0".into(),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

/// rmdir `dir` after its sub-cgroups, retrying EBUSY briefly.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    for sub in subdirs(dir) {
        remove_tree(&sub)?;
    }
    let deadline = Instant::now() + BUSY_RETRY;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(CgroupError::Rmdir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// mkdir every missing component of `h.path` below its mount point,
/// recording what was created; v1 cpuset dirs get cpus/mems from their
/// parent, cgroup2 parents get their available controllers enabled.
fn mkdir_hierarchy(h: &mut Hierarchy) -> Result<(), CgroupError> {
    // A concurrent destroy() of a sibling may remove a shared parent between
    // our mkdirs (ENOENT): walk again a few times.
    let mut tries = 0;
    loop {
        match mkdir_walk(h) {
            Err(CgroupError::Mkdir { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && tries < 5 =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

fn mkdir_walk(h: &mut Hierarchy) -> Result<(), CgroupError> {
    let rel: Vec<PathBuf> = h
        .path
        .strip_prefix(&h.mount_point)
        .map(|r| r.iter().map(PathBuf::from).collect())
        .unwrap_or_default();
    let is_cpuset = h.has("cpuset");
    let is_v2 = h.controllers.is_empty();
    let mut cur = h.mount_point.clone();
    for comp in rel {
        let parent = cur.clone();
        cur.push(comp);
        if is_v2 {
            enable_subtree_controllers(&parent);
        }
        match std::fs::create_dir(&cur) {
            Ok(()) => {
                tracing::debug!(path = %cur.display(), "created cgroup");
                if !h.created.contains(&cur) {
                    h.created.push(cur.clone());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Mkdir {
                    path: cur.clone(),
                    source,
                })
            }
        }
        if is_cpuset {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let mine = util::read(&cur, file)?;
                if mine.trim().is_empty() {
                    let theirs = util::read(&parent, file)?;
                    util::write(&cur, file, theirs.trim())?;
                }
            }
        }
    }
    Ok(())
}

/// Best effort: enable in `dir`'s subtree every controller it has, so
/// children get the control files (fails harmlessly for a cgroup with
/// processes, or one whose controllers are not available).
fn enable_subtree_controllers(dir: &Path) {
    let Ok(avail) = util::read(dir, "cgroup.controllers") else {
        return;
    };
    let enabled = util::read(dir, "cgroup.subtree_control").unwrap_or_default();
    for c in avail.split_whitespace() {
        if enabled.split_whitespace().any(|e| e == c) {
            continue;
        }
        if let Err(e) = util::write(dir, "cgroup.subtree_control", &format!("+{c}")) {
            tracing::debug!(error = %e, "cannot enable cgroup2 controller");
        }
    }
}

#[cfg(test)]
mod tests;
