//! The caller's side of attached I/O: proxying the local terminal or stdio
//! to a monitor's attach socket or to a pty received from the runtime,
//! raw mode, window sizes, detach keys and signal forwarding.

use super::monitor::{
    AttachConn, FRAME_CLOSE_STDIN, FRAME_EXIT, FRAME_STDERR, FRAME_STDIN, FRAME_STDOUT,
};
use crate::error::EngineError;
use crate::Result;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::termios::{self, Termios};
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::process::Command;

/// Puts a terminal in raw mode until dropped.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    /// Raw mode on stdin when it is a terminal.
    pub fn stdin() -> Self {
        let fd = rustix::stdio::stdin();
        let saved = termios::tcgetattr(fd).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            raw.make_raw();
            let _ = termios::tcsetattr(fd, termios::OptionalActions::Now, &raw);
        }
        Self { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(rustix::stdio::stdin(), termios::OptionalActions::Now, t);
        }
    }
}

/// The local terminal's size.
pub fn local_size() -> Option<(u16, u16)> {
    let w = termios::tcgetwinsize(rustix::stdio::stdout())
        .or_else(|_| termios::tcgetwinsize(rustix::stdio::stdin()))
        .ok()?;
    Some((w.ws_row, w.ws_col))
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container exited with this code.
    Exited(i32),
    /// The user pressed the detach keys.
    Detached,
    /// The monitor went away without an exit code.
    Lost,
}

/// Options of [`attach`].
#[derive(Debug, Clone, Default)]
pub struct AttachIo {
    /// Forward the caller's stdin.
    pub stdin: bool,
    /// The container has a terminal (raw mode, resizes, detach keys).
    pub tty: bool,
    /// The detach key sequence (default ctrl-p ctrl-q); empty disables.
    pub detach_keys: Vec<u8>,
}

/// Parses podman's `--detach-keys` (`ctrl-p,ctrl-q`, letters).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for k in s.split(',').filter(|k| !k.is_empty()) {
        let b = if let Some(c) = k.strip_prefix("ctrl-") {
            match c.as_bytes() {
                [c @ b'a'..=b'z'] => c - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(EngineError::Invalid(format!("invalid detach key {k:?}"))),
            }
        } else if k.len() == 1 {
            k.as_bytes()[0]
        } else {
            return Err(EngineError::Invalid(format!("invalid detach key {k:?}")));
        };
        out.push(b);
    }
    Ok(out)
}

/// Blocks the signals a foreground session forwards and returns a
/// signalfd for them (SIGWINCH included).
fn forwarded_signals() -> Option<OwnedFd> {
    let mut set = barge_sys::signal::SigSet::empty();
    for s in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        set.add(s);
    }
    barge_sys::signal::block(&set).ok()?;
    barge_sys::signal::signalfd(&set).ok()
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) | Err(_) => return,
            Ok(n) => data = &data[n..],
        }
    }
}

/// Proxies the caller's stdio to a monitor attach connection until the
/// container exits, the user detaches, or the monitor goes away.
/// `forward` is called with signals the caller receives (not SIGWINCH).
pub fn attach(conn: &AttachConn, io: &AttachIo, mut forward: impl FnMut(i32)) -> AttachEnd {
    let _raw = (io.tty && io.stdin && termios::isatty(rustix::stdio::stdin())).then(RawMode::stdin);
    let sigfd = forwarded_signals();
    if io.tty {
        if let Some((r, c)) = local_size() {
            let _ = conn.resize(r, c);
        }
    }
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let stderr = rustix::stdio::stderr();
    let mut stdin_open = io.stdin;
    let mut matched = 0usize;
    let mut buf = vec![0u8; 64 * 1024 + 1];
    loop {
        let mut fds = vec![PollFd::new(conn.fd(), PollFlags::IN)];
        if let Some(s) = &sigfd {
            fds.push(PollFd::new(s, PollFlags::IN));
        }
        let stdin_idx = fds.len();
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return AttachEnd::Lost,
        }
        let conn_ready = !fds[0].revents().is_empty();
        let sig_ready = sigfd.is_some() && !fds[1].revents().is_empty();
        let stdin_ready = stdin_open && !fds[stdin_idx].revents().is_empty();
        drop(fds);
        if conn_ready {
            let n = match conn.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if n == 0 {
                return AttachEnd::Lost;
            }
            match buf[0] {
                FRAME_STDOUT => write_all(stdout, &buf[1..n]),
                FRAME_STDERR => write_all(stderr, &buf[1..n]),
                FRAME_EXIT if n >= 5 => {
                    let code = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
                    return AttachEnd::Exited(code);
                }
                _ => {}
            }
        }
        if sig_ready {
            if let Some(s) = &sigfd {
                if let Ok(sig) = barge_sys::signal::read_signal(s) {
                    if sig == libc::SIGWINCH {
                        if let Some((r, c)) = local_size() {
                            let _ = conn.resize(r, c);
                        }
                    } else {
                        forward(sig);
                    }
                }
            }
        }
        if stdin_ready {
            let n = rustix::io::read(stdin, &mut buf).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
                let _ = conn.send(FRAME_CLOSE_STDIN, &[]);
                continue;
            }
            let data = &buf[..n];
            if io.tty && !io.detach_keys.is_empty() {
                for &b in data {
                    if b == io.detach_keys[matched] {
                        matched += 1;
                        if matched == io.detach_keys.len() {
                            return AttachEnd::Detached;
                        }
                    } else {
                        matched = usize::from(b == io.detach_keys[0]);
                    }
                }
            }
            let _ = conn.send(FRAME_STDIN, data);
        }
    }
}

/// A listening console socket for `runtime --console-socket`.
pub struct ConsoleSocket {
    dir: tempfile::TempDir,
    listener: OwnedFd,
}

impl ConsoleSocket {
    /// Listens on a fresh socket in a private temporary directory.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("barge-console")
            .tempdir()
            .map_err(EngineError::io("creating a console socket directory"))?;
        let path = dir.path().join("sock");
        let err = |e: rustix::io::Errno| EngineError::io("creating a console socket")(e.into());
        let listener = rustix::net::socket_with(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(err)?;
        let addr = rustix::net::SocketAddrUnix::new(&path).map_err(err)?;
        rustix::net::bind(&listener, &addr).map_err(err)?;
        rustix::net::listen(&listener, 1).map_err(err)?;
        Ok(Self { dir, listener })
    }

    /// The socket's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// Accepts the runtime's connection and receives the pty master.
    pub fn receive(&self) -> Result<OwnedFd> {
        let err = |e: rustix::io::Errno| {
            EngineError::io("receiving the terminal from the runtime")(e.into())
        };
        let conn = rustix::net::accept_with(&self.listener, rustix::net::SocketFlags::CLOEXEC)
            .map_err(err)?;
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 4096];
        rustix::net::recvmsg(
            &conn,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut anc,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(err)?;
        for m in anc.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = m {
                if let Some(fd) = fds.next() {
                    return Ok(fd);
                }
            }
        }
        Err(EngineError::Invalid(
            "the runtime sent no terminal on the console socket".into(),
        ))
    }
}

/// Runs `cmd` (a runtime `exec --tty` whose arguments already end with the
/// container and command; `--console-socket` is inserted here) with the
/// pty it creates connected to the caller's terminal; returns the exit code.
pub fn exec_with_terminal(cmd: Command, interactive: bool) -> Result<i32> {
    let console = ConsoleSocket::new()?;
    // Rebuild the command with --console-socket right after `exec`.
    let mut args: Vec<std::ffi::OsString> = cmd.get_args().map(ToOwned::to_owned).collect();
    let pos = args.iter().position(|a| a == "exec").map_or(0, |p| p + 1);
    args.insert(pos, console.path().into_os_string());
    args.insert(pos, "--console-socket".into());
    let mut c = Command::new(cmd.get_program());
    c.args(args);
    c.stdin(std::process::Stdio::null());
    let mut child = c
        .spawn()
        .map_err(EngineError::io("running the runtime's exec"))?;
    let master = match console.receive() {
        Ok(m) => m,
        Err(e) => {
            let status = child
                .wait()
                .map_err(EngineError::io("waiting for the runtime"))?;
            return match status.code() {
                Some(code) if code != 0 => Ok(code),
                _ => Err(e),
            };
        }
    };
    if let Some((r, c)) = local_size() {
        let _ = termios::tcsetwinsize(
            &master,
            termios::Winsize {
                ws_row: r,
                ws_col: c,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        );
    }
    let _raw = (interactive && termios::isatty(rustix::stdio::stdin())).then(RawMode::stdin);
    let sigfd = forwarded_signals();
    let stdin = rustix::stdio::stdin();
    let mut stdin_open = interactive;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = std::io::stdout();
    loop {
        let mut fds = vec![PollFd::new(&master, PollFlags::IN)];
        if let Some(s) = &sigfd {
            fds.push(PollFd::new(s, PollFlags::IN));
        }
        let si = fds.len();
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        if let Err(e) = rustix::event::poll(&mut fds, None) {
            if e != rustix::io::Errno::INTR {
                break;
            }
            continue;
        }
        let m_ready = !fds[0].revents().is_empty();
        let s_ready = sigfd.is_some() && !fds[1].revents().is_empty();
        let i_ready = stdin_open && !fds[si].revents().is_empty();
        drop(fds);
        if m_ready {
            match rustix::io::read(&master, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if s_ready {
            if let Some(s) = &sigfd {
                if let Ok(sig) = barge_sys::signal::read_signal(s) {
                    if sig == libc::SIGWINCH {
                        if let Some((r, c)) = local_size() {
                            let _ = termios::tcsetwinsize(
                                &master,
                                termios::Winsize {
                                    ws_row: r,
                                    ws_col: c,
                                    ws_xpixel: 0,
                                    ws_ypixel: 0,
                                },
                            );
                        }
                    } else if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                        let sig = rustix::process::Signal::from_named_raw(sig);
                        if let Some(sig) = sig {
                            let _ = rustix::process::kill_process(pid, sig);
                        }
                    }
                }
            }
        }
        if i_ready {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    // EOF on a terminal: send ^D.
                    let _ = rustix::io::write(&master, &[4]);
                }
                Ok(n) => write_all(master.as_fd(), &buf[..n]),
            }
        }
    }
    let status = child
        .wait()
        .map_err(EngineError::io("waiting for the runtime"))?;
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), [1, b'x']);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("").unwrap().is_empty());
    }
}
