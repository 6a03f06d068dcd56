//! Engine errors, worded like podman's.

use barge_image::commit::CommitError;
use barge_image::docker_archive::ArchiveError;
use barge_image::{LayoutError, StoreError};
use barge_registry::RegistryError;

/// An engine error; its message is what the CLI prints after `Error: `.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No image matches the reference.
    #[error("{0}: image not known")]
    ImageNotKnown(String),
    /// The request was invalid.
    #[error("{0}")]
    Invalid(String),
    /// The feature is not implemented.
    #[error("{0} is not supported yet")]
    NotSupported(String),
    /// The local image store failed.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// Import or export of an OCI layout failed.
    #[error(transparent)]
    Layout(Box<LayoutError>),
    /// Talking to a registry failed; `context` says what was being done.
    #[error("{context}: {source}")]
    Registry {
        /// What was being done, e.g. `initializing source docker://…`.
        context: String,
        /// The registry error.
        #[source]
        source: Box<RegistryError>,
    },
    /// No container matches.
    #[error("no container with name or ID \"{0}\" found: no such container")]
    NoSuchContainer(String),
    /// No pod matches.
    #[error("no pod with name or ID {0} found: no such pod")]
    NoSuchPod(String),
    /// A pod name is taken (by a pod or a container: they share names).
    #[error("adding pod to state: name \"{0}\" is in use: pod already exists")]
    PodExists(String),
    /// A container, pod, network or volume name is taken.
    #[error("the container name \"{0}\" is already in use. You have to remove that container to be able to reuse that name: that name is already in use")]
    NameInUse(String),
    /// The container is in the wrong state for the action.
    #[error("can only {action} running containers: {name} is in state {state}: container state improper")]
    InvalidState {
        /// Container name.
        name: String,
        /// Its state.
        state: String,
        /// What was asked.
        action: String,
    },
    /// The OCI runtime or the monitor failed.
    #[error("{message}: OCI runtime error")]
    Runtime {
        /// Container id.
        id: String,
        /// The runtime's message.
        message: String,
        /// podman's exit code for it (126/127 for exec failures).
        exit_code: Option<i32>,
    },
    /// Network plumbing failed.
    #[error(transparent)]
    Network(Box<barge_net::NetError>),
    /// A user-mode network helper (pasta, slirp4netns) is not installed.
    #[error("--network {binary} needs {binary}, which is not in PATH: install the {package} package (apt-get install {package})")]
    HelperMissing {
        /// The binary (`pasta`, `slirp4netns`).
        binary: String,
        /// The package that ships it.
        package: String,
    },
    /// A user-mode network helper failed to start or to publish a port.
    #[error("{helper} for container {id}: {message}")]
    HelperFailed {
        /// The binary.
        helper: String,
        /// Container id.
        id: String,
        /// What went wrong, with the helper's own message.
        message: String,
    },
    /// The state database failed.
    #[error(transparent)]
    Db(Box<crate::db::DbError>),
    /// registries.conf could not be loaded, or a short name could not be
    /// resolved with it.
    #[error(transparent)]
    Registries(Box<RegistryError>),
    /// A pull tried several references (search registries, mirrors) and
    /// each failed; the message lists every attempt.
    #[error("{0}")]
    PullFailed(String),
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A docker-archive could not be read or written.
    #[error(transparent)]
    Archive(Box<ArchiveError>),
    /// Building an image (import, commit) failed.
    #[error(transparent)]
    Commit(Box<CommitError>),
    /// A Kubernetes YAML file could not be played.
    #[error(transparent)]
    Kube(Box<crate::kube::KubeError>),
    /// A `containers.conf` file could not be used.
    #[error(transparent)]
    Config(Box<crate::config::ConfigError>),
}

impl From<crate::kube::KubeError> for EngineError {
    fn from(e: crate::kube::KubeError) -> Self {
        Self::Kube(Box::new(e))
    }
}

impl From<crate::config::ConfigError> for EngineError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Config(Box::new(e))
    }
}

impl EngineError {
    /// Whether the error means that an image was not found (podman's exit
    /// code 1 for `rmi`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::ImageNotKnown(_))
            || matches!(self, Self::Store(e) if matches!(**e, StoreError::ImageNotFound(_)))
    }

    /// The exit code the CLI should leave with (podman's conventions).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Runtime {
                exit_code: Some(c), ..
            } => *c,
            _ => 125,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn registry(context: impl Into<String>) -> impl FnOnce(RegistryError) -> Self {
        let context = context.into();
        move |source| Self::Registry {
            context,
            source: Box::new(source),
        }
    }
}

impl From<RegistryError> for EngineError {
    fn from(e: RegistryError) -> Self {
        Self::Registries(Box::new(e))
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<LayoutError> for EngineError {
    fn from(e: LayoutError) -> Self {
        match e {
            LayoutError::Store(s) => s.into(),
            e => Self::Layout(Box::new(e)),
        }
    }
}

impl From<ArchiveError> for EngineError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Store(s) => s.into(),
            ArchiveError::Layout(l) => l.into(),
            e => Self::Archive(Box::new(e)),
        }
    }
}

impl From<CommitError> for EngineError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(StoreError::ImageNotFound(r)) => Self::ImageNotKnown(r),
            CommitError::Store(s) => s.into(),
            CommitError::Layout(l) => l.into(),
            e => Self::Commit(Box::new(e)),
        }
    }
}

/// Result alias of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
