//! CVE-2019-5736 protection.
//!
//! The container's process is executed through a tiny static trampoline
//! held in a sealed memfd ([`exec_guarded`]): when container code first
//! runs, `/proc/self/exe` is that immutable memfd, so an image whose
//! entrypoint is (or whose `#!` points at) `/proc/self/exe` can never reach
//! the host's barge-runtime binary. Before that point the runtime process is
//! non-dumpable, so other container processes cannot open its
//! `/proc/<pid>/exe` either. Copying all of barge-runtime into a memfd and
//! re-executing it (what runc does, ~8 ms here) is only the fallback for
//! architectures without the trampoline ([`ensure_cloned`]).

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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

/// The exec trampoline (`trampoline/trampoline.c`), built by `build.rs`;
/// empty on architectures it does not support.
static TRAMPOLINE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trampoline"));

/// Whether this build has the trampoline. Without it, `create`, `run` and
/// `exec` must run from a full sealed copy ([`ensure_cloned`]).
pub fn has_trampoline() -> bool {
    !TRAMPOLINE.is_empty()
}

/// A sealed memfd holding the exec trampoline (a few hundred bytes), or
/// `None` without one.
pub fn trampoline() -> Result<Option<OwnedFd>, RuntimeError> {
    if TRAMPOLINE.is_empty() {
        return Ok(None);
    }
    let memfd = rustix::fs::memfd_create(
        "barge-exec",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .ctx(|| "memfd_create for the exec trampoline".to_string())?;
    let mut left = TRAMPOLINE;
    while !left.is_empty() {
        let n =
            rustix::io::write(&memfd, left).ctx(|| "writing the exec trampoline".to_string())?;
        left = &left[n..];
    }
    rustix::fs::fcntl_add_seals(&memfd, SEALS).ctx(|| "sealing the exec trampoline".to_string())?;
    Ok(Some(memfd))
}

/// Execute `exe` with `argv`/`env`, through the trampoline when there is
/// one, so that the new program's `/proc/self/exe` is never the host binary
/// at any point. Returns only on failure.
pub fn exec_guarded(
    trampoline: Option<&OwnedFd>,
    exe: &std::path::Path,
    argv: &[String],
    env: &[String],
) -> RuntimeError {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| {
            RuntimeError::Other(format!(
                "argument {:?} contains NUL",
                String::from_utf8_lossy(s)
            ))
        })
    };
    let build = || -> Result<(Vec<CString>, Vec<CString>), RuntimeError> {
        let mut a = Vec::with_capacity(argv.len() + 2);
        if trampoline.is_some() {
            a.push(cstr(b"barge-exec")?);
            a.push(cstr(exe.as_os_str().as_bytes())?);
        }
        for s in argv {
            a.push(cstr(s.as_bytes())?);
        }
        let e = env
            .iter()
            .map(|s| cstr(s.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((a, e))
    };
    let (a, e) = match build() {
        Ok(v) => v,
        Err(err) => return err,
    };
    if let Some(fd) = trampoline {
        let err = barge_sys::execveat_fd(fd.as_fd(), &a, &e);
        return RuntimeError::io("executing the exec trampoline", err);
    }
    // No trampoline: this process already runs from a sealed copy.
    let mut cmd = std::process::Command::new(exe);
    if let Some((argv0, rest)) = argv.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    RuntimeError::io(format!("exec {}", exe.display()), cmd.exec())
}

/// Whether a runtime process entering this container must run from a full
/// sealed copy of itself. With the trampoline, the only window in which the
/// host binary is the process's executable is the setup before the final
/// exec, while the process is non-dumpable: only a process holding
/// CAP_SYS_PTRACE in the host user namespace can open its `/proc/<pid>/exe`
/// then. So the copy is needed when the container has no user namespace of
/// its own, its bounding set includes CAP_SYS_PTRACE, and other container
/// processes may already exist (`exec`, or a joined pid namespace).
pub fn needs_full_copy(spec: &oci_spec::runtime::Spec, existing_processes: bool) -> bool {
    use oci_spec::runtime::{Capability, LinuxNamespaceType};
    if !has_trampoline() {
        return true;
    }
    let linux = spec.linux().as_ref();
    let joins_pid = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_some())
        });
    let shares_host_pid = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_none_or(|ns| !ns.iter().any(|n| n.typ() == LinuxNamespaceType::Pid));
    if !(existing_processes || joins_pid || shares_host_pid) {
        return false;
    }
    let has_userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    if has_userns {
        return false;
    }
    spec.process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .is_some_and(|b| b.contains(&Capability::SysPtrace))
}

/// Whether any of `pids` may hold CAP_SYS_PTRACE (in its bounding set).
/// A process started by `exec --cap CAP_SYS_PTRACE` or a privileged
/// `--process` has it even when the container's config does not.
pub fn any_ptrace_capable(pids: &[i32]) -> bool {
    const CAP_SYS_PTRACE: u32 = 19;
    pids.iter().any(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .is_some_and(|bnd| bnd & (1 << CAP_SYS_PTRACE) != 0)
    })
}
