//! Helpers for small daemons such as `barge-monitor`: taking ownership of an
//! inherited fd, closing every other fd, and `execv`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Take ownership of a file descriptor inherited from the parent process
/// (e.g. `--sync-fd 3`). Fails with `EBADF` if `fd` is not open and refuses
/// the standard streams 0–2.
///
/// Call this only at process start, for an fd number the parent passed on
/// purpose, and only once per fd: the returned [`OwnedFd`] closes it.
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: F_GETFD only inspects the fd table; no memory is involved.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked above) and, per the contract above,
    // inherited from the parent and owned by nothing else in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Close every fd from 3 upwards except `keep` (`close_range(2)`). Call it
/// before any Rust code holds an fd of its own (other than `keep`), as a
/// daemon does right after it starts.
pub fn close_fds_except(keep: Option<RawFd>) -> io::Result<()> {
    let close = |first: u32, last: u32| -> io::Result<()> {
        if first > last {
            return Ok(());
        }
        // SAFETY: close_range only closes fds; the caller contract says no
        // Rust object owns any of them (except `keep`, which is skipped).
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    match keep {
        Some(k) if k >= 3 => {
            close(3, k as u32 - 1)?;
            close(k as u32 + 1, u32::MAX)
        }
        _ => close(3, u32::MAX),
    }
}

/// `execv(path, argv)` with the current environment. Returns only on
/// failure. Call it in a forked child of a single-threaded process (or as
/// the last act of a process).
pub fn execv(path: &CStr, argv: &[CString]) -> io::Error {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `path` is a valid C string and `ptrs` a NULL-terminated array
    // of pointers into CStrings that outlive the call. On success the call
    // does not return.
    unsafe { libc::execv(path.as_ptr(), ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// The kernel's `struct sigaction` on x86_64 and aarch64 (not glibc's).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Reset every signal 1–64 to `SIG_DFL` with the raw `rt_sigaction`
/// syscall. Unlike glibc's `signal`/`sigaction`, this also reaches signals
/// 32 and 33 (reserved by glibc, refused by its wrappers), which a parent
/// may have left ignored and which `execve` would otherwise pass on.
/// SIGKILL/SIGSTOP are skipped. Only for processes that have installed no
/// handler of their own they still rely on (a fresh daemon, a child about
/// to exec).
pub fn reset_all_signal_dispositions() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `dfl` is a valid kernel sigaction of the size passed;
        // installing SIG_DFL cannot invalidate memory. The old action is
        // not wanted (NULL).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::from_ref(&dfl),
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_rejects_stdio_and_closed_fds() {
        assert!(take_inherited_fd(1).is_err());
        assert!(take_inherited_fd(1_000_000).is_err());
    }
}
