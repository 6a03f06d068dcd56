//! The engine's side of `barge-monitor` (see docs/monitor.md): spawning it
//! for a container and talking to its attach socket.

use crate::error::EngineError;
use crate::Result;
use rustix::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use serde::Deserialize;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Frame types on the attach socket, monitor → client.
pub const FRAME_STDOUT: u8 = 1;
/// Standard error data.
pub const FRAME_STDERR: u8 = 2;
/// The container exited; an i32 LE exit code follows.
pub const FRAME_EXIT: u8 = 3;
/// Client → monitor: stdin data.
pub const FRAME_STDIN: u8 = 0;
/// Client → monitor: terminal size (rows u16 LE, cols u16 LE).
pub const FRAME_RESIZE: u8 = 1;
/// Client → monitor: close the container's stdin.
pub const FRAME_CLOSE_STDIN: u8 = 2;
/// Client → monitor: this client cleans up after the exit, so the exit
/// command is not needed if it is still connected then.
pub const FRAME_CLEANUP: u8 = 3;

/// What the monitor needs to start a container.
#[derive(Debug, Clone)]
pub struct MonitorSpec<'a> {
    /// Container id.
    pub id: &'a str,
    /// The monitor binary.
    pub monitor: &'a Path,
    /// The OCI runtime binary.
    pub runtime: &'a Path,
    /// Arguments before the runtime's subcommand (`--root …`).
    pub runtime_args: Vec<String>,
    /// The bundle.
    pub bundle: &'a Path,
    /// The monitor's directory.
    pub dir: &'a Path,
    /// Log driver.
    pub log_driver: &'a str,
    /// Log file.
    pub log_path: &'a Path,
    /// Terminal.
    pub terminal: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// Exit command and its arguments.
    pub exit_command: Vec<String>,
}

/// The monitor's answer on the sync pipe.
#[derive(Debug, Deserialize)]
struct SyncReply {
    pid: Option<i32>,
    error: Option<String>,
}

/// A started monitor: the container exists (runtime state `created`).
#[derive(Debug)]
pub struct Started {
    /// The container init's pid.
    pub pid: i32,
    /// The monitor's pid.
    pub monitor_pid: i32,
}

/// A monitor creating its container (see [`spawn`]).
pub struct Pending {
    read: OwnedFd,
    id: String,
    dir: PathBuf,
}

/// Spawns the monitor, which creates the container with the runtime; returns
/// once the container exists, or the runtime's error.
pub fn spawn(spec: &MonitorSpec<'_>) -> Result<Started> {
    spawn_begin(spec)?.finish()
}

/// Starts the monitor and returns while the runtime creates the container;
/// [`Pending::finish`] waits for the outcome.
pub fn spawn_begin(spec: &MonitorSpec<'_>) -> Result<Pending> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| EngineError::io("creating the monitor's sync pipe")(e.into()))?;
    // The write end must survive exec: clear its close-on-exec flag. The
    // CLI is single-threaded, so no other spawn can inherit it meanwhile.
    rustix::io::fcntl_setfd(&write, rustix::io::FdFlags::empty())
        .map_err(|e| EngineError::io("preparing the monitor's sync pipe")(e.into()))?;
    let mut cmd = Command::new(spec.monitor);
    cmd.arg("--id")
        .arg(spec.id)
        .arg("--runtime")
        .arg(spec.runtime);
    for a in &spec.runtime_args {
        cmd.arg(format!("--runtime-arg={a}"));
    }
    cmd.arg("--bundle")
        .arg(spec.bundle)
        .arg("--dir")
        .arg(spec.dir)
        .arg("--log-driver")
        .arg(spec.log_driver)
        .arg("--log-path")
        .arg(spec.log_path)
        .arg("--sync-fd")
        .arg(write.as_raw_fd().to_string());
    if spec.terminal {
        cmd.arg("--terminal");
    }
    if spec.stdin {
        cmd.arg("--stdin");
    }
    if let Some((exe, args)) = spec.exit_command.split_first() {
        cmd.arg("--exit-command").arg(exe);
        for a in args {
            cmd.arg(format!("--exit-command-arg={a}"));
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let status = cmd.status().map_err(EngineError::io(format!(
        "starting the monitor {}",
        spec.monitor.display()
    )))?;
    drop(write);
    if !status.success() {
        return Err(EngineError::Runtime {
            id: spec.id.to_string(),
            message: format!("the monitor {} failed: {status}", spec.monitor.display()),
            exit_code: None,
        });
    }
    Ok(Pending {
        read,
        id: spec.id.to_string(),
        dir: spec.dir.to_path_buf(),
    })
}

impl Pending {
    /// Waits until the container exists (or the runtime failed).
    pub fn finish(self) -> Result<Started> {
        let Self { read, id, dir } = self;
        finish(read, &id, &dir)
    }
}

fn finish(read: OwnedFd, id: &str, dir: &Path) -> Result<Started> {
    let mut text = String::new();
    std::fs::File::from(read)
        .read_to_string(&mut text)
        .map_err(EngineError::io("reading the monitor's sync pipe"))?;
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let reply: SyncReply = serde_json::from_str(line).map_err(|_| EngineError::Runtime {
        id: id.to_string(),
        message: if line.is_empty() {
            "the monitor exited without creating the container".into()
        } else {
            format!("unexpected answer from the monitor: {line}")
        },
        exit_code: None,
    })?;
    if let Some(error) = reply.error {
        return Err(EngineError::Runtime {
            id: id.to_string(),
            exit_code: Some(classify_exec_error(&error)),
            message: error,
        });
    }
    let pid = reply.pid.unwrap_or(0);
    let monitor_pid = std::fs::read_to_string(dir.join("monitor.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    Ok(Started { pid, monitor_pid })
}

/// podman's exit codes for a container command that cannot run: 127 when
/// it does not exist, 126 when it cannot be executed, else 125.
pub fn classify_exec_error(msg: &str) -> i32 {
    let m = msg.to_ascii_lowercase();
    let about_exec = m.contains("exec") || m.contains("executable") || m.contains("command");
    if m.contains("not found") || (about_exec && m.contains("no such file")) {
        127
    } else if about_exec && (m.contains("permission denied") || m.contains("is a directory")) {
        126
    } else {
        125
    }
}

/// The exit file the monitor writes.
#[derive(Debug, Clone, Deserialize)]
pub struct ExitFile {
    /// Exit status, or 128 + signal.
    pub exit_code: i32,
    /// Unix nanoseconds.
    #[serde(default)]
    pub exited_at: i64,
    /// Killed by the OOM killer.
    #[serde(default)]
    pub oom_killed: bool,
}

/// Reads the exit file, if the container has exited.
pub fn read_exit(dir: &Path) -> Option<ExitFile> {
    let s = std::fs::read_to_string(dir.join("exit")).ok()?;
    serde_json::from_str(&s).ok()
}

/// A connection to the monitor's attach socket.
pub struct AttachConn {
    fd: OwnedFd,
}

impl AttachConn {
    /// Connects to `DIR/attach` (through `/proc/self/fd` so that long paths
    /// work).
    pub fn connect(dir: &Path) -> Result<Self> {
        let err = |e: rustix::io::Errno| {
            EngineError::io(format!("attaching to {}", dir.join("attach").display()))(e.into())
        };
        let dirfd = rustix::fs::open(
            dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(err)?;
        let path = PathBuf::from(format!("/proc/self/fd/{}/attach", dirfd.as_raw_fd()));
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(err)?;
        let addr = SocketAddrUnix::new(&path).map_err(err)?;
        rustix::net::connect(&fd, &addr).map_err(err)?;
        Ok(Self { fd })
    }

    /// The socket.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Sends one frame.
    pub fn send(&self, kind: u8, data: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(data.len() + 1);
        buf.push(kind);
        buf.extend_from_slice(data);
        rustix::net::send(self.fd.as_fd(), &buf, rustix::net::SendFlags::NOSIGNAL)?;
        Ok(())
    }

    /// Sends a terminal size.
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        let mut b = [0u8; 4];
        b[..2].copy_from_slice(&rows.to_le_bytes());
        b[2..].copy_from_slice(&cols.to_le_bytes());
        self.send(FRAME_RESIZE, &b)
    }

    /// Receives one frame into `buf`; returns its length (0 = closed).
    /// A reset (the monitor closed with a frame of ours unread) is not the
    /// end: the frames it sent before closing are still delivered after it.
    pub fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut resets = 0;
        loop {
            match rustix::net::recv(self.fd.as_fd(), &mut *buf, rustix::net::RecvFlags::empty()) {
                Ok((n, _)) => return Ok(n),
                Err(rustix::io::Errno::CONNRESET) if resets == 0 => resets += 1,
                Err(rustix::io::Errno::CONNRESET) => return Ok(0),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_errors_map_to_podman_codes() {
        assert_eq!(
            classify_exec_error("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(
            classify_exec_error("exec /etc/passwd: permission denied"),
            126
        );
        assert_eq!(
            classify_exec_error("mounting /proc: permission denied"),
            125
        );
    }
}
