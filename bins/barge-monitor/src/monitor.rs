//! The monitor proper: daemonize, run `RUNTIME create`, then hold the
//! container's stdio in a single-threaded poll loop until its init exits.
//! The contract is documented in docs/monitor.md.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use barge_sys::process::{exit_now, fork, Fork};
use barge_sys::signal::{self, SigSet};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use rustix::process::{Pid, WaitOptions, WaitStatus};

use crate::args::Options;
use crate::log::{Log, Stream};
use crate::text;

/// Attach frame types, monitor → client.
const FRAME_STDOUT: u8 = 1;
const FRAME_STDERR: u8 = 2;
const FRAME_EXIT: u8 = 3;
/// Attach frame types, client → monitor.
const FRAME_STDIN: u8 = 0;
const FRAME_RESIZE: u8 = 1;
const FRAME_CLOSE_STDIN: u8 = 2;
/// Client → monitor: "I clean up after the exit" (a foreground `barge
/// run`): if that client is still connected when the container exits and
/// receives the exit frame, the exit command is not run.
const FRAME_CLEANUP: u8 = 3;

/// One read from the container (and the largest client frame accepted).
const CHUNK: usize = 16 * 1024;
/// How much of the runtime's stderr is kept for the error report.
const RUNTIME_MSG_MAX: usize = 8 * 1024;
/// Attach clients at once.
const MAX_CLIENTS: usize = 64;
/// After the container's exit, at most this many 50 ms waits for pty output.
const PTY_DRAIN_ROUNDS: u32 = 40;
/// How long the exit frame may wait for a full client socket, in total.
const EXIT_FRAME_WAIT_MS: i64 = 2000;

/// Why the monitor failed before the container was created.
pub enum Fail {
    /// A system call failed: what we were doing and the errno.
    Sys(&'static str, i32),
    /// `RUNTIME create` failed: its stderr and exit code.
    Runtime(Vec<u8>, i32),
}

type Res<T> = Result<T, Fail>;

trait Ctx<T> {
    fn ctx(self, what: &'static str) -> Res<T>;
}

impl<T> Ctx<T> for Result<T, Errno> {
    fn ctx(self, what: &'static str) -> Res<T> {
        self.map_err(|e| Fail::Sys(what, e.raw_os_error()))
    }
}

impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx(self, what: &'static str) -> Res<T> {
        self.map_err(|e| Fail::Sys(what, e.raw_os_error().unwrap_or(0)))
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return,
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// `barge-monitor: MSG[: errno N]` on stderr.
pub fn stderr_line(msg: &[u8], errno: i32) {
    let mut v = b"barge-monitor: ".to_vec();
    v.extend_from_slice(msg);
    if errno != 0 {
        v.extend_from_slice(b": errno ");
        text::push_i64(&mut v, i64::from(errno));
    }
    v.push(b'\n');
    write_all(rustix::stdio::stderr(), &v);
}

/// Write `{"error":"MSG","exit_code":N}` to the sync fd.
pub fn report_error(sync: Option<&OwnedFd>, msg: &[u8], code: i32) {
    let Some(sync) = sync else { return };
    let mut v = b"{\"error\":\"".to_vec();
    text::push_json_escaped(&mut v, msg.trim_ascii());
    v.extend_from_slice(b"\",\"exit_code\":");
    text::push_i64(&mut v, i64::from(code));
    v.extend_from_slice(b"}\n");
    write_all(sync.as_fd(), &v);
}

/// Report `f` on the sync fd (and stderr, which is /dev/null once we are a
/// daemon).
pub fn report_fail(sync: Option<&OwnedFd>, f: &Fail) {
    match f {
        Fail::Sys(what, errno) => {
            let mut msg = b"barge-monitor: ".to_vec();
            msg.extend_from_slice(what.as_bytes());
            if *errno != 0 {
                msg.extend_from_slice(b": errno ");
                text::push_i64(&mut msg, i64::from(*errno));
            }
            stderr_line(what.as_bytes(), *errno);
            report_error(sync, &msg, -1);
        }
        Fail::Runtime(msg, code) => {
            let msg: &[u8] = if msg.trim_ascii().is_empty() {
                b"runtime create failed without a message"
            } else {
                msg
            };
            report_error(sync, msg, *code);
        }
    }
}

/// Detach from the caller: fork (the caller's child exits at once), setsid,
/// fork again, chdir /, stdio to /dev/null. Every fd but `keep` is closed
/// first.
pub fn daemonize(keep: Option<RawFd>) -> Res<()> {
    barge_sys::daemon::close_fds_except(keep).ctx("close inherited fds")?;
    if let Fork::Parent(_) = fork().ctx("fork")? {
        exit_now(0);
    }
    rustix::process::setsid().ctx("setsid")?;
    if let Fork::Parent(_) = fork().ctx("fork")? {
        exit_now(0);
    }
    rustix::process::chdir("/").ctx("chdir /")?;
    let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .ctx("open /dev/null")?;
    rustix::stdio::dup2_stdin(&null).ctx("dup2")?;
    rustix::stdio::dup2_stdout(&null).ctx("dup2")?;
    rustix::stdio::dup2_stderr(&null).ctx("dup2")?;
    Ok(())
}

fn cstring(s: &OsStr) -> Res<CString> {
    CString::new(s.as_bytes()).map_err(|_| Fail::Sys("argument contains a NUL byte", 0))
}

fn exit_code(st: WaitStatus) -> i32 {
    match (st.exit_status(), st.terminating_signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    }
}

/// Fork and exec `argv` with the given stdio (None: keep ours, which is
/// /dev/null), signal mask cleared, optionally in a new session.
fn spawn(argv: &[CString], stdio: Option<[BorrowedFd<'_>; 3]>, new_session: bool) -> Res<Pid> {
    match fork().ctx("fork")? {
        Fork::Parent(pid) => Ok(pid),
        Fork::Child => {
            if new_session {
                let _ = rustix::process::setsid();
            }
            if let Some([i, o, e]) = stdio {
                if rustix::stdio::dup2_stdin(i).is_err()
                    || rustix::stdio::dup2_stdout(o).is_err()
                    || rustix::stdio::dup2_stderr(e).is_err()
                {
                    exit_now(127);
                }
            }
            barge_sys::daemon::reset_all_signal_dispositions();
            let _ = signal::set_mask(&SigSet::empty());
            let err = barge_sys::daemon::execv(&argv[0], argv);
            let mut msg = b"cannot execute ".to_vec();
            msg.extend_from_slice(argv[0].as_bytes());
            stderr_line(&msg, err.raw_os_error().unwrap_or(0));
            exit_now(127);
        }
    }
}

/// A path usable in `sockaddr_un` for DIR/NAME: the path itself when short
/// enough, else `/proc/PID/fd/N/NAME` through an `O_PATH` fd on DIR (which
/// the caller keeps open while the path is in use).
fn socket_path(dir: &Path, name: &str, dir_fd: &mut Option<OwnedFd>) -> Res<PathBuf> {
    let full = dir.join(name);
    if full.as_os_str().len() < 100 {
        return Ok(full);
    }
    if dir_fd.is_none() {
        *dir_fd = Some(
            rustix::fs::open(
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx("open monitor dir")?,
        );
    }
    let fd = dir_fd.as_ref().map_or(0, AsRawFd::as_raw_fd);
    let mut p = b"/proc/".to_vec();
    text::push_u64(
        &mut p,
        u64::from(rustix::process::getpid().as_raw_nonzero().get() as u32),
    );
    p.extend_from_slice(b"/fd/");
    text::push_u64(&mut p, fd as u64);
    p.push(b'/');
    p.extend_from_slice(name.as_bytes());
    Ok(PathBuf::from(OsString::from_vec(p)))
}

/// A listening unix socket at `path` (mode 0600).
fn listen_unix(path: &Path, ty: SocketType) -> Res<OwnedFd> {
    let _ = rustix::fs::unlink(path);
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        ty,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .ctx("socket")?;
    let addr = SocketAddrUnix::new(path).ctx("socket path too long")?;
    rustix::net::bind(&fd, &addr).ctx("bind unix socket")?;
    rustix::fs::chmod(path, Mode::from_raw_mode(0o600)).ctx("chmod unix socket")?;
    rustix::net::listen(&fd, 32).ctx("listen")?;
    Ok(fd)
}

/// Receive one fd (the pty master) from a console-socket connection.
fn recv_fd(conn: &OwnedFd) -> Option<OwnedFd> {
    let _ = rustix::io::ioctl_fionbio(conn, false);
    let mut data = [0u8; 256];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut data)];
    rustix::net::recvmsg(conn, &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC).ok()?;
    let mut got = None;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for fd in fds {
                if got.is_none() {
                    got = Some(fd);
                }
            }
        }
    }
    got
}

fn pipe() -> Res<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ctx("pipe")
}

/// The container's memory cgroup OOM counter file, from /proc/PID/cgroup
/// (v1 `memory.oom_control`, else v2 `memory.events`).
fn oom_file(pid: i32) -> Option<PathBuf> {
    let mut p = b"/proc/".to_vec();
    text::push_u64(&mut p, pid as u64);
    p.extend_from_slice(b"/cgroup");
    let data = std::fs::read(OsStr::from_bytes(&p)).ok()?;
    let mut v2 = None;
    for line in data.split(|&b| b == b'\n') {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        if ctrls.split(|&b| b == b',').any(|c| c == b"memory") {
            let mut f = b"/sys/fs/cgroup/memory".to_vec();
            f.extend_from_slice(path);
            f.extend_from_slice(b"/memory.oom_control");
            return Some(PathBuf::from(OsString::from_vec(f)));
        }
        if ctrls.is_empty() {
            let mut f = b"/sys/fs/cgroup".to_vec();
            f.extend_from_slice(path);
            f.extend_from_slice(b"/memory.events");
            v2 = Some(PathBuf::from(OsString::from_vec(f)));
        }
    }
    v2
}

/// Whether the cgroup's `oom_kill` counter is non-zero.
fn oom_killed(file: Option<&Path>) -> bool {
    let Some(data) = file.and_then(|f| std::fs::read(f).ok()) else {
        return false;
    };
    data.split(|&b| b == b'\n').any(|l| {
        l.strip_prefix(b"oom_kill ")
            .is_some_and(|n| n.iter().any(|&d| d.is_ascii_digit() && d != b'0'))
    })
}

/// What a poll slot belongs to.
#[derive(Clone, Copy)]
enum Slot {
    Signal,
    Pidfd,
    Out,
    Err,
    Capture,
    Console,
    Attach,
    Client(usize),
    Stdin,
}

pub struct Monitor {
    args: Options,
    sigfd: OwnedFd,
    /// Container stdout pipe, or the pty master.
    out: Option<OwnedFd>,
    /// Container stderr pipe (not with a terminal).
    err: Option<OwnedFd>,
    /// Where client stdin goes: the stdin pipe or a dup of the pty master.
    stdin: Option<OwnedFd>,
    pending_stdin: Vec<u8>,
    close_stdin: bool,
    attach: Option<OwnedFd>,
    clients: Vec<Option<OwnedFd>>,
    /// Raw fds of connected clients that sent [`FRAME_CLEANUP`].
    cleaners: Vec<i32>,
    log: Log,
    buf: Vec<u8>,
    /// Children reaped before the container pid was known: (pid, code).
    reaped: Vec<(i32, i32)>,
    oom_file: Option<PathBuf>,
    /// Keeps `/proc/PID/fd/N` socket paths valid for long DIRs.
    dir_fd: Option<OwnedFd>,
}

impl Monitor {
    /// Set up signals, the subreaper flag, the pid file and the log.
    pub fn new(args: Options) -> Res<Monitor> {
        // Dispositions ignored by whoever started us are inherited: an
        // ignored SIGCHLD would even auto-reap the container. Start clean
        // (and the runtime and container inherit the defaults).
        barge_sys::daemon::reset_all_signal_dispositions();
        let mut set = SigSet::empty();
        for s in [
            rustix::process::Signal::CHILD,
            rustix::process::Signal::PIPE,
            rustix::process::Signal::TERM,
            rustix::process::Signal::INT,
            rustix::process::Signal::HUP,
        ] {
            set.add(s.as_raw());
        }
        signal::block(&set).ctx("block signals")?;
        let sigfd = signal::signalfd(&set).ctx("signalfd")?;
        rustix::io::ioctl_fionbio(&sigfd, true).ctx("signalfd nonblock")?;
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .ctx("PR_SET_CHILD_SUBREAPER")?;
        let mut pid = Vec::new();
        text::push_u64(
            &mut pid,
            u64::from(rustix::process::getpid().as_raw_nonzero().get() as u32),
        );
        std::fs::write(args.dir.join("monitor.pid"), &pid).ctx("write monitor.pid")?;
        let log = Log::open(args.log_driver, args.log_path.as_deref(), args.log_size_max)
            .ctx("open log")?;
        Ok(Monitor {
            args,
            sigfd,
            out: None,
            err: None,
            stdin: None,
            pending_stdin: Vec::new(),
            close_stdin: false,
            attach: None,
            clients: Vec::new(),
            cleaners: Vec::new(),
            log,
            buf: vec![0u8; CHUNK + 1],
            reaped: Vec::new(),
            oom_file: None,
            dir_fd: None,
        })
    }

    fn drain_signals(&self) {
        let mut info = [0u8; 128];
        while let Ok(n) = rustix::io::read(&self.sigfd, &mut info) {
            if n == 0 {
                break;
            }
        }
    }

    /// `RUNTIME create`; returns the container init's pid.
    pub fn create(&mut self) -> Res<i32> {
        let dir = self.args.dir.clone();
        let pidfile = dir.join("pidfile");
        let _ = rustix::fs::unlink(&pidfile);

        let attach_path = socket_path(&dir, "attach", &mut self.dir_fd)?;
        self.attach = Some(listen_unix(&attach_path, SocketType::SEQPACKET)?);

        let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .ctx("open /dev/null")?;
        let mut argv = vec![cstring(&self.args.runtime)?];
        for a in &self.args.runtime_args {
            argv.push(cstring(a)?);
        }
        argv.push(c"create".to_owned());
        argv.push(c"--bundle".to_owned());
        argv.push(cstring(&self.args.bundle)?);
        argv.push(c"--pid-file".to_owned());
        argv.push(cstring(pidfile.as_os_str())?);

        // The runtime's own stderr: the container's stderr pipe, or (with a
        // terminal) a pipe of its own. Read until `create` exits.
        let mut capture: Option<OwnedFd>;
        let mut console = None;
        let console_path = socket_path(&dir, "console.sock", &mut self.dir_fd)?;
        let runtime_pid = if self.args.terminal {
            console = Some(listen_unix(&console_path, SocketType::STREAM)?);
            argv.push(c"--console-socket".to_owned());
            argv.push(cstring(console_path.as_os_str())?);
            argv.push(cstring(&self.args.id)?);
            let (r, w) = pipe()?;
            capture = Some(r);
            spawn(&argv, Some([null.as_fd(), w.as_fd(), w.as_fd()]), false)?
        } else {
            argv.push(cstring(&self.args.id)?);
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let stdin_r = if self.args.stdin {
                let (r, w) = pipe()?;
                rustix::io::ioctl_fionbio(&w, true).ctx("stdin nonblock")?;
                self.stdin = Some(w);
                Some(r)
            } else {
                None
            };
            rustix::io::ioctl_fionbio(&out_r, true).ctx("stdout nonblock")?;
            self.out = Some(out_r);
            capture = Some(err_r);
            let i = stdin_r.as_ref().map_or(null.as_fd(), AsFd::as_fd);
            spawn(&argv, Some([i, out_w.as_fd(), err_w.as_fd()]), false)?
        };
        drop(null);
        if let Some(c) = &capture {
            rustix::io::ioctl_fionbio(c, true).ctx("pipe nonblock")?;
        }

        let mut msg = Vec::new();
        let mut master: Option<OwnedFd> = None;
        let mut status = None;
        while status.is_none() {
            let mut slots = vec![Slot::Signal];
            let mut fds = vec![PollFd::new(&self.sigfd, PollFlags::IN)];
            if let Some(c) = &capture {
                slots.push(Slot::Capture);
                fds.push(PollFd::new(c, PollFlags::IN));
            }
            if let (Some(l), None) = (&console, &master) {
                slots.push(Slot::Console);
                fds.push(PollFd::new(l, PollFlags::IN));
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Fail::Sys("poll", e.raw_os_error())),
            }
            let ready: Vec<(Slot, PollFlags)> = slots
                .iter()
                .zip(fds.iter())
                .map(|(s, f)| (*s, f.revents()))
                .filter(|(_, r)| !r.is_empty())
                .collect();
            drop(fds);
            for (slot, _) in ready {
                match slot {
                    Slot::Signal => {
                        self.drain_signals();
                        while let Ok(Some((pid, st))) = rustix::process::wait(WaitOptions::NOHANG) {
                            if pid == runtime_pid {
                                status = Some(exit_code(st));
                            } else {
                                self.reaped
                                    .push((pid.as_raw_nonzero().get(), exit_code(st)));
                            }
                        }
                    }
                    // EOF: every writer is gone for good.
                    Slot::Capture if !read_capture(capture.as_ref(), &mut msg) => {
                        capture = None;
                    }
                    Slot::Console => {
                        if let Some(l) = &console {
                            if let Ok(conn) = rustix::net::accept_with(l, SocketFlags::CLOEXEC) {
                                master = recv_fd(&conn);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        // Everything the runtime wrote is in the pipe by now.
        read_capture(capture.as_ref(), &mut msg);
        if let (Some(l), None) = (&console, &master) {
            if let Ok(conn) = rustix::net::accept_with(l, SocketFlags::CLOEXEC) {
                master = recv_fd(&conn);
            }
        }
        if console.is_some() {
            drop(console);
            let _ = rustix::fs::unlink(dir.join("console.sock"));
        }
        let code = status.unwrap_or(-1);
        if code != 0 {
            return Err(Fail::Runtime(msg, code));
        }
        if self.args.terminal {
            let m = master.ok_or(Fail::Sys("the runtime sent no pty master", 0))?;
            rustix::io::ioctl_fionbio(&m, true).ctx("pty nonblock")?;
            if self.args.stdin {
                self.stdin = Some(rustix::io::fcntl_dupfd_cloexec(&m, 3).ctx("dup pty")?);
            }
            self.out = Some(m);
        } else {
            // From now on the stderr pipe carries the container's stderr.
            self.err = capture;
        }
        let data = std::fs::read(&pidfile).ctx("read pidfile")?;
        let pid = std::str::from_utf8(data.trim_ascii())
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
            .filter(|&p| p > 0)
            .ok_or(Fail::Sys("pidfile does not hold a pid", 0))?;
        self.oom_file = oom_file(pid);
        Ok(pid)
    }

    /// Serve the container until its init exits; returns its exit code.
    pub fn serve(&mut self, pid: i32) -> i32 {
        let raw_pid = Pid::from_raw(pid);
        let pidfd = raw_pid.and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let mut code = self.reaped.iter().find(|(p, _)| *p == pid).map(|(_, c)| *c);
        // Not our child and already gone: nothing to wait for.
        if code.is_none() && pidfd.is_none() {
            if let Some(p) = raw_pid {
                if matches!(
                    rustix::process::waitpid(Some(p), WaitOptions::NOHANG),
                    Err(Errno::CHILD)
                ) {
                    code = Some(-1);
                }
            }
        }
        self.reaped.clear();
        while code.is_none() {
            let mut slots = Vec::with_capacity(8 + self.clients.len());
            let mut fds = Vec::with_capacity(8 + self.clients.len());
            slots.push(Slot::Signal);
            fds.push(PollFd::new(&self.sigfd, PollFlags::IN));
            if let Some(p) = &pidfd {
                slots.push(Slot::Pidfd);
                fds.push(PollFd::new(p, PollFlags::IN));
            }
            // New attach clients first: a client that connected before
            // `RUNTIME start` must be accepted before the first output is
            // forwarded, or it misses that output.
            if let Some(a) = &self.attach {
                slots.push(Slot::Attach);
                fds.push(PollFd::new(a, PollFlags::IN));
            }
            if let Some(o) = &self.out {
                slots.push(Slot::Out);
                fds.push(PollFd::new(o, PollFlags::IN));
            }
            if let Some(e) = &self.err {
                slots.push(Slot::Err);
                fds.push(PollFd::new(e, PollFlags::IN));
            }
            let backlog = !self.pending_stdin.is_empty();
            for (i, c) in self.clients.iter().enumerate() {
                if let Some(c) = c {
                    slots.push(Slot::Client(i));
                    // While stdin is backed up, read no more client frames
                    // (back-pressure instead of unbounded buffering).
                    fds.push(PollFd::new(
                        c,
                        if backlog {
                            PollFlags::empty()
                        } else {
                            PollFlags::IN
                        },
                    ));
                }
            }
            if let (true, Some(s)) = (backlog, &self.stdin) {
                slots.push(Slot::Stdin);
                fds.push(PollFd::new(s, PollFlags::OUT));
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => break,
            }
            let ready: Vec<(Slot, PollFlags)> = slots
                .iter()
                .zip(fds.iter())
                .map(|(s, f)| (*s, f.revents()))
                .filter(|(_, r)| !r.is_empty())
                .collect();
            drop(fds);
            for (slot, rev) in ready {
                match slot {
                    Slot::Signal => {
                        self.drain_signals();
                        while let Ok(Some((p, st))) = rustix::process::wait(WaitOptions::NOHANG) {
                            if p.as_raw_nonzero().get() == pid {
                                code = Some(exit_code(st));
                            }
                        }
                    }
                    Slot::Pidfd => {
                        if let Some(p) = raw_pid {
                            match rustix::process::waitpid(Some(p), WaitOptions::NOHANG) {
                                Ok(Some((_, st))) => code = Some(exit_code(st)),
                                // Not our child (no adoption): the code is
                                // unknown.
                                Err(Errno::CHILD) => code = Some(code.unwrap_or(-1)),
                                _ => {}
                            }
                        }
                    }
                    Slot::Out => {
                        if self.forward(Stream::Stdout) == Read::Closed {
                            self.out = None;
                        }
                    }
                    Slot::Err => {
                        if self.forward(Stream::Stderr) == Read::Closed {
                            self.err = None;
                        }
                    }
                    Slot::Attach => self.accept(),
                    Slot::Client(i) => {
                        if rev.contains(PollFlags::IN) {
                            let _ = self.client_frame(i);
                        } else {
                            self.drop_client(i);
                        }
                    }
                    Slot::Stdin => self.flush_stdin(),
                    Slot::Capture | Slot::Console => {}
                }
            }
            self.clients.retain(Option::is_some);
        }
        // A client still in the listen backlog gets this output too.
        self.accept();
        // Deliver what the container wrote before it exited. A pipe holds
        // it all by now; a pty passes output on asynchronously (the flip
        // buffer is pushed from a workqueue), so read the master until EIO
        // (no slave left), waiting a bounded time for stragglers.
        if self.args.terminal {
            self.drain_pty();
        }
        while self.forward(Stream::Stdout) == Read::Data {}
        while self.forward(Stream::Stderr) == Read::Data {}
        code.unwrap_or(-1)
    }

    fn drain_pty(&mut self) {
        let t = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        for _ in 0..PTY_DRAIN_ROUNDS {
            let Some(m) = &self.out else { return };
            let mut p = [PollFd::new(m, PollFlags::IN)];
            match poll(&mut p, Some(&t)) {
                Ok(0) => return,
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => return,
            }
            match self.forward(Stream::Stdout) {
                Read::Closed => {
                    self.out = None;
                    return;
                }
                Read::Data | Read::Again => {}
            }
        }
    }

    /// Read one chunk of `stream`, log it and send it to the clients.
    fn forward(&mut self, stream: Stream) -> Read {
        let fd = match stream {
            Stream::Stdout => self.out.as_ref(),
            Stream::Stderr => self.err.as_ref(),
        };
        let Some(fd) = fd else {
            return Read::Closed;
        };
        let n = loop {
            match rustix::io::read(fd, &mut self.buf[1..]) {
                Ok(n) => break n,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Read::Again,
                // EIO: the pty's last slave fd closed.
                Err(_) => break 0,
            }
        };
        if n == 0 {
            return Read::Closed;
        }
        self.buf[0] = match stream {
            Stream::Stdout => FRAME_STDOUT,
            Stream::Stderr => FRAME_STDERR,
        };
        self.log.write(stream, &self.buf[1..=n]);
        for slot in &mut self.clients {
            if let Some(c) = slot {
                match rustix::net::send(
                    &*c,
                    &self.buf[..=n],
                    SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
                ) {
                    // A full client loses this chunk rather than stall us.
                    Ok(_) | Err(Errno::AGAIN | Errno::INTR) => {}
                    Err(_) => *slot = None,
                }
            }
        }
        Read::Data
    }

    fn accept(&mut self) {
        let Some(a) = &self.attach else { return };
        while let Ok(c) = rustix::net::accept_with(a, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)
        {
            if self.clients.len() < MAX_CLIENTS {
                self.clients.push(Some(c));
            }
        }
    }

    fn drop_client(&mut self, i: usize) {
        if let Some(c) = self.clients[i].take() {
            let raw = c.as_raw_fd();
            self.cleaners.retain(|f| *f != raw);
        }
    }

    /// Handles one pending frame of client `i`; false when none was read.
    fn client_frame(&mut self, i: usize) -> bool {
        let Some(c) = &self.clients[i] else {
            return false;
        };
        let n = match rustix::net::recv(c, &mut self.buf[..], RecvFlags::DONTWAIT) {
            Ok((_, n)) => n.min(self.buf.len()),
            Err(Errno::AGAIN | Errno::INTR) => return false,
            Err(_) => 0,
        };
        if n == 0 {
            self.drop_client(i);
            return false;
        }
        match self.buf[0] {
            FRAME_CLEANUP => {
                if let Some(c) = &self.clients[i] {
                    self.cleaners.push(c.as_raw_fd());
                }
            }
            FRAME_STDIN if self.stdin.is_some() && !self.close_stdin => {
                self.pending_stdin.extend_from_slice(&self.buf[1..n]);
                self.flush_stdin();
            }
            FRAME_RESIZE if self.args.terminal && n >= 5 => {
                let rows = u16::from_le_bytes([self.buf[1], self.buf[2]]);
                let cols = u16::from_le_bytes([self.buf[3], self.buf[4]]);
                if let Some(m) = &self.out {
                    let _ = rustix::termios::tcsetwinsize(
                        m,
                        rustix::termios::Winsize {
                            ws_row: rows,
                            ws_col: cols,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        },
                    );
                }
            }
            FRAME_CLOSE_STDIN if self.stdin.is_some() && !self.close_stdin => {
                self.close_stdin = true;
                if self.args.terminal {
                    // A pty has no half-close: send the EOF character.
                    self.pending_stdin.push(0x04);
                }
                self.flush_stdin();
            }
            _ => {}
        }
        true
    }

    fn flush_stdin(&mut self) {
        if let Some(s) = &self.stdin {
            while !self.pending_stdin.is_empty() {
                match rustix::io::write(s, &self.pending_stdin) {
                    Ok(n) => {
                        self.pending_stdin.drain(..n);
                    }
                    Err(Errno::INTR) => {}
                    Err(Errno::AGAIN) => return,
                    Err(_) => {
                        // The container closed its stdin: drop the input.
                        self.pending_stdin.clear();
                        self.stdin = None;
                        return;
                    }
                }
            }
        }
        if self.close_stdin {
            self.stdin = None;
        }
    }

    /// After a failed `create`: remove the sockets (the runtime has cleaned
    /// up the container itself).
    pub fn abandon(&mut self) {
        self.attach = None;
        let _ = rustix::fs::unlink(self.args.dir.join("attach"));
        let _ = rustix::fs::unlink(self.args.dir.join("console.sock"));
    }

    /// After the container exited: exit file, exit frames, exit command.
    pub fn finish(&mut self, code: i32) {
        let (secs, nanos) = text::now();
        let mut v = b"{\"exit_code\":".to_vec();
        text::push_i64(&mut v, i64::from(code));
        v.extend_from_slice(b",\"exited_at\":");
        text::push_u64(
            &mut v,
            secs.saturating_mul(1_000_000_000)
                .saturating_add(u64::from(nanos)),
        );
        v.extend_from_slice(b",\"oom_killed\":");
        v.extend_from_slice(if oom_killed(self.oom_file.as_deref()) {
            b"true"
        } else {
            b"false"
        });
        v.extend_from_slice(b"}\n");
        let tmp = self.args.dir.join("exit.tmp");
        if std::fs::write(&tmp, &v).is_ok() {
            let _ = std::fs::rename(&tmp, self.args.dir.join("exit"));
        }

        self.stdin = None;
        self.accept();
        // Read what the clients sent and we have not handled yet (a
        // FRAME_CLEANUP, typically): a socket closed with unread data
        // resets the peer, and the frames decide about the exit command.
        for i in 0..self.clients.len() {
            let mut budget = 256;
            while budget > 0 && self.client_frame(i) {
                budget -= 1;
            }
        }
        let mut frame = [FRAME_EXIT, 0, 0, 0, 0];
        frame[1..].copy_from_slice(&code.to_le_bytes());
        let mut budget = EXIT_FRAME_WAIT_MS;
        let mut handed_over = false;
        for c in self.clients.drain(..).flatten() {
            let cleaner = self.cleaners.contains(&c.as_raw_fd());
            loop {
                match rustix::net::send(&c, &frame, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                    Ok(_) if cleaner => {
                        handed_over = true;
                        break;
                    }
                    Err(Errno::AGAIN) if budget > 0 => {
                        let mut p = [PollFd::new(&c, PollFlags::OUT)];
                        let t = rustix::event::Timespec {
                            tv_sec: 0,
                            tv_nsec: 100_000_000,
                        };
                        let _ = poll(&mut p, Some(&t));
                        budget -= 100;
                    }
                    Err(Errno::INTR) => {}
                    _ => break,
                }
            }
        }
        self.attach = None;

        if let Some(cmd) = self.args.exit_command.as_ref().filter(|_| !handed_over) {
            let mut argv = Vec::new();
            if let Ok(c) = cstring(cmd) {
                argv.push(c);
                for a in &self.args.exit_command_args {
                    if let Ok(a) = cstring(a) {
                        argv.push(a);
                    }
                }
                let _ = spawn(&argv, None, true);
            }
        }
        let _ = rustix::fs::unlink(self.args.dir.join("attach"));
    }
}

/// The outcome of one read from a container stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    Data,
    /// Nothing available now (the fd stays).
    Again,
    /// EOF or error (the fd is dropped).
    Closed,
}

/// Append what is available on the runtime's stderr to `msg` (bounded).
/// Returns false on EOF.
fn read_capture(fd: Option<&OwnedFd>, msg: &mut Vec<u8>) -> bool {
    let Some(fd) = fd else { return false };
    let mut buf = [0u8; 1024];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                let room = RUNTIME_MSG_MAX.saturating_sub(msg.len());
                msg.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}
