//! barge's OCI runtime core: everything `barge-runtime` does, as a library.
//!
//! The process model (see `docs/runtime.md`):
//! - `create` runs in a single-threaded process. It validates the bundle,
//!   creates the cgroup, and `clone3`s the container init straight into its
//!   namespaces and cgroup (no re-exec of a helper binary). The two talk over
//!   a typed one-way-at-a-time [`channel`]. The init prepares the rootfs,
//!   drops privileges, and blocks on the `exec.fifo` until `start`.
//! - `exec` joins a running container with one `setns(pidfd, …)` call in a
//!   child cloned into the container's cgroup.
//! - Before entering any container namespace the runtime re-executes itself
//!   from a sealed memfd ([`selfclone`]), so a container never sees a
//!   writable handle to the host binary (CVE-2019-5736).

pub mod caps;
pub mod channel;
pub mod console;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod init;
pub mod namespaces;
pub mod rootfs;
pub mod seccomp;
pub mod selfclone;
pub mod state;
pub mod util;

pub use error::RuntimeError;
