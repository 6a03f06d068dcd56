//! Container lifecycle operations: create, start, run, state, kill, delete,
//! pause, resume, update, ps, list.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use barge_cgroups::{Cgroup, CgroupConfig};
use oci_spec::runtime::{LinuxResources, Spec};
use rustix::fs::{Mode, OFlags};

use crate::channel::{self, FromInit, ToInit};
use crate::error::{Context, RuntimeError};
use crate::init::{self, InitArgs};
use crate::namespaces::{self, NsPlan};
use crate::state::{self, ContainerState, Status, EXEC_FIFO};
use crate::{hooks, seccomp, util};

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub systemd_cgroup: bool,
    /// Give the init stdio pipes (foreground `run` without a terminal).
    pub stdio_pipes: bool,
}

/// A freshly created container (the init waits for `start`).
#[derive(Debug)]
pub struct Created {
    pub state: ContainerState,
    /// For `run` without a console socket: the terminal master.
    pub console: Option<OwnedFd>,
    /// Whether the init is our direct child (one-step mode).
    pub is_child: bool,
    /// Our ends of the stdio pipes, with `stdio_pipes`.
    pub pipes: Option<[OwnedFd; 3]>,
}

/// Undo a partial create: kill the init, remove the cgroup and state dir.
struct Cleanup<'a> {
    dir: &'a Path,
    cgroup: Option<Cgroup>,
    pid: Option<i32>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            if let Err(e) = cg.destroy() {
                tracing::warn!(error = %e, "removing the cgroup of a failed create");
            }
        }
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

/// Create a container: everything up to the point where the init waits for
/// `start`.
pub fn create(opts: &CreateOptions) -> Result<Created, RuntimeError> {
    barge_oci::validate_id(&opts.id)?;
    let bundle =
        std::fs::canonicalize(&opts.bundle).ctx(|| format!("bundle {}", opts.bundle.display()))?;
    let spec = barge_oci::load_config(&bundle)?;
    barge_oci::validate(&spec, &bundle)?;
    if let Some(sc) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        seccomp::check(sc)?;
    }
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    let rootfs = if root_path.is_absolute() {
        root_path
    } else {
        bundle.join(root_path)
    };
    let rootfs = std::fs::canonicalize(&rootfs).ctx(|| format!("rootfs {}", rootfs.display()))?;
    // Open namespace paths before creating anything, so a bad path leaves
    // nothing behind.
    let plan = NsPlan::from_spec(spec.linux().as_ref())?;
    let console_socket = opts
        .console_socket
        .as_deref()
        .map(crate::console::connect_socket)
        .transpose()?;

    create_dir_secure(&opts.root)?;
    let dir = state::dir(&opts.root, &opts.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::Exists(opts.id.clone()))
        }
        Err(e) => return Err(RuntimeError::io(format!("creating {}", dir.display()), e)),
    }
    let mut cleanup = Cleanup {
        dir: &dir,
        cgroup: None,
        pid: None,
        armed: true,
    };

    let linux = spec.linux().as_ref();
    // Root inside a user namespace (a rootless engine's) is rootless too:
    // the host's cgroups are not its to write.
    let rootless = !rustix::process::geteuid().is_root() || crate::namespaces::in_user_namespace();
    let cg_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cgroup = Cgroup::create(&CgroupConfig {
        path: &cg_path,
        container_id: &opts.id,
        systemd: opts.systemd_cgroup,
        rootless,
    })?;
    // Never adopt a cgroup that already has processes (another container's,
    // or a host service's): cleanup, `kill --all` and `delete` would signal
    // them.
    match cgroup.pids() {
        Ok(pids) if !pids.is_empty() => {
            let _ = cgroup.destroy();
            return Err(RuntimeError::Other(format!(
                "cgroup {cg_path:?} already has processes ({} of them); refusing to share it",
                pids.len()
            )));
        }
        _ => {}
    }
    cleanup.cgroup = Some(cgroup.clone());
    if let Some(res) = linux.and_then(|l| l.resources().as_ref()) {
        // Like runc, nodes from `linux.devices` are only created; access to
        // them is what `resources.devices` (plus the default set) allows.
        cgroup.apply(res)?;
    }

    // A provisional state from here on: if this process is killed, a later
    // `delete` still finds the cgroups and the init to remove.
    let mut st = ContainerState {
        id: opts.id.clone(),
        pid: 0,
        start_time: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: util::rfc3339_now(),
        owner: rustix::process::geteuid().as_raw(),
        cgroup: cgroup.clone(),
        config: spec.clone(),
        started: false,
        creating: true,
    };
    st.save(&opts.root)?;
    let fifo_path = dir.join(EXEC_FIFO);
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo_path, Mode::from_raw_mode(0o622))
        .ctx(|| format!("creating {}", fifo_path.display()))?;
    // Any container user must be able to open it for writing (the init may
    // have switched users or sit in a user namespace by then); umask aside.
    rustix::fs::chmod(&fifo_path, Mode::from_raw_mode(0o622))
        .ctx(|| format!("chmod {}", fifo_path.display()))?;
    let fifo = rustix::fs::open(&fifo_path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("opening {}", fifo_path.display()))?;

    tracing::debug!(id = %opts.id, "create: cgroup ready");
    let (parent_chan, child_chan) = channel::pair()?;
    let trampoline = crate::selfclone::trampoline()?;
    let (our_pipes, child_pipes) = if opts.stdio_pipes {
        let user = spec
            .process()
            .as_ref()
            .map(|p| p.user().clone())
            .unwrap_or_default();
        let owner = namespaces::host_ids(linux, user.uid(), user.gid());
        let (a, b) = crate::exec::stdio_pipes(Some(owner))?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let cgroup_views = crate::rootfs::cgroup_views(&cgroup);
    let clone_fd = cgroup.clone_into_fd();
    let cgroup_tasks = cgroup.v1_task_files()?;

    // A joined pid namespace applies to our next child; restore ours after.
    let own_pid_ns = if plan.pid_join().is_some() {
        Some(
            std::fs::File::open("/proc/self/ns/pid")
                .ctx(|| "opening /proc/self/ns/pid".to_string())?,
        )
    } else {
        None
    };
    plan.enter_pid_for_children()?;
    let flags = if plan.two_step() { 0 } else { plan.new_flags };
    let (fork, cloned_into) = clone_into_cgroup(flags, clone_fd.as_ref())
        .map_err(|e| RuntimeError::io("clone3 of the container init", e))?;
    let child = match fork {
        barge_sys::Fork::Child => {
            // No host directory fd may survive into the container.
            drop(clone_fd);
            drop(own_pid_ns);
            drop(parent_chan);
            drop(our_pipes);
            std::mem::forget(cleanup);
            init::run(InitArgs {
                spec: &spec,
                id: &opts.id,
                bundle: &bundle,
                rootfs: rootfs.clone(),
                plan: &plan,
                chan: child_chan,
                fifo,
                console_socket,
                preserve_fds: opts.preserve_fds,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                cgroup_views,
                cgroup_tasks,
                stdio: child_pipes,
                trampoline,
            })
        }
        barge_sys::Fork::Parent(pid) => pid.as_raw_nonzero().get(),
    };
    drop(child_chan);
    drop(child_pipes);
    drop(trampoline);
    drop(fifo);
    drop(console_socket);
    cleanup.pid = Some(child);
    tracing::debug!(id = %opts.id, pid = child, "create: cloned");
    st.pid = child;
    st.start_time = util::proc_stat(child).map_or(0, |s| s.start_time);
    st.save(&opts.root)?;
    if let Some(ns) = &own_pid_ns {
        let back = rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::ProcessID),
        );
        match back {
            // Root in a user namespace (a rootless engine) may not enter
            // the host's pid namespace, its own included: later children
            // of this process (hooks) start in the joined one.
            Err(rustix::io::Errno::PERM) if crate::namespaces::in_user_namespace() => {
                tracing::debug!(id = %opts.id, "rootless: staying in the joined pid namespace for children");
            }
            r => r.ctx(|| "returning to our pid namespace".to_string())?,
        }
    }

    let uid_maps = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gid_maps = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    if plan.two_step() {
        // The init forks early in two-step mode: it must be in its cgroups
        // before that (it joined the v1 ones itself, first thing).
        cgroup.add_task_unified(child, cloned_into)?;
    } else if plan.new_user {
        namespaces::write_id_maps(child, &uid_maps, &gid_maps)?;
    }
    let (idmap_dests, idmap_fds) =
        prepare_idmapped_mounts(&spec, child, plan.new_user && !plan.two_step())?;
    let fd_refs: Vec<_> = idmap_fds.iter().map(AsFd::as_fd).collect();
    parent_chan.send(&ToInit::Go { idmap: idmap_dests }, &fd_refs)?;
    if !plan.two_step() {
        // The init joins its v1 cgroups itself (no RCU grace period, see
        // `Cgroup::v1_task_files`); the cgroup2 node only needs a move here
        // if clone3 could not clone into it. The init waits for
        // `CgroupsDone` before anything that forks, allocates much or runs
        // user code.
        if let Err(e) = cgroup.add_task_unified(child, cloned_into) {
            let _ = parent_chan.send(&ToInit::Abort, &[]);
            return Err(e.into());
        }
        // If the init already failed, its message is read below.
        let _ = parent_chan.send(&ToInit::CgroupsDone, &[]);
        tracing::debug!(id = %opts.id, "create: cgroups joined");
    }

    let mut init_pid = child;
    let mut console = None;
    loop {
        let Some((msg, mut fds)) = parent_chan.recv::<FromInit>()? else {
            let why = reap_status(init_pid);
            cleanup.pid = None;
            return Err(RuntimeError::Init(format!(
                "the container init exited unexpectedly ({why})"
            )));
        };
        match msg {
            FromInit::WriteMaps { pid } => {
                namespaces::write_id_maps(pid, &uid_maps, &gid_maps)?;
                parent_chan.send(&ToInit::MapsDone, &[])?;
            }
            FromInit::InitPid { pid } => {
                let _ = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(child),
                    rustix::process::WaitOptions::empty(),
                );
                init_pid = pid;
                cleanup.pid = Some(pid);
                st.pid = pid;
                st.start_time = util::proc_stat(pid).map_or(0, |s| s.start_time);
                st.save(&opts.root)?;
            }
            FromInit::RunHooks => {
                let state_json = st.oci_state(Status::Creating);
                let hooks = spec.hooks().as_ref();
                let res = hooks::run_all(
                    "prestart",
                    hooks.and_then(|h| h.prestart().as_ref()),
                    &state_json,
                )
                .and_then(|()| {
                    hooks::run_all(
                        "createRuntime",
                        hooks.and_then(|h| h.create_runtime().as_ref()),
                        &state_json,
                    )
                });
                if let Err(e) = res {
                    let _ = parent_chan.send(&ToInit::Abort, &[]);
                    return Err(e);
                }
                parent_chan.send(&ToInit::HooksDone, &[])?;
            }
            FromInit::SeccompFd => {
                let fd = fds
                    .pop()
                    .ok_or_else(|| RuntimeError::Init("seccomp fd missing".into()))?;
                if let Err(e) = seccomp::forward_to_listener(
                    linux.and_then(|l| l.seccomp().as_ref()),
                    || st.oci_state(Status::Creating),
                    init_pid,
                    fd.as_fd(),
                ) {
                    let _ = parent_chan.send(&ToInit::Abort, &[]);
                    return Err(e.into());
                }
                parent_chan.send(&ToInit::SeccompDone, &[])?;
            }
            FromInit::ConsoleFd => console = fds.pop(),
            FromInit::Ready => {
                tracing::debug!(id = %opts.id, "create: init ready");
                break;
            }
            FromInit::Failed { step, message } => {
                let _ = reap_status(init_pid);
                cleanup.pid = None;
                return Err(RuntimeError::Init(format!("{step}: {message}")));
            }
        }
    }
    st.creating = false;
    st.save(&opts.root)?;
    if let Some(pf) = &opts.pid_file {
        util::write_atomic(pf, init_pid.to_string().as_bytes())?;
    }
    cleanup.armed = false;
    Ok(Created {
        state: st,
        console,
        is_child: init_pid == child,
        pipes: our_pipes,
    })
}

/// `clone3` straight into the container's cgroup2 node when there is one,
/// falling back to a plain clone (the caller then joins the cgroup with
/// `add_task`). Returns the fork result and whether the child was cloned
/// into the cgroup.
pub(crate) fn clone_into_cgroup(
    flags: u64,
    cgroup: Option<&OwnedFd>,
) -> std::io::Result<(barge_sys::Fork, bool)> {
    let args = barge_sys::CloneArgs {
        flags,
        cgroup: cgroup.map(AsFd::as_fd),
    };
    match barge_sys::clone3(&args) {
        Err(e) if cgroup.is_some() => {
            tracing::debug!(error = %e, "clone3 into the cgroup failed, joining it afterwards");
            let args = barge_sys::CloneArgs {
                flags,
                cgroup: None,
            };
            barge_sys::clone3(&args).map(|f| (f, false))
        }
        other => other.map(|f| (f, cgroup.is_some())),
    }
}

fn reap_status(pid: i32) -> String {
    match rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    ) {
        Ok(Some((_, st))) => {
            if let Some(code) = st.exit_status() {
                format!("exit status {code}")
            } else if let Some(sig) = st.terminating_signal() {
                format!("killed by signal {sig}")
            } else {
                "unknown status".into()
            }
        }
        _ => "status unknown".into(),
    }
}

/// Idmapped bind mounts are built here (they need host privileges) from
/// the init's user namespace and passed to it as detached mounts.
fn prepare_idmapped_mounts(
    spec: &Spec,
    child: i32,
    userns_ready: bool,
) -> Result<(Vec<PathBuf>, Vec<OwnedFd>), RuntimeError> {
    let mut dests = Vec::new();
    let mut fds = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let opts = crate::rootfs::parse_options(m.options().as_deref().unwrap_or(&[]));
        let Some(recursive) = opts.idmap else {
            continue;
        };
        let linux = spec.linux().as_ref();
        let same = |mine: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>,
                    theirs: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
            mine.as_ref().is_none_or(|m| Some(m) == theirs)
        };
        if !same(
            m.uid_mappings(),
            linux.and_then(|l| l.uid_mappings().as_ref()),
        ) || !same(
            m.gid_mappings(),
            linux.and_then(|l| l.gid_mappings().as_ref()),
        ) {
            return Err(RuntimeError::Other(format!(
                "idmapped mount at {}: mappings that differ from the container's are not supported yet",
                m.destination().display()
            )));
        }
        if !userns_ready {
            return Err(RuntimeError::Other(format!(
                "idmapped mount at {} needs a new user namespace created by the runtime",
                m.destination().display()
            )));
        }
        let src = m.source().as_deref().ok_or_else(|| {
            RuntimeError::Other(format!(
                "idmapped mount at {} has no source",
                m.destination().display()
            ))
        })?;
        let mut flags = rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
            | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if recursive || opts.flags & libc::MS_REC != 0 {
            flags |= rustix::mount::OpenTreeFlags::AT_RECURSIVE;
        }
        let tree = rustix::mount::open_tree(rustix::fs::CWD, src, flags)
            .ctx(|| format!("open_tree {}", src.display()))?;
        let userns = std::fs::File::open(format!("/proc/{child}/ns/user"))
            .ctx(|| format!("opening /proc/{child}/ns/user"))?;
        barge_sys::mount_setattr_idmap(tree.as_fd(), userns.as_fd(), recursive)
            .map_err(|e| RuntimeError::io(format!("idmapping {}", src.display()), e))?;
        dests.push(m.destination().clone());
        fds.push(tree);
    }
    Ok((dests, fds))
}

fn create_dir_secure(root: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .ctx(|| format!("creating state root {}", root.display()))
}

/// Start a created container: open the exec fifo so the init proceeds,
/// then run poststart hooks.
pub fn start(root: &Path, id: &str) -> Result<ContainerState, RuntimeError> {
    let st = ContainerState::load(root, id)?;
    let status = st.status(root);
    if status != Status::Created {
        return Err(RuntimeError::BadStatus {
            id: id.into(),
            status: status.to_string(),
            action: "start",
            wanted: "created",
        });
    }
    let fifo_path = state::dir(root, id).join(EXEC_FIFO);
    let fifo = rustix::fs::open(
        &fifo_path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening {}", fifo_path.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut pfd = [rustix::event::PollFd::new(
            &fifo,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        match rustix::event::poll(&mut pfd, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => {}
            Ok(_) => break,
            Err(e) => return Err(RuntimeError::io("polling the exec fifo", e.into())),
        }
        if !util::process_alive(st.pid, st.start_time) {
            return Err(RuntimeError::Init(format!(
                "container {id}: the init exited before start"
            )));
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::Init(format!(
                "container {id}: the init did not answer start within 30s"
            )));
        }
    }
    let mut buf = [0u8; 1];
    let n = rustix::io::read(&fifo, &mut buf).ctx(|| "reading the exec fifo".to_string())?;
    let _ = std::fs::remove_file(&fifo_path);
    if n == 0 {
        return Err(RuntimeError::Init(format!(
            "container {id}: the init exited before start"
        )));
    }
    // The init holds the fifo until its exec (close-on-exec): EOF means the
    // container process runs (or the init died).
    rustix::fs::fcntl_setfl(&fifo, OFlags::empty()).ctx(|| "fcntl on the exec fifo".to_string())?;
    loop {
        match rustix::io::read(&fifo, &mut buf) {
            Ok(0) => break,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(RuntimeError::io("reading the exec fifo", e.into())),
        }
    }
    let mut st = st;
    st.started = true;
    let state_json = st.oci_state(Status::Running);
    hooks::run_all_warn(
        "poststart",
        st.config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().as_ref()),
        &state_json,
    );
    Ok(st)
}

/// The OCI state of a container.
pub fn state(root: &Path, id: &str) -> Result<serde_json::Value, RuntimeError> {
    let st = ContainerState::load(root, id)?;
    let status = st.status(root);
    Ok(st.oci_state(status))
}

/// Send a signal to the init, or with `all` to every process of the
/// container.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
    let st = ContainerState::load(root, id)?;
    let status = st.status(root);
    if status == Status::Stopped && !all {
        return Err(RuntimeError::BadStatus {
            id: id.into(),
            status: status.to_string(),
            action: "kill",
            wanted: "running, created or paused",
        });
    }
    if all {
        return kill_all(&st, signal);
    }
    signal_pid(st.pid, signal)?;
    if status == Status::Paused && signal == libc::SIGKILL {
        // A frozen process cannot die: thaw it (runc does the same).
        st.cgroup.thaw()?;
    }
    Ok(())
}

fn signal_pid(pid: i32, signal: i32) -> Result<(), RuntimeError> {
    let p = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| RuntimeError::Other(format!("invalid pid {pid}")))?;
    let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .ctx(|| format!("pidfd_open({pid})"))?;
    // SAFETY-free: signal numbers come from `parse_signal`, validated.
    let sig = rustix::process::Signal::from_named_raw(signal)
        .ok_or_else(|| RuntimeError::Signal(signal.to_string()))?;
    rustix::process::pidfd_send_signal(&pidfd, sig)
        .ctx(|| format!("sending signal {signal} to pid {pid}"))
}

/// Wait until `pid` exits (it need not be our child).
pub fn wait_exit(pid: i32, timeout: Duration) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    let Ok(pidfd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    loop {
        let mut pfd = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        if let Ok(n) = rustix::event::poll(&mut pfd, Some(&ts)) {
            if n > 0 {
                return true;
            }
        }
        if Instant::now() > deadline {
            return false;
        }
    }
}

/// Delete a container. A running one needs `force` (it is killed).
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), RuntimeError> {
    barge_oci::validate_id(id)?;
    let dir = state::dir(root, id);
    let st = match ContainerState::load(root, id) {
        Ok(st) => st,
        Err(RuntimeError::NotFound(_)) if dir.exists() => {
            // A create that died half-way: nothing but the directory.
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        Err(RuntimeError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let status = st.status(root);
    match status {
        Status::Running | Status::Paused if !force => {
            return Err(RuntimeError::BadStatus {
                id: id.into(),
                status: status.to_string(),
                action: "delete",
                wanted: "stopped (or use --force)",
            });
        }
        Status::Stopped => {}
        _ => {
            let _ = kill_all(&st, libc::SIGKILL);
            let _ = signal_pid(st.pid, libc::SIGKILL);
            if !wait_exit(st.pid, Duration::from_secs(10)) {
                return Err(RuntimeError::Other(format!(
                    "container {id}: init pid {} did not exit after SIGKILL",
                    st.pid
                )));
            }
        }
    }
    // Without a pid namespace, other processes may outlive the init.
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes(&st).is_ok_and(|p| !p.is_empty()) && Instant::now() < deadline {
        let _ = kill_all(&st, libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(10));
    }
    st.cgroup.destroy()?;
    let state_json = st.oci_state(Status::Stopped);
    hooks::run_all_warn(
        "poststop",
        st.config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().as_ref()),
        &state_json,
    );
    std::fs::remove_dir_all(&dir).ctx(|| format!("removing {}", dir.display()))
}

/// Every process of the container: its cgroup's or, without one (rootless
/// without cgroup delegation), the init's process tree
/// ([`util::process_tree`]).
pub fn processes(st: &ContainerState) -> Result<Vec<i32>, RuntimeError> {
    if st.cgroup.is_disabled() {
        return Ok(util::process_tree(st.pid, st.start_time));
    }
    Ok(st.cgroup.pids()?)
}

/// `kill --all`: through the cgroup (frozen meanwhile), or without one
/// to each process of [`processes`] (no freezer: a process forked
/// meanwhile may escape a signal other than SIGKILL to a pid namespace's
/// init, which takes the whole namespace along).
fn kill_all(st: &ContainerState, signal: i32) -> Result<(), RuntimeError> {
    if !st.cgroup.is_disabled() {
        return Ok(st.cgroup.kill_all(signal)?);
    }
    let sig = rustix::process::Signal::from_named_raw(signal)
        .ok_or_else(|| RuntimeError::Signal(signal.to_string()))?;
    let mut result = Ok(());
    for pid in processes(st)? {
        let Some(p) = rustix::process::Pid::from_raw(pid) else {
            continue;
        };
        match rustix::process::kill_process(p, sig) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                result = Err(RuntimeError::io(
                    format!(
                        "sending signal {signal} to pid {pid} of container {}",
                        st.id
                    ),
                    e.into(),
                ));
            }
        }
    }
    result
}

/// Refuses `action` for a container without a cgroup.
fn need_cgroup(st: &ContainerState, action: &'static str) -> Result<(), RuntimeError> {
    if st.cgroup.is_disabled() {
        return Err(RuntimeError::NoCgroup {
            id: st.id.clone(),
            action,
        });
    }
    Ok(())
}

/// Freeze a running container.
pub fn pause(root: &Path, id: &str) -> Result<(), RuntimeError> {
    let st = ContainerState::load(root, id)?;
    need_cgroup(&st, "pause")?;
    let status = st.status(root);
    if status != Status::Running {
        return Err(RuntimeError::BadStatus {
            id: id.into(),
            status: status.to_string(),
            action: "pause",
            wanted: "running",
        });
    }
    Ok(st.cgroup.freeze()?)
}

/// Thaw a paused container.
pub fn resume(root: &Path, id: &str) -> Result<(), RuntimeError> {
    let st = ContainerState::load(root, id)?;
    need_cgroup(&st, "resume")?;
    let status = st.status(root);
    if status != Status::Paused {
        return Err(RuntimeError::BadStatus {
            id: id.into(),
            status: status.to_string(),
            action: "resume",
            wanted: "paused",
        });
    }
    Ok(st.cgroup.thaw()?)
}

/// Change the resources of a container and remember them.
pub fn update(root: &Path, id: &str, resources: &LinuxResources) -> Result<(), RuntimeError> {
    let mut st = ContainerState::load(root, id)?;
    let status = st.status(root);
    if status == Status::Stopped {
        return Err(RuntimeError::BadStatus {
            id: id.into(),
            status: status.to_string(),
            action: "update",
            wanted: "running, created or paused",
        });
    }
    // Callers such as containerd pass the device rules on every update;
    // rewriting unchanged rules would briefly deny all devices on v1.
    let mut resources = resources.clone();
    let old_devices = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone());
    if resources.devices().is_some() && resources.devices() == &old_devices {
        resources.set_devices(None);
    }
    let resources = &resources;
    st.cgroup.update(resources)?;
    if let Some(linux) = st.config.linux_mut() {
        let merged = merge_resources(linux.resources().clone().unwrap_or_default(), resources);
        linux.set_resources(Some(merged));
    }
    st.save(root)
}

fn merge_resources(mut old: LinuxResources, new: &LinuxResources) -> LinuxResources {
    if new.memory().is_some() {
        old.set_memory(*new.memory());
    }
    if new.cpu().is_some() {
        old.set_cpu(new.cpu().clone());
    }
    if new.pids().is_some() {
        old.set_pids(*new.pids());
    }
    if new.block_io().is_some() {
        old.set_block_io(new.block_io().clone());
    }
    if new.hugepage_limits().is_some() {
        old.set_hugepage_limits(new.hugepage_limits().clone());
    }
    if new.unified().is_some() {
        old.set_unified(new.unified().clone());
    }
    if new.devices().is_some() {
        old.set_devices(new.devices().clone());
    }
    old
}

/// Pids of every process in the container.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, RuntimeError> {
    let st = ContainerState::load(root, id)?;
    processes(&st)
}

/// One `list` row.
#[derive(Debug, serde::Serialize)]
pub struct ListEntry {
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub annotations: std::collections::HashMap<String, String>,
    pub owner: String,
}

/// All containers under `root`.
pub fn list(root: &Path) -> Result<Vec<ListEntry>, RuntimeError> {
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        let Ok(st) = ContainerState::load(root, &id) else {
            continue;
        };
        let status = st.status(root);
        out.push(ListEntry {
            id: st.id.clone(),
            pid: if status == Status::Stopped { 0 } else { st.pid },
            status: status.to_string(),
            bundle: st.bundle.clone(),
            rootfs: st.rootfs.clone(),
            created: st.created.clone(),
            annotations: st.annotations(),
            owner: owner_name(st.owner),
        });
    }
    Ok(out)
}

fn owner_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

/// Stats of a container's cgroup in runc's `events --stats` shape.
pub fn stats(root: &Path, id: &str) -> Result<serde_json::Value, RuntimeError> {
    let st = ContainerState::load(root, id)?;
    let status = st.status(root);
    if status == Status::Stopped {
        return Err(RuntimeError::BadStatus {
            id: id.into(),
            status: status.to_string(),
            action: "events",
            wanted: "running",
        });
    }
    need_cgroup(&st, "events --stats")?;
    let stats = st.cgroup.stats()?;
    Ok(serde_json::json!({"type": "stats", "id": id, "data": stats}))
}
