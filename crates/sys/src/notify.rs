//! Seccomp user notification (`seccomp_unotify(2)`) for the syscall
//! supervisor: receiving a notification, checking that it is still pending,
//! answering it, and the `SYNC_WAKE_UP` flag. Plus the few credential calls
//! the supervisor's workers need that no safe crate wraps (`setfsuid`,
//! `setfsgid`, `faccessat2` with `AT_EMPTY_PATH`).
//!
//! The structures are the kernel's UAPI (`linux/seccomp.h`); their layout is
//! the same on every architecture.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct RawData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct RawNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: RawData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct RawResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const IOC_MAGIC: u64 = b'!' as u64;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (IOC_MAGIC << 8) | nr
}

/// `SECCOMP_IOCTL_NOTIF_RECV`.
const NOTIF_RECV: u64 = ioc(IOC_READ | IOC_WRITE, 0, std::mem::size_of::<RawNotif>());
/// `SECCOMP_IOCTL_NOTIF_SEND`.
const NOTIF_SEND: u64 = ioc(IOC_READ | IOC_WRITE, 1, std::mem::size_of::<RawResp>());
/// `SECCOMP_IOCTL_NOTIF_ID_VALID`.
const NOTIF_ID_VALID: u64 = ioc(IOC_WRITE, 2, std::mem::size_of::<u64>());
/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS`.
const NOTIF_SET_FLAGS: u64 = ioc(IOC_WRITE, 4, std::mem::size_of::<u64>());

/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE`.
const FLAG_CONTINUE: u32 = 1;
/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6).
const FD_SYNC_WAKE_UP: u64 = 1;

/// One intercepted syscall, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// The cookie that identifies this call in later requests.
    pub id: u64,
    /// The calling thread (in the supervisor's pid namespace).
    pub pid: u32,
    /// The syscall number (of `arch`).
    pub nr: i32,
    /// The `AUDIT_ARCH_*` value of the call.
    pub arch: u32,
    /// Where the call was made.
    pub instruction_pointer: u64,
    /// The raw arguments.
    pub args: [u64; 6],
}

/// The answer to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// The call returns this value (success).
    Value(i64),
    /// The call fails with this errno (positive, e.g. `libc::EPERM`).
    Errno(i32),
    /// The kernel runs the call as if it had not been intercepted
    /// (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
}

/// Wait for and receive the next notification (`SECCOMP_IOCTL_NOTIF_RECV`).
/// Blocks while none is pending; poll the fd first. `ENOENT` means the
/// caller of a notification seen by `poll` went away before we got it.
pub fn recv(fd: BorrowedFd<'_>) -> io::Result<Notification> {
    // The kernel insists on a zeroed buffer.
    let mut raw = RawNotif::default();
    loop {
        // SAFETY: `raw` is a valid, zeroed `struct seccomp_notif` whose size
        // is encoded in the request number; the kernel writes only into it.
        let ret = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                NOTIF_RECV as libc::c_ulong,
                std::ptr::from_mut(&mut raw),
            )
        };
        if ret == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
        raw = RawNotif::default();
    }
    Ok(Notification {
        id: raw.id,
        pid: raw.pid,
        nr: raw.data.nr,
        arch: raw.data.arch,
        instruction_pointer: raw.data.instruction_pointer,
        args: raw.data.args,
    })
}

/// Answer notification `id` (`SECCOMP_IOCTL_NOTIF_SEND`). `ENOENT` means the
/// caller is gone (killed, or interrupted by a signal); nothing waits for
/// the answer any more.
pub fn send(fd: BorrowedFd<'_>, id: u64, response: Response) -> io::Result<()> {
    let mut raw = RawResp {
        id,
        ..RawResp::default()
    };
    match response {
        Response::Value(v) => raw.val = v,
        Response::Errno(e) => raw.error = -e.abs(),
        Response::Continue => raw.flags = FLAG_CONTINUE,
    }
    loop {
        // SAFETY: `raw` is a valid `struct seccomp_notif_resp` whose size is
        // encoded in the request number; the kernel only reads it.
        let ret = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                NOTIF_SEND as libc::c_ulong,
                std::ptr::from_mut(&mut raw),
            )
        };
        if ret == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Whether notification `id` is still pending (`SECCOMP_IOCTL_NOTIF_ID_VALID`):
/// its caller is still blocked in that very call, so a pid read from the
/// notification still names it. Check after every read of the caller's
/// memory or `/proc` entries.
pub fn id_valid(fd: BorrowedFd<'_>, id: u64) -> io::Result<bool> {
    let mut id = id;
    // SAFETY: the request reads one u64 through the pointer, which is valid
    // for the call's duration.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            NOTIF_ID_VALID as libc::c_ulong,
            std::ptr::from_mut(&mut id),
        )
    };
    if ret == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOENT) {
        return Ok(false);
    }
    Err(err)
}

/// Ask the kernel to wake the caller synchronously on the answering CPU
/// (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6): the caller runs next
/// on the supervisor's CPU instead of waiting for a wakeup elsewhere. Older
/// kernels fail with `EINVAL`.
pub fn set_sync_wake_up(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: SET_FLAGS takes the flags as the integer argument itself; no
    // memory is passed.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            NOTIF_SET_FLAGS as libc::c_ulong,
            FD_SYNC_WAKE_UP as libc::c_ulong,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `setfsuid(uid)`, checked: the call itself reports no error, so the new
/// value is read back. Per thread; use in single-threaded processes.
pub fn set_fsuid(uid: u32) -> io::Result<()> {
    // SAFETY: setfsuid takes an integer and changes only this thread's
    // credentials; no memory is involved.
    unsafe { libc::setfsuid(uid) };
    // SAFETY: as above; an invalid id (-1) changes nothing and returns the
    // current fsuid.
    let now = unsafe { libc::setfsuid(u32::MAX) };
    if now as u32 == uid {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }
}

/// `setfsgid(gid)`, checked like [`set_fsuid`].
pub fn set_fsgid(gid: u32) -> io::Result<()> {
    // SAFETY: as in `set_fsuid`.
    unsafe { libc::setfsgid(gid) };
    // SAFETY: as in `set_fsuid`.
    let now = unsafe { libc::setfsgid(u32::MAX) };
    if now as u32 == gid {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }
}

/// `faccessat2(dirfd, path, mode, flags)`: unlike rustix's `accessat` this
/// accepts `AT_EMPTY_PATH`, to check access to what an `O_PATH` fd names
/// with the caller's effective (fs) credentials (`AT_EACCESS`).
pub fn faccessat2(dirfd: BorrowedFd<'_>, path: &CStr, mode: i32, flags: i32) -> io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string and `dirfd` is
    // borrowed for the call; the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            mode,
            flags,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_uapi() {
        assert_eq!(std::mem::size_of::<RawNotif>(), 80);
        assert_eq!(std::mem::size_of::<RawResp>(), 24);
        assert_eq!(NOTIF_RECV, 0xc050_2100);
        assert_eq!(NOTIF_SEND, 0xc018_2101);
        assert_eq!(NOTIF_ID_VALID, 0x4008_2102);
        assert_eq!(NOTIF_SET_FLAGS, 0x4008_2104);
    }

    #[test]
    fn faccessat2_empty_path() {
        let f = std::fs::File::open("/").expect("open /");
        use std::os::fd::AsFd;
        faccessat2(
            f.as_fd(),
            c"",
            libc::R_OK,
            libc::AT_EMPTY_PATH | libc::AT_EACCESS,
        )
        .expect("/ is readable");
    }

    #[test]
    fn fsuid_roundtrip_is_checked() {
        // Setting our own fsuid again always works.
        let uid = rustix::process::geteuid().as_raw();
        set_fsuid(uid).expect("same fsuid");
        let gid = rustix::process::getegid().as_raw();
        set_fsgid(gid).expect("same fsgid");
    }
}
