use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while plumbing a container's network.
/// Messages name the operation and the device, path or id involved.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// An rtnetlink request failed.
    #[error("netlink: {op} {target}: {source}")]
    Netlink {
        op: &'static str,
        target: String,
        #[source]
        source: io::Error,
    },
    /// A network namespace could not be created, entered or removed.
    #[error("network namespace {path}: {op}: {source}")]
    Netns {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// A helper thread used to enter a namespace panicked.
    #[error("network namespace {path}: helper thread panicked")]
    NetnsThread { path: PathBuf },
    /// A device name, container id or other identifier is unusable.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A device exists but is not what barge expects.
    #[error("device {name}: {reason}")]
    Device { name: String, reason: String },
    /// `nft` could not be started or rejected the ruleset.
    #[error("nftables: {what}: {detail}")]
    Nft { what: String, detail: String },
    /// A `-p` port specification is invalid.
    #[error("invalid port specification {spec:?}: {reason}")]
    PortSpec { spec: String, reason: String },
    /// No free host port could be found.
    #[error("no free host port for {what}: {source}")]
    NoFreePort {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A subnet or address specification is invalid.
    #[error("invalid subnet {spec:?}: {reason}")]
    Subnet { spec: String, reason: String },
    /// Every address (or subnet) of a pool is in use.
    #[error("no free address left in {pool}")]
    Exhausted { pool: String },
    /// A sysctl could not be read or written.
    #[error("sysctl {path}: {source}")]
    Sysctl {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file (hosts, resolv.conf, mountinfo) could not be read or written.
    #[error("{path}: {op}: {source}")]
    File {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl NetError {
    pub(crate) fn netlink(op: &'static str, target: impl Into<String>, source: io::Error) -> Self {
        NetError::Netlink {
            op,
            target: target.into(),
            source,
        }
    }

    pub(crate) fn netns(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        NetError::Netns {
            path: path.into(),
            op,
            source,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        NetError::File {
            path: path.into(),
            op,
            source,
        }
    }
}
