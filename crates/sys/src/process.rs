//! Process creation and a handful of process-wide syscalls.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::process::Pid;

/// Result of a successful `fork`/`clone3`: which side of the split we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// We are the new process.
    Child,
    /// We are the caller; the new process has this pid (in our pid namespace).
    Parent(Pid),
}

/// Arguments for [`clone3`].
#[derive(Debug, Default, Clone, Copy)]
pub struct CloneArgs<'a> {
    /// `CLONE_*` flags (namespaces and friends). `CLONE_INTO_CGROUP` is added
    /// automatically when `cgroup` is set.
    pub flags: u64,
    /// A cgroup2 directory fd the child starts in (`CLONE_INTO_CGROUP`).
    pub cgroup: Option<BorrowedFd<'a>>,
}

#[repr(C)]
#[derive(Default)]
struct RawCloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(2)` without a new stack: fork-like semantics (the child returns
/// here on a copy of our stack) plus namespace flags and `CLONE_INTO_CGROUP`.
///
/// Only call this from a single-threaded process: the child gets a copy of
/// the address space with only the calling thread, so locks held by other
/// threads would stay locked forever. barge's runtime never starts threads.
pub fn clone3(args: &CloneArgs<'_>) -> io::Result<Fork> {
    let mut raw = RawCloneArgs {
        flags: args.flags,
        exit_signal: libc::SIGCHLD as u64,
        ..RawCloneArgs::default()
    };
    if let Some(fd) = args.cgroup {
        raw.flags |= CLONE_INTO_CGROUP;
        raw.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `raw` is a valid, fully initialised `clone_args` of the size we
    // pass. With `stack == 0` the kernel duplicates the caller's stack like
    // fork(), so returning in both processes is sound. The caller contract
    // (single-threaded process) is documented above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_mut(&mut raw),
            std::mem::size_of::<RawCloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid_from_raw(pid as i32)?)),
    }
}

/// Plain `fork(2)`. Same single-threaded contract as [`clone3`].
pub fn fork() -> io::Result<Fork> {
    // SAFETY: fork has no memory-safety preconditions for a single-threaded
    // caller; in the child we only continue on this thread.
    let ret = unsafe { libc::fork() };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid_from_raw(pid)?)),
    }
}

fn pid_from_raw(pid: i32) -> io::Result<Pid> {
    Pid::from_raw(pid).ok_or_else(|| io::Error::other("kernel returned an invalid pid"))
}

/// Terminate the calling process at once, without running destructors or
/// atexit handlers (what a forked child must do on failure).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Mark every fd from `first` upwards close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`), so that nothing of ours leaks into the container.
pub fn close_range_cloexec(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only touches this process's fd table; marking fds
    // close-on-exec cannot invalidate any Rust-owned fd.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            libc::c_uint::from(first),
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the execution domain (`personality(2)`). Returns the previous value.
pub fn personality(persona: u64) -> io::Result<u64> {
    // SAFETY: personality takes a plain integer and changes only how the
    // kernel treats this process; no memory is involved.
    let ret = unsafe { libc::personality(persona as libc::c_ulong) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret as u64)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Turn a detached mount (from `open_tree(OPEN_TREE_CLONE)`) into an
/// idmapped mount using the mapping of the user namespace `userns`.
pub fn mount_setattr_idmap(
    mount: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    const AT_EMPTY_PATH: libc::c_uint = 0x1000;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let mut attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` is a
    // valid `mount_attr` and its size is passed; both fds are borrowed for
    // the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            std::ptr::from_mut(&mut attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Join a new named session keyring (`KEYCTL_JOIN_SESSION_KEYRING`), so a
/// container does not share the caller's session keyring.
pub fn join_session_keyring(name: &str) -> io::Result<i64> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING) reads a NUL-terminated string
    // that lives for the duration of the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// `unshare(2)` restricted to namespace flags (`CLONE_NEW*`). Other
/// unshare flags (`CLONE_FILES`, `CLONE_FS`, …) are refused: they change
/// process state that Rust code may rely on.
pub fn unshare_namespaces(flags: u32) -> io::Result<()> {
    const NS_FLAGS: u32 = (libc::CLONE_NEWNS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET) as u32
        | 0x80; // CLONE_NEWTIME
    if flags & !NS_FLAGS != 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: only namespace flags pass the check above; creating new
    // namespaces does not invalidate any memory or fd of this process.
    let ret = unsafe { libc::unshare(flags as libc::c_int) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: execute the program an fd
/// refers to (a sealed memfd) without needing `/proc`. Returns only on
/// failure.
pub fn execveat_fd(
    fd: BorrowedFd<'_>,
    argv: &[std::ffi::CString],
    envp: &[std::ffi::CString],
) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: both pointer arrays are NULL-terminated and point into
    // CStrings that outlive the call; the path is a valid empty C string and
    // `fd` is borrowed for the duration of the call. On success the call
    // does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_child_exits_with_code() {
        match fork().expect("fork") {
            Fork::Child => exit_now(7),
            Fork::Parent(pid) => {
                let status =
                    rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                        .expect("waitpid")
                        .expect("status");
                assert_eq!(status.1.exit_status(), Some(7));
            }
        }
    }

    #[test]
    fn personality_query_roundtrip() {
        let current = personality(0xffff_ffff).expect("query");
        assert_eq!(personality(current).expect("set"), current);
    }
}
