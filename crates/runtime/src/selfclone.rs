//! CVE-2019-5736 protection: before a runtime process enters a container's
//! namespaces it re-executes itself from a sealed, anonymous memfd copy.
//! A container process that reaches `/proc/<pid>/exe` of the runtime then
//! finds an immutable in-memory file, never the host binary.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

use crate::error::{Context, RuntimeError};

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Whether this process already runs from a sealed memfd.
pub fn is_cloned() -> bool {
    let Ok(fd) = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    rustix::fs::fcntl_get_seals(&fd).is_ok_and(|s| s.contains(SEALS))
}

/// Re-execute from a sealed memfd copy unless already doing so. Returns only
/// on error.
pub fn ensure_cloned() -> Result<(), RuntimeError> {
    if is_cloned() {
        return Ok(());
    }
    let exe = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "opening /proc/self/exe".to_string())?;
    let size = rustix::fs::fstat(&exe)
        .ctx(|| "stat /proc/self/exe".to_string())?
        .st_size as u64;
    let memfd = rustix::fs::memfd_create(
        "barge-runtime",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .ctx(|| "memfd_create".to_string())?;
    let mut copied = 0u64;
    while copied < size {
        let n = rustix::fs::sendfile(&memfd, &exe, None, (size - copied) as usize)
            .ctx(|| "copying the runtime binary into a memfd".to_string())?;
        if n == 0 {
            break;
        }
        copied += n as u64;
    }
    rustix::fs::fcntl_add_seals(&memfd, SEALS).ctx(|| "sealing the memfd".to_string())?;
    let args: Vec<OsString> = std::env::args_os().collect();
    let path = format!("/proc/self/fd/{}", memfd.as_fd().as_raw_fd());
    let mut cmd = std::process::Command::new(path);
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    let err = cmd.exec();
    Err(RuntimeError::io("re-executing from the sealed memfd", err))
}
