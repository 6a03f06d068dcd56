//! Errors of the cgroup managers. Every message names the file or directory
//! involved (and the value written, for writes).

use std::io;
use std::path::PathBuf;

/// Strip the " (os error N)" suffix `io::Error` adds, keeping "Invalid argument".
pub(crate) fn os_msg(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Writing a control file failed.
    #[error("writing {value:?} to {}: {}", .path.display(), os_msg(.source))]
    Write {
        /// The control file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Reading a control file failed.
    #[error("reading {}: {}", .path.display(), os_msg(.source))]
    Read {
        /// The control file.
        path: PathBuf,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Creating a cgroup directory failed.
    #[error("creating cgroup {}: {}", .path.display(), os_msg(.source))]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Removing a cgroup directory failed.
    #[error("removing cgroup {}: {}", .path.display(), os_msg(.source))]
    Rmdir {
        /// The directory.
        path: PathBuf,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Opening a cgroup directory failed.
    #[error("opening {}: {}", .path.display(), os_msg(.source))]
    Open {
        /// The directory.
        path: PathBuf,
        /// The kernel's answer.
        source: io::Error,
    },
    /// A control file held something unexpected.
    #[error("parsing {}: {reason} (content {content:?})", .path.display())]
    Parse {
        /// The control file.
        path: PathBuf,
        /// What was read.
        content: String,
        /// Why it does not parse.
        reason: String,
    },
    /// No cgroup filesystem is mounted (or /proc is missing).
    #[error("no cgroup filesystem found: {0}")]
    NoCgroupFs(String),
    /// A hierarchy the operation needs is not mounted.
    #[error("cgroup controller {0:?} is not available on this host")]
    MissingController(String),
    /// The requested resource cannot be expressed on this cgroup version.
    #[error("{0}")]
    Unsupported(String),
    /// The configuration is invalid.
    #[error("invalid cgroup configuration: {0}")]
    InvalidConfig(String),
    /// A bpf(2) operation for the v2 device controller failed.
    #[error("{op} on {}: {}", .path.display(), os_msg(.source))]
    Bpf {
        /// What was being done ("loading device filter", ...).
        op: String,
        /// The cgroup2 directory.
        path: PathBuf,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Freezing did not complete in time.
    #[error("timed out waiting for {} to become {state}", .path.display())]
    FreezeTimeout {
        /// The freezer control file.
        path: PathBuf,
        /// Wanted state.
        state: String,
    },
    /// Signalling a process failed.
    #[error("sending signal {signal} to pid {pid}: {}", os_msg(.source))]
    Signal {
        /// Target pid.
        pid: i32,
        /// Signal number.
        signal: i32,
        /// The kernel's answer.
        source: io::Error,
    },
}

impl CgroupError {
    /// The underlying OS error, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Self::Write { source, .. }
            | Self::Read { source, .. }
            | Self::Mkdir { source, .. }
            | Self::Rmdir { source, .. }
            | Self::Open { source, .. }
            | Self::Bpf { source, .. }
            | Self::Signal { source, .. } => Some(source),
            _ => None,
        }
    }
}
