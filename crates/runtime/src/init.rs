//! The container init: runs in the process `clone3`d by `create`, sets the
//! container up step by step, reports failures to the runtime as messages
//! naming the step, then waits on the exec fifo and executes the user
//! process.

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, PosixRlimit, Spec};
use rustix::fs::{Mode, OFlags};

use crate::channel::{Channel, FromInit, ToInit};
use crate::error::{Context, RuntimeError};
use crate::namespaces::{self, NsPlan};
use crate::{caps, console, hooks, rootfs, seccomp, util};

/// Everything the init needs, prepared by the runtime before cloning.
#[derive(Debug)]
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub rootfs: PathBuf,
    pub plan: &'a NsPlan,
    /// Init side of the sync channel.
    pub chan: Channel,
    /// O_PATH fd of the exec fifo.
    pub fifo: OwnedFd,
    /// Connected `--console-socket`, if any.
    pub console_socket: Option<OwnedFd>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// (name under /sys/fs/cgroup, host dir, is cgroup2).
    pub cgroup_views: Vec<(String, PathBuf, bool)>,
    /// The container's v1 `tasks` files, joined first thing.
    pub cgroup_tasks: barge_cgroups::TaskFiles,
    /// stdio pipes to install as fds 0-2 (foreground `run`).
    pub stdio: Option<[OwnedFd; 3]>,
    /// Sealed memfd of the exec trampoline.
    pub trampoline: Option<OwnedFd>,
}

/// Set once the runtime has been told we are ready: later failures can only
/// be reported on the container's stderr.
static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub type StepResult<T> = Result<T, (String, RuntimeError)>;

trait Step<T> {
    fn step(self, name: &str) -> StepResult<T>;
}

impl<T> Step<T> for Result<T, RuntimeError> {
    fn step(self, name: &str) -> StepResult<T> {
        self.map_err(|e| (name.to_string(), e))
    }
}

/// Run the init. Never returns: it either executes the container process or
/// exits after reporting the failure.
pub fn run(args: InitArgs<'_>) -> ! {
    let chan_fd = args.chan.as_fd().try_clone_to_owned().ok();
    match setup(args) {
        Ok(never) => match never {},
        Err((step, err)) => {
            let msg = FromInit::Failed {
                step: step.clone(),
                message: err.to_string(),
            };
            let sent = !READY.load(std::sync::atomic::Ordering::Relaxed)
                && chan_fd.is_some_and(|fd| Channel::from_fd(fd).send(&msg, &[]).is_ok());
            if !sent {
                // The runtime is gone (after `create` returned): stderr is the
                // container's, which is where the user looks.
                eprintln!("barge-runtime: container init: {step}: {err}");
            }
            let code = if err.to_string().contains("executable file not found")
                || err.to_string().contains("no such file or directory")
            {
                127
            } else if err.to_string().contains("permission denied") {
                126
            } else {
                1
            };
            barge_sys::exit_now(code)
        }
    }
}

fn expect(chan: &Channel, what: &str) -> StepResult<(ToInit, Vec<OwnedFd>)> {
    match chan.recv::<ToInit>().step(what)? {
        Some((ToInit::Abort, _)) | None => barge_sys::exit_now(1),
        Some(m) => Ok(m),
    }
}

fn setup(args: InitArgs<'_>) -> StepResult<Infallible> {
    let spec = args.spec;
    let plan = args.plan;
    let chan = &args.chan;
    let linux = spec.linux().as_ref();

    // Never let the container see our /proc/self/exe or memory.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    // Until `create` has recorded us, die with it (one-step mode: our parent
    // is the runtime); and, like runc's init, end on SIGTERM/SIGINT/SIGHUP
    // while waiting, which pid 1 of a namespace would otherwise ignore.
    let one_step = !plan.two_step();
    if one_step {
        // (If the runtime died before this, the wait for `Go` below sees the
        // channel close and we exit.)
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    }
    let _ = barge_sys::signal::exit_on(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
    // We are a fresh single-threaded fork: move ourselves into the v1
    // cgroups (cheaper than the runtime moving us).
    args.cgroup_tasks
        .join_self()
        .map_err(RuntimeError::from)
        .step("joining the cgroups")?;

    let (go, idmap_fds) = expect(chan, "waiting for the runtime")?;
    let idmap_dests: Vec<PathBuf> = match &go {
        ToInit::Go { idmap } => idmap.clone(),
        _ => Vec::new(),
    };

    if plan.two_step() {
        plan.join_all().step("joining namespaces")?;
        if plan.new_user {
            namespaces::unshare(libc::CLONE_NEWUSER as u64).step("creating the user namespace")?;
            chan.send(
                &FromInit::WriteMaps {
                    pid: rustix::process::getpid().as_raw_nonzero().get(),
                },
                &[],
            )
            .step("asking for id maps")?;
            expect(chan, "waiting for id maps")?;
        }
        namespaces::unshare(plan.new_flags & !(libc::CLONE_NEWUSER as u64))
            .step("creating namespaces")?;
        if plan.new_pid {
            // The new pid namespace applies to our children: the next
            // process is the container's pid 1.
            match barge_sys::fork()
                .map_err(|e| RuntimeError::io("fork", e))
                .step("forking the init")?
            {
                barge_sys::Fork::Parent(pid) => {
                    let _ = chan.send(
                        &FromInit::InitPid {
                            pid: pid.as_raw_nonzero().get(),
                        },
                        &[],
                    );
                    barge_sys::exit_now(0);
                }
                barge_sys::Fork::Child => {}
            }
        }
    } else {
        plan.join_all().step("joining namespaces")?;
    }
    if plan.has(LinuxNamespaceType::User) {
        // Become root of the user namespace (if 0 is mapped).
        let root_gid = rustix::process::Gid::ROOT;
        let root_uid = rustix::process::Uid::ROOT;
        let _ = rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid);
        let _ = rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid);
    }
    if plan.new_time {
        namespaces::unshare_time(linux.and_then(|l| l.time_offsets().as_ref()))
            .step("creating the time namespace")?;
    }
    let two_step = plan.two_step();
    let mut in_cgroups = two_step;
    if plan.new_cgroup {
        // The cgroup namespace's root is our cgroup at unshare time.
        if !in_cgroups {
            expect(chan, "waiting for cgroups")?;
            in_cgroups = true;
        }
        namespaces::unshare(libc::CLONE_NEWCGROUP as u64).step("creating the cgroup namespace")?;
    }

    if plan.has(LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            rustix::system::sethostname(h.as_bytes())
                .ctx(|| format!("sethostname({h})"))
                .step("setting the hostname")?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
            rustix::system::setdomainname(d.as_bytes())
                .ctx(|| format!("setdomainname({d})"))
                .step("setting the domainname")?;
        }
    }

    if !plan.has(LinuxNamespaceType::Mount) {
        return Err((
            "preparing the rootfs".into(),
            RuntimeError::Other("a mount namespace is required".into()),
        ));
    }
    // A new user namespace, or one the runtime already runs in (a
    // rootless engine's): no mknod, no host-root-only mounts.
    let in_user_ns = plan.has(LinuxNamespaceType::User) || crate::namespaces::in_user_namespace();
    rootfs::prepare_root(linux.and_then(|l| l.rootfs_propagation().as_deref()))
        .step("setting rootfs propagation")?;
    rootfs::bind_rootfs(&args.rootfs).step("binding the rootfs")?;
    let root_fd = rustix::fs::open(
        &args.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening rootfs {}", args.rootfs.display()))
    .step("opening the rootfs")?;
    let ctx = rootfs::MountContext {
        rootfs: &args.rootfs,
        root_fd,
        in_user_ns,
        new_cgroup_ns: plan.new_cgroup,
        cgroup_views: args.cgroup_views.clone(),
        idmapped: idmap_dests.into_iter().zip(idmap_fds).collect(),
    };
    let mounts = spec.mounts().clone().unwrap_or_default();
    for m in &mounts {
        rootfs::mount_one(&ctx, m).step(&format!("mounting {}", m.destination().display()))?;
    }
    let dev_bound = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && rootfs::parse_options(m.options().as_deref().unwrap_or(&[])).is_bind()
    });
    let dev_pts = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev/pts"));
    if !dev_bound {
        let devices = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
        rootfs::setup_dev(&ctx.root_fd, &devices, in_user_ns, dev_pts).step("creating devices")?;
    }

    let process = spec.process().as_ref().ok_or_else(|| {
        (
            "reading process".to_string(),
            RuntimeError::Other("process is missing".into()),
        )
    })?;
    let mut pty_slave = None;
    if process.terminal().unwrap_or(false) {
        let pty = console::open_pty(&args.rootfs).step("allocating a terminal")?;
        rootfs::bind_console(&ctx.root_fd, &args.rootfs, &pty.slave_name)
            .step("binding /dev/console")?;
        if let Some(size) = process.console_size() {
            console::set_size(pty.slave.as_fd(), size.height() as u16, size.width() as u16)
                .step("sizing the terminal")?;
        }
        match &args.console_socket {
            Some(sock) => console::send_master(sock.as_fd(), pty.master.as_fd())
                .step("sending the terminal")?,
            None => chan
                .send(&FromInit::ConsoleFd, &[pty.master.as_fd()])
                .step("sending the terminal")?,
        }
        drop(pty.master);
        pty_slave = Some(pty.slave);
    }
    drop(args.console_socket);

    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("writing oomScoreAdj {adj} (a negative value needs CAP_SYS_RESOURCE)"))
            .step("setting oom_score_adj")?;
    }

    if !in_cgroups {
        expect(chan, "waiting for cgroups")?;
    }
    let hooks = spec.hooks().as_ref();
    let has_runtime_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if has_runtime_hooks {
        chan.send(&FromInit::RunHooks, &[])
            .step("asking for createRuntime hooks")?;
        expect(chan, "waiting for createRuntime hooks")?;
    }
    let my_pid = rustix::process::getpid().as_raw_nonzero().get();
    let hook_state = |status: &str| {
        serde_json::json!({
            "ociVersion": barge_oci::OCI_VERSION, "id": args.id, "status": status, "pid": my_pid,
            "bundle": args.bundle, "annotations": spec.annotations().clone().unwrap_or_default(),
        })
    };
    if let Some(h) = hooks {
        hooks::run_all(
            "createContainer",
            h.create_container().as_ref(),
            &hook_state("created"),
        )
        .step("running createContainer hooks")?;
    }

    // Like runc, a missing working directory is created (as root, 0755).
    if process.cwd() != Path::new("/") {
        let _ = rootfs::ensure_target(&ctx.root_fd, process.cwd(), false);
    }
    rootfs::switch_root(&args.rootfs, args.no_pivot).step("switching to the rootfs")?;
    drop(ctx);

    for (key, value) in linux.and_then(|l| l.sysctl().clone()).unwrap_or_default() {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, &value)
            .ctx(|| format!("writing {value:?} to {path}"))
            .step("setting sysctls")?;
    }
    if let Some(l) = linux {
        rootfs::readonly_paths(l.readonly_paths().as_deref().unwrap_or(&[]))
            .step("making paths read-only")?;
        rootfs::mask_paths(l.masked_paths().as_deref().unwrap_or(&[])).step("masking paths")?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(oci_spec::runtime::Root::readonly)
        .unwrap_or(false)
    {
        rootfs::readonly_root().step("making the rootfs read-only")?;
    }

    for rl in process.rlimits().iter().flatten() {
        set_rlimit(rl).step("setting rlimits")?;
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        let persona = match p.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0,
        };
        barge_sys::personality(persona)
            .map_err(|e| RuntimeError::io("personality", e))
            .step("setting the personality")?;
    }
    if !args.no_new_keyring {
        // A fresh session keyring so containers do not share the host's.
        let _ = barge_sys::process::join_session_keyring(&format!("_ses.{}", args.id));
    }

    let nnp = process.no_new_privileges().unwrap_or(false);
    let seccomp_cfg = linux.and_then(|l| l.seccomp().as_ref());
    let has_listener = seccomp_cfg.is_some_and(|s| s.listener_path().is_some());
    let mut seccomp_loaded = false;
    if let Some(sc) = seccomp_cfg {
        if !nnp || has_listener {
            load_seccomp(chan, sc, has_listener).step("loading seccomp")?;
            seccomp_loaded = true;
        }
    }

    let Prepared { exe, argv, env } = become_process(process)?;

    if let Some(slave) = &pty_slave {
        console::become_session_leader(slave).step("setting the controlling terminal")?;
    }
    drop(pty_slave);
    if let Some(p) = &args.stdio {
        crate::exec::dup_stdio(p).step("installing stdio")?;
    }
    barge_sys::close_range_cloexec(3 + args.preserve_fds)
        .map_err(|e| RuntimeError::io("close_range", e))
        .step("closing inherited fds")?;

    if one_step {
        // The runtime exits normally once it has our report.
        let _ = rustix::process::set_parent_process_death_signal(None);
    }
    chan.send(&FromInit::Ready, &[]).step("reporting ready")?;
    READY.store(true, std::sync::atomic::Ordering::Relaxed);

    // Wait for `start`: opening the fifo for writing blocks until a reader
    // comes.
    let fifo_path = format!("/proc/self/fd/{}", args.fifo.as_raw_fd());
    let fifo = loop {
        match rustix::fs::open(&fifo_path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()) {
            Err(rustix::io::Errno::INTR) => {}
            other => break other,
        }
    }
    .ctx(|| "opening the exec fifo".to_string())
    .step("waiting for start")?;
    rustix::io::write(&fifo, b"0")
        .ctx(|| "writing the exec fifo".to_string())
        .step("waiting for start")?;
    // `fifo` stays open (close-on-exec): `start` sees EOF once we have
    // executed the container process, and only then runs poststart hooks.
    drop(args.fifo);
    drop(args.chan);

    if let Some(h) = hooks {
        hooks::run_all_via(
            "startContainer",
            h.start_container().as_ref(),
            &hook_state("created"),
            args.trampoline.as_ref(),
        )
        .step("running startContainer hooks")?;
    }
    if let Some(sc) = seccomp_cfg {
        if !seccomp_loaded {
            seccomp::load(sc)
                .map_err(RuntimeError::from)
                .step("loading seccomp")?;
        }
    }
    barge_sys::signal::reset_dispositions();
    let _ = barge_sys::signal::set_mask(&barge_sys::signal::SigSet::empty());

    let err = crate::selfclone::exec_guarded(args.trampoline.as_ref(), &exe, &argv, &env);
    drop(fifo);
    Err(("starting the container process".to_string(), err))
}

fn load_seccomp(
    chan: &Channel,
    sc: &oci_spec::runtime::LinuxSeccomp,
    has_listener: bool,
) -> Result<(), RuntimeError> {
    let fd = seccomp::load(sc)?;
    if let Some(fd) = fd {
        if has_listener {
            chan.send(&FromInit::SeccompFd, &[fd.as_fd()])?;
            match chan.recv::<ToInit>()? {
                Some((ToInit::SeccompDone, _)) => {}
                _ => barge_sys::exit_now(1),
            }
        }
    }
    Ok(())
}

/// The final identity and command of a container process.
#[derive(Debug)]
pub struct Prepared {
    pub exe: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<String>,
}

/// Become the spec's process (shared by the init and `exec`): user, groups
/// and capabilities, umask, working directory (in-root), no_new_privs, HOME,
/// and the executable looked up in the process's PATH. Errors name the step.
pub fn become_process(process: &oci_spec::runtime::Process) -> StepResult<Prepared> {
    let setgroups_denied =
        std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    caps::apply_user_and_caps(
        process.user(),
        process.capabilities().as_ref(),
        setgroups_denied,
    )
    .step("setting user and capabilities")?;
    if let Some(mask) = process.user().umask() {
        rustix::process::umask(Mode::from_raw_mode(mask));
    }
    let cwd = process.cwd();
    rootfs::chdir_in_root(cwd).step("changing to the working directory")?;
    if process.no_new_privileges().unwrap_or(false) {
        rustix::thread::set_no_new_privs(true)
            .ctx(|| "setting no_new_privs".into())
            .step("setting no_new_privileges")?;
    }
    let mut env = process.env().clone().unwrap_or_default();
    if util::env_get(&env, "HOME").is_none() {
        env.push(format!("HOME={}", home_of(process.user().uid())));
    }
    let argv = process.args().clone().unwrap_or_default();
    let arg0 = argv.first().cloned().unwrap_or_default();
    let exe = util::lookup_executable(&arg0, &env, cwd)
        .map_err(RuntimeError::Other)
        .step("finding the executable")?;
    Ok(Prepared { exe, argv, env })
}

fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
            })
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

fn rlimit_resource(typ: oci_spec::runtime::PosixRlimitType) -> Option<rustix::process::Resource> {
    use oci_spec::runtime::PosixRlimitType as T;
    use rustix::process::Resource as R;
    Some(match typ {
        T::RlimitCpu => R::Cpu,
        T::RlimitFsize => R::Fsize,
        T::RlimitData => R::Data,
        T::RlimitStack => R::Stack,
        T::RlimitCore => R::Core,
        T::RlimitRss => R::Rss,
        T::RlimitNproc => R::Nproc,
        T::RlimitNofile => R::Nofile,
        T::RlimitMemlock => R::Memlock,
        T::RlimitAs => R::As,
        T::RlimitLocks => R::Locks,
        T::RlimitSigpending => R::Sigpending,
        T::RlimitMsgqueue => R::Msgqueue,
        T::RlimitNice => R::Nice,
        T::RlimitRtprio => R::Rtprio,
        T::RlimitRttime => R::Rttime,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Set one rlimit; raising a hard limit above the current one needs
/// CAP_SYS_RESOURCE, which gets a message naming the limit.
pub fn set_rlimit(rl: &PosixRlimit) -> Result<(), RuntimeError> {
    let name = serde_json::to_value(rl.typ())
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let res = rlimit_resource(rl.typ())
        .ok_or_else(|| RuntimeError::Other(format!("unsupported rlimit {name}")))?;
    let lim = |v: u64| if v == u64::MAX { None } else { Some(v) };
    let new = rustix::process::Rlimit {
        current: lim(rl.soft()),
        maximum: lim(rl.hard()),
    };
    match rustix::process::setrlimit(res, new) {
        Ok(()) => Ok(()),
        Err(e) => {
            let cur = rustix::process::getrlimit(res);
            let cur_hard = cur
                .maximum
                .map_or("unlimited".to_string(), |v| v.to_string());
            if e == rustix::io::Errno::PERM {
                Err(RuntimeError::Other(format!(
                    "{name}: hard limit {} exceeds the current hard limit {cur_hard}; raising it needs CAP_SYS_RESOURCE",
                    rl.hard()
                )))
            } else {
                Err(RuntimeError::Other(format!(
                    "{name}: setting soft {} hard {}: {}",
                    rl.soft(),
                    rl.hard(),
                    std::io::Error::from(e)
                )))
            }
        }
    }
}
