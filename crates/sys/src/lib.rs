//! The few places where barge talks to the kernel without a safe wrapper.
//!
//! Everything else in barge uses `rustix` (or `nix`-style safe APIs). Each
//! `unsafe` block here carries a `// SAFETY:` comment explaining why the call
//! is sound. Keep this crate small: a wrapper belongs here only when no safe
//! crate offers it.

pub mod bpf;
pub mod daemon;
pub mod notify;
pub mod process;
pub mod signal;

pub use process::{
    clone3, close_range_cloexec, execveat_fd, exit_now, fork, mount_setattr_idmap, personality,
    unshare_namespaces, CloneArgs, Fork,
};
