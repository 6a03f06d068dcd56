//! The runtime's error type.

use std::path::PathBuf;

/// Everything that can go wrong in a runtime operation. Messages name the
/// container id, path or pid involved.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Spec(#[from] barge_oci::SpecError),
    #[error(transparent)]
    Cgroup(#[from] barge_cgroups::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {id} is {status}, {action} needs it to be {wanted}")]
    BadStatus {
        id: String,
        status: String,
        action: &'static str,
        wanted: &'static str,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("container init failed: {0}")]
    Init(String),
    #[error("{0}")]
    Hook(String),
    #[error("invalid state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("unknown signal {0:?}")]
    Signal(String),
    #[error(
        "container {id} has no cgroup (a rootless container without cgroup delegation): {action} needs one"
    )]
    NoCgroup { id: String, action: &'static str },
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    /// Wrap an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<rustix::io::Errno> for RuntimeError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Other(std::io::Error::from(e).to_string())
    }
}

/// Attach context to `std::io::Result` / `rustix::io::Result`.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, RuntimeError>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, RuntimeError> {
        self.map_err(|e| RuntimeError::io(context(), e))
    }
}

impl<T> Context<T> for rustix::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, RuntimeError> {
        self.map_err(|e| RuntimeError::io(context(), e.into()))
    }
}
