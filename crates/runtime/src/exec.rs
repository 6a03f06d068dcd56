//! `exec`: run another process in a running container, and the attached
//! wait loop shared with `run` (signal forwarding, terminal proxy).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;
use rustix::fs::OFlags;
use rustix::thread::LinkNameSpaceType;

use crate::error::{Context, RuntimeError};
use crate::state::{ContainerState, Status};
use crate::{console, init, seccomp, util};

/// Options of `exec`.
#[derive(Debug)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
}

const NS_FILES: [(&str, u32); 7] = [
    ("user", libc::CLONE_NEWUSER as u32),
    ("mnt", libc::CLONE_NEWNS as u32),
    ("net", libc::CLONE_NEWNET as u32),
    ("ipc", libc::CLONE_NEWIPC as u32),
    ("uts", libc::CLONE_NEWUTS as u32),
    ("cgroup", libc::CLONE_NEWCGROUP as u32),
    ("time", 0x80),
];

fn ns_differs(pid: i32, name: &str) -> bool {
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
    match (theirs, ours) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.ino() != b.ino() || a.dev() != b.dev()
        }
        _ => false,
    }
}

/// Run a process in the container. Returns its exit code when attached,
/// 0 when detached.
pub fn exec(opts: &ExecOptions) -> Result<i32, RuntimeError> {
    let st = ContainerState::load(&opts.root, &opts.id)?;
    let status = st.status(&opts.root);
    if status != Status::Running {
        return Err(RuntimeError::BadStatus {
            id: opts.id.clone(),
            status: status.to_string(),
            action: "exec",
            wanted: "running",
        });
    }
    let process = &opts.process;
    if process.args().as_ref().is_none_or(Vec::is_empty) {
        return Err(RuntimeError::Other(
            "exec: process args must not be empty".into(),
        ));
    }
    let terminal = process.terminal().unwrap_or(false);
    if terminal && opts.detach && opts.console_socket.is_none() {
        return Err(RuntimeError::Other(
            "cannot allocate a tty when detaching without --console-socket".into(),
        ));
    }
    let console_socket = opts
        .console_socket
        .as_deref()
        .map(console::connect_socket)
        .transpose()?;
    let pid = rustix::process::Pid::from_raw(st.pid)
        .ok_or_else(|| RuntimeError::Other("bad pid".into()))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .ctx(|| format!("pidfd_open({})", st.pid))?;
    let mut flags = 0u32;
    for (name, flag) in NS_FILES {
        if ns_differs(st.pid, name) {
            flags |= flag;
        }
    }
    let pid_ns_differs = ns_differs(st.pid, "pid");
    // Signals for the process are blocked from before it exists until
    // `wait_attached` forwards them (the child unblocks them before exec).
    let sigfd = if opts.detach {
        None
    } else {
        Some(forwarding_signals()?)
    };
    let clone_fd = st.cgroup.clone_into_fd();
    let cgroup_tasks = st.cgroup.v1_task_files()?;
    let (parent_chan, child_chan) = crate::channel::pair()?;
    let trampoline = crate::selfclone::trampoline()?;
    let (our_pipes, child_pipes) = if !opts.detach && !terminal {
        let linux = st.config.linux().as_ref();
        let owner = crate::namespaces::host_ids(linux, process.user().uid(), process.user().gid());
        let (a, b) = stdio_pipes(Some(owner))?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    if pid_ns_differs {
        rustix::thread::move_into_link_name_space(
            std::fs::File::open(format!("/proc/{}/ns/pid", st.pid))
                .ctx(|| "opening the pid namespace".to_string())?
                .as_fd(),
            Some(LinkNameSpaceType::ProcessID),
        )
        .ctx(|| format!("joining the pid namespace of {}", st.pid))?;
    }
    let (fork, cloned_into) = crate::container::clone_into_cgroup(0, clone_fd.as_ref())
        .map_err(|e| RuntimeError::io("clone3 of the exec process", e))?;
    let child = match fork {
        barge_sys::Fork::Child => {
            // No host directory fd may survive into the container.
            drop(clone_fd);
            drop(parent_chan);
            drop(our_pipes);
            let res = exec_child(
                cgroup_tasks,
                &st,
                process,
                &pidfd,
                flags,
                &child_chan,
                console_socket,
                child_pipes,
                opts.preserve_fds,
                trampoline.as_ref(),
            );
            let msg = match res {
                Ok(never) => match never {},
                Err(e) => e.to_string(),
            };
            let _ = child_chan.send(
                &crate::channel::FromInit::Failed {
                    step: "exec".into(),
                    message: msg.clone(),
                },
                &[],
            );
            let code = if msg.contains("executable file not found") || msg.contains("no such file")
            {
                127
            } else if msg.contains("permission denied") {
                126
            } else {
                1
            };
            barge_sys::exit_now(code);
        }
        barge_sys::Fork::Parent(p) => p.as_raw_nonzero().get(),
    };
    drop(child_chan);
    drop(console_socket);
    drop(child_pipes);
    drop(cgroup_tasks);
    // The child joins the v1 cgroups itself (see `Cgroup::v1_task_files`).
    if let Err(e) = st.cgroup.add_task_unified(child, cloned_into) {
        let _ = parent_chan.send(&crate::channel::ToInit::Abort, &[]);
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(child),
            rustix::process::WaitOptions::empty(),
        );
        return Err(e.into());
    }
    parent_chan.send(&crate::channel::ToInit::Go { idmap: Vec::new() }, &[])?;
    let mut console = None;
    loop {
        match parent_chan.recv::<crate::channel::FromInit>()? {
            None => break, // exec'd (the channel is close-on-exec)
            Some((crate::channel::FromInit::ConsoleFd, mut fds)) => console = fds.pop(),
            Some((crate::channel::FromInit::SeccompFd, mut fds)) => {
                let sent = forward_seccomp_fd(&st, child, fds.pop());
                let reply = if sent.is_ok() {
                    crate::channel::ToInit::SeccompDone
                } else {
                    crate::channel::ToInit::Abort
                };
                let _ = parent_chan.send(&reply, &[]);
                if let Err(e) = sent {
                    let _ = rustix::process::waitpid(
                        rustix::process::Pid::from_raw(child),
                        rustix::process::WaitOptions::empty(),
                    );
                    return Err(e);
                }
            }
            Some((crate::channel::FromInit::Failed { message, .. }, _)) => {
                let _ = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(child),
                    rustix::process::WaitOptions::empty(),
                );
                return Err(RuntimeError::Other(message));
            }
            Some(_) => {}
        }
    }
    if let Some(path) = &opts.pid_file {
        util::write_atomic(path, child.to_string().as_bytes())?;
    }
    if opts.detach {
        return Ok(0);
    }
    wait_attached(
        child,
        Attach {
            console,
            pipes: our_pipes,
        },
        sigfd,
    )
}

/// Send an exec'd process's notify fd to the container's `listenerPath`
/// with the container state (status `running`, `pid` = the new process).
fn forward_seccomp_fd(
    st: &ContainerState,
    pid: i32,
    fd: Option<OwnedFd>,
) -> Result<(), RuntimeError> {
    let fd = fd.ok_or_else(|| RuntimeError::Other("exec: seccomp fd missing".into()))?;
    seccomp::forward_to_listener(
        st.config
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref()),
        || st.oci_state(Status::Running),
        pid,
        fd.as_fd(),
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn exec_child(
    cgroup_tasks: barge_cgroups::TaskFiles,
    st: &ContainerState,
    process: &Process,
    pidfd: &OwnedFd,
    flags: u32,
    chan: &crate::channel::Channel,
    console_socket: Option<OwnedFd>,
    pipes: Option<[OwnedFd; 3]>,
    preserve_fds: u32,
    trampoline: Option<&OwnedFd>,
) -> Result<std::convert::Infallible, RuntimeError> {
    // A fresh single-threaded fork: join the v1 cgroups ourselves.
    cgroup_tasks.join_self()?;
    match chan.recv::<crate::channel::ToInit>()? {
        Some((crate::channel::ToInit::Go { .. }, _)) => {}
        _ => barge_sys::exit_now(1),
    }
    if flags != 0 {
        rustix::thread::move_into_thread_name_spaces(
            pidfd.as_fd(),
            rustix::thread::ThreadNameSpaceType::from_bits_retain(flags),
        )
        .ctx(|| format!("joining the namespaces of pid {}", st.pid))?;
    }
    if flags & libc::CLONE_NEWUSER as u32 != 0 {
        let g = rustix::process::Gid::ROOT;
        let u = rustix::process::Uid::ROOT;
        let _ = rustix::thread::set_thread_res_gid(g, g, g);
        let _ = rustix::thread::set_thread_res_uid(u, u, u);
    }
    let mut slave = None;
    if process.terminal().unwrap_or(false) {
        let pty = console::open_pty(Path::new("/"))?;
        if let Some(size) = process.console_size() {
            console::set_size(pty.slave.as_fd(), size.height() as u16, size.width() as u16)?;
        }
        match &console_socket {
            Some(sock) => console::send_master(sock.as_fd(), pty.master.as_fd())?,
            None => chan.send(&crate::channel::FromInit::ConsoleFd, &[pty.master.as_fd()])?,
        }
        slave = Some(pty.slave);
    }
    drop(console_socket);
    for rl in process.rlimits().iter().flatten() {
        init::set_rlimit(rl)?;
    }
    let linux = st.config.linux().as_ref();
    let nnp = process.no_new_privileges().unwrap_or(false);
    let sc = linux.and_then(|l| l.seccomp().as_ref());
    let mut loaded = false;
    if let Some(sc) = sc {
        if !nnp {
            load_seccomp(chan, sc)?;
            loaded = true;
        }
    }
    let init::Prepared { exe, argv, env } = init::become_process(process)
        .map_err(|(step, e)| RuntimeError::Other(format!("{step}: {e}")))?;
    if let Some(s) = &slave {
        console::become_session_leader(s)?;
    }
    drop(slave);
    if let Some(p) = &pipes {
        dup_stdio(p)?;
    }
    drop(pipes);
    if let Some(sc) = sc {
        if !loaded {
            load_seccomp(chan, sc)?;
        }
    }
    barge_sys::close_range_cloexec(3 + preserve_fds)
        .map_err(|e| RuntimeError::io("close_range", e))?;
    barge_sys::signal::reset_dispositions();
    let _ = barge_sys::signal::set_mask(&barge_sys::signal::SigSet::empty());
    Err(crate::selfclone::exec_guarded(
        trampoline, &exe, &argv, &env,
    ))
}

/// Load the process's seccomp filter; a notify fd goes to the runtime
/// (which forwards it to `listenerPath`, as for the init) before the
/// process goes on, so that its intercepted calls find a listener.
fn load_seccomp(
    chan: &crate::channel::Channel,
    sc: &oci_spec::runtime::LinuxSeccomp,
) -> Result<(), RuntimeError> {
    if let Some(fd) = seccomp::load(sc)? {
        if sc.listener_path().is_some() {
            chan.send(&crate::channel::FromInit::SeccompFd, &[fd.as_fd()])?;
            match chan.recv::<crate::channel::ToInit>()? {
                Some((crate::channel::ToInit::SeccompDone, _)) => {}
                _ => {
                    return Err(RuntimeError::Other(
                        "the listener did not get the seccomp fd".into(),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Block the signals we forward (call before creating the child so none is
/// lost); returns the signalfd.
pub fn forwarding_signals() -> Result<OwnedFd, RuntimeError> {
    let set = barge_sys::signal::SigSet::all();
    barge_sys::signal::block(&set).map_err(|e| RuntimeError::io("blocking signals", e))?;
    barge_sys::signal::signalfd(&set).map_err(|e| RuntimeError::io("signalfd", e))
}

/// How the caller is attached to the container process.
#[derive(Debug, Default)]
pub struct Attach {
    /// Terminal master (proxied to our stdin/stdout).
    pub console: Option<OwnedFd>,
    /// Our ends of the stdio pipes: (stdin writer, stdout reader, stderr reader).
    pub pipes: Option<[OwnedFd; 3]>,
}

/// Create stdio pipes for a foreground process, so that the container gets
/// pipes rather than the caller's own files (runc does the same). Returns
/// (our ends, the container's ends); the container's ends are chowned to
/// `owner` so a non-root container user can reopen them.
pub fn stdio_pipes(
    owner: Option<(u32, u32)>,
) -> Result<([OwnedFd; 3], [OwnedFd; 3]), RuntimeError> {
    let mk = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .ctx(|| "creating stdio pipes".to_string())
    };
    let (in_r, in_w) = mk()?;
    let (out_r, out_w) = mk()?;
    let (err_r, err_w) = mk()?;
    if let Some((uid, gid)) = owner {
        for fd in [&in_r, &out_w, &err_w] {
            let _ = rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            );
        }
    }
    Ok(([in_w, out_r, err_r], [in_r, out_w, err_w]))
}

/// Make the given fds the calling process's stdin, stdout and stderr.
pub fn dup_stdio(fds: &[OwnedFd; 3]) -> Result<(), RuntimeError> {
    rustix::stdio::dup2_stdin(fds[0].as_fd()).ctx(|| "dup2 stdin".to_string())?;
    rustix::stdio::dup2_stdout(fds[1].as_fd()).ctx(|| "dup2 stdout".to_string())?;
    rustix::stdio::dup2_stderr(fds[2].as_fd()).ctx(|| "dup2 stderr".to_string())?;
    Ok(())
}

/// Wait for `pid` (our child or, as subreaper, our descendant), forwarding
/// signals and proxying the terminal or stdio pipes. Returns the exit code
/// (128+signal for a signal death). `sigfd` is the signalfd from
/// [`forwarding_signals`] if the caller blocked signals before creating the
/// process (so none is lost); otherwise one is made here.
pub fn wait_attached(
    pid: i32,
    attach: Attach,
    sigfd: Option<OwnedFd>,
) -> Result<i32, RuntimeError> {
    let sigfd = match sigfd {
        Some(fd) => fd,
        None => forwarding_signals()?,
    };
    let Attach { console, pipes } = attach;
    let _raw = console.as_ref().and_then(|_| RawMode::enter());
    if let Some(c) = &console {
        if let Ok(ws) = rustix::termios::tcgetwinsize(rustix::stdio::stdin()) {
            let _ = rustix::termios::tcsetwinsize(c, ws);
        }
    }
    let pipe_mode = console.is_none();
    let (mut to_child, mut outs): (Option<OwnedFd>, Vec<(OwnedFd, i32)>) = match (console, pipes) {
        (Some(c), _) => {
            let dup =
                rustix::io::fcntl_dupfd_cloexec(&c, 3).ctx(|| "dup of the console".to_string())?;
            (Some(dup), vec![(c, 1)])
        }
        (None, Some([i, o, e])) => (Some(i), vec![(o, 1), (e, 2)]),
        (None, None) => (None, Vec::new()),
    };
    // Writes to the container never block: input waits in `pending` until
    // the container reads, and we stop reading our stdin meanwhile, so a
    // container that is itself blocked writing its output cannot deadlock
    // with us.
    if let Some(fd) = &to_child {
        let _ = rustix::fs::fcntl_setfl(fd, OFlags::NONBLOCK);
    }
    let mut stdin_open = to_child.is_some();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if let Some(code) = try_reap(pid)? {
            for (fd, dst) in &outs {
                drain(fd, *dst, &mut buf);
            }
            return Ok(code);
        }
        let want_in = stdin_open && pending.is_empty();
        let want_out = !pending.is_empty() && to_child.is_some();
        let mut fds = vec![rustix::event::PollFd::new(
            &sigfd,
            rustix::event::PollFlags::IN,
        )];
        for (fd, _) in &outs {
            fds.push(rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN));
        }
        let in_idx = fds.len();
        if want_in {
            fds.push(rustix::event::PollFd::from_borrowed_fd(
                rustix::stdio::stdin(),
                rustix::event::PollFlags::IN,
            ));
        }
        let out_idx = fds.len();
        if let (true, Some(c)) = (want_out, &to_child) {
            fds.push(rustix::event::PollFd::new(c, rustix::event::PollFlags::OUT));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(RuntimeError::io("poll", e.into())),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if ready[0] {
            let sig = barge_sys::signal::read_signal(&sigfd)
                .map_err(|e| RuntimeError::io("reading signals", e))?;
            if sig == libc::SIGWINCH {
                if let (false, Some(c)) = (pipe_mode, &to_child) {
                    if let Ok(ws) = rustix::termios::tcgetwinsize(rustix::stdio::stdin()) {
                        let _ = rustix::termios::tcsetwinsize(c, ws);
                    }
                }
            } else if sig != libc::SIGCHLD {
                if let (Some(p), Some(s)) = (
                    rustix::process::Pid::from_raw(pid),
                    rustix::process::Signal::from_named_raw(sig),
                ) {
                    let _ = rustix::process::kill_process(p, s);
                }
            }
        }
        let mut closed = Vec::new();
        for (i, (fd, dst)) in outs.iter().enumerate() {
            if ready[1 + i] {
                match rustix::io::read(fd, &mut buf) {
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    Ok(0) | Err(_) => closed.push(i),
                    Ok(n) => {
                        // Our reader went away: close our end so the
                        // container gets EPIPE too instead of us spinning.
                        if !write_all(std_fd(*dst), &buf[..n]) {
                            closed.push(i);
                        }
                    }
                }
            }
        }
        for i in closed.into_iter().rev() {
            outs.remove(i);
        }
        if want_in && ready.get(in_idx).copied().unwrap_or(false) {
            match rustix::io::read(rustix::stdio::stdin(), &mut buf) {
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        if let Some(c) = &to_child {
            if !pending.is_empty()
                && (!want_out || ready.get(out_idx).copied().unwrap_or(false) || want_in)
            {
                match rustix::io::write(c, &pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    Err(_) => {
                        // The container closed its stdin: drop the input.
                        pending.clear();
                        stdin_open = false;
                        if pipe_mode {
                            to_child = None;
                        }
                    }
                }
            }
        }
        // In pipe mode our stdin's end closes the container's stdin, once
        // everything read has been delivered.
        if pipe_mode && !stdin_open && pending.is_empty() {
            to_child = None;
        }
    }
}

fn std_fd(n: i32) -> std::os::fd::BorrowedFd<'static> {
    if n == 2 {
        rustix::stdio::stderr()
    } else {
        rustix::stdio::stdout()
    }
}

fn drain(c: &OwnedFd, dst: i32, buf: &mut [u8]) {
    let _ = rustix::fs::fcntl_setfl(c, OFlags::NONBLOCK);
    while let Ok(n) = rustix::io::read(c, &mut *buf) {
        if n == 0 {
            break;
        }
        if !write_all(std_fd(dst), &buf[..n]) {
            break;
        }
    }
}

/// Write everything; false if the reader is gone (or another error).
fn write_all(fd: std::os::fd::BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                let mut pfd = [rustix::event::PollFd::from_borrowed_fd(
                    fd,
                    rustix::event::PollFlags::OUT,
                )];
                let _ = rustix::event::poll(&mut pfd, None);
            }
            Err(_) => return false,
        }
    }
    true
}

/// Reap any children; return the exit code if `pid` is done.
fn try_reap(pid: i32) -> Result<Option<i32>, RuntimeError> {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
            Ok(Some((p, st))) => {
                if p.as_raw_nonzero().get() == pid {
                    let code = st
                        .exit_status()
                        .unwrap_or_else(|| 128 + st.terminating_signal().unwrap_or(0));
                    return Ok(Some(code));
                }
            }
            Ok(None) => return Ok(None),
            Err(rustix::io::Errno::CHILD) => {
                return Err(RuntimeError::Other(format!(
                    "process {pid} is not our child"
                )));
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(RuntimeError::io("waitpid", e.into())),
        }
    }
}

/// Puts the host terminal in raw mode while attached; restores it on drop.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<Self> {
        let stdin = rustix::stdio::stdin();
        if !rustix::termios::isatty(stdin) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
