//! barge's syscall supervisor (see docs/supervisor.md).
//!
//! Inside a user namespace `mknod` of devices, `mount` of most filesystems
//! and `trusted.*` extended attributes fail, which breaks package managers,
//! overlay-on-overlay and build tools. With seccomp user notification the
//! container's calls of `mknod`/`mknodat`, `mount` and
//! `setxattr`/`lsetxattr`/`fsetxattr` stop in the kernel and are reported
//! to this supervisor, which reads the arguments safely ([`target`]),
//! decides by [`policy`], performs allowed calls on the caller's behalf in
//! its namespaces with its credentials and umask ([`action`]) and answers;
//! everything else continues in the kernel or is refused
//! ([`supervisor`]).
//!
//! `unsafe` stays in `barge-sys` (`barge_sys::notify`).

#![forbid(unsafe_code)]

pub mod action;
pub mod policy;
pub mod supervisor;
pub mod syscalls;
pub mod target;

pub use policy::{Policy, PolicyError, ANNOTATION_PREFIX};
pub use supervisor::{Options, Report, Supervisor, SupervisorError};
