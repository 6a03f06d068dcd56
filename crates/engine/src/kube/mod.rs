//! `kube play`, `kube down` and `kube generate`: Kubernetes YAML (Pod,
//! Deployment, ConfigMap, PersistentVolumeClaim) as pods, containers and
//! volumes, and back.
//!
//! `play` parses and validates the whole file first ([`parse`]: pure, every
//! error names the field), then checks it against the engine's state
//! (names free, images present or pulled, host paths), and only then
//! creates anything; a failure half-way removes what was made.

pub mod generate;
pub mod parse;
pub mod play;
pub mod yaml;

pub use parse::{parse, KubeFile, ParseError};
pub use play::{DownReport, PlayOptions, PlayReport, PlayedPod};

/// A `kube` operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The file is not valid for `kube play`.
    #[error("{file}: {error}")]
    Parse {
        /// The file as given.
        file: String,
        /// What is wrong.
        error: ParseError,
    },
}
