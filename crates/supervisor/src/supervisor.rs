//! The supervisor's event loop: one single-threaded process per container.
//!
//! It listens on the OCI `listenerPath` socket, where the runtime sends the
//! container's seccomp notify fd with the container process state (id,
//! pid, annotations → the container's [`Policy`]); every `exec` into the
//! container sends another fd. It polls the notify fds, the listener and
//! its running workers; answers cheap decisions at once (continue, refuse)
//! and forks a worker (see [`crate::action`]) for calls it emulates. It
//! exits when the last notify fd has hung up (every process of the
//! container is gone) and no worker runs.
//!
//! Nothing here can hang a container: a worker that takes longer than the
//! policy's timeout is killed and its call fails with `EIO`; if the
//! supervisor itself dies, the kernel fails pending and later calls with
//! `ENOSYS`.

use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use barge_sys::notify::{self, Notification, Response};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::OFlags;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags};
use serde::Serialize;

use crate::action::{self, Job, JobKind, MountJob, MountOption, Outcome, Start, Worker};
use crate::policy::{Decision, Policy};
use crate::syscalls::{self, Call, XattrTarget, AT_FDCWD};
use crate::target::{self, CallError, Notif, Target, PATH_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX};

/// Largest container state message accepted on the listener.
const MAX_STATE: usize = 1 << 20;

/// Emulations running at once; further notifications wait in the kernel
/// (a container calling mknod from many threads cannot make the host fork
/// without bound).
const MAX_WORKERS: usize = 8;

/// Errors that stop the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("supervisor: {op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("supervisor: no container connected to the listener within {0:?}")]
    NoContainer(Duration),
}

fn io_err(op: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> SupervisorError {
    let op = op.into();
    move |e| SupervisorError::Io {
        op,
        source: e.into(),
    }
}

/// How the supervisor runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// System defaults, refined per container by annotations.
    pub policy: Policy,
    /// Exit with an error if no container connects within this time.
    pub accept_timeout: Option<Duration>,
    /// Test knob: workers sleep this long before acting.
    pub worker_delay: Duration,
    /// Ask for `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` on every notify fd.
    pub sync_wake_up: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            policy: Policy::default(),
            accept_timeout: None,
            worker_delay: Duration::ZERO,
            sync_wake_up: true,
        }
    }
}

/// What the supervisor did, written at exit.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Containers (ids) whose notify fds were received.
    pub containers: Vec<String>,
    /// Notify fds received (the init and each exec).
    pub notify_fds: u64,
    /// Notifications received.
    pub received: u64,
    /// Calls performed on the caller's behalf.
    pub emulated: u64,
    /// Emulated calls that failed (e.g. `EEXIST`, `EACCES`).
    pub emulation_failed: u64,
    /// Calls let through to the kernel.
    pub continued: u64,
    /// Calls refused by policy or for bad arguments.
    pub refused: u64,
    /// Calls whose caller was gone before the answer.
    pub gone: u64,
    /// Workers killed at the timeout.
    pub timed_out: u64,
    /// Errors that were not a caller's fault.
    pub errors: Vec<String>,
    /// Whether SYNC_WAKE_UP was set on every notify fd.
    pub sync_wake_up: bool,
}

/// One notify fd.
struct Conn {
    fd: OwnedFd,
    container: Rc<str>,
    policy: Policy,
}

/// A running worker and the call it answers.
struct Running {
    worker: Worker,
    conn: u64,
    id: u64,
    deadline: Instant,
    what: String,
    container: Rc<str>,
}

/// The namespaces of the supervisor itself.
struct OwnNs {
    user: OwnedFd,
    mnt: OwnedFd,
    pid: OwnedFd,
}

/// The supervisor.
pub struct Supervisor {
    opts: Options,
    listener: Option<OwnedFd>,
    signals: Option<OwnedFd>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    workers: Vec<Running>,
    own: OwnNs,
    report: Report,
    stop: bool,
}

/// What to do with one notification.
enum Prepared {
    Answer(Response, &'static str, String),
    Job(Box<Job>, String),
}

impl Supervisor {
    /// A supervisor accepting on `listener` (a bound, listening unix
    /// stream socket). `signals` is an optional signalfd: any signal on it
    /// stops the supervisor (pending calls then fail with `ENOSYS`).
    pub fn new(
        listener: OwnedFd,
        signals: Option<OwnedFd>,
        opts: Options,
    ) -> Result<Self, SupervisorError> {
        rustix::io::ioctl_fionbio(&listener, true).map_err(io_err("listener: non-blocking"))?;
        // Not dumpable (inherited by the workers and resolvers): the
        // resolver takes the container's uids in its user namespace, and
        // container processes must not ptrace it or reach our fds through
        // /proc/PID/fd.
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(io_err("PR_SET_DUMPABLE"))?;
        let ns = |name: &str| {
            rustix::fs::open(
                format!("/proc/self/ns/{name}"),
                OFlags::RDONLY | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(io_err(format!("opening /proc/self/ns/{name}")))
        };
        let own = OwnNs {
            user: ns("user")?,
            mnt: ns("mnt")?,
            pid: ns("pid")?,
        };
        let sync = opts.sync_wake_up;
        Ok(Supervisor {
            opts,
            listener: Some(listener),
            signals,
            conns: BTreeMap::new(),
            next_conn: 0,
            workers: Vec::new(),
            own,
            report: Report {
                sync_wake_up: sync,
                ..Report::default()
            },
            stop: false,
        })
    }

    /// Add a notify fd directly (without the listener), with the policy of
    /// `annotations`.
    pub fn add_notify_fd(
        &mut self,
        fd: OwnedFd,
        container: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let policy = self
            .opts
            .policy
            .with_annotations(annotations)
            .map_err(|e| e.to_string())?;
        if self.opts.sync_wake_up {
            if let Err(e) = notify::set_sync_wake_up(fd.as_fd()) {
                tracing::debug!(error = %e, "supervisor: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable");
                self.report.sync_wake_up = false;
            }
        }
        tracing::debug!(container, ?policy, "supervisor: notify fd received");
        if !self.report.containers.iter().any(|c| c == container) {
            self.report.containers.push(container.to_string());
        }
        self.report.notify_fds += 1;
        let key = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            key,
            Conn {
                fd,
                container: Rc::from(container),
                policy,
            },
        );
        Ok(())
    }

    /// The report so far.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Run until every notify fd has hung up and no worker runs (or a
    /// signal arrives).
    pub fn run(&mut self) -> Result<Report, SupervisorError> {
        let started = Instant::now();
        loop {
            let seen = self.report.notify_fds > 0;
            if self.stop || (seen && self.conns.is_empty() && self.workers.is_empty()) {
                break;
            }
            let mut timeout: Option<Duration> = None;
            if !seen {
                if let Some(t) = self.opts.accept_timeout {
                    let left = t.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Err(SupervisorError::NoContainer(t));
                    }
                    timeout = Some(left);
                }
            }
            if !self.workers.is_empty() {
                let now = Instant::now();
                for w in &self.workers {
                    let left = w.deadline.saturating_duration_since(now);
                    timeout = Some(timeout.map_or(left, |t| t.min(left)));
                }
            }
            let events = self.poll_once(timeout)?;
            for (src, revents) in events {
                match src {
                    Src::Listener => self.accept(),
                    Src::Signals => {
                        if let Some(s) = &self.signals {
                            let sig = barge_sys::signal::read_signal(s).unwrap_or(0);
                            tracing::info!(signal = sig, "supervisor: stopping on a signal");
                        }
                        self.stop = true;
                    }
                    Src::Conn(key) => {
                        if revents.contains(PollFlags::IN) {
                            self.on_notification(key);
                        } else if revents
                            .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
                        {
                            if let Some(c) = self.conns.remove(&key) {
                                tracing::debug!(container = %c.container, "supervisor: notify fd closed");
                            }
                        }
                    }
                    Src::Worker(i) => self.on_worker_exit(i),
                }
            }
            self.expire_workers();
        }
        // Whatever is still running dies with us.
        for w in std::mem::take(&mut self.workers) {
            let _ =
                rustix::process::pidfd_send_signal(&w.worker.pidfd, rustix::process::Signal::KILL);
            let _ =
                rustix::process::waitpid(Some(w.worker.pid), rustix::process::WaitOptions::empty());
        }
        Ok(self.report.clone())
    }

    fn poll_once(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Vec<(Src, PollFlags)>, SupervisorError> {
        let mut srcs = Vec::new();
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        if let Some(l) = &self.listener {
            srcs.push(Src::Listener);
            fds.push(PollFd::new(l, PollFlags::IN));
        }
        if let Some(s) = &self.signals {
            srcs.push(Src::Signals);
            fds.push(PollFd::new(s, PollFlags::IN));
        }
        if self.workers.len() < MAX_WORKERS {
            for (k, c) in &self.conns {
                srcs.push(Src::Conn(*k));
                fds.push(PollFd::new(&c.fd, PollFlags::IN));
            }
        }
        for (i, w) in self.workers.iter().enumerate() {
            srcs.push(Src::Worker(i));
            fds.push(PollFd::new(&w.worker.pidfd, PollFlags::IN));
        }
        let ts = timeout.map(|t| rustix::event::Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(Vec::new()),
            Err(e) => return Err(io_err("poll")(e)),
        }
        let mut out: Vec<(Src, PollFlags)> = srcs
            .into_iter()
            .zip(fds.iter().map(PollFd::revents))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        // Worker indices must stay valid while handled: highest first.
        out.sort_by_key(|(s, _)| match s {
            Src::Worker(i) => usize::MAX - i,
            _ => 0,
        });
        Ok(out)
    }

    // ---- the listener ---------------------------------------------------

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        let conn = match rustix::net::accept_with(l, SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => return,
            Err(e) => {
                self.error(format!("accept: {e}"));
                return;
            }
        };
        match receive_state(&conn) {
            Ok((fd, state)) => {
                let container = state["state"]["id"]
                    .as_str()
                    .or_else(|| state["id"].as_str())
                    .unwrap_or("?")
                    .to_string();
                let annotations: BTreeMap<String, String> = state["state"]["annotations"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Err(e) = self.add_notify_fd(fd, &container, &annotations) {
                    // Dropping the fd makes the container's intercepted
                    // calls fail with ENOSYS rather than run unchecked.
                    self.error(format!("container {container}: {e}"));
                }
            }
            Err(e) => self.error(format!("listener: {e}")),
        }
    }

    fn error(&mut self, msg: String) {
        tracing::error!("supervisor: {msg}");
        self.report.errors.push(msg);
    }

    // ---- notifications --------------------------------------------------

    fn on_notification(&mut self, key: u64) {
        let Some(conn) = self.conns.get(&key) else {
            return;
        };
        let n = match notify::recv(conn.fd.as_fd()) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return,
            Err(e) => {
                let msg = format!(
                    "container {}: SECCOMP_IOCTL_NOTIF_RECV: {e}",
                    conn.container
                );
                self.conns.remove(&key);
                self.error(msg);
                return;
            }
        };
        self.report.received += 1;
        let call = syscalls::decode(n.arch, n.nr, &n.args);
        let prepared = match prepare(conn, &self.own, &self.opts, &n, call) {
            Ok(p) => p,
            Err(CallError::Gone) => {
                self.report.gone += 1;
                tracing::debug!(container = %conn.container, pid = n.pid, syscall = call.name(),
                                "supervisor: caller gone before the decision");
                return;
            }
            Err(CallError::Errno(e, why)) => {
                Prepared::Answer(Response::Errno(e), "bad arguments", why)
            }
        };
        let container = Rc::clone(&conn.container);
        match prepared {
            Prepared::Answer(resp, reason, detail) => {
                match resp {
                    Response::Continue => self.report.continued += 1,
                    _ => self.report.refused += 1,
                }
                tracing::debug!(container = %container, pid = n.pid, syscall = call.name(),
                                decision = ?resp, reason, detail = %detail, "supervisor: decision");
                self.answer(key, n.id, resp, &container);
            }
            Prepared::Job(job, what) => {
                tracing::debug!(container = %container, pid = n.pid, syscall = call.name(),
                                decision = "emulate", detail = %what, "supervisor: decision");
                let timeout = conn.policy.worker_timeout;
                match action::spawn(&job) {
                    Ok(worker) => self.workers.push(Running {
                        worker,
                        conn: key,
                        id: n.id,
                        deadline: Instant::now() + timeout,
                        what,
                        container,
                    }),
                    Err(e) => {
                        self.error(format!("forking a worker for {what}: {e}"));
                        self.answer(key, n.id, Response::Errno(libc::EAGAIN), &container);
                    }
                }
            }
        }
    }

    fn answer(&mut self, key: u64, id: u64, resp: Response, container: &str) {
        let Some(conn) = self.conns.get(&key) else {
            // Its notify fd hung up: the caller (and every process of its
            // filter) went away meanwhile.
            self.report.gone += 1;
            tracing::debug!(
                container,
                id,
                "supervisor: the caller went away before the answer"
            );
            return;
        };
        match notify::send(conn.fd.as_fd(), id, resp) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                self.report.gone += 1;
                tracing::debug!(
                    container,
                    id,
                    "supervisor: the caller went away before the answer"
                );
            }
            Err(e) => {
                let msg = format!("container {container}: SECCOMP_IOCTL_NOTIF_SEND: {e}");
                self.error(msg);
            }
        }
    }

    fn on_worker_exit(&mut self, i: usize) {
        if i >= self.workers.len() {
            return;
        }
        let r = self.workers.swap_remove(i);
        let status =
            rustix::process::waitpid(Some(r.worker.pid), rustix::process::WaitOptions::empty());
        let outcome = match status {
            Ok(Some((_, st))) => match st.exit_status() {
                Some(code) => Outcome::from_exit_code(code),
                None => Outcome::Errno(libc::EIO),
            },
            _ => Outcome::Errno(libc::EIO),
        };
        self.finish(r, outcome);
    }

    fn finish(&mut self, r: Running, outcome: Outcome) {
        let resp = match outcome {
            Outcome::Done => {
                self.report.emulated += 1;
                Response::Value(0)
            }
            Outcome::Errno(e) => {
                self.report.emulation_failed += 1;
                Response::Errno(e)
            }
            Outcome::Continue => {
                self.report.continued += 1;
                Response::Continue
            }
        };
        tracing::debug!(container = %r.container, what = %r.what, answer = ?resp,
                        "supervisor: emulated call finished");
        let container = Rc::clone(&r.container);
        self.answer(r.conn, r.id, resp, &container);
    }

    fn expire_workers(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.workers.len() {
            if self.workers[i].deadline > now {
                i += 1;
                continue;
            }
            let r = self.workers.swap_remove(i);
            let _ =
                rustix::process::pidfd_send_signal(&r.worker.pidfd, rustix::process::Signal::KILL);
            let _ =
                rustix::process::waitpid(Some(r.worker.pid), rustix::process::WaitOptions::empty());
            self.report.timed_out += 1;
            tracing::warn!(container = %r.container, what = %r.what,
                           "supervisor: emulated call timed out; it fails with EIO");
            self.finish(r, Outcome::Errno(libc::EIO));
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Src {
    Listener,
    Signals,
    Conn(u64),
    Worker(usize),
}

/// Read the OCI container process state and the notify fd from one
/// listener connection (the runtime closes it after sending).
fn receive_state(conn: &OwnedFd) -> Result<(OwnedFd, serde_json::Value), String> {
    let cred =
        rustix::net::sockopt::socket_peercred(conn).map_err(|e| format!("SO_PEERCRED: {e}"))?;
    let me = rustix::process::geteuid();
    if !cred.uid.is_root() && cred.uid != me {
        return Err(format!(
            "refusing a connection from uid {}",
            cred.uid.as_raw()
        ));
    }
    rustix::net::sockopt::set_socket_timeout(
        conn,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(5)),
    )
    .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let mut json = Vec::new();
    let mut fd = None;
    loop {
        let mut buf = [0u8; 8192];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let msg = match rustix::net::recvmsg(
            conn,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("reading the container state: {e}")),
        };
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                for f in fds {
                    if fd.is_none() {
                        fd = Some(f);
                    }
                }
            }
        }
        if msg.bytes == 0 {
            break;
        }
        json.extend_from_slice(&buf[..msg.bytes]);
        if json.len() > MAX_STATE {
            return Err("the container state is too large".into());
        }
        // Some runtimes (runc) keep the connection open: the message ends
        // where the JSON document does.
        match serde_json::from_slice::<serde_json::Value>(&json) {
            Err(e) if e.is_eof() => {}
            _ => break,
        }
    }
    let fd = fd.ok_or("no fd with the container state")?;
    let state: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| format!("the container state is not JSON: {e}"))?;
    let names_seccomp = state["fds"]
        .as_array()
        .is_some_and(|a| a.iter().any(|f| f == "seccompFd"));
    if !names_seccomp {
        return Err("the container state does not name a seccompFd".into());
    }
    Ok((fd, state))
}

// ---- preparing one call -------------------------------------------------

fn refuse(e: i32, reason: &'static str) -> Prepared {
    Prepared::Answer(Response::Errno(e), reason, String::new())
}

fn cont(reason: &'static str) -> Prepared {
    Prepared::Answer(Response::Continue, reason, String::new())
}

fn verdict(v: (Decision, &'static str)) -> Option<Prepared> {
    match v.0 {
        Decision::Emulate => None,
        Decision::Continue => Some(cont(v.1)),
        Decision::Refuse(e) => Some(refuse(e, v.1)),
    }
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn prepare(
    conn: &Conn,
    own: &OwnNs,
    opts: &Options,
    n: &Notification,
    call: Call,
) -> Result<Prepared, CallError> {
    let policy = &conn.policy;
    let Some(group) = call.group() else {
        return Ok(refuse(libc::ENOSYS, "not a supervised syscall"));
    };
    if !policy.intercepts(group) {
        return Ok(cont("group not intercepted for this container"));
    }
    let pending = Notif {
        fd: conn.fd.as_fd(),
        id: n.id,
    };
    match call {
        Call::Mknod {
            dirfd,
            path,
            mode,
            dev,
        } => {
            let (major, minor) = syscalls::decode_dev(dev);
            if let Some(p) = verdict(policy.mknod(mode, major, minor)) {
                return Ok(p);
            }
            let mut t = Target::open(pending, n.pid)?;
            let path = t.read_cstring(path, PATH_MAX)?;
            let (parent, name) = split_path(&path)?;
            let what = format!("mknod {} {}:{}", show(&path), major, minor);
            let kind = JobKind::Mknod {
                parent,
                name,
                mode,
                major,
                minor,
            };
            let job = job_for(&t, own, opts, kind, start_for(&t, &path, dirfd)?)?;
            if !privileged(&t, &job, CAP_MKNOD)? {
                return Ok(refuse(
                    libc::EPERM,
                    "the caller is not root in its namespace",
                ));
            }
            Ok(Prepared::Job(Box::new(job), what))
        }
        Call::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => {
            if let Some(p) = verdict(policy.mount_flags(flags)) {
                return Ok(p);
            }
            if fstype == 0 {
                return Ok(cont("no filesystem type"));
            }
            let mut t = Target::open(pending, n.pid)?;
            let fstype = match t.read_cstring(fstype, 256) {
                Err(CallError::Errno(libc::ENAMETOOLONG, _)) => {
                    return Ok(refuse(libc::EPERM, "filesystem type not allowed"))
                }
                other => other?,
            };
            let fstype = String::from_utf8_lossy(&fstype).into_owned();
            if let Some(p) = verdict(policy.mount_type(&fstype)) {
                return Ok(match p {
                    Prepared::Answer(r, why, _) => Prepared::Answer(r, why, fstype),
                    other @ Prepared::Job(..) => other,
                });
            }
            let pidns = if fstype == "proc" {
                let ns = t.open_entry("ns/pid", OFlags::RDONLY)?;
                if target::same_inode(ns.as_fd(), own.pid.as_fd()) {
                    return Ok(refuse(libc::EPERM, "proc needs a pid namespace of its own"));
                }
                Some(ns)
            } else {
                None
            };
            let target_path = t.read_cstring(target, PATH_MAX)?;
            if target_path.is_empty() {
                return Err(CallError::errno(libc::ENOENT, "empty target"));
            }
            let source = if source == 0 {
                None
            } else {
                Some(t.read_cstring(source, PATH_MAX)?)
            };
            let data = if data == 0 {
                Vec::new()
            } else {
                match t.read_cstring(data, 4096) {
                    Err(CallError::Errno(libc::ENAMETOOLONG, _)) => {
                        return Err(CallError::errno(
                            libc::EINVAL,
                            "mount data longer than a page",
                        ))
                    }
                    other => other?,
                }
            };
            let overlay = fstype == "overlay";
            let mut options = action::parse_mount_data(&data, overlay);
            translate_ids(&t, own, &mut options)?;
            let (options, layers) = if overlay {
                action::overlay_layers(options)
                    .map_err(|e| CallError::errno(e, "overlay layers"))?
            } else {
                (options, Vec::new())
            };
            let what = format!(
                "mount -t {fstype} {} {} -o {}",
                source.as_deref().map_or_else(|| "none".into(), show),
                show(&target_path),
                show(&data)
            );
            let kind = JobKind::Mount(MountJob {
                fstype,
                source,
                target: target_path.clone(),
                flags: crate::policy::strip_magic(flags),
                options,
                layers,
                force_nosuid: policy.force_nosuid,
            });
            let start = start_for(&t, &target_path, AT_FDCWD)?;
            let mut job = job_for(&t, own, opts, kind, start)?;
            if !privileged(&t, &job, CAP_SYS_ADMIN)? {
                return Ok(refuse(
                    libc::EPERM,
                    "the caller is not root in its namespace",
                ));
            }
            job.pidns = pidns;
            t.check()?;
            Ok(Prepared::Job(Box::new(job), what))
        }
        Call::Setxattr {
            target,
            name,
            value,
            size,
            flags,
        } => {
            let mut t = Target::open(pending, n.pid)?;
            let name = match t.read_cstring(name, XATTR_NAME_MAX) {
                Err(CallError::Errno(libc::ENAMETOOLONG, _)) => {
                    return Err(CallError::errno(libc::ERANGE, "attribute name too long"))
                }
                other => other?,
            };
            if let Some(p) = verdict(policy.xattr(&name)) {
                return Ok(p);
            }
            if flags & !(libc::XATTR_CREATE | libc::XATTR_REPLACE) != 0 {
                return Err(CallError::errno(libc::EINVAL, "bad setxattr flags"));
            }
            if size > XATTR_SIZE_MAX {
                return Err(CallError::errno(libc::E2BIG, "attribute value too large"));
            }
            let value = t.read_bytes(value, size as usize)?;
            let (path, follow, start) = match target {
                XattrTarget::Path(p) | XattrTarget::Link(p) => {
                    let path = t.read_cstring(p, PATH_MAX)?;
                    if path.is_empty() {
                        return Err(CallError::errno(libc::ENOENT, "empty path"));
                    }
                    let start = start_for(&t, &path, AT_FDCWD)?;
                    (Some(path), matches!(target, XattrTarget::Path(_)), start)
                }
                XattrTarget::Fd(fd) => {
                    if fd < 0 {
                        return Err(CallError::errno(libc::EBADF, "negative fd"));
                    }
                    let f =
                        t.open_entry(&format!("fd/{fd}"), OFlags::PATH)
                            .map_err(|e| match e {
                                CallError::Errno(libc::ENOENT, w) => {
                                    CallError::Errno(libc::EBADF, w)
                                }
                                other => other,
                            })?;
                    (None, true, Start::File(f))
                }
            };
            let what = format!(
                "{} {} {}",
                call.name(),
                path.as_deref().map_or_else(|| "(fd)".into(), show),
                show(&name)
            );
            let kind = JobKind::Setxattr {
                path,
                follow,
                name,
                value,
                flags,
            };
            let job = job_for(&t, own, opts, kind, start)?;
            if !privileged(&t, &job, CAP_SYS_ADMIN)? {
                return Ok(cont("the caller is not root in its namespace"));
            }
            Ok(Prepared::Job(Box::new(job), what))
        }
        Call::Other(_) => Ok(refuse(libc::ENOSYS, "not a supervised syscall")),
    }
}

/// Split a `mknod` path into parent and last component.
fn split_path(path: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CallError> {
    if path.is_empty() {
        return Err(CallError::errno(libc::ENOENT, "empty path"));
    }
    if path.ends_with(b"/") {
        return Err(CallError::errno(libc::ENOENT, "path ends with a slash"));
    }
    let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/".to_vec(), path[1..].to_vec()),
        Some(i) => (path[..i].to_vec(), path[i + 1..].to_vec()),
        None => (Vec::new(), path.to_vec()),
    };
    if name == b"." || name == b".." {
        return Err(CallError::errno(libc::EEXIST, "the name is . or .."));
    }
    if name.len() > 255 {
        return Err(CallError::errno(
            libc::ENAMETOOLONG,
            "name longer than 255 bytes",
        ));
    }
    Ok((parent, name))
}

/// Where the resolver starts: the caller's root for absolute paths, its
/// cwd or the given dirfd for relative ones.
fn start_for<P: target::Pending>(
    t: &Target<P>,
    path: &[u8],
    dirfd: i32,
) -> Result<Start, CallError> {
    let dir = OFlags::PATH | OFlags::DIRECTORY;
    let fd = if path.first() == Some(&b'/') {
        t.open_entry("root", dir)?
    } else if dirfd == AT_FDCWD {
        t.open_entry("cwd", dir)?
    } else if dirfd < 0 {
        return Err(CallError::errno(libc::EBADF, "bad dirfd"));
    } else {
        t.open_entry(&format!("fd/{dirfd}"), dir)
            .map_err(|e| match e {
                CallError::Errno(libc::ENOENT, w) => CallError::Errno(libc::EBADF, w),
                other => other,
            })?
    };
    Ok(Start::Dir(fd))
}

/// Gather the caller's credentials, root and namespaces.
fn job_for<P: target::Pending>(
    t: &Target<P>,
    own: &OwnNs,
    opts: &Options,
    kind: JobKind,
    start: Start,
) -> Result<Job, CallError> {
    let creds = t.creds()?;
    let root = t.open_entry("root", OFlags::PATH | OFlags::DIRECTORY)?;
    let userns = t.open_entry("ns/user", OFlags::RDONLY)?;
    let userns = (!target::same_inode(userns.as_fd(), own.user.as_fd())).then_some(userns);
    let mntns = t.open_entry("ns/mnt", OFlags::RDONLY)?;
    let mntns = (!target::same_inode(mntns.as_fd(), own.mnt.as_fd())).then_some(mntns);
    t.check()?;
    Ok(Job {
        kind,
        creds,
        root,
        start,
        userns,
        mntns,
        pidns: None,
        delay: opts.worker_delay,
    })
}

/// `CAP_MKNOD`.
const CAP_MKNOD: u32 = 27;
/// `CAP_SYS_ADMIN`.
const CAP_SYS_ADMIN: u32 = 21;

/// Whether the caller may have a call emulated: it is root in its own user
/// namespace (its effective uid maps to 0 there) or holds the capability
/// the kernel would ask for. The supervisor extends what the container's
/// root may do, never what its other users may: they get the kernel's
/// answer.
fn privileged<P: target::Pending>(t: &Target<P>, job: &Job, cap: u32) -> Result<bool, CallError> {
    if job.creds.cap_eff & (1u64 << cap) != 0 {
        return Ok(true);
    }
    let euid = job.creds.uid[1];
    if job.userns.is_none() {
        return Ok(euid == 0);
    }
    let map = target::parse_id_map(&t.read_entry("uid_map")?);
    Ok(map
        .iter()
        .any(|&(inside, outside, count)| inside == 0 && count > 0 && euid == outside))
}

/// `uid=` / `gid=` mount options name ids of the caller's namespace; the
/// worker runs in ours.
fn translate_ids<P: target::Pending>(
    t: &Target<P>,
    own: &OwnNs,
    options: &mut [MountOption],
) -> Result<(), CallError> {
    let needs = options
        .iter()
        .any(|o| matches!(o, MountOption::Value(k, _) if k == "uid" || k == "gid"));
    if !needs {
        return Ok(());
    }
    let userns = t.open_entry("ns/user", OFlags::RDONLY)?;
    if target::same_inode(userns.as_fd(), own.user.as_fd()) {
        return Ok(());
    }
    let uid_map = target::parse_id_map(&t.read_entry("uid_map")?);
    let gid_map = target::parse_id_map(&t.read_entry("gid_map")?);
    for o in options.iter_mut() {
        if let MountOption::Value(k, v) = o {
            let map = match k.as_str() {
                "uid" => &uid_map,
                "gid" => &gid_map,
                _ => continue,
            };
            let id: u32 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| CallError::errno(libc::EINVAL, format!("bad {k}= value")))?;
            let host = target::map_to_host(map, id)
                .ok_or_else(|| CallError::errno(libc::EINVAL, format!("{k}={id} is not mapped")))?;
            *v = host.to_string().into_bytes();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mknod_paths() {
        let ok = |p: &[u8]| split_path(p).expect("split");
        assert_eq!(ok(b"/tmp/n"), (b"/tmp".to_vec(), b"n".to_vec()));
        assert_eq!(ok(b"/n"), (b"/".to_vec(), b"n".to_vec()));
        assert_eq!(ok(b"n"), (Vec::new(), b"n".to_vec()));
        assert_eq!(ok(b"a//b"), (b"a/".to_vec(), b"b".to_vec()));
        for (p, e) in [
            (&b""[..], libc::ENOENT),
            (b"/tmp/", libc::ENOENT),
            (b"/tmp/..", libc::EEXIST),
            (b".", libc::EEXIST),
        ] {
            match split_path(p) {
                Err(CallError::Errno(got, _)) => assert_eq!(got, e, "{p:?}"),
                other => panic!("{p:?}: {other:?}"),
            }
        }
        let long = [b'x'; 256];
        assert!(matches!(
            split_path(&long),
            Err(CallError::Errno(libc::ENAMETOOLONG, _))
        ));
    }
}
