//! Signal masks and signalfd, used by `barge-runtime run`/`exec` to forward
//! signals to the container while waiting for it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A set of signal numbers.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl std::fmt::Debug for SigSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigSet")
    }
}

impl SigSet {
    /// The empty set.
    pub fn empty() -> Self {
        // SAFETY: sigset_t is a plain bit array; sigemptyset initialises it.
        let mut set = unsafe { std::mem::zeroed::<libc::sigset_t>() };
        // SAFETY: `set` is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&raw mut set) };
        Self(set)
    }

    /// Every signal except SIGKILL/SIGSTOP (which cannot be blocked anyway),
    /// SIGCHLD is included.
    pub fn all() -> Self {
        // SAFETY: as in `empty`.
        let mut set = unsafe { std::mem::zeroed::<libc::sigset_t>() };
        // SAFETY: `set` is a valid, writable sigset_t.
        unsafe { libc::sigfillset(&raw mut set) };
        Self(set)
    }

    /// Add one signal.
    pub fn add(&mut self, sig: i32) {
        // SAFETY: `self.0` is an initialised sigset_t; invalid numbers only
        // make sigaddset return EINVAL.
        unsafe { libc::sigaddset(&raw mut self.0, sig) };
    }
}

/// Block `set` for the calling thread and return the previous mask.
pub fn block(set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: both pointers are valid sigset_t values owned by us.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set.0, &raw mut old.0) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(old)
}

/// Replace the calling thread's signal mask with `set`.
pub fn set_mask(set: &SigSet) -> io::Result<()> {
    // SAFETY: the pointer is a valid sigset_t; the old mask is not wanted.
    let ret =
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &raw const set.0, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Reset every catchable signal's disposition to the default (a child about
/// to exec the container process must not inherit ignored signals).
pub fn reset_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound; errors for reserved
        // signal numbers are ignored on purpose.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// A signalfd delivering the signals of `set` (which must be blocked).
pub fn signalfd(set: &SigSet) -> io::Result<OwnedFd> {
    // SAFETY: -1 asks for a new fd; the mask pointer is valid.
    let fd = unsafe { libc::signalfd(-1, &raw const set.0, libc::SFD_CLOEXEC) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read one signal number from a signalfd (blocking).
pub fn read_signal(fd: &OwnedFd) -> io::Result<i32> {
    // SAFETY: signalfd_siginfo is plain old data; all-zero is valid.
    let mut info = unsafe { std::mem::zeroed::<libc::signalfd_siginfo>() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: we pass a writable buffer of exactly `size` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), std::ptr::from_mut(&mut info).cast(), size) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != size {
        return Err(io::Error::other("short read from signalfd"));
    }
    Ok(info.ssi_signo as i32)
}

extern "C" fn exit_with_signal(sig: libc::c_int) {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(128 + sig) }
}

/// Make each of `signals` end the process at once (exit status 128+signal).
///
/// Used by the container init while it waits for `start`: as pid 1 of its
/// namespace it would otherwise ignore default-action signals such as
/// SIGTERM, so `kill <created container> TERM` would do nothing.
pub fn exit_on(signals: &[i32]) -> io::Result<()> {
    for &sig in signals {
        // SAFETY: a zeroed sigaction is a valid starting point; we set a
        // handler that only calls the async-signal-safe `_exit`.
        let mut act = unsafe { std::mem::zeroed::<libc::sigaction>() };
        act.sa_sigaction = exit_with_signal as extern "C" fn(libc::c_int) as usize;
        // SAFETY: `act` is fully initialised; the old action is not wanted.
        let ret = unsafe { libc::sigaction(sig, &raw const act, std::ptr::null_mut()) };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
