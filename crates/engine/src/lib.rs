//! barge's engine library: the operations behind the `barge` CLI. Each
//! operation takes an options struct and returns a report struct; the CLI
//! only parses flags and prints reports.
//!
//! * [`images`]: pull, push, list, remove, tag, untag, inspect, history,
//!   save, load, prune, login, logout and store check.
//! * [`containers`]: create, start, stop, kill, remove, exec, logs,
//!   inspect… through the monitor and the OCI runtime's CLI.
//! * [`kube`]: `kube play`, `kube down`, `kube generate` (Kubernetes YAML).
//! * [`networks`], [`volumes`]: networks and named volumes.
//! * [`pods`]: pods (containers sharing an infra container's namespaces).
//! * [`usernet`]: `--network pasta` and `--network slirp4netns` (user-mode
//!   networking helpers).
//! * [`system`]: `system prune`, `system reset`, `info`, `version`.
//! * [`config`]: `containers.conf` defaults for new containers.
//! * [`db`]: the SQLite state shared by every `barge` process.
//! * [`archive`]: docker-archive save/load, archive detection (plain,
//!   gzip, zstd) and `import` of a rootfs tarball.
//! * [`template`]: a small subset of Go templates for `--format`.
#![forbid(unsafe_code)]
#![recursion_limit = "512"]

pub mod archive;
pub mod config;
pub mod containers;
pub mod db;
pub mod error;
pub mod images;
pub mod kube;
mod layer_stream;
pub mod networks;
pub mod pods;
pub mod portfwd;
pub mod rootless;
pub mod system;
pub mod template;
pub mod timing;
pub mod usernet;
pub mod volumes;

/// The network containers join by default.
pub const DEFAULT_NETWORK: &str = "barge";

pub use error::{EngineError, Result};
