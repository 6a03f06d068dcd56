//! barge-check: a small static checker run as a container's process.
//!
//! Every subcommand prints one JSON object on stdout describing what the
//! process sees (ids, capabilities, mounts, limits, ...). It never panics on
//! bad input: failures are printed as `{"error": "...", "errno": N, ...}` and
//! the process exits with status 1. Usage: `barge-check help`.

#![allow(
    clippy::unnecessary_wraps,
    clippy::many_single_char_names,
    clippy::comparison_chain
)]

use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::{Duration, Instant};

mod intercept;

// ---------------------------------------------------------------- JSON ----

/// A minimal JSON value (std only, no serde).
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    I(i64),
    U(u64),
    F(f64),
    S(String),
    A(Vec<J>),
    O(Vec<(String, J)>),
}

impl J {
    fn s(v: impl Into<String>) -> J {
        J::S(v.into())
    }
    fn obj(pairs: Vec<(&str, J)>) -> J {
        J::O(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
    fn render(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::I(n) => {
                let _ = write!(out, "{n}");
            }
            J::U(n) => {
                let _ = write!(out, "{n}");
            }
            J::F(f) => {
                if f.is_finite() {
                    let _ = write!(out, "{f}");
                } else {
                    out.push_str("null");
                }
            }
            J::S(s) => esc(s, out),
            J::A(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.render(out);
                }
                out.push(']');
            }
            J::O(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    esc(k, out);
                    out.push(':');
                    x.render(out);
                }
                out.push('}');
            }
        }
    }
    fn to_line(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }
}

fn esc(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An error reported as JSON.
#[derive(Debug)]
struct Fail {
    op: String,
    errno: i32,
    msg: String,
}

type R = Result<J, Fail>;

fn fail(op: &str, msg: impl Into<String>) -> Fail {
    Fail {
        op: op.to_string(),
        errno: 0,
        msg: msg.into(),
    }
}

fn io_fail(op: &str, e: &std::io::Error) -> Fail {
    Fail {
        op: op.to_string(),
        errno: e.raw_os_error().unwrap_or(0),
        msg: e.to_string(),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn strerror(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

fn errno_name(e: i32) -> &'static str {
    match e {
        0 => "",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ETXTBSY => "ETXTBSY",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTTY => "ENOTTY",
        libc::ENXIO => "ENXIO",
        libc::EMFILE => "EMFILE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::E2BIG => "E2BIG",
        libc::ERANGE => "ERANGE",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENODEV => "ENODEV",
        libc::ELOOP => "ELOOP",
        _ => "E?",
    }
}

fn read_to_string(path: &str) -> Result<String, Fail> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| io_fail(&format!("read {path}"), &e))
}

fn cstr(s: &str) -> Result<CString, Fail> {
    CString::new(s).map_err(|_| fail("arg", "argument contains a NUL byte"))
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Result<&'a str, Fail> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| fail("usage", format!("missing argument: {what}")))
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, Fail> {
    s.trim()
        .parse::<T>()
        .map_err(|_| fail("usage", format!("invalid {what}: {s:?}")))
}

fn parse_int_auto(s: &str) -> Result<u64, Fail> {
    let t = s.trim();
    let r = if let Some(h) = t.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8)
    } else {
        t.parse::<u64>()
    };
    r.map_err(|_| fail("usage", format!("invalid number: {s:?}")))
}

fn status_fields(keys: &[&str]) -> Result<Vec<(String, String)>, Fail> {
    let st = read_to_string("/proc/self/status")?;
    let mut out = Vec::new();
    for k in keys {
        let v = st
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_string());
        out.push(((*k).to_string(), v.unwrap_or_default()));
    }
    Ok(out)
}

fn say(v: &J) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", v.to_line());
    let _ = o.flush();
}

// ------------------------------------------------------------ commands ----

fn cmd_ids() -> R {
    // SAFETY: these getters take no arguments and cannot fail.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    let mut groups = vec![0 as libc::gid_t; 256];
    // SAFETY: the buffer holds 256 gid_t and we pass that length.
    let n = unsafe { libc::getgroups(groups.len() as i32, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    let map = |p: &str| -> J {
        match std::fs::read_to_string(p) {
            Ok(s) => J::A(
                s.lines()
                    .map(|l| {
                        J::A(
                            l.split_whitespace()
                                .filter_map(|x| x.parse::<u64>().ok())
                                .map(J::U)
                                .collect(),
                        )
                    })
                    .collect(),
            ),
            Err(_) => J::Null,
        }
    };
    let setgroups =
        std::fs::read_to_string("/proc/self/setgroups").map_or(J::Null, |s| J::s(s.trim()));
    Ok(J::obj(vec![
        ("uid", J::U(uid.into())),
        ("euid", J::U(euid.into())),
        ("gid", J::U(gid.into())),
        ("egid", J::U(egid.into())),
        (
            "groups",
            J::A(groups.into_iter().map(|g| J::U(g.into())).collect()),
        ),
        ("uid_map", map("/proc/self/uid_map")),
        ("gid_map", map("/proc/self/gid_map")),
        ("setgroups", setgroups),
    ]))
}

const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn cap_names(mask: u64) -> J {
    let mut v = Vec::new();
    for bit in 0..64u32 {
        if mask & (1u64 << bit) != 0 {
            let name = CAP_NAMES
                .get(bit as usize)
                .map_or_else(|| format!("CAP_{bit}"), |s| (*s).to_string());
            v.push(J::S(name));
        }
    }
    J::A(v)
}

fn cmd_caps() -> R {
    let f = status_fields(&["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"])?;
    let mut out = Vec::new();
    for (k, v) in f {
        let mask = u64::from_str_radix(&v, 16).unwrap_or(0);
        let short = match k.as_str() {
            "CapInh" => "inheritable",
            "CapPrm" => "permitted",
            "CapEff" => "effective",
            "CapBnd" => "bounding",
            _ => "ambient",
        };
        out.push((k.clone(), J::S(v)));
        out.push((short.to_string(), cap_names(mask)));
    }
    Ok(J::O(out))
}

fn cmd_nnp() -> R {
    let f = status_fields(&["NoNewPrivs", "Seccomp", "Seccomp_filters"])?;
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer arguments.
    let prctl = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    let mut out: Vec<(String, J)> = f
        .into_iter()
        .map(|(k, v)| (k, v.parse::<i64>().map_or(J::Null, J::I)))
        .collect();
    out.push(("prctl_no_new_privs".into(), J::I(prctl.into())));
    Ok(J::O(out))
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cmd_mounts() -> R {
    let mi = read_to_string("/proc/self/mountinfo")?;
    let mut v = Vec::new();
    for line in mi.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < 6 || fields.len() < dash + 3 {
            continue;
        }
        let optional: Vec<&str> = fields[6..dash].to_vec();
        let mut propagation = "private";
        for o in &optional {
            if o.starts_with("shared:") {
                propagation = "shared";
            } else if o.starts_with("master:") && propagation != "shared" {
                propagation = "slave";
            } else if *o == "unbindable" {
                propagation = "unbindable";
            }
        }
        let opts = |s: &str| J::A(s.split(',').filter(|x| !x.is_empty()).map(J::s).collect());
        v.push(J::obj(vec![
            ("id", J::U(fields[0].parse().unwrap_or(0))),
            ("parent", J::U(fields[1].parse().unwrap_or(0))),
            ("dev", J::s(fields[2])),
            ("root", J::S(unescape_mount(fields[3]))),
            ("mountpoint", J::S(unescape_mount(fields[4]))),
            ("options", opts(fields[5])),
            (
                "optional",
                J::A(optional.iter().map(|s| J::s(*s)).collect()),
            ),
            ("propagation", J::s(propagation)),
            ("fstype", J::s(fields[dash + 1])),
            ("source", J::S(unescape_mount(fields[dash + 2]))),
            (
                "super_options",
                opts(fields.get(dash + 3).copied().unwrap_or("")),
            ),
        ]));
    }
    Ok(J::obj(vec![("mounts", J::A(v))]))
}

const RLIMITS: &[(&str, i32)] = &[
    ("RLIMIT_CPU", 0),
    ("RLIMIT_FSIZE", 1),
    ("RLIMIT_DATA", 2),
    ("RLIMIT_STACK", 3),
    ("RLIMIT_CORE", 4),
    ("RLIMIT_RSS", 5),
    ("RLIMIT_NPROC", 6),
    ("RLIMIT_NOFILE", 7),
    ("RLIMIT_MEMLOCK", 8),
    ("RLIMIT_AS", 9),
    ("RLIMIT_LOCKS", 10),
    ("RLIMIT_SIGPENDING", 11),
    ("RLIMIT_MSGQUEUE", 12),
    ("RLIMIT_NICE", 13),
    ("RLIMIT_RTPRIO", 14),
    ("RLIMIT_RTTIME", 15),
];

fn rlim_j(v: u64) -> J {
    if v == libc::RLIM_INFINITY {
        J::s("unlimited")
    } else {
        J::U(v)
    }
}

fn cmd_rlimits() -> R {
    let mut out = Vec::new();
    for (name, res) in RLIMITS {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: rl is a valid, writable rlimit struct.
        let r = unsafe { libc::getrlimit(*res as libc::__rlimit_resource_t, &raw mut rl) };
        let v = if r == 0 {
            J::obj(vec![
                ("soft", rlim_j(rl.rlim_cur)),
                ("hard", rlim_j(rl.rlim_max)),
            ])
        } else {
            J::obj(vec![("errno", J::I(errno().into()))])
        };
        out.push(((*name).to_string(), v));
    }
    Ok(J::O(out))
}

fn cmd_sysctl(args: &[String]) -> R {
    let name = arg(args, 0, "NAME")?;
    let path = format!(
        "/proc/sys/{}",
        name.trim_start_matches('/').replace('.', "/")
    );
    let v = read_to_string(&path)?;
    Ok(J::obj(vec![
        ("name", J::s(name)),
        ("path", J::S(path)),
        ("value", J::s(v.trim())),
    ]))
}

fn cmd_read(args: &[String]) -> R {
    let path = arg(args, 0, "PATH")?;
    let b = std::fs::read(path).map_err(|e| io_fail(&format!("read {path}"), &e))?;
    Ok(J::obj(vec![
        ("path", J::s(path)),
        ("len", J::U(b.len() as u64)),
        ("content", J::S(String::from_utf8_lossy(&b).into_owned())),
    ]))
}

fn cmd_write(args: &[String]) -> R {
    let path = arg(args, 0, "PATH")?;
    let data = arg(args, 1, "DATA")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_fail(&format!("open {path}"), &e))?;
    f.write_all(data.as_bytes())
        .map_err(|e| io_fail(&format!("write {path}"), &e))?;
    Ok(J::obj(vec![
        ("path", J::s(path)),
        ("written", J::U(data.len() as u64)),
        ("ok", J::Bool(true)),
    ]))
}

fn file_type(ft: std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

fn cmd_stat(args: &[String]) -> R {
    let path = arg(args, 0, "PATH")?;
    let m = std::fs::symlink_metadata(path).map_err(|e| io_fail(&format!("lstat {path}"), &e))?;
    let rdev = m.rdev();
    let mut v = vec![
        ("path", J::s(path)),
        ("type", J::s(file_type(m.file_type()))),
        ("mode", J::U(u64::from(m.mode() & 0o7777))),
        ("mode_octal", J::S(format!("{:04o}", m.mode() & 0o7777))),
        ("uid", J::U(m.uid().into())),
        ("gid", J::U(m.gid().into())),
        ("size", J::U(m.size())),
        ("dev", J::U(m.dev())),
        ("ino", J::U(m.ino())),
        ("rdev_major", J::U(libc::major(rdev).into())),
        ("rdev_minor", J::U(libc::minor(rdev).into())),
    ];
    if m.file_type().is_symlink() {
        let t = std::fs::read_link(path)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        v.push(("target", J::S(t)));
    }
    Ok(J::obj(v))
}

fn cmd_ls(args: &[String]) -> R {
    let path = arg(args, 0, "PATH")?;
    let rd = std::fs::read_dir(path).map_err(|e| io_fail(&format!("readdir {path}"), &e))?;
    let mut names: Vec<(String, &'static str)> = rd
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.file_type().map_or("unknown", file_type),
            )
        })
        .collect();
    names.sort();
    Ok(J::obj(vec![
        ("path", J::s(path)),
        (
            "entries",
            J::A(names.iter().map(|(n, _)| J::s(n.clone())).collect()),
        ),
        (
            "types",
            J::O(names.into_iter().map(|(n, t)| (n, J::s(t))).collect()),
        ),
    ]))
}

fn cmd_fds() -> R {
    let names: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| io_fail("readdir /proc/self/fd", &e))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // The directory handle used above is closed now; its number no longer resolves.
    let mut fds: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|n| {
            let fd: u64 = n.parse().ok()?;
            let t = std::fs::read_link(format!("/proc/self/fd/{n}")).ok()?;
            Some((fd, t.display().to_string()))
        })
        .collect();
    fds.sort();
    Ok(J::obj(vec![
        ("fds", J::A(fds.iter().map(|(f, _)| J::U(*f)).collect())),
        (
            "targets",
            J::O(
                fds.into_iter()
                    .map(|(f, t)| (f.to_string(), J::S(t)))
                    .collect(),
            ),
        ),
    ]))
}

fn cmd_cwd() -> R {
    let c = std::env::current_dir().map_err(|e| io_fail("getcwd", &e))?;
    Ok(J::obj(vec![("cwd", J::S(c.display().to_string()))]))
}

fn cmd_env() -> R {
    let vars: Vec<(String, J)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                J::S(v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    Ok(J::obj(vec![("env", J::O(vars))]))
}

fn uts_field(f: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = f
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn cmd_hostname() -> R {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    if unsafe { libc::uname(&raw mut u) } != 0 {
        return Err(Fail {
            op: "uname".into(),
            errno: errno(),
            msg: strerror(errno()),
        });
    }
    Ok(J::obj(vec![
        ("hostname", J::S(uts_field(&u.nodename))),
        ("domainname", J::S(uts_field(&u.domainname))),
        ("kernel", J::S(uts_field(&u.release))),
    ]))
}

fn cmd_umask() -> R {
    let st = status_fields(&["Umask"])?;
    let from_status = st.first().map(|(_, v)| v.clone()).unwrap_or_default();
    let m = if from_status.is_empty() {
        // SAFETY: umask never fails; we restore the previous value at once.
        let old = unsafe { libc::umask(0o022) };
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        old
    } else {
        u32::from_str_radix(&from_status, 8).unwrap_or(0)
    };
    Ok(J::obj(vec![
        ("umask", J::U(u64::from(m))),
        ("umask_octal", J::S(format!("{m:04o}"))),
    ]))
}

fn cmd_personality() -> R {
    // SAFETY: 0xffffffff queries the persona without changing it.
    let p = unsafe { libc::personality(0xffff_ffff) };
    Ok(J::obj(vec![
        ("personality", J::I(p.into())),
        ("hex", J::S(format!("{p:#x}"))),
        ("linux32", J::Bool(p & 0xff == 8)),
    ]))
}

fn cmd_cgroup() -> R {
    let c = read_to_string("/proc/self/cgroup")?;
    let entries: Vec<J> = c
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let id = it.next()?;
            let ctrl = it.next()?;
            let path = it.next()?;
            Some(J::obj(vec![
                ("hierarchy", J::s(id)),
                ("controllers", J::s(ctrl)),
                ("path", J::s(path)),
            ]))
        })
        .collect();
    Ok(J::obj(vec![("cgroups", J::A(entries)), ("raw", J::S(c))]))
}

fn cmd_pid() -> R {
    // SAFETY: getpid/getppid take no arguments and cannot fail.
    let (pid, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
    let st = status_fields(&["NSpid", "NSpgid", "NSsid"])?;
    let mut v = vec![
        ("pid".to_string(), J::I(pid.into())),
        ("ppid".to_string(), J::I(ppid.into())),
    ];
    for (k, s) in st {
        v.push((
            k,
            J::A(
                s.split_whitespace()
                    .filter_map(|x| x.parse::<i64>().ok())
                    .map(J::I)
                    .collect(),
            ),
        ));
    }
    Ok(J::O(v))
}

fn cmd_ns() -> R {
    let mut v = Vec::new();
    for n in [
        "cgroup",
        "ipc",
        "mnt",
        "net",
        "pid",
        "pid_for_children",
        "time",
        "user",
        "uts",
    ] {
        let t = std::fs::read_link(format!("/proc/self/ns/{n}"))
            .map_or(J::Null, |p| J::S(p.display().to_string()));
        v.push((n.to_string(), t));
    }
    Ok(J::O(v))
}

fn cmd_netdev() -> R {
    let d = read_to_string("/proc/net/dev")?;
    let ifs: Vec<J> = d
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| J::s(s.trim()))
        .collect();
    Ok(J::obj(vec![("interfaces", J::A(ifs))]))
}

fn unshare_flags(s: &str) -> Result<i32, Fail> {
    let mut f = 0;
    for part in s.split(['|', ',']) {
        f |= match part.trim() {
            "user" | "CLONE_NEWUSER" => libc::CLONE_NEWUSER,
            "mnt" | "mount" | "CLONE_NEWNS" => libc::CLONE_NEWNS,
            "net" | "CLONE_NEWNET" => libc::CLONE_NEWNET,
            "pid" | "CLONE_NEWPID" => libc::CLONE_NEWPID,
            "uts" | "CLONE_NEWUTS" => libc::CLONE_NEWUTS,
            "ipc" | "CLONE_NEWIPC" => libc::CLONE_NEWIPC,
            "cgroup" | "CLONE_NEWCGROUP" => libc::CLONE_NEWCGROUP,
            other => parse_int_auto(other)? as i32,
        };
    }
    Ok(f)
}

fn cmd_syscall(args: &[String]) -> R {
    let name = arg(args, 0, "NAME")?;
    match name {
        "mknod" => return intercept::mknod(args),
        "mount" => return intercept::mount(args),
        "setxattr" => return intercept::xattr(args, true),
        "getxattr" => return intercept::xattr(args, false),
        _ => {}
    }
    let mut extra: Vec<(&str, J)> = Vec::new();
    let ret: i64 = match name {
        "mkdir" => {
            let p = cstr(arg(args, 1, "PATH")?)?;
            let mode = args.get(2).map_or(Ok(0o755), |m| parse_int_auto(m))?;
            // SAFETY: p is a valid NUL-terminated path.
            unsafe { libc::syscall(libc::SYS_mkdir, p.as_ptr(), mode as libc::c_uint) }
        }
        "mkdirat" => {
            let p = cstr(arg(args, 1, "PATH")?)?;
            // SAFETY: p is a valid NUL-terminated path.
            unsafe {
                libc::syscall(
                    libc::SYS_mkdirat,
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    0o755 as libc::c_uint,
                )
            }
        }
        "chmod" => {
            let p = cstr(arg(args, 1, "PATH")?)?;
            let mode = parse_int_auto(arg(args, 2, "MODE")?)?;
            // SAFETY: p is a valid NUL-terminated path.
            unsafe { libc::syscall(libc::SYS_chmod, p.as_ptr(), mode as libc::c_uint) }
        }
        "getcwd" => {
            let mut buf = vec![0u8; 4096];
            // SAFETY: buf is writable for its full length.
            let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
            if r > 0 {
                let s = CStr::from_bytes_until_nul(&buf)
                    .map(|c| c.to_string_lossy().into_owned())
                    .unwrap_or_default();
                extra.push(("cwd", J::S(s)));
            }
            r
        }
        "personality" => {
            let p = args.get(1).map_or(Ok(0xffff_ffff), |a| parse_int_auto(a))?;
            // SAFETY: personality takes an integer persona.
            unsafe { libc::syscall(libc::SYS_personality, p as libc::c_ulong) }
        }
        "unshare" => {
            let f = unshare_flags(arg(args, 1, "FLAGS")?)?;
            // SAFETY: unshare takes integer flags.
            unsafe { libc::syscall(libc::SYS_unshare, f as libc::c_long) }
        }
        "chroot" => {
            let p = cstr(arg(args, 1, "PATH")?)?;
            // SAFETY: p is a valid NUL-terminated path.
            unsafe { libc::syscall(libc::SYS_chroot, p.as_ptr()) }
        }
        "sethostname" => {
            let h = arg(args, 1, "NAME")?;
            // SAFETY: the pointer and length describe h's bytes.
            unsafe { libc::syscall(libc::SYS_sethostname, h.as_ptr(), h.len()) }
        }
        "getpid" => {
            // SAFETY: no arguments.
            unsafe { libc::syscall(libc::SYS_getpid) }
        }
        other => return Err(fail("usage", format!("unsupported syscall {other:?}"))),
    };
    let e = if ret < 0 { errno() } else { 0 };
    let mut v = vec![
        ("syscall", J::s(name)),
        ("ret", J::I(ret)),
        ("errno", J::I(e.into())),
        ("errno_name", J::s(errno_name(e))),
        ("error", if e == 0 { J::Null } else { J::S(strerror(e)) }),
    ];
    v.extend(extra);
    Ok(J::obj(v))
}

fn cmd_fork(args: &[String]) -> R {
    let n: u32 = parse_num(arg(args, 0, "N")?, "N")?;
    let mut kids = Vec::new();
    let mut first_errno = 0;
    let mut failed = 0u32;
    for _ in 0..n {
        // SAFETY: the child only calls async-signal-safe functions (pause, _exit).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            loop {
                // SAFETY: pause is async-signal-safe; the parent kills us.
                unsafe { libc::pause() };
            }
        } else if pid < 0 {
            failed += 1;
            if first_errno == 0 {
                first_errno = errno();
            }
        } else {
            kids.push(pid);
        }
    }
    let ok = kids.len() as u64;
    for k in &kids {
        // SAFETY: k is our child's pid.
        unsafe { libc::kill(*k, libc::SIGKILL) };
    }
    for k in &kids {
        let mut st = 0;
        // SAFETY: st is a valid out pointer.
        unsafe { libc::waitpid(*k, &raw mut st, 0) };
    }
    Ok(J::obj(vec![
        ("requested", J::U(n.into())),
        ("forked", J::U(ok)),
        ("failed", J::U(failed.into())),
        ("errno", J::I(first_errno.into())),
        ("errno_name", J::s(errno_name(first_errno))),
    ]))
}

fn cmd_alloc(args: &[String]) -> R {
    let mb: u64 = parse_num(arg(args, 0, "MB")?, "MB")?;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut err = std::io::stderr();
    for i in 0..mb {
        let mut c: Vec<u8> = Vec::new();
        if c.try_reserve_exact(1 << 20).is_err() {
            return Err(Fail {
                op: "alloc".into(),
                errno: libc::ENOMEM,
                msg: format!("allocation failed after {i} MiB"),
            });
        }
        c.resize(1 << 20, 0);
        for p in (0..c.len()).step_by(4096) {
            c[p] = 1;
        }
        chunks.push(c);
        let _ = writeln!(err, "allocated {} MiB", i + 1);
    }
    let total: u64 = chunks.iter().map(|c| c.len() as u64).sum::<u64>() >> 20;
    Ok(J::obj(vec![("allocated_mb", J::U(total))]))
}

fn cpu_time() -> Duration {
    // SAFETY: rusage is plain old data; all-zero is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn cmd_spin(args: &[String]) -> R {
    let ms: u64 = parse_num(arg(args, 0, "MS")?, "MS")?;
    let c0 = cpu_time();
    let t0 = Instant::now();
    let mut x: u64 = 1;
    while t0.elapsed() < Duration::from_millis(ms) {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
        }
    }
    let wall = t0.elapsed();
    let cpu = cpu_time().saturating_sub(c0);
    Ok(J::obj(vec![
        ("wall_ms", J::F(wall.as_secs_f64() * 1000.0)),
        ("cpu_ms", J::F(cpu.as_secs_f64() * 1000.0)),
        (
            "ratio",
            J::F(cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)),
        ),
    ]))
}

fn cmd_sleep(args: &[String]) -> R {
    let s: f64 = parse_num(arg(args, 0, "SECS")?, "SECS")?;
    if !(0.0..=1e9).contains(&s) {
        return Err(fail("usage", "SECS out of range"));
    }
    std::thread::sleep(Duration::from_secs_f64(s));
    Ok(J::obj(vec![("slept", J::F(s))]))
}

fn signal_name(s: i32) -> String {
    let names = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    names
        .get(s as usize)
        .map_or_else(|| format!("SIGRT{s}"), |n| (*n).to_string())
}

extern "C" fn noop_handler(_: libc::c_int) {}

fn cmd_signal_wait() -> R {
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is valid and writable.
    unsafe { libc::sigfillset(&raw mut set) };
    for s in 1..=64 {
        if s == libc::SIGKILL || s == libc::SIGSTOP {
            continue;
        }
        // A handler (not SIG_DFL) so that signals reach a pid-namespace init.
        // SAFETY: noop_handler is async-signal-safe.
        unsafe { libc::signal(s, noop_handler as *const () as libc::sighandler_t) };
    }
    // SAFETY: set is initialised; the old set is not needed.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    say(&J::obj(vec![("ready", J::Bool(true))]));
    loop {
        // SAFETY: set is initialised; siginfo may be null.
        let s = unsafe { libc::sigwaitinfo(&raw const set, std::ptr::null_mut()) };
        if s < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(Fail {
                op: "sigwaitinfo".into(),
                errno: errno(),
                msg: strerror(errno()),
            });
        }
        if s == libc::SIGCHLD {
            continue;
        }
        say(&J::obj(vec![
            ("signal", J::I(s.into())),
            ("name", J::S(signal_name(s))),
        ]));
        if s == libc::SIGTERM || s == libc::SIGINT {
            return Ok(J::obj(vec![("exiting", J::Bool(true))]));
        }
    }
}

fn cmd_tty() -> R {
    let mut v = Vec::new();
    for fd in 0..3 {
        // SAFETY: isatty accepts any fd.
        let is = unsafe { libc::isatty(fd) } == 1;
        let mut buf = [0 as libc::c_char; 256];
        // SAFETY: buf is writable for its length.
        let name = if unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) } == 0 {
            // SAFETY: ttyname_r NUL-terminated the buffer on success.
            J::S(
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned(),
            )
        } else {
            J::Null
        };
        v.push((
            format!("fd{fd}"),
            J::obj(vec![("isatty", J::Bool(is)), ("ttyname", name)]),
        ));
    }
    // SAFETY: winsize is plain data.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into ws.
    let r = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &raw mut ws) };
    let w = if r == 0 {
        J::obj(vec![
            ("rows", J::U(ws.ws_row.into())),
            ("cols", J::U(ws.ws_col.into())),
        ])
    } else {
        J::Null
    };
    v.push(("winsize".to_string(), w));
    // SAFETY: no arguments.
    let sid = unsafe { libc::getsid(0) };
    v.push(("sid".to_string(), J::I(sid.into())));
    Ok(J::O(v))
}

/// Watch /proc for processes whose executable is not the container's own
/// (e.g. a runtime entering via exec) and check that it cannot be opened for
/// writing. Never writes anything.
fn cmd_exe_watch(args: &[String]) -> R {
    let ms: u64 = parse_num(arg(args, 0, "MS")?, "MS")?;
    let me = std::fs::read_link("/proc/self/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let t0 = Instant::now();
    let mut seen: Vec<(String, String, i32)> = Vec::new();
    let mut scans = 0u64;
    while t0.elapsed() < Duration::from_millis(ms) {
        scans += 1;
        let Ok(rd) = std::fs::read_dir("/proc") else {
            break;
        };
        for e in rd.filter_map(Result::ok) {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.parse::<u32>().is_err() {
                continue;
            }
            let p = format!("/proc/{n}/exe");
            let Ok(target) = std::fs::read_link(&p) else {
                continue;
            };
            let t = target.display().to_string();
            if t == me || t.ends_with("/busybox") || seen.iter().any(|(_, x, _)| *x == t) {
                continue;
            }
            let Ok(c) = CString::new(p.clone()) else {
                continue;
            };
            // SAFETY: c is a valid path; the fd is closed at once and never written.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            let e = if fd >= 0 {
                // SAFETY: fd was just opened by us.
                unsafe { libc::close(fd) };
                0
            } else {
                errno()
            };
            seen.push((n, t, e));
        }
    }
    let list: Vec<J> = seen
        .iter()
        .map(|(pid, t, e)| {
            J::obj(vec![
                ("pid", J::s(pid.clone())),
                ("exe", J::s(t.clone())),
                ("open_wronly_errno", J::I((*e).into())),
                ("writable", J::Bool(*e == 0)),
            ])
        })
        .collect();
    Ok(J::obj(vec![
        ("self", J::S(me)),
        ("scans", J::U(scans)),
        ("foreign", J::A(list)),
    ]))
}

fn cmd_exe() -> R {
    let t =
        std::fs::read_link("/proc/self/exe").map_err(|e| io_fail("readlink /proc/self/exe", &e))?;
    Ok(J::obj(vec![("exe", J::S(t.display().to_string()))]))
}

const HELP: &str = "barge-check SUBCOMMAND [ARGS]: prints JSON about what the process sees.
  ids | caps | nnp | mounts | rlimits | sysctl NAME | read PATH | write PATH DATA | stat PATH | ls PATH
  fds | cwd | env | hostname | umask | personality | cgroup | pid | ns | netdev | exe | exe-watch MS
  syscall NAME [ARGS] (mkdir PATH [MODE], mkdirat PATH, chmod PATH MODE, getcwd, personality [N],
                       unshare FLAGS, chroot PATH, sethostname NAME, getpid,
                       mknod PATH c|b|p|f MAJOR MINOR [PERM], mount SRC TARGET TYPE [FLAGS] [DATA],
                       setxattr PATH NAME VALUE, getxattr PATH NAME)
  hostile DIR | race-mknod DIR ESCAPE N | bench-mknod refuse|continue N [CPU]
  bench-pingpong N [CPU]
  fork N | alloc MB | spin MS | sleep SECS | exit CODE | signal-wait | tty | help
Errors: {\"error\":..., \"errno\":N} on stdout, exit status 1.";

fn dispatch(cmd: &str, rest: &[String]) -> R {
    match cmd {
        "ids" => cmd_ids(),
        "caps" => cmd_caps(),
        "nnp" => cmd_nnp(),
        "mounts" => cmd_mounts(),
        "rlimits" => cmd_rlimits(),
        "sysctl" => cmd_sysctl(rest),
        "read" => cmd_read(rest),
        "write" => cmd_write(rest),
        "stat" => cmd_stat(rest),
        "ls" => cmd_ls(rest),
        "fds" => cmd_fds(),
        "cwd" => cmd_cwd(),
        "env" => cmd_env(),
        "hostname" => cmd_hostname(),
        "umask" => cmd_umask(),
        "personality" => cmd_personality(),
        "cgroup" => cmd_cgroup(),
        "pid" => cmd_pid(),
        "ns" => cmd_ns(),
        "netdev" => cmd_netdev(),
        "exe" => cmd_exe(),
        "exe-watch" => cmd_exe_watch(rest),
        "syscall" => cmd_syscall(rest),
        "fork" => cmd_fork(rest),
        "alloc" => cmd_alloc(rest),
        "spin" => cmd_spin(rest),
        "sleep" => cmd_sleep(rest),
        "signal-wait" => cmd_signal_wait(),
        "tty" => cmd_tty(),
        "hostile" => intercept::hostile(rest),
        "race-mknod" => intercept::race_mknod(rest),
        "bench-mknod" => intercept::bench(rest),
        "bench-pingpong" => intercept::pingpong(rest),
        "help" | "--help" | "-h" => Ok(J::obj(vec![("help", J::s(HELP))])),
        other => Err(fail(
            "usage",
            format!("unknown subcommand {other:?}; try `barge-check help`"),
        )),
    }
}

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(cmd) = args.first() else {
        say(&J::obj(vec![
            ("error", J::s("missing subcommand; try `barge-check help`")),
            ("errno", J::I(0)),
        ]));
        std::process::exit(2);
    };
    if cmd == "exit" {
        let code: i32 = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        say(&J::obj(vec![("exit", J::I(code.into()))]));
        std::process::exit(code);
    }
    match dispatch(cmd, &args[1..]) {
        Ok(v) => say(&v),
        Err(f) => {
            say(&J::obj(vec![
                ("error", J::S(f.msg)),
                ("op", J::S(f.op)),
                ("errno", J::I(f.errno.into())),
                ("errno_name", J::s(errno_name(f.errno))),
            ]));
            std::process::exit(1);
        }
    }
}
