//! Reading what an intercepted caller passed and who it is, safely.
//!
//! A notification names the caller by pid. The supervisor opens
//! `/proc/PID` once and checks that the notification is still pending
//! (`SECCOMP_IOCTL_NOTIF_ID_VALID`): the caller is then blocked in the call,
//! so the pid cannot have been reused and the directory fd stays bound to
//! that very process. Everything else (`mem`, `status`, `root`, `cwd`,
//! `fd/N`, `ns/*`, the id maps) is opened relative to that fd, and the
//! notification is checked again after every read of the caller's memory.
//!
//! Memory is read with `pread` on `/proc/PID/mem`, page by page, so a bad
//! pointer is an `EFAULT` for the caller and never a fault here; strings
//! are bounded (`PATH_MAX`), longer ones are `ENAMETOOLONG`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

/// The longest path the kernel accepts, with its NUL.
pub const PATH_MAX: usize = 4096;
/// `XATTR_NAME_MAX` + NUL.
pub const XATTR_NAME_MAX: usize = 256;
/// `XATTR_SIZE_MAX`.
pub const XATTR_SIZE_MAX: u64 = 65536;

const PAGE: u64 = 4096;

/// Why a call cannot be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The caller is gone (killed, or interrupted by a signal): nobody
    /// waits for an answer.
    Gone,
    /// The call fails with this errno; the text says why (for the log).
    Errno(i32, String),
}

impl CallError {
    /// An errno with a reason.
    pub fn errno(e: i32, why: impl Into<String>) -> Self {
        CallError::Errno(e, why.into())
    }

    fn io(what: &str, e: &io::Error) -> Self {
        CallError::Errno(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("{what}: {e}"),
        )
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Gone => f.write_str("the caller is gone"),
            CallError::Errno(e, why) => write!(f, "{why} (errno {e})"),
        }
    }
}

/// Tells whether the notification is still pending.
pub trait Pending {
    /// `Ok(false)` when the caller is gone.
    fn still_pending(&self) -> io::Result<bool>;
}

/// A notification on a notify fd.
#[derive(Debug, Clone, Copy)]
pub struct Notif<'a> {
    /// The notify fd.
    pub fd: BorrowedFd<'a>,
    /// The notification id.
    pub id: u64,
}

impl Pending for Notif<'_> {
    fn still_pending(&self) -> io::Result<bool> {
        barge_sys::notify::id_valid(self.fd, self.id)
    }
}

/// The caller's credentials as the supervisor (initial user namespace)
/// sees them: host ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Creds {
    /// Real, effective, saved, fs uid.
    pub uid: [u32; 4],
    /// Real, effective, saved, fs gid.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Inheritable capabilities.
    pub cap_inh: u64,
    /// Permitted capabilities.
    pub cap_prm: u64,
    /// Effective capabilities.
    pub cap_eff: u64,
    /// The umask.
    pub umask: u32,
}

impl Creds {
    /// Parse `/proc/PID/status`.
    pub fn parse_status(text: &str) -> Option<Self> {
        let mut c = Creds::default();
        let (mut have_uid, mut have_gid, mut have_caps) = (false, false, 0);
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let ids = || -> Option<[u32; 4]> {
                let v: Vec<u32> = value
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .ok()?;
                v.try_into().ok()
            };
            let hex = || u64::from_str_radix(value, 16).ok();
            match key {
                "Uid" => {
                    c.uid = ids()?;
                    have_uid = true;
                }
                "Gid" => {
                    c.gid = ids()?;
                    have_gid = true;
                }
                "Groups" => {
                    c.groups = value
                        .split_whitespace()
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .ok()?;
                }
                "CapInh" => {
                    c.cap_inh = hex()?;
                    have_caps += 1;
                }
                "CapPrm" => {
                    c.cap_prm = hex()?;
                    have_caps += 1;
                }
                "CapEff" => {
                    c.cap_eff = hex()?;
                    have_caps += 1;
                }
                "Umask" => c.umask = u32::from_str_radix(value, 8).ok()?,
                _ => {}
            }
        }
        (have_uid && have_gid && have_caps == 3).then_some(c)
    }
}

/// One line of a uid or gid map: (inside, outside, count).
pub type MapRange = (u32, u32, u32);

/// Parse `/proc/PID/uid_map` (as read from the initial user namespace).
pub fn parse_id_map(text: &str) -> Vec<MapRange> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(str::parse::<u32>);
            Some((it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?))
        })
        .collect()
}

/// The host id of `inside` (an id as the caller's namespace sees it).
pub fn map_to_host(map: &[MapRange], inside: u32) -> Option<u32> {
    map.iter().find_map(|&(i, o, n)| {
        (inside >= i && u64::from(inside) < u64::from(i) + u64::from(n)).then(|| o + (inside - i))
    })
}

/// The caller of one notification.
pub struct Target<P: Pending> {
    pending: P,
    pid: u32,
    proc_dir: OwnedFd,
    mem: Option<OwnedFd>,
}

impl<P: Pending> Target<P> {
    /// Open `/proc/PID` and check the notification is still pending.
    pub fn open(pending: P, pid: u32) -> Result<Self, CallError> {
        let proc_dir = rustix::fs::open(
            format!("/proc/{pid}"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == rustix::io::Errno::NOENT {
                CallError::Gone
            } else {
                CallError::io(&format!("opening /proc/{pid}"), &e.into())
            }
        })?;
        let t = Target {
            pending,
            pid,
            proc_dir,
            mem: None,
        };
        t.check()?;
        Ok(t)
    }

    /// The caller's pid (thread id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fail with [`CallError::Gone`] once the notification is no longer
    /// pending.
    pub fn check(&self) -> Result<(), CallError> {
        match self.pending.still_pending() {
            Ok(true) => Ok(()),
            Ok(false) => Err(CallError::Gone),
            Err(e) => Err(CallError::io("SECCOMP_IOCTL_NOTIF_ID_VALID", &e)),
        }
    }

    /// Open an entry of `/proc/PID` (`root`, `cwd`, `fd/3`, `ns/mnt`…).
    pub fn open_entry(&self, name: &str, flags: OFlags) -> Result<OwnedFd, CallError> {
        let fd = rustix::fs::openat(&self.proc_dir, name, flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| {
            if e == rustix::io::Errno::SRCH {
                CallError::Gone
            } else {
                CallError::io(&format!("opening /proc/{}/{name}", self.pid), &e.into())
            }
        })?;
        Ok(fd)
    }

    /// Read a small text entry (`status`, `uid_map`…), then check the
    /// notification.
    pub fn read_entry(&self, name: &str) -> Result<String, CallError> {
        let fd = self.open_entry(name, OFlags::RDONLY)?;
        let mut f = std::fs::File::from(fd);
        let mut s = String::new();
        io::Read::read_to_string(&mut f, &mut s)
            .map_err(|e| CallError::io(&format!("reading /proc/{}/{name}", self.pid), &e))?;
        self.check()?;
        Ok(s)
    }

    /// The caller's credentials and umask.
    pub fn creds(&self) -> Result<Creds, CallError> {
        let s = self.read_entry("status")?;
        Creds::parse_status(&s).ok_or_else(|| {
            CallError::errno(libc::EIO, format!("cannot parse /proc/{}/status", self.pid))
        })
    }

    fn mem(&mut self) -> Result<BorrowedFd<'_>, CallError> {
        if self.mem.is_none() {
            let fd = self.open_entry("mem", OFlags::RDONLY)?;
            self.check()?;
            self.mem = Some(fd);
        }
        match &self.mem {
            Some(fd) => Ok(fd.as_fd()),
            None => Err(CallError::errno(libc::EIO, "no mem fd")),
        }
    }

    /// Read up to `buf.len()` bytes at `addr`; returns how many could be
    /// read before an unmapped page (0 = none).
    fn read_some(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, CallError> {
        let pid = self.pid;
        let mem = self.mem()?;
        let mut done = 0;
        while done < buf.len() {
            let at = addr + done as u64;
            if at > i64::MAX as u64 {
                break;
            }
            let page_left = (PAGE - at % PAGE) as usize;
            let want = page_left.min(buf.len() - done);
            match rustix::io::pread(mem, &mut buf[done..done + want], at) {
                // 0 or EIO/EFAULT: an unmapped page.
                Ok(0) | Err(rustix::io::Errno::IO | rustix::io::Errno::FAULT) => break,
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(CallError::io(
                        &format!("reading the memory of {pid}"),
                        &e.into(),
                    ))
                }
            }
        }
        Ok(done)
    }

    /// Read exactly `len` bytes at `addr` (`EFAULT` if any is unmapped),
    /// then check the notification.
    pub fn read_bytes(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, CallError> {
        let mut buf = vec![0u8; len];
        if len > 0 {
            if addr == 0 || addr.checked_add(len as u64).is_none() {
                return Err(CallError::errno(libc::EFAULT, "bad pointer"));
            }
            let n = self.read_some(addr, &mut buf)?;
            if n < len {
                return Err(CallError::errno(
                    libc::EFAULT,
                    format!("{len} bytes at {addr:#x} are not all readable"),
                ));
            }
        }
        self.check()?;
        Ok(buf)
    }

    /// Read a NUL-terminated string at `addr` of at most `max` bytes with
    /// its NUL (`ENAMETOOLONG` beyond, `EFAULT` for a bad pointer), then
    /// check the notification. The NUL is not returned.
    pub fn read_cstring(&mut self, addr: u64, max: usize) -> Result<Vec<u8>, CallError> {
        if addr == 0 {
            return Err(CallError::errno(libc::EFAULT, "NULL pointer"));
        }
        let mut out = Vec::new();
        let mut chunk = [0u8; PAGE as usize];
        loop {
            let at = addr
                .checked_add(out.len() as u64)
                .ok_or_else(|| CallError::errno(libc::EFAULT, "bad pointer"))?;
            let want = (PAGE - at % PAGE) as usize;
            let want = want.min(max - out.len());
            let n = self.read_some(at, &mut chunk[..want])?;
            if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                break;
            }
            out.extend_from_slice(&chunk[..n]);
            if n < want {
                return Err(CallError::errno(
                    libc::EFAULT,
                    format!("string at {addr:#x} runs into unreadable memory"),
                ));
            }
            if out.len() >= max {
                return Err(CallError::errno(
                    libc::ENAMETOOLONG,
                    format!("string at {addr:#x} is longer than {} bytes", max - 1),
                ));
            }
        }
        self.check()?;
        Ok(out)
    }
}

/// Whether two namespace (or any) fds name the same inode.
pub fn same_inode(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Always;
    impl Pending for Always {
        fn still_pending(&self) -> io::Result<bool> {
            Ok(true)
        }
    }

    #[test]
    fn parses_status() {
        let s = "Name:\tsh\nUmask:\t0027\nUid:\t100000\t100000\t100000\t100001\n\
                 Gid:\t100000\t100000\t100000\t100000\nGroups:\t100005 100010 \n\
                 CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n";
        let c = Creds::parse_status(s).expect("status");
        assert_eq!(c.uid, [100_000, 100_000, 100_000, 100_001]);
        assert_eq!(c.groups, [100_005, 100_010]);
        assert_eq!(c.cap_eff, 0xa804_25fb);
        assert_eq!(c.umask, 0o027);
        assert!(Creds::parse_status("Uid:\t1 2 3\n").is_none());
    }

    #[test]
    fn id_maps() {
        let m = parse_id_map("         0     100000      65536\n     65536 5 1\n");
        assert_eq!(m, [(0, 100_000, 65536), (65536, 5, 1)]);
        assert_eq!(map_to_host(&m, 0), Some(100_000));
        assert_eq!(map_to_host(&m, 1000), Some(101_000));
        assert_eq!(map_to_host(&m, 65536), Some(5));
        assert_eq!(map_to_host(&m, 65537), None);
        assert_eq!(map_to_host(&parse_id_map("0 0 4294967295\n"), 7), Some(7));
    }

    #[test]
    fn reads_own_memory_safely() {
        // Our own /proc entry: the same code path as for a caller.
        let pid = std::process::id();
        let mut t = Target::open(Always, pid).expect("open");
        let text = b"hello\0world";
        let addr = text.as_ptr() as u64;
        assert_eq!(t.read_cstring(addr, PATH_MAX).expect("string"), b"hello");
        assert_eq!(t.read_bytes(addr + 6, 5).expect("bytes"), b"world");
        assert_eq!(t.read_bytes(addr, 0).expect("empty"), b"");
        // Bad pointers.
        for bad in [0u64, 8, 0xffff_ffff_ffff_f000] {
            match t.read_cstring(bad, PATH_MAX) {
                Err(CallError::Errno(e, _)) => assert_eq!(e, libc::EFAULT, "{bad:#x}"),
                other => panic!("{bad:#x}: {other:?}"),
            }
        }
        assert!(matches!(
            t.read_bytes(8, 16),
            Err(CallError::Errno(libc::EFAULT, _))
        ));
        // Too long: no NUL within PATH_MAX (a string crossing pages).
        let long = vec![b'a'; PATH_MAX * 2];
        match t.read_cstring(long.as_ptr() as u64, PATH_MAX) {
            Err(CallError::Errno(e, _)) => assert_eq!(e, libc::ENAMETOOLONG),
            other => panic!("{other:?}"),
        }
        // Exactly PATH_MAX - 1 bytes plus NUL is fine.
        let mut ok = vec![b'b'; PATH_MAX];
        ok[PATH_MAX - 1] = 0;
        assert_eq!(
            t.read_cstring(ok.as_ptr() as u64, PATH_MAX)
                .expect("max")
                .len(),
            PATH_MAX - 1
        );
        let c = t.creds().expect("creds");
        assert_eq!(c.uid[1], rustix::process::geteuid().as_raw());
        assert!(t.open_entry("cwd", OFlags::PATH).is_ok());
    }

    #[test]
    fn a_dead_process_is_gone() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(matches!(Target::open(Always, pid), Err(CallError::Gone)));
    }
}
