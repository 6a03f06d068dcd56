//! Terminals: the init opens a pty in the container's devpts, hands the
//! master to the caller over `--console-socket`, and makes the slave its
//! controlling terminal.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::error::{Context, RuntimeError};

/// A pty pair opened inside the container.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The slave's path inside the container, e.g. `/dev/pts/0`.
    pub slave_name: String,
}

/// Open a pty through `<rootfs>/dev/pts/ptmx` (the container's own devpts
/// instance, so the slave lives in the container).
pub fn open_pty(rootfs: &Path) -> Result<Pty, RuntimeError> {
    let ptmx = rootfs.join("dev/pts/ptmx");
    let master = rustix::fs::open(
        &ptmx,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening {}", ptmx.display()))?;
    rustix::pty::unlockpt(&master).ctx(|| "unlockpt".to_string())?;
    let name = rustix::pty::ptsname(&master, Vec::new()).ctx(|| "ptsname".to_string())?;
    let name = name.to_string_lossy();
    let n = name.rsplit('/').next().unwrap_or_default().to_string();
    let slave_path = rootfs.join(format!("dev/pts/{n}"));
    let slave = rustix::fs::open(
        &slave_path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening {}", slave_path.display()))?;
    Ok(Pty {
        master,
        slave,
        slave_name: format!("/dev/pts/{n}"),
    })
}

/// Set the window size of a terminal.
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), RuntimeError> {
    let ws = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws).ctx(|| "setting the console size".to_string())
}

/// Send the pty master over a connected console socket, as runc does (the
/// payload is the name `/dev/ptmx`).
pub fn send_master(socket: BorrowedFd<'_>, master: BorrowedFd<'_>) -> Result<(), RuntimeError> {
    let fds = [master];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(
        socket,
        &[IoSlice::new(b"/dev/ptmx")],
        &mut anc,
        SendFlags::NOSIGNAL,
    )
    .ctx(|| "sending the console master over --console-socket".to_string())?;
    Ok(())
}

/// Connect to the `--console-socket` path.
pub fn connect_socket(path: &Path) -> Result<OwnedFd, RuntimeError> {
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .ctx(|| "creating the console socket".to_string())?;
    let addr = rustix::net::SocketAddrUnix::new(path)
        .ctx(|| format!("console socket path {}", path.display()))?;
    rustix::net::connect(&sock, &addr)
        .ctx(|| format!("connecting to the console socket {}", path.display()))?;
    Ok(sock)
}

/// Make `slave` the controlling terminal and stdio of this process.
pub fn become_session_leader(slave: &OwnedFd) -> Result<(), RuntimeError> {
    rustix::process::setsid().ctx(|| "setsid".to_string())?;
    rustix::process::ioctl_tiocsctty(slave).ctx(|| "TIOCSCTTY".to_string())?;
    for target in 0..3 {
        // SAFETY-free: dup2 onto the standard fds through rustix's stdio helpers.
        match target {
            0 => rustix::stdio::dup2_stdin(slave.as_fd()),
            1 => rustix::stdio::dup2_stdout(slave.as_fd()),
            _ => rustix::stdio::dup2_stderr(slave.as_fd()),
        }
        .ctx(|| format!("dup2 of the terminal onto fd {target}"))?;
    }
    Ok(())
}
