//! barge's engine library: the operations behind the `barge` CLI. Each
//! operation takes an options struct and returns a report struct; the CLI
//! only parses flags and prints reports.
//!
//! * [`images`]: pull, push, list, remove, tag, untag, inspect, history,
//!   save, load, prune, login, logout and store check.
//! * [`archive`]: docker-archive save/load, archive detection (plain,
//!   gzip, zstd) and `import` of a rootfs tarball.
//! * [`template`]: a small subset of Go templates for `--format`.
#![forbid(unsafe_code)]

pub mod archive;
pub mod error;
pub mod images;
pub mod template;

pub use error::{EngineError, Result};
